"""The regional hub's dashboard as programme staff read it: in a real headless Chromium
against a real waitress hub on loopback, in the browser's language (Simplified Chinese or
English), with a link to the other."""

from __future__ import annotations

from pathlib import Path

import pytest
from latin_scan import english_on_page
from loopback import LoopbackServer
from test_browser import ARTIFACTS, CHROMIUM, browser  # noqa: F401
from test_hub import _spine, post, record

from edgeosteo.config import HubSettings
from edgeosteo.fhir import transaction_bundle
from edgeosteo.hub import create_hub_app
from edgeosteo.hub.store import HubStore
from edgeosteo.messages import text

pytestmark = pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="Debian chromium is needed")

# what stays Latin on the Chinese dashboard: the sites' and models' own ids, the refusal
# codes beside their sentences, and the statistics' names
HUB_ALLOWED = frozenset(
    {"site-a", "box-1", "mci", "vertebrae", "intake.not_an_image", "osteoporosis_likely",
     "vertebral_fracture", "no_vertebral_fracture", "knee-clinical", "PPV", "PSI", "KS", "p",
     "Wilson", "Kolmogorov–Smirnov", "Kolmogorov", "Smirnov", "Genant", "policy-unknown"}
)  # fmt: skip


@pytest.fixture(scope="module")
def hub(tmp_path_factory):
    root = tmp_path_factory.mktemp("hub")
    store = HubStore(f"sqlite:///{root / 'hub.sqlite3'}")
    app = create_hub_app(HubSettings(), root, store)
    device = store.add_credential("device", "site-a", "box-1")
    batch = [
        record(sex="female", age=72, measurements=_spine("vertebral_fracture", (0, 2, 0, 0))),
        record(sex="male", age=66, category="routine"),
        record(sex=None, age=None, category="cannot_assess", intake_error="intake.not_an_image",
               quality=None, models=()),
    ]  # fmt: skip
    assert post(app.test_client(), transaction_bundle(batch), device).status_code == 200
    viewer = store.add_credential("viewer", "*", "analyst")
    server = LoopbackServer(app)
    yield server.url, viewer
    server.close()
    store.close()


def _open(browser, hub, locale: str, width: int = 1366):  # noqa: F811
    url, viewer = hub
    context = browser.new_context(
        base_url=url,
        locale=locale,
        viewport={"width": width, "height": 900},
        http_credentials={"username": "analyst", "password": viewer},
    )
    page = context.new_page()
    page.goto("/")
    return context, page


def test_the_dashboard_is_in_chinese_for_a_chinese_browser(browser, hub):  # noqa: F811
    context, page = _open(browser, hub, "zh-CN")
    assert page.get_attribute("html", "lang") == "zh-CN"
    assert page.inner_text("#per-site-week caption") == "各机构每周结果数"
    assert page.inner_text("#referral-rates thead") .split() == [
        "性别", "年龄段", "转诊", "结果数", "比例"
    ]  # fmt: skip
    rates = page.inner_text("#referral-rates tbody")
    assert "女" in rates and "男" in rates and "不详" in rates and "female" not in rates
    refusals = page.inner_text("#refusals tbody")
    assert text("intake.not_an_image", "zh_CN") in refusals
    assert "intake.not_an_image" in refusals  # the code stays beside the sentence
    bands = page.inner_text("#measurement-bands tbody")
    assert "可能存在骨质疏松性椎体骨折" in bands
    assert english_on_page(page, HUB_ALLOWED) == []
    page.screenshot(path=str(ARTIFACTS / "hub-zh_CN.png"), full_page=True)
    page.click("#language a")
    page.wait_for_url("**/?lang=en")
    assert page.inner_text("#per-site-week caption") == "Results per site per week"
    assert "female" in page.inner_text("#referral-rates tbody")
    context.close()


def test_the_dashboard_is_in_english_for_an_english_browser(browser, hub):  # noqa: F811
    context, page = _open(browser, hub, "en-GB")
    assert page.get_attribute("html", "lang") == "en"
    assert page.inner_text("#per-site-week caption") == "Results per site per week"
    assert "Probable osteoporotic vertebral fracture" in page.inner_text("#measurement-bands")
    page.click("#language a")
    page.wait_for_url("**/?lang=zh_CN")
    assert page.inner_text("#per-site-week caption") == "各机构每周结果数"
    context.close()
