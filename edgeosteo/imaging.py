"""The PNGs the case page shows, rendered when a case is stored: the radiograph at display
size, and the model's heatmap (edgeosteo.preprocess.heatmap_on_image places it on the
image) as a colour overlay of the same size."""

from __future__ import annotations

import cv2
import numpy as np

from edgeosteo.config import DISPLAY_LONG_SIDE_PX
from edgeosteo.intake.pixels import shrink_to_long_side


def display_png(pixels: np.ndarray) -> bytes:
    """Gray [0, 1] pixels as the PNG the page shows (long side at most DISPLAY_LONG_SIDE_PX)."""
    small, _ = shrink_to_long_side(pixels, DISPLAY_LONG_SIDE_PX)
    ok, encoded = cv2.imencode(".png", np.clip(small * 255.0, 0, 255).astype(np.uint8))
    if not ok:
        raise ValueError("display image could not be encoded")
    return encoded.tobytes()


def heatmap_png(heatmap: np.ndarray, shape: tuple[int, int]) -> bytes:
    """A colour overlay at the display image's size, transparent where cold or where the
    model did not look (NaN)."""
    h, w = shape
    scale = min(1.0, DISPLAY_LONG_SIDE_PX / max(h, w))
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    values = cv2.resize(np.asarray(heatmap, dtype=np.float32), size, interpolation=cv2.INTER_LINEAR)
    looked = np.isfinite(values)
    finite = values[looked]
    lo, hi = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 0.0)
    unit = np.where(looked, (values - lo) / (hi - lo) if hi > lo else 0.0, 0.0)
    unit = np.clip(unit, 0.0, 1.0).astype(np.float32)
    colour = cv2.applyColorMap((unit * 255).astype(np.uint8), cv2.COLORMAP_JET)
    alpha = np.where(looked, unit * 160, 0).astype(np.uint8)
    ok, encoded = cv2.imencode(".png", np.dstack([colour, alpha]))
    if not ok:
        raise ValueError("heatmap could not be encoded")
    return encoded.tobytes()


# a bone window: the cortical shell and the trabecular core apart, soft tissue gray
CT_BONE_WINDOW = (400.0, 1800.0)  # level, width (HU)


def ct_png(hu: np.ndarray, row_mm: float, column_mm: float, px_mm: float) -> bytes:
    """A CT image (HU) in the bone window as a PNG of square pixels ``px_mm`` wide: a
    sagittal reformat's rows are a slice spacing tall, so it is stretched to true shape."""
    level, width = CT_BONE_WINDOW
    gray = np.clip((hu.astype(np.float32) - (level - width / 2)) / width, 0.0, 1.0)
    rows, columns = gray.shape
    size = (max(1, round(columns * column_mm / px_mm)), max(1, round(rows * row_mm / px_mm)))
    if size != (columns, rows):
        gray = cv2.resize(gray, size, interpolation=cv2.INTER_LINEAR)
    ok, encoded = cv2.imencode(".png", np.rint(gray * 255.0).astype(np.uint8))
    if not ok:
        raise ValueError("CT image could not be encoded")
    return encoded.tobytes()
