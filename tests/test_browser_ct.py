"""A CT series sent by C-STORE, on the page in a real headless Chromium: the list shows it
waiting for the tap, the case page shows the sagittal reformat, the tap on L1 measures it
(mean and SD HU, the band, the checks, the age norms, the ROI on the axial slices); a bad
series is a refused line with its reason. Both languages, desktop 1366 and a 390 px phone."""

from __future__ import annotations

import re
import sys
import threading
import time

import pydicom
import pytest
import waitress
from browser_support import admin_page, assert_no_sideways_scroll
from latin_scan import english_on_page
from test_browser import ARTIFACTS, _choose_language, browser  # noqa: F401
from test_receiver import send

from conftest import ADMIN_PASSWORD, REPO
from edgeosteo.app import build
from edgeosteo.config import REPO_MODELS_DIR, load_settings
from edgeosteo.web.auth import ensure_admin

sys.path.insert(0, str(REPO / "tools"))
from phantoms import ct

CORE_HU = 95.0  # at or below 110 HU: osteoporosis likely (Pickhardt 2013)
SERIES = {"matrix": 256, "levels": ("T12", "L1", "L2"), "slice_thickness_mm": 2.5}


@pytest.fixture(scope="module")
def ct_server(tmp_path_factory):
    root = tmp_path_factory.mktemp("ct-live")
    settings = load_settings(
        data_dir=root / "box",
        environ={},
        models_dir=str(REPO_MODELS_DIR),
        receiver={
            "port": 0,
            "worker_enabled": False,
            "ct_series_enabled": True,
            "ct_series_quiet_seconds": 3600.0,  # settled by the test
        },
    )
    box = build(settings)
    ensure_admin(box.store, {"EDGEOSTEO_ADMIN_PASSWORD": ADMIN_PASSWORD})
    box.receiver.start()
    server = waitress.create_server(box.web, host="127.0.0.1", port=0, threads=2)
    threading.Thread(target=server.run, daemon=True).start()
    yield box, f"http://127.0.0.1:{server.effective_port}"
    server.close()
    box.receiver.stop()


@pytest.fixture
def ct_page(browser, ct_server, request):  # noqa: F811
    box, url = ct_server
    phone = getattr(request, "param", False)
    watched = admin_page(browser, url, phone)
    context, page, errors = watched.context, watched.page, watched.problems
    yield box, page, phone
    context.close()
    assert not errors, errors


def _send_series(box, tmp_path, seed: int):
    """A good phantom series and one with a slice missing, slice by slice by C-STORE, then
    quiet: two cases. Returns the truth and the two case ids (good, refused)."""
    truth = ct.make_series(tmp_path / "good", seed, core_hu=CORE_HU, **SERIES)
    ct.make_bad(tmp_path / "gap", "gap", seed + 1, matrix=128)
    slices = [pydicom.dcmread(p) for p in sorted((tmp_path / "good").glob("*.dcm"))]
    slices += [pydicom.dcmread(p) for p in sorted((tmp_path / "gap").glob("*.dcm"))]
    before = {c.id for c in box.store.search_cases()}
    assert set(send(box.receiver.scp_address, slices)) == {0}
    box.receiver.series.settle(now=time.time() + 3601)
    new = [c for c in box.store.search_cases() if c.id not in before]
    good = next(c.id for c in new if c.state == "awaiting_measurement")
    refused = next(c.id for c in new if c.state == "refused")
    return truth, good, refused


def _tap_sagittal(page, phone: bool, column: float, row: float) -> None:
    overlay = page.locator("#ct-tap-overlay")
    overlay.scroll_into_view_if_needed()
    box = overlay.bounding_box()
    columns = float(overlay.get_attribute("data-columns"))
    rows = float(overlay.get_attribute("data-rows"))
    x = box["x"] + (column + 0.5) / columns * box["width"]
    y = box["y"] + (row + 0.5) / rows * box["height"]
    if phone:
        page.touchscreen.tap(x, y)
    else:
        page.mouse.click(x, y)


CHINESE = re.compile(r"[\u4e00-\u9fff]")


@pytest.mark.parametrize(
    ("ct_page", "language"),
    [(False, "zh_CN"), (True, "zh_CN"), (False, "en"), (True, "en")],
    indirect=["ct_page"],
)
def test_a_ct_series_from_the_scanner_is_tapped_and_measured_on_the_page(
    ct_page, language, tmp_path
):
    box, page, phone = ct_page
    _choose_language(page, language)
    truth, good, refused = _send_series(box, tmp_path, 300 + 10 * phone + (language == "en"))
    page.goto("/cases")
    waiting = page.locator(f"tr:has(a[href='/cases/{good}'])")
    assert "state-awaiting_measurement" in waiting.get_attribute("class")
    bad = page.locator(f"tr:has(a[href='/cases/{refused}'])")
    reason = bad.locator(".reason").inner_text()
    assert bad.locator(".reason").get_attribute("data-code") == "intake.ct_slice_gap"
    assert CHINESE.search(reason) if language == "zh_CN" else "slice" in reason.lower()
    assert_no_sideways_scroll(page)
    with page.expect_response("**/ct/sagittal.png") as sagittal:
        waiting.locator("a.button").click()
    assert sagittal.value.ok
    page.wait_for_selector("#ct-tool")
    page.wait_for_load_state("load")
    awaiting = page.inner_text("#banner #ct-awaiting")
    assert CHINESE.search(awaiting) if language == "zh_CN" else "waits for its" in awaiting
    # the sagittal reformat is drawn, L1 is the default level and T12 and L2 are offered
    assert page.evaluate("document.getElementById('ct-sagittal').naturalWidth") > 0
    assert page.input_value("#ct-level") == "L1"
    assert page.eval_on_selector_all("#ct-level option", "o => o.map(x => x.value)") == [
        "T12",
        "L1",
        "L2",
    ]
    assert page.is_disabled("#ct-measure-button")
    assert_no_sideways_scroll(page)
    column, row = truth.sagittal_tap("L1")
    _tap_sagittal(page, phone, column, row)
    assert page.is_enabled("#ct-measure-button")
    page.screenshot(
        path=str(ARTIFACTS / f"ct-tap-{language}-{'phone' if phone else 'desktop'}.png")
    )
    with page.expect_navigation():
        page.locator("#ct-measure-button").click()
    page.wait_for_selector("#ct-result")
    assert page.locator("#ct-awaiting").count() == 0
    mean = float(re.match(r"(-?\d+)", page.inner_text("#ct-mean")).group(1))
    assert abs(mean - CORE_HU) <= 5
    assert re.search(r"SD \d+ HU", page.inner_text("#ct-sd"))
    assert page.get_attribute("#ct-band", "data-band") == "osteoporosis_likely"
    assert "110" in page.inner_text("#ct-band")  # the cut-off and its source
    checks = page.eval_on_selector_all("#ct-checks li", "l => l.map(x => x.dataset.check)")
    for check in ("kvp_not_120", "contrast", "thick_slices", "air_drift", "fat_drift"):
        assert check in checks
    # the ROI drawn on each measured axial slice (at least three), over a drawn slice
    figures = page.locator("#ct-axial figure")
    assert figures.count() >= 3
    assert page.locator("#ct-axial polygon.roi").count() == figures.count()
    assert page.locator("#ct-axial polygon.edge").count() == figures.count()
    page.locator("#ct-axial img").first.scroll_into_view_if_needed()
    assert page.evaluate("document.querySelector('#ct-axial img').naturalWidth") > 0
    norms = page.inner_text("#ct-norms")
    assert "Jang" in norms and "226" in norms and "2019" in norms
    assert ("女" in norms and "65" in norms) if language == "zh_CN" else "Female, 65" in norms
    # the default policy does not count the CT band: said so
    assert "ct-l1" not in box.settings.policy.counted_measurements
    policy = page.inner_text("#ct-policy")
    assert CHINESE.search(policy) if language == "zh_CN" else "information" in policy
    assert_no_sideways_scroll(page)
    if language == "zh_CN":
        citations = " ".join(
            page.eval_on_selector_all(".evidence", "e => e.map(x => x.textContent)")
        )
        # the sources are cited as published; the user's name, the patient's ID, the zone
        cited = {w.rstrip(".-") for w in re.findall(r"[A-Za-z][A-Za-z.\-]*", citations)}
        found = english_on_page(page, frozenset(cited) | {"SD", "kV", "admin", "UTC", "PHANTOM-CT"})
        assert found == [], found
    page.screenshot(
        path=str(ARTIFACTS / f"ct-result-{language}-{'phone' if phone else 'desktop'}.png"),
        full_page=True,
    )
    # stored: the list no longer waits for it
    record = box.store.get_case(good)
    assert record.state != "awaiting_measurement"
    assert record.result["measurements"][0]["value"] == pytest.approx(mean, abs=0.6)
    # the tap reached the box where it was made on the reformat (its own pixels)
    given = record.result["measurements"][0]["points_given"][0]
    assert given == pytest.approx([column, row], abs=0.75)


def test_a_tap_beside_the_spine_is_refused_with_advice_and_the_case_still_waits(ct_page, tmp_path):
    box, page, _ = ct_page
    _choose_language(page, "zh_CN")
    truth, good, _ = _send_series(box, tmp_path, 400)
    page.goto(f"/cases/{good}")
    _, row = truth.sagittal_tap("L1")
    _tap_sagittal(page, False, 5.0, row)  # in front of the patient: air
    with page.expect_navigation():
        page.locator("#ct-measure-button").click()
    problem = page.inner_text("#ct-problem")
    assert CHINESE.search(problem) and "椎体" in problem
    assert page.locator("#ct-result").count() == 0
    assert box.store.get_case(good).state == "awaiting_measurement"


@pytest.mark.parametrize(
    ("ct_page", "language"), [(True, "zh_CN"), (False, "en")], indirect=["ct_page"]
)
def test_the_settings_page_shows_and_writes_the_ct_series_settings(ct_page, language):
    import tomllib

    box, page, _ = ct_page
    _choose_language(page, language)
    page.goto("/settings/")
    section = page.locator("#setting-ct_series_enabled")
    assert section.locator("input[type=checkbox]").is_checked()  # as the box was started
    assert page.input_value("#s-ct_series_quiet_seconds") == "3600"
    label = page.inner_text("#setting-ct_series_quiet_seconds")
    assert CHINESE.search(label) if language == "zh_CN" else "without a new slice" in label
    assert_no_sideways_scroll(page)
    page.fill("#s-ct_series_quiet_seconds", "2")
    page.locator("form.settings button.primary").click()
    problem = page.inner_text("#setting-ct_series_quiet_seconds .problem")
    assert ("5" in problem and "3600" in problem) and (
        CHINESE.search(problem) if language == "zh_CN" else "seconds" in problem
    )
    page.fill("#s-ct_series_quiet_seconds", "45")
    section.locator("input[type=checkbox]").uncheck()
    page.locator("form.settings button.primary").click()
    page.wait_for_selector(".flash.ok")
    written = tomllib.loads(box.settings.settings_file.read_text(encoding="utf-8"))
    assert written["receiver"] == {"ct_series_enabled": False, "ct_series_quiet_seconds": 45.0}
    assert page.input_value("#s-ct_series_quiet_seconds") == "45"
    assert not section.locator("input[type=checkbox]").is_checked()
    # put back for the tests after this one
    page.fill("#s-ct_series_quiet_seconds", "3600")
    section.locator("input[type=checkbox]").check()
    page.locator("form.settings button.primary").click()
    page.wait_for_selector(".flash.ok")
