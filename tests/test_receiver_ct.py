"""CT series sent slice by slice by C-STORE (pynetdicom) become one held series each once
they are quiet; a bad series is refused with its code and the others keep flowing."""

from __future__ import annotations

import hashlib
import json
import sys
import time
from pathlib import Path

import pydicom
import pytest
from test_receiver import send

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tools"))

from phantoms import ct  # noqa: E402

from edgeosteo.cases import CaseWorkflow  # noqa: E402
from edgeosteo.config import load_settings  # noqa: E402
from edgeosteo.methods.ct_l1 import parse_request  # noqa: E402
from edgeosteo.receiver import Receiver  # noqa: E402
from edgeosteo.receiver.series import RESULT_FILE, SeriesSpool  # noqa: E402
from edgeosteo.screening import Screener  # noqa: E402
from edgeosteo.store import CaseStore  # noqa: E402

SMALL = {"matrix": 128, "levels": ("T12", "L1", "L2"), "slice_thickness_mm": 2.5}


def _case_box(tmp_path, policy: dict | None = None):
    settings = load_settings(
        data_dir=tmp_path / "box",
        environ={},
        models_dir=str(REPO / "models"),
        receiver={
            "port": 0,
            "worker_enabled": False,
            "ct_series_enabled": True,
            "ct_series_quiet_seconds": 3600.0,  # the test settles by hand
        },
        **({"policy": policy} if policy else {}),
    )
    return Receiver(settings, CaseWorkflow(Screener(settings), CaseStore(settings.data_dir)))


@pytest.fixture
def ct_box(tmp_path):
    box = _case_box(tmp_path)
    box.start()
    yield box
    box.stop()


def _slices(folder: Path) -> list[pydicom.Dataset]:
    return [pydicom.dcmread(p) for p in sorted(folder.glob("*.dcm"))]


def test_series_sent_slice_by_slice_are_held_until_quiet_then_read(ct_box, tmp_path):
    good = ct.make_series(tmp_path / "good", 51, core_hu=120, **SMALL)
    ct.make_bad(tmp_path / "gap", "gap", 52, matrix=128)
    good_slices, gap_slices = _slices(tmp_path / "good"), _slices(tmp_path / "gap")
    half = len(good_slices) // 2
    # two associations, the two series interleaved, one slice sent twice
    first = good_slices[:half] + gap_slices
    statuses = send(ct_box.scp_address, first) + send(
        ct_box.scp_address, good_slices[half:] + good_slices[:1]
    )
    assert set(statuses) == {0x0000}
    spool = ct_box.series
    assert len(spool.waiting()) == 2
    assert spool.settle() == []  # not quiet yet
    outcomes = {o.status: o for o in spool.settle(now=time.time() + 3601)}
    assert set(outcomes) == {"complete", "refused"}
    assert outcomes["complete"].slices == len(good.slice_z_mm)
    assert outcomes["refused"].code == "intake.ct_slice_gap"
    refused = json.loads((outcomes["refused"].folder / RESULT_FILE).read_text())
    assert refused["message_zh_CN"] and refused["code"] == "intake.ct_slice_gap"
    assert spool.waiting() == []
    # no identifier in a path
    names = [p.name for p in spool.root.rglob("*")]
    assert not any(good.series_uid in n or "PHANTOM" in n for n in names)
    # the held series gives the HU of the phantom through the same stage as the CLI
    col, row = good.sagittal_tap("L1")
    request = parse_request({"level": "L1", "sagittal": [col, row]})
    result = Screener(load_settings(environ={}, models_dir=str(REPO / "models"))).measure_series(
        outcomes["complete"].folder, request
    )
    assert result["status"] == "measured"
    assert abs(result["value"] - good.level("L1").core_hu) <= 5


def test_a_restart_keeps_waiting_series_and_a_late_slice_restarts_the_quiet_time(tmp_path):
    truth = ct.make_series(tmp_path / "s", 53, **SMALL)
    spool = SeriesSpool(tmp_path / "spool", quiet_seconds=30)
    slices = sorted((tmp_path / "s").glob("*.dcm"))
    for path in slices[:-1]:
        ds = pydicom.dcmread(path, stop_before_pixels=True)
        spool.accept(path.read_bytes(), ds.SeriesInstanceUID, ds.SOPInstanceUID)
    again = SeriesSpool(tmp_path / "spool", quiet_seconds=30)  # the box restarted
    assert len(again.waiting()) == 1
    assert again.settle(now=time.time() + 10) == []
    ds = pydicom.dcmread(slices[-1], stop_before_pixels=True)
    again.accept(slices[-1].read_bytes(), ds.SeriesInstanceUID, ds.SOPInstanceUID)
    (outcome,) = again.settle(now=time.time() + 31)
    assert outcome.status == "complete" and outcome.slices == len(truth.slice_z_mm)


def test_ct_is_refused_at_the_association_unless_turned_on(tmp_path):
    from test_receiver import VERIFICATION, _console

    settings = load_settings(
        data_dir=tmp_path / "box",
        environ={},
        models_dir=str(REPO / "models"),
        receiver={"port": 0, "worker_enabled": False},
    )
    box = Receiver(settings, CaseWorkflow(Screener(settings), CaseStore(settings.data_dir)))
    box.start()
    try:
        assert box.series is None
        ae = _console()
        ae.add_requested_context(ct.CT_IMAGE_STORAGE, "1.2.840.10008.1.2.1")
        ae.add_requested_context(VERIFICATION)
        assoc = ae.associate(*box.scp_address, ae_title="EDGEOSTEO")
        assert assoc.is_established
        try:
            assert [str(c.abstract_syntax) for c in assoc.rejected_contexts] == [
                ct.CT_IMAGE_STORAGE
            ]
        finally:
            assoc.release()
    finally:
        box.stop()


def test_a_series_sent_by_c_store_becomes_one_case_that_gives_the_hu_after_the_tap(
    tmp_path, caplog
):
    import logging

    caplog.set_level(logging.INFO)
    box = _case_box(tmp_path, policy={"counted_measurements": ["mci", "ct-l1"]})
    box.start()
    try:
        truth = ct.make_series(tmp_path / "good", 61, core_hu=95, **SMALL)
        slices = _slices(tmp_path / "good")
        assert set(send(box.scp_address, slices)) == {0x0000}
        store = box.workflow.store
        assert store.count_cases() == 0  # not quiet yet: no case
        started = time.monotonic()
        (outcome,) = box.series.settle(now=time.time() + 3601)
        settled_s = time.monotonic() - started
        (record,) = store.search_cases()
        assert record.state == "awaiting_measurement"
        assert record.identity["patient_id"] == "PHANTOM-CT" and record.identity["sex"] == "F"
        series = record.result["image"]["ct_series"]
        assert series["slices"] == len(truth.slice_z_mm) and series["status"] == "complete"
        # no identifier in a path or in the result
        assert "PHANTOM" not in json.dumps(record.result) and "PHANTOM" not in series["folder"]
        assert box.series.undelivered() == []  # made once: a second hand-over finds it
        assert box.workflow.store_ct_series(_arrival(outcome)).id == record.id
        assert store.count_cases() == 1

        col, row = truth.sagittal_tap("L1")
        request = parse_request({"level": "L1", "sagittal": [col, row]})
        started = time.monotonic()
        saved, result = box.workflow.measure_ct_case(record.id, request, save=True)
        measured_s = time.monotonic() - started
        assert result.status == "measured", result
        error = abs(result.value - truth.level("L1").core_hu)
        assert error <= 5
        assert result.band == "osteoporosis_likely"  # 95 HU: at or below 110 HU
        reasons = saved.result["referral"]["reasons"]
        assert any(r["code"] == "measurement.band.osteoporosis_likely" for r in reasons)
        assert saved.category == "refer"  # the band's category, through the site's policy
        assert saved.state == "needs_answers"  # measured; the clinical answers are still due
        assert "case 1 (awaiting_measurement)" in caplog.text
        assert "PHANTOM" not in caplog.text and "Phantom" not in caplog.text  # no patient
        print(
            f"C-STORE case: {error:.1f} HU off, settled in {settled_s:.2f} s,"
            f" measured in {measured_s:.2f} s"
        )
    finally:
        box.stop()


def _arrival(outcome):
    from edgeosteo.cases import CtSeriesArrival

    return CtSeriesArrival(
        outcome.key,
        outcome.folder,
        outcome.status,
        outcome.slices,
        outcome.settled_at,
        outcome.facts,
    )


def test_the_band_is_information_only_where_the_policy_does_not_count_ct(tmp_path):
    box = _case_box(tmp_path)
    truth = ct.make_series(tmp_path / "s", 62, core_hu=95, **SMALL)
    for ds in _slices(tmp_path / "s"):
        box.series.accept(_bytes(ds), ds.SeriesInstanceUID, ds.SOPInstanceUID)
    box.series.settle(now=time.time() + 3601)
    (record,) = box.workflow.store.search_cases()
    col, row = truth.sagittal_tap("L1")
    saved, result = box.workflow.measure_ct_case(
        record.id, parse_request({"level": "L1", "sagittal": [col, row]}), save=True
    )
    assert result.band == "osteoporosis_likely"
    codes = [r["code"] for r in saved.result["referral"]["reasons"]]
    assert "measurement.band.osteoporosis_likely" not in codes
    notes = [n["code"] for n in saved.result["referral"].get("notes", [])]
    assert "measurement.information_only" in notes


def _bytes(ds) -> bytes:
    import io

    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def test_a_series_completed_while_the_case_could_not_be_made_becomes_one_on_the_next_start(
    tmp_path,
):
    box = _case_box(tmp_path)
    ct.make_series(tmp_path / "s", 63, **SMALL)
    for ds in _slices(tmp_path / "s"):
        box.series.accept(_bytes(ds), ds.SeriesInstanceUID, ds.SOPInstanceUID)

    def broken(outcome):
        raise OSError("disk full")

    box.series.on_outcome = broken
    (outcome,) = box.series.settle(now=time.time() + 3601)
    assert outcome.status == "complete"
    assert box.workflow.store.count_cases() == 0
    assert len(box.series.undelivered()) == 1
    again = _case_box(tmp_path)  # the box restarted
    again.start()
    try:
        deadline = time.monotonic() + 20
        while again.workflow.store.count_cases() == 0 and time.monotonic() < deadline:
            time.sleep(0.1)
        (record,) = again.workflow.store.search_cases()
        assert record.state == "awaiting_measurement"
        assert again.series.undelivered() == []
    finally:
        again.stop()


def _undecodable(ds: pydicom.Dataset) -> pydicom.Dataset:
    """A slice whose header is whole but whose JPEG 2000 pixel data does not decode (what a
    damaged archive or a broken encoder sends): the receiver cannot tell without decoding."""
    from pydicom.encaps import encapsulate
    from pydicom.uid import JPEG2000Lossless

    ds.file_meta.TransferSyntaxUID = JPEG2000Lossless
    ds.PixelData = encapsulate([b"\xff\x4f\xff\x51" + b"\x00\x13" * 200])
    ds["PixelData"].VR = "OB"
    return ds


BAD_BY_CODE = {
    "gap": "intake.ct_slice_gap",
    "localizer": "intake.ct_localizer_mixed",
    "uneven": "intake.ct_uneven_spacing",
    "two_slices": "intake.ct_not_a_series",
}


def test_bad_series_by_c_store_are_refused_cases_with_reasons_and_a_good_one_still_flows(
    tmp_path,
):
    from edgeosteo.messages import text

    box = _case_box(tmp_path)
    box.start()
    try:
        truth = ct.make_series(tmp_path / "good", 71, core_hu=140, **SMALL)
        sent: dict[str, str] = {}  # Series Instance UID -> what is wrong with it
        batches = [_slices(tmp_path / "good")]
        for seed, kind in enumerate(BAD_BY_CODE, start=72):
            ct.make_bad(tmp_path / kind, kind, seed, matrix=128)
            batches.append(_slices(tmp_path / kind))
            sent[batches[-1][0].SeriesInstanceUID] = kind
        # two scans that the console sent under one Series Instance UID
        ct.make_series(tmp_path / "a", 80, **SMALL)
        ct.make_series(tmp_path / "b", 81, **SMALL)
        mixed = _slices(tmp_path / "a")
        for ds in _slices(tmp_path / "b"):
            ds.SeriesInstanceUID = mixed[0].SeriesInstanceUID
            mixed.append(ds)
        batches.append(mixed)
        sent[mixed[0].SeriesInstanceUID] = "mixed"
        ct.make_series(tmp_path / "corrupt", 82, **SMALL)
        corrupt = _slices(tmp_path / "corrupt")
        corrupt[len(corrupt) // 2] = _undecodable(corrupt[len(corrupt) // 2])
        batches.append(corrupt)
        sent[corrupt[0].SeriesInstanceUID] = "corrupt"
        # interleaved, slice by slice, as several consoles sending at once would
        interleaved = [ds for row in zip(*[iter(b) for b in batches], strict=False) for ds in row]
        rest = [ds for b in batches for ds in b if ds not in interleaved]
        assert set(send(box.scp_address, interleaved) + send(box.scp_address, rest)) == {0}
        outcomes = box.series.settle(now=time.time() + 3601)
        assert len(outcomes) == len(batches)
        cases = box.workflow.store.search_cases()
        assert len(cases) == len(batches)
        good = [c for c in cases if c.state == "awaiting_measurement"]
        refused = {c.result["intake_error"]["code"]: c for c in cases if c.state == "refused"}
        assert len(good) == 1 and good[0].result["image"]["ct_series"]["slices"] == len(
            truth.slice_z_mm
        )
        expected = {
            *BAD_BY_CODE.values(),
            "intake.ct_duplicate_position",  # the two scans' slices lie at the same places
            "intake.ct_corrupt_slice",
        }
        assert set(refused) == expected
        for code, record in refused.items():
            error = record.result["intake_error"]
            assert error["message_en"] == text(code, "en") and error["message_zh_CN"]
            assert error["message_zh_CN"] != error["message_en"]
            assert record.identity["patient_id"] == "PHANTOM-CT"  # the technician can tell
            assert record.result["referral"]["category"] == "cannot_assess"
        # what stays of a refused series is its reason, not the patient's slices
        for folder in box.series.refused_dir.iterdir():
            assert sorted(p.name for p in folder.iterdir()) == [".delivered", RESULT_FILE]
            kept = json.loads((folder / RESULT_FILE).read_text())
            assert kept["code"] in expected and kept["message_zh_CN"]
        # and the good series still gives its HU
        col, row = truth.sagittal_tap("L1")
        request = parse_request({"level": "L1", "sagittal": [col, row]})
        _, result = box.workflow.measure_ct_case(good[0].id, request, save=True)
        assert result.status == "measured" and abs(result.value - 140) <= 5
    finally:
        box.stop()


def test_two_series_interleaved_in_one_association_are_two_cases(tmp_path):
    box = _case_box(tmp_path)
    box.start()
    try:
        first = ct.make_series(tmp_path / "a", 91, core_hu=90, **SMALL)
        second = ct.make_series(tmp_path / "b", 92, core_hu=200, **SMALL)
        a, b = _slices(tmp_path / "a"), _slices(tmp_path / "b")
        both = [ds for pair in zip(a, b, strict=True) for ds in pair]
        assert set(send(box.scp_address, both)) == {0}
        box.series.settle(now=time.time() + 3601)
        cases = box.workflow.store.search_cases()
        assert [c.state for c in cases] == ["awaiting_measurement"] * 2
        by_key = {c.result["image"]["ct_series"]["key"]: c for c in cases}
        for truth, hu in ((first, 90), (second, 200)):
            record = by_key[hashlib.sha256(truth.series_uid.encode()).hexdigest()[:20]]
            col, row = truth.sagittal_tap("L1")
            request = parse_request({"level": "L1", "sagittal": [col, row]})
            _, result = box.workflow.measure_ct_case(record.id, request, save=False)
            assert result.status == "measured" and abs(result.value - hu) <= 5
    finally:
        box.stop()
