"""``edgeosteo bench``: per-stage timings, backend comparison, memory and cold start.

Every number comes from running the product's own functions on real inputs; nothing is
estimated. Stage timings call the same functions Screener.screen() composes, in the same
order, and the whole-screening timing calls screen() itself.
"""

from __future__ import annotations

import base64
import importlib.util
import json
import os
import platform
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import tomli_w

from edgeosteo import __version__
from edgeosteo.clinical import ClinicalAnswers
from edgeosteo.config import CONFIG_FILE_NAME, Settings
from edgeosteo.errors import CommandError
from edgeosteo.hardware import cpu_features, cpu_model, physical_cores, process_memory_kb
from edgeosteo.intake import read_image
from edgeosteo.intake.types import Capture
from edgeosteo.models import ModelManifest
from edgeosteo.runtime import open_session
from edgeosteo.screening import Screener
from edgeosteo.store import CaseStore

BENCH_PATIENT = {
    "age_years": 66,
    "sex": "female",
    "weight_kg": 54,
    "height_m": 1.56,
    "prior_fragility_fracture": "no",
}
BACKEND_VARIANTS = (
    ("onnxruntime", "fp32"),
    ("onnxruntime", "int8"),
    ("openvino", "fp32"),
    ("openvino", "int8"),
)


def summarise(samples_s: list[float]) -> dict[str, float]:
    ms = np.asarray(samples_s) * 1000.0
    return {
        "p50_ms": round(float(np.percentile(ms, 50)), 2),
        "p95_ms": round(float(np.percentile(ms, 95)), 2),
        "mean_ms": round(float(ms.mean()), 2),
        "n": len(ms),
    }


def _timed(function: Callable[[], object]) -> tuple[float, object]:
    start = time.perf_counter()
    value = function()
    return time.perf_counter() - start, value


def _pydicom_data() -> Path | None:
    spec = importlib.util.find_spec("deid_data")
    if spec is None or not spec.origin:
        return None
    folder = Path(spec.origin).resolve().parents[1] / "data_store" / "data"
    return folder if folder.is_dir() else None


def make_inputs(folder: Path, knee_film: Path | None = None) -> dict[str, Path]:
    """The benchmark's inputs: real DICOMs from pydicom-data and images derived from them.
    pydicom-data holds no knee, so the knee models' whole path is timed only on a real knee
    film given as ``knee_film`` (the 2000x2400 JPEG is made from it); without one that JPEG
    is the RG3 lower-leg film, which the knee check refuses (image.not_knee)."""
    data = _pydicom_data()
    if data is None:
        raise RuntimeError("bench needs the pydicom-data package (pip install pydicom-data)")
    folder.mkdir(parents=True, exist_ok=True)
    leg = read_image(data / "RG3_UNCR.dcm").radiograph.pixels
    film = read_image(knee_film).radiograph.pixels if knee_film else leg
    jpeg = cv2.resize((film * 255).astype(np.uint8), (2000, 2400), interpolation=cv2.INTER_CUBIC)
    paths = {
        "jpeg_2000x2400": folder / "knee-2000x2400.jpg",
        "dicom_16bit_uncompressed": data / "RG1_UNCR.dcm",
        "dicom_16bit_jpeg2000": data / "RG1_J2KR.dcm",
        "photo_12mp": folder / "photo-4000x3000.jpg",
        "largest_40mp": folder / "large-7300x5470.png",
    }
    cv2.imwrite(str(paths["jpeg_2000x2400"]), jpeg, [cv2.IMWRITE_JPEG_QUALITY, 92])
    # a phone-like photo: the film on a bright, unevenly lit lightbox, in colour
    photo = np.full((3000, 4000, 3), 235, np.uint8)
    gradient = np.linspace(0.85, 1.0, 4000, dtype=np.float32)[None, :, None]
    photo = (photo * gradient).astype(np.uint8)
    # a film on a lightbox shows bone bright; keep the exposed part of the leg film, since
    # clear (unexposed) film is as bright as the lightbox and hides the film's edge
    film = cv2.resize(jpeg[:, 560:1400], (1000, 2300))
    corners = np.float32([[0, 0], [999, 0], [999, 2299], [0, 2299]])
    target = np.float32([[1480, 380], [2560, 330], [2640, 2700], [1400, 2650]])
    transform = cv2.getPerspectiveTransform(corners, target)
    warped = cv2.warpPerspective(film, transform, (4000, 3000), borderValue=0)
    mask = cv2.warpPerspective(np.full_like(film, 255), transform, (4000, 3000)) > 0
    photo[mask] = np.dstack([warped] * 3)[mask]
    cv2.imwrite(str(paths["photo_12mp"]), photo, [cv2.IMWRITE_JPEG_QUALITY, 85])
    large = cv2.resize(
        (leg * 65535).astype(np.uint16), (7300, 5470), interpolation=cv2.INTER_LINEAR
    )
    cv2.imwrite(str(paths["largest_40mp"]), large)
    return paths


def stage_timings(
    screener: Screener,
    store: CaseStore,
    path: Path,
    body_part: str | None,
    runs: int,
    warmup: int,
    capture: Capture = "digital",
) -> dict[str, dict[str, float]]:
    samples: dict[str, list[float]] = {}
    parsed = ClinicalAnswers.from_dict(BENCH_PATIENT).answers
    for index in range(warmup + runs):
        record = index >= warmup

        def add(name: str, seconds: float, record: bool = record) -> None:
            if record:
                samples.setdefault(name, []).append(seconds)

        # the screener's own stages, timed one by one, then the whole path
        seconds, intake = _timed(lambda: screener.read(path, capture))
        add("decode_find_film_rectify_photo_gates" if capture == "photo" else "decode", seconds)
        seconds, quality = _timed(lambda i=intake: screener.check_quality(i))
        add("quality_gates", seconds)
        choice = screener.choose_body_part(intake, body_part)
        findings = screener.run_models(
            intake, quality, choice, parsed, timings=samples if record else None
        )
        seconds, _ = _timed(lambda f=findings, q=quality: screener.decide(parsed, f, q))
        add("clinical_and_decision", seconds)
        seconds, screening = _timed(
            lambda: screener.screen(path, BENCH_PATIENT, body_part, capture=capture)
        )
        add("whole_screening", seconds)
        seconds, _ = _timed(
            lambda s=screening: store.save_case(
                s.to_dict(), radiograph=s.radiograph, heatmap=s.findings.first_heatmap()
            )
        )
        add("store", seconds)
    return {name: summarise(values) for name, values in samples.items()}


def model_macs(onnx_path: Path) -> int | None:
    """Multiply-accumulates of one image through Conv/MatMul/Gemm (batch 1), or None when
    the onnx package is not installed."""
    try:
        import onnx
        from onnx import shape_inference
    except ImportError:
        return None
    model = onnx.load(str(onnx_path))
    for tensor in model.graph.input:
        dims = tensor.type.tensor_type.shape.dim
        if dims and not dims[0].dim_value:
            dims[0].dim_value = 1
    inferred = shape_inference.infer_shapes(model)
    shapes = {}
    for value in (*inferred.graph.value_info, *inferred.graph.output, *inferred.graph.input):
        dims = [d.dim_value for d in value.type.tensor_type.shape.dim]
        shapes[value.name] = dims
    weights = {t.name: list(t.dims) for t in model.graph.initializer}
    total = 0
    for node in inferred.graph.node:
        if node.op_type == "Conv" and node.output[0] in shapes and node.input[1] in weights:
            out = shapes[node.output[0]]
            kernel = weights[node.input[1]]
            total += int(np.prod(out)) * int(np.prod(kernel[1:]))
        elif node.op_type in ("MatMul", "Gemm") and node.output[0] in shapes:
            operand = weights.get(node.input[1]) or shapes.get(node.input[1])
            if operand:
                total += int(np.prod(shapes[node.output[0]])) * int(operand[0])
    return total


def backend_comparison(
    manifest: ModelManifest, settings: Settings, runs: int, batch: int = 8
) -> list[dict[str, object]]:
    """The same model through each backend and precision it ships for."""
    spec = manifest.inputs[0]
    shape = [d if isinstance(d, int) and d > 0 else 1 for d in (spec.shape or (1,))]
    rng = np.random.default_rng(0)
    single = rng.random(shape, dtype=np.float32)
    batched = rng.random([batch, *shape[1:]], dtype=np.float32)
    rows = []
    for backend, precision in BACKEND_VARIANTS:
        role = {"fp32": ("onnx_fp32", "openvino_xml"), "int8": ("onnx_int8", "openvino_int8_xml")}
        wanted = role[precision][0] if backend == "onnxruntime" else role[precision][1]
        file = manifest.file(wanted) or (
            manifest.file(role[precision][0]) if backend == "openvino" else None
        )
        if file is None:
            continue
        session = open_session(
            file.path, backend, settings.runtime.intra_op_threads, settings.model_cache_dir
        )
        for _ in range(5):
            session.run({spec.name: single})
        latency = [_timed(lambda s=session: s.run({spec.name: single}))[0] for _ in range(runs)]
        throughput_runs = max(3, runs // 5)
        batch_time = [
            _timed(lambda s=session: s.run({spec.name: batched}))[0] for _ in range(throughput_runs)
        ]
        rows.append(
            {
                "backend": backend,
                "precision": precision,
                "file": file.path.name,
                **summarise(latency),
                "throughput_img_s": round(batch / float(np.median(batch_time)), 1),
            }
        )
    reference = next(
        (r for r in rows if r["backend"] == "onnxruntime" and r["precision"] == "fp32"), None
    )
    for row in rows:
        row["speedup_vs_ort_fp32"] = (
            round(reference["p50_ms"] / row["p50_ms"], 2) if reference else None
        )
    return rows


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def server_memory_and_cold_start(largest: Path, models_dir: Path) -> dict[str, object]:
    """Start `edgeosteo serve` in a fresh data dir; measure start, first result and RSS."""
    port = _free_port()
    password = "bench-password-1"
    with tempfile.TemporaryDirectory() as data_dir:
        # its own settings file, so nothing of the box's own (an EDGEOSTEO_CONFIG, the
        # service's ports) applies: on an appliance the service already holds 8080 and 11112
        config = Path(data_dir) / CONFIG_FILE_NAME
        config.write_text(
            tomli_w.dumps({"receiver": {"host": "127.0.0.1", "port": _free_port()}}),
            encoding="utf-8",
        )
        env = {**os.environ, "EDGEOSTEO_ADMIN_PASSWORD": password}
        started = time.perf_counter()
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "edgeosteo.cli",
                "--data-dir",
                data_dir,
                "--config",
                str(config),
                "--models-dir",
                str(models_dir),
                "serve",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
            ],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            base = f"http://127.0.0.1:{port}"
            deadline = started + 60
            while True:
                try:
                    with urllib.request.urlopen(base + "/healthz", timeout=2):
                        break
                except OSError:
                    if time.perf_counter() > deadline or process.poll() is not None:
                        raise CommandError(
                            "bench.server_did_not_start",
                            f"exit status {process.poll()}"
                            if process.poll() is not None
                            else "no answer on /healthz within 60 s",
                        ) from None
                    time.sleep(0.05)
            ready_s = time.perf_counter() - started
            after_start = process_memory_kb(process.pid)
            first = _post(base, largest.with_name("knee-2000x2400.jpg"), password)
            first_result_s = time.perf_counter() - started
            _post(base, largest, password)
            after_largest = process_memory_kb(process.pid)
            return {
                "ready_s": round(ready_s, 2),
                "cold_start_to_first_result_s": round(first_result_s, 2),
                "first_status": first,
                "rss_after_start_mb": round(after_start["VmRSS"] / 1024, 1),
                "peak_rss_after_largest_mb": round(after_largest["VmHWM"] / 1024, 1),
                "largest_input": largest.name,
            }
        finally:
            process.terminate()
            process.wait(timeout=20)


def _post(base: str, image: Path, password: str) -> int:
    boundary = "edgeosteo-bench-boundary"
    answers = json.dumps(BENCH_PATIENT)
    body = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="answers"\r\n\r\n'
            f'{answers}\r\n--{boundary}\r\nContent-Disposition: form-data; name="body_part"'
            f'\r\n\r\nKNEE\r\n--{boundary}\r\nContent-Disposition: form-data; name="image"; '
            f'filename="{image.name}"\r\nContent-Type: application/octet-stream\r\n\r\n'
        ).encode()
        + image.read_bytes()
        + f"\r\n--{boundary}--\r\n".encode()
    )
    request = urllib.request.Request(base + "/api/v1/screenings", data=body, method="POST")
    request.add_header("Content-Type", f"multipart/form-data; boundary={boundary}")
    token = base64.b64encode(f"admin:{password}".encode()).decode()
    request.add_header("Authorization", f"Basic {token}")
    with urllib.request.urlopen(request, timeout=120) as response:
        return int(response.status)


def machine() -> dict[str, object]:
    return {
        "cpu": cpu_model(),
        "machine": platform.machine(),
        "physical_cores": physical_cores(),
        "logical_cpus": os.cpu_count(),
        "cpu_features": cpu_features(),
        "python": platform.python_version(),
        "edgeosteo": __version__,
    }


def run_bench(
    settings: Settings,
    runs: int,
    warmup: int,
    workdir: Path,
    include_server: bool = True,
    knee_film: Path | None = None,
    ct_series: tuple[Path, str] | None = None,
) -> dict[str, object]:
    screener = Screener(settings)
    inputs = make_inputs(workdir / "inputs", knee_film)
    store = CaseStore(workdir / "store")
    report: dict[str, object] = {
        "machine": machine(),
        "runs": runs,
        "warmup": warmup,
        "backend": settings.runtime.backend,
        "precision": settings.runtime.precision,
        "inputs": {},
    }
    for name in (
        "jpeg_2000x2400",
        "dicom_16bit_uncompressed",
        "dicom_16bit_jpeg2000",
        "photo_12mp",
    ):
        body_part = "KNEE" if name in ("jpeg_2000x2400", "photo_12mp") else None
        capture = "photo" if name == "photo_12mp" else "digital"
        report["inputs"][name] = stage_timings(
            screener, store, inputs[name], body_part, runs, warmup, capture
        )
    models = {}
    for manifest in screener.registry:
        if manifest.kind != "image":
            continue  # clinical and fused graphs are a few hundred multiply-adds
        fp32 = manifest.file("onnx_fp32")
        models[manifest.id] = {
            "macs_per_image": model_macs(fp32.path) if fp32 else None,
            "backends": backend_comparison(manifest, settings, runs),
        }
    report["models"] = models
    if ct_series is not None:
        report["ct_series"] = ct_series_timings(screener, *ct_series, runs, warmup)
    if include_server:
        report["server"] = server_memory_and_cold_start(inputs["largest_40mp"], settings.models_dir)
    return report


def ct_series_timings(
    screener: Screener, folder: Path, points: str, runs: int, warmup: int
) -> dict[str, object]:
    """A CT series already complete on disk to the ct-l1 result: reading the folder
    (headers, order, int16 HU volume), the measurement, and the whole path
    (Screener.measure_series, as the CLI runs it). Page cache warm after the warm-up."""
    from edgeosteo import methods
    from edgeosteo.intake.ct_series import read_ct_series
    from edgeosteo.methods.ct_l1 import parse_request

    request = parse_request(points)
    samples: dict[str, list[float]] = {"ct_read_series": [], "ct_measure": [], "ct_whole": []}
    result: dict[str, object] = {}
    slices = 0
    for i in range(warmup + runs):
        t_read, series = _timed(lambda: read_ct_series(folder))
        slices = series.shape[0]
        t_measure, _ = _timed(lambda s=series: methods.measure_series(request, s, screener.methods))
        del series
        t_whole, result = _timed(lambda: screener.measure_series(folder, request))
        if i >= warmup:
            samples["ct_read_series"].append(t_read)
            samples["ct_measure"].append(t_measure)
            samples["ct_whole"].append(t_whole)
    return {
        "series": folder.name,
        "slices": slices,
        "status": result.get("status"),
        "value": result.get("value"),
        "code": result.get("code"),
        **{name: summarise(values) for name, values in samples.items()},
    }


def format_report(report: dict[str, object]) -> str:
    lines = [
        f"edgeosteo {report['machine']['edgeosteo']} on {report['machine']['cpu']} "
        f"({report['machine']['physical_cores']} cores, "
        f"{' '.join(report['machine']['cpu_features'])})",
        f"backend {report['backend']} {report['precision']}, {report['runs']} runs after "
        f"{report['warmup']} warm-up",
        "",
    ]
    for name, stages in report["inputs"].items():
        lines.append(f"{name}")
        for stage, numbers in stages.items():
            lines.append(
                f"  {stage:<34}p50 {numbers['p50_ms']:>9.2f} ms   p95 {numbers['p95_ms']:>9.2f} ms"
            )
    for model_id, details in report.get("models", {}).items():
        macs = details["macs_per_image"]
        lines.append("")
        lines.append(f"{model_id}: {macs / 1e6:.1f} M MACs per image" if macs else model_id)
        for row in details["backends"]:
            lines.append(
                f"  {row['backend']:<12}{row['precision']:<6}p50 {row['p50_ms']:>7.2f} ms"
                f"  p95 {row['p95_ms']:>7.2f} ms  {row['throughput_img_s']:>7.1f} img/s"
                f"  x{row['speedup_vs_ort_fp32']} vs ORT FP32"
            )
    ct = report.get("ct_series")
    if ct:
        lines.append("")
        lines.append(
            f"ct series {ct['series']}: {ct['status']} {ct.get('value') or ct.get('code')}"
        )
        for stage in ("ct_read_series", "ct_measure", "ct_whole"):
            numbers = ct[stage]
            lines.append(
                f"  {stage:<34}p50 {numbers['p50_ms']:>9.2f} ms   p95 {numbers['p95_ms']:>9.2f} ms"
            )
    server = report.get("server")
    if server:
        lines.append("")
        lines.append(
            f"server: ready {server['ready_s']} s, first result "
            f"{server['cold_start_to_first_result_s']} s, RSS after start "
            f"{server['rss_after_start_mb']} MB, peak after {server['largest_input']} "
            f"{server['peak_rss_after_largest_mb']} MB"
        )
    return "\n".join(lines)
