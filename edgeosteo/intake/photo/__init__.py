"""Phone photographs of X-ray films: find the film (geometry), rectify and normalise it
(rectification), measure what the photo gates judge (photometry).

The photo gates that judge those measurements are the quality side's (quality_photo.py):
intake measures, quality decides. The names callers use are re-exported here.
"""

from edgeosteo.intake.photo.geometry import FilmCorners, find_film, order_corners, plane_geometry
from edgeosteo.intake.photo.photometry import (
    colour_fringe,
    edge_blur_px,
    film_edge_blur_px,
    moire_ratio,
)
from edgeosteo.intake.photo.rectification import (
    CornerSource,
    PhotoFile,
    PhotoMeasures,
    PhotoResult,
    decode_photo,
    load_photo,
    read_photo,
    rectify_file,
    rectify_photo,
)

__all__ = [
    "CornerSource",
    "FilmCorners",
    "PhotoFile",
    "PhotoMeasures",
    "PhotoResult",
    "colour_fringe",
    "decode_photo",
    "edge_blur_px",
    "film_edge_blur_px",
    "find_film",
    "load_photo",
    "moire_ratio",
    "order_corners",
    "plane_geometry",
    "read_photo",
    "rectify_file",
    "rectify_photo",
]
