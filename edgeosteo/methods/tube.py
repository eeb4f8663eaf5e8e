"""A cortical tube across one profile: periosteal and endosteal edges to a fraction of a pixel.

A long bone's shaft seen side-on is a projected elliptical tube: the profile across it rises
at the periosteal edge, falls at the endosteal edge into the medullary canal, rises out of
it and falls at the far periosteal edge. :func:`edges_of` finds that pattern among the
gradient extrema of a profile and refines the four edges by fitting a blurred tube
(:func:`fit_tube`); :func:`why_not` says why a set of profiles held no tube. Shared by the
cortical indices (metacarpal, femur).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from edgeosteo.measurement import MeasurementError, PointCheck
from edgeosteo.methods import edges

MAX_PROFILE_SD = 0.08  # of the index, between the profiles of one measurement

Edges = tuple[float, float, float, float]  # periosteal left, right; endosteal left, right


def edges_of(
    values: np.ndarray,
    offsets: np.ndarray,
    width_range: tuple[float, float],
    step: float,
    sigma_px: float = 1.2,
    plateau_margin: float = 0.0,
) -> Edges | None:
    """Periosteal (left rising, right falling) and endosteal edges of one profile, in
    pixels along it, or None. ``width_range`` bounds the outer width in samples. The
    periosteal pair is the strongest pair that brackets the profile's centre and holds bone
    (never soft tissue) between its edges, checked from ``plateau_margin`` of the width
    (at least 2.5 smoothing sigmas) inside them."""
    sigma = sigma_px / step
    sm = edges.smooth(values, sigma)
    if not np.isfinite(sm).all():
        return None
    rise, rise_g = edges.gradient_extrema(values, sigma, 1)
    fall, fall_g = edges.gradient_extrema(values, sigma, -1)
    if len(rise) == 0 or len(fall) == 0:
        return None
    top = max(float(rise_g[0]), float(fall_g[0]))
    keep_r = rise_g > 0.15 * top
    keep_f = fall_g > 0.15 * top
    all_rise, all_rise_g, all_fall, all_fall_g = rise, rise_g, fall, fall_g
    rise, rise_g, fall, fall_g = rise[keep_r], rise_g[keep_r], fall[keep_f], fall_g[keep_f]
    centre = len(values) // 2
    best, best_score = None, -1.0
    wmin, wmax = width_range
    for r, gr in zip(rise, rise_g, strict=True):
        if r >= centre:
            continue
        for f, gf in zip(fall, fall_g, strict=True):
            if f <= centre or not wmin <= f - r <= wmax:
                continue
            margin = max(2.5 * sigma, plateau_margin * (f - r))
            lo, hi = int(r + margin), int(f - margin)
            if hi <= lo:
                continue
            outside = 0.5 * (sm[max(0, int(r - margin))] + sm[min(len(sm) - 1, int(f + margin))])
            step_height = sm[lo:hi].max() - outside
            if step_height <= 0 or sm[lo:hi].min() < outside + 0.3 * step_height:
                continue
            score = min(gr, gf)
            if score > best_score:
                best, best_score = (r, f), score
    if best is None:
        return None
    r, f = best
    mid = (r + f) / 2
    inner_f = [(p, g) for p, g in zip(all_fall, all_fall_g, strict=True) if r + 2 < p < mid]
    inner_r = [(p, g) for p, g in zip(all_rise, all_rise_g, strict=True) if mid < p < f - 2]
    if not inner_f or not inner_r:
        return None
    el = max(inner_f, key=lambda t: t[1])
    er = max(inner_r, key=lambda t: t[1])
    # the endosteal step must stand out of the profile's noise
    residual = float(np.std(values - sm))
    if min(el[1], er[1]) * 2 * sigma < 3 * residual / np.sqrt(2 * sigma):
        return None
    # an edge this blurred against the cortex is not resolved
    periosteal_step = sm[int((r + el[0]) / 2)] - sm[max(0, int(r - 4 * sigma))]
    blur = periosteal_step / (np.sqrt(2 * np.pi) * best_score) if best_score > 0 else np.inf
    cortex = min(el[0] - r, f - er[0])
    if blur > 0.8 * cortex:
        return None

    def at(i: float) -> float:
        return float(np.interp(i, np.arange(len(offsets)), offsets))

    start = (at(r), at(f), at(el[0]), at(er[0]))
    return fit_tube(offsets, values, start, blur * step, step)


def tube_model(t: np.ndarray, params: np.ndarray, step: float) -> np.ndarray:
    """Columns of the blurred projected tube (cortex, medulla) and a linear background."""
    c, hw, hm, sigma = params
    u = np.abs(t - c)
    outer = np.sqrt(np.clip(hw * hw - u * u, 0, None))
    inner = np.sqrt(np.clip(hm * hm - u * u, 0, None))
    k = max(1, int(np.ceil(3 * abs(sigma) / step)))
    x = np.arange(-k, k + 1) * step
    kernel = np.exp(-0.5 * (x / max(abs(sigma), 0.05)) ** 2)
    kernel /= kernel.sum()

    def blur(v: np.ndarray) -> np.ndarray:
        return np.convolve(np.pad(v, k, mode="edge"), kernel, mode="valid")

    return np.column_stack([blur(outer - inner), blur(inner), np.ones_like(t), t - c])


def fit_tube(
    offsets: np.ndarray, values: np.ndarray, start: Sequence[float], sigma0: float, step: float
) -> Edges | None:
    """The periosteal and endosteal edges refined by fitting a blurred elliptical tube
    (Levenberg-Marquardt over centre, half-widths and blur; amplitudes and background by
    linear least squares): the gradient maxima of a blurred tube sit inside its true edges."""
    left, right, el, er = start
    width = right - left
    keep = (offsets > left - 0.35 * width) & (offsets < right + 0.35 * width)
    t, y = offsets[keep], values[keep].astype(np.float64)
    p = np.array([(left + right) / 2, width / 2, max((er - el) / 2, 0.5), max(sigma0, 0.5)])

    def residual(q: np.ndarray) -> np.ndarray:
        basis = tube_model(t, q, step)
        coef, *_ = np.linalg.lstsq(basis, y, rcond=None)
        return basis @ coef - y

    lam = 1e-2
    res = residual(p)
    cost = float(res @ res)
    for _ in range(40):
        jac = np.empty((len(t), 4))
        for i in range(4):
            dq = np.zeros(4)
            dq[i] = 1e-3 * max(1.0, abs(p[i]))
            jac[:, i] = (residual(p + dq) - res) / dq[i]
        jtj = jac.T @ jac
        step_ = np.linalg.solve(jtj + lam * np.diag(np.diag(jtj) + 1e-12), -jac.T @ res)
        trial = p + step_
        trial[2] = min(max(trial[2], 0.25), trial[1] - 0.5)
        trial_res = residual(trial)
        trial_cost = float(trial_res @ trial_res)
        if trial_cost < cost:
            p, res, cost, lam = trial, trial_res, trial_cost, lam / 3
            if np.max(np.abs(step_)) < 1e-3:
                break
        else:
            lam *= 4
            if lam > 1e6:
                break
    c, hw, hm, _ = p
    if not (0 < hm < hw) or abs(hw - width / 2) > 0.25 * width:
        return None
    return c - hw, c + hw, c - hm, c + hm


def widths(found: Sequence[tuple[float, float, float, float]]) -> tuple[float, float, float]:
    """Outer and medullary widths (medians over the profiles' edges, pixels) and the SD of
    the per-profile index; profiles that disagree this much do not show one tube's edges."""
    ed = np.array(found)
    outer = ed[:, 1] - ed[:, 0]
    medulla = ed[:, 3] - ed[:, 2]
    spread = float(np.std((outer - medulla) / outer))
    if spread > MAX_PROFILE_SD:
        raise MeasurementError("measurement.edge_not_found", f"profiles disagree ({spread:.2f})")
    return float(np.median(outer)), float(np.median(medulla)), spread


def why_not(
    values: np.ndarray, sigma_samples: float, checks: Sequence[PointCheck], where: str
) -> None:
    """No tube found across the profiles: taps on soft tissue or background
    (``not_bone``), or a bone whose edges cannot be read (``edge_not_found``). Always
    raises MeasurementError."""
    sm = np.array([edges.smooth(v, sigma_samples) for v in values])
    centre = sm[:, sm.shape[1] // 2]
    lo = np.nanpercentile(sm, 10, axis=1)
    hi = np.nanpercentile(sm, 90, axis=1)
    contrast = float(np.nanmedian(hi - lo))
    on_bone = np.nanmedian((centre - lo) / np.maximum(hi - lo, 1e-6))
    if contrast < 0.02 or on_bone < 0.5:
        raise MeasurementError("measurement.not_bone", "no bone across the axis", checks)
    raise MeasurementError("measurement.edge_not_found", where, checks)
