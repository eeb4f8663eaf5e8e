"""What a measurement method found on one image: typed results the decision and the page read.

A measurement is made from the user's taps (image pixels, x = column, y = row, of the
radiograph as intake hands it on: after MONOCHROME1 inversion and, for a film photo, after
rectification). The method refines the taps to real edges and either returns a
``Measurement`` with every number traceable (the taps given, the points used, each point's
check, the geometry drawn, the cut-off applied and its source) or a ``MeasurementRefusal``
with a stable code. It never guesses a number.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from edgeosteo.errors import EdgeOsteoError, RequestError
from edgeosteo.messages import text

Point = tuple[float, float]  # (x, y) in radiograph pixels
ShapeKind = Literal["line", "polyline", "point", "polygon"]

MAX_POINTS = 200  # a full T4-L4 set is 13 x 6 = 78; more is not a reader's input


class MeasurementError(EdgeOsteoError):
    """A measurement that cannot be made from this image and these taps (``measurement.*``),
    with the check of each tap where the method got that far (the page marks the bad one)."""

    def __init__(
        self, code: str, detail: str | None = None, point_checks: Sequence[PointCheck] = ()
    ) -> None:
        super().__init__(code, detail)
        self.point_checks = tuple(point_checks)


def _point(value: object, where: str) -> Point:
    if (
        not isinstance(value, (list, tuple))
        or len(value) != 2
        or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)
        or not all(math.isfinite(float(v)) for v in value)
    ):
        raise RequestError("request.measurement_points_invalid", f"{where}: expected [x, y]")
    return (float(value[0]), float(value[1]))


@dataclass(frozen=True)
class MeasurementRequest:
    """One method to run, with the user's taps and the method's options (for example
    ``first_level`` for vertebrae, ``klemetti`` for the mandible)."""

    method: str
    points: tuple[Point, ...] = ()
    options: Mapping[str, object] = field(default_factory=dict)

    @classmethod
    def parse(cls, method: str, points: object = None) -> MeasurementRequest:
        """A request from the CLI's, the API's or the page's fields: ``points`` is a JSON
        text or its parsed form, either a list of ``[x, y]`` or an object with ``points``
        and the method's options. Raises RequestError for anything else."""
        if not isinstance(method, str) or not method.strip():
            raise RequestError("request.measurement_points_invalid", "no method named")
        if isinstance(points, (str, bytes)):
            try:
                points = json.loads(points) if points.strip() else None
            except ValueError as exc:
                raise RequestError(
                    "request.measurement_points_invalid", f"not JSON: {exc}"
                ) from None
        options: dict[str, object] = {}
        if isinstance(points, Mapping):
            options = {str(k): v for k, v in points.items() if k != "points"}
            for key, value in options.items():
                if not isinstance(value, (str, int, float, bool)) and value is not None:
                    raise RequestError(
                        "request.measurement_points_invalid", f"option {key}: not a plain value"
                    )
            points = points.get("points")
        if points is None:
            points = []
        if not isinstance(points, (list, tuple)):
            raise RequestError("request.measurement_points_invalid", "points must be a list")
        if len(points) > MAX_POINTS:
            raise RequestError(
                "request.measurement_points_invalid", f"more than {MAX_POINTS} points"
            )
        parsed = tuple(_point(p, f"point {i + 1}") for i, p in enumerate(points))
        return cls(method.strip().lower(), parsed, options)

    def to_dict(self) -> dict[str, object]:
        return {
            "method": self.method,
            "points": [list(p) for p in self.points],
            "options": dict(self.options),
        }


@dataclass(frozen=True)
class PointCheck:
    """One tap: where it was given, where the method placed it, and whether an edge was
    found there (``code`` says what was wrong when not)."""

    label: str
    given: Point | None
    used: Point | None
    ok: bool
    code: str | None = None

    def to_dict(self) -> dict[str, object]:
        return {
            "label": self.label,
            "given": list(self.given) if self.given else None,
            "used": list(self.used) if self.used else None,
            "ok": self.ok,
            "code": self.code,
        }


@dataclass(frozen=True)
class OverlayShape:
    """Geometry the page draws over the image (radiograph pixels)."""

    kind: ShapeKind
    points: tuple[Point, ...]
    label: str = ""
    role: str = "edge"  # edge | axis | measure | point | roi

    def to_dict(self) -> dict[str, object]:
        return {
            "kind": self.kind,
            "points": [[round(x, 2), round(y, 2)] for x, y in self.points],
            "label": self.label,
            "role": self.role,
        }


@dataclass(frozen=True)
class Cutoff:
    """The published cut-off that set the band, with its source."""

    band: str
    rule: str  # e.g. "MCI < 0.50"
    citation: str

    def to_dict(self) -> dict[str, object]:
        return {"band": self.band, "rule": self.rule, "citation": self.citation}


@dataclass(frozen=True)
class Measurement:
    """A measured index with everything needed to trace it."""

    method: str
    method_version: str
    value: float
    unit: str  # "ratio" (scale-free), "mm", "grade"
    band: str | None
    cutoff: Cutoff | None
    points_given: tuple[Point, ...]
    points_used: tuple[Point, ...]
    point_checks: tuple[PointCheck, ...] = ()
    overlay: tuple[OverlayShape, ...] = ()
    details: Mapping[str, Any] = field(default_factory=dict)
    scale_mm_per_px: float | None = None
    # the method's proposal for what to tap next (vertebrae: the next vertebra's six points)
    points_proposed: tuple[Point, ...] = ()
    options: Mapping[str, object] = field(default_factory=dict)

    status: Literal["measured"] = "measured"

    def to_dict(self) -> dict[str, object]:
        return {
            "status": self.status,
            "method": self.method,
            "method_version": self.method_version,
            "value": self.value,
            "unit": self.unit,
            "band": self.band,
            "cutoff": self.cutoff.to_dict() if self.cutoff else None,
            "points_given": [list(p) for p in self.points_given],
            "points_used": [[round(x, 2), round(y, 2)] for x, y in self.points_used],
            "points_proposed": [[round(x, 2), round(y, 2)] for x, y in self.points_proposed],
            "point_checks": [c.to_dict() for c in self.point_checks],
            "overlay": [s.to_dict() for s in self.overlay],
            "details": dict(self.details),
            # per-vertebra results (morphometry) at the top level too, as readers expect them
            **({"vertebrae": self.details["vertebrae"]} if "vertebrae" in self.details else {}),
            # a CT series' SD, slices and checks (ct-l1) at the top level too
            **{k: self.details[k] for k in ("sd", "slices", "checks") if k in self.details},
            "scale_mm_per_px": self.scale_mm_per_px,
            "options": dict(self.options),
        }


@dataclass(frozen=True)
class MeasurementRefusal:
    """A measurement that was asked for and not made, with the stable code and the advice
    (retake or re-tap) in both languages."""

    method: str
    code: str
    detail: str | None = None
    points_given: tuple[Point, ...] = ()
    point_checks: tuple[PointCheck, ...] = ()
    method_version: str | None = None
    options: Mapping[str, object] = field(default_factory=dict)

    status: Literal["refused"] = "refused"
    band: None = None

    def to_dict(self) -> dict[str, object]:
        return {
            "status": self.status,
            "method": self.method,
            "method_version": self.method_version,
            "code": self.code,
            "message_en": text(self.code, "en"),
            "message_zh_CN": text(self.code, "zh_CN"),
            "detail": self.detail,
            "points_given": [list(p) for p in self.points_given],
            "point_checks": [c.to_dict() for c in self.point_checks],
            "options": dict(self.options),
        }


MeasurementResult = Measurement | MeasurementRefusal


def _points(raw: object) -> tuple[Point, ...]:
    return tuple((float(p[0]), float(p[1])) for p in (raw or []))  # type: ignore[union-attr]


def _check(raw: Mapping[str, Any]) -> PointCheck:
    given, used = raw.get("given"), raw.get("used")
    return PointCheck(
        label=str(raw.get("label", "")),
        given=(float(given[0]), float(given[1])) if given else None,
        used=(float(used[0]), float(used[1])) if used else None,
        ok=bool(raw.get("ok")),
        code=raw.get("code"),
    )


def result_from_dict(raw: Mapping[str, Any]) -> MeasurementResult:
    """A stored measurement (its ``to_dict()`` form) read back, for reassess."""
    checks = tuple(_check(c) for c in raw.get("point_checks") or ())
    if raw.get("status") == "refused":
        return MeasurementRefusal(
            method=str(raw["method"]),
            code=str(raw["code"]),
            detail=raw.get("detail"),
            points_given=_points(raw.get("points_given")),
            point_checks=checks,
            method_version=raw.get("method_version"),
            options=dict(raw.get("options") or {}),
        )
    cutoff = raw.get("cutoff")
    return Measurement(
        method=str(raw["method"]),
        method_version=str(raw["method_version"]),
        value=float(raw["value"]),
        unit=str(raw["unit"]),
        band=raw.get("band"),
        cutoff=Cutoff(**cutoff) if cutoff else None,
        points_given=_points(raw.get("points_given")),
        points_used=_points(raw.get("points_used")),
        point_checks=checks,
        overlay=tuple(
            OverlayShape(s["kind"], _points(s["points"]), s.get("label", ""), s.get("role", "edge"))
            for s in raw.get("overlay") or ()
        ),
        details=dict(raw.get("details") or {}),
        scale_mm_per_px=raw.get("scale_mm_per_px"),
        points_proposed=_points(raw.get("points_proposed")),
        options=dict(raw.get("options") or {}),
    )


def replace_method(
    results: Sequence[MeasurementResult], new: MeasurementResult
) -> tuple[MeasurementResult, ...]:
    """The case's measurements with ``new`` in place of any earlier one by the same method
    (a re-measurement replaces, it does not add a second vote)."""
    return (*(r for r in results if r.method != new.method), new)


__all__ = [
    "Cutoff",
    "Measurement",
    "MeasurementError",
    "MeasurementRefusal",
    "MeasurementRequest",
    "MeasurementResult",
    "OverlayShape",
    "Point",
    "PointCheck",
    "replace_method",
    "result_from_dict",
]
