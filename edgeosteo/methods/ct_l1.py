"""Vertebral trabecular attenuation (HU) on an axial CT series, after Pickhardt et al.

The user taps the centre of the chosen vertebral body (L1 by default, T12 or L2) on the
sagittal reformat (:meth:`CtSeries.sagittal`; x = its column, an image row; y = its row, a
slice). On the tapped slice, rays from the tap find the body's cortical shell (the first
rise to half-way between the core and the shell's peak) and an ellipse is fitted to the
crossings (outliers dropped, refitted); the slices above and below are followed while a
shell is found and the core does not brighten (an endplate) or vanish (a disc). An
elliptical ROI is placed inside the outline, shifted to the front of the body so that it
keeps away from the cortex and from the basivertebral vein at the back, on the middle half
(at least 3) of the slices between the endplates. The mean and SD of the ROI voxels' HU is
the value. Checks qualify it: tube voltage, intravenous contrast, slice thickness, and air
and subcutaneous fat on the measured slices against their expected HU (a drifted scanner).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass

import cv2
import numpy as np

from edgeosteo.errors import RequestError
from edgeosteo.intake.ct_series import CtSeries
from edgeosteo.measurement import (
    Measurement,
    MeasurementError,
    MeasurementRequest,
    OverlayShape,
    PointCheck,
)
from edgeosteo.messages import text
from edgeosteo.methods.base import MeasureImage, MeasurementMethod, MethodCard

LEVELS = ("T12", "L1", "L2")
N_RAYS = 48
RAY_MM = (2.0, 40.0)
RAY_STEP_MM = 0.5
MIN_SHELL_RISE_HU = 200.0  # the shell's peak above the core along a ray
MIN_RAYS = 0.6  # of the rays must find the shell
SEMI_AXIS_MM = (8.0, 35.0)
SEED_INSIDE = 0.7  # the tap within this fraction of the outline's semi-axes of its centre
ENDPLATE_RISE_HU = 60.0  # a slice whose ROI mean is this far above the tapped one's: endplate
ROI_SCALE = (0.60, 0.55)  # of the outline's left-right and front-back semi-axes
ROI_FORWARD = 0.15  # of the front-back semi-axis: the ROI's shift towards the front
CORTEX_MARGIN_MM = 3.0
MIN_SLICES = 3
PLAUSIBLE_HU = (-100.0, 700.0)
KVP_REFERENCE = 120.0
MAX_THICKNESS_MM = 5.0
AIR_HU, AIR_TOLERANCE = -1000.0, 40.0
FAT_HU, FAT_TOLERANCE = -100.0, 35.0
CONTRAST_EFFECT = (
    "Pickhardt PJ et al. Osteoporos Int 2016;27(1):147-152: L1 trabecular attenuation on "
    "contrast-enhanced (portal venous) CT was +11.2 HU (SD 19.2; 95 % CI 8.2-14.2) above the "
    "unenhanced series of the same patients (157 adults), with a similar ROC area for DXA "
    "osteoporosis; the band is kept, and a value within about 11 HU above a threshold may be "
    "below it without contrast"
)


def parse_request(points: object) -> MeasurementRequest:
    """The CLI's, the API's or the page's ``{"level": "L1", "sagittal": [x, y]}`` (or
    ``{"points": [[x, y]], ...}``) as a request; RequestError for anything else."""
    if isinstance(points, (str, bytes)):
        try:
            points = json.loads(points)
        except ValueError as exc:
            raise RequestError("request.measurement_points_invalid", f"not JSON: {exc}") from None
    if not isinstance(points, Mapping):
        raise RequestError(
            "request.measurement_points_invalid", 'expected {"level": ..., "sagittal": [x, y]}'
        )
    tap = points.get("sagittal")
    if tap is None and isinstance(points.get("points"), list) and len(points["points"]) == 1:
        tap = points["points"][0]
    options = {"level": str(points.get("level") or "L1").upper()}
    if points.get("column") is not None:
        options["column"] = points["column"]
    base = MeasurementRequest.parse("ct-l1", {"points": [tap] if tap is not None else []})
    return MeasurementRequest("ct-l1", base.points, options)


@dataclass(frozen=True)
class _Outline:
    cx: float  # pixels (column, row)
    cy: float
    ax: float  # half-extent along columns and along rows, pixels
    ay: float
    rays_found: int


@dataclass(frozen=True)
class _SliceRoi:
    index: int
    outline: _Outline
    mask: np.ndarray
    mean: float
    sd: float
    n: int


def _bilinear(img: np.ndarray, xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
    h, w = img.shape
    x0 = np.clip(np.floor(xs).astype(int), 0, w - 2)
    y0 = np.clip(np.floor(ys).astype(int), 0, h - 2)
    fx = np.clip(xs - x0, 0, 1)
    fy = np.clip(ys - y0, 0, 1)
    a = img[y0, x0] * (1 - fx) + img[y0, x0 + 1] * fx
    b = img[y0 + 1, x0] * (1 - fx) + img[y0 + 1, x0 + 1] * fx
    out = a * (1 - fy) + b * fy
    outside = (xs < 0) | (ys < 0) | (xs > w - 1) | (ys > h - 1)
    out[outside] = np.nan
    return out


def _outline(slice_hu: np.ndarray, seed: tuple[float, float], mm: float) -> _Outline | None:
    """The body's shell around ``seed`` (column, row), or None where no shell surrounds it."""
    img = slice_hu.astype(np.float32)
    radii = np.arange(RAY_MM[0], RAY_MM[1], RAY_STEP_MM) / mm
    angles = np.linspace(0, 2 * np.pi, N_RAYS, endpoint=False)
    xs = seed[0] + np.cos(angles)[:, None] * radii[None, :]
    ys = seed[1] + np.sin(angles)[:, None] * radii[None, :]
    profiles = _bilinear(img, xs, ys)
    kernel = np.ones(3) / 3
    core = float(np.nanmedian(profiles[:, : max(2, int(4.0 / RAY_STEP_MM))]))
    crossings = []
    for ray, profile in enumerate(profiles):
        if np.isnan(profile).any():
            continue
        smooth = np.convolve(profile, kernel, mode="same")
        peak = float(smooth[1:-1].max())
        if peak - core < MIN_SHELL_RISE_HU:
            continue
        level = core + 0.5 * (peak - core)
        above = np.nonzero(smooth[1:-1] >= level)[0]
        i = int(above[0]) + 1
        # sub-sample crossing between i-1 and i
        lo, hi = smooth[i - 1], smooth[i]
        t = 0.0 if hi == lo else float(np.clip((level - lo) / (hi - lo), 0, 1))
        r = radii[i - 1] + t * (radii[i] - radii[i - 1])
        crossings.append((seed[0] + math.cos(angles[ray]) * r, seed[1] + math.sin(angles[ray]) * r))
    if len(crossings) < MIN_RAYS * N_RAYS:
        return None
    pts = np.asarray(crossings, dtype=np.float32)
    # a ray through the basivertebral foramen or past a thin wall runs on to the posterior
    # elements: far beyond the others
    r = np.hypot(pts[:, 0] - seed[0], pts[:, 1] - seed[1])
    pts = pts[r <= 1.4 * np.median(r)]
    if len(pts) < MIN_RAYS * N_RAYS:
        return None
    ellipse = cv2.fitEllipse(pts)
    for _ in range(2):  # drop the rays that ran past a gap into the canal or a rib
        (cx, cy), (w, h), angle = ellipse
        residual = _radial_residual(pts, (cx, cy), (w / 2, h / 2), angle)
        keep = np.abs(residual) < 0.15
        if keep.sum() < MIN_RAYS * N_RAYS or keep.all():
            break
        pts = pts[keep]
        ellipse = cv2.fitEllipse(pts)
    (cx, cy), (w, h), angle = ellipse
    theta = np.linspace(0, 2 * np.pi, 90, endpoint=False)
    c, s = math.cos(math.radians(angle)), math.sin(math.radians(angle))
    ex = cx + (w / 2) * np.cos(theta) * c - (h / 2) * np.sin(theta) * s
    ey = cy + (w / 2) * np.cos(theta) * s + (h / 2) * np.sin(theta) * c
    ext_x, ext_y = float(np.ptp(ex)) / 2, float(np.ptp(ey)) / 2
    for semi in (ext_x * mm, ext_y * mm):
        if not SEMI_AXIS_MM[0] <= semi <= SEMI_AXIS_MM[1]:
            return None
    if ((seed[0] - cx) / ext_x) ** 2 + ((seed[1] - cy) / ext_y) ** 2 > SEED_INSIDE**2:
        return None  # the tap is not inside what was found
    return _Outline(float(cx), float(cy), float(ext_x), float(ext_y), len(pts))


def _radial_residual(pts, centre, semi, angle_deg):
    theta = math.radians(angle_deg)
    dx, dy = pts[:, 0] - centre[0], pts[:, 1] - centre[1]
    u = dx * math.cos(theta) + dy * math.sin(theta)
    v = -dx * math.sin(theta) + dy * math.cos(theta)
    return np.sqrt((u / semi[0]) ** 2 + (v / semi[1]) ** 2) - 1.0


class CtL1Attenuation(MeasurementMethod):
    id = "ct-l1"
    version = "1.0.0"

    def measure(
        self, image: MeasureImage, request: MeasurementRequest, card: MethodCard
    ) -> Measurement:
        raise MeasurementError("measurement.ct_needs_series")

    def measure_series(
        self, series: CtSeries, request: MeasurementRequest, card: MethodCard
    ) -> Measurement:
        level = str(request.options.get("level") or "L1").upper()
        if level not in LEVELS:
            raise MeasurementError("measurement.ct_level_unknown", level)
        if len(request.points) != 1:
            raise MeasurementError("measurement.ct_tap_missing", f"{len(request.points)} taps")
        n, rows, cols = series.shape
        tap = request.points[0]
        if not (0 <= tap[0] <= rows - 1 and 0 <= tap[1] <= n - 1):
            raise MeasurementError("measurement.ct_tap_outside", f"{tap} on {n}x{rows}")
        column = request.options.get("column")
        column = series.spine_column() if column is None else int(column)  # type: ignore[arg-type]
        if not 0 <= column < cols:
            raise MeasurementError("measurement.ct_tap_outside", f"column {column}")
        mm = float(np.sqrt(series.pixel_spacing_mm[0] * series.pixel_spacing_mm[1]))
        posterior = 1.0 if (series.orientation[4] if series.orientation else 1.0) >= 0 else -1.0
        k0 = round(tap[1])
        label = f"{level} body centre"
        failed = (PointCheck(label, tap, None, False, "measurement.ct_body_not_found"),)
        first = self._slice(series, k0, (float(column), float(tap[0])), mm, posterior)
        if first is None:
            raise MeasurementError(
                "measurement.ct_body_not_found", f"no shell round the tap on slice {k0}", failed
            )
        core = first.mean
        body = {k0: first}
        for step in (-1, 1):
            k, seed = k0 + step, (first.outline.cx, first.outline.cy)
            while 0 <= k < n:
                roi = self._slice(series, k, seed, mm, posterior)
                if roi is None or abs(roi.mean - core) > ENDPLATE_RISE_HU:
                    break
                body[k] = roi
                seed = (roi.outline.cx, roi.outline.cy)
                k += step
        top, bottom = min(body), max(body)
        length = bottom - top + 1
        if length < MIN_SLICES:
            raise MeasurementError(
                "measurement.ct_too_few_slices",
                f"{length} slice(s) of {series.slice_spacing_mm:g} mm between the endplates",
            )
        keep = max(MIN_SLICES, round(0.5 * length))
        start = top + (length - keep) // 2
        chosen = [body[k] for k in range(start, start + keep)]
        values = np.concatenate([series.hu[r.index][r.mask].astype(np.float64) for r in chosen])
        mean, sd = float(values.mean()), float(values.std(ddof=1))
        if not PLAUSIBLE_HU[0] <= mean <= PLAUSIBLE_HU[1]:
            raise MeasurementError("measurement.ct_implausible", f"{mean:.0f} HU", failed)
        band_name, cutoff = card.band_for(round(mean, 1))
        middle = chosen[len(chosen) // 2]
        checks = self._checks(series, middle.index, level, mm)
        o = middle.outline
        roi_c, roi_ax, roi_ay = self._roi_geometry(o, mm, posterior)
        used = (float(o.cy), float(middle.index))
        area = math.pi * roi_ax * roi_ay * mm * mm
        overlay = []
        for r in chosen:
            c, rx, ry = self._roi_geometry(r.outline, mm, posterior)
            overlay.append(
                _ellipse_shape(
                    r.outline.cx,
                    r.outline.cy,
                    r.outline.ax,
                    r.outline.ay,
                    f"slice {r.index} outline",
                    "edge",
                )
            )
            overlay.append(_ellipse_shape(c[0], c[1], rx, ry, f"slice {r.index} ROI", "roi"))
        slices = [
            {
                "index": r.index,
                "z_mm": round(series.z_mm[r.index], 2),
                "mean_hu": round(r.mean, 1),
                "sd_hu": round(r.sd, 1),
                "voxels": r.n,
            }
            for r in chosen
        ]
        return Measurement(
            method=self.id,
            method_version=self.version,
            value=round(mean, 1),
            unit="HU",
            band=band_name,
            cutoff=cutoff,
            points_given=request.points,
            points_used=(used,),
            point_checks=(PointCheck(label, tap, used, True),),
            overlay=tuple(overlay),
            details={
                "level": level,
                "sd": round(sd, 1),
                "slices": slices,
                "checks": checks,
                "sagittal_column": column,
                "body_slices": [top, bottom],
                "body_height_mm": round(length * series.slice_spacing_mm, 1),
                "roi": {
                    "centre_px": [round(roi_c[0], 1), round(roi_c[1], 1)],
                    "semi_axes_mm": [round(roi_ax * mm, 1), round(roi_ay * mm, 1)],
                    "area_mm2": round(area, 0),
                    "voxels": int(values.size),
                },
                "outline_semi_axes_mm": [round(o.ax * mm, 1), round(o.ay * mm, 1)],
                "slice_spacing_mm": series.slice_spacing_mm,
                "pixel_spacing_mm": list(series.pixel_spacing_mm),
            },
            scale_mm_per_px=mm,
            options=dict(request.options),
        )

    @staticmethod
    def _roi_geometry(o: _Outline, mm: float, posterior: float):
        margin = CORTEX_MARGIN_MM / mm
        cy = o.cy - posterior * ROI_FORWARD * o.ay
        rx = min(ROI_SCALE[0] * o.ax, o.ax - margin)
        ry = min(ROI_SCALE[1] * o.ay, (1 - ROI_FORWARD) * o.ay - margin)
        return (o.cx, cy), max(rx, 1.0), max(ry, 1.0)

    def _slice(self, series, k, seed, mm, posterior) -> _SliceRoi | None:
        img = series.hu[k]
        outline = _outline(img, seed, mm)
        if outline is None:
            return None
        outline = _outline(img, (outline.cx, outline.cy), mm) or outline  # from its centre
        (cx, cy), rx, ry = self._roi_geometry(outline, mm, posterior)
        rows, cols = img.shape
        yy, xx = np.ogrid[:rows, :cols]
        mask = ((xx - cx) / rx) ** 2 + ((yy - cy) / ry) ** 2 <= 1.0
        values = img[mask].astype(np.float64)
        if values.size < 10:
            return None
        return _SliceRoi(k, outline, mask, float(values.mean()), float(values.std()), values.size)

    @staticmethod
    def _checks(series: CtSeries, k: int, level: str, mm: float) -> list[dict]:
        checks = []

        def add(code: str, ok: bool, value=None, detail: str | None = None) -> None:
            checks.append(
                {
                    "check": code.partition(".ct_")[2],
                    "status": "ok" if ok else "warn",
                    "code": code,
                    "value": value,
                    "detail": detail,
                    "message_en": text("measurement.ct_check_ok" if ok else code, "en"),
                    "message_zh_CN": text("measurement.ct_check_ok" if ok else code, "zh_CN"),
                }
            )

        if series.kvp is None:
            add("measurement.ct_kvp_unknown", False)
        else:
            add("measurement.ct_kvp_not_120", abs(series.kvp - KVP_REFERENCE) < 0.5, series.kvp)
        add(
            "measurement.ct_contrast",
            series.contrast_agent is None,
            series.contrast_agent,
            CONTRAST_EFFECT if series.contrast_agent else None,
        )
        thickness = series.slice_thickness_mm
        if thickness is None:
            add("measurement.ct_thickness_unknown", False, series.slice_spacing_mm)
            thickness = series.slice_spacing_mm
        add("measurement.ct_thick_slices", thickness <= MAX_THICKNESS_MM + 1e-6, thickness)
        add("measurement.ct_level_not_l1", level == "L1", level)
        air, fat = reference_hu(series.hu[k], mm)
        if air is None or fat is None:
            add("measurement.ct_reference_not_found", False)
        if air is not None:
            add("measurement.ct_air_drift", abs(air - AIR_HU) <= AIR_TOLERANCE, round(air, 1))
        if fat is not None:
            add("measurement.ct_fat_drift", abs(fat - FAT_HU) <= FAT_TOLERANCE, round(fat, 1))
        return checks


def reference_hu(slice_hu: np.ndarray, mm: float) -> tuple[float | None, float | None]:
    """Air (the image's corners outside the patient and the table) and subcutaneous fat (the
    outer ring of the body, smoothed, where it is fat rather than skin or muscle)."""
    img = slice_hu.astype(np.float32)
    box = max(3, round(12.0 / mm))
    corners = [
        img[:box, :box],
        img[:box, -box:],
        img[-box:, :box],
        img[-box:, -box:],
    ]
    air_boxes = [c for c in corners if np.median(c) < -800]
    air = float(np.mean([c.mean() for c in air_boxes])) if air_boxes else None
    body = (img > -500).astype(np.uint8)
    count, labels, stats, _ = cv2.connectedComponentsWithStats(body, connectivity=4)
    if count < 2:
        return air, None
    largest = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
    mask = (labels == largest).astype(np.uint8)
    contours, _ = cv2.findContours(mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    filled = np.zeros_like(mask)
    cv2.drawContours(filled, contours, -1, 1, thickness=-1)
    outer = cv2.erode(filled, np.ones((3, 3), np.uint8), iterations=max(1, int(2.0 / mm)))
    inner = cv2.erode(filled, np.ones((3, 3), np.uint8), iterations=max(2, int(25.0 / mm)))
    ring = (outer > 0) & (inner == 0)
    k = max(1, round(3.0 / mm)) | 1  # about 3 mm: the noise down, the layer kept
    smooth = cv2.blur(img, (k, k))
    # fat against skin and muscle: the lower class of the ring's tissue (isodata split), so a
    # drifted scanner's fat is still found where it reads
    tissue = ring & (smooth > -500)
    values = smooth[tissue]
    if values.size < 50:
        return air, None
    split = -30.0
    for _ in range(20):
        low, high = values[values < split], values[values >= split]
        if not low.size or not high.size:
            break
        split = 0.5 * (float(low.mean()) + float(high.mean()))
    fat = (tissue & (smooth < split) & (smooth > split - 250)).astype(np.uint8)
    fat = cv2.erode(fat, np.ones((3, 3), np.uint8), iterations=1) > 0  # off skin and muscle
    if fat.sum() < 50:
        return air, None
    return air, float(np.median(smooth[fat]))


def _ellipse_shape(cx, cy, rx, ry, label, role) -> OverlayShape:
    t = np.linspace(0, 2 * np.pi, 33)
    pts = tuple((float(cx + rx * np.cos(a)), float(cy + ry * np.sin(a))) for a in t)
    return OverlayShape("polygon", pts, label, role)
