"""The scripted technician flow of issue 19's "Done when", in zh_CN on a desktop (1366x900)
and a phone (390x844): an admin adds a technician with a one-time password; the technician
logs in, is made to choose their own password, screens a knee radiograph with the fewest
answers the page asks for, reads the result and prints it. Every page on the way shows no
English and no sideways scrolling. Real headless Chromium against a real waitress server."""

from __future__ import annotations

import io
import re

import pydicom
import pytest
from browser_support import DESKTOP, PHONE, chinese_page_problems, log_in, watched_page
from test_browser import ARTIFACTS, browser, live_server  # noqa: F401

from conftest import ADMIN_PASSWORD

# data on the page, not its words: the user names, the chosen file's name, and the zone times
# are shown in (a CI box runs in UTC)
NAMES = frozenset({"admin", "knee.dcm", "UTC"})


def _knee_dicom(pydicom_data_dir, path):
    """A real CR film of the lower leg (pydicom-data's RG3: tibia, fibula, ankle) sent as a
    KNEE study, as a unit's wrong body-part tag would. No public image passes the knee check
    (test_knee_check.py), so the knee image models do not run on it and the page says so;
    the answers decide, as on any film the check refuses. A development knee film is not
    used: tests carry no shared data."""
    dataset = pydicom.dcmread(pydicom_data_dir / "RG3_UNCR.dcm")
    dataset.BodyPartExamined = "KNEE"
    dataset.PatientID, dataset.PatientName = "ZY20001", "ZHANG^MEI"
    buffer = io.BytesIO()
    dataset.save_as(buffer)
    path.write_bytes(buffer.getvalue())
    return path


@pytest.mark.parametrize("options", [DESKTOP, PHONE], ids=["desktop", "phone"])
def test_a_technician_from_the_one_time_password_to_the_printed_result(
    browser,  # noqa: F811
    live_server,  # noqa: F811
    options,
    pydicom_data_dir,
    tmp_path,
):
    width = options["viewport"]["width"]
    name = f"jishi{width}"
    allowed = NAMES | {name}
    seen: list[str] = []

    def check(page, what: str) -> None:
        seen.append(what)
        assert chinese_page_problems(page, allowed) == [], (what, page.inner_text("body"))

    # the admin adds the technician, with a password they will give them in person
    admin = watched_page(browser, live_server, DESKTOP)
    log_in(admin.page, "admin", ADMIN_PASSWORD)
    admin.page.goto("/settings/")
    users = "form[action$='/settings/users']"
    admin.page.fill(f"{users} input[name=username]", name)
    admin.page.fill(f"{users} input[name=password]", "given-at-the-desk")
    admin.page.select_option(f"{users} select[name=role]", "technician")
    admin.page.click(f"{users} button[type=submit]")
    assert "首次登录时须设置自己的密码" in admin.page.inner_text("main")
    assert admin.close() == []

    tech = watched_page(browser, live_server, options)
    page = tech.page
    page.goto("/login")
    page.click("form.lang button[value=zh_CN]")
    page.wait_for_load_state()
    check(page, "login")
    log_in(page, name, "given-at-the-desk")
    assert page.url.endswith("/account/password")  # made to choose their own first
    assert "一次性密码" in page.inner_text("#change-due")
    check(page, "change password")
    page.goto("/screenings/new")
    assert page.url.endswith("/account/password")
    page.fill("#p-current", "given-at-the-desk")
    page.fill("#p-new", "my-own-password")
    page.fill("#p-repeated", "my-own-password")
    page.click("#password-form button[type=submit]")
    page.wait_for_url("**/screenings/new")
    assert "密码已修改" in page.inner_text("main")
    check(page, "new screening")

    # a knee with the fewest answers the page asks for: those it marks required
    page.set_input_files("#image", str(_knee_dicom(pydicom_data_dir, tmp_path / "knee.dcm")))
    page.fill("#f-age_years", "68")
    page.select_option("#f-sex", "female")
    page.fill("#f-weight_kg", "51")
    if page.get_attribute("#f-height_cm", "required") is not None:
        page.fill("#f-height_cm", "154")
    check(page, "new screening, filled")
    page.click("button[type=submit]")
    page.wait_for_selector("#banner", timeout=60_000)
    assert re.search(r"/cases/\d+$", page.url)
    banner = page.inner_text("#banner")
    assert re.search(r"[\u4e00-\u9fff]", banner)
    assert "低分不能排除骨质疏松" in page.inner_text("main")
    assert "膝关节" in page.inner_text("main")
    assert page.locator("table.scores").count() == 1
    check(page, "result")
    shot = ARTIFACTS / f"technician-flow-result-zh_CN-{width}.png"
    page.screenshot(path=str(shot), full_page=True)

    # the printout: what the paper shows
    assert page.is_visible("#print")
    page.emulate_media(media="print")
    assert page.locator("#signature").is_visible() and page.is_hidden("#print")
    check(page, "printout")
    page.pdf(path=str(ARTIFACTS / f"technician-flow-printout-zh_CN-{width}.pdf"), format="A4")
    page.emulate_media(media="screen")
    assert seen == [
        "login",
        "change password",
        "new screening",
        "new screening, filled",
        "result",
        "printout",
    ]
    assert tech.close() == []


@pytest.fixture(scope="module")
def shipped_box(tmp_path_factory):
    """A box with the models it ships (the knee image models included) on loopback."""
    from loopback import LoopbackServer

    from edgeosteo.app import build
    from edgeosteo.config import load_settings
    from edgeosteo.web.auth import ensure_admin

    settings = load_settings(data_dir=tmp_path_factory.mktemp("shipped") / "box", environ={})
    app = build(settings).web
    ensure_admin(app.extensions["edgeosteo"].store, {"EDGEOSTEO_ADMIN_PASSWORD": ADMIN_PASSWORD})
    server = LoopbackServer(app)
    yield server.url
    server.close()


@pytest.mark.shared_data
@pytest.mark.parametrize("options", [DESKTOP, PHONE], ids=["desktop", "phone"])
def test_a_development_knee_film_is_read_by_the_knee_models_and_the_result_fits(
    browser,  # noqa: F811
    shipped_box,
    knee_dir,
    options,
):
    """The same minimal-answer screening on a real knee film (the development set, read
    where it is present, never copied): the knee check passes, the image models run and
    their rows are in the scores table, and the result with those rows fits a phone."""
    width = options["viewport"]["width"]
    film = sorted((knee_dir / "images").iterdir())[0]
    watched = watched_page(browser, shipped_box, options)
    page = watched.page
    log_in(page, "admin", ADMIN_PASSWORD)
    page.goto("/screenings/new")
    page.set_input_files("#image", str(film))
    page.fill("#f-age_years", "68")
    page.select_option("#f-sex", "female")
    page.fill("#f-weight_kg", "51")
    if page.get_attribute("#f-height_cm", "required") is not None:
        page.fill("#f-height_cm", "154")
    page.select_option("#body-part", "KNEE")
    page.click("button[type=submit]")
    page.wait_for_selector("#banner", timeout=60_000)
    assert re.search(r"/cases/\d+$", page.url)
    models = page.locator("table.scores tr[data-model]").evaluate_all(
        "rows => rows.map(r => r.dataset.model)"
    )
    assert any(m.startswith("knee-image") or m.startswith("knee-fused") for m in models), models
    assert chinese_page_problems(page, NAMES | {film.name}) == []
    # the card would scroll a wide table inside itself; with the image rows it need not
    card = page.locator(".scores-card").evaluate("c => [c.scrollWidth, c.clientWidth]")
    assert card[0] <= card[1], card
    page.screenshot(path=str(ARTIFACTS / f"knee-result-zh_CN-{width}.png"), full_page=True)
    assert watched.close() == []
