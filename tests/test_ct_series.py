"""CT series intake: real DICOM folders written by the phantom generator, and the real CT
files of pydicom-data and deid-data."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import numpy as np
import pydicom
import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tools"))

from phantoms import ct  # noqa: E402

from edgeosteo.errors import IntakeError  # noqa: E402
from edgeosteo.intake.ct_series import read_ct_series  # noqa: E402
from edgeosteo.messages import CATALOGUE  # noqa: E402

SMALL = {"matrix": 128, "fov_mm": 360.0, "levels": ("L1", "L2"), "slice_thickness_mm": 5.0}


def test_a_series_is_ordered_superior_first_with_hu_and_spacing(tmp_path):
    truth = ct.make_series(tmp_path / "s", 3, signed=True, **SMALL)
    series = read_ct_series(tmp_path / "s")
    assert series.shape == (len(truth.slice_z_mm), 128, 128)
    assert series.hu.dtype == np.int16
    assert np.allclose(series.z_mm, truth.slice_z_mm, atol=1e-3)  # files were shuffled
    assert series.slice_spacing_mm == pytest.approx(5.0)
    assert series.pixel_spacing_mm == pytest.approx((360 / 128, 360 / 128))
    assert series.kvp == 120.0 and series.contrast_agent is None
    # air outside, the HU of each stored slice through slope and intercept
    assert np.median(series.hu[:, :4, :4]) == pytest.approx(-1000, abs=40)
    sag = series.sagittal()
    assert sag.shape == (series.shape[0], 128)
    x_mm = truth.origin_mm[0] + series.spine_column() * truth.pixel_spacing_mm
    assert abs(x_mm - truth.level("L1").centre_mm[0]) < 6  # through the vertebral bodies
    assert series.coronal(64).shape == (series.shape[0], 128)


def test_unsigned_stored_values_with_an_intercept_read_the_same_hu(tmp_path):
    ct.make_series(tmp_path / "a", 4, signed=False, **SMALL)
    ct.make_series(tmp_path / "b", 4, signed=True, **SMALL)
    a, b = read_ct_series(tmp_path / "a"), read_ct_series(tmp_path / "b")
    inside = a.hu > -1000  # the unsigned 12-bit store clips at -1024
    assert np.array_equal(a.hu[inside], b.hu[inside])


def test_a_reversed_feet_first_orientation_is_still_superior_first(tmp_path):
    ct.make_series(tmp_path / "s", 5, **SMALL)
    for path in (tmp_path / "s").glob("*.dcm"):
        ds = pydicom.dcmread(path)
        ds.ImageOrientationPatient = ["-1", "0", "0", "0", "1", "0"]  # normal along -z
        ds.save_as(path, enforce_file_format=True)
    series = read_ct_series(tmp_path / "s")
    positions = [
        float(pydicom.dcmread(tmp_path / "s" / f).ImagePositionPatient[2]) for f in series.files
    ]
    assert positions == sorted(positions, reverse=True)


def test_files_that_are_not_images_are_skipped(tmp_path):
    ct.make_series(tmp_path / "s", 6, **SMALL)
    (tmp_path / "s" / "README.TXT").write_text("viewer notes")
    (tmp_path / "s" / "truth.json").unlink()
    assert read_ct_series(tmp_path / "s").shape[0] >= 3


@pytest.mark.parametrize(
    ("kind", "code"),
    [
        ("gap", "intake.ct_slice_gap"),
        ("mixed", "intake.ct_mixed_series"),
        ("localizer", "intake.ct_localizer_mixed"),
        ("uneven", "intake.ct_uneven_spacing"),
        ("two_slices", "intake.ct_not_a_series"),
        ("single_slice", "intake.ct_not_a_series"),
        ("corrupt", "intake.ct_corrupt_slice"),
    ],
)
def test_each_bad_series_is_refused_with_its_code(tmp_path, kind, code):
    ct.make_bad(tmp_path / kind, kind, 11, matrix=96)
    with pytest.raises(IntakeError) as caught:
        read_ct_series(tmp_path / kind)
    assert caught.value.code == code
    english, chinese = CATALOGUE[code]
    assert caught.value.message("zh_CN") == chinese and caught.value.message("en") == english


def test_an_empty_folder_and_a_file_are_refused(tmp_path):
    with pytest.raises(IntakeError) as caught:
        read_ct_series(tmp_path)
    assert caught.value.code == "intake.ct_no_dicom"
    (tmp_path / "x.dcm").write_bytes(b"x")
    with pytest.raises(IntakeError) as caught:
        read_ct_series(tmp_path / "x.dcm")
    assert caught.value.code == "intake.ct_not_a_folder"


def _real_ct_files(*roots: Path) -> list[Path]:
    found = []
    for root in roots:
        for path in sorted(root.rglob("*")):
            if not path.is_file():
                continue
            try:
                ds = pydicom.dcmread(path, stop_before_pixels=True)
            except Exception:  # not DICOM
                continue
            if str(ds.get("Modality", "")).upper() == "CT":
                found.append(path)
    return found


def test_real_ct_single_slices_are_refused_as_not_a_series(
    tmp_path, pydicom_data_dir, deid_data_dir
):
    files = _real_ct_files(pydicom_data_dir, deid_data_dir)
    assert len(files) >= 8
    codes = {}
    for i, path in enumerate(files):
        folder = tmp_path / f"f{i}"
        folder.mkdir()
        shutil.copy(path, folder / path.name)
        with pytest.raises(IntakeError) as caught:
            read_ct_series(folder)
        codes[path.name] = caught.value.code
    # each file alone: not a series (a file without the DICOM preamble is not read at all)
    assert set(codes.values()) <= {"intake.ct_not_a_series", "intake.ct_no_dicom"}
    assert list(codes.values()).count("intake.ct_not_a_series") >= 8


def test_real_ct_folders_go_through_intake_with_a_result_or_a_code():
    import pydicom.data

    base = Path(pydicom.data.get_testdata_file("CT_small.dcm")).parent / "dicomdirtests"
    five = read_ct_series(base / "98892001" / "CT5N")  # a real 5-slice series
    assert five.shape[0] == 5 and five.slice_spacing_mm > 0
    refusals = {}
    for sub in ("77654033/CT2", "98892001/CT2N", "."):
        with pytest.raises(IntakeError) as caught:
            read_ct_series(base / sub)
        refusals[sub] = caught.value.code
    assert refusals == {
        "77654033/CT2": "intake.ct_slice_gap",  # 4 slices, 3 contiguous and one far away
        "98892001/CT2N": "intake.ct_not_a_series",
        ".": "intake.ct_localizer_mixed",  # the whole tree: several studies and orientations
    }


def test_a_localizer_named_in_image_type_is_refused_even_in_the_same_orientation(tmp_path):
    truth = ct.make_series(tmp_path / "s", 7, **SMALL)
    path = tmp_path / "s" / truth.files[0]
    ds = pydicom.dcmread(path)
    ds.ImageType = ["ORIGINAL", "PRIMARY", "LOCALIZER"]
    ds.save_as(path, enforce_file_format=True)
    with pytest.raises(IntakeError) as caught:
        read_ct_series(tmp_path / "s")
    assert caught.value.code == "intake.ct_localizer_mixed"


def test_a_series_too_large_for_the_box_is_refused_before_its_pixels_are_read(
    tmp_path, monkeypatch
):
    from edgeosteo.intake import ct_series

    ct.make_series(tmp_path / "s", 8, **SMALL)
    monkeypatch.setattr(ct_series, "MAX_VOXELS", 3 * 128 * 128 - 1)  # the limit, made small
    with pytest.raises(IntakeError) as caught:
        read_ct_series(tmp_path / "s")
    assert caught.value.code == "intake.ct_too_many_slices"


def _compressed_copy(source: Path, target: Path, syntax) -> None:
    target.mkdir()
    for path in source.glob("*.dcm"):
        ds = pydicom.dcmread(path)
        ds.compress(syntax)
        ds.save_as(target / path.name, enforce_file_format=True)


def test_compressed_series_read_the_same_hu_and_a_bad_slice_is_coded(tmp_path):
    from pydicom.uid import JPEG2000Lossless, RLELossless

    from edgeosteo.intake import ct_series

    truth = ct.make_series(
        tmp_path / "raw", 9, matrix=96, levels=("L1", "L2"), slice_thickness_mm=0.8
    )
    assert len(truth.slice_z_mm) >= ct_series.PARALLEL_MIN_SLICES  # decoded by 2 processes
    raw = read_ct_series(tmp_path / "raw")
    for name, syntax in (("j2k", JPEG2000Lossless), ("rle", RLELossless)):
        _compressed_copy(tmp_path / "raw", tmp_path / name, syntax)
        assert np.array_equal(read_ct_series(tmp_path / name).hu, raw.hu), name
    # a damaged JPEG 2000 slice: its refusal comes back from the decoding process
    victim = sorted((tmp_path / "j2k").glob("*.dcm"))[5]
    ds = pydicom.dcmread(victim)
    ds.PixelData = ds.PixelData[: len(ds.PixelData) // 3]
    ds.save_as(victim, enforce_file_format=True)
    with pytest.raises(IntakeError) as caught:
        read_ct_series(tmp_path / "j2k")
    assert caught.value.code == "intake.ct_corrupt_slice"
