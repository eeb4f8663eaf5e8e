"""The mandibular cortical width through the measurement stage, on panoramic phantom files."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tools"))

from phantoms import mandible  # noqa: E402

from edgeosteo.config import MeasurementSettings  # noqa: E402
from edgeosteo.intake import read_image  # noqa: E402
from edgeosteo.measurement import Measurement, MeasurementRefusal, MeasurementRequest  # noqa: E402
from edgeosteo.methods import MethodRegistry, measure  # noqa: E402
from edgeosteo.methods.base import MethodCard  # noqa: E402

# a numpy warning (an empty mean on taps near the film edge) is a fault: the box prints none
pytestmark = pytest.mark.filterwarnings("error::RuntimeWarning")

REGISTRY = MethodRegistry(REPO / "models")
REPORT = REPO / "tools" / "reports" / "mcw.json"
CARD_JSON = REPO / "models" / "mcw" / "method.json"
SETTINGS = MeasurementSettings(magnification={"JAW": mandible.MAGNIFICATION})
TOLERANCE_MM = 0.2


def run(rad, taps, body_part="JAW", view=None, settings=SETTINGS):
    request = MeasurementRequest("mcw", tuple(tuple(map(float, p)) for p in taps))
    return measure(request, rad, True, body_part, view, REGISTRY, settings)


def dicom(seed: int, **overrides):
    ph = mandible.make(seed, **overrides)
    return ph, read_image(mandible.dicom_bytes(ph)).radiograph


def refusal(result, code):
    assert isinstance(result, MeasurementRefusal), result
    assert result.code == code, (result.code, result.detail)
    assert "value" not in result.to_dict()


@pytest.mark.parametrize("seed", [0, 3, 7, 12])
def test_accuracy_on_fixed_phantoms(seed):
    ph, rad = dicom(seed)
    result = run(rad, ph.taps, view="PANORAMIC")
    assert isinstance(result, Measurement), result
    assert result.unit == "mm"
    assert abs(result.value - ph.width_mm) <= TOLERANCE_MM
    assert result.scale_mm_per_px == pytest.approx(0.1 / 1.25)
    assert result.details["width_mm_side"] == pytest.approx(result.value, abs=1e-3)
    roles = [s.role for s in result.overlay]
    assert roles.count("axis") == 1 and roles.count("measure") == 1 and roles.count("edge") == 2
    assert all(c.ok for c in result.point_checks)


def test_both_sides_give_their_mean_and_each_side():
    ph, rad = dicom(5)
    result = run(rad, ph.taps + ph.taps)
    assert isinstance(result, Measurement), result
    d = result.details
    assert result.value == pytest.approx((d["width_mm_right"] + d["width_mm_left"]) / 2, abs=1e-3)
    assert d["sides_measured"] == ["right", "left"]
    refusal(run(rad, ph.taps + ph.taps[:1]), "measurement.too_few_points")


def test_band_follows_the_card():
    card = MethodCard.load(CARD_JSON)
    assert [b.band for b in card.bands] == ["osteoporosis_likely", "normal"]
    assert card.band_for(2.99)[0] == "osteoporosis_likely"
    assert card.band_for(3.0)[0] == "normal"
    for width in (2.2, 4.5):
        ph, rad = dicom(21, width_mm=width)
        result = run(rad, ph.taps)
        assert isinstance(result, Measurement), result
        band, cutoff = card.band_for(result.value)
        assert result.band == band and result.cutoff == cutoff
        assert band == ("osteoporosis_likely" if width < 3 else "normal")
    assert card.needs_scale and card.unit == "mm" and card.body_parts == ("JAW",)


@pytest.mark.parametrize("bits,mono1", [(8, True), (16, True)])
def test_monochrome1_and_8_bit(bits, mono1):
    ph, rad = dicom(6, bits=bits, monochrome1=mono1)
    result = run(rad, ph.taps)
    assert isinstance(result, Measurement), result
    assert abs(result.value - ph.width_mm) <= TOLERANCE_MM


def test_bad_taps_are_refused_with_their_code():
    ph, rad = dicom(2)
    f, b = ph.taps
    refusal(run(rad, [f]), "measurement.too_few_points")
    refusal(run(rad, [f, b, f, b, f]), "measurement.too_many_points")
    refusal(run(rad, [f, (-5.0, 10.0)]), "measurement.point_outside_image")
    near = (b[0] + 10 * ph.up[0], b[1] + 10 * ph.up[1])  # 0.8 mm above the border tap
    refusal(run(rad, [near, b]), "measurement.points_too_close")
    for target in (ph.soft_tissue_point, ph.background_point):
        shift = np.array(target) - np.array(b)
        moved = [tuple(np.array(p) + shift) for p in (f, b)]
        result = run(rad, moved)
        refusal(result, "measurement.not_bone")
        assert [c.ok for c in result.point_checks] == [False, False]
    refusal(run(rad, [b, f]), "measurement.points_out_of_order")
    refusal(run(rad, ph.taps, body_part="HAND"), "measurement.wrong_body_part")
    refusal(run(rad, ph.taps, view="LATERAL"), "measurement.wrong_body_part")


def test_destroyed_edges_are_refused():
    ph, rad = dicom(3, blur_sigma_px=40.0)
    refusal(run(rad, ph.taps), "measurement.edge_not_found")
    ph, rad = dicom(4, photons=3.0)
    refusal(run(rad, ph.taps), "measurement.edge_not_found")


def test_no_scale_and_no_magnification_are_refused():
    ph, rad = dicom(8)
    # the site has not entered the panoramic unit's factor (JAW has no default)
    refusal(run(rad, ph.taps, settings=MeasurementSettings()), "measurement.no_magnification")
    png = read_image(mandible.png_bytes(ph)).radiograph
    assert png.pixel_spacing_mm is None
    refusal(run(png, ph.taps), "measurement.no_scale")
    nospacing = read_image(mandible.dicom_bytes(ph, spacing_mm=None)).radiograph
    refusal(run(nospacing, ph.taps), "measurement.no_scale")


def test_photo_of_film_is_refused_for_no_scale():
    ph = mandible.make(9)
    rad, taps = mandible.photo(ph, 9)
    refusal(run(rad, taps), "measurement.no_scale")


def test_shipped_values_match_a_fresh_run():
    import eval_mcw

    report = json.loads(REPORT.read_text())
    for case in report["cases"][:3]:
        _, rad, _ = eval_mcw.radiograph_for(case["seed"], case["condition"])
        result = eval_mcw.run(rad, case["taps"])
        assert result.status == case["status"]
        assert getattr(result, "value", None) == case["value"]


def test_card_figures_equal_the_report():
    report = json.loads(REPORT.read_text())
    card = json.loads(CARD_JSON.read_text())
    for key in ("accuracy", "repeatability", "refusal", "no_scale_check", "subgroups"):
        assert card["accuracy"][key] == report[key]
    md = (REPO / "models" / "mcw" / "CARD.md").read_text()
    a, r = report["accuracy"], report["repeatability"]
    assert f"median |error| {a['median_abs_error']:.3f} mm" in md
    assert f"95th percentile |error| {a['p95_abs_error']:.3f} mm" in md
    assert f"within-SD {r['within_sd']:.4f} mm" in md
    assert f"ICC(A,1) {r['icc_a1']:.4f}" in md
    assert re.search(rf"{report['refusal']['refused_right_code']} with the right code", md)
    assert report["accuracy"]["phantoms"] >= 300 and report["refusal"]["n"] >= 40


def test_cli_measures_a_panoramic_dicom_with_the_sites_magnification(tmp_path):
    ph = mandible.make(11)
    path = tmp_path / "pan.dcm"
    path.write_bytes(mandible.dicom_bytes(ph))
    config = tmp_path / "edgeosteo.toml"
    config.write_text("[measurement.magnification]\nJAW = 1.25\n", encoding="utf-8")
    points = json.dumps([list(p) for p in ph.taps])

    def cli(*extra):
        exe = Path(sys.executable).with_name("edgeosteo")
        command = [str(exe)] if exe.exists() else [sys.executable, "-m", "edgeosteo.cli"]
        args = ["--data-dir", str(tmp_path / "box"), *extra, "measure", str(path)]
        args += ["--method", "mcw", "--points", points, "--json"]
        return subprocess.run([*command, *args], capture_output=True, text=True, timeout=120)

    done = cli("--config", str(config))
    assert done.returncode == 0, done.stderr
    measured = json.loads(done.stdout)
    assert measured["method"] == "mcw" and measured["unit"] == "mm"
    assert abs(measured["value"] - ph.width_mm) <= TOLERANCE_MM
    assert measured["band"] == "osteoporosis_likely" and measured["cutoff"]["citation"]
    refused = cli()  # no magnification in the box's settings
    assert refused.returncode == 1
    assert json.loads(refused.stdout)["code"] == "measurement.no_magnification"
