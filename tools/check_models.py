"""Self-check of exported models: sha256 of every file in each manifest, and the manifest's
reference_outputs reproduced with onnxruntime (all ONNX files) and OpenVINO (f32).

Usage: python tools/check_models.py [models/]   (exit status 1 on any failure)
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

# The image reference inputs (formulas are also spelled out in each manifest entry).
_I, _J = np.mgrid[:256, :256].astype(np.float32)
SYNTH = np.stack(
    [
        _I / 255.0,
        0.5 + 0.5 * np.sin(2 * np.pi * _I / 32.0),
        ((_I // 16 + _J // 16) % 2).astype(np.float32),
        np.full((256, 256), 0.5, np.float32),
    ]
).astype(np.float32)


def ort_outputs(path, feeds):
    import onnxruntime as ort

    s = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return dict(zip([o.name for o in s.get_outputs()], s.run(None, feeds), strict=True))


def ov_outputs(path, feeds):
    import openvino as ov

    cm = ov.Core().compile_model(str(path), "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
    r = cm(feeds)
    # an OpenVINO output tensor can carry several names (e.g. '/Gather_output_0' and 'p_t_le_-1'):
    # map every name to the tensor
    return {n: np.asarray(r[o]) for o in cm.outputs for n in o.get_names()}


def check(md: Path) -> list[str]:
    errs = []
    man = json.loads((md / "manifest.json").read_text())
    for f in man["files"]:
        h = hashlib.sha256((md / f["path"]).read_bytes()).hexdigest()
        if h != f["sha256"]:
            errs.append(f"{man['id']}: sha256 mismatch for {f['path']}")
    roles = {f["role"]: md / f["path"] for f in man["files"]}
    refs = man["reference_outputs"]
    if man["kind"] == "clinical":
        X = np.array([r["input"]["clinical"] for r in refs], np.float32)
        feeds = {"clinical": X}
        exp = [r["expected"] for r in refs]
        tol = {"onnx_fp32": 1e-5}
    elif man["kind"] == "image":
        feeds = {"image": SYNTH[:, None]}
        exp = [r["expected"] for r in refs]
        tol = {"onnx_fp32": 1e-4, "openvino_xml": 1e-4, "onnx_int8": None}
    else:
        feeds = {
            "clinical": np.array([r["input"]["clinical"] for r in refs], np.float32),
            "image": np.array([r["input"]["image"] for r in refs], np.float32),
        }
        exp = [r["expected"] for r in refs]
        tol = {"onnx_fp32": 1e-5}
    for role, t in tol.items():
        if role not in roles:
            continue
        outs = (
            ov_outputs(roles[role], feeds)
            if role.startswith("openvino")
            else ort_outputs(roles[role], feeds)
        )
        ex = exp
        if (
            role == "onnx_int8"
        ):  # INT8 against its own recorded outputs (kernels may differ slightly by CPU)
            ex, t = [r["int8_expected"] for r in refs], 2e-3
        for i, e in enumerate(ex):
            for k, v in e.items():
                d = abs(float(outs[k][i]) - v)
                if d > t:
                    errs.append(
                        f"{man['id']} {role} ref {i} {k}: got {float(outs[k][i]):.6f} "
                        f"expected {v} (tol {t})"
                    )
    if "onnx_fp32" in roles:  # OpenVINO reading the ONNX directly
        outs = ov_outputs(roles["onnx_fp32"], feeds)
        for i, e in enumerate(exp):
            for k, v in e.items():
                if abs(float(outs[k][i]) - v) > 1e-4:
                    errs.append(f"{man['id']} openvino(onnx) ref {i} {k} mismatch")
    return errs


def main(argv=None):
    root = Path((argv or sys.argv[1:] or ["models"])[0])
    errs = []
    total = 0
    for md in sorted(p for p in root.iterdir() if (p / "manifest.json").exists()):
        e = check(md)
        total += sum(
            (md / f["path"]).stat().st_size
            for f in json.loads((md / "manifest.json").read_text())["files"]
        )
        print(f"{md.name}: {'OK' if not e else 'FAIL'}")
        errs += e
    print(f"total model bytes: {total}")
    for e in errs:
        print("  " + e)
    return 1 if errs else 0


if __name__ == "__main__":
    sys.exit(main())
