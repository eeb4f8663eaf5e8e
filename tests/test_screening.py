from __future__ import annotations

import json

import numpy as np
import pytest

import model_factory
from edgeosteo.config import load_settings
from edgeosteo.intake import read_image
from edgeosteo.screening import SCHEMA_VERSION, Screener


def _strings(node):
    if isinstance(node, dict):
        for value in node.values():
            yield from _strings(value)
    elif isinstance(node, list):
        for value in node:
            yield from _strings(value)
    elif isinstance(node, str):
        yield node


def _all_dicoms(pydicom_data_dir, deid_data_dir):
    return sorted(pydicom_data_dir.glob("*.dcm")) + sorted(deid_data_dir.rglob("*.dcm"))


def test_every_real_dicom_screens_without_error(pydicom_data_dir, deid_data_dir, settings):
    screener = Screener(settings)
    radiographs = 0
    for path in _all_dicoms(pydicom_data_dir, deid_data_dir):
        result = screener.screen(path, {"age_years": 66, "sex": "female", "weight_kg": 52})
        as_json = json.loads(result.to_json())
        assert as_json["schema_version"] == SCHEMA_VERSION
        if as_json["intake_error"] is None and as_json["quality"]["verdict"] != "fail":
            radiographs += 1
            assert as_json["image"]["modality"] in ("CR", "DX", "OT", None)
        # identity never appears in the serialised result (short ids such as "7" are
        # checked as whole string values, long ones anywhere in the text)
        serialised = result.to_json()
        strings = set(_strings(as_json))
        for value in result.identity.identifying_values():
            if len(value) >= 4:
                assert value not in serialised, (path.name, value)
            else:
                assert value not in strings, (path.name, value)
    assert radiographs >= 9  # the RG1/RG3 CRs, the DX cat and the grayscale SCs


def test_no_model_installed_is_said_plainly(pydicom_data_dir, settings):
    result = Screener(settings).screen(pydicom_data_dir / "RG3_UNCR.dcm")
    codes = [u.code for u in result.findings.unavailable]
    assert "model.unavailable_body_part" in codes
    assert result.findings.results == ()


def _screener_with_models(tmp_path, governance=None):
    models = model_factory.build_models_dir(tmp_path / "models", image_governance=governance)
    return Screener(load_settings(data_dir=tmp_path / "data", environ={}, models_dir=str(models)))


def _knee_film(knee_dir):
    """A real knee film: the knee models run only on a plausible knee (edgeosteo.knee_check),
    and RG3_UNCR, used here before, is a lower leg/ankle (tests/test_knee_check.py)."""
    return knee_dir / "images" / "N10.JPEG"


def test_models_run_when_they_apply(tmp_path, pydicom_data_dir, knee_dir):
    screener = _screener_with_models(tmp_path)
    patient = {"age_years": 72, "sex": "female", "weight_kg": 48, "height_m": 1.52}
    # RG3's header says EXTREMITY: a knee chosen against it runs no image model until the
    # technician confirms the choice; confirmed, the knee check still finds no knee in it
    refused = screener.screen(pydicom_data_dir / "RG3_UNCR.dcm", patient, body_part="knee")
    assert {f.kind for f in refused.findings.results} == {"clinical"}
    assert "image.wrong_body_part" in [u.code for u in refused.findings.unavailable]
    assert refused.anatomy["header_body_part"] == "EXTREMITY"
    assert refused.anatomy["chosen_body_part"] == "KNEE" and refused.anatomy["conflict"]
    confirmed = screener.screen(
        pydicom_data_dir / "RG3_UNCR.dcm", patient, body_part="knee", body_part_confirmed=True
    )
    assert "image.not_knee" in [u.code for u in confirmed.findings.unavailable]
    film = _knee_film(knee_dir)
    result = screener.screen(film, patient, body_part="knee")
    kinds = {f.kind: f for f in result.findings.results}
    assert set(kinds) == {"clinical", "image"}
    # the heatmap is drawn back onto the image at display size (long side 1024 px)
    rows, columns = read_image(film).radiograph.shape
    scale = min(1.0, 1024 / max(rows, columns))
    shape = (round(rows * scale), round(columns * scale))
    assert kinds["image"].heatmap is not None and kinds["image"].heatmap.shape == shape
    assert np.isfinite(kinds["image"].heatmap).all()
    assert kinds["image"].used_for_referral is False
    assert result.findings.for_referral().kind == "clinical"
    assert 0.0 <= kinds["clinical"].p_low_bone_mass <= 1.0
    # the chest film is not a knee: no image model applies
    chest = screener.screen(pydicom_data_dir / "RG1_UNCR.dcm", patient)
    assert {f.kind for f in chest.findings.results} == {"clinical"}
    assert chest.body_part == "CHEST"


def test_image_model_drives_referral_only_with_added_value(tmp_path, knee_dir):
    from test_models import WITH_VALUE

    screener = _screener_with_models(tmp_path, governance=WITH_VALUE)
    patient = {"age_years": 72, "sex": "female", "weight_kg": 48, "height_m": 1.52}
    result = screener.screen(_knee_film(knee_dir), patient, body_part="KNEE")
    assert result.findings.for_referral().kind == "image"


def test_missing_clinical_answers_are_reported_not_guessed(tmp_path, pydicom_data_dir):
    screener = _screener_with_models(tmp_path)
    result = screener.screen(None, {"sex": "female", "weight_kg": 50})
    missing = [u for u in result.findings.unavailable if u.kind == "clinical"]
    assert missing and missing[0].code == "model.missing_inputs"
    assert "age_years" in missing[0].detail


def _without_chinese_evidence(node):
    if isinstance(node, dict):
        return {k: _without_chinese_evidence(v) for k, v in node.items() if k != "evidence_zh_CN"}
    if isinstance(node, list):
        return [_without_chinese_evidence(v) for v in node]
    return node


def _evidence_items(result):
    referral = result["referral"]
    return [*referral["reasons"], *referral["notes"], *result["clinical"]["indications"]]


def test_every_evidence_is_stored_in_both_languages_and_older_results_reassess(
    tmp_path, pydicom_data_dir
):
    screener = _screener_with_models(tmp_path)
    cases = [
        (pydicom_data_dir / "RG3_UNCR.dcm", {"age_years": 72, "sex": "female", "weight_kg": 48}),
        (pydicom_data_dir / "RG1_UNCR.dcm", {"sex": "male", "prior_fragility_fracture": True}),
        (b"\x00" * 10, {}),
        (None, {"age_years": 50, "sex": "female", "weight_kg": 40, "height_m": 1.6}),
    ]
    for source, patient in cases:
        stored = json.loads(screener.screen(source, patient, body_part="KNEE").to_json())
        items = _evidence_items(stored)
        assert any(item["evidence"] for item in items)
        for item in items:
            assert bool(item["evidence"]) == bool(item["evidence_zh_CN"]), item
        # a result stored before the Chinese evidence existed is decided again as before
        older = _without_chinese_evidence(stored)
        again = json.loads(
            screener.reassess(older, {**patient, "prior_fragility_fracture": False}).to_json()
        )
        for item in _evidence_items(again):
            assert bool(item["evidence"]) == bool(item["evidence_zh_CN"]), item


def test_unreadable_file_is_part_of_the_result_not_an_exception(settings):
    result = Screener(settings).screen(b"\x00" * 10)
    assert result.intake_error["code"] == "intake.not_an_image"
    assert result.intake_error["message_zh_CN"]
    assert [u.code for u in result.findings.unavailable] == ["model.image_refused"]


@pytest.mark.shared_data
def test_knee_jpeg_screens_end_to_end(tmp_path, knee_dir):
    screener = _screener_with_models(tmp_path)
    image = sorted((knee_dir / "images").iterdir())[0]
    result = screener.screen(
        image,
        {"age_years": 60, "sex": "female", "weight_kg": 60, "height_m": 1.6},
        body_part="KNEE",
    )
    assert result.quality.usable
    assert {f.kind for f in result.findings.results} == {"clinical", "image"}


def test_the_stored_heatmap_is_a_referral_models_when_one_drew_one():
    from edgeosteo.findings import Findings, ModelFinding

    def finding(model_id, used, value):
        heat = None if value is None else np.full((4, 4), value, np.float32)
        return ModelFinding(model_id, "1", "image", used_for_referral=used, heatmap=heat)

    experimental, used = finding("a", False, 1.0), finding("b", True, 2.0)
    assert Findings((experimental, used)).first_heatmap()[0, 0] == 2.0
    assert Findings((experimental, finding("c", True, None))).first_heatmap()[0, 0] == 1.0
    assert Findings((finding("c", True, None),)).first_heatmap() is None
