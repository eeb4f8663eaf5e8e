"""Builds small real ONNX models and manifests for tests (no downloads, no torch)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

CLINICAL_FEATURES = ["age_years", "sex_female", "weight_kg", "bmi"]


def _save(model: onnx.ModelProto, path: Path) -> None:
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))


def clinical_model(path: Path) -> None:
    """Logistic scores on [N,4] clinical features: older and lighter means higher risk."""
    weights = np.array([[0.08, 0.06], [0.5, 0.6], [-0.04, -0.05], [0.0, 0.0]], np.float32)
    bias = np.array([-1.5, -3.0], np.float32)
    t_weights = np.array([[-0.03], [-0.3], [0.02], [0.0]], np.float32)
    nodes = [
        helper.make_node("MatMul", ["clinical", "W"], ["z0"]),
        helper.make_node("Add", ["z0", "b"], ["z"]),
        helper.make_node("Sigmoid", ["z"], ["p"]),
        helper.make_node("Split", ["p", "split"], ["p1", "p2"], axis=1),
        helper.make_node("Squeeze", ["p1", "axis1"], ["p_t_le_-1"]),
        helper.make_node("Squeeze", ["p2", "axis1"], ["p_t_le_-2.5"]),
        helper.make_node("MatMul", ["clinical", "Wt"], ["t0"]),
        helper.make_node("Add", ["t0", "bt"], ["t1"]),
        helper.make_node("Squeeze", ["t1", "axis1"], ["t_score"]),
    ]
    inits = [
        numpy_helper.from_array(weights, "W"),
        numpy_helper.from_array(bias, "b"),
        numpy_helper.from_array(t_weights, "Wt"),
        numpy_helper.from_array(np.array([0.3], np.float32), "bt"),
        numpy_helper.from_array(np.array([1, 1], np.int64), "split"),
        numpy_helper.from_array(np.array([1], np.int64), "axis1"),
    ]
    graph = helper.make_graph(
        nodes,
        "clinical",
        [helper.make_tensor_value_info("clinical", TensorProto.FLOAT, ["N", 4])],
        [
            helper.make_tensor_value_info(n, TensorProto.FLOAT, ["N"])
            for n in ("p_t_le_-1", "p_t_le_-2.5", "t_score")
        ],
        inits,
    )
    _save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)]), path)


def image_model(path: Path, size: int = 64, seed: int = 0) -> None:
    """Conv -> ReLU -> global mean -> logistic, plus the conv map as a heatmap output."""
    rng = np.random.default_rng(seed)
    kernel = rng.normal(0, 0.5, (4, 1, 3, 3)).astype(np.float32)
    head = rng.normal(0, 0.5, (4, 2)).astype(np.float32)
    nodes = [
        helper.make_node("Conv", ["image", "K"], ["c"], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c"], ["r"]),
        helper.make_node("ReduceMean", ["r", "hw"], ["g"], keepdims=0),
        helper.make_node("MatMul", ["g", "H"], ["z"]),
        helper.make_node("Sigmoid", ["z"], ["p"]),
        helper.make_node("Split", ["p", "split"], ["p1", "p2"], axis=1),
        helper.make_node("Squeeze", ["p1", "axis1"], ["p_t_le_-1"]),
        helper.make_node("Squeeze", ["p2", "axis1"], ["p_t_le_-2.5"]),
        helper.make_node("ReduceMean", ["r", "axis1"], ["heatmap"], keepdims=0),
    ]
    inits = [
        numpy_helper.from_array(kernel, "K"),
        numpy_helper.from_array(head, "H"),
        numpy_helper.from_array(np.array([2, 3], np.int64), "hw"),
        numpy_helper.from_array(np.array([1, 1], np.int64), "split"),
        numpy_helper.from_array(np.array([1], np.int64), "axis1"),
    ]
    graph = helper.make_graph(
        nodes,
        "image",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["N", 1, size, size])],
        [
            helper.make_tensor_value_info("p_t_le_-1", TensorProto.FLOAT, ["N"]),
            helper.make_tensor_value_info("p_t_le_-2.5", TensorProto.FLOAT, ["N"]),
            helper.make_tensor_value_info("heatmap", TensorProto.FLOAT, ["N", size, size]),
        ],
        inits,
    )
    _save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)]), path)


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def write_manifest(
    directory: Path,
    model_id: str,
    kind: str,
    weights: str,
    governance: dict | None = None,
    body_part: str | None = None,
    size: int = 64,
) -> Path:
    if kind == "clinical":
        inputs = [
            {
                "name": "clinical",
                "shape": [None, 4],
                "dtype": "float32",
                "features": CLINICAL_FEATURES,
            }
        ]
        outputs = ["p_t_le_-1", "p_t_le_-2.5", "t_score"]
        preprocessing = {}
    else:
        inputs = [{"name": "image", "shape": [None, 1, size, size], "dtype": "float32"}]
        outputs = ["p_t_le_-1", "p_t_le_-2.5", "heatmap"]
        preprocessing = {
            "method": "resize_percentile",
            "size": [size, size],
            "percentiles": [1, 99],
        }
    manifest = {
        "schema": 1,
        "id": model_id,
        "version": "0.0.1-test",
        "task": "bone_density",
        "kind": kind,
        "body_part": body_part,
        "view": None,
        "intended_use": "tests only",
        "files": [{"role": "onnx_fp32", "path": weights, "sha256": sha256(directory / weights)}],
        "inputs": inputs,
        "outputs": [{"name": n, "meaning": n} for n in outputs],
        "preprocessing": preprocessing,
        "governance": governance or {},
    }
    path = directory / "manifest.json"
    path.write_text(json.dumps(manifest, indent=2))
    return path


def _beats(lower: float) -> dict:
    diff = {"auc_diff": lower + 0.02, "ci95": [lower, lower + 0.04]}
    return {s: {"p_t_le_-1": diff, "p_t_le_-2.5": diff} for s in ("cv", "loso")}


# A clinical model's record that passes edgeosteo.models.clinical_rule_holds, and the shipped
# knee-clinical's situation (no better than age alone with a source held out), which fails.
CLINICAL_BEATS_BASELINES = {
    "added_value_over_age": _beats(0.01),
    "added_value_over_osta": _beats(0.05),
}
CLINICAL_NOT_ABOVE_AGE = {
    "added_value_over_age": {**_beats(0.01), "loso": _beats(-0.072)["loso"]},
    "added_value_over_osta": _beats(0.05),
}


def build_models_dir(
    root: Path,
    image_governance: dict | None = None,
    clinical_governance: dict | None = CLINICAL_BEATS_BASELINES,
) -> Path:
    """A models directory with a clinical model (by default one whose card shows it beats age
    alone and OSTA, so it drives the referral) and an experimental knee image model."""
    clinical = root / "test-clinical"
    clinical.mkdir(parents=True)
    clinical_model(clinical / "model.onnx")
    write_manifest(
        clinical, "test-clinical", "clinical", "model.onnx", governance=clinical_governance
    )
    image = root / "test-knee-image"
    image.mkdir()
    image_model(image / "model.onnx")
    write_manifest(
        image,
        "test-knee-image",
        "image",
        "model.onnx",
        governance=image_governance,
        body_part="KNEE",
    )
    return root
