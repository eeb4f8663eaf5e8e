"""What every measurement method shares: the image it reads, its card, and its bands.

A method is a class with an ``id``, a ``version`` and ``measure(image, request, card)``.
The cut-offs it applies are not in the code: they are read from the method's card
(``models/<id>/method.json``) beside its ``CARD.md``, so the band a measurement reports is
always the one its card cites.
"""

from __future__ import annotations

import json
import math
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edgeosteo.intake.types import Radiograph
from edgeosteo.measurement import Cutoff, Measurement, MeasurementError, MeasurementRequest

METHOD_FILE = "method.json"


@dataclass(frozen=True)
class MeasureImage:
    """The radiograph as a method reads it: gray float32 pixels in [0, 1], bone bright,
    and the millimetres per pixel at the bone when they are known (detector spacing divided
    by the magnification), else None."""

    pixels: np.ndarray = field(repr=False)
    mm_per_px: float | None = None
    capture: str = "digital"
    body_part: str | None = None
    view: str | None = None

    @property
    def shape(self) -> tuple[int, int]:
        return (int(self.pixels.shape[0]), int(self.pixels.shape[1]))

    def inside(self, point: Sequence[float], margin: float = 0.0) -> bool:
        h, w = self.shape
        x, y = float(point[0]), float(point[1])
        return margin <= x <= w - 1 - margin and margin <= y <= h - 1 - margin

    @classmethod
    def from_radiograph(
        cls,
        radiograph: Radiograph,
        magnification: float | None = 1.0,
        body_part: str | None = None,
        view: str | None = None,
    ) -> MeasureImage:
        """``magnification`` is the site's or the header's factor for this kind of image;
        None means it is unknown, and so are millimetres."""
        spacing = radiograph.pixel_spacing_mm
        mm = None
        if spacing and magnification:
            mm = math.sqrt(float(spacing[0]) * float(spacing[1])) / float(magnification)
        return cls(
            np.asarray(radiograph.pixels, dtype=np.float32),
            mm,
            radiograph.capture,
            body_part,
            view,
        )


@dataclass(frozen=True)
class Band:
    """One band of a card: ``band`` applies when the value is below ``below`` (or at most
    ``at_most``, or at least ``at_least``); the last band, with none, applies otherwise."""

    band: str
    rule: str
    citation: str
    below: float | None = None
    at_least: float | None = None
    at_most: float | None = None

    def applies(self, value: float) -> bool:
        if self.below is not None:
            return value < self.below
        if self.at_most is not None:
            return value <= self.at_most
        if self.at_least is not None:
            return value >= self.at_least
        return True


@dataclass(frozen=True)
class MethodCard:
    """A method's ``method.json``: what it reads, its bands with their sources, and the
    figures measured on phantoms (written by the method's evaluation script)."""

    id: str
    version: str
    name: Mapping[str, str]
    body_parts: tuple[str, ...]
    views: tuple[str, ...]
    unit: str
    needs_scale: bool
    bands: tuple[Band, ...]
    taps: Mapping[str, Any]
    directory: Path
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False)

    @classmethod
    def load(cls, path: Path) -> MethodCard:
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
            return cls(
                id=str(raw["id"]),
                version=str(raw["version"]),
                name=dict(raw["name"]),
                body_parts=tuple(str(p) for p in raw["body_parts"]),
                views=tuple(str(v) for v in raw.get("views") or ()),
                unit=str(raw["unit"]),
                needs_scale=bool(raw["needs_scale"]),
                bands=tuple(Band(**b) for b in raw["bands"]),
                taps=dict(raw.get("taps") or {}),
                directory=path.parent,
                raw=raw,
            )
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise MeasurementError("measurement.card_invalid", f"{path}: {exc}") from None

    def band_for(self, value: float) -> tuple[str, Cutoff]:
        for band in self.bands:
            if band.applies(value):
                return band.band, Cutoff(band.band, band.rule, band.citation)
        raise MeasurementError("measurement.card_invalid", f"{self.id}: no band for {value}")

    def reads(self, body_part: str | None, view: str | None) -> bool:
        """Whether the method applies to an image of this body part and view. An image
        without a view is accepted (most raster files have none); a stated other view is
        not."""
        if body_part not in self.body_parts:
            return False
        return not self.views or view is None or view in self.views


class MeasurementMethod(ABC):
    """One measurement method. ``measure`` raises MeasurementError (``measurement.*``)
    for anything it cannot measure: it never returns a guessed number."""

    id: str
    version: str

    @abstractmethod
    def measure(
        self, image: MeasureImage, request: MeasurementRequest, card: MethodCard
    ) -> Measurement: ...

    def require_scale(self, image: MeasureImage, card: MethodCard) -> float | None:
        """The millimetres per pixel the method needs; refuses ``measurement.no_scale``
        when a method that needs them has none (photos, raster files)."""
        if card.needs_scale and image.mm_per_px is None:
            raise MeasurementError(
                "measurement.no_scale",
                "no pixel spacing in this file"
                if image.capture == "digital"
                else "a photo of a film has no known scale",
            )
        return image.mm_per_px

    def require_taps(
        self, image: MeasureImage, request: MeasurementRequest, minimum: int, maximum: int
    ) -> None:
        """The tap count and every tap inside the image, or a refusal with the reason."""
        n = len(request.points)
        if n < minimum:
            raise MeasurementError("measurement.too_few_points", f"{n} given, {minimum} needed")
        if n > maximum:
            raise MeasurementError("measurement.too_many_points", f"{n} given, {maximum} at most")
        for i, point in enumerate(request.points):
            if not image.inside(point):
                raise MeasurementError("measurement.point_outside_image", f"point {i + 1}")
