# ruff: noqa: E501  (long lines are card/manifest text templates)
"""Manifest + CARD for knee-image (experimental) and knee-fused, from tools/reports/image.json,
image_research.json and clinical.json. Every number comes from those reports."""

from __future__ import annotations

import json
from pathlib import Path

import evalkit as ek
import write_cards as wc

from edgeosteo.models import governance_rule_holds

TT = wc.TARGET_TXT
SHIP_VARIANT = "cnn_cls"  # the shipped CNN's classification heads
RULE_MD = (
    "in both repeated CV and leave-one-source-out (LOSO) validation, the 95% CI lower bound of "
    "AUC(fused) - AUC(clinical) above zero and the image score alone ranking the right way (AUC above 0.5)"
)


def passes_rule(entry: dict) -> bool:
    """The product rule (edgeosteo.models.governance_rule_holds) on one research entry: applied
    here rather than read from the report, so the card always states the box's rule."""
    return governance_rule_holds(ek.rule_record(entry))


def _variant_table(res: dict) -> list[str]:
    L = [
        "| variant | target | image alone CV | image alone LOSO | fused CV | fused LOSO | fused - clinical CV | fused - clinical LOSO | rule |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for v, r in res["variants"].items():
        for k in TT:
            e = r[k]
            L.append(
                f"| {v} | {k} | {wc.ci(e['image_alone']['cv'])} | {wc.ci(e['image_alone']['loso'])} | "
                f"{wc.ci(e['fused']['cv'])} | {wc.ci(e['fused']['loso'])} | "
                f"{wc.dci(e['added_value_over_clinical']['cv'])} | {wc.dci(e['added_value_over_clinical']['loso'])} | "
                f"{'pass' if passes_rule(e) else 'fail'} |"
            )
    return L


def _corr_lines(res: dict) -> list[str]:
    L = []
    for v, r in res["variants"].items():
        c = r["age_adjusted_corr_with_t_score"]
        L.append(
            f"- {v}: CV r = {c['cv']['r']:+.3f} (95% CI {c['cv']['ci95'][0]:+.3f} to {c['cv']['ci95'][1]:+.3f}); "
            f"LOSO r = {c['loso']['r']:+.3f} ({c['loso']['ci95'][0]:+.3f} to {c['loso']['ci95'][1]:+.3f}); "
            f"CV adjusted for age, sex, weight, BMI r = {c['cv_adjusted_age_sex_weight_bmi']['r']:+.3f} "
            f"({c['cv_adjusted_age_sex_weight_bmi']['ci95'][0]:+.3f} to {c['cv_adjusted_age_sex_weight_bmi']['ci95'][1]:+.3f})"
        )
    return L


def _baseline_lines(res: dict) -> list[str]:
    L = [
        "| target | clinical CV | clinical LOSO | age | OSTA | source-only CV | source-only LOSO |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for k in TT:
        b = res["baselines"][k]
        L.append(
            f"| {k} | {wc.ci(b['clinical']['cv'])} | {wc.ci(b['clinical']['loso'])} | {wc.ci(b['age'])} | "
            f"{wc.ci(b['osta'])} | {wc.ci(b['source_only']['cv'])} | {wc.ci(b['source_only']['loso'])} |"
        )
    return L


EXTRA_VARIANTS = ("ssl_linear_probe", "cnn_ssl_cls", "cnn_ssl_reg", "cnn_ordinal")


def _comparison_sentences(x: dict) -> list[str]:
    """Paired image-alone AUC differences between the new variants and their references."""
    out = []
    for c in x.get("comparisons", []):
        parts = []
        for k in TT:
            d = c[k]
            parts.append(f"{k}: CV {wc.dci(d['cv'])}, LOSO {wc.dci(d['loso'])}")
        out.append(f"- {c['a']} minus {c['b']}: " + "; ".join(parts))
    return out


def _extra_lines(res: dict) -> list[str]:
    """Issue #3: self-supervised pretraining and ordinal classification (report["extra"])."""
    x = res.get("extra")
    if not x:
        return []
    ssl, orl, tm = x["ssl"], x["ordinal"], x["timings_s"]
    pub = ssl["public_radiographs"]
    L = ["## Self-supervised pretraining and ordinal classification (issue #3)\n"]
    L.append(
        f"Both were evaluated exactly like the variants above (same crops, folds, clinical OOF predictions, "
        f"fusion and bootstrap), on {x['cv_scheme']}. To keep the whole training run within its time budget "
        f"they use {x['cv_repeats']} CV repeat(s) instead of {res['cnn']['cv_repeats']}; the scratch CNN rows "
        "below are the existing cnn_cls / cnn_reg re-scored on the same repeat(s), for a like-for-like comparison.\n"
    )
    L.append(
        "**Self-supervised pretraining (what was tried).** " + ssl["method"] + ". Unlabelled data:"
    )
    imgs = "; ".join(
        f"{i['package']} {i['modality']} {(i['body_part'] or 'unknown').lower()} "
        f"({len(i['files'])} file(s): {', '.join(i['files'])}; "
        f"{i['mm_per_px']} mm/px{' assumed, not recorded' if i['spacing_assumed'] else ' from the header'})"
        for i in pub["images"]
    )
    read = ", ".join(f"{k} {v}" for k, v in pub.get("dicom_files_read_by_package", {}).items())
    L.append(
        f"- public radiographs: every single-frame {'/'.join(pub.get('modalities_kept', []))} image of at least "
        f"512 px in the installed test-data packages pydicom-data and deid-data (MIT licensed; DICOM files read: "
        f"{read or 'n/a'}), read with the product's DICOM reader (modality LUT, window, MONOCHROME1 inverted), "
        f"duplicates across transfer syntaxes merged: **{pub['distinct_radiographs']} distinct radiographs** - "
        f"{imgs}. Each was resampled to the knee-crop scale ({ssl['target_mm_per_px']} mm/px) and cut into "
        f"256 px windows (scale jitter 0.8-1.25, mostly-background windows rejected): {pub['windows_total']} windows "
        f"({', '.join(f'{k}: {v}' for k, v in pub['windows_per_image'].items())}). The other DICOM files in those "
        "packages are CT, MR, ultrasound, nuclear medicine, RT, segmentation/report/ECG objects, secondary-capture "
        "test patterns or colour images without a modality, none a plain radiograph. No other radiographs were available to this work (no downloads; the data set's held-back "
        "patients are not available here)."
    )
    L.append("- the development set's knee crops, without their labels:")
    for name, p in ssl["pretraining"].items():
        L.append(
            f"  - {name}: {p['knee_crops']} knee crops "
            f"({', '.join(f'{s} {n}' for s, n in p['knee_crops_by_source'].items())}) + {p['public_windows']} public "
            f"windows; {p['steps']} steps x {p['batch']} items (~{p['epochs_equiv']} passes over the pool), "
            f"NT-Xent loss {p['loss_first']:.3f} -> {p['loss_last']:.3f} (chance {p['chance_loss']:.3f}), {p['seconds']:.0f} s"
        )
    L.append(f"- leakage: {ssl['leakage']}")
    L.append(
        f"- evaluation: ssl_linear_probe = {ssl['linear_probe']}; cnn_ssl_cls / cnn_ssl_reg = the pretrained encoder "
        f"fine-tuned end to end with the shipped CNN's multi-task loss for {ssl['fine_tune_epochs']} epochs (scratch "
        f"CNN: {ssl['scratch_epochs']}), same folds and seeds as the scratch CNN, scored like cnn_cls / cnn_reg. "
        f"Fine-tuned T-score regression: CV RMSE {ssl['t_score_regression_finetuned']['cv']['rmse']}, r "
        f"{ssl['t_score_regression_finetuned']['cv']['pearson_r']}; LOSO RMSE "
        f"{ssl['t_score_regression_finetuned']['loso']['rmse']}, r {ssl['t_score_regression_finetuned']['loso']['pearson_r']}.\n"
    )
    L.append(
        f"**T-score regression versus ordinal classification.** cnn_reg scores by the regressed T-score and cnn_cls "
        f"by one classification head per threshold (both from the multi-task CNN). cnn_ordinal: {orl['method']}; "
        f"bands {orl['bands']}; {orl['epochs']} epochs, same backbone, patches, augmentation, optimiser, folds and "
        f"seeds as the scratch CNN; the score for each target is the logit of its cumulative probability. "
        f"Cumulative probabilities were monotone (P(T<=-2.5) <= P(T<=-1)) for a fraction "
        f"{orl['frac_predictions_monotone']} of predictions (guaranteed by the ordered thresholds).\n"
    )
    rows = [(v, res["variants"][v]) for v in EXTRA_VARIANTS if v in res["variants"]]
    rows += [(f"{v} (scratch, same repeats)", r) for v, r in x["scratch_same_repeats"].items()]
    L.append(
        "| variant | target | image alone CV | image alone LOSO | fused - clinical CV | fused - clinical LOSO | rule |"
    )
    L.append("| --- | --- | --- | --- | --- | --- | --- |")
    for v, r in rows:
        for k in TT:
            e = r[k]
            L.append(
                f"| {v} | {k} | {wc.ci(e['image_alone']['cv'])} | {wc.ci(e['image_alone']['loso'])} | "
                f"{wc.dci(e['added_value_over_clinical']['cv'])} | {wc.dci(e['added_value_over_clinical']['loso'])} | "
                f"{'pass' if passes_rule(e) else 'fail'} |"
            )
    L.append(
        "\nAge-adjusted partial correlation with the QUS T-score (a useful score would be clearly negative):\n"
    )
    for v, r in rows:
        c = r["age_adjusted_corr_with_t_score"]
        L.append(
            f"- {v}: CV r = {c['cv']['r']:+.3f} (95% CI {c['cv']['ci95'][0]:+.3f} to {c['cv']['ci95'][1]:+.3f}); "
            f"LOSO r = {c['loso']['r']:+.3f} ({c['loso']['ci95'][0]:+.3f} to {c['loso']['ci95'][1]:+.3f})"
        )
    L.append(
        "\nTime on 2 CPU threads: "
        + ", ".join(
            f"{k.removesuffix('_s').replace('_', ' ')} {v:.0f} s"
            for k, v in tm.items()
            if k != "total_s"
        )
        + f"; total {tm['total_s']:.0f} s.\n"
    )
    # plain conclusion, derived from the numbers above
    new = [(v, res["variants"][v]) for v in EXTRA_VARIANTS if v in res["variants"]]
    passing = [v for v, r in new if any(passes_rule(r[k]) for k in TT)]
    cells = [(v, k, s) for v, r in new for k in TT for s in ("cv", "loso")]
    chance = [
        (v, k, s) for v, k, s in cells if res["variants"][v][k]["image_alone"][s]["ci95"][0] <= 0.5
    ]
    best = max(
        ((res["variants"][v][k]["image_alone"]["loso"]["auc"], v, k) for v, _ in new for k in TT),
    )
    if passing:
        verdict = (
            f"{', '.join(passing)} passed the product rule for at least one target ({RULE_MD}); this needs "
            "confirmation on the held-back patients before anything shipped changes."
        )
    else:
        verdict = (
            "Neither self-supervised pretraining (linear probe or fine-tuned) nor the ordinal head passes the "
            f"product rule for either target ({RULE_MD}), so the shipped model is unchanged."
        )
    comp = _comparison_sentences(x)
    if comp:
        L.append(
            "Head-to-head, image alone (paired bootstrap of the AUC difference on the same patients, repeats and "
            "LOSO pool; cnn_cls / cnn_reg = the scratch CNN):\n"
        )
        L.extend(comp)
        L.append("")
    one_scheme = []
    for v, r in new:
        for k in TT:
            av = r[k]["added_value_over_clinical"]
            pos = [sch for sch in ("cv", "loso") if av[sch]["ci95"][0] > 0]
            if len(pos) == 1:
                sch = pos[0]
                auc = r[k]["image_alone"][sch]["auc"]
                one_scheme.append(
                    f"{v} {k}: fused - clinical {sch.upper()} {wc.dci(av[sch])} with image-alone {sch.upper()} "
                    f"AUC {auc:.3f}"
                    + (
                        " (below 0.5: the image score runs opposite to the label and the stacker gains by "
                        "reversing it, which the rule also refuses)"
                        if auc < 0.5
                        else ""
                    )
                    + f", but {('LOSO' if sch == 'cv' else 'CV')} {wc.dci(av['loso' if sch == 'cv' else 'cv'])}"
                )
    if one_scheme:
        verdict += (
            " A 95% CI above zero in one scheme only (the rule needs both): "
            + "; ".join(one_scheme)
            + "."
        )
    ref = {v: r for v, r in x.get("scratch_same_repeats", {}).items()}
    ref.update({v: r for v, r in new})
    sig = []
    for c in x.get("comparisons", []):
        for k in TT:
            for sch in ("cv", "loso"):
                d = c[k][sch]
                if d["ci95"][0] > 0 or d["ci95"][1] < 0:
                    sig.append(
                        f"{c['a']} minus {c['b']}, {k} {sch.upper()} {d['auc_diff']:+.3f} (AUC "
                        f"{ref[c['a']][k]['image_alone'][sch]['auc']:.3f} vs "
                        f"{ref[c['b']][k]['image_alone'][sch]['auc']:.3f})"
                    )
    if x.get("comparisons"):
        verdict += (
            " Head-to-head, the image-alone AUC differences whose 95% CI excludes zero are: "
            + ("; ".join(sig) if sig else "none")
            + "."
        )
    L.append(
        f"**Conclusion.** {verdict} The image-alone AUC's 95% CI includes 0.5 (or lies below it) in {len(chance)} "
        f"of {len(cells)} new variant x target x scheme cells; the highest image-alone LOSO AUC is {best[0]:.3f} "
        f"({best[1]}, {best[2]})."
        + f" With {pub['distinct_radiographs']} distinct public radiographs and {res['n_knee_crops']} knee crops, "
        "the pretraining data are very small, and an ordinal output cannot create a signal the image does not "
        "carry; in this data neither changes the finding that the knee image adds nothing measurable to the "
        "clinical model."
    )
    L.append("")
    return L


def preprocessing(res: dict) -> dict:
    p = res["roi_params"]
    return {
        "algorithm": p["version"],
        "reference_implementation": "edgeosteo/knee_roi.py (numpy + OpenCV only; detect_knees + crop_knee)",
        "steps": [
            "decode to grayscale float32 in [0,1], bone bright: raster via cv2.imread(IMREAD_UNCHANGED), colour -> "
            "cv2.COLOR_BGR2GRAY, divide by dtype max; DICOM: modality LUT, min-max scale, invert MONOCHROME1",
            f"working copy: resize so the longest side is {p['work_long_side']} px (INTER_AREA), Gaussian blur sigma "
            f"{p['blur_sigma']}",
            "body threshold = Otsu on uint8(blurred*255)/255; legs = column runs (rows 20-80%) with occupancy > "
            f"{p['leg_occupancy']} (9-tap box) longer than {p['leg_min_frac']} x width; a run wider than "
            f"{p['bilateral_split_frac']} x width is split at its intensity minimum within its middle 40%",
            "joint line per leg: maximise (P(y+d)-P(y)) * dip over gap height d in "
            f"{p['gap_d_range']} (P = mean vertical Sobel ksize 5 over the central 60% of the band, 3-tap box; "
            "dip = min(mean I over 6 rows above, 6 rows below) - mean I in the gap)",
            "knee width: bone run at tibial plateau (k = max(3, round(0.02*H512)) rows below the gap) and femoral "
            f"condyles (2k rows above), threshold soft + {p['width_threshold_frac']} x (peak - soft); width = mean of the "
            "two (tibial only if they differ > 25%), clipped to "
            f"{p['width_band_clip']} x leg band width; centre x = middle of the tibial run",
            f"crop: resize the ORIGINAL grayscale by f = {p['target_width_px']} / width_original_px (INTER_AREA if f < 1 "
            f"else INTER_LINEAR), take {p['crop_px']}x{p['crop_px']} centred on (centre x * f, joint row * f), "
            "zero padding outside (index = round(coordinate*f) - crop/2)",
            f"normalise: (x - p{p['norm_percentiles'][0]:g}) / (p{p['norm_percentiles'][1]:g} - "
            f"p{p['norm_percentiles'][0]:g}) over the whole crop (np.percentile, linear), clip to [0,1]",
            "run the model on each detected knee crop ([N,1,256,256] float32); report the mean of each output over "
            "the knees of one image; if no knee is found, report 'no knee detected' and do not run the model",
        ],
        **{k: p[k] for k in p if k != "version"},
        "input_tensor": {
            "name": "image",
            "shape": [None, 1, p["crop_px"], p["crop_px"]],
            "dtype": "float32",
            "range": [0.0, 1.0],
        },
    }


def _applicability(reports: Path) -> list[str]:
    """The knee applicability check's figures (tools/eval_knee_check.py), when measured."""
    path = reports / "knee_check.json"
    if not path.is_file():
        return []
    kc = json.loads(path.read_text())
    non, films, t = kc["non_knee"], kc["knee_films"], kc["seconds_per_image"]
    per_source = ", ".join(
        f"{s} {v['accepted']}/{v['films']}" for s, v in films["by_source"].items()
    )
    public = ", ".join(
        f"{s} {v['accepted_as_knee']}/{v['readable']}" for s, v in non["by_source"].items()
    )
    return [
        "## Applicability check\n",
        "Before this model runs on an image screened as KNEE, edgeosteo.knee_check.knee_plausibility asks "
        "whether the knee finder's proposal looks like a knee joint: a dark joint space between femoral "
        "condyles and tibial plateau that are brighter than the soft tissue beside them, femoral and tibial "
        "shafts continuing away from the joint, and plausible bone-width proportions. When it does not, the "
        "model is not run and the case records `image.not_knee` (measured by tools/eval_knee_check.py, "
        "tools/reports/knee_check.json):\n",
        f"- non-knee images (every image intake reads in pydicom-data and deid-data: chest, lower leg/ankle, "
        f"CT, MR, ultrasound, nuclear medicine, test patterns, photographs), screened as KNEE: "
        f"**{non['accepted_as_knee']} of {non['images']} accepted** ({public});",
        f"- knee development films still accepted: **{films['accepted']} of {films['films']} "
        f"({100 * films['share_accepted']:.1f}%)** (source {per_source}). The thresholds were set on these "
        "same films and images, so this is not an independent estimate;",
        f"- time per image (check only, after decoding): median {1000 * t['median']:.0f} ms, "
        f"95th percentile {1000 * t['p95']:.0f} ms.\n",
    ]


def write(reports: Path, out: Path) -> None:
    img = json.loads((reports / "image.json").read_text())
    res = json.loads((reports / "image_research.json").read_text())
    clin = json.loads((reports / "clinical.json").read_text())
    pop = clin["population"]
    v = res["variants"][SHIP_VARIANT]
    passes = all(passes_rule(v[k]) for k in TT)
    any_pass = {name: any(passes_rule(r[k]) for k in TT) for name, r in res["variants"].items()}
    par, lat = img["parity"], img["latency"]
    q = par["int8"][par["int8_choice"]]

    # ---------------------------------------------------------------- knee-image
    md = out / "knee-image"
    files = [
        ("onnx_fp32", img["files"]["fp32"]),
        ("onnx_int8", img["files"]["int8"]),
        ("openvino_xml", img["files"]["openvino_xml"]),
        ("openvino_bin", img["files"]["openvino_bin"]),
    ]
    if "openvino_int8_xml" in img["files"]:
        files += [
            ("openvino_int8_xml", img["files"]["openvino_int8_xml"]),
            ("openvino_int8_bin", img["files"]["openvino_int8_bin"]),
        ]
    gov = {
        "added_value_over_clinical": {
            **ek.rule_record(v["p_t_le_-1"]),
            "by_target": {k: ek.rule_record(v[k]) for k in TT},
            "rule": "used for referral only if, in both repeated CV and LOSO, the 95% CI lower bound of "
            "AUC(fused) - AUC(clinical) is > 0 and the image score alone has AUC > 0.5",
        },
        "used_for_referral": passes,
        "display": "experimental, not used for the recommendation" if not passes else None,
    }
    metrics = {
        "variant": SHIP_VARIANT,
        **{
            k: {
                "image_alone": v[k]["image_alone"],
                "fused": v[k]["fused"],
                "clinical_same_folds": v[k]["clinical_same_folds"],
                "added_value_over_clinical": v[k]["added_value_over_clinical"],
            }
            for k in TT
        },
        "baselines": res["baselines"],
        "age_adjusted_corr_with_t_score": v["age_adjusted_corr_with_t_score"],
        "t_score_regression": res["cnn"]["t_score_regression"],
        "source_identifiable_from_texture_cv_accuracy": res[
            "source_identifiable_from_texture_cv_accuracy"
        ],
        "cv_scheme": f"{res['cnn']['cv_repeats']} repeats of stratified 5-fold (seeds 0..{res['cnn']['cv_repeats'] - 1}), "
        "patient level; LOSO pooled",
        "all_variants_summary": {
            name: {
                k: {
                    "image_cv": r[k]["image_alone"]["cv"]["auc"],
                    "image_loso": r[k]["image_alone"]["loso"]["auc"],
                    "added_cv": r[k]["added_value_over_clinical"]["cv"],
                    "added_loso": r[k]["added_value_over_clinical"]["loso"],
                }
                for k in TT
            }
            for name, r in res["variants"].items()
        },
        "quantization": {
            "int8_scheme": par["int8_choice"],
            **{kk: q[kk] for kk in ("max_abs_prob_diff", "max_abs_t_diff", "auc")},
            "all": par["int8"],
            "openvino_nncf_int8": par["nncf"],
            "nncf_error": par["nncf_error"],
        },
        "latency_ms": lat,
    }
    manifest = {
        "schema": 1,
        "id": "knee-image",
        "version": "1.0.0",
        "task": "bone_density",
        "kind": "image",
        "body_part": "KNEE",
        "view": "AP",
        "intended_use": (
            "EXPERIMENTAL research output only: bone-density estimate from a knee AP radiograph. "
            "Displayed as 'experimental, not used for the recommendation'. It did not add value over "
            "the clinical model in validation."
            if not passes
            else "Bone-density estimate from a knee AP radiograph."
        ),
        "reference_standard": "QUS T-score",
        "files": wc.files_entry(md, files),
        "inputs": [{"name": "image", "shape": [None, 1, 256, 256], "dtype": "float32"}],
        "preprocessing": preprocessing(res),
        "outputs": [
            {
                "name": "p_t_le_-1",
                "meaning": "Platt-calibrated probability that the QUS T-score is <= -1 (per crop)",
            },
            {
                "name": "p_t_le_-2.5",
                "meaning": "Platt-calibrated probability that the QUS T-score is <= -2.5 (per crop)",
            },
            {"name": "t_score", "meaning": "CNN estimate of the QUS T-score (per crop)"},
            {
                "name": "heatmap",
                "meaning": "[N,16,16] class-activation map: calibrated per-location logit for T <= -1 "
                "(its spatial mean is the logit of p_t_le_-1); upsample bilinearly to the "
                "256x256 crop for display; higher = more suggestive of low density",
            },
        ],
        "calibration": {
            "method": "Platt scaling on pooled out-of-fold CNN logits (CV), applied only when its slope "
            "is > 0",
            "baked_into_graph": True,
            "applied": {k: img["platt"][k]["applied"] for k in TT},
            "note": None
            if all(img["platt"][k]["applied"] for k in TT)
            else "Platt slope on out-of-fold logits was <= 0 for at least one output (no transferable or an "
            "inverted signal); calibration was not applied there, so those probabilities are the "
            "network's own uncalibrated sigmoid outputs and must not be read as risks",
            **img["platt"],
        },
        "model": {
            "architecture": "5 x (conv3x3-BN-ReLU), strides 2,2,2,2,1, widths 16,24,32,64,64; 1x1 conv head "
            "(3 maps); outputs = spatial mean of the maps (multiple-instance average)",
            "params": img["cnn"]["params"],
            "macs_256": img["cnn"]["macs_256"],
            "seed": img["seed"],
        },
        "runtime_notes": {
            "openvino": "compile with INFERENCE_PRECISION_HINT=f32 (CPU default here is bf16)",
            "parity": {
                kk: par[kk]
                for kk in ("torch_vs_onnx_fp32_max_abs", "openvino_fp32_vs_onnx_fp32_max_abs")
            },
        },
        "metrics": metrics,
        "governance": gov,
        "reference_outputs": img["reference_outputs"],
        "card": "CARD.md",
    }
    (md / "manifest.json").write_text(json.dumps(manifest, indent=1))

    L = ["# knee-image 1.0.0 - EXPERIMENTAL knee radiograph bone-density CNN\n"]
    L.append("## Status\n")
    if not passes:
        L.append(
            f"**Experimental, not used for the recommendation.** The product rule requires, {RULE_MD}. "
            "This model fails it (numbers below); so does every other image variant tried "
            f"({', '.join(f'{n}: ' + ('pass' if ok else 'fail') for n, ok in any_pass.items())}). "
            "The image does not add measurable value beyond age/sex/weight/BMI in this data.\n"
        )
    L.append("## Intended use and contraindications\n")
    L.append(
        "Research display only: an image-derived estimate of QUS T-score band from one knee AP radiograph, shown "
        "next to (never instead of) the clinical model. Not for diagnosis or referral decisions. Do not use on "
        "lateral views, other joints, children (open physes), knees with implants, fractures, tumours, or "
        "severe deformity; do not use on images where the ROI overlay is not centred on the joint.\n"
    )
    L.append("## Data and reference standard\n")
    L.append(
        f"Wani & Arora knee data set ({wc.CITATION}); reference standard **QUS T-score (not DXA)**. "
        f"Population: {wc.population_md(pop)}\n"
    )
    L.append(
        f"Image pipeline: {res['n_knee_crops']} knee crops from {res['n_patients']} images (knees per image: "
        f"{res['knees_per_image']}). Pixel spacing is unknown, so each knee is resampled so that its width at the "
        f"joint (tibial plateau / femoral condyles, found automatically) is {res['roi_params']['target_width_px']} px. "
        "Estimated knee width in original pixels by source (10th/50th/90th percentile): "
        + "; ".join(f"{s}: {w}" for s, w in res["knee_width_px_by_source"].items())
        + ".\n"
    )
    L.append("## Preprocessing (the runtime must reproduce exactly)\n")
    for i, s in enumerate(preprocessing(res)["steps"], 1):
        L.append(f"{i}. {s}")
    L.append("")
    L.append("## Model\n")
    L.append(
        f"{manifest['model']['architecture']}; {img['cnn']['params']} parameters, "
        f"{img['cnn']['macs_256'] / 1e6:.1f} M multiply-accumulates per 256x256 crop. Trained from scratch "
        f"(no pretrained weights) on random {img['cnn']['patch']} px patches with augmentation (affine scale "
        "0.9-1.1, rotation +-8 deg, flips, blur or down/up-sampling, gamma 0.6-1.6, contrast/brightness, noise, "
        f"re-normalisation), {img['cnn']['epochs']} epochs, multi-task loss (T-score MSE + BCE for both thresholds). "
        "Because the head is linear after global averaging, the output equals the mean of patch-level outputs "
        "(multiple-instance averaging) and the pre-average map is the class-activation heatmap.\n"
    )
    L.append(
        f"## Validation (same {res['n_patients']} patients; CIs: {clin['metrics']['bootstrap']} bootstrap)\n"
    )
    L.append(
        f"CNN: {metrics['cv_scheme']}. Texture variants: {clin['metrics']['cv_scheme']}. Fused = logistic stacking of the "
        "clinical OOF logit and the image OOF score, evaluated by second-level CV on the same folds."
        + (
            f" Self-supervised and ordinal variants ({', '.join(v for v in EXTRA_VARIANTS if v in res['variants'])}): "
            f"{res['extra']['cv_scheme']}; details in the next section."
            if res.get("extra")
            else ""
        )
        + "\n"
    )
    L.extend(_variant_table(res))
    L.append("")
    L.append("Baselines on the same patients:\n")
    L.extend(_baseline_lines(res))
    L.append("")
    L.append(
        "Source-only in LOSO is constant by construction (an unseen source carries no information). "
        f"Source is identifiable from the ROI texture features with CV accuracy "
        f"{res['source_identifiable_from_texture_cv_accuracy']} (majority rate {res['source_majority_rate']}).\n"
    )
    L.append(
        "Age-adjusted partial correlation of each image score (higher = lower predicted T) with the QUS T-score "
        "(a useful score would be clearly negative):\n"
    )
    L.extend(_corr_lines(res))
    L.append("")
    L.append(
        "The estimated knee width in original pixels (dominated by each source's resolution) already carries "
        "the source confound: age-adjusted r(-width, T) = "
        f"{res['knee_width_corr_with_t_adj_age']['r']:+.3f} (95% CI {res['knee_width_corr_with_t_adj_age']['ci95'][0]:+.3f} "
        f"to {res['knee_width_corr_with_t_adj_age']['ci95'][1]:+.3f}), i.e. knees that are wider in pixels "
        "(the high-resolution sources) have lower T-scores. This is why crops are resampled to a common scale "
        "and why LOSO is the decisive test.\n"
    )
    tr = res["cnn"]["t_score_regression"]
    L.append(
        f"CNN T-score regression: CV RMSE {tr['cv']['rmse']}, r {tr['cv']['pearson_r']}; LOSO RMSE {tr['loso']['rmse']}, "
        f"r {tr['loso']['pearson_r']} (clinical ridge: CV RMSE {clin['metrics']['t_score']['cv']['rmse']}, "
        f"r {clin['metrics']['t_score']['cv']['pearson_r']}).\n"
    )
    L.append(
        "Subgroups: not reported for the image model, because it carries no validated signal overall; for the "
        "clinical model's subgroups by sex and age band see models/knee-clinical/CARD.md.\n"
    )
    L.extend(_extra_lines(res))
    L.append("## Calibration\n")
    L.append(
        "Platt scaling was fitted on pooled out-of-fold CNN logits: "
        + "; ".join(
            f"{k}: slope a={img['platt'][k]['fitted_a']:.3f}, intercept c={img['platt'][k]['fitted_c']:.3f} "
            f"({'applied, baked into the graph' if img['platt'][k]['applied'] else 'NOT applied'})"
            for k in TT
        )
        + ". A slope <= 0 means the out-of-fold logits ranked patients no better than (or inversely to) chance; "
        "applying it would flip the model, so it was not applied and **those probabilities are uncalibrated "
        "network outputs, not risks**.\n"
    )
    L.append("## Quantization and latency (this machine, 2 threads, batch 1, 256x256)\n")
    L.append(
        f"Static INT8 QDQ (onnxruntime.quantization, quant_pre_process first, MinMax calibration on the "
        f"{img['n_crops']} development crops, {par['int8_choice'].replace('_', '-')} weights chosen as the better of "
        "per-channel/per-tensor): "
        + "; ".join(
            f"{kk}: max |p diff| {vv['max_abs_prob_diff']}, max |T diff| {vv['max_abs_t_diff']}"
            for kk, vv in par["int8"].items()
        )
        + ". In-sample AUC, FP32 vs INT8: "
        + "; ".join(
            f"{k} {q['auc'][k]['auc_fp32_in_sample']} vs {q['auc'][k]['auc_other_in_sample']} "
            f"(|diff| {q['auc'][k]['auc_abs_diff']})"
            for k in TT
        )
        + "."
    )
    if par["nncf"]:
        L.append(
            f"OpenVINO NNCF INT8 (head conv kept FP32): max |p diff| {par['nncf']['max_abs_prob_diff']}, max |T diff| "
            f"{par['nncf']['max_abs_t_diff']}; AUC |diff| "
            + ", ".join(f"{k} {par['nncf']['auc'][k]['auc_abs_diff']}" for k in TT)
            + "."
            + (
                f" {par['nncf_error']}."
                if par["nncf_error"]
                else " Shipped as openvino_int8_xml/bin."
            )
        )
    else:
        L.append(f"OpenVINO NNCF INT8 not produced ({par['nncf_error']}).")
    L.append(
        "The AUCs in this paragraph are on the training patients of the final model and serve only as a "
        "parity check between FP32 and INT8, not as a performance estimate."
    )
    L.append(
        f"OpenVINO FP32 IR vs ONNX FP32 max abs difference {par['openvino_fp32_vs_onnx_fp32_max_abs']:.2e}; "
        f"torch vs ONNX {par['torch_vs_onnx_fp32_max_abs']:.2e}.\n"
    )
    L.append("| runtime | median ms | p90 ms |\n| --- | --- | --- |")
    for kk, vv in lat.items():
        L.append(f"| {kk} | {vv['median_ms']} | {vv['p90_ms']} |")
    f32, i8 = lat["onnxruntime_fp32"]["median_ms"], lat["onnxruntime_int8"]["median_ms"]
    L.append(
        f"\nonnxruntime INT8 / FP32 median latency ratio {i8 / f32:.2f}"
        + (
            " (no latency gain from INT8 at this model size; the INT8 file is smaller)"
            if i8 >= 0.9 * f32
            else ""
        )
        + ". Times exclude image decoding and ROI detection."
    )
    L.append(f"\nModel files total (all three models): {img['total_bytes'] / 1e6:.2f} MB.\n")
    L += _applicability(reports)
    L.append("## Known failure modes and limits\n")
    L.append(wc.common_limits(pop))
    L.append(
        "- **Learns the source, not the bone.** Image features identify the X-ray source almost perfectly, and "
        "sources differ in mean T-score; LOSO AUCs near or below 0.5 show that whatever the model learned does "
        "not transfer to an unseen unit.\n"
        "- ROI detection is heuristic: it can miss the joint on tightly collimated, rotated, flexed or "
        "post-operative knees and then crops femur or tibia shaft; the scale estimate assumes the knee width "
        "at the joint is anatomically similar across patients (it also varies with body size and sex).\n"
        "- The development images are re-encoded JPEG exports of unknown processing; DICOM from other vendors "
        "may look different.\n"
    )
    L.append(f"## Citation\n\n{wc.CITATION}\n")
    (md / "CARD.md").write_text("\n".join(L))

    # ---------------------------------------------------------------- knee-fused
    fd = out / "knee-fused"
    fz = img["fused"]
    fgov = {
        "added_value_over_clinical": gov["added_value_over_clinical"],
        "used_for_referral": passes,
        "display": gov["display"],
    }
    fman = {
        "schema": 1,
        "id": "knee-fused",
        "version": "1.0.0",
        "task": "bone_density",
        "kind": "fused",
        "body_part": "KNEE",
        "view": "AP",
        "intended_use": (
            "EXPERIMENTAL: late fusion of the clinical model and the knee-image model. Not used for "
            "the recommendation: it did not add value over the clinical model."
            if not passes
            else "Late fusion of clinical and knee-image models."
        ),
        "reference_standard": "QUS T-score",
        "files": wc.files_entry(fd, [("onnx_fp32", "knee_fused.onnx")]),
        "inputs": [
            {
                "name": "clinical",
                "shape": [None, 4],
                "dtype": "float32",
                "features": ["age_years", "sex_female", "weight_kg", "bmi"],
                "feature_units": clin["final_model"]["feature_doc"],
            },
            {
                "name": "image",
                "shape": [None, 3],
                "dtype": "float32",
                "features": [
                    "knee-image:p_t_le_-1",
                    "knee-image:p_t_le_-2.5",
                    "knee-image:t_score",
                ],
                "notes": "outputs of the knee-image model for the same radiograph, each the mean "
                "over the detected knees ('<model id>:<output>')",
            },
        ],
        "depends_on": ["knee-clinical", "knee-image"],
        "outputs": [
            {"name": "p_t_le_-1", "meaning": "fused calibrated probability T <= -1"},
            {"name": "p_t_le_-2.5", "meaning": "fused calibrated probability T <= -2.5"},
            {"name": "t_score", "meaning": "fused T-score estimate"},
            {"name": "t_score_sd", "meaning": "residual SD of the fused T-score (OOF)"},
        ],
        "calibration": {
            "method": "logistic stacking on out-of-fold calibrated logits (clinical, image) is itself "
            "the calibration; baked into the graph",
            "baked_into_graph": True,
            "stack": fz["stack"],
            "fitted_on": fz["stack_fitted_on"],
        },
        "metrics": {
            k: {
                "fused": v[k]["fused"],
                "clinical_same_folds": v[k]["clinical_same_folds"],
                "added_value_over_clinical": v[k]["added_value_over_clinical"],
            }
            for k in TT
        },
        "governance": fgov,
        "reference_outputs": fz["reference_outputs"],
        "runtime_notes": {
            "parity": {
                "onnx_vs_numpy_max_abs": fz["onnx_vs_numpy_max_abs"],
                "openvino_vs_onnx_max_abs": fz["openvino_vs_onnx_max_abs"],
            }
        },
        "card": "CARD.md",
    }
    (fd / "manifest.json").write_text(json.dumps(fman, indent=1))
    F = ["# knee-fused 1.0.0 - EXPERIMENTAL late fusion (clinical + knee image)\n"]
    F.append("## Status and intended use\n")
    F.append(
        ("**Experimental, not used for the recommendation.** " if not passes else "")
        + "A small ONNX graph that recomputes the clinical model's calibrated logits from `clinical` [N,4] and "
        "combines them with the knee-image model outputs `image` [N,3] (p_t_le_-1, p_t_le_-2.5, t_score, each "
        "the mean over the knees of the image) by logistic stacking (probabilities) and linear stacking "
        "(T-score). Contraindications as for knee-clinical and knee-image.\n"
    )
    F.append("## Stacker\n")
    for k, s in fz["stack"].items():
        F.append(
            f"- {k}: intercept {s['intercept']:.4f}, clinical weight {s['coef_clinical']:.4f}, image weight "
            f"{s['coef_image']:.4f}"
            + (f", residual SD {s['residual_sd']:.4f}" if "residual_sd" in s else "")
        )
    F.append(
        f"\nFitted on {fz['stack_fitted_on']} (clinical calibrated logit / T-score and the CNN's out-of-fold "
        "logit / T-score, with the CNN's Platt step only where it was applied). The image enters through "
        "logit(p) of the knee-image outputs. An image weight near 0 means the stacker learned to ignore the "
        "image; a negative weight means the out-of-fold image score ran opposite to the label, i.e. the "
        "image model's in-sample direction does not transfer.\n"
    )
    F.append("## Validation: added value over the clinical model (same patients, same folds)\n")
    F.append(
        "| target | clinical CV | fused CV | diff CV | clinical LOSO | fused LOSO | diff LOSO |"
    )
    F.append("| --- | --- | --- | --- | --- | --- | --- |")
    for k in TT:
        e = v[k]
        F.append(
            f"| {k} | {wc.ci(e['clinical_same_folds']['cv'])} | {wc.ci(e['fused']['cv'])} | "
            f"{wc.dci(e['added_value_over_clinical']['cv'])} | {wc.ci(e['clinical_same_folds']['loso'])} | "
            f"{wc.ci(e['fused']['loso'])} | {wc.dci(e['added_value_over_clinical']['loso'])} |"
        )
    F.append(
        "\nAll image variants tried (texture, CNN, self-supervised pretraining, ordinal head) are in "
        "models/knee-image/CARD.md; none passes the rule.\n"
        if not any(any_pass.values())
        else ""
    )
    F.append(
        f"Baselines on the same patients (age, OSTA, source-only) are in models/knee-image/CARD.md and "
        f"models/knee-clinical/CARD.md. Parity: ONNX vs numpy {fz['onnx_vs_numpy_max_abs']:.1e}, OpenVINO (f32) vs "
        f"ONNX {fz['openvino_vs_onnx_max_abs']:.1e}.\n"
    )
    F.append("## Limits\n")
    F.append(wc.common_limits(pop))
    F.append(
        "- The stacker's second level was fitted on OOF predictions of the same patients it is evaluated on "
        "(second-level CV), a mild optimism for a 3-parameter model.\n"
    )
    F.append(f"## Citation\n\n{wc.CITATION}\n")
    (fd / "CARD.md").write_text("\n".join(F))
