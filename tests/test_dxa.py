"""Referral follow-through and the site's labelled data set, on a real box (store in a
temporary data directory, the shipped models): a DXA result recorded through the workflow,
the page and the API closes the referral; bad input gets a typed refusal in both languages
and changes nothing; ``edgeosteo export-labelled`` writes consenting cases de-identified in
the layout ``edgeosteo evaluate`` reads, and evaluate runs on it."""

from __future__ import annotations

import base64
import csv
import io
import json
import re
import sqlite3
from datetime import date, timedelta

import pydicom
import pytest
from test_cli import run

from conftest import ADMIN_PASSWORD, csrf_token
from edgeosteo.cases import ScreeningRequest
from edgeosteo.errors import FollowUpError
from edgeosteo.store import DATABASE_NAME, MIGRATIONS, CaseStore

CJK = re.compile(r"[\u4e00-\u9fff]")
# a woman of 71 weighing 49 kg: OSTA -4, referred for DXA by the default policy
REFERRED = {"age_years": 71, "sex": "female", "weight_kg": 49, "height_m": 1.52}
ROUTINE = {"age_years": 52, "sex": "female", "weight_kg": 80, "height_m": 1.60}
GOOD = {
    "date": "2026-11-20",
    "centre": "县人民医院",
    "device": "Hologic Horizon",
    "femoral_neck_t_score": -2.7,
    "total_hip_t_score": -2.1,
    "lumbar_spine_t_score": -1.8,
    "femoral_neck_z_score": -1.2,
}
NAME, PATIENT_ID, BIRTH, ACCESSION = "WANG^XIAOMING", "ZY20261202", "19550314", "ACC7788"


def _basic() -> dict[str, str]:
    token = base64.b64encode(f"admin:{ADMIN_PASSWORD}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


def _referred(box, answers=REFERRED, local_id: str | None = None, image: bytes | None = None):
    record = box.cases.screen_and_store(
        ScreeningRequest(
            source=image,
            answers=answers,
            local_patient_id=local_id,
            body_part="CHEST" if image else None,
        )
    )
    return record


def _identified_dicom(pydicom_data_dir) -> bytes:
    dataset = pydicom.dcmread(pydicom_data_dir / "RG1_UNCR.dcm")
    dataset.PatientName, dataset.PatientID = NAME, PATIENT_ID
    dataset.PatientBirthDate, dataset.AccessionNumber = BIRTH, ACCESSION
    buffer = io.BytesIO()
    dataset.save_as(buffer)
    return buffer.getvalue()


def _snapshot(box) -> tuple:
    """Everything a DXA entry could change: the outcomes and each case's consent."""
    with sqlite3.connect(box.store.data_dir / DATABASE_NAME) as connection:
        outcomes = connection.execute("SELECT * FROM referral_outcomes ORDER BY case_id")
        consent = connection.execute("SELECT id, research_consent FROM cases ORDER BY id")
        return outcomes.fetchall(), consent.fetchall()


def test_a_dxa_result_closes_the_referral_and_gives_the_who_band(box):
    first = _referred(box)
    second = _referred(box)
    routine = _referred(box, ROUTINE)
    assert first.category in ("refer", "urgent") and routine.category not in ("refer", "urgent")
    categories = box.settings.follow_up.categories
    assert [c.id for c in box.store.awaiting_dxa(categories)] == [first.id, second.id]
    outcome = box.cases.record_dxa(first.id, {**GOOD, "research_consent": True}, "admin")
    assert outcome.outcome == "dxa_done" and outcome.recorded_by == "admin"
    dxa = outcome.dxa
    assert dxa is not None and dxa.scan_date == "2026-11-20" and dxa.centre == "县人民医院"
    assert dxa.lowest_t_score == -2.7 and dxa.lowest_t_site == "femoral_neck"
    assert dxa.who_band == "osteoporosis" and dxa.total_hip_z_score is None
    assert box.store.get_case(first.id).research_consent == "yes"
    assert [c.id for c in box.store.awaiting_dxa(categories)] == [second.id]
    assert box.store.get_outcome(first.id) == outcome  # what was stored reads back whole


@pytest.mark.parametrize(
    ("t_score", "band"), [(-2.5, "osteoporosis"), (-2.4, "low_bone_mass"), (-1.0, "normal")]
)
def test_who_bands_at_their_edges(box, t_score, band):
    case = _referred(box)
    body = {"date": "2026-11-01", "centre": "C", "lumbar_spine_t_score": t_score}
    assert box.cases.record_dxa(case.id, body, None).dxa.who_band == band


def test_declined_and_could_not_travel_leave_the_list_a_later_result_replaces_them(box):
    declined, travel = _referred(box), _referred(box)
    box.cases.record_no_dxa(declined.id, "declined", "tech")
    box.cases.record_no_dxa(travel.id, "could_not_travel", "tech")
    assert box.store.awaiting_dxa(box.settings.follow_up.categories) == []
    assert box.store.get_outcome(travel.id).outcome == "could_not_travel"
    # the patient went after all: the result replaces the outcome
    assert box.cases.record_dxa(declined.id, GOOD, "tech").outcome == "dxa_done"
    with pytest.raises(FollowUpError) as refused:
        box.cases.record_no_dxa(declined.id, "declined", "tech")
    assert refused.value.code == "follow_up.has_dxa"
    assert box.store.get_outcome(declined.id).outcome == "dxa_done"
    with pytest.raises(FollowUpError) as invalid:
        box.cases.record_no_dxa(travel.id, "moved_away", "tech")
    assert invalid.value.code == "follow_up.outcome_invalid"


TOMORROW = (date.today() + timedelta(days=1)).isoformat()
BAD_BODIES = [
    ({**GOOD, "femoral_neck_t_score": 12}, 422, "dxa.score_out_of_range"),
    ({**GOOD, "lumbar_spine_z_score": -9.5}, 422, "dxa.score_out_of_range"),
    ({**GOOD, "date": TOMORROW}, 422, "dxa.date_in_future"),
    ({**GOOD, "date": "2026-02-30"}, 422, "dxa.date_invalid"),
    ({**GOOD, "date": "20261120"}, 422, "dxa.date_invalid"),
    ({k: v for k, v in GOOD.items() if k != "date"}, 422, "dxa.date_missing"),
    ({**GOOD, "centre": "  "}, 422, "dxa.centre_missing"),
    ({**GOOD, "centre": "x" * 121}, 422, "dxa.text_invalid"),
    ({**GOOD, "device": "a\nb"}, 422, "dxa.text_invalid"),
    ({"date": "2026-11-20", "centre": "C", "femoral_neck_z_score": -1}, 422, "dxa.no_t_score"),
    ({**GOOD, "total_hip_t_score": "-2.1"}, 422, "dxa.score_not_a_number"),
    ({**GOOD, "total_hip_t_score": True}, 422, "dxa.score_not_a_number"),
    ({**GOOD, "femoral_neck_t": -2.0}, 422, "dxa.unknown_field"),
    ({**GOOD, "research_consent": "maybe"}, 422, "dxa.consent_invalid"),
]


@pytest.mark.parametrize(("body", "status", "code"), BAD_BODIES)
def test_bad_dxa_input_gets_a_typed_bilingual_refusal_and_changes_nothing(
    app, box, body, status, code
):
    case = _referred(box)
    before = _snapshot(box)
    answer = app.test_client().post(f"/api/v1/cases/{case.id}/dxa", json=body, headers=_basic())
    assert answer.status_code == status
    error = answer.get_json()["error"]
    assert error["code"] == code
    assert error["message_en"] and not CJK.search(error["message_en"])
    assert CJK.search(error["message_zh_CN"])
    assert _snapshot(box) == before
    assert [c.id for c in box.store.awaiting_dxa(box.settings.follow_up.categories)] == [case.id]


def test_a_result_for_no_case_a_duplicate_and_a_bad_body_are_refused(app, box):
    client = app.test_client()
    case = _referred(box)
    missing = client.post("/api/v1/cases/9999/dxa", json=GOOD, headers=_basic())
    assert (
        missing.status_code == 404 and missing.get_json()["error"]["code"] == "dxa.case_not_found"
    )
    assert CJK.search(missing.get_json()["error"]["message_zh_CN"])
    huge = client.post(f"/api/v1/cases/{2**63}/dxa", json=GOOD, headers=_basic())
    assert huge.status_code == 404
    created = client.post(f"/api/v1/cases/{case.id}/dxa", json=GOOD, headers=_basic())
    assert created.status_code == 201
    assert created.headers["Location"] == f"/api/v1/cases/{case.id}"
    assert created.get_json()["dxa"]["who_band"] == "osteoporosis"
    before = _snapshot(box)
    second = {**GOOD, "femoral_neck_t_score": -1.0, "research_consent": True}
    duplicate = client.post(f"/api/v1/cases/{case.id}/dxa", json=second, headers=_basic())
    assert duplicate.status_code == 409
    assert duplicate.get_json()["error"]["code"] == "dxa.duplicate"
    assert _snapshot(box) == before  # neither the first result nor the consent moved
    for raw in (b"[1, 2]", b"not json", b'"text"'):
        answer = client.post(
            f"/api/v1/cases/{case.id}/dxa",
            data=raw,
            headers={**_basic(), "Content-Type": "application/json"},
        )
        assert (
            answer.status_code == 400 and answer.get_json()["error"]["code"] == "dxa.body_invalid"
        )
    unauthenticated = client.post(f"/api/v1/cases/{case.id}/dxa", json=GOOD)
    assert unauthenticated.status_code == 401
    fetched = client.get(f"/api/v1/cases/{case.id}", headers=_basic()).get_json()
    assert fetched["referral_outcome"]["dxa"]["lowest_t_score"] == -2.7


def test_the_api_refuses_nan_as_not_a_number(app, box):
    case = _referred(box)
    nan = app.test_client().post(
        f"/api/v1/cases/{case.id}/dxa",
        data=b'{"date": "2026-11-20", "centre": "C", "total_hip_t_score": NaN}',
        headers={**_basic(), "Content-Type": "application/json"},
    )
    assert nan.status_code == 422
    assert nan.get_json()["error"]["code"] == "dxa.score_not_a_number"
    assert box.store.get_outcome(case.id) is None


@pytest.mark.parametrize(
    ("language", "expected"),
    [("zh_CN", "T值或Z值超出DXA报告的可能范围"), ("en", "outside the range a DXA report gives")],
)
def test_the_case_page_form_refuses_in_the_users_language(admin_client, box, language, expected):
    case = _referred(box)
    token = csrf_token(admin_client, f"/cases/{case.id}")
    admin_client.post("/language", data={"language": language, "csrf_token": token})
    form = {
        "csrf_token": token,
        "date": "2026-11-20",
        "centre": "County",
        "total_hip_t_score": "12",
        "femoral_neck_z_score": "-1.1",
    }
    refused = admin_client.post(f"/cases/{case.id}/dxa", data=form)
    assert refused.status_code == 422
    html = refused.get_data(as_text=True)
    assert expected in html and 'data-code="dxa.score_out_of_range"' in html
    assert 'value="-1.1"' in html  # what was typed stays in the form
    assert box.store.get_outcome(case.id) is None
    # a full-width minus typed on a Chinese keyboard is a minus
    form["total_hip_t_score"] = "－2.6"
    done = admin_client.post(f"/cases/{case.id}/dxa", data=form)
    assert done.status_code == 302 and done.headers["Location"].endswith("#follow-up")
    assert box.store.get_outcome(case.id).dxa.total_hip_t_score == -2.6
    page = admin_client.get(f"/cases/{case.id}").get_data(as_text=True)
    assert 'id="dxa-done"' in page and 'id="dxa-form"' not in page


def test_the_follow_up_list_is_oldest_first_with_days_waiting(admin_client, box):
    store = box.store
    today = date.today()
    ids = {}
    for days, category in ((3, "refer"), (40, "urgent"), (10, "consider"), (12, "refer")):
        created = (today - timedelta(days=days)).isoformat() + "T09:00:00+00:00"
        record = store.save_case(
            {"created_at": created, "referral": {"category": category}},
            local_patient_id=f"P-{days}",
        )
        ids[days] = record.id
    html = admin_client.get("/follow-up").get_data(as_text=True)
    listed = [int(x) for x in re.findall(r'<tr data-case="(\d+)"', html)]
    assert listed == [ids[40], ids[12], ids[3]]  # "consider" is not a referral to follow
    days = re.findall(r'<span class="days">(\d+)</span>', html)
    assert days == ["40", "12", "3"]


@pytest.mark.parametrize("zone", ["Asia/Shanghai", "America/Bogota"])
def test_the_follow_up_list_counts_days_at_the_box_not_in_utc(tmp_path, zone):
    from datetime import UTC, datetime, time
    from zoneinfo import ZoneInfo

    from conftest import log_in
    from edgeosteo.app import build
    from edgeosteo.config import load_settings
    from edgeosteo.web.auth import ensure_admin

    settings = load_settings(data_dir=tmp_path / "box", environ={}, web={"time_zone": zone})
    box = build(settings)
    ensure_admin(box.store, {"EDGEOSTEO_ADMIN_PASSWORD": ADMIN_PASSWORD})
    where = ZoneInfo(zone)
    local_today = datetime.now(UTC).astimezone(where).date()
    # referred five local days ago, at 01:30 (Beijing: the evening before in UTC) or at
    # 21:30 (Bogota: the morning after in UTC)
    moment = time(1, 30) if zone == "Asia/Shanghai" else time(21, 30)
    referred = datetime.combine(local_today - timedelta(days=5), moment, tzinfo=where)
    box.store.save_case(
        {
            "created_at": referred.astimezone(UTC).isoformat(timespec="seconds"),
            "referral": {"category": "refer"},
        },
        local_patient_id="P-TZ",
    )
    client = box.web.test_client()
    assert log_in(client).status_code == 302
    html = client.get("/follow-up").get_data(as_text=True)
    assert re.findall(r'<span class="days">(\d+)</span>', html) == ["5"]
    assert (local_today - timedelta(days=5)).isoformat() in html


def test_a_database_from_before_follow_up_migrates_and_keeps_its_cases(tmp_path):
    data = tmp_path / "old"
    data.mkdir()
    with sqlite3.connect(data / DATABASE_NAME) as connection:
        for number, script in enumerate(MIGRATIONS[:6], start=1):
            connection.executescript(script + f"PRAGMA user_version={number};")
        connection.execute(
            "INSERT INTO cases (uuid, created_at, state, category, result_json) "
            "VALUES ('u-1', '2026-01-05T08:00:00+00:00', 'screened', 'refer', '{}')"
        )
    store = CaseStore(data)
    assert store.schema_version == len(MIGRATIONS) >= 8
    case = store.get_case(1)
    assert case is not None and case.research_consent is None
    assert [c.id for c in store.awaiting_dxa(("refer",))] == [1]


def _labelled_box(box, pydicom_data_dir):
    """Four referred cases with DXA results: consent yes (DICOM), yes (no image), no, and
    never asked; a fifth has a result recorded with consent yes but the wrong body part."""
    dicom = _identified_dicom(pydicom_data_dir)
    agreed = _referred(box, local_id=PATIENT_ID, image=dicom)
    no_image = _referred(box, local_id="ZY-NO-IMAGE")
    refused = _referred(box, local_id="ZY-REFUSED")
    unasked = _referred(box, local_id="ZY-UNASKED")
    box.cases.record_dxa(agreed.id, {**GOOD, "research_consent": True}, "admin")
    box.cases.record_dxa(
        no_image.id, {**GOOD, "femoral_neck_t_score": -0.4, "research_consent": "yes"}, "admin"
    )
    box.cases.record_dxa(refused.id, {**GOOD, "research_consent": False}, "admin")
    box.cases.record_dxa(unasked.id, GOOD, "admin")
    return agreed, no_image


def test_export_labelled_honours_consent_and_de_identifies(box, pydicom_data_dir, tmp_path):
    agreed, no_image = _labelled_box(box, pydicom_data_dir)
    out = tmp_path / "labelled"
    data_dir = str(box.settings.data_dir)
    result = run("--data-dir", data_dir, "export-labelled", str(out))
    assert result.returncode == 0, result.stderr
    assert "wrote 2 labelled case(s), 1 with a de-identified DICOM" in result.stdout
    assert "not exported: 1 (consent.no)" in result.stdout
    assert "not exported: 1 (consent.not_asked)" in result.stdout
    with (out / "clinical.csv").open(encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 2
    by_t = {float(r["t_score"]): r for r in rows}
    assert set(by_t) == {-2.7, -2.1}  # the lowest T of each result
    with_image = by_t[-2.7]
    assert with_image["image"].endswith(".dcm") and with_image["who_band"] == "osteoporosis"
    assert with_image["sex"] == "female" and float(with_image["age"]) == 71
    assert with_image["source"] == "CR" and with_image["body_part"] == "CHEST"
    assert by_t[-2.1]["image"] == "" and by_t[-2.1]["image_withheld"] == "image.none"
    text = (out / "clinical.csv").read_text(encoding="utf-8")
    for secret in (PATIENT_ID, "ZY-", agreed.uuid, no_image.uuid, "2026-11-20", "县人民医院"):
        assert secret not in text
    assert str(agreed.id) not in {r["id"] for r in rows}
    image = (out / "images" / with_image["image"]).read_bytes()
    for secret in (NAME.encode(), PATIENT_ID.encode(), BIRTH.encode(), ACCESSION.encode()):
        assert secret not in image
    dataset = pydicom.dcmread(io.BytesIO(image))
    assert "PatientBirthDate" not in dataset or not dataset.PatientBirthDate
    assert dataset.get("PatientIdentityRemoved") == "YES"
    # a second export into the same folder would mix two exports: refused
    again = run("--data-dir", data_dir, "export-labelled", str(out))
    assert again.returncode == 2 and "follow_up.export_not_empty" in again.stderr
    assert CJK.search(again.stderr)
    # --since takes results recorded on or after that day; a bad day is refused
    tomorrow = (date.today() + timedelta(days=1)).isoformat()
    later = run(
        "--data-dir", data_dir, "export-labelled", str(tmp_path / "later"), "--since", tomorrow
    )
    assert later.returncode == 0 and "wrote 0 labelled case(s)" in later.stdout
    bad = run(
        "--data-dir", data_dir, "export-labelled", str(tmp_path / "bad"), "--since", "2026-13-01"
    )
    assert bad.returncode == 2 and "follow_up.export_invalid_date" in bad.stderr
    # edgeosteo evaluate reads the export as it is
    report = tmp_path / "report.json"
    evaluated = run(
        "--data-dir", str(tmp_path / "evaluating"), "evaluate", str(out), "--json", str(report),
        "--body-part", "CHEST",
    )  # fmt: skip
    assert evaluated.returncode == 0, evaluated.stderr
    written = json.loads(report.read_text())
    assert written["n"] == 2 and "failures" in written


def test_consent_withdrawn_on_the_case_page_keeps_the_case_out_of_the_export(
    admin_client, box, tmp_path
):
    case = _referred(box, local_id="ZY-WITHDRAWS")
    box.cases.record_dxa(case.id, {**GOOD, "research_consent": True}, "admin")
    token = csrf_token(admin_client, f"/cases/{case.id}")
    page = admin_client.get(f"/cases/{case.id}").get_data(as_text=True)
    assert 'id="consent-form"' in page and 'value="yes" selected' in page
    odd = admin_client.post(
        f"/cases/{case.id}/research-consent", data={"csrf_token": token, "research_consent": "x"}
    )
    assert odd.status_code == 422 and 'data-code="dxa.consent_invalid"' in odd.get_data(
        as_text=True
    )
    assert box.store.get_case(case.id).research_consent == "yes"
    withdrawn = admin_client.post(
        f"/cases/{case.id}/research-consent", data={"csrf_token": token, "research_consent": "no"}
    )
    assert withdrawn.status_code == 302
    assert box.store.get_case(case.id).research_consent == "no"
    out = tmp_path / "labelled"
    result = run("--data-dir", str(box.settings.data_dir), "export-labelled", str(out))
    assert result.returncode == 0 and "wrote 0 labelled case(s)" in result.stdout
    assert (out / "clinical.csv").read_text(encoding="utf-8").count("\n") == 1  # header only
