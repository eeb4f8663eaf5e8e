"""An admin's account actions on the users section of the settings page, in zh_CN on a
desktop (1366 px) and a phone (390 px): a reset shows a one-time password once and the user
must change it at the next login; a disabled user's login is refused exactly as an unknown
name's; the last admin cannot demote or disable themselves, and is told why. Real headless
Chromium against a real waitress server; screenshots of the users section and the reset."""

from __future__ import annotations

import pytest
from browser_support import DESKTOP, PHONE, chinese_page_problems, log_in, watched_page
from test_browser import ARTIFACTS, browser, live_server  # noqa: F401

from conftest import ADMIN_PASSWORD

# data on the settings page, not its words: user names, the hub address example
DATA = frozenset({"admin", "https", "hub.example.cn/fhir", "UTC"})


def _row(page, name: str) -> str:
    return f"table.users tr[data-user='{name}']"


def _flash(page) -> str:
    # in the users section, where the answer lands (on a phone, the top is out of sight)
    return " ".join(page.locator("#users p.flash").all_inner_texts())


def _login_error(browser, live_server, name: str, password: str) -> str:  # noqa: F811
    visitor = watched_page(browser, live_server, DESKTOP)
    log_in(visitor.page, name, password)
    assert visitor.page.url.split("?")[0].endswith("/login"), visitor.page.url
    error = visitor.page.inner_text("p.error[role=alert]")
    assert visitor.close() == []
    return error


@pytest.mark.parametrize("options", [DESKTOP, PHONE], ids=["desktop", "phone"])
def test_reset_disable_and_the_last_admin_on_the_users_page(browser, live_server, options):  # noqa: F811
    width = options["viewport"]["width"]
    name = f"wu{width}"
    allowed = DATA | {name}
    ARTIFACTS.mkdir(exist_ok=True)
    admin = watched_page(browser, live_server, options)
    page = admin.page
    log_in(page, "admin", ADMIN_PASSWORD)
    page.goto("/settings/")
    form = "form[action$='/settings/users']"
    page.fill(f"{form} input[name=username]", name)
    page.fill(f"{form} input[name=password]", "given-at-the-desk")
    page.click(f"{form} button[type=submit]")
    page.wait_for_selector(_row(page, name))

    # reset: a one-time password, shown once
    page.click(f"{_row(page, name)} button[data-action=reset]")
    page.wait_for_selector("#one-time-password")
    one_time = page.inner_text("#one-time-password").strip()
    assert len(one_time) == 10
    assert f"已为 {name} 生成新的一次性密码" in _flash(page)
    assert "不会再次显示" in page.inner_text("#one-time")
    assert chinese_page_problems(page, allowed | {one_time}) == []  # the password is data
    page.locator("#users").screenshot(path=str(ARTIFACTS / f"account-reset-zh_CN-{width}.png"))
    page.goto("/settings/")
    assert page.locator("#one-time-password").count() == 0 and one_time not in page.content()
    assert "须修改密码" in page.inner_text(f"{_row(page, name)} .user-state")

    # the user logs in with it and must choose their own password first
    user = watched_page(browser, live_server, options)
    log_in(user.page, name, one_time)
    assert user.page.url.endswith("/account/password")
    assert "一次性密码" in user.page.inner_text("#change-due")
    user.page.goto("/cases")
    assert user.page.url.endswith("/account/password")
    user.page.fill("#p-current", one_time)
    user.page.fill("#p-new", "wu-own-password")
    user.page.fill("#p-repeated", "wu-own-password")
    user.page.click("#password-form button[type=submit]")
    user.page.wait_for_url("**/screenings/new")
    assert _login_error(browser, live_server, name, "given-at-the-desk")  # replaced by the reset

    # disable: their open session ends, and their login answers as an unknown name's does
    page.goto("/settings/")
    page.click(f"{_row(page, name)} button[data-action=disable]")
    page.wait_for_selector(f"{_row(page, name)} [data-state=disabled]")
    assert f"已停用 {name}" in _flash(page)
    user.page.goto("/cases")
    assert "/login" in user.page.url
    assert user.close() == []
    refused = _login_error(browser, live_server, name, "wu-own-password")
    assert refused == _login_error(browser, live_server, f"nobody{width}", "wu-own-password")
    assert refused == "用户名或密码错误。"

    # the last admin: demoting or disabling themselves is refused, with the reason
    own = _row(page, "admin")
    page.click(f"{own} button[data-action=role]")
    page.wait_for_load_state()
    assert "未执行：admin 是最后一个可用的管理员" in _flash(page)
    assert page.get_attribute(f"{own} td[data-role]", "data-role") == "admin"
    page.click(f"{own} button[data-action=disable]")
    page.wait_for_load_state()
    assert "最后一个可用的管理员" in _flash(page)
    assert page.locator(f"{own} [data-state=enabled]").count() == 1
    assert chinese_page_problems(page, allowed) == []
    page.locator("#users").screenshot(path=str(ARTIFACTS / f"account-users-zh_CN-{width}.png"))

    # delete: a confirm step, then gone
    page.click(f"{_row(page, name)} a[data-action=delete]")
    page.wait_for_selector("#confirm-delete")
    assert f"删除用户 {name}？" in page.inner_text("#confirm-delete")
    assert chinese_page_problems(page, allowed) == []
    page.click("#delete-confirm")
    page.wait_for_selector("#users")
    assert f"已删除 {name}" in _flash(page) and page.locator(_row(page, name)).count() == 0
    audit = page.inner_text("#account-audit")
    for action in ("添加了用户", "重置了密码", "修改了自己的密码", "停用了账户", "删除了用户"):
        assert action in audit, action
    assert admin.close() == []
