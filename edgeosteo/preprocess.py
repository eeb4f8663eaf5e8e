"""Image preprocessing named by a model's manifest, implemented without torch.

Each preprocessor takes the intake's Radiograph and the manifest's parameters and returns a
PreparedImage: the model input (one row per region) and where each region lies in the
original image, so a heatmap can be drawn back onto it. Training code in tools/ uses these
same functions.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from edgeosteo import knee_roi
from edgeosteo.errors import ModelError
from edgeosteo.intake.types import Radiograph


@dataclass(frozen=True)
class Region:
    """A square region of the original image: top-left corner and side, in pixels."""

    x0: float
    y0: float
    side: float


@dataclass(frozen=True)
class PreparedImage:
    tensor: np.ndarray  # [regions, 1, H, W] float32
    regions: tuple[Region, ...]


def resize_percentile(radiograph: Radiograph, params: Mapping[str, Any]) -> PreparedImage:
    """Whole image: area-resize to ``size`` (h, w), then map the ``percentiles`` to [0, 1]."""
    height, width = (int(v) for v in params["size"])
    low_pct, high_pct = (float(v) for v in params.get("percentiles", (1.0, 99.0)))
    resized = cv2.resize(radiograph.pixels, (width, height), interpolation=cv2.INTER_AREA)
    lo, hi = np.percentile(resized, [low_pct, high_pct])
    scaled = (resized - lo) / (hi - lo) if hi > lo else np.zeros_like(resized)
    tensor = np.clip(scaled, 0.0, 1.0).astype(np.float32)[None, None, :, :]
    rows, columns = radiograph.shape
    return PreparedImage(tensor, (Region(0.0, 0.0, float(max(rows, columns))),))


def knee_crops(radiograph: Radiograph, params: Mapping[str, Any]) -> PreparedImage:
    """One crop per knee found, resampled to a common scale (edgeosteo.knee_roi)."""
    knees = knee_roi.detect_knees(radiograph.pixels)
    if not knees:
        raise ModelError("model.roi_not_found", "no knee joint line found")
    crop = int(params.get("crop_px", knee_roi.PARAMS["crop_px"]))
    target = int(params.get("target_width_px", knee_roi.PARAMS["target_width_px"]))
    crops, regions = [], []
    for knee in knees:
        crops.append(knee_roi.crop_knee(radiograph.pixels, knee, target, crop))
        scale = target / knee.width
        side = crop / scale
        regions.append(
            Region(
                round(knee.cx * scale) / scale - side / 2,
                round(knee.cy * scale) / scale - side / 2,
                side,
            )
        )
    return PreparedImage(np.stack(crops)[:, None, :, :].astype(np.float32), tuple(regions))


PREPROCESSORS: dict[str, Callable[[Radiograph, Mapping[str, Any]], PreparedImage]] = {
    "resize_percentile": resize_percentile,
    knee_roi.PARAMS["version"]: knee_crops,
}


def preprocess(radiograph: Radiograph, params: Mapping[str, Any]) -> PreparedImage:
    name = params.get("method") or params.get("algorithm")
    function = PREPROCESSORS.get(str(name))
    if function is None:
        raise ModelError("model.manifest_invalid", f"unknown preprocessing method {name!r}")
    return function(radiograph, params)


# the outer share of a model's heatmap (of its cells, before upsampling) not shown: the knee
# model's border cells, read through its zero padding, are its hottest in every crop (the two
# outer rows of its 16 x 16 map), so the page would point at the crop's edge, not the joint
HEATMAP_BORDER = 0.125


def quiet_border(heatmap: np.ndarray, fraction: float = HEATMAP_BORDER) -> np.ndarray:
    """``heatmap`` with its outer ``fraction`` of cells on each side set to the coldest value
    inside them: the colours are scaled on the inside alone, and the hottest point is there."""
    values = np.array(heatmap, dtype=np.float32)
    rows, columns = values.shape
    top, side = max(1, round(rows * fraction)), max(1, round(columns * fraction))
    if fraction <= 0 or rows <= 2 * top or columns <= 2 * side:
        return values
    inside = values[top:-top, side:-side]
    finite = inside[np.isfinite(inside)]
    if not finite.size:
        return values
    border = np.ones(values.shape, dtype=bool)
    border[top:-top, side:-side] = False
    values[border] = finite.min()
    return values


def heatmap_on_image(
    maps: np.ndarray, regions: tuple[Region, ...], shape: tuple[int, int], long_side: int
) -> np.ndarray:
    """Per-region heatmaps placed back on the image, at ``long_side`` resolution; NaN where
    no region was looked at. Each region's border cells are quietened first (`quiet_border`):
    what the page shows as hottest is inside the crop, not on its edge."""
    rows, columns = shape
    scale = min(1.0, long_side / max(rows, columns))
    height, width = max(1, round(rows * scale)), max(1, round(columns * scale))
    canvas = np.full((height, width), np.nan, np.float32)
    for heatmap, region in zip(maps, regions, strict=True):
        side = max(1, round(region.side * scale))
        patch = cv2.resize(quiet_border(heatmap), (side, side), interpolation=cv2.INTER_LINEAR)
        x0, y0 = round(region.x0 * scale), round(region.y0 * scale)
        sx0, sy0 = max(x0, 0), max(y0, 0)
        sx1, sy1 = min(x0 + side, width), min(y0 + side, height)
        if sx1 > sx0 and sy1 > sy0:
            canvas[sy0:sy1, sx0:sx1] = patch[sy0 - y0 : sy1 - y0, sx0 - x0 : sx1 - x0]
    return canvas
