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
from edgeosteo.methods import edges, tube
from edgeosteo.methods.base import MeasureImage, MeasurementMethod, MethodCard

FRACTIONS = np.linspace(1 / 3, 2 / 3, 13)  # the middle third of the shaft
MIN_TAP_SEPARATION = 0.15  # of the image's short side
PLAUSIBLE = (0.15, 0.95)
SHAFT_WIDTH_OVER_LENGTH = (0.06, 0.25)
STEP = 0.25  # profile sample spacing (pixels)


def _edges_of(values: np.ndarray, offsets: np.ndarray, length: float):
    """Periosteal and endosteal edges of one profile (see :func:`tube.edges_of`), the
    outer width bounded by 5-30 % of the tapped shaft length."""
    width_range = (0.05 * length / STEP, 0.30 * length / STEP)
    return tube.edges_of(values, offsets, width_range, STEP)


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
            # one shaft's centre lies on a line; taps on two bones make it jump between them
            widths = np.array([e[1] - e[0] for _, e in rows])
            off_line = np.hypot(
                mids[:, 0] - np.polyval(fit_x, fracs), mids[:, 1] - np.polyval(fit_y, fracs)
            )
            if float(off_line.max()) > 0.35 * float(np.median(widths)):
                raise MeasurementError(
                    "measurement.wrong_bone",
                    f"the shaft's centre jumps {off_line.max():.0f} px: taps on two bones?",
                )
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
        w, m, spread = tube.widths([e for _, e in rows])
        # a metacarpal shaft is about a tenth of its length wide; far from that, the taps are
        # on another bone (a phalanx, the radius) or not at the ends of one shaft
        if not SHAFT_WIDTH_OVER_LENGTH[0] <= w / length <= SHAFT_WIDTH_OVER_LENGTH[1]:
            raise MeasurementError(
                "measurement.wrong_bone", f"width {w:.0f} px for a {length:.0f} px shaft"
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
        checks = tuple(
            PointCheck(labels[i] if i < len(labels) else f"tap {i + 1}", p, None, False)
            for i, p in enumerate(request.points)
        )
        tube.why_not(values, 0.04 * length / STEP, checks, "middle third")
