"""Site calibration (edgeosteo.calibration) against figures computed by hand, and the
decision under a calibrated policy: the chosen threshold replaces the rule's published
cut-off, refers at or beyond it and keeps routine short of it."""

from __future__ import annotations

import dataclasses
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edgeosteo.calibration import (
    LabelledScore,
    Proportion,
    calibrated_policy,
    candidate_thresholds,
    check_enough,
    monthly_volume,
    next_version,
    operating_row,
    stored_score,
    threshold_for_capacity,
    threshold_for_sensitivity,
)
from edgeosteo.clinical import ClinicalAnswers, assess_clinical, osta_index
from edgeosteo.config import CalibrationSettings, PolicySettings
from edgeosteo.decision import decide
from edgeosteo.errors import CalibrationRefused, ConfigError
from edgeosteo.findings import Findings, ModelFinding
from edgeosteo.measurement import Measurement

# OSTA index against the DXA reference (True: lowest T <= -2.5): 5 with, 5 without
OSTA_CASES = [
    LabelledScore(s, y)
    for s, y in [
        (-4, True),
        (-3, True),
        (-2, True),
        (0, True),
        (2, True),
        (-1, False),
        (1, False),
        (3, False),
        (4, False),
        (5, False),
    ]
]


def test_wilson_interval_matches_the_hand_computed_one():
    # 4/5: centre (0.8 + 1.96^2/10) / (1 + 1.96^2/5) = 0.6697, half-width 0.2941
    low, high = Proportion(4, 5).ci95
    assert low == pytest.approx(0.3755, abs=1e-4) and high == pytest.approx(0.9638, abs=1e-4)
    low, high = Proportion(0, 10).ci95
    assert low == 0.0 and high == pytest.approx(0.2775, abs=1e-4)
    assert Proportion(0, 0).ci95 is None and Proportion(0, 0).value is None


def test_a_threshold_gives_the_hand_counted_rates():
    # refer OSTA <= 0: -4 -3 -2 0 (with) and -1 (without)
    row = operating_row("osta", 0.0, OSTA_CASES)
    assert (row.referred.k, row.referred.n) == (5, 10)
    assert (row.sensitivity.k, row.sensitivity.n) == (4, 5)
    assert (row.specificity.k, row.specificity.n) == (4, 5)  # 1 3 4 5 not referred
    assert (row.ppv.k, row.ppv.n) == (4, 5)
    assert row.sensitivity.ci95[0] == pytest.approx(0.3755, abs=1e-4)
    # a probability refers at or above: 0.5 refers 0.5 and 0.9
    prob = [LabelledScore(0.9, True), LabelledScore(0.5, False), LabelledScore(0.2, True)]
    row = operating_row("clinical_model", 0.5, prob)
    assert (row.referred.k, row.sensitivity.k, row.specificity.k, row.ppv.k) == (2, 1, 0, 1)


def test_target_sensitivity_picks_the_threshold_that_refers_fewest():
    row = threshold_for_sensitivity("osta", OSTA_CASES, 0.9)  # needs 5 of 5: OSTA <= 2
    assert row.threshold == 2
    assert (row.referred.k, row.sensitivity.k, row.specificity.k, row.ppv.k) == (7, 5, 3, 5)
    row = threshold_for_sensitivity("osta", OSTA_CASES, 0.8)  # 4 of 5: OSTA <= 0
    assert row.threshold == 0 and row.sensitivity.k == 4 and row.referred.k == 5
    with pytest.raises(CalibrationRefused) as refused:
        threshold_for_sensitivity("osta", OSTA_CASES, 1.5)
    assert refused.value.code == "calibration.target_invalid"


def test_capacity_picks_the_most_sensitive_threshold_within_the_scans_a_month():
    recent = [-4, -2, 0, 1, 3, None, 5, -1, 2, None]  # 10 recent screenings, 2 without OSTA
    # 100 screenings a month, 30 DXA scans: at most 3 in 10 referred. OSTA <= -1 refers
    # -4 -2 -1 (3 in 10); OSTA <= 0 would refer 4 in 10
    choice = threshold_for_capacity("osta", OSTA_CASES, recent, 30, 100.0)
    assert choice.row.threshold == -1
    assert (choice.recent.k, choice.recent.n) == (3, 10)
    assert choice.monthly_referrals == pytest.approx(30.0)
    assert choice.row.sensitivity.k == 3  # -4 -3 -2 of the labelled
    with pytest.raises(CalibrationRefused) as refused:
        threshold_for_capacity("osta", OSTA_CASES, recent, 5, 100.0)  # even -4 refers 1 in 10
    assert refused.value.code == "calibration.capacity_too_small"
    with pytest.raises(CalibrationRefused) as refused:
        threshold_for_capacity("osta", OSTA_CASES, [], 30, 0.0)
    assert refused.value.code == "calibration.no_volume"
    assert monthly_volume(45, 90) == 15.0 and monthly_volume(10, 0) == 300.0


def test_candidates_rise_in_referral():
    assert candidate_thresholds("osta", [-4.0, 5.0]) == [float(v) for v in range(-4, 6)]
    probabilities = candidate_thresholds("clinical_model", [0.1, 0.7])
    assert probabilities[0] == 0.95 and probabilities[-1] == 0.05 and len(probabilities) == 19
    assert candidate_thresholds("vertebrae", [0.0, 2.0]) == [3.0, 2.0, 1.0]
    mci = candidate_thresholds("mci", [0.40 + 0.01 * k for k in range(41)])
    assert mci == sorted(mci) and mci[0] == 0.42 and mci[-1] == 0.78


def test_too_few_cases_are_refused_with_the_stated_minimum():
    settings = CalibrationSettings()
    assert (settings.min_cases, settings.min_per_class) == (50, 10)
    with pytest.raises(CalibrationRefused) as refused:
        check_enough("osta", "t_le_-2.5", OSTA_CASES, settings)
    assert refused.value.code == "calibration.too_few_cases"
    assert "10 labelled cases" in refused.value.detail
    check_enough("osta", "t_le_-2.5", OSTA_CASES, CalibrationSettings(10, 5))
    with pytest.raises(CalibrationRefused) as refused:
        check_enough("osta", "t_le_-2.5", OSTA_CASES, CalibrationSettings(10, 6))
    assert refused.value.code == "calibration.too_few_in_a_class"


def test_the_stored_score_is_the_one_the_decision_reads():
    import edgeosteo

    result = edgeosteo.screen(
        None, patient={"age_years": 58, "sex": "female", "weight_kg": 51}
    ).to_dict()
    assert stored_score(result, "osta", "t_le_-2.5") == osta_index(51, 58) == -1
    result = edgeosteo.screen(None, patient={"age_years": 58, "sex": "male", "weight_kg": 81})
    assert stored_score(result.to_dict(), "osta", "t_le_-1") == 4  # OST for men
    assert stored_score(result.to_dict(), "mci", "t_le_-1") is None
    measured = {"measurements": [{"method": "mci", "status": "measured", "value": 0.55}]}
    assert stored_score(measured, "mci", "t_le_-1") == 0.55


YOUNG = ClinicalAnswers(age_years=50, sex="female", weight_kg=60, prior_fragility_fracture=False)


def _policy(rule: str, threshold: float, reference: str = "t_le_-2.5") -> PolicySettings:
    return calibrated_policy(
        PolicySettings(), rule, reference, threshold, 60, "2026-12-03", "admin", "test"
    )


def _decide(answers, policy, findings=None, measurements=()):
    return decide(answers, assess_clinical(answers), findings, None, policy, measurements)


def test_a_calibrated_osta_threshold_replaces_the_guideline_cut_off():
    # OSTA 2: routine under the guideline cut-off (-1), referred by a site threshold of 2
    assert _decide(YOUNG, PolicySettings()).category == "routine"
    referral = _decide(YOUNG, _policy("osta", 2))
    assert referral.category == "refer" and referral.policy_version == "site-1"
    assert [r.code for r in referral.driving] == ["site.threshold_met"]
    evidence = referral.driving[0].evidence.en
    assert "OSTA (OST for men) 2 at or below the site threshold 2" in evidence
    assert "60 DXA-labelled cases" in evidence
    below = _decide(YOUNG, _policy("osta", 1))
    assert below.category == "routine"
    assert "site.threshold_not_met" in {r.code for r in below.reasons}
    # OSTA -2 meets the guideline indication; a stricter site threshold (-3) replaces it
    thin = dataclasses.replace(YOUNG, weight_kg=40)
    assert _decide(thin, PolicySettings()).category == "refer"
    strict = _decide(thin, _policy("osta", -3))
    assert strict.category == "routine"
    assert "clinical.indication.osta" in {n.code for n in strict.notes}
    # other guideline indications still refer (age 66)
    assert _decide(dataclasses.replace(thin, age_years=66), _policy("osta", -3)).category == (
        "refer"
    )


def _mci(value: float, band: str) -> Measurement:
    return Measurement("mci", "1.0.0", value, "ratio", band, None, (), ())


def test_a_calibrated_measurement_threshold_replaces_the_card_band():
    measured = (_mci(0.55, "low_bone_mass"),)
    assert _decide(YOUNG, PolicySettings(), measurements=measured).category == "consider"
    assert _decide(YOUNG, _policy("mci", 0.58), measurements=measured).category == "refer"
    assert _decide(YOUNG, _policy("mci", 0.50), measurements=measured).category == "routine"


def test_a_calibrated_clinical_model_threshold_applies_only_to_a_permitted_model():
    def model(used: bool) -> Findings:
        return Findings((ModelFinding("knee-clinical", "1", "clinical", used, 0.7, 0.3),))

    policy = _policy("clinical_model", 0.25)
    assert _decide(YOUNG, policy, model(True)).category == "refer"  # 0.3 >= 0.25
    assert _decide(YOUNG, _policy("clinical_model", 0.35), model(True)).category == "routine"
    # a model the card does not permit: information only, the threshold has nothing to read
    assert _decide(YOUNG, policy, model(False)).category == "routine"


def test_the_policy_file_keys_are_validated_and_versions_count_up():
    assert next_version("default-2") == "site-1" and next_version("site-7") == "site-8"
    with pytest.raises(ConfigError):
        PolicySettings.from_dict({"calibrated_rule": "frax"})
    with pytest.raises(ConfigError):
        PolicySettings.from_dict({"calibrated_reference": "t_le_-2"})
    with pytest.raises(ConfigError):
        PolicySettings.from_dict({"calibrated_threshold": float("nan")})
    loaded = PolicySettings.from_dict(_policy("osta", 2).to_dict())
    assert loaded.calibrated_threshold == 2.0 and loaded.calibrated_by == "admin"


# --- the admin page (a real app, seeded through the real API) ------------------------------

# (OSTA index, lowest DXA T-score) of the seeded labelled cases: 20 with T <= -2.5 and 40
# without. By hand, for T <= -2.5: a target sensitivity of 90 % needs 18 of the 20, and the
# 18th lowest OSTA among them is 2, so the threshold is OSTA <= 2: it refers the 18 and 10
# of the 40 (OSTA -1, 1, 2): 28/60 referred, specificity 30/40, PPV 18/28. A target of 75 %
# needs 15: OSTA <= 0, 15 and 2 referred, 17/60, specificity 38/40.
SEED = (
    [(-5, -3.1)] * 4
    + [(-3, -2.9)] * 4
    + [(-1, -2.7)] * 4
    + [(0, -2.6)] * 3
    + [(2, -2.5)] * 3
    + [(4, -3.0)] * 2
    + [(-1, -2.0)] * 2
    + [(1, -1.6)] * 4
    + [(2, -1.2)] * 4
    + [(3, -0.8)] * 10
    + [(5, -1.4)] * 10
    + [(8, 0.3)] * 10
)


def seed_answers(osta: int) -> dict:
    """A woman of 55 whose OSTA index is exactly ``osta`` (weight = age + 5 x OSTA)."""
    return {
        "age_years": 55,
        "sex": "female",
        "weight_kg": 55 + 5 * osta,
        "height_m": 1.58,
        "prior_fragility_fracture": "no",
    }


def seed_dxa(t_score: float) -> dict:
    from datetime import date, timedelta

    day = (date.today() - timedelta(days=3)).isoformat()
    return {"date": day, "centre": "县人民医院", "femoral_neck_t_score": t_score}


def _basic() -> dict:
    import base64

    from conftest import ADMIN_PASSWORD

    token = base64.b64encode(f"admin:{ADMIN_PASSWORD}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


def _seed(client, cases) -> None:
    import json

    for osta, t_score in cases:
        made = client.post(
            "/api/v1/screenings",
            data={"answers": json.dumps(seed_answers(osta))},
            headers=_basic(),
        )
        assert made.status_code == 201, made.get_data(as_text=True)
        case_id = made.get_json()["case"]
        done = client.post(f"/api/v1/cases/{case_id}/dxa", json=seed_dxa(t_score), headers=_basic())
        assert done.status_code == 201, done.get_data(as_text=True)


def _choose(client, **fields):
    return client.get("/settings/calibration/", query_string=fields)


def test_the_page_proposes_the_hand_computed_threshold_and_saves_it_to_the_file(admin_client, box):
    import tomllib

    from conftest import csrf_token

    _seed(admin_client, SEED)
    page = admin_client.get("/settings/calibration/")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert 'id="rule-osta"' in html and "calibration-choose" in html
    plot = admin_client.get("/settings/calibration/plot.png?reference=t_le_-2.5")
    assert plot.status_code == 200 and plot.mimetype == "image/png"
    assert plot.data.startswith(b"\x89PNG") and len(plot.data) > 10_000
    choice = dict(rule="osta", reference="t_le_-2.5", by="sensitivity", value="90")
    html = _choose(admin_client, **choice).get_data(as_text=True)
    assert 'id="proposal-threshold">≤ 2<' in html
    assert "28/60" in html and "18/20" in html and "30/40" in html and "18/28" in html
    token = csrf_token(admin_client, "/settings/calibration/")
    saved = admin_client.post(
        "/settings/calibration/", data={**choice, "n_cases": "60", "csrf_token": token}
    )
    assert saved.status_code == 302
    written = tomllib.loads(box.settings.settings_file.read_text(encoding="utf-8"))["policy"]
    assert written["calibrated_rule"] == "osta" and written["calibrated_threshold"] == 2.0
    assert written["policy_version"] == "site-1" and written["calibration_cases"] == 60
    assert written["calibrated_by"] == "admin" and written["calibration_date"]
    assert (
        written["calibration_basis"]
        == "target sensitivity 90 % for lowest DXA T-score -2.5 or below"
    )
    # the decision uses it at once: OSTA 2, routine under the guideline, is referred now
    made = admin_client.post(
        "/api/v1/screenings",
        data={"answers": json.dumps(seed_answers(2))},
        headers=_basic(),
    ).get_json()
    referral = made["screening"]["referral"]
    assert referral["category"] == "refer" and referral["policy_version"] == "site-1"
    assert referral["driving"] == ["site.threshold_met"]
    # a stale proposal (the cases changed since it was shown) is refused, the file unchanged
    before = box.settings.settings_file.read_bytes()
    stale = admin_client.post(
        "/settings/calibration/",
        data={**choice, "value": "75", "n_cases": "59", "csrf_token": token},
    )
    assert stale.status_code == 422 and b'data-code="calibration.stale"' in stale.data
    assert box.settings.settings_file.read_bytes() == before
    # removed: back to the published cut-off, as a new version recording who removed it
    assert (
        admin_client.post("/settings/calibration/remove", data={"csrf_token": token}).status_code
        == 302
    )
    written = tomllib.loads(box.settings.settings_file.read_text(encoding="utf-8"))["policy"]
    assert written["calibrated_rule"] == "" and written["policy_version"] == "site-2"
    made = admin_client.post(
        "/api/v1/screenings", data={"answers": json.dumps(seed_answers(2))}, headers=_basic()
    ).get_json()
    assert made["screening"]["referral"]["category"] == "routine"


def test_below_the_minimum_the_page_and_the_save_refuse_and_nothing_changes(admin_client, box):
    from conftest import csrf_token

    _seed(admin_client, SEED[:12] + SEED[-30:])  # 42 cases: fewer than 50
    html = admin_client.get("/settings/calibration/").get_data(as_text=True)
    assert 'data-code="calibration.too_few_cases"' in html and "calibration-choose" not in html
    assert "有DXA结果的病例 42 例" in html  # the box speaks Chinese by default
    token = csrf_token(admin_client, "/settings/calibration/")
    refused = admin_client.post(
        "/settings/calibration/",
        data={
            "rule": "osta",
            "reference": "t_le_-2.5",
            "by": "sensitivity",
            "value": "90",
            "n_cases": "42",
            "csrf_token": token,
        },
    )
    assert refused.status_code == 422
    assert b'data-code="calibration.too_few_cases"' in refused.data
    assert not box.settings.settings_file.exists()
    assert box.cases.screener.policy.policy_version == "default-2"


def test_a_technician_does_not_reach_the_page(tech_client):
    assert tech_client.get("/settings/calibration/").status_code == 403
    assert tech_client.get("/settings/calibration/plot.png").status_code == 403
    assert tech_client.post("/settings/calibration/", data={}).status_code in (400, 403)


def test_on_a_box_younger_than_four_weeks_capacity_is_refused(admin_client):
    _seed(admin_client, SEED)
    choice = dict(rule="osta", reference="t_le_-2.5", by="capacity", value="30")
    page = _choose(admin_client, **choice)
    assert page.status_code == 422 and b'data-code="calibration.no_volume"' in page.data
    assert "本设备筛查满 28 天后才能得知" in page.get_data(as_text=True)


@pytest.fixture
def capacity_client(tmp_path):
    """A box told to count its monthly volume from day one ([calibration] volume_min_days
    = 0), so the seeded cases, all screened today, make 60 x 30 = 1800 screenings a month."""
    from conftest import log_in
    from edgeosteo.app import build
    from edgeosteo.config import load_settings
    from edgeosteo.web.auth import ensure_admin

    box_dir = tmp_path / "box"
    box_dir.mkdir()
    (box_dir / "edgeosteo.toml").write_text("[calibration]\nvolume_min_days = 0\n")
    box = build(load_settings(data_dir=box_dir, environ={}))
    from conftest import ADMIN_PASSWORD

    ensure_admin(box.store, {"EDGEOSTEO_ADMIN_PASSWORD": ADMIN_PASSWORD})
    client = box.web.test_client()
    assert log_in(client).status_code == 302
    return client


def test_capacity_gives_the_hand_computed_threshold(capacity_client):
    _seed(capacity_client, SEED)
    # 600 scans a month of 1800 screenings: at most 1 in 3. Strictest first on the 60 seeded
    # OSTA values: <= -1 refers 14, <= 0 refers 17 (0.283), <= 1 refers 21 (0.35, too many)
    page = _choose(capacity_client, rule="osta", reference="t_le_-2.5", by="capacity", value="600")
    html = page.get_data(as_text=True)
    assert page.status_code == 200, html
    assert 'id="proposal-threshold">≤ 0<' in html
    assert "最近 90 天的 60 次筛查中，它会转诊 17 人：按每月 1800 次筛查计，每月约 510 人" in html
    assert "15/20" in html and "38/40" in html
    small = _choose(capacity_client, rule="osta", reference="t_le_-2.5", by="capacity", value="60")
    assert b'data-code="calibration.capacity_too_small"' in small.data  # -5 alone is 4/60


def _hand(inner: float) -> bytes:
    """The metacarpal phantom of tests/test_browser_measure.py with another medullary half
    width: MCI = (40 - inner) / 40."""
    import sys

    import numpy as np

    from conftest import REPO

    sys.path.insert(0, str(REPO / "tools"))
    from phantoms import render
    from test_browser_measure import COLUMNS, END, OUTER, ROWS, START

    rng = np.random.default_rng(7)
    along, lateral = render.axis_coordinates((ROWS, COLUMNS), START, END)
    cortex, medulla = render.tube_path_lengths(lateral, OUTER, inner, 1.0)
    length = float(np.hypot(END[0] - START[0], END[1] - START[1]))
    inside = np.clip(np.minimum(along + 60, length + 60 - along) / 30, 0, 1)
    soft = 0.004 * (np.abs(lateral) < 200) * (200 - np.abs(lateral)).clip(0, None)
    attenuation = 0.02 * cortex * inside + 0.006 * medulla * inside + soft
    display = render.image_chain(attenuation, render.Chain(blur_sigma_px=1.2), rng)
    return render.write_dicom(display, render.Chain(), 0.1, "HAND", "PA")


def _screen_hand(client, image: bytes) -> dict:
    import io

    made = client.post(
        "/api/v1/screenings",
        headers=_basic(),
        content_type="multipart/form-data",
        data={
            "answers": json.dumps(seed_answers(6)),  # OSTA 6: nothing else refers
            "image": (io.BytesIO(image), "hand.dcm"),
            "measure": "mci",
            "points": json.dumps([[352, 230], [348, 680]]),
        },
    )
    assert made.status_code == 201, made.get_data(as_text=True)
    return made.get_json()


def test_a_measurement_method_is_calibrated_from_measured_cases(admin_client):
    """Cases measured through the API (MCI on rendered metacarpals of five cortical
    indices, ten of each): the page lists mci, the threshold for a target sensitivity is a
    measured value, and a new measured case is decided by it."""
    measured = {}
    for inner in (26.0, 22.0, 18.0, 14.0, 10.0):  # MCI about 0.35, 0.45, 0.55, 0.65, 0.75
        image = _hand(inner)
        for _ in range(10):
            made = _screen_hand(admin_client, image)
            (m,) = made["screening"]["measurements"]
            assert m["status"] == "measured", m
            measured.setdefault(inner, m["value"])
            t_score = -2.8 if inner >= 22.0 else -1.5  # the two thinnest cortices: T <= -2.5
            done = admin_client.post(
                f"/api/v1/cases/{made['case']}/dxa", json=seed_dxa(t_score), headers=_basic()
            )
            assert done.status_code == 201
    html = admin_client.get("/settings/calibration/").get_data(as_text=True)
    assert 'id="rule-mci"' in html
    choice = dict(rule="mci", reference="t_le_-2.5", by="sensitivity", value="100")
    html = _choose(admin_client, **choice).get_data(as_text=True)
    # all 20 positives: the threshold is the larger of their two MCI values
    threshold = max(measured[26.0], measured[22.0])
    assert f'id="proposal-threshold">≤ {threshold:g}<' in html
    assert "20/50" in html and "20/20" in html and "30/30" in html
    from conftest import csrf_token

    token = csrf_token(admin_client, "/settings/calibration/")
    saved = admin_client.post(
        "/settings/calibration/", data={**choice, "n_cases": "50", "csrf_token": token}
    )
    assert saved.status_code == 302
    # MCI about 0.45 (the card's low bone mass band, "consider"): refer under the site's MCI
    # threshold; about 0.55, beyond it: routine (the card would say consider)
    thin = _screen_hand(admin_client, _hand(22.0))["screening"]["referral"]
    assert thin["category"] == "refer" and thin["driving"] == ["site.threshold_met"]
    normal = _screen_hand(admin_client, _hand(18.0))["screening"]["referral"]
    assert normal["category"] == "routine", normal


@settings(max_examples=60, deadline=None)
@given(
    threshold=st.integers(-8, 8),
    age=st.integers(40, 64),
    weight=st.integers(35, 100),
    lighter=st.integers(1, 30),
)
def test_under_a_site_osta_threshold_a_lighter_patient_is_never_decided_lower(
    threshold, age, weight, lighter
):
    """Nothing subtracts under a calibrated policy either: a lower weight (a lower OSTA, more
    risk) keeps or raises the category."""
    policy = _policy("osta", threshold)
    heavy = ClinicalAnswers(
        age_years=age, sex="female", weight_kg=weight, prior_fragility_fracture=False
    )
    light = dataclasses.replace(heavy, weight_kg=max(25, weight - lighter))
    assert _decide(light, policy).severity >= _decide(heavy, policy).severity
