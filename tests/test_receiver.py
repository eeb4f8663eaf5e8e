"""The X-ray unit's side: a real Storage SCP on loopback fed by a real pynetdicom SCU with
the pydicom-data files, the persistent queue, the watch folder and `edgeosteo serve`."""

from __future__ import annotations

import io
import os
import re
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import cv2
import numpy as np
import pydicom
import pytest
from pydicom.dataset import FileMetaDataset
from pydicom.filewriter import write_file_meta_info
from pynetdicom import AE, _config

from edgeosteo.cases import CaseWorkflow
from edgeosteo.config import load_settings
from edgeosteo.messages import CATALOGUE
from edgeosteo.receiver import Receiver, ScreeningWorker
from edgeosteo.receiver.eligibility import HeaderFacts, assess_eligibility
from edgeosteo.screening import Screener
from edgeosteo.store import CaseStore

PACKAGE = Path(__file__).resolve().parents[1] / "edgeosteo"
VERIFICATION = "1.2.840.10008.1.1"
MR_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.4"
SECONDARY_CAPTURE = "1.2.840.10008.5.1.4.1.1.7"
COMPUTED_RADIOGRAPHY = "1.2.840.10008.5.1.4.1.1.1"
EXPLICIT_LE = "1.2.840.10008.1.2.1"
# a hang guard for waiting on another process, never a measured duration
PATIENCE_S = 120


# --- a console (SCU) ----------------------------------------------------------------------


def _contexts(datasets) -> set[tuple[str, str]]:
    return {(str(ds.SOPClassUID), str(ds.file_meta.TransferSyntaxUID)) for ds in datasets}


def _console(calling: str = "CONSOLE") -> AE:
    ae = AE(ae_title=calling)
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = 60
    return ae


def send(address, sources, calling: str = "CONSOLE") -> list[int]:
    """Send files (paths or datasets) in one association; the status of each C-STORE."""
    datasets = [s if isinstance(s, pydicom.Dataset) else pydicom.dcmread(s) for s in sources]
    ae = _console(calling)
    for sop_class, syntax in _contexts(datasets):
        ae.add_requested_context(sop_class, syntax)
    assoc = ae.associate(*address, ae_title="EDGEOSTEO")
    assert assoc.is_established
    try:
        return [int(assoc.send_c_store(ds).Status) for ds in datasets]
    finally:
        assoc.release()


def echo(address, calling: str = "CONSOLE") -> int | None:
    ae = _console(calling)
    ae.add_requested_context(VERIFICATION)
    assoc = ae.associate(*address, ae_title="EDGEOSTEO")
    if not assoc.is_established:
        return None
    try:
        return int(assoc.send_c_echo().Status)
    finally:
        assoc.release()


def modified(path: Path, **changes) -> pydicom.Dataset:
    """A real file with some header elements changed and a new SOP Instance UID."""
    ds = pydicom.dcmread(path)
    for keyword, value in changes.items():
        setattr(ds, keyword, value)
    uid = pydicom.uid.generate_uid()
    ds.SOPInstanceUID = uid
    ds.file_meta.MediaStorageSOPInstanceUID = uid
    if "SOPClassUID" in changes:
        ds.file_meta.MediaStorageSOPClassUID = changes["SOPClassUID"]
    return ds


# --- the box ------------------------------------------------------------------------------


@pytest.fixture
def empty_models(tmp_path) -> Path:
    path = tmp_path / "no-models"
    path.mkdir()
    return path


@pytest.fixture
def make_box(tmp_path, empty_models):
    started: list[Receiver] = []

    def make(models_dir: Path | None = None, start: bool = True, **receiver) -> Receiver:
        settings = load_settings(
            data_dir=tmp_path / "box",
            environ={},
            models_dir=str(models_dir or empty_models),
            receiver={"port": 0, "worker_enabled": False, **receiver},
        )
        store = CaseStore(settings.data_dir)
        box = Receiver(settings, CaseWorkflow(Screener(settings), store))
        if start:
            box.start()
            started.append(box)
        return box

    yield make
    for box in started:
        box.stop()


def _instances(box: Receiver) -> dict[str, object]:
    return {i.sop_instance_uid: i for i in box.inbox.store.list_received()}


def _count(box: Receiver, table: str) -> int:
    with box.inbox.store.connect() as connection:
        return int(connection.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0])


# --- association level --------------------------------------------------------------------


def test_c_echo_answers_the_consoles_connection_test(make_box):
    box = make_box()
    assert echo(box.scp_address) == 0x0000


def test_several_images_in_one_association_are_stored_once_and_screened_or_listed(
    make_box, pydicom_data_dir
):
    box = make_box()
    names = ["RG1_UNCR.dcm", "RG1_J2KR.dcm", "RG3_UNCR.dcm", "JPEG-LL.dcm", "SC_rgb.dcm"]
    statuses = send(box.scp_address, [pydicom_data_dir / n for n in names])
    assert statuses == [0x0000] * len(names)

    received = _instances(box)
    assert len(received) == len(names)
    by_name = {
        n: received[str(pydicom.dcmread(pydicom_data_dir / n).SOPInstanceUID)] for n in names
    }
    for name, instance in by_name.items():
        stored = pydicom.dcmread(box.inbox.store.data_dir / instance.file)
        original = pydicom.dcmread(pydicom_data_dir / name)
        assert stored.SOPInstanceUID == original.SOPInstanceUID
        assert stored.PixelData == original.PixelData
    assert by_name["RG1_UNCR.dcm"].state == by_name["RG1_J2KR.dcm"].state == "queued"
    assert by_name["RG1_UNCR.dcm"].body_part == "CHEST"
    # every body part is screened now (a model where one reads it, else clinically once
    # the answers come); only what is no radiograph by its header is kept from screening
    # RG3 is an EXTREMITY: its body part keeps nothing from screening now, its age (25) does
    assert (by_name["RG3_UNCR.dcm"].state, by_name["RG3_UNCR.dcm"].body_part) == (
        "ineligible",
        "EXTREMITY",
    )
    assert by_name["RG3_UNCR.dcm"].reason_code == "receiver.patient_too_young"
    assert by_name["JPEG-LL.dcm"].reason_code == "receiver.modality_not_screened"
    assert by_name["JPEG-LL.dcm"].state == "ineligible"
    assert by_name["SC_rgb.dcm"].reason_code == "receiver.patient_too_young"  # 24 years
    assert {i.state for n, i in by_name.items() if not n.startswith("RG1")} == {"ineligible"}

    assert box.worker.drain() == 2
    store = box.inbox.store

    for name in ("RG1_UNCR.dcm", "RG1_J2KR.dcm"):
        instance = store.get_received(by_name[name].id)
        assert instance.state == "needs_answers"
        case = store.get_case(instance.case_id)
        assert case.state == "needs_answers"
        assert case.created_by == "receiver"
        assert case.body_part == "CHEST"
        assert case.local_patient_id == "9RG1"
        assert case.result["quality"]["verdict"] == "pass"
    assert store.count_cases() == 2


def test_a_resent_image_is_stored_once(make_box, pydicom_data_dir):
    box = make_box()
    path = pydicom_data_dir / "RG1_UNCR.dcm"
    assert send(box.scp_address, [path]) == [0x0000]
    assert send(box.scp_address, [path]) == [0x0000]
    assert _count(box, "received_instances") == 1
    assert _count(box, "jobs") == 1
    received_files = [p for p in (box.inbox.root).rglob("*.dcm")]
    assert len(received_files) == 1
    box.worker.drain()
    assert box.inbox.store.count_cases() == 1


def test_concurrent_associations_each_arrive(make_box, pydicom_data_dir):
    box = make_box()
    batches = [
        ["RG1_UNCI.dcm", "RG3_UNCI.dcm"],
        ["RG1_J2KR.dcm", "SC_rgb_expb.dcm"],
        ["RG3_J2KR.dcm", "JPEG2000_UNC.dcm"],
        # the same SOP instance as RG1_UNCI, JPEG 2000 coded: one image, kept once
        ["RG1_J2KI.dcm"],
    ]
    results: dict[int, list[int]] = {}
    errors: list[BaseException] = []

    def run(index: int, names: list[str]) -> None:
        try:
            results[index] = send(
                box.scp_address, [pydicom_data_dir / n for n in names], calling=f"ROOM{index}"
            )
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i, b)) for i, b in enumerate(batches)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    assert all(set(statuses) == {0x0000} for statuses in results.values())
    received = _instances(box)
    assert len(received) == 6
    assert _count(box, "jobs") == 2
    assert len(list(box.inbox.root.rglob("*.dcm"))) == 6
    assert {i.calling_ae for i in received.values()} >= {"ROOM1", "ROOM2"}
    assert {i.peer for i in received.values()} == {"127.0.0.1"}
    assert box.worker.drain() == 2  # the two chest images; the rest are listed
    assert box.inbox.store.count_cases() == 2


def test_mr_and_ct_are_refused_and_nothing_is_stored(make_box, pydicom_data_dir):
    box = make_box()
    mr = pydicom.dcmread(pydicom_data_dir / "MR2_UNCR.dcm")
    ct = pydicom.dcmread(pydicom.data.get_testdata_file("CT_small.dcm"))
    ae = _console()
    for ds in (mr, ct):
        ae.add_requested_context(ds.SOPClassUID, ds.file_meta.TransferSyntaxUID)
    ae.add_requested_context(VERIFICATION)
    assoc = ae.associate(*box.scp_address, ae_title="EDGEOSTEO")
    assert assoc.is_established
    try:
        rejected = {str(cx.abstract_syntax) for cx in assoc.rejected_contexts}
        assert rejected == {str(mr.SOPClassUID), str(ct.SOPClassUID)}
        for ds in (mr, ct):
            with pytest.raises(ValueError, match="presentation context"):
                assoc.send_c_store(ds)
    finally:
        assoc.release()
    assert _count(box, "received_instances") == 0

    # an MR exported by a workstation as secondary capture is kept and listed, not screened
    as_sc = modified(pydicom_data_dir / "MR2_UNCR.dcm", SOPClassUID=SECONDARY_CAPTURE)
    assert send(box.scp_address, [as_sc]) == [0x0000]
    (instance,) = box.inbox.store.list_received()
    assert (instance.state, instance.reason_code) == (
        "ineligible",
        "receiver.modality_not_screened",
    )


def _send_raw(address, path: Path) -> int:
    """Send a file's bytes as they are (pynetdicom streams them without decoding)."""
    meta = pydicom.dcmread(path, stop_before_pixels=True).file_meta
    ae = _console()
    ae.add_requested_context(meta.MediaStorageSOPClassUID, meta.TransferSyntaxUID)
    assoc = ae.associate(*address, ae_title="EDGEOSTEO")
    assert assoc.is_established
    previous = _config.STORE_SEND_CHUNKED_DATASET
    _config.STORE_SEND_CHUNKED_DATASET = True
    try:
        return int(assoc.send_c_store(path).Status)
    finally:
        _config.STORE_SEND_CHUNKED_DATASET = previous
        assoc.release()


def _garbage_dicom(path: Path) -> Path:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = COMPUTED_RADIOGRAPHY
    meta.MediaStorageSOPInstanceUID = pydicom.uid.generate_uid()
    meta.TransferSyntaxUID = EXPLICIT_LE
    buffer = io.BytesIO()
    buffer.write(b"\0" * 128 + b"DICM")
    write_file_meta_info(buffer, meta)
    rng = np.random.default_rng(3)
    path.write_bytes(buffer.getvalue() + rng.integers(0, 256, 4096, dtype=np.uint8).tobytes())
    return path


def test_malformed_dicom_gets_a_failure_status_and_the_scp_keeps_serving(
    make_box, pydicom_data_dir, tmp_path
):
    box = make_box()
    garbage = _garbage_dicom(tmp_path / "garbage.dcm")
    truncated = tmp_path / "truncated.dcm"
    truncated.write_bytes((pydicom_data_dir / "RG1_UNCR.dcm").read_bytes()[:3_000_000])

    for bad in (garbage, truncated):
        status = _send_raw(box.scp_address, bad)
        assert status >= 0xA000, hex(status)  # a failure, not success or a warning
    assert _count(box, "received_instances") == 0

    assert echo(box.scp_address) == 0x0000
    assert send(box.scp_address, [pydicom_data_dir / "RG1_UNCR.dcm"]) == [0x0000]
    assert _count(box, "received_instances") == 1


def test_a_subsampled_ybr_image_is_stored_not_called_malformed(make_box):
    """YBR_FULL_422 carries two samples' worth of bytes per pixel, not three."""
    box = make_box()
    path = Path(pydicom.data.get_testdata_file("SC_ybr_full_422_uncompressed.dcm"))
    assert send(box.scp_address, [path]) == [0x0000]
    assert _count(box, "received_instances") == 1


def test_a_full_queue_refuses_eligible_images_but_still_lists_the_others(
    make_box, pydicom_data_dir
):
    box = make_box(queue_limit=1)
    names = ["RG1_UNCR.dcm", "RG1_J2KR.dcm", "RG3_UNCR.dcm"]
    statuses = send(box.scp_address, [pydicom_data_dir / n for n in names])
    assert statuses == [0x0000, 0xA700, 0x0000]
    assert _count(box, "jobs") == 1
    box.worker.drain()
    assert send(box.scp_address, [pydicom_data_dir / "RG1_J2KR.dcm"]) == [0x0000]


def _association_outcome(address, calling: str = "CONSOLE", called: str = "EDGEOSTEO"):
    """How the box answers an association request: "established", or "rejected" with the
    A-ASSOCIATE-RJ's (result, source, diagnostic), or "aborted" (no RJ, a closed socket)."""
    ae = _console(calling)
    ae.add_requested_context(VERIFICATION)
    assoc = ae.associate(*address, ae_title=called)
    if assoc.is_established:
        assoc.release()
        return "established"
    if assoc.is_rejected:
        answer = assoc.acceptor.primitive
        return ("rejected", (answer.result, answer.result_source, answer.diagnostic))
    return "aborted"


REJECTED_PERMANENT = 0x01
SERVICE_USER = 0x01


def test_allow_lists_refuse_unknown_consoles(make_box, pydicom_data_dir):
    box = make_box(allowed_calling_ae_titles=["DR_ROOM1"])
    assert echo(box.scp_address, calling="DR_ROOM1") == 0x0000
    assert _association_outcome(box.scp_address, calling="STRANGER") == (
        "rejected",
        (REJECTED_PERMANENT, SERVICE_USER, 0x03),  # calling AE title not recognised
    )
    box.stop()

    box = make_box(allowed_addresses=["192.0.2.10"])
    for _ in range(3):  # every time, not by luck of thread timing
        assert _association_outcome(box.scp_address, calling="DR_ROOM1") == (
            "rejected",
            (REJECTED_PERMANENT, SERVICE_USER, 0x01),  # no reason given
        )
    assert _count(box, "received_instances") == 0


def test_a_called_ae_title_that_is_not_ours_is_rejected(make_box, pydicom_data_dir):
    box = make_box()
    for called in ("WRONG", "NOTEDGEOSTEO", "EDGEOSTE"):
        assert _association_outcome(box.scp_address, called=called) == (
            "rejected",
            (REJECTED_PERMANENT, SERVICE_USER, 0x07),  # called AE title not recognised
        ), called
    assert _association_outcome(box.scp_address) == "established"
    assert send(box.scp_address, [pydicom_data_dir / "RG1_UNCR.dcm"]) == [0x0000]
    assert _count(box, "received_instances") == 1
    box.stop()

    box = make_box(accept_any_called_ae_title=True)
    assert _association_outcome(box.scp_address, called="WRONG") == "established"


def _idle_association(address):
    """An association that is established and then sends nothing."""
    ae = _console("IDLER")
    ae.add_requested_context(VERIFICATION)
    assoc = ae.associate(*address, ae_title="EDGEOSTEO")
    assert assoc.is_established
    return assoc


def test_idle_peers_cannot_hold_every_association_slot(make_box):
    idle_s = 1.0
    box = make_box(max_associations=2, idle_timeout_seconds=idle_s, network_timeout_seconds=60)
    squatters = [_idle_association(box.scp_address) for _ in range(2)]
    silent = socket.create_connection(box.scp_address)  # no A-ASSOCIATE-RQ at all
    try:
        # every slot held: refused at once (transient, local limit exceeded)
        assert _association_outcome(box.scp_address) == ("rejected", (0x02, 0x03, 0x02))
        started = time.monotonic()
        outcome = None
        while time.monotonic() - started < idle_s + 10:  # bounded; far below 60 s
            outcome = _association_outcome(box.scp_address)
            if outcome == "established":
                break
            time.sleep(0.2)
        waited = time.monotonic() - started
        assert outcome == "established"
        assert waited < idle_s + 5, waited
        assert all(not a.is_established for a in squatters)  # the box dropped them
        silent.settimeout(idle_s + 5)
        assert silent.recv(1024) == b""  # closed by the ACSE timeout, not left open
    finally:
        silent.close()
        for assoc in squatters:
            if assoc.is_established:
                assoc.abort()


def test_a_console_that_has_sent_data_gets_the_long_network_timeout(make_box):
    box = make_box(idle_timeout_seconds=0.5, network_timeout_seconds=60)
    ae = _console()
    ae.add_requested_context(VERIFICATION)
    assoc = ae.associate(*box.scp_address, ae_title="EDGEOSTEO")
    assert assoc.is_established
    try:
        assert int(assoc.send_c_echo().Status) == 0x0000
        time.sleep(1.5)  # three idle timeouts: a console between images is not cut off
        assert assoc.is_established
        assert int(assoc.send_c_echo().Status) == 0x0000
    finally:
        assoc.release()


# --- eligibility --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "rules", "expected"),
    [
        ({}, {}, None),
        ({"PatientAge": "035Y"}, {}, "receiver.patient_too_young"),
        ({"PatientAge": "035Y"}, {"min_age_years": 18}, None),
        ({"ViewPosition": "LL"}, {"view_positions": ["PA", "AP"]}, "receiver.view_not_screened"),
        ({"ImageLaterality": "B"}, {}, "receiver.laterality_not_screened"),
        ({"Modality": "MG"}, {}, "receiver.modality_not_screened"),
        ({"BodyPartExamined": "pelvis"}, {}, None),
        ({"BodyPartExamined": "SKULL"}, {}, None),  # screened: no model reads it yet
    ],
)
def test_eligibility_rules_on_real_headers(pydicom_data_dir, changes, rules, expected):
    settings = load_settings(environ={}, receiver=rules).receiver
    ds = modified(pydicom_data_dir / "RG1_UNCR.dcm", **changes)
    verdict = assess_eligibility(HeaderFacts.from_dataset(ds), settings)
    assert verdict.reason_code == expected
    assert verdict.eligible is (expected is None)


def test_age_comes_from_birth_and_study_date_when_patient_age_is_absent(pydicom_data_dir):
    # RG3: born 1979-04-08, imaged 2004-08-26
    facts = HeaderFacts.from_dataset(pydicom.dcmread(pydicom_data_dir / "RG3_UNCR.dcm"))
    assert facts.age_years == pytest.approx(25.4, abs=0.1)
    knee_rules = load_settings(environ={}, receiver={"body_parts": {"EXTREMITY": "KNEE"}})
    verdict = assess_eligibility(facts, knee_rules.receiver)
    assert verdict.reason_code == "receiver.patient_too_young"


def test_a_received_picture_that_is_no_radiograph_keeps_nothing_of_the_image(
    make_box, pydicom_data_dir
):
    """SC_rgb is a colour picture (a secondary capture) with no body part; the site assumes
    knees for bare images. It is listed as refused with its reason, but no case row, image
    or thumbnail of it stays on the box."""
    box = make_box(default_body_part="KNEE", min_age_years=18)
    assert send(box.scp_address, [pydicom_data_dir / "SC_rgb.dcm"]) == [0x0000]
    box.worker.drain()
    store = box.inbox.store
    (instance,) = store.list_received()
    assert (instance.state, instance.reason_code) == ("refused", "quality.not_radiograph")
    assert instance.case_id is None and instance.file == ""
    assert store.count_cases() == 0
    kept = [p for p in store.data_dir.rglob("*") if p.is_file() and p.suffix in (".dcm", ".png")]
    assert kept == []


def test_an_image_the_gates_refuse_is_a_refused_case_with_its_reason(make_box, tmp_path):
    """A radiograph too small to assess is a refused case with its reason (it is a
    radiograph: the case is kept so the console's image is not lost)."""
    import numpy as np
    from pydicom.dataset import FileDataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.1"
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = FileDataset(str(tmp_path / "small.dcm"), {}, file_meta=meta, preamble=b"\0" * 128)
    ds.SOPClassUID, ds.SOPInstanceUID = (
        meta.MediaStorageSOPClassUID,
        meta.MediaStorageSOPInstanceUID,
    )
    ds.Modality, ds.BodyPartExamined, ds.PatientAge = "CR", "KNEE", "070Y"
    ds.Rows = ds.Columns = 120
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated = ds.BitsStored = 8
    ds.HighBit, ds.PixelRepresentation = 7, 0
    ds.PixelData = np.random.default_rng(1).integers(0, 255, (120, 120), np.uint8).tobytes()
    ds.save_as(tmp_path / "small.dcm", enforce_file_format=True)
    box = make_box(min_age_years=18)
    assert send(box.scp_address, [tmp_path / "small.dcm"]) == [0x0000]
    box.worker.drain()
    (instance,) = box.inbox.store.list_received()
    assert (instance.state, instance.reason_code) == ("refused", "quality.resolution_too_low")
    case = box.inbox.store.get_case(instance.case_id)
    assert case.state == "refused"
    assert case.body_part == "KNEE"


# --- the persistent queue -----------------------------------------------------------------


def test_a_job_interrupted_after_its_case_was_stored_does_not_store_a_second(
    make_box, pydicom_data_dir
):
    box = make_box()
    assert send(box.scp_address, [pydicom_data_dir / "RG1_UNCR.dcm"]) == [0x0000]
    store = box.inbox.store
    job = store.claim_job()
    instance = store.get_received(job.instance_id)
    # the process stored the case, then died before marking the job done
    from edgeosteo.cases import ScreeningRequest

    box.worker.workflow.screen_and_store_received(
        ScreeningRequest(
            source=(store.data_dir / instance.file).read_bytes(),
            answers={},
            body_part=instance.body_part,
        ),
        job.case_uuid,
    )
    assert store.claim_job() is None  # it is still marked running

    restarted = ScreeningWorker(box.worker.workflow, box.settings)
    assert store.requeue_interrupted_jobs() == 1
    assert restarted.drain() == 1
    assert store.count_cases() == 1
    assert store.get_received(instance.id).case_id == store.get_case_by_uuid(job.case_uuid).id


def _serve(data_dir: Path, config: Path, models: Path) -> tuple[subprocess.Popen, dict]:
    """Start `edgeosteo serve` and read what it says it started."""
    command = [
        str(Path(sys.executable).with_name("edgeosteo")),
        "--data-dir",
        str(data_dir),
        "--config",
        str(config),
        "serve",
    ]
    env = {**os.environ, "EDGEOSTEO_MODELS_DIR": str(models), "PYTHONUNBUFFERED": "1"}
    env.pop("NOTIFY_SOCKET", None)
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
    )
    said: dict = {"lines": []}
    while True:
        line = process.stdout.readline()
        if not line:
            process.wait()
            raise AssertionError(f"serve ended: {process.stderr.read()}")
        said["lines"].append(line)
        if match := re.search(r"listening on ([\d.]+):(\d+)", line):
            said["scp"] = (match.group(1), int(match.group(2)))
        if match := re.search(r"serving on http://([\d.]+):(\d+)/", line):
            said["page"] = f"http://{match.group(1)}:{match.group(2)}"
        if "screening worker started" in line:
            said["worker"] = True
        if line.startswith("watching"):
            said["watch"] = True
        if _all_said(said, config):
            return process, said


def _all_said(said: dict, config: Path) -> bool:
    text = config.read_text()
    wanted = []
    if "scp_enabled = false" not in text:
        wanted.append("scp")
    if "worker_enabled = false" not in text:
        wanted.append("worker")
    if "watch_dir" in text:
        wanted.append("watch")
    if "[web]\nenabled = false" not in text:
        wanted.append("page")
    return all(k in said for k in wanted)


def _wait_until(predicate, what: str) -> None:
    deadline = time.monotonic() + PATIENCE_S
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for {what}")
        time.sleep(0.1)


def _job_states(data_dir: Path) -> dict[str, int]:
    connection = sqlite3.connect(data_dir / "edgeosteo.sqlite3", timeout=30)
    try:
        rows = connection.execute("SELECT state, COUNT(*) FROM jobs GROUP BY state").fetchall()
    finally:
        connection.close()
    return dict(rows)


def test_killing_the_box_between_receive_and_screen_loses_nothing(
    tmp_path, empty_models, pydicom_data_dir
):
    data_dir = tmp_path / "box"
    receive_only = tmp_path / "receive-only.toml"
    receive_only.write_text(
        "[web]\nenabled = false\n[receiver]\nport = 0\nworker_enabled = false\n"
    )
    everything = tmp_path / "everything.toml"
    everything.write_text(
        "[web]\nenabled = false\n[receiver]\nport = 0\nworker_poll_seconds = 0.2\n"
    )
    names = ["RG1_UNCR.dcm", "RG1_J2KR.dcm", "RG1_UNCI.dcm", "RG3_UNCR.dcm", "JPEG-LL.dcm"]

    process, said = _serve(data_dir, receive_only, empty_models)
    try:
        statuses = send(said["scp"], [pydicom_data_dir / n for n in names])
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait()
    assert statuses == [0x0000] * 5
    assert _job_states(data_dir) == {"queued": 3}

    # started again with the worker: killed again as soon as it is at work
    process, said = _serve(data_dir, everything, empty_models)
    try:
        _wait_until(lambda: _job_states(data_dir).get("queued", 0) < 3, "the worker to start")
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait()

    process, said = _serve(data_dir, everything, empty_models)
    try:
        _wait_until(lambda: _job_states(data_dir) == {"done": 3}, "the queue to drain")
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait() == 0

    store = CaseStore(data_dir)
    assert store.count_cases() == 3
    instances = store.list_received()
    assert len(instances) == 5
    screened = [i for i in instances if i.case_id is not None]
    assert len({i.case_id for i in screened}) == 3
    assert {i.state for i in screened} == {"needs_answers"}
    # and the image tree holds only files a case names (a kill mid-store leaves none behind)
    named = {
        name
        for case in store.search_cases()
        for name in (case.image_file, case.display_file, case.heatmap_file)
        if name
    }
    files = {str(p.relative_to(data_dir)) for p in (data_dir / "images").rglob("*") if p.is_file()}
    assert files == named


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url) as response:
            return response.status == 200
    except OSError:
        return False


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_serve_starts_page_receiver_worker_and_watch_folder_together(
    tmp_path, empty_models, pydicom_data_dir
):
    data_dir, watch = tmp_path / "box", tmp_path / "usb"
    config = tmp_path / "box.toml"
    config.write_text(
        f"[web]\nport = {_free_port()}\n[receiver]\nport = 0\nworker_poll_seconds = 0.2\n"
        f'watch_dir = "{watch}"\nwatch_stable_seconds = 0.3\nwatch_poll_seconds = 0.1\n'
    )
    process, said = _serve(data_dir, config, empty_models)
    try:
        _wait_until(lambda: _answers(said["page"] + "/healthz"), "the page")
        assert echo(said["scp"]) == 0x0000
        assert send(said["scp"], [pydicom_data_dir / "RG1_UNCR.dcm"]) == [0x0000]
        (watch / "export").mkdir(parents=True)
        (watch / "export" / "IM0001").write_bytes((pydicom_data_dir / "RG1_J2KR.dcm").read_bytes())
        _wait_until(lambda: (watch / "processed" / "IM0001").exists(), "the watch folder")
        _wait_until(lambda: _job_states(data_dir) == {"done": 2}, "the worker")
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait() == 0
    assert CaseStore(data_dir).count_cases() == 2


def test_a_second_serve_on_the_same_data_dir_refuses_and_leaves_the_queue_alone(
    tmp_path, empty_models, pydicom_data_dir
):
    data_dir = tmp_path / "box"
    first_config = tmp_path / "first.toml"
    first_config.write_text(
        f"[web]\nport = {_free_port()}\n[receiver]\nport = 0\nworker_enabled = false\n"
    )
    first, said = _serve(data_dir, first_config, empty_models)
    try:
        _wait_until(lambda: _answers(said["page"] + "/healthz"), "the page")
        assert send(said["scp"], [pydicom_data_dir / "RG1_UNCR.dcm"]) == [0x0000]
        job = CaseStore(data_dir).claim_job()  # the live box is screening it
        assert job is not None and _job_states(data_dir) == {"running": 1}

        # the same DICOM port as the live one, as a second service start would have it
        second_config = tmp_path / "second.toml"
        second_config.write_text(
            f"[web]\nport = {_free_port()}\n[receiver]\nport = {said['scp'][1]}\n"
            "worker_poll_seconds = 0.2\n"
        )
        second = subprocess.run(
            [
                str(Path(sys.executable).with_name("edgeosteo")),
                "--data-dir",
                str(data_dir),
                "--config",
                str(second_config),
                "serve",
            ],
            capture_output=True,
            text=True,
            timeout=PATIENCE_S,
            env={**os.environ, "EDGEOSTEO_MODELS_DIR": str(empty_models)},
        )
        assert second.returncode != 0
        assert "cli.data_dir_in_use" in second.stderr
        assert f"pid {first.pid}" in second.stderr
        assert CATALOGUE["cli.data_dir_in_use"][1] in second.stderr
        assert "Traceback" not in second.stderr
        assert "screening worker started" not in second.stdout
        # the live box's job is still its own, on its first attempt
        assert _job_states(data_dir) == {"running": 1}
        with sqlite3.connect(data_dir / "edgeosteo.sqlite3") as connection:
            assert connection.execute("SELECT attempts FROM jobs").fetchone()[0] == job.attempts
        assert first.poll() is None
        assert _answers(said["page"] + "/healthz")
    finally:
        first.send_signal(signal.SIGTERM)
        assert first.wait() == 0

    # the lock goes with the process: the next start takes it
    again, said = _serve(data_dir, first_config, empty_models)
    _wait_until(lambda: _answers(said["page"] + "/healthz"), "the page")
    again.send_signal(signal.SIGTERM)
    assert again.wait() == 0


def test_serve_leaves_off_what_the_settings_turn_off(tmp_path, empty_models):
    config = tmp_path / "page-only.toml"
    config.write_text(
        f"[web]\nport = {_free_port()}\n[receiver]\nscp_enabled = false\nworker_enabled = false\n"
    )
    process, said = _serve(tmp_path / "box", config, empty_models)
    try:
        _wait_until(lambda: _answers(said["page"] + "/healthz"), "the page")
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait() == 0
    assert "page" in said and "scp" not in said and "worker" not in said

    nothing = tmp_path / "nothing.toml"
    nothing.write_text(
        "[web]\nenabled = false\n[receiver]\nscp_enabled = false\nworker_enabled = false\n"
    )
    result = subprocess.run(
        [
            str(Path(sys.executable).with_name("edgeosteo")),
            "--data-dir",
            str(tmp_path / "box"),
            "--config",
            str(nothing),
            "serve",
        ],
        capture_output=True,
        text=True,
        env={**os.environ, "EDGEOSTEO_MODELS_DIR": str(empty_models)},
    )
    assert result.returncode != 0
    assert "nothing to serve" in result.stderr


# --- watch folder -------------------------------------------------------------------------


@pytest.fixture
def folder_box(make_box, tmp_path):
    def make(**receiver) -> Receiver:
        # scanned by the test with its own clock, never by the watcher's thread
        return make_box(
            start=False, watch_dir=str(tmp_path / "watch"), watch_stable_seconds=2.0, **receiver
        )

    return make


def _watch_once(box: Receiver, path: Path, data: bytes) -> None:
    """Put a file in the folder and let the watcher see it twice, stable in between."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    assert box.watcher.scan(now=100.0) == []
    assert box.watcher.scan(now=103.0) == [path]


def test_watch_folder_takes_a_file_only_once_it_stopped_growing(folder_box, pydicom_data_dir):
    box = folder_box()
    data = (pydicom_data_dir / "RG1_UNCR.dcm").read_bytes()
    path = box.watcher.folder / "DICOM" / "IM0001"
    path.parent.mkdir(parents=True)
    path.write_bytes(data[: len(data) // 2])
    assert box.watcher.scan(now=0.0) == []
    assert box.watcher.scan(now=1.0) == []
    with path.open("ab") as handle:
        handle.write(data[len(data) // 2 :])
    assert box.watcher.scan(now=5.0) == []  # it changed: the clock starts again
    assert box.watcher.scan(now=6.0) == []
    assert box.watcher.scan(now=7.5) == [path]
    assert box.watcher.scan(now=20.0) == []  # waiting for the worker, not taken twice

    (instance,) = box.inbox.store.list_received()
    assert (instance.source, instance.state) == ("folder", "queued")
    assert path.exists()
    box.worker.drain()
    assert not path.exists()
    assert (box.watcher.folder / "processed" / "IM0001").read_bytes() == data
    instance = box.inbox.store.get_received(instance.id)
    assert instance.state == "needs_answers" and instance.origin_path is None


def test_watch_folder_rejects_with_a_reason_file(folder_box, pydicom_data_dir):
    box = folder_box(default_body_part="KNEE", min_age_years=18)
    folder = box.watcher.folder
    _watch_once(box, folder / "notes.txt", b"not an image")
    _watch_once(box, folder / "hand.dcm", (pydicom_data_dir / "RG3_UNCR.dcm").read_bytes())
    _watch_once(box, folder / "photo.dcm", (pydicom_data_dir / "SC_rgb.dcm").read_bytes())
    box.worker.drain()

    rejected = folder / "rejected"
    reasons = {
        p.name.removesuffix(".reason.txt"): p.read_text(encoding="utf-8").splitlines()
        for p in rejected.glob("*.reason.txt")
    }
    assert reasons["notes.txt"][0] == "intake.not_an_image"
    assert "hand.dcm" not in reasons  # EXTREMITY: screened, waits for its answers
    assert (folder / "processed" / "hand.dcm").is_file()
    assert reasons["photo.dcm"][0] == "quality.not_radiograph"
    for code, english, chinese in reasons.values():
        assert CATALOGUE[code] == (english, chinese)
    assert {p.name for p in rejected.iterdir()} >= {"notes.txt", "photo.dcm"}
    assert not any(p.is_file() for p in folder.iterdir())
    listed = box.inbox.store.list_received()
    assert sorted(i.state for i in listed) == ["needs_answers", "refused"]
    assert all(i.origin_path is None for i in listed)


def test_watch_folder_screens_plain_image_files_with_the_sites_body_part(folder_box):
    box = folder_box(default_body_part="KNEE")
    rng = np.random.default_rng(5)
    gray = cv2.GaussianBlur((rng.random((900, 700)) * 255).astype(np.uint8), (0, 0), 1.0)
    ok, png = cv2.imencode(".png", gray)
    assert ok
    _watch_once(box, box.watcher.folder / "knee.png", png.tobytes())
    box.worker.drain()
    (instance,) = box.inbox.store.list_received()
    assert instance.body_part == "KNEE"
    assert instance.case_id is not None
    moved = "processed" if instance.state != "refused" else "rejected"
    assert (box.watcher.folder / moved / "knee.png").exists()


def test_watch_folder_moves_files_screened_before_a_crash(folder_box, pydicom_data_dir):
    box = folder_box()
    path = box.watcher.folder / "IM0002"
    _watch_once(box, path, (pydicom_data_dir / "RG1_UNCR.dcm").read_bytes())
    # the worker of a process that died before it could move the file
    assert ScreeningWorker(box.worker.workflow, box.settings).drain() == 1
    assert path.exists()
    box.watcher.scan(now=200.0)
    assert not path.exists()
    assert (box.watcher.folder / "processed" / "IM0002").exists()


def test_watch_folder_rejects_a_second_copy_of_the_same_image(folder_box, pydicom_data_dir):
    box = folder_box()
    data = (pydicom_data_dir / "RG1_UNCR.dcm").read_bytes()
    _watch_once(box, box.watcher.folder / "a" / "IM1", data)
    _watch_once(box, box.watcher.folder / "b" / "IM1", data)
    reason = box.watcher.folder / "rejected" / "IM1.reason.txt"
    assert reason.read_text(encoding="utf-8").startswith("receiver.duplicate_instance")
    assert len(box.inbox.store.list_received()) == 1


# --- wording ------------------------------------------------------------------------------


def test_every_receiver_code_has_english_and_chinese():
    literal = re.compile(r"[\"'](receiver\.[a-z0-9_]+)[\"']")
    used = set()
    for path in PACKAGE.rglob("*.py"):
        used.update(literal.findall(path.read_text(encoding="utf-8")))
    assert len(used) >= 10
    assert sorted(code for code in used if code not in CATALOGUE) == []


def test_an_unanswered_case_waits_for_its_answers_before_it_is_sent(make_box, pydicom_data_dir):
    """The hub should get the result with the clinical answers, not the image-only one,
    when the technician adds the answers within the hold."""
    import time

    from edgeosteo.anonymise import anonymise_case

    box = make_box()
    settings = box.worker.workflow.screener.settings
    longest_wait = max(settings.sync.backoff_cap_s, settings.sync.hold_unanswered_hours * 3600)
    assert send(box.scp_address, [pydicom_data_dir / "RG1_UNCR.dcm"]) == [0x0000]
    box.worker.drain()
    store = box.inbox.store
    (instance,) = store.list_received()
    case = store.get_case(instance.case_id)
    assert case.state == "needs_answers"
    now = time.time()
    assert store.due_outbox(now, 10, longest_wait) == []  # held for its answers
    later = now + settings.sync.hold_unanswered_hours * 3600 + 1
    assert len(store.due_outbox(later, 10, longest_wait)) == 1  # then sent without them

    box.worker.workflow.add_answers(
        case.id, {"age_years": 72, "sex": "female", "weight_kg": 48, "height_m": 1.5}
    )
    (due,) = store.due_outbox(time.time(), 10, longest_wait)
    summary = anonymise_case(store.get_case(case.id), due, b"k" * 32, settings.sync)
    assert "osta" in [i.name for i in summary.instruments]
    assert summary.age is not None and summary.sex == "female"


def test_the_watch_folder_sends_a_phone_photo_down_the_photo_path(folder_box, pydicom_data_dir):
    import sys

    from conftest import REPO

    sys.path.insert(0, str(REPO / "tools"))
    import photo_sim

    box = folder_box(default_body_part="KNEE", min_age_years=18)
    film = photo_sim.load_source(pydicom_data_dir / "RG1_UNCR.dcm")
    photo = photo_sim.simulate(film, seed=3, condition="good").jpeg
    _watch_once(box, box.watcher.folder / "phone.jpg", photo)
    box.worker.drain()
    (instance,) = box.inbox.store.list_received()
    case = box.inbox.store.get_case(instance.case_id)
    assert case.result["image"]["capture"] == "photo"
    assert case.result["image"]["photo"]["corner_source"] == "detected"
