"""The committed emulated-ARM report (tools/reports/arm64.json, written by tools/arm64-check)
says what the script checks, from a passing run, under emulation, and the README and
firmware/README.md quote it; and the synthetic CPU view the guest is given
(tools/arm64_sysfs.py) is the consistent pair ONNX Runtime and OpenVINO read. No qemu here."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))

import arm64_guest  # noqa: E402
import arm64_sysfs  # noqa: E402

REPORT = ROOT / "tools" / "reports" / "arm64.json"
AGREEMENT_PAIRS = (
    "int8_vs_fp32_onnxruntime",
    "int8_vs_fp32_openvino",
    "onnxruntime_vs_openvino_fp32",
    "onnxruntime_vs_openvino_int8",
    "shipped_openvino_int8_vs_fp32",
)


@pytest.fixture(scope="module")
def report() -> dict:
    return json.loads(REPORT.read_text())


def test_the_report_is_from_a_passing_run_of_every_check(report) -> None:
    assert tuple(report["checks"]) == arm64_guest.CHECKS
    for name, check in report["checks"].items():
        assert check["ok"] is True, name
    assert report["ok"] is True
    assert report["exit_status"] == 0


def test_it_says_it_was_emulated_and_its_timings_are_not_arm_performance(report) -> None:
    assert report["cpu"]["machine"] == "aarch64"
    assert report["cpu"]["qemu_cpu"] == "cortex-a76"
    assert "qemu user-mode emulation" in report["what"]
    assert report["timings_note"] == arm64_guest.TIMINGS_NOTE
    assert "NOT ARM performance" in report["timings_note"]
    assert "synthetic" in report["guest_cpu_view"]


def test_it_names_the_wheels_it_installed(report) -> None:
    wheels = report["wheels"]
    for package in ("edgeosteo", "onnxruntime", "openvino", "numpy", "opencv-python-headless"):
        assert re.fullmatch(r"\d+(\.\d+)+.*", wheels[package]), package


def test_the_agreement_is_within_the_manifest_tolerances(report) -> None:
    manifest = json.loads((ROOT / "models/knee-image/manifest.json").read_text())
    stated = manifest["reference_outputs"][0]["tolerance"]
    knee = report["checks"]["knee_agreement"]
    assert knee["images"] >= 24 and knee["sources"] == ["A", "B", "C"]
    assert knee["errors"] == []
    # the INT8 comparisons ran INT8 weights (OpenVINO's on the INT8 ONNX file)
    assert knee["precision_ran"]["onnxruntime/int8"]["knee-image"] == "int8"
    assert knee["precision_ran"]["openvino/int8_onnx"]["knee-image"] == "int8"
    assert knee["agreement"]["int8_vs_fp32_openvino"]["compares"] == (
        "openvino/int8_onnx vs openvino/fp32"
    )
    assert set(knee["agreement"]) == set(AGREEMENT_PAIRS)
    for name, pair in knee["agreement"].items():
        fp32_only = name == "onnxruntime_vs_openvino_fp32"
        limit = stated["fp32"] if fp32_only else stated["int8_vs_fp32_prob"]
        assert pair["tolerance"] == limit, name
        assert pair["compared_values"] > 0, name
        assert pair["max_abs_probability_difference"] <= limit, name


def _section(text: str, heading: str) -> str:
    start = text.index(heading)
    end = text.find("\n#", start + len(heading))
    return text[start : end if end > 0 else len(text)]


def test_the_readme_quotes_this_report(report) -> None:
    section = _section((ROOT / "README.md").read_text(), "## Supported platforms")
    assert report["date"][:10] in section
    assert "tools/reports/arm64.json" in section
    agreement = report["checks"]["knee_agreement"]["agreement"]
    for name in AGREEMENT_PAIRS[:4]:  # the fifth, zero by construction, is explained there
        figure = f"{agreement[name]['max_abs_probability_difference']:.1e}"
        assert figure in section, (name, figure)
    assert "not ARM performance" in section or "not performance" in section


def test_the_firmware_notes_say_what_was_measured_and_what_remains(report) -> None:
    notes = _section((ROOT / "firmware/README.md").read_text(), "## ARM (aarch64) notes")
    assert "tools/arm64-check" in notes and "tools/reports/arm64.json" in notes
    assert "real hardware" in notes and "emulat" in notes


def test_the_synthetic_cpu_view_is_one_consistent_board(tmp_path) -> None:
    """What ONNX Runtime's cpuinfo and OpenVINO's hwloc and CPU map read, for every core."""
    cores = 3
    root = tmp_path / "sys"
    arm64_sysfs.write_sysfs(root, cores)
    cpu = root / "devices/system/cpu"
    for name in ("possible", "present", "online"):
        assert (cpu / name).read_text() == "0-2\n"
    for c in range(cores):
        base = cpu / f"cpu{c}"
        assert (root / "bus/cpu/devices" / f"cpu{c}").resolve() == base.resolve()
        assert (base / "topology/core_id").read_text() == f"{c}\n"
        assert (base / "topology/core_cpus_list").read_text() == f"{c}\n"
        assert (base / "topology/package_cpus_list").read_text() == "0-2\n"
        levels = []
        for index in sorted((base / "cache").iterdir()):
            shared = (index / "shared_cpu_list").read_text().strip()
            level = int((index / "level").read_text())
            levels.append(level)
            assert shared == ("0-2" if level == 3 else str(c))
            assert (index / "shared_cpu_map").read_text().strip() == (
                "7" if level == 3 else format(1 << c, "x")
            )
        assert levels == [1, 1, 2, 3]
        midr = (base / "regs/identification/midr_el1").read_text()
        assert int(midr, 16) >> 4 & 0xFFF == 0xD0B  # Cortex-A76
    node = root / "devices/system/node/node0"
    assert (node / "cpulist").read_text() == "0-2\n"
    assert sorted(p.name for p in node.glob("cpu[0-9]*")) == ["cpu0", "cpu1", "cpu2"]

    text = arm64_sysfs.cpuinfo(cores)
    assert [int(n) for n in re.findall(r"^processor\t: (\d+)$", text, re.M)] == [0, 1, 2]
    assert text.count("CPU part\t: 0xd0b") == cores
    assert "model name" not in text  # arm64 kernels write none
    from edgeosteo.hardware import cpu_features

    assert cpu_features(text) == ["asimd", "asimddp"]
