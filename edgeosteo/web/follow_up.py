"""Referral follow-through on the page: the list of referred and urgent patients who have no
DXA result yet, oldest first, with the days they have waited; and the case page's forms that
record the DXA result, that the patient declined or could not travel, and the patient's
answer to research use of the de-identified case."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from flask import Blueprint, abort, flash, g, redirect, render_template, request, url_for
from flask_babel import gettext as _

from edgeosteo.cases import patient_label
from edgeosteo.errors import FollowUpError
from edgeosteo.web import box_zone, clock, context
from edgeosteo.web.auth import login_required
from edgeosteo.web.pages import render_case

blueprint = Blueprint("follow_up", __name__)


@dataclass(frozen=True)
class AwaitingRow:
    """One referral on the follow-up list."""

    case_id: int
    referred_on: str  # YYYY-MM-DD
    days_waiting: int
    patient: str
    category: str | None
    body_part: str


def local_day(created_at: str) -> date | None:
    """The day a stored UTC time falls on at the box (a referral at 01:00 in Beijing is
    the day before in UTC)."""
    try:
        return clock.local(created_at, box_zone()).date()
    except ValueError:
        return None


def days_since(created_at: str, today: date) -> int:
    day = local_day(created_at)
    return max(0, (today - day).days) if day else 0


@blueprint.route("/follow-up")
@login_required
def awaiting_dxa():
    settings = context().settings
    receiver = settings.receiver
    today = clock.today(box_zone())
    rows = [
        AwaitingRow(
            case_id=record.id,
            referred_on=str(local_day(record.created_at) or record.created_at[:10]),
            days_waiting=days_since(record.created_at, today),
            patient=patient_label(
                record.identity,
                record.local_patient_id,
                receiver.worklist_identity,
                receiver.pseudonym_id_chars,
            ),
            category=record.category,
            body_part=record.body_part or "",
        )
        for record in context().store.awaiting_dxa(settings.follow_up.categories)
    ]
    return render_template("awaiting_dxa.html", rows=rows, title=_("DXA follow-up"))


def _refused(record, exc: FollowUpError, values: dict):
    field = (exc.detail or "").split(":")[0].strip()
    return render_case(record, dxa_values=values, dxa_problem=(exc.code, field)), 422


@blueprint.route("/cases/<int:case_id>/dxa", methods=["POST"])
@login_required
def record_dxa(case_id: int):
    record = context().store.get_case(case_id)
    if record is None:
        abort(404)
    values = {key: value for key, value in request.form.items() if key != "csrf_token"}
    try:
        context().cases.record_dxa(case_id, values, g.user.username, from_form=True)
    except FollowUpError as exc:
        return _refused(record, exc, values)
    flash(_("DXA result recorded; the referral is done."), "ok")
    return redirect(url_for("pages.case", case_id=case_id) + "#follow-up")


@blueprint.route("/cases/<int:case_id>/no-dxa", methods=["POST"])
@login_required
def record_no_dxa(case_id: int):
    record = context().store.get_case(case_id)
    if record is None:
        abort(404)
    try:
        context().cases.record_no_dxa(case_id, request.form.get("outcome", ""), g.user.username)
    except FollowUpError as exc:
        return _refused(record, exc, {})
    flash(_("Recorded: the referral leaves the follow-up list without a DXA result."), "ok")
    return redirect(url_for("pages.case", case_id=case_id) + "#follow-up")


@blueprint.route("/cases/<int:case_id>/research-consent", methods=["POST"])
@login_required
def research_consent(case_id: int):
    record = context().store.get_case(case_id)
    if record is None:
        abort(404)
    try:
        context().cases.set_research_consent(case_id, request.form.get("research_consent", ""))
    except FollowUpError as exc:
        return _refused(record, exc, {})
    flash(_("Research consent saved."), "ok")
    return redirect(url_for("pages.case", case_id=case_id) + "#follow-up")
