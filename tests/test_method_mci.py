"""The second metacarpal cortical index through the measurement stage, on phantom files."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tools"))

from phantoms import hand  # noqa: E402

from edgeosteo.config import MeasurementSettings  # noqa: E402
from edgeosteo.intake import read_image  # noqa: E402
from edgeosteo.measurement import Measurement, MeasurementRefusal, MeasurementRequest  # noqa: E402
from edgeosteo.methods import MethodRegistry, measure  # noqa: E402
from edgeosteo.methods.base import MethodCard  # noqa: E402

# a numpy warning (an empty mean on taps near the film edge) is a fault: the box prints none
pytestmark = pytest.mark.filterwarnings("error::RuntimeWarning")

REGISTRY = MethodRegistry(REPO / "models")
REPORT = REPO / "tools" / "reports" / "mci.json"
TOLERANCE = 0.03


def run(rad, taps, body_part="HAND", view="PA"):
    request = MeasurementRequest("mci", tuple(tuple(map(float, p)) for p in taps))
    return measure(request, rad, True, body_part, view, REGISTRY, MeasurementSettings())


def dicom(seed: int, **overrides):
    ph = hand.make(seed, **overrides)
    return ph, read_image(hand.dicom_bytes(ph)).radiograph


@pytest.mark.parametrize("seed", [0, 1, 3, 7, 11])
def test_accuracy_on_fixed_phantoms(seed):
    ph, rad = dicom(seed)
    result = run(rad, ph.taps)
    assert isinstance(result, Measurement), result
    assert abs(result.value - ph.mci) <= TOLERANCE
    assert result.unit == "ratio"
    roles = [s.role for s in result.overlay]
    assert roles.count("axis") == 1 and roles.count("edge") == 4
    assert result.details["outer_width_px"] == pytest.approx(ph.outer_px, rel=0.05)


def test_band_follows_the_card():
    card = MethodCard.load(REPO / "models" / "mci" / "method.json")
    for mci in (0.35, 0.55, 0.70):
        ph, rad = dicom(42, mci=mci)
        result = run(rad, ph.taps)
        assert isinstance(result, Measurement), result
        band, cutoff = card.band_for(round(result.value, 3))
        assert result.band == band and result.cutoff == cutoff
    assert [b.band for b in card.bands] == ["osteoporosis_likely", "low_bone_mass", "normal"]
    assert card.band_for(0.45)[0] == "osteoporosis_likely"
    assert card.band_for(0.55)[0] == "low_bone_mass"
    assert card.band_for(0.65)[0] == "normal"


@pytest.mark.parametrize("bits,mono1", [(8, True), (16, True), (8, False)])
def test_monochrome1_and_8_bit(bits, mono1):
    ph, rad = dicom(6, bits=bits, monochrome1=mono1)
    result = run(rad, ph.taps)
    assert isinstance(result, Measurement), result
    assert abs(result.value - ph.mci) <= TOLERANCE


def test_png_without_scale_is_measured():
    ph = hand.make(8)
    rad = read_image(hand.png_bytes(ph)).radiograph
    assert rad.pixel_spacing_mm is None
    result = run(rad, ph.taps)
    assert isinstance(result, Measurement), result
    assert result.scale_mm_per_px is None
    assert abs(result.value - ph.mci) <= TOLERANCE


def test_photo_of_film_is_measured():
    ph = hand.make(9)
    rad, taps = hand.photo(ph, 9)
    result = run(rad, taps)
    assert isinstance(result, Measurement), result
    assert abs(result.value - ph.mci) <= 2 * TOLERANCE


def refusal(result, code):
    assert isinstance(result, MeasurementRefusal), result
    assert result.code == code, (result.code, result.detail)
    assert "value" not in result.to_dict()


def test_bad_taps_are_refused_with_their_code():
    ph, rad = dicom(2)
    a, b = ph.taps
    refusal(run(rad, [a]), "measurement.too_few_points")
    refusal(run(rad, [a, b, a]), "measurement.too_many_points")
    refusal(run(rad, [a, (-5.0, 10.0)]), "measurement.point_outside_image")
    mid = ((a[0] + b[0]) / 2, (a[1] + b[1]) / 2)
    refusal(run(rad, [mid, (mid[0] + 10, mid[1] + 20)]), "measurement.points_too_close")
    g = np.array(ph.gap_point)
    shift = g - (np.array(a) + np.array(b)) / 2
    gap_taps = [tuple(np.array(p) + shift) for p in (a, b)]
    refusal(run(rad, gap_taps), "measurement.not_bone")
    refusal(run(rad, ph.taps, body_part="HIP"), "measurement.wrong_body_part")


def test_destroyed_edges_are_refused():
    ph, rad = dicom(3, blur_sigma_px=12.0)
    refusal(run(rad, ph.taps), "measurement.edge_not_found")


def test_shipped_values_match_a_fresh_run():
    sys.path.insert(0, str(REPO / "tools"))
    import eval_mci

    report = json.loads(REPORT.read_text())
    for case in report["cases"][:4]:
        _, rad, _ = eval_mci.radiograph_for(case["seed"], case["condition"])
        result = eval_mci.run(rad, case["taps"])
        assert result.status == case["status"]
        assert getattr(result, "value", None) == case["value"]


def test_card_figures_equal_the_report():
    report = json.loads(REPORT.read_text())
    card = json.loads((REPO / "models" / "mci" / "method.json").read_text())
    for key in ("accuracy", "repeatability", "refusal"):
        assert card["accuracy"][key] == report[key]
    md = (REPO / "models" / "mci" / "CARD.md").read_text()
    a = report["accuracy"]
    assert f"median |error| {a['median_abs_error']:.4f}" in md
    assert f"within-SD {report['repeatability']['within_sd']:.4f}" in md
    assert f"ICC(A,1) {report['repeatability']['icc_a1']:.4f}" in md
    assert re.search(rf"{report['refusal']['refused_right_code']} with the right code", md)


def test_taps_that_do_not_span_a_metacarpal_shaft_are_the_wrong_bone():
    """A bone as wide as a third of the tapped length is not a metacarpal shaft tapped end
    to end (a phalanx, or taps in the middle of the shaft): refused, never measured."""
    ph, rad = dicom(4)
    a, b = np.array(ph.taps[0]), np.array(ph.taps[1])
    mid, half = (a + b) / 2, (b - a) * 0.26
    result = run(rad, [tuple(mid - half), tuple(mid + half)])
    refusal(result, "measurement.wrong_bone")
