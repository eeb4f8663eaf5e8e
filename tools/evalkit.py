"""Shared evaluation helpers: patient-level repeated stratified CV, LOSO, AUC with
bootstrap CIs (fixed seeds), paired bootstrap differences, calibration summaries.

Conventions
- Repeated CV: R repeats of stratified K-fold (stratified on the 3-level WHO band so both
  targets are balanced), seeds 0..R-1. Each repeat gives one out-of-fold (OOF) prediction
  per patient; the point estimate is the mean over repeats of the per-repeat AUC.
- LOSO: each source held out in turn; the held-out predictions are pooled (147 patients)
  and the AUC is computed on the pool. Per-source AUCs are reported beside it.
- Bootstrap: stratified by class (positives and negatives resampled separately),
  B=2000, seed 12345. For repeated CV each bootstrap sample is scored on every repeat
  and averaged, so the CI reflects patient sampling, not fold noise.
- Paired difference: model A minus model B on the same bootstrap samples.
"""

from __future__ import annotations

import numpy as np
from scipy.stats import rankdata
from sklearn.model_selection import StratifiedKFold

from edgeosteo.metrics import auc as edgeosteo_auc
from edgeosteo.models import GOVERNANCE_SCHEMES

BOOT_B = 2000
BOOT_SEED = 12345
CV_REPEATS = 20
CV_FOLDS = 5


def who_band(t: np.ndarray) -> np.ndarray:
    return np.where(t <= -2.5, 2, np.where(t <= -1.0, 1, 0))


def cv_splits(t_score: np.ndarray, repeats: int = CV_REPEATS, folds: int = CV_FOLDS):
    """List over repeats of list of (train_idx, test_idx)."""
    strata = who_band(t_score)
    out = []
    for r in range(repeats):
        skf = StratifiedKFold(n_splits=folds, shuffle=True, random_state=r)
        out.append(list(skf.split(np.zeros(len(strata)), strata)))
    return out


def loso_splits(source: np.ndarray):
    return [(np.where(source != s)[0], np.where(source == s)[0]) for s in sorted(set(source))]


def auc(y: np.ndarray, s: np.ndarray) -> float:
    return edgeosteo_auc(s, y)


def _auc_rows(y: np.ndarray, S: np.ndarray) -> np.ndarray:
    """AUC of each row of S (rows = samples) against y rows (same shape)."""
    r = rankdata(S, axis=1)
    npos = y.sum(1)
    nneg = y.shape[1] - npos
    return (np.where(y, r, 0).sum(1) - npos * (npos + 1) / 2) / (npos * nneg)


def boot_indices(y: np.ndarray, B: int = BOOT_B, seed: int = BOOT_SEED) -> np.ndarray:
    rng = np.random.default_rng(seed)
    y = np.asarray(y).astype(bool)
    pos, neg = np.where(y)[0], np.where(~y)[0]
    idx = np.empty((B, len(y)), int)
    idx[:, : len(pos)] = rng.choice(pos, size=(B, len(pos)), replace=True)
    idx[:, len(pos) :] = rng.choice(neg, size=(B, len(neg)), replace=True)
    return idx


def auc_boot(y: np.ndarray, scores: np.ndarray, idx: np.ndarray | None = None) -> np.ndarray:
    """scores: [N] or [R, N] (repeats). Returns the bootstrap distribution [B] of the
    mean-over-repeats AUC."""
    y = np.asarray(y).astype(bool)
    S = np.atleast_2d(scores)
    if idx is None:
        idx = boot_indices(y)
    Y = y[idx]
    acc = np.zeros(idx.shape[0])
    for s in S:
        acc += _auc_rows(Y, s[idx])
    return acc / len(S)


def auc_summary(y: np.ndarray, scores: np.ndarray, idx: np.ndarray | None = None) -> dict:
    y = np.asarray(y).astype(bool)
    S = np.atleast_2d(scores)
    if y.all() or (~y).all():
        return {
            "auc": None,
            "ci95": None,
            "n": len(y),
            "n_pos": int(y.sum()),
            "note": "one class only; AUC undefined",
        }
    point = float(np.mean([auc(y, s) for s in S]))
    bs = auc_boot(y, S, idx)
    out = {
        "auc": round(point, 4),
        "ci95": [round(float(np.percentile(bs, 2.5)), 4), round(float(np.percentile(bs, 97.5)), 4)],
        "n": len(y),
        "n_pos": int(y.sum()),
    }
    if min(int(y.sum()), int((~y).sum())) < 5:
        out["note"] = "fewer than 5 in one class; AUC unstable, do not interpret"
    if len(S) > 1:
        per = [auc(y, s) for s in S]
        out["repeat_range"] = [round(float(min(per)), 4), round(float(max(per)), 4)]
    return out


def paired_diff(y: np.ndarray, a: np.ndarray, b: np.ndarray) -> dict:
    """AUC(a) - AUC(b) with paired stratified bootstrap CI (a, b: [N] or [R, N])."""
    y = np.asarray(y).astype(bool)
    A, Bm = np.atleast_2d(a), np.atleast_2d(b)
    idx = boot_indices(y)
    d = auc_boot(y, A, idx) - auc_boot(y, Bm, idx)
    point = float(np.mean([auc(y, s) for s in A]) - np.mean([auc(y, s) for s in Bm]))
    return {
        "auc_diff": round(point, 4),
        "ci95": [round(float(np.percentile(d, 2.5)), 4), round(float(np.percentile(d, 97.5)), 4)],
        "p_boot_le_0": round(float((d <= 0).mean()), 4),
    }


def rule_record(entry: dict) -> dict:
    """The governance record of one target from a research entry (``image_alone`` and
    ``added_value_over_clinical`` per scheme), in the form `governance_rule_holds` and the
    manifest use: per scheme the paired difference and the image score's own AUC."""
    return {
        scheme: {
            **entry["added_value_over_clinical"][scheme],
            "image_alone_auc": entry["image_alone"][scheme]["auc"],
        }
        for scheme in GOVERNANCE_SCHEMES
    }


def calib_summary(y: np.ndarray, p: np.ndarray) -> dict:
    """Brier score, calibration-in-the-large, calibration slope (logistic recalibration)."""
    from sklearn.linear_model import LogisticRegression

    y = np.asarray(y).astype(int)
    P = np.atleast_2d(p)
    briers, slopes, intercepts, mean_p = [], [], [], []
    for pr in P:
        pr = np.clip(pr, 1e-6, 1 - 1e-6)
        briers.append(float(np.mean((pr - y) ** 2)))
        lg = np.log(pr / (1 - pr)).reshape(-1, 1)
        m = LogisticRegression(C=1e6, max_iter=1000).fit(lg, y)
        slopes.append(float(m.coef_[0, 0]))
        intercepts.append(float(m.intercept_[0]))
        mean_p.append(float(pr.mean()))
    return {
        "brier": round(float(np.mean(briers)), 4),
        "calibration_slope": round(float(np.mean(slopes)), 3),
        "mean_predicted": round(float(np.mean(mean_p)), 4),
        "observed_rate": round(float(y.mean()), 4),
    }


def partial_corr(x: np.ndarray, y: np.ndarray, covars: np.ndarray) -> float:
    """Pearson correlation of x and y after linear adjustment for covars [N, k]."""
    C = np.column_stack([np.ones(len(x)), covars])
    rx = x - C @ np.linalg.lstsq(C, x, rcond=None)[0]
    ry = y - C @ np.linalg.lstsq(C, y, rcond=None)[0]
    return float(np.corrcoef(rx, ry)[0, 1])


def partial_corr_ci(
    x: np.ndarray, y: np.ndarray, covars: np.ndarray, B: int = BOOT_B, seed: int = BOOT_SEED
) -> dict:
    rng = np.random.default_rng(seed)
    n = len(x)
    bs = []
    for _ in range(B):
        i = rng.integers(0, n, n)
        bs.append(partial_corr(x[i], y[i], covars[i]))
    return {
        "r": round(partial_corr(x, y, covars), 4),
        "ci95": [
            round(float(np.nanpercentile(bs, 2.5)), 4),
            round(float(np.nanpercentile(bs, 97.5)), 4),
        ],
    }


def age_band(age: np.ndarray) -> np.ndarray:
    return np.where(age < 50, "<50", np.where(age < 65, "50-64", ">=65"))
