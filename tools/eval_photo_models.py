"""The knee models on phone photos of the development films versus the originals.

For every development image: screen the original (digital) once and several independent
simulated good phone photos of it (capture="photo", one per photo set, each from its own
seed), all through Screener.screen, and compare each model's AUC for T <= -1 and
T <= -2.5 and its probability drift, per photo set and pooled over the sets. The 95 %
intervals of the AUC change come from a paired bootstrap over films: a resampled film
brings its original and all its photos along, so the interval holds the sampling of
films and the photo-to-photo spread together. Everything is deterministic from SEED and
BOOTSTRAP_SEED. Writes tools/reports/photo_model_drift.json.

    python tools/eval_photo_models.py ../shared/data/knee [--sets 3] [--jobs 2]
    python tools/eval_photo_models.py ../shared/data/knee --sets 1 --photo-size 4032 3024 \
        --source-long-side 2800 --out tools/reports/photo_model_drift_12mp.json
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import sys
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import photo_sim

from edgeosteo import knee_roi
from edgeosteo.config import load_settings
from edgeosteo.evaluate import LabelledCase, auc, read_dataset
from edgeosteo.screening import Screener

REPORT = Path(__file__).resolve().parent / "reports" / "photo_model_drift.json"
SEED = 20261124  # photo set s of film i is simulated with SEED + SET_STRIDE * s + i
SET_STRIDE = 1000
BOOTSTRAP_SEED = 7
BOOTSTRAP_ROUNDS = 2000
TARGETS = (("p_low_bone_mass", "p_t_le_-1", -1.0), ("p_osteoporosis", "p_t_le_-2.5", -2.5))
TARGET_AUC_CHANGE = 0.03

_screener: Screener | None = None


def _init(models_dir: str | None, photo_size: tuple[int, int], source_long_side: int) -> None:
    global _screener
    photo_sim.PHOTO_SIZE = photo_size
    photo_sim.SOURCE_LONG_SIDE = source_long_side
    settings = load_settings(environ={})
    if models_dir:
        settings = dataclasses.replace(settings, models_dir=Path(models_dir))
    _screener = Screener(settings)


def photo_seed(photo_set: int, index: int) -> int:
    return SEED + SET_STRIDE * photo_set + index


def _scores(screening) -> dict[str, dict[str, float | None]]:
    return {
        f.model_id: {field: getattr(f, field) for field, _, _ in TARGETS}
        for f in screening.findings.results
    }


def _knee_rois(pixels: np.ndarray | None) -> list[tuple[float, float, float, float]]:
    """(centre x, joint row, width, crop sharpness) of each knee the image model would crop,
    positions and width as fractions of the image's width and height; sharpness is the SD
    of the Laplacian of the normalised 256 px crop the model sees."""
    if pixels is None:
        return []
    h, w = pixels.shape
    out = []
    for knee in sorted(knee_roi.detect_knees(pixels), key=lambda k: k.cx):
        crop = knee_roi.crop_knee(pixels, knee)
        sharpness = float(cv2.Laplacian(crop, cv2.CV_32F).std())
        out.append((knee.cx / w, knee.cy / h, knee.width / w, sharpness))
    return out


def _roi_change(original: list, photo: list) -> dict[str, float] | None:
    """How the photo's knee crops differ from the original's: centre offset in knee widths,
    width ratio, sharpness ratio (means over the knees); None when the knee count differs."""
    if not original or len(original) != len(photo):
        return None
    pairs = list(zip(original, photo, strict=True))
    return {
        "offset": float(np.mean([np.hypot(b[0] - a[0], b[1] - a[1]) / a[2] for a, b in pairs])),
        "width_ratio": float(np.mean([b[2] / a[2] for a, b in pairs])),
        "sharpness_ratio": float(np.mean([b[3] / a[3] for a, b in pairs])),
    }


def _screen_case(job: tuple[int, LabelledCase, int]) -> dict[str, object]:
    """The original and every photo set of one film."""
    index, case, sets = job
    assert _screener is not None
    original = _screener.screen(case.image, case.answers, body_part="KNEE")
    film = photo_sim.load_source(case.image)
    photos, refused, rois, reflections = [], [], [], []
    original_rois = _knee_rois(original.radiograph.pixels if original.radiograph else None)
    for photo_set in range(sets):
        photo = photo_sim.simulate(
            film, seed=photo_seed(photo_set, index), condition="good", source=case.case_id
        )
        screening = _screener.screen(photo.jpeg, case.answers, body_part="KNEE", capture="photo")
        if screening.quality is None or not screening.quality.usable:
            codes = (
                [c for c in screening.quality.codes if c != "quality.ok"]
                if screening.quality
                else [str((screening.intake_error or {}).get("code"))]
            )
            refused.append({"id": case.case_id, "set": photo_set, "codes": codes})
        photos.append(_scores(screening))
        # a faint reflection of a room light (it never clips, so the glare gate passes it)
        reflection = float(photo.params.get("glare_share", 0.0)) > 0
        reflections.append(reflection)
        if screening.radiograph is not None and screening.quality.usable:
            change = _roi_change(original_rois, _knee_rois(screening.radiograph.pixels))
            rois.append({"reflection": reflection, "change": change})
    return {
        "original": _scores(original),
        "photos": photos,
        "refused": refused,
        "rois": rois,
        "reflections": reflections,
    }


def _round(value: float, digits: int = 4) -> float | None:
    return round(float(value), digits) if np.isfinite(value) else None


def _interval(values: Sequence[float]) -> list[float | None]:
    finite = np.asarray([v for v in values if np.isfinite(v)])
    if len(finite) == 0:
        return [None, None]
    return [_round(np.percentile(finite, 2.5)), _round(np.percentile(finite, 97.5))]


def compare(
    original: np.ndarray,
    photos: np.ndarray,
    labels: np.ndarray,
    rounds: int = BOOTSTRAP_ROUNDS,
    reflection: np.ndarray | None = None,
) -> dict[str, object]:
    """AUC change and probability drift of one model output.

    ``original``: (films,) probabilities on the originals; ``photos``: (sets, films) on the
    photos, NaN where the photo was refused or the model gave no output; ``labels``:
    (films,) 0/1. Films without an original output are left out. Per set, the pairs are
    the films whose photo in that set has an output; pooled, the AUC change is the mean
    over the sets of the per-set change.
    """
    keep = np.isfinite(original)
    original, photos, labels = original[keep], photos[:, keep], labels[keep]
    if reflection is None:
        reflection = np.zeros(photos.shape, bool)
    reflection = reflection[:, keep]
    sets, n = photos.shape

    def changes(idx: np.ndarray) -> list[float]:
        out = []
        for s in range(sets):
            sel = idx[np.isfinite(photos[s, idx])]
            out.append(auc(photos[s, sel], labels[sel]) - auc(original[sel], labels[sel]))
        return out

    point = changes(np.arange(n))
    rng = np.random.default_rng(BOOTSTRAP_SEED)
    resampled = np.array([changes(rng.integers(0, n, n)) for _ in range(rounds)])
    per_set = []
    for s in range(sets):
        ok = np.isfinite(photos[s])
        drift = photos[s, ok] - original[ok]
        per_set.append(
            {
                "set": s,
                "n_paired": int(ok.sum()),
                "auc_original": _round(auc(original[ok], labels[ok])),
                "auc_photo": _round(auc(photos[s, ok], labels[ok])),
                "auc_change": _round(point[s]),
                "auc_change_ci95": _interval(resampled[:, s]),
                "mean_probability_change": _round(drift.mean()),
                "mean_abs_probability_change": _round(np.abs(drift).mean()),
                "max_abs_probability_change": _round(np.abs(drift).max()),
            }
        )
    paired = np.isfinite(photos)
    drift = (photos - original[None, :])[paired]
    flagged = reflection[paired]
    pooled_change = float(np.mean(point))
    pooled_ci = _interval(resampled.mean(axis=1))
    return {
        "n_films": int(n),
        "positives": int(labels.sum()),
        "original_probability_sd": _round(original.std()),
        "pooled": {
            "n_pairs": int(paired.sum()),
            "auc_original": _round(auc(original, labels)),
            "auc_photo_mean": _round(
                np.mean(
                    [
                        auc(photos[s, np.isfinite(photos[s])], labels[np.isfinite(photos[s])])
                        for s in range(sets)
                    ]
                )
            ),
            "auc_change": _round(pooled_change),
            "auc_change_ci95": pooled_ci,
            "within_target": bool(abs(pooled_change) < TARGET_AUC_CHANGE),
            "ci_within_target": bool(
                None not in pooled_ci
                and pooled_ci[0] > -TARGET_AUC_CHANGE
                and pooled_ci[1] < TARGET_AUC_CHANGE
            ),
            "mean_probability_change": _round(drift.mean()),
            "mean_abs_probability_change": _round(np.abs(drift).mean()),
            "max_abs_probability_change": _round(np.abs(drift).max()),
            "mean_abs_probability_change_by_reflection": {
                "photos_with_faint_reflection": int(flagged.sum()),
                "with": _round(np.abs(drift[flagged]).mean()) if flagged.any() else None,
                "without": _round(np.abs(drift[~flagged]).mean()) if (~flagged).any() else None,
            },
        },
        "per_set": per_set,
    }


def _spread(values: Sequence[float]) -> dict[str, float | None]:
    v = np.asarray(values, float)
    return {
        "median": _round(np.median(v)),
        "p10": _round(np.percentile(v, 10)),
        "p90": _round(np.percentile(v, 90)),
        "max": _round(v.max()),
    }


def roi_summary(rois: Sequence[dict[str, object]]) -> dict[str, object]:
    """The knee crops the image model saw on the accepted photos against the originals'."""
    paired = [r["change"] for r in rois if r["change"] is not None]
    offsets = [r["offset"] for r in paired]
    moved = [
        r["reflection"] for r in rois if r["change"] is not None and r["change"]["offset"] > 0.25
    ]
    return {
        "photos": len(rois),
        "photos_with_faint_reflection": int(sum(bool(r["reflection"]) for r in rois)),
        "knee_count_differs": len(rois) - len(paired),
        "centre_offset_knee_widths": _spread(offsets),
        "moved_over_a_quarter_knee_width": len(moved),
        "of_which_with_faint_reflection": int(sum(moved)),
        "width_ratio": _spread([r["width_ratio"] for r in paired]),
        "sharpness_ratio": _spread([r["sharpness_ratio"] for r in paired]),
    }


def _model_files(screener: Screener) -> dict[str, str]:
    out = {}
    for kind in ("clinical", "image", "fused"):
        for manifest in screener.registry.of_kind(kind):
            runtime = screener.settings.runtime
            weights = manifest.weights_for(runtime.backend, runtime.precision)
            digest = hashlib.sha256(Path(weights.path).read_bytes()).hexdigest()[:16]
            out[manifest.id] = f"{manifest.version} {weights.role} sha256 {digest}"
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data_dir", type=Path)
    parser.add_argument("--out", type=Path, default=REPORT)
    parser.add_argument("--limit", type=int, default=None)
    parser.add_argument("--sets", type=int, default=3, help="independent photos per film")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=BOOTSTRAP_ROUNDS)
    parser.add_argument("--models-dir", default=None)
    parser.add_argument(
        "--photo-size",
        type=int,
        nargs=2,
        default=photo_sim.PHOTO_SIZE,
        metavar=("LONG", "SHORT"),
        help="the simulated photo's size (default: the simulator's)",
    )
    parser.add_argument(
        "--source-long-side",
        type=int,
        default=photo_sim.SOURCE_LONG_SIDE,
        help="the printed radiograph's long side before it is photographed",
    )
    args = parser.parse_args(argv)
    init_args = (args.models_dir, tuple(args.photo_size), args.source_long_side)
    cases = read_dataset(args.data_dir)[: args.limit]
    jobs = [(i, case, args.sets) for i, case in enumerate(cases)]
    if args.jobs > 1:
        with ProcessPoolExecutor(args.jobs, initializer=_init, initargs=init_args) as ex:
            results = list(ex.map(_screen_case, jobs, chunksize=4))
    else:
        _init(*init_args)
        results = [_screen_case(job) for job in jobs]
    _init(*init_args)
    assert _screener is not None
    truth = np.array([c.t_score for c in cases])
    reflection = np.array([r["reflections"] for r in results], bool).T  # (sets, films)
    model_ids = sorted(
        {m for r in results for m in r["original"]}
        | {m for r in results for p in r["photos"] for m in p}
    )
    models: dict[str, object] = {}
    for model_id in model_ids:
        entry = {}
        for field, output, cut in TARGETS:

            def value(scores: dict, model_id: str = model_id, field: str = field) -> float:
                v = scores.get(model_id, {}).get(field)
                return float("nan") if v is None else float(v)

            original = np.array([value(r["original"]) for r in results])
            photos = np.array([[value(r["photos"][s]) for r in results] for s in range(args.sets)])
            labels = (truth <= cut).astype(int)
            known = np.isfinite(original)
            if known.sum() < 10 or labels[known].min() == labels[known].max():
                continue
            entry[output] = compare(original, photos, labels, args.rounds, reflection)
        models[model_id] = entry
    refused = [item for r in results for item in r["refused"]]
    report: dict[str, object] = {
        "what": "knee models on simulated good phone photos of the development films "
        "(tools/photo_sim.py) versus the original images, all through Screener.screen",
        "note": "AUCs are in-sample: the models were fitted on these development images, "
        "so the level of the AUC means little; the figure is the change from original to "
        "photo. auc_change is photo minus original on the same films; pooled is the mean "
        "over the photo sets, its 95 % interval a paired bootstrap over films "
        f"({args.rounds} rounds, seed {BOOTSTRAP_SEED}). A film whose photo was refused by "
        "the quality gates is left out of that set's pairs. Target: |AUC change| < "
        f"{TARGET_AUC_CHANGE}.",
        "n_films": len(cases),
        "photo_sets": args.sets,
        "seed": SEED,
        "seed_rule": f"photo set s of film i: {SEED} + {SET_STRIDE} * s + i",
        "photo_size": list(args.photo_size),
        "source_long_side": args.source_long_side,
        "models_used": _model_files(_screener),
        "photos_refused": refused,
        "knee_roi_photo_vs_original": roi_summary([x for r in results for x in r["rois"]]),
        "models": models,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    for model_id, entry in models.items():
        for output, result in entry.items():
            pooled = result["pooled"]
            sets_txt = ", ".join(f"{r['auc_change']:+.4f}" for r in result["per_set"])
            print(
                f"{model_id:14s} {output:12s} AUC {pooled['auc_original']:.4f} change "
                f"{pooled['auc_change']:+.4f} CI {pooled['auc_change_ci95']} sets [{sets_txt}] "
                f"|dp| mean {pooled['mean_abs_probability_change']:.4f} "
                f"max {pooled['max_abs_probability_change']:.4f}"
            )
    print(f"photos refused: {len(refused)} of {len(cases) * args.sets}")
    print("knee ROI:", json.dumps(report["knee_roi_photo_vs_original"]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
