"""The page as a technician and an admin in a rural hospital use it (issue 19): the admin
settings in the page's language with units and ranges, no English on Chinese pages, the
page's own file chooser and messages, allowed ranges said, a 360 px phone, and the list
searched by name, ID and accession. Real headless Chromium against a real waitress server."""

from __future__ import annotations

import pytest
from latin_scan import english_on_page
from test_browser import ARTIFACTS, _choose_language, browser, live_server  # noqa: F401

from conftest import ADMIN_PASSWORD

DESKTOP = {"viewport": {"width": 1366, "height": 900}}
PHONE = {"viewport": {"width": 390, "height": 844}, "has_touch": True, "is_mobile": True}
SMALL_PHONE = {"viewport": {"width": 360, "height": 740}, "has_touch": True, "is_mobile": True}
# data on the page, not words of it: the user's name, and the example address in a hint
USER_DATA = frozenset({"admin", "tech"})


def _open(browser, url: str, options: dict, username: str = "admin", password: str = ""):  # noqa: F811
    context = browser.new_context(base_url=url, **options)
    page = context.new_page()
    problems: list[str] = []
    page.on("pageerror", lambda error: problems.append(f"script error: {error}"))
    page.on(
        "console",
        lambda m: problems.append(m.text) if "Content Security Policy" in m.text else None,
    )
    page.goto("/login")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", password or ADMIN_PASSWORD)
    page.click("button.primary")
    page.wait_for_url("**/screenings/new")
    return context, page, problems


@pytest.fixture
def admin_page(browser, live_server):  # noqa: F811
    context, page, problems = _open(browser, live_server, DESKTOP)
    yield page
    context.close()
    assert not problems, problems


def test_settings_in_chinese_with_units_ranges_and_errors_that_keep_the_input(admin_page):
    page = admin_page
    _choose_language(page, "zh_CN")
    page.goto("/settings/")
    text = page.inner_text("main")
    for raw in ("refer_p_osteoporosis", "dxa_locally_available", "rescreen_interval_months"):
        assert raw not in text
    assert "骨质疏松概率达到此值即建议转诊DXA" in text
    assert "允许范围：1 到 120 个月" in text and "大于 0、小于 1 的小数" in text
    assert "本院有DXA骨密度仪" in text
    assert english_on_page(page, USER_DATA | {"https", "hub.example.cn/fhir"}) == []
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "settings-zh_CN.png"), full_page=True)

    before = page.input_value("#s-refer_p_osteoporosis")
    page.fill("#s-refer_p_osteoporosis", "1.5")
    page.fill("#s-rescreen_interval_months", "750")
    page.fill("#s-sync_endpoint", "区域中心")
    with page.expect_response(lambda r: r.request.method == "POST") as answer:
        page.click("form.settings button.primary")
    assert answer.value.status == 422
    text = page.inner_text("main")
    assert "未保存：请更正标红的项目。" in text and "已保存" not in text
    assert "请填写概率：大于 0、小于 1 的小数（0.5 即 50%）。" in text
    months = page.inner_text("#setting-rescreen_interval_months .problem")
    assert "允许范围：1 到 120 个月。" in months
    assert "以 https:// 开头" in page.inner_text("#setting-sync_endpoint .problem")
    assert "config.invalid" not in text and "settings file" not in text
    # what the admin typed is still there, to correct
    assert page.input_value("#s-refer_p_osteoporosis") == "1.5"
    assert page.input_value("#s-rescreen_interval_months") == "750"
    assert page.input_value("#s-sync_endpoint") == "区域中心"
    page.screenshot(path=str(ARTIFACTS / "settings-errors-zh_CN.png"), full_page=True)

    page.goto("/settings/")  # nothing of it was saved
    assert page.input_value("#s-refer_p_osteoporosis") == before
    assert page.input_value("#s-sync_endpoint") == ""

    _choose_language(page, "en")
    page.fill("#s-consider_p_osteoporosis", "0.95")
    page.fill("#s-sync_endpoint", "hub.example.cn/fhir")
    page.click("form.settings button.primary")
    text = page.inner_text("main")
    assert "Not saved: correct the fields marked in red." in text
    assert "This may not be higher than the referral threshold (0.5)." in text
    assert "beginning with https://" in page.inner_text("#setting-sync_endpoint .problem")
    assert page.input_value("#s-consider_p_osteoporosis") == "0.95"

    page.fill("#s-consider_p_osteoporosis", "0.25")
    page.fill("#s-rescreen_interval_months", "36")
    page.fill("#s-sync_endpoint", "https://hub.example.cn/fhir")
    page.click("form.settings button.primary")
    assert "Saved. New screenings use these settings." in page.inner_text("main")
    assert page.input_value("#s-consider_p_osteoporosis") == "0.25"
    assert page.input_value("#s-rescreen_interval_months") == "36"
    # back to the defaults, for the other tests on this server
    page.fill("#s-consider_p_osteoporosis", "0.2")
    page.fill("#s-rescreen_interval_months", "24")
    page.fill("#s-sync_endpoint", "")
    page.click("form.settings button.primary")
    assert "Saved." in page.inner_text("main")
