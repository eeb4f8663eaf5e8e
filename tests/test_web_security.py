"""The page's defences: where a login may send the browser, sessions that end, user names
that cannot be probed, security headers, and what /healthz tells a stranger."""

from __future__ import annotations

import pytest

from conftest import ADMIN_PASSWORD, csrf_token

HOSTILE_NEXT = [
    "//evil.example",
    "/\t/evil.example",
    "/%09/evil.example",  # the query string's %09 arrives as a tab
    "/\\evil.example",
    "\\\\evil.example",
    "https://evil.example/",
    "HTTPS:evil.example",
    "javascript:alert(1)",
    " //evil.example",
    "/%0d%0aSet-Cookie:x=1",
    "/\r\n/evil.example",
    "/\x00/evil.example",
    "evil.example",
    "/\u200b/evil.example",
    "/%2F/evil.example",
    "/%5Cevil.example",
]


def _log_in(client, next_: str | None):
    token = csrf_token(client)
    query = {} if next_ is None else {"next": next_}
    return client.post(
        "/login",
        query_string=query,
        data={"username": "admin", "password": ADMIN_PASSWORD, "csrf_token": token},
    )


@pytest.mark.parametrize("target", HOSTILE_NEXT)
def test_login_never_redirects_off_site(client, target):
    response = _log_in(client, target)
    assert response.status_code == 302
    assert response.headers["Location"] == "/screenings/new"


def test_the_raw_tab_payload_goes_to_the_default_page(client):
    token = csrf_token(client)
    response = client.post(
        "/login?next=/%09/evil.example",
        data={"username": "admin", "password": ADMIN_PASSWORD, "csrf_token": token},
    )
    assert response.headers["Location"] == "/screenings/new"


@pytest.mark.parametrize("target", ["/cases", "/cases/3?x=1#top", "/settings/"])
def test_login_follows_a_same_site_path(client, target):
    assert _log_in(client, target).headers["Location"] == target


@pytest.mark.parametrize("target", HOSTILE_NEXT)
def test_safe_next_refuses_hostile_targets(target):
    from edgeosteo.web.auth import safe_next

    assert safe_next(target, "/home") == "/home"


def test_language_switch_never_redirects_off_site(client):
    token = csrf_token(client)
    response = client.post(
        "/language", data={"language": "en", "next": "/\\evil.example", "csrf_token": token}
    )
    assert response.headers["Location"] == "/"


def _session_cookie(client) -> str:
    cookie = client.get_cookie("session")
    assert cookie is not None
    return cookie.value


def _replayed(app, cookie: str):
    stranger = app.test_client()
    stranger.set_cookie("session", cookie)
    return stranger.get("/cases")


def test_a_saved_session_cookie_is_dead_after_logout(app, admin_client):
    saved = _session_cookie(admin_client)
    assert _replayed(app, saved).status_code == 200
    token = csrf_token(admin_client, "/cases")
    assert admin_client.post("/logout", data={"csrf_token": token}).status_code == 302
    replay = _replayed(app, saved)
    assert replay.status_code == 302 and replay.headers["Location"].startswith("/login")


def test_a_password_change_ends_the_users_sessions(app, box, admin_client):
    from edgeosteo.web.auth import hash_password

    saved = _session_cookie(admin_client)
    admin = box.store.get_user("admin")
    box.store.set_password(admin.id, hash_password("a-new-password-123"))
    assert _replayed(app, saved).status_code == 302
    assert admin_client.get("/cases").status_code == 302
    assert _log_in(admin_client, None).status_code == 401  # the old password is gone


def test_end_sessions_ends_them_and_a_new_login_works(app, box, admin_client):
    saved = _session_cookie(admin_client)
    box.store.end_sessions(box.store.get_user("admin").id)
    assert _replayed(app, saved).status_code == 302
    assert _log_in(admin_client, None).status_code == 302
    assert admin_client.get("/cases").status_code == 200


def _login_answer(app, username: str, password: str):
    """Status and body of a fresh browser's failed login, the CSRF token blanked."""
    import re

    from conftest import log_in

    response = log_in(app.test_client(), username, password)
    body = re.sub(r'name="csrf_token" value="[^"]*"', "", response.get_data(as_text=True))
    return response.status_code, body


@pytest.fixture
def hash_checks(monkeypatch):
    """How often the login verifies a password hash, and how often it makes one."""
    from edgeosteo.web import auth

    counts = {"check": 0, "generate": 0}
    check, generate = auth.check_password_hash, auth.generate_password_hash

    def counted_check(*args, **kwargs):
        counts["check"] += 1
        return check(*args, **kwargs)

    def counted_generate(*args, **kwargs):
        counts["generate"] += 1
        return generate(*args, **kwargs)

    monkeypatch.setattr(auth, "check_password_hash", counted_check)
    monkeypatch.setattr(auth, "generate_password_hash", counted_generate)
    return counts


def test_unknown_user_and_wrong_password_answer_the_same(app):
    assert _login_answer(app, "nobody", "wrong") == _login_answer(app, "tech", "wrong")
    assert _login_answer(app, "nobody", "wrong")[0] == 401


def test_unknown_user_and_wrong_password_cost_one_hash_check_each(app, hash_checks):
    _login_answer(app, "tech", "wrong")
    assert hash_checks == {"check": 1, "generate": 0}
    _login_answer(app, "nobody", "wrong")
    assert hash_checks == {"check": 2, "generate": 0}


def test_an_unknown_user_name_locks_like_a_real_one(app, box):
    attempts = box.settings.web.login_attempts_before_lock
    for name in ("tech", "nobody"):
        for _ in range(attempts):
            assert _login_answer(app, name, "wrong")[0] == 401
    real, unknown = _login_answer(app, "tech", "wrong"), _login_answer(app, "nobody", "wrong")
    assert real == unknown
    locked_message = ("Too many failed attempts", "登录失败次数过多")
    assert any(message in unknown[1] for message in locked_message)
    other = _login_answer(app, "somebody-else", "wrong")[1]
    assert not any(message in other for message in locked_message)


def test_a_disabled_account_answers_like_an_unknown_name(app, box, hash_checks):
    from conftest import TECH_PASSWORD

    box.store.set_disabled(box.store.get_user("tech").id, True)
    disabled = _login_answer(app, "tech", TECH_PASSWORD)  # the right password
    assert disabled == _login_answer(app, "nobody", TECH_PASSWORD)
    assert disabled[0] == 401 and hash_checks == {"check": 2, "generate": 0}


def test_a_generated_admin_password_must_be_changed_and_a_given_one_need_not(tmp_path):
    from edgeosteo.store import CaseStore
    from edgeosteo.web.auth import ensure_admin

    generated = CaseStore(tmp_path / "generated")
    assert ensure_admin(generated, {})
    assert generated.get_user("admin").must_change_password is True
    given = CaseStore(tmp_path / "given")
    assert ensure_admin(given, {"EDGEOSTEO_ADMIN_PASSWORD": "chosen by the installer"}) is None
    assert given.get_user("admin").must_change_password is False


def _assert_security_headers(response) -> None:
    policy = response.headers["Content-Security-Policy"]
    directives = dict(part.strip().split(" ", 1) for part in policy.split(";"))
    assert directives["default-src"] == "'self'"
    assert directives["script-src"] == "'self'" and "unsafe" not in policy
    assert directives["img-src"] == "'self' data: blob:"
    assert directives["frame-ancestors"] == "'none'"
    assert response.headers["X-Frame-Options"] == "DENY"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Referrer-Policy"] == "no-referrer"


def test_security_headers_on_pages_api_errors_and_static_files(client, admin_client):
    answers = {
        "login page": client.get("/login"),
        "a page": admin_client.get("/screenings/new"),
        "a redirect": admin_client.get("/"),
        "the API": client.get("/api/v1/cases/1"),
        "the API document": client.get("/api/v1/openapi.json"),
        "an error page": admin_client.get("/cases/999999"),
        "a missing page": client.get("/no-such-page"),
        "a static file": client.get("/static/app.js"),
        "health": client.get("/healthz"),
    }
    assert answers["an error page"].status_code == 404
    assert answers["a static file"].status_code == 200
    assert answers["the API"].status_code == 401
    for name, response in answers.items():
        try:
            _assert_security_headers(response)
        except (AssertionError, KeyError) as exc:
            raise AssertionError(f"{name}: {exc!r}") from exc
        response.close()


def test_templates_hold_no_inline_script_style_or_handlers():
    import re
    from pathlib import Path

    import edgeosteo.web

    templates = Path(edgeosteo.web.__file__).parent / "templates"
    inline = re.compile(
        r"<script(?![^>]*\bsrc=)|<style|\sstyle=|\son[a-z]+\s*=|javascript:", re.IGNORECASE
    )
    for template in templates.glob("*.html"):
        found = inline.findall(template.read_text(encoding="utf-8"))
        assert not found, f"{template.name}: {found}"


def test_healthz_tells_a_stranger_only_ok_and_the_version(client):
    health = client.get("/healthz")
    assert health.status_code == 200
    assert set(health.get_json()) == {"status", "version"}
    assert health.get_json()["status"] == "ok"


def test_the_box_status_needs_credentials(client, box):
    import base64

    assert client.get("/api/v1/status").status_code == 401
    good = base64.b64encode(f"admin:{ADMIN_PASSWORD}".encode()).decode()
    status = client.get("/api/v1/status", headers={"Authorization": f"Basic {good}"})
    assert status.status_code == 200
    body = status.get_json()
    assert body["cases"] == box.store.count_cases() and body["models"]["knee-clinical"] is True


def test_a_one_time_password_must_be_changed_before_any_page_and_then_works(app, client):
    from conftest import log_in
    from edgeosteo.web.auth import hash_password

    store = app.extensions["edgeosteo"].store
    store.create_user("nurse", "technician", hash_password("one-time-1"))
    store.set_must_change_password(store.get_user("nurse").id, True)
    assert log_in(client, "nurse", "one-time-1").status_code == 302
    for path in ("/screenings/new", "/cases", "/follow-up"):
        response = client.get(path)
        assert response.status_code == 302, path
        assert response.headers["Location"].endswith("/account/password"), path
    page = client.get("/account/password").get_data(as_text=True)
    assert 'id="change-due"' in page
    token = csrf_token(client)

    def change(current: str, new: str, repeated: str):
        return client.post(
            "/account/password",
            data={"current": current, "new": new, "repeated": repeated, "csrf_token": token},
        )

    for current, new, repeated, words in (
        ("wrong", "a-good-password", "a-good-password", "当前密码不正确"),
        ("one-time-1", "short", "short", "至少需要 8 个字符"),
        ("one-time-1", "a-good-password", "another-password", "不一致"),
        ("one-time-1", "one-time-1", "one-time-1", "不能与旧密码"),
    ):
        response = change(current, new, repeated)
        assert response.status_code == 422 and words in response.get_data(as_text=True)
        assert store.get_user("nurse").must_change_password is True
    assert client.get("/cases").status_code == 302  # still due
    response = change("one-time-1", "my-own-password", "my-own-password")
    assert response.status_code == 302
    assert store.get_user("nurse").must_change_password is False
    assert client.get("/cases").status_code == 200  # this session carries on
    other = app.test_client()
    assert log_in(other, "nurse", "one-time-1").status_code == 401
    assert log_in(other, "nurse", "my-own-password").status_code == 302
    assert other.get("/cases").status_code == 200
