"""Measurements in the decision: a band drives the referral only through the cut-off its
card cites, only where the site counts the method, and a worse index never lowers the
category; a refused measurement is a note, never evidence."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_decision import PASS, answers_strategy, findings_strategy, policies, qualities

from edgeosteo.clinical import ClinicalAnswers, assess_clinical
from edgeosteo.decision import MEASUREMENT_BANDS, SEVERITY, decide
from edgeosteo.measurement import Measurement, MeasurementRefusal, MeasurementRequest
from edgeosteo.messages import CATALOGUE
from edgeosteo.methods import MethodRegistry

MODELS = Path(__file__).resolve().parents[1] / "models"
CARDS = list(MethodRegistry(MODELS))
LOW_RISK = ClinicalAnswers(age_years=52, sex="female", weight_kg=70, prior_fragility_fracture=False)


def measured(card, value: float) -> Measurement:
    band, cutoff = card.band_for(value)
    return Measurement(card.id, card.version, value, card.unit, band, cutoff, (), ())


def worse_first(card, a: float, b: float) -> tuple[float, float]:
    """(worse, better) of two values: a lower index is worse, a higher grade is."""
    return (max(a, b), min(a, b)) if card.unit == "grade" else (min(a, b), max(a, b))


def test_every_card_band_points_to_a_category_and_has_wording() -> None:
    for card in CARDS:
        for band in card.bands:
            assert band.band in MEASUREMENT_BANDS, (card.id, band.band)
            assert f"measurement.band.{band.band}" in CATALOGUE
            assert band.citation.strip() and band.rule.strip()


@pytest.mark.skipif(not CARDS, reason="no measurement method card installed")
@settings(max_examples=300, deadline=None)
@given(
    st.sampled_from(CARDS) if CARDS else st.nothing(),
    st.floats(0.0, 5.0),
    st.floats(0.0, 5.0),
    answers_strategy(),
    findings_strategy(),
    qualities,
    policies,
)
def test_a_worse_measurement_never_lowers_the_category(
    card, v1, v2, answers, findings, quality, policy
) -> None:
    worse, better = worse_first(card, v1, v2)
    assessment = assess_clinical(answers)
    a = decide(answers, assessment, findings, quality, policy, [measured(card, better)])
    b = decide(answers, assessment, findings, quality, policy, [measured(card, worse)])
    assert b.severity >= a.severity


@settings(max_examples=200, deadline=None)
@given(answers_strategy(), findings_strategy(), qualities, policies)
def test_a_measurement_never_lowers_what_the_rest_decided(answers, findings, quality, policy):
    assessment = assess_clinical(answers)
    without = decide(answers, assessment, findings, quality, policy)
    for card in CARDS:
        for value in (0.1, 0.45, 0.55, 0.9, 0, 1, 2):
            with_m = decide(answers, assessment, findings, quality, policy, [measured(card, value)])
            assert with_m.severity >= without.severity or without.category == "cannot_assess"


def _band_measurement(band: str, method: str = "mci") -> Measurement:
    return Measurement(method, "1.0.0", 0.4, "ratio", band, None, (), ())


@pytest.mark.parametrize("band", sorted(MEASUREMENT_BANDS))
def test_a_counted_band_sets_the_category_it_points_to(band: str) -> None:
    method = "vertebrae" if "vertebral" in band else "mci"
    referral = decide(LOW_RISK, None, None, PASS, None, [_band_measurement(band, method)])
    assert SEVERITY[referral.category] >= SEVERITY[MEASUREMENT_BANDS[band]]
    assert f"measurement.band.{band}" in [r.code for r in referral.reasons]


def test_an_uncounted_method_is_information_only() -> None:
    from edgeosteo.decision import SitePolicy

    policy = dataclasses.replace(SitePolicy(), counted_measurements=())
    referral = decide(
        LOW_RISK, None, None, PASS, policy, [_band_measurement("osteoporosis_likely")]
    )
    counted = decide(LOW_RISK, None, None, PASS, None, [_band_measurement("osteoporosis_likely")])
    assert counted.category == "refer"
    assert referral.category != "refer"
    assert "measurement.information_only" in [n.code for n in referral.notes]


def test_a_refused_measurement_is_a_note_not_evidence() -> None:
    refusal = MeasurementRefusal("mci", "measurement.edge_not_found")
    referral = decide(LOW_RISK, None, None, PASS, None, [refusal])
    plain = decide(LOW_RISK, None, None, PASS, None)
    assert referral.category == plain.category
    assert "measurement.edge_not_found" in [n.code for n in referral.notes]
    assert not any(r.code.startswith("measurement.") for r in referral.reasons)


@pytest.mark.parametrize(
    ("points", "code"),
    [
        ("not json", "request.measurement_points_invalid"),
        ("[[1, 2], [3]]", "request.measurement_points_invalid"),
        ('[[1, "a"]]', "request.measurement_points_invalid"),
        ("[[1, NaN]]", "request.measurement_points_invalid"),
        ('{"points": [[1, 2]], "nested": {"a": 1}}', "request.measurement_points_invalid"),
        ("[" + ",".join(["[1,2]"] * 201) + "]", "request.measurement_points_invalid"),
    ],
)
def test_unreadable_taps_are_a_typed_request_error(points: str, code: str) -> None:
    from edgeosteo.errors import RequestError

    with pytest.raises(RequestError) as caught:
        MeasurementRequest.parse("mci", points)
    assert caught.value.code == code


def test_taps_parse_as_a_list_or_an_object_with_options() -> None:
    listed = MeasurementRequest.parse("MCI", "[[10, 20.5], [30, 40]]")
    assert listed.method == "mci" and listed.points == ((10.0, 20.5), (30.0, 40.0))
    with_options = MeasurementRequest.parse(
        "vertebrae", '{"first_level": "T12", "points": [[1, 2]]}'
    )
    assert with_options.options == {"first_level": "T12"} and with_options.points == ((1.0, 2.0),)
