"""What may leave the box: an allow-listed summary of a stored case, and optionally its
DICOM de-identified per PS3.15 Annex E (Basic Application Level Confidentiality Profile).

Every synced field is picked by name from the stored result JSON; anything not picked here
(names, ids, dates of birth, free text such as evidence sentences or rejected answers,
pixel data) cannot leave, whatever the result JSON grows to hold later. The patient is a
keyed hash of the local id under a per-site secret that never leaves the box.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import io
import os
import re
import secrets
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgeosteo.config import SyncSettings
from edgeosteo.records import CaseRecord, OutboxRecord, ReferralOutcome

SITE_SECRET_NAME = "site-secret"
SITE_SECRET_BYTES = 32
# stable codes, model ids and versions; anything else in a code field is dropped
_CODE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+\-]{0,79}$")
_DICOM_MAGIC_OFFSET = 128


# --- keys --------------------------------------------------------------------------------


def site_secret_location(data_dir: Path, settings: SyncSettings) -> Path:
    """Where the site's pseudonym key is kept: [sync] site_secret_file, else the data dir."""
    return Path(settings.site_secret_file or data_dir / SITE_SECRET_NAME)


def load_site_secret(path: Path) -> bytes:
    """The per-site pseudonym key: created once (0600), then only ever read."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        pass
    else:
        with os.fdopen(descriptor, "w", encoding="ascii") as handle:
            handle.write(secrets.token_hex(SITE_SECRET_BYTES) + "\n")
            handle.flush()
            os.fsync(handle.fileno())
    secret = bytes.fromhex(path.read_text(encoding="ascii").strip())
    if len(secret) < SITE_SECRET_BYTES:
        raise ValueError(f"{path} holds no usable site secret")
    return secret


def _keyed(secret: bytes, purpose: str, value: str) -> bytes:
    # one secret, separate purposes: a patient key can never equal a UID or a date shift
    return hmac.new(secret, f"{purpose}\x00{value}".encode(), hashlib.sha256).digest()


def patient_key(secret: bytes, local_patient_id: str) -> str:
    """HMAC-SHA256 of the local patient id: the same patient gets the same key at a site."""
    return _keyed(secret, "patient", local_patient_id.strip()).hex()


def labelled_case_key(secret: bytes, case_uuid: str) -> str:
    """A case's name in a labelled export: stable across exports at a site (so two exports
    can be merged without duplicates), unlinkable to the case without the secret."""
    return _keyed(secret, "labelled-case", case_uuid).hex()[:20]


def remapped_uid(secret: bytes, uid: str) -> str:
    """A UID replaced by a keyed hash under the 2.25 (UUID-derived) root: consistent
    within the site, unlinkable to the original without the secret."""
    return "2.25." + str(int.from_bytes(_keyed(secret, "uid", uid)[:16], "big"))


def date_shift_days(secret: bytes, key: str, max_days: int) -> int:
    """A fixed backward shift per patient, so intervals between a patient's images hold."""
    return -(1 + int.from_bytes(_keyed(secret, "date-shift", key)[:4], "big") % max_days)


# --- the synced summary -------------------------------------------------------------------


@dataclass(frozen=True)
class AgeGroup:
    """Age in whole years; from ``oldest`` up only "at least oldest" is sent."""

    years: int
    at_least: bool = False

    @classmethod
    def of(cls, age_years: float | None, oldest: int) -> AgeGroup | None:
        if age_years is None:
            return None
        years = int(age_years)
        return cls(oldest, True) if years >= oldest else cls(years)

    @property
    def label(self) -> str:
        return f"{self.years}+" if self.at_least else str(self.years)


@dataclass(frozen=True)
class InstrumentScore:
    name: str
    score: float | None
    band: str | None
    code: str | None


@dataclass(frozen=True)
class ModelOutput:
    model_id: str
    model_version: str
    kind: str | None
    used_for_referral: bool
    p_low_bone_mass: float | None
    p_osteoporosis: float | None
    t_score: float | None
    t_score_sd: float | None
    backend: str | None
    precision: str | None


@dataclass(frozen=True)
class VertebraGrade:
    """One graded vertebra of a morphometry: the level is anatomy, not an identifier."""

    level: str
    grade: int
    kind: str | None  # wedge | biconcave | crush
    reduction: float | None
    borderline: bool


@dataclass(frozen=True)
class MeasurementSummary:
    """A measurement as it leaves the box: the index and its band, or the refusal code;
    never the taps or the image geometry."""

    method: str
    method_version: str | None
    status: str  # measured | refused
    value: float | None
    unit: str | None
    band: str | None
    refusal_code: str | None
    vertebrae: tuple[VertebraGrade, ...] = ()


# a DXA "within six months" of the screening: 183 days, both ends counted. The box decides
# it, so the scan's date (the capture time plus an exact interval) never leaves the box.
DXA_WINDOW_DAYS = 183
# the box's referral outcomes as they leave it
DXA_OUTCOME_KINDS = {
    "dxa_done": "result",
    "declined": "declined",
    "could_not_travel": "could_not_travel",
}


@dataclass(frozen=True)
class DxaOutcomeSummary:
    """What became of the case's referral, as it leaves the box: the outcome kind (result,
    declined, could_not_travel), and for a result the WHO band, the lowest T-score to 0.1 and
    whether the scan was within DXA_WINDOW_DAYS of the screening. Never the scan date (nor
    the days to it, which with the capture time would give it), the centre or the device."""

    outcome: str
    who_band: str | None = None
    lowest_t_score: float | None = None
    within_six_months: bool | None = None


def dxa_outcome_summary(
    case: CaseRecord, outcome: ReferralOutcome | None
) -> DxaOutcomeSummary | None:
    if outcome is None or outcome.outcome not in DXA_OUTCOME_KINDS:
        return None
    kind = DXA_OUTCOME_KINDS[outcome.outcome]
    if outcome.dxa is None:
        return DxaOutcomeSummary(kind)
    within = None
    try:
        screened = dt.date.fromisoformat(case.created_at[:10])
        days = (dt.date.fromisoformat(outcome.dxa.scan_date) - screened).days
        within = 0 <= days <= DXA_WINDOW_DAYS
    except ValueError:
        pass
    return DxaOutcomeSummary(
        kind, outcome.dxa.who_band, round(outcome.dxa.lowest_t_score, 1), within
    )


@dataclass(frozen=True)
class AnonymisedRecord:
    """One screening as it leaves the box. Built only by anonymise_case()."""

    record_uuid: str
    site_id: str
    device_id: str
    patient_key: str
    # "local_id" (typed at the box), "dicom_id" (from the file) or "none" (one-off key)
    patient_key_source: str
    capture_time: str
    boot_id: str
    monotonic_ns: int
    clock_synchronised: bool
    edgeosteo_version: str | None
    schema_version: str | None
    age: AgeGroup | None
    sex: str | None
    body_part: str | None
    modality: str | None
    view_position: str | None
    intake_error_code: str | None
    quality_verdict: str | None
    quality_codes: tuple[str, ...]
    instruments: tuple[InstrumentScore, ...]
    models: tuple[ModelOutput, ...]
    primary_model_id: str | None
    dxa_indicated: bool | None
    indications_met: tuple[str, ...]
    referral_category: str | None
    referral_severity: int | None
    referral_reason_codes: tuple[str, ...]
    # why no image went with the record, when images are on (e.g. burned-in annotation risk)
    image_withheld_code: str | None = None
    # revisions: the case's first record_uuid (the same for every revision of a case; the
    # hub groups by it), this record's revision number, and the record it supersedes
    case_record: str | None = None
    revision: int = 1
    supersedes: str | None = None
    measurements: tuple[MeasurementSummary, ...] = ()
    # the referral policy the decision ran under (a code, e.g. default-2)
    policy_version: str | None = None
    dxa_outcome: DxaOutcomeSummary | None = None

    @property
    def estimated_t_score(self) -> float | None:
        primary = next((m for m in self.models if m.model_id == self.primary_model_id), None)
        return primary.t_score if primary else None


def _code(value: object) -> str | None:
    return value if isinstance(value, str) and _CODE.match(value) else None


def _codes(values: object) -> tuple[str, ...]:
    if not isinstance(values, Sequence) or isinstance(values, str):
        return ()
    return tuple(c for v in values if (c := _code(v)))


def _number(value: object, digits: int = 4) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return round(float(value), digits)


def _boolean(value: object) -> bool | None:
    return value if isinstance(value, bool) else None


def _mapping(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _sex(answers: Mapping[str, Any], identity: Mapping[str, Any]) -> str | None:
    if answers.get("sex") in ("female", "male"):
        return str(answers["sex"])
    return {"F": "female", "M": "male"}.get(str(identity.get("sex") or "").upper())


def _age_years(answers: Mapping[str, Any], identity: Mapping[str, Any]) -> float | None:
    age = _number(answers.get("age_years"))
    if age is not None:
        return age
    # DICOM Patient's Age: nnnY
    match = re.fullmatch(r"(\d{3})Y", str(identity.get("age") or ""))
    return float(match.group(1)) if match else None


def _vertebra(raw: Mapping[str, Any]) -> VertebraGrade | None:
    level, grade = _code(raw.get("level")), raw.get("grade")
    if not level or not isinstance(grade, int) or isinstance(grade, bool):
        return None
    return VertebraGrade(
        level=level,
        grade=grade,
        kind=_code(raw.get("type")),
        reduction=_number(raw.get("reduction")),
        borderline=raw.get("borderline") is True,
    )


def _measurements(result: Mapping[str, Any]) -> tuple[MeasurementSummary, ...]:
    out = []
    for raw in map(_mapping, result.get("measurements") or ()):
        method = _code(raw.get("method"))
        if not method:
            continue
        measured = raw.get("status") == "measured"
        details = _mapping(raw.get("details"))
        vertebrae = tuple(
            v for v in (_vertebra(_mapping(x)) for x in details.get("vertebrae") or ()) if v
        )
        out.append(
            MeasurementSummary(
                method=method,
                method_version=_code(raw.get("method_version")),
                status="measured" if measured else "refused",
                value=_number(raw.get("value")) if measured else None,
                unit=_code(raw.get("unit")) if measured else None,
                band=_code(raw.get("band")) if measured else None,
                refusal_code=None if measured else _code(raw.get("code")),
                vertebrae=vertebrae if measured else (),
            )
        )
    return tuple(out)


def _patient_source(case: CaseRecord) -> tuple[str, str]:
    if case.local_patient_id and case.local_patient_id.strip():
        return "local_id", case.local_patient_id
    dicom_id = case.identity.get("patient_id")
    if isinstance(dicom_id, str) and dicom_id.strip():
        return "dicom_id", dicom_id
    return "none", f"case:{case.uuid}"


def anonymise_case(
    case: CaseRecord,
    outbox: OutboxRecord,
    secret: bytes,
    settings: SyncSettings,
    image_withheld_code: str | None = None,
    outcome: ReferralOutcome | None = None,
) -> AnonymisedRecord:
    """The allow-listed summary of one stored case and its referral outcome."""
    result = case.result
    clinical = _mapping(result.get("clinical"))
    answers = _mapping(clinical.get("answers"))
    image = _mapping(result.get("image"))
    quality = _mapping(result.get("quality"))
    findings = _mapping(result.get("findings"))
    referral = _mapping(result.get("referral"))
    intake_error = _mapping(result.get("intake_error"))
    source, local_id = _patient_source(case)
    instruments = tuple(
        InstrumentScore(
            name=name,
            score=_number(item.get("score")),
            band=_code(item.get("band")),
            code=_code(item.get("code")),
        )
        for item in map(_mapping, clinical.get("instruments") or ())
        if (name := _code(item.get("name")))
    )
    models = tuple(
        ModelOutput(
            model_id=model_id,
            model_version=_code(item.get("model_version")) or "unknown",
            kind=_code(item.get("kind")),
            used_for_referral=item.get("used_for_referral") is True,
            p_low_bone_mass=_number(item.get("p_low_bone_mass")),
            p_osteoporosis=_number(item.get("p_osteoporosis")),
            t_score=_number(item.get("t_score")),
            t_score_sd=_number(item.get("t_score_sd")),
            backend=_code(item.get("backend")),
            precision=_code(item.get("precision")),
        )
        for item in map(_mapping, findings.get("results") or ())
        if (model_id := _code(item.get("model_id")))
    )
    severity = referral.get("severity")
    return AnonymisedRecord(
        record_uuid=outbox.record_uuid,
        site_id=settings.site_id,
        device_id=settings.device_id,
        patient_key=patient_key(secret, local_id),
        patient_key_source=source,
        capture_time=outbox.capture_time,
        boot_id=outbox.boot_id,
        monotonic_ns=outbox.monotonic_ns,
        clock_synchronised=outbox.clock_synchronised,
        edgeosteo_version=_code(result.get("edgeosteo_version")),
        schema_version=_code(result.get("schema_version")),
        age=AgeGroup.of(_age_years(answers, case.identity), settings.oldest_age_group_years),
        sex=_sex(answers, case.identity),
        body_part=_code(result.get("body_part")),
        modality=_code(image.get("modality")),
        view_position=_code(image.get("view_position")),
        intake_error_code=_code(intake_error.get("code")),
        quality_verdict=_code(quality.get("verdict")),
        quality_codes=_codes(quality.get("codes")),
        instruments=instruments,
        models=models,
        primary_model_id=_code(findings.get("primary_model")),
        dxa_indicated=_boolean(clinical.get("dxa_indicated")),
        indications_met=_codes(clinical.get("indications_met")),
        referral_category=_code(referral.get("category")),
        referral_severity=severity if isinstance(severity, int) else None,
        referral_reason_codes=_codes(
            [_mapping(r).get("code") for r in referral.get("reasons") or ()]
        ),
        image_withheld_code=image_withheld_code,
        # the case's uuid is its first record's record_uuid (CaseStore.save_case)
        case_record=case.uuid,
        revision=outbox.revision,
        supersedes=outbox.supersedes,
        measurements=_measurements(result),
        policy_version=_code(referral.get("policy_version")),
        dxa_outcome=dxa_outcome_summary(case, outcome),
    )


# --- images --------------------------------------------------------------------------------

# Attributes a de-identified radiograph keeps: the image pixel, modality LUT and VOI LUT
# modules, geometry and acquisition technique. Everything else goes (REMOVE ALL), which is
# stricter than the Annex E table's per-attribute actions; UIDs are replaced (action U)
# and dates shifted (Retain Longitudinal Temporal Information with Modified Dates option).
_KEPT_ATTRIBUTES = (
    "SOPClassUID",
    "ImageType",
    "Modality",
    "BodyPartExamined",
    "ViewPosition",
    "ImageLaterality",
    "Laterality",
    "PatientOrientation",
    "BurnedInAnnotation",
    "RecognizableVisualFeatures",
    "SamplesPerPixel",
    "PhotometricInterpretation",
    "PlanarConfiguration",
    "NumberOfFrames",
    "Rows",
    "Columns",
    "BitsAllocated",
    "BitsStored",
    "HighBit",
    "PixelRepresentation",
    "PixelSpacing",
    "ImagerPixelSpacing",
    "PixelAspectRatio",
    "RescaleIntercept",
    "RescaleSlope",
    "RescaleType",
    "WindowCenter",
    "WindowWidth",
    "VOILUTFunction",
    "PresentationLUTShape",
    "LossyImageCompression",
    "LossyImageCompressionRatio",
    "LossyImageCompressionMethod",
    "KVP",
    "ExposureTime",
    "XRayTubeCurrent",
    "Exposure",
    "DistanceSourceToDetector",
    "PixelData",
)
_REPLACED_UIDS = (
    "StudyInstanceUID",
    "SeriesInstanceUID",
    "SOPInstanceUID",
    "FrameOfReferenceUID",
)
_SHIFTED_DATES = ("StudyDate", "SeriesDate", "AcquisitionDate", "ContentDate")
# DICOM PS3.16 CID 7050 (De-identification Method)
_DEID_METHOD_CODES = (
    ("113100", "Basic Application Confidentiality Profile"),
    ("113107", "Retain Longitudinal Temporal Information Modified Dates Option"),
)
_SECONDARY_CAPTURE_CLASS_PREFIX = "1.2.840.10008.5.1.4.1.1.7"

DEID_RECIPE = "\n".join(
    [
        "FORMAT dicom",
        "",
        "%header",
        "REMOVE ALL",
        *(f"KEEP {name}" for name in _KEPT_ATTRIBUTES),
        *(f"REPLACE {name} func:remap_uid" for name in _REPLACED_UIDS),
        *(f"JITTER {name} var:date_shift" for name in _SHIFTED_DATES),
        "ADD PatientIdentityRemoved YES",
        "ADD PatientID var:patient_key",
        "",
    ]
)


@dataclass(frozen=True)
class DeidentifiedImage:
    """A de-identified DICOM, or the code for why it may not leave."""

    dicom: bytes | None
    withheld_code: str | None = None


def is_dicom(data: bytes) -> bool:
    return data[_DICOM_MAGIC_OFFSET : _DICOM_MAGIC_OFFSET + 4] == b"DICM"


def burned_in_annotation_risk(dataset: Any) -> str | None:
    """Why the pixels may carry text (a name burned into the image), or None."""
    if str(dataset.get("BurnedInAnnotation", "")).upper() == "YES":
        return "image.burned_in_annotation"
    if str(dataset.get("SOPClassUID", "")).startswith(_SECONDARY_CAPTURE_CLASS_PREFIX):
        return "image.secondary_capture"
    image_type = [str(v).upper() for v in (dataset.get("ImageType") or [])]
    if "SECONDARY" in image_type or "SCREEN SHOT" in image_type:
        return "image.secondary_capture"
    if str(dataset.get("Modality", "")).upper() in ("SC", "OT", "DOC"):
        return "image.secondary_capture"
    return None


def deidentify_dicom(
    data: bytes, secret: bytes, patient: str, settings: SyncSettings
) -> DeidentifiedImage:
    """De-identify one DICOM with the deid recipe above; never raises for a bad file."""
    import pydicom

    if not is_dicom(data):
        return DeidentifiedImage(None, "image.not_dicom")
    try:
        dataset = pydicom.dcmread(io.BytesIO(data))
    except Exception:  # any unreadable header: keep it on the box
        return DeidentifiedImage(None, "image.unreadable")
    transfer_syntax = dataset.file_meta.get("TransferSyntaxUID")
    if not transfer_syntax or "PixelData" not in dataset:
        return DeidentifiedImage(None, "image.unreadable")
    risk = burned_in_annotation_risk(dataset)
    if risk:
        return DeidentifiedImage(None, risk)
    try:
        return DeidentifiedImage(
            _deidentified_bytes(dataset, transfer_syntax, secret, patient, settings)
        )
    except Exception:  # whatever deid or pydicom trips on, the image stays on the box
        return DeidentifiedImage(None, "image.deidentification_failed")


def _deidentified_bytes(
    dataset: Any, transfer_syntax: str, secret: bytes, patient: str, settings: SyncSettings
) -> bytes:
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import PYDICOM_IMPLEMENTATION_UID

    cleaned = _run_deid_recipe(
        dataset,
        {
            "remap_uid": lambda item, value, field, **_: remapped_uid(
                secret, str(field.element.value)
            ),
            "date_shift": date_shift_days(secret, patient, settings.date_shift_max_days),
            "patient_key": patient,
        },
    )
    cleaned.DeidentificationMethod = "PS3.15 Annex E Basic Profile; modified dates"
    method_codes = []
    for value, meaning in _DEID_METHOD_CODES:
        code = Dataset()
        code.CodeValue, code.CodingSchemeDesignator, code.CodeMeaning = value, "DCM", meaning
        method_codes.append(code)
    cleaned.DeidentificationMethodCodeSequence = method_codes
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = cleaned.SOPClassUID
    meta.MediaStorageSOPInstanceUID = cleaned.SOPInstanceUID
    meta.TransferSyntaxUID = transfer_syntax
    meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    cleaned.file_meta = meta
    cleaned.preamble = b"\x00" * _DICOM_MAGIC_OFFSET
    buffer = io.BytesIO()
    cleaned.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def _run_deid_recipe(dataset: Any, lookup: dict[str, Any]) -> Any:
    from deid.config import DeidRecipe
    from deid.dicom import replace_identifiers
    from deid.logger import bot
    from deid.logger.message import ERROR

    # deid writes a warning to the console for every field it cannot touch
    bot.level = min(bot.level, ERROR)
    with tempfile.TemporaryDirectory(prefix="edgeosteo-deid-") as folder:
        recipe_path = Path(folder) / "deid.dicom.edgeosteo"
        recipe_path.write_text(DEID_RECIPE, encoding="utf-8")
        recipe = DeidRecipe(str(recipe_path), base=False)
        # a dataset read from memory has no file name: deid files its lookup under None
        (cleaned,) = replace_identifiers(
            [dataset], deid=recipe, ids={None: lookup}, save=False, remove_private=True
        )
    return cleaned


def shifted_date(value: str, days: int) -> str:
    """A DICOM DA value moved by ``days`` (what the recipe's JITTER does), for tests."""
    return (dt.datetime.strptime(value, "%Y%m%d") + dt.timedelta(days=days)).strftime("%Y%m%d")
