"""Does this box screen correctly? Every installed model, on the reference inputs stored in
its manifest, through both backends, against the expected outputs stored beside them.

A model passes only when every file matches its sha256 and every expected output is
reproduced within the tolerance by ONNX Runtime and by OpenVINO. A model that stores no
reference inputs cannot be checked, which is a failure too: the installer must not be told
that an unchecked model works.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edgeosteo.errors import ModelError
from edgeosteo.models import ModelManifest, ModelRegistry, verify_files
from edgeosteo.runtime import BACKENDS, open_session


@dataclass(frozen=True)
class SelftestCheck:
    model_id: str
    backend: str | None
    what: str
    ok: bool
    detail: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model_id,
            "backend": self.backend,
            "check": self.what,
            "ok": self.ok,
            "detail": self.detail,
        }


@dataclass
class SelftestReport:
    models_dir: Path
    checks: list[SelftestCheck] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return bool(self.checks) and all(c.ok for c in self.checks)

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "models_dir": str(self.models_dir),
            "checks": [c.to_dict() for c in self.checks],
        }


def synthetic_input(description: str, shape: tuple[int, ...]) -> np.ndarray:
    """An image reference input stored as its formula (tools/train_image.py SYNTH_DOC)."""
    rows, cols = shape[-2], shape[-1]
    i, j = np.mgrid[:rows, :cols].astype(np.float32)
    name = description.split(":", 1)[0].strip()
    patterns = {
        "vertical ramp": lambda: i / 255.0,
        "horizontal bands": lambda: 0.5 + 0.5 * np.sin(2 * np.pi * i / 32.0),
        "checkerboard": lambda: ((i // 16 + j // 16) % 2).astype(np.float32),
        "constant": lambda: np.full((rows, cols), float(description.rsplit("=", 1)[1])),
    }
    if name not in patterns:
        raise ModelError("model.manifest_invalid", f"unknown synthetic input {description!r}")
    return np.broadcast_to(patterns[name]().astype(np.float32), shape).copy()


def reference_inputs(manifest: ModelManifest, case: Mapping[str, Any]) -> dict[str, np.ndarray]:
    """The input tensors of one reference case; a missing input is a manifest error."""
    given = case.get("input") or {}
    tensors = {}
    for spec in manifest.inputs:
        if spec.name not in given:
            raise ModelError("model.manifest_invalid", f"reference input {spec.name} missing")
        value = given[spec.name]
        if isinstance(value, str) and value.endswith(".npy"):
            # a large tensor kept beside the manifest
            array = np.load(manifest.directory / value, allow_pickle=False)
        elif isinstance(value, str):
            shape = given.get("shape") or [1, *(d or 1 for d in (spec.shape or ())[1:])]
            array = synthetic_input(value, tuple(int(d) for d in shape))
        else:
            array = np.asarray(value, dtype=spec.dtype)
        if spec.shape is not None and array.ndim == len(spec.shape) - 1:
            array = array[np.newaxis]  # one case, without its batch axis
        tensors[spec.name] = array.astype(spec.dtype, copy=False)
    return tensors


def _expected(case: Mapping[str, Any], backend: str, precision: str, tolerance: float):
    """What a case expects of this backend and precision, and how closely; None: no claim."""
    stated = case.get("tolerance") or {}
    if precision == "int8":
        expected = case.get("int8_expected")
        if not expected:
            return None, tolerance
        # INT8 kernels differ between CPUs: probabilities within the card's stated margin
        margin = float(stated.get("int8_vs_fp32_prob", 0.02))
        return {k: v for k, v in expected.items() if k.startswith("p_")}, margin
    expected = case.get(f"{backend}_fp32_expected") or case.get("expected")
    return expected, float(stated.get("fp32", tolerance))


def _check_backend(
    manifest: ModelManifest, backend: str, tolerance: float
) -> Iterable[SelftestCheck]:
    yield from _check_weights(manifest, backend, "fp32", tolerance)
    int8 = manifest.weights_for(backend, "int8")
    if "int8" in int8.role and any(c.get("int8_expected") for c in manifest.reference_outputs):
        yield from _check_weights(manifest, backend, "int8", tolerance)


def _check_weights(
    manifest: ModelManifest, backend: str, precision: str, tolerance: float
) -> Iterable[SelftestCheck]:
    weights = manifest.weights_for(backend, precision)
    try:
        session = open_session(weights.path, backend, threads=1)
    except ModelError as exc:
        yield SelftestCheck(manifest.id, backend, "load", False, f"{exc.code}: {exc.detail}")
        return
    for number, case in enumerate(manifest.reference_outputs, start=1):
        what = f"reference {number} ({weights.path.name})"
        expectations, limit = _expected(case, backend, precision, tolerance)
        if expectations is None:
            continue
        try:
            outputs = session.run(reference_inputs(manifest, case))
        except ModelError as exc:
            yield SelftestCheck(manifest.id, backend, what, False, f"{exc.code}: {exc.detail}")
            continue
        problems = []
        worst = 0.0
        for name, expected in expectations.items():
            if name not in outputs:
                problems.append(f"output {name} missing")
                continue
            got = np.asarray(outputs[name], dtype=np.float64).reshape(-1)
            want = np.asarray(expected, dtype=np.float64).reshape(-1)
            if got.shape != want.shape:
                problems.append(f"{name}: shape {got.shape} != {want.shape}")
                continue
            error = float(np.max(np.abs(got - want))) if got.size else 0.0
            if not error <= limit:  # also catches NaN
                problems.append(f"{name}: got {got.tolist()} expected {want.tolist()}")
            worst = max(worst, error) if np.isfinite(error) else worst
        if not expectations:
            problems.append("no expected outputs stored")
        detail = "; ".join(problems) if problems else f"max abs error {worst:.2e}"
        yield SelftestCheck(manifest.id, backend, what, not problems, detail)


def run_selftest(
    models_dir: Path, tolerance: float, backends: Iterable[str] = BACKENDS
) -> SelftestReport:
    registry = ModelRegistry(models_dir)
    report = SelftestReport(models_dir)
    for name, problem in registry.problems.items():
        report.checks.append(
            SelftestCheck(name, None, "manifest", False, f"{problem.code}: {problem.detail}")
        )
    if not len(registry) and not registry.problems:
        report.checks.append(SelftestCheck("-", None, "models", False, "no models installed"))
    for manifest in registry:
        files = verify_files(manifest)
        bad = [f"{c.path.name}: {c.code}" for c in files if not c.ok]
        report.checks.append(
            SelftestCheck(
                manifest.id,
                None,
                "sha256",
                not bad,
                "; ".join(bad) if bad else f"{len(files)} files match the manifest",
            )
        )
        if bad:
            continue  # never run a tampered model, not even to compare it
        if not manifest.reference_outputs:
            report.checks.append(
                SelftestCheck(manifest.id, None, "reference", False, "no reference_outputs")
            )
            continue
        for backend in backends:
            report.checks.extend(_check_backend(manifest, backend, tolerance))
    return report
