"""Site calibration: a referral threshold set from the site's own DXA results.

The labelled cases are the site's screenings that came back with a DXA result; the lowest
T-score is the reference (at or below -2.5, or at or below -1). For each rule the site may
calibrate (OSTA, OST for men; the clinical model's probability; each measurement method)
and each candidate threshold, the referral rate, sensitivity, specificity and PPV on those
cases with Wilson 95 % intervals; and the threshold that meets a target sensitivity, or the
site's DXA capacity per month at its screening volume.

The same score is read from a stored result (the labelled cases, the recent screenings) and
from a live decision (:func:`live_score`), so the threshold chosen on the first is applied
to the second unchanged. Pure: no I/O, no clock.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from edgeosteo.clinical import ClinicalAssessment
from edgeosteo.config import (
    CALIBRATION_REFERENCES,
    CALIBRATION_RULES,
    CalibrationSettings,
    PolicySettings,
)
from edgeosteo.errors import CalibrationRefused
from edgeosteo.findings import Findings
from edgeosteo.measurement import Measurement, MeasurementResult

Z95 = 1.959964
REFERENCE_CUTS: dict[str, float] = {"t_le_-2.5": -2.5, "t_le_-1": -1.0}
# "low": the rule refers at or below its threshold (a lower index is worse); "high": at or
# above (a probability, a fracture grade)
DIRECTION: dict[str, str] = {
    "osta": "low",
    "clinical_model": "high",
    "mci": "low",
    "cti": "low",
    "mcw": "low",
    "vertebrae": "high",
    "ct-l1": "low",
}
RULE_NAMES: dict[str, tuple[str, str]] = {
    "osta": ("OSTA (OST for men)", "OSTA（男性为OST）"),
    "clinical_model": ("clinical model probability", "临床模型概率"),
    "mci": ("MCI (metacarpal cortical index)", "MCI（掌骨皮质指数）"),
    "cti": ("CTI (cortical thickness index)", "CTI（股骨皮质厚度指数）"),
    "mcw": ("MCW (mandibular cortical width, mm)", "MCW（下颌骨皮质宽度，mm）"),
    "vertebrae": ("vertebral fracture grade (Genant)", "椎体骨折分级（Genant）"),
    "ct-l1": ("CT L1 attenuation (HU)", "CT L1衰减值（HU）"),
}
REFERENCE_NAMES: dict[str, tuple[str, str]] = {
    "t_le_-2.5": ("lowest DXA T-score -2.5 or below", "DXA最低T值 ≤ −2.5"),
    "t_le_-1": ("lowest DXA T-score -1 or below", "DXA最低T值 ≤ −1"),
}
assert set(DIRECTION) == set(CALIBRATION_RULES) == set(RULE_NAMES)
assert set(REFERENCE_CUTS) == set(CALIBRATION_REFERENCES)


@dataclass(frozen=True)
class Proportion:
    """k of n, with its Wilson score 95 % interval (None when n is 0)."""

    k: int
    n: int

    @property
    def value(self) -> float | None:
        return self.k / self.n if self.n else None

    @property
    def ci95(self) -> tuple[float, float] | None:
        if not self.n:
            return None
        n, p = self.n, self.k / self.n
        centre = (p + Z95**2 / (2 * n)) / (1 + Z95**2 / n)
        half = Z95 * math.sqrt(p * (1 - p) / n + Z95**2 / (4 * n * n)) / (1 + Z95**2 / n)
        return max(0.0, centre - half), min(1.0, centre + half)

    def to_dict(self) -> dict[str, object]:
        return {"k": self.k, "n": self.n, "value": self.value, "ci95": self.ci95}


@dataclass(frozen=True)
class LabelledScore:
    """One labelled case as a rule sees it: its score, and whether the DXA reference is met."""

    score: float
    positive: bool


@dataclass(frozen=True)
class OperatingRow:
    """What one threshold of one rule does on the labelled cases."""

    threshold: float
    referred: Proportion
    sensitivity: Proportion
    specificity: Proportion
    ppv: Proportion

    def to_dict(self) -> dict[str, object]:
        return {
            "threshold": self.threshold,
            **{
                name: getattr(self, name).to_dict()
                for name in ("referred", "sensitivity", "specificity", "ppv")
            },
        }


def refers(rule: str, score: float, threshold: float) -> bool:
    """Whether a score is at or beyond the threshold in the rule's risk direction."""
    return score <= threshold if DIRECTION[rule] == "low" else score >= threshold


def is_positive(lowest_t_score: float, reference: str) -> bool:
    return lowest_t_score <= REFERENCE_CUTS[reference]


# --- the score: from a stored result and from a live decision ------------------------------


def _osta_from(instruments: Sequence[tuple[str, object, object]]) -> float | None:
    """OSTA for women, OST for men: the same index, from whichever of the two was computed."""
    for name, score, band in instruments:
        if name in ("osta", "ost_men") and band is not None and isinstance(score, int | float):
            return float(score)
    return None


def _probability(reference: str) -> str:
    return "p_osteoporosis" if reference == "t_le_-2.5" else "p_low_bone_mass"


def stored_score(result: Mapping[str, object], rule: str, reference: str) -> float | None:
    """The rule's score in a stored screening (``Screening.to_dict()`` form), None when the
    case has none (an unanswered weight, no clinical model result, not measured)."""
    if rule == "osta":
        clinical = result.get("clinical")
        listed = clinical.get("instruments", []) if isinstance(clinical, Mapping) else []
        return _osta_from(
            [
                (i.get("name"), i.get("score"), i.get("band"))
                for i in listed
                if isinstance(i, Mapping)
            ]
        )
    if rule == "clinical_model":
        findings = result.get("findings")
        listed = findings.get("results", []) if isinstance(findings, Mapping) else []
        for finding in listed:
            if isinstance(finding, Mapping) and finding.get("kind") == "clinical":
                value = finding.get(_probability(reference))
                return float(value) if isinstance(value, int | float) else None
        return None
    value = None
    listed = result.get("measurements") or []
    for measured in listed if isinstance(listed, list) else []:
        if (
            isinstance(measured, Mapping)
            and measured.get("method") == rule
            and measured.get("status") == "measured"
            and isinstance(measured.get("value"), int | float)
        ):
            value = float(measured["value"])  # the latest measurement of the method
    return value


def live_score(
    rule: str,
    reference: str,
    assessment: ClinicalAssessment,
    findings: Findings,
    measurements: Sequence[MeasurementResult],
) -> float | None:
    """The same score as :func:`stored_score`, from the objects a decision is made of. The
    clinical model's probability counts only from a model whose card permits referral use."""
    if rule == "osta":
        return _osta_from([(i.name, i.score, i.band) for i in assessment.instruments])
    if rule == "clinical_model":
        for finding in findings.results:
            if finding.kind == "clinical" and finding.used_for_referral:
                return getattr(finding, _probability(reference))
        return None
    value = None
    for measured in measurements:
        if isinstance(measured, Measurement) and measured.method == rule:
            value = float(measured.value)
    return value


# --- the figures --------------------------------------------------------------------------


def operating_row(rule: str, threshold: float, cases: Sequence[LabelledScore]) -> OperatingRow:
    referred = [refers(rule, c.score, threshold) for c in cases]
    positive = [c.positive for c in cases]
    pairs = list(zip(referred, positive, strict=True))
    tp = sum(r and y for r, y in pairs)
    tn = sum(not r and not y for r, y in pairs)
    n_pos = sum(positive)
    return OperatingRow(
        threshold=threshold,
        referred=Proportion(sum(referred), len(cases)),
        sensitivity=Proportion(tp, n_pos),
        specificity=Proportion(tn, len(cases) - n_pos),
        ppv=Proportion(tp, sum(referred)),
    )


def _rounded(value: float) -> float:
    """Three significant digits: a threshold an administrator can read and a file can hold."""
    if value == 0 or not math.isfinite(value):
        return value
    return round(value, 2 - math.floor(math.log10(abs(value))))


def candidate_thresholds(rule: str, scores: Sequence[float]) -> list[float]:
    """The thresholds the page lists, in the order of rising referral: probabilities every
    0.05, OSTA and fracture grades every whole step across the scores seen, other indices at
    the 5th to 95th percentiles of the scores seen (rounded to three digits)."""
    if not scores:
        return []
    low, high = min(scores), max(scores)
    if rule == "clinical_model":
        values = [round(0.05 * k, 2) for k in range(1, 20)]
    elif rule == "osta":
        values = [float(v) for v in range(math.floor(low), math.ceil(high) + 1)]
    elif rule == "vertebrae":
        values = [1.0, 2.0, 3.0]
    else:
        ordered = sorted(scores)
        values = [
            _rounded(ordered[min(len(ordered) - 1, round(q / 20 * (len(ordered) - 1)))])
            for q in range(1, 20)
        ]
    unique = sorted(set(values), reverse=DIRECTION[rule] == "high")
    return unique


def table(rule: str, cases: Sequence[LabelledScore]) -> list[OperatingRow]:
    return [
        operating_row(rule, t, cases) for t in candidate_thresholds(rule, [c.score for c in cases])
    ]


def check_enough(
    rule: str, reference: str, cases: Sequence[LabelledScore], settings: CalibrationSettings
) -> None:
    """Refuse a threshold resting on fewer than the stated minimum of labelled cases, or of
    cases with or without the condition (their intervals are too wide to choose from)."""
    n_pos = sum(c.positive for c in cases)
    detail = (
        f"{rule}, {reference}: {len(cases)} labelled cases ({n_pos} with the condition, "
        f"{len(cases) - n_pos} without); at least {settings.min_cases} and "
        f"{settings.min_per_class} of each are needed"
    )
    if len(cases) < settings.min_cases:
        raise CalibrationRefused("calibration.too_few_cases", detail)
    if min(n_pos, len(cases) - n_pos) < settings.min_per_class:
        raise CalibrationRefused("calibration.too_few_in_a_class", detail)


def _risk(rule: str, score: float) -> float:
    return score if DIRECTION[rule] == "high" else -score


def threshold_for_sensitivity(
    rule: str, cases: Sequence[LabelledScore], target: float
) -> OperatingRow:
    """The threshold that refers fewest while its sensitivity on the labelled cases reaches the
    target: one of the positive cases' own scores, so the target is met exactly on them."""
    if not 0.0 < target <= 1.0:
        raise CalibrationRefused("calibration.target_invalid", f"target sensitivity {target}")
    positives = sorted((c.score for c in cases if c.positive), key=lambda s: -_risk(rule, s))
    if not positives:
        raise CalibrationRefused("calibration.too_few_in_a_class", "no case with the condition")
    needed = max(1, math.ceil(target * len(positives) - 1e-9))
    return operating_row(rule, positives[needed - 1], cases)


@dataclass(frozen=True)
class CapacityChoice:
    """The threshold that keeps this rule's referrals within the DXA capacity: the share of
    the recent screenings it refers, and what that share makes of a month."""

    row: OperatingRow
    recent: Proportion  # recent screenings it refers
    monthly_volume: float
    monthly_referrals: float


def threshold_for_capacity(
    rule: str,
    cases: Sequence[LabelledScore],
    recent_scores: Sequence[float | None],
    capacity_per_month: float,
    monthly_volume: float,
) -> CapacityChoice:
    """The most sensitive threshold whose referral share of the site's recent screenings,
    times the monthly screening volume, stays within the DXA capacity per month. Candidates
    are the scores seen (labelled and recent); a screening without the score is not referred
    by this rule."""
    if not math.isfinite(capacity_per_month) or capacity_per_month <= 0:
        raise CalibrationRefused("calibration.capacity_invalid", f"capacity {capacity_per_month}")
    if not recent_scores or monthly_volume <= 0:
        raise CalibrationRefused("calibration.no_volume", "no screening in the volume window")
    allowed = capacity_per_month / monthly_volume
    seen = {c.score for c in cases} | {s for s in recent_scores if s is not None}
    best: tuple[float, Proportion] | None = None
    for threshold in sorted(seen, key=lambda s: -_risk(rule, s)):  # strictest first
        k = sum(s is not None and refers(rule, s, threshold) for s in recent_scores)
        share = Proportion(k, len(recent_scores))
        if k / len(recent_scores) > allowed + 1e-12:
            break
        best = (threshold, share)
    if best is None:
        raise CalibrationRefused(
            "calibration.capacity_too_small",
            f"capacity {capacity_per_month:g} a month, {monthly_volume:.0f} screenings a month",
        )
    threshold, share = best
    return CapacityChoice(
        operating_row(rule, threshold, cases),
        share,
        monthly_volume,
        (share.value or 0.0) * monthly_volume,
    )


def monthly_volume(screened: int, days: float) -> float:
    """Screenings per 30 days, from ``screened`` cases over ``days`` (at least one day)."""
    return screened * 30.0 / max(1.0, days)


def next_version(previous: str) -> str:
    """site-1, site-2, ...: a site-calibrated policy's version, one up from the last one."""
    if previous.startswith("site-") and previous[5:].isdigit():
        return f"site-{int(previous[5:]) + 1}"
    return "site-1"


def calibrated_policy(
    policy: PolicySettings,
    rule: str,
    reference: str,
    threshold: float,
    cases: int,
    date: str,
    chosen_by: str,
    basis: str,
) -> PolicySettings:
    return dataclasses.replace(
        policy,
        policy_version=next_version(policy.policy_version),
        calibrated_rule=rule,
        calibrated_reference=reference,
        calibrated_threshold=float(threshold),
        calibration_date=date,
        calibration_cases=cases,
        calibrated_by=chosen_by,
        calibration_basis=basis,
    )


POLICY_KEYS = (
    "policy_version",
    "calibrated_rule",
    "calibrated_reference",
    "calibrated_threshold",
    "calibration_date",
    "calibration_cases",
    "calibrated_by",
    "calibration_basis",
)
