"""New screening and the result page."""

from __future__ import annotations

from dataclasses import dataclass

from flask import (
    Blueprint,
    abort,
    g,
    jsonify,
    redirect,
    render_template,
    request,
    send_file,
    url_for,
)
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l

from edgeosteo.cases import ScreeningRequest, image_tool
from edgeosteo.clinical import ClinicalAnswers
from edgeosteo.errors import IntakeError, RequestError
from edgeosteo.messages import text
from edgeosteo.models import FEATURE_ANSWERS
from edgeosteo.web import box_zone, clock, context, request_language
from edgeosteo.web.auth import login_required
from edgeosteo.web.ct_view import CHECK_LABELS, CHECK_UNITS, LEVELS, ct_view
from edgeosteo.web.follow_up_text import (
    DXA_SITE_NAMES,
    NO_DXA_OUTCOME_NAMES,
    WHO_BAND_NAMES,
)
from edgeosteo.web.form import (
    BODY_PARTS,
    answers_from_form,
    body_part_name,
    fields_for,
    missing_required,
)
from edgeosteo.web.review import film_corners_from_form

blueprint = Blueprint("pages", __name__)
# a model named by what it reads; its id, version and runtime are in the technical details
MODEL_KINDS = {
    "clinical": _l("Clinical risk model (answers only)"),
    "image": _l("Image model"),
    "fused": _l("Combined model (image and answers)"),
}


@blueprint.route("/")
@login_required
def index():
    return redirect(url_for("pages.new_screening"))


@blueprint.route("/screenings/new")
@login_required
def new_screening():
    return render_template(
        "new.html",
        fields=form_fields(),
        body_parts=BODY_PARTS,
        values={},
        problems={},
        upload_error=None,
    )


@blueprint.route("/screenings/upload-facts", methods=["POST"])
@login_required
def upload_facts():
    """What the chosen file's own header says (body part, view), so the page can set its
    body-part control before the technician screens."""
    upload = request.files.get("image")
    data = upload.read() if upload is not None else b""
    facts = context().cases.upload_facts(data).to_dict()
    labels = dict(BODY_PARTS)
    part = facts["body_part"]
    facts["listed"] = part in labels
    facts["label"] = body_part_name(part) if part else ""
    return jsonify(facts)


@blueprint.route("/screenings", methods=["POST"])
@login_required
def create_screening():
    values = request.form.to_dict()
    answers = answers_from_form(values)
    parsed = ClinicalAnswers.from_dict(answers)
    problems = {p.field if p.field != "height_m" else "height_cm": p.code for p in parsed.problems}
    fields = form_fields()
    problems = {**missing_required(fields, answers), **problems}
    upload = request.files.get("image")
    data = upload.read() if upload and upload.filename else None
    upload_error = None
    if data is not None and not data:
        upload_error = "intake.empty_file"
    capture = "photo" if values.get("capture") == "photo" else "digital"
    if not problems and upload_error is None:
        try:
            film_corners = film_corners_from_form(values) if capture == "photo" else None
            record = context().cases.screen_and_store(
                ScreeningRequest(
                    source=data,
                    answers=answers,
                    body_part=values.get("body_part") or None,
                    original_name=upload.filename if data else None,
                    local_patient_id=values.get("local_patient_id", "").strip() or None,
                    created_by=g.user.username,
                    capture=capture,
                    film_corners=film_corners,
                    body_part_confirmed=values.get("body_part_confirmed") == "on",
                )
            )
            return redirect(url_for("pages.case", case_id=record.id))
        except (IntakeError, RequestError) as exc:
            upload_error = exc.code
    return render_template(
        "new.html",
        fields=fields,
        body_parts=BODY_PARTS,
        values=values,
        problems=problems,
        upload_error=upload_error,
    ), 422


def form_fields():
    """The clinical form, with what the models that drive the referral need required."""
    return fields_for(context().cases.answers_needed_for_referral())


def _record(case_id: int):
    record = context().store.get_case(case_id)
    if record is None:
        abort(404)
    return record


@blueprint.route("/cases/<int:case_id>")
@login_required
def case(case_id: int):
    return render_case(_record(case_id))


def render_case(
    record,
    dxa_values: dict | None = None,
    dxa_problem: tuple[str, str] | None = None,
    ct_problem: str | None = None,
    ct_level: str | None = None,
) -> str:
    """The case page; with the DXA form's values and the refusal (code, field) it got when
    a result was not recorded, or the reason a CT tap gave no measurement."""

    anatomy = record.result.get("anatomy") or {}
    registry = context().cases.screener.methods
    methods = registry.for_image(record.body_part, anatomy.get("view"))
    language = "zh_CN" if request_language().startswith("zh") else "en"
    return render_template(
        "case.html",
        missing_for_model=_missing_for_referral_model(record.result),
        rescreen=_rescreen(record),
        case=record,
        result=record.result,
        title=_("Screening result"),
        methods=methods,
        method_names={c.id: c.name.get(language, c.id) for c in registry},
        # said in the banner: the recommendation rests on the answers alone
        model_kinds=MODEL_KINDS,
        no_image_model=getattr(image_tool(record.result), "code", None)
        == "tool.none_for_body_part",
        band_text=lambda band: text(f"measurement.band.{band}", language) if band else "",
        outcome=context().store.get_outcome(record.id),
        dxa_values=dxa_values or {},
        dxa_problem=dxa_problem,
        dxa_sites=DXA_SITE_NAMES,
        who_bands=WHO_BAND_NAMES,
        no_dxa_outcomes=NO_DXA_OUTCOME_NAMES,
        today=clock.today(box_zone()).isoformat(),
        hospital_name=context().settings.web.hospital_name,
        ct=ct_view(record, ct_problem, ct_level),
        ct_levels=LEVELS,
        ct_check_labels=CHECK_LABELS,
        ct_check_units=CHECK_UNITS,
    )


@dataclass(frozen=True)
class Rescreen:
    """When to screen again: the interval and the month it falls in."""

    months: int
    due: str  # YYYY-MM
    # "consider" gives the interval only for when the questions it asks all come back no
    conditional: bool


def _rescreen(record) -> Rescreen | None:
    referral = record.result.get("referral") or {}
    category = referral.get("category")
    months = referral.get("rescreen_interval_months")
    conditional = False
    if category == "consider":
        months, conditional = context().settings.policy.rescreen_interval_months, True
    if category not in ("routine", "consider") or not isinstance(months, int):
        return None
    screened = clock.local(record.created_at, box_zone()).date()
    total = screened.year * 12 + screened.month - 1 + months
    return Rescreen(months, f"{total // 12:04d}-{total % 12 + 1:02d}", conditional)


def _missing_for_referral_model(result: dict) -> str:
    """The unanswered questions (named in the page's language) without which a model
    permitted to drive the referral did not run; "" when none did not."""
    permitted = context().cases.referral_model_ids()
    answers = (result.get("clinical") or {}).get("answers") or {}
    unavailable = (result.get("findings") or {}).get("unavailable") or []
    missing: dict[str, None] = {}
    for item in unavailable:
        if item.get("code") == "model.missing_inputs" and item.get("model_id") in permitted:
            for feature in str(item.get("detail") or "").split(", "):
                for name in FEATURE_ANSWERS.get(feature, (feature,)):
                    if answers.get(name) is None and name:
                        missing[name] = None
    if not missing:
        return ""
    language = "zh_CN" if request_language().startswith("zh") else "en"
    return ("、" if language == "zh_CN" else ", ").join(
        text(f"clinical.field.{name}", language) for name in missing
    )


@blueprint.route("/cases/<int:case_id>/<any(display, heatmap):kind>.png")
@login_required
def case_image(case_id: int, kind: str):
    record = _record(case_id)
    relative = record.display_file if kind == "display" else record.heatmap_file
    if not relative:
        abort(404)
    return send_file(context().store.data_dir / relative, mimetype="image/png")
