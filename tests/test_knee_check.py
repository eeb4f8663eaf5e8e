"""The knee models run only on a plausible knee (edgeosteo.knee_check): every real non-knee
image in the test packages is refused, the knee development films pass, and a chest screened
as KNEE runs no knee image model."""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

import numpy as np
import pytest

import model_factory
from edgeosteo.config import load_settings
from edgeosteo.errors import IntakeError
from edgeosteo.intake import read_image
from edgeosteo.knee_check import NOT_KNEE, KneeCheck, knee_plausibility
from edgeosteo.messages import CATALOGUE
from edgeosteo.screening import Screener
from edgeosteo.warnings_filter import install_warning_filters

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))
from eval_knee_check import content_of, public_files

# tools/reports/knee_check.json: 147 of 147 development films accepted (45 A, 57 B, 45 C)
MEASURED_SHARE = 1.0
SAMPLE = 30


def _readable_public() -> list[tuple[str, Path]]:
    install_warning_filters()  # read at collection, before the autouse fixture puts them back
    out = []
    for source, path in public_files():
        try:
            read_image(path)
        except IntakeError:
            continue
        out.append((source, path))
    return out


PUBLIC = _readable_public()


def test_every_public_image_is_classified_and_none_is_a_knee():
    assert len(PUBLIC) >= 55  # 48 in pydicom-data, 12 in deid-data when this was written
    assert {s for s, _ in PUBLIC} == {"pydicom-data", "deid-data"}
    assert all(content_of(p) != "UNCLASSIFIED" for _, p in PUBLIC)


@pytest.mark.parametrize("source,path", PUBLIC, ids=[f"{s}:{p.name}" for s, p in PUBLIC])
def test_non_knee_image_is_not_a_plausible_knee(source, path):
    verdict = knee_plausibility(read_image(path).radiograph.pixels)
    assert isinstance(verdict, KneeCheck)
    assert not verdict.plausible, (path.name, dict(verdict.measures))
    assert verdict.code == NOT_KNEE and verdict.knees == 0


def test_result_is_frozen_and_worded():
    verdict = knee_plausibility(np.zeros((64, 64), np.float32))
    assert verdict.plausible is False and verdict.code == NOT_KNEE
    with pytest.raises(AttributeError):
        verdict.plausible = True  # type: ignore[misc]
    assert NOT_KNEE in CATALOGUE and all(CATALOGUE[NOT_KNEE])


def _knee_sample(knee_dir: Path) -> list[Path]:
    with (knee_dir / "clinical.csv").open(newline="", encoding="utf-8") as handle:
        images = sorted(row["image"] for row in csv.DictReader(handle))
    step = max(1, len(images) // SAMPLE)
    return [knee_dir / "images" / name for name in images[::step][:SAMPLE]]


def test_knee_films_pass(knee_dir):
    sample = _knee_sample(knee_dir)
    verdicts = {p.name: knee_plausibility(read_image(p).radiograph.pixels) for p in sample}
    refused = [name for name, v in verdicts.items() if not v.plausible]
    assert len(sample) == SAMPLE
    assert (SAMPLE - len(refused)) / SAMPLE >= MEASURED_SHARE, refused
    assert all(v.knees >= 1 and v.measures for v in verdicts.values() if v.plausible)


def _screener(tmp_path: Path) -> Screener:
    models = model_factory.build_models_dir(tmp_path / "models")
    return Screener(load_settings(data_dir=tmp_path / "data", environ={}, models_dir=str(models)))


PATIENT = {"age_years": 72, "sex": "female", "weight_kg": 48, "height_m": 1.52}


@pytest.mark.parametrize("name", ["RG1_UNCR.dcm", "RG3_UNCR.dcm"])
def test_non_knee_screened_as_knee_runs_no_knee_image_model(tmp_path, pydicom_data_dir, name):
    # confirmed against the header (CHEST, EXTREMITY), so it is the knee check that refuses
    result = _screener(tmp_path).screen(
        pydicom_data_dir / name, PATIENT, body_part="KNEE", body_part_confirmed=True
    )
    assert {f.kind for f in result.findings.results} == {"clinical"}
    codes = [u.code for u in result.findings.unavailable]
    assert NOT_KNEE in codes
    unavailable = next(u for u in result.findings.unavailable if u.code == NOT_KNEE)
    assert unavailable.kind == "image" and unavailable.model_id is None
    stored = json.loads(result.to_json())
    assert NOT_KNEE in json.dumps(stored)


def test_knee_film_screened_as_knee_runs_the_knee_image_model(tmp_path, knee_dir):
    film = _knee_sample(knee_dir)[0]
    result = _screener(tmp_path).screen(film, PATIENT, body_part="KNEE")
    assert {f.kind for f in result.findings.results} == {"clinical", "image"}
    assert NOT_KNEE not in [u.code for u in result.findings.unavailable]
