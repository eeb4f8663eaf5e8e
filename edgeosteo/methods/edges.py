"""Intensity profiles and sub-pixel edges: the edge finding every method builds on.

Profiles are sampled with bilinear interpolation along lines in image pixels (x = column,
y = row). An edge is a local extremum of the smoothed profile's derivative, located to a
fraction of a sample by fitting a parabola through the extremum and its two neighbours.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np


def unit(vector: Sequence[float]) -> np.ndarray:
    v = np.asarray(vector, dtype=np.float64)
    norm = float(np.hypot(v[0], v[1]))
    if norm == 0.0:
        raise ValueError("zero-length direction")
    return v / norm


def normal(direction: Sequence[float]) -> np.ndarray:
    """The unit vector 90 degrees anticlockwise (in image axes) from ``direction``."""
    d = unit(direction)
    return np.array([-d[1], d[0]])


def sample(pixels: np.ndarray, xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
    """Bilinear samples at (xs, ys); points outside the image read as NaN."""
    h, w = pixels.shape[:2]
    xs = np.asarray(xs, dtype=np.float32)
    ys = np.asarray(ys, dtype=np.float32)
    values = cv2.remap(
        np.asarray(pixels, dtype=np.float32),
        xs.reshape(-1, 1),
        ys.reshape(-1, 1),
        interpolation=cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_CONSTANT,
        borderValue=float("nan"),
    ).reshape(xs.shape)
    outside = (xs < 0) | (ys < 0) | (xs > w - 1) | (ys > h - 1)
    values[outside] = np.nan
    return values


def profile(
    pixels: np.ndarray,
    centre: Sequence[float],
    direction: Sequence[float],
    half_length: float,
    step: float = 0.5,
    band_half_width: float = 0.0,
    band_samples: int = 1,
) -> tuple[np.ndarray, np.ndarray]:
    """The profile through ``centre`` along ``direction``, from ``-half_length`` to
    ``+half_length`` pixels in ``step``s; with ``band_half_width``, the mean of
    ``band_samples`` parallel profiles across that band (noise down, edges kept).
    Returns (offsets in pixels, values)."""
    d = unit(direction)
    n = normal(d)
    offsets = np.arange(-half_length, half_length + step / 2, step)
    shifts = (
        np.linspace(-band_half_width, band_half_width, band_samples) if band_samples > 1 else [0.0]
    )
    rows = []
    for s in shifts:
        c = np.asarray(centre, dtype=np.float64) + s * n
        rows.append(sample(pixels, c[0] + offsets * d[0], c[1] + offsets * d[1]))
    if len(rows) == 1:
        return offsets, rows[0]
    # a mean over the band that skips samples off the image; a column wholly off it stays
    # NaN without numpy's "mean of empty slice" warning
    band = np.vstack(rows)
    inside = np.count_nonzero(~np.isnan(band), axis=0)
    total = np.nansum(band, axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return offsets, np.where(inside > 0, total / inside.astype(band.dtype), np.nan)


def perpendicular_profiles(
    pixels: np.ndarray,
    start: Sequence[float],
    end: Sequence[float],
    fractions: Sequence[float],
    half_length: float,
    step: float = 0.5,
    band_half_width: float = 0.0,
    band_samples: int = 1,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Profiles across the segment start->end at the given fractions of its length.
    Returns (centres (k, 2), offsets (n,), values (k, n)); offsets run along the
    segment's normal (see :func:`normal`)."""
    a = np.asarray(start, dtype=np.float64)
    b = np.asarray(end, dtype=np.float64)
    across = normal(b - a)
    centres = np.array([a + f * (b - a) for f in fractions])
    values = []
    offsets = np.zeros(0)
    for c in centres:
        offsets, v = profile(pixels, c, across, half_length, step, band_half_width, band_samples)
        values.append(v)
    return centres, offsets, np.vstack(values)


def smooth(values: np.ndarray, sigma_samples: float) -> np.ndarray:
    """Gaussian smoothing of a 1-D profile (NaNs left as NaN)."""
    if sigma_samples <= 0:
        return np.asarray(values, dtype=np.float64)
    v = np.asarray(values, dtype=np.float64)
    finite = np.isfinite(v)
    filled = np.where(finite, v, np.nanmean(v) if finite.any() else 0.0)
    radius = max(1, round(3 * sigma_samples))
    x = np.arange(-radius, radius + 1)
    kernel = np.exp(-0.5 * (x / sigma_samples) ** 2)
    kernel /= kernel.sum()
    out = np.convolve(np.pad(filled, radius, mode="edge"), kernel, mode="valid")
    out[~finite] = np.nan
    return out


def subpixel_peak(values: np.ndarray, index: int) -> float:
    """The position of the extremum at ``index`` refined by a parabola through it and its
    neighbours (the index itself at the ends or on a flat top)."""
    if index <= 0 or index >= len(values) - 1:
        return float(index)
    y0, y1, y2 = (float(values[index - 1]), float(values[index]), float(values[index + 1]))
    denominator = y0 - 2 * y1 + y2
    if denominator == 0 or not np.isfinite(denominator):
        return float(index)
    shift = 0.5 * (y0 - y2) / denominator
    return float(index) + float(np.clip(shift, -0.5, 0.5))


def gradient_extrema(
    values: np.ndarray, sigma_samples: float = 1.5, polarity: int = 1
) -> tuple[np.ndarray, np.ndarray]:
    """Sub-pixel positions (in samples) and strengths of the local maxima of the smoothed
    derivative (``polarity`` 1: rising edges; -1: falling edges), strongest first."""
    g = np.gradient(smooth(values, sigma_samples)) * polarity
    g = np.where(np.isfinite(g), g, -np.inf)
    inner = (g[1:-1] > g[:-2]) & (g[1:-1] >= g[2:]) & (g[1:-1] > 0)
    idx = np.nonzero(inner)[0] + 1
    order = np.argsort(-g[idx])
    idx = idx[order]
    return np.array([subpixel_peak(g, int(i)) for i in idx]), g[idx]


def level_crossing(values: np.ndarray, level: float, start: int, step: int) -> float | None:
    """The first position (in samples, linearly interpolated) at which ``values`` crosses
    ``level`` walking from ``start`` in direction ``step`` (+1 or -1); None if it never
    does before the profile ends or turns NaN."""
    v = np.asarray(values, dtype=np.float64)
    i = int(start)
    if not 0 <= i < len(v) or not np.isfinite(v[i]):
        return None
    above = v[i] >= level
    while 0 <= i + step < len(v):
        j = i + step
        if not np.isfinite(v[j]):
            return None
        if (v[j] >= level) != above:
            denominator = v[j] - v[i]
            fraction = (level - v[i]) / denominator if denominator else 0.5
            return float(i + step * fraction)
        i = j
    return None
