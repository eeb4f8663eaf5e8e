"""The referral decision: scenarios, monotonicity, determinism, wording in both languages,
the site policy, and threshold recalibration."""

from __future__ import annotations

import dataclasses
import json
import re
from itertools import combinations

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from edgeosteo.clinical import FORM_QUESTIONS, ClinicalAnswers, assess_clinical
from edgeosteo.decision import (
    CATEGORY_ORDER,
    SEVERITY,
    Referral,
    SitePolicy,
    decide,
    recalibrate_threshold,
    roc_auc,
    stored_evidence,
)
from edgeosteo.errors import ConfigError
from edgeosteo.findings import (
    UNKNOWN_BODY_PART,
    Findings,
    ModelFinding,
    UnavailableFinding,
    probability_against,
    probability_text,
    threshold_text,
)
from edgeosteo.messages import CATALOGUE, QUALITY_SHORT_ZH
from edgeosteo.quality import GateResult, QualityReport

CJK = re.compile(r"[\u4e00-\u9fff]")

PASS = QualityReport((GateResult("blur", "pass", "quality.ok", 300.0, 5.0),))
WARN = QualityReport((GateResult("blur", "warn", "quality.soft", 4.0, 5.0),))
FAIL = QualityReport((GateResult("blur", "fail", "quality.blurred", 1.0, 2.0),))


def image(
    p_op: float | None = None,
    p_lbm: float | None = None,
    *,
    used: bool = True,
    kind: str = "image",
    t: float | None = None,
    model_id: str = "knee-image",
) -> Findings:
    return Findings((finding(p_op, p_lbm, used=used, kind=kind, t=t, model_id=model_id),))


def finding(
    p_op: float | None = None,
    p_lbm: float | None = None,
    *,
    used: bool = True,
    kind: str = "image",
    t: float | None = None,
    model_id: str = "knee-image",
) -> ModelFinding:
    return ModelFinding(
        model_id,
        "1.0.0",
        kind,
        used,
        p_low_bone_mass=p_lbm,  # type: ignore[arg-type]
        p_osteoporosis=p_op,
        t_score=t,
        t_score_sd=0.9 if t is not None else None,
    )


LOW_RISK = ClinicalAnswers(
    age_years=40, sex="female", weight_kg=70, prior_fragility_fracture=False
)  # OSTA 6, low


def run(
    answers: ClinicalAnswers = LOW_RISK,
    findings: Findings | None = None,
    quality: QualityReport | None = None,
    policy: SitePolicy | None = None,
) -> Referral:
    return decide(answers, assess_clinical(answers), findings, quality, policy or SitePolicy())


def codes(referral: Referral) -> set[str]:
    return {r.code for r in (*referral.reasons, *referral.notes)}


# --- scenarios ----------------------------------------------------------------------------


def test_category_order_is_explicit() -> None:
    assert CATEGORY_ORDER == ("cannot_assess", "retake", "routine", "consider", "refer", "urgent")
    assert [SEVERITY[c] for c in CATEGORY_ORDER] == list(range(6))
    # each pair by name, not through a table built from the order itself
    assert SEVERITY["urgent"] > SEVERITY["refer"] > SEVERITY["consider"] > SEVERITY["routine"]
    assert SEVERITY["routine"] > SEVERITY["retake"] > SEVERITY["cannot_assess"]


def test_urgent_evidence_outranks_refer_evidence() -> None:
    """A fracture with a probable osteoporosis (urgent) beside a probability above the refer
    threshold (refer): the recommendation is urgent, and its reason comes first."""
    answers = dataclasses.replace(LOW_RISK, prior_fragility_fracture=True)
    referral = run(answers, image(0.9, 0.95), PASS)
    assert referral.category == "urgent"
    assert referral.reasons[0].points_to == "urgent"
    assert {r.points_to for r in referral.reasons} >= {"urgent", "refer"}


def test_image_above_threshold_refers_with_evidence() -> None:
    policy = SitePolicy(refer_p_osteoporosis=0.55)
    referral = run(findings=image(0.82, 0.95), quality=PASS, policy=policy)
    assert referral.category == "refer"
    driving = referral.driving
    assert [r.code for r in driving] == ["image.p_osteoporosis_above_threshold"]
    assert "82%" in driving[0].evidence.en and "55%" in driving[0].evidence.en
    assert not referral.clinical_only and referral.primary_model == "knee-image"
    assert referral.rescreen_interval_months is None


def test_threshold_is_inclusive() -> None:
    assert run(findings=image(0.5), quality=PASS).category == "refer"
    assert run(findings=image(0.4999), quality=PASS).category == "consider"
    assert run(findings=image(0.1999), quality=PASS).category == "routine"
    assert run(findings=image(0.1, 0.5), quality=PASS).category == "consider"


def test_routine_says_a_low_score_cannot_rule_out_osteoporosis() -> None:
    referral = run(
        findings=image(0.05, 0.1), quality=PASS, policy=SitePolicy(rescreen_interval_months=18)
    )
    assert referral.category == "routine"
    assert referral.rescreen_interval_months == 18
    assert "cannot rule out osteoporosis" in referral.wording("patient", "en")
    assert "cannot rule out osteoporosis" in referral.wording("clinician", "en")
    assert "不能排除骨质疏松" in referral.wording("patient", "zh_CN")
    assert "不能排除骨质疏松" in referral.wording("clinician", "zh_CN")


def test_positive_image_finding_is_never_argued_down_by_clinical_answers() -> None:
    # a young, heavy woman with every clinical answer reassuring
    reassuring = ClinicalAnswers(
        age_years=30,
        sex="female",
        weight_kg=95,
        height_m=1.65,
        prior_fragility_fracture=False,
        glucocorticoids_3_months=False,
        entered_t_score=0.5,
    )
    assert run(reassuring, image(0.9), PASS).category == "refer"


def test_experimental_findings_are_information_only() -> None:
    findings = Findings((finding(0.99, 0.99, used=False, model_id="exp-net"),))
    referral = run(findings=findings, quality=PASS)
    assert referral.category == "routine"  # from OSTA low; the 0.99 does not count
    assert "decision.experimental_finding" in codes(referral)
    note = next(n for n in referral.notes if n.code == "decision.experimental_finding")
    assert "exp-net" in note.evidence.en and note.points_to is None
    assert referral.clinical_only


def test_finding_from_failed_image_is_not_used_and_asks_for_retake() -> None:
    referral = run(findings=image(0.99, 0.99), quality=FAIL)
    assert referral.category == "retake"
    assert {"image.not_used_quality_failed", "decision.image_unusable"} <= codes(referral)
    assert referral.primary_model is None and referral.clinical_only


def test_failed_image_with_enough_clinical_evidence_still_refers() -> None:
    frail = ClinicalAnswers(
        age_years=80, sex="female", weight_kg=45, prior_fragility_fracture=False
    )  # OSTA -7
    referral = run(frail, image(0.01, 0.01), FAIL)
    assert referral.category == "refer"
    assert "decision.retake_advised" in codes(referral)
    assert "decision.clinical_only" in codes(referral)


def test_failed_image_and_no_answers_is_retake_not_cannot_assess() -> None:
    assert run(ClinicalAnswers(), None, FAIL).category == "retake"


def test_no_information_cannot_assess() -> None:
    referral = run(ClinicalAnswers(), None, None)
    assert referral.category == "cannot_assess"
    assert referral.driving[0].code == "decision.insufficient_information"
    assert "age_years" in referral.driving[0].evidence.en


def test_clinical_only_needs_fracture_history_for_routine() -> None:
    unknown_fracture = ClinicalAnswers(age_years=40, sex="female", weight_kg=70)
    assert run(unknown_fracture).category == "cannot_assess"
    referral = run(LOW_RISK)
    assert referral.category == "routine"
    assert referral.clinical_only and "decision.clinical_only" in codes(referral)
    assert referral.rescreen_interval_months == SitePolicy().rescreen_interval_months


def test_usable_image_suffices_without_clinical_answers() -> None:
    referral = run(ClinicalAnswers(), image(0.05, 0.1), PASS)
    assert referral.category == "routine"
    assert "clinical.incomplete" in codes(referral)


def test_image_finding_without_quality_report_is_not_used() -> None:
    referral = run(findings=image(0.99), quality=None)
    assert referral.category == "routine"
    assert "image.not_used_no_quality_report" in codes(referral)


def test_clinical_model_is_used_when_the_image_failed() -> None:
    findings = Findings(
        (finding(0.99, kind="image"), finding(0.7, kind="clinical", model_id="knee-clinical"))
    )
    referral = run(findings=findings, quality=FAIL)
    assert referral.category == "refer"
    assert referral.primary_model == "knee-clinical"
    assert "clinical_model.p_osteoporosis_above_threshold" in codes(referral)
    assert referral.clinical_only


def test_fused_model_is_preferred_and_others_are_information() -> None:
    findings = Findings(
        (finding(0.9, kind="image"), finding(0.05, 0.1, kind="fused", model_id="knee-fused"))
    )
    referral = run(findings=findings, quality=PASS)
    assert referral.primary_model == "knee-fused"
    assert referral.category == "routine"
    assert "decision.secondary_finding" in codes(referral)


def test_quality_warning_is_noted() -> None:
    referral = run(findings=image(0.3), quality=WARN)
    assert referral.category == "consider"
    assert "image.quality_warning" in codes(referral)


def test_unavailable_models_are_noted() -> None:
    findings = Findings((), (UnavailableFinding("model.unavailable_body_part", "image"),))
    assert "model.unavailable_body_part" in codes(run(findings=findings, quality=PASS))


def test_fracture_with_probable_osteoporosis_is_urgent() -> None:
    fractured = dataclasses.replace(LOW_RISK, prior_fragility_fracture=True)
    assert run(fractured, image(0.1), PASS).category == "refer"
    referral = run(fractured, image(0.6), PASS)
    assert referral.category == "urgent"
    assert referral.driving[0].code == "decision.fracture_with_probable_osteoporosis"


def test_measured_t_score_bands() -> None:
    def with_t(t: float, fracture: bool = False) -> str:
        answers = dataclasses.replace(
            LOW_RISK, entered_t_score=t, prior_fragility_fracture=fracture
        )
        return run(answers).category

    assert with_t(-0.5) == "routine"
    assert with_t(-1.5) == "consider"
    assert with_t(-2.5) == "refer"
    assert with_t(-2.5, fracture=True) == "urgent"


def test_clinical_instruments_and_indications() -> None:
    # OSTA -1 is a guideline DXA indication: refer, not consider
    intermediate = dataclasses.replace(LOW_RISK, age_years=60, weight_kg=55)  # OSTA -1
    referral = run(intermediate)
    assert referral.category == "refer"
    codes = [r.code for r in referral.reasons]
    assert "clinical.osta_intermediate" in {r.code for r in referral.driving}
    # one OSTA index, one reason: the band, not the band and the indication again
    assert "clinical.indication.osta" not in codes
    assert sum("OSTA" in r.evidence.en for r in (*referral.reasons, *referral.notes)) == 1
    # a site that does not count OSTA still refers on the guideline's indication, once
    uncounted = dataclasses.replace(SitePolicy(), counted_instruments=("ost_men",))
    referral = decide(intermediate, None, None, None, uncounted)
    assert "clinical.indication.osta" in {r.code for r in referral.driving}
    assert sum("OSTA" in r.evidence.en for r in (*referral.reasons, *referral.notes)) == 1
    # a man whose OST is moderate (0 to 3) meets no indication: the one intermediate band
    moderate = ClinicalAnswers(
        age_years=50, sex="male", weight_kg=60, height_m=1.7, prior_fragility_fracture=False
    )  # OST 2
    referral = run(moderate)
    assert referral.category == "consider"
    assert [r.code for r in referral.driving] == ["clinical.ost_men_moderate"]
    assert not assess_clinical(moderate).indications_met
    younger = dataclasses.replace(LOW_RISK, current_smoker=True, height_m=1.6)
    assert run(younger).category == "refer"
    assert [r.code for r in run(younger).driving] == [
        "clinical.indication.younger_with_risk_factors"
    ]
    high = dataclasses.replace(LOW_RISK, age_years=70, weight_kg=45)  # OSTA -5
    assert run(high).category == "refer"
    man = ClinicalAnswers(
        age_years=60, sex="male", weight_kg=50, prior_fragility_fracture=False
    )  # OST -2: high
    assert run(man).category == "refer"
    steroids = dataclasses.replace(LOW_RISK, glucocorticoids_3_months=True)
    assert run(steroids).category == "refer"


def test_uncounted_instruments_are_information_only() -> None:
    answers = ClinicalAnswers(
        age_years=55,
        sex="female",
        weight_kg=75,
        estrogen_current=False,
        prior_fragility_fracture=False,
        black_ancestry=False,
        rheumatoid_arthritis=False,
        estrogen_ever=False,
    )
    # ORAI 5 + 0 + 2 = 7 (low); SCORE 5 + 15 + 1 - 16 = 5 (low); OSTA 4 (low)
    default = run(answers)
    assert default.category == "routine"
    orai_note = next(n for n in default.notes if n.code == "clinical.orai_low")
    assert orai_note.points_to is None
    counted = run(answers, policy=SitePolicy(counted_instruments=("osta", "orai", "score")))
    assert "clinical.orai_low" in {r.code for r in counted.reasons}


def test_estimated_t_score_counts_only_when_the_site_says_so() -> None:
    findings = image(0.1, 0.2, t=-2.8)
    referral = run(findings=findings, quality=PASS)
    assert referral.category == "routine"
    assert "decision.estimated_t_score" in codes(referral)
    assert (
        run(findings=findings, quality=PASS, policy=SitePolicy(use_estimated_t_score=True)).category
        == "refer"
    )


def test_dxa_availability_is_stated_for_referrals() -> None:
    assert "decision.dxa_not_local" in codes(run(findings=image(0.9), quality=PASS))
    local = run(findings=image(0.9), quality=PASS, policy=SitePolicy(dxa_locally_available=True))
    assert "decision.dxa_local" in codes(local)


def test_assessment_of_other_answers_is_refused() -> None:
    with pytest.raises(ValueError):
        decide(LOW_RISK, assess_clinical(ClinicalAnswers()), None, None, SitePolicy())


def test_deterministic_and_json_serialisable() -> None:
    answers = ClinicalAnswers(
        age_years=72, sex="female", weight_kg=50, prior_fragility_fracture=True
    )
    findings = Findings((finding(0.7, 0.9, t=-2.6), finding(0.2, used=False, model_id="exp")))
    first = decide(answers, assess_clinical(answers), findings, WARN, SitePolicy())
    second = decide(answers, None, findings, WARN, SitePolicy())
    assert first == second
    dumped = json.dumps(first.to_dict(), ensure_ascii=False, sort_keys=True)
    assert dumped == json.dumps(second.to_dict(), ensure_ascii=False, sort_keys=True)
    data = json.loads(dumped)
    assert data["category"] == "urgent"
    assert data["patient"]["zh_CN"] == CATALOGUE["referral.urgent.patient"][1]


# --- properties ---------------------------------------------------------------------------

maybe_bool = st.one_of(st.none(), st.booleans())
probability = st.floats(0.0, 1.0)


@st.composite
def answers_strategy(draw: st.DrawFn) -> ClinicalAnswers:
    sex = draw(st.one_of(st.none(), st.sampled_from(["female", "male"])))
    age = draw(st.one_of(st.none(), st.integers(18, 100)))
    fracture = draw(maybe_bool)
    sites = None
    if fracture is True and age is not None and age >= 45:
        sites = draw(st.one_of(st.none(), st.integers(0, 3)))
    current = draw(maybe_bool)
    ever = True if current else draw(maybe_bool)
    female = sex != "male"
    postmenopausal = draw(maybe_bool) if female else None
    menopause = None
    if postmenopausal is not False and female and age is not None and age >= 40:
        menopause = draw(st.one_of(st.none(), st.integers(38, 40)))
    return ClinicalAnswers(
        age_years=age,
        sex=sex,  # type: ignore[arg-type]
        weight_kg=draw(st.one_of(st.none(), st.floats(40, 120))),
        height_m=draw(st.one_of(st.none(), st.floats(1.4, 1.9))),
        prior_fragility_fracture=fracture,
        fracture_sites_after_45=sites,
        glucocorticoids_3_months=draw(maybe_bool),
        estrogen_current=current,
        estrogen_ever=ever,
        postmenopausal=postmenopausal,
        menopause_age_years=menopause,
        rheumatoid_arthritis=draw(maybe_bool),
        secondary_causes=draw(maybe_bool),
        iof_one_minute_positive=draw(maybe_bool),
        black_ancestry=draw(maybe_bool),
        current_smoker=draw(maybe_bool),
        alcohol_3_units_daily=draw(maybe_bool),
        family_history_osteoporosis=draw(maybe_bool),
        radiograph_osteoporotic_change=draw(maybe_bool),
        entered_t_score=draw(st.one_of(st.none(), st.floats(-5, 3))),
    )


policies = st.builds(
    SitePolicy,
    refer_p_osteoporosis=st.floats(0.3, 0.9),
    consider_p_osteoporosis=st.floats(0.05, 0.3),
    consider_p_low_bone_mass=st.floats(0.1, 0.9),
    use_estimated_t_score=st.booleans(),
    counted_instruments=st.sampled_from(
        [("osta", "ost_men"), ("osta", "ost_men", "orai", "score", "osiris"), ()]
    ),
    dxa_locally_available=st.booleans(),
)
qualities = st.sampled_from([None, PASS, WARN, FAIL])
kinds = st.sampled_from(["image", "fused", "clinical"])


@st.composite
def findings_strategy(draw: st.DrawFn) -> Findings:
    results = tuple(
        finding(
            draw(st.one_of(st.none(), probability)),
            draw(st.one_of(st.none(), probability)),
            used=draw(st.booleans()),
            kind=draw(kinds),
            t=draw(st.one_of(st.none(), st.floats(-5, 2))),
            model_id=f"m{i}",
        )
        for i in range(draw(st.integers(0, 3)))
    )
    unavailable = draw(
        st.lists(
            st.sampled_from(
                [
                    UnavailableFinding("model.unavailable_body_part"),
                    UnavailableFinding("model.not_run_quality", "image"),
                    UnavailableFinding(
                        "model.missing_inputs", "clinical", "knee-clinical", "age_years"
                    ),
                ]
            ),
            max_size=2,
        )
    )
    return Findings(results, tuple(unavailable))


@settings(max_examples=300)
@given(
    answers_strategy(),
    st.floats(0.0, 1.0),
    st.floats(0.0, 1.0),
    st.one_of(st.none(), probability),
    kinds,
    qualities,
    policies,
)
def test_raising_p_osteoporosis_never_lowers_the_category(
    answers: ClinicalAnswers,
    p1: float,
    p2: float,
    p_lbm: float | None,
    kind: str,
    quality: QualityReport | None,
    policy: SitePolicy,
) -> None:
    low, high = sorted((p1, p2))
    a = run(answers, image(low, p_lbm, kind=kind), quality, policy)
    b = run(answers, image(high, p_lbm, kind=kind), quality, policy)
    assert b.severity >= a.severity


@settings(max_examples=300)
@given(
    answers_strategy(),
    st.one_of(st.none(), probability),
    st.floats(0.0, 1.0),
    st.floats(0.0, 1.0),
    kinds,
    qualities,
    policies,
)
def test_raising_p_low_bone_mass_never_lowers_the_category(
    answers: ClinicalAnswers,
    p_op: float | None,
    q1: float,
    q2: float,
    kind: str,
    quality: QualityReport | None,
    policy: SitePolicy,
) -> None:
    low, high = sorted((q1, q2))
    a = run(answers, image(p_op, low, kind=kind), quality, policy)
    b = run(answers, image(p_op, high, kind=kind), quality, policy)
    assert b.severity >= a.severity


@settings(max_examples=300)
@given(
    answers_strategy(),
    st.integers(18, 110),
    st.integers(18, 110),
    findings_strategy(),
    qualities,
    policies,
)
def test_higher_age_lower_osta_never_lowers_the_category(
    answers: ClinicalAnswers,
    age1: int,
    age2: int,
    findings: Findings,
    quality: QualityReport | None,
    policy: SitePolicy,
) -> None:
    young, old = sorted((age1, age2))
    assume(answers.menopause_age_years is None or answers.menopause_age_years <= young)
    assume(not answers.fracture_sites_after_45 or young >= 45)
    a = run(dataclasses.replace(answers, age_years=young), findings, quality, policy)
    b = run(dataclasses.replace(answers, age_years=old), findings, quality, policy)
    assert b.severity >= a.severity


@settings(max_examples=300)
@given(
    answers_strategy(),
    st.floats(25, 200),
    st.floats(25, 200),
    findings_strategy(),
    qualities,
    policies,
)
def test_lower_weight_lower_osta_never_lowers_the_category(
    answers: ClinicalAnswers,
    w1: float,
    w2: float,
    findings: Findings,
    quality: QualityReport | None,
    policy: SitePolicy,
) -> None:
    light, heavy = sorted((w1, w2))
    a = run(dataclasses.replace(answers, weight_kg=heavy), findings, quality, policy)
    b = run(dataclasses.replace(answers, weight_kg=light), findings, quality, policy)
    assert b.severity >= a.severity


# Focused versions: little other evidence, so a band or threshold error cannot hide behind it.
plain_answers = st.builds(
    ClinicalAnswers,
    age_years=st.integers(18, 110),
    sex=st.sampled_from(["female", "male"]),
    weight_kg=st.floats(25, 200),
    prior_fragility_fracture=st.booleans(),
)
plain_policies = st.sampled_from(
    [
        SitePolicy(),
        SitePolicy(refer_p_osteoporosis=0.8, consider_p_osteoporosis=0.3),
        SitePolicy(counted_instruments=("osta", "ost_men", "orai", "score", "osiris")),
    ]
)


@settings(max_examples=500)
@given(plain_answers, st.floats(0.0, 1.0), st.floats(0.0, 1.0), kinds, plain_policies)
def test_raising_p_osteoporosis_plain(
    answers: ClinicalAnswers, p1: float, p2: float, kind: str, policy: SitePolicy
) -> None:
    low, high = sorted((p1, p2))
    a = run(answers, image(low, kind=kind), PASS, policy)
    b = run(answers, image(high, kind=kind), PASS, policy)
    assert b.severity >= a.severity


@settings(max_examples=500)
@given(
    plain_answers,
    st.integers(18, 110),
    st.integers(18, 110),
    st.sampled_from([None, image(0.05, 0.1)]),
    plain_policies,
)
def test_lower_osta_plain(
    answers: ClinicalAnswers,
    age1: int,
    age2: int,
    findings: Findings | None,
    policy: SitePolicy,
) -> None:
    young, old = sorted((age1, age2))
    quality = PASS if findings else None
    a = run(dataclasses.replace(answers, age_years=young), findings, quality, policy)
    b = run(dataclasses.replace(answers, age_years=old), findings, quality, policy)
    assert b.severity >= a.severity
    heavier = min(200.0, (answers.weight_kg or 0) + 15)
    heavy = run(
        dataclasses.replace(answers, age_years=young, weight_kg=heavier), findings, quality, policy
    )
    assert a.severity >= heavy.severity


def _check_wording(referral: Referral) -> None:
    for code in referral.codes:
        assert code in CATALOGUE, code
        english, chinese = CATALOGUE[code]
        assert english.strip() and chinese.strip(), code
        assert CJK.search(chinese), code


@settings(max_examples=400)
@given(answers_strategy(), findings_strategy(), qualities, policies)
def test_every_emitted_code_has_both_languages(
    answers: ClinicalAnswers,
    findings: Findings,
    quality: QualityReport | None,
    policy: SitePolicy,
) -> None:
    referral = run(answers, findings, quality, policy)
    _check_wording(referral)
    assert referral.reasons  # a category always comes with what drove it
    assert referral.driving
    if referral.category == "routine":
        assert referral.rescreen_interval_months == policy.rescreen_interval_months
    else:
        assert referral.rescreen_interval_months is None
    # only permitted findings from usable inputs may drive the category
    if referral.primary_model is not None:
        chosen = next(f for f in findings.results if f.model_id == referral.primary_model)
        assert chosen.used_for_referral
        if chosen.kind != "clinical":
            assert quality is not None and quality.usable
    json.dumps(referral.to_dict(), ensure_ascii=False)


@settings(max_examples=400)
@given(answers_strategy(), findings_strategy(), qualities, policies)
def test_a_guideline_indication_always_refers(
    answers: ClinicalAnswers,
    findings: Findings,
    quality: QualityReport | None,
    policy: SitePolicy,
) -> None:
    assessment = assess_clinical(answers)
    referral = run(answers, findings, quality, policy)
    if assessment.indications_met:
        assert referral.severity >= SEVERITY["refer"]
        assert referral.rescreen_interval_months is None
    if referral.category == "consider":
        # consider never comes from a guideline indication
        assert not any(r.code.startswith("clinical.indication.") for r in referral.driving)


@settings(max_examples=400)
@given(answers_strategy(), findings_strategy(), qualities, policies)
def test_a_model_the_governance_rule_refuses_never_drives_the_referral(
    answers: ClinicalAnswers,
    findings: Findings,
    quality: QualityReport | None,
    policy: SitePolicy,
) -> None:
    refused = Findings(
        tuple(dataclasses.replace(f, used_for_referral=False) for f in findings.results),
        findings.unavailable,
    )
    with_models = run(answers, refused, quality, policy)
    without = run(answers, Findings((), findings.unavailable), quality, policy)
    assert with_models.category == without.category
    assert with_models.driving == without.driving
    assert with_models.primary_model is None
    notes = {n.code for n in with_models.notes}
    if any(f.kind == "clinical" for f in refused.results):
        assert "decision.model_below_baselines" in notes


def test_the_clinical_model_below_its_baselines_is_information() -> None:
    refused = Findings((finding(0.9, 0.99, used=False, kind="clinical", t=-3.0),))
    referral = run(LOW_RISK, refused)
    assert referral.category == "routine"
    note = next(n for n in referral.notes if n.code == "decision.model_below_baselines")
    assert "probability of osteoporosis 90%" in note.evidence.en and note.points_to is None
    assert "骨质疏松概率 90%" in note.evidence.zh_CN
    # the same finding, permitted by its card, drives the category
    assert run(LOW_RISK, Findings((finding(0.9, kind="clinical"),))).category == "refer"


def test_each_figure_is_written_one_way_and_never_as_certainty() -> None:
    """The notes write a probability and an estimated T-score as the score table does
    (edgeosteo.findings): a percentage that never reads 100 %, and the 95 % range."""
    f = dataclasses.replace(
        finding(0.73, 0.997, used=False, kind="clinical", t=-2.6), t_score_sd=0.467
    )
    note = next(n for n in run(LOW_RISK, Findings((f,))).notes if n.code.startswith("decision."))
    assert "低骨量概率 >99%" in note.evidence.zh_CN and "1.00" not in note.evidence.zh_CN
    assert "估计T值 -2.6 ± 0.9（95%范围）" in note.evidence.zh_CN
    assert "-2.6 ± 0.9 (95% range)" in note.evidence.en
    assert probability_text(0.003) == "<1%" and probability_text(0.5) == "50%"
    # next to its threshold a probability never reads as the threshold itself
    assert probability_against(0.496, 0.5) == "49.6%" and threshold_text(0.125) == "12.5%"


# --- evidence in both languages -----------------------------------------------------------

# Latin-script tokens the Chinese evidence may keep: instrument and test acronyms, the T of
# T值 and the X of X线; model ids and the policy version are added per case.
LATIN_ALLOWED = {"OSTA", "OST", "ORAI", "SCORE", "OSIRIS", "WHO", "DXA", "IOF", "BMI", "DICOM"}
LATIN_ALLOWED |= {"T", "X", "HIP"}
LATIN_WORD = re.compile(r"(?<![0-9.])[A-Za-z][A-Za-z0-9_.\-]*")  # not the e of 1e-05


def _check_evidence(referral: Referral, findings: Findings, policy: SitePolicy) -> None:
    allowed = LATIN_ALLOWED | {policy.policy_version}
    allowed |= {f.model_id for f in findings.results}
    allowed |= {u.model_id for u in findings.unavailable if u.model_id}
    stored = referral.to_dict()
    for reason, as_stored in zip(
        (*referral.reasons, *referral.notes), (*stored["reasons"], *stored["notes"]), strict=True
    ):
        english, chinese = reason.evidence.en, reason.evidence.zh_CN
        assert as_stored["evidence"] == english and as_stored["evidence_zh_CN"] == chinese
        assert bool(chinese) == bool(english), reason
        if english:
            assert CJK.search(chinese), reason
            assert not CJK.search(english), reason
        assert set(LATIN_WORD.findall(chinese)) <= allowed, reason


# every code a quality report can carry, warned or failed, several at a time
quality_codes_reports = st.lists(
    st.sampled_from(sorted(c for c in CATALOGUE if c.split(".")[0] in ("quality", "photo"))),
    min_size=1,
    max_size=3,
).flatmap(
    lambda codes: st.sampled_from(["warn", "fail"]).map(
        lambda verdict: QualityReport(
            tuple(GateResult(f"gate{i}", verdict, c, 1.0, 2.0) for i, c in enumerate(codes))  # type: ignore[arg-type]
        )
    )
)
unavailable_findings = st.lists(
    st.sampled_from(
        [
            UnavailableFinding("model.unavailable_body_part", "image", None, "HIP"),
            UnavailableFinding("model.unavailable_body_part", "image", None, UNKNOWN_BODY_PART),
            UnavailableFinding("model.missing_inputs", "clinical", "knee-clinical", "age_years"),
            UnavailableFinding(
                "model.missing_inputs", "clinical", "knee-clinical", "weight_kg, height_m"
            ),
            UnavailableFinding("model.roi_not_found", "image", "knee-image", "no knee joint"),
            UnavailableFinding("model.inference_failed", "image", "knee-image", "onnxruntime: x"),
            UnavailableFinding("model.no_image", "image"),
        ]
    ),
    max_size=3,
)


@settings(max_examples=400)
@given(
    answers_strategy(),
    findings_strategy(),
    unavailable_findings,
    st.one_of(qualities, quality_codes_reports),
    policies,
)
def test_every_evidence_is_given_in_chinese_too(
    answers: ClinicalAnswers,
    findings: Findings,
    unavailable: list[UnavailableFinding],
    quality: QualityReport | None,
    policy: SitePolicy,
) -> None:
    findings = dataclasses.replace(findings, unavailable=(*findings.unavailable, *unavailable))
    _check_evidence(run(answers, findings, quality, policy), findings, policy)


def test_chinese_evidence_wording() -> None:
    older = ClinicalAnswers(age_years=71, sex="female", weight_kg=55, prior_fragility_fracture=True)
    glare = QualityReport((GateResult("glare", "warn", "photo.glare_upper_left", 0.1, 0.05),))
    referral = run(older, image(0.62), glare)
    chinese = {r.code: r.evidence.zh_CN for r in (*referral.reasons, *referral.notes)}
    english = {r.code: r.evidence.en for r in (*referral.reasons, *referral.notes)}
    assert chinese["clinical.indication.age"] == "女性，71岁（≥ 65）"
    assert english["clinical.indication.age"] == "female aged 71 (>= 65)"
    assert chinese["clinical.osta_intermediate"] == "OSTA -3（中风险）"
    assert english["clinical.osta_intermediate"] == "OSTA -3 (intermediate)"
    assert chinese["image.p_osteoporosis_above_threshold"] == (
        "图像骨质疏松概率 62%，达到或超过本机构阈值 50%（模型 knee-image 1.0.0）"
    )
    assert chinese["image.quality_warning"] == "图像质量：胶片左上方反光"
    assert english["image.quality_warning"] == "quality: photo.glare_upper_left"
    assert (
        chinese["clinical.indication.fragility_fracture"]
        == CATALOGUE["clinical.field.prior_fragility_fracture"][1]
    )
    assert chinese["decision.fracture_with_probable_osteoporosis"] == (
        "有脆性骨折史，且骨质疏松概率 62% 达到或超过 50%"
    )
    nothing = run(ClinicalAnswers(sex="male"))
    assert (
        nothing.reasons[0].evidence.en == "missing: age_years, weight_kg, prior_fragility_fracture"
    )
    assert (
        nothing.reasons[0].evidence.zh_CN
        == "缺少：年龄（岁）、体重（千克）、"
        + CATALOGUE["clinical.field.prior_fragility_fracture"][1]
    )


def test_every_quality_code_has_a_short_chinese_name() -> None:
    for code in CATALOGUE:
        if code.split(".")[0] in ("quality", "photo"):
            short = QUALITY_SHORT_ZH[code]
            assert CJK.search(short), code
            assert len(short) < len(CATALOGUE[code][1]), code  # a name, not the advice


def test_stored_evidence_falls_back_to_english_for_older_results() -> None:
    reason = run(findings=image(0.62), quality=PASS).to_dict()["reasons"][0]
    assert isinstance(reason, dict)
    assert stored_evidence(reason, "zh_CN") == reason["evidence_zh_CN"]
    assert stored_evidence(reason, "en") == reason["evidence"]
    older = {k: v for k, v in reason.items() if k != "evidence_zh_CN"}
    assert stored_evidence(older, "zh_CN") == reason["evidence"]
    assert stored_evidence({"code": "x"}, "zh_CN") == ""


def test_every_category_has_wording_in_both_languages() -> None:
    for category in CATEGORY_ORDER:
        for audience in ("patient", "clinician"):
            english, chinese = CATALOGUE[f"referral.{category}.{audience}"]
            assert english.strip() and CJK.search(chinese)


def test_each_category_is_reachable() -> None:
    reached = {
        run(ClinicalAnswers()).category,
        run(ClinicalAnswers(), None, FAIL).category,
        run(findings=image(0.05), quality=PASS).category,
        run(findings=image(0.3), quality=PASS).category,
        run(findings=image(0.9), quality=PASS).category,
        run(
            dataclasses.replace(LOW_RISK, prior_fragility_fracture=True), image(0.9), PASS
        ).category,
    }
    assert reached == set(CATEGORY_ORDER)


# --- site policy --------------------------------------------------------------------------


def test_policy_from_dict() -> None:
    assert SitePolicy.from_dict({}) == SitePolicy()
    policy = SitePolicy.from_dict(
        {
            "policy_version": "site-7",
            "refer_p_osteoporosis": 1 / 2,
            "consider_p_low_bone_mass": 0.6,
            "counted_instruments": ["osta", "ost_men", "osiris"],
            "dxa_locally_available": True,
            "rescreen_interval_months": 12,
        }
    )
    assert policy.counted_instruments == ("osta", "ost_men", "osiris")
    assert policy.rescreen_interval_months == 12 and policy.dxa_locally_available
    assert SitePolicy.from_dict(policy.to_dict()) == policy
    assert json.loads(json.dumps(policy.to_dict()))["policy_version"] == "site-7"


@pytest.mark.parametrize(
    "data",
    [
        {"refer_p_osteoporosis": 1.2},
        {"refer_p_osteoporosis": 0.0},
        {"refer_p_osteoporosis": "0.5"},
        {"consider_p_osteoporosis": 0.6, "refer_p_osteoporosis": 0.5},
        {"counted_instruments": ["frax"]},
        {"counted_instruments": "osta"},
        {"dxa_locally_available": "yes"},
        {"rescreen_interval_months": 0},
        {"rescreen_interval_months": 12.5},
        {"policy_version": ""},
        {"refer_estimated_t_score": -0.5},
        {"no_such_setting": 1},
    ],
)
def test_policy_rejects_bad_settings(data: dict[str, object]) -> None:
    with pytest.raises(ConfigError) as raised:
        SitePolicy.from_dict(data)
    assert raised.value.code == "config.invalid"


# --- recalibration and AUC ----------------------------------------------------------------


def test_recalibrate_worked_example() -> None:
    scores = [0.9, 0.8, 0.7, 0.6, 0.5, 0.65, 0.3, 0.1]
    labels = [True, True, True, True, False, False, False, False]
    point = recalibrate_threshold(scores, labels, 0.75)
    assert (point.threshold, point.sensitivity, point.specificity) == (0.7, 0.75, 1.0)
    point = recalibrate_threshold(scores, labels, 1.0)
    assert (point.threshold, point.sensitivity, point.specificity) == (0.6, 1.0, 0.75)
    assert (point.n_positive, point.n_negative) == (4, 4)


def test_recalibrate_rejects_bad_input() -> None:
    with pytest.raises(ValueError):
        recalibrate_threshold([0.1, 0.2], [True, True], 0.9)
    with pytest.raises(ValueError):
        recalibrate_threshold([0.1, 0.2], [True], 0.9)
    with pytest.raises(ValueError):
        recalibrate_threshold([0.1, 0.2], [True, False], 0.0)


scored_cases = st.lists(st.tuples(st.floats(0, 1), st.booleans()), min_size=2, max_size=60).filter(
    lambda cases: any(y for _, y in cases) and not all(y for _, y in cases)
)


@given(scored_cases, st.floats(0.01, 1.0))
def test_recalibrated_threshold_meets_target_and_is_the_highest(
    cases: list[tuple[float, bool]], target: float
) -> None:
    scores = [s for s, _ in cases]
    labels = [y for _, y in cases]
    point = recalibrate_threshold(scores, labels, target)
    positives = [s for s, y in cases if y]
    negatives = [s for s, y in cases if not y]
    assert point.sensitivity >= target - 1e-9
    assert point.sensitivity == sum(s >= point.threshold for s in positives) / len(positives)
    assert point.specificity == sum(s < point.threshold for s in negatives) / len(negatives)
    higher = [s for s in positives if s > point.threshold]
    if higher:
        assert sum(s >= min(higher) for s in positives) / len(positives) < target - 1e-9


@given(scored_cases)
def test_auc_matches_pairwise_count(cases: list[tuple[float, bool]]) -> None:
    positives = [s for s, y in cases if y]
    negatives = [s for s, y in cases if not y]
    wins = sum(1.0 if p > n else 0.5 if p == n else 0.0 for p in positives for n in negatives)
    expected = wins / (len(positives) * len(negatives))
    assert roc_auc([s for s, _ in cases], [y for _, y in cases]) == pytest.approx(expected)


def test_auc_simple_cases() -> None:
    assert roc_auc([1, 2, 3, 4], [False, False, True, True]) == 1.0
    assert roc_auc([4, 3, 2, 1], [False, False, True, True]) == 0.0
    assert roc_auc([1, 1, 1, 1], [False, True, False, True]) == 0.5


def test_severity_matches_order_for_every_pair() -> None:
    for lower, higher in combinations(CATEGORY_ORDER, 2):
        assert SEVERITY[lower] < SEVERITY[higher]


def test_notes_ask_only_for_answers_the_form_has() -> None:
    """Alcohol and a reader's radiograph report are not on the page's form: a note that
    lists unanswered questions never names them."""
    from edgeosteo.web.form import CLINICAL_FIELDS

    assert tuple(f.answer_name for f in CLINICAL_FIELDS) == FORM_QUESTIONS
    referral = run(ClinicalAnswers(age_years=55, sex="female", weight_kg=70))
    note = next(n for n in referral.notes if n.code == "clinical.incomplete")
    for absent in ("alcohol_3_units_daily", "radiograph_osteoporotic_change"):
        assert absent not in note.evidence.en
    assert "每日饮酒" not in note.evidence.zh_CN and "X线报告" not in note.evidence.zh_CN
    assert "prior_fragility_fracture" in note.evidence.en
    nothing = run(ClinicalAnswers(), None, None).driving[0]
    assert "alcohol" not in nothing.evidence.en
