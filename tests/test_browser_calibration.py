"""Site calibration in a real headless Chromium against a real waitress server. The box's
labelled cases are seeded through the real API (``POST /api/v1/screenings`` then
``POST /api/v1/cases/{id}/dxa``, never SQL); an administrator opens the calibration page from
the settings, reads the tables and the plot, chooses OSTA by a target sensitivity, saves, and
a new screening on the page is decided by the new threshold. Below the stated minimum of
labelled cases the page refuses with its reason. zh_CN and en, desktop and a 390 px phone."""

from __future__ import annotations

import json
import threading
import tomllib

import pytest
import requests
import waitress
from browser_support import admin_page
from playwright.sync_api import expect
from test_browser import ARTIFACTS, _choose_language, browser  # noqa: F401
from test_browser_dxa import _fits, _press
from test_calibration import SEED, seed_answers, seed_dxa

from conftest import ADMIN_PASSWORD
from edgeosteo.app import build
from edgeosteo.config import load_settings
from edgeosteo.messages import text
from edgeosteo.web.auth import ensure_admin


def _serve(root, cases):
    settings = load_settings(data_dir=root / "box", environ={})
    app = build(settings).web
    ensure_admin(app.extensions["edgeosteo"].store, {"EDGEOSTEO_ADMIN_PASSWORD": ADMIN_PASSWORD})
    server = waitress.create_server(app, host="127.0.0.1", port=0, threads=2)
    threading.Thread(target=server.run, daemon=True).start()
    url = f"http://127.0.0.1:{server.effective_port}"
    with requests.Session() as api:
        api.auth = ("admin", ADMIN_PASSWORD)
        for osta, t_score in cases:
            made = api.post(
                f"{url}/api/v1/screenings", data={"answers": json.dumps(seed_answers(osta))}
            )
            assert made.status_code == 201, made.text
            done = api.post(f"{url}/api/v1/cases/{made.json()['case']}/dxa", json=seed_dxa(t_score))
            assert done.status_code == 201, done.text
    return server, url, settings


@pytest.fixture(scope="module")
def seeded(tmp_path_factory):
    server, url, settings = _serve(tmp_path_factory.mktemp("calibration"), SEED)
    yield url, settings
    server.close()


@pytest.fixture(scope="module")
def too_few(tmp_path_factory):
    server, url, settings = _serve(tmp_path_factory.mktemp("calibration-few"), SEED[:12])
    yield url, settings
    server.close()


def _page(browser, url, phone):  # noqa: F811
    watched = admin_page(browser, url, phone)
    context, page, errors = watched.context, watched.page, watched.problems
    return context, page, errors


WORDS = {
    "zh_CN": {"title": "本机构阈值校准", "saved": "已保存为转诊策略"},
    "en": {"title": "Site calibration", "saved": "Saved as policy"},
}
CASES = [(False, "zh_CN"), (False, "en"), (True, "zh_CN"), (True, "en")]


def _choose(page, phone, target: str) -> str:
    page.select_option("#calibration-rule", "osta")
    page.select_option("#calibration-reference", "t_le_-2.5")
    page.check("#by-sensitivity")
    page.fill("#calibration-value", target)
    _press(page, phone, "#calibration-compute")
    page.wait_for_selector("#proposal")
    return page.inner_text("#proposal-threshold")


def _screen(page, language: str) -> str:
    """A woman of 55, 65 kg (OSTA 2), no fracture, no image: the category on the page."""
    answers = seed_answers(2)
    page.goto("/screenings/new")
    page.fill("#f-age_years", str(answers["age_years"]))
    page.select_option("#f-sex", "female")
    page.fill("#f-weight_kg", str(answers["weight_kg"]))
    page.fill("#f-height_cm", "158")
    page.select_option("#f-prior_fragility_fracture", "no")
    page.click("button[type=submit]")
    page.wait_for_selector("#banner", timeout=60_000)
    return page.get_attribute("#banner", "class")


@pytest.mark.parametrize(("phone", "language"), CASES)
def test_an_admin_chooses_by_target_sensitivity_and_the_next_screening_uses_it(
    browser,  # noqa: F811
    seeded,
    phone,
    language,
):
    url, settings = seeded
    words = WORDS[language]
    suffix = "phone" if phone else "desktop"
    ARTIFACTS.mkdir(exist_ok=True)
    context, page, errors = _page(browser, url, phone)
    _choose_language(page, language)
    page.goto("/settings/")
    _press(page, phone, "#calibration-link")
    page.wait_for_selector("#calibration-choose")
    assert words["title"] in page.inner_text("h1")
    assert "60" in page.inner_text("#labelled-count")
    assert page.locator("#rule-osta table tbody tr").count() >= 10
    plot = page.locator("#calibration-plot")
    plot.scroll_into_view_if_needed()
    expect(plot).to_have_js_property("complete", True)
    assert page.evaluate("document.querySelector('#calibration-plot').naturalWidth") > 100
    _fits(page)

    # 75 %: 15 of the 20 with T <= -2.5 need OSTA <= 0; OSTA 2 is then routine
    assert _choose(page, phone, "75") == "≤ 0"
    assert "17/60" in page.inner_text("#proposal") and "15/20" in page.inner_text("#proposal")
    _press(page, phone, "#calibration-save")
    page.wait_for_selector(".flash.ok")
    assert words["saved"] in page.inner_text(".flash.ok")
    first = page.inner_text("#policy-version")
    assert first.startswith("site-")
    assert "routine" in _screen(page, language)
    assert text("site.threshold_not_met", language) in page.inner_text("ul.reasons")

    # 90 %: 18 of the 20 need OSTA <= 2 (hand-computed, tests/test_calibration.py)
    page.goto("/settings/calibration/")
    assert _choose(page, phone, "90") == "≤ 2"
    proposal = page.inner_text("#proposal")
    assert "28/60" in proposal and "18/20" in proposal and "30/40" in proposal
    _fits(page)
    expect(page.locator("#calibration-plot")).to_have_js_property("complete", True)
    page.screenshot(path=str(ARTIFACTS / f"calibration-{language}-{suffix}.png"), full_page=True)
    _press(page, phone, "#calibration-save")
    page.wait_for_selector(".flash.ok")
    version = page.inner_text("#policy-version")
    assert version == f"site-{int(first[5:]) + 1}"
    assert "≤ 2" in page.inner_text("#current-policy")
    written = tomllib.loads(settings.settings_file.read_text(encoding="utf-8"))["policy"]
    assert written["policy_version"] == version and written["calibrated_threshold"] == 2.0
    assert written["calibrated_by"] == "admin" and written["calibration_cases"] == 60

    banner = _screen(page, language)
    assert "cat-refer" in banner
    reasons = page.inner_text("ul.reasons")
    assert text("site.threshold_met", language) in reasons
    assert version in reasons  # the evidence names the policy it came from
    _fits(page)
    page.screenshot(
        path=str(ARTIFACTS / f"calibration-result-{language}-{suffix}.png"), full_page=True
    )
    context.close()
    assert not errors, errors


@pytest.mark.parametrize(("phone", "language"), CASES)
def test_below_the_minimum_the_page_refuses_with_its_reason(
    browser,  # noqa: F811
    too_few,
    phone,
    language,
):
    url, settings = too_few
    context, page, errors = _page(browser, url, phone)
    _choose_language(page, language)
    page.goto("/settings/calibration/")
    refusal = page.locator("#calibration-refused")
    assert refusal.get_attribute("data-code") == "calibration.too_few_cases"
    assert text("calibration.too_few_cases", language) in refusal.inner_text()
    assert "12" in refusal.inner_text() and "50" in refusal.inner_text()
    assert page.locator("#calibration-choose").count() == 0
    assert page.locator("#calibration-plot").count() == 0
    _fits(page)
    suffix = "phone" if phone else "desktop"
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(
        path=str(ARTIFACTS / f"calibration-refused-{language}-{suffix}.png"), full_page=True
    )
    assert not settings.settings_file.exists()
    context.close()
    assert not errors, errors
