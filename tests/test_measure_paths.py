"""A measurement through every entry point: the CLI's ``measure`` and ``screen --measure``,
the API's measure/points fields, and the page's preview and save on a stored case. Each
runs the same stage of the one path on a real DICOM file."""

from __future__ import annotations

import base64
import io
import json

import pytest
from test_browser_measure import TRUE_MCI, hand_phantom
from test_cli import run

from conftest import REPO, TECH_PASSWORD, csrf_token, log_in
from edgeosteo.methods import MethodRegistry

pytestmark = pytest.mark.skipif(
    MethodRegistry(REPO / "models").get("mci") is None, reason="the mci method is not installed"
)
TAPS = [[352, 230], [348, 680]]
ANSWERS = {"age_years": 58, "sex": "female", "weight_kg": 60, "prior_fragility_fracture": False}


@pytest.fixture
def hand(tmp_path):
    path = tmp_path / "hand.dcm"
    hand_phantom(path)
    return path


def _basic() -> dict[str, str]:
    token = base64.b64encode(f"tech:{TECH_PASSWORD}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


def test_cli_measure_prints_the_measurement_as_json(tmp_path, hand):
    result = run(
        "--data-dir", str(tmp_path / "box"), "measure", str(hand),
        "--method", "mci", "--points", json.dumps(TAPS), "--json",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr + result.stdout
    measured = json.loads(result.stdout)
    assert measured["method"] == "mci" and measured["unit"] == "ratio"
    assert abs(measured["value"] - TRUE_MCI) <= 0.02
    assert measured["band"] and measured["cutoff"]["citation"]
    assert len(measured["points_used"]) == 2


def test_cli_measure_refuses_another_body_part_with_its_code(tmp_path, pydicom_data_dir):
    result = run(
        "--data-dir", str(tmp_path / "box"), "measure", str(pydicom_data_dir / "RG1_J2KR.dcm"),
        "--method", "mci", "--points", json.dumps(TAPS), "--json",
    )  # fmt: skip
    assert result.returncode == 1
    refused = json.loads(result.stdout)
    assert refused["status"] == "refused" and refused["code"] == "measurement.wrong_body_part"
    assert "value" not in refused


def test_cli_screen_with_a_measurement_puts_it_into_the_screening(tmp_path, hand):
    result = run(
        "--data-dir", str(tmp_path / "box"), "screen", str(hand), "--age", "58", "--sex",
        "female", "--weight", "60", "--measure", "mci", "--points", json.dumps(TAPS), "--json",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    screening = json.loads(result.stdout)
    assert screening["schema_version"] == "1.2"
    (measured,) = screening["measurements"]
    assert measured["status"] == "measured"
    codes = [r["code"] for r in screening["referral"]["reasons"]]
    assert f"measurement.band.{measured['band']}" in codes
    bad = run("--data-dir", str(tmp_path / "box"), "screen", str(hand), "--measure", "mci",
              "--points", "[[1, 2], [3]]")  # fmt: skip
    assert bad.returncode == 2 and "Traceback" not in bad.stderr


def test_api_takes_measure_and_points_and_refuses_unreadable_taps(client, app, hand):
    data = hand.read_bytes()

    def post(**fields):
        return client.post(
            "/api/v1/screenings",
            headers=_basic(),
            content_type="multipart/form-data",
            data={"answers": json.dumps(ANSWERS), "image": (io.BytesIO(data), "h.dcm"), **fields},
        )

    bad = post(measure="mci", points="[[1, 2], [3]]")
    assert bad.status_code == 422
    assert bad.get_json()["error"]["code"] == "request.measurement_points_invalid"
    assert app.extensions["edgeosteo"].store.count_cases() == 0
    good = post(measure="mci", points=json.dumps(TAPS))
    assert good.status_code == 201, good.get_data(as_text=True)
    (measured,) = good.get_json()["screening"]["measurements"]
    assert abs(measured["value"] - TRUE_MCI) <= 0.02
    tapped_off = post(measure="mci", points=json.dumps([[-5, 10], [348, 680]]))
    (refused,) = tapped_off.get_json()["screening"]["measurements"]
    assert refused["status"] == "refused" and refused["code"] == "measurement.point_outside_image"
    assert refused["message_zh_CN"] and "value" not in refused


def test_page_preview_then_save_decides_the_case_again_and_answers_keep_it(client, app, hand):
    log_in(client)
    token = csrf_token(client, "/screenings/new")
    created = client.post(
        "/screenings",
        content_type="multipart/form-data",
        data={"csrf_token": token, "image": (io.BytesIO(hand.read_bytes()), "h.dcm"),
              "age_years": "58", "sex": "female", "weight_kg": "60", "height_cm": "158",
              "prior_fragility_fracture": "no"},
    )  # fmt: skip
    assert created.status_code == 302
    case_url = created.headers["Location"]
    case_id = int(case_url.rstrip("/").split("/")[-1])
    page = client.get(case_url).get_data(as_text=True)
    assert 'id="measure-tool"' in page and 'value="mci"' in page
    store = app.extensions["edgeosteo"].store
    before = store.get_case(case_id).result["referral"]["severity"]

    def post(body):
        return client.post(
            f"/cases/{case_id}/measurements", json=body, headers={"X-CSRFToken": token}
        )

    preview = post({"method": "mci", "points": TAPS})
    assert preview.status_code == 200
    assert preview.get_json()["measurement"]["status"] == "measured"
    assert store.get_case(case_id).result["measurements"] == []  # a preview stores nothing
    assert post({"method": "mci", "points": "nonsense"}).status_code == 422
    saved = post({"method": "mci", "points": TAPS, "save": True}).get_json()
    assert saved["saved"] is True
    result = store.get_case(case_id).result
    (stored,) = result["measurements"]
    assert abs(stored["value"] - TRUE_MCI) <= 0.02
    assert result["referral"]["severity"] >= before
    # a second save replaces the first, it does not add a second vote
    post({"method": "mci", "points": [[350, 240], [350, 670]], "save": True})
    assert len(store.get_case(case_id).result["measurements"]) == 1
    page = client.get(case_url).get_data(as_text=True)
    assert 'table class="measurements"' in page and 'id="saved-overlay"' in page
    assert client.post("/cases/99999/measurements", json={"method": "mci", "points": TAPS},
                       headers={"X-CSRFToken": token}).status_code == 404  # fmt: skip
