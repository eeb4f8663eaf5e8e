"""Referral follow-through in a real headless Chromium against a real waitress server: a
referred patient's DICOM is screened on the page, appears on the DXA follow-up list, a bad
T-score is refused in the user's language, the DXA result is recorded and the case leaves
the list; then ``edgeosteo export-labelled`` writes the site's labelled set from the same
data directory and ``edgeosteo evaluate`` runs on it. In both languages, desktop and a
390 px phone."""

from __future__ import annotations

import csv
import io
import json
import re
import threading

import pydicom
import pytest
import waitress
from browser_support import admin_page
from test_browser import ARTIFACTS, _choose_language, browser  # noqa: F401
from test_cli import run

from conftest import ADMIN_PASSWORD
from edgeosteo.app import build
from edgeosteo.config import load_settings
from edgeosteo.web.auth import ensure_admin

NAME, PATIENT_ID, BIRTH, ACCESSION = "LI^GUIHUA", "ZY77001", "19540607", "ACC-DXA-1"


@pytest.fixture(scope="module")
def dxa_server(tmp_path_factory):
    """A box on loopback whose data directory the test can export from afterwards."""
    root = tmp_path_factory.mktemp("dxa-live")
    settings = load_settings(data_dir=root / "box", environ={})
    app = build(settings).web
    ensure_admin(app.extensions["edgeosteo"].store, {"EDGEOSTEO_ADMIN_PASSWORD": ADMIN_PASSWORD})
    server = waitress.create_server(app, host="127.0.0.1", port=0, threads=2)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.effective_port}", settings
    server.close()


@pytest.fixture
def dxa_page(browser, dxa_server, request):  # noqa: F811
    url, settings = dxa_server
    phone = getattr(request, "param", False)
    watched = admin_page(browser, url, phone)
    context, page, errors = watched.context, watched.page, watched.problems
    yield page, phone, settings
    context.close()
    assert not errors, errors


def _dicom(pydicom_data_dir, path, patient_id: str) -> None:
    dataset = pydicom.dcmread(pydicom_data_dir / "RG1_UNCR.dcm")
    dataset.PatientName, dataset.PatientID = NAME, patient_id
    dataset.PatientBirthDate, dataset.AccessionNumber = BIRTH, ACCESSION
    buffer = io.BytesIO()
    dataset.save_as(buffer)
    path.write_bytes(buffer.getvalue())


def _screen_referred(page, image) -> int:
    page.goto("/screenings/new")
    page.set_input_files("#image", str(image))
    page.select_option("select[name=body_part]", "CHEST")
    page.fill("#f-age_years", "71")
    page.select_option("#f-sex", "female")
    page.fill("#f-weight_kg", "49")
    page.fill("#f-height_cm", "152")
    page.select_option("#f-prior_fragility_fracture", "no")
    page.click("button[type=submit]")
    page.wait_for_selector("#banner", timeout=60_000)
    assert "cat-refer" in page.get_attribute("#banner", "class") or "cat-urgent" in (
        page.get_attribute("#banner", "class")
    )
    match = re.search(r"/cases/(\d+)", page.url)
    assert match, page.url
    return int(match.group(1))


def _fits(page) -> None:
    """Nothing on the page is wider than the screen (a phone must not scroll sideways)."""
    width = page.viewport_size["width"]
    wide = page.evaluate(
        "Array.from(document.querySelectorAll('body *'))"
        f".filter(e => e.getBoundingClientRect().right > {width} + 2)"
        ".map(e => e.tagName + '.' + e.className + '#' + e.id).slice(0, 8)"
    )
    assert page.evaluate("document.documentElement.scrollWidth") <= width, wide


def _press(page, phone: bool, selector: str) -> None:
    button = page.locator(selector)
    button.scroll_into_view_if_needed()
    if phone:
        button.tap()
    else:
        button.click()


WORDS = {
    "zh_CN": {
        "list": "DXA随访",
        "refused": "T值或Z值超出DXA报告的可能范围",
        "done": "转诊已完成",
        "band": "骨质疏松（T值 ≤ −2.5）",
    },
    "en": {
        "list": "DXA follow-up",
        "refused": "outside the range a DXA report gives",
        "done": "Referral done",
        "band": "Osteoporosis (T-score −2.5 or below)",
    },
}


@pytest.mark.parametrize(
    ("dxa_page", "language"),
    [(False, "zh_CN"), (False, "en"), (True, "zh_CN"), (True, "en")],
    indirect=["dxa_page"],
)
def test_record_a_dxa_result_it_leaves_the_list_export_and_evaluate(
    dxa_page, language, pydicom_data_dir, tmp_path
):
    page, phone, settings = dxa_page
    words = WORDS[language]
    _choose_language(page, language)
    image = tmp_path / "chest.dcm"
    _dicom(pydicom_data_dir, image, f"{PATIENT_ID}-{language}-{int(phone)}")
    case_id = _screen_referred(page, image)
    page.goto("/follow-up")
    assert words["list"] in page.inner_text("h1")
    row = page.locator(f"#awaiting tr[data-case='{case_id}']")
    assert row.count() == 1 and row.locator(".days").inner_text() == "0"
    _fits(page)
    suffix = "phone" if phone else "desktop"
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"follow-up-{language}-{suffix}.png"), full_page=True)
    row.locator("a").click()
    page.wait_for_selector("#dxa-form")
    _fits(page)
    page.fill("#dxa-date", "2026-11-25")
    page.fill("#dxa-centre", "县人民医院")
    page.fill("#dxa-device", "GE Lunar Prodigy")
    page.fill("#dxa-femoral_neck_t_score", "12")  # a typing error: refused, nothing changes
    page.fill("#dxa-lumbar_spine_t_score", "-1.9")
    page.fill("#dxa-femoral_neck_z_score", "-1.4")
    page.select_option("#dxa-consent", "yes")
    with page.expect_response(lambda r: r.url.endswith(f"/cases/{case_id}/dxa")) as answer:
        _press(page, phone, "#dxa-save")
    assert answer.value.status == 422
    page.wait_for_selector("#dxa-error")
    assert words["refused"] in page.inner_text("#dxa-error")
    assert page.get_attribute("#dxa-error", "data-code") == "dxa.score_out_of_range"
    assert page.input_value("#dxa-lumbar_spine_t_score") == "-1.9"  # kept for correcting
    _fits(page)
    page.goto("/follow-up")
    assert page.locator(f"#awaiting tr[data-case='{case_id}']").count() == 1
    page.goto(f"/cases/{case_id}")
    page.fill("#dxa-date", "2026-11-25")
    page.fill("#dxa-centre", "县人民医院")
    page.fill("#dxa-femoral_neck_t_score", "-2.8")
    page.fill("#dxa-total_hip_t_score", "-2.2")
    page.fill("#dxa-lumbar_spine_t_score", "-1.9")
    page.select_option("#dxa-consent", "yes")
    _press(page, phone, "#dxa-save")
    page.wait_for_selector("#dxa-done")
    assert words["done"] in page.inner_text("#dxa-done")
    assert words["band"] in page.inner_text("#who-band")
    assert page.locator("#dxa-result tr.lowest td").first.inner_text() in ("股骨颈", "Femoral neck")
    assert page.locator("#dxa-form").count() == 0
    _fits(page)
    page.locator("#follow-up").screenshot(path=str(ARTIFACTS / f"dxa-{language}-{suffix}.png"))
    page.goto("/follow-up")
    assert page.locator(f"#awaiting tr[data-case='{case_id}']").count() == 0

    # the site's labelled set, from the box's own data directory, and evaluate on it
    out = tmp_path / "labelled"
    exported = run("--data-dir", str(settings.data_dir), "export-labelled", str(out))
    assert exported.returncode == 0, exported.stderr
    with (out / "clinical.csv").open(encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert rows and all(r["image"].endswith(".dcm") for r in rows)
    assert -2.8 in {float(r["t_score"]) for r in rows}
    written = (out / "clinical.csv").read_bytes() + b"".join(
        p.read_bytes() for p in (out / "images").iterdir()
    )
    for secret in (NAME, PATIENT_ID, BIRTH, ACCESSION, "2026-11-25"):
        assert secret.encode() not in written
    report = tmp_path / "report.json"
    evaluated = run(
        "--data-dir", str(tmp_path / "evaluating"), "evaluate", str(out), "--json", str(report),
        "--body-part", "CHEST",
    )  # fmt: skip
    assert evaluated.returncode == 0, evaluated.stderr
    result = json.loads(report.read_text())
    assert result["n"] == len(rows) and not result["failures"]


def test_the_dates_are_the_pages_own_fields_not_the_browsers_english_picker(
    dxa_page, pydicom_data_dir
):
    # a kiosk Chromium without Chinese locale data draws <input type=date> as "mm/dd/yyyy"
    page, _phone, _settings = dxa_page
    _choose_language(page, "zh_CN")
    case_id = _screen_referred(page, pydicom_data_dir / "RG1_UNCR.dcm")
    page.goto(f"/cases/{case_id}")
    assert page.get_attribute("#dxa-date", "type") == "text"
    assert page.get_attribute("#dxa-date", "placeholder").startswith("例如 ")
    assert "年-月-日" in page.inner_text("#dxa-date-hint")
    page.goto("/cases")
    assert page.get_attribute("form.search input[name=date]", "type") == "text"
    assert page.locator("input[type=date]").count() == 0
