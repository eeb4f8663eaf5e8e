"""Light through the film: linearisation, the lightbox's uneven light, and the measures the
photo gates judge (blur, moire, colour fringes, glare)."""

from __future__ import annotations

import cv2
import numpy as np

from edgeosteo.config import PhotoThresholds
from edgeosteo.intake.photo.geometry import sample_bilinear
from edgeosteo.intake.pixels import shrink_to_long_side

# Where on the film a reflection sits, as a 3 x 3 grid (row, column) -> code suffix.
_GLARE_PLACES = (
    ("upper_left", "top", "upper_right"),
    ("left", "centre", "right"),
    ("lower_left", "bottom", "lower_right"),
)


def srgb_to_linear(x: np.ndarray) -> np.ndarray:
    return np.where(x <= 0.04045, x / 12.92, ((x + 0.055) / 1.055) ** 2.4).astype(np.float32)


def fit_illumination(
    work_linear: np.ndarray, corners: np.ndarray, t: PhotoThresholds
) -> np.ndarray | None:
    """Coefficients of a quadratic fit of log lightbox brightness around the film, in
    work-image coordinates scaled to [-1, 1]; None when too little lightbox shows."""
    small, scale = shrink_to_long_side(work_linear, 400)
    h, w = small.shape
    quad = (corners * scale).astype(np.int32)
    mask = np.zeros((h, w), np.uint8)
    cv2.fillConvexPoly(mask, quad, 255)
    gap = max(2, round(0.01 * max(h, w)))
    near = cv2.dilate(mask, np.ones((2 * gap + 1, 2 * gap + 1), np.uint8))
    far = cv2.dilate(mask, np.ones((8 * gap + 1, 8 * gap + 1), np.uint8))
    ring = (far > 0) & (near == 0)
    if ring.sum() < 100:
        return None
    values = small[ring]
    top = float(np.percentile(values, 95))
    lit = ring & (small >= 0.6 * top) & (small < 0.97)
    if lit.sum() < 0.3 * ring.sum() or top < 0.05:
        return None
    ys, xs = np.nonzero(lit)
    x = xs / (w - 1) * 2 - 1
    y = ys / (h - 1) * 2 - 1
    design = np.stack([np.ones_like(x), x, y, x * x, x * y, y * y], axis=1)
    target = np.log(small[lit])
    keep = np.ones(len(target), dtype=bool)
    coef = np.zeros(6)
    for _ in range(3):
        coef, *_ = np.linalg.lstsq(design[keep], target[keep], rcond=None)
        residual = np.abs(design @ coef - target)
        keep = residual <= max(0.02, 2.5 * 1.4826 * float(np.median(residual[keep])))
    return coef


# A lightbox's fitted light over the film: 21 simulated photos (every condition) span at
# most a factor 1.6 and stay below the clip level. A fit from a thin sliver of lightbox (a
# film filling the frame) can extrapolate to overflow (inf, then NaN pixels): not used.
_MAX_LIGHT_LOG_SPREAD = float(np.log(8.0))
_MAX_LIGHT_LOG = float(np.log(2.0))


def evaluate_illumination(
    coef: np.ndarray, inverse_map: np.ndarray, out_size: tuple[int, int], work_shape
) -> np.ndarray | None:
    """The fitted light at every pixel of the rectified film; None when the fit is not
    plausible over the film (see _MAX_LIGHT_LOG_SPREAD)."""
    out_w, out_h = out_size
    gh, gw = 48, 48
    gx, gy = np.meshgrid(np.linspace(0, out_w - 1, gw), np.linspace(0, out_h - 1, gh))
    pts = np.stack([gx, gy], axis=-1).reshape(-1, 1, 2).astype(np.float32)
    mapped = cv2.perspectiveTransform(pts, inverse_map).reshape(gh, gw, 2)
    h, w = work_shape
    x = mapped[..., 0] / (w - 1) * 2 - 1
    y = mapped[..., 1] / (h - 1) * 2 - 1
    log_l = coef[0] + coef[1] * x + coef[2] * y + coef[3] * x * x + coef[4] * x * y
    log_l = log_l + coef[5] * y * y
    if (
        not np.isfinite(log_l).all()
        or float(np.ptp(log_l)) > _MAX_LIGHT_LOG_SPREAD
        or float(log_l.max()) > _MAX_LIGHT_LOG
    ):
        return None
    field = np.exp(log_l).astype(np.float32)
    return cv2.resize(field, (out_w, out_h), interpolation=cv2.INTER_LINEAR)


def edge_blur_px(gray: np.ndarray) -> float:
    """Spread (Gaussian sigma, px) of the sharper strong edges, in their most blurred
    direction.

    The gradient peak of an edge of blur s, measured after smoothing with sigma, falls as
    1 / sqrt(s^2 + sigma^2); the ratio of the peaks at two smoothings gives s whatever the
    edge's contrast, so the same figure holds for a faint chest film and a crisp knee.
    """
    s1, s2 = 1.0, 3.0
    fine = cv2.GaussianBlur(gray, (0, 0), s1)
    coarse = cv2.GaussianBlur(gray, (0, 0), s2)
    worst = 0.0
    for angle in (0.0, 45.0, 90.0, 135.0):
        c, s = np.cos(np.radians(angle)), np.sin(np.radians(angle))
        d_fine = np.abs(
            c * cv2.Sobel(fine, cv2.CV_32F, 1, 0, ksize=3)
            + s * cv2.Sobel(fine, cv2.CV_32F, 0, 1, ksize=3)
        )
        d_coarse = np.abs(
            c * cv2.Sobel(coarse, cv2.CV_32F, 1, 0, ksize=3)
            + s * cv2.Sobel(coarse, cv2.CV_32F, 0, 1, ksize=3)
        )
        # peaks of the coarse response: the strongest edges facing this direction
        local_max = d_coarse >= cv2.dilate(d_coarse, np.ones((5, 5), np.uint8))
        level = float(np.percentile(d_coarse, 99.0))
        peaks = local_max & (d_coarse >= level) & (d_coarse > 0)
        if peaks.sum() < 20:
            continue
        fine_peak = cv2.dilate(d_fine, np.ones((3, 3), np.uint8))[peaks]
        # the sharpest quarter: shake blurs every edge, anatomy and collimator only some
        ratio = float(np.percentile(fine_peak / d_coarse[peaks], 75))
        r2 = ratio * ratio
        if r2 <= 1.0:
            spread = 50.0
        else:
            spread = float(np.sqrt(max(0.0, (s2 * s2 - r2 * s1 * s1) / (r2 - 1.0))))
        worst = max(worst, spread)
    return worst


def film_edge_blur_px(linear: np.ndarray, quad: np.ndarray) -> float:
    """Spread (Gaussian sigma, px) of the film's own cut edges against the light, in the
    most blurred of the four sides. The cut edge is sharp whatever the film shows, so this
    measures the phone (shake, focus) and not the radiograph."""
    centre = quad.mean(axis=0)
    offsets = np.arange(-16.0, 16.01, 0.25)
    worst = 0.0
    found = 0
    for i in range(4):
        p0, p1 = quad[i].astype(np.float64), quad[(i + 1) % 4].astype(np.float64)
        d = p1 - p0
        length = float(np.linalg.norm(d))
        if length < 40:
            continue
        u = d / length
        n = np.array([u[1], -u[0]])
        if (0.5 * (p0 + p1) - centre) @ n < 0:
            n = -n
        along = p0 + np.linspace(0.15, 0.85, 48)[:, None] * d
        grid = along[:, None, :] + offsets[None, :, None] * n[None, None, :]
        profiles = sample_bilinear(linear, grid)
        steps = profiles[:, -16:].mean(axis=1) - profiles[:, :16].mean(axis=1)
        typical = float(np.median(steps))
        if typical <= 0:
            continue
        # leave out stretches covered by a hand, a clip or a reflection
        keep = np.abs(steps - typical) < 0.3 * typical
        if keep.sum() < 12:
            continue
        mean = profiles[keep].mean(axis=0)
        deriv = np.diff(mean) / (offsets[1] - offsets[0])
        peak = int(np.argmax(deriv))
        if deriv[peak] <= 0:
            continue
        # a blurred step of height H peaks at H / (sigma sqrt(2 pi)); H is read 4-12 px
        # out, so the film's own shading near its border hardly counts
        x = offsets[peak]
        after = mean[(offsets >= x + 4) & (offsets <= x + 12)]
        before = mean[(offsets <= x - 4) & (offsets >= x - 12)]
        if after.size == 0 or before.size == 0:
            continue
        height = float(after.mean() - before.mean())
        if height <= 0:
            continue
        spread = height / (np.sqrt(2 * np.pi) * float(deriv[peak]))
        worst = max(worst, spread)
        found += 1
    return worst if found >= 2 else float("nan")


def moire_ratio(rgb: np.ndarray, window: int) -> float:
    """Strongest isolated peak in the spectrum of a photo crop's brightness or colour.

    A photographed monitor's pixel grid beats with the phone's sensor and leaves sharp
    peaks; a film leaves a smooth spectrum. Straight edges (film borders, collimation)
    make ridges through the origin rather than peaks, so a peak must stand above its
    neighbours along the radius as well as above the median power at its frequency.
    Frequencies of the JPEG block grid are skipped (the crop is taken in the
    photo's own pixels so they fall on known bins).
    """
    h, w = rgb.shape[:2]
    n = min(window, h, w) // 16 * 16
    if n < 256:
        return 0.0  # too few pixels to tell a beat from the film's own texture
    y0, x0 = (h - n) // 2, (w - n) // 2
    crop = rgb[y0 : y0 + n, x0 : x0 + n].astype(np.float32) / 255.0
    r, g, b = crop[..., 0], crop[..., 1], crop[..., 2]
    channels = (0.299 * r + 0.587 * g + 0.114 * b, r - g, 0.5 * (r + g) - b)
    tile = n // 2
    step = tile // 2
    hann = np.outer(np.hanning(tile), np.hanning(tile)).astype(np.float32)
    freq = np.fft.fftshift(np.fft.fftfreq(tile)) * tile
    ky, kx = np.meshgrid(freq, freq, indexing="ij")
    radius = np.hypot(ky, kx)
    ring = np.round(radius).astype(int)
    block = tile // 16  # 16-pixel MCUs: 8-pixel luma blocks, 2x subsampled colour
    near_grid = (np.abs((kx + 1) % block - 1) <= 1) | (np.abs((ky + 1) % block - 1) <= 1)
    valid = (radius >= 6) & (radius <= 0.45 * tile) & ~near_grid
    reach = 4.0 / np.maximum(radius, 1e-6)
    inward = (
        np.clip(np.round(ky * (1 - reach)), -tile // 2, tile // 2 - 1).astype(int) + tile // 2,
        np.clip(np.round(kx * (1 - reach)), -tile // 2, tile // 2 - 1).astype(int) + tile // 2,
    )
    outward = (
        np.clip(np.round(ky * (1 + reach)), -tile // 2, tile // 2 - 1).astype(int) + tile // 2,
        np.clip(np.round(kx * (1 + reach)), -tile // 2, tile // 2 - 1).astype(int) + tile // 2,
    )
    ring_ids = ring[valid]
    order = np.argsort(ring_ids, kind="stable")
    bounds = np.flatnonzero(np.diff(ring_ids[order])) + 1
    groups = np.split(order, bounds)
    best = 0.0
    for channel in channels:
        power = np.zeros((tile, tile), np.float64)
        for ty in range(0, n - tile + 1, step):
            for tx in range(0, n - tile + 1, step):
                part = channel[ty : ty + tile, tx : tx + tile]
                spectrum = cv2.dft((part - part.mean()) * hann, flags=cv2.DFT_COMPLEX_OUTPUT)
                power += spectrum[..., 0] ** 2 + spectrum[..., 1] ** 2
        power = np.fft.fftshift(power)
        values = power[valid]
        floor = np.empty_like(values)
        for group in groups:
            floor[group] = np.median(values[group])
        floor = np.maximum(floor, 1e-20)
        neighbours = np.maximum(power[inward][valid], power[outward][valid])
        score = np.minimum(values / floor, values / np.maximum(neighbours, 1e-20))
        best = max(best, float(score.max()))
    return best


def colour_fringe(rgb: np.ndarray) -> float:
    """Fine-grained colour (0-255 scale) of a photo crop once the light's tint is removed.

    A film is gray: its photo carries almost no colour detail. A monitor's red, green and
    blue sub-pixels alias into fine coloured fringes even where the beat is too irregular
    to make a spectral peak.
    """
    if rgb.size == 0 or min(rgb.shape[:2]) < 32:
        return 0.0
    unit = rgb.astype(np.float32) / 255.0
    means = unit.reshape(-1, 3).mean(axis=0)
    unit = unit * (means.mean() / np.maximum(means, 1e-3))
    rg = unit[..., 0] - unit[..., 1]
    yb = 0.5 * (unit[..., 0] + unit[..., 1]) - unit[..., 2]
    fine_rg = rg - cv2.GaussianBlur(rg, (0, 0), 3)
    fine_yb = yb - cv2.GaussianBlur(yb, (0, 0), 3)
    return float(np.hypot(fine_rg.std(), fine_yb.std()) * 255.0)


def glare_place(mask: np.ndarray) -> str:
    count, _, stats, centroids = cv2.connectedComponentsWithStats(mask.astype(np.uint8))
    if count <= 1:
        return "centre"
    largest = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
    cx, cy = centroids[largest]
    h, w = mask.shape
    return _GLARE_PLACES[min(2, int(3 * cy / h))][min(2, int(3 * cx / w))]


def glare_mask(clipped: np.ndarray, interior: np.ndarray) -> np.ndarray:
    mask = (clipped & interior).astype(np.uint8)
    mask = cv2.morphologyEx(mask, cv2.MORPH_OPEN, np.ones((3, 3), np.uint8))
    return mask.astype(bool)
