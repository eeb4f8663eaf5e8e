"""A CT case on the page: the sagittal reformat the technician taps, the measurement it
gives (ct-l1, stored and the case decided again), and the axial slices with the ROI drawn.
The tap travels in the reformat's own pixels (an image row across, a slice down); the page
scales it from the shown image, whose size in those pixels it is told."""

from __future__ import annotations

from flask import Blueprint, Response, abort, redirect, request, url_for

from edgeosteo.errors import RequestError
from edgeosteo.methods.ct_l1 import LEVELS, parse_request
from edgeosteo.web import context
from edgeosteo.web.auth import login_required
from edgeosteo.web.pages import render_case

blueprint = Blueprint("ct", __name__)


def _record(case_id: int):
    record = context().store.get_case(case_id)
    if record is None:
        abort(404)
    return record


def _png(data: bytes | None) -> Response:
    if data is None:
        abort(404)
    response = Response(data, mimetype="image/png")
    response.headers["Cache-Control"] = "private, max-age=300"
    return response


@blueprint.route("/cases/<int:case_id>/ct/sagittal.png")
@login_required
def sagittal(case_id: int):
    return _png(context().cases.ct_sagittal_png(_record(case_id)))


@blueprint.route("/cases/<int:case_id>/ct/axial/<int:index>.png")
@login_required
def axial(case_id: int, index: int):
    return _png(context().cases.ct_axial_png(_record(case_id), index))


@blueprint.route("/cases/<int:case_id>/ct/measure", methods=["POST"])
@login_required
def measure(case_id: int):
    """The form's level and tap: measured and saved (the case is decided again), or the
    case page again with the reason the tap gave no measurement."""
    record = _record(case_id)
    level = request.form.get("level", "L1")
    try:
        if level not in LEVELS:
            raise RequestError("request.measurement_points_invalid", f"level {level[:8]}")
        tap = [float(request.form.get("tap_x", "")), float(request.form.get("tap_y", ""))]
        measurement = parse_request({"level": level, "sagittal": tap})
    except (RequestError, ValueError):
        return render_case(record, ct_problem="measurement.ct_tap_missing", ct_level=level), 422
    done = context().cases.measure_ct_case(case_id, measurement, save=True)
    if done is None:
        abort(404)
    saved, result = done
    if result.status != "measured":
        return render_case(saved or record, ct_problem=result.code, ct_level=level), 422
    return redirect(url_for("pages.case", case_id=case_id, _anchor="ct-result"))
