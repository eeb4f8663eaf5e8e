"""FHIR R4 transaction Bundles from anonymised records, and reading them back at the hub.

Every entry is a conditional create (POST with ifNoneExist on a stable identifier), or for
an image a PUT to a fixed Binary id, and every fullUrl is derived from that identifier: the
same batch sent twice is the same bytes, and a FHIR server (or the reference hub) creates
nothing the second time. The mapping is documented in docs/sync.md.
"""

from __future__ import annotations

import base64
import json
import re
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from edgeosteo.anonymise import (
    AgeGroup,
    AnonymisedRecord,
    DxaOutcomeSummary,
    InstrumentScore,
    MeasurementSummary,
    ModelOutput,
    VertebraGrade,
)

SYSTEM = "urn:edgeosteo"
RECORD_SYSTEM = f"{SYSTEM}:record"
OBSERVATION_SYSTEM = f"{SYSTEM}:observation"
PATIENT_KEY_SYSTEM = f"{SYSTEM}:patient-key"
PROVENANCE_URL = f"{SYSTEM}:fhir:StructureDefinition:capture-provenance"
MODEL_OUTPUT_URL = f"{SYSTEM}:fhir:StructureDefinition:model-output"
REVISION_URL = f"{SYSTEM}:fhir:StructureDefinition:record-revision"
MAX_REVISION = 2**31 - 1  # FHIR integer
LOINC = "http://loinc.org"
UCUM = "http://unitsofmeasure.org"
LOINC_AGE = "30525-0"
# record identifiers as the hub stores them (String(64) columns)
_UUID_LIKE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$")
# fullUrls are name-based UUIDs of the identifiers, so a replay names the same resources
_URL_NAMESPACE = uuid.UUID("6f0c8a52-7d1e-4c8e-9a59-3f0e2a1b9c40")


class BundleError(ValueError):
    """A bundle the hub cannot take; the message says what is wrong (sent back as 400)."""


def _full_url(*parts: str) -> str:
    return "urn:uuid:" + str(uuid.uuid5(_URL_NAMESPACE, "|".join(parts)))


def _coding(system: str, code: str, display: str | None = None) -> dict[str, Any]:
    coding: dict[str, Any] = {"system": system, "code": code}
    if display:
        coding["display"] = display
    return coding


def _concept(system: str, code: str, display: str | None = None) -> dict[str, Any]:
    return {"coding": [_coding(system, code, display)]}


def _patient_key_system(site_id: str) -> str:
    return f"{PATIENT_KEY_SYSTEM}:{site_id}"


def patient_full_url(record: AnonymisedRecord) -> str:
    return _full_url("Patient", _patient_key_system(record.site_id), record.patient_key)


def _conditional(resource: dict[str, Any], system: str, value: str) -> dict[str, Any]:
    kind = resource["resourceType"]
    return {
        "fullUrl": _full_url(kind, system, value),
        "resource": resource,
        "request": {"method": "POST", "url": kind, "ifNoneExist": f"identifier={system}|{value}"},
    }


def _age_quantity(age: AgeGroup) -> dict[str, Any]:
    quantity: dict[str, Any] = {"value": age.years, "unit": "a", "system": UCUM, "code": "a"}
    if age.at_least:
        quantity["comparator"] = ">="
    return quantity


def _observation(
    record: AnonymisedRecord, slot: str, code: dict[str, Any], **fields: Any
) -> dict[str, Any]:
    resource = {
        "resourceType": "Observation",
        "identifier": [{"system": OBSERVATION_SYSTEM, "value": f"{record.record_uuid}/{slot}"}],
        "status": "final",
        "code": code,
        "subject": {"reference": patient_full_url(record)},
        "effectiveDateTime": record.capture_time,
        **fields,
    }
    return _conditional(resource, OBSERVATION_SYSTEM, f"{record.record_uuid}/{slot}")


def _instrument_entry(record: AnonymisedRecord, item: InstrumentScore) -> dict[str, Any]:
    fields: dict[str, Any] = {}
    if item.score is not None:
        fields["valueQuantity"] = {
            "value": item.score,
            "unit": "{score}",
            "system": UCUM,
            "code": "{score}",
        }
    else:
        fields["dataAbsentReason"] = _concept(
            "http://terminology.hl7.org/CodeSystem/data-absent-reason", "not-applicable"
        )
    if item.band:
        fields["interpretation"] = [_concept(f"{SYSTEM}:instrument-band", item.band)]
    return _observation(
        record,
        f"instrument/{item.name}",
        _concept(f"{SYSTEM}:instrument", item.name),
        **fields,
    )


def _model_entry(record: AnonymisedRecord, model: ModelOutput) -> dict[str, Any]:
    components = [
        {"code": _concept(f"{SYSTEM}:model-output", name), "valueQuantity": {"value": value}}
        for name, value in (
            ("p-osteoporosis", model.p_osteoporosis),
            ("p-low-bone-mass", model.p_low_bone_mass),
            ("t-score-sd", model.t_score_sd),
        )
        if value is not None
    ]
    fields: dict[str, Any] = {
        "method": {
            "coding": [
                {**_coding(f"{SYSTEM}:model", model.model_id), "version": model.model_version}
            ]
        },
        "component": components,
        "extension": [
            {
                "url": MODEL_OUTPUT_URL,
                "extension": [
                    {"url": "kind", "valueCode": model.kind or "unknown"},
                    {"url": "usedForReferral", "valueBoolean": model.used_for_referral},
                    {"url": "backend", "valueCode": model.backend or "unknown"},
                    {"url": "precision", "valueCode": model.precision or "unknown"},
                ],
            }
        ],
    }
    if model.t_score is not None:
        fields["valueQuantity"] = {"value": model.t_score, "unit": "{T-score}"}
    else:
        fields["dataAbsentReason"] = _concept(
            "http://terminology.hl7.org/CodeSystem/data-absent-reason", "not-applicable"
        )
    return _observation(
        record,
        f"model/{model.model_id}",
        _concept(f"{SYSTEM}:model-output", "estimated-t-score", "Estimated T-score (model)"),
        **fields,
    )


DATA_ABSENT = "http://terminology.hl7.org/CodeSystem/data-absent-reason"
# UCUM units of a measurement's value
_MEASUREMENT_UNITS = {"ratio": "1", "mm": "mm", "grade": "{grade}"}


def _method_concept(m: MeasurementSummary) -> dict[str, Any]:
    return {
        "coding": [{**_coding(f"{SYSTEM}:method", m.method), "version": m.method_version or ""}]
    }


def _vertebra_entry(
    record: AnonymisedRecord, m: MeasurementSummary, v: VertebraGrade
) -> dict[str, Any]:
    """One graded vertebra: its level, Genant grade, deformity type and reduction."""
    components: list[dict[str, Any]] = [
        {
            "code": _concept(f"{SYSTEM}:vertebra", "borderline"),
            "valueBoolean": v.borderline,
        }
    ]
    if v.kind:
        components.append(
            {
                "code": _concept(f"{SYSTEM}:vertebra", "deformity-type"),
                "valueCodeableConcept": _concept(f"{SYSTEM}:vertebral-deformity", v.kind),
            }
        )
    if v.reduction is not None:
        components.append(
            {
                "code": _concept(f"{SYSTEM}:vertebra", "height-reduction"),
                "valueQuantity": {
                    "value": round(100 * v.reduction, 1),
                    "unit": "%",
                    "system": UCUM,
                    "code": "%",
                },
            }
        )
    return _observation(
        record,
        f"measurement/{m.method}/{v.level}",
        _concept(f"{SYSTEM}:measurement", "genant-grade", "Genant semiquantitative grade"),
        method=_method_concept(m),
        bodySite=_concept(f"{SYSTEM}:vertebral-level", v.level),
        valueInteger=v.grade,
        component=components,
    )


def _measurement_entries(record: AnonymisedRecord, m: MeasurementSummary) -> list[dict[str, Any]]:
    """The measurement's overall finding, preceded by one Observation per graded vertebra
    (its members)."""
    members = [_vertebra_entry(record, m, v) for v in m.vertebrae]
    fields: dict[str, Any] = {"method": _method_concept(m)}
    if m.status == "measured" and m.value is not None:
        unit = _MEASUREMENT_UNITS.get(m.unit or "", "1")
        fields["valueQuantity"] = {"value": m.value, "unit": unit, "system": UCUM, "code": unit}
        if m.band:
            fields["interpretation"] = [_concept(f"{SYSTEM}:measurement-band", m.band)]
    else:
        fields["dataAbsentReason"] = _concept(DATA_ABSENT, "error")
        if m.refusal_code:
            fields["component"] = [
                {
                    "code": _concept(f"{SYSTEM}:measurement", "refusal"),
                    "valueCodeableConcept": _concept(f"{SYSTEM}:refusal-code", m.refusal_code),
                }
            ]
    if members:
        fields["hasMember"] = [{"reference": e["fullUrl"]} for e in members]
    overall = _observation(
        record,
        f"measurement/{m.method}",
        _concept(f"{SYSTEM}:measurement", m.method),
        **fields,
    )
    return [*members, overall]


def _quality_entry(record: AnonymisedRecord) -> dict[str, Any]:
    components = [
        {
            "code": _concept(f"{SYSTEM}:quality", "code"),
            "valueCodeableConcept": _concept(f"{SYSTEM}:quality-code", code),
        }
        for code in record.quality_codes
    ]
    for name, code in (
        ("intake-error", record.intake_error_code),
        ("image-withheld", record.image_withheld_code),
        ("modality", record.modality),
        ("view-position", record.view_position),
    ):
        if code:
            components.append(
                {
                    "code": _concept(f"{SYSTEM}:quality", name),
                    "valueCodeableConcept": _concept(f"{SYSTEM}:{name}", code),
                }
            )
    fields: dict[str, Any] = {"component": components}
    if record.quality_verdict:
        fields["valueCodeableConcept"] = _concept(
            f"{SYSTEM}:quality-verdict", record.quality_verdict
        )
    else:
        fields["dataAbsentReason"] = _concept(
            "http://terminology.hl7.org/CodeSystem/data-absent-reason", "not-performed"
        )
    if record.body_part:
        fields["bodySite"] = _concept(f"{SYSTEM}:body-part", record.body_part)
    return _observation(
        record, "quality", _concept(f"{SYSTEM}:observation-type", "image-quality"), **fields
    )


DXA_OUTCOME_SLOT = "dxa-outcome"
# the bound a stored DXA outcome's T-score must lie in at the hub (as on a report)
DXA_T_BOUND = 10.0


def _dxa_outcome_entry(record: AnonymisedRecord, dxa: DxaOutcomeSummary) -> dict[str, Any]:
    """The referral's outcome: its kind, and for a result the WHO band (interpretation), the
    lowest T-score (value, to 0.1) and whether the scan was within six months of the
    screening. The scan date (and the days to it), centre and device stay on the box;
    effectiveDateTime is the capture time as for every Observation of the record."""
    components: list[dict[str, Any]] = [
        {
            "code": _concept(f"{SYSTEM}:dxa", "outcome"),
            "valueCodeableConcept": _concept(f"{SYSTEM}:dxa-outcome", dxa.outcome),
        }
    ]
    fields: dict[str, Any] = {}
    if dxa.lowest_t_score is not None:
        fields["valueQuantity"] = {"value": dxa.lowest_t_score, "unit": "{T-score}"}
    else:
        fields["dataAbsentReason"] = _concept(DATA_ABSENT, "not-performed")
    if dxa.who_band:
        fields["interpretation"] = [_concept(f"{SYSTEM}:who-band", dxa.who_band)]
    if dxa.within_six_months is not None:
        components.append(
            {
                "code": _concept(f"{SYSTEM}:dxa", "within-six-months"),
                "valueBoolean": dxa.within_six_months,
            }
        )
    return _observation(
        record,
        DXA_OUTCOME_SLOT,
        _concept(f"{SYSTEM}:observation-type", "dxa-outcome", "Outcome of the DXA referral"),
        component=components,
        **fields,
    )


def _provenance(record: AnonymisedRecord) -> dict[str, Any]:
    parts: list[dict[str, Any]] = [
        {"url": "siteId", "valueString": record.site_id},
        {"url": "deviceId", "valueString": record.device_id},
        {"url": "captureTime", "valueDateTime": record.capture_time},
        {"url": "bootId", "valueString": record.boot_id},
        # nanoseconds overflow FHIR's 32-bit integer
        {"url": "monotonicNs", "valueString": str(record.monotonic_ns)},
        {"url": "clockSynchronised", "valueBoolean": record.clock_synchronised},
        {"url": "patientKeySource", "valueCode": record.patient_key_source},
    ]
    if record.schema_version:
        parts.append({"url": "resultSchemaVersion", "valueString": record.schema_version})
    if record.dxa_indicated is not None:
        parts.append({"url": "dxaIndicated", "valueBoolean": record.dxa_indicated})
    if record.policy_version:
        parts.append({"url": "policyVersion", "valueString": record.policy_version})
    parts += [{"url": "indicationMet", "valueCode": code} for code in record.indications_met]
    return {"url": PROVENANCE_URL, "extension": parts}


def _revision(record: AnonymisedRecord) -> dict[str, Any]:
    parts: list[dict[str, Any]] = [
        {"url": "caseRecord", "valueString": record.case_record or record.record_uuid},
        {"url": "number", "valueInteger": record.revision},
    ]
    if record.supersedes:
        parts.append({"url": "supersedes", "valueString": record.supersedes})
    return {"url": REVISION_URL, "extension": parts}


def record_entries(record: AnonymisedRecord, image: bytes | None = None) -> list[dict[str, Any]]:
    """The entries for one record, Patient first (callers drop repeated Patients)."""
    patient = {
        "resourceType": "Patient",
        "identifier": [
            {"system": _patient_key_system(record.site_id), "value": record.patient_key}
        ],
        "gender": record.sex or "unknown",
    }
    entries = [_conditional(patient, _patient_key_system(record.site_id), record.patient_key)]
    if record.age:
        entries.append(
            _observation(
                record,
                "age",
                _concept(LOINC, LOINC_AGE, "Age"),
                valueQuantity=_age_quantity(record.age),
            )
        )
    entries += [_instrument_entry(record, item) for item in record.instruments]
    entries += [_model_entry(record, model) for model in record.models]
    for measurement in record.measurements:
        entries += _measurement_entries(record, measurement)
    entries.append(_quality_entry(record))
    if record.dxa_outcome is not None:
        entries.append(_dxa_outcome_entry(record, record.dxa_outcome))
    risk: dict[str, Any] = {
        "resourceType": "RiskAssessment",
        "extension": [_provenance(record), _revision(record)],
        "identifier": [{"system": RECORD_SYSTEM, "value": record.record_uuid}],
        "status": "amended" if record.revision > 1 else "final",
        "method": {
            "coding": [
                {
                    **_coding(f"{SYSTEM}:decision", "edgeosteo-referral"),
                    "version": record.edgeosteo_version or "unknown",
                }
            ]
        },
        "subject": {"reference": patient_full_url(record)},
        "occurrenceDateTime": record.capture_time,
        "basis": [{"reference": e["fullUrl"]} for e in entries[1:]],
        "reasonCode": [_concept(f"{SYSTEM}:reason", c) for c in record.referral_reason_codes],
        "prediction": [
            {
                "outcome": _concept(
                    f"{SYSTEM}:referral-category", record.referral_category or "unknown"
                ),
                **(
                    {
                        "qualitativeRisk": _concept(
                            f"{SYSTEM}:referral-severity", str(record.referral_severity)
                        )
                    }
                    if record.referral_severity is not None
                    else {}
                ),
            }
        ],
    }
    risk_entry = _conditional(risk, RECORD_SYSTEM, record.record_uuid)
    entries.append(risk_entry)
    if image is not None:
        entries.append(
            {
                "fullUrl": _full_url("Binary", record.record_uuid),
                "resource": {
                    "resourceType": "Binary",
                    "id": record.record_uuid,
                    "contentType": "application/dicom",
                    "securityContext": {"reference": risk_entry["fullUrl"]},
                    "data": base64.b64encode(image).decode("ascii"),
                },
                "request": {"method": "PUT", "url": f"Binary/{record.record_uuid}"},
            }
        )
    return entries


def transaction_bundle(
    records: Sequence[AnonymisedRecord], images: Mapping[str, bytes] | None = None
) -> dict[str, Any]:
    images = images or {}
    entries: list[dict[str, Any]] = []
    seen: set[str] = set()
    for record in records:
        for entry in record_entries(record, images.get(record.record_uuid)):
            if entry["fullUrl"] in seen:
                continue
            seen.add(entry["fullUrl"])
            entries.append(entry)
    return {"resourceType": "Bundle", "type": "transaction", "entry": entries}


def bundle_bytes(bundle: Mapping[str, Any]) -> bytes:
    return json.dumps(bundle, ensure_ascii=False, separators=(",", ":"), sort_keys=True).encode()


# --- reading (the hub) -----------------------------------------------------------------------


@dataclass(frozen=True)
class ReceivedRecord:
    """One record as the hub files it: the columns its dashboard needs, and the resources."""

    record_uuid: str
    site_id: str
    device_id: str
    patient_key: str
    capture_time: str
    clock_synchronised: bool
    sex: str | None
    age_years: int | None
    age_at_least: bool
    referral_category: str | None
    quality_verdict: str | None
    quality_refusal_codes: tuple[str, ...]
    models: tuple[str, ...]  # "model_id@version"
    resources: tuple[Mapping[str, Any], ...]
    image: bytes | None
    # the case's first record_uuid (the record's own for a first record), the revision
    # number (1 for a first record) and the record this one supersedes
    case_record: str
    revision: int
    supersedes: str | None
    # method -> band of each measured index ("refused" for a refusal), e.g. the
    # morphometry's vertebral_fracture; the hub counts findings by them
    measurement_bands: Mapping[str, str] = field(default_factory=dict)
    # the decision's versions: the referral policy (from boxes that send it) and the model
    # that drove the referral ("model_id@version"), and the score the referral rests on
    # (the driving model's estimated T-score, else the OSTA index) with its kind
    policy_version: str | None = None
    primary_model: str | None = None
    referral_score: float | None = None
    referral_score_kind: str | None = None
    # the referral's outcome, when the box has one: result | declined | could_not_travel
    dxa_outcome: str | None = None
    dxa_who_band: str | None = None
    dxa_lowest_t_score: float | None = None
    dxa_within_six_months: bool | None = None


def _first_code(concept: Mapping[str, Any] | None, system: str) -> str | None:
    for coding in (concept or {}).get("coding") or ():
        if coding.get("system") == system:
            return coding.get("code")
    return None


def _identifier(resource: Mapping[str, Any], system: str) -> str | None:
    for identifier in resource.get("identifier") or ():
        if identifier.get("system") == system:
            return identifier.get("value")
    return None


def _extension_values(resource: Mapping[str, Any], url: str) -> dict[str, list[Any]]:
    values: dict[str, list[Any]] = {}
    for extension in resource.get("extension") or ():
        if extension.get("url") != url:
            continue
        for part in extension.get("extension") or ():
            value = next((v for k, v in part.items() if k.startswith("value")), None)
            values.setdefault(part.get("url"), []).append(value)
    return values


def read_bundle(bundle: object) -> list[ReceivedRecord]:
    """The records in a transaction bundle from a box; BundleError if it is not one."""
    if not isinstance(bundle, Mapping) or bundle.get("resourceType") != "Bundle":
        raise BundleError("not a FHIR Bundle")
    if bundle.get("type") != "transaction":
        raise BundleError("Bundle.type must be transaction")
    entries = bundle.get("entry")
    if not isinstance(entries, list) or not entries:
        raise BundleError("Bundle has no entries")
    by_url: dict[str, Mapping[str, Any]] = {}
    for entry in entries:
        if not isinstance(entry, Mapping) or not isinstance(entry.get("resource"), Mapping):
            raise BundleError("every entry needs a resource")
        request = entry.get("request") or {}
        if request.get("method") not in ("POST", "PUT"):
            raise BundleError("entries must be conditional creates or PUTs")
        if request.get("method") == "POST" and not request.get("ifNoneExist"):
            raise BundleError("POST entries must carry ifNoneExist (idempotent replays)")
        by_url[str(entry.get("fullUrl"))] = entry["resource"]
    records = []
    for risk in (r for r in by_url.values() if r.get("resourceType") == "RiskAssessment"):
        records.append(_read_record(risk, by_url))
    if not records:
        raise BundleError("Bundle holds no RiskAssessment")
    return records


def _read_record(
    risk: Mapping[str, Any], by_url: Mapping[str, Mapping[str, Any]]
) -> ReceivedRecord:
    record_uuid = _identifier(risk, RECORD_SYSTEM)
    if not record_uuid:
        raise BundleError(f"RiskAssessment without a {RECORD_SYSTEM} identifier")
    provenance = _extension_values(risk, PROVENANCE_URL)
    site_id = (provenance.get("siteId") or [None])[0]
    device_id = (provenance.get("deviceId") or [None])[0]
    capture_time = (provenance.get("captureTime") or [None])[0]
    if not (site_id and device_id and capture_time):
        raise BundleError(f"record {record_uuid}: siteId, deviceId and captureTime are required")
    case_record, revision, supersedes = _read_revision(record_uuid, risk)
    patient = by_url.get(str((risk.get("subject") or {}).get("reference")))
    if not patient or patient.get("resourceType") != "Patient":
        raise BundleError(f"record {record_uuid}: subject must be a Patient in the bundle")
    patient_key = _identifier(patient, f"{PATIENT_KEY_SYSTEM}:{site_id}")
    if not patient_key:
        raise BundleError(f"record {record_uuid}: Patient without a pseudonymous key")
    observations = [
        r
        for r in by_url.values()
        if r.get("resourceType") == "Observation"
        and str(_identifier(r, OBSERVATION_SYSTEM) or "").startswith(record_uuid + "/")
    ]
    age_years, age_at_least = None, False
    models: list[str] = []
    measurement_bands: dict[str, str] = {}
    quality_verdict = None
    refusals: list[str] = []
    quality_codes: list[str] = []
    primary_model = score = score_kind = osta = None
    dxa: dict[str, Any] = {}
    for observation in observations:
        slot = str(_identifier(observation, OBSERVATION_SYSTEM)).split("/", 1)[1]
        if slot == "age":
            quantity = observation.get("valueQuantity") or {}
            age_years = int(quantity["value"]) if "value" in quantity else None
            age_at_least = quantity.get("comparator") == ">="
        elif slot.startswith("model/"):
            coding = ((observation.get("method") or {}).get("coding") or [{}])[0]
            models.append(f"{coding.get('code')}@{coding.get('version')}")
            drives = _extension_values(observation, MODEL_OUTPUT_URL).get("usedForReferral")
            if drives == [True]:
                primary_model = models[-1]
                score = _finite((observation.get("valueQuantity") or {}).get("value"))
                score_kind = f"model:{primary_model}" if score is not None else None
        elif slot == "instrument/osta":
            osta = _finite((observation.get("valueQuantity") or {}).get("value"))
        elif slot == DXA_OUTCOME_SLOT:
            dxa = _read_dxa_outcome(record_uuid, observation)
        elif slot.startswith("measurement/") and slot.count("/") == 1:
            method = slot.split("/", 1)[1]
            band = _first_code(
                (observation.get("interpretation") or [None])[0], f"{SYSTEM}:measurement-band"
            )
            measurement_bands[method] = band or "refused"
        elif slot == "quality":
            quality_verdict = _first_code(
                observation.get("valueCodeableConcept"), f"{SYSTEM}:quality-verdict"
            )
            for component in observation.get("component") or ():
                value = component.get("valueCodeableConcept")
                intake_error = _first_code(value, f"{SYSTEM}:intake-error")
                quality_code = _first_code(value, f"{SYSTEM}:quality-code")
                if intake_error:
                    refusals.append(intake_error)
                elif quality_code:
                    quality_codes.append(quality_code)
    prediction = (risk.get("prediction") or [{}])[0]
    image = None
    for resource in by_url.values():
        if resource.get("resourceType") == "Binary" and resource.get("id") == record_uuid:
            try:
                image = base64.b64decode(resource.get("data") or "", validate=True)
            except ValueError as exc:
                raise BundleError(f"record {record_uuid}: image is not base64") from exc
    return ReceivedRecord(
        record_uuid=record_uuid,
        site_id=str(site_id),
        device_id=str(device_id),
        patient_key=patient_key,
        capture_time=str(capture_time),
        clock_synchronised=bool((provenance.get("clockSynchronised") or [False])[0]),
        sex=patient.get("gender") if patient.get("gender") in ("female", "male") else None,
        age_years=age_years,
        age_at_least=age_at_least,
        referral_category=_first_code(prediction.get("outcome"), f"{SYSTEM}:referral-category"),
        quality_verdict=quality_verdict,
        # a refusal: the file could not be read, or a quality gate failed
        quality_refusal_codes=tuple(refusals)
        + (tuple(quality_codes) if quality_verdict == "fail" else ()),
        models=tuple(models),
        resources=(patient, *observations, risk),
        image=image,
        case_record=case_record,
        revision=revision,
        supersedes=supersedes,
        measurement_bands=measurement_bands,
        policy_version=_code_text((provenance.get("policyVersion") or [None])[0]),
        primary_model=primary_model,
        referral_score=score if score_kind else osta,
        referral_score_kind=score_kind or ("osta" if osta is not None else None),
        **dxa,
    )


def _finite(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    number = float(value)
    return number if abs(number) < 1e9 else None


def _code_text(value: object) -> str | None:
    return value if isinstance(value, str) and _UUID_LIKE.match(value) else None


def _read_dxa_outcome(record_uuid: str, observation: Mapping[str, Any]) -> dict[str, Any]:
    """The dxa_* fields of ReceivedRecord from the record's dxa-outcome Observation."""
    outcome = within = None
    for component in observation.get("component") or ():
        kind = _first_code(component.get("code"), f"{SYSTEM}:dxa")
        if kind == "outcome":
            outcome = _first_code(component.get("valueCodeableConcept"), f"{SYSTEM}:dxa-outcome")
        elif kind == "within-six-months":
            within = component.get("valueBoolean")
    if outcome not in ("result", "declined", "could_not_travel"):
        raise BundleError(
            f"record {record_uuid}: the DXA outcome must be result, declined or could_not_travel"
        )
    lowest = (observation.get("valueQuantity") or {}).get("value")
    band = _first_code((observation.get("interpretation") or [None])[0], f"{SYSTEM}:who-band")
    if outcome != "result":
        return {"dxa_outcome": outcome}
    if band not in ("osteoporosis", "low_bone_mass", "normal"):
        raise BundleError(f"record {record_uuid}: a DXA result needs its WHO band")
    lowest = _finite(lowest)
    if lowest is None or abs(lowest) > DXA_T_BOUND:
        raise BundleError(f"record {record_uuid}: the DXA result's lowest T-score is out of range")
    if within is not None and not isinstance(within, bool):
        raise BundleError(f"record {record_uuid}: within-six-months must be true or false")
    return {
        "dxa_outcome": outcome,
        "dxa_who_band": band,
        "dxa_lowest_t_score": lowest,
        "dxa_within_six_months": within,
    }


def _read_revision(record_uuid: str, risk: Mapping[str, Any]) -> tuple[str, int, str | None]:
    """(case record, revision, supersedes); a record without the extension (a box from
    before revisions) is its case's first record."""
    values = _extension_values(risk, REVISION_URL)
    case_record = (values.get("caseRecord") or [None])[0] or record_uuid
    revision = (values.get("number") or [1])[0]
    supersedes = (values.get("supersedes") or [None])[0]
    if isinstance(revision, bool) or not isinstance(revision, int):
        raise BundleError(f"record {record_uuid}: the revision number must be an integer")
    if not 1 <= revision <= MAX_REVISION:
        raise BundleError(f"record {record_uuid}: revision out of range")
    for name, value in (("caseRecord", case_record), ("supersedes", supersedes)):
        if value is not None and not (isinstance(value, str) and _UUID_LIKE.match(value)):
            raise BundleError(f"record {record_uuid}: {name} must be a record identifier")
    if revision > 1 and (not supersedes or case_record == record_uuid):
        raise BundleError(
            f"record {record_uuid}: a revision names its case record and the record it supersedes"
        )
    if revision == 1 and (supersedes or case_record != record_uuid):
        raise BundleError(f"record {record_uuid}: a first record supersedes nothing")
    return case_record, revision, supersedes


# --- DXA results delivered back to the box (hub -> box) ----------------------------------------

DXA_RESULT_CODE = "dxa-result"
DXA_SYSTEM = f"{SYSTEM}:dxa"


@dataclass(frozen=True)
class DeliveredDxa:
    """A DXA result for a pseudonymous case record: the site, the patient's pseudonymous key
    and the case's first record UUID it is matched by (never a name), and the result as the
    fields edgeosteo.dxa checks (date, centre, device, the T- and Z-scores)."""

    site_id: str
    patient_key: str
    case_record: str
    fields: Mapping[str, object]
    delivery_id: str | None = None


def dxa_result_observation(
    site_id: str, patient_key: str, case_record: str, fields: Mapping[str, object]
) -> dict[str, Any]:
    """The FHIR Observation of a DXA result for a case record (what the hub is given and
    what it hands the box). ``fields`` as POST /api/v1/cases/{id}/dxa takes them."""
    resource: dict[str, Any] = {
        "resourceType": "Observation",
        "status": "final",
        "code": _concept(f"{SYSTEM}:observation-type", DXA_RESULT_CODE, "DXA result"),
        "subject": {"identifier": {"system": _patient_key_system(site_id), "value": patient_key}},
        "focus": [{"identifier": {"system": RECORD_SYSTEM, "value": case_record}}],
        "component": [
            {"code": _concept(DXA_SYSTEM, name), "valueQuantity": {"value": value}}
            for name, value in fields.items()
            if name not in ("date", "centre", "device") and value is not None
        ],
    }
    if fields.get("date") is not None:
        resource["effectiveDateTime"] = fields["date"]
    if fields.get("centre") is not None:
        resource["performer"] = [{"display": fields["centre"]}]
    if fields.get("device") is not None:
        resource["device"] = {"display": fields["device"]}
    return resource


def read_dxa_result(resource: object) -> DeliveredDxa:
    """The DXA result an Observation carries; BundleError when it is not one. The scores are
    not checked here: the box (and the hub before it) check them as the page does."""
    if not isinstance(resource, Mapping) or resource.get("resourceType") != "Observation":
        raise BundleError("not a FHIR Observation")
    if _first_code(resource.get("code"), f"{SYSTEM}:observation-type") != DXA_RESULT_CODE:
        raise BundleError(f"Observation.code must be {SYSTEM}:observation-type|{DXA_RESULT_CODE}")
    subject = (resource.get("subject") or {}).get("identifier") or {}
    system = str(subject.get("system") or "")
    site_id = (
        system.removeprefix(PATIENT_KEY_SYSTEM + ":")
        if system.startswith(PATIENT_KEY_SYSTEM + ":")
        else ""
    )
    patient = subject.get("value")
    focus = [
        (f.get("identifier") or {}) for f in resource.get("focus") or () if isinstance(f, Mapping)
    ]
    case_record = next((i.get("value") for i in focus if i.get("system") == RECORD_SYSTEM), None)
    if not (site_id and _UUID_LIKE.match(site_id)):
        raise BundleError(f"subject.identifier.system must be {PATIENT_KEY_SYSTEM}:<site>")
    if not (isinstance(patient, str) and _UUID_LIKE.match(patient)):
        raise BundleError("subject.identifier.value must be the patient's pseudonymous key")
    if not (isinstance(case_record, str) and _UUID_LIKE.match(case_record)):
        raise BundleError(f"focus must name the case record ({RECORD_SYSTEM})")
    fields: dict[str, object] = {"date": resource.get("effectiveDateTime")}
    performer = (resource.get("performer") or [{}])[0]
    fields["centre"] = performer.get("display") if isinstance(performer, Mapping) else None
    device = resource.get("device")
    if isinstance(device, Mapping) and device.get("display") is not None:
        fields["device"] = device["display"]
    for component in resource.get("component") or ():
        if not isinstance(component, Mapping):
            raise BundleError("every component needs a code and a valueQuantity")
        name = _first_code(component.get("code"), DXA_SYSTEM)
        value = (component.get("valueQuantity") or {}).get("value")
        if not isinstance(name, str) or not name:
            raise BundleError(f"every component's code must be in {DXA_SYSTEM}")
        if name == "research_consent":
            raise BundleError("research consent is the patient's answer at the box, not the hub's")
        fields[name[:80]] = value
    delivery_id = resource.get("id")
    return DeliveredDxa(
        site_id,
        patient,
        case_record,
        fields,
        delivery_id if isinstance(delivery_id, str) else None,
    )
