"""Measure the phone-photo pipeline on simulated film photos (tools/photo_sim.py).

Figures: corner error of the rectification (px and % of the film diagonal), the share of
deliberately unusable photos refused with the right reason code, the share of good photos
refused, and how far the rectified image's statistics drift from the radiograph that was
printed. ``model_drift`` is a hook for comparing a scorer's probabilities (and AUC) on
radiographs and on their photos; the installed knee models are compared through the whole
screening path by tools/eval_photo_models.py.

    python tools/eval_photos.py [--knee-dir ../shared/data/knee] [--good 150 --bad 25]

writes tools/reports/photos.json.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from edgeosteo.config import PhotoThresholds
from edgeosteo.intake.photo import PhotoResult, read_photo
from edgeosteo.quality import QualityReport
from edgeosteo.quality_photo import photo_quality

sys.path.insert(0, str(Path(__file__).resolve().parent))
from photo_sim import (
    CONDITIONS,
    SimPhoto,
    load_source,
    packaged_sources,
    simulate,
)

REPORT = Path(__file__).resolve().parent / "reports" / "photos.json"
BAD_CONDITIONS = tuple(c for c in CONDITIONS if c != "good")


@dataclass(frozen=True)
class Outcome:
    photo: SimPhoto
    result: PhotoResult
    quality: QualityReport  # the photo gates' report
    seconds: float

    @property
    def fail_codes(self) -> tuple[str, ...]:
        return tuple(g.code for g in self.quality.gates if g.verdict == "fail")

    @property
    def refused(self) -> bool:
        return bool(self.fail_codes)

    @property
    def right_code(self) -> bool:
        expected = self.photo.expected_code
        return expected is not None and any(c.startswith(expected) for c in self.fail_codes)

    def corner_error_px(self) -> float:
        """Mean distance of the found corners from the true ones (best cyclic match)."""
        truth = self.photo.corners.astype(np.float64)
        found = self.result.corners.astype(np.float64)
        return min(
            float(np.linalg.norm(np.roll(found, k, axis=0) - truth, axis=1).mean())
            for k in range(4)
        )

    def film_diagonal_px(self) -> float:
        c = self.photo.corners
        return 0.5 * float(np.linalg.norm(c[2] - c[0]) + np.linalg.norm(c[3] - c[1]))


def load_sources(knee_dir: Path | None, limit: int | None = None) -> dict[str, np.ndarray]:
    """The packaged radiographs and, when given, the knee development images."""
    paths = dict(packaged_sources())
    if knee_dir is not None and (knee_dir / "images").is_dir():
        knees = sorted((knee_dir / "images").iterdir())
        for path in knees[:limit] if limit else knees:
            paths[f"knee/{path.name}"] = path
    return {name: load_source(path) for name, path in paths.items()}


def plan(n_good: int, n_bad: int) -> list[str]:
    """Conditions in an interleaved order, so any prefix is a balanced sample."""
    order: list[str] = []
    counts = {c: n_good if c == "good" else n_bad for c in CONDITIONS}
    while any(counts.values()):
        for condition in CONDITIONS:
            reps = 1 if condition != "good" else max(1, round(n_good / max(1, n_bad)))
            for _ in range(reps):
                if counts[condition]:
                    order.append(condition)
                    counts[condition] -= 1
    return order


def run(
    sources: dict[str, np.ndarray],
    n_good: int,
    n_bad: int,
    seed: int = 1000,
    thresholds: PhotoThresholds | None = None,
) -> list[Outcome]:
    names = sorted(sources)
    outcomes = []
    for i, condition in enumerate(plan(n_good, n_bad)):
        name = names[(i * 7919) % len(names)]
        photo = simulate(sources[name], seed + i, condition, name)
        start = time.perf_counter()
        result = read_photo(photo.jpeg, thresholds)
        quality = photo_quality(result, thresholds)
        outcomes.append(Outcome(photo, result, quality, time.perf_counter() - start))
    return outcomes


def image_drift(original: np.ndarray, rectified: np.ndarray) -> dict[str, float]:
    """How the rectified photo's pixels differ from the printed radiograph's."""
    size = (256, 256)
    a = cv2.resize(original, size, interpolation=cv2.INTER_AREA).astype(np.float64)
    b = cv2.resize(rectified, size, interpolation=cv2.INTER_AREA).astype(np.float64)
    return {
        "pearson_r": float(np.corrcoef(a.ravel(), b.ravel())[0, 1]),
        "mean_abs_diff": float(np.abs(a - b).mean()),
        "mean_diff": float(b.mean() - a.mean()),
        "std_ratio": float(b.std() / max(a.std(), 1e-9)),
        "p10_diff": float(np.percentile(b, 10) - np.percentile(a, 10)),
        "p90_diff": float(np.percentile(b, 90) - np.percentile(a, 90)),
    }


def auc(labels: np.ndarray, scores: np.ndarray) -> float:
    """Mann-Whitney AUC (ties count half)."""
    labels = np.asarray(labels, bool)
    scores = np.asarray(scores, float)
    pos, neg = scores[labels], scores[~labels]
    if len(pos) == 0 or len(neg) == 0:
        return float("nan")
    greater = (pos[:, None] > neg[None, :]).sum() + 0.5 * (pos[:, None] == neg[None, :]).sum()
    return float(greater / (len(pos) * len(neg)))


def model_drift(
    pairs: Sequence[tuple[np.ndarray, np.ndarray]],
    score: Callable[[np.ndarray], float],
    labels: Sequence[bool] | None = None,
) -> dict[str, float]:
    """Hook for the knee image model: ``score`` maps bone-bright pixels to a probability;
    ``pairs`` are (original radiograph, rectified photo) pixels. Reports the probability
    drift and, with labels (True = low bone density), the AUC on each side."""
    original = np.array([score(a) for a, _ in pairs])
    photo = np.array([score(b) for _, b in pairs])
    out = {
        "n": len(pairs),
        "mean_abs_probability_change": float(np.abs(photo - original).mean()),
        "max_abs_probability_change": float(np.abs(photo - original).max()),
        "mean_probability_change": float((photo - original).mean()),
    }
    if labels is not None:
        out["auc_original"] = auc(np.asarray(labels), original)
        out["auc_photo"] = auc(np.asarray(labels), photo)
    return out


def _summary(values: Sequence[float]) -> dict[str, float]:
    arr = np.asarray(values, float)
    if arr.size == 0:
        return {}
    return {
        "min": round(float(arr.min()), 4),
        "p10": round(float(np.percentile(arr, 10)), 4),
        "median": round(float(np.median(arr)), 4),
        "mean": round(float(arr.mean()), 4),
        "p90": round(float(np.percentile(arr, 90)), 4),
        "max": round(float(arr.max()), 4),
    }


def summarise(outcomes: Sequence[Outcome]) -> dict[str, object]:
    good = [o for o in outcomes if o.photo.condition == "good"]
    bad = [o for o in outcomes if o.photo.condition != "good"]
    detected = [o for o in outcomes if o.result.corner_source == "detected"]
    errors_pct = [100 * o.corner_error_px() / o.film_diagonal_px() for o in detected]
    refused_good: dict[str, int] = {}
    for o in good:
        for code in o.fail_codes:
            refused_good[code] = refused_good.get(code, 0) + 1
    per_condition = {}
    for condition in BAD_CONDITIONS:
        group = [o for o in bad if o.photo.condition == condition]
        if not group:
            continue
        wrong: dict[str, int] = {}
        for o in group:
            if not o.right_code:
                key = ",".join(o.fail_codes) or "accepted"
                wrong[key] = wrong.get(key, 0) + 1
        per_condition[condition] = {
            "n": len(group),
            "refused_with_right_code": round(sum(o.right_code for o in group) / len(group), 4),
            "refused_any": round(sum(o.refused for o in group) / len(group), 4),
            "misses": wrong,
        }
    measured: dict[str, dict[str, dict[str, float]]] = {}
    for condition in CONDITIONS:
        group = [o for o in outcomes if o.photo.condition == condition]
        values: dict[str, list[float]] = {}
        for o in group:
            for g in o.quality.gates:
                if isinstance(g.measured, (int, float)) and not isinstance(g.measured, bool):
                    values.setdefault(g.gate, []).append(float(g.measured))
        if group:
            measured[condition] = {gate: _summary(v) for gate, v in values.items()}
    drift = [
        image_drift(o.photo.film, o.result.radiograph.pixels)
        for o in good
        if o.result.corner_source == "detected"
    ]
    return {
        "n_photos": len(outcomes),
        "n_good": len(good),
        "n_unusable": len(bad),
        "film_found": {
            "all": round(len(detected) / max(1, len(outcomes)), 4),
            "good": round(
                sum(o.result.corner_source == "detected" for o in good) / max(1, len(good)), 4
            ),
        },
        "corner_error_pct_of_diagonal": _summary(errors_pct),
        "corner_error_px": _summary([o.corner_error_px() for o in detected]),
        "unusable_refused_with_right_code": round(
            sum(o.right_code for o in bad) / max(1, len(bad)), 4
        ),
        "unusable_by_condition": per_condition,
        "good_refused": round(sum(o.refused for o in good) / max(1, len(good)), 4),
        "good_refused_by_code": refused_good,
        "good_warned": round(sum(o.quality.verdict == "warn" for o in good) / max(1, len(good)), 4),
        "gate_measurements_by_condition": measured,
        "image_drift_good": {
            key: _summary([d[key] for d in drift]) for key in (drift[0] if drift else {})
        },
        "seconds_per_photo": _summary([o.seconds for o in outcomes]),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--knee-dir", type=Path, default=None)
    parser.add_argument("--good", type=int, default=150)
    parser.add_argument("--bad", type=int, default=25, help="photos per unusable condition")
    parser.add_argument("--seed", type=int, default=1000)
    parser.add_argument("--out", type=Path, default=REPORT)
    args = parser.parse_args()
    sources = load_sources(args.knee_dir)
    outcomes = run(sources, args.good, args.bad, args.seed)
    report = {
        "what": "phone photos of X-ray films simulated by tools/photo_sim.py",
        "seed": args.seed,
        "sources": sorted(sources),
        "conditions": {c: sum(o.photo.condition == c for o in outcomes) for c in CONDITIONS},
        "thresholds": PhotoThresholds().__dict__,
        **summarise(outcomes),
        "model_drift": "the knee models on photos of the development films: "
        "tools/reports/photo_model_drift.json (tools/eval_photo_models.py)",
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    main()
