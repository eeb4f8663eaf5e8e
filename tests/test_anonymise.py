"""What leaves the box: the allow-listed summary, the pseudonym, the de-identified images.

The PHI test screens DICOMs whose headers carry names, ids and dates, stores them with a
local patient id and free text, sends everything (images on) through a proxy that keeps
every request body, and fails on any identifying value found in those bytes.
"""

from __future__ import annotations

import base64
import copy
import io
import json
import re
import stat
from pathlib import Path

import pydicom
import pytest
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from test_sync import (
    FaultProxy,
    add_cases,
    box_settings,
    drain,
    result_template,
    start_hub,
    stop_hub,
)

from edgeosteo.anonymise import (
    AgeGroup,
    anonymise_case,
    date_shift_days,
    deidentify_dicom,
    load_site_secret,
    patient_key,
    remapped_uid,
    shifted_date,
)
from edgeosteo.config import SyncSettings, load_settings
from edgeosteo.fhir import transaction_bundle
from edgeosteo.intake import read_image
from edgeosteo.screening import Screener
from edgeosteo.store import CaseStore

PLANTED = {
    "name": "Zhang^Weiming",
    "patient_id": "MRN-448812",
    "other_id": "NHI-77310456",
    "birth_date": "19470211",
    "accession": "ACC-99172",
    "institution": "Riverside Township Clinic",
    "physician": "Okafor^Adaeze",
    "address": "14 Willow Lane, Eastbrook",
    "phone": "+44 7700 900123",
    "comment": "patient Weiming reports fall on stairs",
    "request_id": "REQ-55129",
    "private": "PRIV-ID-31337",
}
LOCAL_ID = "LOCAL-ID-20931"
FREE_TEXT = "called Mrs Huang Meilin on her mobile"


def _planted_dicom(source: Path, **changes: str) -> bytes:
    """A real radiograph whose header carries identifiers in many places."""
    dataset = pydicom.dcmread(source)
    dataset.PatientName = PLANTED["name"]
    dataset.PatientID = PLANTED["patient_id"]
    dataset.OtherPatientIDs = PLANTED["other_id"]
    dataset.PatientBirthDate = PLANTED["birth_date"]
    dataset.AccessionNumber = PLANTED["accession"]
    dataset.InstitutionName = PLANTED["institution"]
    dataset.ReferringPhysicianName = PLANTED["physician"]
    dataset.PatientAddress = PLANTED["address"]
    dataset.PatientTelephoneNumbers = PLANTED["phone"]
    dataset.ImageComments = PLANTED["comment"]
    dataset.StudyDescription = f"Knee {PLANTED['name']}"
    dataset.StudyDate = "20190314"
    dataset.AcquisitionDate = "20190314"
    request = Dataset()
    request.RequestedProcedureID = PLANTED["request_id"]
    request.AccessionNumber = PLANTED["accession"]
    dataset.RequestAttributesSequence = Sequence([request])
    block = dataset.private_block(0x0011, "EDGEOSTEO TEST", create=True)
    block.add_new(0x01, "LO", PLANTED["private"])
    for keyword, value in changes.items():
        setattr(dataset, keyword, value)
    buffer = io.BytesIO()
    dataset.save_as(buffer)
    return buffer.getvalue()


def _forbidden(values: list[str]) -> list[re.Pattern[bytes]]:
    """Each identifying value, its name parts, and dates also as YYYY-MM-DD, matched as
    whole tokens (a short id inside a hex digest or a float is no leak)."""
    variants: set[str] = set()
    for value in values:
        value = value.strip()
        if not value:
            continue
        variants.add(value)
        variants.update(p for p in value.split("^") if len(p) >= 3)  # name components
        if re.fullmatch(r"\d{8}", value):
            variants.add(f"{value[:4]}-{value[4:6]}-{value[6:]}")
    return [
        re.compile(rb"(?<![A-Za-z0-9])" + re.escape(v.encode()) + rb"(?![A-Za-z0-9])", re.I)
        for v in sorted(variants)
    ]


def _leaks(payload: bytes, patterns: list[re.Pattern[bytes]]) -> list[str]:
    return [p.pattern.decode(errors="replace") for p in patterns if p.search(payload)]


def _payload_parts(body: bytes) -> tuple[bytes, list[bytes]]:
    """The bundle's text without image data, and each image's DICOM bytes less the pixel
    data (base64 hides an image's header; text burned into pixels is the burned-in
    annotation check's job, not a byte scan's)."""
    bundle = json.loads(body)
    headers = []
    for entry in bundle["entry"]:
        resource = entry["resource"]
        if resource["resourceType"] == "Binary":
            dataset = pydicom.dcmread(io.BytesIO(base64.b64decode(resource.pop("data"))))
            del dataset.PixelData
            buffer = io.BytesIO()
            dataset.save_as(buffer)
            headers.append(buffer.getvalue())
    return json.dumps(bundle, ensure_ascii=False).encode(), headers


@pytest.fixture(scope="module")
def screener(tmp_path_factory):
    return Screener(load_settings(data_dir=tmp_path_factory.mktemp("screener"), environ={}))


def test_no_identifier_leaves_the_box_from_dicoms_with_names_ids_and_dates(
    tmp_path, screener, pydicom_data_dir, deid_data_dir
):
    sources: dict[str, bytes] = {
        name: (pydicom_data_dir / name).read_bytes()
        for name in ("RG1_UNCR.dcm", "RG3_UNCR.dcm", "MR2_UNCR.dcm", "US1_UNCR.dcm")
    }
    sources["cat.dcm"] = (deid_data_dir / "animals" / "cat.dcm").read_bytes()
    radiograph = pydicom_data_dir / "RG3_UNCR.dcm"
    sources["planted.dcm"] = _planted_dicom(radiograph)
    sources["planted-burned-in.dcm"] = _planted_dicom(radiograph, BurnedInAnnotation="YES")
    sources["planted-secondary.dcm"] = _planted_dicom(
        radiograph, ImageType=["DERIVED", "SECONDARY"]
    )
    hub = start_hub(tmp_path / "hub")
    proxy = FaultProxy(hub.port)
    settings = box_settings(
        tmp_path / "box",
        f"http://127.0.0.1:{proxy.port}/fhir",
        hub.token,
        include_images=True,
        image_batch_size=3,
        read_timeout_s=60.0,
    )
    store = CaseStore(settings.data_dir)
    identifying: list[str] = [LOCAL_ID, FREE_TEXT, *PLANTED.values()]
    for number, (name, data) in enumerate(sources.items()):
        answers = {"age_years": 93 - number, "sex": "female", "weight_kg": 51, "height_m": 1.5}
        screening = screener.screen(data, answers)
        identity = read_image(data, screener.settings.intake).identity
        identifying += identity.identifying_values()
        result = screening.to_dict()
        # free text in places a result may hold it: none of it is on the allow-list
        result["answer_problems"] = [{"field": "weight_kg", "code": "x", "value": FREE_TEXT}]
        result["note"] = FREE_TEXT
        result["referral"]["reasons"].append(
            {"code": "note", "evidence": FREE_TEXT, "evidence_zh_CN": FREE_TEXT}
        )
        result["clinical"]["indications"][0]["evidence_zh_CN"] = FREE_TEXT
        store.save_case(
            result,
            identity=screening.identity,
            source_bytes=data,
            original_name=name,
            local_patient_id=f"{LOCAL_ID}-{number}" if number else LOCAL_ID,
        )
    try:
        drain(settings, store)
    finally:
        proxy.close()
        stop_hub(hub)
    assert store.sync_status().counts == {"sent": len(sources)}
    patterns = _forbidden(identifying)
    for body in proxy.bodies:
        text, headers = _payload_parts(body)
        for part in (text, *headers):
            assert _leaks(part, patterns) == []
    sent = [json.loads(body)["entry"] for body in proxy.bodies]
    images = {
        e["resource"]["id"]
        for entries in sent
        for e in entries
        if "Binary" in e["fullUrl"] or e["resource"]["resourceType"] == "Binary"
    }
    withheld = {
        component["valueCodeableConcept"]["coding"][0]["code"]
        for entries in sent
        for e in entries
        for component in e["resource"].get("component", ())
        if component["code"]["coding"][0]["code"] == "image-withheld"
    }
    # the planted twins with burned-in text or a secondary-capture type stay on the box
    assert withheld == {"image.burned_in_annotation", "image.secondary_capture"}
    assert len(images) == len(sources) - 2


def test_a_deidentified_image_keeps_pixels_and_remaps_uids_and_shifts_dates(pydicom_data_dir):
    secret = bytes(range(32))
    sync = SyncSettings()
    original_bytes = _planted_dicom(pydicom_data_dir / "RG1_UNCR.dcm")
    original = pydicom.dcmread(io.BytesIO(original_bytes))
    key = patient_key(secret, PLANTED["patient_id"])
    result = deidentify_dicom(original_bytes, secret, key, sync)
    assert result.withheld_code is None
    cleaned = pydicom.dcmread(io.BytesIO(result.dicom))
    assert cleaned.PatientIdentityRemoved == "YES"
    assert cleaned.PatientID == key
    assert "PatientName" not in cleaned and "PatientBirthDate" not in cleaned
    assert "RequestAttributesSequence" not in cleaned and "ImageComments" not in cleaned
    assert not any(element.tag.is_private for element in cleaned)
    assert {c.CodeValue for c in cleaned.DeidentificationMethodCodeSequence} == {
        "113100",
        "113107",
    }
    for keyword in ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID"):
        assert cleaned[keyword].value == remapped_uid(secret, original[keyword].value)
        assert cleaned[keyword].value != original[keyword].value
    assert cleaned.file_meta.MediaStorageSOPInstanceUID == cleaned.SOPInstanceUID
    shift = date_shift_days(secret, key, sync.date_shift_max_days)
    assert -sync.date_shift_max_days <= shift <= -1
    assert cleaned.StudyDate == shifted_date("20190314", shift)
    assert cleaned.AcquisitionDate == cleaned.StudyDate  # intervals hold
    assert (cleaned.pixel_array == original.pixel_array).all()
    again = deidentify_dicom(original_bytes, secret, key, sync)
    assert again.dicom == result.dicom  # the same input gives the same UIDs and dates
    other_site = deidentify_dicom(original_bytes, bytes(32), key, sync)
    assert pydicom.dcmread(io.BytesIO(other_site.dicom)).SOPInstanceUID != cleaned.SOPInstanceUID


@pytest.mark.parametrize(
    ("changes", "code"),
    [
        ({"BurnedInAnnotation": "YES"}, "image.burned_in_annotation"),
        ({"ImageType": ["DERIVED", "SECONDARY"]}, "image.secondary_capture"),
        ({"SOPClassUID": "1.2.840.10008.5.1.4.1.1.7"}, "image.secondary_capture"),
    ],
)
def test_images_that_may_carry_burned_in_text_are_withheld(pydicom_data_dir, changes, code):
    data = _planted_dicom(pydicom_data_dir / "RG3_UNCR.dcm", **changes)
    result = deidentify_dicom(data, bytes(32), "key", SyncSettings())
    assert (result.dicom, result.withheld_code) == (None, code)


def test_non_dicom_and_unreadable_images_are_withheld():
    assert deidentify_dicom(b"\x89PNG\r\n", bytes(32), "k", SyncSettings()).withheld_code == (
        "image.not_dicom"
    )
    broken = b"\0" * 128 + b"DICM" + b"\xff" * 64
    assert deidentify_dicom(broken, bytes(32), "k", SyncSettings()).withheld_code == (
        "image.unreadable"
    )


def test_site_secret_is_made_once_private_and_never_overwritten(tmp_path):
    path = tmp_path / "data" / "site-secret"
    first = load_site_secret(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert len(first) == 32
    assert load_site_secret(path) == first
    before = path.read_bytes()
    load_site_secret(path)
    assert path.read_bytes() == before
    other = load_site_secret(tmp_path / "elsewhere" / "site-secret")
    assert other != first
    assert patient_key(first, "P-1") == patient_key(first, " P-1 ")
    assert patient_key(first, "P-1") != patient_key(other, "P-1")
    assert patient_key(first, "P-1") != patient_key(first, "P-2")


@pytest.mark.parametrize(
    ("age", "expected"),
    [(None, None), (45.9, "45"), (89.99, "89"), (90.0, "90+"), (104.0, "90+")],
)
def test_ages_from_90_are_one_group(age, expected):
    group = AgeGroup.of(age, 90)
    assert (group.label if group else None) == expected


def _stored_case(tmp_path, mutate=None):
    settings = box_settings(tmp_path / "box", "https://hub.invalid/fhir", "t")
    store = CaseStore(settings.data_dir)
    (case_uuid,) = add_cases(store, 1)
    case = store.get_case_by_uuid(case_uuid)
    if mutate:
        result = copy.deepcopy(case.result)
        mutate(result)
        case = store.update_result(case.id, result, case.state)
    return settings, case, store.get_outbox(case_uuid)


def test_the_summary_is_built_from_an_allow_list(tmp_path):
    def mutate(result):
        result["clinical"]["answers"]["age_years"] = 97
        result["referral"]["category"] = "refer; call 555-0100"  # not a code: dropped
        result["clinical"]["instruments"][0]["band"] = FREE_TEXT
        result["patient_name"] = "Huang^Meilin"
        result["image"] = {"modality": "CR", "institution": "Eastbrook", "view_position": "AP"}

    settings, case, outbox = _stored_case(tmp_path, mutate)
    secret = load_site_secret(tmp_path / "secret")
    record = anonymise_case(case, outbox, secret, settings.sync)
    assert record.age == AgeGroup(90, True)
    assert record.referral_category is None
    assert record.instruments[0].band is None
    assert (record.modality, record.view_position) == ("CR", "AP")
    assert record.patient_key == patient_key(secret, case.local_patient_id)
    assert record.patient_key_source == "local_id"
    assert (record.capture_time, record.boot_id) == (outbox.capture_time, outbox.boot_id)
    assert record.monotonic_ns == outbox.monotonic_ns
    assert record.clock_synchronised == outbox.clock_synchronised
    text = json.dumps(transaction_bundle([record]))
    for value in ("97", "Huang", "Eastbrook", "555-0100", FREE_TEXT, case.local_patient_id):
        assert not re.search(rf"(?<![\w.]){re.escape(value)}(?![\w])", text), value
    age = next(
        e["resource"]
        for e in json.loads(text)["entry"]
        if e["fullUrl"] and "age" in json.dumps(e["resource"].get("identifier", ""))
    )
    assert age["valueQuantity"] == {
        "value": 90,
        "comparator": ">=",
        "unit": "a",
        "system": "http://unitsofmeasure.org",
        "code": "a",
    }


def test_a_case_without_any_patient_id_gets_a_one_off_key(tmp_path):
    settings, case, outbox = _stored_case(tmp_path)
    with CaseStore(settings.data_dir).transaction() as connection:
        connection.execute("UPDATE cases SET local_patient_id=NULL WHERE id=?", (case.id,))
    case = CaseStore(settings.data_dir).get_case(case.id)
    secret = load_site_secret(tmp_path / "secret")
    record = anonymise_case(case, outbox, secret, settings.sync)
    assert record.patient_key_source == "none"
    assert record.patient_key == patient_key(secret, f"case:{case.uuid}")


def test_the_template_result_is_a_real_screening():
    result = result_template()
    assert result["referral"]["category"] and result["clinical"]["instruments"]


def test_deidentified_files_are_valid_dicom(pydicom_data_dir, tmp_path):
    data = (pydicom_data_dir / "RG1_UNCR.dcm").read_bytes()
    cleaned = deidentify_dicom(data, bytes(32), "key", SyncSettings()).dicom
    path = Path(tmp_path / "out.dcm")
    path.write_bytes(cleaned)
    dataset = pydicom.dcmread(path)  # no force: preamble, DICM and file meta are in place
    assert dataset.Modality == "CR" and dataset.Rows == 1955


def _spine_measurement() -> dict:
    """A real morphometry of a lateral spine phantom with a planted wedge fracture."""
    import sys

    import numpy as np

    from edgeosteo.config import MeasurementSettings
    from edgeosteo.intake import read_image
    from edgeosteo.measurement import MeasurementRequest
    from edgeosteo.methods import MethodRegistry, measure

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))
    from phantoms import spine

    ph = spine.make(31, deformity="wedge", reduction=0.34)
    taps = spine.jitter(ph.points, np.random.default_rng(0), 2.0)
    rad = read_image(spine.dicom_bytes(ph)).radiograph
    request = MeasurementRequest("vertebrae", tuple(taps), {"first_level": ph.first_level})
    registry = MethodRegistry(Path(__file__).resolve().parents[1] / "models")
    result = measure(request, rad, True, "LSPINE", "LATERAL", registry, MeasurementSettings())
    assert result.status == "measured", result
    return result.to_dict()


def test_measurements_leave_as_index_band_and_graded_levels_never_taps(tmp_path):
    measured = _spine_measurement()
    refused = {"status": "refused", "method": "mci", "method_version": "1.0.0",
               "code": "measurement.not_bone", "points_given": [[12.5, 40.25]]}  # fmt: skip

    def mutate(result):
        result["measurements"] = [measured, refused]

    settings, case, outbox = _stored_case(tmp_path, mutate)
    record = anonymise_case(case, outbox, load_site_secret(tmp_path / "secret"), settings.sync)
    spine_summary, mci = record.measurements
    assert (spine_summary.method, spine_summary.band) == ("vertebrae", "vertebral_fracture")
    assert [v.level for v in spine_summary.vertebrae] == measured["details"]["levels"]
    graded = [v for v in spine_summary.vertebrae if v.grade >= 2]
    assert len(graded) == 1 and graded[0].kind == "wedge"
    assert (mci.status, mci.refusal_code, mci.value) == ("refused", "measurement.not_bone", None)

    bundle = transaction_bundle([record])
    text = json.dumps(bundle)
    for key in ("points_used", "points_given", "point_checks", "overlay", "40.25"):
        assert key not in text
    resources = [e["resource"] for e in bundle["entry"]]
    slots = {
        r["identifier"][0]["value"].split("/", 1)[1]: r
        for r in resources
        if r["resourceType"] == "Observation"
    }
    for v in measured["vertebrae"]:
        obs = slots[f"measurement/vertebrae/{v['level']}"]
        assert obs["valueInteger"] == v["grade"]
        assert obs["bodySite"]["coding"][0]["code"] == v["level"]
    overall = slots["measurement/vertebrae"]
    assert overall["interpretation"][0]["coding"][0]["code"] == "vertebral_fracture"
    assert len(overall["hasMember"]) == len(measured["vertebrae"])
    assert slots["measurement/mci"]["dataAbsentReason"]["coding"][0]["code"] == "error"
    risk = next(r for r in resources if r["resourceType"] == "RiskAssessment")
    basis = {b["reference"] for b in risk["basis"]}
    urls = {e["resource"]["identifier"][0]["value"]: e["fullUrl"] for e in bundle["entry"][1:]}
    assert urls[f"{record.record_uuid}/measurement/vertebrae"] in basis
