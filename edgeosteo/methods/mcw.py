"""Mandibular cortical width (MCW, mental index) on a dental panoramic radiograph.

Per side the user taps the centre of the mental foramen, then the lower border of the
mandible below it (two taps; four for both sides, right then left). The lower border is
found near the second tap on nine profiles along the tap-to-tap direction over 8 mm of the
border, and its local tangent fitted through those edges (a line, refitted once centred on
the foramen's foot point). The measuring line runs perpendicular to the tangent through the
foramen's centre. On that line, one profile (the mean of parallel profiles over +-1.5 mm of
the border) gives the two edges of the inferior cortex to a fraction of a pixel by
half-level crossings: the periosteal edge where the profile crosses halfway between the
soft tissue below and the cortical peak, the endosteal edge where it crosses halfway
between the cortical peak and the trabecular bone above (the endosteal transition is
gradual; its halfway point is the centre of the transition and is not moved by a
symmetric blur). MCW is the distance between them in millimetres at the bone (the pixel
spacing divided by the site's magnification for JAW); with both sides the value is their
mean and each side is in the details.
"""

from __future__ import annotations

import warnings

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

STEP = 0.25  # profile sample spacing (pixels)
MIN_SEPARATION_MM = 4.0  # foramen centre to border tap
SEARCH_MM = 1.5  # the border is looked for this far either side of the border tap
BORDER_SPAN_MM = 4.0  # tangent fitted over +- this along the border
BAND_MM = 1.5  # the measuring profile is the mean over +- this along the border
PLAUSIBLE_MM = (0.5, 10.0)
SOFT_LEVEL = 0.4  # of the image's 2-98 % range: soft tissue and air lie below it
OUTSIDE_LEVEL = 0.5  # below a border: soft tissue or air, never trabecular bone (~0.6+)
MAX_NOISE = 0.12  # pixel noise SD over the image's range beyond which no edge is read


def _px(mm: float, mm_per_px: float) -> float:
    return mm / mm_per_px


class _Side:
    """The tap pair of one side and what was found from it."""

    def __init__(self, foramen: np.ndarray, border: np.ndarray, labels: tuple[str, str]):
        self.foramen, self.border, self.labels = foramen, border, labels


def _image_levels(pixels: np.ndarray) -> tuple[float, float]:
    small = pixels[::4, ::4]
    lo, hi = np.nanpercentile(small, [2, 98])
    return float(lo), float(max(hi - lo, 1e-6))


def _pixel_noise(pixels: np.ndarray, centre: np.ndarray, radius: float) -> float:
    """Robust SD of the pixel noise near ``centre`` (from neighbour differences)."""
    h, w = pixels.shape
    r = max(4, int(radius))
    x0, x1 = max(0, int(centre[0]) - r), min(w, int(centre[0]) + r + 1)
    y0, y1 = max(0, int(centre[1]) - r), min(h, int(centre[1]) + r + 1)
    patch = np.asarray(pixels[y0:y1, x0:x1], dtype=np.float64)
    if patch.shape[0] < 3 or patch.shape[1] < 3:
        return 0.0
    diff = np.diff(patch, axis=1).ravel()
    # the mean absolute deviation, not the median: on a nearly photon-free image most
    # neighbours are equal and the median deviation is zero
    return float(np.sqrt(np.pi / 2) * np.mean(np.abs(diff - np.median(diff))) / np.sqrt(2))


def _rising_edge(values: np.ndarray, offsets: np.ndarray, window: float, sigma: float):
    """The strongest rising edge of a profile within +-``window`` pixels of its centre:
    (position in pixels, step height, max slope per pixel, level below it), or None."""
    pos, strength = edges.gradient_extrema(values, sigma, 1)
    at = np.interp(pos, np.arange(len(offsets)), offsets) if len(pos) else pos
    keep = np.abs(at) <= window
    if not keep.any():
        return None
    i = int(np.argmax(np.where(keep, strength, -np.inf)))
    sm = edges.smooth(values, sigma)
    centre = float(pos[i])
    reach = int(np.rint(4 * sigma))
    below = sm[max(0, int(centre) - 3 * reach) : max(1, int(centre) - reach)]
    above = sm[int(centre) + reach : int(centre) + 3 * reach]
    if len(below) == 0 or len(above) == 0:
        return None
    outside = float(np.nanmedian(below))
    return float(at[i]), float(np.nanmax(above) - outside), float(strength[i]), outside


class MandibularCorticalWidth(MeasurementMethod):
    id = "mcw"
    version = "1.0.0"

    def measure(
        self, image: MeasureImage, request: MeasurementRequest, card: MethodCard
    ) -> Measurement:
        self.require_taps(image, request, 2, 4)
        if len(request.points) == 3:
            raise MeasurementError("measurement.too_few_points", "3 given: 2 or 4 (both sides)")
        mm = self.require_scale(image, card)
        assert mm is not None
        labels = list(card.taps.get("labels") or [])
        while len(labels) < len(request.points):
            labels.append(f"tap {len(labels) + 1}")
        names = ("right", "left") if len(request.points) == 4 else ("side",)
        if len(names) == 1:  # one side: the card's labels without "(right)"
            labels = [label.split(" (")[0] for label in labels]
        lo, span = _image_levels(image.pixels)
        found, checks, overlay = [], [], []
        for k, name in enumerate(names):
            f = np.asarray(request.points[2 * k], dtype=np.float64)
            b = np.asarray(request.points[2 * k + 1], dtype=np.float64)
            pair = (labels[2 * k], labels[2 * k + 1])
            try:
                side = self._side(image.pixels, f, b, mm, lo, span)
            except MeasurementError as error:
                given = request.points
                bad = [
                    PointCheck(
                        labels[i], given[i], None, i // 2 < k, error.code if i // 2 == k else None
                    )
                    for i in range(len(given))
                ]
                raise MeasurementError(error.code, f"{name}: {error.detail}", bad) from None
            found.append((name, side))
            checks += [
                PointCheck(pair[0], request.points[2 * k], side["foramen"], True),
                PointCheck(pair[1], request.points[2 * k + 1], side["foot"], True),
            ]
            overlay += self._overlay(side, name)
        widths = [s["width_mm"] for _, s in found]
        value = round(float(np.mean(widths)), 3)
        band_name, cutoff = card.band_for(value)
        details: dict[str, object] = {
            "mm_per_px": round(mm, 5),
            "sides_measured": [n for n, _ in found],
            "edge_criterion": "half-level crossings (periosteal: soft tissue/cortical peak; "
            "endosteal: cortical peak/trabecular bone)",
        }
        for name, s in found:
            details[f"width_mm_{name}"] = round(s["width_mm"], 3)
            details[f"width_px_{name}"] = round(s["width_px"], 2)
            details[f"border_fit_rms_px_{name}"] = round(s["rms_px"], 2)
            details[f"endosteal_transition_mm_{name}"] = round(s["transition_mm"], 3)
        return Measurement(
            method=self.id,
            method_version=self.version,
            value=value,
            unit="mm",
            band=band_name,
            cutoff=cutoff,
            points_given=request.points,
            points_used=tuple(p for _, s in found for p in (s["foramen"], s["foot"])),
            point_checks=tuple(checks),
            overlay=tuple(overlay),
            details=details,
            scale_mm_per_px=mm,
            options=dict(request.options),
        )

    @staticmethod
    def _overlay(side: dict, name: str) -> list[OverlayShape]:
        return [
            OverlayShape("line", side["tangent"], f"lower border tangent ({name})", "axis"),
            OverlayShape("line", (side["foramen"], side["periosteal"]), f"MCW ({name})", "measure"),
            OverlayShape("point", (side["periosteal"],), f"periosteal edge ({name})", "edge"),
            OverlayShape("point", (side["endosteal"],), f"endosteal edge ({name})", "edge"),
            OverlayShape("point", (side["foramen"],), f"mental foramen ({name})", "point"),
        ]

    def _side(self, pixels, f, b, mm, lo, span) -> dict:
        sep_mm = float(np.hypot(*(f - b))) * mm
        if sep_mm < MIN_SEPARATION_MM:
            raise MeasurementError("measurement.points_too_close", f"{sep_mm:.1f} mm apart")
        noise = _pixel_noise(pixels, b, _px(2.0, mm))
        if noise > MAX_NOISE * span:
            raise MeasurementError("measurement.edge_not_found", f"noise {noise / span:.2f}")
        up = edges.unit(f - b)
        try:
            centre, up, rms = self._border(pixels, b, up, mm, lo, span)
        except MeasurementError as error:
            self._swapped(pixels, f, b, mm, lo, span, error)
        for _ in range(2):
            # the foot of the foramen on the tangent line; the border refitted there
            along = edges.normal(up)
            centre = centre + along * float((f - centre) @ along)
            centre, up, rms = self._border(pixels, centre, up, mm, lo, span)
            # the foot of the foramen on the tangent line
            along = edges.normal(up)
            centre = centre + along * float((f - centre) @ along)
        along = edges.normal(up)
        centre = centre + along * float((f - centre) @ along)
        dist_px = float((f - centre) @ up)
        return self._profile(pixels, f, centre, up, dist_px, mm, noise, span, rms)

    def _border(self, pixels, b, up, mm, lo, span):
        """The lower border near ``b``: a line fitted through its edge on nine profiles
        along ``up`` over +-BORDER_SPAN_MM; returns (point on it, unit normal into the
        bone, rms residual px)."""
        along = edges.normal(up)
        window = _px(SEARCH_MM, mm)
        sigma = _px(0.1, mm) / STEP
        points = []
        for s in np.linspace(-BORDER_SPAN_MM, BORDER_SPAN_MM, 9):
            c = b + along * _px(s, mm)
            with warnings.catch_warnings():  # off the image: NaN, and skipped below
                warnings.simplefilter("ignore", RuntimeWarning)
                offsets, values = edges.profile(
                    pixels, c, up, window + _px(2.5, mm), STEP, _px(0.4, mm), 5
                )
            if not np.isfinite(values).all():
                continue
            edge = _rising_edge(values, offsets, window, sigma)
            # a rise into bone from soft tissue or air (not from trabecular bone into cortex)
            if edge is None or edge[1] < 0.12 * span or (edge[3] - lo) / span >= OUTSIDE_LEVEL:
                continue
            points.append(c + up * edge[0])
        if len(points) < 5:
            self._why_not(pixels, b, mm, lo, span)
        pts = np.array(points)
        for _ in range(2):
            mean = pts.mean(axis=0)
            _, _, vt = np.linalg.svd(pts - mean)
            direction = vt[0]
            normal = edges.normal(direction)
            if normal @ up < 0:
                normal = -normal
            residual = (pts - mean) @ normal
            keep = np.abs(residual - np.median(residual)) <= max(_px(0.3, mm), 2.0)
            if keep.sum() < 5:
                raise MeasurementError("measurement.edge_not_found", "lower border not straight")
            pts = pts[keep]
        mean = pts.mean(axis=0)
        rms = float(np.sqrt(np.mean(((pts - mean) @ normal) ** 2)))
        if normal @ edges.unit(up) < np.cos(np.deg2rad(35)):
            raise MeasurementError("measurement.edge_not_found", "border far from square")
        return mean, normal, rms

    def _swapped(self, pixels, f, b, mm, lo, span, error: MeasurementError) -> None:
        """No border at the border tap, though it is on bone: if there is one at the
        foramen tap, looking the other way, the two taps were given in the wrong order
        (``points_out_of_order``); else the first refusal stands."""
        if error.code != "measurement.edge_not_found":  # the border tap on soft tissue or air
            raise error
        try:
            self._border(pixels, f, edges.unit(b - f), mm, lo, span)
        except MeasurementError:
            raise error from None
        raise MeasurementError("measurement.points_out_of_order", "border tapped first")

    def _why_not(self, pixels, b, mm, lo, span) -> None:
        """No lower border near the border tap: soft tissue or air there (``not_bone``),
        or a border whose edge cannot be read (``edge_not_found``)."""
        r = int(np.rint(_px(SEARCH_MM, mm)))
        h, w = pixels.shape
        x, y = int(np.rint(b[0])), int(np.rint(b[1]))
        patch = pixels[max(0, y - r) : min(h, y + r + 1), max(0, x - r) : min(w, x + r + 1)]
        level = (float(np.nanmax(_box_mean(patch))) - lo) / span if patch.size else 0.0
        if level < SOFT_LEVEL:
            raise MeasurementError("measurement.not_bone", f"level {level:.2f} at the border tap")
        raise MeasurementError("measurement.edge_not_found", "no lower border at the tap")

    def _profile(self, pixels, f, q, up, dist_px, mm, noise, span, rms) -> dict:
        along = edges.normal(up)
        band = _px(BAND_MM, mm)
        start, stop = -_px(3.0, mm), dist_px
        half = max(abs(start), stop)
        with warnings.catch_warnings():  # off the image: NaN, refused below
            warnings.simplefilter("ignore", RuntimeWarning)
            offsets, values = edges.profile(pixels, q, up, half, STEP, band, int(2 * band) | 1)
        keep = (offsets >= start) & (offsets <= stop)
        offsets, values = offsets[keep], values[keep]
        if not np.isfinite(values).all():
            raise MeasurementError("measurement.edge_not_found", "measuring line leaves image")
        per_mm = _px(1.0, mm) / STEP  # samples per mm
        sm = edges.smooth(values, 0.08 * per_mm)
        wide = edges.smooth(values, 0.3 * per_mm)
        # periosteal: the strongest rise within SEARCH_MM of the border line
        rise = _rising_edge(values, offsets, _px(SEARCH_MM, mm), 0.1 * per_mm)
        if rise is None:
            raise MeasurementError("measurement.edge_not_found", "no periosteal edge")
        o0 = int(np.argmin(np.abs(offsets - rise[0])))
        lim = int(len(offsets) - 1 - 1.2 * per_mm)  # short of the foramen's lower margin
        if lim <= o0 + 0.6 * per_mm:
            raise MeasurementError("measurement.points_too_close", "foramen on the border")
        seg = slice(o0, lim)
        grad = -np.gradient(wide)[seg]
        # the endosteal transition: the first strong fall above the cortical peak
        peak = o0 + int(np.argmax(wide[o0 : o0 + int(0.5 * (lim - o0)) + 1]))
        cand = [
            i
            for i in range(1, len(grad) - 1)
            if o0 + i > peak and grad[i] > 0 and grad[i] >= grad[i - 1] and grad[i] > grad[i + 1]
        ]
        if not cand:
            raise MeasurementError("measurement.edge_not_found", "no endosteal edge")
        top = max(grad[i] for i in cand)
        e0 = o0 + min(i for i in cand if grad[i] >= 0.5 * top)
        soft = float(np.median(sm[max(0, o0 - int(2.0 * per_mm)) : max(1, o0 - int(0.5 * per_mm))]))
        cortex = float(np.max(sm[o0 : e0 + 1]))
        ipk = o0 + int(np.argmax(sm[o0 : e0 + 1]))
        i_out = float(np.interp(rise[0], offsets, np.arange(len(offsets))))
        # the trabecular level is read beyond the transition: its width from the slope
        # at the halfway point, refined twice
        reach = 0.6 * per_mm
        i_end = None
        for _ in range(3):
            t_lo = int(e0 + reach)
            t_hi = min(lim, t_lo + int(2.0 * per_mm))
            if t_hi - t_lo < int(0.3 * per_mm):
                t_lo, t_hi = max(e0 + 1, lim - int(0.3 * per_mm)), lim
            if t_hi - t_lo < 2:
                raise MeasurementError("measurement.edge_not_found", "no trabecular bone above")
            trab = float(np.median(sm[t_lo:t_hi]))
            if cortex - soft < 0.12 * span or cortex - trab < 0.05 * span:
                raise MeasurementError("measurement.edge_not_found", "cortex not distinct")
            i_end = edges.level_crossing(sm, 0.5 * (cortex + trab), ipk, 1)
            if i_end is None:
                raise MeasurementError("measurement.edge_not_found", "no half-level crossing")
            j = int(i_end)
            slope_in = float(np.max(-np.gradient(wide)[max(0, j - 5) : j + 6])) * per_mm
            transition = (cortex - trab) / (np.sqrt(2 * np.pi) * slope_in) if slope_in > 0 else 1e9
            e0 = j
            reach = min(max(0.6, 2.5 * transition), 3.0) * per_mm
        # the edges must stand out of the profile's noise and not be blurred into each other
        profile_noise = noise / np.sqrt(2 * band + 1)
        if (cortex - trab) < 4 * profile_noise or (cortex - soft) < 4 * profile_noise:
            raise MeasurementError("measurement.edge_not_found", "edges within the noise")
        slope_out = float(np.max(np.gradient(sm)[max(0, o0 - 10) : o0 + 10])) * per_mm
        blur_mm = (cortex - soft) / (np.sqrt(2 * np.pi) * slope_out) if slope_out > 0 else 1e9
        width_px = (i_end - i_out) * STEP
        width_mm = width_px * mm
        if blur_mm > 0.5 * width_mm or transition > 0.8 * width_mm + 0.5:
            raise MeasurementError(
                "measurement.edge_not_found", f"edges blurred ({blur_mm:.2f} mm)"
            )
        if not PLAUSIBLE_MM[0] <= width_mm <= PLAUSIBLE_MM[1]:
            raise MeasurementError("measurement.implausible", f"MCW {width_mm:.2f} mm")

        def point(i: float) -> tuple[float, float]:
            p = q + up * float(np.interp(i, np.arange(len(offsets)), offsets))
            return (float(p[0]), float(p[1]))

        tangent_half = _px(BORDER_SPAN_MM, mm)
        return {
            "width_mm": float(width_mm),
            "width_px": float(width_px),
            "rms_px": rms,
            "transition_mm": float(transition),
            "foramen": (float(f[0]), float(f[1])),
            "foot": (float(q[0]), float(q[1])),
            "periosteal": point(i_out),
            "endosteal": point(i_end),
            "tangent": (
                tuple(map(float, q - along * tangent_half)),
                tuple(map(float, q + along * tangent_half)),
            ),
        }


def _box_mean(patch: np.ndarray) -> np.ndarray:
    """A 5 x 5 mean of ``patch`` (the local level the tap is on, not a single noisy pixel)."""
    import cv2

    return cv2.blur(np.asarray(patch, dtype=np.float32), (5, 5))
