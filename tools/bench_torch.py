"""The knee-image CNN through PyTorch eager FP32 beside the shipped backends.

    .venv/bin/python tools/bench_torch.py [--runs 300] [--threads 2]

No training checkpoint is kept, so the PyTorch model is rebuilt from tools/knee_cnn.py
(ExportNet around KneeNet) and loaded from the shipped FP32 ONNX initializers: the head and
the calibration affine by name, the five 3x3 convolutions by graph order and shape. The
export folded each BatchNorm into its convolution, so each BatchNorm is set to the identity
plus the folded bias (mean 0, variance 1 - eps, scale 1). Before any timing the rebuilt
model must match ONNX Runtime FP32 within 1e-4 on every output, and the manifest's
reference outputs within their stated tolerance.

Then on one 256x256 input: batch-1 latency p50/p95 and batch-8 throughput for torch eager
FP32, ONNX Runtime FP32 and INT8, OpenVINO FP32 (IR) and INT8 (the INT8 ONNX, whose
quantize/dequantize pairs OpenVINO runs as low-precision ops), with ratios against torch
and against ONNX Runtime FP32. Printed and written to tools/reports/bench_backends.json.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
MODEL_DIR = REPO / "models" / "knee-image"
REPORT = REPO / "tools" / "reports" / "bench_backends.json"
PARITY_TOLERANCE = 1e-4
OUTPUTS = ("p_t_le_-1", "p_t_le_-2.5", "t_score", "heatmap")

sys.path.insert(0, str(REPO / "tools"))

from edgeosteo.hardware import cpu_model  # noqa: E402


def reference_image(description: str) -> np.ndarray:
    """A manifest reference input, built from its description as the selftest builds it."""
    from edgeosteo.selftest import synthetic_input

    return synthetic_input(description, (1, 1, 256, 256))


def knee_crop(pydicom_data: Path) -> np.ndarray:
    """The benchmark input: a 256x256 crop of a real lower-leg radiograph (pydicom-data
    RG3_UNCR) around the knee, normalised by its 1st/99th percentiles like knee_roi/1."""
    import cv2

    from edgeosteo.intake import read_image

    pixels = read_image(pydicom_data / "RG3_UNCR.dcm").radiograph.pixels
    height, width = pixels.shape
    top, left = int(height * 0.05), int(width * 0.30)
    side = int(min(height, width) * 0.40)
    crop = cv2.resize(pixels[top : top + side, left : left + side], (256, 256), cv2.INTER_AREA)
    low, high = np.percentile(crop, [1, 99])
    return np.clip((crop - low) / max(high - low, 1e-6), 0, 1).astype(np.float32)[None, None]


def torch_from_onnx(onnx_path: Path):
    """ExportNet (tools/knee_cnn.py) with the FP32 ONNX weights, in eval mode."""
    import onnx
    import torch
    from knee_cnn import ExportNet, KneeNet
    from onnx import numpy_helper

    model = onnx.load(str(onnx_path))
    weights = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    net = KneeNet()
    convolutions = [m for m in net.features if isinstance(m, torch.nn.Conv2d)]
    norms = [m for m in net.features if isinstance(m, torch.nn.BatchNorm2d)]
    feature_nodes = [
        n for n in model.graph.node if n.op_type == "Conv" and n.input[1] != "net.head.weight"
    ]
    if len(feature_nodes) != len(convolutions):
        raise SystemExit(f"{len(feature_nodes)} ONNX convolutions for {len(convolutions)} layers")
    with torch.no_grad():
        for node, conv, norm in zip(feature_nodes, convolutions, norms, strict=True):
            kernel, bias = weights[node.input[1]], weights[node.input[2]]
            if tuple(kernel.shape) != tuple(conv.weight.shape):
                raise SystemExit(f"{node.input[1]} {kernel.shape} != {tuple(conv.weight.shape)}")
            conv.weight.copy_(torch.from_numpy(kernel.copy()))
            norm.weight.fill_(1.0)
            norm.running_mean.zero_()
            norm.running_var.fill_(1.0 - norm.eps)
            norm.bias.copy_(torch.from_numpy(bias.copy()))
        net.head.weight.copy_(torch.from_numpy(weights["net.head.weight"].copy()))
        net.head.bias.copy_(torch.from_numpy(weights["net.head.bias"].copy()))
    scale = next(n.input[1] for n in model.graph.node if n.op_type == "Mul")
    shift = next(n.input[1] for n in model.graph.node if n.op_type == "Add")
    a, b = weights[scale].reshape(3), weights[shift].reshape(3)
    export = ExportNet(net, float(b[0]), float(a[0]), (a[1], b[1]), (a[2], b[2]))
    return export.eval()


def torch_runner(module) -> Callable[[np.ndarray], dict[str, np.ndarray]]:
    import torch

    def run(image: np.ndarray) -> dict[str, np.ndarray]:
        with torch.inference_mode():
            values = module(torch.from_numpy(image))
        return {name: value.numpy() for name, value in zip(OUTPUTS, values, strict=True)}

    return run


def max_difference(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> float:
    return max(float(np.max(np.abs(a[k] - b[k]))) for k in OUTPUTS)


def check_parity(torch_run, onnx_fp32_run, bench_input: np.ndarray, manifest: dict) -> dict:
    rng = np.random.default_rng(0)
    inputs = {
        "bench_input": bench_input,
        "random_batch_8": rng.random((8, 1, 256, 256), dtype=np.float32),
    }
    for reference in manifest["reference_outputs"]:
        inputs[reference["input"]["image"].split(":")[0]] = reference_image(
            reference["input"]["image"]
        )
    differences = {
        name: max_difference(torch_run(x), onnx_fp32_run(x)) for name, x in inputs.items()
    }
    worst = max(differences.values())
    if worst > PARITY_TOLERANCE:
        raise SystemExit(f"torch vs ONNX FP32 differ by {worst:.2e} > {PARITY_TOLERANCE}")
    for reference in manifest["reference_outputs"]:
        got = torch_run(reference_image(reference["input"]["image"]))
        for name, expected in reference["expected"].items():
            if abs(float(got[name][0]) - expected) > reference["tolerance"]["fp32"] + 1e-5:
                raise SystemExit(f"torch {name} {got[name][0]:.5f} != manifest {expected}")
    return {"max_abs_diff_vs_onnxruntime_fp32": worst, "per_input": differences}


def time_calls(function: Callable[[], object], runs: int, warmup: int) -> list[float]:
    for _ in range(warmup):
        function()
    samples = []
    for _ in range(runs):
        started = time.perf_counter()
        function()
        samples.append(time.perf_counter() - started)
    return samples


def measure(run, single: np.ndarray, batch: np.ndarray, runs: int) -> dict[str, float]:
    latency = np.asarray(time_calls(lambda: run(single), runs, warmup=20)) * 1000.0
    batched = np.asarray(time_calls(lambda: run(batch), max(20, runs // 5), warmup=5))
    return {
        "p50_ms": round(float(np.percentile(latency, 50)), 3),
        "p95_ms": round(float(np.percentile(latency, 95)), 3),
        "batch8_img_per_s": round(batch.shape[0] / float(np.median(batched)), 1),
        "runs": runs,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="knee-image CNN: torch eager vs shipped backends")
    parser.add_argument("--runs", type=int, default=300, help="batch-1 timed calls per backend")
    parser.add_argument("--threads", type=int, default=2, help="threads for every backend")
    parser.add_argument("--json", type=Path, default=REPORT)
    args = parser.parse_args(argv)

    import onnxruntime
    import openvino
    import torch

    from edgeosteo.bench import _pydicom_data
    from edgeosteo.runtime import open_session

    torch.set_num_threads(args.threads)
    manifest = json.loads((MODEL_DIR / "manifest.json").read_text())
    files = {f["role"]: MODEL_DIR / f["path"] for f in manifest["files"]}
    data = _pydicom_data()
    if data is None:
        raise SystemExit("needs the pydicom-data package for the benchmark input")
    single = knee_crop(data)
    batch = np.repeat(single, 8, axis=0)

    def session_runner(path: Path, backend: str):
        session = open_session(path, backend, args.threads)

        def run(image: np.ndarray) -> dict[str, np.ndarray]:
            return session.run({"image": image})

        return run

    runners = {
        "torch_eager_fp32": torch_runner(torch_from_onnx(files["onnx_fp32"])),
        "onnxruntime_fp32": session_runner(files["onnx_fp32"], "onnxruntime"),
        "onnxruntime_int8": session_runner(files["onnx_int8"], "onnxruntime"),
        "openvino_fp32": session_runner(files["openvino_xml"], "openvino"),
        "openvino_int8": session_runner(files["onnx_int8"], "openvino"),
    }
    parity = check_parity(
        runners["torch_eager_fp32"], runners["onnxruntime_fp32"], single, manifest
    )
    agreement = {
        name: round(max_difference(run(single), runners["onnxruntime_fp32"](single)), 6)
        for name, run in runners.items()
    }

    rows = {name: measure(run, single, batch, args.runs) for name, run in runners.items()}
    torch_row, ort_row = rows["torch_eager_fp32"], rows["onnxruntime_fp32"]
    for row in rows.values():
        row["speedup_p50_vs_torch"] = round(torch_row["p50_ms"] / row["p50_ms"], 2)
        row["throughput_vs_torch"] = round(
            row["batch8_img_per_s"] / torch_row["batch8_img_per_s"], 2
        )
        row["speedup_p50_vs_onnxruntime_fp32"] = round(ort_row["p50_ms"] / row["p50_ms"], 2)

    report = {
        "model": f"knee-image {manifest['version']} ({manifest['model']['architecture']})",
        "input": "1x1x256x256 float32: knee-region crop of pydicom-data RG3_UNCR; batch 8 = 8 "
        "copies",
        "threads": args.threads,
        "machine": {
            "cpu": cpu_model(),
            "python": platform.python_version(),
            "torch": torch.__version__,
            "onnxruntime": onnxruntime.__version__,
            "openvino": openvino.__version__,
        },
        "torch_weights": "rebuilt from tools/knee_cnn.py, loaded from knee_image_fp32.onnx "
        "initializers (BatchNorm folded into the convolutions by the export)",
        "parity": parity,
        "max_abs_diff_vs_onnxruntime_fp32": agreement,
        "backends": rows,
        "note": "latency and throughput on the machine named above, measured not asserted",
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report, indent=1) + "\n")

    print(
        f"{report['machine']['cpu']}, {args.threads} threads; parity torch vs ORT FP32 "
        f"{parity['max_abs_diff_vs_onnxruntime_fp32']:.1e}"
    )
    header = (
        f"{'backend':<18}{'p50 ms':>9}{'p95 ms':>9}{'b8 img/s':>10}{'x torch':>9}{'x ORT32':>9}"
    )
    print(header)
    for name, row in rows.items():
        print(
            f"{name:<18}{row['p50_ms']:>9.3f}{row['p95_ms']:>9.3f}{row['batch8_img_per_s']:>10.1f}"
            f"{row['speedup_p50_vs_torch']:>9.2f}{row['speedup_p50_vs_onnxruntime_fp32']:>9.2f}"
        )
    print(f"written to {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
