"""The decoders' warnings are ignored by filters installed once, not by swapping the
process-wide filter list around each read (edgeosteo.warnings_filter)."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import warnings
from pathlib import Path
from unittest import mock

import numpy as np
import pydicom
import pytest
from PIL import Image

from edgeosteo.intake import read_image
from edgeosteo.receiver.eligibility import HeaderFacts
from edgeosteo.warnings_filter import install_warning_filters

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def odd_dicom(pydicom_data_dir) -> bytes:
    """A readable radiograph whose patient name is longer than its VR allows: pydicom reads
    it and warns when the name is read."""
    ds = pydicom.dcmread(pydicom_data_dir / "RG1_UNCR.dcm")
    with warnings.catch_warnings(record=True):  # pydicom warns on setting it too
        ds.PatientName = "Z" * 100
        buffer = io.BytesIO()
        ds.save_as(buffer)
    return buffer.getvalue()


def _png() -> bytes:
    gray = (np.arange(256 * 256, dtype=np.uint32).reshape(256, 256) % 251).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(gray).save(buffer, "PNG")
    return buffer.getvalue()


def test_the_odd_dicom_makes_pydicom_warn_without_the_filters(odd_dicom):
    """The input the tests below rely on really does make pydicom warn."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.resetwarnings()
        warnings.simplefilter("always")
        intake = read_image(odd_dicom)
    assert intake.identity.name == "Z" * 100
    assert any(
        issubclass(w.category, UserWarning) and "PN component length" in str(w.message)
        for w in caught
    ), [str(w.message) for w in caught]


def test_a_dicom_pydicom_warns_about_reaches_the_caller_without_a_warning(odd_dicom):
    with warnings.catch_warnings(record=True) as caught:
        install_warning_filters()
        intake = read_image(odd_dicom)
        facts = HeaderFacts.from_dataset(pydicom.dcmread(io.BytesIO(odd_dicom)))
    assert intake.identity.name == "Z" * 100 and intake.radiograph.pixels.size > 0
    assert facts.sop_instance_uid
    assert [str(w.message) for w in caught] == []


def test_the_filters_leave_other_warnings_alone():
    with warnings.catch_warnings(record=True) as caught:
        install_warning_filters()
        warnings.warn("an unrelated warning", UserWarning, stacklevel=1)
        # the same words as pydicom's, from code that is not pydicom's
        warnings.warn("Invalid value for VR UI: '1.2.x'", UserWarning, stacklevel=1)
        warnings.warn("a runtime warning", RuntimeWarning, stacklevel=1)
    assert [(w.category, str(w.message)) for w in caught] == [
        (UserWarning, "an unrelated warning"),
        (UserWarning, "Invalid value for VR UI: '1.2.x'"),
        (RuntimeWarning, "a runtime warning"),
    ]


def test_installing_the_filters_again_changes_nothing():
    with warnings.catch_warnings():
        install_warning_filters()
        before = list(warnings.filters)
        install_warning_filters()
        assert warnings.filters == before


def test_reading_never_swaps_the_process_wide_filters(odd_dicom):
    """catch_warnings swaps warnings.filters for the whole process, so a reader thread's
    block could drop or restore another thread's filters: reads must not use it."""
    refuse = mock.Mock(side_effect=AssertionError("warnings filters changed during a read"))
    with (
        mock.patch.object(warnings, "catch_warnings", refuse),
        mock.patch.object(warnings, "simplefilter", refuse),
        mock.patch.object(warnings, "filterwarnings", refuse),
    ):
        read_image(odd_dicom)
        read_image(_png())
        HeaderFacts.from_dataset(pydicom.dcmread(io.BytesIO(odd_dicom)))
    assert not refuse.called


def test_importing_edgeosteo_installs_the_filters_once(odd_dicom, tmp_path):
    """As the server starts: a fresh process that imports edgeosteo reads the odd DICOM
    without a warning, and still shows an unrelated one."""
    path = tmp_path / "odd.dcm"
    path.write_bytes(odd_dicom)
    script = (
        "import json, sys, warnings\n"
        "import edgeosteo.intake\n"
        "from edgeosteo.warnings_filter import install_warning_filters\n"
        "before = list(warnings.filters)\n"
        "install_warning_filters()\n"
        "with warnings.catch_warnings(record=True) as caught:\n"
        "    edgeosteo.intake.read_image(sys.argv[1])\n"
        "    warnings.warn('an unrelated warning', UserWarning)\n"
        "print(json.dumps({'again_same': warnings.filters == before,\n"
        "                  'caught': [str(w.message) for w in caught]}))\n"
    )
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
    }
    env.pop("PYTHONWARNINGS", None)
    result = subprocess.run(
        [sys.executable, "-c", script, str(path)],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=True,
    )
    outcome = json.loads(result.stdout.splitlines()[-1])
    assert outcome == {"again_same": True, "caught": ["an unrelated warning"]}
    assert "PN component" not in result.stderr
