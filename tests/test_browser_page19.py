"""The page as a technician and an admin in a rural hospital use it (issue 19): the admin
settings in the page's language with units and ranges, no English on Chinese pages, the
page's own file chooser and messages, allowed ranges said, a 360 px phone, and the list
searched by name, ID and accession. Real headless Chromium against a real waitress server."""

from __future__ import annotations

import io
import re

import pydicom
import pytest
from latin_scan import english_on_page, latin_words, native_file_chooser_visible
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


def _dicom(pydicom_data_dir, path, body_part: str, patient_id: str, name: str, accession: str):
    dataset = pydicom.dcmread(pydicom_data_dir / "RG1_UNCR.dcm")
    dataset.BodyPartExamined = body_part
    dataset.PatientID, dataset.PatientName, dataset.AccessionNumber = patient_id, name, accession
    buffer = io.BytesIO()
    dataset.save_as(buffer)
    path.write_bytes(buffer.getvalue())
    return path


def _screen(page, image, age="71", sex="male", weight="49", height="160", local_id=""):
    page.goto("/screenings/new")
    page.set_input_files("#image", str(image))
    page.fill("#f-age_years", age)
    page.select_option("#f-sex", sex)
    page.fill("#f-weight_kg", weight)
    page.fill("#f-height_cm", height)
    if local_id:
        page.fill("input[name=local_patient_id]", local_id)
    page.click("button[type=submit]")
    page.wait_for_selector("#banner", timeout=60_000)
    return int(re.search(r"/cases/(\d+)", page.url).group(1))


# times are item 5 of issue 19, done elsewhere: until then a page says "UTC"
NOT_MINE = frozenset({"UTC"})


def test_no_english_on_chinese_pages(admin_page, pydicom_data_dir, tmp_path):
    page = admin_page
    _choose_language(page, "zh_CN")
    knee = _dicom(pydicom_data_dir, tmp_path / "knee.dcm", "KNEE", "ZY19001", "WANG^FANG", "A19-1")
    limb = _dicom(pydicom_data_dir, tmp_path / "limb.dcm", "EXTREMITY", "ZY19002", "LI^M", "A19-2")
    page.goto("/screenings/new")
    assert english_on_page(page, USER_DATA) == []
    case_id = _screen(page, knee)
    allowed = USER_DATA | NOT_MINE
    assert english_on_page(page, allowed) == [], page.inner_text("main")
    scores = page.inner_text("table.scores")
    assert "男性OST" in scores and "OST_MEN" not in scores
    assert "临床风险模型（仅用问卷）" in scores and "knee-clinical" not in scores
    assert "openvino" not in scores and "onnxruntime" not in scores
    assert "default-" not in page.inner_text("main")
    # the ids are one tap away, for IT support
    assert page.is_hidden("#technical li")
    page.click("#technical summary")
    technical = page.inner_text("#technical")
    assert "knee-clinical" in technical and "本机构策略" in technical
    page.screenshot(path=str(ARTIFACTS / "result-technical-zh_CN.png"), full_page=True)

    _screen(page, limb)
    page.goto("/cases")
    assert english_on_page(page, allowed) == [], page.inner_text("main")
    parts = page.locator("td[data-body-part]").all_inner_texts()
    assert any(p.startswith("膝关节") for p in parts) and any(p.startswith("四肢") for p in parts)
    assert "KNEE" not in page.inner_text("main") and "EXTREMITY" not in page.inner_text("main")

    page.goto(f"/cases/{case_id}/answers")
    assert english_on_page(page, allowed) == [], page.inner_text("main")
    assert "膝关节" in page.inner_text("main")

    page.goto("/settings/")
    assert page.inner_text("td[data-role=admin]") == "管理员"

    _choose_language(page, "en")  # English where the words differ
    page.goto("/cases")
    parts = page.locator("td[data-body-part]").all_inner_texts()
    assert any(p.startswith("Knee") for p in parts) and any(p.startswith("Limb") for p in parts)
    page.goto(f"/cases/{case_id}")
    assert "OST (men)" in page.inner_text("table.scores")
    assert "Clinical risk model (answers only)" in page.inner_text("table.scores")
    page.goto("/settings/")
    assert page.inner_text("td[data-role=admin]") == "Administrator"


def test_the_latin_scan_finds_english_and_passes_units_ids_and_abbreviations():
    text = "男性OST -4 体重 49 kg L1–L4 C.R. …9RG1 ZY77001 A19-1 DXA OSTA OST_MEN knee-clinical "
    text += "admin"
    assert latin_words(text) == ["OST_MEN", "knee-clinical", "admin"]


def test_the_pages_own_file_chooser_and_messages_not_the_browsers(
    browser,  # noqa: F811
    live_server,  # noqa: F811
    admin_page,
    pydicom_data_dir,
):
    """The kiosk's Chromium may have no Chinese locale data: nothing the browser draws in its
    own language (the file chooser, validation bubbles) is left on a Chinese page."""
    page = admin_page
    _choose_language(page, "zh_CN")
    page.goto("/screenings/new")
    assert not native_file_chooser_visible(page)
    assert page.inner_text("#choose-file") == "选择图像或拍照"
    assert page.inner_text("#chosen") == "尚未选择图像。"
    with page.expect_file_chooser() as chooser:
        page.click("#choose-file")
    chooser.value.set_files(str(pydicom_data_dir / "RG1_UNCR.dcm"))
    assert page.inner_text("#chosen") == "RG1_UNCR.dcm"
    page.screenshot(path=str(ARTIFACTS / "file-chooser-zh_CN.png"))
    # the keyboard reaches the chooser, and its focus shows on the page's button
    page.focus("#image")
    assert (
        page.evaluate("getComputedStyle(document.querySelector('#choose-file')).outlineStyle")
        != "none"
    )

    # a form left empty gets the page's message, never a browser bubble: every form submits
    page.goto("/settings/")
    with page.expect_response(lambda r: r.url.endswith("/settings/users")):
        page.click("form[action$='/settings/users'] button[type=submit]")
    assert "请填写用户名和至少8位的密码。" in page.inner_text("main")
    context = browser.new_context(base_url=live_server, **DESKTOP)
    anonymous = context.new_page()
    anonymous.goto("/login")
    anonymous.click("form.lang button[value=zh_CN]")
    anonymous.wait_for_load_state()
    with anonymous.expect_response(lambda r: r.request.method == "POST"):
        anonymous.click("button.primary")
    assert anonymous.locator("p.error[role=alert]").count() == 1
    assert english_on_page(anonymous) == []
    context.close()
    # no form on these pages leaves its checking to the browser
    for path in ("/screenings/new", "/cases", "/settings/"):
        page.goto(path)
        assert (
            page.evaluate(
                "Array.from(document.forms).filter(f => !f.noValidate && "
                "f.querySelector('[required], [min], [max], [minlength], [pattern]')).length"
            )
            == 0
        ), path


@pytest.mark.parametrize("options", [DESKTOP, PHONE], ids=["desktop", "phone"])
def test_a_value_out_of_range_says_the_allowed_range(browser, live_server, options):  # noqa: F811
    context, page, problems = _open(browser, live_server, options)
    _choose_language(page, "zh_CN")
    page.goto("/screenings/new")
    page.fill("#f-age_years", "750")
    page.select_option("#f-sex", "female")
    page.fill("#f-weight_kg", "7.2")
    page.fill("#f-height_cm", "152")
    page.locator("button[type=submit]").click()
    assert page.url.endswith("/screenings/new")  # not sent: the page said what is wrong
    age = page.locator(".field:has(#f-age_years) .problem").inner_text()
    weight = page.locator(".field:has(#f-weight_kg) .problem").inner_text()
    assert age == "该数值超出允许范围。 允许范围：18–110 岁。", age
    assert weight == "该数值超出允许范围。 允许范围：25–200 kg。", weight
    assert page.locator(".field:has(#f-height_cm) .problem").inner_text() == ""
    message = page.inner_text("#required-message")
    assert message == "请更正标红的项目：每项下方写明了允许的范围。"
    assert "请填写带 * 的项目" not in page.inner_text("main")
    assert english_on_page(page, USER_DATA) == []
    page.screenshot(path=str(ARTIFACTS / f"out-of-range-zh_CN-{options['viewport']['width']}.png"))

    # an empty required field still asks for it
    page.fill("#f-age_years", "")
    page.locator("button[type=submit]").click()
    assert page.locator(".field:has(#f-age_years) .problem").inner_text() == "请填写此项。"
    assert page.inner_text("#required-message") == "请填写带 * 的项目。"

    # the server says the same when the script did not run (here: the answers page's form
    # posted as it stands, values outside what the tools accept)
    _choose_language(page, "en")
    page.goto("/screenings/new")
    page.evaluate("document.querySelectorAll('input[type=number]').forEach(i => i.type = 'text')")
    page.fill("#f-age_years", "750")
    page.select_option("#f-sex", "female")
    page.fill("#f-weight_kg", "7.2")
    page.evaluate("document.getElementById('screening-form').submit()")
    page.wait_for_selector(".field.invalid")
    age = page.locator(".field:has(#f-age_years) .problem").inner_text()
    assert "Allowed: 18 to 110 years." in age, age
    assert page.input_value("#f-age_years") == "750"
    context.close()
    assert not problems, problems


@pytest.mark.parametrize("options", [DESKTOP, PHONE], ids=["desktop", "phone"])
def test_a_new_user_chooses_their_own_password_at_the_first_login(browser, live_server, options):  # noqa: F811
    admin, page, problems = _open(browser, live_server, DESKTOP)
    _choose_language(page, "zh_CN")
    name = f"li{options['viewport']['width']}"
    page.goto("/settings/")
    page.fill("form[action$='/settings/users'] input[name=username]", name)
    page.fill("form[action$='/settings/users'] input[name=password]", "given-by-admin")
    page.click("form[action$='/settings/users'] button[type=submit]")
    assert "首次登录时须设置自己的密码" in page.inner_text("main")
    admin.close()
    context = browser.new_context(base_url=live_server, **options)
    page = context.new_page()
    page.goto("/login")
    page.click("form.lang button[value=zh_CN]")
    page.wait_for_load_state()
    page.fill("input[name=username]", name)
    page.fill("input[name=password]", "given-by-admin")
    page.click("button.primary")
    page.wait_for_url("**/account/password")
    assert "一次性密码" in page.inner_text("#change-due")
    assert english_on_page(page, USER_DATA | {name}) == []
    width = options["viewport"]["width"]
    assert page.evaluate("document.scrollingElement.scrollWidth") <= width
    page.screenshot(path=str(ARTIFACTS / f"account-password-zh_CN-{width}.png"), full_page=True)
    page.goto("/cases")  # every page leads back until the password is changed
    page.wait_for_url("**/account/password")
    page.fill("#p-current", "given-by-admin")
    page.fill("#p-new", "short")
    page.fill("#p-repeated", "short")
    page.click("#password-form button[type=submit]")
    assert "至少需要 8 个字符" in page.inner_text("#password-problem")
    page.fill("#p-current", "given-by-admin")
    page.fill("#p-new", "my-own-password")
    page.fill("#p-repeated", "my-own-password")
    page.click("#password-form button[type=submit]")
    page.wait_for_url("**/screenings/new")
    assert "密码已修改" in page.inner_text("body")
    page.goto("/cases")
    assert page.url.endswith("/cases")
    context.close()
    assert not problems, problems
