"""Phone photos of films through the one screening path and the page."""

from __future__ import annotations

import io
import sys

import pytest

from conftest import REPO, csrf_token
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
    token = csrf_token(admin_client, "/screenings/new")
    response = admin_client.post(
        "/screenings",
        content_type="multipart/form-data",
        data={
            "csrf_token": token,
            "capture": "photo",
            "age_years": "70",
            "sex": "female",
            "weight_kg": "50",
            "body_part": "KNEE",
            "image": (io.BytesIO(photo.jpeg), "p.jpg"),
        },
    )
    assert response.status_code == 302
    record = app.extensions["edgeosteo"]["store"].get_case(1)
    assert record.result["image"]["capture"] == "photo"
