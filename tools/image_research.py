"""Image-model research on knee radiographs: does the image add anything over the clinical
model, validated by repeated CV AND leave-one-source-out (LOSO)?

Usage: python tools/image_research.py DATA_DIR [--report tools/reports/image_research.json]
       [--cnn-repeats 2]

Pipeline: automatic knee ROI (edgeosteo/knee_roi.py: joint line + knee-width scale, 160 px per
knee width, 256 px crop, percentile normalisation), one crop per knee (bilateral images give
two instances; patient prediction = mean over knees).

Variants
- texture_ridge / texture_logit: classical trabecular-texture features from the tibial and
  femoral metaphysis ROIs (intensity percentiles, gradient energy, LoG energies at 3 scales,
  FFT band-energy ratios), ridge T-score regression and logistic classification.
- cnn_cls / cnn_reg: the small fully-convolutional CNN (tools/knee_cnn.py, multiple-instance via
  spatial averaging of patch outputs, strong augmentation, multi-task); scored by its
  classification logits (cls) or its T-score regression (reg, score = -t).
- texture_age_residual: ridge on texture predicting the T-score residual after age.
- texture_sourcenorm_ridge: texture features z-scored within each source (label-free) first.
- ssl_linear_probe, cnn_ssl_cls / cnn_ssl_reg, cnn_ordinal (issue #3): self-supervised
  pretraining on unlabelled radiographs (linear probe and fine-tuning) and an ordinal
  (cumulative-link) head; see tools/image_research_extra.py (--extra-repeats CV repeats).
- fused_*: late fusion = logistic stacking on [clinical OOF logit, image OOF score], fitted by
  a second-level CV on the out-of-fold predictions with the same folds.
Baselines on the same patients: clinical model, age, OSTA, source-only (one-hot LR; in LOSO a
held-out source is unseen so its score is constant, AUC 0.5 by construction).
Product rule: the image/fused model may be used for referral only if the paired-bootstrap
95% CI lower bound of AUC(fused) - AUC(clinical) is > 0 in both CV and LOSO.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import cv2
import numpy as np
from sklearn.linear_model import LogisticRegression, Ridge

sys.path.insert(0, str(Path(__file__).resolve().parent))
import evalkit as ek
import knee_data
import train_clinical as tc

from edgeosteo import knee_roi
from edgeosteo.models import governance_rule_holds

TARGETS = tc.TARGETS
LOG = print


def load_crops(recs):
    crops, owner, meta = [], [], []
    for i, r in enumerate(recs):
        g = knee_data.read_gray(r.image_path)
        ks = knee_roi.detect_knees(g)
        for k in ks:
            crops.append(knee_roi.crop_knee(g, k))
            owner.append(i)
            meta.append([k.width, k.tib_width, k.fem_width, g.shape[0], g.shape[1]])
    return np.stack(crops).astype(np.float32), np.array(owner), np.array(meta)


# ----------------------------------------------------------------- texture features
ROIS = {"tibia": (152, 236, 76, 180), "femur": (24, 100, 76, 180)}  # y0, y1, x0, x1 in the 256 crop


def roi_texture(r: np.ndarray) -> list[float]:
    """Texture of one region (float32): intensity percentiles and spread, gradient energy and
    anisotropy, LoG energies at 3 scales, FFT band-energy ratios. Any body part."""
    f = list(np.percentile(r, [10, 50, 90]))
    f.append(r.std())
    gx = cv2.Sobel(r, cv2.CV_32F, 1, 0)
    gy = cv2.Sobel(r, cv2.CV_32F, 0, 1)
    f.append(np.mean(np.hypot(gx, gy)))
    f.append(np.mean(np.abs(gy)) / (np.mean(np.abs(gx)) + 1e-6))  # trabecular anisotropy
    for s in (1.0, 2.0, 4.0):
        lg = cv2.Laplacian(cv2.GaussianBlur(r, (0, 0), s), cv2.CV_32F)
        f.append(np.mean(np.abs(lg)) * s * s)
    F = np.abs(np.fft.fftshift(np.fft.fft2(r - r.mean()))) ** 2
    h, w = F.shape
    yy, xx = np.mgrid[:h, :w]
    rad = np.hypot((yy - h / 2) / h, (xx - w / 2) / w)
    tot = F.sum() + 1e-9
    for lo, hi in ((0.02, 0.06), (0.06, 0.12), (0.12, 0.25), (0.25, 0.5)):
        f.append(F[(rad >= lo) & (rad < hi)].sum() / tot)
    return f


def texture_features(crop: np.ndarray) -> np.ndarray:
    f = []
    for y0, y1, x0, x1 in ROIS.values():
        f += roi_texture(crop[y0:y1, x0:x1].astype(np.float32))
    return np.array(f, np.float32)


def patient_mean(x: np.ndarray, owner: np.ndarray, n: int) -> np.ndarray:
    out = np.zeros((n, *x.shape[1:]))
    cnt = np.zeros(n)
    np.add.at(out, owner, x)
    np.add.at(cnt, owner, 1)
    return out / np.maximum(cnt, 1).reshape(-1, *([1] * (x.ndim - 1)))


def oof_linear(F, t, splits_per_repeat):
    """texture models: ridge T-score and logistic per target. Returns dict of [R, N]."""
    R, N = len(splits_per_repeat), len(t)
    out = {"reg": np.zeros((R, N)), **{k: np.zeros((R, N)) for k in TARGETS}}
    for r, splits in enumerate(splits_per_repeat):
        for tr, te in splits:
            mu, sd = tc.standardizer(F[tr])
            Z, Zt = (F[tr] - mu) / sd, (F[te] - mu) / sd
            out["reg"][r, te] = -Ridge(alpha=10.0).fit(Z, t[tr]).predict(Zt)
            for k, thr in TARGETS.items():
                y = (t[tr] <= thr).astype(int)
                out[k][r, te] = (
                    LogisticRegression(C=0.1, max_iter=3000).fit(Z, y).decision_function(Zt)
                )
    return out


def oof_resid(F, a, splits_per_repeat):
    """ridge on texture predicting the T-score residual after a within-fold linear age fit;
    score = -predicted residual (what the image adds beyond age)."""
    t, age = a["t_score"], a["age"]
    out = np.zeros((len(splits_per_repeat), len(t)))
    for r, splits in enumerate(splits_per_repeat):
        for tr, te in splits:
            A = np.column_stack([np.ones(len(tr)), age[tr]])
            res = t[tr] - A @ np.linalg.lstsq(A, t[tr], rcond=None)[0]
            mu, sd = tc.standardizer(F[tr])
            out[r, te] = -Ridge(alpha=10.0).fit((F[tr] - mu) / sd, res).predict((F[te] - mu) / sd)
    return out


def source_normalise(F, source):
    """z-score every feature within its source (label-free; a site can do this on its own
    unlabelled images)."""
    G = F.copy()
    for s in set(source):
        m = source == s
        G[m] = (F[m] - F[m].mean(0)) / (F[m].std(0) + 1e-9)
    return G


def oof_source_only(source, t, splits_per_repeat):
    S = np.column_stack([(source == s).astype(float) for s in sorted(set(source))])
    out = {k: np.zeros((len(splits_per_repeat), len(t))) for k in TARGETS}
    for r, splits in enumerate(splits_per_repeat):
        for tr, te in splits:
            for k, thr in TARGETS.items():
                y = (t[tr] <= thr).astype(int)
                if len(set(source[tr])) == len(set(source)):
                    out[k][r, te] = LogisticRegression(C=1.0).fit(S[tr], y).decision_function(S[te])
                else:  # unseen source: no information, constant score
                    out[k][r, te] = 0.0
    return out


def source_identifiability(F, source, owner_splits):
    acc = []
    for splits in owner_splits:
        pred = np.empty(len(source), dtype=object)
        for tr, te in splits:
            mu, sd = tc.standardizer(F[tr])
            m = LogisticRegression(C=1.0, max_iter=5000).fit((F[tr] - mu) / sd, source[tr])
            pred[te] = m.predict((F[te] - mu) / sd)
        acc.append(float((pred == source).mean()))
    return round(float(np.mean(acc)), 4)


def fuse(clin_logit, img_score, t, thr, splits_per_repeat):
    """Second-level CV stacking on OOF predictions (same folds)."""
    R, N = clin_logit.shape
    out = np.zeros((R, N))
    y = (t <= thr).astype(int)
    for r, splits in enumerate(splits_per_repeat):
        X = np.column_stack([clin_logit[r], img_score[r]])
        for tr, te in splits:
            mu, sd = tc.standardizer(X[tr])
            m = LogisticRegression(C=1.0, max_iter=2000).fit((X[tr] - mu) / sd, y[tr])
            out[r, te] = m.decision_function((X[te] - mu) / sd)
    return out


def logit(p):
    p = np.clip(p, 1e-6, 1 - 1e-6)
    return np.log(p / (1 - p))


def evaluate_variant(
    name, cv_scores, lo_scores, clin_cv, clin_lo, a, cv_splits, loso, img_t_cv=None
):
    t = a["t_score"]
    res = {}
    for k, thr in TARGETS.items():
        y = t <= thr
        s_cv = cv_scores[k] if isinstance(cv_scores, dict) else cv_scores
        s_lo = lo_scores[k] if isinstance(lo_scores, dict) else lo_scores
        R = s_cv.shape[0]
        ccv = logit(clin_cv[k][:R])
        clo = logit(clin_lo[k])
        f_cv = fuse(ccv, s_cv, t, thr, cv_splits[:R])
        f_lo = fuse(clo, s_lo, t, thr, [loso])
        res[k] = {
            "image_alone": {"cv": ek.auc_summary(y, s_cv), "loso": ek.auc_summary(y, s_lo)},
            "clinical_same_folds": {"cv": ek.auc_summary(y, ccv), "loso": ek.auc_summary(y, clo)},
            "fused": {"cv": ek.auc_summary(y, f_cv), "loso": ek.auc_summary(y, f_lo)},
            "added_value_over_clinical": {
                "cv": ek.paired_diff(y, f_cv, ccv),
                "loso": ek.paired_diff(y, f_lo, clo),
            },
            "cv_repeats": R,
        }
        res[k]["passes_product_rule"] = governance_rule_holds(ek.rule_record(res[k]))
        LOG(
            f"[{name}] {k}: image CV {res[k]['image_alone']['cv']['auc']} "
            f"LOSO {res[k]['image_alone']['loso']['auc']} | fused-clin "
            f"CV {res[k]['added_value_over_clinical']['cv']} "
            f"LOSO {res[k]['added_value_over_clinical']['loso']}"
        )
    # age-adjusted correlation of the image score with the T-score (higher score = lower T);
    # classification variants use their T<=-1 logit, regression variants the negated T-score
    s = (
        cv_scores["reg"]
        if isinstance(cv_scores, dict) and "reg" in cv_scores
        else (cv_scores["p_t_le_-1"] if isinstance(cv_scores, dict) else cv_scores)
    ).mean(0)
    s_lo = (
        lo_scores["reg"]
        if isinstance(lo_scores, dict) and "reg" in lo_scores
        else (lo_scores["p_t_le_-1"] if isinstance(lo_scores, dict) else lo_scores)
    )[0]
    res["age_adjusted_corr_with_t_score"] = {
        "note": "partial Pearson r between the OOF image score (higher = lower predicted T) and "
        "the "
        "T-score, adjusting for age; a useful image score should be clearly negative",
        "cv": ek.partial_corr_ci(s, t, a["age"][:, None]),
        "loso": ek.partial_corr_ci(s_lo, t, a["age"][:, None]),
        "cv_adjusted_age_sex_weight_bmi": ek.partial_corr_ci(s, t, tc.design(a)),
    }
    return res


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("data_dir")
    ap.add_argument(
        "--report", default=str(Path(__file__).resolve().parent / "reports" / "image_research.json")
    )
    ap.add_argument("--cnn-repeats", type=int, default=2)
    ap.add_argument("--skip-cnn", action="store_true")
    ap.add_argument(
        "--extra-repeats",
        type=int,
        default=1,
        help="CV repeats for the issue #3 extras (self-supervised pretraining, ordinal head); "
        "0 skips them",
    )
    args = ap.parse_args(argv)
    t0 = time.time()
    recs = knee_data.load_dataset(args.data_dir)
    a = knee_data.arrays(recs)
    t, src, N = a["t_score"], a["source"], len(recs)
    crops, owner, meta = load_crops(recs)
    LOG(f"ROI: {len(crops)} knee crops from {N} images ({time.time() - t0:.0f}s)")
    cv_splits = ek.cv_splits(t)
    loso = ek.loso_splits(src)
    clin_cv, clin_lo = tc.clinical_oof(a, cv_splits, loso)
    report: dict = {
        "n_patients": N,
        "n_knee_crops": len(crops),
        "knees_per_image": {
            str(k): int(v)
            for k, v in zip(
                *np.unique(np.bincount(owner, minlength=N), return_counts=True), strict=True
            )
        },
        "roi_params": knee_roi.PARAMS,
        "variants": {},
    }
    # scale estimate sanity: knee width in px per source (original pixels)
    kw = patient_mean(meta[:, 0], owner, N)
    report["knee_width_px_by_source"] = {
        s: [round(float(np.percentile(kw[src == s], q)), 1) for q in (10, 50, 90)]
        for s in sorted(set(src))
    }
    rel = np.abs(meta[:, 1] - meta[:, 2]) / meta[:, 1]
    report["roi_qc"] = {
        "images_with_knee": len(set(owner.tolist())),
        "tibial_femoral_width_rel_diff_median": round(float(np.median(rel)), 4),
        "frac_knees_tib_fem_diff_over_25pct": round(float((rel > 0.25).mean()), 4),
        "note": "visual QC of joint line/width overlays was done on contact sheets during "
        "development (not stored: no images from the data set are committed)",
    }
    report["knee_width_corr_with_t_adj_age"] = ek.partial_corr_ci(
        -kw / np.median(kw), t, a["age"][:, None]
    )
    # baselines on the same patients
    so_cv = oof_source_only(src, t, cv_splits)
    so_lo = oof_source_only(src, t, [loso])
    report["baselines"] = {
        k: {
            "source_only": {
                "cv": ek.auc_summary(t <= thr, so_cv[k]),
                "loso": ek.auc_summary(t <= thr, so_lo[k]),
            },
            "clinical": {
                "cv": ek.auc_summary(t <= thr, clin_cv[k]),
                "loso": ek.auc_summary(t <= thr, clin_lo[k]),
            },
            "age": ek.auc_summary(t <= thr, a["age"]),
            "osta": ek.auc_summary(t <= thr, -tc.osta(a)),
        }
        for k, thr in TARGETS.items()
    }
    # texture features
    Fk = np.stack([texture_features(c) for c in crops])
    F = patient_mean(Fk, owner, N)
    tex_cv = oof_linear(F, t, cv_splits)
    tex_lo = oof_linear(F, t, [loso])
    report["source_identifiable_from_texture_cv_accuracy"] = source_identifiability(
        F, src, cv_splits[:5]
    )
    report["source_majority_rate"] = round(float(max((src == s).mean() for s in set(src))), 4)
    report["variants"]["texture_logit"] = evaluate_variant(
        "texture_logit",
        {k: tex_cv[k] for k in TARGETS},
        {k: tex_lo[k] for k in TARGETS},
        clin_cv,
        clin_lo,
        a,
        cv_splits,
        loso,
    )
    report["variants"]["texture_ridge"] = evaluate_variant(
        "texture_ridge", tex_cv["reg"], tex_lo["reg"], clin_cv, clin_lo, a, cv_splits, loso
    )
    report["variants"]["texture_age_residual"] = evaluate_variant(
        "texture_age_residual",
        oof_resid(F, a, cv_splits),
        oof_resid(F, a, [loso]),
        clin_cv,
        clin_lo,
        a,
        cv_splits,
        loso,
    )
    Fs = source_normalise(F, src)
    tsn_cv, tsn_lo = oof_linear(Fs, t, cv_splits), oof_linear(Fs, t, [loso])
    report["variants"]["texture_sourcenorm_ridge"] = evaluate_variant(
        "texture_sourcenorm_ridge",
        tsn_cv["reg"],
        tsn_lo["reg"],
        clin_cv,
        clin_lo,
        a,
        cv_splits,
        loso,
    )
    report["source_identifiable_after_sourcenorm_cv_accuracy"] = source_identifiability(
        Fs, src, cv_splits[:5]
    )
    report["runtime_s_texture"] = round(time.time() - t0, 1)
    if not args.skip_cnn:
        import knee_cnn

        R = args.cnn_repeats
        cnn_cv = np.zeros((R, N, 3))
        for r in range(R):
            for fi, (tr, te) in enumerate(cv_splits[r]):
                ktr = np.isin(owner, tr)
                net, norm = knee_cnn.train(crops[ktr], t[owner[ktr]], seed=100 * r + fi)
                kte = np.isin(owner, te)
                cnn_cv[r][te] = patient_mean(
                    knee_cnn.predict(net, crops[kte], norm), owner[kte], N
                )[te]
                LOG(f"cnn repeat {r} fold {fi} done ({time.time() - t0:.0f}s)")
        cnn_lo = np.zeros((1, N, 3))
        for fi, (tr, te) in enumerate(loso):
            ktr = np.isin(owner, tr)
            net, norm = knee_cnn.train(crops[ktr], t[owner[ktr]], seed=900 + fi)
            kte = np.isin(owner, te)
            cnn_lo[0][te] = patient_mean(knee_cnn.predict(net, crops[kte], norm), owner[kte], N)[te]
            LOG(f"cnn loso {fi} done ({time.time() - t0:.0f}s)")
        cls_cv = {
            "p_t_le_-1": cnn_cv[..., 1],
            "p_t_le_-2.5": cnn_cv[..., 2],
            "reg": -cnn_cv[..., 0],
        }
        cls_lo = {
            "p_t_le_-1": cnn_lo[..., 1],
            "p_t_le_-2.5": cnn_lo[..., 2],
            "reg": -cnn_lo[..., 0],
        }
        report["variants"]["cnn_cls"] = evaluate_variant(
            "cnn_cls",
            {k: cls_cv[k] for k in TARGETS},
            {k: cls_lo[k] for k in TARGETS},
            clin_cv,
            clin_lo,
            a,
            cv_splits,
            loso,
        )
        report["variants"]["cnn_reg"] = evaluate_variant(
            "cnn_reg", cls_cv["reg"], cls_lo["reg"], clin_cv, clin_lo, a, cv_splits, loso
        )
        report["cnn"] = {
            "macs_256": knee_cnn.macs(knee_cnn.KneeNet()),
            "epochs": knee_cnn.EPOCHS,
            "patch": knee_cnn.PATCH,
            "cv_repeats": R,
            "t_score_regression": {
                "cv": tc.regression_summary(t, cnn_cv[..., 0]),
                "loso": tc.regression_summary(t, cnn_lo[0, :, 0]),
            },
        }
        extra = {}
        if args.extra_repeats > 0:
            import image_research_extra

            t1 = time.time()
            extra = image_research_extra.run(
                report,
                crops,
                owner,
                a,
                cv_splits,
                loso,
                clin_cv,
                clin_lo,
                cnn_cv,
                cnn_lo,
                evaluate_variant,
                patient_mean,
                repeats=min(args.extra_repeats, R),
            )
            report["runtime_s_extra"] = round(time.time() - t1, 1)
        np.savez(Path(args.report).with_suffix(".oof.npz"), cnn_cv=cnn_cv, cnn_lo=cnn_lo, **extra)
    report["runtime_s"] = round(time.time() - t0, 1)
    Path(args.report).parent.mkdir(parents=True, exist_ok=True)
    Path(args.report).write_text(json.dumps(report, indent=1))
    LOG(f"done in {report['runtime_s']}s")
    return report


if __name__ == "__main__":
    main()
