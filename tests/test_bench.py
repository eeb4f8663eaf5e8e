"""The benchmark runs and reports every stage; the figures themselves are not asserted."""

from __future__ import annotations

import pytest

import model_factory
from edgeosteo.bench import format_report, model_macs, run_bench, summarise
from edgeosteo.screening import Screener


def test_summary_percentiles():
    numbers = summarise([0.001 * i for i in range(1, 101)])
    assert numbers["n"] == 100
    assert 50.0 <= numbers["p50_ms"] <= 51.0
    assert 95.0 <= numbers["p95_ms"] <= 96.0


def test_macs_of_a_known_graph(tmp_path):
    model_factory.image_model(tmp_path / "image.onnx", size=64)
    # conv 4x1x3x3 over 64x64 outputs, plus the 4x2 head
    assert model_macs(tmp_path / "image.onnx") == 4 * 64 * 64 * 9 + 2 * 4


@pytest.fixture(scope="module")
def bench_report(tmp_path_factory):
    from edgeosteo.config import load_settings

    tmp_path = tmp_path_factory.mktemp("bench")
    models = model_factory.build_models_dir(tmp_path / "models")
    configured = load_settings(data_dir=tmp_path / "data", environ={}, models_dir=str(models))
    return run_bench(configured, runs=2, warmup=1, workdir=tmp_path / "bench", include_server=False)


def test_bench_reports_each_stage_and_backend(bench_report):
    report = bench_report
    knee = report["inputs"]["jpeg_2000x2400"]
    for stage in (
        "decode",
        "quality_gates",
        "clinical_and_decision",
        "whole_screening",
        "store",
    ):
        assert knee[stage]["n"] == 2 and knee[stage]["p50_ms"] > 0
    backends = report["models"]["test-knee-image"]["backends"]
    assert {(r["backend"], r["precision"]) for r in backends} >= {
        ("onnxruntime", "fp32"),
        ("openvino", "fp32"),
    }
    assert "jpeg_2000x2400" in format_report(report)


def test_bench_times_the_knee_models_stages_on_a_real_knee_film(tmp_path, knee_dir):
    """pydicom-data holds no knee: given a real knee film, the bench times the knee
    models' whole path; without one, its JPEG (the RG3 lower leg) runs no knee model."""
    from edgeosteo.config import load_settings

    models = model_factory.build_models_dir(tmp_path / "models")
    configured = load_settings(data_dir=tmp_path / "data", environ={}, models_dir=str(models))
    report = run_bench(
        configured,
        runs=2,
        warmup=1,
        workdir=tmp_path / "bench",
        include_server=False,
        knee_film=knee_dir / "images" / "N10.JPEG",
    )
    knee = report["inputs"]["jpeg_2000x2400"]
    for stage in ("preprocess:test-knee-image", "model:test-knee-image"):
        assert knee[stage]["n"] == 2 and knee[stage]["p50_ms"] > 0


def test_without_a_knee_film_the_benchs_jpeg_runs_no_knee_model(bench_report):
    assert "model:test-knee-image" not in bench_report["inputs"]["jpeg_2000x2400"]


def test_whole_screening_benchmark(benchmark, pydicom_data_dir, settings):
    screener = Screener(settings)
    path = pydicom_data_dir / "RG1_UNCR.dcm"
    result = benchmark(
        lambda: screener.screen(path, {"age_years": 70, "sex": "female", "weight_kg": 50})
    )
    assert result.quality.usable


def test_bench_server_runs_beside_a_box_that_holds_the_default_ports(tmp_path):
    """On an appliance the service always holds the page's and the receiver's ports: the
    bench's own server must open free ones for everything it starts."""
    import socket

    from edgeosteo.bench import make_inputs, server_memory_and_cold_start
    from edgeosteo.config import ReceiverSettings, WebSettings

    models = model_factory.build_models_dir(tmp_path / "models")
    inputs = make_inputs(tmp_path / "inputs")
    held = []
    for port in (WebSettings().port, ReceiverSettings().port):
        holder = socket.socket()
        try:
            holder.bind(("127.0.0.1", port))
            holder.listen()
            held.append(holder)
        except OSError:  # something already listens there: the port is taken either way
            holder.close()
    try:
        server = server_memory_and_cold_start(inputs["largest_40mp"], models)
    finally:
        for holder in held:
            holder.close()
    assert server["first_status"] == 201
    assert server["rss_after_start_mb"] > 0


def test_bench_times_a_ct_series_from_disk_to_the_result(tmp_path):
    import json
    import sys
    from pathlib import Path

    from edgeosteo.bench import ct_series_timings
    from edgeosteo.config import load_settings

    repo = Path(__file__).resolve().parents[1]
    sys.path.insert(0, str(repo / "tools"))
    from phantoms import ct

    truth = ct.make_series(
        tmp_path / "series", 40, matrix=128, slice_thickness_mm=2.5, levels=("T12", "L1", "L2")
    )
    col, row = truth.sagittal_tap("L1")
    points = json.dumps({"level": "L1", "sagittal": [col, row]})
    configured = load_settings(
        data_dir=tmp_path / "data", environ={}, models_dir=str(repo / "models")
    )
    timings = ct_series_timings(Screener(configured), tmp_path / "series", points, 2, 1)
    assert timings["status"] == "measured" and timings["slices"] == len(truth.slice_z_mm)
    assert abs(timings["value"] - truth.level("L1").core_hu) <= 5
    for stage in ("ct_read_series", "ct_measure", "ct_whole"):
        assert timings[stage]["n"] == 2 and timings[stage]["p50_ms"] > 0
    report = {
        "machine": {"edgeosteo": "x", "cpu": "c", "physical_cores": 2, "cpu_features": []},
        "backend": "onnxruntime",
        "precision": "fp32",
        "runs": 2,
        "warmup": 1,
        "inputs": {},
        "ct_series": timings,
    }
    assert "ct_whole" in format_report(report)
