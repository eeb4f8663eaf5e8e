"""Issue #3 extra image variants, called from tools/image_research.py (same crops, folds,
clinical OOF predictions and evaluate_variant as the other variants):

- self-supervised pretraining (tools/ssl_pretrain.py: SimCLR-style contrastive learning on
  the knee crops without labels + every public radiograph in the installed DICOM test-data
  packages), then
  - ssl_linear_probe: frozen pretrained encoder, global-average-pooled 64-d features (mean
    over the knees of a patient), ridge T-score regression in each fold (score = -T);
  - cnn_ssl_cls / cnn_ssl_reg: full fine-tuning of the pretrained encoder with knee_cnn's
    multi-task loss (FT_EPOCHS epochs), scored like cnn_cls / cnn_reg;
  Leakage: no label is used in pretraining. LOSO: pretrained once per held-out source on the
  other sources' knees + the public images, so the held-out source's pixels are never seen.
  CV: one pretraining on all 147 patients' knees + the public images, so the CV test folds'
  pixels (not labels) were seen during pretraining (transductive; stated in the card).
- cnn_ordinal: knee_ordinal.py (cumulative-link / CORAL head over the three WHO bands), same
  backbone, data, augmentation, epochs and seeds as cnn_cls / cnn_reg; the score for each
  target is the logit of its cumulative probability.

The CNN-based extras run on the first `repeats` CV repeats (default 1) to keep
tools/train_all.py within its time budget; scratch cnn_cls / cnn_reg are re-evaluated on the
same repeats for a like-for-like comparison (report["extra"]["scratch_same_repeats"]).
"""

from __future__ import annotations

import time

import evalkit as ek
import knee_cnn
import knee_ordinal
import numpy as np
import ssl_pretrain
import train_clinical as tc

FT_EPOCHS = 15  # fine-tuning epochs from the pretrained encoder (scratch CNNs: knee_cnn.EPOCHS)
SEED_SSL = 500


def _oof_ridge_per_fold(E_by_fold, t, splits):
    """ridge T-score regression in each fold on that fold's own feature matrix; [1, N]."""
    from sklearn.linear_model import Ridge

    out = np.zeros((1, len(t)))
    for E, (tr, te) in zip(E_by_fold, splits, strict=True):
        mu, sd = tc.standardizer(E[tr])
        out[0, te] = -Ridge(alpha=10.0).fit((E[tr] - mu) / sd, t[tr]).predict((E[te] - mu) / sd)
    return out


def _scores(cv3: np.ndarray, lo3: np.ndarray, kind: str):
    """(CV scores, LOSO scores) of a CNN output array for evaluate_variant."""
    if kind == "cls":  # multi-task CNN [.., 3] = t, logit1, logit25
        return tuple({"p_t_le_-1": x[..., 1], "p_t_le_-2.5": x[..., 2]} for x in (cv3, lo3))
    if kind == "reg":
        return -cv3[..., 0], -lo3[..., 0]
    # ordinal [.., 2] = cumulative logits
    return tuple({"p_t_le_-1": x[..., 0], "p_t_le_-2.5": x[..., 1]} for x in (cv3, lo3))


def evaluate_all(
    report, oof, cnn_cv, cnn_lo, a, cv_splits, loso, clin_cv, clin_lo, evaluate_variant
):
    """Evaluate the extra variants from their OOF arrays (as saved in the .oof.npz) and the
    scratch CNN on the same repeats; adds the variants to report["variants"] and returns
    (scratch_same_repeats, comparisons)."""
    t = a["t_score"]
    R = oof["ssl_ft_cv"].shape[0]
    sc = {
        "ssl_linear_probe": (oof["ssl_probe_cv"], oof["ssl_probe_lo"]),
        "cnn_ssl_cls": _scores(oof["ssl_ft_cv"], oof["ssl_ft_lo"], "cls"),
        "cnn_ssl_reg": _scores(oof["ssl_ft_cv"], oof["ssl_ft_lo"], "reg"),
        "cnn_ordinal": _scores(oof["ordinal_cv"], oof["ordinal_lo"], "ordinal"),
        "cnn_cls": _scores(cnn_cv[:R], cnn_lo, "cls"),
        "cnn_reg": _scores(cnn_cv[:R], cnn_lo, "reg"),
    }
    args = (clin_cv, clin_lo, a, cv_splits, loso)
    for v in ("ssl_linear_probe", "cnn_ssl_cls", "cnn_ssl_reg", "cnn_ordinal"):
        report["variants"][v] = evaluate_variant(v, *sc[v], *args)
    # the existing scratch CNN re-scored on the same repeats (not a new variant)
    same = {
        v: evaluate_variant(f"{v} (first {R} repeat(s))", *sc[v], *args)
        for v in ("cnn_cls", "cnn_reg")
    }
    # paired image-alone AUC differences (same patients, same bootstrap samples)

    def _pick(s, k):
        return s[k] if isinstance(s, dict) else s

    comparisons = []
    for va, vb in (
        ("cnn_ssl_cls", "cnn_cls"),
        ("cnn_ssl_reg", "cnn_reg"),
        ("cnn_ordinal", "cnn_reg"),
        ("cnn_ordinal", "cnn_cls"),
    ):
        c = {"a": va, "b": vb}
        for k, thr in tc.TARGETS.items():
            y = t <= thr
            c[k] = {
                sch: ek.paired_diff(y, _pick(sc[va][i], k), _pick(sc[vb][i], k))
                for i, sch in enumerate(("cv", "loso"))
            }
        comparisons.append(c)
    return same, comparisons


def run(
    report: dict,
    crops: np.ndarray,
    owner: np.ndarray,
    a: dict,
    cv_splits: list,
    loso: list,
    clin_cv: dict,
    clin_lo: dict,
    cnn_cv: np.ndarray,
    cnn_lo: np.ndarray,
    evaluate_variant,
    patient_mean,
    repeats: int = 1,
    ssl_steps: int = ssl_pretrain.STEPS,
    ft_epochs: int = FT_EPOCHS,
    ord_epochs: int = knee_cnn.EPOCHS,
    log=print,
) -> dict:
    """Adds the variants to report["variants"] and details to report["extra"]; returns the
    OOF arrays (for the .oof.npz)."""
    t, src, N = a["t_score"], a["source"], len(a["t_score"])
    sources = sorted(set(src))
    R = repeats
    T0 = time.time()
    times: dict = {}
    # ------------------------------------------------------------ unlabelled data
    t1 = time.time()
    imgs, pub = ssl_pretrain.public_radiographs()
    W, wnames = ssl_pretrain.public_windows(imgs)
    pub["windows_per_image"] = {n: int((wnames == n).sum()) for n in sorted(set(wnames))}
    pub["windows_total"] = len(W)
    times["public_read_s"] = round(time.time() - t1, 1)
    log(f"public radiographs: {pub['distinct_radiographs']} distinct, {len(W)} windows")

    # ------------------------------------------------------------ pretraining jobs
    jobs = [("cv_all_patients", np.arange(N))] + [
        (f"loso_without_{s}", tr) for s, (tr, _) in zip(sources, loso, strict=True)
    ]
    states, pre = {}, {}
    for j, (name, pats) in enumerate(jobs):
        kp = np.isin(owner, pats)
        pool = np.concatenate([crops[kp], W])
        st, info = ssl_pretrain.pretrain(pool, seed=SEED_SSL + j, steps=ssl_steps, log=log)
        info["knee_crops"] = int(kp.sum())
        info["knee_crops_by_source"] = {
            str(s): int((kp & (src[owner] == s)).sum()) for s in sources
        }
        info["public_windows"] = len(W)
        states[name], pre[name] = st, info
        log(f"ssl pretrain {name}: {info} ({time.time() - T0:.0f}s)")
    times["pretrain_s"] = round(sum(p["seconds"] for p in pre.values()), 1)

    # ------------------------------------------------------------ linear probe
    t1 = time.time()
    E = {k: patient_mean(ssl_pretrain.embed_crops(v, crops), owner, N) for k, v in states.items()}
    probe_cv = np.zeros((R, N))
    for r in range(R):
        probe_cv[r] = _oof_ridge_per_fold(
            [E["cv_all_patients"]] * len(cv_splits[r]), t, cv_splits[r]
        )[0]
    probe_lo = _oof_ridge_per_fold([E[f"loso_without_{s}"] for s in sources], t, loso)
    times["linear_probe_s"] = round(time.time() - t1, 1)

    # ------------------------------------------------------------ fine-tune + ordinal
    ft_cv, ft_lo = np.zeros((R, N, 3)), np.zeros((1, N, 3))
    ord_cv, ord_lo = np.zeros((R, N, 2)), np.zeros((1, N, 2))
    t_ft = t_ord = 0.0
    folds = [("cv", r, fi, tr, te) for r in range(R) for fi, (tr, te) in enumerate(cv_splits[r])]
    folds += [("loso", 0, fi, tr, te) for fi, (tr, te) in enumerate(loso)]
    for kind, r, fi, tr, te in folds:
        # same seeds as the scratch CNNs of image_research (head init, patch stream)
        seed = 100 * r + fi if kind == "cv" else 900 + fi
        init = states["cv_all_patients"] if kind == "cv" else states[f"loso_without_{sources[fi]}"]
        ktr, kte = np.isin(owner, tr), np.isin(owner, te)
        t1 = time.time()
        net, norm = knee_cnn.train(
            crops[ktr], t[owner[ktr]], seed=seed, epochs=ft_epochs, init_features=init
        )
        p = patient_mean(knee_cnn.predict(net, crops[kte], norm), owner[kte], N)[te]
        (ft_cv[r] if kind == "cv" else ft_lo[0])[te] = p
        t2 = time.time()
        onet = knee_ordinal.train(crops[ktr], t[owner[ktr]], seed=seed, epochs=ord_epochs)
        q = patient_mean(knee_ordinal.predict(onet, crops[kte]), owner[kte], N)[te]
        (ord_cv[r] if kind == "cv" else ord_lo[0])[te] = q
        t_ft += t2 - t1
        t_ord += time.time() - t2
        log(
            f"extra {kind} repeat {r} fold {fi}: ssl fine-tune {t2 - t1:.0f}s, "
            f"ordinal {time.time() - t2:.0f}s"
        )
    times["ssl_finetune_s"] = round(t_ft, 1)
    times["ordinal_s"] = round(t_ord, 1)

    # ------------------------------------------------------------ evaluation
    oof = {
        "ssl_probe_cv": probe_cv,
        "ssl_probe_lo": probe_lo,
        "ssl_ft_cv": ft_cv,
        "ssl_ft_lo": ft_lo,
        "ordinal_cv": ord_cv,
        "ordinal_lo": ord_lo,
    }
    same, comparisons = evaluate_all(
        report,
        oof,
        cnn_cv[:R],
        cnn_lo,
        a,
        cv_splits,
        loso,
        clin_cv,
        clin_lo,
        evaluate_variant,
    )
    # monotone cumulative probabilities (by construction): P(T<=-2.5) <= P(T<=-1)
    cum = np.concatenate([ord_cv.reshape(-1, 2), ord_lo.reshape(-1, 2)])
    mono = float(np.mean(cum[:, 1] <= cum[:, 0]))
    times["total_s"] = round(time.time() - T0, 1)
    report["extra"] = {
        "cv_repeats": R,
        "cv_scheme": f"first {R} repeat(s) of the same stratified 5-fold splits "
        f"(seeds 0..{R - 1}); LOSO pooled; same folds and fine-tuning seeds as cnn_cls / cnn_reg",
        "ssl": {
            "method": "SimCLR-style contrastive pretraining (NT-Xent, temperature "
            f"{ssl_pretrain.TAU}) of the KneeNet encoder; two independent knee_cnn.augment views "
            f"of {ssl_pretrain.VIEW} px per item, batch {ssl_pretrain.BATCH} items, "
            f"{ssl_steps} steps, "
            f"AdamW lr {ssl_pretrain.LR} one-cycle; projection head 64-128-{ssl_pretrain.PROJ} "
            "discarded after pretraining",
            "public_radiographs": pub,
            "target_mm_per_px": ssl_pretrain.TARGET_MM_PER_PX,
            "assumed_mm_per_px_when_unrecorded": ssl_pretrain.ASSUMED_MM_PER_PX,
            "pretraining": pre,
            "leakage": "no labels are used in pretraining. LOSO: one pretraining per held-out "
            "source, without that source's images. CV: one pretraining on all patients' knee "
            "crops, so CV test-fold pixels (not labels) were seen in pretraining (transductive).",
            "fine_tune_epochs": ft_epochs,
            "scratch_epochs": knee_cnn.EPOCHS,
            "linear_probe": "frozen encoder, global-average-pooled 64-d features, mean over "
            "knees, standardised, ridge (alpha 10) T-score regression per fold, score = -T",
            "t_score_regression_finetuned": {
                "cv": tc.regression_summary(t, ft_cv[..., 0]),
                "loso": tc.regression_summary(t, ft_lo[0, :, 0]),
            },
        },
        "ordinal": {
            "method": "KneeNet with a 1-channel head: one shared score s (spatial mean) and "
            "ordered thresholds theta1 < theta2 (theta2 = theta1 + softplus(delta)); "
            "P(T<=-1) = sigmoid(s - theta1), P(T<=-2.5) = sigmoid(s - theta2); CORAL loss "
            "(class-balanced binary cross-entropy of both cumulative probabilities)",
            "epochs": ord_epochs,
            "bands": "normal T > -1, osteopenia -2.5 < T <= -1, osteoporosis T <= -2.5",
            "frac_predictions_monotone": round(mono, 4),
        },
        "scratch_same_repeats": same,
        "comparisons": comparisons,
        "comparisons_note": "paired stratified bootstrap of image-alone AUC(a) - AUC(b) on the "
        "same repeats and LOSO pool (cnn_cls / cnn_reg: the scratch CNN)",
        "timings_s": times,
    }
    log(f"extra variants done in {times['total_s']}s")
    return oof
