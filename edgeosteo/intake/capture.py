"""Was this raster file taken by a phone camera (a photo of a film) or exported by an X-ray
unit (a digital radiograph)? The right reader depends on it: a photo screened as a digital
radiograph is read uncorrected.

Evidence a photo of a film carries and an export does not:

- camera EXIF: make, model, focal length, exposure (an X-ray unit's export has none; a
  phone's own JPEG has them, a messaging app or an editor may strip them);
- colour in a nominally gray picture: the lightbox's or window's tint and the sensor's
  chroma noise. An export is gray (R = G = B, or a gray JPEG's chroma planes at neutral);
- the film itself: a bright lit border (lightbox, window) around a darker quadrilateral,
  often not a rectangle (perspective);
- recorded, not decided on: JPEG chroma subsampling (phones write 4:2:0, but so do many
  exports) and the fine colour fringe of a photographed monitor.

Pure functions of the file's bytes (numpy, OpenCV, Pillow); the thresholds, with the
measurements behind them, are ``config.CaptureThresholds``; docs/photos.md has the figures.
"""

from __future__ import annotations

import io
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

import cv2
import numpy as np
from PIL import Image

from edgeosteo.config import CaptureThresholds
from edgeosteo.intake.detect import detect_kind
from edgeosteo.intake.photo.geometry import find_film, plane_geometry
from edgeosteo.intake.photo.photometry import colour_fringe
from edgeosteo.intake.pixels import shrink_to_long_side

CaptureKind = Literal["photo", "digital"]

# EXIF tags only a camera writes: Make, Model (IFD0); ExposureTime, FNumber, ISO,
# FocalLength, FocalLengthIn35mmFilm, LensModel (Exif IFD)
_IFD0_CAMERA = {0x010F: "make", 0x0110: "model"}
_EXIF_IFD = 0x8769
_EXIF_CAMERA = {
    0x829A: "exposure_time",
    0x829D: "f_number",
    0x8827: "iso",
    0x920A: "focal_length",
    0xA405: "focal_length_35mm",
    0xA434: "lens_model",
}
_MEASURE_LONG_SIDE = 1024  # colour and film measures are taken on a copy this long


@dataclass(frozen=True)
class CaptureGuess:
    """``kind`` "photo" when ``score`` >= 0.5. ``score`` is the strongest cue's measure over
    its threshold, halved and capped at 1 (a cue at its threshold scores 0.5). ``evidence``
    names the cues that reached their threshold (``exif_camera``, ``colour_cast``,
    ``colour_noise``, ``lit_film_border``); ``measures`` holds every measurement taken."""

    kind: CaptureKind
    score: float
    evidence: tuple[str, ...] = ()
    measures: Mapping[str, float] = field(default_factory=dict)

    @property
    def is_photo(self) -> bool:
        return self.kind == "photo"

    def describe(self) -> dict[str, object]:
        return {
            "kind": self.kind,
            "score": round(self.score, 3),
            "evidence": list(self.evidence),
            "measures": {k: round(float(v), 4) for k, v in self.measures.items()},
        }


def camera_tags(data: bytes) -> dict[str, str]:
    """The camera-only EXIF tags present in a raster file (empty when none or unreadable)."""
    found: dict[str, str] = {}
    try:
        with Image.open(io.BytesIO(data)) as img:
            exif = img.getexif()
            for tag, name in _IFD0_CAMERA.items():
                value = exif.get(tag)
                if value is not None and str(value).strip(" \x00"):
                    found[name] = str(value).strip(" \x00")
            sub = exif.get_ifd(_EXIF_IFD)
            for tag, name in _EXIF_CAMERA.items():
                value = sub.get(tag)
                if value is not None and str(value).strip(" \x00"):
                    found[name] = str(value).strip(" \x00")
    except Exception:
        return {}
    return found


def jpeg_subsampling(data: bytes) -> float:
    """Chroma samples per 2x2 luma block of a colour JPEG: 4 (4:4:4), 2 (4:2:2), 1 (4:2:0);
    0 for a gray JPEG or another format."""
    try:
        with Image.open(io.BytesIO(data)) as img:
            if img.format != "JPEG" or img.mode not in ("RGB", "YCbCr"):
                return 0.0
            layers = getattr(img, "layer", None)
            if not layers or len(layers) < 3:
                return 0.0
            _, h_luma, v_luma, _ = layers[0]
            _, h_chroma, v_chroma, _ = layers[1]
            return 4.0 * (h_chroma * v_chroma) / max(1, h_luma * v_luma)
    except Exception:
        return 0.0


def decode_rgb(data: bytes) -> np.ndarray | None:
    """RGB uint8 (colour kept) of a PNG/JPEG/TIFF, EXIF orientation applied; None if unreadable."""
    try:
        decoded = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_COLOR)
    except cv2.error:
        return None
    if decoded is None or decoded.size == 0:
        return None
    return cv2.cvtColor(decoded, cv2.COLOR_BGR2RGB)


def colour_measures(rgb: np.ndarray) -> dict[str, float]:
    """How far a picture is from gray: the chroma of each pixel (YCrCb, 0-255 scale) on a
    copy at most 1024 pixels long. ``chroma_median``: the typical pixel's colour (a tint
    over the whole picture); ``chroma_share``: share of pixels with chroma >= 2 (a tint or
    chroma noise spread over the picture, not a small coloured label); ``chroma_fine``:
    pixel-scale chroma (sensor noise) in the median pixel."""
    if rgb.ndim != 3 or rgb.shape[2] < 3:
        return {"chroma_median": 0.0, "chroma_share": 0.0, "chroma_fine": 0.0}
    small, _ = shrink_to_long_side(np.ascontiguousarray(rgb[:, :, :3]), _MEASURE_LONG_SIDE)
    ycc = cv2.cvtColor(small, cv2.COLOR_RGB2YCrCb).astype(np.float32)
    cr, cb = ycc[:, :, 1] - 128.0, ycc[:, :, 2] - 128.0
    chroma = np.hypot(cr, cb)
    fine = np.hypot(cr - cv2.GaussianBlur(cr, (0, 0), 2), cb - cv2.GaussianBlur(cb, (0, 0), 2))
    return {
        "chroma_median": float(np.median(chroma)),
        "chroma_share": float((chroma >= 2.0).mean()),
        "chroma_fine": float(np.median(fine)),
    }


def film_measures(gray: np.ndarray) -> dict[str, float]:
    """A film lit from behind: its outline (``find_film``), the share of the frame it covers,
    the phone's tilt implied by the outline, and its lit border: how much brighter a band
    just outside the film is than the film (``rim_step``, 0-1) and how bright that band is
    against the picture's brightest (``rim_level``). Zeros when no film is found."""
    small, _ = shrink_to_long_side(gray.astype(np.float32), _MEASURE_LONG_SIDE)
    out = {"film_found": 0.0, "film_area": 0.0, "film_tilt_deg": 0.0}
    out.update(rim_step=0.0, rim_level=0.0)
    quad = find_film(small)
    if quad is None:
        return out
    h, w = small.shape
    inside = np.zeros((h, w), np.uint8)
    cv2.fillConvexPoly(inside, np.round(quad).astype(np.int32), 1)
    band = max(3, round(0.02 * float(np.hypot(h, w))))
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * band + 1, 2 * band + 1))
    outer = cv2.dilate(inside, kernel) & (1 - inside)
    core = cv2.erode(inside, kernel)
    if outer.sum() < 50 or core.sum() < 50:
        return out
    light = max(1e-3, float(np.percentile(small, 99.5)))
    rim = float(np.median(small[outer > 0]))
    film = float(np.median(small[core > 0]))
    _, tilt = plane_geometry(quad, (h, w), 0.8)
    out.update(
        film_found=1.0,
        film_area=float(abs(cv2.contourArea(quad.astype(np.float32))) / (h * w)),
        film_tilt_deg=float(tilt),
        rim_step=rim - film,
        rim_level=rim / light,
    )
    return out


def _cue(value: float, threshold: float) -> float:
    return min(1.0, 0.5 * value / threshold) if threshold > 0 else 0.0


def guess_capture(
    data: bytes, rgb: np.ndarray | None = None, thresholds: CaptureThresholds | None = None
) -> CaptureGuess:
    """Photo of a film or digital radiograph, from a file's raw bytes (PNG, JPEG, TIFF).

    A DICOM file (or anything that is not a readable raster) is always "digital". ``rgb``
    may pass the already decoded RGB uint8 pixels (EXIF orientation applied) to save a
    second decoding; a gray H x W array is taken as gray.
    """
    t = thresholds or CaptureThresholds()
    kind = detect_kind(data[:132])
    if kind not in ("png", "jpeg", "tiff"):
        return CaptureGuess("digital", 0.0, (), {"raster": 0.0})
    measures: dict[str, float] = {"raster": 1.0}
    tags = camera_tags(data)
    measures["exif_camera_tags"] = float(len(tags))
    measures["jpeg_subsampling"] = jpeg_subsampling(data) if kind == "jpeg" else 0.0
    pixels = rgb if rgb is not None else decode_rgb(data)
    if pixels is not None:
        measures.update(pixel_measures(pixels))
    return judge(measures, t)


def pixel_measures(pixels: np.ndarray) -> dict[str, float]:
    """The colour and film measures of decoded pixels (RGB or gray, any integer depth)."""
    if pixels.dtype != np.uint8:
        top = 65535.0 if pixels.dtype == np.uint16 else max(1e-6, float(pixels.max()))
        pixels = np.clip(pixels.astype(np.float32) * (255.0 / top), 0, 255).astype(np.uint8)
    measures: dict[str, float] = {}
    if pixels.ndim == 3 and pixels.shape[2] >= 3:
        rgb = np.ascontiguousarray(pixels[:, :, :3])
        measures.update(colour_measures(rgb))
        gray = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
        measures["colour_fringe"] = colour_fringe(shrink_to_long_side(rgb, 512)[0])
    else:
        gray = pixels if pixels.ndim == 2 else pixels[:, :, 0]
        measures.update(colour_measures(gray))
        measures["colour_fringe"] = 0.0
    measures.update(film_measures(gray.astype(np.float32) / 255.0))
    return measures


def judge(
    measures: Mapping[str, float], thresholds: CaptureThresholds | None = None
) -> CaptureGuess:
    """The guess from measurements already taken (``guess_capture``'s second half; the
    evaluation re-judges stored measures under other thresholds with it)."""
    t = thresholds or CaptureThresholds()
    if not measures.get("raster"):
        return CaptureGuess("digital", 0.0, (), dict(measures))
    lit_border = 0.0
    if measures.get("film_found") and measures.get("rim_level", 0.0) >= t.rim_min_level:
        lit_border = _cue(measures.get("rim_step", 0.0), t.rim_step_photo)
    cues = {
        "exif_camera": 1.0 if measures.get("exif_camera_tags", 0.0) > 0 else 0.0,
        "colour_cast": _cue(measures.get("chroma_median", 0.0), t.chroma_median_photo),
        "colour_noise": _cue(measures.get("chroma_share", 0.0), t.chroma_share_photo),
        "lit_film_border": lit_border,
    }
    score = max(cues.values())
    evidence = tuple(name for name, value in cues.items() if value >= 0.5)
    out = dict(measures)
    for name, value in cues.items():
        out[f"cue_{name}"] = value
    return CaptureGuess("photo" if score >= 0.5 else "digital", score, evidence, out)
