"""The whole page flow in a real headless Chromium against a real waitress server."""

from __future__ import annotations

import base64
import json
import re
import shutil
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
import waitress

import model_factory
from conftest import ADMIN_PASSWORD, REPO, shared_knee_dir
from edgeosteo.app import build
from edgeosteo.config import REPO_MODELS_DIR, load_settings
from edgeosteo.models import ModelRegistry
from edgeosteo.web.auth import ensure_admin

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARTIFACTS = REPO / "test-artifacts"

pytestmark = pytest.mark.skipif(
    not Path(CHROMIUM).exists(), reason="Debian chromium is installed by .ci/run"
)


def _models_with_heatmap(root: Path) -> Path:
    """The shipped models; plus a small test-built knee image model when none ships yet,
    so the heatmap toggle has something to show."""
    models = root / "models"
    shutil.copytree(REPO_MODELS_DIR, models)
    shipped = ModelRegistry(models)
    if not any("heatmap" in m.outputs for m in shipped.of_kind("image", "KNEE")):
        image = models / "test-knee-image"
        image.mkdir()
        model_factory.image_model(image / "model.onnx")
        model_factory.write_manifest(
            image, "test-knee-image", "image", "model.onnx", body_part="KNEE"
        )
    return models


@pytest.fixture(scope="module")
def live_server(tmp_path_factory):
    root = tmp_path_factory.mktemp("live")
    settings = load_settings(
        data_dir=root / "box", environ={}, models_dir=str(_models_with_heatmap(root))
    )
    app = build(settings).web
    ensure_admin(app.extensions["edgeosteo"].store, {"EDGEOSTEO_ADMIN_PASSWORD": ADMIN_PASSWORD})
    server = waitress.create_server(app, host="127.0.0.1", port=0, threads=2)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.effective_port}"
    server.close()


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=CHROMIUM,
            headless=True,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
                "--disable-quic",
            ],
        )
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser, live_server):
    context = browser.new_context(base_url=live_server, viewport={"width": 1100, "height": 1400})
    page = context.new_page()
    # the page's Content-Security-Policy allows only its own script and stylesheet: anything
    # it blocks (an inline script, a style attribute, a foreign URL) fails the test
    violations: list[str] = []
    page.on(
        "console",
        lambda message: (
            violations.append(message.text) if "Content Security Policy" in message.text else None
        ),
    )
    page.on("pageerror", lambda error: violations.append(f"script error: {error}"))
    page.goto("/login")
    page.fill("input[name=username]", "admin")
    page.fill("input[name=password]", ADMIN_PASSWORD)
    page.click("button.primary")
    page.wait_for_url("**/screenings/new")
    yield page
    context.close()
    assert not violations, violations


def _choose_language(page, language: str) -> None:
    page.click(f"form.lang button[value={language}]")
    page.wait_for_load_state()


def _fill_and_screen(page, image: Path, body_part: str) -> None:
    page.goto("/screenings/new")
    page.set_input_files("#image", str(image))
    page.select_option("select[name=body_part]", body_part)
    page.fill("#f-age_years", "71")
    page.select_option("#f-sex", "female")
    page.fill("#f-weight_kg", "49")
    page.fill("#f-height_cm", "152")
    page.select_option("#f-prior_fragility_fracture", "no")
    page.click("button[type=submit]")
    page.wait_for_selector("#banner", timeout=60_000)


def test_dicom_flow_in_both_languages(page, pydicom_data_dir):
    ARTIFACTS.mkdir(exist_ok=True)
    _choose_language(page, "en")
    _fill_and_screen(page, pydicom_data_dir / "RG1_J2KR.dcm", "CHEST")
    banner = page.inner_text("#banner")
    assert "DXA" in banner
    body = page.inner_text("main")
    assert "Bone health screening report" in body
    assert "cannot rule out osteoporosis" in body
    assert "No bone-density model is installed for this body part" in body
    page.screenshot(path=str(ARTIFACTS / "result-dicom-en.png"), full_page=True)
    _choose_language(page, "zh_CN")
    body = page.inner_text("main")
    assert "骨健康筛查报告" in body
    assert "低分不能排除骨质疏松" in body
    page.screenshot(path=str(ARTIFACTS / "result-dicom-zh_CN.png"), full_page=True)


def test_knee_flow_with_heatmap_and_printout(page):
    knee = shared_knee_dir()
    if knee is None:
        pytest.skip("../shared/data/knee is not present")
    ARTIFACTS.mkdir(exist_ok=True)
    _choose_language(page, "en")
    image = sorted((knee / "images").iterdir())[0]
    _fill_and_screen(page, image, "KNEE")
    assert page.is_visible("#banner")
    assert page.is_hidden("#heatmap")
    # every shipped knee image model is experimental: its heatmap has its own toggle
    assert page.locator("#heatmap-toggle").count() == 0
    page.check("#experimental-heatmap-toggle")
    assert page.is_visible("#heatmap")
    assert "experimental, not used for the recommendation" in page.inner_text("main")
    # the scores table says, row by row, that no model set the recommendation: the image
    # models are experimental and knee-clinical does not beat age alone and OSTA, so the
    # guideline's indications decided
    assert page.locator("table.scores tr.used").count() == 0
    rows = page.locator("table.scores tr.experimental")
    assert rows.count() == 3
    cells = {
        rows.nth(i).get_attribute("data-model"): rows.nth(i).locator("td").nth(2).inner_text()
        for i in range(3)
    }
    assert cells.pop("knee-clinical") == (
        "information only: not better than age alone and OSTA, so not used for the recommendation"
    )
    assert set(cells.values()) == {"experimental, not used for the recommendation"}
    page.screenshot(path=str(ARTIFACTS / "result-knee-en.png"), full_page=True)
    pdf = ARTIFACTS / "report-knee-en.pdf"
    page.emulate_media(media="print")
    # shown on screen, but the printed report carries no experimental heatmap
    assert page.is_hidden("#heatmap") and page.is_hidden("#heatmap-legend")
    page.pdf(path=str(pdf), format="A4", print_background=True)
    data = pdf.read_bytes()
    assert data.startswith(b"%PDF")
    assert len(re.findall(rb"/Type\s*/Page(?!s)", data)) == 1  # one A4 page to carry
    page.emulate_media(media="screen")
    _choose_language(page, "zh_CN")
    body = page.inner_text("main")
    assert "实验性结果" in body
    assert "仅供参考：未优于单独年龄和OSTA，因此不用于推荐意见" in body
    assert "女性，71岁（≥ 65）" in body and "female aged 71" not in body  # evidence too
    page.screenshot(path=str(ARTIFACTS / "result-knee-zh_CN.png"), full_page=True)
    pdf = ARTIFACTS / "report-knee-zh_CN.pdf"
    page.emulate_media(media="print")
    page.pdf(path=str(pdf), format="A4", print_background=True)
    assert len(re.findall(rb"/Type\s*/Page(?!s)", pdf.read_bytes())) == 1


def test_bad_upload_shows_message_and_form_keeps_answers(page, tmp_path):
    _choose_language(page, "zh_CN")
    fake = tmp_path / "scan.dcm"
    fake.write_text("not an image at all\n" * 20)
    _choose_language(page, "zh_CN")
    page.goto("/screenings/new")
    page.set_input_files("#image", str(fake))
    page.fill("#f-age_years", "66")
    page.select_option("#f-sex", "female")
    page.fill("#f-weight_kg", "55")
    page.click("button[type=submit]")
    page.wait_for_selector("#upload-error")
    assert "该文件不是X线图像" in page.inner_text("#upload-error")
    assert page.input_value("#f-age_years") == "66"


def test_required_fields_are_flagged_before_submitting(page):
    _choose_language(page, "en")
    page.goto("/screenings/new")
    page.click("button[type=submit]")
    assert page.is_visible("#required-message")
    assert page.url.endswith("/screenings/new")


def test_photo_review_then_four_corner_clicks_then_screen(
    page, live_server, tmp_path, pydicom_data_dir
):
    """A film photo is shown rectified beside the original before screening; the technician
    marks the four corners by hand, sees the film again, and screens with those corners."""
    sys.path.insert(0, str(REPO / "tools"))
    import photo_sim

    film = photo_sim.load_source(pydicom_data_dir / "RG3_UNCR.dcm")
    photo = photo_sim.simulate(film, seed=3, condition="good")
    path = tmp_path / "film-photo.jpg"
    path.write_bytes(photo.jpeg)
    ARTIFACTS.mkdir(exist_ok=True)
    _choose_language(page, "en")
    page.goto("/screenings/new")
    assert page.is_hidden("#photo-review")
    page.check("input[name=capture][value=photo]")
    page.set_input_files("#image", str(path))
    page.wait_for_selector("#photo-review[data-state=shown]", timeout=60_000)
    for image in ("#review-photo", "#review-film"):
        assert page.is_visible(image)
        assert page.eval_on_selector(image, "img => img.naturalWidth") > 100
    assert page.get_attribute("#photo-review", "data-corner-source") == "detected"
    assert page.input_value("#film_corners_source") == "detected"
    assert page.locator("#review-outline polygon").count() == 1
    assert page.is_visible("#review-ok")
    page.screenshot(path=str(ARTIFACTS / "photo-review-en.png"), full_page=True)

    page.click("#mark-corners")
    assert page.is_visible("#corner-help")
    box = page.locator("#review-photo").bounding_box()
    height, width = (int(v) for v in _shape(photo.jpeg))
    rng = np.random.default_rng(5)
    clicked = photo.corners[[1, 3, 0, 2]] + rng.uniform(-4, 4, size=(4, 2))
    for x, y in clicked:
        page.mouse.click(box["x"] + x / width * box["width"], box["y"] + y / height * box["height"])
    page.wait_for_selector("#photo-review[data-corner-source=user]", timeout=60_000)
    assert page.input_value("#film_corners_source") == "user"
    corners = np.asarray(json.loads(page.input_value("#film_corners")))
    diagonal = float(np.linalg.norm(photo.corners[2] - photo.corners[0]))
    # a click on the displayed image is at most a few photo pixels off; snapping tightens it
    assert np.linalg.norm(corners - photo.corners, axis=1).max() < 0.01 * diagonal
    assert page.is_visible("#auto-corners")
    _choose_language(page, "zh_CN")
    page.check("input[name=capture][value=photo]")
    page.set_input_files("#image", str(path))
    page.wait_for_selector("#photo-review[data-state=shown]", timeout=60_000)
    assert "筛查前请核对胶片" in page.inner_text("#photo-review")
    page.screenshot(path=str(ARTIFACTS / "photo-review-zh_CN.png"), full_page=True)
    page.click("#mark-corners")
    box = page.locator("#review-photo").bounding_box()
    for x, y in clicked:
        page.mouse.click(box["x"] + x / width * box["width"], box["y"] + y / height * box["height"])
    page.wait_for_selector("#photo-review[data-corner-source=user]", timeout=60_000)
    sent = json.loads(page.input_value("#film_corners"))

    page.select_option("select[name=body_part]", "KNEE")
    page.fill("#f-age_years", "71")
    page.select_option("#f-sex", "female")
    page.fill("#f-weight_kg", "49")
    page.click("button[type=submit]")
    page.wait_for_selector("#banner", timeout=60_000)
    case_id = page.url.rstrip("/").rsplit("/", 1)[-1]
    token = base64.b64encode(f"admin:{ADMIN_PASSWORD}".encode()).decode()
    stored = page.request.get(
        f"{live_server}/api/v1/cases/{case_id}", headers={"Authorization": f"Basic {token}"}
    ).json()["screening"]["image"]["photo"]
    assert stored["corner_source"] == "user"
    assert np.allclose(stored["corners"], sent, atol=0.11)


def _shape(jpeg: bytes) -> tuple[int, int]:
    from edgeosteo.intake.photo import decode_photo

    return decode_photo(jpeg).shape[:2]


def _latin_words(text: str) -> list[str]:
    return re.findall(r"[A-Za-z]{2,}", text)


def test_experimental_heatmap_toggle_shows_it_with_its_legend_in_chinese(page):
    """zh-CN, desktop and a 390 px phone: the experimental model's heatmap is hidden until its
    own labelled toggle is clicked, then shows with the colour legend, all in Chinese."""
    knee = shared_knee_dir()
    if knee is None:
        pytest.skip("../shared/data/knee is not present")
    ARTIFACTS.mkdir(exist_ok=True)
    _choose_language(page, "zh_CN")
    image = sorted((knee / "images").iterdir())[1]
    _fill_and_screen(page, image, "KNEE")
    assert page.is_hidden("#heatmap") and page.is_hidden("#heatmap-legend")
    toggle = page.locator("label.toggle.experimental")
    label = toggle.inner_text()
    assert "显示实验性模型的热力图" in label and "实验性结果，不用于推荐意见" in label
    model_id = page.get_attribute("#heatmap", "data-model")
    assert model_id and _latin_words(label.replace(model_id, "")) == []
    page.click("#experimental-heatmap-toggle")
    assert page.is_checked("#experimental-heatmap-toggle")
    assert page.is_visible("#heatmap") and page.is_visible("#heatmap-legend")
    assert page.eval_on_selector("#heatmap", "img => img.complete && img.naturalWidth") > 100
    legend = page.inner_text("#heatmap-legend")
    assert "热力图颜色" in legend and "热（红色）" in legend and "冷（蓝色、较淡）" in legend
    assert _latin_words(legend) == []
    # the overlay covers the radiograph exactly
    under = page.locator("#radiograph").bounding_box()
    over = page.locator("#heatmap").bounding_box()
    assert all(abs(under[k] - over[k]) < 1.5 for k in ("x", "y", "width", "height"))
    page.screenshot(path=str(ARTIFACTS / "heatmap-experimental-zh_CN.png"), full_page=True)
    page.set_viewport_size({"width": 390, "height": 844})
    assert page.is_visible("#heatmap") and page.is_visible("#heatmap-legend")
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 390, width  # nothing runs off the side of a phone
    for part in ("#heatmap-legend", "label.toggle.experimental", "#heatmap"):
        box = page.locator(part).bounding_box()
        assert box["x"] >= 0 and box["x"] + box["width"] <= 390, (part, box)
    page.screenshot(path=str(ARTIFACTS / "heatmap-experimental-zh_CN-390.png"), full_page=True)
    page.click("#experimental-heatmap-toggle")
    assert page.is_hidden("#heatmap") and page.is_hidden("#heatmap-legend")


def test_a_chest_crs_header_sets_the_body_part_and_a_knee_needs_a_tick(page, pydicom_data_dir):
    """In zh-CN: choosing a chest CR sets the body-part control to 胸部 from its header; a knee
    chosen against it shows the confirmation, which the form then requires."""
    ARTIFACTS.mkdir(exist_ok=True)
    _choose_language(page, "zh_CN")
    page.goto("/screenings/new")
    assert page.input_value("#body-part") == ""
    page.set_input_files("#image", str(pydicom_data_dir / "RG1_UNCR.dcm"))
    page.wait_for_selector("#header-part:not([hidden])", timeout=20_000)
    assert page.input_value("#body-part") == "CHEST"
    assert "胸部" in page.inner_text("#header-part")
    assert page.is_hidden("#confirm-part")
    page.select_option("#body-part", "KNEE")
    assert page.is_visible("#confirm-part")
    assert page.evaluate("document.getElementById('body-part-confirmed').required")
    page.screenshot(path=str(ARTIFACTS / "body-part-from-header-zh_CN.png"), full_page=True)
    # on a 390 px phone the form, the file chooser and the confirmation fit without scrolling
    page.set_viewport_size({"width": 390, "height": 844})
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    page.screenshot(path=str(ARTIFACTS / "body-part-from-header-zh_CN-390.png"), full_page=True)
    page.select_option("#body-part", "CHEST")
    assert page.is_hidden("#confirm-part")
