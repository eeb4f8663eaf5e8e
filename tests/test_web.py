from __future__ import annotations

import base64
import io
import json
import re
from html.parser import HTMLParser

import cv2
import numpy as np
import pytest

from conftest import ADMIN_PASSWORD, TECH_PASSWORD, csrf_token, log_in
from edgeosteo.errors import ConfigError


def _cases(app) -> int:
    return app.extensions["edgeosteo"].store.count_cases()


def _form(token, **extra):
    data = {
        "csrf_token": token,
        "age_years": "68",
        "sex": "female",
        "weight_kg": "52",
        "height_cm": "155",
        "body_part": "CHEST",
        "prior_fragility_fracture": "no",
    }
    data.update(extra)
    return data


def _upload(client, data: bytes, name: str, **extra):
    token = csrf_token(client, "/screenings/new")
    form = _form(token, **extra)
    form["image"] = (io.BytesIO(data), name)
    return client.post("/screenings", data=form, content_type="multipart/form-data")


def test_pages_need_a_login(client):
    for path in ("/", "/screenings/new", "/cases", "/cases/1", "/settings/"):
        response = client.get(path)
        assert response.status_code == 302
        assert "/login" in response.headers["Location"]


def test_wrong_password_is_refused_and_repeated_failures_lock(client):
    assert log_in(client, "admin", "wrong").status_code == 401
    for _ in range(5):
        log_in(client, "admin", "wrong")
    locked = log_in(client, "admin", ADMIN_PASSWORD)
    assert locked.status_code == 401
    assert "Too many failed attempts" in locked.get_data(
        as_text=True
    ) or "登录失败次数过多" in locked.get_data(as_text=True)


def test_post_without_csrf_token_is_refused(admin_client, app, pydicom_data_dir):
    data = (pydicom_data_dir / "RG1_UNCR.dcm").read_bytes()
    response = admin_client.post(
        "/screenings",
        content_type="multipart/form-data",
        data={
            "age_years": "70",
            "sex": "female",
            "weight_kg": "50",
            "image": (io.BytesIO(data), "x.dcm"),
        },
    )
    assert response.status_code == 400
    assert _cases(app) == 0


def test_technician_cannot_open_admin_pages(tech_client):
    assert tech_client.get("/settings/").status_code == 403
    token = csrf_token(tech_client, "/screenings/new")
    response = tech_client.post(
        "/settings/users",
        data={"csrf_token": token, "username": "eve", "password": "password123", "role": "admin"},
    )
    assert response.status_code == 403


def test_upload_a_dicom_and_see_the_result(admin_client, app, pydicom_data_dir):
    response = _upload(
        admin_client,
        (pydicom_data_dir / "RG1_J2KR.dcm").read_bytes(),
        "chest.dcm",
        local_patient_id="A-17",
    )
    assert response.status_code == 302
    page = admin_client.get(response.headers["Location"]).get_data(as_text=True)
    assert 'id="banner"' in page
    assert "A-17" in page
    assert "CompressedSamples" not in page  # the DICOM patient name is not shown
    assert _cases(app) == 1
    image = admin_client.get(response.headers["Location"] + "/display.png")
    assert image.status_code == 200 and image.data.startswith(b"\x89PNG")


@pytest.mark.parametrize(
    ("language", "expected"),
    [
        ("en", "The file is incomplete or damaged"),
        ("zh_CN", "文件不完整或已损坏"),
    ],
)
def test_corrupt_dicom_shows_a_message_in_the_chosen_language(
    admin_client, app, pydicom_data_dir, language, expected
):
    token = csrf_token(admin_client, "/screenings/new")
    admin_client.post("/language", data={"csrf_token": token, "language": language})
    data = (pydicom_data_dir / "RG1_UNCR.dcm").read_bytes()[:5000]
    response = _upload(admin_client, data, "truncated.dcm")
    assert response.status_code == 422
    assert expected in response.get_data(as_text=True)
    assert _cases(app) == 0


def _png(width, height) -> bytes:
    # a real PNG of the given size; zlib keeps a flat image small on the wire
    ok, encoded = cv2.imencode(".png", np.zeros((height, width), np.uint8))
    assert ok
    return encoded.tobytes()


@pytest.mark.parametrize(
    ("data", "name", "expected"),
    [
        (
            b"patient notes, not an image\n" * 10,
            "renamed.dcm",
            "This file is not a radiograph image",
        ),
        (b"", "empty.png", "The file is empty"),
        (None, "huge.png", "larger than this box accepts"),
    ],
)
def test_bad_uploads_leave_no_case(admin_client, app, data, name, expected):
    token = csrf_token(admin_client, "/screenings/new")
    admin_client.post("/language", data={"csrf_token": token, "language": "en"})
    payload = _png(7746, 7746) if data is None else data  # 60 megapixels
    response = _upload(admin_client, payload, name)
    assert response.status_code == 422
    assert expected in response.get_data(as_text=True)
    assert _cases(app) == 0


def test_upload_over_the_size_limit_gets_a_friendly_413(tmp_path):
    from edgeosteo.app import build
    from edgeosteo.config import load_settings
    from edgeosteo.web.auth import ensure_admin

    settings = load_settings(
        data_dir=tmp_path / "box", environ={}, web={"max_upload_bytes": 100_000}
    )
    app = build(settings).web
    ensure_admin(app.extensions["edgeosteo"].store, {"EDGEOSTEO_ADMIN_PASSWORD": ADMIN_PASSWORD})
    client = app.test_client()
    log_in(client)
    response = _upload(client, b"\0" * 200_000, "big.dcm")
    assert response.status_code == 413
    html = response.get_data(as_text=True)
    assert "MB" in html
    # the page keeps its navigation: the limit is hit before the request reaches a view
    assert "<nav>" in html and 'href="/screenings/new"' in html and "admin" in html


def test_invalid_answers_are_shown_inline_and_nothing_is_screened(admin_client, app):
    token = csrf_token(admin_client, "/screenings/new")
    response = admin_client.post("/screenings", data=_form(token, weight_kg="520"))
    assert response.status_code == 422
    assert 'class="field  invalid"' in response.get_data(
        as_text=True
    ) or "invalid" in response.get_data(as_text=True)
    assert _cases(app) == 0


def test_clinical_only_screening_without_image(admin_client, app):
    token = csrf_token(admin_client, "/screenings/new")
    response = admin_client.post("/screenings", data=_form(token))
    assert response.status_code == 302
    record = app.extensions["edgeosteo"].store.get_case(1)
    assert record.category in ("consider", "refer", "urgent")
    assert record.result["image"] is None


def _set_language(client, language):
    token = csrf_token(client, "/screenings/new")
    client.post("/language", data={"csrf_token": token, "language": language})


def test_case_page_shows_evidence_in_the_page_language(admin_client, app):
    token = csrf_token(admin_client, "/screenings/new")
    assert admin_client.post("/screenings", data=_form(token)).status_code == 302
    # 68-year-old woman, 52 kg: OSTA -3 and the guideline's age indication
    chinese = ("女性，68岁（≥ 65）", "OSTA -3（中风险）", "未填写：")
    english = ("female aged 68 (&gt;= 65)", "OSTA -3 (intermediate)", "not answered:")
    _set_language(admin_client, "zh_CN")
    page = admin_client.get("/cases/1").get_data(as_text=True)
    assert all(text in page for text in chinese), page
    assert not any(text in page for text in english)
    _set_language(admin_client, "en")
    page = admin_client.get("/cases/1").get_data(as_text=True)
    assert all(text in page for text in english)
    assert not any(text in page for text in chinese)


def test_case_stored_before_chinese_evidence_shows_english(admin_client, app):
    token = csrf_token(admin_client, "/screenings/new")
    admin_client.post("/screenings", data=_form(token))
    store = app.extensions["edgeosteo"].store
    result = store.get_case(1).result
    for item in (*result["referral"]["reasons"], *result["referral"]["notes"]):
        del item["evidence_zh_CN"]
    with store.transaction() as connection:
        connection.execute(
            "UPDATE cases SET result_json=? WHERE id=1", (json.dumps(result, ensure_ascii=False),)
        )
    _set_language(admin_client, "zh_CN")
    page = admin_client.get("/cases/1").get_data(as_text=True)
    assert "female aged 68 (&gt;= 65)" in page and "女性，68岁" not in page
    assert "女性65岁及以上或男性70岁及以上" in page  # the reason's own sentence is still Chinese


def test_list_search_and_csv_export(admin_client, app):
    for patient in ("P-1", "P-2"):
        token = csrf_token(admin_client, "/screenings/new")
        admin_client.post("/screenings", data=_form(token, local_patient_id=patient))
    listing = admin_client.get("/cases?q=P-2&date=").get_data(as_text=True)
    assert "P-2" in listing and "P-1" not in listing
    _set_language(admin_client, "en")
    export = admin_client.get("/cases/export.csv")
    assert export.mimetype == "text/csv"
    rows = export.get_data(as_text=True).lstrip("\ufeff").strip().splitlines()
    assert rows[0].startswith("case,created_at,time_zone,local_patient_id,category")
    assert len(rows) == 3
    _set_language(admin_client, "zh_CN")
    rows = _export_rows(admin_client)
    assert rows[0][:5] == ["病例", "时间", "时区", "患者编号", "推荐意见"]
    assert rows[1][4] in ("紧急", "转诊行DXA检查", "考虑DXA检查", "常规", "重拍", "无法评估")


FORMULAS = ('=HYPERLINK("http://x.example","open")', "+cmd|' /C calc'!A0", "@SUM(1+1)", "-1+1")


def _export_rows(client, query: str = "") -> list[list[str]]:
    import csv

    export = client.get("/cases/export.csv" + query)
    assert export.status_code == 200, export.get_data(as_text=True)
    return list(csv.reader(io.StringIO(export.get_data(as_text=True).lstrip("\ufeff"))))


def test_csv_export_neutralises_formulas_in_patient_ids(admin_client, app):
    for patient in FORMULAS:
        token = csrf_token(admin_client, "/screenings/new")
        response = admin_client.post("/screenings", data=_form(token, local_patient_id=patient))
        assert response.status_code == 302, response.get_data(as_text=True)
    _set_language(admin_client, "en")
    rows = _export_rows(admin_client)
    column = rows[0].index("local_patient_id")
    assert [row[column] for row in rows[1:]] == ["'" + p for p in FORMULAS]
    # the box's own numbers are left alone: a negative OSTA index stays a number
    osta = [row[rows[0].index("osta")] for row in rows[1:]]
    assert all(float(x) < 0 for x in osta), osta


def test_every_csv_cell_goes_through_the_formula_guard():
    from edgeosteo.web.cases import csv_cell

    for text in ("=1+1", "+1", "-1", "@A1", "\tx", "\rx"):
        assert csv_cell(text) == "'" + text
    assert csv_cell("P-1") == "P-1" and csv_cell(None) == "" and csv_cell("") == ""
    assert csv_cell(-3.2) == -3.2 and csv_cell(7) == 7
    assert csv_cell(True) == "True"


def test_csv_export_refuses_what_is_no_date(admin_client):
    crafted = (
        "x%0d%0aSet-Cookie:%20session=stolen",
        'x";%20filename="evil.bat',
        "2026-02-30",
        "20260301",
        "2026-3-1",
        "%EF%BC%92026-03-01",  # a full-width digit
    )
    for date in crafted:
        response = admin_client.get(f"/cases/export.csv?date={date}")
        assert response.status_code == 400, date
        assert not any("stolen" in v for v in response.headers.getlist("Set-Cookie"))
        assert "request.invalid_date" in response.get_data(as_text=True)
        assert "YYYY-MM-DD" in response.get_data(as_text=True)
    day = admin_client.get("/cases/export.csv?date=2026-03-01")
    assert day.headers["Content-Disposition"] == "attachment; filename=edgeosteo-2026-03-01.csv"
    every_day = admin_client.get("/cases/export.csv?date=")
    assert every_day.headers["Content-Disposition"] == "attachment; filename=edgeosteo-all.csv"


def test_admin_changes_a_threshold_and_it_applies(admin_client, app):
    token = csrf_token(admin_client, "/settings/")
    response = admin_client.post(
        "/settings/",
        data={
            "csrf_token": token,
            "refer_p_osteoporosis": "0.9",
            "consider_p_osteoporosis": "0.3",
            "consider_p_low_bone_mass": "0.6",
            "rescreen_interval_months": "12",
            "language": "en",
            "sync_endpoint": "https://hub.example/fhir",
        },
    )
    assert response.status_code == 302
    screener = app.extensions["edgeosteo"].cases.screener
    assert screener.policy.refer_p_osteoporosis == 0.9
    saved = (app.extensions["edgeosteo"].settings.data_dir / "edgeosteo.toml").read_text()
    assert "refer_p_osteoporosis = 0.9" in saved


def _basic(username, password):
    token = base64.b64encode(f"{username}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


def test_api_requires_credentials_and_screens(client, app, pydicom_data_dir):
    answers = json.dumps({"age_years": 72, "sex": "female", "weight_kg": 47})
    assert client.post("/api/v1/screenings", data={"answers": answers}).status_code == 401
    response = client.post(
        "/api/v1/screenings",
        headers=_basic("tech", TECH_PASSWORD),
        content_type="multipart/form-data",
        data={
            "answers": answers,
            "image": (io.BytesIO((pydicom_data_dir / "RG3_UNCR.dcm").read_bytes()), "leg.dcm"),
        },
    )
    assert response.status_code == 201, response.get_data(as_text=True)
    case = response.get_json()
    assert case["screening"]["image"]["modality"] == "CR"
    fetched = client.get(response.headers["Location"], headers=_basic("tech", TECH_PASSWORD))
    assert fetched.get_json()["case"] == case["case"]
    bad = client.post(
        "/api/v1/screenings",
        headers=_basic("tech", TECH_PASSWORD),
        content_type="multipart/form-data",
        data={"answers": answers, "image": (io.BytesIO(b"junk"), "x.dcm")},
    )
    assert bad.status_code == 422
    assert bad.get_json()["error"]["code"] == "intake.not_an_image"
    assert _cases(app) == 1


def test_crafted_answers_are_a_typed_4xx_never_a_500(client, app):
    app.testing = False  # an exception becomes the 500 a client would see
    deep = 100_000
    crafted = {
        "deep list": "[" * deep + "]" * deep,
        "deep object": '{"a":' * deep + "1" + "}" * deep,
        "deep value": '{"age_years": ' + "[" * deep + "]" * deep + "}",
        "deep but parseable value": '{"age_years": ' + "[" * 900 + "]" * 900 + "}",
        "1e400": '{"age_years": 1e400, "sex": "female"}',
        "-1e400": '{"weight_kg": -1e400, "sex": "female"}',
        "NaN": '{"age_years": NaN, "sex": "female"}',
        "Infinity": '{"age_years": Infinity, "sex": "female"}',
        "huge integer": '{"age_years": 1' + "0" * 400 + ', "sex": "female"}',
        "huge fracture count": '{"fracture_sites_after_45": 1' + "0" * 400 + "}",
        "1e400 fracture count": '{"fracture_sites_after_45": 1e400}',
    }
    for label, answers in crafted.items():
        response = client.post(
            "/api/v1/screenings",
            headers=_basic("tech", TECH_PASSWORD),
            data={"answers": answers},
        )
        assert response.status_code in (400, 422), (label, response.status_code)
        assert response.get_json()["error"]["code"] == "answers.invalid", label
    assert _cases(app) == 0


# 100,000 characters: under the form-memory limit, so the check and not werkzeug refuses it
BAD_PATIENT_IDS = ("P" * 65, "P" * 100_000, "P-1\nP-2", "P\x00-1", "P\x1b[31m-1", "P\t1")


def test_the_page_stores_no_empty_screening_and_no_unusable_patient_id(admin_client, app):
    _set_language(admin_client, "en")
    token = csrf_token(admin_client, "/screenings/new")
    empty = admin_client.post("/screenings", data={"csrf_token": token, "body_part": "CHEST"})
    assert empty.status_code == 422
    assert "Choose an image or give at least one clinical answer" in empty.get_data(as_text=True)
    for patient in BAD_PATIENT_IDS:
        response = admin_client.post("/screenings", data=_form(token, local_patient_id=patient))
        assert response.status_code == 422, repr(patient)
        assert "at most 64 printable characters" in response.get_data(as_text=True)
    _set_language(admin_client, "zh_CN")
    token = csrf_token(admin_client, "/screenings/new")
    empty = admin_client.post("/screenings", data={"csrf_token": token})
    assert "请选择图像或至少填写一项临床信息" in empty.get_data(as_text=True)
    response = admin_client.post("/screenings", data=_form(token, local_patient_id="P" * 65))
    assert "本地病例号或患者ID最多64个可打印字符" in response.get_data(as_text=True)
    assert _cases(app) == 0
    ok = admin_client.post("/screenings", data=_form(token, local_patient_id="张三 " + "P" * 61))
    assert ok.status_code == 302
    assert _cases(app) == 1


def test_the_api_stores_no_empty_screening_and_no_unusable_patient_id(client, app):
    def post(data):
        return client.post(
            "/api/v1/screenings",
            headers=_basic("tech", TECH_PASSWORD),
            content_type="multipart/form-data",
            data=data,
        )

    for data in ({}, {"answers": "{}"}, {"answers": '{"age_years": ""}'}):
        response = post(data)
        assert response.status_code == 422, data
        error = response.get_json()["error"]
        assert error["code"] == "request.nothing_to_screen"
        assert error["message_zh_CN"].startswith("请选择图像")
    answers = json.dumps({"age_years": 72, "sex": "female", "weight_kg": 47})
    for patient in BAD_PATIENT_IDS:
        response = post({"answers": answers, "local_patient_id": patient})
        assert response.status_code == 422, repr(patient[:10])
        assert response.get_json()["error"]["code"] == "request.patient_id_invalid"
    megabyte = post({"answers": answers, "local_patient_id": "P" * 1_000_000})
    assert megabyte.status_code in (413, 422)
    assert _cases(app) == 0
    assert post({"answers": answers, "local_patient_id": "P" * 64}).status_code == 201
    assert _cases(app) == 1


def test_an_entered_t_score_is_shown_as_people_write_it(admin_client, app):
    scores = {-2.45: "-2.45", 1e-9: "0", -3.0: "-3"}
    for entered, shown in scores.items():
        answers = {"age_years": 70, "sex": "female", "weight_kg": 50, "entered_t_score": entered}
        response = admin_client.post(
            "/api/v1/screenings",
            headers=_basic("admin", ADMIN_PASSWORD),
            data={"answers": json.dumps(answers)},
        )
        assert response.status_code == 201, response.get_data(as_text=True)
        page = admin_client.get(f"/cases/{response.get_json()['case']}").get_data(as_text=True)
        assert f"<td>WHO T值分级</td><td>{shown}</td>" in page
        assert "e-09" not in page
    assert _cases(app) == len(scores)


def test_api_credentials_are_remembered_but_a_changed_password_or_a_lock_ends_it(client, app):
    from edgeosteo.web.auth import hash_password

    store = app.extensions["edgeosteo"].store
    tech = store.get_user("tech")
    assert client.get("/api/v1/cases/1", headers=_basic("tech", TECH_PASSWORD)).status_code == 404
    assert client.get("/api/v1/cases/1", headers=_basic("tech", "wrong")).status_code == 401
    assert store.get_user("tech").failed_logins == 1
    # remembered: the next request is not checked again, so it records no successful login
    # (a checked one would reset the failure count)
    assert client.get("/api/v1/cases/1", headers=_basic("tech", TECH_PASSWORD)).status_code == 404
    assert store.get_user("tech").failed_logins == 1
    store.set_password(tech.id, hash_password("a-new-password-123"))
    assert client.get("/api/v1/cases/1", headers=_basic("tech", TECH_PASSWORD)).status_code == 401
    new = _basic("tech", "a-new-password-123")
    assert client.get("/api/v1/cases/1", headers=new).status_code == 404
    for _ in range(5):  # wrong passwords are always checked in full, and they lock the account
        assert client.get("/api/v1/cases/1", headers=_basic("tech", "wrong")).status_code == 401
    assert client.get("/api/v1/cases/1", headers=new).status_code == 401


def test_a_disabled_account_loses_its_remembered_api_credentials(client, app):
    store = app.extensions["edgeosteo"].store
    assert client.get("/api/v1/cases/1", headers=_basic("tech", TECH_PASSWORD)).status_code == 404
    store.set_disabled(store.get_user("tech").id, True)
    assert client.get("/api/v1/cases/1", headers=_basic("tech", TECH_PASSWORD)).status_code == 401


def test_health_reports_models(client):
    health = client.get("/healthz").get_json()
    assert health["status"] == "ok"
    status = client.get("/api/v1/status", headers=_basic("admin", ADMIN_PASSWORD)).get_json()
    assert status["status"] == "ok" and status["models"]["knee-clinical"] is True


def test_every_page_string_is_translated():
    from babel.messages.extract import extract_from_dir
    from babel.messages.mofile import read_mo
    from babel.messages.pofile import read_po
    from tools_path import PO

    from edgeosteo.web import create_app  # noqa: F401 - the package must import

    with PO.open("rb") as handle:
        catalog = read_po(handle)
    with PO.with_suffix(".mo").open("rb") as handle:
        compiled = read_mo(handle)
    assert [m.id for m in catalog if m.id and not m.string] == []
    web = PO.parents[3]
    method_map = [("**.py", "python"), ("templates/**.html", "jinja2")]
    used = {
        message
        for _, _, message, _, _ in extract_from_dir(
            str(web), method_map, keywords={"_": None, "_l": None, "gettext": None}
        )
    }
    known = {m.id for m in catalog if m.id}
    assert {"Log in", "Print report", "Age"} <= used  # both extractors ran
    assert sorted(m for m in used if m not in known) == []
    # keyed by context too: the hub's "Site" (a clinic) is not the page's (a body part)
    assert {(m.id, m.context): m.string for m in catalog if m.id} == {
        (m.id, m.context): m.string for m in compiled if m.id
    }


def test_an_upload_the_quality_gates_refuse_is_stored_as_refused(admin_client, app):
    """A readable image that fails a gate (too small to assess) is a refused case, in the
    store and in the list, never a screened one."""
    small = np.random.default_rng(3).integers(0, 255, (120, 120), dtype=np.uint8)
    _, png = cv2.imencode(".png", small)
    response = _upload(admin_client, png.tobytes(), "small.png", body_part="KNEE")
    assert response.status_code == 302
    record = app.extensions["edgeosteo"].store.get_case(1)
    assert record.result["quality"]["verdict"] == "fail"
    assert record.state == "refused"


def test_saved_language_applies_at_once_and_in_the_file_that_was_read(tmp_path):
    """The admin page writes the settings file the box was started with (here one named by
    --config, not the data directory's), and the new language and thresholds apply to the
    next page and the next screening without a restart."""
    from edgeosteo.app import build
    from edgeosteo.config import load_settings
    from edgeosteo.web.auth import ensure_admin

    config = tmp_path / "site" / "box.toml"
    config.parent.mkdir()
    config.write_text('language = "zh_CN"\n[policy]\npolicy_version = "site-3"\n')
    settings = load_settings(data_dir=tmp_path / "box", config_file=config, environ={})
    assert settings.config_file == config and settings.policy.policy_version == "site-3"
    box = build(settings)
    ensure_admin(box.store, {"EDGEOSTEO_ADMIN_PASSWORD": ADMIN_PASSWORD})
    anonymous = box.web.test_client()
    assert "登录" in anonymous.get("/login").get_data(as_text=True)
    admin = box.web.test_client()
    log_in(admin)
    token = csrf_token(admin, "/settings/")
    response = admin.post(
        "/settings/",
        data={"csrf_token": token, "refer_p_osteoporosis": "0.8", "language": "en"},
    )
    assert response.status_code == 302
    saved = config.read_text()
    assert 'language = "en"' in saved and "refer_p_osteoporosis = 0.8" in saved
    assert 'policy_version = "site-3"' in saved
    assert not (tmp_path / "box" / "edgeosteo.toml").exists()
    assert box.screener.policy.refer_p_osteoporosis == 0.8
    assert box.web.extensions["edgeosteo"].settings.language == "en"
    # a visitor who chose no language now sees the box's new one
    page = box.web.test_client().get("/login").get_data(as_text=True)
    assert "Log in" in page and "登录" not in page
    # and a restart reads what was saved
    restarted = load_settings(data_dir=tmp_path / "box", config_file=config, environ={})
    assert restarted.language == "en" and restarted.policy.refer_p_osteoporosis == 0.8


def test_the_files_header_sets_the_body_part_and_a_contradiction_is_recorded(
    admin_client, app, pydicom_data_dir
):
    """A chest CR's header says CHEST: the page learns it before screening; screened at the
    page's default (the header) no knee model runs; a knee chosen against the header runs
    none until confirmed, and the case records both."""
    from conftest import upload_facts

    chest = (pydicom_data_dir / "RG1_UNCR.dcm").read_bytes()
    facts = upload_facts(admin_client, chest, "chest.dcm")
    assert facts["body_part"] == "CHEST" and facts["listed"] and facts["view"] == "PA"
    assert facts["body_part_source"] == "BodyPartExamined"
    page = admin_client.get("/screenings/new").get_data(as_text=True)
    assert '<option value="" selected>' in page  # the default is the header's body part

    assert _upload(admin_client, chest, "chest.dcm", body_part="").status_code == 302
    automatic = app.extensions["edgeosteo"].store.get_case(1).result
    assert automatic["body_part"] == "CHEST"
    assert automatic["anatomy"]["header_body_part"] == "CHEST"

    assert _upload(admin_client, chest, "chest.dcm", body_part="KNEE").status_code == 302
    against = app.extensions["edgeosteo"].store.get_case(2).result
    assert against["anatomy"]["chosen_body_part"] == "KNEE" and against["anatomy"]["conflict"]
    codes = [u["code"] for u in against["findings"]["unavailable"]]
    assert "image.wrong_body_part" in codes
    assert {r["kind"] for r in against["findings"]["results"]} <= {"clinical"}
    shown = admin_client.get("/cases/2").get_data(as_text=True)
    assert "image.wrong_body_part" in shown or "所选部位与图像自身信息" in shown

    confirmed = _upload(
        admin_client, chest, "chest.dcm", body_part="KNEE", body_part_confirmed="on"
    )
    assert confirmed.status_code == 302
    record = app.extensions["edgeosteo"].store.get_case(3).result
    assert record["anatomy"]["confirmed"] and not record["anatomy"]["conflict"]
    assert record["body_part"] == "KNEE"


class _Elements(HTMLParser):
    """Each element of a page that has an id: its tag, attributes and text."""

    def __init__(self, page: str) -> None:
        super().__init__()
        self.by_id: dict[str, dict] = {}
        self._open: list[tuple[str, dict | None]] = []
        self.feed(page)

    def handle_starttag(self, tag, attrs):
        attributes = dict(attrs)
        element = None
        if "id" in attributes:
            element = {"tag": tag, "attrs": attributes, "text": ""}
            self.by_id[attributes["id"]] = element
        if tag not in ("img", "input", "br", "meta", "link"):
            self._open.append((tag, element))

    def handle_endtag(self, tag):
        while self._open:
            if self._open.pop()[0] == tag:
                break

    def handle_data(self, data):
        for _, element in self._open:
            if element is not None:
                element["text"] += data


def _heatmap_box(tmp_path, governance=None):
    """A box whose knee image model (test-built, drawing a heatmap) is experimental, or,
    with a governance record of added value, used for the recommendation."""
    import model_factory
    from edgeosteo.app import build
    from edgeosteo.config import load_settings
    from edgeosteo.web.auth import ensure_admin

    models = model_factory.build_models_dir(tmp_path / "models", image_governance=governance)
    settings = load_settings(data_dir=tmp_path / "box", environ={}, models_dir=str(models))
    box = build(settings)
    ensure_admin(box.store, {"EDGEOSTEO_ADMIN_PASSWORD": ADMIN_PASSWORD})
    client = box.web.test_client()
    assert log_in(client).status_code == 302
    return box, client


def _screen_knee(client, pydicom_data_dir) -> str:
    # a real knee film: the knee models run only on what the knee check takes for a knee
    from conftest import shared_knee_dir

    knee = shared_knee_dir()
    if knee is None:
        pytest.skip("../shared/data/knee is not present")
    data = (knee / "images" / "N10.JPEG").read_bytes()
    response = _upload(client, data, "knee.jpg", body_part="KNEE")
    assert response.status_code == 302
    return response.headers["Location"]


def _toggle_label(page: str, input_id: str) -> str:
    start = page.index(f'id="{input_id}"')
    label = page[page.rindex("<label", 0, start) : page.index("</label>", start)]
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", label)).strip()


LEGEND = {
    "en": ("Heatmap colours", "Hot (red)", "Cold (blue, faint)"),
    "zh_CN": ("热力图颜色", "热（红色）", "冷（蓝色、较淡）"),
}
EXPERIMENTAL = {
    "en": (
        "Show the experimental model's heatmap",
        "experimental, not used for the recommendation",
    ),
    "zh_CN": ("显示实验性模型的热力图", "实验性结果，不用于推荐意见"),
}


@pytest.mark.parametrize("language", ["zh_CN", "en"])
def test_an_experimental_models_heatmap_is_hidden_behind_its_own_labelled_toggle(
    tmp_path, pydicom_data_dir, language
):
    box, client = _heatmap_box(tmp_path)
    location = _screen_knee(client, pydicom_data_dir)
    record = box.store.get_case(1)
    assert record.heatmap_file
    image = next(f for f in record.result["findings"]["results"] if f["kind"] == "image")
    assert image["has_heatmap"] and image["used_for_referral"] is False
    _set_language(client, language)
    page = client.get(location).get_data(as_text=True)
    elements = _Elements(page).by_id
    # nothing shown by default, and no ordinary toggle for a model not used for the referral
    assert "heatmap-toggle" not in elements
    heatmap = elements["heatmap"]
    assert "hidden" in heatmap["attrs"]
    assert heatmap["attrs"]["data-model"] == "test-knee-image"
    # the printed report leaves it out even when shown on screen
    assert {"experimental", "no-print"} <= set(heatmap["attrs"]["class"].split())
    toggle = elements["experimental-heatmap-toggle"]
    assert toggle["attrs"]["data-heatmap"] == "heatmap"
    label = _toggle_label(page, "experimental-heatmap-toggle")
    assert all(words in label for words in EXPERIMENTAL[language]), label
    # the model's id is for IT support (the case's technical details), not the toggle's words
    assert "test-knee-image" not in label
    legend = elements["heatmap-legend"]
    assert "hidden" in legend["attrs"] and "no-print" in legend["attrs"]["class"]
    assert all(words in legend["text"] for words in LEGEND[language]), legend["text"]
    if language == "zh_CN":
        assert "Hot" not in legend["text"] and "experimental" not in label
    assert client.get(location + "/heatmap.png").data.startswith(b"\x89PNG")


@pytest.mark.parametrize("language", ["zh_CN", "en"])
def test_a_heatmap_from_a_model_used_for_the_referral_is_behind_the_normal_toggle(
    tmp_path, pydicom_data_dir, language
):
    from test_models import WITH_VALUE

    box, client = _heatmap_box(tmp_path, governance=WITH_VALUE)
    location = _screen_knee(client, pydicom_data_dir)
    image = next(
        f for f in box.store.get_case(1).result["findings"]["results"] if f["kind"] == "image"
    )
    assert image["has_heatmap"] and image["used_for_referral"] is True
    _set_language(client, language)
    page = client.get(location).get_data(as_text=True)
    elements = _Elements(page).by_id
    assert "experimental-heatmap-toggle" not in elements
    assert elements["heatmap-toggle"]["attrs"]["data-heatmap"] == "heatmap"
    heatmap = elements["heatmap"]
    assert "hidden" in heatmap["attrs"]
    assert not {"experimental", "no-print"} & set(heatmap["attrs"]["class"].split())
    label = _toggle_label(page, "heatmap-toggle")
    assert EXPERIMENTAL[language][1] not in label
    legend = elements["heatmap-legend"]
    assert "no-print" not in legend["attrs"]["class"]
    assert all(words in legend["text"] for words in LEGEND[language])


def test_a_stored_heatmap_whose_model_the_result_does_not_name_counts_as_experimental(
    tmp_path, pydicom_data_dir
):
    from test_models import WITH_VALUE

    box, client = _heatmap_box(tmp_path, governance=WITH_VALUE)
    location = _screen_knee(client, pydicom_data_dir)
    result = box.store.get_case(1).result
    for finding in result["findings"]["results"]:
        del finding["has_heatmap"]
    with box.store.transaction() as connection:
        connection.execute(
            "UPDATE cases SET result_json=? WHERE id=1", (json.dumps(result, ensure_ascii=False),)
        )
    elements = _Elements(client.get(location).get_data(as_text=True)).by_id
    assert "heatmap-toggle" not in elements and "experimental-heatmap-toggle" in elements
    assert "no-print" in elements["heatmap"]["attrs"]["class"]


def _colour_portrait() -> bytes:
    """A colour photograph: a skin-toned face on a green background, as a phone JPEG."""
    image = np.zeros((900, 700, 3), np.uint8)
    image[:] = (60, 150, 70)  # BGR: a garden behind
    cv2.ellipse(image, (350, 420), (190, 250), 0, 0, 360, (120, 160, 225), -1)
    cv2.circle(image, (280, 360), 22, (60, 40, 30), -1)
    cv2.circle(image, (420, 360), 22, (60, 40, 30), -1)
    cv2.ellipse(image, (350, 540), (70, 25), 0, 0, 180, (70, 70, 190), -1)
    _, encoded = cv2.imencode(".jpg", image)
    return encoded.tobytes()


def _files_in(folder) -> list:
    return [p for p in folder.rglob("*") if p.is_file() and p.suffix in (".orig", ".png")]


def test_a_photo_of_a_person_leaves_no_file_and_no_row(admin_client, app):
    """Page and API: a colour photograph is refused before anything of it is written, so
    no report can ever show it."""
    store = app.extensions["edgeosteo"].store
    response = _upload(admin_client, _colour_portrait(), "me.jpg", body_part="KNEE")
    assert response.status_code == 422
    assert "quality.not_radiograph" in response.get_data(as_text=True) or (
        "不是X线" in response.get_data(as_text=True)
        or "not a radiograph" in response.get_data(as_text=True).lower()
    )
    api = admin_client.post(
        "/api/v1/screenings",
        data={
            "answers": json.dumps({"age_years": 70, "sex": "female", "weight_kg": 50}),
            "image": (io.BytesIO(_colour_portrait()), "me.jpg"),
        },
        content_type="multipart/form-data",
        headers=_basic("admin", ADMIN_PASSWORD),
    )
    assert api.status_code == 422
    assert api.get_json()["error"]["code"] == "quality.not_radiograph"
    assert store.count_cases() == 0
    assert _files_in(store.data_dir) == []
    with store.connect() as connection:
        assert connection.execute("SELECT COUNT(*) FROM outbox").fetchone()[0] == 0


@pytest.mark.parametrize(
    ("language", "tag"),
    [
        ("en", "information only: not better than age alone and OSTA"),
        ("zh_CN", "仅供参考：未优于单独年龄和OSTA"),
    ],
)
def test_the_shipped_clinical_model_is_information_and_the_guideline_decides(
    admin_client, app, pydicom_data_dir, language, tag
):
    """knee-clinical's card fails the rule (LOSO minus age below 0): a woman of 68 with OSTA
    -3 is referred by the guideline's indications, and the model's row says why it is
    information only."""
    data = (pydicom_data_dir / "RG1_UNCR.dcm").read_bytes()
    response = _upload(admin_client, data, "chest.dcm")
    assert response.status_code == 302
    result = app.extensions["edgeosteo"].store.get_case(1).result
    referral = result["referral"]
    assert referral["category"] == "refer" and referral["primary_model"] is None
    assert {"clinical.indication.age", "clinical.osta_intermediate"} <= set(referral["driving"])
    clinical = next(f for f in result["findings"]["results"] if f["kind"] == "clinical")
    assert clinical["model_id"] == "knee-clinical" and clinical["used_for_referral"] is False
    assert "decision.model_below_baselines" in {n["code"] for n in referral["notes"]}
    _set_language(admin_client, language)
    page = admin_client.get(response.headers["Location"]).get_data(as_text=True)
    assert tag in page


def test_an_unknown_time_zone_is_refused_with_its_setting(tmp_path):
    from edgeosteo.config import load_settings as load

    with pytest.raises(ConfigError) as refused:
        load(data_dir=tmp_path, environ={}, web={"time_zone": "Asia/Beijing"})
    assert "web.time_zone" in str(refused.value.detail)
    assert load(data_dir=tmp_path, environ={}, web={"time_zone": "Asia/Shanghai"}).web.time_zone


def test_a_local_day_is_the_utc_span_it_covers():
    from zoneinfo import ZoneInfo

    from edgeosteo.web.clock import day_bounds, local_text, zone_label

    beijing = ZoneInfo("Asia/Shanghai")
    assert day_bounds("2026-12-03", beijing) == (
        "2026-12-02T16:00:00+00:00",
        "2026-12-03T16:00:00+00:00",
    )
    assert local_text("2026-12-03T03:10:00+00:00", beijing) == "2026-12-03 11:10"
    assert zone_label("2026-12-03T03:10:00+00:00", beijing) == "UTC+8"
    assert zone_label("2026-12-03T03:10:00+00:00", ZoneInfo("Asia/Kolkata")) == "UTC+5:30"
