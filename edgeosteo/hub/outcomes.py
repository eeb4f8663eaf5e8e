"""What became of the referrals, as the hub sees them: per site, sex, age band and decision
version, the share of referred patients with a DXA result within six months, and where
results exist, the sensitivity and PPV of the referral for WHO osteoporosis (Wilson 95 %
intervals); and a drift flag per site when its referral rate or score distribution moved
after a model or policy version change.

Figures count cases, each by its current record (a DXA result reaches the hub as a revision
of the case's record). Bounds and why they were chosen are in docs/sync.md.
"""

from __future__ import annotations

import bisect
import math
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from edgeosteo.hub.store import CaseOutcomeRow, age_band

OSTEOPOROSIS = "osteoporosis"
WILSON_Z = 1.959964  # 95 %
# drift: a site's cases under its newest decision version against those under the version
# before it, each test only with at least DRIFT_MIN_CASES cases on each side. A change must
# be both beyond chance and large enough to matter (docs/sync.md, "Outcomes and drift", has
# the simulated false-alarm rates and power). Referral rate: two-sided pooled two-proportion
# z-test p < DRIFT_P_VALUE and a move of at least DRIFT_RATE_CHANGE. Score distribution:
# two-sample Kolmogorov-Smirnov p < DRIFT_P_VALUE and a population stability index of at
# least DRIFT_PSI over the earlier version's deciles (PSI alone is noise on small samples:
# 30 against 30 from one distribution exceed 0.25 in most draws).
DRIFT_MIN_CASES = 30
DRIFT_P_VALUE = 0.01
DRIFT_RATE_CHANGE = 0.05
DRIFT_PSI = 0.10
PSI_BINS = 10
ALL = "all"


def wilson(successes: int, n: int, z: float = WILSON_Z) -> tuple[float, float] | None:
    """Wilson score interval of a proportion; None without cases."""
    if n <= 0:
        return None
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return (round(max(0.0, centre - half), 4), round(min(1.0, centre + half), 4))


def decision_version(row: CaseOutcomeRow) -> str:
    """The version a case was decided under: the referral policy, and the model that drove
    the referral when one did ("default-2", "site-3+knee-image@1.2.0")."""
    policy = row.policy_version or "policy-unknown"
    return f"{policy}+{row.primary_model}" if row.primary_model else policy


@dataclass
class _Tally:
    cases: int = 0
    referred: int = 0
    dxa_within_window: int = 0
    dxa_later: int = 0
    declined: int = 0
    could_not_travel: int = 0
    with_result: int = 0
    true_positive: int = 0  # referred, DXA osteoporosis
    false_negative: int = 0  # not referred, DXA osteoporosis
    false_positive: int = 0  # referred, DXA not osteoporosis

    def add(self, row: CaseOutcomeRow, referred: Sequence[str]) -> None:
        is_referred = row.referral_category in referred
        self.cases += 1
        self.referred += is_referred
        if is_referred and row.dxa_outcome == "result":
            within = bool(row.dxa_within_six_months)
            self.dxa_within_window += within
            self.dxa_later += not within
        if is_referred:
            self.declined += row.dxa_outcome == "declined"
            self.could_not_travel += row.dxa_outcome == "could_not_travel"
        if row.dxa_outcome == "result":
            self.with_result += 1
            osteoporosis = row.dxa_who_band == OSTEOPOROSIS
            self.true_positive += is_referred and osteoporosis
            self.false_negative += (not is_referred) and osteoporosis
            self.false_positive += is_referred and not osteoporosis

    def figures(self) -> dict[str, Any]:
        positives = self.true_positive + self.false_negative
        flagged = self.true_positive + self.false_positive
        return {
            "cases": self.cases,
            "referred": self.referred,
            "dxa_within_6_months": self.dxa_within_window,
            "dxa_after_6_months": self.dxa_later,
            "declined": self.declined,
            "could_not_travel": self.could_not_travel,
            "share_with_dxa_within_6_months": _share(self.dxa_within_window, self.referred),
            "share_ci95": wilson(self.dxa_within_window, self.referred),
            "with_dxa_result": self.with_result,
            "true_positive": self.true_positive,
            "false_negative": self.false_negative,
            "false_positive": self.false_positive,
            "sensitivity": _share(self.true_positive, positives),
            "sensitivity_ci95": wilson(self.true_positive, positives),
            "ppv": _share(self.true_positive, flagged),
            "ppv_ci95": wilson(self.true_positive, flagged),
        }


def _share(k: int, n: int) -> float | None:
    return round(k / n, 4) if n else None


def referral_outcomes(
    rows: Iterable[CaseOutcomeRow], edges: Sequence[int], referred: Sequence[str]
) -> list[dict[str, Any]]:
    """One row per site, sex, age band and decision version, and per site over all of
    them (sex, age band and version "all")."""
    tallies: dict[tuple[str, str, str, str], _Tally] = defaultdict(_Tally)
    for row in rows:
        band = age_band(row.age_years, row.age_at_least, edges)
        tallies[(row.site_id, row.sex or "unknown", band, decision_version(row))].add(row, referred)
        tallies[(row.site_id, ALL, ALL, ALL)].add(row, referred)
    return [
        {"site": site, "sex": sex, "age_band": band, "version": version, **tally.figures()}
        for (site, sex, band, version), tally in sorted(
            tallies.items(), key=lambda item: (item[0][0], item[0][1] != ALL, item[0])
        )
    ]


def two_proportion_p(k1: int, n1: int, k2: int, n2: int) -> float:
    """Two-sided p of the pooled two-proportion z-test."""
    pooled = (k1 + k2) / (n1 + n2)
    if pooled in (0.0, 1.0):
        return 1.0
    z = (k1 / n1 - k2 / n2) / math.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))
    return math.erfc(abs(z) / math.sqrt(2))


def population_stability(before: Sequence[float], after: Sequence[float]) -> float:
    """PSI over the earlier sample's deciles (tied edges merged), each bin's share smoothed
    by half a case so an empty bin gives a finite index."""
    ordered = sorted(before)
    cuts = sorted(
        {ordered[min(len(ordered) - 1, (len(ordered) * i) // PSI_BINS)] for i in range(1, PSI_BINS)}
    )

    def shares(values: Sequence[float]) -> list[float]:
        counts = [0] * (len(cuts) + 1)
        for value in values:
            counts[sum(value >= cut for cut in cuts)] += 1
        total = len(values) + 0.5 * len(counts)
        return [(c + 0.5) / total for c in counts]

    b, a = shares(before), shares(after)
    return sum((x - y) * math.log(x / y) for x, y in zip(a, b, strict=True))


def kolmogorov_smirnov_p(before: Sequence[float], after: Sequence[float]) -> float:
    """Two-sided p of the two-sample Kolmogorov-Smirnov test (the asymptotic distribution
    with Stephens' small-sample correction). Ties (OSTA indices are coarse) make it
    conservative: fewer flags, not more."""
    a, b = sorted(before), sorted(after)
    gap = max(
        abs(bisect.bisect_right(a, v) / len(a) - bisect.bisect_right(b, v) / len(b))
        for v in set(a) | set(b)
    )
    root = math.sqrt(len(a) * len(b) / (len(a) + len(b)))
    lam = (root + 0.12 + 0.11 / root) * gap
    if lam < 0.3:
        return 1.0
    total = sum((-1) ** (k - 1) * math.exp(-2 * k * k * lam * lam) for k in range(1, 101))
    return min(1.0, max(0.0, 2 * total))


def score_moved(before: Sequence[float], after: Sequence[float]) -> tuple[bool, float, float]:
    """(moved beyond the bound, PSI, KS p) of two samples of one kind of score."""
    psi = round(population_stability(before, after), 4)
    ks_p = kolmogorov_smirnov_p(before, after)
    return ks_p < DRIFT_P_VALUE and psi >= DRIFT_PSI, psi, ks_p


def drift(rows: Iterable[CaseOutcomeRow], referred: Sequence[str]) -> list[dict[str, Any]]:
    """Per site: its newest decision version against the one before (versions in the order
    the site first used them), with both tests and whether either crossed its bound."""
    by_site: dict[str, dict[str, list[CaseOutcomeRow]]] = defaultdict(dict)
    for row in sorted(rows, key=lambda r: r.capture_time):
        by_site[row.site_id].setdefault(decision_version(row), []).append(row)
    out = []
    for site, versions in sorted(by_site.items()):
        names = list(versions)
        entry: dict[str, Any] = {
            "site": site,
            "versions": names,
            "before": None,
            "after": names[-1],
            "flag": False,
            "reasons": [],
            "referral_rate_before": None,
            "referral_rate_after": None,
            "referral_rate_p": None,
            "score_psi": {},
            "score_ks_p": {},
            "enough_cases": False,
        }
        out.append(entry)
        if len(names) < 2:
            continue
        before, after = versions[names[-2]], versions[names[-1]]
        entry["before"] = names[-2]
        k1 = sum(r.referral_category in referred for r in before)
        k2 = sum(r.referral_category in referred for r in after)
        entry["referral_rate_before"] = round(k1 / len(before), 4)
        entry["referral_rate_after"] = round(k2 / len(after), 4)
        if min(len(before), len(after)) >= DRIFT_MIN_CASES:
            entry["enough_cases"] = True
            p = two_proportion_p(k1, len(before), k2, len(after))
            entry["referral_rate_p"] = p
            moved = abs(entry["referral_rate_after"] - entry["referral_rate_before"])
            if p < DRIFT_P_VALUE and moved >= DRIFT_RATE_CHANGE:
                entry["flag"] = True
                entry["reasons"].append("referral_rate")
        kinds = {r.referral_score_kind for r in before} & {r.referral_score_kind for r in after}
        for kind in sorted(k for k in kinds if k):
            old = [r.referral_score for r in before if r.referral_score_kind == kind]
            new = [r.referral_score for r in after if r.referral_score_kind == kind]
            old_scores = [s for s in old if s is not None]
            new_scores = [s for s in new if s is not None]
            if min(len(old_scores), len(new_scores)) < DRIFT_MIN_CASES:
                continue
            moved, psi, ks_p = score_moved(old_scores, new_scores)
            entry["score_psi"][kind] = psi
            entry["score_ks_p"][kind] = ks_p
            if moved:
                entry["flag"] = True
                entry["reasons"].append(f"score:{kind}")
    return out
