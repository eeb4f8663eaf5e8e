"""The femoral cortical thickness index through the measurement stage, on AP hip phantoms."""

from __future__ import annotations

import functools
import json
import re
import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tools"))

from phantoms import femur  # noqa: E402

from edgeosteo.config import MeasurementSettings  # noqa: E402
from edgeosteo.intake import read_image  # noqa: E402
from edgeosteo.measurement import Measurement, MeasurementRefusal, MeasurementRequest  # noqa: E402
from edgeosteo.methods import MethodRegistry, measure  # noqa: E402
from edgeosteo.methods.base import MethodCard  # noqa: E402

# a numpy warning (an empty mean on taps near the film edge) is a fault: the box prints none
pytestmark = pytest.mark.filterwarnings("error::RuntimeWarning")

REGISTRY = MethodRegistry(REPO / "models")
REPORT = REPO / "tools" / "reports" / "cti.json"
CARD_JSON = REPO / "models" / "cti" / "method.json"
TOLERANCE = 0.03


def run(rad, taps, body_part="HIP", view="AP"):
    request = MeasurementRequest("cti", tuple(tuple(map(float, p)) for p in taps))
    return measure(request, rad, True, body_part, view, REGISTRY, MeasurementSettings())


@functools.cache
def dicom(seed: int, **overrides):
    ph = femur.make(seed, **overrides)
    return ph, read_image(femur.dicom_bytes(ph)).radiograph


def refusal(result, code):
    assert isinstance(result, MeasurementRefusal), result
    assert result.code == code, (result.code, result.detail)
    assert "value" not in result.to_dict()


@pytest.mark.parametrize("seed", [0, 1, 3])
def test_accuracy_on_fixed_phantoms(seed):
    ph, rad = dicom(seed)
    result = run(rad, ph.taps)
    assert isinstance(result, Measurement), result
    assert abs(result.value - ph.cti) <= TOLERANCE
    assert result.unit == "ratio"
    assert result.scale_mm_per_px == pytest.approx(ph.pixel_spacing_mm, rel=1e-4)
    roles = [s.role for s in result.overlay]
    assert roles.count("axis") == 1 and roles.count("measure") == 1 and roles.count("edge") == 4
    assert result.details["outer_mm"] == pytest.approx(ph.outer_mm, rel=0.05)
    assert result.details["medullary_mm"] == pytest.approx(ph.medulla_mm, rel=0.10)
    assert result.details["level_mm_below_trochanter"] == 100.0
    assert result.details["profiles_used"] >= 6


def test_band_follows_the_card():
    card = MethodCard.load(CARD_JSON)
    assert card.needs_scale and card.unit == "ratio" and card.body_parts == ("HIP",)
    assert [b.band for b in card.bands] == ["osteoporosis_likely", "low_bone_mass", "normal"]
    assert card.band_for(0.35)[0] == "osteoporosis_likely"
    assert card.band_for(0.50)[0] == "low_bone_mass"
    assert card.band_for(0.70)[0] == "normal"
    for seed in (0, 3):
        ph, rad = dicom(seed)
        result = run(rad, ph.taps)
        assert isinstance(result, Measurement), result
        band, cutoff = card.band_for(round(result.value, 3))
        assert result.band == band and result.cutoff == cutoff


def test_monochrome1_8_bit_low_dose():
    ph, rad = dicom(5, bits=8, monochrome1=True, photons=2000.0)
    result = run(rad, ph.taps)
    assert isinstance(result, Measurement), result
    assert abs(result.value - ph.cti) <= TOLERANCE


def test_bad_taps_are_refused_with_their_code():
    ph, rad = dicom(1)
    a, b = ph.taps
    refusal(run(rad, [a]), "measurement.too_few_points")
    refusal(run(rad, [a, b, a]), "measurement.too_many_points")
    refusal(run(rad, [a, (-5.0, 10.0)]), "measurement.point_outside_image")
    refusal(run(rad, [a, (a[0] + 20, a[1] + 60)]), "measurement.points_too_close")
    origin, d = np.array(ph.axis[0]), np.array(ph.axis[1])
    level = origin + d * femur.LEVEL_MM / ph.pixel_spacing_mm
    shift = np.array(ph.soft_tissue_point) - level
    refusal(run(rad, [tuple(np.array(p) + shift) for p in (a, b)]), "measurement.not_bone")
    refusal(run(rad, ph.taps, body_part="HAND"), "measurement.wrong_body_part")
    refusal(run(rad, ph.taps, view="LATERAL"), "measurement.wrong_body_part")


def test_taps_on_background_are_not_bone():
    ph, rad = dicom(7, thigh_mm=45.0, spacing_mm=0.2)
    origin, d = np.array(ph.axis[0]), np.array(ph.axis[1])
    level = origin + d * femur.LEVEL_MM / ph.pixel_spacing_mm
    lateral = np.array(ph.soft_tissue_point) - level
    shift = lateral / np.hypot(*lateral) * 58.0 / ph.pixel_spacing_mm
    refusal(run(rad, [tuple(np.array(p) + shift) for p in ph.taps]), "measurement.not_bone")


def test_level_outside_the_film_is_refused():
    ph, _ = dicom(1)
    rows = int(ph.axis[0][1] + 60.0 / ph.pixel_spacing_mm)
    cut = femur.crop_rows(ph, rows)
    rad = read_image(femur.dicom_bytes(cut)).radiograph
    a, b = ph.taps
    refusal(run(rad, [a, (b[0], rows - 10.0)]), "measurement.level_outside_image")


def test_no_scale_is_refused_for_png_photo_and_a_file_without_spacing():
    ph, _ = dicom(0)
    png = read_image(femur.png_bytes(ph)).radiograph
    assert png.pixel_spacing_mm is None
    refusal(run(png, ph.taps), "measurement.no_scale")
    bare = read_image(femur.dicom_bytes(ph, spacing_mm=None)).radiograph
    refusal(run(bare, ph.taps), "measurement.no_scale")
    rad, taps = femur.photo(ph, 4)
    refusal(run(rad, taps), "measurement.no_scale")


def test_destroyed_edges_are_refused():
    ph, rad = dicom(3, blur_sigma_px=30.0)
    refusal(run(rad, ph.taps), "measurement.edge_not_found")


def test_shipped_values_match_a_fresh_run():
    import eval_cti

    report = json.loads(REPORT.read_text())
    for case in report["cases"][:2]:
        ph = eval_cti.phantom(case["seed"])
        rad, _ = eval_cti.radiograph(ph)
        result = eval_cti.run(rad, case["taps"])
        assert result.status == case["status"]
        assert getattr(result, "value", None) == case["value"]


def test_card_figures_equal_the_report():
    report = json.loads(REPORT.read_text())
    card = json.loads(CARD_JSON.read_text())
    for key in ("accuracy", "repeatability", "refusal", "checks", "subgroups"):
        assert card["accuracy"][key] == report[key]
    md = (REPO / "models" / "cti" / "CARD.md").read_text()
    a = report["accuracy"]
    assert f"median |error| {a['median_abs_error']:.4f}" in md
    assert f"95th percentile |error| {a['p95_abs_error']:.4f}" in md
    assert f"within-SD {report['repeatability']['within_sd']:.4f}" in md
    assert f"ICC(A,1) {report['repeatability']['icc_a1']:.4f}" in md
    assert re.search(rf"{report['refusal']['refused_right_code']} with the right code", md)
    assert "has not been re-validated" in md.replace("\n", " ")


def test_cli_measure_prints_the_measurement_as_json(tmp_path):
    from test_cli import run as cli

    ph, _ = dicom(0)
    path = tmp_path / "hip.dcm"
    path.write_bytes(femur.dicom_bytes(ph))
    taps = [[round(x, 1), round(y, 1)] for x, y in ph.taps]
    result = cli(
        "--data-dir", str(tmp_path / "box"), "measure", str(path),
        "--method", "cti", "--points", json.dumps(taps), "--json",
        env_extra={"PYTHONPATH": str(REPO), "EDGEOSTEO_MODELS_DIR": str(REPO / "models")},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr + result.stdout
    measured = json.loads(result.stdout)
    assert measured["method"] == "cti" and measured["unit"] == "ratio"
    assert abs(measured["value"] - ph.cti) <= TOLERANCE
    assert measured["band"] and measured["cutoff"]["citation"]
    assert measured["details"]["level_mm_below_trochanter"] == 100.0
