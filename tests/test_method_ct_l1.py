"""CT L1 trabecular attenuation on phantom CT series written as real DICOM folders: the
value against the phantom's truth, the checks that qualify it, the refusals, the CLI."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tools"))

from phantoms import ct  # noqa: E402

from edgeosteo.intake.ct_series import read_ct_series  # noqa: E402
from edgeosteo.measurement import Measurement, MeasurementRefusal  # noqa: E402
from edgeosteo.methods import MethodRegistry, measure_series  # noqa: E402
from edgeosteo.methods.base import MethodCard  # noqa: E402
from edgeosteo.methods.ct_l1 import parse_request  # noqa: E402

REGISTRY = MethodRegistry(REPO / "models")
CARD = REPO / "models" / "ct-l1" / "method.json"
SMALL = {"matrix": 160, "fov_mm": 360.0, "levels": ("T12", "L1", "L2")}
TOLERANCE_HU = 5.0


def measure(folder: Path, truth, level="L1", tap=None, **options):
    series = read_ct_series(folder)
    tap = truth.sagittal_tap(level) if tap is None else tap
    request = parse_request({"level": level, "sagittal": list(tap), **options})
    return measure_series(request, series, REGISTRY)


@pytest.mark.parametrize(
    ("seed", "thickness", "core", "band"),
    [
        (21, 2.5, 90.0, "osteoporosis_likely"),
        (22, 5.0, 140.0, "low_bone_mass"),
        (23, 1.25, 200.0, "normal"),
    ],
)
def test_the_value_is_the_core_hu_within_tolerance(tmp_path, seed, thickness, core, band):
    truth = ct.make_series(
        tmp_path / "s", seed, slice_thickness_mm=thickness, core_hu=core, **SMALL
    )
    result = measure(tmp_path / "s", truth)
    assert isinstance(result, Measurement), result
    assert abs(result.value - truth.level("L1").core_hu) <= TOLERANCE_HU
    assert result.unit == "HU" and result.band == band
    assert result.details["sd"] == pytest.approx(20.0, abs=4.0)  # the noise, no cortex
    slices = result.details["slices"]
    assert len(slices) >= 3
    z_lo, z_hi = truth.level("L1").z_bottom_mm, truth.level("L1").z_top_mm
    assert all(z_lo + 1.5 < s["z_mm"] < z_hi - 1.5 for s in slices)  # inside the endplates
    rois = [s for s in result.overlay if s.role == "roi"]
    assert len(rois) == len(slices)
    assert all(c["status"] == "ok" for c in result.details["checks"])


def test_the_roi_keeps_off_the_basivertebral_vein_and_the_cortex(tmp_path):
    truth = ct.make_series(tmp_path / "s", 24, slice_thickness_mm=1.25, core_hu=120, **SMALL)
    result = measure(tmp_path / "s", truth)
    assert isinstance(result, Measurement), result
    lv = truth.level("L1")
    ps = truth.pixel_spacing_mm
    centre_y = (lv.centre_mm[1] - truth.origin_mm[1]) / ps
    semi_y = lv.semi_axes_mm[1] / ps
    for shape in (s for s in result.overlay if s.role == "roi"):
        ys = [p[1] for p in shape.points]
        # the vein lies from 0.5 of the front-back semi-axis to the back: a margin kept
        assert max(ys) < centre_y + 0.45 * semi_y
        assert min(ys) > centre_y - semi_y + 2.0 / ps  # clear of the anterior cortex


def test_t12_and_l2_are_measured_and_flagged_as_not_the_thresholds_level(tmp_path):
    truth = ct.make_series(tmp_path / "s", 25, slice_thickness_mm=2.5, **SMALL)
    for level in ("T12", "L2"):
        result = measure(tmp_path / "s", truth, level)
        assert isinstance(result, Measurement), (level, result)
        assert abs(result.value - truth.level(level).core_hu) <= TOLERANCE_HU
        warned = {c["check"] for c in result.details["checks"] if c["status"] == "warn"}
        assert warned == {"level_not_l1"}


def test_kvp_contrast_thickness_and_a_drifted_scanner_are_warned(tmp_path):
    truth = ct.make_series(
        tmp_path / "s",
        26,
        kvp=100,
        contrast=True,
        slice_thickness_mm=6.0,
        slice_spacing_mm=2.0,
        calibration_offset_hu=60.0,
        **SMALL,
    )
    result = measure(tmp_path / "s", truth)
    assert isinstance(result, Measurement), result
    checks = {c["check"]: c for c in result.details["checks"]}
    for name in ("kvp_not_120", "contrast", "thick_slices", "air_drift", "fat_drift"):
        assert checks[name]["status"] == "warn", name
        assert checks[name]["message_zh_CN"] != checks[name]["message_en"]
    assert "+11.2 HU" in checks["contrast"]["detail"]
    assert checks["air_drift"]["value"] == pytest.approx(-940, abs=15)
    # the drifted scanner's value is read as it is: the checks say why not to trust it
    assert result.value == pytest.approx(truth.level("L1").core_hu + 60, abs=TOLERANCE_HU)


def test_air_and_fat_of_a_calibrated_scanner_pass(tmp_path):
    truth = ct.make_series(tmp_path / "s", 27, slice_thickness_mm=2.5, **SMALL)
    result = measure(tmp_path / "s", truth)
    checks = {c["check"]: c for c in result.details["checks"]}
    assert checks["air_drift"]["status"] == "ok" and checks["fat_drift"]["status"] == "ok"
    assert checks["fat_drift"]["value"] == pytest.approx(truth.fat_hu, abs=12)


def test_a_tap_on_a_disc_on_soft_tissue_or_outside_is_refused(tmp_path):
    truth = ct.make_series(tmp_path / "s", 28, slice_thickness_mm=2.5, **SMALL)
    l1, l2 = truth.level("L1"), truth.level("L2")
    disc_z = (l1.z_bottom_mm + l2.z_top_mm) / 2
    disc_row = float(np.argmin(np.abs(np.asarray(truth.slice_z_mm) - disc_z)))
    col, row = truth.sagittal_tap("L1")
    cases = {
        "disc": ((col, disc_row), "measurement.ct_body_not_found"),
        "front": ((col - 40 / truth.pixel_spacing_mm, row), "measurement.ct_body_not_found"),
        "outside": ((col, len(truth.slice_z_mm) + 5), "measurement.ct_tap_outside"),
    }
    for name, (tap, code) in cases.items():
        result = measure(tmp_path / "s", truth, tap=tap)
        assert isinstance(result, MeasurementRefusal), name
        assert result.code == code, (name, result.code)
    result = measure(tmp_path / "s", truth, level="L4", tap=(col, row))
    assert isinstance(result, MeasurementRefusal) and result.code == "measurement.ct_level_unknown"


def test_a_body_too_thin_for_three_slices_is_refused(tmp_path):
    truth = ct.make_series(tmp_path / "s", 29, slice_thickness_mm=10.0, **SMALL)
    result = measure(tmp_path / "s", truth)
    assert isinstance(result, MeasurementRefusal)
    assert result.code == "measurement.ct_too_few_slices"


def test_the_card_bands_are_pickhardts_thresholds_inclusive():
    card = MethodCard.load(CARD)
    assert card.unit == "HU" and card.body_parts == ("CT_SERIES",)
    assert card.band_for(110.0)[0] == "osteoporosis_likely"
    assert card.band_for(110.1)[0] == "low_bone_mass"
    assert card.band_for(160.0)[0] == "low_bone_mass"
    assert card.band_for(160.1)[0] == "normal"
    assert "Pickhardt" in card.band_for(100)[1].citation
    # a radiograph never offers this method
    for body_part, view in (("LSPINE", "LATERAL"), ("SPINE", None), ("CHEST", None)):
        assert all(c.id != "ct-l1" for c in REGISTRY.for_image(body_part, view))
    assert REGISTRY.for_image("LSPINE", "LATERAL")


def _cli(*args):
    from test_cli import run as cli

    return cli(
        *args,
        env_extra={"PYTHONPATH": str(REPO), "EDGEOSTEO_MODELS_DIR": str(REPO / "models")},
    )


def test_cli_measures_a_series_folder_as_json(tmp_path):
    truth = ct.make_series(tmp_path / "s", 30, slice_thickness_mm=2.5, core_hu=135, **SMALL)
    col, row = truth.sagittal_tap("L1")
    points = json.dumps({"level": "L1", "sagittal": [round(col, 1), row]})
    result = _cli(
        "--data-dir", str(tmp_path / "box"), "measure", str(tmp_path / "s"),
        "--method", "ct-l1", "--points", points, "--json",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr + result.stdout
    measured = json.loads(result.stdout)
    assert {"method", "value", "unit", "sd", "slices", "band", "checks"} <= set(measured)
    assert measured["method"] == "ct-l1" and measured["unit"] == "HU"
    assert abs(measured["value"] - truth.level("L1").core_hu) <= TOLERANCE_HU
    assert measured["band"] == "low_bone_mass" and len(measured["slices"]) >= 3
    text = _cli(
        "--data-dir", str(tmp_path / "box"), "measure", str(tmp_path / "s"),
        "--method", "ct-l1", "--points", points, "--lang", "zh_CN",
    )  # fmt: skip
    assert text.returncode == 0 and "HU" in text.stdout


def test_cli_refuses_a_bad_series_and_a_single_image_with_codes(tmp_path):
    ct.make_bad(tmp_path / "gap", "gap", 31, matrix=96)
    points = json.dumps({"level": "L1", "sagittal": [50, 5]})
    result = _cli(
        "--data-dir", str(tmp_path / "box"), "measure", str(tmp_path / "gap"),
        "--method", "ct-l1", "--points", points, "--json",
    )  # fmt: skip
    assert result.returncode == 1
    refused = json.loads(result.stdout)
    assert refused["code"] == "intake.ct_slice_gap" and refused["message_zh_CN"]
    one = next((tmp_path / "gap").glob("*.dcm"))
    result = _cli(
        "--data-dir", str(tmp_path / "box"), "measure", str(one),
        "--method", "ct-l1", "--points", points, "--json",
    )  # fmt: skip
    assert result.returncode == 1
    assert json.loads(result.stdout)["code"] == "measurement.ct_needs_series"
    result = _cli(
        "--data-dir", str(tmp_path / "box"), "measure", str(tmp_path / "gap"),
        "--method", "cti", "--points", "[[1, 2], [3, 4]]",
    )  # fmt: skip
    assert result.returncode == 2 and "ct-l1" in result.stderr


REPORT = REPO / "tools" / "reports" / "ct-l1.json"


def test_shipped_figures_match_a_fresh_run_on_a_subset():
    import eval_ct

    report = json.loads(REPORT.read_text())
    fast = [c for c in report["cases"] if c["matrix"] == 256 and c["slice_thickness_mm"] >= 2.5]
    for case in fast[:1]:
        fresh = eval_ct.accuracy_case(case["seed"])
        assert fresh == case
    assert eval_ct.bad_case(0) == report["bad_cases"][0]
    assert eval_ct.drift_case(1) == report["drift_cases"][1]


def test_card_figures_equal_the_report():
    report = json.loads(REPORT.read_text())
    card = json.loads(CARD.read_text())
    for key in ("accuracy", "subgroups", "refusal", "checks", "taps"):
        assert card["accuracy"][key] == report[key]
    a = report["accuracy"]
    md = (REPO / "models" / "ct-l1" / "CARD.md").read_text().replace("\n  ", " ")
    assert f"median |error| {a['median_abs_error']:.2f} HU" in md
    n20 = report["subgroups"]["noise_sd_20"]["median_abs_error"]
    assert f"median |error| {n20:.2f} HU" in md
    assert n20 <= 5.0  # the goal at noise SD 20 HU
    assert report["refusal"]["refused_right_code"] == report["refusal"]["n"]
    assert "has not been re-validated" in md.replace("\n", " ")


def test_the_band_reaches_the_decision_through_the_site_policy(tmp_path):
    import dataclasses

    from test_decision import PASS
    from test_measurement_decision import LOW_RISK

    from edgeosteo.config import load_settings
    from edgeosteo.decision import SitePolicy, decide

    truth = ct.make_series(tmp_path / "s", 32, slice_thickness_mm=2.5, core_hu=95, **SMALL)
    measured = measure(tmp_path / "s", truth)
    assert measured.band == "osteoporosis_likely"
    default = decide(LOW_RISK, None, None, PASS, SitePolicy(), [measured])
    assert default.category != "refer"  # not counted unless the site says so
    assert "measurement.information_only" in [n.code for n in default.notes]
    counting = dataclasses.replace(SitePolicy(), counted_measurements=("ct-l1",))
    counted = decide(LOW_RISK, None, None, PASS, counting, [measured])
    assert counted.category == "refer"
    assert "measurement.band.osteoporosis_likely" in [r.code for r in counted.reasons]
    # a site's config file may count it
    config = tmp_path / "edgeosteo.toml"
    config.write_text('[policy]\ncounted_measurements = ["mci", "ct-l1"]\n')
    settings = load_settings(data_dir=tmp_path / "box", environ={}, config_file=config)
    assert "ct-l1" in settings.policy.counted_measurements
