"""The site training pipeline's controls: it learns a planted bone signal when one exists
(AUC >= 0.9, governance rule passes) and the rule refuses a model whose only cue is a
device artefact. Small sizes, fixed seeds."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))

import positive_control as pc
import site_train

N = 90
CV_REPEATS = 1


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("controls")
    out = {}
    for name, artefact in (("positive", False), ("artefact", True)):
        data = pc.write_set(root / name, N, artefact)
        out[name] = site_train.train(site_train.load_site_set(data, "HAND"), CV_REPEATS)
    return out


def test_positive_control_learns_the_planted_bone(trained) -> None:
    result = trained["positive"]
    assert result["body_part"] == "HAND" and result["n"] == N
    assert set(result["devices"]) == {"D1", "D2", "D3"}
    for target in ("p_t_le_-1", "p_t_le_-2.5"):
        entry = result["variant"][target]
        assert entry["image_alone"]["cv"]["auc"] >= pc.AUC_FLOOR
        assert entry["image_alone"]["loso"]["auc"] >= pc.AUC_FLOOR
        assert entry["fused"]["cv"]["auc"] >= pc.AUC_FLOOR
        assert entry["passes_product_rule"]
    assert result["governance"]["used_for_referral"] is True
    assert "may drive the referral" in site_train.card(result, "control")


def test_the_readme_figures_are_these(trained) -> None:
    """tools/README.md quotes tools/reports/positive_control.json, made at this size."""
    import json

    report = json.loads(
        (Path(pc.__file__).parent / "reports" / "positive_control.json").read_text()
    )
    assert (report["n"], report["cv_repeats"], report["seed"]) == (N, CV_REPEATS, pc.SEED)
    assert pc.figures(trained["positive"]) == report["positive"]
    assert pc.figures(trained["artefact"]) == report["source_artefact"]


def test_a_source_artefact_is_refused(trained) -> None:
    result = trained["artefact"]
    assert result["governance"]["used_for_referral"] is False
    assert not any(
        result["variant"][t]["passes_product_rule"] for t in ("p_t_le_-1", "p_t_le_-2.5")
    )
    assert "refused" in site_train.card(result, "control")


def test_the_artefact_is_planted_where_it_says(tmp_path) -> None:
    plain = {p.pid: p for p in pc.patients(30, False)}
    shifted = pc.patients(30, True)
    for p in shifted:
        base = plain[p.pid]
        assert (p.age, p.weight_kg, p.device) == (base.age, base.weight_kg, base.device)
        expected = base.t_score + (pc.ARTEFACT_T_SHIFT if p.device == pc.ARTEFACT_DEVICE else 0)
        assert p.t_score == pytest.approx(max(-5.0, min(2.0, expected)), abs=0.011)
        # the bone no longer follows the label
        assert p.bone_t != p.t_score or p.device != pc.ARTEFACT_DEVICE


def test_a_set_without_devices_is_refused(tmp_path) -> None:
    data = pc.write_set(tmp_path / "set", 6, False)
    csv_path = data / "clinical.csv"
    lines = csv_path.read_text().splitlines()
    csv_path.write_text("\n".join(line.rsplit(",", 1)[0] for line in lines) + "\n")
    with pytest.raises(site_train.SiteSetError, match="device"):
        site_train.load_site_set(data, "HAND")
    with pytest.raises(SystemExit, match=r"site_train: clinical\.csv lacks"):
        site_train.main([str(data), "--body-part", "hand"])


def test_one_device_is_not_enough(tmp_path) -> None:
    data = pc.write_set(tmp_path / "set", 6, False)
    csv_path = data / "clinical.csv"
    text = csv_path.read_text().replace(",D2", ",D1").replace(",D3", ",D1")
    csv_path.write_text(text)
    with pytest.raises(site_train.SiteSetError, match="two devices"):
        site_train.load_site_set(data, "SPINE")
