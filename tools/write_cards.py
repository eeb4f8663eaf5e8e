# ruff: noqa: E501  (long lines are card/manifest text templates)
"""Write models/<id>/manifest.json and CARD.md from the report JSONs in tools/reports/.

Every number in a card is read from a report written by the training tools.
Usage: python tools/write_cards.py [--out models/] [--reports tools/reports/]
"""

from __future__ import annotations

import argparse
import hashlib
import json
from pathlib import Path

from edgeosteo.models import CLINICAL_BASELINES, clinical_rule_holds

CLINICAL_RULE = (
    "drives the referral only if AUC minus age alone and minus OSTA has a 95% CI above 0 "
    "in CV and LOSO for every target (edgeosteo.models.clinical_rule_holds)"
)
CITATION = (
    "Wani IM, Arora S. Osteoporosis diagnosis in knee X-rays by transfer learning based on "
    "convolution neural network. Multimedia Tools and Applications 82:14193-14217 (2023). "
    "PMC9510281."
)
TARGET_TXT = {
    "p_t_le_-1": "T <= -1 (low bone mass: osteopenia or osteoporosis)",
    "p_t_le_-2.5": "T <= -2.5 (osteoporosis range)",
}


def sha256(p: Path) -> str:
    return hashlib.sha256(p.read_bytes()).hexdigest()


def ci(e) -> str:
    if not e or e.get("auc") is None:
        return "n/a (one class only)"
    s = f"{e['auc']:.3f} (95% CI {e['ci95'][0]:.3f} to {e['ci95'][1]:.3f})"
    if e.get("note", "").startswith("fewer"):
        s += " [fewer than 5 in one class: unstable]"
    return s


def dci(e) -> str:
    return f"{e['auc_diff']:+.3f} (95% CI {e['ci95'][0]:+.3f} to {e['ci95'][1]:+.3f})"


def files_entry(md: Path, role_paths: list[tuple[str, str]]) -> list[dict]:
    return [{"role": r, "path": p, "sha256": sha256(md / p)} for r, p in role_paths]


def population_md(pop: dict) -> str:
    src = "; ".join(
        f"source {s}: n={v['n']}, mean age {v['age_mean']}, mean T {v['t_score_mean']}, "
        f"normal/osteopenia/osteoporosis {v['who_counts'][0]}/{v['who_counts'][1]}/{v['who_counts'][2]}"
        for s, v in pop["sources"].items()
    )
    w = pop["who_counts"]
    return (
        f"{pop['n']} patients ({pop['female']} female, {pop['male']} male), age {pop['age_min']:.0f}-"
        f"{pop['age_max']:.0f} (mean {pop['age_mean']}); age bands <50 / 50-64 / >=65: "
        f"{pop['age_band_counts']['<50']} / {pop['age_band_counts']['50-64']} / {pop['age_band_counts']['>=65']}. "
        f"WHO bands by QUS T-score: normal {w['normal']}, osteopenia {w['osteopenia']}, osteoporosis "
        f"{w['osteoporosis']} (T range {pop['t_score_min']} to {pop['t_score_max']}). "
        f"All normals are aged {pop['age_normals_min']:.0f}-{pop['age_normals_max']:.0f}. {src}."
    )


COMMON_LIMITS_T = """- **Reference standard is QUS (quantitative ultrasound), not DXA.** QUS T-scores are not
  interchangeable with DXA T-scores; WHO thresholds were defined for DXA. Outputs are
  "QUS-like T-score" estimates.
- **Normals are young.** Every patient with T > -1 in the development data is aged {age_normals_min:.0f}-{age_normals_max:.0f}, so
  age alone separates low bone mass from normal very well here; discrimination in an
  older screening population (where the question matters) will be lower than the numbers below.
- **Three acquisition sources** (A/B/C) with different mean T-scores; image features identify the
  source almost perfectly. Leave-one-source-out (LOSO) results are reported beside CV.
- **Small data** ({n} patients, {n_normal} normals, {n_op} osteoporosis): wide confidence intervals;
  subgroup AUCs with fewer than 5 in a class are unstable. Byte-identical duplicates were removed
  upstream but near-duplicates may remain. A separate hold-out set from the same origin is kept
  by the project and has not been used here.
- Recorded ages range from {age_min:.0f} to {age_max:.0f} years (extremes outside a usual screening range were kept as recorded).
- Not validated on DXA-referenced data, on other ethnic groups, on children, on patients with
  metabolic bone disease, metal implants or fractures around the knee."""


def common_limits(pop: dict) -> str:
    return COMMON_LIMITS_T.format(
        n=pop["n"],
        n_normal=pop["who_counts"]["normal"],
        n_op=pop["who_counts"]["osteoporosis"],
        **{k: pop[k] for k in ("age_normals_min", "age_normals_max", "age_min", "age_max")},
    )


def _diff_key(baseline: str, scheme: str) -> str:
    return f"diff_vs_{baseline}_{scheme}"


def clinical_absent(m: dict) -> list[str]:
    """The comparisons the clinical rule needs that the report does not hold."""
    return [
        f"{scheme.upper()} minus {baseline}"
        for baseline in CLINICAL_BASELINES
        for scheme in ("cv", "loso")
        if not all(_diff_key(baseline, scheme) in m[k] for k in TARGET_TXT)
    ]


def clinical_governance(m: dict) -> dict:
    """The clinical model's record for edgeosteo.models.clinical_rule_holds: paired AUC
    differences against age alone and OSTA, per scheme and target. A scheme the report lacks
    (LOSO minus OSTA today) is left out and named, and the rule then fails."""
    record: dict = {"added_value_over_clinical": None}
    for baseline in CLINICAL_BASELINES:
        record[f"added_value_over_{baseline}"] = {
            scheme: {k: m[k][_diff_key(baseline, scheme)] for k in TARGET_TXT}
            for scheme in ("cv", "loso")
            if all(_diff_key(baseline, scheme) in m[k] for k in TARGET_TXT)
        }
    record["used_for_referral"] = clinical_rule_holds(record)
    absent = clinical_absent(m)
    record["rule"] = CLINICAL_RULE + (f"; not recorded: {', '.join(absent)}" if absent else "")
    return record


def clinical(reports: Path, out: Path) -> None:
    rep = json.loads((reports / "clinical.json").read_text())
    m, pop, fm = rep["metrics"], rep["population"], rep["final_model"]
    md = out / "knee-clinical"
    metrics = {
        "n": m["n"],
        "cv_scheme": m["cv_scheme"],
        "loso_scheme": m["loso_scheme"],
        "bootstrap": m["bootstrap"],
    }
    for k in TARGET_TXT:
        e = m[k]
        metrics[k] = {
            "cv": e["cv"],
            "loso": e["loso"],
            "loso_per_source": e["loso_per_source"],
            "baselines": e["baselines"],
            "diff_vs_age_cv": e["diff_vs_age_cv"],
            "diff_vs_age_loso": e["diff_vs_age_loso"],
            "diff_vs_osta_cv": e["diff_vs_osta_cv"],
            "calibration_cv": e["calibration_cv"],
            "calibration_loso": e["calibration_loso"],
            "operating_point_cv": e["operating_point_cv"],
            "subgroups_cv": e["subgroups_cv"],
        }
    metrics["t_score"] = m["t_score"]
    manifest = {
        "schema": 1,
        "id": "knee-clinical",
        "version": "1.0.0",
        "task": "bone_density",
        "kind": "clinical",
        "body_part": None,
        "view": None,
        "intended_use": (
            "Pre-screening aid: estimates the probability that a QUS T-score would be <= -1 "
            "and <= -2.5 from age, sex, weight and BMI, to help decide who to refer for DXA. "
            "Not a diagnosis; does not replace DXA."
        ),
        "reference_standard": "QUS T-score",
        "files": files_entry(md, [("onnx_fp32", "knee_clinical.onnx")]),
        "inputs": [
            {
                "name": "clinical",
                "shape": [None, 4],
                "dtype": "float32",
                # runtime feature keys (edgeosteo.inference.clinical_feature); units below
                "features": ["age_years", "sex_female", "weight_kg", "bmi"],
                "feature_units": fm["feature_doc"],
                "notes": "raw units; standardisation is inside the graph. bmi = weight_kg / height_m^2 "
                "if not recorded. No missing values allowed (the model has no imputation).",
            }
        ],
        "outputs": [
            {
                "name": "p_t_le_-1",
                "meaning": "calibrated probability that the QUS T-score is <= -1",
            },
            {
                "name": "p_t_le_-2.5",
                "meaning": "calibrated probability that the QUS T-score is <= -2.5",
            },
            {"name": "t_score", "meaning": "ridge-regression estimate of the QUS T-score"},
            {
                "name": "t_score_sd",
                "meaning": "residual SD of the T-score estimate (out-of-fold), constant; "
                "+/-1.96*sd gives an approximate 95% prediction interval",
            },
        ],
        "calibration": {
            "method": "Platt scaling (logistic on the model logit) fitted on pooled out-of-fold "
            f"logits of the CV ({m['cv_scheme']})",
            "baked_into_graph": True,
            **{k: {"platt_a": fm[k]["platt_a"], "platt_c": fm[k]["platt_c"]} for k in TARGET_TXT},
        },
        "model": {
            "type": f"logistic regression (L2, C={fm['lr_C']}) x2 + ridge regression "
            f"(alpha={fm['t_score']['ridge_alpha']}) on standardised features",
            "standardisation": fm["standardisation"],
            **{
                k: {
                    "coef_standardised": fm[k]["coef_standardised"],
                    "intercept": fm[k]["intercept"],
                }
                for k in (*TARGET_TXT, "t_score")
            },
        },
        "runtime_notes": {
            "openvino": "compile with {'INFERENCE_PRECISION_HINT': 'f32'}; the CPU default on this "
            "hardware is bf16, which changed probabilities by up to "
            f"{max(v['ov_bf16_default_vs_ort_max_abs'] for v in rep['onnx_parity'].values()):.4f}",
            "parity": rep["onnx_parity"],
        },
        "metrics": metrics,
        "governance": clinical_governance(m),
        "reference_outputs": rep["reference_outputs"],
        "card": "CARD.md",
    }
    (md / "manifest.json").write_text(json.dumps(manifest, indent=1))

    L = []
    L.append("# knee-clinical 1.0.0 - clinical bone-density pre-screening model\n")
    L.append("## Intended use\n")
    L.append(
        "Estimates, from **age, sex, weight and BMI**, the probability that a patient's QUS T-score "
        "is <= -1 (low bone mass) and <= -2.5 (osteoporosis range), plus a T-score estimate with its "
        "residual SD. It is a pre-screening aid to prioritise DXA referral in adults. It is **not** a "
        "diagnosis, does not replace DXA, and must not be used to withhold a DXA that is otherwise "
        "indicated.\n"
    )
    L.append(
        "**Contraindications / do not use for:** children and adolescents; patients already diagnosed "
        "or treated for osteoporosis; monitoring treatment; secondary osteoporosis (steroids, "
        "metabolic bone disease); populations unlike the development data without local validation.\n"
    )
    L.append("## Data and reference standard\n")
    L.append(
        f"Development data: the knee osteoporosis data set of Wani & Arora (cite: {CITATION}), as "
        "redistributed publicly; one knee AP radiograph plus clinical record per patient. The label is "
        "the **QUS T-score** (not DXA). Only the clinical record is used by this model.\n"
    )
    L.append(f"Population: {population_md(pop)}\n")
    L.append("## Model\n")
    L.append(
        f"Inputs in order: {', '.join(fm['feature_doc'])}. Two L2 logistic regressions (C={fm['lr_C']}) "
        f"and a ridge regression (alpha={fm['t_score']['ridge_alpha']}) on standardised features; Platt "
        "calibration fitted out-of-fold and folded into the graph. Exported as a tiny ONNX graph (opset 17). "
        "Other recorded features (height, smoking, alcohol, diabetes, hypothyroidism, oestrogen use, prior "
        "fracture, family history) were screened by CV and none added discrimination with a CI excluding 0 "
        "(see tools/reports/clinical.json `added_feature_screen_cv5repeats`).\n"
    )
    L.append(f"## Performance (same {m['n']} patients for every row)\n")
    L.append(f"{m['cv_scheme']}; LOSO = {m['loso_scheme']}; CIs by {m['bootstrap']} bootstrap.\n")
    L.append(
        "| target | model CV AUC | model LOSO AUC | age alone | OSTA (-OSTA score) | age-only logistic CV | age-only logistic LOSO | source-only CV |"
    )
    L.append("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for k, txt in TARGET_TXT.items():
        e = m[k]
        L.append(
            f"| {txt} | {ci(e['cv'])} | {ci(e['loso'])} | {ci(e['baselines']['age'])} | "
            f"{ci(e['baselines']['osta'])} | {ci(e['baselines']['age_logistic_cv'])} | "
            f"{ci(e['baselines']['age_logistic_loso'])} | {ci(e['baselines'].get('source_only_cv'))} |"
        )
    L.append("")
    L.append(
        "Source-only in LOSO is 0.5 by construction (an unseen source carries no information).\n"
    )
    L.append("Paired bootstrap AUC differences:\n")
    for k, txt in TARGET_TXT.items():
        e = m[k]
        L.append(
            f"- {txt}: model minus age alone, CV {dci(e['diff_vs_age_cv'])}; LOSO "
            f"{dci(e['diff_vs_age_loso'])}; model minus age-only logistic, LOSO "
            f"{dci(e['diff_vs_age_logistic_loso'])}; model minus OSTA, CV {dci(e['diff_vs_osta_cv'])}."
        )
    L.append("")
    L.append(
        "**Plainly: in this data set the four-variable model does not discriminate better than age "
        "alone** (differences are at or below zero; in LOSO it is worse than raw age, because the "
        "fitted weights and intercepts shift between sources). It is shipped because weight/BMI are "
        "established risk factors (OSTA) and because it gives calibrated probabilities and a T-score "
        "estimate, but its discrimination here is essentially that of age.\n"
    )
    governance = clinical_governance(m)
    L.append(
        "**Governance: "
        + (
            "drives the referral.** "
            if governance["used_for_referral"]
            else "shown as information; it does not drive the referral.** "
        )
        + "The box lets a clinical model drive the referral only if it beats age alone and OSTA "
        "(the AUC difference's 95% CI above 0 in CV and LOSO for every target; "
        "edgeosteo.models.clinical_rule_holds)"
        + (f"; not recorded: {', '.join(clinical_absent(m))}" if clinical_absent(m) else "")
        + ". Otherwise the guideline's DXA indications decide (docs/clinical.md).\n"
    )
    L.append(
        "LOSO AUC per held-out source: "
        + "; ".join(
            f"{k}: " + ", ".join(f"{s} {ci(v)}" for s, v in m[k]["loso_per_source"].items())
            for k in TARGET_TXT
        )
        + ".\n"
    )
    L.append(
        "T-score regression: "
        + f"CV RMSE {m['t_score']['cv']['rmse']}, MAE {m['t_score']['cv']['mae']}, "
        f"Pearson r {m['t_score']['cv']['pearson_r']}; LOSO RMSE {m['t_score']['loso']['rmse']}, "
        f"r {m['t_score']['loso']['pearson_r']}. Output `t_score_sd` = {fm['t_score']['residual_sd_oof']:.3f} "
        "(out-of-fold residual SD).\n"
    )
    L.append(
        "Operating point at calibrated p >= 0.5 (CV, mean over repeats): "
        + "; ".join(
            f"{k}: sensitivity {m[k]['operating_point_cv']['sensitivity']}, specificity "
            f"{m[k]['operating_point_cv']['specificity']}, PPV {m[k]['operating_point_cv']['ppv']}, NPV "
            f"{m[k]['operating_point_cv']['npv']}"
            for k in TARGET_TXT
        )
        + ".\n"
    )
    L.append("## Subgroups (CV out-of-fold, AUC with 95% CI; age and OSTA on the same patients)\n")
    L.append("| target | subgroup | n (pos) | model | age | OSTA |")
    L.append("| --- | --- | --- | --- | --- | --- |")
    for k in TARGET_TXT:
        for g, v in m[k]["subgroups_cv"].items():
            L.append(
                f"| {k} | {g} | {v['model']['n']} ({v['model']['n_pos']}) | {ci(v['model'])} | "
                f"{ci(v['age'])} | {ci(v['osta'])} |"
            )
    L.append("")
    sg1, sg25 = m["p_t_le_-1"]["subgroups_cv"], m["p_t_le_-2.5"]["subgroups_cv"]
    undefined = [g for g, v in sg1.items() if v["model"]["auc"] is None]
    L.append(
        f"Undefined AUCs for T <= -1 ({', '.join(undefined)}): every patient in those bands has "
        f"T <= -1. Within age<50, {sg25['age<50']['model']['n_pos']} patient(s) have T <= -2.5.\n"
    )
    L.append("## Calibration\n")
    for k in TARGET_TXT:
        c, cl = m[k]["calibration_cv"], m[k]["calibration_loso"]
        cu = m[k]["calibration_cv_uncalibrated"]
        L.append(
            f"- {k}: CV Brier {c['brier']}, calibration slope {c['calibration_slope']}, mean predicted "
            f"{c['mean_predicted']} vs observed {c['observed_rate']} (before Platt: Brier {cu['brier']}, "
            f"slope {cu['calibration_slope']}); LOSO Brier {cl['brier']}, slope {cl['calibration_slope']}."
        )
    L.append(
        "\nPlatt scaling brought little here (logistic regression is already close to calibrated); "
        "calibration transfers worse across sources (LOSO slope < 1 means over-confident). "
        "Probabilities reflect this development population's prevalence "
        f"({m['p_t_le_-1']['prevalence']} for T <= -1, {m['p_t_le_-2.5']['prevalence']} for T <= -2.5) "
        "and must be recalibrated for a population with different prevalence.\n"
    )
    L.append("## Quantization / runtimes\n")
    par = rep["onnx_parity"]
    L.append(
        "FP32 only (the graph is a few hundred bytes; no quantization). onnxruntime vs numpy max abs "
        f"difference {max(v['ort_vs_numpy_max_abs'] for v in par.values()):.1e}; OpenVINO (f32 inference "
        f"precision) vs onnxruntime {max(v['ov_vs_ort_max_abs'] for v in par.values()):.1e}. With OpenVINO's "
        f"default bf16 CPU precision the difference was up to "
        f"{max(v['ov_bf16_default_vs_ort_max_abs'] for v in par.values()):.4f}: compile with "
        "INFERENCE_PRECISION_HINT=f32.\n"
    )
    L.append("## Known failure modes and limits\n")
    L.append(common_limits(pop))
    L.append(
        f"- Extrapolation: outside age {pop['age_min']:.0f}-{pop['age_max']:.0f}, weight/BMI far from the training range, the linear logit "
        "extrapolates without warning.\n- Missing inputs are not handled by the graph.\n"
    )
    L.append(f"## Citation\n\n{CITATION}\n")
    (md / "CARD.md").write_text("\n".join(L))


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="models")
    ap.add_argument("--reports", default=str(Path(__file__).resolve().parent / "reports"))
    ap.add_argument("--only", default=None)
    args = ap.parse_args(argv)
    out, rep = Path(args.out), Path(args.reports)
    if args.only in (None, "clinical"):
        clinical(rep, out)
    if args.only in (None, "image") and (rep / "image.json").exists():
        import write_cards_image

        write_cards_image.write(rep, out)


if __name__ == "__main__":
    main()
