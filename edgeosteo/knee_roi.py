"""Automatic knee ROI: find each knee's joint line and the bone width at the joint, then crop
a square resampled to a common physical scale (tibial-plateau/condyle width -> 160 px).
The one implementation: tools/ training and the runtime preprocessing both call it.

Pure numpy + OpenCV, deterministic, no learned parts, so the runtime can vendor or
reimplement it exactly. Parameters are in PARAMS and are copied into the image manifest.

Algorithm (input: grayscale float32 in [0, 1], bone bright):
1. Working copy: resize so the longest side is 512 px (cv2.INTER_AREA); s = 512 / max(H, W).
   Gaussian blur sigma 3 px -> b.
2. Body threshold tb = Otsu(b) (on uint8(b*255)). Column occupancy = fraction of rows 20-80%
   of the height with b > tb, smoothed with a 9-tap box. Runs of columns with occupancy > 0.5
   and length > 8% of the width are legs; a run wider than 55% of the width is split at the
   minimum of the mean column intensity (rows 20-80%) inside its middle 40% (two knees).
3. For each leg band [a, c): central columns (20%-80% of the band) give the row profile
   I(y) = mean b and P(y) = mean vertical Sobel (ksize 5) smoothed with a 3-tap box. Rows are
   searched between the first/last row where I > 0.8 tb, shrunk by 8% of that extent + 8 px.
   For gap height d in 2..15 px the score at y is (P(y+d) - P(y)) * dip, with
   dip = min(mean I[y-6:y], mean I[y+d:y+d+6]) - mean I[y:y+d] (only dip > 0 counts).
   The best (y, d) gives the joint gap; joint row = y + d/2.
4. Width: k = max(3, round(0.02 * H512)). Row-mean profile Q(x) over the band for rows
   [y+d+1, y+d+1+k) (tibial plateau) and [y-1-2k, y-1) (femoral condyles), 5-tap box smoothed.
   Peak = argmax Q in the central 50% of the band; soft level = 5th percentile of Q over
   columns with Q > tb; threshold = soft + 0.3 * (peak - soft); the run of columns above the
   threshold that contains the peak is the bone. Knee width W = mean(tibial, femoral) widths
   (tibial alone if the femoral width is off by > 25%), then clipped to [0.7, 0.9] x the leg band
   width (guards against gross misses); knee centre x = middle of the tibial run.
5. Crop: resize the ORIGINAL grayscale image by f = 160 / W_orig (cv2.INTER_AREA when f < 1,
   cv2.INTER_LINEAR otherwise), take a 256 x 256 square centred on (centre x, joint row)
   (zero padding outside the image), then percentile-normalise: (x - p1) / (p99 - p1) clipped
   to [0, 1], with p1/p99 over the whole 256 x 256 crop (np.percentile, linear).
   One crop per detected knee; a patient's prediction is the mean over knees.
"""

from __future__ import annotations

import dataclasses

import cv2
import numpy as np

PARAMS = {
    "version": "knee_roi/1",
    "work_long_side": 512,
    "blur_sigma": 3.0,
    "leg_occupancy": 0.5,
    "leg_min_frac": 0.08,
    "bilateral_split_frac": 0.55,
    "gap_d_range": [2, 15],
    "width_threshold_frac": 0.3,
    "width_band_clip": [0.7, 0.9],
    "target_width_px": 160,
    "crop_px": 256,
    "norm_percentiles": [1.0, 99.0],
}


@dataclasses.dataclass
class Knee:
    cx: float  # original pixel coords
    cy: float  # joint line row
    width: float  # bone width at the joint (original px)
    score: float
    tib_width: float
    fem_width: float


def _otsu(v: np.ndarray) -> float:
    v8 = np.clip(v * 255, 0, 255).astype(np.uint8).reshape(-1, 1)
    t, _ = cv2.threshold(v8, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    return float(t) / 255.0


def _legs(b: np.ndarray, tb: float) -> list[tuple[int, int]]:
    H, W = b.shape
    r0, r1 = int(0.2 * H), int(0.8 * H)
    occ = (b[r0:r1] > tb).mean(0)
    occ = np.convolve(occ, np.ones(9) / 9, "same")
    on = occ > PARAMS["leg_occupancy"]
    runs, i = [], 0
    while i < W:
        if on[i]:
            j = i
            while j < W and on[j]:
                j += 1
            if j - i > PARAMS["leg_min_frac"] * W:
                runs.append((i, j))
            i = j
        else:
            i += 1
    prof = b[r0:r1].mean(0)
    out = []
    for a, c in runs:
        if c - a > PARAMS["bilateral_split_frac"] * W:
            m, n = a + int(0.3 * (c - a)), a + int(0.7 * (c - a))
            v = m + int(np.argmin(prof[m:n]))
            out += [(a, v), (v, c)]
        else:
            out.append((a, c))
    return out


def _joint(b: np.ndarray, a: int, c: int, tb: float):
    H = b.shape[0]
    w = c - a
    band = b[:, a + int(0.2 * w) : c - int(0.2 * w)]
    intensity = band.mean(1)
    on = np.where(tb * 0.8 < intensity)[0]
    if len(on) < 20:
        return None
    lo, hi = int(on.min()), int(on.max())
    m = int(0.08 * (hi - lo))
    lo, hi = max(lo + m + 8, 6), min(hi - m - 8, H - 6)
    gy = cv2.Sobel(band, cv2.CV_32F, 0, 1, ksize=5)
    P = np.convolve(gy.mean(1), np.ones(3) / 3, "same")
    cs = np.concatenate([[0.0], np.cumsum(intensity)])

    def mean(y0, y1):
        return (cs[y1] - cs[y0]) / (y1 - y0)

    best = (-np.inf, 0, 0)
    d0, d1 = PARAMS["gap_d_range"]
    for d in range(d0, d1 + 1):
        for y in range(lo, hi - d - 6):
            dip = min(mean(y - 6, y), mean(y + d, y + d + 6)) - mean(y, y + d)
            if dip <= 0:
                continue
            s = (P[y + d] - P[y]) * dip
            if s > best[0]:
                best = (float(s), y, d)
    if not np.isfinite(best[0]):
        return None
    return best


def _width(b: np.ndarray, a: int, c: int, y0: int, y1: int, tb: float):
    y0, y1 = max(y0, 0), min(y1, b.shape[0])
    if y1 <= y0:
        return None
    Q = np.convolve(b[y0:y1, a:c].mean(0), np.ones(5) / 5, "same")
    body = tb < Q
    if body.sum() < 5:
        return None
    soft = np.percentile(Q[body], 5)
    w = c - a
    pk = int(0.25 * w) + int(np.argmax(Q[int(0.25 * w) : int(0.75 * w)]))
    t = soft + PARAMS["width_threshold_frac"] * (Q[pk] - soft)
    lft = pk
    while lft > 0 and Q[lft - 1] > t:
        lft -= 1
    rgt = pk
    while rgt < w - 1 and Q[rgt + 1] > t:
        rgt += 1
    return a + lft, a + rgt + 1


def detect_knees(gray: np.ndarray) -> list[Knee]:
    H0, W0 = gray.shape
    s = PARAMS["work_long_side"] / max(H0, W0)
    g = cv2.resize(gray, (round(W0 * s), round(H0 * s)), interpolation=cv2.INTER_AREA)
    b = cv2.GaussianBlur(g, (0, 0), PARAMS["blur_sigma"])
    H = b.shape[0]
    tb = _otsu(b)
    knees = []
    for a, c in _legs(b, tb):
        j = _joint(b, a, c, tb)
        if j is None:
            continue
        score, y, d = j
        k = max(3, round(0.02 * H))
        tib = _width(b, a, c, y + d + 1, y + d + 1 + k, tb)
        fem = _width(b, a, c, y - 1 - 2 * k, y - 1, tb)
        if tib is None:
            continue
        tw = tib[1] - tib[0]
        fw = (fem[1] - fem[0]) if fem else 0
        width = (tw + fw) / 2 if fem and abs(fw - tw) <= 0.25 * tw else tw
        width = float(
            np.clip(
                width,
                PARAMS["width_band_clip"][0] * (c - a),
                PARAMS["width_band_clip"][1] * (c - a),
            )
        )
        knees.append(
            Knee(
                cx=(tib[0] + tib[1]) / 2 / s,
                cy=(y + d / 2) / s,
                width=width / s,
                score=score,
                tib_width=tw / s,
                fem_width=fw / s,
            )
        )
    return knees


def crop_knee(
    gray: np.ndarray,
    knee: Knee,
    target_width: int | None = None,
    crop: int | None = None,
    normalise: bool = True,
) -> np.ndarray:
    tw = target_width or PARAMS["target_width_px"]
    cp = crop or PARAMS["crop_px"]
    f = tw / knee.width
    H0, W0 = gray.shape
    interp = cv2.INTER_AREA if f < 1 else cv2.INTER_LINEAR
    r = cv2.resize(gray, (max(1, round(W0 * f)), max(1, round(H0 * f))), interpolation=interp)
    cx, cy = round(knee.cx * f), round(knee.cy * f)
    x0, y0 = cx - cp // 2, cy - cp // 2
    out = np.zeros((cp, cp), np.float32)
    sx0, sy0 = max(x0, 0), max(y0, 0)
    sx1, sy1 = min(x0 + cp, r.shape[1]), min(y0 + cp, r.shape[0])
    if sx1 > sx0 and sy1 > sy0:
        out[sy0 - y0 : sy1 - y0, sx0 - x0 : sx1 - x0] = r[sy0:sy1, sx0:sx1]
    if normalise:
        out = percentile_normalise(out)
    return out


def percentile_normalise(x: np.ndarray) -> np.ndarray:
    lo, hi = np.percentile(x, PARAMS["norm_percentiles"])
    return np.clip((x - lo) / max(hi - lo, 1e-6), 0, 1).astype(np.float32)
