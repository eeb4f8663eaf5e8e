"""Positive and negative controls for the site training pipeline (tools/site_train.py).

Positive control: a synthetic set whose cortical thickness and trabecular density follow a
planted T-score. The T-score depends partly on age and weight (what the clinical model can
see) and partly on a patient-level term only the bone shows, so a pipeline that learns bone
must rank better than the clinical model in CV and with each device held out: it must reach
AUC >= 0.9 and pass the governance rule.

Negative control: the same patients, devices and rendering, but the bone is drawn
independently of the T-score and one device (D3) renders brighter and has its patients
shifted 1.0 lower in T (more often osteoporotic). The only image cue to the label is then the
device; the rule must refuse the model (with D3 held out nothing carries over).

Usage: python tools/positive_control.py [--n 90] [--cv-repeats 1]
       [--report tools/reports/positive_control.json]
Rendering uses tools/phantoms/render.py (the shared imaging chain). Seeds are fixed.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import site_train
from phantoms.render import Chain, image_chain, trabecular_texture, tube_path_lengths

SIZE = 256
DEVICES = {  # three consoles with different noise and blur: the site's real case
    "D1": Chain(blur_sigma_px=0.8, photons=6000.0, scatter_fraction=0.12, bits=16),
    "D2": Chain(blur_sigma_px=1.2, photons=3000.0, scatter_fraction=0.18, bits=12),
    "D3": Chain(blur_sigma_px=1.0, photons=4500.0, scatter_fraction=0.15, bits=8),
}
ARTEFACT_DEVICE = "D3"
ARTEFACT_T_SHIFT = -1.5
ARTEFACT_GAMMA = 0.6  # display ** gamma: mid-tones brighter
AUC_FLOOR = 0.9
SEED = 20261202


@dataclass(frozen=True)
class Patient:
    pid: str
    sex: str
    age: float
    weight_kg: float
    height_m: float
    device: str
    t_score: float
    bone_t: float  # the T-score the bone is rendered from


def patients(n: int, artefact: bool, seed: int = SEED) -> list[Patient]:
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        device = sorted(DEVICES)[i % len(DEVICES)]
        female = rng.random() < 0.55
        age = float(rng.uniform(40, 85))
        height = float(rng.normal(1.58 if female else 1.70, 0.06))
        weight = float(rng.normal(60 if female else 70, 9))
        # visible to the clinical model: age and weight; visible only in the bone: own_bone
        own_bone = float(rng.normal(0, 0.8))
        t = -1.4 - 0.035 * (age - 60) + 0.015 * (weight - 65) + own_bone
        unrelated = float(rng.normal(-1.4, 0.9))
        if artefact and device == ARTEFACT_DEVICE:
            t += ARTEFACT_T_SHIFT
        out.append(
            Patient(
                f"P{i:04d}",
                "female" if female else "male",
                round(age, 1),
                round(weight, 1),
                round(height, 3),
                device,
                round(float(np.clip(t, -5, 2)), 2),
                float(np.clip(unrelated if artefact else t, -5, 2)),
            )
        )
    return out


def render(p: Patient, artefact: bool, seed: int) -> np.ndarray:
    """A long-bone shaft seen AP: soft tissue, a cortical tube whose wall thins and a
    trabecular network that thins as the bone's T-score falls."""
    rng = np.random.default_rng(seed)
    xs = np.tile(np.arange(SIZE, dtype=np.float64), (SIZE, 1))
    centre = SIZE / 2 + rng.normal(0, 4)
    lateral = xs - centre
    outer = 46.0 + rng.normal(0, 2)
    cortex_px = float(np.clip(9.0 + 2.6 * (p.bone_t + 1.4), 2.0, 18.0))
    density = float(np.clip(0.55 + 0.16 * (p.bone_t + 1.4), 0.08, 1.0))
    cortex, medulla = tube_path_lengths(lateral, outer, outer - cortex_px, 0.9)
    trabeculae = trabecular_texture(rng, (SIZE, SIZE), 6.0)
    soft = 2 * 100.0 * np.sqrt(np.clip(1 - (lateral / 110.0) ** 2, 0, None))
    attenuation = 0.004 * soft + 0.030 * cortex + 0.012 * density * trabeculae * medulla
    display = image_chain(attenuation, DEVICES[p.device], rng)
    if artefact and p.device == ARTEFACT_DEVICE:
        display = display**ARTEFACT_GAMMA
    return display


def write_set(out_dir: Path, n: int, artefact: bool, seed: int = SEED) -> Path:
    """The set in the exported layout (clinical.csv + images/), device as the source."""
    (out_dir / "images").mkdir(parents=True, exist_ok=True)
    rows = patients(n, artefact, seed)
    with (out_dir / "clinical.csv").open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["id", "sex", "age", "weight_kg", "height_m", "t_score", "image", "device"])
        for i, p in enumerate(rows):
            image = f"{p.pid}.png"
            display = render(p, artefact, seed + 1 + i)
            cv2.imwrite(
                str(out_dir / "images" / image), np.round(display * 65535).astype(np.uint16)
            )
            writer.writerow(
                [p.pid, p.sex, p.age, p.weight_kg, p.height_m, p.t_score, image, p.device]
            )
    return out_dir


def figures(result: dict) -> dict:
    """The figures the README reports: per target image alone, clinical and fused AUC and
    the added value, in CV and LOSO, and the rule."""
    out: dict = {"n": result["n"], "used_for_referral": result["governance"]["used_for_referral"]}
    for k, e in result["variant"].items():
        if not k.startswith("p_t_le"):
            continue
        out[k] = {
            "image_alone_cv": e["image_alone"]["cv"]["auc"],
            "image_alone_loso": e["image_alone"]["loso"]["auc"],
            "clinical_cv": e["clinical_same_folds"]["cv"]["auc"],
            "fused_cv": e["fused"]["cv"]["auc"],
            "fused_loso": e["fused"]["loso"]["auc"],
            "fused_minus_clinical_cv": e["added_value_over_clinical"]["cv"],
            "fused_minus_clinical_loso": e["added_value_over_clinical"]["loso"],
            "passes_rule": e["passes_product_rule"],
        }
    return out


def run(n: int, cv_repeats: int, work: Path) -> dict:
    report = {"n": n, "cv_repeats": cv_repeats, "seed": SEED}
    for name, artefact in (("positive", False), ("source_artefact", True)):
        data = write_set(work / name, n, artefact)
        site = site_train.load_site_set(data, "SYNTHETIC")
        report[name] = figures(site_train.train(site, cv_repeats))
    return report


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=90)
    parser.add_argument("--cv-repeats", type=int, default=1)
    parser.add_argument("--report", type=Path)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        report = run(args.n, args.cv_repeats, Path(tmp))
    text = json.dumps(report, indent=1)
    if args.report:
        args.report.write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
