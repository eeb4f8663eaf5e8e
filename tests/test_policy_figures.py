"""The default policy's figures on the knee development set: rerunnable, the same as the
committed report, shown in docs/clinical.md, and no longer a majority of `consider`."""

from __future__ import annotations

import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tools"))

import eval_policy  # noqa: E402


def _cell(entry: dict) -> str:
    ci = entry["ci95"]
    return f"{entry['k']}/{entry['n']}, {entry['value']:.2f} ({ci[0]:.2f}-{ci[1]:.2f})"


def test_default_policy_figures_match_the_report_and_the_docs(knee_dir: Path) -> None:
    report = eval_policy.evaluate(knee_dir, REPO / "models")
    committed = json.loads((REPO / "tools" / "reports" / "policy.json").read_text())
    assert report == committed, "rerun python tools/eval_policy.py and commit the report"
    default = report["policies"]["default"]
    n = report["n"]
    assert default["categories"].get("consider", 0) * 2 < n
    assert sum(default["categories"].values()) == n
    docs = (REPO / "docs" / "clinical.md").read_text()
    for name in ("default", "osta_le_-1", "age_guideline"):
        entry = report["policies"][name]
        cells = [_cell(entry["referral_rate"])]
        for target in ("t_le_-2.5", "t_le_-1"):
            cells += [_cell(entry[target]["sensitivity"]), _cell(entry[target]["specificity"])]
        assert " | ".join(cells) in docs, name


def test_wilson_interval() -> None:
    # by hand: centre (0.4 + 1.96^2/40) / (1 + 1.96^2/20) = 0.416, half-width 0.197
    entry = eval_policy.wilson(8, 20)
    assert entry["value"] == 0.4 and entry["ci95"] == [0.2188, 0.6134]
    assert eval_policy.wilson(20, 20)["ci95"][1] == 1.0
    assert eval_policy.wilson(0, 0)["value"] is None
