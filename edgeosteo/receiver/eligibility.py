"""Which received images are screened automatically, and with which body part's models.

The rules read only the DICOM header, so they run inside the association before the image
is acknowledged; an image they keep from screening is still stored and listed with the
reason code (edgeosteo.messages), never dropped.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from datetime import date

from pydicom.dataset import Dataset

from edgeosteo.anatomy import from_header
from edgeosteo.config import AnatomySettings, ReceiverSettings
from edgeosteo.intake.dicom import DESCRIPTION_KEYWORDS

# Storage SOP classes the receiver accepts (and the watch folder screens)
COMPUTED_RADIOGRAPHY = "1.2.840.10008.5.1.4.1.1.1"
DX_FOR_PRESENTATION = "1.2.840.10008.5.1.4.1.1.1.1"
DX_FOR_PROCESSING = "1.2.840.10008.5.1.4.1.1.1.1.1"
SECONDARY_CAPTURE = "1.2.840.10008.5.1.4.1.1.7"
SECONDARY_CAPTURE_MULTIFRAME = (
    "1.2.840.10008.5.1.4.1.1.7.2",  # grayscale byte
    "1.2.840.10008.5.1.4.1.1.7.3",  # grayscale word
    "1.2.840.10008.5.1.4.1.1.7.4",  # true colour
)
ACCEPTED_SOP_CLASSES: tuple[str, ...] = (
    COMPUTED_RADIOGRAPHY,
    DX_FOR_PRESENTATION,
    DX_FOR_PROCESSING,
    SECONDARY_CAPTURE,
    *SECONDARY_CAPTURE_MULTIFRAME,
)

_AGE = re.compile(r"^(\d{1,3})([DWMY])$")
_DAYS_PER_UNIT = {"D": 1.0, "W": 7.0, "M": 365.25 / 12.0, "Y": 365.25}


@dataclass(frozen=True)
class HeaderFacts:
    """What the rules and the worklist need from one image's header (raster files have
    none of it)."""

    is_dicom: bool
    sop_class_uid: str | None = None
    sop_instance_uid: str | None = None
    modality: str | None = None
    body_part_examined: str | None = None
    view_position: str | None = None
    laterality: str | None = None
    age_years: float | None = None
    patient_name: str | None = None
    patient_id: str | None = None
    patient_sex: str | None = None
    patient_age: str | None = None
    birth_date: str | None = None
    # Study/Series/Protocol descriptions, read for the body part (edgeosteo.anatomy)
    descriptions: tuple[str, ...] = ()

    @classmethod
    def from_dataset(cls, ds: Dataset) -> HeaderFacts:
        return cls(
            is_dicom=True,
            sop_class_uid=_text(ds, "SOPClassUID"),
            sop_instance_uid=_text(ds, "SOPInstanceUID"),
            modality=_upper(_text(ds, "Modality")),
            body_part_examined=_upper(_text(ds, "BodyPartExamined")),
            view_position=_upper(_text(ds, "ViewPosition")),
            laterality=_upper(_text(ds, "ImageLaterality") or _text(ds, "Laterality")),
            age_years=_age_years(ds),
            patient_name=_text(ds, "PatientName"),
            patient_id=_text(ds, "PatientID"),
            patient_sex=_text(ds, "PatientSex"),
            patient_age=_text(ds, "PatientAge"),
            birth_date=_text(ds, "PatientBirthDate"),
            descriptions=tuple(t for k in DESCRIPTION_KEYWORDS if (t := _text(ds, k))),
        )

    def identity(self) -> dict[str, str]:
        """The patient fields the worklist shows (kept on the box, never synced)."""
        values = {
            "name": self.patient_name,
            "patient_id": self.patient_id,
            "sex": self.patient_sex,
            "age": self.patient_age,
            "birth_date": self.birth_date,
        }
        return {k: v for k, v in values.items() if v}


@dataclass(frozen=True)
class Eligibility:
    eligible: bool
    # the stable code saying why not (receiver.*), None when eligible
    reason_code: str | None
    # the body part whose models apply (Screener.screen's body_part)
    body_part: str | None


def assess_eligibility(
    facts: HeaderFacts, rules: ReceiverSettings, anatomy: AnatomySettings | None = None
) -> Eligibility:
    """The first rule an image fails, in the order: storage class, modality, view,
    laterality, age. Every body part is screened: by a model where one reads it, else as a
    clinical screening once the answers are given (the worklist says which). Plain image
    files carry no header: their body part is ``default_body_part``."""
    body_part = _body_part(facts, rules, anatomy or AnatomySettings())

    def refuse(code: str) -> Eligibility:
        return Eligibility(False, code, body_part)

    if facts.is_dicom:
        if facts.sop_class_uid not in ACCEPTED_SOP_CLASSES:
            return refuse("receiver.sop_class_not_accepted")
        if facts.modality not in {m.upper() for m in rules.modalities}:
            return refuse("receiver.modality_not_screened")
    views = {v.upper() for v in rules.view_positions}
    if views and facts.is_dicom and facts.view_position not in views:
        return refuse("receiver.view_not_screened")
    if facts.laterality and facts.laterality in {s.upper() for s in rules.refused_lateralities}:
        return refuse("receiver.laterality_not_screened")
    if facts.age_years is not None and facts.age_years < rules.min_age_years:
        return refuse("receiver.patient_too_young")
    return Eligibility(True, None, body_part)


def _body_part(facts: HeaderFacts, rules: ReceiverSettings, anatomy: AnatomySettings) -> str | None:
    """The header's body part by the one [anatomy] table (a site's [receiver] body_parts
    entries are added to it), else the site's default for bare files."""
    if rules.body_parts:
        table = {**anatomy.body_parts, **rules.body_parts}
        anatomy = dataclasses.replace(anatomy, body_parts=table)
    header = from_header(facts.body_part_examined, facts.view_position, facts.descriptions, anatomy)
    return header.body_part or rules.default_body_part.upper() or None


def _text(ds: Dataset, keyword: str) -> str | None:
    try:
        value = ds.get(keyword)
    except Exception:  # a damaged element is as good as a missing one for these rules
        return None
    if value is None:
        return None
    text = str(value).strip()
    return text or None


def _upper(value: str | None) -> str | None:
    return value.upper() if value else None


def _age_years(ds: Dataset) -> float | None:
    """PatientAge ("067Y", "010M"), else birth date to study (or content) date."""
    age = _text(ds, "PatientAge")
    if age:
        match = _AGE.match(age.upper())
        if match:
            return int(match.group(1)) * _DAYS_PER_UNIT[match.group(2)] / 365.25
    born = _date(_text(ds, "PatientBirthDate"))
    seen = next(
        (
            d
            for d in (_date(_text(ds, k)) for k in ("StudyDate", "AcquisitionDate", "ContentDate"))
            if d
        ),
        None,
    )
    if born and seen and seen >= born:
        return (seen - born).days / 365.25
    return None


def _date(value: str | None) -> date | None:
    if not value or len(value) < 8 or not value[:8].isdigit():
        return None
    try:
        return date(int(value[:4]), int(value[4:6]), int(value[6:8]))
    except ValueError:
        return None
