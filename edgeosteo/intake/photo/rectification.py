"""Phone photographs of X-ray films: find the film, rectify it, normalise it, measure it.

A technician photographs a printed film on a lightbox or against a window. This package
finds the film's four corners (geometry), corrects the perspective to the film's own aspect
ratio, removes the lightbox's uneven light (photometry) and measures what the photo gates
judge (glare, blur, moire, tilt, film size, exposure; the gates themselves are the quality
side's, quality_photo.py), so that a bad photo is refused with advice the technician can act
on at once. The rectified image has no pixel spacing: nothing measured on it may be stated
in millimetres.

Corners are (x, y) in the pixels of the photo as the phone shows it (EXIF orientation
applied), ordered top-left, top-right, bottom-right, bottom-left.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Literal

import cv2
import numpy as np

from edgeosteo.config import IntakeLimits, PhotoThresholds
from edgeosteo.errors import IntakeError
from edgeosteo.intake import ImageSource, read_bytes
from edgeosteo.intake.detect import detect_kind
from edgeosteo.intake.photo.geometry import (
    FilmCorners,
    check_placed,
    find_film,
    order_corners,
    plane_geometry,
    refine_user_corners,
)
from edgeosteo.intake.photo.photometry import (
    colour_fringe,
    edge_blur_px,
    evaluate_illumination,
    film_edge_blur_px,
    fit_illumination,
    glare_mask,
    glare_place,
    moire_ratio,
    srgb_to_linear,
)
from edgeosteo.intake.pixels import colourfulness, shrink_to_long_side
from edgeosteo.intake.raster import raster_header
from edgeosteo.intake.types import Radiograph

CornerSource = Literal["detected", "user", "whole_frame"]

# A photo whose short side falls below intake's own floor once its long side is reduced to
# the working size (a strip, a panorama: longer than about 32:1) cannot show a film.


@dataclass(frozen=True)
class PhotoMeasures:
    """What the photo gates (quality_photo.py) judge, measured on one photo."""

    clipped_film: float  # share of the film's inside at the clip level
    clipped_frame: float  # share of the whole frame at the clip level
    glare_fraction: float  # share of the film's inside under a reflection
    glare_place: str  # where the largest reflection sits (a 3 x 3 grid cell's name)
    blur_px: float  # edge spread (Gaussian sigma) at the analysis size, px
    moire: float  # strongest isolated peak in the crop's spectrum
    fringe: float  # fine-grained colour once the light's tint is removed, 0-255 scale
    tilt_deg: float  # the phone's tilt from square-on
    film_fraction: float  # share of the frame the film covers


@dataclass(frozen=True)
class PhotoResult:
    """A rectified film photo and the measurements the photo gates judge."""

    radiograph: Radiograph
    corners: np.ndarray  # (4, 2) float32, photo pixels, TL TR BR BL
    corner_source: CornerSource
    measures: PhotoMeasures
    glare_mask: np.ndarray  # bool, in the rectified film's pixels

    @property
    def tilt_deg(self) -> float:
        return self.measures.tilt_deg

    @property
    def film_fraction(self) -> float:
        return self.measures.film_fraction

    @property
    def whole_frame_fallback(self) -> bool:
        return self.corner_source == "whole_frame"

    def describe(self) -> dict[str, object]:
        """JSON-ready summary without pixels or verdicts (callers add the photo gates'
        report as ``"quality"``)."""
        return {
            "corners": [[round(float(x), 1), round(float(y), 1)] for x, y in self.corners],
            "corner_source": self.corner_source,
            "tilt_deg": round(self.tilt_deg, 1),
            "film_fraction": round(self.film_fraction, 3),
            "glare_fraction": round(float(self.glare_mask.mean()), 4),
        }


# --- decoding ----------------------------------------------------------------------------


def decode_photo(data: bytes, limits: IntakeLimits | None = None) -> np.ndarray:
    """RGB uint8 pixels of a JPEG/PNG/TIFF photo, EXIF orientation applied, colour kept."""
    limits = limits or IntakeLimits()
    if not data:
        raise IntakeError("intake.empty_file")
    kind = detect_kind(data[:132])
    if kind == "dicom":
        raise IntakeError("photo.not_a_photo")
    if kind not in ("png", "jpeg", "tiff"):
        raise IntakeError("intake.not_an_image")
    raster_header(data, limits)
    try:
        # IMREAD_COLOR (without IGNORE_ORIENTATION) applies the EXIF orientation
        decoded = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_COLOR)
    except cv2.error as exc:
        raise IntakeError("intake.corrupt_pixels", str(exc)) from exc
    if decoded is None or decoded.size == 0:
        raise IntakeError("intake.truncated", "the image decoder could not read the pixels")
    return cv2.cvtColor(decoded, cv2.COLOR_BGR2RGB)


@dataclass(frozen=True)
class PhotoFile:
    """A decoded photo as the phone shows it, with where it came from."""

    rgb: np.ndarray  # H x W x 3 uint8, EXIF orientation applied
    source_format: Literal["jpeg", "png", "tiff"]
    content_sha256: str
    transforms: tuple[str, ...]


def load_photo(source: ImageSource, limits: IntakeLimits | None = None) -> PhotoFile:
    """Read and decode a photo file (path, bytes or binary file)."""
    limits = limits or IntakeLimits()
    data = read_bytes(source, limits)
    rgb = decode_photo(data, limits)
    kind = detect_kind(data[:132])
    orientation = raster_header(data, limits)[2]
    return PhotoFile(
        rgb=rgb,
        source_format="jpeg" if kind == "jpeg" else kind,  # type: ignore[arg-type]
        content_sha256=hashlib.sha256(data).hexdigest(),
        transforms=(f"exif_orientation_{orientation}",) if orientation != 1 else (),
    )


def rectify_file(
    photo: PhotoFile,
    thresholds: PhotoThresholds | None = None,
    corners: FilmCorners | np.ndarray | list[list[float]] | None = None,
    limits: IntakeLimits | None = None,
) -> PhotoResult:
    """Rectify the film in a loaded photo and measure it."""
    return rectify_photo(
        photo.rgb,
        thresholds,
        corners,
        min_side_px=(limits or IntakeLimits()).min_side_px,
        source_format=photo.source_format,
        content_sha256=photo.content_sha256,
        transforms=photo.transforms,
    )


def read_photo(
    source: ImageSource,
    thresholds: PhotoThresholds | None = None,
    corners: FilmCorners | np.ndarray | list[list[float]] | None = None,
    limits: IntakeLimits | None = None,
) -> PhotoResult:
    """Read a photo file (path, bytes or binary file) and rectify the film in it."""
    return rectify_file(load_photo(source, limits), thresholds, corners, limits)


def rectify_photo(
    image: np.ndarray,
    thresholds: PhotoThresholds | None = None,
    corners: FilmCorners | np.ndarray | list[list[float]] | None = None,
    *,
    min_side_px: int = IntakeLimits.min_side_px,
    source_format: Literal["jpeg", "png", "tiff"] = "jpeg",
    content_sha256: str = "",
    transforms: tuple[str, ...] = (),
) -> PhotoResult:
    """Rectify the film in a photo (H x W x 3 RGB or H x W gray, uint8) and measure it
    for the photo gates (quality_photo.photo_gates).

    ``corners`` are four film corners in the photo's pixels (any order): clicked ones
    (a plain array, or FilmCorners with source "user") are snapped onto the film's edges;
    without them the film is found automatically, and when it cannot be found the whole
    frame is used (the film_found gate warns of it).
    """
    t = thresholds or PhotoThresholds()
    if image.ndim == 2:
        image = np.repeat(image[:, :, None], 3, axis=2)
    if image.dtype != np.uint8:
        image = np.clip(image.astype(np.float32) * (255.0 if image.max() <= 1.0 else 1.0), 0, 255)
        image = image.astype(np.uint8)
    rgb = np.ascontiguousarray(image[:, :, :3])
    work, work_scale = shrink_to_long_side(rgb, t.work_long_side_px)
    # the site's intake limit, applied to the photo at working size
    if min(work.shape[:2]) < min_side_px:
        raise IntakeError("photo.too_narrow", f"{rgb.shape[1]}x{rgb.shape[0]}")
    work_gray = cv2.cvtColor(work, cv2.COLOR_RGB2GRAY).astype(np.float32) / 255.0

    source: CornerSource
    if corners is not None:
        given = corners if isinstance(corners, FilmCorners) else FilmCorners.parse(corners)
        placed = order_corners(given.points) * work_scale
        check_placed(placed, work_gray.shape)
        if given.source == "detected":
            quad, source = placed, "detected"
        else:
            quad, source = refine_user_corners(work_gray, placed, t), "user"
    else:
        found = find_film(work_gray, t)
        if found is not None:
            quad, source = found, "detected"
        else:
            h, w = work_gray.shape
            quad = np.array([[0, 0], [w - 1, 0], [w - 1, h - 1], [0, h - 1]], np.float32)
            source = "whole_frame"

    aspect, tilt = plane_geometry(quad, work_gray.shape, t.focal_length_factor)
    if source == "whole_frame":
        tilt = 0.0
        aspect = work_gray.shape[1] / work_gray.shape[0]
    sides = [float(np.linalg.norm(quad[(i + 1) % 4] - quad[i])) for i in range(4)]
    out_h = max(sides[1], sides[3], max(sides[0], sides[2]) / aspect)
    out_w = out_h * aspect
    # the film's size in work pixels (the scale its blur is measured at)
    work_cap = min(1.0, t.output_long_side_px / max(out_w, out_h))
    work_size = (max(16, round(out_w * work_cap)), max(16, round(out_h * work_cap)))
    # the film is taken at the photo's own resolution, up to output_long_side_px: a 12 MP
    # photo is reduced to work_long_side_px for the search, which would halve its film's
    # resolution and leave the knee's bone texture softer than the film shows it
    native = 1.0 if source == "whole_frame" else 1.0 / work_scale
    cap = min(native, t.output_long_side_px / max(out_w, out_h))
    out_size = (max(16, round(out_w * cap)), max(16, round(out_h * cap)))
    if source == "whole_frame":
        out_size = work_size = (work_gray.shape[1], work_gray.shape[0])
    target = np.array(
        [[0, 0], [out_size[0] - 1, 0], [out_size[0] - 1, out_size[1] - 1], [0, out_size[1] - 1]],
        np.float32,
    )
    to_work = cv2.getPerspectiveTransform(target, quad.astype(np.float32))
    source_image, source_quad = work, quad.astype(np.float32)
    if cap > work_cap * 1.001:
        # more of the film's detail is in the photo than in the work copy: resample the
        # photo (area-averaged) to about the output's scale and rectify from that
        factor = min(1.0, cap * work_scale)
        frame_quad = quad / work_scale
        # only the film's bounding box (and a few pixels for the interpolation) is needed
        x0, y0 = np.maximum(np.floor(frame_quad.min(axis=0)) - 4, 0).astype(int)
        x1, y1 = np.ceil(frame_quad.max(axis=0)).astype(int) + 5
        box = rgb[y0:y1, x0:x1]
        box_h, box_w = box.shape[:2]
        size = (max(1, round(box_w * factor)), max(1, round(box_h * factor)))
        source_image = box if factor >= 1.0 else cv2.resize(box, size, interpolation=cv2.INTER_AREA)
        per_axis = np.array(
            [source_image.shape[1] / box_w, source_image.shape[0] / box_h], np.float32
        )
        source_quad = ((frame_quad - [x0, y0]) * per_axis).astype(np.float32)
    to_source = cv2.getPerspectiveTransform(target, source_quad)
    # bicubic: the film is resampled near 1:1, where bilinear averages neighbours at every
    # sub-pixel shift and softens the bone texture the knee model reads (docs/photos.md,
    # "The knee models on photos")
    film_rgb = cv2.warpPerspective(
        source_image,
        to_source,
        out_size,
        flags=cv2.INTER_CUBIC | cv2.WARP_INVERSE_MAP,
        borderMode=cv2.BORDER_REPLICATE,
    )
    film_fraction = abs(cv2.contourArea(quad)) / float(work_gray.shape[0] * work_gray.shape[1])

    # brightness as the phone saw it, then as light through the film
    film_srgb = film_rgb.astype(np.float32) / 255.0
    brightest = film_srgb.max(axis=2)
    film_gray = cv2.cvtColor(film_srgb, cv2.COLOR_RGB2GRAY)
    linear = srgb_to_linear(film_gray)
    applied = list(transforms)
    applied.append("whole_frame" if source == "whole_frame" else "film_rectified")
    coef = None
    if source != "whole_frame":
        coef = fit_illumination(srgb_to_linear(work_gray), quad, t)
    light = None
    if coef is not None:
        light = evaluate_illumination(coef, to_work, out_size, work_gray.shape)
    if light is not None:
        applied.append("lightbox_flat_field")
    else:
        light = np.full_like(linear, max(float(np.percentile(linear, 99.5)), 1e-3))
    transmission = np.clip(linear / np.maximum(light, 1e-4), 1e-4, None)

    inner = _inset(film_gray.shape, 0.02)
    interior = np.zeros(film_gray.shape, bool)
    interior[inner] = True
    clipped = brightest >= t.clipped_level
    glare = glare_mask(clipped, interior)
    # print densities are linear in the displayed value, so log transmission is too
    pixels = _to_unit(np.log(transmission), interior & ~clipped)
    if not np.isfinite(pixels).all():
        # nothing above should leave one; a NaN would pass every gate and reach the models
        raise IntakeError("intake.invalid_values", "non-finite pixels after rectification")
    applied.append("log_transmission_stretch")

    # colour of the film once the light's tint is removed
    means = film_srgb[inner].reshape(-1, 3).mean(axis=0)
    balanced = film_srgb * (means.mean() / np.maximum(means, 1e-3))
    colour = colourfulness(np.clip(balanced * 255.0, 0, 255).astype(np.uint8)[inner])

    radiograph = Radiograph(
        pixels=np.ascontiguousarray(pixels, dtype=np.float32),
        source_format=source_format,
        capture="photo",
        pixel_spacing_mm=None,
        spacing_source=None,
        photometric="MONOCHROME2",
        bits_stored=8,
        colourfulness=colour,
        transforms=tuple(applied),
        content_sha256=content_sha256,
    )
    analysis, _ = shrink_to_long_side(pixels, t.analysis_long_side_px)
    # measurements the gates judge
    to_analysis = min(1.0, t.analysis_long_side_px / max(work_size))
    blur = float("nan")
    if source != "whole_frame":
        blur = film_edge_blur_px(srgb_to_linear(work_gray), quad) * to_analysis
    if not np.isfinite(blur):
        blur = edge_blur_px(analysis)
    frame_h, frame_w = rgb.shape[:2]
    centre = np.array(
        [
            [0.2 * frame_w, 0.2 * frame_h],
            [0.8 * frame_w, 0.2 * frame_h],
            [0.8 * frame_w, 0.8 * frame_h],
            [0.2 * frame_w, 0.8 * frame_h],
        ],
        np.float32,
    )
    film_crop = _inner_crop(rgb, quad / work_scale)
    moire = max(
        moire_ratio(film_crop, t.moire_window_px),
        moire_ratio(_inner_crop(rgb, centre), t.moire_window_px),
    )
    fringe = colour_fringe(film_crop[: t.moire_window_px, : t.moire_window_px])
    measures = PhotoMeasures(
        clipped_film=float(clipped[inner].mean()),
        clipped_frame=float((work_gray >= t.clipped_level).mean()),
        glare_fraction=float(glare.sum()) / max(1, clipped[inner].size),
        glare_place=glare_place(glare),
        blur_px=blur,
        moire=moire,
        fringe=fringe,
        tilt_deg=tilt,
        film_fraction=film_fraction,
    )
    return PhotoResult(
        radiograph=radiograph,
        corners=(quad / work_scale).astype(np.float32),
        corner_source=source,
        measures=measures,
        glare_mask=glare,
    )


def _inner_crop(rgb: np.ndarray, quad: np.ndarray) -> np.ndarray:
    """The upright rectangle inside the film's quad, in the photo's own pixels."""
    x0 = max(quad[0, 0], quad[3, 0])
    x1 = min(quad[1, 0], quad[2, 0])
    y0 = max(quad[0, 1], quad[1, 1])
    y1 = min(quad[2, 1], quad[3, 1])
    if x1 - x0 < 16 or y1 - y0 < 16:
        return rgb[:0, :0]
    dx, dy = 0.05 * (x1 - x0), 0.05 * (y1 - y0)
    return rgb[int(y0 + dy) : int(y1 - dy), int(x0 + dx) : int(x1 - dx)]


def _inset(mask_shape: tuple[int, int], fraction: float) -> tuple[slice, slice]:
    h, w = mask_shape
    dy, dx = max(1, round(fraction * h)), max(1, round(fraction * w))
    return slice(dy, h - dy), slice(dx, w - dx)


def _to_unit(values: np.ndarray, valid: np.ndarray) -> np.ndarray:
    sample = values[valid] if valid.any() else values.ravel()
    lo, hi = np.percentile(sample, (0.5, 99.5))
    if hi - lo < 1e-6:
        return np.zeros_like(values, dtype=np.float32)
    return np.clip((values - lo) / (hi - lo), 0.0, 1.0).astype(np.float32)
