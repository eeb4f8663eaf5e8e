"""The knee models on phone photos of the development films versus the originals.

For every development image: screen the original (digital) and a simulated good phone
photo of it (capture="photo"), both through Screener.screen, and compare each model's
AUC for T <= -1 and T <= -2.5 and its probability drift. Writes
tools/reports/photo_model_drift.json.

    python tools/eval_photo_models.py ../shared/data/knee
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import photo_sim

from edgeosteo.config import load_settings
from edgeosteo.evaluate import auc, read_dataset
from edgeosteo.screening import Screener

REPORT = Path(__file__).resolve().parent / "reports" / "photo_model_drift.json"
SEED = 20261124


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data_dir", type=Path)
    parser.add_argument("--out", type=Path, default=REPORT)
    parser.add_argument("--limit", type=int, default=None)
    args = parser.parse_args(argv)
    screener = Screener(load_settings(environ={}))
    cases = read_dataset(args.data_dir)[: args.limit]
    scores: dict[str, dict[str, list[float | None]]] = {}
    refused = []
    for index, case in enumerate(cases):
        original = screener.screen(case.image, case.answers, body_part="KNEE")
        film = photo_sim.load_source(case.image)
        photo = photo_sim.simulate(film, seed=SEED + index, condition="good", source=case.case_id)
        photographed = screener.screen(photo.jpeg, case.answers, body_part="KNEE", capture="photo")
        if photographed.quality is None or not photographed.quality.usable:
            refused.append(
                {
                    "id": case.case_id,
                    "codes": list(photographed.quality.codes)
                    if photographed.quality
                    else [photographed.intake_error],
                }
            )
        for side, screening in (("original", original), ("photo", photographed)):
            for finding in screening.findings.results:
                slot = scores.setdefault(finding.model_id, {})
                for field in ("p_low_bone_mass", "p_osteoporosis"):
                    slot.setdefault(f"{side}:{field}", [None] * len(cases))[index] = getattr(
                        finding, field
                    )
    truth = np.array([c.t_score for c in cases])
    report: dict[str, object] = {
        "n": len(cases),
        "seed": SEED,
        "photos_refused": refused,
        "models": {},
    }
    for model_id, slot in scores.items():
        entry = {}
        for field, cut in (("p_low_bone_mass", -1.0), ("p_osteoporosis", -2.5)):
            before = slot.get(f"original:{field}", [])
            after = slot.get(f"photo:{field}", [])
            paired = [
                (b, a, t)
                for b, a, t in zip(before, after, truth, strict=False)
                if b is not None and a is not None
            ]
            if len(paired) < 10:
                continue
            b, a, t = (np.array(v, float) for v in zip(*paired, strict=True))
            labels = (t <= cut).astype(int)
            entry[field] = {
                "n_paired": len(paired),
                "auc_original": round(auc(b, labels), 4),
                "auc_photo": round(auc(a, labels), 4),
                "auc_change": round(auc(a, labels) - auc(b, labels), 4),
                "mean_abs_probability_change": round(float(np.abs(a - b).mean()), 4),
                "max_abs_probability_change": round(float(np.abs(a - b).max()), 4),
            }
        report["models"][model_id] = entry
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))
    print(json.dumps(report["models"], indent=2))
    print(f"photos refused: {len(refused)} of {len(cases)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
