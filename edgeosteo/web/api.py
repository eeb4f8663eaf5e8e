"""JSON API for integrations and tests: POST a screening, GET a case, POST its DXA result,
the box's status;
/healthz (no credentials: ok or degraded and the version) for the watchdog. Authenticated
with HTTP Basic (the same accounts), never with the page cookie, so it needs no CSRF token;
a verified pair is remembered for [web] api_credentials_cache_seconds
(auth.VerifiedCredentials). A disabled account answers 401 as an unknown one does; one whose
one-time password is still to be changed on the page, 403 account.password_change_due.
Documented in openapi.json."""

from __future__ import annotations

import json
import time
from pathlib import Path

from flask import Blueprint, Response, abort, jsonify, request

from edgeosteo import __version__
from edgeosteo.cases import ScreeningRequest
from edgeosteo.clinical import ClinicalAnswers
from edgeosteo.errors import FollowUpError, IntakeError, RequestError
from edgeosteo.messages import text
from edgeosteo.models import verify_files
from edgeosteo.web import context
from edgeosteo.web.measure import measurement_requests_from_form
from edgeosteo.web.review import film_corners_from_form

blueprint = Blueprint("api", __name__)
OPENAPI_FILE = Path(__file__).parent / "openapi.json"
STARTED = time.monotonic()


def _authenticated_user():
    credentials = request.authorization
    if credentials is None or credentials.type != "basic":
        return None
    web = context().settings.web
    user, _problem = context().api_credentials.check(
        context().store,
        credentials.username or "",
        credentials.password or "",
        web.login_attempts_before_lock,
        web.login_lock_seconds,
    )
    return user


def _refusal(user) -> Response | tuple[Response, int] | None:
    """Why the API will not act for these credentials: none that verify (a disabled account
    among them, answered as an unknown one), or a one-time password still to be changed on
    the page; None when it may."""
    if user is None:
        return _unauthorised()
    if user.must_change_password:
        return _error(403, "account.password_change_due")
    return None


def _unauthorised() -> Response:
    response = jsonify({"error": {"status": 401, "message": "HTTP Basic credentials required"}})
    response.status_code = 401
    response.headers["WWW-Authenticate"] = 'Basic realm="edgeosteo"'
    return response


def _error(status: int, code: str, detail: object = None) -> tuple[Response, int]:
    return jsonify(
        {
            "error": {
                "status": status,
                "code": code,
                "message_en": text(code, "en"),
                "message_zh_CN": text(code, "zh_CN"),
                "detail": detail,
            }
        }
    ), status


def _answers_object(raw: str) -> dict:
    """The answers field as a flat JSON object, or ValueError. A nesting deeper than the
    parser's recursion limit is refused here, the one place the API parses answers; an
    answer is a scalar, so any list or object among the values is refused as well."""
    try:
        answers = json.loads(raw)
    except RecursionError:
        raise ValueError("answers are nested too deeply") from None
    if not isinstance(answers, dict):
        raise ValueError("answers must be a JSON object")
    nested = sorted(str(k) for k, v in answers.items() if isinstance(v, dict | list))
    if nested:
        raise ValueError(f"an answer must be a single value, not a list or object: {nested}")
    return answers


def _case_json(record) -> dict:
    outcome = context().store.get_outcome(record.id)
    return {
        "case": record.id,
        "state": record.state,
        "category": record.category,
        "local_patient_id": record.local_patient_id,
        "screening": record.result,
        "research_consent": record.research_consent,
        "referral_outcome": outcome.to_dict() if outcome else None,
    }


def _model_check() -> tuple[bool, dict[str, bool]]:
    registry = context().cases.screener.registry
    models = {m.id: all(c.ok for c in verify_files(m)) for m in registry}
    return all(models.values()) and not registry.problems, models


@blueprint.route("/healthz")
def health():
    """For the watchdog, without credentials: ok or degraded, and the version; nothing about
    the cases or the models (the authenticated /api/v1/status says those)."""
    healthy, _models = _model_check()
    return jsonify(
        {"status": "ok" if healthy else "degraded", "version": __version__}
    ), 200 if healthy else 503


@blueprint.route("/api/v1/status")
def status():
    if (refused := _refusal(_authenticated_user())) is not None:
        return refused
    healthy, models = _model_check()
    return jsonify(
        {
            "status": "ok" if healthy else "degraded",
            "version": __version__,
            "uptime_s": round(time.monotonic() - STARTED, 1),
            "models": models,
            "cases": context().store.count_cases(),
        }
    )


@blueprint.route("/api/v1/openapi.json")
def openapi():
    return Response(OPENAPI_FILE.read_text(encoding="utf-8"), mimetype="application/json")


@blueprint.route("/api/v1/screenings", methods=["POST"])
def post_screening():
    user = _authenticated_user()
    if (refused := _refusal(user)) is not None:
        return refused
    try:
        answers = _answers_object(request.form.get("answers", "{}"))
    except ValueError as exc:
        return _error(400, "answers.invalid", str(exc))
    parsed = ClinicalAnswers.from_dict(answers)
    if parsed.problems:
        return _error(422, "answers.invalid", [p.to_dict() for p in parsed.problems])
    upload = request.files.get("image")
    data = upload.read() if upload is not None else None
    if data is not None and not data:
        return _error(422, "intake.empty_file")
    capture = "photo" if request.form.get("capture") == "photo" else "digital"
    try:
        film_corners = film_corners_from_form(request.form) if capture == "photo" else None
        record = context().cases.screen_and_store(
            ScreeningRequest(
                source=data,
                answers=answers,
                body_part=request.form.get("body_part") or None,
                body_part_confirmed=request.form.get("body_part_confirmed") == "true",
                original_name=upload.filename if upload is not None else None,
                local_patient_id=request.form.get("local_patient_id") or None,
                created_by=user.username,
                capture=capture,
                film_corners=film_corners,
                measurements=measurement_requests_from_form(request.form),
            )
        )
    except (IntakeError, RequestError) as exc:
        return _error(422, exc.code, exc.detail)
    response = jsonify(_case_json(record))
    response.status_code = 201
    response.headers["Location"] = f"/api/v1/cases/{record.id}"
    return response


@blueprint.route("/api/v1/cases/<int:case_id>")
def get_case(case_id: int):
    if (refused := _refusal(_authenticated_user())) is not None:
        return refused
    record = context().store.get_case(case_id)
    if record is None:
        abort(404)
    return jsonify(_case_json(record))


# how each refusal of a DXA result answers: the case is not there, or already has a result
DXA_STATUS = {"dxa.case_not_found": 404, "dxa.duplicate": 409}


@blueprint.route("/api/v1/cases/<int:case_id>/dxa", methods=["POST"])
def post_dxa(case_id: int):
    """Record a case's DXA result, which closes its referral; nothing changes on a refusal."""
    user = _authenticated_user()
    if (refused := _refusal(user)) is not None:
        return refused
    try:
        body = request.get_json(force=True, silent=True)
    except RecursionError:
        body = None
    if not isinstance(body, dict):
        return _error(400, "dxa.body_invalid", "a JSON object is required")
    try:
        outcome = context().cases.record_dxa(case_id, body, user.username)
    except FollowUpError as exc:
        return _error(DXA_STATUS.get(exc.code, 422), exc.code, exc.detail)
    response = jsonify(outcome.to_dict())
    response.status_code = 201
    response.headers["Location"] = f"/api/v1/cases/{case_id}"
    return response
