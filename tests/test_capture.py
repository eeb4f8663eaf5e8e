"""Photo of a film or digital radiograph, from the file as uploaded (edgeosteo.intake.capture)."""

from __future__ import annotations

import dataclasses
import io
import json
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from edgeosteo.config import CaptureThresholds, load_settings
from edgeosteo.intake import read_image
from edgeosteo.intake.capture import CaptureGuess, camera_tags, guess_capture, judge

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))
import photo_sim

# two of each condition a phone photo can be in, on the packaged radiographs
SAMPLE = [
    (condition, name, 400 + i)
    for i, (condition, name) in enumerate(
        (c, n)
        for c in ("good", "glare", "blur", "moire", "steep", "small")
        for n in ("RG1_UNCR", "RG3_UNCR")
    )
]


@pytest.fixture(scope="module")
def films() -> dict[str, np.ndarray]:
    return {name: photo_sim.load_source(p) for name, p in photo_sim.packaged_sources().items()}


def _encode(pixels: np.ndarray, ext: str, *params: int) -> bytes:
    ok, buf = cv2.imencode(ext, pixels, list(params))
    assert ok
    return buf.tobytes()


def _u8(path: Path) -> np.ndarray:
    pixels = read_image(path).radiograph.pixels
    return np.clip(pixels * 255 + 0.5, 0, 255).astype(np.uint8)


def _phone_jpeg(gray: np.ndarray) -> bytes:
    exif = Image.Exif()
    exif[0x010F] = "Xiaomi"  # Make
    exif[0x0110] = "Redmi Note 12"  # Model
    buffer = io.BytesIO()
    Image.fromarray(gray).convert("RGB").save(buffer, "JPEG", quality=88, exif=exif.tobytes())
    return buffer.getvalue()


def test_simulated_phone_photos_are_recognised(films):
    missed = []
    for condition, name, seed in SAMPLE:
        photo = photo_sim.simulate(films[name], seed, condition, name)
        guess = guess_capture(photo.jpeg)
        if guess.kind != "photo" or not guess.evidence:
            missed.append((condition, name, seed, guess.describe()))
    assert not missed, missed


def test_a_photo_turned_gray_is_known_by_its_lit_film_border(films):
    photo = photo_sim.simulate(films["RG1_UNCR"], 7, "good", "RG1_UNCR")
    gray = cv2.imdecode(np.frombuffer(photo.jpeg, np.uint8), cv2.IMREAD_GRAYSCALE)
    guess = guess_capture(_encode(gray, ".jpg", cv2.IMWRITE_JPEG_QUALITY, 90))
    assert guess.kind == "photo"
    assert guess.evidence == ("lit_film_border",)
    assert guess.measures["chroma_median"] == 0.0


@pytest.mark.parametrize("name", ["RG1_UNCR.dcm", "RG3_UNCR.dcm"])
def test_packaged_radiographs_and_their_exports_are_digital(pydicom_data_dir, name):
    path = pydicom_data_dir / name
    assert guess_capture(path.read_bytes()).kind == "digital"
    gray = _u8(path)
    exports = {
        "png": _encode(gray, ".png"),
        "png16": _encode(gray.astype(np.uint16) * 257, ".png"),
        "jpeg_gray": _encode(gray, ".jpg", cv2.IMWRITE_JPEG_QUALITY, 90),
        "jpeg_rgb": _encode(cv2.merge([gray, gray, gray]), ".jpg", cv2.IMWRITE_JPEG_QUALITY, 85),
    }
    for kind, data in exports.items():
        guess = guess_capture(data)
        assert guess.kind == "digital", (kind, guess.describe())
        assert guess.score < 0.5


def test_knee_development_films_are_digital(knee_dir):
    files = sorted((knee_dir / "images").iterdir())[::7][:20]
    assert len(files) == 20
    wrong = {}
    for path in files:
        guess = guess_capture(path.read_bytes())
        if guess.kind != "digital":
            wrong[path.name] = guess.describe()
    assert not wrong, wrong


def test_a_phone_jpeg_is_known_by_its_camera_exif(pydicom_data_dir):
    gray = _u8(pydicom_data_dir / "RG1_UNCR.dcm")
    data = _phone_jpeg(gray)
    assert camera_tags(data) == {"make": "Xiaomi", "model": "Redmi Note 12"}
    guess = guess_capture(data)
    assert guess.kind == "photo" and guess.score == 1.0
    assert "exif_camera" in guess.evidence
    # the same pixels without the camera's tags: an export
    assert guess_capture(_encode(gray, ".jpg", cv2.IMWRITE_JPEG_QUALITY, 88)).kind == "digital"


def test_decoded_pixels_may_be_passed_in(films):
    photo = photo_sim.simulate(films["RG3_UNCR"], 3, "good", "RG3_UNCR")
    rgb = cv2.cvtColor(cv2.imdecode(np.frombuffer(photo.jpeg, np.uint8), 1), cv2.COLOR_BGR2RGB)
    assert guess_capture(photo.jpeg, rgb).measures == guess_capture(photo.jpeg).measures


def test_unreadable_and_non_raster_bytes_are_digital():
    assert guess_capture(b"").kind == "digital"
    assert guess_capture(b"not an image at all" * 20).kind == "digital"
    # a JPEG header with nothing behind it: no pixels, no camera tags
    assert guess_capture(b"\xff\xd8\xff\xe0" + b"\x00" * 200).kind == "digital"


def test_judge_reads_each_threshold():
    t = CaptureThresholds()
    base = {"raster": 1.0, "exif_camera_tags": 0.0, "film_found": 0.0}
    assert judge(base, t).kind == "digital"
    cast = {**base, "chroma_median": t.chroma_median_photo}
    assert judge(cast, t).evidence == ("colour_cast",)
    assert judge({**base, "chroma_median": 0.9 * t.chroma_median_photo}, t).kind == "digital"
    noise = {**base, "chroma_share": t.chroma_share_photo}
    assert judge(noise, t).evidence == ("colour_noise",)
    rim = {**base, "film_found": 1.0, "rim_step": t.rim_step_photo, "rim_level": 1.0}
    assert judge(rim, t).evidence == ("lit_film_border",)
    dim = {**rim, "rim_level": 0.9 * t.rim_min_level}
    assert judge(dim, t).kind == "digital"
    # a DICOM (not a raster) is digital whatever was measured
    assert judge({**cast, "raster": 0.0}, t).kind == "digital"


def test_the_guess_describes_itself_as_json(films):
    photo = photo_sim.simulate(films["cat"], 11, "good", "cat")
    guess = guess_capture(photo.jpeg)
    assert isinstance(guess, CaptureGuess)
    described = json.loads(json.dumps(guess.describe()))
    assert described["kind"] == "photo" and described["evidence"]
    assert 0.5 <= described["score"] <= 1.0


def test_capture_thresholds_are_site_settings(tmp_path):
    settings = load_settings(tmp_path, **{"capture": {"chroma_share_photo": 0.5}})
    assert settings.capture.chroma_share_photo == 0.5
    assert settings.capture.rim_step_photo == CaptureThresholds().rim_step_photo
    assert dataclasses.is_dataclass(settings.capture)
