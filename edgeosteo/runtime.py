"""One small interface over two CPU inference backends: ONNX Runtime and OpenVINO.

Sessions are created once and reused; threads are set explicitly (intra-op = physical
cores by default) and ONNX Runtime does not spin-wait, so a busy box stays responsive.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Protocol

import numpy as np

from edgeosteo.errors import ModelError
from edgeosteo.hardware import physical_cores

BACKENDS = ("onnxruntime", "openvino")


def import_openvino():
    """OpenVINO without its usage telemetry.

    ``import openvino`` sends an anonymous "import" event to Google Analytics and writes a
    client id under ``$HOME/intel`` unless a consent file there says no (on the box $HOME is
    the data directory). A screening station in a hospital must not call out on its own, so
    the telemetry package is made unimportable first and OpenVINO uses its built-in stub.
    """
    if "openvino" not in sys.modules:
        sys.modules.setdefault("openvino_telemetry", None)
    import openvino

    return openvino


def resolve_threads(requested: int) -> int:
    return requested if requested > 0 else physical_cores()


class InferenceSession(Protocol):
    backend: str
    input_names: tuple[str, ...]
    output_names: tuple[str, ...]

    def run(self, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]: ...


class OnnxRuntimeSession:
    backend = "onnxruntime"

    def __init__(self, model_path: Path, threads: int) -> None:
        try:
            import onnxruntime as ort

            options = ort.SessionOptions()
            options.intra_op_num_threads = threads
            options.inter_op_num_threads = 1
            options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
            options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
            options.add_session_config_entry("session.intra_op.allow_spinning", "0")
            options.add_session_config_entry("session.inter_op.allow_spinning", "0")
            options.log_severity_level = 3
            self._session = ort.InferenceSession(
                str(model_path), sess_options=options, providers=["CPUExecutionProvider"]
            )
        except Exception as exc:
            raise ModelError("model.backend_unavailable", f"onnxruntime: {exc}") from exc
        self.input_names = tuple(i.name for i in self._session.get_inputs())
        self.output_names = tuple(o.name for o in self._session.get_outputs())

    def run(self, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        try:
            values = self._session.run(list(self.output_names), dict(inputs))
        except Exception as exc:
            raise ModelError("model.inference_failed", f"onnxruntime: {exc}") from exc
        return dict(zip(self.output_names, values, strict=True))


class OpenVinoSession:
    backend = "openvino"

    def __init__(self, model_path: Path, threads: int, cache_dir: Path | None) -> None:
        try:
            ov = import_openvino()
            core = ov.Core()
            if cache_dir is not None:
                cache_dir.mkdir(parents=True, exist_ok=True)
                core.set_property({"CACHE_DIR": str(cache_dir)})
            # f32 hint: without it some CPUs run FP32 graphs in bf16 (differences ~4e-4)
            config = {
                "INFERENCE_NUM_THREADS": threads,
                "PERFORMANCE_HINT": "LATENCY",
                "INFERENCE_PRECISION_HINT": "f32",
            }
            self._compiled = core.compile_model(str(model_path), "CPU", config)
        except Exception as exc:
            raise ModelError("model.backend_unavailable", f"openvino: {exc}") from exc
        self.input_names = tuple(_port_name(i) for i in self._compiled.inputs)
        self.output_names = tuple(_port_name(o) for o in self._compiled.outputs)
        self._request = self._compiled.create_infer_request()
        # an infer request is not thread-safe; the box serialises inference anyway
        self._lock = threading.Lock()

    def run(self, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        try:
            with self._lock:
                result = self._request.infer(dict(inputs))
                return {
                    name: np.array(result[output])
                    for name, output in zip(self.output_names, self._compiled.outputs, strict=True)
                }
        except Exception as exc:
            raise ModelError("model.inference_failed", f"openvino: {exc}") from exc


def _port_name(port) -> str:
    """The model's own name for a port. A port can carry several tensor names, and an IR
    converted from PyTorch also lists internal ones such as "/Gather_output_0";
    get_any_name() may return either, so prefer the names that are not internal."""
    names = sorted(port.get_names(), key=lambda name: (name.startswith("/"), name))
    return names[0] if names else port.get_any_name()


def open_session(
    model_path: Path, backend: str, threads: int = 0, cache_dir: Path | None = None
) -> InferenceSession:
    """An inference session on the CPU for an ONNX (or OpenVINO IR .xml) model file."""
    if backend == "onnxruntime":
        return OnnxRuntimeSession(model_path, resolve_threads(threads))
    if backend == "openvino":
        return OpenVinoSession(model_path, resolve_threads(threads), cache_dir)
    raise ModelError("model.backend_unavailable", f"unknown backend {backend!r}")
