"""``edgeosteo evaluate``: screen a labelled data set through the public path and report.

DATA_DIR holds ``clinical.csv`` (columns as in the knee data README; ``t_score`` is the
reference and never an input) and ``images/``. Every row goes through Screener.screen(),
exactly as the page would screen it. Baselines (age alone, OSTA) are scored on the same
patients. Confidence intervals are patient-level bootstrap with a fixed seed.
"""

from __future__ import annotations

import csv
import json
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from edgeosteo.clinical import osta_index
from edgeosteo.metrics import auc
from edgeosteo.screening import Screener

TARGETS = {"t_le_-1": -1.0, "t_le_-2.5": -2.5}
PROBABILITY_FIELD = {"t_le_-1": "p_low_bone_mass", "t_le_-2.5": "p_osteoporosis"}
BOOTSTRAP_SEED = 20261124
BOOTSTRAP_ROUNDS = 2000
AGE_BANDS = ((0, 50, "<50"), (50, 65, "50-64"), (65, 200, ">=65"))

_CSV_TO_ANSWERS = {
    "age": "age_years",
    "sex": "sex",
    "weight_kg": "weight_kg",
    "height_m": "height_m",
    "prior_fracture": "prior_fragility_fracture",
    "estrogen_use": "estrogen_current",
    "menopause_age": "menopause_age_years",
    "smoker": "current_smoker",
    "alcohol": "alcohol_3_units_daily",
    "family_history_osteoporosis": "family_history_osteoporosis",
}


@dataclass(frozen=True)
class LabelledCase:
    case_id: str
    image: Path | None
    answers: dict[str, str]
    t_score: float
    sex: str
    age: float | None
    weight_kg: float | None
    source: str | None


def read_dataset(data_dir: Path) -> list[LabelledCase]:
    cases = []
    with (data_dir / "clinical.csv").open(newline="", encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            answers = {
                target: row[column].strip()
                for column, target in _CSV_TO_ANSWERS.items()
                if row.get(column, "").strip() != ""
            }
            image = data_dir / "images" / row["image"] if row.get("image") else None

            def number(key: str, row: Mapping[str, str] = row) -> float | None:
                try:
                    return float(row[key])
                except (KeyError, ValueError):
                    return None

            cases.append(
                LabelledCase(
                    case_id=row["id"],
                    image=image,
                    answers=answers,
                    t_score=float(row["t_score"]),
                    sex=row.get("sex", ""),
                    age=number("age"),
                    weight_kg=number("weight_kg"),
                    source=row.get("source"),
                )
            )
    return cases


def _bootstrap(statistic: Callable[[np.ndarray], float], n: int) -> list[float]:
    rng = np.random.default_rng(BOOTSTRAP_SEED)
    values = []
    for _ in range(BOOTSTRAP_ROUNDS):
        value = statistic(rng.integers(0, n, n))
        if np.isfinite(value):
            values.append(value)
    if not values:
        return [float("nan"), float("nan")]
    return [
        round(float(np.percentile(values, 2.5)), 4),
        round(float(np.percentile(values, 97.5)), 4),
    ]


def auc_with_ci(scores: np.ndarray, labels: np.ndarray) -> dict[str, object]:
    point = auc(scores, labels)
    return {
        "auc": round(point, 4) if np.isfinite(point) else None,
        "ci95": _bootstrap(lambda idx: auc(scores[idx], labels[idx]), len(scores)),
        "n": len(scores),
        "positives": int(labels.sum()),
    }


def t_score_metrics(estimates: np.ndarray, truth: np.ndarray) -> dict[str, object]:
    if len(estimates) < 3:
        return {"mae": None, "pearson_r": None, "n": len(estimates)}
    return {
        "mae": round(float(np.mean(np.abs(estimates - truth))), 4),
        "pearson_r": round(float(np.corrcoef(estimates, truth)[0, 1]), 4),
        "n": len(estimates),
    }


def _metrics(
    scores: Sequence[float | None],
    t_estimates: Sequence[float | None] | None,
    truth: np.ndarray,
    score_by_target: Mapping[str, Sequence[float | None]] | None,
) -> dict[str, object]:
    result: dict[str, object] = {}
    for target, cut in TARGETS.items():
        values = score_by_target[target] if score_by_target else scores
        keep = np.array([v is not None for v in values])
        labels = (truth[keep] <= cut).astype(int)
        result[target] = auc_with_ci(np.array([v for v in values if v is not None], float), labels)
    if t_estimates is not None:
        keep = np.array([v is not None for v in t_estimates])
        result["t_score"] = t_score_metrics(
            np.array([v for v in t_estimates if v is not None], float), truth[keep]
        )
    return result


def evaluate_dataset(
    data_dir: Path,
    screener: Screener,
    body_part: str = "KNEE",
    progress: Callable[[Iterable], Iterable] | None = None,
) -> dict[str, object]:
    cases = read_dataset(data_dir)
    truth = np.array([c.t_score for c in cases])
    per_model: dict[str, dict[str, list[float | None]]] = {}
    referral: Counter[str] = Counter()
    failures = []
    primary_ids: Counter[str] = Counter()
    iterator = progress(cases) if progress else cases
    for index, case in enumerate(iterator):
        screening = screener.screen(case.image, case.answers, body_part=body_part)
        if screening.intake_error:
            failures.append({"id": case.case_id, "code": screening.intake_error["code"]})
        elif screening.quality and not screening.quality.usable:
            failures.append({"id": case.case_id, "code": screening.quality.codes[0]})
        for missing in screening.findings.unavailable:
            if missing.model_id:
                failures.append({"id": case.case_id, "code": missing.code})
        for finding in screening.findings.results:
            slots = per_model.setdefault(
                finding.model_id,
                {
                    "p_low_bone_mass": [None] * len(cases),
                    "p_osteoporosis": [None] * len(cases),
                    "t_score": [None] * len(cases),
                },
            )
            slots["p_low_bone_mass"][index] = finding.p_low_bone_mass
            slots["p_osteoporosis"][index] = finding.p_osteoporosis
            slots["t_score"][index] = finding.t_score
        if screening.referral.primary_model:
            primary_ids[screening.referral.primary_model] += 1
        if screening.referral is not None:
            referral[screening.referral.category] += 1
    models = {
        model_id: _metrics(
            [],
            slots["t_score"],
            truth,
            {target: slots[PROBABILITY_FIELD[target]] for target in TARGETS},
        )
        for model_id, slots in per_model.items()
    }
    age_scores = [c.age for c in cases]
    osta_scores = [
        -osta_index(c.weight_kg, c.age) if c.age is not None and c.weight_kg is not None else None
        for c in cases
    ]
    primary = primary_ids.most_common(1)[0][0] if primary_ids else None
    clinical_ids = [
        m
        for m in per_model
        if screener.registry.get(m) and screener.registry.get(m).kind == "clinical"
    ]
    baselines = {
        "age": _metrics(age_scores, None, truth, None),
        "osta": _metrics(osta_scores, None, truth, None),
    }
    if clinical_ids:
        baselines["clinical"] = models[clinical_ids[0]]
    # subgroups of the model that drove the referral, else of the clinical model shown as
    # information (a card that fails its governance rule still has subgroups worth reading)
    subject = primary or (clinical_ids[0] if clinical_ids else None)
    subgroups = {}
    if subject:
        slots = per_model[subject]
        groups = {f"sex={s}": [c.sex == s for c in cases] for s in ("female", "male")}
        for low, high, label in AGE_BANDS:
            groups[f"age {label}"] = [c.age is not None and low <= c.age < high for c in cases]
        for name, mask in groups.items():
            chosen = np.array(mask)
            subgroups[name] = {"n": int(chosen.sum())}
            for target, cut in TARGETS.items():
                values = np.array(slots[PROBABILITY_FIELD[target]], dtype=object)[chosen]
                keep = np.array([v is not None for v in values], bool)
                labels = (truth[chosen][keep] <= cut).astype(int)
                subgroups[name][target] = auc_with_ci(values[keep].astype(float), labels)
    return {
        "n": len(cases),
        "primary": primary,
        "subgroups_model": subject,
        "models": models,
        "baselines": baselines,
        "referral": dict(referral),
        "subgroups": subgroups,
        "failures": failures,
        "bootstrap": {"rounds": BOOTSTRAP_ROUNDS, "seed": BOOTSTRAP_SEED},
        "_curves": {  # removed before writing JSON; used for the plots
            "truth": truth.tolist(),
            "scores": {
                **{f"{m}": s for m, s in per_model.items()},
                "age": {"p_low_bone_mass": age_scores, "p_osteoporosis": age_scores},
                "osta": {"p_low_bone_mass": osta_scores, "p_osteoporosis": osta_scores},
            },
        },
    }


def _roc_points(scores: np.ndarray, labels: np.ndarray) -> np.ndarray:
    thresholds = np.unique(scores)[::-1]
    points = [(0.0, 0.0)]
    positives, negatives = max(1, labels.sum()), max(1, (1 - labels).sum())
    for threshold in thresholds:
        predicted = scores >= threshold
        points.append(
            (
                (predicted & (labels == 0)).sum() / negatives,
                (predicted & (labels == 1)).sum() / positives,
            )
        )
    points.append((1.0, 1.0))
    return np.array(points)


_COLOURS = [(200, 60, 20), (30, 140, 30), (20, 20, 200), (150, 0, 150), (0, 140, 200), (90, 90, 90)]


def _canvas(title: str, size: int = 520) -> np.ndarray:
    image = np.full((size, size), 255, np.uint8)
    image = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    cv2.rectangle(image, (60, 40), (size - 20, size - 60), (0, 0, 0), 1)
    cv2.putText(image, title, (60, 28), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 1)
    return image


def _to_px(x: float, y: float, size: int = 520) -> tuple[int, int]:
    return int(60 + x * (size - 80)), int(size - 60 - y * (size - 100))


def plot_roc(curves: Mapping[str, object], target: str, path: Path) -> None:
    truth = np.array(curves["truth"])
    labels_all = (truth <= TARGETS[target]).astype(int)
    image = _canvas(f"ROC, QUS T-score {target.replace('t_le_', '<= ')}")
    cv2.line(image, _to_px(0, 0), _to_px(1, 1), (200, 200, 200), 1)
    field = PROBABILITY_FIELD[target]
    for i, (name, slots) in enumerate(curves["scores"].items()):
        values = slots[field]
        keep = np.array([v is not None for v in values])
        if keep.sum() < 2:
            continue
        points = _roc_points(
            np.array([v for v in values if v is not None], float), labels_all[keep]
        )
        colour = _COLOURS[i % len(_COLOURS)]
        pixels = np.array([_to_px(x, y) for x, y in points], np.int32)
        cv2.polylines(image, [pixels], False, colour, 2)
        cv2.putText(image, name, (340, 440 - 18 * i), cv2.FONT_HERSHEY_SIMPLEX, 0.45, colour, 1)
    cv2.putText(image, "1 - specificity", (220, 505), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 1)
    cv2.imwrite(str(path), image)


def plot_calibration(curves: Mapping[str, object], target: str, path: Path, bins: int = 5) -> None:
    truth = np.array(curves["truth"])
    labels_all = (truth <= TARGETS[target]).astype(int)
    image = _canvas(f"Calibration, observed vs predicted, {target.replace('t_le_', 'T <= ')}")
    cv2.line(image, _to_px(0, 0), _to_px(1, 1), (200, 200, 200), 1)
    field = PROBABILITY_FIELD[target]
    for i, (name, slots) in enumerate(curves["scores"].items()):
        if name in ("age", "osta"):
            continue  # not probabilities
        values = slots[field]
        keep = np.array([v is not None for v in values])
        if keep.sum() < bins:
            continue
        predicted = np.array([v for v in values if v is not None], float)
        observed = labels_all[keep]
        edges = np.quantile(predicted, np.linspace(0, 1, bins + 1))
        colour = _COLOURS[i % len(_COLOURS)]
        for b in range(bins):
            inside = (predicted >= edges[b]) & (predicted <= edges[b + 1])
            if inside.any():
                cv2.circle(
                    image, _to_px(predicted[inside].mean(), observed[inside].mean()), 5, colour, -1
                )
        cv2.putText(image, name, (340, 440 - 18 * i), cv2.FONT_HERSHEY_SIMPLEX, 0.45, colour, 1)
    cv2.imwrite(str(path), image)


def write_report(report: dict[str, object], json_path: Path) -> list[Path]:
    curves = report.pop("_curves")
    json_path.parent.mkdir(parents=True, exist_ok=True)
    json_path.write_text(json.dumps(report, indent=2, ensure_ascii=False), encoding="utf-8")
    written = [json_path]
    for target in TARGETS:
        stem = json_path.with_suffix("")
        roc = Path(f"{stem}.roc_{target}.png")
        calibration = Path(f"{stem}.calibration_{target}.png")
        plot_roc(curves, target, roc)
        plot_calibration(curves, target, calibration)
        written += [roc, calibration]
    return written


def format_table(report: Mapping[str, object]) -> str:
    lines = [
        f"n = {report['n']}   primary model: {report['primary'] or 'none (guideline instruments)'}",
        "",
        f"{'score':<22}{'AUC T<=-1 (95% CI)':<28}{'AUC T<=-2.5 (95% CI)':<28}{'T MAE':>8}",
    ]
    rows = {**report["models"], **{f"baseline {k}": v for k, v in report["baselines"].items()}}
    for name, metrics in rows.items():
        cells = []
        for target in TARGETS:
            m = metrics[target]
            auc_text = "-" if m["auc"] is None else f"{m['auc']:.3f}"
            cells.append(f"{auc_text} ({m['ci95'][0]:.3f}-{m['ci95'][1]:.3f})")
        mae = metrics.get("t_score", {}).get("mae")
        lines.append(
            f"{name:<22}{cells[0]:<28}{cells[1]:<28}{'' if mae is None else f'{mae:.3f}':>8}"
        )
    lines.append("")
    lines.append(
        "referral: " + ", ".join(f"{k} {v}" for k, v in sorted(report["referral"].items()))
    )
    lines.append(f"failures: {len(report['failures'])}")
    return "\n".join(lines)
