"""The reference hub: takes the boxes' FHIR transaction Bundles and shows a dashboard.

POST {base}/fhir with ``Authorization: Bearer <device token>`` and a Bundle from
edgeosteo.fhir. Every record must name the site and device the token was issued to. The
answer is a transaction-response Bundle: 201 for what was new, 200 for a replay. A record
may be a revision of an earlier one of the same case; the dashboard counts each case once,
by its current (highest) revision. The dashboard is in Simplified Chinese or English: the
browser's language, or ``?lang=zh_CN`` / ``?lang=en``.
"""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path
from typing import Any

from flask import Flask, Response, jsonify, render_template, request
from flask_babel import Babel

from edgeosteo.config import FollowUpSettings, HubSettings
from edgeosteo.dxa import dxa_result_from
from edgeosteo.errors import FollowUpError
from edgeosteo.fhir import BundleError, read_bundle, read_dxa_result
from edgeosteo.hub import outcomes
from edgeosteo.hub.store import Credential, DxaResultRefused, HubStore
from edgeosteo.messages import text

HUB_DATABASE_NAME = "hub.sqlite3"
FHIR_JSON = "application/fhir+json"
MAX_AGE_YEARS = 150
# the product has one catalogue: the hub's strings are extracted into the box page's
TRANSLATIONS = Path(__file__).resolve().parents[1] / "web" / "translations"
LANGUAGES = ("zh_CN", "en")
SEX_LABELS = {"female": ("female", "女"), "male": ("male", "男"), "unknown": ("unknown", "不详")}


def dashboard_language() -> str:
    """``?lang=`` when it names a language the hub speaks, else the browser's choice."""
    asked = request.args.get("lang", "")
    if asked in LANGUAGES:
        return asked
    best = request.accept_languages.best_match(["zh-CN", "zh", "en"], default="en")
    return "zh_CN" if best.startswith("zh") else "en"


def _in_language(language: str, english: str, chinese: str) -> str:
    return chinese if language == "zh_CN" else english


def database_url(settings: HubSettings, data_dir: Path) -> str:
    if settings.database_url:
        return settings.database_url
    data_dir.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{data_dir / HUB_DATABASE_NAME}"


def _outcome(status: int, code: str, diagnostics: str) -> Response:
    body = {
        "resourceType": "OperationOutcome",
        "issue": [{"severity": "error", "code": code, "diagnostics": diagnostics}],
    }
    response = Response(json.dumps(body), status=status, mimetype=FHIR_JSON)
    if status == 401:
        response.headers["WWW-Authenticate"] = 'Bearer realm="edgeosteo-hub"'
    return response


ERROR_SYSTEM = "urn:edgeosteo:error"
DXA_REFUSAL_STATUS = {"hub.dxa_unknown_case": 404, "hub.dxa_duplicate": 409}
RECEIPT_CODE_MAX_CHARS = 80


def _refusal(status: int, code: str, detail: str = "") -> Response:
    """A typed refusal: the stable code, and its sentence in English (diagnostics) and
    Simplified Chinese (details.text)."""
    body = {
        "resourceType": "OperationOutcome",
        "issue": [
            {
                "severity": "error",
                "code": "not-found"
                if status == 404
                else "duplicate"
                if status == 409
                else "invalid",
                "details": {
                    "coding": [{"system": ERROR_SYSTEM, "code": code}],
                    "text": text(code, "zh_CN"),
                },
                "diagnostics": text(code, "en") + (f" ({detail})" if detail else ""),
            }
        ],
    }
    return Response(json.dumps(body, ensure_ascii=False), status=status, mimetype=FHIR_JSON)


def _bearer() -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip()
    if request.authorization and request.authorization.password:
        return request.authorization.password  # a browser's Basic prompt, for viewers
    return None


def create_hub_app(settings: HubSettings, data_dir: Path, store: HubStore | None = None) -> Flask:
    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = settings.max_body_bytes
    hub_store = store or HubStore(database_url(settings, data_dir))
    app.extensions["edgeosteo_hub"] = {"settings": settings, "store": hub_store}
    Babel(
        app,
        locale_selector=dashboard_language,
        default_translation_directories=str(TRANSLATIONS),
    )

    @app.context_processor
    def language_helpers() -> dict[str, Any]:
        language = dashboard_language()
        return {
            "lang": language,
            "sex_label": lambda sex: _in_language(
                language, *SEX_LABELS.get(sex or "unknown", (sex, sex))
            ),
            "age_label": lambda band: (
                _in_language(language, band, "不详") if band == "unknown" else band
            ),
            "code_text": lambda code: text(code, language),
        }

    def credential(role: str) -> Credential | None:
        token = _bearer()
        found = hub_store.authenticate(token) if token else None
        return found if found and found.role == role else None

    @app.post("/fhir")
    @app.post("/fhir/")
    def receive() -> Response:
        device = credential("device")
        if device is None:
            return _outcome(401, "login", "a valid device bearer token is required")
        if request.mimetype not in (FHIR_JSON, "application/json"):
            return _outcome(415, "not-supported", "send application/fhir+json")
        try:
            bundle = json.loads(request.get_data())
            received = read_bundle(bundle)
        except (
            ValueError,
            KeyError,
            TypeError,
            AttributeError,
            OverflowError,  # int() of an infinite number
            RecursionError,  # JSON nested deeper than the decoder's recursion limit
        ) as exc:
            message = str(exc) if isinstance(exc, BundleError) else "malformed bundle"
            return _outcome(400, "invalid", message)
        for record in received:
            if record.age_years is not None and not 0 <= record.age_years <= MAX_AGE_YEARS:
                # beyond any person, and beyond what the database column can hold
                return _outcome(400, "invalid", f"record {record.record_uuid}: age out of range")
            if (record.site_id, record.device_id) != (device.site_id, device.device_id):
                return _outcome(
                    403,
                    "forbidden",
                    f"record {record.record_uuid} names {record.site_id}/{record.device_id}, "
                    "not the device this token belongs to",
                )
        outcome = hub_store.store(received, device)
        created = set(outcome.created)
        entries: list[dict[str, Any]] = []
        for entry in bundle["entry"]:
            resource = entry["resource"]
            uuid = _record_of(resource, received)
            status = "201 Created" if uuid in created else "200 OK"
            entries.append({"response": {"status": status}})
        body = {"resourceType": "Bundle", "type": "transaction-response", "entry": entries}
        return Response(json.dumps(body), status=200, mimetype=FHIR_JSON)

    @app.post("/fhir/dxa-results")
    def give_dxa_result() -> Response:
        """A DXA result for a pseudonymous case record, for its box to take on its next
        sync. Checked as the box's page checks one; matched by site, patient key and case
        record, never by name."""
        reporter = credential("reporter")
        if reporter is None:
            return _outcome(401, "login", "a reporter bearer token is required")
        try:
            observation = json.loads(request.get_data())
            delivered = read_dxa_result(observation)
        except (ValueError, TypeError, AttributeError, RecursionError) as exc:
            detail = str(exc) if isinstance(exc, BundleError) else "not JSON"
            return _refusal(400, "hub.dxa_not_a_result", detail)
        if reporter.site_id not in ("*", delivered.site_id):
            return _outcome(403, "forbidden", f"this token gives results for {reporter.site_id}")
        try:
            dxa_result_from(delivered.fields, FollowUpSettings(), date.today())
        except FollowUpError as exc:
            return _refusal(422, exc.code, exc.detail or "")
        try:
            delivery_id = hub_store.add_dxa_result(delivered, observation, reporter.device_id)
        except DxaResultRefused as exc:
            return _refusal(DXA_REFUSAL_STATUS[exc.code], exc.code, delivered.case_record)
        body = {**observation, "id": str(delivery_id)}
        return Response(json.dumps(body, ensure_ascii=False), status=201, mimetype=FHIR_JSON)

    @app.get("/fhir/dxa-results")
    def pending_dxa_results() -> Response:
        """The DXA results waiting for the asking box (a searchset Bundle)."""
        device = credential("device")
        if device is None:
            return _outcome(401, "login", "a valid device bearer token is required")
        found = hub_store.pending_dxa_results(device.site_id, device.device_id)
        body = {
            "resourceType": "Bundle",
            "type": "searchset",
            "total": len(found),
            "entry": [{"resource": observation} for observation in found],
        }
        return Response(json.dumps(body, ensure_ascii=False), status=200, mimetype=FHIR_JSON)

    @app.post("/fhir/dxa-results/<path:delivery>/receipt")
    def dxa_result_receipt(delivery: str) -> Response:
        """The box's answer for one result: recorded, or refused with its code."""
        device = credential("device")
        if device is None:
            return _outcome(401, "login", "a valid device bearer token is required")
        # a FHIR answer for any id, not Flask's HTML 404 (ids are small positive integers)
        if not (delivery.isascii() and delivery.isdigit() and len(delivery) <= 18):
            return _outcome(404, "not-found", "no such DXA result")
        delivery_id = int(delivery)
        answer = request.get_json(silent=True)
        status = answer.get("status") if isinstance(answer, dict) else None
        code = answer.get("code") if isinstance(answer, dict) else None
        if status not in ("recorded", "refused") or (
            status == "refused" and not (isinstance(code, str) and code)
        ):
            return _outcome(400, "invalid", 'send {"status": "recorded"} or "refused" with a code')
        refusal = str(code)[:RECEIPT_CODE_MAX_CHARS] if status == "refused" else None
        if not hub_store.answer_dxa_result(delivery_id, device.site_id, device.device_id, refusal):
            return _outcome(404, "not-found", f"no DXA result {delivery_id} for this device")
        return jsonify(status=status)

    @app.get("/healthz")
    def health() -> Response:
        return jsonify(status="ok", records=hub_store.count_records())

    def dashboard_data() -> dict[str, Any]:
        data = hub_store.dashboard(settings.age_band_edges, settings.referred_categories)
        case_rows = hub_store.outcome_rows()
        return {
            "total": data.total,
            "per_site_week": [
                {"site": site, "week": week, "results": n}
                for (site, week), n in data.per_site_week.items()
            ],
            "referral_rates": [
                {
                    "sex": sex,
                    "age_band": band,
                    "referred": referred,
                    "results": n,
                    "rate": round(referred / n, 3) if n else None,
                }
                for (sex, band), (referred, n) in data.referral_rates.items()
            ],
            "model_versions": data.model_versions,
            "refusals": data.refusals,
            "deliveries": data.deliveries,
            "replayed_records": data.replayed_records,
            "superseded_records": data.superseded_records,
            "vertebral_findings": [
                {
                    "site": site,
                    "sex": sex,
                    "age_band": band,
                    "fractures": fractures,
                    "possible": possible,
                    "assessed": assessed,
                }
                for (site, sex, band), (fractures, possible, assessed) in (
                    data.vertebral_findings.items()
                )
            ],
            "measurement_bands": data.measurement_bands,
            "referral_outcomes": outcomes.referral_outcomes(
                case_rows, settings.age_band_edges, settings.referred_categories
            ),
            "drift": outcomes.drift(case_rows, settings.referred_categories),
            "drift_bounds": {
                "min_cases_each_side": outcomes.DRIFT_MIN_CASES,
                "p_below": outcomes.DRIFT_P_VALUE,
                "referral_rate_change_at_least": outcomes.DRIFT_RATE_CHANGE,
                "score_psi_at_least": outcomes.DRIFT_PSI,
            },
            "dxa_deliveries": hub_store.dxa_result_states(),
        }

    def viewer_required() -> Response | None:
        if credential("viewer") is None:
            response = _outcome(401, "login", "a viewer token is required")
            response.headers["WWW-Authenticate"] = 'Basic realm="edgeosteo-hub"'
            return response
        return None

    @app.get("/")
    def dashboard() -> Response | str:
        refused = viewer_required()
        if refused is not None:
            return refused
        return render_template("dashboard.html", data=dashboard_data())

    @app.get("/dashboard.json")
    def dashboard_json() -> Response:
        refused = viewer_required()
        return refused if refused is not None else jsonify(dashboard_data())

    return app


def _record_of(resource: dict[str, Any], received: list[Any]) -> str | None:
    """Which record an entry belongs to (the shared Patient counts as its first record's)."""
    for record in received:
        if any(r is resource for r in record.resources):
            return record.record_uuid
        if resource.get("resourceType") == "Binary" and resource.get("id") == record.record_uuid:
            return record.record_uuid
    return None
