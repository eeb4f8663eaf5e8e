"""Evaluate the CT L1 method on phantom CT series: HU error, ROI placement, refusals, checks.

Fixed seeds. Each case writes a real DICOM series to a temporary folder, reads it through
the intake (edgeosteo.intake.ct_series) and measures T12, L1 and L2 through the same stage
the CLI runs, with the tap moved off the body's centre by up to TAP_JITTER_MM. Writes
tools/reports/ct-l1.json (per-case seeds and values), the "accuracy" section of
models/ct-l1/method.json and models/ct-l1/CARD.md from it.
Run: PYTHONPATH=. .venv/bin/python tools/eval_ct.py
"""

from __future__ import annotations

import json
import sys
import tempfile
from multiprocessing import Pool
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tools"))
sys.path.insert(0, str(REPO))

from phantoms import ct, stats  # noqa: E402

from edgeosteo.errors import IntakeError  # noqa: E402
from edgeosteo.intake.ct_series import read_ct_series  # noqa: E402
from edgeosteo.methods import MethodRegistry, measure_series  # noqa: E402
from edgeosteo.methods.ct_l1 import parse_request  # noqa: E402

N_ACCURACY = 48
N_BAD_EACH = 3
N_DRIFT = 8
NOISE_SD = (10.0, 20.0, 30.0, 40.0)
THICKNESS = (1.0, 1.25, 2.5, 3.0, 5.0)
KVP = (120.0, 120.0, 100.0, 140.0)
TAP_JITTER_MM = 3.0
TAP_WIDE_MM = (6.0, 9.0)
N_TAP = 12
MISPLACED_HU = 15.0  # a measured value this far from the truth: the ROI was misplaced
LEVELS = ("T12", "L1", "L2")
REPORT = REPO / "tools" / "reports" / "ct-l1.json"
CARD = REPO / "models" / "ct-l1" / "method.json"
CARD_MD = REPO / "models" / "ct-l1" / "CARD.md"
REGISTRY = MethodRegistry(REPO / "models")


def condition(seed: int) -> dict:
    """The accuracy series' imaging: noise, thickness and kV cycle; every sixth is 512x512,
    every fifth has a contrast label."""
    return {
        "noise_sd_hu": NOISE_SD[seed % len(NOISE_SD)],
        "slice_thickness_mm": THICKNESS[(seed // 4) % len(THICKNESS)],
        "kvp": KVP[(seed // 2) % len(KVP)],
        "contrast": seed % 5 == 4,
        "matrix": 512 if seed % 6 == 5 else 256,
        "levels": ("T11", "T12", "L1", "L2", "L3"),
    }


def jittered_tap(truth, level: str, rng, jitter_mm: float = TAP_JITTER_MM) -> tuple[float, float]:
    col, _ = truth.sagittal_tap(level)
    lv = truth.level(level)
    col += rng.uniform(-jitter_mm, jitter_mm) / truth.pixel_spacing_mm
    z = lv.z_centre_mm + rng.uniform(-jitter_mm, jitter_mm)
    row = float(np.argmin(np.abs(np.asarray(truth.slice_z_mm) - z)))
    return (round(float(col), 2), row)


def run(folder: Path, level: str, tap) -> dict:
    series = read_ct_series(folder)
    request = parse_request({"level": level, "sagittal": list(tap)})
    return measure_series(request, series, REGISTRY).to_dict()


def accuracy_case(seed: int) -> dict:
    cond = condition(seed)
    rng = np.random.default_rng(10_000 + seed)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        truth = ct.make_series(Path(tmp), seed, **cond)
        for level in LEVELS:
            tap = jittered_tap(truth, level, rng)
            r = run(Path(tmp), level, tap)
            rows.append(
                {
                    "level": level,
                    "truth_hu": round(truth.level(level).core_hu, 2),
                    "tap": list(tap),
                    "status": r["status"],
                    "value": r.get("value"),
                    "sd": r.get("sd"),
                    "code": r.get("code"),
                    "slices": len(r.get("slices") or ()),
                    "band": r.get("band"),
                    "truth_band": REGISTRY.get("ct-l1").band_for(  # type: ignore[union-attr]
                        round(truth.level(level).core_hu, 1)
                    )[0],
                    "warned": sorted(
                        c["check"] for c in r.get("checks") or () if c["status"] == "warn"
                    ),
                }
            )
    return {"seed": seed, **{k: v for k, v in cond.items() if k != "levels"}, "levels": rows}


def tap_case(seed: int) -> dict:
    """Taps further off the body's centre (TAP_WIDE_MM): where the method stops finding the
    body, and whether the value moves."""
    cond = condition(seed)
    rng = np.random.default_rng(40_000 + seed)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        truth = ct.make_series(Path(tmp), seed, **cond)
        for jitter in TAP_WIDE_MM:
            for level in LEVELS:
                r = run(Path(tmp), level, jittered_tap(truth, level, rng, jitter))
                rows.append(
                    {
                        "jitter_mm": jitter,
                        "level": level,
                        "status": r["status"],
                        "code": r.get("code"),
                        "error_hu": (
                            round(r["value"] - truth.level(level).core_hu, 2)
                            if r["status"] == "measured"
                            else None
                        ),
                    }
                )
    return {"seed": seed, "rows": rows}


def bad_case(index: int) -> dict:
    kind = ct.BAD_KINDS[index % len(ct.BAD_KINDS)]
    seed = 2000 + index
    expected = {
        "gap": "intake.ct_slice_gap",
        "mixed": "intake.ct_mixed_series",
        "localizer": "intake.ct_localizer_mixed",
        "uneven": "intake.ct_uneven_spacing",
        "two_slices": "intake.ct_not_a_series",
        "single_slice": "intake.ct_not_a_series",
        "corrupt": "intake.ct_corrupt_slice",
    }[kind]
    with tempfile.TemporaryDirectory() as tmp:
        ct.make_bad(Path(tmp), kind, seed, matrix=128)
        try:
            read_ct_series(Path(tmp))
            code = None
        except IntakeError as exc:
            code = exc.code
    return {"seed": seed, "kind": kind, "expected": expected, "code": code}


def drift_case(index: int) -> dict:
    seed = 3000 + index
    offset = (-60.0, 60.0, -45.0, 45.0)[index % 4]
    with tempfile.TemporaryDirectory() as tmp:
        truth = ct.make_series(
            Path(tmp), seed, calibration_offset_hu=offset, levels=("T12", "L1", "L2")
        )
        r = run(Path(tmp), "L1", truth.sagittal_tap("L1"))
    warned = sorted(c["check"] for c in r.get("checks") or () if c["status"] == "warn")
    return {"seed": seed, "offset_hu": offset, "status": r["status"], "warned": warned}


def _rows(cases, **where):
    out = []
    for case in cases:
        if any(case[k] != v for k, v in where.items() if k != "level"):
            continue
        out.extend(r for r in case["levels"] if where.get("level") in (None, r["level"]))
    return out


def _errors(rows):
    return [r["value"] - r["truth_hu"] for r in rows if r["status"] == "measured"]


def summarise_taps(taps) -> dict:
    out = {}
    for jitter in TAP_WIDE_MM:
        rows = [r for case in taps for r in case["rows"] if r["jitter_mm"] == jitter]
        errors = [abs(r["error_hu"]) for r in rows if r["status"] == "measured"]
        out[f"within_{jitter:g}_mm"] = {
            "n": len(rows),
            "refused": len(rows) - len(errors),
            "refused_codes": sorted({r["code"] for r in rows if r["status"] != "measured"}),
            "median_abs_error": float(np.median(errors)) if errors else None,
            "max_abs_error": float(np.max(errors)) if errors else None,
        }
    return out


def summarise(acc, bad, drift, taps=()) -> dict:
    rows = _rows(acc)
    measured = [r for r in rows if r["status"] == "measured"]
    errors = _errors(rows)
    misplaced = [r for r in measured if abs(r["value"] - r["truth_hu"]) > MISPLACED_HU]
    accuracy = {
        **stats.error_summary(errors),
        "series": len(acc),
        "measurements": len(rows),
        "measured": len(measured),
        "refused_on_good_series": len(rows) - len(measured),
        "refused_codes": sorted({r["code"] for r in rows if r["status"] != "measured"}),
        "misplaced_over_15_hu": len(misplaced),
        "band_agreement": round(
            sum(r["band"] == r["truth_band"] for r in measured) / max(1, len(measured)), 4
        ),
        "hu_range": [min(r["truth_hu"] for r in rows), max(r["truth_hu"] for r in rows)],
        "sd_over_noise_median": float(
            np.median(
                [
                    r["sd"] / c["noise_sd_hu"]
                    for c in acc
                    for r in c["levels"]
                    if r["status"] == "measured"
                ]
            )
        ),
        "min_slices": min(r["slices"] for r in measured) if measured else 0,
    }
    subgroups = {}
    for sd in NOISE_SD:
        sub = _errors(_rows(acc, noise_sd_hu=sd))
        subgroups[f"noise_sd_{sd:g}"] = _sub(sub, len(_rows(acc, noise_sd_hu=sd)))
    for th in THICKNESS:
        sub = _rows(acc, slice_thickness_mm=th)
        subgroups[f"thickness_{th:g}_mm"] = _sub(_errors(sub), len(sub))
    for m in (256, 512):
        sub = _rows(acc, matrix=m)
        subgroups[f"matrix_{m}"] = _sub(_errors(sub), len(sub))
    for level in LEVELS:
        sub = _rows(acc, level=level)
        subgroups[f"level_{level}"] = _sub(_errors(sub), len(sub))
    right = [b for b in bad if b["code"] == b["expected"]]
    refusal = {
        "n": len(bad),
        "refused_right_code": len(right),
        "rate_right_code": round(len(right) / len(bad), 4),
        "rate_right_code_ci95": list(stats.wilson_ci(len(right), len(bad))),
        "by_kind": {
            k: {
                "n": sum(b["kind"] == k for b in bad),
                "right_code": sum(b["kind"] == k for b in right),
            }
            for k in ct.BAD_KINDS
        },
    }
    calibrated = [r for r in rows if r["status"] == "measured"]
    false_alarms = [r for r in calibrated if {"air_drift", "fat_drift"} & set(r["warned"])]
    flagged = [d for d in drift if {"air_drift", "fat_drift"} & set(d["warned"])]
    contrast_rows = [
        r for c in acc if c["contrast"] for r in c["levels"] if r["status"] == "measured"
    ]
    kvp_rows = [
        r for c in acc if c["kvp"] != 120.0 for r in c["levels"] if r["status"] == "measured"
    ]
    checks = {
        "drifted_series": len(drift),
        "drift_flagged": len(flagged),
        "offsets_hu": sorted({d["offset_hu"] for d in drift}),
        "calibrated_measurements": len(calibrated),
        "calibrated_false_drift_flags": len(false_alarms),
        "contrast_labelled": len(contrast_rows),
        "contrast_warned": sum("contrast" in r["warned"] for r in contrast_rows),
        "kvp_not_120": len(kvp_rows),
        "kvp_warned": sum("kvp_not_120" in r["warned"] for r in kvp_rows),
    }
    return {
        "accuracy": accuracy,
        "subgroups": subgroups,
        "refusal": refusal,
        "checks": checks,
        "taps": summarise_taps(taps),
    }


def _sub(errors, n) -> dict:
    a = np.abs(np.asarray(errors, dtype=np.float64))
    return {
        "n": n,
        "measured": len(errors),
        "median_abs_error": float(np.median(a)) if len(a) else None,
    }


def write_card_md(s: dict) -> str:
    a, r, c = s["accuracy"], s["refusal"], s["checks"]
    sub_rows = "\n".join(
        f"| {k} | {v['n']} | {v['measured']} | "
        + (f"{v['median_abs_error']:.2f}" if v["median_abs_error"] is not None else "-")
        + " |"
        for k, v in s["subgroups"].items()
    )
    kind_rows = "\n".join(
        f"| {k} | {v['n']} | {v['right_code']} |" for k, v in r["by_kind"].items()
    )
    n20 = s["subgroups"]["noise_sd_20"]
    ci = r["rate_right_code_ci95"]
    tap_lines = "\n".join(
        f"  within {k.split('_')[1]} mm: {v['refused']} of {v['n']} refused"
        f" ({', '.join(v['refused_codes']) or 'none'}), median |error| "
        f"{v['median_abs_error']:.2f} HU, largest {v['max_abs_error']:.2f} HU;"
        for k, v in s["taps"].items()
    )
    offsets = ", ".join(f"{o:+g}" for o in c["offsets_hu"])
    return f"""# Vertebral trabecular attenuation on CT (ct-l1)

## What is measured and where

An axial CT series (chest, abdomen or spine; a folder holding one series, read by
edgeosteo/intake/ct_series.py) is shown as a sagittal reformat through the spine. The user
taps the centre of the vertebral body and confirms the level: L1 by default (the first
vertebra below the lowest rib-bearing one), or T12 or L2. On the tapped slice, 48 rays from
the tap find the body's cortical shell (the first rise to half-way between the core's HU and
the shell's peak, at least 200 HU above the core); an ellipse is fitted to the crossings
(rays running far past the others, through the basivertebral foramen or a thin wall, are
dropped, and the fit is repeated from the ellipse's centre). The slices above and below are
followed while a shell is found and the ROI's mean stays within 60 HU of the tapped slice's
(an endplate brightens it; a disc has no shell). On the middle half (at least 3) of the
slices between the endplates, an elliptical ROI is placed inside the outline: 60 % of its
left-right and 55 % of its front-back half-width, shifted forward by 15 % of the
front-back half-width, at least 3 mm inside the shell, so that it keeps off the cortex and
the basivertebral vein at the back of the body, as Pickhardt's oval ROI in the anterior
trabecular body does. The value is the mean HU of all ROI voxels; the SD, each slice's mean,
the ROI's size and the outlines are reported and drawn.

Refusals: ct_needs_series (a single image), ct_level_unknown (not T12, L1 or L2),
ct_tap_outside, ct_body_not_found (a tap on a disc, soft tissue or the canal),
ct_too_few_slices (fewer than 3 slices between the endplates: slices thicker than about
8 mm), ct_implausible (a mean outside -100 to 700 HU). The intake refuses, with its own
codes, a folder that is not one readable axial series (a missing slice, two series, a
localizer, unequal spacing, fewer than 3 slices, a corrupt slice, another orientation).

Checks (each reported with its value; none changes the number): tube voltage (not 120 kV:
warned, no correction applied), intravenous contrast (ContrastBolusAgent present: warned,
with the published effect), slice thickness over 5 mm, a level other than L1, and reference
ROIs on the middle measured slice: air in the image's corners outside the patient (warned
beyond -1000 +/- 40 HU) and subcutaneous fat (the lower tissue class of a 2-25 mm ring inside
the skin; warned beyond -100 +/- 35 HU), which flag a scanner whose calibration drifted.

## Cut-offs (published)

The bands, worst first (models/ct-l1/method.json):

- L1 <= 110 HU: osteoporosis_likely. Pickhardt PJ, Pooler BD, Lauder T, Munoz del Rio A,
  Bruce RJ, Binkley N. Opportunistic screening for osteoporosis using abdominal computed
  tomography scans obtained for other indications. Ann Intern Med 2013. 1867 adults (2067
  CT-DXA pairs within 6 months, one academic centre, 10 years), trabecular ROI at T12-L5
  with an emphasis on L1: an L1 threshold of 110 HU was more than 90 % specific for
  distinguishing DXA osteoporosis from osteopenia and normal BMD.
- L1 <= 160 HU: low_bone_mass. Same study: an L1 threshold of 160 HU or less was 90 %
  sensitive. Positive predictive values were 68 % or more below 100 HU and negative
  predictive values 99 % above 200 HU; intravenous contrast did not affect performance.
- otherwise normal (between 160 and 200 HU osteoporosis is not ruled out).

How far this was verified here: the title, authors, journal, year, cohort and the figures
above were read in the study's abstract (two copies); the volume and pages (commonly cited
as 158:588-595) were not verified. The box bands "low_bone_mass" at the sensitive
threshold: it is the threshold for finding osteoporosis, not a DXA osteopenia definition.

Contrast: Pickhardt PJ, Lauder T, Pooler BD, et al. Effect of IV contrast on lumbar
trabecular attenuation at routine abdominal CT: correlation with DXA and implications for
opportunistic osteoporosis screening. Osteoporos Int 2016;27(1):147-152 (abstract read): in
157 adults the L1 attenuation on the portal venous series was +11.2 HU (SD 19.2; 95 % CI
8.2-14.2) above the unenhanced series, with similar ROC performance; the box keeps the
band and warns (a value up to about 11 HU above a threshold may be below it unenhanced).
Tube voltage: Garner HW, Paturzo MM, Gaudier G, Pickhardt PJ, Wessell DE. Variation in
attenuation in L1 trabecular bone at different tube voltages: caution is warranted when
screening for osteoporosis with the use of opportunistic CT. AJR (title and design read;
its figures not verified here): trabecular HU differ between 80, 100 and 140 kV, so the box
warns below or above 120 kV and applies no correction.

Norms (not shown beside the value yet): Jang S et al. (with Pickhardt PJ; the other
co-authors not verified here). Opportunistic osteoporosis screening at routine abdominal
and thoracic
CT: normative L1 trabecular attenuation values in more than 20 000 adults. Radiology
2019;291(2):360-367 (abstract read): 20 374 CT examinations at 120 kV; mean L1 attenuation
fell linearly by 2.5 HU a year, from 226 +/- 44 HU under 30 years to 89 +/- 38 HU at 90 or
older; women read higher than men until menopause. Its age- and sex-specific tables were
not available here.

## This implementation on phantoms (tools/eval_ct.py, tools/reports/ct-l1.json)

Reference standard: phantom series (tools/phantoms/ct.py) written as real CT DICOM files
(one file a slice, shuffled): vertebral bodies T11-L3 as elliptic cylinders with a 1.5 mm
cortical shell and endplates around a trabecular core of known HU (50-270 HU), the
basivertebral vein and its foramen at mid-height, discs, the spinal canal in a ring of
posterior elements with a spinous process, ribs on the thoracic levels, the aorta, muscle,
subcutaneous fat and air; each slice averages three planes across its thickness, is blurred
(0.7 mm) and gets Gaussian noise of SD 10-40 HU; slices 1-5 mm, 256x256 and 512x512, 100-140
kV and contrast labels. Taps moved up to {TAP_JITTER_MM:g} mm off the body's centre
(front-back and up-down).

- Accuracy: {a["measured"]} of {a["measurements"]} measurements on {a["series"]} series
  (T12, L1 and L2 each); median |error| {a["median_abs_error"]:.2f} HU (95 % CI
  {a["median_abs_error_ci95"][0]:.2f}-{a["median_abs_error_ci95"][1]:.2f}), 95th percentile
  |error| {a["p95_abs_error"]:.2f} HU, mean error {a["mean_error"]:.2f} HU; at noise SD
  20 HU: median |error| {n20["median_abs_error"]:.2f} HU ({n20["measured"]} measurements;
  goal 5 HU). ROI placement failures: {a["refused_on_good_series"]} refused on good series,
  {a["misplaced_over_15_hu"]} measured more than {MISPLACED_HU:g} HU from the truth. Band
  agreement with the truth's band: {a["band_agreement"]:.3f}. The ROI's SD over the noise
  SD: median {a["sd_over_noise_median"]:.2f} (1.0: no cortex or vein in the ROI).
- Taps further off the centre (front-back and up-down, {N_TAP} series, T12, L1 and L2):
{tap_lines}
- Bad series: {r["refused_right_code"]} of {r["n"]} refused with the right code (rate
  {r["rate_right_code"]:.3f}, 95 % CI {ci[0]:.3f}-{ci[1]:.3f}).
- Calibration: {c["drift_flagged"]} of {c["drifted_series"]} series drifted by
  {offsets} HU flagged; {c["calibrated_false_drift_flags"]} false
  flags on {c["calibrated_measurements"]} calibrated measurements. Measurements on
  contrast-labelled series warned {c["contrast_warned"]} of {c["contrast_labelled"]}; on
  series at kV other than 120, {c["kvp_warned"]} of {c["kvp_not_120"]}.

## Subgroups

| condition | n | measured | median abs error (HU) |
|---|---|---|---|
{sub_rows}

| bad series | n | right code |
|---|---|---|
{kind_rows}

## Baselines

No patient CT with DXA exists on this box or in its test data, so the attenuation cannot
be compared here with DXA, age alone or OSTA. The published accuracy above has not been
re-validated by this box on local patients or scanners. Real CT files in pydicom-data and
deid-data go through the intake (tests/test_ct_series.py): single slices are refused as not
a series, a real 5-slice series is read; none has a vertebral body to measure.

## Limits

- Phantom bodies are elliptic cylinders with a uniform core and a continuous shell; real
  bodies are kidney-shaped with a concave back, osteophytes, sclerosis, Schmorl's nodes,
  fractures (a fractured L1 should be measured at another level) and a heterogeneous core.
  The outline finder has not been tried on a real CT.
- The level is the user's: the box does not count the vertebrae (the automatic suggestion
  of the issue is not built). A wrong level changes the value by the level-to-level
  difference (in adults L1 reads a few HU above L2 on average).
- HU is not BMD: the thresholds come from one centre's scanners at 120 kV; other scanners,
  kV, reconstruction kernels and iterative reconstruction move HU. No kV or contrast
  correction is applied; both are warned.
- Age- and sex-specific norms are not shown yet.
- Air cannot show a scanner reading low when the stored values clip at -1024 HU (12-bit
  unsigned storage with intercept -1024, common in CT): air then reads -1024 whatever the
  drift. The phantoms store that way, so negative drifts were flagged by fat alone.
- The phantoms' core is uniform, so the error figures above are the method's placement and
  partial-volume error under noise, not the heterogeneity of real trabecular bone.
"""


def main() -> None:
    with Pool(2) as pool:
        acc = pool.map(accuracy_case, range(N_ACCURACY))
        bad = pool.map(bad_case, range(N_BAD_EACH * len(ct.BAD_KINDS)))
        drift = pool.map(drift_case, range(N_DRIFT))
        taps = pool.map(tap_case, range(500, 500 + N_TAP))
    summary = summarise(acc, bad, drift, taps)
    REPORT.parent.mkdir(parents=True, exist_ok=True)
    REPORT.write_text(
        json.dumps(
            {**summary, "cases": acc, "bad_cases": bad, "drift_cases": drift, "tap_cases": taps},
            indent=1,
        )
    )
    card = json.loads(CARD.read_text(encoding="utf-8"))
    card["accuracy"] = summary
    CARD.write_text(json.dumps(card, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    CARD_MD.write_text(write_card_md(summary), encoding="utf-8")
    print(json.dumps({k: summary[k] for k in ("accuracy", "refusal", "checks")}, indent=1))


if __name__ == "__main__":
    main()
