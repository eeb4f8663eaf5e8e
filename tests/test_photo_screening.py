"""Phone photos of films through the one screening path and the page."""

from __future__ import annotations

import base64
import io
import json
import sys

import cv2
import numpy as np
import pytest

from conftest import ADMIN_PASSWORD, REPO, csrf_token, log_in
from edgeosteo.config import DISPLAY_LONG_SIDE_PX
from edgeosteo.intake.photo import decode_photo
from edgeosteo.screening import Screener

sys.path.insert(0, str(REPO / "tools"))
import photo_sim


@pytest.fixture(scope="module")
def leg_film(pydicom_data_dir):
    return photo_sim.load_source(pydicom_data_dir / "RG3_UNCR.dcm")


def test_a_good_photo_is_rectified_and_screened(leg_film, settings):
    photo = photo_sim.simulate(leg_film, seed=3, condition="good")
    result = Screener(settings).screen(
        photo.jpeg, {"age_years": 70, "sex": "female", "weight_kg": 50}, capture="photo"
    )
    assert result.intake_error is None
    assert result.image["capture"] == "photo"
    assert result.image["measurement_basis"] == "pixels_only"
    assert result.image["pixel_spacing_mm"] is None
    assert result.image["photo"]["corner_source"] == "detected"
    assert result.quality.usable
    gates = {g.gate for g in result.quality.gates}
    assert "blur" in gates and len(result.quality.gates) > 6  # photo gates + the usual ones


def test_a_glare_photo_is_refused_with_retake_advice(leg_film, settings):
    photo = photo_sim.simulate(leg_film, seed=5, condition="glare")
    result = Screener(settings).screen(
        photo.jpeg, {"age_years": 70, "sex": "female", "weight_kg": 50}, capture="photo"
    )
    assert not result.quality.usable
    assert any(code.startswith("photo.glare") for code in result.quality.codes)
    assert result.referral.category in ("retake", "consider", "refer", "urgent")
    assert "model.not_run_quality" in [u.code for u in result.findings.unavailable]


def test_the_page_screens_a_photo(admin_client, app, leg_film):
    photo = photo_sim.simulate(leg_film, seed=3, condition="good")
    response = _screen(admin_client, photo.jpeg)
    assert response.status_code == 302
    record = app.extensions["edgeosteo"].store.get_case(1)
    assert record.result["image"]["capture"] == "photo"


# --- the review before screening, and corners marked by hand --------------------------


def _review(client, data: bytes, corners=None, source="user"):
    token = csrf_token(client, "/screenings/new")
    form = {"csrf_token": token, "image": (io.BytesIO(data), "photo.jpg")}
    if corners is not None:
        form["film_corners"] = json.dumps(np.asarray(corners).tolist())
        form["film_corners_source"] = source
    return client.post("/screenings/photo-review", data=form, content_type="multipart/form-data")


def _decoded(data_url: str) -> np.ndarray:
    header, payload = data_url.split(",", 1)
    assert header in ("data:image/jpeg;base64", "data:image/png;base64")
    image = cv2.imdecode(np.frombuffer(base64.b64decode(payload), np.uint8), cv2.IMREAD_COLOR)
    assert image is not None
    return image


def _screen(client, data: bytes, **extra):
    token = csrf_token(client, "/screenings/new")
    form = {
        "csrf_token": token,
        "capture": "photo",
        "age_years": "70",
        "sex": "female",
        "weight_kg": "50",
        "body_part": "KNEE",
        "image": (io.BytesIO(data), "p.jpg"),
        **extra,
    }
    return client.post("/screenings", content_type="multipart/form-data", data=form)


@pytest.fixture(scope="module")
def good_photo(leg_film):
    return photo_sim.simulate(leg_film, seed=3, condition="good")


def test_the_review_shows_the_photo_beside_the_film_it_found(admin_client, good_photo):
    response = _review(admin_client, good_photo.jpeg)
    assert response.status_code == 200
    review = response.get_json()
    shown = decode_photo(good_photo.jpeg)
    assert (review["photo"]["height"], review["photo"]["width"]) == shown.shape[:2]
    photo, film = _decoded(review["photo"]["image"]), _decoded(review["film"]["image"])
    assert max(photo.shape[:2]) <= DISPLAY_LONG_SIDE_PX and max(film.shape[:2]) <= 1024
    assert abs(photo.shape[1] / photo.shape[0] - shown.shape[1] / shown.shape[0]) < 0.01
    assert review["corner_source"] == "detected"
    diagonal = float(np.linalg.norm(good_photo.corners[2] - good_photo.corners[0]))
    error = np.linalg.norm(np.asarray(review["corners"]) - good_photo.corners, axis=1)
    assert error.max() < 0.015 * diagonal
    assert review["usable"] and review["verdict"] in ("pass", "warn")
    # the film is upright and keeps the film's aspect ratio
    film_h, film_w = good_photo.film.shape
    assert abs((film.shape[1] / film.shape[0]) / (film_w / film_h) - 1.0) < 0.05


def test_screening_reuses_the_reviewed_corners(admin_client, app, good_photo):
    review = _review(admin_client, good_photo.jpeg).get_json()
    response = _screen(
        admin_client,
        good_photo.jpeg,
        film_corners=json.dumps(review["corners"]),
        film_corners_source="detected",
    )
    assert response.status_code == 302
    photo = app.extensions["edgeosteo"].store.get_case(1).result["image"]["photo"]
    assert photo["corner_source"] == "detected"
    assert np.allclose(photo["corners"], review["corners"], atol=0.11)


def test_a_glare_photo_is_flagged_in_the_review_with_retake_advice(admin_client, leg_film):
    glare = photo_sim.simulate(leg_film, seed=5, condition="glare")
    review = _review(admin_client, glare.jpeg).get_json()
    assert not review["usable"] and review["verdict"] == "fail"
    advice = [m for m in review["messages"] if m["code"].startswith("photo.glare")]
    assert advice and advice[0]["verdict"] == "fail"
    assert "反光" in advice[0]["text"]  # the box's default language


def _wall_with_film() -> tuple[bytes, np.ndarray]:
    """A film whose edges the detector cannot trust (the film fills most of the frame and
    its border fades into a wall of the same brightness), and where its corners are."""
    rng = np.random.default_rng(7)
    h, w = 900, 1200
    wall = cv2.GaussianBlur(rng.uniform(0.3, 0.6, (h, w)).astype(np.float32), (0, 0), 25)
    gray = np.clip((wall - wall.min()) / (np.ptp(wall) + 1e-6) * 120 + 60, 0, 255)
    corners = np.array([[260, 170], [930, 150], [960, 760], [240, 740]], np.float32)
    mask = np.zeros((h, w), np.uint8)
    cv2.fillConvexPoly(mask, corners.astype(np.int32), 1)
    yy, xx = np.mgrid[:h, :w]
    bone = 40 + 80 * np.exp(-(((xx - 600) / 120.0) ** 2))  # a bright shaft across the film
    gray = np.where(mask > 0, bone + 8 * np.sin(yy / 9.0), gray).astype(np.uint8)
    ok, encoded = cv2.imencode(".jpg", np.dstack([gray] * 3), [cv2.IMWRITE_JPEG_QUALITY, 90])
    assert ok
    return encoded.tobytes(), corners


def test_no_film_found_then_four_clicks_outline_it(admin_client):
    data, corners = _wall_with_film()
    first = _review(admin_client, data).get_json()
    if first["corner_source"] == "whole_frame":
        assert first["corners"] is None
        assert "photo.no_film_found" in [m["code"] for m in first["messages"]]
    clicked = corners[[2, 0, 3, 1]] + np.array([[3, -2], [-4, 1], [2, 4], [-1, -3]])
    second = _review(admin_client, data, corners=clicked).get_json()
    assert second["corner_source"] == "user"
    assert np.linalg.norm(np.asarray(second["corners"]) - corners, axis=1).max() < 8
    film = _decoded(second["film"]["image"])
    assert abs(film.shape[1] / film.shape[0] - 700 / 600) < 0.1


@pytest.mark.parametrize(
    ("language", "expected"),
    [("en", "This file is not a radiograph image"), ("zh_CN", "该文件不是X线图像")],
)
def test_a_review_of_a_bad_file_answers_in_the_chosen_language(admin_client, language, expected):
    token = csrf_token(admin_client, "/screenings/new")
    admin_client.post("/language", data={"csrf_token": token, "language": language})
    response = _review(admin_client, b"patient notes, not an image\n" * 10)
    assert response.status_code == 422
    assert response.get_json()["code"] == "intake.not_an_image"
    assert expected in response.get_json()["text"]


@pytest.mark.parametrize(
    "corners",
    [
        "[[0, 0], [10, 10]]",  # two points
        "[[0, 0], [5000, 0], [5000, 5000], [0, 5000]]",  # outside the photo
        "[[10, 10], [11, 10], [11, 11], [10, 11]]",  # a dot, not the film
        "not json",
        '[["a", "b"], [1, 2], [3, 4], [5, 6]]',
    ],
)
def test_bad_corners_are_refused_and_nothing_is_stored(admin_client, app, good_photo, corners):
    review = _review_raw(admin_client, good_photo.jpeg, corners)
    assert review.status_code == 422 and review.get_json()["code"] == "photo.bad_corners"
    response = _screen(admin_client, good_photo.jpeg, film_corners=corners)
    assert response.status_code == 422
    assert "没有框出胶片" in response.get_data(as_text=True)
    assert app.extensions["edgeosteo"].store.search_cases(day=None) == []


def _review_raw(client, data: bytes, corners: str):
    token = csrf_token(client, "/screenings/new")
    form = {"csrf_token": token, "image": (io.BytesIO(data), "p.jpg"), "film_corners": corners}
    return client.post("/screenings/photo-review", data=form, content_type="multipart/form-data")


def test_the_review_needs_a_login_and_a_csrf_token(client, app, good_photo):
    response = client.post(
        "/screenings/photo-review",
        data={"image": (io.BytesIO(good_photo.jpeg), "p.jpg")},
        content_type="multipart/form-data",
    )
    assert response.status_code in (302, 400)
    log_in(client)
    response = client.post(
        "/screenings/photo-review",
        data={"image": (io.BytesIO(good_photo.jpeg), "p.jpg")},
        content_type="multipart/form-data",
    )
    assert response.status_code == 400  # no CSRF token


def test_the_api_takes_clicked_corners(client, app, good_photo):
    rng = np.random.default_rng(11)
    clicked = good_photo.corners + rng.uniform(-5, 5, size=(4, 2))
    response = client.post(
        "/api/v1/screenings",
        headers={
            "Authorization": "Basic "
            + base64.b64encode(b"admin:" + ADMIN_PASSWORD.encode()).decode()
        },
        data={
            "image": (io.BytesIO(good_photo.jpeg), "p.jpg"),
            "capture": "photo",
            "answers": json.dumps({"age_years": 70, "sex": "female", "weight_kg": 50}),
            "film_corners": json.dumps(clicked.tolist()),
        },
        content_type="multipart/form-data",
    )
    assert response.status_code == 201, response.get_json()
    photo = response.get_json()["screening"]["image"]["photo"]
    assert photo["corner_source"] == "user"
    assert np.linalg.norm(np.asarray(photo["corners"]) - good_photo.corners, axis=1).max() < 3.0


def test_the_command_line_screens_a_photo_with_clicked_corners(tmp_path, good_photo):
    from test_cli import run

    path = tmp_path / "film.jpg"
    path.write_bytes(good_photo.jpeg)
    clicked = json.dumps(np.round(good_photo.corners + 3).tolist())
    result = run(
        "--data-dir", str(tmp_path), "screen", str(path), "--photo", "--film-corners", clicked
    )
    assert result.returncode == 0, result.stderr
    result = run(
        "--data-dir",
        str(tmp_path),
        "screen",
        str(path),
        "--photo",
        "--json",
        "--film-corners",
        clicked,
    )
    photo = json.loads(result.stdout.splitlines()[0])["image"]["photo"]
    assert photo["corner_source"] == "user"
    bad = run(
        "--data-dir", str(tmp_path), "screen", str(path), "--photo", "--film-corners", "[[1, 2]]"
    )
    assert bad.returncode == 2
    assert "do not outline the film" in bad.stderr


def test_a_photo_uploaded_as_digital_is_recognised_everywhere(
    admin_client, app, leg_film, settings
):
    """A phone photo of a film uploaded in the digital mode: the page's file check says it
    looks like a photo (the page then offers the photo mode); the API's result and the
    CLI's path carry the warning code; a digital radiograph gets neither."""
    from conftest import upload_facts

    photo = photo_sim.simulate(leg_film, seed=3, condition="good").jpeg
    facts = upload_facts(admin_client, photo, "p.jpg")
    assert facts["capture"] == "photo"
    response = _screen(admin_client, photo, capture="digital")
    assert response.status_code == 302
    stored = app.extensions["edgeosteo"].store.get_case(1).result
    assert "intake.looks_like_photo" in stored["quality"]["codes"]
    assert stored["quality"]["verdict"] == "warn"

    result = Screener(settings).screen(photo, {"age_years": 70, "sex": "female"})
    assert "intake.looks_like_photo" in result.quality.codes
    _, png = cv2.imencode(".png", (leg_film * 255).astype(np.uint8))
    digital = Screener(settings).screen(png.tobytes(), {"age_years": 70, "sex": "female"})
    assert "intake.looks_like_photo" not in digital.quality.codes
    assert any(g.gate == "capture" and g.verdict == "pass" for g in digital.quality.gates)
