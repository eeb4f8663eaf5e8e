"""Today's list and history: search, open, export a day's cases as CSV."""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass
from datetime import date

from flask import Blueprint, Response, abort, redirect, render_template, request, url_for
from flask_babel import lazy_gettext as _l

from edgeosteo.cases import (
    ImageTool,
    image_tool,
    patient_label,
    refusal_code,
    tool_for_body_part,
)
from edgeosteo.clinical import ClinicalAnswers
from edgeosteo.messages import text
from edgeosteo.web import box_zone, clock, context, request_language
from edgeosteo.web.auth import login_required
from edgeosteo.web.form import (
    BODY_PARTS,
    CLINICAL_FIELDS,
    answers_from_form,
    fields_for,
    missing_required,
)

blueprint = Blueprint("cases", __name__)
CATEGORIES = ("urgent", "refer", "consider", "routine", "retake", "cannot_assess")
STATES = {
    "queued": _l("Queued"),
    "needs_answers": _l("Needs clinical answers"),
    "screened": _l("Screened"),
    "refused": _l("Refused"),
    "awaiting_measurement": _l("CT: waiting for the tap on the vertebra"),
}
ISO_DAY = re.compile(r"\d{4}-\d{2}-\d{2}", re.ASCII)
SOURCES = {"page": _l("Page"), "scp": _l("X-ray unit"), "folder": _l("Export folder")}


@dataclass(frozen=True)
class WorklistRow:
    """One line of today's list: a case, or a received image that has none (yet)."""

    time: str
    case_id: int | None
    patient: str
    source: str
    body_part: str
    category: str | None
    state: str  # a key of STATES
    reason_code: str | None
    # which tool reads the image, or why none does (edgeosteo.cases.ImageTool)
    tool: ImageTool | None = None
    # the whole patient ID, shown on request: ``patient`` may be pseudonymised
    patient_full: str = ""


CSV_COLUMNS = (
    "case",
    "created_at",
    "time_zone",
    "local_patient_id",
    "category",
    "body_part",
    "quality",
    "primary_model",
    "p_osteoporosis",
    "p_low_bone_mass",
    "osta",
)

CSV_HEADERS_ZH = {
    "case": _l("Case"),
    "created_at": _l("Time"),
    "time_zone": _l("Time zone"),
    "local_patient_id": _l("Patient ID"),
    "category": _l("Recommendation"),
    "body_part": _l("Body part"),
    "quality": _l("Image quality"),
    "primary_model": _l("Model used for the recommendation"),
    "p_osteoporosis": _l("Probability of osteoporosis"),
    "p_low_bone_mass": _l("Probability of low bone mass"),
    "osta": _l("OSTA index"),
}
CATEGORY_LABELS = {
    "urgent": _l("Urgent"),
    "refer": _l("Refer for DXA"),
    "consider": _l("Consider DXA"),
    "routine": _l("Routine"),
    "retake": _l("Retake"),
    "cannot_assess": _l("Cannot assess"),
}
QUALITY_LABELS = {"pass": _l("Passed"), "warn": _l("Warning"), "fail": _l("Not usable")}


# a cell that begins with one of these is read as a formula by spreadsheet programs
# (OWASP "CSV Injection"): such a cell is written with a leading single quote
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


def csv_cell(value: object) -> object:
    """One cell of an export, safe to open in a spreadsheet. Numbers the box computed pass
    unchanged (a negative OSTA index is a number, not a formula); every other value is
    text, and text that begins with a formula character gets a leading single quote."""
    if value is None:
        return ""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return value
    text = str(value)
    return "'" + text if text.startswith(FORMULA_PREFIXES) else text


def _store():
    return context().store


def _today() -> str:
    return clock.today(box_zone()).isoformat()


def _window(day: str | None):
    """A day the page names (local) as the UTC span the store keeps it in; text that is no
    date stays as it is (it then matches nothing)."""
    if not day or _export_day(day) is None:
        return day
    return clock.day_bounds(day, box_zone())


@blueprint.route("/cases")
@login_required
def list_cases():
    text = request.args.get("q", "").strip() or None
    day = request.args.get("date", _today()).strip() or None
    category = request.args.get("category") or None
    state = request.args.get("state") or None
    records = _store().search_cases(
        text=text, day=_window(day), category=category if category in CATEGORIES else None
    )
    rows = _worklist(records, text, _window(day), with_pending=category not in CATEGORIES)
    if state in STATES:
        rows = [r for r in rows if r.state == state]
    return render_template(
        "cases.html",
        rows=rows,
        q=text or "",
        day=day or "",
        category=category or "",
        categories=CATEGORIES,
        # the short names: the clinician's sentence made the filter 1750 px wide
        category_labels=CATEGORY_LABELS,
        state=state or "",
        states=STATES,
        sources=SOURCES,
    )


def _worklist(records, text: str | None, day, with_pending: bool) -> list:
    """Cases, and received images still waiting or kept from screening, newest first."""
    receiver = context().settings.receiver

    def label(identity: dict, local_id: str | None) -> str:
        return patient_label(
            identity, local_id, receiver.worklist_identity, receiver.pseudonym_id_chars
        )

    def full(identity: dict, local_id: str | None) -> str:
        # the page is behind a login: the whole ID is one tap away; the name never is
        return str(local_id or identity.get("patient_id") or "").strip()

    received = _store().received_for_cases([r.id for r in records])
    rows = []
    for record in records:
        instance = received.get(record.id)
        # a CT series came from the scanner by C-STORE; it has no received-instance row
        from_scanner = bool((record.result.get("image") or {}).get("ct_series"))
        rows.append(
            WorklistRow(
                time=record.created_at,
                case_id=record.id,
                patient=label(record.identity, record.local_patient_id),
                patient_full=full(record.identity, record.local_patient_id),
                source=instance.source if instance else ("scp" if from_scanner else "page"),
                body_part=record.body_part or ("CT" if from_scanner else ""),
                # no recommendation to show before the measurement it waits for
                category=None if record.state == "awaiting_measurement" else record.category,
                state=record.state if record.state in STATES else "screened",
                reason_code=refusal_code(record.result) if record.state == "refused" else None,
                tool=image_tool(record.result),
            )
        )

    def received_row(instance, **row) -> WorklistRow | None:
        """A received image's line; None when the search text is not in its patient's name,
        ID or accession number."""
        searched = " ".join(
            str(instance.identity.get(key) or "").replace("^", " ")
            for key in ("name", "patient_id", "accession_number")
        )
        if text and text.lower() not in searched.lower():
            return None
        return WorklistRow(
            patient=label(instance.identity, None),
            patient_full=full(instance.identity, None),
            body_part=instance.body_part or instance.dicom_body_part or "",
            category=None,
            **row,
        )

    if with_pending:
        screener = context().cases.screener
        for instance in _store().list_received(day=day, without_case=True):
            queued = instance.state == "queued"
            rows.append(
                received_row(
                    instance,
                    time=instance.received_at,
                    case_id=None,
                    source=instance.source,
                    state="queued" if queued else "refused",
                    reason_code=instance.reason_code,
                    tool=tool_for_body_part(screener, instance.body_part) if queued else None,
                )
            )
        # a resend with a known SOP Instance UID but other pixels: the first copy was kept
        for conflict, instance in _store().list_conflicts(day=day):
            rows.append(
                received_row(
                    instance,
                    time=conflict.received_at,
                    case_id=instance.case_id,
                    source=conflict.source,
                    state="refused",
                    reason_code="receiver.duplicate_conflict",
                )
            )
    return sorted((r for r in rows if r is not None), key=lambda r: r.time, reverse=True)


def _primary(result: dict) -> dict:
    findings = result.get("findings") or {}
    primary = findings.get("primary_model")
    for finding in findings.get("results", []):
        if finding.get("model_id") == primary:
            return finding
    return {}


def _osta(result: dict):
    for instrument in (result.get("clinical") or {}).get("instruments", []):
        if instrument.get("name") == "osta":
            return instrument.get("score")
    return None


def _export_day(raw: str) -> str | None:
    """The export's day as YYYY-MM-DD ("" for every day), or None when it is no date."""
    raw = raw.strip()
    if not raw:
        return ""
    if not ISO_DAY.fullmatch(raw):
        return None
    try:
        date.fromisoformat(raw)
    except ValueError:
        return None
    return raw


@blueprint.route("/cases/export.csv")
@login_required
def export_csv():
    day = _export_day(request.args.get("date", _today()))
    if day is None:
        code = "request.invalid_date"
        return render_template(
            "error.html",
            title=_l("Export this day as CSV"),
            message=f"{text(code, request_language())} ({code})",
        ), 400
    chinese = request_language().startswith("zh")
    where = box_zone()
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    # English keeps the column codes programmes' scripts read; Chinese, words a person reads
    writer.writerow([str(CSV_HEADERS_ZH[c]) if chinese else c for c in CSV_COLUMNS])
    parts = dict(BODY_PARTS)

    def label(table: dict, value: str | None) -> str | None:
        return str(table[value]) if chinese and value in table else value

    for record in reversed(_store().search_cases(day=_window(day), limit=100000)):
        primary = _primary(record.result)
        cells = (
            record.id,
            clock.local_text(record.created_at, where, seconds=True),
            clock.zone_label(record.created_at, where),
            record.local_patient_id,
            label(CATEGORY_LABELS, record.category),
            label(parts, record.body_part),
            label(QUALITY_LABELS, record.quality_verdict),
            primary.get("model_id"),
            csv_probability(primary.get("p_osteoporosis")),
            csv_probability(primary.get("p_low_bone_mass")),
            _rounded(_osta(record.result)),
        )
        writer.writerow([csv_cell(cell) for cell in cells])
    response = Response(
        "\ufeff" + buffer.getvalue(),  # BOM: spreadsheet programs then read Chinese correctly
        mimetype="text/csv",
    )
    # werkzeug quotes the parameter itself; the day is a checked date in any case
    response.headers.set(
        "Content-Disposition", "attachment", filename=f"edgeosteo-{day or 'all'}.csv"
    )
    return response


def _rounded(value: object) -> object:
    """An index to one decimal (a whole number stays whole)."""
    if isinstance(value, float):
        return int(value) if value.is_integer() else round(value, 1)
    return value


def csv_probability(value: object) -> float | None:
    """A probability to three decimals, kept inside (0, 1): a spreadsheet never reads one
    as certain (0.9996 is written 0.999, as the page writes it ">99%")."""
    if not isinstance(value, int | float) or isinstance(value, bool):
        return None
    return min(max(round(float(value), 3), 0.001), 0.999)


def _form_values(record) -> dict[str, str]:
    """The answers already given, as form values; for a case without answers, what the
    image's header says about sex and age, for the technician to confirm."""
    answers = (record.result.get("clinical") or {}).get("answers") or {}
    values: dict[str, str] = {}
    for field in CLINICAL_FIELDS:
        value = answers.get("height_m" if field.name == "height_cm" else field.name)
        if value is None:
            continue
        if field.name == "height_cm":
            values[field.name] = f"{float(value) * 100:g}"
        elif isinstance(value, bool):
            values[field.name] = "yes" if value else "no"
        else:
            values[field.name] = f"{value:g}" if isinstance(value, float) else str(value)
    identity = record.identity or {}
    if "sex" not in values and identity.get("sex") in ("F", "M"):
        values["sex"] = "female" if identity["sex"] == "F" else "male"
    age = str(identity.get("age") or "")
    if "age_years" not in values and age.upper().endswith("Y") and age[:-1].isdigit():
        values["age_years"] = str(int(age[:-1]))
    return values


@blueprint.route("/cases/<int:case_id>/answers", methods=["GET", "POST"])
@login_required
def add_answers(case_id: int):
    """Clinical answers given after the image was screened: the decision is made again
    from the stored image findings (no image model runs twice)."""
    record = _store().get_case(case_id)
    if record is None:
        abort(404)
    fields = fields_for(context().cases.answers_needed_for_referral())
    if request.method == "GET":
        values, problems, status = _form_values(record), {}, 200
    else:
        values = request.form.to_dict()
        answers = answers_from_form(values)
        parsed = ClinicalAnswers.from_dict(answers)
        problems = {
            p.field if p.field != "height_m" else "height_cm": p.code for p in parsed.problems
        }
        problems = {**missing_required(fields, answers), **problems}
        if not problems:
            context().cases.add_answers(case_id, answers)
            return redirect(url_for("pages.case", case_id=case_id))
        status = 422
    return render_template(
        "answers.html", case=record, fields=fields, values=values, problems=problems
    ), status
