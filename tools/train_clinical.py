"""Clinical bone-density model: logistic regressions for T<=-1 and T<=-2.5 plus a ridge
T-score regression, on age, sex, weight and BMI.

Usage: python tools/train_clinical.py DATA_DIR [--out models/]
       [--report tools/reports/clinical.json]

Evaluation: patient-level repeated stratified 5-fold CV (20 repeats, seeds 0..19) and
leave-one-source-out (LOSO); Platt calibration fitted out-of-fold inside every training
fold (nested 5-fold); bootstrap 95% CIs (B=2000, seed 12345); baselines age alone and
OSTA on the same patients; subgroups by sex and age band.
Export: the model fitted on all patients as a tiny ONNX graph (onnx.helper, opset 17).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from pathlib import Path

import numpy as np
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.model_selection import StratifiedKFold

sys.path.insert(0, str(Path(__file__).resolve().parent))
import evalkit as ek
import knee_data

FEATURES = ("age", "female", "weight_kg", "bmi")
FEATURE_DOC = ["age (years)", "female (1 = female, 0 = male)", "weight_kg (kg)", "bmi (kg/m^2)"]
TARGETS = {"p_t_le_-1": -1.0, "p_t_le_-2.5": -2.5}
LR_C = 1.0
RIDGE_ALPHA = 1.0
EXTRA_CANDIDATES = (
    "height_m",
    "smoker",
    "alcohol",
    "diabetic",
    "hypothyroidism",
    "estrogen_use",
    "prior_fracture",
    "family_history_osteoporosis",
)


# ---------------------------------------------------------------- model pieces
def standardizer(X: np.ndarray):
    mu = X.mean(0)
    sd = X.std(0)
    sd[sd < 1e-9] = 1.0
    return mu, sd


def fit_logit(X, y, C=LR_C):
    mu, sd = standardizer(X)
    m = LogisticRegression(C=C, max_iter=2000).fit((X - mu) / sd, y)
    return {"mean": mu, "std": sd, "coef": m.coef_[0].copy(), "intercept": float(m.intercept_[0])}


def logit_of(model, X):
    return ((X - model["mean"]) / model["std"]) @ model["coef"] + model["intercept"]


def fit_platt(z, y):
    m = LogisticRegression(C=1e4, max_iter=2000).fit(z.reshape(-1, 1), y)
    return float(m.coef_[0, 0]), float(m.intercept_[0])


def sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


def fit_calibrated(X, y, seed=0, C=LR_C):
    """LR on all rows + Platt (a, c) fitted on inner 5-fold OOF logits."""
    model = fit_logit(X, y, C)
    z = np.zeros(len(y))
    n_min = min(int(y.sum()), int((1 - y).sum()))
    k = max(2, min(5, n_min))
    for tr, te in StratifiedKFold(k, shuffle=True, random_state=1000 + seed).split(X, y):
        z[te] = logit_of(fit_logit(X[tr], y[tr], C), X[te])
    a, c = fit_platt(z, y)
    model["platt"] = (a, c)
    return model


def prob_of(model, X, calibrated=True):
    z = logit_of(model, X)
    if calibrated:
        a, c = model["platt"]
        z = a * z + c
    return sigmoid(z)


def fit_ridge(X, t, alpha=RIDGE_ALPHA):
    mu, sd = standardizer(X)
    m = Ridge(alpha=alpha).fit((X - mu) / sd, t)
    return {"mean": mu, "std": sd, "coef": m.coef_.copy(), "intercept": float(m.intercept_)}


def ridge_of(model, X):
    return ((X - model["mean"]) / model["std"]) @ model["coef"] + model["intercept"]


# ---------------------------------------------------------------- data helpers
def design(a: dict, features=FEATURES) -> np.ndarray:
    X = np.column_stack([a[f] for f in features]).astype(float)
    if np.isnan(X).any():
        # median-impute (only relevant for optional extras / hospital data)
        med = np.nanmedian(X, 0)
        X = np.where(np.isnan(X), med, X)
    return X


def osta(a):
    return np.trunc(0.2 * (a["weight_kg"] - a["age"]))


def oof_predictions(X, t, splits_per_repeat, C=LR_C, alpha=RIDGE_ALPHA):
    """OOF calibrated probabilities per target and ridge T-score: arrays [R, N]."""
    R, N = len(splits_per_repeat), len(t)
    out = {k: np.full((R, N), np.nan) for k in TARGETS}
    out.update({k + "_raw": np.full((R, N), np.nan) for k in TARGETS})
    out["t_score"] = np.full((R, N), np.nan)
    for r, splits in enumerate(splits_per_repeat):
        for tr, te in splits:
            for k, thr in TARGETS.items():
                y = (t[tr] <= thr).astype(int)
                m = fit_calibrated(X[tr], y, seed=r, C=C)
                out[k][r, te] = prob_of(m, X[te])
                out[k + "_raw"][r, te] = prob_of(m, X[te], calibrated=False)
            out["t_score"][r, te] = ridge_of(fit_ridge(X[tr], t[tr], alpha), X[te])
    return out


def clinical_oof(a, cv_splits, loso_splits, features=FEATURES):
    """Used by the image research to get clinical OOF predictions on identical folds."""
    X = design(a, features)
    t = a["t_score"]
    return oof_predictions(X, t, cv_splits), oof_predictions(X, t, [loso_splits])


def op_point(y, p, thr=0.5):
    y = y.astype(bool)
    P = np.atleast_2d(p)
    res = []
    for pr in P:
        pred = pr >= thr
        tp, fn = (pred & y).sum(), (~pred & y).sum()
        tn, fp = (~pred & ~y).sum(), (pred & ~y).sum()
        res.append(
            [tp / max(tp + fn, 1), tn / max(tn + fp, 1), tp / max(tp + fp, 1), tn / max(tn + fn, 1)]
        )
    m = np.mean(res, 0)
    return {
        "threshold": thr,
        "sensitivity": round(float(m[0]), 4),
        "specificity": round(float(m[1]), 4),
        "ppv": round(float(m[2]), 4),
        "npv": round(float(m[3]), 4),
    }


def regression_summary(t, pred):
    P = np.atleast_2d(pred)
    res = P - t
    rmse = float(np.sqrt(np.mean(res**2)))
    mae = float(np.mean(np.abs(res)))
    r = float(np.mean([np.corrcoef(p, t)[0, 1] for p in P]))
    return {
        "rmse": round(rmse, 4),
        "mae": round(mae, 4),
        "pearson_r": round(r, 4),
        "residual_sd": round(float(np.std(res)), 4),
    }


# ---------------------------------------------------------------- evaluation
def evaluate(a) -> tuple[dict, dict]:
    t = a["t_score"]
    X = design(a)
    cvs = ek.cv_splits(t)
    loso = ek.loso_splits(a["source"])
    cv = oof_predictions(X, t, cvs)
    lo = oof_predictions(X, t, [loso])
    age = a["age"]
    neg_osta = -osta(a)
    bands = ek.age_band(age)
    sex = np.where(a["female"] == 1, "female", "male")
    metrics: dict = {
        "n": len(t),
        "features": list(FEATURES),
        "cv_scheme": f"{ek.CV_REPEATS}x repeated stratified {ek.CV_FOLDS}-fold "
        f"(seeds 0..{ek.CV_REPEATS - 1}), patient level",
        "loso_scheme": "leave-one-source-out, held-out predictions pooled",
        "bootstrap": f"stratified, B={ek.BOOT_B}, seed {ek.BOOT_SEED}",
    }
    for k, thr in TARGETS.items():
        y = t <= thr
        entry = {
            "prevalence": round(float(y.mean()), 4),
            "n_pos": int(y.sum()),
            "cv": ek.auc_summary(y, cv[k]),
            "cv_uncalibrated_auc": ek.auc_summary(y, cv[k + "_raw"])["auc"],
            "loso": ek.auc_summary(y, lo[k]),
            "loso_per_source": {
                s: ek.auc_summary(y[a["source"] == s], lo[k][:, a["source"] == s])
                for s in sorted(set(a["source"]))
            },
            "baselines": {
                "age": ek.auc_summary(y, age),
                "osta": ek.auc_summary(y, neg_osta),
            },
            "diff_vs_age_cv": ek.paired_diff(y, cv[k], age[None].repeat(ek.CV_REPEATS, 0)),
            "diff_vs_osta_cv": ek.paired_diff(y, cv[k], neg_osta[None].repeat(ek.CV_REPEATS, 0)),
            "diff_vs_age_loso": ek.paired_diff(y, lo[k], age),
            "calibration_cv": ek.calib_summary(y, cv[k]),
            "calibration_cv_uncalibrated": ek.calib_summary(y, cv[k + "_raw"]),
            "calibration_loso": ek.calib_summary(y, lo[k]),
            "operating_point_cv": op_point(y, cv[k], 0.5),
            "subgroups_cv": {},
        }
        for name, mask in [
            ("female", sex == "female"),
            ("male", sex == "male"),
            ("age<50", bands == "<50"),
            ("age50-64", bands == "50-64"),
            ("age>=65", bands == ">=65"),
        ]:
            entry["subgroups_cv"][name] = {
                "model": ek.auc_summary(y[mask], cv[k][:, mask]),
                "age": ek.auc_summary(y[mask], age[mask]),
                "osta": ek.auc_summary(y[mask], neg_osta[mask]),
            }
        metrics[k] = entry
    metrics["t_score"] = {
        "cv": regression_summary(t, cv["t_score"]),
        "loso": regression_summary(t, lo["t_score"][0]),
    }
    # Do other available features add anything? (paired CV AUC difference vs base model)
    extras = {}
    for f in EXTRA_CANDIDATES:
        if np.isnan(a[f]).all():
            continue
        Xe = design(a, (*FEATURES, f))
        cve = oof_predictions(Xe, t, cvs[:5])
        extras[f] = {k: ek.paired_diff(t <= thr, cve[k], cv[k][:5]) for k, thr in TARGETS.items()}
    metrics["added_feature_screen_cv5repeats"] = extras
    # age-only logistic model as a fitted baseline (same folds)
    cva = oof_predictions(design(a, ("age",)), t, cvs)
    loa = oof_predictions(design(a, ("age",)), t, [loso])
    for k, thr in TARGETS.items():
        metrics[k]["baselines"]["age_logistic_cv"] = ek.auc_summary(t <= thr, cva[k])
        metrics[k]["baselines"]["age_logistic_loso"] = ek.auc_summary(t <= thr, loa[k])
        metrics[k]["diff_vs_age_logistic_loso"] = ek.paired_diff(t <= thr, lo[k], loa[k])
    # source-only baseline (one-hot LR on the acquisition source) on the same folds
    S = np.column_stack([(a["source"] == s).astype(float) for s in sorted(set(a["source"]))])
    for k, thr in TARGETS.items():
        y = (t <= thr).astype(int)
        sc = np.zeros((len(cvs), len(t)))
        for r, splits in enumerate(cvs):
            for tr, te in splits:
                sc[r, te] = LogisticRegression(C=1.0).fit(S[tr], y[tr]).decision_function(S[te])
        metrics[k]["baselines"]["source_only_cv"] = ek.auc_summary(y, sc)
        metrics[k]["baselines"]["source_only_loso"] = {
            "auc": 0.5,
            "note": "a held-out source is unseen, so a source-only model has no information "
            "(constant score)",
        }
    oof = {"cv": cv, "loso": lo}
    return metrics, oof


# ---------------------------------------------------------------- final fit + ONNX
def fit_final(a) -> dict:
    t = a["t_score"]
    X = design(a)
    cvs = ek.cv_splits(t)
    final = {}
    for k, thr in TARGETS.items():
        y = (t <= thr).astype(int)
        m = fit_logit(X, y)
        # Platt on pooled OOF logits of all CV repeats (each OOF logit from a model not seeing it)
        zs, ys = [], []
        for splits in cvs:
            for tr, te in splits:
                zs.append(logit_of(fit_logit(X[tr], y[tr]), X[te]))
                ys.append(y[te])
        m["platt"] = fit_platt(np.concatenate(zs), np.concatenate(ys))
        final[k] = m
    rm = fit_ridge(X, t)
    # residual SD from OOF residuals (honest), pooled over repeats
    res = []
    for splits in cvs:
        for tr, te in splits:
            res.append(ridge_of(fit_ridge(X[tr], t[tr]), X[te]) - t[te])
    rm["residual_sd"] = float(np.std(np.concatenate(res)))
    final["t_score"] = rm
    return final


def build_onnx(final: dict, path: Path) -> None:
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    # All three heads share the same standardisation (computed on the same X).
    mu = final["p_t_le_-1"]["mean"]
    sd = final["p_t_le_-1"]["std"]
    for k in ("p_t_le_-2.5", "t_score"):
        assert np.allclose(final[k]["mean"], mu) and np.allclose(final[k]["std"], sd)
    W = np.zeros((len(FEATURES), 3), np.float32)
    b = np.zeros(3, np.float32)
    for j, k in enumerate(TARGETS):
        a_, c_ = final[k]["platt"]
        W[:, j] = a_ * final[k]["coef"]
        b[j] = a_ * final[k]["intercept"] + c_
    W[:, 2] = final["t_score"]["coef"]
    b[2] = final["t_score"]["intercept"]
    inits = [
        numpy_helper.from_array(mu.astype(np.float32), "feat_mean"),
        numpy_helper.from_array(sd.astype(np.float32), "feat_std"),
        numpy_helper.from_array(W, "W"),
        numpy_helper.from_array(b, "b"),
        numpy_helper.from_array(np.array(0, np.int64), "i0"),
        numpy_helper.from_array(np.array(1, np.int64), "i1"),
        numpy_helper.from_array(np.array(2, np.int64), "i2"),
        numpy_helper.from_array(np.array(0.0, np.float32), "zero"),
        numpy_helper.from_array(np.array(final["t_score"]["residual_sd"], np.float32), "resid_sd"),
    ]
    nodes = [
        helper.make_node("Sub", ["clinical", "feat_mean"], ["xc"]),
        helper.make_node("Div", ["xc", "feat_std"], ["xs"]),
        helper.make_node("MatMul", ["xs", "W"], ["xw"]),
        helper.make_node("Add", ["xw", "b"], ["lin"]),
        helper.make_node("Gather", ["lin", "i0"], ["z1"], axis=1),
        helper.make_node("Gather", ["lin", "i1"], ["z25"], axis=1),
        helper.make_node("Gather", ["lin", "i2"], ["t_score"], axis=1),
        helper.make_node("Sigmoid", ["z1"], ["p_t_le_-1"]),
        helper.make_node("Sigmoid", ["z25"], ["p_t_le_-2.5"]),
        helper.make_node("Mul", ["t_score", "zero"], ["t0"]),
        helper.make_node("Add", ["t0", "resid_sd"], ["t_score_sd"]),
    ]
    g = helper.make_graph(
        nodes,
        "knee_clinical",
        [helper.make_tensor_value_info("clinical", TensorProto.FLOAT, ["N", len(FEATURES)])],
        [
            helper.make_tensor_value_info(n, TensorProto.FLOAT, ["N"])
            for n in ("p_t_le_-1", "p_t_le_-2.5", "t_score", "t_score_sd")
        ],
        inits,
    )
    m = helper.make_model(
        g, opset_imports=[helper.make_opsetid("", 17)], producer_name="edgeosteo-tools"
    )
    m.ir_version = 8
    onnx.checker.check_model(m, full_check=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(m, str(path))


def numpy_reference(final, X):
    out = {k: prob_of(final[k], X) for k in TARGETS}
    out["t_score"] = ridge_of(final["t_score"], X)
    out["t_score_sd"] = np.full(len(X), final["t_score"]["residual_sd"])
    return out


def run_ort(path, X):
    import onnxruntime as ort

    s = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    names = [o.name for o in s.get_outputs()]
    return dict(zip(names, s.run(None, {"clinical": X.astype(np.float32)}), strict=True))


def run_ov(path, X, precision="f32"):
    """OpenVINO CPU. NOTE: on CPUs with BF16 support OpenVINO's default inference precision
    is bf16; the runtime must pass INFERENCE_PRECISION_HINT=f32 for parity with onnxruntime."""
    import openvino as ov

    cm = ov.Core().compile_model(str(path), "CPU", {"INFERENCE_PRECISION_HINT": precision})
    res = cm(X.astype(np.float32))
    return {n: np.asarray(res[o]) for o in cm.outputs for n in o.get_names()}


REF_INPUTS = [
    {"age": 30, "female": 1, "weight_kg": 65, "bmi": 25.0},
    {"age": 45, "female": 0, "weight_kg": 80, "bmi": 27.0},
    {"age": 58, "female": 1, "weight_kg": 60, "bmi": 24.0},
    {"age": 70, "female": 1, "weight_kg": 48, "bmi": 20.5},
    {"age": 75, "female": 0, "weight_kg": 62, "bmi": 22.0},
]


def sha256(p: Path) -> str:
    return hashlib.sha256(p.read_bytes()).hexdigest()


def export(final: dict, metrics: dict, out_dir: Path) -> dict:
    md = out_dir / "knee-clinical"
    onnx_path = md / "knee_clinical.onnx"
    build_onnx(final, onnx_path)
    Xref = np.array([[r[f] for f in FEATURES] for r in REF_INPUTS], np.float32)
    ref = numpy_reference(final, Xref.astype(float))
    o1, o2 = run_ort(onnx_path, Xref), run_ov(onnx_path, Xref)
    # dynamic batch: also a batch of 1
    o3 = run_ort(onnx_path, Xref[:1])
    o4 = run_ov(onnx_path, Xref, precision="bf16")
    parity = {
        k: {
            "ort_vs_numpy_max_abs": float(np.max(np.abs(o1[k] - ref[k]))),
            "ov_vs_ort_max_abs": float(np.max(np.abs(o2[k] - o1[k]))),
            "ov_bf16_default_vs_ort_max_abs": float(np.max(np.abs(o4[k] - o1[k]))),
        }
        for k in o1
    }
    for k in o1:
        assert parity[k]["ov_vs_ort_max_abs"] < 1e-5, (k, parity[k])
        assert parity[k]["ort_vs_numpy_max_abs"] < 1e-4, (k, parity[k])
        assert abs(float(o3[k][0]) - float(o1[k][0])) < 1e-6
    refs = [
        {
            "input": {"clinical": [float(v) for v in Xref[i]], **REF_INPUTS[i]},
            "expected": {k: round(float(o1[k][i]), 6) for k in o1},
        }
        for i in range(len(Xref))
    ]
    return {"onnx_path": onnx_path, "parity": parity, "reference_outputs": refs}


def population(a) -> dict:
    t, age = a["t_score"], a["age"]
    band = ek.who_band(t)
    out = {
        "n": len(t),
        "female": int(a["female"].sum()),
        "male": int((1 - a["female"]).sum()),
        "age_min": float(age.min()),
        "age_max": float(age.max()),
        "age_mean": round(float(age.mean()), 1),
        "age_normals_min": float(age[band == 0].min()),
        "age_normals_max": float(age[band == 0].max()),
        "weight_kg_mean": round(float(a["weight_kg"].mean()), 1),
        "bmi_mean": round(float(np.nanmean(a["bmi"])), 1),
        "t_score_mean": round(float(t.mean()), 2),
        "t_score_min": float(t.min()),
        "t_score_max": float(t.max()),
        "who_counts": {
            "normal": int((band == 0).sum()),
            "osteopenia": int((band == 1).sum()),
            "osteoporosis": int((band == 2).sum()),
        },
        "age_band_counts": {
            b: int((ek.age_band(age) == b).sum()) for b in ("<50", "50-64", ">=65")
        },
        "sources": {},
    }
    for s in sorted(set(a["source"])):
        m = a["source"] == s
        out["sources"][s] = {
            "n": int(m.sum()),
            "t_score_mean": round(float(t[m].mean()), 2),
            "age_mean": round(float(age[m].mean()), 1),
            "who_counts": [int((band[m] == i).sum()) for i in range(3)],
        }
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("data_dir")
    ap.add_argument("--out", default="models")
    ap.add_argument(
        "--report", default=str(Path(__file__).resolve().parent / "reports" / "clinical.json")
    )
    args = ap.parse_args(argv)
    t0 = time.time()
    recs = knee_data.load_dataset(args.data_dir)
    a = knee_data.arrays(recs)
    metrics, _ = evaluate(a)
    final = fit_final(a)
    ex = export(final, metrics, Path(args.out))
    report = {
        "model_id": "knee-clinical",
        "data_dir": str(Path(args.data_dir).name),
        "population": population(a),
        "metrics": metrics,
        "final_model": {
            "features": list(FEATURES),
            "feature_doc": FEATURE_DOC,
            "standardisation": {
                "mean": final["p_t_le_-1"]["mean"].round(6).tolist(),
                "std": final["p_t_le_-1"]["std"].round(6).tolist(),
            },
            **{
                k: {
                    "coef_standardised": final[k]["coef"].round(6).tolist(),
                    "intercept": round(final[k]["intercept"], 6),
                    "platt_a": round(final[k]["platt"][0], 6),
                    "platt_c": round(final[k]["platt"][1], 6),
                }
                for k in TARGETS
            },
            "t_score": {
                "coef_standardised": final["t_score"]["coef"].round(6).tolist(),
                "intercept": round(final["t_score"]["intercept"], 6),
                "residual_sd_oof": round(final["t_score"]["residual_sd"], 6),
                "ridge_alpha": RIDGE_ALPHA,
            },
            "lr_C": LR_C,
        },
        "onnx_parity": ex["parity"],
        "reference_outputs": ex["reference_outputs"],
        "runtime_s": round(time.time() - t0, 1),
    }
    rp = Path(args.report)
    rp.parent.mkdir(parents=True, exist_ok=True)
    rp.write_text(json.dumps(report, indent=1))
    print(
        json.dumps(
            {
                k: {
                    "cv": metrics[k]["cv"],
                    "loso": metrics[k]["loso"],
                    "age": metrics[k]["baselines"]["age"]["auc"],
                    "osta": metrics[k]["baselines"]["osta"]["auc"],
                }
                for k in TARGETS
            },
            indent=1,
        )
    )
    print("t_score", metrics["t_score"], "runtime", report["runtime_s"])
    return report


if __name__ == "__main__":
    main()
