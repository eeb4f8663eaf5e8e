"""Femoral cortical thickness index (CTI) on an AP hip or pelvis radiograph.

Tap 1 marks the lesser trochanter (its tip), tap 2 a point on the femoral shaft's axis
further down. The shaft is first found just above tap 2 (profiles perpendicular to the
tapped direction give its centre and its axis); the measuring level lies 10 cm below the
lesser trochanter along that axis (tap 1 projected onto it), so millimetres are needed.
Around the level, profiles perpendicular to the axis (each the mean of parallel profiles
over a short band) give the periosteal edges (outer diameter D) and the endosteal edges
(medullary canal diameter M) to a fraction of a pixel by fitting a blurred elliptical tube
(:mod:`edgeosteo.methods.tube`); the axis is refitted through the shaft's centre and the
profiles taken again. CTI = (D - M) / D from the medians over the profiles.
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
from edgeosteo.methods import edges, tube
from edgeosteo.methods.base import MeasureImage, MeasurementMethod, MethodCard

LEVEL_MM = 100.0  # below the lesser trochanter, along the shaft's axis
SEGMENT_MM = 10.0  # profiles from LEVEL_MM - SEGMENT_MM to LEVEL_MM + SEGMENT_MM
N_PROFILES = 9
BAND_MM = 1.0  # each profile is the mean of BAND_SAMPLES parallel ones over +-BAND_MM
BAND_SAMPLES = 7
HALF_MM = 40.0  # profile half-length across the shaft
SEEK_MM = 16.0  # the shaft is first found over this length above tap 2
WIDTH_MM = (10.0, 60.0)  # outer diameters the edge search accepts
FEMUR_MM = (18.0, 50.0)  # a femoral shaft's outer diameter at the level
MIN_TAP_MM = 30.0
MAX_TAP1_OFFSET = 1.5  # tap 1 at most this many shaft diameters from the axis
PLAUSIBLE = (0.15, 0.90)
STEP = 0.5  # profile sample spacing (pixels)
SMOOTH_PX = 1.5


def _symmetric_finite(offsets: np.ndarray, values: np.ndarray):
    """The profile trimmed symmetrically to where it is inside the image (its centre, the
    axis, stays in the middle)."""
    finite = np.isfinite(values)
    if finite.all():
        return offsets, values
    c = len(values) // 2
    if not finite[c]:
        return None
    bad = np.nonzero(~finite)[0]
    left = bad[bad < c]
    right = bad[bad > c]
    k = min(
        c - (left.max() if len(left) else -1) - 1,
        (right.min() if len(right) else len(values)) - c - 1,
    )
    return offsets[c - k : c + k + 1], values[c - k : c + k + 1]


class FemoralCorticalThicknessIndex(MeasurementMethod):
    id = "cti"
    version = "1.0.0"

    def measure(
        self, image: MeasureImage, request: MeasurementRequest, card: MethodCard
    ) -> Measurement:
        self.require_taps(image, request, 2, 2)
        mm = self.require_scale(image, card)
        if mm is None:  # a card that does not need a scale: this method still does
            raise MeasurementError("measurement.no_scale", "the level is 10 cm: mm needed")
        labels = list(card.taps.get("labels") or ["lesser trochanter", "femoral shaft"])
        checks_failed = tuple(
            PointCheck(labels[i] if i < len(labels) else f"tap {i + 1}", p, None, False)
            for i, p in enumerate(request.points)
        )
        a = np.asarray(request.points[0], dtype=np.float64)
        b = np.asarray(request.points[1], dtype=np.float64)
        length_mm = float(np.hypot(*(b - a))) * mm
        if length_mm < MIN_TAP_MM:
            raise MeasurementError("measurement.points_too_close", f"{length_mm:.0f} mm apart")
        self._mm = mm
        d = edges.unit(b - a)
        # 1. the shaft just above tap 2: its centre line and direction
        seek = SEEK_MM / mm
        rows, values = self._profiles(image.pixels, b - d * seek, b, d)
        if len(rows) < 0.6 * N_PROFILES:
            self._why_not(values, checks_failed)
        point, d = self._axis(rows, d)
        # 2. the level, 10 cm below tap 1 along the axis, refined through the shaft's centre
        rows = []
        for _ in range(4):
            start, end, level = self._segment(a, point, d)
            if not (image.inside(start) and image.inside(end)):
                raise MeasurementError(
                    "measurement.level_outside_image",
                    f"{LEVEL_MM / 10:.0f} cm below tap 1 is outside the image",
                    checks_failed,
                )
            rows, values = self._profiles(image.pixels, start, end, d)
            if len(rows) < 0.6 * N_PROFILES:
                self._why_not(values, checks_failed)
            new_point, new_d = self._axis(rows, d)
            shift = abs(float((new_point - level) @ edges.normal(new_d)))
            point, d = new_point, new_d
            if shift < 0.2:
                break
        start, end, level = self._segment(a, point, d)
        if not (image.inside(start) and image.inside(end)):
            raise MeasurementError("measurement.level_outside_image", "after refit", checks_failed)
        rows, values = self._profiles(image.pixels, start, end, d)
        if len(rows) < 0.6 * N_PROFILES:
            raise MeasurementError("measurement.edge_not_found", "at the level after refit")
        w, m, spread = tube.widths([e for _, e in rows])
        outer_mm, medulla_mm = w * mm, m * mm
        if not FEMUR_MM[0] <= outer_mm <= FEMUR_MM[1]:
            raise MeasurementError(
                "measurement.wrong_bone",
                f"a shaft {outer_mm:.0f} mm wide is not a femur's",
                checks_failed,
            )
        across = edges.normal(d)
        tap1_offset_mm = abs(float((a - level) @ across)) * mm
        if tap1_offset_mm > MAX_TAP1_OFFSET * outer_mm:
            raise MeasurementError(
                "measurement.wrong_bone",
                f"tap 1 is {tap1_offset_mm:.0f} mm from the femoral shaft's axis",
                checks_failed,
            )
        value = (w - m) / w
        if not PLAUSIBLE[0] <= value <= PLAUSIBLE[1]:
            raise MeasurementError("measurement.implausible", f"CTI {value:.3f}")
        band_name, cutoff = card.band_for(round(value, 3))
        top = point + d * float((a - point) @ d)  # tap 1 projected onto the axis
        b_used = point + d * float((b - point) @ d)

        def line(k: int, label: str) -> OverlayShape:
            pts = tuple((float(p[0]), float(p[1])) for p in (c + across * e[k] for c, e in rows))
            return OverlayShape("polyline", pts, label, "edge")

        centre = float(np.median([(e[0] + e[1]) / 2 for _, e in rows]))
        c_level = level + across * centre
        left = c_level - across * w / 2
        right = c_level + across * w / 2
        checks = (
            PointCheck(labels[0], request.points[0], (float(a[0]), float(a[1])), True),
            PointCheck(labels[1], request.points[1], (float(b_used[0]), float(b_used[1])), True),
        )
        return Measurement(
            method=self.id,
            method_version=self.version,
            value=round(value, 4),
            unit="ratio",
            band=band_name,
            cutoff=cutoff,
            points_given=request.points,
            points_used=(
                (float(a[0]), float(a[1])),
                (float(b_used[0]), float(b_used[1])),
            ),
            point_checks=checks,
            overlay=(
                OverlayShape("line", ((top[0], top[1]), (end[0], end[1])), "axis", "axis"),
                OverlayShape(
                    "line", ((left[0], left[1]), (right[0], right[1])), "10 cm level", "measure"
                ),
                line(0, "periosteal"),
                line(1, "periosteal"),
                line(2, "endosteal"),
                line(3, "endosteal"),
            ),
            details={
                "outer_mm": round(outer_mm, 2),
                "medullary_mm": round(medulla_mm, 2),
                "outer_px": round(w, 2),
                "medullary_px": round(m, 2),
                "level_mm_below_trochanter": LEVEL_MM,
                "segment_mm": 2 * SEGMENT_MM,
                "profiles_used": len(rows),
                "profiles": N_PROFILES,
                "profile_sd": round(spread, 4),
                "tap1_offset_mm": round(tap1_offset_mm, 1),
            },
            scale_mm_per_px=image.mm_per_px,
            options=dict(request.options),
        )

    def _segment(self, a, point, d):
        """The measuring segment's ends and its centre, the level: tap 1 projected onto
        the axis (through ``point`` along ``d``), then LEVEL_MM further along it."""
        top = point + d * float((a - point) @ d)
        level = top + d * (LEVEL_MM / self._mm)
        half = SEGMENT_MM / self._mm
        return level - d * half, level + d * half, level

    def _profiles(self, pixels, start, end, d):
        """Profiles across start->end: [(centre, edges)] where a tube was found, and all
        the profiles' values."""
        mm = self._mm
        fractions = np.linspace(0.0, 1.0, N_PROFILES)
        centres, offsets, values = edges.perpendicular_profiles(
            pixels, start, end, fractions, HALF_MM / mm, STEP, BAND_MM / mm, BAND_SAMPLES
        )
        width_range = (WIDTH_MM[0] / mm / STEP, WIDTH_MM[1] / mm / STEP)
        rows = []
        for c, v in zip(centres, values, strict=True):
            trimmed = _symmetric_finite(offsets, v)
            if trimmed is None or len(trimmed[0]) < 0.5 * len(offsets):
                continue
            e = tube.edges_of(trimmed[1], trimmed[0], width_range, STEP, SMOOTH_PX, 0.12)
            if e is not None:
                rows.append((c, e))
        return rows, values

    @staticmethod
    def _axis(rows, d):
        """The shaft's axis through the profiles' centres: a point on it and its
        direction (pointing the way ``d`` does)."""
        across = edges.normal(d)
        mids = np.array([c + across * (e[0] + e[1]) / 2 for c, e in rows])
        centre = mids.mean(axis=0)
        if len(mids) >= 3:
            _, _, vt = np.linalg.svd(mids - centre)
            new_d = vt[0] if vt[0] @ d > 0 else -vt[0]
            # a few profiles over a short segment: trust the direction only near the tap's
            if float(new_d @ d) < np.cos(np.deg2rad(20)):
                new_d = d
        else:
            new_d = d
        return centre, edges.unit(new_d)

    def _why_not(self, values, checks) -> None:
        """No shaft found across the profiles: taps on soft tissue or background
        (``not_bone``: the profiles' centres are no brighter than both their sides), or a
        bone whose edges cannot be read (``edge_not_found``)."""
        n = values.shape[1]
        c = n // 2
        core = max(1, int(8.0 / self._mm / STEP))
        flank = (int(25.0 / self._mm / STEP), int(HALF_MM / self._mm / STEP))
        centre = np.nanmean(values[:, c - core : c + core + 1])
        left = np.nanmean(values[:, max(0, c - flank[1]) : max(1, c - flank[0])])
        right = np.nanmean(values[:, c + flank[0] : c + flank[1] + 1])
        sides = [s for s in (left, right) if np.isfinite(s)]
        if not np.isfinite(centre) or not sides or centre <= max(sides) + 0.01:
            raise MeasurementError("measurement.not_bone", "no bone across the axis", checks)
        raise MeasurementError("measurement.edge_not_found", "no cortical tube found", checks)
