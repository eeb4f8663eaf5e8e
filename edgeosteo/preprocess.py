"""Image preprocessing named by a model's manifest, reimplemented here without torch.

Each preprocessor takes the intake's Radiograph and the manifest's parameters and returns
the model input tensor. Training code in tools/ must produce identical tensors.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import cv2
import numpy as np

from edgeosteo.errors import ModelError
from edgeosteo.intake.types import Radiograph


def resize_percentile(radiograph: Radiograph, params: Mapping[str, Any]) -> np.ndarray:
    """Whole image: area-resize to ``size`` (h, w), then map the ``percentiles`` to [0, 1]."""
    height, width = (int(v) for v in params["size"])
    low_pct, high_pct = (float(v) for v in params.get("percentiles", (1.0, 99.0)))
    resized = cv2.resize(radiograph.pixels, (width, height), interpolation=cv2.INTER_AREA)
    lo, hi = np.percentile(resized, [low_pct, high_pct])
    scaled = (resized - lo) / (hi - lo) if hi > lo else np.zeros_like(resized)
    return np.clip(scaled, 0.0, 1.0).astype(np.float32)[None, None, :, :]


PREPROCESSORS: dict[str, Callable[[Radiograph, Mapping[str, Any]], np.ndarray]] = {
    "resize_percentile": resize_percentile,
}


def preprocess(radiograph: Radiograph, params: Mapping[str, Any]) -> np.ndarray:
    name = params.get("method")
    function = PREPROCESSORS.get(str(name))
    if function is None:
        raise ModelError("model.manifest_invalid", f"unknown preprocessing method {name!r}")
    return function(radiograph, params)
