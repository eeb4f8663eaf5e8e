"""Today's list and history: search, open, export a day's cases as CSV."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime

from flask import Blueprint, Response, render_template, request

from edgeosteo.web.auth import login_required

blueprint = Blueprint("cases", __name__)
CATEGORIES = ("urgent", "refer", "consider", "routine", "retake", "cannot_assess")
CSV_COLUMNS = (
    "case",
    "created_at",
    "local_patient_id",
    "category",
    "body_part",
    "quality",
    "primary_model",
    "p_osteoporosis",
    "p_low_bone_mass",
    "osta",
)


def _store():
    from edgeosteo.web import extension

    return extension("store")


def _today() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%d")


@blueprint.route("/cases")
@login_required
def list_cases():
    text = request.args.get("q", "").strip() or None
    day = request.args.get("date", _today()).strip() or None
    category = request.args.get("category") or None
    records = _store().search_cases(
        text=text, day=day, category=category if category in CATEGORIES else None
    )
    return render_template(
        "cases.html",
        records=records,
        q=text or "",
        day=day or "",
        category=category or "",
        categories=CATEGORIES,
    )


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


@blueprint.route("/cases/export.csv")
@login_required
def export_csv():
    day = request.args.get("date", _today())
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(CSV_COLUMNS)
    for record in reversed(_store().search_cases(day=day, limit=100000)):
        primary = _primary(record.result)
        writer.writerow(
            [
                record.id,
                record.created_at,
                record.local_patient_id or "",
                record.category or "",
                record.body_part or "",
                record.quality_verdict or "",
                primary.get("model_id", ""),
                primary.get("p_osteoporosis", ""),
                primary.get("p_low_bone_mass", ""),
                _osta(record.result) if _osta(record.result) is not None else "",
            ]
        )
    return Response(
        "\ufeff" + buffer.getvalue(),  # BOM: spreadsheet programs then read Chinese correctly
        mimetype="text/csv",
        headers={"Content-Disposition": f"attachment; filename=edgeosteo-{day}.csv"},
    )
