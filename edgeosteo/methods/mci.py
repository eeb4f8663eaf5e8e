"""Second metacarpal cortical index (MCI) on a hand PA radiograph.

Two taps mark the ends of the second metacarpal's shaft. Across the middle third of the
shaft, profiles perpendicular to the bone's axis (each the mean of parallel profiles over a
short segment) give the periosteal edges (outer width W) and the endosteal edges (medullary
width M) to a fraction of a pixel; the axis is refitted through the bone's centre and the
profiles taken again. MCI = (W - M) / W from the medians over the profiles. A ratio: no
millimetres are needed, so DICOM, raster files and photos of films are all read.
"""

from __future__ import annotations

import numpy as np

from edgeosteo.measurement import (
    Measurement,
    MeasurementError,
    MeasurementRequest,
    OverlayShape,
    PointCheck,
)
from edgeosteo.methods import edges
from edgeosteo.methods.base import MeasureImage, MeasurementMethod, MethodCard

FRACTIONS = np.linspace(1 / 3, 2 / 3, 13)  # the middle third of the shaft
MIN_TAP_SEPARATION = 0.15  # of the image's short side
PLAUSIBLE = (0.15, 0.95)
STEP = 0.25  # profile sample spacing (pixels)


def _edges_of(values: np.ndarray, offsets: np.ndarray, length: float):
    """Periosteal (left rising, right falling) and endosteal edges of one profile, in
    pixels along it, or None. The periosteal pair is the strongest pair that brackets the
    axis and holds bone (never soft tissue) between its edges."""
    sigma = 1.2 / STEP
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
    wmin, wmax = 0.05 * length / STEP, 0.30 * length / STEP
    for r, gr in zip(rise, rise_g, strict=True):
        if r >= centre:
            continue
        for f, gf in zip(fall, fall_g, strict=True):
            if f <= centre or not wmin <= f - r <= wmax:
                continue
            margin = 2.5 * sigma
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
    return _fit_tube(offsets, values, start, blur * STEP)


def _tube_model(t: np.ndarray, params: np.ndarray) -> np.ndarray:
    """Columns of the blurred projected tube (cortex, medulla) and a linear background."""
    c, hw, hm, sigma = params
    u = np.abs(t - c)
    outer = np.sqrt(np.clip(hw * hw - u * u, 0, None))
    inner = np.sqrt(np.clip(hm * hm - u * u, 0, None))
    k = max(1, int(np.ceil(3 * abs(sigma) / STEP)))
    x = np.arange(-k, k + 1) * STEP
    kernel = np.exp(-0.5 * (x / max(abs(sigma), 0.05)) ** 2)
    kernel /= kernel.sum()

    def blur(v: np.ndarray) -> np.ndarray:
        return np.convolve(np.pad(v, k, mode="edge"), kernel, mode="valid")

    return np.column_stack([blur(outer - inner), blur(inner), np.ones_like(t), t - c])


def _fit_tube(offsets, values, start, sigma0):
    """The periosteal and endosteal edges refined by fitting a blurred elliptical tube
    (Levenberg-Marquardt over centre, half-widths and blur; amplitudes and background by
    linear least squares): the gradient maxima of a blurred tube sit inside its true edges."""
    left, right, el, er = start
    width = right - left
    keep = (offsets > left - 0.35 * width) & (offsets < right + 0.35 * width)
    t, y = offsets[keep], values[keep].astype(np.float64)
    p = np.array([(left + right) / 2, width / 2, max((er - el) / 2, 0.5), max(sigma0, 0.5)])

    def residual(q: np.ndarray) -> np.ndarray:
        basis = _tube_model(t, q)
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
        step = np.linalg.solve(jtj + lam * np.diag(np.diag(jtj) + 1e-12), -jac.T @ res)
        trial = p + step
        trial[2] = min(max(trial[2], 0.25), trial[1] - 0.5)
        trial_res = residual(trial)
        trial_cost = float(trial_res @ trial_res)
        if trial_cost < cost:
            p, res, cost, lam = trial, trial_res, trial_cost, lam / 3
            if np.max(np.abs(step)) < 1e-3:
                break
        else:
            lam *= 4
            if lam > 1e6:
                break
    c, hw, hm, _ = p
    if not (0 < hm < hw) or abs(hw - width / 2) > 0.25 * width:
        return None
    return c - hw, c + hw, c - hm, c + hm


class MetacarpalCorticalIndex(MeasurementMethod):
    id = "mci"
    version = "1.0.0"

    def measure(
        self, image: MeasureImage, request: MeasurementRequest, card: MethodCard
    ) -> Measurement:
        self.require_taps(image, request, 2, 2)
        self.require_scale(image, card)
        labels = list(card.taps.get("labels") or ["shaft end 1", "shaft end 2"])
        a = np.asarray(request.points[0], dtype=np.float64)
        b = np.asarray(request.points[1], dtype=np.float64)
        length = float(np.hypot(*(b - a)))
        if length < MIN_TAP_SEPARATION * min(image.shape):
            raise MeasurementError("measurement.points_too_close", f"{length:.0f} px apart")
        pixels = image.pixels
        half = 0.35 * length
        band = 0.02 * length
        rows = None
        for _ in range(3):
            centres, offsets, values = edges.perpendicular_profiles(
                pixels, a, b, FRACTIONS, half, STEP, band, 5
            )
            found = [_edges_of(v, offsets, length) for v in values]
            rows = [(c, e) for c, e in zip(centres, found, strict=True) if e is not None]
            if len(rows) < 0.6 * len(FRACTIONS):
                self._why_not(pixels, a, b, length, values, labels, request)
            across = edges.normal(b - a)
            mids = np.array([c + across * (e[0] + e[1]) / 2 for c, e in rows])
            fracs = np.array([(c - a) @ (b - a) / length**2 for c, _ in rows])
            # refit the axis through the bone's centre; keep the taps' positions along it
            fit_x = np.polyfit(fracs, mids[:, 0], 1)
            fit_y = np.polyfit(fracs, mids[:, 1], 1)
            new_a = np.array([np.polyval(fit_x, 0.0), np.polyval(fit_y, 0.0)])
            new_b = np.array([np.polyval(fit_x, 1.0), np.polyval(fit_y, 1.0)])
            moved = max(np.hypot(*(new_a - a)), np.hypot(*(new_b - b)))
            a, b = new_a, new_b
            if moved < 0.2:
                break
        assert rows is not None
        centres, offsets, values = edges.perpendicular_profiles(
            pixels, a, b, FRACTIONS, half, STEP, band, 5
        )
        found = [_edges_of(v, offsets, length) for v in values]
        rows = [(c, e) for c, e in zip(centres, found, strict=True) if e is not None]
        if len(rows) < 0.6 * len(FRACTIONS):
            raise MeasurementError("measurement.edge_not_found", "middle third after refit")
        ed = np.array([e for _, e in rows])
        outer = ed[:, 1] - ed[:, 0]
        medulla = ed[:, 3] - ed[:, 2]
        w, m = float(np.median(outer)), float(np.median(medulla))
        per_profile = (outer - medulla) / outer
        spread = float(np.std(per_profile))
        if spread > 0.08:
            raise MeasurementError(
                "measurement.edge_not_found", f"profiles disagree ({spread:.2f})"
            )
        value = (w - m) / w
        if not PLAUSIBLE[0] <= value <= PLAUSIBLE[1]:
            raise MeasurementError("measurement.implausible", f"MCI {value:.3f}")
        band_name, cutoff = card.band_for(round(value, 3))
        across = edges.normal(b - a)

        def line(k: int, label: str) -> OverlayShape:
            pts = tuple((float(p[0]), float(p[1])) for p in (c + across * e[k] for c, e in rows))
            return OverlayShape("polyline", pts, label, "edge")

        checks = tuple(
            PointCheck(labels[i] if i < len(labels) else f"tap {i + 1}", given, used, True)
            for i, (given, used) in enumerate(
                zip(request.points, ((a[0], a[1]), (b[0], b[1])), strict=True)
            )
        )
        return Measurement(
            method=self.id,
            method_version=self.version,
            value=round(value, 4),
            unit="ratio",
            band=band_name,
            cutoff=cutoff,
            points_given=request.points,
            points_used=((float(a[0]), float(a[1])), (float(b[0]), float(b[1]))),
            point_checks=checks,
            overlay=(
                OverlayShape("line", ((a[0], a[1]), (b[0], b[1])), "axis", "axis"),
                line(0, "periosteal"),
                line(1, "periosteal"),
                line(2, "endosteal"),
                line(3, "endosteal"),
            ),
            details={
                "outer_width_px": round(w, 2),
                "medullary_width_px": round(m, 2),
                "profiles_used": len(rows),
                "profiles": len(FRACTIONS),
                "profile_sd": round(spread, 4),
            },
            scale_mm_per_px=image.mm_per_px,
            options=dict(request.options),
        )

    @staticmethod
    def _why_not(pixels, a, b, length, values, labels, request) -> None:
        """No bone found across the middle third: taps on soft tissue or background
        (``not_bone``), or a bone whose edges cannot be read (``edge_not_found``)."""
        sm = np.array([edges.smooth(v, 0.04 * length / STEP) for v in values])
        centre = sm[:, sm.shape[1] // 2]
        lo = np.nanpercentile(sm, 10, axis=1)
        hi = np.nanpercentile(sm, 90, axis=1)
        contrast = float(np.nanmedian(hi - lo))
        on_bone = np.nanmedian((centre - lo) / np.maximum(hi - lo, 1e-6))
        checks = tuple(
            PointCheck(labels[i] if i < len(labels) else f"tap {i + 1}", p, None, False)
            for i, p in enumerate(request.points)
        )
        if contrast < 0.02 or on_bone < 0.5:
            raise MeasurementError("measurement.not_bone", "no bone across the axis", checks)
        raise MeasurementError("measurement.edge_not_found", "middle third", checks)
