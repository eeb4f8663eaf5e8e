"""Genant six-point morphometry through the measurement stage, on lateral spine phantoms:
grades as the card says, fractures to urgent through the one path, and every kind of
inconsistent input refused with a typed reason and no grade."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest
from test_cli import run as run_cli

from conftest import REPO
from edgeosteo.config import MeasurementSettings
from edgeosteo.intake import read_image
from edgeosteo.measurement import Measurement, MeasurementRefusal, MeasurementRequest
from edgeosteo.messages import text
from edgeosteo.methods import MethodRegistry, measure

sys.path.insert(0, str(REPO / "tools"))

from phantoms import spine

# a numpy warning (an empty mean on taps near the film edge) is a fault: the box prints none
pytestmark = pytest.mark.filterwarnings("error::RuntimeWarning")

REGISTRY = MethodRegistry(REPO / "models")
REPORT = REPO / "tools" / "reports" / "vertebrae.json"


def phantom(seed: int, **kw) -> spine.SpinePhantom:
    return spine.make(seed, **kw)


def run(ph, points, options=None, body_part="LSPINE", view="LATERAL"):
    rad = read_image(spine.dicom_bytes(ph, body_part)).radiograph
    opts = {"first_level": ph.first_level} if options is None else options
    request = MeasurementRequest("vertebrae", tuple(tuple(map(float, p)) for p in points), opts)
    return measure(request, rad, True, body_part, view, REGISTRY, MeasurementSettings())


def taps(ph, seed=0, radius=2.0):
    return spine.jitter(ph.points, np.random.default_rng(seed), radius)


def refused(result, code):
    assert isinstance(result, MeasurementRefusal), result
    assert result.code == code, (result.code, result.detail)
    body = result.to_dict()
    assert "value" not in body and "vertebrae" not in body
    assert body["message_en"] != code and body["message_zh_CN"] != code
    assert body["message_zh_CN"] == text(code, "zh_CN")


@pytest.mark.parametrize(
    "deformity,reduction,grade",
    [("wedge", 0.45, 3), ("biconcave", 0.33, 2), ("crush", 0.32, 2), ("wedge", 0.05, 0)],
)
def test_a_planted_deformity_is_graded_at_its_level(deformity, reduction, grade):
    ph = phantom(11, deformity=deformity, reduction=reduction)
    result = run(ph, taps(ph))
    assert isinstance(result, Measurement), result
    k = ph.planted["index"]
    found = result.details["vertebrae"]
    assert [v["level"] for v in found] == list(
        spine.LEVELS[spine.LEVELS.index(ph.first_level) :][: ph.n]
    )
    assert found[k]["grade"] == grade
    if grade:
        assert found[k]["type"] == deformity
        assert abs(found[k]["reduction"] - reduction) <= 0.03
    others = [v["grade"] for i, v in enumerate(found) if i != k]
    assert others == [0] * (ph.n - 1)
    band = {3: "vertebral_fracture", 2: "vertebral_fracture", 0: "no_vertebral_fracture"}[grade]
    assert result.band == band
    assert result.cutoff.citation.startswith("Genant HK")


def test_json_carries_the_vertebrae_with_heights_ratios_and_grades():
    ph = phantom(12, deformity="wedge", reduction=0.3)
    body = run(ph, taps(ph)).to_dict()
    assert body["unit"] == "grade" and body["value"] == 2.0
    assert len(body["vertebrae"]) == ph.n
    for vertebra, (ha, _, hp) in zip(body["vertebrae"], ph.heights, strict=True):
        assert set(vertebra) >= {"level", "grade", "type", "ha", "hm", "hp", "ratios"}
        assert vertebra["hp"] == pytest.approx(hp, rel=0.06)
        assert vertebra["ha"] == pytest.approx(ha, rel=0.06)
    # the next vertebra's six points are proposed while the spine goes on below
    assert len(body["points_proposed"]) in (0, 6)


def test_a_reader_needs_far_fewer_taps_than_six_per_vertebra():
    """The reader taps the first vertebra and accepts each proposal, dragging only the
    points whose edge was not found onto the truth: far fewer than six taps a vertebra."""
    ph = phantom(21, n_vertebrae=5, deformity="none")
    truth = taps(ph)
    points = list(truth[:6])
    moved = 0
    for _ in range(20):
        result = run(ph, points)
        if isinstance(result, MeasurementRefusal):
            assert result.code == "measurement.edge_not_found", result
            bad = [i for i, c in enumerate(result.point_checks) if not c.ok]
            assert bad
            for i in bad:
                points[i] = truth[i]
            moved += len(bad)
            continue
        if len(points) == 6 * ph.n:
            break
        points = list(result.points_used) + list(result.points_proposed)
    assert isinstance(result, Measurement) and len(result.details["vertebrae"]) == ph.n
    assert result.band == "no_vertebral_fracture"
    assert 6 + moved <= 3 * ph.n, moved


def test_a_photo_of_the_film_is_graded_too():
    ph = phantom(15, deformity="crush", reduction=0.35, bits=8)
    rad, points = spine.photo(ph, 15)
    request = MeasurementRequest("vertebrae", tuple(points), {"first_level": ph.first_level})
    result = measure(request, rad, True, "LSPINE", "LATERAL", REGISTRY, MeasurementSettings())
    assert isinstance(result, Measurement), result
    assert result.scale_mm_per_px is None
    assert result.details["vertebrae"][ph.planted["index"]]["grade"] == 2


def test_inconsistent_input_is_refused_with_a_reason_and_no_grade():
    ph = phantom(14, n_vertebrae=4, deformity="none")
    good = taps(ph)
    refused(run(ph, good[:5]), "measurement.too_few_points")
    refused(run(ph, good[:10]), "measurement.too_few_points")
    # a vertebra's inferior points above its superior ones
    swapped = good[3:6] + good[0:3] + good[6:]
    refused(run(ph, swapped), "measurement.points_out_of_order")
    # vertebrae from the bottom up
    upward = [p for k in reversed(range(ph.n)) for p in good[6 * k : 6 * k + 6]]
    refused(run(ph, upward), "measurement.points_out_of_order")
    # a vertebra skipped: the levels after it would be named wrongly
    skipped = good[:6] + good[12:]
    refused(run(ph, skipped), "measurement.level_sequence_invalid")
    refused(
        run(ph, good, {"levels": ["T4", "T5", "T7", "T8"]}), "measurement.level_sequence_invalid"
    )
    refused(run(ph, good, {"first_level": "T3"}), "measurement.level_sequence_invalid")
    refused(run(ph, good, {"first_level": "L3"}), "measurement.level_sequence_invalid")
    refused(run(ph, good, {}), "measurement.level_sequence_invalid")
    # a collapsed vertebra: its inferior points half a pixel below its superior ones
    flat = list(good)
    for j in range(3, 6):
        flat[j] = (good[j][0], good[j - 3][1] + 0.5)
    refused(run(ph, flat), "measurement.implausible_height")
    refused(run(ph, good, body_part="HAND", view="PA"), "measurement.wrong_body_part")


def test_levels_given_as_a_contiguous_list_name_the_vertebrae():
    ph = phantom(14, n_vertebrae=4, deformity="none")
    i0 = spine.LEVELS.index(ph.first_level)
    names = list(spine.LEVELS[i0 : i0 + 4])
    result = run(ph, taps(ph), {"levels": names})
    assert isinstance(result, Measurement), result
    assert result.details["levels"] == names


def _screen(tmp_path, ph, points):
    path = tmp_path / f"spine-{ph.seed}.dcm"
    path.write_bytes(spine.dicom_bytes(ph, "LSPINE"))
    body = json.dumps({"first_level": ph.first_level, "points": [list(p) for p in points]})
    result = run_cli(
        "--data-dir", str(tmp_path / "box"), "screen", str(path), "--age", "67", "--sex",
        "female", "--weight", "58", "--measure", "vertebrae", "--points", body, "--json",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr + result.stdout
    return json.loads(result.stdout)


def test_a_planted_fracture_makes_the_screening_urgent_and_none_makes_no_finding(tmp_path):
    broken = phantom(31, deformity="wedge", reduction=0.34)
    screening = _screen(tmp_path, broken, taps(broken))
    assert screening["referral"]["category"] == "urgent"
    codes = [r["code"] for r in screening["referral"]["reasons"]]
    assert "measurement.band.vertebral_fracture" in codes
    level = broken.first_level
    i = spine.LEVELS.index(level) + broken.planted["index"]
    evidence = json.dumps(screening["referral"]["reasons"], ensure_ascii=False)
    assert f"{spine.LEVELS[i]} grade 2 wedge" in evidence
    assert f"{spine.LEVELS[i]} 2级楔形" in evidence

    whole = phantom(32, deformity="none")
    screening = _screen(tmp_path, whole, taps(whole))
    (m,) = screening["measurements"]
    assert m["band"] == "no_vertebral_fracture"
    codes = [r["code"] for r in screening["referral"]["reasons"]]
    assert "measurement.band.vertebral_fracture" not in codes
    assert "measurement.band.possible_vertebral_fracture" not in codes
    assert screening["referral"]["category"] != "urgent"


def test_cli_measure_prints_the_per_vertebra_json(tmp_path):
    ph = phantom(33, deformity="biconcave", reduction=0.3)
    path = tmp_path / "spine.dcm"
    path.write_bytes(spine.dicom_bytes(ph, "TLSPINE"))
    body = json.dumps({"first_level": ph.first_level, "points": taps(ph)})
    result = run_cli(
        "--data-dir", str(tmp_path / "box"), "measure", str(path), "--method", "vertebrae",
        "--points", body, "--json",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr + result.stdout
    measured = json.loads(result.stdout)
    assert measured["method"] == "vertebrae"
    k = ph.planted["index"]
    assert measured["vertebrae"][k]["grade"] == 2
    assert measured["vertebrae"][k]["type"] == "biconcave"
    short = json.dumps({"first_level": ph.first_level, "points": taps(ph)[:4]})
    result = run_cli(
        "--data-dir", str(tmp_path / "box"), "measure", str(path), "--method", "vertebrae",
        "--points", short, "--json", "--lang", "zh_CN",
    )  # fmt: skip
    assert result.returncode == 1
    assert json.loads(result.stdout)["code"] == "measurement.too_few_points"


def test_shipped_figures_match_a_fresh_run():
    import eval_vertebrae

    report = json.loads(REPORT.read_text())
    for case in report["per_phantom"][:3]:
        ph = eval_vertebrae.phantom_for(case["seed"])
        result = eval_vertebrae.run_one(ph, eval_vertebrae.taps_for(ph, case["seed"]))
        assert isinstance(result, Measurement), result
        assert result.value == case["value"]
        got = [v["reduction"] for v in result.details["vertebrae"]]
        assert got == case["reductions"]
    card = json.loads((REPO / "models" / "vertebrae" / "method.json").read_text())
    acc = card["accuracy"]
    assert acc["weighted_kappa"] == round(report["grades"]["weighted_kappa"], 3)
    assert acc["grade_2_3_missed"] == report["grades"]["grade_2_3_missed"]
    md = (REPO / "models" / "vertebrae" / "CARD.md").read_text()
    assert f"{report['grades']['weighted_kappa']:.3f}" in md
