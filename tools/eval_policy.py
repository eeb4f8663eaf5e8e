"""The default referral policy on the knee development set, beside OSTA <= -1 and age alone.

Every patient's clinical record goes through ``edgeosteo.decision.decide`` with the default
``SitePolicy``, read the way ``edgeosteo evaluate`` reads it. A patient is referred when the
category is refer or urgent. The figures: referral rate and the sensitivity and specificity
of referral for a QUS T-score <= -2.5 and <= -1, each with a Wilson 95 % interval (patients
are independent; nothing is resampled, so no seed is needed beyond the fixed order of the
file).

The shipped clinical model does not drive the referral (its card fails the rule in
edgeosteo.models.clinical_rule_holds), so the policy is evaluated without its findings; if a
card ever passes, this script stops: the policy must then be evaluated on out-of-fold model
predictions, not on a model fitted to the same patients.

Only aggregate figures are written (tools/reports/policy.json): never per-patient rows.

Usage: python tools/eval_policy.py [--data /work/shared/data/knee] [--out tools/reports/policy.json]
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from edgeosteo.clinical import ClinicalAnswers, assess_clinical, osta_index
from edgeosteo.config import PolicySettings
from edgeosteo.decision import decide
from edgeosteo.evaluate import LabelledCase, read_dataset
from edgeosteo.models import ModelRegistry

REPO = Path(__file__).resolve().parents[1]
TARGETS = {"t_le_-2.5": -2.5, "t_le_-1": -1.0}
REFERRED = ("refer", "urgent")
Z95 = 1.959964


def wilson(k: int, n: int) -> dict[str, object]:
    """A proportion with its Wilson score 95 % interval."""
    if n == 0:
        return {"k": 0, "n": 0, "value": None, "ci95": None}
    p = k / n
    centre = (p + Z95**2 / (2 * n)) / (1 + Z95**2 / n)
    half = Z95 * math.sqrt(p * (1 - p) / n + Z95**2 / (4 * n * n)) / (1 + Z95**2 / n)
    return {
        "k": k,
        "n": n,
        "value": round(p, 4),
        "ci95": [round(max(0.0, centre - half), 4), round(min(1.0, centre + half), 4)],
    }


@dataclass(frozen=True)
class Rule:
    name: str
    description: str
    refers: Callable[[LabelledCase, ClinicalAnswers], bool]


def figures(referred: Sequence[bool], t_scores: Sequence[float]) -> dict[str, object]:
    out: dict[str, object] = {"referral_rate": wilson(sum(referred), len(referred))}
    for target, cut in TARGETS.items():
        positive = [t <= cut for t in t_scores]
        tp = sum(r and y for r, y in zip(referred, positive, strict=True))
        tn = sum(not r and not y for r, y in zip(referred, positive, strict=True))
        n_pos = sum(positive)
        out[target] = {
            "sensitivity": wilson(tp, n_pos),
            "specificity": wilson(tn, len(positive) - n_pos),
            "ppv": wilson(tp, sum(referred)),
        }
    return out


def _answers(case: LabelledCase, diabetic: str | None = None) -> ClinicalAnswers:
    """The answers ``edgeosteo evaluate`` reads; with ``diabetic``, the record's diabetes
    column also answers "a disease affecting bone" (the guideline lists diabetes)."""
    raw = dict(case.answers)
    if diabetic is not None:
        raw["secondary_causes"] = diabetic
    return ClinicalAnswers.from_dict(raw).answers


def _clinical_model_drives(models_dir: Path) -> bool:
    registry = ModelRegistry(models_dir)
    return any(m.kind == "clinical" and m.used_for_referral for m in registry)


def evaluate(data_dir: Path, models_dir: Path) -> dict[str, object]:
    if _clinical_model_drives(models_dir):
        raise SystemExit(
            "a clinical model's card passes the rule, so it drives the referral: evaluate the "
            "policy on its out-of-fold predictions (not implemented here)"
        )
    policy = PolicySettings()
    cases = read_dataset(data_dir)
    diabetic = _column(data_dir, "diabetic")
    t_scores = [c.t_score for c in cases]
    report: dict[str, object] = {
        "data": "knee development set (tools/knee_data.py; README limits apply)",
        "n": len(cases),
        "n_t_le_-1": sum(t <= -1.0 for t in t_scores),
        "n_t_le_-2.5": sum(t <= -2.5 for t in t_scores),
        "policy_version": policy.policy_version,
        "referred_means": list(REFERRED),
        "ci": "Wilson score 95 % interval",
        "policies": {},
    }
    for variant, diabetes in (("default", False), ("default_diabetes_as_bone_disease", True)):
        categories: Counter[str] = Counter()
        driving: Counter[str] = Counter()
        referred = []
        for case in cases:
            answers = _answers(case, diabetic[case.case_id] if diabetes else None)
            referral = decide(answers, assess_clinical(answers), None, None, policy)
            categories[referral.category] += 1
            driving.update(r.code for r in referral.driving)
            referred.append(referral.category in REFERRED)
        report["policies"][variant] = {
            "categories": dict(sorted(categories.items())),
            "consider_share": wilson(categories["consider"], len(cases)),
            "driving_reasons": dict(driving.most_common()),
            **figures(referred, t_scores),
        }
    baselines = {
        "osta_le_-1": Rule(
            "OSTA <= -1",
            "OSTA index (0.2 x (weight - age), truncated) <= -1, women and men",
            lambda c, a: (
                a.weight_kg is not None
                and a.age_years is not None
                and osta_index(a.weight_kg, a.age_years) <= -1
            ),
        ),
        "age_guideline": Rule(
            "age alone (65+ women, 70+ men)",
            "the guideline's age indication alone",
            lambda c, a: (
                a.age_years is not None and a.age_years >= (65.0 if a.sex == "female" else 70.0)
            ),
        ),
    }
    for key, rule in baselines.items():
        referred = [rule.refers(c, _answers(c)) for c in cases]
        report["policies"][key] = {"description": rule.description, **figures(referred, t_scores)}
    # age alone at the default policy's referral rate: the threshold is picked on these
    # patients, so it flatters age (an optimistic comparator, not a rule to ship)
    k = report["policies"]["default"]["referral_rate"]["k"]
    ages = sorted((c.age or 0.0 for c in cases), reverse=True)
    threshold = ages[k - 1] if k else math.inf
    referred = [(c.age or 0.0) >= threshold for c in cases]
    report["policies"]["age_at_default_rate"] = {
        "description": f"age >= {threshold:g} (chosen on this set to match the default's rate)",
        **figures(referred, t_scores),
    }
    return report


def _column(data_dir: Path, name: str) -> dict[str, str]:
    with (data_dir / "clinical.csv").open(newline="", encoding="utf-8") as handle:
        return {row["id"]: row.get(name, "").strip() for row in csv.DictReader(handle)}


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default_data = Path(os.environ.get("EDGEOSTEO_SHARED_DATA", REPO.parent / "shared" / "data"))
    parser.add_argument("--data", type=Path, default=default_data / "knee")
    parser.add_argument("--models", type=Path, default=REPO / "models")
    parser.add_argument("--out", type=Path, default=REPO / "tools" / "reports" / "policy.json")
    args = parser.parse_args(argv)
    report = evaluate(args.data, args.models)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1, ensure_ascii=False) + "\n")
    for name, entry in report["policies"].items():
        rate = entry["referral_rate"]
        line = [f"{name:36s} referred {rate['k']:3d}/{rate['n']} ({rate['value']:.2f})"]
        for target in TARGETS:
            sens, spec = entry[target]["sensitivity"], entry[target]["specificity"]
            line.append(f"{target}: sens {sens['value']:.2f} spec {spec['value']:.2f}")
        print("  ".join(line))


if __name__ == "__main__":
    main()
