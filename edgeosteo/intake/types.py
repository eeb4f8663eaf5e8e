"""What intake hands on: pixels with technical metadata, and patient identity kept apart."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Literal

import numpy as np

SourceFormat = Literal["dicom", "png", "jpeg", "tiff"]
Capture = Literal["digital", "photo"]


@dataclass(frozen=True)
class Radiograph:
    """A grayscale radiograph ready for the quality gates and models.

    ``pixels`` is float32 in [0, 1], displayed polarity (MONOCHROME2: bone bright).
    It carries no patient identifier; identity travels separately in PatientIdentity.
    """

    pixels: np.ndarray
    source_format: SourceFormat
    capture: Capture = "digital"
    # millimetres per pixel (row, column); None when unknown (raster files, photos)
    pixel_spacing_mm: tuple[float, float] | None = None
    spacing_source: str | None = None
    modality: str | None = None
    body_part: str | None = None
    view_position: str | None = None
    laterality: str | None = None
    photometric: str | None = None
    bits_stored: int = 8
    # colourfulness of the input before it was collapsed to gray (0 for gray input)
    colourfulness: float = 0.0
    transforms: tuple[str, ...] = ()
    content_sha256: str = ""
    # the console's free-text Study/Series/Protocol descriptions, read for the body part
    # and view (edgeosteo.anatomy); free text can name a person, so never serialised
    descriptions: tuple[str, ...] = field(default=(), repr=False)

    @property
    def shape(self) -> tuple[int, int]:
        return (int(self.pixels.shape[0]), int(self.pixels.shape[1]))

    @property
    def measurement_basis(self) -> str:
        """Whether lengths in this image can be stated in millimetres."""
        return "millimetres" if self.pixel_spacing_mm else "pixels_only"

    def describe(self) -> dict[str, object]:
        """Technical metadata, JSON-ready, without pixels."""
        return {
            "source_format": self.source_format,
            "capture": self.capture,
            "rows": self.shape[0],
            "columns": self.shape[1],
            "pixel_spacing_mm": list(self.pixel_spacing_mm) if self.pixel_spacing_mm else None,
            "spacing_source": self.spacing_source,
            "measurement_basis": self.measurement_basis,
            "modality": self.modality,
            "body_part": self.body_part,
            "view_position": self.view_position,
            "laterality": self.laterality,
            "photometric": self.photometric,
            "bits_stored": self.bits_stored,
            "transforms": list(self.transforms),
            "content_sha256": self.content_sha256,
        }


@dataclass(frozen=True)
class PatientIdentity:
    """Protected health information read from the file. Never serialised with results."""

    patient_id: str | None = None
    name: str | None = None
    birth_date: str | None = None
    sex: str | None = None
    age: str | None = None
    accession_number: str | None = None
    study_date: str | None = None
    study_uid: str | None = None
    series_uid: str | None = None
    sop_instance_uid: str | None = None
    institution: str | None = None
    referring_physician: str | None = None
    other_ids: tuple[str, ...] = field(default_factory=tuple)

    def identifying_values(self) -> list[str]:
        """Every non-empty identifying value, for leak scanning (sex and age are clinical
        data the result legitimately carries, so they are not listed)."""
        values: list[str] = []
        for key, value in asdict(self).items():
            if key in ("sex", "age"):
                continue
            if isinstance(value, (list, tuple)):
                values.extend(str(v) for v in value if v)
            elif value:
                values.append(str(value))
        return values

    def __repr__(self) -> str:  # keep PHI out of logs and tracebacks
        return "PatientIdentity(<redacted>)"


@dataclass(frozen=True)
class Intake:
    radiograph: Radiograph
    identity: PatientIdentity
