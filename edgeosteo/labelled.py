"""``edgeosteo export-labelled``: the site's own labelled data set, every case with a DXA
result whose patient agreed to research use, in the layout ``edgeosteo evaluate`` reads
(``clinical.csv`` with the DXA's lowest T-score as ``t_score``, ``images/``).

De-identified as the sync is: the case is named by a keyed hash under the site secret, ages
from [sync] oldest_age_group_years up are one group, and no name, patient or accession ID,
birth date or date of any kind is written (the interval from screening to DXA stands in for
the dates). Pixel data leaves only as DICOM de-identified by ``deidentify_dicom`` (PS3.15
Annex E); a raster file or a film photo may carry a name burned into its pixels that no
program can find, so its row is written without an image and says why, as the sync does.
"""

from __future__ import annotations

import csv
import re
from collections import Counter
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

from edgeosteo.anonymise import (
    deidentify_dicom,
    labelled_case_key,
    load_site_secret,
    patient_key,
    site_secret_location,
)
from edgeosteo.config import Settings
from edgeosteo.errors import CommandError
from edgeosteo.records import CaseRecord, ReferralOutcome
from edgeosteo.store import CaseStore

# the answers evaluate reads, by column (edgeosteo.evaluate._CSV_TO_ANSWERS), from the case
ANSWER_COLUMNS = {
    "weight_kg": "weight_kg",
    "height_m": "height_m",
    "prior_fracture": "prior_fragility_fracture",
    "estrogen_use": "estrogen_current",
    "menopause_age": "menopause_age_years",
    "smoker": "current_smoker",
    "alcohol": "alcohol_3_units_daily",
    "family_history_osteoporosis": "family_history_osteoporosis",
}
MODALITY_CODE = re.compile(r"[A-Z0-9_]{1,16}", re.ASCII)
COLUMNS = (
    "id",
    "image",
    "t_score",
    "sex",
    "age",
    *ANSWER_COLUMNS,
    "body_part",
    "source",
    "t_score_site",
    "who_band",
    "femoral_neck_t_score",
    "total_hip_t_score",
    "lumbar_spine_t_score",
    "femoral_neck_z_score",
    "total_hip_z_score",
    "lumbar_spine_z_score",
    "days_screening_to_dxa",
    "box_category",
    "image_withheld",
)


@dataclass(frozen=True)
class LabelledExport:
    """What an export wrote and what it left on the box, by reason."""

    out_dir: Path
    written: int
    with_image: int
    # cases with a DXA result that were not written: "consent.no" / "consent.not_asked"
    not_exported: dict[str, int] = field(default_factory=dict)
    # rows written without their image: the withheld code (image.not_dicom ...) and count
    images_withheld: dict[str, int] = field(default_factory=dict)


def _cell(value: object) -> object:
    if value is None:
        return ""
    if isinstance(value, bool):
        return int(value)
    return value


def _age(case: CaseRecord, oldest_group: int) -> float | None:
    answers = (case.result.get("clinical") or {}).get("answers") or {}
    age = answers.get("age_years")
    if not isinstance(age, int | float) or isinstance(age, bool):
        raw = str(case.identity.get("age") or "")
        age = float(raw[:-1]) if raw.upper().endswith("Y") and raw[:-1].isdigit() else None
    return None if age is None else min(float(age), float(oldest_group))


def _sex(case: CaseRecord) -> str:
    answers = (case.result.get("clinical") or {}).get("answers") or {}
    if answers.get("sex") in ("female", "male"):
        return str(answers["sex"])
    return {"F": "female", "M": "male"}.get(str(case.identity.get("sex") or "").upper(), "")


def _days_between(case: CaseRecord, outcome: ReferralOutcome) -> int | None:
    assert outcome.dxa is not None
    try:
        screened = date.fromisoformat(case.created_at[:10])
        return (date.fromisoformat(outcome.dxa.scan_date) - screened).days
    except ValueError:
        return None


def _modality(case: CaseRecord) -> str | None:
    """The image's DICOM modality code (CR, DX ...); a header's free text is never written."""
    modality = str((case.result.get("image") or {}).get("modality") or "")
    return modality if MODALITY_CODE.fullmatch(modality) else None


def _patient(case: CaseRecord) -> str:
    if case.local_patient_id and case.local_patient_id.strip():
        return case.local_patient_id
    return str(case.identity.get("patient_id") or f"case:{case.uuid}")


def export_labelled(
    store: CaseStore,
    settings: Settings,
    out_dir: Path,
    since: str | None = None,
    body_part: str | None = None,
) -> LabelledExport:
    """Write the labelled set to ``out_dir`` (new or empty, so no earlier export is mixed
    in); CommandError when it is not. ``since``: results recorded on or after that day.
    ``body_part``: only cases of that body part (evaluate reads one at a time)."""
    if out_dir.exists() and (not out_dir.is_dir() or any(out_dir.iterdir())):
        raise CommandError("follow_up.export_not_empty", str(out_dir))
    secret = load_site_secret(site_secret_location(settings.data_dir, settings.sync))
    images = out_dir / "images"
    images.mkdir(parents=True, exist_ok=True)
    not_exported: Counter[str] = Counter()
    withheld: Counter[str] = Counter()
    rows = []
    for case, outcome in store.labelled_cases(since):
        if body_part and (case.body_part or "").upper() != body_part.upper():
            continue
        if case.research_consent != "yes":
            not_exported[f"consent.{case.research_consent or 'not_asked'}"] += 1
            continue
        dxa = outcome.dxa
        assert dxa is not None
        key = labelled_case_key(secret, case.uuid)
        image_name, withheld_code = "", None
        if case.image_file:
            source = (settings.data_dir / case.image_file).read_bytes()
            pseudonym = patient_key(secret, _patient(case))
            deidentified = deidentify_dicom(source, secret, pseudonym, settings.sync)
            if deidentified.dicom is not None:
                image_name = f"{key}.dcm"
                (images / image_name).write_bytes(deidentified.dicom)
            else:
                withheld_code = deidentified.withheld_code
        else:
            withheld_code = "image.none"
        if withheld_code:
            withheld[withheld_code] += 1
        answers = (case.result.get("clinical") or {}).get("answers") or {}
        values = {
            "id": key,
            "image": image_name,
            "t_score": dxa.lowest_t_score,
            "sex": _sex(case),
            "age": _age(case, settings.sync.oldest_age_group_years),
            **{column: answers.get(answer) for column, answer in ANSWER_COLUMNS.items()},
            "body_part": case.body_part,
            "source": _modality(case),
            "t_score_site": dxa.lowest_t_site,
            "who_band": dxa.who_band,
            "femoral_neck_t_score": dxa.femoral_neck_t_score,
            "total_hip_t_score": dxa.total_hip_t_score,
            "lumbar_spine_t_score": dxa.lumbar_spine_t_score,
            "femoral_neck_z_score": dxa.femoral_neck_z_score,
            "total_hip_z_score": dxa.total_hip_z_score,
            "lumbar_spine_z_score": dxa.lumbar_spine_z_score,
            "days_screening_to_dxa": _days_between(case, outcome),
            "box_category": case.category,
            "image_withheld": withheld_code,
        }
        rows.append([_cell(values[column]) for column in COLUMNS])
    with (out_dir / "clinical.csv").open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(COLUMNS)
        writer.writerows(rows)
    return LabelledExport(
        out_dir=out_dir,
        written=len(rows),
        with_image=sum(1 for row in rows if row[1]),
        not_exported=dict(not_exported),
        images_withheld=dict(withheld),
    )
