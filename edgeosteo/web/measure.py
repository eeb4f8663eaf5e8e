"""Measurements on the page: the reader taps a stored case's image, the method finds the
edges (a preview the page draws, with handles to drag), and a saved measurement decides
the case again. Points travel in the radiograph's pixels; the page scales its taps from
the display image, whose size it knows."""

from __future__ import annotations

from collections.abc import Mapping

from flask import Blueprint, abort, jsonify, request

from edgeosteo.errors import RequestError
from edgeosteo.measurement import MeasurementRequest
from edgeosteo.messages import text
from edgeosteo.web import context
from edgeosteo.web.auth import login_required

blueprint = Blueprint("measure", __name__)


def measurement_requests_from_form(form: Mapping[str, str]) -> tuple[MeasurementRequest, ...]:
    """``measure`` (a method id) and ``points`` (JSON taps) from a form; none when blank.
    Raises RequestError for taps that cannot be read."""
    method = (form.get("measure") or "").strip()
    points = form.get("points") or ""
    if not method:
        if points.strip():
            raise RequestError("request.measurement_points_invalid", "points without a method")
        return ()
    return (MeasurementRequest.parse(method, points),)


def _request_error(exc: RequestError):
    response = jsonify(
        {
            "status": "refused",
            "code": exc.code,
            "message_en": text(exc.code, "en"),
            "message_zh_CN": text(exc.code, "zh_CN"),
            "detail": exc.detail,
        }
    )
    response.status_code = 422
    return response


@blueprint.route("/cases/<int:case_id>/measurements", methods=["POST"])
@login_required
def measure_case(case_id: int):
    """JSON body ``{"method": ..., "points": [[x, y], ...], "save": bool}`` (options as
    for the CLI's ``--points`` object). Returns the measurement or its refusal; with
    ``save`` the case is decided again and its new category comes back too."""
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        return _request_error(RequestError("request.measurement_points_invalid", "no JSON body"))
    try:
        points = body.get("points")
        options = body.get("options")
        if isinstance(options, dict):
            points = {**options, "points": points}
        measurement = MeasurementRequest.parse(str(body.get("method") or ""), points)
    except RequestError as exc:
        return _request_error(exc)
    done = context().cases.measure_case(case_id, measurement, save=body.get("save") is True)
    if done is None:
        abort(404)
    record, result = done
    payload = {"measurement": result.to_dict(), "saved": body.get("save") is True}
    if record is not None:
        payload["category"] = (record.result.get("referral") or {}).get("category")
    return jsonify(payload)
