"""Site calibration on the admin page: the site's labelled cases (a DXA result recorded)
against each rule's candidate thresholds, a plot, and a threshold chosen by a target
sensitivity or by the DXA capacity per month, written to the settings file the box read and
used from the next screening on."""

from __future__ import annotations

import dataclasses
import math
import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import tomli_w
from flask import Blueprint, Response, flash, g, redirect, render_template, request, url_for
from flask_babel import gettext as _

from edgeosteo.calibration import (
    DIRECTION,
    POLICY_KEYS,
    REFERENCE_NAMES,
    RULE_NAMES,
    CapacityChoice,
    LabelledScore,
    OperatingRow,
    calibrated_policy,
    check_enough,
    is_positive,
    monthly_volume,
    next_version,
    operating_row,
    stored_score,
    table,
    threshold_for_capacity,
    threshold_for_sensitivity,
)
from edgeosteo.config import CALIBRATION_REFERENCES, CALIBRATION_RULES, PolicySettings
from edgeosteo.errors import CalibrationRefused
from edgeosteo.web import context, request_language
from edgeosteo.web.auth import admin_required
from edgeosteo.web.calibration_plot import plot_png

blueprint = Blueprint("site_calibration", __name__, url_prefix="/settings/calibration")


@dataclass(frozen=True)
class RuleFigures:
    """One rule on the labelled cases: how many have its score, and its table when enough."""

    rule: str
    name: str
    cases: tuple[LabelledScore, ...]
    n_positive: int
    rows: tuple[OperatingRow, ...]
    enough: bool
    selectable: bool  # a threshold on it can change a referral


@dataclass(frozen=True)
class Proposal:
    """The threshold a choice gives, before or after it is saved."""

    rule: str
    reference: str
    by: str  # "sensitivity" | "capacity"
    value: float
    row: OperatingRow
    n_cases: int
    capacity: CapacityChoice | None
    basis: str


def _labelled() -> list[tuple[Mapping, float]]:
    return [
        (case.result, outcome.dxa.lowest_t_score)
        for case, outcome in context().store.labelled_cases()
        if outcome.dxa is not None
    ]


def _clinical_model_drives() -> bool:
    registry = context().cases.screener.registry
    return any(m.kind == "clinical" and m.used_for_referral for m in registry)


def _scores(labelled, rule: str, reference: str) -> tuple[LabelledScore, ...]:
    out = []
    for result, lowest in labelled:
        score = stored_score(result, rule, reference)
        if score is not None and math.isfinite(score):
            out.append(LabelledScore(score, is_positive(lowest, reference)))
    return tuple(out)


def _figures(labelled, reference: str) -> list[RuleFigures]:
    minimum = context().settings.calibration
    language = 1 if request_language() == "zh_CN" else 0
    drives = _clinical_model_drives()
    figures = []
    for rule in CALIBRATION_RULES:
        cases = _scores(labelled, rule, reference)
        if not cases:
            continue
        n_pos = sum(c.positive for c in cases)
        enough = (
            len(cases) >= minimum.min_cases
            and min(n_pos, len(cases) - n_pos) >= minimum.min_per_class
        )
        figures.append(
            RuleFigures(
                rule,
                RULE_NAMES[rule][language],
                cases,
                n_pos,
                tuple(table(rule, cases)) if enough else (),
                enough,
                rule != "clinical_model" or drives,
            )
        )
    return figures


def _volume(with_results: bool = False) -> tuple[float | None, list[Mapping], float]:
    """Screenings per month over the volume window (or since the first case, when the box
    is younger than the window), with ``with_results`` the results screened in the window,
    and the days covered. None for the volume while the box has screened for less than
    volume_min_days: a month estimated from a few days is no basis for a DXA budget."""
    window = context().settings.calibration
    now = datetime.now(UTC)
    since = (now - timedelta(days=window.volume_days)).isoformat(timespec="seconds")
    first, count, results = context().store.screened_since(since, with_results)
    if first is None:
        return None, [], 0.0
    covered = min(window.volume_days, (now - datetime.fromisoformat(first)).total_seconds() / 86400)
    if covered < window.volume_min_days:
        return None, results, covered
    return monthly_volume(count, covered), results, covered


BASIS_SENSITIVITY = re.compile(r"target sensitivity ([0-9.]+) % for (.+)")
BASIS_CAPACITY = re.compile(r"DXA capacity ([0-9.]+) a month at ([0-9.]+) screenings a month")


def basis_text(basis: str, reference: str, language: str) -> str:
    """The recorded basis of a calibration (English in the settings file) in the page's
    language."""
    if language != "zh_CN":
        return basis
    if match := BASIS_SENSITIVITY.fullmatch(basis):
        return f"目标敏感度 {match.group(1)}%（{REFERENCE_NAMES[reference][1]}）"
    if match := BASIS_CAPACITY.fullmatch(basis):
        return f"每月DXA检查能力 {match.group(1)} 人，每月筛查 {match.group(2)} 次"
    return basis


def _number(raw: str | None) -> float | None:
    try:
        value = float((raw or "").strip().replace("，", ".").replace(",", "."))
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def _propose(labelled, form: Mapping[str, str]) -> Proposal:
    """The threshold the admin's choice gives; CalibrationRefused, with its code, when it
    cannot be set."""
    rule, reference, by = form.get("rule"), form.get("reference"), form.get("by")
    if rule not in CALIBRATION_RULES or reference not in CALIBRATION_REFERENCES:
        raise CalibrationRefused("calibration.rule_unknown", f"{rule}, {reference}")
    if by not in ("sensitivity", "capacity"):
        raise CalibrationRefused("calibration.rule_unknown", f"by {by}")
    if rule == "clinical_model" and not _clinical_model_drives():
        raise CalibrationRefused("calibration.rule_not_used", rule)
    cases = _scores(labelled, rule, reference)
    check_enough(rule, reference, cases, context().settings.calibration)
    value = _number(form.get("value"))
    reference_en = REFERENCE_NAMES[reference][0]
    if by == "sensitivity":
        if value is None or not 0 < value <= 100:
            raise CalibrationRefused("calibration.target_invalid", form.get("value"))
        row = threshold_for_sensitivity(rule, cases, value / 100)
        basis = f"target sensitivity {value:g} % for {reference_en}"
        return Proposal(rule, reference, by, value, row, len(cases), None, basis)
    if value is None or value <= 0:
        raise CalibrationRefused("calibration.capacity_invalid", form.get("value"))
    volume, recent, _days = _volume(with_results=True)
    if volume is None:
        raise CalibrationRefused(
            "calibration.no_volume", f"{_days:.0f} days of screenings on this box"
        )
    recent_scores = [stored_score(r, rule, reference) for r in recent]
    choice = threshold_for_capacity(rule, cases, recent_scores, value, volume)
    basis = f"DXA capacity {value:g} a month at {volume:.0f} screenings a month"
    return Proposal(rule, reference, by, value, choice.row, len(cases), choice, basis)


def _page(reference: str, proposal=None, refusal=None, status: int = 200):
    box = context()
    labelled = _labelled()
    minimum = box.settings.calibration
    volume, _recent, covered = _volume()
    policy = box.settings.policy
    current = None
    if policy.calibrated_rule:
        current = operating_row(
            policy.calibrated_rule,
            policy.calibrated_threshold,
            _scores(labelled, policy.calibrated_rule, policy.calibrated_reference),
        )
    return (
        render_template(
            "site_calibration.html",
            labelled=labelled,
            enough=len(labelled) >= minimum.min_cases,
            minimum=minimum,
            reference=reference,
            references=CALIBRATION_REFERENCES,
            reference_names=REFERENCE_NAMES,
            figures=_figures(labelled, reference) if len(labelled) >= minimum.min_cases else [],
            volume=volume,
            covered=covered,
            basis=basis_text(
                policy.calibration_basis, policy.calibrated_reference, request_language()
            ),
            policy=policy,
            current=current,
            rule_names=RULE_NAMES,
            directions=DIRECTION,
            proposal=proposal,
            refusal=refusal,
            form=request.values,
        ),
        status,
    )


@blueprint.route("/", methods=["GET"])
@admin_required
def calibration_page():
    reference = request.args.get("reference", "t_le_-2.5")
    if reference not in CALIBRATION_REFERENCES:
        reference = "t_le_-2.5"
    if not request.args.get("rule"):
        return _page(reference)
    try:
        proposal = _propose(_labelled(), request.args)
    except CalibrationRefused as refused:
        return _page(reference, refusal=refused, status=422)
    return _page(reference, proposal=proposal)


@blueprint.route("/", methods=["POST"])
@admin_required
def save_calibration():
    box = context()
    reference = request.form.get("reference", "t_le_-2.5")
    if reference not in CALIBRATION_REFERENCES:
        reference = "t_le_-2.5"
    labelled = _labelled()
    try:
        proposal = _propose(labelled, request.form)
        if request.form.get("n_cases") != str(proposal.n_cases):
            raise CalibrationRefused(
                "calibration.stale", f"{request.form.get('n_cases')} -> {proposal.n_cases}"
            )
    except CalibrationRefused as refused:
        return _page(reference, refusal=refused, status=422)
    policy = calibrated_policy(
        box.settings.policy,
        proposal.rule,
        proposal.reference,
        proposal.row.threshold,
        proposal.n_cases,
        datetime.now(UTC).date().isoformat(),
        g.user.username,
        proposal.basis,
    )
    _save_policy(policy)
    flash(
        _(
            "Saved as policy %(version)s: %(rule)s at %(threshold)s. New screenings use it.",
            version=policy.policy_version,
            rule=RULE_NAMES[proposal.rule][1 if request_language() == "zh_CN" else 0],
            threshold=f"{proposal.row.threshold:g}",
        ),
        "ok",
    )
    return redirect(url_for("site_calibration.calibration_page", reference=proposal.reference))


def _save_policy(policy: PolicySettings) -> None:
    """Write the calibration keys into the [policy] table of the settings file the box read
    (its other keys kept), then use the policy from the next screening on."""
    box = context()
    path = box.settings.settings_file
    config = tomllib.loads(path.read_text(encoding="utf-8")) if path.exists() else {}
    policy_table = dict(config.get("policy", {}))
    policy_table.update({key: getattr(policy, key) for key in POLICY_KEYS})
    config["policy"] = policy_table
    path.parent.mkdir(parents=True, exist_ok=True)
    staged = path.with_name(path.name + ".saving")
    staged.write_text(tomli_w.dumps(config), encoding="utf-8")
    os.replace(staged, path)  # a crash mid-write leaves the old file, never half a file
    box.apply(dataclasses.replace(box.settings, policy=policy))


@blueprint.route("/remove", methods=["POST"])
@admin_required
def remove_calibration():
    """Back to the published cut-offs, as a new policy version that records who and when."""
    policy = context().settings.policy
    if policy.calibrated_rule:
        _save_policy(
            dataclasses.replace(
                policy,
                policy_version=next_version(policy.policy_version),
                calibrated_rule="",
                calibrated_threshold=0.0,
                calibration_date=datetime.now(UTC).date().isoformat(),
                calibration_cases=0,
                calibrated_by=g.user.username,
                calibration_basis="site threshold removed: the published cut-offs decide",
            )
        )
        flash(_("The site threshold was removed. New screenings use the published cut-offs."), "ok")
    return redirect(url_for("site_calibration.calibration_page"))


@blueprint.route("/plot.png")
@admin_required
def plot():
    """Sensitivity against referral rate on the labelled cases, one line per rule with
    enough cases, every threshold seen; the site's current threshold marked."""
    reference = request.args.get("reference", "t_le_-2.5")
    if reference not in CALIBRATION_REFERENCES:
        reference = "t_le_-2.5"
    labelled = _labelled()
    minimum = context().settings.calibration
    figures = _figures(labelled, reference) if len(labelled) >= minimum.min_cases else []
    # PNG, not SVG: every answer carries the page's CSP, which would forbid an SVG's own
    # inline styles and leave it blank
    return Response(
        plot_png(figures, reference, context().settings.policy, request_language()),
        mimetype="image/png",
    )
