"""The photo gates: the measurements of a film photo (edgeosteo.intake.photo) judged
pass / warn / fail with a reason code, before the usual quality gates run.

Intake measures (``PhotoResult.measures``); this module decides. The codes' wording and
retake advice live in edgeosteo.messages_photo.
"""

from __future__ import annotations

from edgeosteo.config import PhotoThresholds, QualityThresholds
from edgeosteo.intake.photo import PhotoResult
from edgeosteo.intake.pixels import shrink_to_long_side
from edgeosteo.quality import GateResult, QualityReport, graded_gate, radiograph_gate


def _graded(
    gate: str, code: str, measured: float, warn: float, fail: float, higher_is_worse: bool = True
) -> GateResult:
    worse = (lambda a, b: a > b) if higher_is_worse else (lambda a, b: a < b)
    failed = worse(measured, fail)
    return graded_gate(
        gate, float(measured), failed, worse(measured, warn), (code, code), fail if failed else warn
    )


def photo_gates(
    photo: PhotoResult, thresholds: PhotoThresholds | None = None
) -> tuple[GateResult, ...]:
    """The photo gates' results, in their fixed order: film_found, is_film, moire,
    exposure, glare, blur, perspective, film_size. ``thresholds`` must be the ones the photo
    was rectified with (``rectify_photo``'s)."""
    t = thresholds or PhotoThresholds()
    radiograph, source, m = photo.radiograph, photo.corner_source, photo.measures
    # the radiograph gate's copy at the analysis size, as the quality gates take it
    analysis, _ = shrink_to_long_side(radiograph.pixels, t.analysis_long_side_px)
    gates: list[GateResult] = []
    if source == "whole_frame":
        gates.append(GateResult("film_found", "warn", "photo.no_film_found", source, None))
    else:
        gates.append(GateResult("film_found", "pass", "quality.ok", source, None))

    moire = _graded("moire", "photo.moire", m.moire, t.moire_fail_ratio, t.moire_fail_ratio)
    # colour fringes on an otherwise gray picture: a screen, even without a clean beat
    if (
        moire.verdict == "pass"
        and m.fringe > t.fringe_fail
        and m.fringe >= t.fringe_share_of_colour * radiograph.colourfulness
    ):
        moire = GateResult("moire", "fail", "photo.moire", round(m.fringe, 4), t.fringe_fail)
    document = radiograph_gate(radiograph, analysis, QualityThresholds(colour_fail=t.colour_fail))
    if document.verdict == "fail" and moire.verdict != "fail":
        # a monitor's colour fringes are the moire's doing, not a colour photograph's
        gates.append(
            GateResult("is_film", "fail", "photo.not_radiograph", document.measured, document.limit)
        )
    else:
        gates.append(
            GateResult(
                "is_film", "pass", "quality.ok", round(radiograph.colourfulness, 2), t.colour_fail
            )
        )
    gates.append(moire)

    # the film's own clipping, or a frame so blown out that the film cannot be told apart
    if m.clipped_frame > t.overexposed_frame_fraction:
        exposure = GateResult(
            "exposure",
            "fail",
            "photo.overexposed",
            round(m.clipped_frame, 4),
            t.overexposed_frame_fraction,
        )
    else:
        exposure = _graded(
            "exposure",
            "photo.overexposed",
            m.clipped_film,
            t.overexposed_warn_fraction,
            t.overexposed_fail_fraction,
        )
    gates.append(exposure)

    if exposure.verdict == "fail":
        # a blown-out photo is one problem, not many reflections
        gates.append(GateResult("glare", "pass", "quality.ok", round(m.glare_fraction, 4), None))
    else:
        gates.append(
            _graded(
                "glare",
                f"photo.glare_{m.glare_place}",
                m.glare_fraction,
                t.glare_warn_fraction,
                t.glare_fail_fraction,
            )
        )
    gates.append(_graded("blur", "photo.blurred", m.blur_px, t.blur_warn_px, t.blur_fail_px))
    gates.append(
        _graded(
            "perspective",
            "photo.perspective_steep",
            m.tilt_deg,
            t.perspective_warn_deg,
            t.perspective_fail_deg,
        )
    )
    if source == "whole_frame":
        gates.append(GateResult("film_size", "pass", "quality.ok", None, None))
    else:
        gates.append(
            _graded(
                "film_size",
                "photo.film_too_small",
                m.film_fraction,
                t.film_small_warn_fraction,
                t.film_small_fail_fraction,
                higher_is_worse=False,
            )
        )
    return tuple(gates)


def photo_quality(photo: PhotoResult, thresholds: PhotoThresholds | None = None) -> QualityReport:
    """The photo gates alone as a report (screening adds the usual quality gates after)."""
    return QualityReport(gates=photo_gates(photo, thresholds))
