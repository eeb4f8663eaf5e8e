"""What the case page shows of a CT case (edgeosteo.web.ct serves its images and taps)."""

from __future__ import annotations

from dataclasses import dataclass

from flask_babel import lazy_gettext as _l

from edgeosteo.cases import ct_axial_box, ct_measurement
from edgeosteo.methods.ct_l1 import LEVELS
from edgeosteo.web import context

# what each check of the measurement looks at (its sentence is the catalogue's)
CHECK_LABELS = {
    "kvp_not_120": _l("Tube voltage"),
    "kvp_unknown": _l("Tube voltage"),
    "contrast": _l("Intravenous contrast"),
    "thick_slices": _l("Slice thickness"),
    "thickness_unknown": _l("Slice thickness"),
    "level_not_l1": _l("Vertebral level"),
    "air_drift": _l("Calibration: air outside the patient"),
    "fat_drift": _l("Calibration: subcutaneous fat"),
    "reference_not_found": _l("Calibration references"),
}
CHECK_UNITS = {"kvp_not_120": "kV", "thick_slices": "mm", "air_drift": "HU", "fat_drift": "HU"}


@dataclass(frozen=True)
class AxialView:
    """One measured slice as the page draws it: the cut-out around the body, and the
    outline and ROI (slice pixels, the SVG's own coordinates)."""

    index: int
    z_mm: float
    mean_hu: float
    sd_hu: float
    box: tuple[int, int, int, int]
    outline: str  # SVG points
    roi: str


@dataclass(frozen=True)
class CtView:
    """A CT case's part of the case page."""

    series: dict
    # the sagittal reformat in its own pixels: one column per image row, one row per slice
    sagittal_columns: int
    sagittal_rows: int
    measurement: dict | None
    axial: tuple[AxialView, ...]
    counted: bool  # the site's policy counts ct-l1 towards the recommendation
    level: str
    problem: str | None


def ct_view(record, problem: str | None = None, level: str | None = None) -> CtView | None:
    """The CT part of a case page; None for a case that is not a complete CT series."""
    series = (record.result.get("image") or {}).get("ct_series") or {}
    if series.get("status") != "complete":
        return None
    measurement = ct_measurement(record.result)
    shape = tuple(series.get("matrix") or (512, 512))
    axial = []
    if measurement is not None:
        shapes = {s.get("label"): s for s in measurement.get("overlay") or ()}
        for s in (measurement.get("details") or {}).get("slices") or ():
            k = int(s["index"])
            outline = shapes.get(f"slice {k} outline", {}).get("points") or []
            roi = shapes.get(f"slice {k} ROI", {}).get("points") or []
            axial.append(
                AxialView(
                    k,
                    float(s["z_mm"]),
                    float(s["mean_hu"]),
                    float(s["sd_hu"]),
                    ct_axial_box(measurement, (int(shape[0]), int(shape[1]))),
                    " ".join(f"{x:.1f},{y:.1f}" for x, y in outline),
                    " ".join(f"{x:.1f},{y:.1f}" for x, y in roi),
                )
            )
    chosen = level or ((measurement or {}).get("details") or {}).get("level") or "L1"
    policy = context().settings.policy
    return CtView(
        series=series,
        sagittal_columns=int(shape[0]),
        sagittal_rows=int(series.get("slices") or 0),
        measurement=measurement,
        axial=tuple(axial),
        counted="ct-l1" in policy.counted_measurements or policy.calibrated_rule == "ct-l1",
        level=chosen if chosen in LEVELS else "L1",
        problem=problem,
    )
