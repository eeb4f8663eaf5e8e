"""Measurement methods: training-free indices read from the user's taps and the image's edges.

The registry holds each method's card (``models/<id>/method.json``, beside ``CARD.md``); the
implementation is found by the card's id. :func:`measure` is the stage the one path calls:
it turns every failure into a ``MeasurementRefusal`` with a stable code, so a bad tap or an
image a method cannot read never stops a screening.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Iterator
from pathlib import Path

from edgeosteo.config import MeasurementSettings
from edgeosteo.intake.ct_series import CtSeries
from edgeosteo.intake.types import Radiograph
from edgeosteo.measurement import (
    Measurement,
    MeasurementError,
    MeasurementRefusal,
    MeasurementRequest,
    MeasurementResult,
)
from edgeosteo.methods.base import METHOD_FILE, MeasureImage, MeasurementMethod, MethodCard

logger = logging.getLogger(__name__)

# method id -> "module:class" (imported when first used)
IMPLEMENTATIONS: dict[str, str] = {
    "mci": "edgeosteo.methods.mci:MetacarpalCorticalIndex",
    "cti": "edgeosteo.methods.cti:FemoralCorticalThicknessIndex",
    "mcw": "edgeosteo.methods.mcw:MandibularCorticalWidth",
    "vertebrae": "edgeosteo.methods.vertebrae:VertebralMorphometry",
    "ct-l1": "edgeosteo.methods.ct_l1:CtL1Attenuation",
}


def implementation(method_id: str) -> MeasurementMethod | None:
    target = IMPLEMENTATIONS.get(method_id)
    if target is None:
        return None
    module_name, _, class_name = target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError:
        return None
    return getattr(module, class_name)()


class MethodRegistry:
    """The method cards found under a models directory (one subdirectory per method)."""

    def __init__(self, models_dir: Path) -> None:
        self._cards: dict[str, MethodCard] = {}
        self.problems: list[str] = []
        if models_dir.is_dir():
            for path in sorted(models_dir.glob(f"*/{METHOD_FILE}")):
                try:
                    card = MethodCard.load(path)
                except MeasurementError as exc:
                    self.problems.append(str(exc))
                    continue
                self._cards[card.id] = card

    def __iter__(self) -> Iterator[MethodCard]:
        return iter(self._cards.values())

    def __len__(self) -> int:
        return len(self._cards)

    def get(self, method_id: str) -> MethodCard | None:
        return self._cards.get(method_id)

    def for_image(self, body_part: str | None, view: str | None) -> list[MethodCard]:
        """The methods that read an image of this body part and view."""
        return [c for c in self._cards.values() if c.reads(body_part, view)]


def _refused(request: MeasurementRequest, error: MeasurementError, version: str | None):
    return MeasurementRefusal(
        method=request.method,
        code=error.code,
        detail=error.detail,
        points_given=request.points,
        point_checks=error.point_checks,
        method_version=version,
        options=dict(request.options),
    )


def measure(
    request: MeasurementRequest,
    radiograph: Radiograph | None,
    usable: bool,
    body_part: str | None,
    view: str | None,
    registry: MethodRegistry,
    settings: MeasurementSettings,
) -> MeasurementResult:
    """One requested measurement on one image, or the coded reason it was not made."""
    card = registry.get(request.method)
    method = implementation(request.method) if card is not None else None
    if card is None or method is None:
        error = MeasurementError("measurement.unknown_method", request.method)
        return _refused(request, error, None)
    try:
        if method.version != card.version:
            raise MeasurementError(
                "measurement.card_invalid",
                f"{card.id}: card {card.version}, implementation {method.version}",
            )
        if radiograph is None:
            raise MeasurementError("measurement.no_image")
        if not usable:
            raise MeasurementError("measurement.image_unusable")
        if not card.reads(body_part, view):
            reads = "/".join(card.body_parts) + (f" {'/'.join(card.views)}" if card.views else "")
            shown = " ".join(x for x in (body_part or "unknown body part", view) if x)
            raise MeasurementError(
                "measurement.wrong_body_part", f"{card.id} reads {reads}; {shown}"
            )
        magnification = settings.magnification_for(body_part, radiograph.capture)
        if (
            card.needs_scale
            and magnification is None
            and radiograph.capture == "digital"
            and radiograph.pixel_spacing_mm
        ):  # the file has a spacing, the site has not entered this unit's factor
            raise MeasurementError("measurement.no_magnification", f"none set for {body_part}")
        image = MeasureImage.from_radiograph(radiograph, magnification, body_part, view)
        result: Measurement = method.measure(image, request, card)
        return result
    except MeasurementError as error:
        return _refused(request, error, card.version)
    except Exception:  # a method's own bug must not stop the screening: logged, refused
        logger.exception("measurement method %s failed", request.method)
        return _refused(request, MeasurementError("measurement.failed", request.method), None)


def measure_series(
    request: MeasurementRequest, series: CtSeries, registry: MethodRegistry
) -> MeasurementResult:
    """One measurement on a CT series (``ct-l1``), or the coded reason it was not made."""
    card = registry.get(request.method)
    method = implementation(request.method) if card is not None else None
    if card is None or method is None or not hasattr(method, "measure_series"):
        error = MeasurementError("measurement.unknown_method", request.method)
        return _refused(request, error, None)
    try:
        if method.version != card.version:
            raise MeasurementError(
                "measurement.card_invalid",
                f"{card.id}: card {card.version}, implementation {method.version}",
            )
        return method.measure_series(series, request, card)
    except MeasurementError as error:
        return _refused(request, error, card.version)
    except Exception:  # a method's own bug must not stop the box: logged, refused
        logger.exception("measurement method %s failed", request.method)
        return _refused(request, MeasurementError("measurement.failed", request.method), None)


__all__ = [
    "IMPLEMENTATIONS",
    "MeasureImage",
    "MeasurementMethod",
    "MethodCard",
    "MethodRegistry",
    "implementation",
    "measure",
    "measure_series",
]
