from __future__ import annotations

import numpy as np
import pytest

import model_factory
from edgeosteo.errors import ModelError
from edgeosteo.runtime import BACKENDS, open_session, physical_cores

# FP32 on the same CPU: the backends reorder sums differently, nothing more.
BACKEND_TOLERANCE = 1e-4


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    root = tmp_path_factory.mktemp("onnx")
    model_factory.clinical_model(root / "clinical.onnx")
    model_factory.image_model(root / "image.onnx", size=64)
    return root


def test_backends_agree_on_a_clinical_graph(built, tmp_path):
    features = np.array([[70, 1, 50, 22], [30, 0, 80, 25], [55, 1, 62, 24]], np.float32)
    outputs = {
        backend: open_session(built / "clinical.onnx", backend, 1, tmp_path / "cache").run(
            {"clinical": features}
        )
        for backend in BACKENDS
    }
    for name in ("p_t_le_-1", "p_t_le_-2.5", "t_score"):
        a, b = outputs["onnxruntime"][name], outputs["openvino"][name]
        assert a.shape == (3,)
        np.testing.assert_allclose(a, b, atol=BACKEND_TOLERANCE)
    # the older, lighter woman scores higher than the young heavy man
    assert outputs["onnxruntime"]["p_t_le_-1"][0] > outputs["onnxruntime"]["p_t_le_-1"][1]


def test_backends_agree_on_an_image_graph_with_dynamic_batch(built, tmp_path):
    rng = np.random.default_rng(0)
    for batch in (1, 3):
        image = rng.random((batch, 1, 64, 64)).astype(np.float32)
        ort = open_session(built / "image.onnx", "onnxruntime", 2).run({"image": image})
        ov = open_session(built / "image.onnx", "openvino", 2, tmp_path).run({"image": image})
        assert ort["heatmap"].shape == (batch, 64, 64)
        for name in ("p_t_le_-1", "p_t_le_-2.5", "heatmap"):
            np.testing.assert_allclose(ort[name], ov[name], atol=BACKEND_TOLERANCE)


def test_openvino_uses_its_cache_directory(built, tmp_path):
    cache = tmp_path / "ov-cache"
    open_session(built / "image.onnx", "openvino", 1, cache)
    assert any(cache.iterdir())


def test_unknown_backend_and_broken_file_are_typed_errors(tmp_path):
    broken = tmp_path / "broken.onnx"
    broken.write_bytes(b"not a model")
    for backend in BACKENDS:
        with pytest.raises(ModelError) as caught:
            open_session(broken, backend)
        assert caught.value.code == "model.backend_unavailable"
    with pytest.raises(ModelError):
        open_session(broken, "tensorflow")


def test_physical_cores_is_positive():
    assert physical_cores() >= 1


def _python_in_fresh_home(home, code: str) -> None:
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k not in ("CI", "TF_BUILD", "JENKINS_URL")}
    env["HOME"] = str(home)
    subprocess.run([sys.executable, "-c", code], env=env, check=True, timeout=120)


def test_openvino_sessions_send_no_telemetry(built, tmp_path):
    # Plain `import openvino` writes a Google Analytics client id into $HOME/intel and sends
    # an "import" event (CI variables removed: the telemetry package declines in CI).
    plain = tmp_path / "plain-home"
    plain.mkdir()
    _python_in_fresh_home(plain, "import openvino")
    assert (plain / "intel" / "openvino_ga_cid").exists()

    box = tmp_path / "box-home"
    box.mkdir()
    _python_in_fresh_home(
        box,
        "import sys, numpy as np\n"
        "from edgeosteo.runtime import open_session\n"
        f"s = open_session({str(built / 'clinical.onnx')!r}, 'openvino', 1, None)\n"
        "s.run({'clinical': np.array([[70, 1, 50, 22]], np.float32)})\n"
        "import openvino.tools.ovc.telemetry_utils as t\n"
        "assert t.tm.__name__.endswith('telemetry_stub'), t.tm\n",
    )
    assert list(box.iterdir()) == []
