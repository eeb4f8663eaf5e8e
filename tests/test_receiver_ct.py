"""CT series sent slice by slice by C-STORE (pynetdicom) become one held series each once
they are quiet; a bad series is refused with its code and the others keep flowing."""

from __future__ import annotations

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


@pytest.fixture
def ct_box(tmp_path):
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
    )
    box = Receiver(settings, CaseWorkflow(Screener(settings), CaseStore(settings.data_dir)))
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
