"""Train and validate an image model on a site's exported labelled set, for any body part,
with the knee pipeline's CV, leave-one-source-out, governance rule and card helpers.

Usage: python tools/site_train.py DATA_DIR --body-part HAND [--report OUT.json] [--card OUT.md]
       [--cv-repeats 20]

The set is the layout ``edgeosteo evaluate`` reads: ``clinical.csv`` (id, sex, age,
weight_kg, height_m or bmi, t_score, image, and the device as ``device`` or ``source``) and
``images/``. Source = device: leave-one-source-out holds out each device in turn.

Pipeline (the knee image research's, body-part agnostic): the image is resized to 256 x 256
and percentile-normalised, texture features (tools/image_research.roi_texture) are taken on
a 3 x 3 grid, a ridge / logistic model is fitted per fold (image_research.oof_linear), the
clinical model is fitted on identical folds (train_clinical.clinical_oof), and the two are
stacked (image_research.fuse). ``image_research.evaluate_variant`` applies the product rule
(edgeosteo.models.governance_rule_holds): the image may drive the referral only if, in CV
and in LOSO, AUC(fused) - AUC(clinical) has a 95 % CI above 0 and the image score alone ranks
the right way.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import evalkit as ek
import image_research as ir
import knee_data
import train_clinical as tc
import write_cards as wc

SIZE = 256
GRID = 3
REQUIRED = ("id", "sex", "age", "weight_kg", "t_score", "image")


class SiteSetError(ValueError):
    """The exported set cannot be trained on; the message says which row and why."""


@dataclass(frozen=True)
class SiteSet:
    body_part: str
    arrays: dict[str, np.ndarray]  # train_clinical's names: age, female, weight_kg, bmi, ...
    images: list[Path]


def load_site_set(data_dir: Path, body_part: str) -> SiteSet:
    with (data_dir / "clinical.csv").open(newline="", encoding="utf-8-sig") as handle:
        rows = list(csv.DictReader(handle))
    if not rows:
        raise SiteSetError(f"{data_dir / 'clinical.csv'} has no rows")
    missing = [c for c in REQUIRED if c not in rows[0]]
    device = "device" if "device" in rows[0] else "source" if "source" in rows[0] else None
    if missing or device is None:
        raise SiteSetError(f"clinical.csv lacks {missing or ['device (or source)']}")
    cols: dict[str, list] = {k: [] for k in ("age", "female", "weight_kg", "bmi", "t_score")}
    sources, images = [], []
    for i, row in enumerate(rows, start=2):
        try:
            age, weight, t = (knee_data._num(row[k]) for k in ("age", "weight_kg", "t_score"))
            height, bmi = knee_data._num(row.get("height_m")), knee_data._num(row.get("bmi"))
            female = knee_data._sex(row["sex"]) == "female"
        except ValueError as exc:
            raise SiteSetError(f"row {i}: {exc}") from None
        if bmi is None and height and weight is not None:
            bmi = weight / height**2
        if age is None or weight is None or t is None or bmi is None:
            raise SiteSetError(f"row {i}: age, weight_kg, t_score and bmi (or height_m) needed")
        path = data_dir / "images" / row["image"].strip()
        if not path.is_file():
            raise SiteSetError(f"row {i}: image {row['image']!r} not found")
        for key, value in zip(cols, (age, female, weight, bmi, t), strict=True):
            cols[key].append(float(value))
        sources.append(row[device].strip())
        images.append(path)
    arrays = {k: np.array(v, float) for k, v in cols.items()}
    arrays["source"] = np.array(sources)
    if len(set(sources)) < 2:
        raise SiteSetError("leave-one-source-out needs at least two devices")
    return SiteSet(body_part, arrays, images)


def image_features(gray: np.ndarray) -> np.ndarray:
    """Body-part agnostic texture: the knee research's per-region features on a grid."""
    img = cv2.resize(gray.astype(np.float32), (SIZE, SIZE), interpolation=cv2.INTER_AREA)
    lo, hi = np.percentile(img, [1, 99])
    img = np.clip((img - lo) / max(hi - lo, 1e-6), 0, 1).astype(np.float32)
    step = SIZE // GRID
    f: list[float] = []
    for gy in range(GRID):
        for gx in range(GRID):
            f += ir.roi_texture(img[gy * step : (gy + 1) * step, gx * step : (gx + 1) * step])
    return np.array(f, np.float32)


def train(site: SiteSet, cv_repeats: int = ek.CV_REPEATS, device_normalise: bool = True) -> dict:
    """The research entry for the set: per target image alone, clinical, fused, the added
    value in CV and LOSO, and whether the product rule passes.

    ``device_normalise`` z-scores every feature within its device first
    (image_research.source_normalise): label-free, so a site can do it on its own images, and
    it takes away what only says which console took the image (its brightness, noise, blur).
    """
    a = site.arrays
    F = np.stack([image_features(knee_data.read_gray(p)) for p in site.images])
    F = np.nan_to_num(F)
    if device_normalise:
        F = np.nan_to_num(ir.source_normalise(F, a["source"]))
    t = a["t_score"]
    cv = ek.cv_splits(t, repeats=cv_repeats)
    loso = ek.loso_splits(a["source"])
    clin_cv, clin_lo = tc.clinical_oof(a, cv, loso)
    img_cv = ir.oof_linear(F, t, cv)
    img_lo = ir.oof_linear(F, t, [loso])
    entry = ir.evaluate_variant("site_texture", img_cv, img_lo, clin_cv, clin_lo, a, cv, loso)
    passes = all(entry[k]["passes_product_rule"] for k in tc.TARGETS)
    return {
        "body_part": site.body_part,
        "n": len(t),
        "n_t_le_-1": int((t <= -1).sum()),
        "n_t_le_-2.5": int((t <= -2.5).sum()),
        "devices": {s: int((a["source"] == s).sum()) for s in sorted(set(a["source"]))},
        "cv_scheme": f"{cv_repeats}x repeated stratified {ek.CV_FOLDS}-fold, patient level",
        "loso_scheme": "leave-one-device-out, held-out predictions pooled",
        "bootstrap": f"stratified, B={ek.BOOT_B}, seed {ek.BOOT_SEED}",
        "device_normalised": device_normalise,
        "variant": entry,
        "governance": {
            "added_value_over_clinical": {
                **ek.rule_record(entry["p_t_le_-1"]),
                "by_target": {k: ek.rule_record(entry[k]) for k in tc.TARGETS},
            },
            "used_for_referral": passes,
        },
    }


def card(result: dict, title: str) -> str:
    """The card's performance and governance section, in the knee cards' wording."""
    lines = [
        f"# {title}\n",
        f"Body part {result['body_part']}; {result['n']} patients "
        f"({result['n_t_le_-1']} with T <= -1, {result['n_t_le_-2.5']} with T <= -2.5); "
        "devices " + ", ".join(f"{d} n={n}" for d, n in result["devices"].items()) + ".\n",
        f"{result['cv_scheme']}; LOSO = {result['loso_scheme']}; CIs by {result['bootstrap']} "
        "bootstrap.\n",
        "| target | image alone CV | image alone LOSO | clinical CV | fused CV | fused LOSO | "
        "fused minus clinical CV | fused minus clinical LOSO | rule |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for k, txt in wc.TARGET_TXT.items():
        e = result["variant"][k]
        lines.append(
            f"| {txt} | {wc.ci(e['image_alone']['cv'])} | {wc.ci(e['image_alone']['loso'])} | "
            f"{wc.ci(e['clinical_same_folds']['cv'])} | {wc.ci(e['fused']['cv'])} | "
            f"{wc.ci(e['fused']['loso'])} | {wc.dci(e['added_value_over_clinical']['cv'])} | "
            f"{wc.dci(e['added_value_over_clinical']['loso'])} | "
            f"{'pass' if e['passes_product_rule'] else 'fail'} |"
        )
    used = result["governance"]["used_for_referral"]
    lines.append(
        "\n**Governance: "
        + ("may drive the referral" if used else "refused: information only, never the referral")
        + ".** Rule (edgeosteo.models.governance_rule_holds): in both repeated CV and LOSO, the "
        "95% CI lower bound of AUC(fused) - AUC(clinical) is > 0 and the image score alone has "
        "AUC > 0.5, for every target.\n"
    )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data_dir", type=Path)
    parser.add_argument("--body-part", required=True)
    parser.add_argument("--report", type=Path)
    parser.add_argument("--card", type=Path)
    parser.add_argument("--cv-repeats", type=int, default=ek.CV_REPEATS)
    args = parser.parse_args(argv)
    try:
        site = load_site_set(args.data_dir, args.body_part.upper())
    except SiteSetError as exc:
        raise SystemExit(f"site_train: {exc}") from None
    result = train(site, args.cv_repeats)
    if args.report:
        args.report.write_text(json.dumps(result, indent=1) + "\n")
    text = card(result, f"Site image model: {site.body_part}")
    if args.card:
        args.card.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
