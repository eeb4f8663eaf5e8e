"""Evaluate the vertebrae method (Genant six-point morphometry) on lateral spine phantoms.

Fixed seeds; taps placed within 3 px (1.2 mm) of the truth; writes
tools/reports/vertebrae.json, the "accuracy" section of models/vertebrae/method.json and
models/vertebrae/CARD.md. Run: PYTHONPATH=. python tools/eval_vertebrae.py
"""

from __future__ import annotations

import json
import sys
from collections import Counter
from multiprocessing import Pool
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tools"))
sys.path.insert(0, str(REPO))

from phantoms import spine, stats  # noqa: E402

from edgeosteo.config import MeasurementSettings  # noqa: E402
from edgeosteo.intake import read_image  # noqa: E402
from edgeosteo.measurement import MeasurementRequest  # noqa: E402
from edgeosteo.methods import MethodRegistry, measure  # noqa: E402
from edgeosteo.methods.vertebrae import SNAP_FRACTION, grade, propose_next  # noqa: E402

N_MAIN = 300
N_REPEAT = 40
N_REFUSE = 30
N_PHOTO = 60
JITTER_PX = 3.0
CONDITIONS = [
    {"bits": 16, "monochrome1": False, "noise": "normal"},
    {"bits": 8, "monochrome1": False, "noise": "normal"},
    {"bits": 16, "monochrome1": True, "noise": "normal"},
    {"bits": 16, "monochrome1": False, "noise": "high"},
    {"bits": 16, "monochrome1": False, "noise": "low"},
]


def condition_of(seed: int) -> dict:
    return CONDITIONS[seed % len(CONDITIONS)]


def phantom_for(seed: int) -> spine.SpinePhantom:
    return spine.make(seed, **condition_of(seed))


def taps_for(ph: spine.SpinePhantom, seed: int, radius: float = JITTER_PX):
    return spine.jitter(ph.points, np.random.default_rng(seed + 7_000_000), radius)


def run_one(ph: spine.SpinePhantom, taps, body_part: str = "LSPINE"):
    reg = MethodRegistry(REPO / "models")
    rad = read_image(spine.dicom_bytes(ph, body_part)).radiograph
    req = MeasurementRequest("vertebrae", tuple(taps), {"first_level": ph.first_level})
    return measure(req, rad, True, body_part, "LATERAL", reg, MeasurementSettings())


def truth_table(ph: spine.SpinePhantom) -> list[dict]:
    hs = np.array(ph.heights)
    out = []
    for k in range(ph.n):
        ha, hm, hp = hs[k]
        r = {"wedge": ha / hp, "biconcave": hm / hp}
        nb = [hs[j, 2] for j in (k - 1, k + 1) if 0 <= j < ph.n]
        if len(nb) == 2:
            r["crush"] = hp / float(np.mean(nb))
        red = max(max(0.0, 1 - v) for v in r.values())
        out.append({"ratios": r, "grade": grade(red), "reduction": red})
    return out


def main_case(seed: int) -> dict:
    ph = phantom_for(seed)
    res = run_one(ph, taps_for(ph, seed)).to_dict()
    row: dict = {"seed": seed, "condition": condition_of(seed), "planted": ph.planted}
    truth = truth_table(ph)
    row["truth_grades"] = [t["grade"] for t in truth]
    if res["status"] != "measured":
        row["refused"] = res["code"]
        return row
    row["value"] = res["value"]
    row["band"] = res["band"]
    row["grades"] = [v["grade"] for v in res["details"]["vertebrae"]]
    row["reductions"] = [v["reduction"] for v in res["details"]["vertebrae"]]
    errs = {"wedge": [], "biconcave": [], "crush": []}
    for v, t in zip(res["details"]["vertebrae"], truth, strict=True):
        for key, val in v["ratios"].items():
            if key in t["ratios"]:
                errs[key].append(100 * (val - t["ratios"][key]))
    row["ratio_errors_pp"] = errs
    used = np.array(res["points_used"]).reshape(-1, 6, 2)
    truth_pts = np.array(ph.points).reshape(-1, 6, 2)
    hits, total = 0, 0
    for k in range(1, ph.n):
        prop = propose_next(used[:k])
        radius = max(SNAP_FRACTION * ph.heights[k][2], 3.0)
        d = np.linalg.norm(prop - truth_pts[k], axis=1)
        hits += int((d <= radius).sum())
        total += 6
    row["proposal_hits"], row["proposal_total"] = hits, total
    return row


def photo_case(seed: int) -> dict:
    """A phone photo of the printed film (8-bit film, rectified with its true corners)."""
    ph = spine.make(seed, bits=8)
    rad, truth_pts = spine.photo(ph, seed)
    given = spine.jitter(truth_pts, np.random.default_rng(seed + 7_000_000), JITTER_PX)
    req = MeasurementRequest("vertebrae", tuple(given), {"first_level": ph.first_level})
    reg = MethodRegistry(REPO / "models")
    res = measure(req, rad, True, "LSPINE", "LATERAL", reg, MeasurementSettings()).to_dict()
    truth = truth_table(ph)
    row: dict = {"seed": seed, "truth_grades": [t["grade"] for t in truth]}
    if res["status"] != "measured":
        row["refused"] = res["code"]
        return row
    row["grades"] = [v["grade"] for v in res["details"]["vertebrae"]]
    row["errors_pp"] = [
        100 * (v["ratios"][k] - t["ratios"][k])
        for v, t in zip(res["details"]["vertebrae"], truth, strict=True)
        for k in ("wedge", "biconcave")
    ]
    return row


def repeat_case(seed: int) -> dict:
    ph = phantom_for(seed)
    worst = int(np.argmax([t["reduction"] for t in truth_table(ph)]))
    values = []
    for r in range(3):
        radius = 0.05 * ph.heights[worst][2]
        taps = spine.jitter(ph.points, np.random.default_rng(seed * 10 + r), radius)
        res = run_one(ph, taps).to_dict()
        if res["status"] != "measured":
            return {"seed": seed, "refused": res["code"]}
        values.append(100 * res["details"]["vertebrae"][worst]["reduction"])
    return {"seed": seed, "values": values}


def refuse_case(seed: int) -> dict:
    kind = "destroyed" if seed % 2 == 0 else "soft_tissue"
    if kind == "destroyed":
        ph = spine.make(seed, noise="destroyed", blur=8.0)
        taps = taps_for(ph, seed)
    else:
        ph = spine.make(seed)
        w = float(np.linalg.norm(np.subtract(ph.points[2], ph.points[0])))
        taps = [(x - 1.6 * w if x - 1.6 * w > 0 else x + 1.9 * w, y) for x, y in ph.points]
        taps = [(min(max(x, 1.0), ph.display.shape[1] - 2.0), y) for x, y in taps]
    res = run_one(ph, taps).to_dict()
    return {"seed": seed, "kind": kind, "status": res["status"], "code": res.get("code")}


def evaluate(workers: int = 2) -> dict:
    with Pool(workers) as pool:
        main_rows = pool.map(main_case, range(1000, 1000 + N_MAIN))
        rep_rows = pool.map(repeat_case, range(5000, 5000 + N_REPEAT))
        ref_rows = pool.map(refuse_case, range(9000, 9000 + N_REFUSE))
        photo_rows = pool.map(photo_case, range(3000, 3000 + N_PHOTO))
    measured = [r for r in main_rows if "refused" not in r]
    ratio = {}
    for key in ("wedge", "biconcave", "crush"):
        e = [x for r in measured for x in r["ratio_errors_pp"][key]]
        ratio[key] = stats.error_summary(e)
    tg = [g for r in measured for g in r["truth_grades"]]
    mg = [g for r in measured for g in r["grades"]]
    kappa = stats.weighted_kappa(tg, mg, 4)
    missed_23 = sum(1 for a, b in zip(tg, mg, strict=True) if a >= 2 and b < 2)
    n_23 = sum(1 for a in tg if a >= 2)
    exact = sum(1 for a, b in zip(tg, mg, strict=True) if a == b)
    hits = sum(r["proposal_hits"] for r in measured)
    total = sum(r["proposal_total"] for r in measured)
    success = hits / total
    taps_t4_l4 = 6 + 12 * 6 * (1 - success)
    rep = [r["values"] for r in rep_rows if "values" in r]
    repeat = stats.repeatability(np.array(rep))
    refused_ok = sum(1 for r in ref_rows if r["status"] == "refused")
    right_code = sum(1 for r in ref_rows if r.get("code") == "measurement.edge_not_found")
    subgroups = {}
    for c in CONDITIONS:
        name = f"{c['bits']}bit{'_MONOCHROME1' if c['monochrome1'] else ''}_noise-{c['noise']}"
        rows = [r for r in measured if r["condition"] == c]
        e = [x for r in rows for k in ("wedge", "biconcave") for x in r["ratio_errors_pp"][k]]
        t = [g for r in rows for g in r["truth_grades"]]
        m = [g for r in rows for g in r["grades"]]
        subgroups[name] = {
            "phantoms": len(rows),
            "median_abs_ratio_error_pp": float(np.median(np.abs(e))),
            "grade_exact_agreement": sum(a == b for a, b in zip(t, m, strict=True)) / len(t),
        }
    photo_ok = [r for r in photo_rows if "refused" not in r]
    pt = [g for r in photo_ok for g in r["truth_grades"]]
    pm = [g for r in photo_ok for g in r["grades"]]
    subgroups["photo_of_film_8bit"] = {
        "phantoms": len(photo_rows),
        "measured": len(photo_ok),
        "refused": dict(Counter(r["refused"] for r in photo_rows if "refused" in r)),
        "median_abs_ratio_error_pp": float(
            np.median(np.abs([x for r in photo_ok for x in r["errors_pp"]]))
        ),
        "grade_exact_agreement": sum(a == b for a, b in zip(pt, pm, strict=True)) / len(pt),
        "weighted_kappa": stats.weighted_kappa(pt, pm, 4),
        "grade_2_3_missed": sum(1 for a, b in zip(pt, pm, strict=True) if a >= 2 and b < 2),
        "grade_2_3_truth": sum(1 for a in pt if a >= 2),
    }
    missed_rows = []
    for r in measured:
        for k, (a, b) in enumerate(zip(r["truth_grades"], r["grades"], strict=True)):
            if a >= 2 and b < 2:
                missed_rows.append(
                    {
                        "seed": r["seed"],
                        "type": r["planted"].get("type"),
                        "truth_reduction": round(r["planted"]["reduction"], 4),
                        "measured_reduction": r["reductions"][k],
                        "measured_grade": b,
                    }
                )
    # the planted vertebra's reduction error by how deep the deformity is
    by_depth = {}
    for lo, hi in ((0.0, 0.2), (0.2, 0.3), (0.3, 0.5)):
        e = [
            100 * (r["reductions"][r["planted"]["index"]] - r["planted"]["reduction"])
            for r in measured
            if r["planted"] and lo <= r["planted"]["reduction"] < hi
        ]
        by_depth[f"{int(100 * lo)}-{int(100 * hi)} %"] = {
            "n": len(e),
            "mean_error_pp": float(np.mean(e)),
            "median_abs_error_pp": float(np.median(np.abs(e))),
        }
    return {
        "method": "vertebrae",
        "phantoms": N_MAIN,
        "jitter_px": JITTER_PX,
        "measured": len(measured),
        "refused_on_good_phantoms": N_MAIN - len(measured),
        "ratio_error_pp": ratio,
        "grades": {
            "vertebrae": len(tg),
            "weighted_kappa": kappa,
            "exact_agreement": exact / len(tg),
            "grade_2_3_truth": n_23,
            "grade_2_3_missed": missed_23,
            "missed": missed_rows,
        },
        "planted_reduction_error_by_depth": by_depth,
        "propagation": {
            "proposed_points": total,
            "within_snap_radius": success,
            "within_snap_radius_ci95": list(stats.wilson_ci(hits, total)),
            "taps_needed_t4_l4": taps_t4_l4,
        },
        "repeatability_reduction_pp": repeat,
        "refusal": {
            "phantoms": N_REFUSE,
            "refused": refused_ok / N_REFUSE,
            "with_edge_not_found": right_code / N_REFUSE,
        },
        "subgroups": subgroups,
        "per_phantom": main_rows,
        "repeat_rows": rep_rows,
        "refusal_rows": ref_rows,
        "photo_rows": photo_rows,
    }


def accuracy_section(rep: dict) -> dict:
    return {
        "reference": "lateral spine phantoms (tools/phantoms/spine.py), exact truth",
        "phantoms": rep["phantoms"],
        "median_abs_error_wedge_pp": round(rep["ratio_error_pp"]["wedge"]["median_abs_error"], 2),
        "median_abs_error_biconcave_pp": round(
            rep["ratio_error_pp"]["biconcave"]["median_abs_error"], 2
        ),
        "median_abs_error_crush_pp": round(rep["ratio_error_pp"]["crush"]["median_abs_error"], 2),
        "p95_abs_error_biconcave_pp": round(rep["ratio_error_pp"]["biconcave"]["p95_abs_error"], 2),
        "weighted_kappa": round(rep["grades"]["weighted_kappa"], 3),
        "grade_2_3_missed": rep["grades"]["grade_2_3_missed"],
        "grade_2_3_truth": rep["grades"]["grade_2_3_truth"],
        "propagation_within_snap_radius": round(rep["propagation"]["within_snap_radius"], 3),
        "taps_needed_t4_l4": round(rep["propagation"]["taps_needed_t4_l4"], 1),
        "repeatability_within_sd_pp": round(rep["repeatability_reduction_pp"]["within_sd"], 2),
        "repeatability_icc": round(rep["repeatability_reduction_pp"]["icc_a1"], 3),
        "refusal_rate_destroyed": round(rep["refusal"]["refused"], 3),
    }


CARD = """# Vertebral morphometry (Genant six-point) — `vertebrae` {version}

## What is measured, and where
Lateral spine (LSPINE, TSPINE, TLSPINE) or lateral chest (CHEST) radiograph, view LATERAL.
Six taps per vertebra, top vertebra first: superior endplate anterior, middle, posterior;
inferior endplate anterior, middle, posterior (`first_level` = the top vertebra, T4..L5).
Each tap is moved to the endplate's outer edge along the vertebra's axis (intensity
profile, strongest edge of the right polarity within 8 % of the vertebra's height; given
and used positions are in `point_checks`). Scale-free: no millimetres are needed.

## Formula
Ha, Hm, Hp = anterior, middle, posterior heights (distance between the paired points).
Wedge ratio Ha/Hp, biconcave ratio Hm/Hp, crush ratio Hp / mean Hp of both neighbours
(only where both are measured). Reduction = 1 - the smallest ratio; Genant grade 0
(< 20 %), 1 (20-25 %), 2 (25-40 %), 3 (> 40 %), type from the ratio that gave it. A
reduction within 1 percentage point of 20, 25 or 40 % is marked `borderline`.
The six-point placement and the height ratios follow quantitative morphometry as reviewed
by Chou SH, Vokes T, Vertebral morphometry, J Clin Densitom (2015, online)
(doi:10.1016/j.jocd.2015.08.005), after McCloskey EV et al. (Osteoporos Int 1993) and
Eastell R et al. (J Bone Miner Res 1991), whose page numbers the card could not re-confirm;
the grades follow Genant HK, Wu CY, van Kuijk C, Nevitt MC, J Bone Miner Res
1993;8(9):1137-1148.

## Bands (value = summary)
- vertebral_fracture (value 2): any grade 2-3, or two or more grade 1.
- possible_vertebral_fracture (value 1): exactly one grade 1.
- no_vertebral_fracture (value 0): otherwise. The worst grade is `details.worst_grade`.
Published accuracy: Genant 1993 reported good agreement of semiquantitative grading with
quantitative morphometry between expert readers (kappa figures are in that paper; not
re-confirmed here, so not quoted).

## This implementation on phantoms ({phantoms} phantoms, taps within {jitter} px of truth)
| figure | value |
|---|---|
| median abs error Ha/Hp (wedge) | {mw} pp |
| median abs error Hm/Hp (biconcave) | {mb} pp (95th pct {pb} pp) |
| median abs error crush ratio | {mc} pp |
| grade weighted kappa | {kappa} |
| grade 2-3 missed | {missed} of {n23} |
| proposed points within snap radius | {prop} |
| taps needed for T4-L4 with propagation | {taps} |
| repeatability of the reduction (taps moved <= 5 % of height) | within-SD {wsd} pp, ICC {icc} |
| refusal on destroyed edges / taps on soft tissue | {refuse} |

Subgroups (median abs wedge/biconcave ratio error, exact grade agreement):
{subgroups}

Photos of printed films (8-bit film, phone photo rectified with the film's true corners,
{photo_n} phantoms): {photo_measured} measured, refused {photo_refused}; weighted kappa
{photo_kappa}, grade 2-3 missed {photo_missed} of {photo_n23}. A refused photo asks the
reader to drag the points named in `point_checks`.

**Grade 2-3 missed.** The goal was none; {missed} of {n23} grade 2-3 vertebrae were graded
1 (never 0). Each was planted within {miss_margin} percentage points of the 25 % boundary
and measured {miss_lo}-{miss_hi} %. A single grade 1 still points to `refer`, not `urgent`,
and a reduction within 1 point of a boundary is marked borderline on the page. The cause is
a bias that grows with the deformity: blur rounds the endplate's bend at the corners and
in a concave middle, so deep deformities are measured slightly shallower
(planted vertebra, mean error of the reduction by depth: {by_depth}).

## Inconsistent input
Refused with a typed reason in both languages and no grade: fewer than six points or not a
multiple of six (`measurement.too_few_points`), inferior points above superior ones,
middle points not between the corners, anterior and posterior swapped, vertebrae not going
down or overlapping (`measurement.points_out_of_order`), an unknown or too-long level
sequence, a `levels` list that is not contiguous, a gap of more than a vertebra's height
between two tapped vertebrae, i.e. one skipped (`measurement.level_sequence_invalid`), a
height that is not plausible (`measurement.implausible_height`), and an endplate edge not
found within 8 % of the height (`measurement.edge_not_found`, naming the point).

## Reference standard and baselines
Phantoms with exact truth are the only reference standard. The box has not re-validated
the published clinical accuracy on local patients; no radiographs with expert
semiquantitative reading of this body part are available, and no DXA-paired images, so no
age/OSTA comparison can be made. No lateral spine DICOM exists in the pydicom-data or
deid-data packages, so no real file was checked.

## Limits
Taps are snapped along the vertebra's axis only (not along the endplate). Photos were
evaluated only as rectified with their true corners (the photo review's corner taps).
Normal thoracic wedging (Ha/Hp about 0.85-0.9) is not modelled;
a grade is a height-reduction grade, not a diagnosis: a reader confirms every fracture.
"""


def write_outputs(rep: dict) -> None:
    (REPO / "tools" / "reports").mkdir(exist_ok=True)
    (REPO / "tools" / "reports" / "vertebrae.json").write_text(json.dumps(rep, indent=1) + "\n")
    card_path = REPO / "models" / "vertebrae" / "method.json"
    card = json.loads(card_path.read_text())
    acc = accuracy_section(rep)
    card["accuracy"] = acc
    card_path.write_text(json.dumps(card, indent=2, ensure_ascii=False) + "\n")
    subs = "\n".join(
        f"- {k}: {v['median_abs_ratio_error_pp']:.2f} pp, {v['grade_exact_agreement']:.3f}"
        f" ({v['phantoms']} phantoms)"
        for k, v in rep["subgroups"].items()
    )
    photo = rep["subgroups"]["photo_of_film_8bit"]
    missed = rep["grades"]["missed"]
    text = CARD.format(
        version=card["version"],
        phantoms=rep["phantoms"],
        jitter=rep["jitter_px"],
        mw=acc["median_abs_error_wedge_pp"],
        mb=acc["median_abs_error_biconcave_pp"],
        pb=acc["p95_abs_error_biconcave_pp"],
        mc=acc["median_abs_error_crush_pp"],
        kappa=acc["weighted_kappa"],
        missed=acc["grade_2_3_missed"],
        n23=acc["grade_2_3_truth"],
        prop=acc["propagation_within_snap_radius"],
        taps=acc["taps_needed_t4_l4"],
        wsd=acc["repeatability_within_sd_pp"],
        icc=acc["repeatability_icc"],
        refuse=acc["refusal_rate_destroyed"],
        subgroups=subs,
        photo_n=photo["phantoms"],
        photo_measured=photo["measured"],
        photo_refused=", ".join(f"{n} `{c}`" for c, n in photo["refused"].items()) or "none",
        photo_kappa=round(photo["weighted_kappa"], 3),
        photo_missed=photo["grade_2_3_missed"],
        photo_n23=photo["grade_2_3_truth"],
        miss_margin=round(100 * max((m["truth_reduction"] - 0.25 for m in missed), default=0), 1),
        miss_lo=round(100 * min((m["measured_reduction"] for m in missed), default=0), 1),
        miss_hi=round(100 * max((m["measured_reduction"] for m in missed), default=0), 1),
        by_depth="; ".join(
            f"{k}: {v['mean_error_pp']:+.2f} pp (n {v['n']})"
            for k, v in rep["planted_reduction_error_by_depth"].items()
        ),
    )
    (REPO / "models" / "vertebrae" / "CARD.md").write_text(text)


if __name__ == "__main__":
    report = evaluate()
    write_outputs(report)
    print(json.dumps(accuracy_section(report), indent=1))
