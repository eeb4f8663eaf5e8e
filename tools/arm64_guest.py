"""The checks tools/arm64-check runs inside the emulated Debian 12 arm64 root file system.

Runs with the venv's python in the guest; writes one JSON report (argument --out) and exits 1
when any check fails. Not a test of speed: every time here is qemu user-mode emulation.

Usage (inside the guest): python arm64_guest.py --models M --data D --knee DIR_OR_NONE --out F
"""

from __future__ import annotations

import argparse
import base64
import csv
import dataclasses
import json
import os
import platform
import socket
import struct
import subprocess
import sys
import time
import traceback
import urllib.request
from pathlib import Path

VENV_BIN = Path(sys.executable).parent
EDGEOSTEO = str(VENV_BIN / "edgeosteo")
# knee images screened per backend and precision (4 screeners): enough to see the spread of
# INT8 and backend differences on real films, few enough for emulation on a shared machine
KNEE_IMAGES = 24
ADMIN_PASSWORD = "arm64-check-password"  # a throwaway store in the guest's temp data dir
# every check the report holds, in the order they run (tests/test_arm64_report.py reads it)
CHECKS = (
    "info",
    "models_verify",
    "selftest",
    "dicom_16bit_cr_and_jpeg2000",
    "serve_healthz_cstore",
    "knee_agreement",
)
TIMINGS_NOTE = (
    "every *_seconds figure is under qemu user-mode emulation on an x86-64 build machine: "
    "NOT ARM performance, never to be quoted as such"
)

# AT_HWCAP / AT_HWCAP2 bits of arm64 Linux (arch/arm64/include/uapi/asm/hwcap.h)
HWCAP_BITS = {1: "asimd", 20: "asimddp", 22: "sve", 8: "crc32", 3: "aes"}
HWCAP2_BITS = {13: "i8mm", 14: "bf16", 1: "sve2"}


def emulated_cpu() -> dict[str, object]:
    """What the guest's CPU offers, from the auxiliary vector qemu hands the process
    (under qemu-user /proc/cpuinfo may still describe the host)."""
    hwcap = hwcap2 = 0
    raw = Path("/proc/self/auxv").read_bytes()
    for key, value in struct.iter_unpack("<QQ", raw):
        if key == 16:
            hwcap = value
        elif key == 26:
            hwcap2 = value
    features = [n for b, n in sorted(HWCAP_BITS.items()) if hwcap >> b & 1]
    features += [n for b, n in sorted(HWCAP2_BITS.items()) if hwcap2 >> b & 1]
    return {
        "machine": platform.machine(),
        "qemu_cpu": os.environ.get("QEMU_CPU", "qemu default (max)"),
        "hwcap_features": features,
        "hwcap": hex(hwcap),
        "hwcap2": hex(hwcap2),
        "python": platform.python_version(),
        "libc": "-".join(platform.libc_ver()),
    }


def installed_wheels() -> dict[str, str]:
    out = subprocess.run(
        [sys.executable, "-m", "pip", "list", "--format", "json"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return {p["name"]: p["version"] for p in json.loads(out)}


def pydicom_data_files() -> Path:
    """pydicom-data's files: the wheel installs them as site-packages/data_store/data (its
    import name is not pydicom_data)."""
    import sysconfig

    return Path(sysconfig.get_paths()["purelib"]) / "data_store" / "data"


def run_cli(args: list[str], common: list[str], timeout: float = 900) -> dict[str, object]:
    start = time.monotonic()
    proc = subprocess.run(
        [EDGEOSTEO, *common, *args], capture_output=True, text=True, timeout=timeout
    )
    return {
        "command": "edgeosteo " + " ".join(args),
        "rc": proc.returncode,
        # whole: the JSON commands are parsed from it (a cut one is no JSON)
        "stdout": proc.stdout,
        "stderr": proc.stderr[-3000:],
        "emulated_seconds": round(time.monotonic() - start, 1),
    }


def check_info(common):
    result = run_cli(["info", "--json"], common)
    result["ok"] = result["rc"] == 0
    if result["ok"]:
        result["info"] = json.loads(result.pop("stdout"))
    return result


def check_verify(common):
    result = run_cli(["models", "verify"], common)
    result["ok"] = result["rc"] == 0
    return result


def check_selftest(common):
    result = run_cli(["selftest", "--json"], common)
    try:
        report = json.loads(result.pop("stdout"))
    except ValueError:
        result["ok"] = False
        return result
    result["ok"] = result["rc"] == 0 and report["ok"]
    result["checks"] = [
        f"{'ok' if c['ok'] else 'FAIL'} {c['model']} {c['backend'] or ''} {c['check']}: "
        f"{c['detail']}"
        for c in report["checks"]
    ]
    return result


def _settings(models: Path, data: Path, backend: str, precision: str):
    from edgeosteo.config import load_settings

    settings = load_settings(data_dir=data)
    runtime = dataclasses.replace(settings.runtime, backend=backend, precision=precision)
    return dataclasses.replace(settings, models_dir=models, runtime=runtime)


def check_dicom(models: Path, data: Path) -> dict[str, object]:
    """A real 16-bit CR from pydicom-data, uncompressed and JPEG 2000 lossless: both screened
    to a result, the decoded pixels identical and the results the same."""
    import numpy as np

    from edgeosteo.screening import Screener

    folder = pydicom_data_files()
    screener = Screener(_settings(models, data, "auto", "int8"))
    answers = {"age_years": 67, "sex": "female", "weight_kg": 52, "height_m": 1.55}
    out: dict[str, object] = {}
    pixels = {}
    for name in ("RG1_UNCR.dcm", "RG1_J2KR.dcm"):
        path = folder / name
        start = time.monotonic()
        screening = screener.screen(path, answers)
        d = screening.to_dict()
        pixels[name] = screening.radiograph.pixels if screening.radiograph is not None else None
        out[name] = {
            "intake_error": d["intake_error"],
            "image": d["image"],
            "quality": (d["quality"] or {}).get("overall") if d["quality"] else None,
            "referral": d["referral"]["category"],
            "models_run": [r["model_id"] for r in d["findings"]["results"]],
            "emulated_seconds": round(time.monotonic() - start, 2),
        }
    a, b = pixels["RG1_UNCR.dcm"], pixels["RG1_J2KR.dcm"]
    same = a is not None and b is not None and a.shape == b.shape
    diff = float(np.max(np.abs(a - b))) if same else None
    out["pixel_max_abs_difference"] = diff
    out["ok"] = (
        all(out[n]["intake_error"] is None for n in ("RG1_UNCR.dcm", "RG1_J2KR.dcm"))
        and diff == 0.0
        and out["RG1_UNCR.dcm"]["referral"] == out["RG1_J2KR.dcm"]["referral"]
    )
    return out


def _knee_answers(row: dict[str, str]) -> dict[str, object]:
    answers: dict[str, object] = {"sex": row["sex"], "age_years": float(row["age"])}
    if row.get("weight_kg"):
        answers["weight_kg"] = float(row["weight_kg"])
    if row.get("height_m"):
        answers["height_m"] = float(row["height_m"])
    return answers


def _tolerances(models: Path) -> dict[str, float]:
    """The manifest's stated tolerances (the knee-image reference cases)."""
    manifest = json.loads((models / "knee-image" / "manifest.json").read_text())
    stated = manifest["reference_outputs"][0]["tolerance"]
    return {"fp32": float(stated["fp32"]), "int8_vs_fp32_prob": float(stated["int8_vs_fp32_prob"])}


def _models_with_openvino_on_int8_onnx(models: Path, into: Path) -> Path:
    """A copy of the models in which the knee-image manifest lists no OpenVINO IR, so that
    OpenVINO at precision int8 loads the INT8 ONNX file (QDQ) with its own integer kernels.
    The shipped manifest makes OpenVINO run the FP32 IR at either precision
    (ModelManifest.weights_for prefers it to the INT8 ONNX), so without this copy OpenVINO's
    INT8 path on ARM would never run."""
    import shutil

    shutil.rmtree(into, ignore_errors=True)
    shutil.copytree(models, into)
    manifest_path = into / "knee-image" / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["files"] = [
        f for f in manifest["files"] if f["role"] not in ("openvino_xml", "openvino_bin")
    ]
    manifest_path.write_text(json.dumps(manifest, indent=2))
    return into


def check_knee(models: Path, data: Path, knee: Path | None) -> dict[str, object]:
    """The knee models on real knee films through both backends at both precisions:
    INT8 vs FP32 and ONNX Runtime vs OpenVINO probability differences."""
    from edgeosteo.screening import Screener

    if knee is None or not (knee / "clinical.csv").is_file():
        return {"ok": False, "detail": "no knee development images mounted (--knee)"}
    rows = list(csv.DictReader((knee / "clinical.csv").open()))
    # every source (A, B, C) represented: take rows round-robin by source
    by_source: dict[str, list[dict[str, str]]] = {}
    for row in rows:
        by_source.setdefault(row["source"], []).append(row)
    chosen: list[dict[str, str]] = []
    while len(chosen) < KNEE_IMAGES and any(by_source.values()):
        for source in sorted(by_source):
            if by_source[source] and len(chosen) < KNEE_IMAGES:
                chosen.append(by_source[source].pop(0))
    tolerance = _tolerances(models)
    data.mkdir(parents=True, exist_ok=True)
    int8_onnx_models = _models_with_openvino_on_int8_onnx(models, data / "models-ov-int8-onnx")
    # (name, backend, precision, models directory)
    combos = [
        ("onnxruntime/fp32", "onnxruntime", "fp32", models),
        ("onnxruntime/int8", "onnxruntime", "int8", models),
        ("openvino/fp32", "openvino", "fp32", models),
        ("openvino/int8", "openvino", "int8", models),
        ("openvino/int8_onnx", "openvino", "int8", int8_onnx_models),
    ]
    outputs: dict[str, dict[tuple[str, str], dict[str, float]]] = {}
    ran: dict[str, dict[str, str]] = {}
    errors: list[str] = []
    start = time.monotonic()
    for name, backend, precision, models_dir in combos:
        screener = Screener(_settings(models_dir, data, backend, precision))
        got: dict[tuple[str, str], dict[str, float]] = {}
        for row in chosen:
            d = screener.screen(knee / "images" / row["image"], _knee_answers(row), "KNEE")
            d = d.to_dict()
            if d["intake_error"]:
                errors.append(f"{name} {row['image']}: {d['intake_error']}")
            for r in d["findings"]["results"]:
                if r.get("backend") not in (None, backend):
                    errors.append(f"{row['image']} {r['model_id']} ran on {r.get('backend')}")
                ran.setdefault(name, {})[r["model_id"]] = r.get("precision") or ""
                names = ("p_low_bone_mass", "p_osteoporosis")
                probs = {k: r[k] for k in names if r.get(k) is not None}
                got[(row["image"], r["model_id"])] = probs
        outputs[name] = got
    # the precision each model really ran at, per combination (an INT8 comparison that ran
    # FP32 on both sides is no INT8 check)
    if ran.get("onnxruntime/int8", {}).get("knee-image") != "int8":
        errors.append("onnxruntime/int8 did not run the knee-image INT8 file")
    if ran.get("openvino/int8_onnx", {}).get("knee-image") != "int8":
        errors.append("openvino/int8_onnx did not run the knee-image INT8 file")

    def worst(a: str, b: str) -> tuple[float, int]:
        diffs = [
            abs(outputs[a][key][name] - outputs[b][key][name])
            for key in outputs[a]
            if key in outputs[b]
            for name in outputs[a][key]
            if name in outputs[b][key]
        ]
        return (max(diffs) if diffs else float("nan")), len(diffs)

    int8, fp32 = tolerance["int8_vs_fp32_prob"], tolerance["fp32"]
    # name: (a, b, tolerance, what it compares)
    pairs = {
        "int8_vs_fp32_onnxruntime": ("onnxruntime/int8", "onnxruntime/fp32", int8, ""),
        "int8_vs_fp32_openvino": (
            "openvino/int8_onnx",
            "openvino/fp32",
            int8,
            "OpenVINO's own INT8 kernels on the INT8 ONNX file against its FP32 IR",
        ),
        "onnxruntime_vs_openvino_fp32": ("onnxruntime/fp32", "openvino/fp32", fp32, ""),
        # both engines run the same INT8 file with their own integer kernels
        "onnxruntime_vs_openvino_int8": ("onnxruntime/int8", "openvino/int8_onnx", int8, ""),
        "shipped_openvino_int8_vs_fp32": (
            "openvino/int8",
            "openvino/fp32",
            int8,
            "as shipped, OpenVINO at precision int8 loads the knee-image FP32 IR "
            "(weights_for prefers it to the INT8 ONNX): zero difference by construction",
        ),
    }
    agreement = {}
    for name, (a, b, limit, note) in pairs.items():
        value, count = worst(a, b)
        agreement[name] = {
            "compares": f"{a} vs {b}",
            "max_abs_probability_difference": value,
            "compared_values": count,
            "tolerance": limit,
            "ok": count > 0 and value <= limit,
        }
        if note:
            agreement[name]["note"] = note
    per_model = sorted({m for got in outputs.values() for (_, m) in got})
    return {
        "images": len(chosen),
        "sources": sorted({r["source"] for r in chosen}),
        "models": per_model,
        "results_per_combination": {name: len(v) for name, v in outputs.items()},
        "precision_ran": ran,
        "agreement": agreement,
        "errors": errors,
        "emulated_seconds": round(time.monotonic() - start, 1),
        "ok": not errors and all(a["ok"] for a in agreement.values()),
    }


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(url: str, auth: bool = False):
    request = urllib.request.Request(url)
    if auth:
        token = base64.b64encode(f"admin:{ADMIN_PASSWORD}".encode()).decode()
        request.add_header("Authorization", f"Basic {token}")
    with urllib.request.urlopen(request, timeout=10) as response:
        return response.status, json.loads(response.read())


def check_serve_and_store(models: Path, data: Path) -> dict[str, object]:
    """`edgeosteo serve` answers /healthz, its receiver takes a C-STORE, and the worker
    screens the received image into a case."""
    from pydicom import dcmread
    from pynetdicom import AE
    from pynetdicom.sop_class import ComputedRadiographyImageStorage

    web_port, dicom_port = _free_port(), _free_port()
    serve_data = data / "serve"
    serve_data.mkdir(parents=True, exist_ok=True)
    (serve_data / "edgeosteo.toml").write_text(
        f"[receiver]\nport = {dicom_port}\nworker_poll_seconds = 1.0\n"
    )
    env = dict(os.environ, EDGEOSTEO_ADMIN_PASSWORD=ADMIN_PASSWORD)
    log = (data / "serve.log").open("w")
    command = [EDGEOSTEO, "--models-dir", str(models), "--data-dir", str(serve_data)]
    server = subprocess.Popen(
        [*command, "serve", "--port", str(web_port)], stdout=log, stderr=subprocess.STDOUT, env=env
    )
    out: dict[str, object] = {"web_port": web_port, "dicom_port": dicom_port}
    start = time.monotonic()
    try:
        health = None
        while time.monotonic() - start < 600 and server.poll() is None:
            try:
                health = _get(f"http://127.0.0.1:{web_port}/healthz")
                break
            except OSError:
                time.sleep(2)
        out["healthz"] = health[1] if health else None
        out["emulated_seconds_to_healthz"] = round(time.monotonic() - start, 1)
        if not health or health[1].get("status") != "ok":
            out["ok"] = False
            return out
        dataset = dcmread(pydicom_data_files() / "RG1_UNCR.dcm")
        ae = AE(ae_title="ARM64CHECK")
        syntax = dataset.file_meta.TransferSyntaxUID
        ae.add_requested_context(ComputedRadiographyImageStorage, syntax)
        for _ in range(30):  # the receiver starts beside the page; give it time
            assoc = ae.associate("127.0.0.1", dicom_port, ae_title="EDGEOSTEO")
            if assoc.is_established:
                break
            time.sleep(2)
        if not assoc.is_established:
            out["cstore"] = "association not established"
            out["ok"] = False
            return out
        status = assoc.send_c_store(dataset)
        assoc.release()
        out["cstore_status"] = f"0x{status.Status:04X}" if status else None
        cases = 0
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            cases = _get(f"http://127.0.0.1:{web_port}/api/v1/status", auth=True)[1].get("cases", 0)
            if cases:
                break
            time.sleep(2)
        out["cases_after_cstore"] = cases
        out["ok"] = out["cstore_status"] == "0x0000" and cases >= 1
        return out
    finally:
        server.terminate()
        try:
            server.wait(timeout=60)
        except subprocess.TimeoutExpired:
            server.kill()
        log.close()
        out["serve_log_tail"] = (data / "serve.log").read_text()[-2000:]


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--models", type=Path, required=True)
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--knee", type=Path, default=None)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    args.data.mkdir(parents=True, exist_ok=True)
    os.environ["HOME"] = str(args.data)  # OpenVINO's and pip's per-user files stay in the temp dir
    common = ["--models-dir", str(args.models), "--data-dir", str(args.data / "cli")]
    report: dict[str, object] = {
        "timings_note": TIMINGS_NOTE,
        "cpu": emulated_cpu(),
        "wheels": installed_wheels(),
        "checks": {},
    }
    checks = report["checks"]
    steps = [
        ("info", lambda: check_info(common)),
        ("models_verify", lambda: check_verify(common)),
        ("selftest", lambda: check_selftest(common)),
        ("dicom_16bit_cr_and_jpeg2000", lambda: check_dicom(args.models, args.data / "dicom")),
        ("serve_healthz_cstore", lambda: check_serve_and_store(args.models, args.data)),
        # last: it runs both runtimes in this interpreter, and a crash there ends the run
        ("knee_agreement", lambda: check_knee(args.models, args.data / "knee", args.knee)),
    ]
    assert tuple(name for name, _ in steps) == CHECKS
    for name, step in steps:
        print(f"arm64 guest: {name} ...", flush=True)
        started = time.monotonic()
        try:
            checks[name] = step()
        except Exception:
            checks[name] = {"ok": False, "exception": traceback.format_exc()[-3000:]}
        checks[name]["emulated_seconds_total"] = round(time.monotonic() - started, 1)
        print(f"arm64 guest: {name} {'ok' if checks[name]['ok'] else 'FAILED'}", flush=True)
        # after each check: a check that kills the interpreter (a segfault under emulation)
        # still leaves the ones before it on record
        args.out.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n")
    report["ok"] = all(c["ok"] for c in checks.values())
    args.out.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n")
    return 0 if report["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
