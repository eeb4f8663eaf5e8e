"""An admin's actions on users (issue 19, item 11): reset to a one-time password shown once,
unlock, disable and enable, delete after a confirm step, and change the role; never leaving
the box without an enabled admin, and never locking the admin out of their own account.
Through the real Flask app and its SQLite store, with CSRF tokens as the page sends them."""

from __future__ import annotations

import re
import sqlite3

import pytest

from conftest import ADMIN_PASSWORD, TECH_PASSWORD, csrf_token, log_in
from edgeosteo.store.users import LastAdmin
from edgeosteo.web.admin import ONE_TIME_ALPHABET, ONE_TIME_CHARS

ONE_TIME = re.compile(r'id="one-time-password">([^<]+)<')


def _act(client, user_id: int, action: str, **form):
    token = csrf_token(client, "/settings/")
    return client.post(f"/settings/users/{user_id}/{action}", data={"csrf_token": token, **form})


def _flash(client) -> str:
    page = client.get("/settings/").get_data(as_text=True)
    return " ".join(re.findall(r'<p class="flash [a-z ]+"[^>]*>([^<]*)</p>', page))


def _alert(response) -> list[str]:
    return re.findall(r'role="alert">([^<]*)<', response.get_data(as_text=True))


@pytest.fixture
def zh_admin(admin_client):
    token = csrf_token(admin_client, "/settings/")
    admin_client.post("/language", data={"language": "zh_CN", "csrf_token": token})
    return admin_client


def test_a_reset_shows_a_one_time_password_once_and_it_must_be_changed(app, box, zh_admin):
    tech = box.store.get_user("tech")
    session = app.test_client()
    assert log_in(session, "tech", TECH_PASSWORD).status_code == 302
    assert session.get("/cases").status_code == 200
    answer = _act(zh_admin, tech.id, "reset")
    assert answer.status_code == 200 and answer.headers["Cache-Control"] == "no-store"
    page = answer.get_data(as_text=True)
    password = ONE_TIME.search(page).group(1)
    assert len(password) == ONE_TIME_CHARS and set(password) <= set(ONE_TIME_ALPHABET)
    assert "已为 tech 生成新的一次性密码" in page
    # shown once: not on the next page, not in the session cookie
    assert password not in zh_admin.get("/settings/").get_data(as_text=True)
    assert all(password not in c.value for c in zh_admin._cookies.values())
    assert box.store.get_user("tech").must_change_password is True
    assert session.get("/cases").status_code == 302  # their open session has ended
    fresh = app.test_client()
    assert log_in(fresh, "tech", TECH_PASSWORD).status_code == 401
    assert log_in(fresh, "tech", password).status_code == 302
    assert fresh.get("/cases").headers["Location"].endswith("/account/password")


def test_a_reset_also_clears_a_lockout_and_unlock_clears_one(app, box, zh_admin):
    attempts = box.settings.web.login_attempts_before_lock
    tech = box.store.get_user("tech")
    other = app.test_client()
    for _ in range(attempts):
        log_in(other, "tech", "wrong")
    locked = log_in(other, "tech", TECH_PASSWORD)
    assert locked.status_code == 401
    # how long, and who can help; a name with no account is told the same (test_web_security)
    minutes = box.settings.web.login_lock_seconds // 60
    assert f"请等待 {minutes} 分钟后再试，或请管理员解除锁定" in _alert(locked)[0]
    page = zh_admin.get("/settings/").get_data(as_text=True)
    assert 'data-state="locked"' in page and f"/settings/users/{tech.id}/unlock" in page
    assert _act(zh_admin, tech.id, "unlock").status_code == 302
    assert "已为 tech 解除锁定" in _flash(zh_admin)
    assert log_in(other, "tech", TECH_PASSWORD).status_code == 302
    for _ in range(attempts):
        log_in(app.test_client(), "tech", "wrong")
    password = ONE_TIME.search(_act(zh_admin, tech.id, "reset").get_data(as_text=True))[1]
    assert log_in(app.test_client(), "tech", password).status_code == 302


def test_disable_refuses_the_login_like_an_unknown_name_and_enable_restores_it(app, box, zh_admin):
    tech = box.store.get_user("tech")
    session = app.test_client()
    assert log_in(session, "tech", TECH_PASSWORD).status_code == 302
    assert _act(zh_admin, tech.id, "disable").status_code == 302
    assert "已停用 tech" in _flash(zh_admin)
    assert session.get("/cases").status_code == 302
    disabled = log_in(app.test_client(), "tech", TECH_PASSWORD)
    unknown = log_in(app.test_client(), "nobody", TECH_PASSWORD)
    assert disabled.status_code == unknown.status_code == 401
    assert _alert(disabled) == _alert(unknown) and _alert(disabled)
    assert _act(zh_admin, tech.id, "enable").status_code == 302
    assert "已启用 tech" in _flash(zh_admin)
    assert log_in(app.test_client(), "tech", TECH_PASSWORD).status_code == 302


def test_delete_asks_first_then_deletes(app, box, zh_admin):
    tech = box.store.get_user("tech")
    confirm = zh_admin.get(f"/settings/users/{tech.id}/delete").get_data(as_text=True)
    assert "删除用户 tech？" in confirm and "无法撤销" in confirm
    assert box.store.get_user("tech") is not None  # asking deletes nothing
    assert _act(zh_admin, tech.id, "delete").status_code == 302
    assert box.store.get_user("tech") is None
    assert "已删除 tech" in _flash(zh_admin)
    assert _act(zh_admin, tech.id, "delete").status_code == 302
    assert "该用户已不存在" in _flash(zh_admin)


def test_the_role_changes_and_the_last_admin_is_never_demoted_disabled_or_deleted(
    app, box, zh_admin
):
    store = box.store
    tech, admin = store.get_user("tech"), store.get_user("admin")
    assert _act(zh_admin, tech.id, "role", role="admin").status_code == 302
    assert store.get_user("tech").is_admin and "tech 现在是管理员" in _flash(zh_admin)
    assert _act(zh_admin, tech.id, "role", role="technician").status_code == 302
    assert not store.get_user("tech").is_admin
    assert _act(zh_admin, tech.id, "role", role="root").status_code == 302
    assert "请选择管理员或技师" in _flash(zh_admin) and not store.get_user("tech").is_admin
    # the last enabled admin, on their own account: refused, and told why
    for action, form in (("disable", {}), ("delete", {}), ("role", {"role": "technician"})):
        assert _act(zh_admin, admin.id, action, **form).status_code == 302
        assert "未执行：admin 是最后一个可用的管理员" in _flash(zh_admin), action
    asked = zh_admin.get(f"/settings/users/{admin.id}/delete")  # the confirm step refuses too
    assert "最后一个可用的管理员" in _flash_after(asked, zh_admin)
    assert store.get_user("admin").is_admin and not store.get_user("admin").disabled
    # nor by another admin's hand: the store refuses, in the same transaction as the write
    for act in (
        lambda: store.set_role(admin.id, "technician"),
        lambda: store.set_disabled(admin.id, True),
        lambda: store.delete_user(admin.id),
    ):
        with pytest.raises(LastAdmin):
            act()
    assert store.get_user("admin").is_admin
    # with a second admin, their own account is still refused: they would lock themselves out
    assert _act(zh_admin, tech.id, "role", role="admin").status_code == 302
    for action, form in (
        ("disable", {}),
        ("delete", {}),
        ("role", {"role": "technician"}),
        ("reset", {}),
    ):
        assert _act(zh_admin, admin.id, action, **form).status_code == 302
        assert "不能在这里停用、删除、降级自己的账户" in _flash(zh_admin), action
    assert store.get_user("admin").is_admin and not store.get_user("admin").disabled
    # and the other admin may go, the box keeping one
    assert _act(zh_admin, tech.id, "disable").status_code == 302
    assert store.get_user("tech").disabled
    assert _act(zh_admin, tech.id, "role", role="technician").status_code == 302
    assert not store.get_user("tech").is_admin


def _flash_after(response, client) -> str:
    assert response.status_code == 302
    return _flash(client)


def test_a_technician_reaches_no_account_action(tech_client, box):
    admin = box.store.get_user("admin")
    for action in ("reset", "unlock", "disable", "enable", "delete", "role"):
        token = csrf_token(tech_client, "/cases")
        answer = tech_client.post(
            f"/settings/users/{admin.id}/{action}", data={"csrf_token": token, "role": "x"}
        )
        assert answer.status_code == 403, action
    assert box.store.get_user("admin").is_admin and not box.store.get_user("admin").disabled


def test_an_action_without_the_csrf_token_is_refused(admin_client, box):
    tech = box.store.get_user("tech")
    assert admin_client.post(f"/settings/users/{tech.id}/disable").status_code == 400
    assert not box.store.get_user("tech").disabled
    assert ADMIN_PASSWORD  # the admin's own password is never needed for these


def _basic(name: str, password: str) -> dict:
    import base64

    return {"Authorization": "Basic " + base64.b64encode(f"{name}:{password}".encode()).decode()}


def test_the_api_refuses_a_password_to_change_and_a_disabled_account(app, box, zh_admin):
    api = app.test_client()
    tech = box.store.get_user("tech")
    assert api.get("/api/v1/status", headers=_basic("tech", TECH_PASSWORD)).status_code == 200
    password = ONE_TIME.search(_act(zh_admin, tech.id, "reset").get_data(as_text=True))[1]
    for path in ("/api/v1/status", "/api/v1/cases/1"):
        answer = api.get(path, headers=_basic("tech", password))
        assert answer.status_code == 403, path
        error = answer.get_json()["error"]
        assert error["code"] == "account.password_change_due"
        assert "一次性密码" in error["message_zh_CN"] and "one-time" in error["message_en"]
    screening = api.post("/api/v1/screenings", headers=_basic("tech", password), data={})
    assert screening.status_code == 403 and box.store.count_cases() == 0
    # changed on the page: the API answers to the new password
    page = app.test_client()
    assert log_in(page, "tech", password).status_code == 302
    token = csrf_token(page, "/account/password")
    form = {"current": password, "new": "tech-own-pass", "repeated": "tech-own-pass"}
    assert page.post("/account/password", data={**form, "csrf_token": token}).status_code == 302
    assert api.get("/api/v1/status", headers=_basic("tech", "tech-own-pass")).status_code == 200
    # disabled: the API answers as it does to a name it does not know
    assert _act(zh_admin, tech.id, "disable").status_code == 302
    disabled = api.get("/api/v1/status", headers=_basic("tech", "tech-own-pass"))
    unknown = api.get("/api/v1/status", headers=_basic("nobody", "tech-own-pass"))
    assert disabled.status_code == unknown.status_code == 401
    assert disabled.get_json() == unknown.get_json()


def test_every_account_action_is_audited_without_a_password(app, box, zh_admin):
    store = box.store
    token = csrf_token(zh_admin, "/settings/")
    form = {"username": "zhou", "password": "given-by-admin", "role": "technician"}
    assert zh_admin.post("/settings/users", data={**form, "csrf_token": token}).status_code == 302
    zhou = store.get_user("zhou")
    password = ONE_TIME.search(_act(zh_admin, zhou.id, "reset").get_data(as_text=True))[1]
    for _ in range(box.settings.web.login_attempts_before_lock):
        log_in(app.test_client(), "zhou", "wrong")
    for action, form in (
        ("unlock", {}),
        ("disable", {}),
        ("enable", {}),
        ("role", {"role": "admin"}),
        ("role", {"role": "technician"}),
    ):
        assert _act(zh_admin, zhou.id, action, **form).status_code == 302
    own = app.test_client()
    assert log_in(own, "zhou", password).status_code == 302
    token = csrf_token(own, "/account/password")
    change = {"current": password, "new": "zhou-own-pass", "repeated": "zhou-own-pass"}
    assert own.post("/account/password", data={**change, "csrf_token": token}).status_code == 302
    assert _act(zh_admin, store.get_user("admin").id, "disable").status_code == 302  # refused
    assert _act(zh_admin, zhou.id, "delete").status_code == 302
    entries = store.account_audit()
    assert [(e.actor, e.action, e.target, e.role) for e in reversed(entries)] == [
        ("admin", "create", "zhou", "technician"),
        ("admin", "reset_password", "zhou", None),
        ("admin", "unlock", "zhou", None),
        ("admin", "disable", "zhou", None),
        ("admin", "enable", "zhou", None),
        ("admin", "role_change", "zhou", "admin"),
        ("admin", "role_change", "zhou", "technician"),
        ("zhou", "password_change", "zhou", None),
        ("admin", "delete", "zhou", None),
    ]  # a refused action is not an entry
    assert all(e.at.endswith("+00:00") for e in entries)  # stored in UTC
    # no password in the audit, in the clear or hashed
    with sqlite3.connect(store.path) as connection:
        rows = [str(row) for row in connection.execute("SELECT * FROM account_audit")]
    for secret in ("given-by-admin", password, "zhou-own-pass", "scrypt:"):
        assert not any(secret in row for row in rows), secret
    page = zh_admin.get("/settings/").get_data(as_text=True)
    audit = page.split('id="account-audit"')[1].split("</table>")[0]
    assert audit.count("<tr data-action=") == len(entries)
    assert "修改了自己的密码" in audit and "更改了角色（管理员）" in audit and "删除了用户" in audit


def test_the_page_lists_the_last_50_in_the_box_time_zone(tmp_path):
    from edgeosteo.app import build
    from edgeosteo.config import load_settings
    from edgeosteo.web.auth import ensure_admin

    settings = load_settings(
        data_dir=tmp_path / "box", environ={}, web={"time_zone": "Asia/Shanghai"}
    )
    box = build(settings)
    ensure_admin(box.store, {"EDGEOSTEO_ADMIN_PASSWORD": ADMIN_PASSWORD})
    admin_id = box.store.get_user("admin").id
    for _ in range(60):
        box.store.unlock_user(admin_id, actor="admin")
    with sqlite3.connect(box.store.path) as connection:
        connection.execute("UPDATE account_audit SET at='2026-12-03T03:10:05+00:00'")
    client = box.web.test_client()
    assert log_in(client).status_code == 302
    page = client.get("/settings/").get_data(as_text=True)
    audit = page.split('id="account-audit"')[1].split("</table>")[0]
    assert audit.count("<tr data-action=") == 50
    assert "2026-12-03 11:10:05" in audit and "03:10" not in audit
    assert "时间为 UTC+8" in page or "times in UTC+8" in page


def test_a_database_before_the_audit_migrates_and_keeps_its_users(tmp_path):
    from edgeosteo.store import DATABASE_NAME, MIGRATIONS, CaseStore

    data = tmp_path / "old"
    data.mkdir()
    with sqlite3.connect(data / DATABASE_NAME) as connection:
        for number, script in enumerate(MIGRATIONS[:8], start=1):
            connection.executescript(script + f"PRAGMA user_version={number};")
        connection.execute(
            "INSERT INTO users (username, role, password_hash, created_at) "
            "VALUES ('li', 'technician', 'x', '2026-01-05T08:00:00+00:00')"
        )
    store = CaseStore(data)
    assert store.schema_version == len(MIGRATIONS) >= 9
    assert store.get_user("li") is not None and store.account_audit() == []


def test_a_deleted_users_session_never_becomes_the_next_users(app, box, zh_admin):
    """SQLite gives a new row the id a deleted last row had: a cookie of the deleted account
    must not log its browser in as whoever is added next."""
    store = box.store
    tech = store.get_user("tech")
    kiosk = app.test_client()
    assert log_in(kiosk, "tech", TECH_PASSWORD).status_code == 302
    assert _act(zh_admin, tech.id, "delete").status_code == 302
    token = csrf_token(zh_admin, "/settings/")
    form = {"username": "wang", "password": "given-by-admin", "role": "admin"}
    assert zh_admin.post("/settings/users", data={**form, "csrf_token": token}).status_code == 302
    assert store.get_user("wang").id == tech.id  # the id is given again
    answer = kiosk.get("/settings/")
    assert answer.status_code == 302 and "/login" in answer.headers["Location"]
