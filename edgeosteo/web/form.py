"""The clinical form: only what the instruments need, with units shown."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, replace

from flask_babel import lazy_gettext as _l

from edgeosteo.clinical import RANGES


@dataclass(frozen=True)
class Field:
    name: str
    label: object
    kind: str  # "number" | "sex" | "yesno"
    unit: str = ""
    minimum: float | None = None
    maximum: float | None = None
    step: str = "any"
    required: bool = False
    women_only: bool = False
    # required because the model that makes the recommendation reads it (fields_for)
    needed_by_model: bool = False

    @property
    def answer_name(self) -> str:
        """The ClinicalAnswers field this form field fills."""
        return "height_m" if self.name == "height_cm" else self.name


def _bounds(name: str, scale: float = 1.0) -> dict[str, float]:
    """The form's limits are the clinical tools' plausible ranges (clinical.RANGES), shown
    in the form's unit."""
    low, high = (round(value * scale, 6) for value in RANGES[name])
    return {
        "minimum": int(low) if low.is_integer() else low,
        "maximum": int(high) if high.is_integer() else high,
    }


CLINICAL_FIELDS: tuple[Field, ...] = (
    Field(
        "age_years",
        _l("Age"),
        "number",
        _l("years"),
        **_bounds("age_years"),
        step="1",
        required=True,
    ),
    Field("sex", _l("Sex"), "sex", required=True),
    Field(
        "weight_kg", _l("Weight"), "number", "kg", **_bounds("weight_kg"), step="0.1", required=True
    ),
    Field("height_cm", _l("Height"), "number", "cm", **_bounds("height_m", 100.0), step="0.5"),
    Field("prior_fragility_fracture", _l("Fracture from a minor fall, as an adult"), "yesno"),
    Field(
        "glucocorticoids_3_months",
        _l("Steroid tablets (glucocorticoids) for 3 months or more"),
        "yesno",
    ),
    Field("postmenopausal", _l("Periods have stopped (menopause)"), "yesno", women_only=True),
    Field("estrogen_current", _l("Takes estrogen / hormone therapy now"), "yesno", women_only=True),
    Field("rheumatoid_arthritis", _l("Rheumatoid arthritis"), "yesno"),
    Field("secondary_causes", _l("Other disease or medicine that weakens bone"), "yesno"),
    Field("family_history_osteoporosis", _l("Parent had a hip fracture or osteoporosis"), "yesno"),
    Field("current_smoker", _l("Smokes now"), "yesno"),
    Field("iof_one_minute_positive", _l("IOF one-minute test positive"), "yesno"),
)


def fields_for(needed_answers: Collection[str]) -> tuple[Field, ...]:
    """The form for this box: an optional question that a model permitted to drive the
    recommendation reads (height, for its BMI) becomes required and says why, so that model
    is never skipped for a question the technician took to be optional."""
    return tuple(
        replace(field, required=True, needed_by_model=True)
        if field.answer_name in needed_answers and not field.required
        else field
        for field in CLINICAL_FIELDS
    )


def missing_required(fields: Collection[Field], answers: Mapping[str, str]) -> dict[str, str]:
    """The problems of required questions left blank that a model needs (the page's script
    flags every blank required question before sending; this is the server's own check)."""
    return {
        f.name: "answers.needed_by_model"
        for f in fields
        if f.needed_by_model and f.answer_name not in answers
    }


# "" lets the image's own header say (the default); a raster file without one then runs no
# image model until a body part is chosen
BODY_PARTS = (
    ("", _l("As the image's header says")),
    ("KNEE", _l("Knee")),
    ("HIP", _l("Hip / pelvis")),
    ("LSPINE", _l("Lumbar spine")),
    ("TSPINE", _l("Thoracic spine")),
    ("TLSPINE", _l("Thoracolumbar spine")),
    ("CHEST", _l("Chest")),
    ("HAND", _l("Hand")),
    ("JAW", _l("Jaw (panoramic)")),
)

# coded BodyPartExamined values a header may carry that the screening has no body part for
# (DICOM PS3.16 CID 4031); shown by name, never as the code
OTHER_BODY_PARTS = {
    "EXTREMITY": _l("Limb"),
    "SKULL": _l("Skull"),
    "HEAD": _l("Head"),
    "CSPINE": _l("Cervical spine"),
    "SSPINE": _l("Sacrum"),
    "ABDOMEN": _l("Abdomen"),
    "SHOULDER": _l("Shoulder"),
    "ELBOW": _l("Elbow"),
    "WRIST": _l("Wrist"),
    "ANKLE": _l("Ankle"),
    "FOOT": _l("Foot"),
    "LEG": _l("Lower leg"),
    "ARM": _l("Upper arm"),
    "FOREARM": _l("Forearm"),
}


def body_part_name(code: str | None) -> str:
    """A body part as the page names it in the user's language ("" for none); a code the
    page has no name for is "another body part", never the code itself."""
    if not code:
        return ""
    names = {value: label for value, label in BODY_PARTS if value} | OTHER_BODY_PARTS
    return str(names.get(code.upper(), _l("Other body part")))


def answers_from_form(form: Mapping[str, str]) -> dict[str, str]:
    """The form's answers as ClinicalAnswers input; blanks stay unanswered."""
    answers: dict[str, str] = {}
    for field in CLINICAL_FIELDS:
        raw = (form.get(field.name) or "").strip()
        if not raw:
            continue
        if field.name == "height_cm":
            try:
                answers["height_m"] = str(round(float(raw) / 100.0, 4))
            except ValueError:
                answers["height_m"] = raw
        else:
            answers[field.name] = raw
    return answers
