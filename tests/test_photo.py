"""Phone photographs of X-ray films: rectification, photo gates, advice, and the simulator's
figures on a small sample (tools/eval_photos.py measures the full set)."""

from __future__ import annotations

import io
import re
import sys
from pathlib import Path

import cv2
import numpy as np
import pydicom
import pytest
from PIL import Image

from edgeosteo.config import PhotoThresholds
from edgeosteo.errors import IntakeError
from edgeosteo.intake.photo import (
    decode_photo,
    order_corners,
    plane_geometry,
    read_photo,
    rectify_photo,
)
from edgeosteo.messages import CATALOGUE
from edgeosteo.quality_photo import photo_gates, photo_quality

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))
import eval_photos
import photo_sim

PACKAGE = Path(__file__).resolve().parents[1] / "edgeosteo"


@pytest.fixture(scope="module")
def films() -> dict[str, np.ndarray]:
    return eval_photos.load_sources(None)


@pytest.fixture(scope="module")
def good_photo(films) -> photo_sim.SimPhoto:
    return photo_sim.simulate(films["RG1_UNCR"], 7, "good", "RG1_UNCR")


def _jpeg(rgb: np.ndarray, orientation: int = 1, quality: int = 90) -> bytes:
    image = Image.fromarray(rgb)
    exif = Image.Exif()
    if orientation != 1:
        exif[0x0112] = orientation
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=quality, exif=exif.tobytes())
    return buffer.getvalue()


def test_simulated_photos_meet_the_targets(films):
    """The acceptance figures on a small sample: the full run is in tools/reports."""
    outcomes = eval_photos.run(films, n_good=16, n_bad=3, seed=50_000)
    summary = eval_photos.summarise(outcomes)
    assert summary["n_good"] == 16 and summary["n_unusable"] == 18
    assert summary["corner_error_pct_of_diagonal"]["median"] < 1.5
    assert summary["unusable_refused_with_right_code"] >= 0.95
    assert summary["good_refused"] <= 0.05
    assert summary["film_found"]["good"] >= 0.9


def test_a_good_photo_is_rectified_to_pixels_only(good_photo):
    result = read_photo(good_photo.jpeg)
    assert result.corner_source == "detected" and not result.whole_frame_fallback
    quality = photo_quality(result)
    assert quality.usable, quality.codes
    radiograph = result.radiograph
    assert radiograph.capture == "photo"
    assert radiograph.pixel_spacing_mm is None
    assert radiograph.measurement_basis == "pixels_only"
    assert radiograph.describe()["pixel_spacing_mm"] is None
    assert radiograph.pixels.dtype == np.float32
    assert float(radiograph.pixels.min()) >= 0.0 and float(radiograph.pixels.max()) <= 1.0
    assert "film_rectified" in radiograph.transforms
    diagonal = float(np.linalg.norm(good_photo.corners[2] - good_photo.corners[0]))
    error = np.linalg.norm(result.corners - good_photo.corners, axis=1).mean()
    assert error < 0.015 * diagonal
    # the film's aspect ratio survives the perspective correction
    h, w = radiograph.shape
    film_h, film_w = good_photo.film.shape
    assert abs((w / h) / (film_w / film_h) - 1.0) < 0.05
    # and so does its content
    drift = eval_photos.image_drift(good_photo.film, radiograph.pixels)
    assert drift["pearson_r"] > 0.9


def test_clicked_corners_are_used_and_snapped(good_photo):
    rng = np.random.default_rng(3)
    clicked = good_photo.corners + rng.uniform(-6, 6, size=(4, 2))
    result = read_photo(good_photo.jpeg, corners=clicked[[2, 0, 3, 1]].tolist())
    assert result.corner_source == "user"
    error = np.linalg.norm(result.corners - good_photo.corners, axis=1).max()
    assert error < 3.0


def test_no_film_falls_back_to_the_whole_frame_with_a_warning():
    rng = np.random.default_rng(0)
    wall = cv2.GaussianBlur(rng.uniform(0.3, 0.6, (600, 800)).astype(np.float32), (0, 0), 25)
    gray = np.clip((wall - wall.min()) / (np.ptp(wall) + 1e-6) * 120 + 60, 0, 255)
    result = rectify_photo(gray.astype(np.uint8))
    assert result.whole_frame_fallback
    film_found = next(g for g in photo_gates(result) if g.gate == "film_found")
    assert (film_found.verdict, film_found.code) == ("warn", "photo.no_film_found")
    assert result.radiograph.shape == (600, 800)


def test_exif_rotated_phone_jpeg_is_read_upright(good_photo):
    shown = decode_photo(good_photo.jpeg)
    # orientation 6: the sensor's rows are the picture's columns (phone held upright)
    stored = np.ascontiguousarray(np.rot90(shown, k=1))
    data = _jpeg(stored, orientation=6)
    assert decode_photo(data).shape == shown.shape
    result = read_photo(data)
    assert "exif_orientation_6" in result.radiograph.transforms
    diagonal = float(np.linalg.norm(good_photo.corners[2] - good_photo.corners[0]))
    assert np.linalg.norm(result.corners - good_photo.corners, axis=1).mean() < 0.015 * diagonal


def test_a_colour_photograph_is_refused_as_not_a_radiograph(deid_data_dir):
    dataset = pydicom.dcmread(deid_data_dir / "dicom-cookies" / "image1.dcm")
    rgb = np.ascontiguousarray(dataset.pixel_array[:, :, :3])
    quality = photo_quality(read_photo(_jpeg(rgb)))
    assert not quality.usable
    assert "photo.not_radiograph" in quality.codes


def _text_page_photo() -> np.ndarray:
    page = np.full((1100, 850, 3), 245, np.uint8)
    rng = np.random.default_rng(1)
    for row in range(60, 1040, 34):
        words, x = int(rng.integers(5, 10)), 60
        for _ in range(words):
            word = "".join(rng.choice(list("abcdefghijklmnopqrstuvwxyz"), int(rng.integers(2, 9))))
            cv2.putText(page, word, (x, row), cv2.FONT_HERSHEY_SIMPLEX, 0.8, (25, 25, 30), 2)
            x += 22 * len(word) + 18
            if x > 760:
                break
    table = np.zeros((1200, 1600, 3), np.uint8)
    table[:] = (118, 84, 52)
    grain = cv2.GaussianBlur(rng.normal(0, 18, (1200, 1600)).astype(np.float32), (0, 0), 3)
    table = np.clip(table + grain[:, :, None], 0, 255).astype(np.uint8)
    src = np.array([[0, 0], [849, 0], [849, 1099], [0, 1099]], np.float32)
    dst = np.array([[430, 90], [1180, 140], [1240, 1110], [360, 1080]], np.float32)
    warp = cv2.getPerspectiveTransform(src, dst)
    mask = cv2.warpPerspective(np.ones(page.shape[:2], np.float32), warp, (1600, 1200))
    sheet = cv2.warpPerspective(page, warp, (1600, 1200)).astype(np.float32)
    return (sheet * mask[:, :, None] + table * (1 - mask[:, :, None])).astype(np.uint8)


def test_a_photographed_text_page_is_refused_as_not_a_radiograph():
    quality = photo_quality(read_photo(_jpeg(_text_page_photo())))
    assert not quality.usable
    assert "photo.not_radiograph" in quality.codes


def test_glare_advice_says_where_the_reflection_is(good_photo):
    shown = decode_photo(good_photo.jpeg).astype(np.float32)
    tl, tr, _, bl = good_photo.corners.astype(np.float64)
    spot = tl + 0.2 * (tr - tl) + 0.2 * (bl - tl)
    yy, xx = np.mgrid[0 : shown.shape[0], 0 : shown.shape[1]]
    radius = 0.07 * np.linalg.norm(tr - tl)
    blob = np.exp(-((((xx - spot[0]) ** 2 + (yy - spot[1]) ** 2) / radius**2) ** 2))
    glared = np.clip(shown + 600.0 * blob[:, :, None], 0, 255).astype(np.uint8)
    result = read_photo(_jpeg(glared))
    glare = next(g for g in photo_gates(result) if g.gate == "glare")
    assert (glare.verdict, glare.code) == ("fail", "photo.glare_upper_left")
    assert result.glare_mask.any()
    english, chinese = CATALOGUE["photo.glare_upper_left"]
    assert "upper left" in english and "左上" in chinese


def test_a_dicom_is_not_taken_as_a_photo(pydicom_data_dir):
    with pytest.raises(IntakeError) as info:
        read_photo(pydicom_data_dir / "RG1_UNCR.dcm")
    assert info.value.code == "photo.not_a_photo"


def test_every_photo_code_has_both_languages():
    # the codes intake raises and the photo gates give
    files = [*sorted((PACKAGE / "intake" / "photo").glob("*.py")), PACKAGE / "quality_photo.py"]
    source = "\n".join(path.read_text(encoding="utf-8") for path in files)
    used = set(re.findall(r"[\"'](photo\.[a-z_]+)[\"']", source))
    places = re.search(r"_GLARE_PLACES = \((.*?)\n\)", source, re.S)
    assert places is not None
    used |= {f"photo.glare_{p}" for p in re.findall(r"\"([a-z_]+)\"", places.group(1))}
    assert len(used) >= 16
    assert sorted(code for code in used if code not in CATALOGUE) == []


def test_order_corners_is_independent_of_click_order():
    quad = np.array([[100, 80], [500, 120], [520, 400], [90, 380]], np.float32)
    rng = np.random.default_rng(5)
    for _ in range(10):
        assert np.array_equal(order_corners(quad[rng.permutation(4)]), quad)


def test_plane_geometry_of_a_square_on_view():
    # a 3:4 film seen square-on in the centre of a 1200 x 1600 frame
    quad = np.array([[500, 400], [800, 400], [800, 800], [500, 800]], np.float32)
    aspect, tilt = plane_geometry(quad, (1200, 1600), PhotoThresholds().focal_length_factor)
    assert abs(aspect - 0.75) < 1e-3 and tilt < 0.5


def test_the_simulator_is_deterministic_and_records_truth(films):
    a = photo_sim.simulate(films["cat"], 11, "glare", "cat")
    b = photo_sim.simulate(films["cat"], 11, "glare", "cat")
    assert a.jpeg == b.jpeg and np.array_equal(a.corners, b.corners)
    assert a.expected_code == "photo.glare"
    assert a.params["glare_share"] > 0


def test_model_drift_hook_compares_scores(good_photo):
    result = read_photo(good_photo.jpeg)
    pairs = [(good_photo.film, result.radiograph.pixels)] * 2 + [
        (1 - good_photo.film, 1 - result.radiograph.pixels)
    ] * 2
    drift = eval_photos.model_drift(pairs, lambda p: float(p.mean()), [True, True, False, False])
    assert drift["n"] == 4
    assert drift["mean_abs_probability_change"] < 0.1
    assert drift["auc_original"] in (0.0, 1.0) and drift["auc_photo"] == drift["auc_original"]


def test_a_large_photo_keeps_the_films_resolution(films, monkeypatch):
    """A photo larger than work_long_side_px is searched on a reduced copy, but the film is
    rectified from the photo's own pixels (up to output_long_side_px)."""
    monkeypatch.setattr(photo_sim, "PHOTO_SIZE", (2800, 2100))
    photo = photo_sim.simulate(films["RG1_UNCR"], 7, "good", "RG1_UNCR")
    result = read_photo(photo.jpeg)
    quality = photo_quality(result)
    assert quality.usable, quality.codes
    t = PhotoThresholds()
    corners = photo.corners
    film_long = max(float(np.linalg.norm(corners[(i + 1) % 4] - corners[i])) for i in range(4))
    reduced = film_long * t.work_long_side_px / 2800
    expected = min(film_long, t.output_long_side_px)
    assert expected > 1.2 * reduced
    assert abs(max(result.radiograph.shape) - expected) <= 0.1 * expected
    # corners are in the photo's own pixels
    diagonal = float(np.linalg.norm(corners[2] - corners[0]))
    assert np.linalg.norm(result.corners - corners, axis=1).mean() < 0.015 * diagonal


def test_photo_model_drift_compares_paired_films_with_a_bootstrap():
    import eval_photo_models

    rng = np.random.default_rng(0)
    labels = (rng.random(60) < 0.4).astype(int)
    original = rng.normal(0.5, 0.05, 60) + 0.05 * labels
    same = eval_photo_models.compare(original, np.stack([original, original]), labels, 50)
    assert same["pooled"]["auc_change"] == 0.0
    assert same["pooled"]["auc_change_ci95"] == [0.0, 0.0]
    assert same["pooled"]["max_abs_probability_change"] == 0.0
    photos = np.stack([original + rng.normal(0, 0.02, 60) for _ in range(3)])
    photos[1, 5] = np.nan  # a refused photo leaves that film out of its set
    first = eval_photo_models.compare(original, photos, labels, 50)
    assert first == eval_photo_models.compare(original, photos, labels, 50)  # deterministic
    assert [s["n_paired"] for s in first["per_set"]] == [60, 59, 60]
    assert first["pooled"]["n_pairs"] == 179
    low, high = first["pooled"]["auc_change_ci95"]
    assert low <= first["pooled"]["auc_change"] <= high
    change = np.mean([s["auc_change"] for s in first["per_set"]])
    assert abs(first["pooled"]["auc_change"] - change) < 1e-3


def test_the_sites_intake_limit_applies_to_photos():
    """The smallest side a photo may have comes from the site's [intake] settings, not from
    the defaults."""
    import cv2
    import numpy as np

    from edgeosteo.config import IntakeLimits
    from edgeosteo.errors import IntakeError
    from edgeosteo.intake.photo import read_photo

    # a 4000 x 300 strip: 2048 x 153 at working size, which the site's limit of 200 refuses
    rgb = np.random.default_rng(5).integers(0, 255, (300, 4000, 3), dtype=np.uint8)
    _, png = cv2.imencode(".png", rgb)
    assert read_photo(png.tobytes()).radiograph is not None
    with pytest.raises(IntakeError) as refused:
        read_photo(png.tobytes(), limits=IntakeLimits(min_side_px=200))
    assert refused.value.code == "photo.too_narrow"
