from __future__ import annotations

import json

import numpy as np
import pytest

from edgeosteo.evaluate import auc, evaluate_dataset, write_report
from edgeosteo.screening import Screener


def test_auc_matches_hand_computed_values():
    labels = np.array([1, 1, 0, 0])
    assert auc(np.array([0.9, 0.8, 0.2, 0.1]), labels) == 1.0
    assert auc(np.array([0.1, 0.2, 0.8, 0.9]), labels) == 0.0
    assert auc(np.array([0.5, 0.5, 0.5, 0.5]), labels) == 0.5
    # one of four pairs misordered
    assert auc(np.array([0.9, 0.3, 0.4, 0.1]), labels) == 0.75


@pytest.mark.shared_data
def test_evaluate_contract_on_the_knee_set(knee_dir, tmp_path):
    from edgeosteo.config import load_settings

    screener = Screener(load_settings(data_dir=tmp_path / "data", environ={}))
    report = evaluate_dataset(knee_dir, screener)
    written = write_report(report, tmp_path / "out.json")
    saved = json.loads((tmp_path / "out.json").read_text())
    assert saved["n"] == 147
    # the shipped clinical model does not beat age and OSTA, so no model drives the referral;
    # its subgroups are still reported, as information
    assert saved["primary"] is None
    assert saved["subgroups_model"] == "knee-clinical"
    for section in (saved["models"]["knee-clinical"], *saved["baselines"].values()):
        for target in ("t_le_-1", "t_le_-2.5"):
            lo, hi = section[target]["ci95"]
            assert lo <= section[target]["auc"] <= hi
    assert set(saved["baselines"]) == {"age", "osta", "clinical"}
    assert 0.7 <= saved["baselines"]["osta"]["t_le_-1"]["auc"] <= 0.9
    assert sum(saved["referral"].values()) == 147
    assert saved["referral"].get("consider", 0) * 2 < 147
    assert {"sex=female", "sex=male", "age <50"} <= set(saved["subgroups"])
    assert all(p.exists() and p.stat().st_size > 1000 for p in written)
