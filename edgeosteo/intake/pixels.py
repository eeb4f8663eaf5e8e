"""Small pixel helpers shared by the readers, the photo path, the quality gates and the page."""

from __future__ import annotations

import cv2
import numpy as np


def _as_unit_float(array: np.ndarray) -> np.ndarray:
    if array.dtype == np.uint8:
        return array.astype(np.float32) / 255.0
    if array.dtype == np.uint16:
        return array.astype(np.float32) / 65535.0
    values = array.astype(np.float32)
    lo, hi = float(values.min()), float(values.max())
    return (values - lo) / (hi - lo) if hi > lo else np.zeros_like(values)


def to_gray_float(image: np.ndarray) -> np.ndarray:
    """Gray float32 in [0, 1] from a 2-D gray or H x W x 3/4 RGB(A) array (RGB order)."""
    unit = _as_unit_float(image)
    if unit.ndim == 2:
        return unit
    if unit.shape[2] == 4:
        unit = unit[:, :, :3]
    return cv2.cvtColor(unit, cv2.COLOR_RGB2GRAY)


def colourfulness(image: np.ndarray) -> float:
    """Hasler & Suesstrunk (2003) colourfulness on a 0-255 scale; ~0 for gray content."""
    if image.ndim != 3 or image.shape[2] < 3:
        return 0.0
    unit = _as_unit_float(image[:, :, :3]) * 255.0
    step = max(1, int(max(unit.shape[:2]) // 512))
    sample = unit[::step, ::step]
    r, g, b = sample[:, :, 0], sample[:, :, 1], sample[:, :, 2]
    rg = r - g
    yb = 0.5 * (r + g) - b
    return float(
        np.sqrt(rg.std() ** 2 + yb.std() ** 2) + 0.3 * np.sqrt(rg.mean() ** 2 + yb.mean() ** 2)
    )


def shrink_to_long_side(
    image: np.ndarray, long_side: int, interpolation: int = cv2.INTER_AREA
) -> tuple[np.ndarray, float]:
    """The image with its long side at most ``long_side`` pixels, and the scale applied
    (1.0, and the image itself, when it is already that small)."""
    h, w = image.shape[:2]
    scale = min(1.0, long_side / max(h, w))
    if scale >= 1.0:
        return image, 1.0
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    return cv2.resize(image, size, interpolation=interpolation), scale
