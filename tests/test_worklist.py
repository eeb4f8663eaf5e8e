"""Today's list with images from the X-ray unit: queued, needs answers, screened, refused;
pseudonymised names; clinical answers added after the fact re-decide without the image."""

from __future__ import annotations

import pydicom
import pytest
from pynetdicom import AE

import model_factory
from conftest import csrf_token, log_in
from edgeosteo.config import load_settings
from edgeosteo.receiver import Receiver
from edgeosteo.screening import Screener

ANSWERS_AS_DATA = {"age_years": 74, "sex": "female", "weight_kg": 48, "height_m": 1.52}
ANSWERS = {
    "age_years": "74",
    "sex": "female",
    "weight_kg": "48",
    "height_cm": "152",
    "prior_fragility_fracture": "yes",
}


def _models(root):
    """The test clinical model and an image model for chest radiographs."""
    models = model_factory.build_models_dir(root)
    chest = root / "test-chest-image"
    chest.mkdir()
    model_factory.image_model(chest / "model.onnx", seed=2)
    model_factory.write_manifest(
        chest, "test-chest-image", "image", "model.onnx", body_part="CHEST"
    )
    return models


def send(address, paths) -> list[int]:
    datasets = [p if isinstance(p, pydicom.Dataset) else pydicom.dcmread(p) for p in paths]
    ae = AE(ae_title="DR_ROOM1")
    for ds in datasets:
        ae.add_requested_context(ds.SOPClassUID, ds.file_meta.TransferSyntaxUID)
    assoc = ae.associate(*address, ae_title="EDGEOSTEO")
    assert assoc.is_established
    try:
        return [int(assoc.send_c_store(ds).Status) for ds in datasets]
    finally:
        assoc.release()


@pytest.fixture
def clinic(tmp_path):
    """The page and the receiver of one box (the worker is run by the tests)."""
    from edgeosteo.app import build
    from edgeosteo.web.auth import ensure_admin

    def make(**receiver):
        settings = load_settings(
            data_dir=tmp_path / "box",
            environ={},
            models_dir=str(_models(tmp_path / "models")),
            language="en",
            receiver={"port": 0, "worker_enabled": False, **receiver},
        )
        built = build(settings)
        app = built.web
        ensure_admin(built.store, {"EDGEOSTEO_ADMIN_PASSWORD": "pw"})
        box = built.receiver
        box.start()
        opened.append(box)
        client = app.test_client()
        assert log_in(client, "admin", "pw").status_code == 302
        return app, box, client

    opened: list[Receiver] = []
    yield make
    for box in opened:
        box.stop()


def _page(client, query: str = "") -> str:
    return client.get("/cases" + query).get_data(as_text=True)


def test_received_images_move_through_the_list(clinic, pydicom_data_dir):
    _app, box, client = clinic()
    names = ["RG1_UNCR.dcm", "RG3_UNCR.dcm"]
    assert send(box.scp_address, [pydicom_data_dir / n for n in names]) == [0, 0]

    listing = _page(client)
    assert "Queued" in listing
    # RG3 (an EXTREMITY, age 25) is listed with the rule that kept it: its age
    assert "The patient is younger than the screening age" in listing
    # pseudonymised by default: initials and the ID's last characters, never the name
    assert "C.R. 9RG1" in listing and "C.R. …1RG3" in listing
    assert "CompressedSamples" not in listing

    box.worker.drain()
    listing = _page(client)
    assert "Needs clinical answers" in listing
    assert "/cases/1/answers" in listing
    only_refused = _page(client, "?state=refused")
    assert "1RG3" in only_refused and "9RG1" not in only_refused


def test_a_resend_with_other_pixels_is_kept_once_and_shown_as_a_conflict(clinic, pydicom_data_dir):
    app, box, client = clinic()
    store = app.extensions["edgeosteo"].store
    path = pydicom_data_dir / "RG1_UNCR.dcm"
    assert send(box.scp_address, [path]) == [0]
    assert send(box.scp_address, [path]) == [0]  # the same bytes again: a plain duplicate
    assert 'data-code="receiver.duplicate_conflict"' not in _page(client)

    changed = pydicom.dcmread(path)  # same SOP Instance UID, other pixels
    pixels = bytearray(changed.PixelData)
    for i in range(0, 20_000):
        pixels[i] ^= 0xFF
    changed.PixelData = bytes(pixels)
    assert send(box.scp_address, [changed]) == [0]  # acknowledged: the console stops resending
    assert send(box.scp_address, [changed]) == [0]  # the same other copy again: one conflict

    (instance,) = store.list_received()
    kept = pydicom.dcmread(store.data_dir / instance.file)
    assert kept.PixelData == pydicom.dcmread(path).PixelData  # the first copy stays
    assert len(list((store.data_dir / "received").rglob("*.dcm"))) == 1
    listing = _page(client)
    assert listing.count('data-code="receiver.duplicate_conflict"') == 1
    assert "same SOP Instance UID but different pixels" in listing
    assert "C.R. 9RG1" in listing


def test_answers_after_the_fact_re_decide_without_the_image(clinic, pydicom_data_dir):
    app, box, client = clinic()
    assert send(box.scp_address, [pydicom_data_dir / "RG1_UNCR.dcm"]) == [0]
    box.worker.drain()
    store = app.extensions["edgeosteo"].store
    before = store.get_case(1)
    assert before.state == "needs_answers"
    assert before.category == "cannot_assess"
    image_findings = [f for f in before.result["findings"]["results"] if f["kind"] == "image"]
    assert [f["model_id"] for f in image_findings] == ["test-chest-image"]

    form = client.get("/cases/1/answers").get_data(as_text=True)
    assert 'value="female" selected' in form  # PatientSex F, for the technician to confirm
    # the original image is gone: re-deciding must not need it
    (store.data_dir / store.list_received()[0].file).unlink()
    token = csrf_token(client, "/cases/1/answers")
    response = client.post("/cases/1/answers", data={"csrf_token": token, **ANSWERS})
    assert response.status_code == 302
    assert response.headers["Location"].endswith("/cases/1")

    after = store.get_case(1)
    assert after.state == "screened"
    assert after.category != "cannot_assess"
    assert [f for f in after.result["findings"]["results"] if f["kind"] == "image"] == [
        {**f, "has_heatmap": False} for f in image_findings
    ]
    clinical = [f for f in after.result["findings"]["results"] if f["kind"] == "clinical"]
    assert clinical and clinical[0]["p_osteoporosis"] is not None
    assert after.result["clinical"]["answers"]["age_years"] == 74
    assert store.list_received()[0].state == "screened"
    assert "/cases/1/answers" not in _page(client)
    assert after.result["screening_id"] == before.result["screening_id"]


def test_invalid_answers_are_shown_again_and_change_nothing(clinic, pydicom_data_dir):
    app, box, client = clinic()
    send(box.scp_address, [pydicom_data_dir / "RG1_UNCR.dcm"])
    box.worker.drain()
    token = csrf_token(client, "/cases/1/answers")
    response = client.post(
        "/cases/1/answers", data={"csrf_token": token, **ANSWERS, "weight_kg": "900"}
    )
    assert response.status_code == 422
    assert app.extensions["edgeosteo"].store.get_case(1).state == "needs_answers"
    assert client.get("/cases/99/answers").status_code == 404


def test_reassess_keeps_the_stored_image_findings(tmp_path, pydicom_data_dir):
    models = _models(tmp_path / "models")
    settings = load_settings(data_dir=tmp_path / "a", environ={}, models_dir=str(models))
    with_image = Screener(settings)
    stored = with_image.screen(pydicom_data_dir / "RG1_UNCR.dcm").to_dict()

    # a box whose chest image model is gone can still re-decide: nothing re-reads the image
    clinical_only = tmp_path / "clinical-only"
    clinical_only.mkdir()
    (models / "test-clinical").rename(clinical_only / "test-clinical")
    screener = Screener(
        load_settings(data_dir=tmp_path / "b", environ={}, models_dir=str(clinical_only))
    )
    again = screener.reassess(stored, ANSWERS_AS_DATA)
    kinds = {f.model_id: f.kind for f in again.findings.results}
    assert kinds == {"test-clinical": "clinical", "test-chest-image": "image"}
    image = next(f for f in again.findings.results if f.kind == "image")
    stored_image = next(f for f in stored["findings"]["results"] if f["kind"] == "image")
    assert image.p_osteoporosis == stored_image["p_osteoporosis"]
    assert again.quality.to_dict() == stored["quality"]
    assert again.image == stored["image"]
    assert again.referral.category != "cannot_assess"


def test_full_names_when_the_site_chooses_so(clinic, pydicom_data_dir):
    _app, box, client = clinic(worklist_identity="full")
    send(box.scp_address, [pydicom_data_dir / "RG1_UNCR.dcm"])
    assert "CompressedSamples RG1 · 9RG1" in _page(client)


def test_the_list_speaks_chinese(clinic, pydicom_data_dir):
    _app, box, client = clinic()
    send(box.scp_address, [pydicom_data_dir / "RG3_UNCR.dcm", pydicom_data_dir / "RG1_UNCR.dcm"])
    token = csrf_token(client, "/cases")
    client.post("/language", data={"csrf_token": token, "language": "zh_CN"})
    listing = _page(client)
    assert "患者未到筛查年龄" in listing
    assert "排队中" in listing


def test_the_list_says_which_tool_reads_each_received_image(clinic, pydicom_data_dir, tmp_path):
    """Every received image is screened: a chest by the chest model; a hand, for which no
    tool exists yet, as a clinical screening once the answers come; the list says which,
    before and after the worker ran, in both languages."""
    import pydicom.uid

    _app, box, client = clinic()
    hand = pydicom.dcmread(pydicom_data_dir / "RG1_UNCR.dcm")
    hand.BodyPartExamined = "HAND"
    uid = pydicom.uid.generate_uid()
    hand.SOPInstanceUID = hand.file_meta.MediaStorageSOPInstanceUID = uid
    hand.save_as(tmp_path / "hand.dcm")
    described = pydicom.dcmread(pydicom_data_dir / "RG1_UNCR.dcm")
    del described.BodyPartExamined
    described.SpecificCharacterSet = "ISO_IR 192"  # UTF-8, as Chinese consoles write
    described.StudyDescription = "左手正位"
    uid = pydicom.uid.generate_uid()
    described.SOPInstanceUID = described.file_meta.MediaStorageSOPInstanceUID = uid
    described.save_as(tmp_path / "described.dcm")
    paths = [pydicom_data_dir / "RG1_UNCR.dcm", tmp_path / "hand.dcm", tmp_path / "described.dcm"]
    assert send(box.scp_address, paths) == [0, 0, 0]
    states = sorted((i.body_part, i.state) for i in box.inbox.store.list_received())
    assert states == [("CHEST", "queued"), ("HAND", "queued"), ("HAND", "queued")]

    queued = _page(client)
    assert queued.count('data-tool="tool.image_model"') == 1
    # the model's id is for IT support: in the row's data, not in the technician's words
    assert "Read by the image model for this body part." in queued
    assert 'data-models="test-chest-image"' in queued and ">test-chest-image" not in queued
    assert queued.count('data-tool="tool.none_for_body_part"') == 2
    assert "No tool reads this body part yet" in queued

    assert box.worker.drain() == 3
    screened = _page(client)
    assert screened.count('data-tool="tool.image_model"') == 1
    assert screened.count('data-tool="tool.none_for_body_part"') == 2
    assert screened.count("/answers") >= 3  # each waits for its clinical answers
    token = csrf_token(client, "/cases")
    client.post("/language", data={"csrf_token": token, "language": "zh_CN"})
    chinese = _page(client)
    assert "由该部位的图像模型判读" in chinese and "尚无可判读该部位的工具" in chinese


def test_a_received_patient_id_that_is_a_formula_is_neutralised_in_the_export(
    clinic, pydicom_data_dir, tmp_path
):
    import csv
    import io

    _app, box, client = clinic()
    film = pydicom.dcmread(pydicom_data_dir / "RG1_UNCR.dcm")
    film.PatientID = '=HYPERLINK("http://x.example","1")'
    path = tmp_path / "formula.dcm"
    film.save_as(path)
    assert send(box.scp_address, [path]) == [0]
    box.worker.drain()
    export = client.get("/cases/export.csv").get_data(as_text=True).lstrip("\ufeff")
    rows = list(csv.reader(io.StringIO(export)))
    assert len(rows) == 2
    assert rows[1][rows[0].index("local_patient_id")] == "'" + film.PatientID
