"""Every test file pydicom ships (with pydicom-data's) through intake: each refusal is
accounted for below, so a valid file newly called damaged (or any other new refusal)
fails here instead of at a clinic."""

from __future__ import annotations

import re
from pathlib import Path

import pydicom.data
import pytest

from edgeosteo.errors import IntakeError
from edgeosteo.intake import read_image

MULTI = "intake.multi_frame"
SMALL = "intake.too_small"
NO_IMAGE = "intake.unsupported_dicom"
NOT_AN_IMAGE = "intake.not_an_image"
CORRUPT = "intake.corrupt_pixels"

# path (relative to pydicom's test_files or pydicom-data's data folder) -> (code, why)
EXPECTED: dict[str, tuple[str, str]] = {
    # --- several frames: intake takes one radiograph ---
    "OBXXXX1A_2frame.dcm": (MULTI, "2 frames"),
    "OBXXXX1A_expb_2frame.dcm": (MULTI, "2 frames"),
    "OBXXXX1A_rle_2frame.dcm": (MULTI, "2 frames"),
    "SC_rgb_16bit_2frame.dcm": (MULTI, "2 frames"),
    "SC_rgb_2frame.dcm": (MULTI, "2 frames"),
    "SC_rgb_32bit_2frame.dcm": (MULTI, "2 frames"),
    "SC_rgb_expb_16bit_2frame.dcm": (MULTI, "2 frames"),
    "SC_rgb_expb_2frame.dcm": (MULTI, "2 frames"),
    "SC_rgb_expb_32bit_2frame.dcm": (MULTI, "2 frames"),
    "SC_rgb_rle_16bit_2frame.dcm": (MULTI, "2 frames"),
    "SC_rgb_rle_2frame.dcm": (MULTI, "2 frames"),
    "SC_rgb_rle_32bit_2frame.dcm": (MULTI, "2 frames"),
    "color3d_jpeg_baseline.dcm": (MULTI, "120 frames (colour video)"),
    "eCT_Supplemental.dcm": (MULTI, "2 frames, enhanced CT"),
    "emri_small.dcm": (MULTI, "10 frames"),
    "emri_small_RLE.dcm": (MULTI, "10 frames"),
    "emri_small_big_endian.dcm": (MULTI, "10 frames"),
    "emri_small_jpeg_2k_lossless.dcm": (MULTI, "10 frames"),
    "emri_small_jpeg_ls_lossless.dcm": (MULTI, "10 frames"),
    "examples_ybr_color.dcm": (MULTI, "30 frames"),
    "liver.dcm": (MULTI, "3 frames"),
    "liver_expb.dcm": (MULTI, "3 frames"),
    "rtdose.dcm": (MULTI, "15 frames, a dose grid"),
    "rtdose_expb.dcm": (MULTI, "15 frames, a dose grid"),
    "rtdose_rle.dcm": (MULTI, "15 frames, a dose grid"),
    # --- below min_side_px (64): nothing to assess ---
    "ExplVR_BigEnd.dcm": (SMALL, "small test image"),
    "JPEGLSNearLossless_08.dcm": (SMALL, "small test image"),
    "JPEGLSNearLossless_16.dcm": (SMALL, "small test image"),
    "SC_rgb_small_odd.dcm": (SMALL, "3x3"),
    "SC_rgb_small_odd_big_endian.dcm": (SMALL, "3x3"),
    "SC_rgb_small_odd_jpeg.dcm": (SMALL, "3x3"),
    "badVR.dcm": (SMALL, "small test image"),
    "rtdose_1frame.dcm": (SMALL, "one dose plane, 10x10"),
    "rtdose_expb_1frame.dcm": (SMALL, "one dose plane, 10x10"),
    "rtdose_rle_1frame.dcm": (SMALL, "one dose plane, 10x10"),
    # --- no pixel data: reports, plans, directories, waveforms, header-only tests ---
    "UN_sequence.dcm": (NO_IMAGE, "no pixel data"),
    "dicomdirtests/DICOMDIR": (NO_IMAGE, "a DICOMDIR"),
    "dicomdirtests/DICOMDIR-bigEnd": (NO_IMAGE, "a DICOMDIR"),
    "dicomdirtests/DICOMDIR-empty.dcm": (NO_IMAGE, "a DICOMDIR"),
    "dicomdirtests/DICOMDIR-implicit": (NO_IMAGE, "a DICOMDIR"),
    "dicomdirtests/DICOMDIR-nooffset": (NO_IMAGE, "a DICOMDIR"),
    "dicomdirtests/DICOMDIR-nopatient": (NO_IMAGE, "a DICOMDIR"),
    "dicomdirtests/DICOMDIR-reordered": (NO_IMAGE, "a DICOMDIR"),
    "dicomdirtests/TINY_ALPHA/DICOMDIR": (NO_IMAGE, "a DICOMDIR"),
    "empty_charset_LEI.dcm": (NO_IMAGE, "no pixel data"),
    "emri_small_jpeg_2k_lossless_too_short.dcm": (NO_IMAGE, "cut off before its pixel data"),
    "no_meta_group_length.dcm": (NO_IMAGE, "no pixel data"),
    "priv_SQ.dcm": (NO_IMAGE, "no pixel data"),
    "reportsi.dcm": (NO_IMAGE, "structured report"),
    "reportsi_with_empty_number_tags.dcm": (NO_IMAGE, "structured report"),
    "rtplan.dcm": (NO_IMAGE, "RT plan"),
    "rtplan_truncated.dcm": (NO_IMAGE, "RT plan"),
    "test-SR.dcm": (NO_IMAGE, "structured report"),
    "waveform_ecg.dcm": (NO_IMAGE, "ECG waveform"),
    # --- no DICM preamble (raw dataset, ACR-NEMA style) or not DICOM at all ---
    "ExplVR_BigEndNoMeta.dcm": (NOT_AN_IMAGE, "no preamble or file meta"),
    "ExplVR_LitEndNoMeta.dcm": (NOT_AN_IMAGE, "no preamble or file meta"),
    "OT-PAL-8-face.dcm": (NOT_AN_IMAGE, "no preamble or file meta (pydicom cannot decode it)"),
    "no_meta.dcm": (NOT_AN_IMAGE, "no preamble or file meta"),
    "rtstruct.dcm": (NOT_AN_IMAGE, "no preamble; an RT structure set, no image"),
    "README.txt": (NOT_AN_IMAGE, "text"),
    "dicomdirtests/README.txt": (NOT_AN_IMAGE, "text"),
    "dicomdirtests/TINY_ALPHA/README": (NOT_AN_IMAGE, "text"),
    "crayons.icc": (NOT_AN_IMAGE, "an ICC profile"),
    "rtplan.dump": (NOT_AN_IMAGE, "text dump"),
    "rtstruct.dump": (NOT_AN_IMAGE, "text dump"),
    "test1.json": (NOT_AN_IMAGE, "DICOM JSON"),
    "test_PN.json": (NOT_AN_IMAGE, "DICOM JSON"),
    "zipMR.gz": (NOT_AN_IMAGE, "gzip"),
    # --- pixels no installed decoder reads (pydicom's pixel_array fails too) ---
    "JPEG-lossy.dcm": (CORRUPT, "12-bit JPEG extended; pylibjpeg refuses it"),
    "JPEG2000-embedded-sequence-delimiter.dcm": (CORRUPT, "pylibjpeg refuses the codestream"),
    "meta_missing_tsyntax.dcm": (CORRUPT, "no transfer syntax, no Rows/Columns"),
    "nested_priv_SQ.dcm": (CORRUPT, "pixel data without Rows/Columns/Bits Allocated"),
    # --- genuinely cut off ---
    "MR_truncated.dcm": ("intake.truncated", "pixel data 8130 of 8192 bytes"),
}

# groups of look-alike files: (path pattern, code, how many, why)
GROUPS: list[tuple[str, str, int, str]] = [
    (r"dicomdirtests/\d+/[A-Z0-9]+/\d+", SMALL, 31, "16x16 thumbnails behind the DICOMDIRs"),
    (
        r"dicomdirtests/TINY_ALPHA/PT000000/ST000000/SE000000/IM[0-9A-Z]{6}",
        NO_IMAGE,
        50,
        "header-only records of a tiny DICOMDIR tree",
    ),
]


def _roots() -> list[Path]:
    roots = [Path(pydicom.data.__file__).resolve().parent / "test_files"]
    try:
        import deid_data  # pydicom-data, when installed

        roots.append(Path(deid_data.__file__).resolve().parents[1] / "data_store" / "data")
    except ImportError:
        pass
    return roots


def _relative(path: Path, roots: list[Path]) -> str:
    for root in roots:
        if path.is_relative_to(root):
            return path.relative_to(root).as_posix()
    return path.as_posix()


def test_every_pydicom_test_file_is_read_or_refused_for_a_known_reason():
    roots = _roots()
    files = [Path(f).resolve() for f in pydicom.data.get_testdata_files()]
    files = [f for f in files if f.is_file()]
    assert len(files) > 150
    refused: set[tuple[str, str]] = set()
    for path in files:
        try:
            read_image(path)
        except IntakeError as exc:
            refused.add((_relative(path, roots), exc.code))

    expected = {(name, code) for name, (code, _why) in EXPECTED.items()}
    grouped: set[tuple[str, str]] = set()
    for pattern, code, count, _why in GROUPS:
        members = {r for r in refused if re.fullmatch(pattern, r[0])}
        assert {c for _, c in members} <= {code}, pattern
        assert len(members) == count, pattern
        grouped |= members
    assert sorted(refused - grouped) == sorted(expected)


@pytest.mark.parametrize("name", ["SC_ybr_full_422_uncompressed.dcm"])
def test_a_subsampled_ybr_file_is_not_called_truncated(name):
    intake = read_image(pydicom.data.get_testdata_file(name))
    assert intake.radiograph.pixels.shape == (100, 100)
