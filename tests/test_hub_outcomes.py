"""DXA results between box and hub, and the hub's outcome figures, on real servers.

A box's recorded DXA outcome goes up in the anonymised sync as a revision of its case's
record; a result given to the hub goes down to the box on its next sync, matched by the
pseudonym the hub holds and recorded through the page's own checks. The hub's outcome and
drift figures are then read from records the boxes really synced.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from datetime import date, timedelta

import pytest
import requests
from sqlalchemy import select, update
from test_sync import (
    DEVICE,
    NO_MODELS,
    SITE,
    FaultProxy,
    Hub,
    box_settings,
    drain,
    start_hub,
    stop_hub,
)

from edgeosteo.cases import CaseWorkflow
from edgeosteo.config import Settings
from edgeosteo.fhir import dxa_result_observation
from edgeosteo.hub.store import dxa_results
from edgeosteo.messages import text
from edgeosteo.screening import Screener
from edgeosteo.store import CaseStore

TODAY = date.today()
SCREENED = TODAY - timedelta(days=60)
RESULT = {
    "date": (TODAY - timedelta(days=10)).isoformat(),
    "centre": "县人民医院骨密度室",
    "device": "Hologic Horizon A",
    "femoral_neck_t_score": -2.7,
    "total_hip_t_score": -2.1,
    "lumbar_spine_t_score": -1.8,
}
REFERRED = {"age_years": 72, "sex": "female", "weight_kg": 48, "height_m": 1.52}
FHIR = {"Content-Type": "application/fhir+json"}


@pytest.fixture
def hub(tmp_path) -> Iterator[Hub]:
    running = start_hub(tmp_path / "hub")
    yield running
    stop_hub(running)


def screen(
    settings: Settings, store: CaseStore, answers: dict, patient: str, when: str | None = None
) -> int:
    """A clinical-only screening stored as the page stores it, dated ``when`` (ISO)."""
    result = Screener(settings).screen(None, answers).to_dict()
    result["created_at"] = when or f"{SCREENED.isoformat()}T09:00:00+00:00"
    return store.save_case(result, local_patient_id=patient).id


def current_record(hub: Hub, case_uuid: str, site: str = SITE, device: str = DEVICE) -> dict:
    (current,) = [
        r for r in hub.store.case_history(site, device, case_uuid) if r["superseded_by"] is None
    ]
    return current


def give(hub: Hub, token: str, observation: dict) -> requests.Response:
    return requests.post(
        f"{hub.url}/dxa-results",
        data=json.dumps(observation, ensure_ascii=False).encode(),
        headers={**FHIR, "Authorization": f"Bearer {token}"},
        timeout=10,
    )


def refusal_code(response: requests.Response) -> str:
    (issue,) = response.json()["issue"]
    (coding,) = issue["details"]["coding"]
    # bilingual: the English sentence in diagnostics, the Chinese one in details.text
    assert issue["details"]["text"] == text(coding["code"], "zh_CN")
    assert issue["diagnostics"].startswith(text(coding["code"], "en"))
    return coding["code"]


# --- box -> hub ----------------------------------------------------------------------------


def test_a_recorded_dxa_result_reaches_the_hub_without_its_date_centre_or_device(tmp_path, hub):
    proxy = FaultProxy(hub.port)
    try:
        settings = box_settings(tmp_path / "box", f"http://127.0.0.1:{proxy.port}/fhir", hub.token)
        store = CaseStore(settings.data_dir)
        workflow = CaseWorkflow(Screener(settings), store)
        done = screen(settings, store, REFERRED, "ZY-0001")
        late = screen(
            settings, store, REFERRED, "ZY-0002", f"{TODAY.year - 1}-01-02T09:00:00+00:00"
        )
        declined = screen(settings, store, REFERRED, "ZY-0003")
        drain(settings, store)  # the screenings reach the hub before any outcome exists
        workflow.record_dxa(done, RESULT, "radiographer")
        workflow.record_dxa(late, RESULT, "radiographer")
        workflow.record_no_dxa(declined, "declined", "radiographer")
        drain(settings, store)
    finally:
        proxy.close()
    rows = {
        case_id: current_record(hub, store.get_case(case_id).uuid)
        for case_id in (done, late, declined)
    }
    assert rows[done]["revision"] == 2 and rows[done]["dxa_outcome"] == "result"
    assert rows[done]["dxa_who_band"] == "osteoporosis"
    assert rows[done]["dxa_lowest_t_score"] == -2.7
    assert rows[done]["dxa_within_six_months"] is True
    assert rows[late]["dxa_within_six_months"] is False  # screened over a year before
    assert rows[declined]["dxa_outcome"] == "declined"
    assert rows[declined]["dxa_lowest_t_score"] is None
    assert rows[done]["policy_version"] == settings.policy.policy_version
    # nothing that left the box names the scan's date, centre or device, or the patient
    sent = b"".join(proxy.bodies).decode()
    for value in (RESULT["date"], RESULT["date"].replace("-", ""), "ZY-0001", "ZY-0002"):
        assert value not in sent
    for value in (RESULT["centre"], RESULT["device"], "radiographer"):
        assert value not in sent and json.dumps(value)[1:-1] not in sent
    assert "days-from-screening" not in sent and '"within-six-months"' in sent


# --- hub -> box ----------------------------------------------------------------------------


def _synced_referred_case(tmp_path, hub: Hub) -> tuple[Settings, CaseStore, int, str]:
    settings = box_settings(tmp_path / "box", hub.url, hub.token)
    store = CaseStore(settings.data_dir)
    case_id = screen(settings, store, REFERRED, "ZY-7788")
    drain(settings, store)
    patient_key = current_record(hub, store.get_case(case_id).uuid)["patient_key"]
    return settings, store, case_id, patient_key


def test_a_result_given_to_the_hub_is_recorded_on_the_box_and_closes_the_referral(tmp_path, hub):
    settings, store, case_id, patient_key = _synced_referred_case(tmp_path, hub)
    case_uuid = store.get_case(case_id).uuid
    reporter = hub.store.add_credential("reporter", SITE, "county-dxa")
    assert [c.id for c in store.awaiting_dxa(settings.follow_up.categories)] == [case_id]

    given = give(hub, reporter, dxa_result_observation(SITE, patient_key, case_uuid, RESULT))
    assert given.status_code == 201, given.text
    # the box's device token takes results; the reporter's cannot, nor can no token
    listed = requests.get(
        f"{hub.url}/dxa-results", headers={"Authorization": f"Bearer {reporter}"}, timeout=10
    )
    assert listed.status_code == 401
    # a second result for the same case while the first waits: refused, the first kept
    again = give(
        hub,
        reporter,
        dxa_result_observation(SITE, patient_key, case_uuid, {**RESULT, "centre": "另一医院"}),
    )
    assert again.status_code == 409 and refusal_code(again) == "hub.dxa_duplicate"

    outcome = drain_and_result(settings, store)
    assert (outcome.dxa_recorded, outcome.dxa_refused) == (1, 0)
    recorded = store.get_outcome(case_id)
    assert recorded.outcome == "dxa_done" and recorded.recorded_by == "hub"
    assert recorded.dxa.centre == RESULT["centre"] and recorded.dxa.who_band == "osteoporosis"
    assert store.awaiting_dxa(settings.follow_up.categories) == []
    assert [r["state"] for r in hub.store.dxa_result_states()] == ["recorded"]
    # the box's revision told the hub; the next sync asks and finds nothing waiting
    assert current_record(hub, case_uuid)["dxa_outcome"] == "result"
    assert drain_and_result(settings, store).dxa_recorded == 0
    # and now the case's result is at the hub, a new one is a duplicate there too
    hub.store.engine.dispose()
    with hub.store.engine.begin() as connection:
        connection.execute(dxa_results.delete())
    late = give(hub, reporter, dxa_result_observation(SITE, patient_key, case_uuid, RESULT))
    assert late.status_code == 409 and refusal_code(late) == "hub.dxa_duplicate"


def drain_and_result(settings: Settings, store: CaseStore):
    from edgeosteo.sync import Sender

    return Sender(settings, store).run()


@pytest.mark.parametrize(
    ("change", "status", "code"),
    [
        ({"femoral_neck_t_score": 12}, 422, "dxa.score_out_of_range"),
        ({"date": (TODAY + timedelta(days=2)).isoformat()}, 422, "dxa.date_in_future"),
        ({"date": None}, 422, "dxa.date_missing"),
        (
            {"femoral_neck_t_score": None, "total_hip_t_score": None, "lumbar_spine_t_score": None},
            422,
            "dxa.no_t_score",
        ),
    ],
)
def test_a_bad_result_is_refused_by_the_hub_with_the_pages_codes(
    tmp_path, hub, change, status, code
):
    settings, store, case_id, patient_key = _synced_referred_case(tmp_path, hub)
    reporter = hub.store.add_credential("reporter", SITE, "county-dxa")
    observation = dxa_result_observation(
        SITE, patient_key, store.get_case(case_id).uuid, {**RESULT, **change}
    )
    answer = give(hub, reporter, observation)
    assert answer.status_code == status and refusal_code(answer) == code
    assert hub.store.dxa_result_states() == []
    assert drain_and_result(settings, store).dxa_recorded == 0
    assert store.get_outcome(case_id) is None


def test_a_result_is_matched_by_the_pseudonym_never_by_name_or_case_alone(tmp_path, hub):
    _, store, case_id, patient_key = _synced_referred_case(tmp_path, hub)
    case_uuid = store.get_case(case_id).uuid
    reporter = hub.store.add_credential("reporter", SITE, "county-dxa")
    other_site = hub.store.add_credential("reporter", "site-z", "elsewhere")
    wrong_key = "0" * len(patient_key)
    for observation in (
        dxa_result_observation(SITE, wrong_key, case_uuid, RESULT),  # right case, wrong patient
        dxa_result_observation(SITE, patient_key, "no-such-case-record", RESULT),
    ):
        answer = give(hub, reporter, observation)
        assert answer.status_code == 404 and refusal_code(answer) == "hub.dxa_unknown_case"
    # a name instead of the pseudonym is not a result at all
    named = dxa_result_observation(SITE, patient_key, case_uuid, RESULT)
    named["subject"] = {"display": "王小明", "identifier": {"value": "ZY-7788"}}
    answer = give(hub, reporter, named)
    assert answer.status_code == 400 and refusal_code(answer) == "hub.dxa_not_a_result"
    # a reporter for another site cannot give this site's results
    elsewhere = give(hub, other_site, dxa_result_observation(SITE, patient_key, case_uuid, RESULT))
    assert elsewhere.status_code == 403
    assert hub.store.dxa_result_states() == []
    assert store.get_outcome(case_id) is None


def test_the_box_checks_a_delivered_result_again_and_tells_the_hub_why_it_refused(tmp_path, hub):
    settings, store, case_id, patient_key = _synced_referred_case(tmp_path, hub)
    second = screen(settings, store, REFERRED, "ZY-7789")
    drain(settings, store)
    reporter = hub.store.add_credential("reporter", SITE, "county-dxa")
    first_uuid, second_uuid = store.get_case(case_id).uuid, store.get_case(second).uuid
    second_key = current_record(hub, second_uuid)["patient_key"]
    for uuid_, key in ((first_uuid, patient_key), (second_uuid, second_key)):
        assert give(hub, reporter, dxa_result_observation(SITE, key, uuid_, RESULT)).ok
    # before the box syncs, the clinic records a different result for the first case itself
    CaseWorkflow(Screener(settings), store).record_dxa(
        case_id, {**RESULT, "femoral_neck_t_score": -1.2}, "radiographer"
    )
    # and the second case's waiting result is tampered with at the hub: another patient's key
    with hub.store.engine.begin() as connection:
        row = connection.execute(
            select(dxa_results.c.id, dxa_results.c.observation).where(
                dxa_results.c.case_record == second_uuid
            )
        ).one()
        observation = json.loads(row.observation)
        observation["subject"]["identifier"]["value"] = patient_key
        connection.execute(
            update(dxa_results)
            .where(dxa_results.c.id == row.id)
            .values(observation=json.dumps(observation))
        )
    result = drain_and_result(settings, store)
    assert (result.dxa_recorded, result.dxa_refused) == (0, 2)
    states = {
        r["case_record"]: (r["state"], r["refusal_code"]) for r in hub.store.dxa_result_states()
    }
    assert states == {
        first_uuid: ("refused", "dxa.duplicate"),
        second_uuid: ("refused", "sync.dxa_unknown_case"),
    }
    assert store.get_outcome(case_id).dxa.femoral_neck_t_score == -1.2  # the clinic's stays
    assert store.get_outcome(second) is None
    # the second, given again correctly, is taken (a refused result may be corrected)
    assert give(hub, reporter, dxa_result_observation(SITE, second_key, second_uuid, RESULT)).ok
    assert drain_and_result(settings, store).dxa_recorded == 1
    assert store.get_outcome(second).recorded_by == "hub"


# --- the hub's outcome figures and drift, from synced records ------------------------------


def _box(tmp_path, hub: Hub, site: str, device: str, name: str) -> tuple[Settings, CaseStore]:
    token = hub.store.add_credential("device", site, device)
    settings = box_settings(tmp_path / name, hub.url, token, site_id=site, device_id=device)
    return settings, CaseStore(settings.data_dir)


def _patients(
    count: int, offset: int = 0, youngest: int = 50, heaviest: int = 80
) -> Iterator[dict]:
    for number in range(count):
        yield {
            "age_years": youngest + (number * 7 + offset) % 40,
            "sex": "female" if number % 3 else "male",
            "weight_kg": heaviest - 35 + (number * 11 + offset) % 35,
            "height_m": 1.58,
        }


def _screen_under(
    settings: Settings, store: CaseStore, policy, patients, days_ago: int, tag: str
) -> list[int]:
    """Screenings under ``policy`` a minute apart from ``days_ago`` days before today."""
    versioned = dataclasses.replace(settings, policy=policy)
    day = (TODAY - timedelta(days=days_ago)).isoformat()
    ids = []
    for number, answers in enumerate(patients):
        when = f"{day}T{number // 60:02d}:{number % 60:02d}:00+00:00"
        ids.append(screen(versioned, store, answers, f"{tag}-{number:03d}", when))
    return ids


def test_outcome_figures_and_drift_from_synced_records(tmp_path, hub):
    viewer = hub.store.add_credential("viewer", "*", "programme")
    changed, changed_store = _box(tmp_path, hub, "site-c", "box-c", "changed")
    steady, steady_store = _box(tmp_path, hub, "site-s", "box-s", "steady")
    default = changed.policy
    # site-c: a new policy version, and from then on the site screens a younger, heavier
    # population (an outreach drive): fewer referrals and higher OSTA indices
    site_3 = dataclasses.replace(default, policy_version="site-3", counted_instruments=())
    before = _screen_under(changed, changed_store, default, _patients(60), 100, "c1")
    younger = _patients(60, 3, youngest=35, heaviest=95)
    after = _screen_under(changed, changed_store, site_3, younger, 40, "c2")
    # site-s: a new version with the same rule and patients like before: no drift
    relabelled = dataclasses.replace(default, policy_version="default-2a")
    _screen_under(steady, steady_store, default, _patients(60), 100, "s1")
    _screen_under(steady, steady_store, relabelled, _patients(60, 3), 40, "s2")

    workflow = CaseWorkflow(Screener(changed), changed_store)
    referred = [i for i in before if changed_store.get_case(i).category in ("refer", "urgent")]
    not_referred = [i for i in before if i not in referred]
    assert len(referred) >= 12 and len(not_referred) >= 4
    # results: 8 referred with osteoporosis, 4 referred without; 2 unreferred with, 2 without
    t_scores = [-2.8] * 8 + [-1.5] * 4
    for case_id, t in zip(referred, t_scores, strict=False):
        workflow.record_dxa(case_id, {**RESULT, "femoral_neck_t_score": t}, "tech")
    for case_id, t in zip(not_referred, (-3.0, -2.6, -0.5, 0.2), strict=False):
        workflow.record_dxa(case_id, {**RESULT, "femoral_neck_t_score": t}, "tech")
    workflow.record_no_dxa(referred[12], "declined", "tech")
    workflow.record_no_dxa(referred[13], "could_not_travel", "tech")
    for settings, store in ((changed, changed_store), (steady, steady_store)):
        drain(settings, store)

    answer = requests.get(
        f"{hub.url.removesuffix('/fhir')}/dashboard.json",
        headers={"Authorization": f"Bearer {viewer}"},
        timeout=10,
    )
    data = answer.json()
    rows = {
        (r["site"], r["sex"], r["age_band"], r["version"]): r for r in data["referral_outcomes"]
    }
    total = rows[("site-c", "all", "all", "all")]
    n_referred = len(referred) + sum(
        changed_store.get_case(i).category in ("refer", "urgent") for i in after
    )
    assert total["cases"] == 120 and total["referred"] == n_referred
    assert total["dxa_within_6_months"] == 12
    assert total["share_with_dxa_within_6_months"] == round(12 / n_referred, 4)
    assert (total["declined"], total["could_not_travel"]) == (1, 1)
    assert (total["true_positive"], total["false_positive"], total["false_negative"]) == (8, 4, 2)
    assert total["sensitivity"] == round(8 / 10, 4) and total["ppv"] == round(8 / 12, 4)
    low, high = total["ppv_ci95"]
    assert low < 8 / 12 < high and (round(low, 2), round(high, 2)) == (0.39, 0.86)  # Wilson
    # the strata add up to the site's total, each under its own decision version
    strata = [r for k, r in rows.items() if k[0] == "site-c" and k[1] != "all"]
    assert sum(r["cases"] for r in strata) == 120
    assert {r["version"] for r in strata} == {"default-2", "site-3"}

    drift = {row["site"]: row for row in data["drift"]}
    assert drift["site-c"]["before"] == "default-2" and drift["site-c"]["after"] == "site-3"
    assert drift["site-c"]["flag"] is True
    assert drift["site-c"]["reasons"] == ["referral_rate", "score:osta"], drift["site-c"]
    assert drift["site-c"]["referral_rate_after"] < drift["site-c"]["referral_rate_before"]
    assert drift["site-s"]["flag"] is False and drift["site-s"]["enough_cases"] is True
    assert drift["site-s"]["score_ks_p"]["osta"] > 0.01

    page = requests.get(
        hub.url.removesuffix("/fhir") + "/",
        headers={"Authorization": f"Bearer {viewer}"},
        timeout=10,
    ).text
    assert 'id="referral-outcomes"' in page and 'id="drift"' in page
    assert "DRIFT" in page and "80.0 %" in page and "66.7 %" in page


def test_drift_waits_for_enough_cases_on_both_sides(tmp_path, hub):
    from edgeosteo.config import HubSettings
    from edgeosteo.hub import outcomes

    settings, store = _box(tmp_path, hub, "site-f", "box-f", "few")
    site_3 = dataclasses.replace(settings.policy, policy_version="site-3", counted_instruments=())
    _screen_under(settings, store, settings.policy, _patients(29), 100, "f1")
    _screen_under(settings, store, site_3, _patients(40, 3), 40, "f2")
    drain(settings, store)
    (row,) = outcomes.drift(hub.store.outcome_rows(), HubSettings().referred_categories)
    assert row["before"] == "default-2" and row["enough_cases"] is False
    assert row["flag"] is False and row["referral_rate_p"] is None
    assert NO_MODELS  # the boxes ran without models: every score is the OSTA index


def test_the_drift_flag_is_rare_when_nothing_changed_and_sure_when_scores_move():
    """Small samples are where a bare PSI cut-off cries wolf: 30 against 30 OSTA indices
    from one population cross PSI 0.25 in most draws. The flag needs the KS test too."""
    import random

    from edgeosteo.hub import outcomes

    rng = random.Random(7)

    def osta(heavier: float = 0.0) -> int:
        return int((rng.uniform(40, 80) + heavier - rng.uniform(50, 90)) * 0.2)

    def flagged(shift: float, n: int) -> bool:
        return outcomes.score_moved([osta() for _ in range(n)], [osta(shift) for _ in range(n)])[0]

    assert sum(flagged(0.0, 30) for _ in range(300)) <= 6  # <= 2 % false alarms
    assert sum(flagged(10.0, 300) for _ in range(20)) >= 19  # OSTA +2 on 300 cases
    # and the KS p-value is a p-value: uniform-ish under no change, tiny for a big shift
    same = [
        outcomes.kolmogorov_smirnov_p(
            [rng.random() for _ in range(80)], [rng.random() for _ in range(80)]
        )
        for _ in range(300)
    ]
    assert 0.005 <= sum(p < 0.05 for p in same) / 300 <= 0.09
    assert outcomes.kolmogorov_smirnov_p(list(range(50)), [x + 30 for x in range(50)]) < 1e-6


def test_a_lost_receipt_brings_the_result_again_and_it_is_recorded_once(tmp_path, hub):
    proxy = FaultProxy(hub.port)
    try:
        settings = box_settings(tmp_path / "box", f"http://127.0.0.1:{proxy.port}/fhir", hub.token)
        store = CaseStore(settings.data_dir)
        case_id = screen(settings, store, REFERRED, "ZY-5151")
        drain(settings, store)
        case_uuid = store.get_case(case_id).uuid
        patient_key = current_record(hub, case_uuid)["patient_key"]
        reporter = hub.store.add_credential("reporter", SITE, "county-dxa")
        assert give(hub, reporter, dxa_result_observation(SITE, patient_key, case_uuid, RESULT)).ok
        proxy.script.append("500")  # the box's receipt never reaches the hub
        first = drain_and_result(settings, store)
        assert first.dxa_recorded == 1
        assert [r["state"] for r in hub.store.dxa_result_states()] == ["pending"]
        second = drain_and_result(settings, store)
    finally:
        proxy.close()
    assert second.dxa_recorded == 1 and second.dxa_refused == 0  # the same result: recorded
    assert [r["state"] for r in hub.store.dxa_result_states()] == ["recorded"]
    assert store.get_outcome(case_id).dxa.femoral_neck_t_score == -2.7
    with store.connect() as connection:
        (outcomes,) = connection.execute("SELECT COUNT(*) FROM referral_outcomes").fetchone()
        revisions = connection.execute("SELECT revision FROM outbox ORDER BY revision").fetchall()
    assert outcomes == 1 and [r[0] for r in revisions] == [1, 2]
    assert current_record(hub, case_uuid)["dxa_outcome"] == "result"
