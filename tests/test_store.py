"""The store's one row-to-record mapper (edgeosteo.store.db.row_to): every record type comes
back from its table with the values and types it went in with (JSON columns decoded, 0/1
flags as bools, columns without a field left out), and a mapping that does not fit is an
error rather than a record with a wrong field. Then the data directory's lock, and the case
files a process killed while storing uploads leaves (a harness process: run this file with
``upload-kill-harness``)."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
import uuid
from pathlib import Path

import numpy as np
import pytest

from edgeosteo.intake.types import PatientIdentity, Radiograph
from edgeosteo.records import CaseRecord, OutboxRecord, ReceivedInstance, ScreeningJob, User
from edgeosteo.store import CaseStore, DataDirInUse, IncomingInstance, lock_data_dir
from edgeosteo.store.db import row_to

RESULT = {
    "screening_id": "0f5c1c8e-0000-4000-8000-00000000000a",
    "created_at": "2026-01-02T03:04:05+00:00",
    "body_part": "hand",
    "referral": {"category": "refer"},
    "quality": {"verdict": "pass"},
    "probabilities": [0.25, 0.75],
    "note": "Ünïcode stays",
}


def _types(record: object) -> dict[str, type]:
    return {f.name: type(getattr(record, f.name)) for f in dataclasses.fields(record)}


def test_a_case_and_its_outbox_record_come_back_as_stored(tmp_path):
    store = CaseStore(tmp_path)
    identity = PatientIdentity(patient_id="P-1", name="Doe^Jane", sex="F")
    case = store.save_case(
        RESULT,
        identity=identity,
        original_name="hand.dcm",
        local_patient_id="L-7",
        created_by="tech",
        state="screened",
    )
    assert case == CaseRecord(
        id=case.id,
        uuid=RESULT["screening_id"],
        created_at=RESULT["created_at"],
        created_by="tech",
        local_patient_id="L-7",
        state="screened",
        category="refer",
        body_part="hand",
        quality_verdict="pass",
        result=RESULT,
        identity={"patient_id": "P-1", "name": "Doe^Jane", "sex": "F"},
        original_name="hand.dcm",
        image_file=None,
        display_file=None,
        heatmap_file=None,
    )
    assert isinstance(case.result, dict) and isinstance(case.identity, dict)
    assert store.get_case_by_uuid(case.uuid) == case == store.search_cases()[0]

    (record,) = store.case_outbox(case.id)
    assert isinstance(record, OutboxRecord)
    assert record.record_uuid == case.uuid and record.case_id == case.id
    assert (record.state, record.attempts, record.revision, record.supersedes) == (
        "pending",
        0,
        1,
        None,
    )
    assert record.clock_synchronised in (True, False)
    assert type(record.clock_synchronised) is bool and record.offered is False
    assert type(record.monotonic_ns) is int and type(record.next_attempt_at) is float
    store.mark_offered([record.record_uuid])
    offered = store.get_outbox(record.record_uuid)
    assert offered == dataclasses.replace(record, offered=True) and offered.offered is True
    assert store.due_outbox(0.0, 10, 3600.0) == [offered]


def test_users_received_instances_and_jobs_come_back_as_stored(tmp_path):
    store = CaseStore(tmp_path)
    user = store.create_user("admin", "admin", "hash", "de")
    assert user == User(
        id=user.id,
        username="admin",
        role="admin",
        password_hash="hash",
        language="de",
        failed_logins=0,
        locked_until=0.0,
        session_generation=user.session_generation,  # random: see Users.create_user
    )
    assert user.is_admin and type(user.locked_until) is float
    assert store.get_user_by_id(user.id) == user and store.list_users() == [user]

    incoming = IncomingInstance(
        source="scp",
        file="inbox/a.dcm",
        size_bytes=123,
        content_sha256="ab" * 32,
        eligible=True,
        body_part="hand",
        sop_instance_uid="1.2.3",
        calling_ae="XRAY",
        modality="DX",
        identity={"patient_id": "P-2", "name": "Roe^Ann"},
    )
    received, new = store.record_received(incoming, queue_limit=5)
    assert new is True
    assert received == ReceivedInstance(
        id=received.id,
        received_at=received.received_at,
        source="scp",
        sop_instance_uid="1.2.3",
        sop_class_uid=None,
        calling_ae="XRAY",
        peer=None,
        origin_path=None,
        file="inbox/a.dcm",
        size_bytes=123,
        content_sha256="ab" * 32,
        modality="DX",
        dicom_body_part=None,
        view_position=None,
        laterality=None,
        body_part="hand",
        identity={"patient_id": "P-2", "name": "Roe^Ann"},
        state="queued",
        reason_code=None,
        case_id=None,
    )
    assert store.record_received(incoming, queue_limit=5) == (received, False)
    assert store.get_received(received.id) == received == store.list_received()[0]

    job = store.claim_job()
    assert job == ScreeningJob(
        id=job.id,
        instance_id=received.id,
        case_uuid=job.case_uuid,
        state="running",
        attempts=1,
        last_error=None,
    )
    assert store.get_job_for_instance(received.id) == job


def _row(sql: str) -> sqlite3.Row:
    connection = sqlite3.connect(":memory:")
    connection.row_factory = sqlite3.Row
    return connection.execute(sql).fetchone()


@dataclasses.dataclass(frozen=True)
class _Thing:
    id: int
    flag: bool
    payload: dict
    note: str | None = None


def test_row_to_maps_columns_by_name_and_converts_json_and_flags():
    row = _row(
        "SELECT 1 AS flag, 7 AS id, 'x' AS extra, NULL AS note, "
        """'{"a": [1, 2]}' AS payload_json"""
    )
    thing = row_to(_Thing, row, flag=bool, payload=json.loads)
    assert thing == _Thing(id=7, flag=True, payload={"a": [1, 2]}, note=None)
    assert _types(thing) == {"id": int, "flag": bool, "payload": dict, "note": type(None)}


def test_row_to_refuses_a_mapping_that_does_not_fit():
    full = "SELECT 7 AS id, 0 AS flag, '{}' AS payload_json, NULL AS note"
    with pytest.raises(TypeError, match="payload_json needs a converter"):
        row_to(_Thing, _row(full), flag=bool)
    with pytest.raises(TypeError, match="no field nothing"):
        row_to(_Thing, _row(full), payload=json.loads, nothing=bool)
    # a field with a default still needs its column: no silent default for a missing one
    with pytest.raises(KeyError, match="note"):
        row_to(_Thing, _row("SELECT 7 AS id, 0 AS flag, '{}' AS payload_json"), payload=json.loads)


# --- the data directory's lock ------------------------------------------------------------


def test_the_data_dir_lock_is_exclusive_names_its_holder_and_goes_with_it(tmp_path):
    held = lock_data_dir(tmp_path)
    with pytest.raises(DataDirInUse) as refused:
        lock_data_dir(tmp_path)
    assert refused.value.code == "cli.data_dir_in_use"
    assert refused.value.pid == os.getpid()
    held.release()
    lock_data_dir(tmp_path).release()


# --- case files after a power cut ---------------------------------------------------------

UPLOAD_KILLS = 8


def _files_no_case_names(data_dir: Path) -> list[Path]:
    store = CaseStore(data_dir)
    named = set()
    for case in store.search_cases(limit=10**6):
        named |= {case.image_file, case.display_file, case.heatmap_file} - {None}
    return sorted(
        p
        for p in (data_dir / "images").rglob("*")
        if p.is_file() and str(p.relative_to(data_dir)) not in named
    )


def test_uploads_killed_at_random_points_leave_no_file_that_no_case_names(tmp_path):
    from edgeosteo.app import build
    from edgeosteo.config import load_settings

    data_dir = tmp_path / "box"
    CaseStore(data_dir)
    harness = subprocess.run(
        [sys.executable, __file__, "upload-kill-harness", str(data_dir), str(UPLOAD_KILLS), "5"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert harness.returncode == 0, harness.stderr[-3000:]
    summary = json.loads(harness.stdout.strip().splitlines()[-1])
    assert summary["killed"] == UPLOAD_KILLS
    stored = CaseStore(data_dir).count_cases()
    assert stored > 0
    left = _files_no_case_names(data_dir)
    print(f"upload kill harness: {summary}, cases {stored}, files no case names {len(left)}")
    time.sleep(0.05)  # the sweep takes only what is older than the start

    # the restart `edgeosteo serve` does: the lock, then the sweep
    box = build(load_settings(data_dir=data_dir, environ={}), exclusive=True)
    try:
        assert _files_no_case_names(data_dir) == []
        assert box.store.count_cases() == stored
        for case in box.store.search_cases(limit=10**6):  # and every case keeps its files
            for name in (case.image_file, case.display_file, case.heatmap_file):
                assert (data_dir / name).is_file()
    finally:
        box.lock.release()


def _upload_kill_harness(data_dir: str, kills: int, seed: int) -> None:
    """Each run: fork a child that stores uploads (an original, its display and heatmap PNGs)
    as fast as it can, SIGKILL it after a random delay."""
    rng = random.Random(seed)
    pixels = np.random.default_rng(seed).random((768, 768), dtype=np.float32)
    radiograph = Radiograph(pixels=pixels, source_format="png")
    heatmap = np.random.default_rng(seed + 1).random((24, 24), dtype=np.float32)
    original = os.urandom(1 << 20)
    killed = 0
    for _ in range(kills):
        child = os.fork()
        if child == 0:
            try:
                store = CaseStore(Path(data_dir))
                while True:
                    store.save_case(
                        {**RESULT, "screening_id": str(uuid.uuid4())},
                        radiograph=radiograph,
                        heatmap=heatmap,
                        source_bytes=original,
                        original_name="upload.dcm",
                    )
            finally:
                os._exit(0)
        time.sleep(rng.uniform(0.2, 0.8))
        with contextlib.suppress(ProcessLookupError):
            os.kill(child, signal.SIGKILL)
        _, status = os.waitpid(child, 0)
        if os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL:
            killed += 1
    print(json.dumps({"runs": kills, "killed": killed}))


if __name__ == "__main__" and sys.argv[1:2] == ["upload-kill-harness"]:
    _upload_kill_harness(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))


def test_the_last_enabled_admin_can_be_neither_disabled_nor_deleted(tmp_path):
    from edgeosteo.store.users import LastAdmin

    store = CaseStore(tmp_path)
    admin = store.create_user("admin", "admin", "hash")
    technician = store.create_user("tech", "technician", "hash")
    with pytest.raises(LastAdmin):
        store.set_disabled(admin.id, True)
    with pytest.raises(LastAdmin):
        store.delete_user(admin.id)
    assert not store.get_user_by_id(admin.id).disabled
    second = store.create_user("admin2", "admin", "hash")
    store.set_disabled(second.id, True)
    with pytest.raises(LastAdmin):  # a disabled admin does not count
        store.delete_user(admin.id)
    store.set_disabled(technician.id, True)
    disabled = store.get_user_by_id(technician.id)
    assert disabled.disabled is True
    assert disabled.session_generation == technician.session_generation + 1
    store.delete_user(technician.id)
    assert store.get_user_by_id(technician.id) is None
    store.set_must_change_password(admin.id, True)
    assert store.get_user_by_id(admin.id).must_change_password is True
