"""The models in models/ as shipped: hashes, reference outputs, and backend agreement."""

from __future__ import annotations

import numpy as np
import pytest

from edgeosteo.config import REPO_MODELS_DIR
from edgeosteo.models import ModelRegistry, verify, verify_files
from edgeosteo.runtime import BACKENDS, open_session
from edgeosteo.selftest import reference_inputs

SHIPPED = ModelRegistry(REPO_MODELS_DIR)
# Stated tolerance between ONNX Runtime and OpenVINO on the same FP32 file (f32 hint).
BACKEND_TOLERANCE = 1e-4
# Stated tolerance against the reference outputs stored in each manifest.
REFERENCE_TOLERANCE = 1e-4


def test_models_directory_loads_without_problems():
    assert len(SHIPPED) >= 1
    assert SHIPPED.problems == {}


@pytest.mark.parametrize("manifest", list(SHIPPED), ids=lambda m: m.id)
def test_every_shipped_file_matches_its_hash(manifest):
    assert all(check.ok for check in verify_files(manifest))
    verify(manifest)


def _reference_inputs(manifest):
    for case in manifest.reference_outputs:
        yield reference_inputs(manifest, case), case["expected"]


@pytest.mark.parametrize("manifest", list(SHIPPED), ids=lambda m: m.id)
def test_backends_agree_and_reproduce_reference_outputs(manifest, tmp_path):
    cases = list(_reference_inputs(manifest))
    assert cases, f"{manifest.id} stores no reference inputs"
    weights = manifest.weights_for("onnxruntime", "fp32").path
    sessions = {b: open_session(weights, b, 1, tmp_path) for b in BACKENDS}
    for inputs, expected in cases:
        outputs = {b: s.run(inputs) for b, s in sessions.items()}
        for name, value in expected.items():
            ort_value = float(np.asarray(outputs["onnxruntime"][name]).reshape(-1)[0])
            ov_value = float(np.asarray(outputs["openvino"][name]).reshape(-1)[0])
            assert abs(ort_value - ov_value) <= BACKEND_TOLERANCE, (name, ort_value, ov_value)
            assert abs(ort_value - float(value)) <= REFERENCE_TOLERANCE, (name, ort_value, value)
