from __future__ import annotations

import json
from pathlib import Path

import pytest

import model_factory
from edgeosteo.errors import ModelError
from edgeosteo.models import ModelManifest, ModelRegistry, added_value_established, verify

WITH_VALUE = {
    "added_value_over_clinical": {
        "cv": {"auc_diff": 0.04, "ci95": [0.01, 0.07], "image_alone_auc": 0.66},
        "loso": {"auc_diff": 0.03, "ci95": [0.005, 0.06], "image_alone_auc": 0.61},
    }
}
CV_ONLY = {
    "added_value_over_clinical": {
        "cv": {"auc_diff": 0.04, "ci95": [0.01, 0.07], "image_alone_auc": 0.66},
        "loso": {"auc_diff": 0.01, "ci95": [-0.03, 0.05], "image_alone_auc": 0.61},
    }
}
# The stack gains in LOSO only by reversing an image score that ranks below chance there
# (as cnn_ssl_reg did in the knee-image research: fused - clinical LOSO CI above zero with
# an image-alone LOSO AUC of 0.35).
REVERSED_IMAGE = {
    "added_value_over_clinical": {
        "cv": {"auc_diff": 0.04, "ci95": [0.01, 0.07], "image_alone_auc": 0.66},
        "loso": {"auc_diff": 0.03, "ci95": [0.006, 0.063], "image_alone_auc": 0.35},
    }
}


def test_registry_reads_manifests(tmp_path):
    registry = ModelRegistry(model_factory.build_models_dir(tmp_path / "models"))
    assert {m.id for m in registry} == {"test-clinical", "test-knee-image"}
    assert [m.id for m in registry.of_kind("image", "knee")] == ["test-knee-image"]
    assert registry.of_kind("image", "CHEST") == []


def test_tampered_byte_is_refused(tmp_path):
    models = model_factory.build_models_dir(tmp_path / "models")
    manifest = ModelManifest.load(models / "test-clinical" / "manifest.json")
    verify(manifest)
    weights = models / "test-clinical" / "model.onnx"
    data = bytearray(weights.read_bytes())
    data[len(data) // 2] ^= 0x01
    weights.write_bytes(bytes(data))
    with pytest.raises(ModelError) as caught:
        verify(manifest)
    assert caught.value.code == "model.hash_mismatch"
    weights.unlink()
    with pytest.raises(ModelError) as caught:
        verify(manifest)
    assert caught.value.code == "model.file_missing"


def test_invalid_manifest_is_reported_not_raised(tmp_path):
    models = model_factory.build_models_dir(tmp_path / "models")
    (models / "test-clinical" / "manifest.json").write_text('{"schema": 1, "id": "x"}')
    registry = ModelRegistry(models)
    assert [m.id for m in registry] == ["test-knee-image"]
    assert registry.problems["test-clinical"].code == "model.manifest_invalid"


def test_manifest_cannot_point_outside_its_directory(tmp_path):
    models = model_factory.build_models_dir(tmp_path / "models")
    path = models / "test-clinical" / "manifest.json"
    raw = json.loads(path.read_text())
    raw["files"][0]["path"] = "../../etc/passwd"
    with pytest.raises(ModelError):
        ModelManifest.from_dict(raw, path.parent)


@pytest.mark.parametrize(
    ("governance", "expected"),
    [
        (WITH_VALUE, True),
        (CV_ONLY, False),
        (REVERSED_IMAGE, False),
        ({}, False),
        (
            {
                "added_value_over_clinical": {
                    "cv": {"ci95": [0.0, 0.1], "image_alone_auc": 0.7},
                    "loso": {"ci95": [0.1, 0.2], "image_alone_auc": 0.7},
                }
            },
            False,
        ),
        (  # a card written before the image-alone check: no direction recorded, no referral
            {
                "added_value_over_clinical": {
                    "cv": {"ci95": [0.01, 0.1]},
                    "loso": {"ci95": [0.01, 0.2]},
                }
            },
            False,
        ),
        (
            {
                "added_value_over_clinical": {
                    "cv": {"ci95": [0.01, 0.1], "image_alone_auc": "n/a"},
                    "loso": {"ci95": [0.01, 0.2], "image_alone_auc": 0.7},
                }
            },
            False,
        ),
    ],
)
def test_governance_rule_follows_the_card(tmp_path, governance, expected):
    models = model_factory.build_models_dir(tmp_path / "models", image_governance=governance)
    image = ModelRegistry(models).get("test-knee-image")
    assert added_value_established(image) is expected
    assert image.used_for_referral is expected


def test_a_flag_in_the_manifest_cannot_override_the_rule(tmp_path):
    models = model_factory.build_models_dir(
        tmp_path / "models", image_governance={**CV_ONLY, "used_for_referral": True}
    )
    assert ModelRegistry(models).get("test-knee-image").used_for_referral is False


@pytest.mark.parametrize(
    ("governance", "expected"),
    [
        (model_factory.CLINICAL_BEATS_BASELINES, True),
        (model_factory.CLINICAL_NOT_ABOVE_AGE, False),
        ({}, False),
        ({"used_for_referral": True}, False),
        (  # beats age, but OSTA was compared in CV only
            {
                **model_factory.CLINICAL_BEATS_BASELINES,
                "added_value_over_osta": {
                    "cv": model_factory.CLINICAL_BEATS_BASELINES["added_value_over_osta"]["cv"]
                },
            },
            False,
        ),
        (  # one target whose CI touches zero
            {
                **model_factory.CLINICAL_BEATS_BASELINES,
                "added_value_over_osta": {
                    "cv": {"p_t_le_-1": {"ci95": [0.0, 0.1]}},
                    "loso": {"p_t_le_-1": {"ci95": [0.01, 0.1]}},
                },
            },
            False,
        ),
        (
            {
                **model_factory.CLINICAL_BEATS_BASELINES,
                "added_value_over_age": {"cv": {}, "loso": {}},
            },
            False,
        ),
        (
            {
                **model_factory.CLINICAL_BEATS_BASELINES,
                "added_value_over_age": {"cv": {"p": {"ci95": "n/a"}}, "loso": {}},
            },
            False,
        ),
    ],
)
def test_clinical_model_drives_only_when_it_beats_age_and_osta(tmp_path, governance, expected):
    models = model_factory.build_models_dir(tmp_path / "models", clinical_governance=governance)
    clinical = ModelRegistry(models).get("test-clinical")
    assert added_value_established(clinical) is expected
    assert clinical.used_for_referral is expected


def test_shipped_clinical_model_does_not_drive_the_referral():
    """Its card: LOSO minus age -0.041 (95 % CI -0.072 to -0.017), so it is information."""
    registry = ModelRegistry(Path(__file__).resolve().parents[1] / "models")
    manifest = registry.get("knee-clinical")
    assert manifest is not None and manifest.kind == "clinical"
    assert manifest.used_for_referral is False
    assert manifest.governance["used_for_referral"] is False
