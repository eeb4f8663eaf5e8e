from __future__ import annotations

import csv

import cv2
import numpy as np
import pytest

from edgeosteo.config import QualityThresholds
from edgeosteo.intake import read_image
from edgeosteo.intake.types import Radiograph
from edgeosteo.quality import assess

T = QualityThresholds()


def _codes(report):
    return {g.code for g in report.gates if g.verdict == "fail"}


def test_real_radiographs_pass(pydicom_data_dir, deid_data_dir):
    for path in (
        pydicom_data_dir / "RG1_UNCR.dcm",
        pydicom_data_dir / "RG3_J2KR.dcm",
        deid_data_dir / "animals" / "cat.dcm",
    ):
        report = assess(read_image(path).radiograph, T)
        assert report.usable, (path.name, report.to_dict())


@pytest.mark.shared_data
def test_every_knee_image_passes_and_blurred_copies_fail(knee_dir):
    with open(knee_dir / "clinical.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    failed = []
    for row in rows:
        radiograph = read_image(knee_dir / "images" / row["image"]).radiograph
        if not assess(radiograph, T).usable:
            failed.append(row["image"])
    assert failed == []
    radiograph = read_image(knee_dir / "images" / rows[0]["image"]).radiograph
    scale = 1024 / max(radiograph.shape)
    sigma = 8 / scale  # 8 px at the analysis scale
    blurred = Radiograph(
        pixels=cv2.GaussianBlur(radiograph.pixels, (0, 0), sigma), source_format="jpeg"
    )
    assert "quality.blurred" in _codes(assess(blurred, T))


def test_colour_photographs_are_not_radiographs(deid_data_dir):
    radiograph = read_image(deid_data_dir / "dicom-cookies" / "image1.dcm").radiograph
    assert "quality.not_radiograph" in _codes(assess(radiograph, T))


def test_a_text_page_is_not_a_radiograph():
    page = np.full((1400, 1000), 245, np.uint8)
    rng = np.random.default_rng(0)
    for y in range(80, 1350, 38):
        x = 60
        while x < 900:
            word = "".join(chr(int(rng.integers(97, 122))) for _ in range(int(rng.integers(3, 9))))
            cv2.putText(page, word, (x, y), cv2.FONT_HERSHEY_SIMPLEX, 0.9, 20, 2)
            x += len(word) * 18 + 20
    _, encoded = cv2.imencode(".png", page)
    report = assess(read_image(encoded.tobytes()).radiograph, T)
    assert "quality.not_radiograph" in _codes(report)


def test_ct_and_mr_are_refused_by_modality(pydicom_data_dir):
    for name in ("693_UNCR.dcm", "MR2_UNCR.dcm"):
        report = assess(read_image(pydicom_data_dir / name).radiograph, T)
        assert "quality.wrong_modality" in _codes(report)


def test_low_resolution_and_blank_images():
    rng = np.random.default_rng(1)
    small = Radiograph(pixels=rng.random((200, 180)).astype(np.float32), source_format="png")
    assert "quality.resolution_too_low" in _codes(assess(small, T))
    flat = np.full((800, 800), 0.5, np.float32)
    flat[0, 0] = 0.51
    assert "quality.blank" in _codes(assess(Radiograph(pixels=flat, source_format="png"), T))


def test_burnt_out_centre_fails_exposure(pydicom_data_dir):
    radiograph = read_image(pydicom_data_dir / "RG1_UNCR.dcm").radiograph
    burnt = radiograph.pixels.copy()
    h, w = burnt.shape
    burnt[h // 5 : 4 * h // 5, w // 5 : 4 * w // 5] = 1.0
    report = assess(Radiograph(pixels=burnt, source_format="dicom", modality="CR"), T)
    assert "quality.overexposed" in _codes(report)


def test_thresholds_come_from_configuration(pydicom_data_dir):
    radiograph = read_image(pydicom_data_dir / "RG1_UNCR.dcm").radiograph
    strict = QualityThresholds(resolution_fail_px=5000)
    assert "quality.resolution_too_low" in _codes(assess(radiograph, strict))
    assert assess(radiograph, T).usable


def test_an_image_that_cannot_be_measured_fails_the_gates():
    # NaN compares false with every threshold; a film of NaN pixels once passed blank and blur
    pixels = np.random.default_rng(3).random((600, 500)).astype(np.float32)
    pixels[100:200, 100:200] = np.nan
    report = assess(Radiograph(pixels=pixels, source_format="png"), T)
    assert not report.usable
    assert {"quality.blank", "quality.blurred"} <= _codes(report)
    assert all(g.measured is None for g in report.gates if g.gate in ("blank", "blur"))
