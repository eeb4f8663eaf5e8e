"""Model registry: each model's manifest beside its weights, verified before use.

``models/<id>/manifest.json`` names every file with its sha256, the inputs, the
preprocessing, the outputs, the metrics of the model card and the governance record.
Loading verifies every hash and refuses a tampered or missing file.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgeosteo.errors import ModelError
from edgeosteo.findings import ModelKind

MANIFEST_NAME = "manifest.json"
SUPPORTED_SCHEMA = 1
_KINDS = ("clinical", "image", "fused")


@dataclass(frozen=True)
class ModelFile:
    role: str
    path: Path
    sha256: str


@dataclass(frozen=True)
class TensorSpec:
    name: str
    shape: tuple[int | None, ...] | None
    dtype: str
    features: tuple[str, ...] = ()


@dataclass(frozen=True)
class ModelManifest:
    id: str
    version: str
    kind: ModelKind
    task: str
    body_part: str | None
    view: str | None
    intended_use: str
    directory: Path
    files: tuple[ModelFile, ...]
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[str, ...]
    preprocessing: Mapping[str, Any] = field(default_factory=dict)
    calibration: Mapping[str, Any] = field(default_factory=dict)
    metrics: Mapping[str, Any] = field(default_factory=dict)
    governance: Mapping[str, Any] = field(default_factory=dict)
    reference_outputs: tuple[Mapping[str, Any], ...] = ()
    card: str | None = None

    @classmethod
    def load(cls, manifest_path: Path) -> ModelManifest:
        try:
            raw = json.loads(manifest_path.read_text(encoding="utf-8"))
        except FileNotFoundError as exc:
            raise ModelError("model.file_missing", str(manifest_path)) from exc
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ModelError("model.manifest_invalid", f"{manifest_path}: {exc}") from exc
        return cls.from_dict(raw, manifest_path.parent)

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any], directory: Path) -> ModelManifest:
        where = f"{directory.name}/{MANIFEST_NAME}"
        try:
            if raw.get("schema") != SUPPORTED_SCHEMA:
                raise ValueError(f"schema {raw.get('schema')!r} is not {SUPPORTED_SCHEMA}")
            kind = raw["kind"]
            if kind not in _KINDS:
                raise ValueError(f"kind {kind!r}")
            files = tuple(
                ModelFile(role=f["role"], path=directory / f["path"], sha256=f["sha256"].lower())
                for f in raw["files"]
            )
            for f in files:
                if directory.resolve() not in f.path.resolve().parents:
                    raise ValueError(f"file {f.path.name} outside the model directory")
            inputs = tuple(
                TensorSpec(
                    name=i["name"],
                    shape=tuple(i["shape"]) if i.get("shape") is not None else None,
                    dtype=i.get("dtype", "float32"),
                    features=tuple(i.get("features", ())),
                )
                for i in raw["inputs"]
            )
            outputs = tuple(o["name"] for o in raw["outputs"])
            return cls(
                id=str(raw["id"]),
                version=str(raw["version"]),
                kind=kind,
                task=str(raw.get("task", "bone_density")),
                body_part=raw.get("body_part"),
                view=raw.get("view"),
                intended_use=str(raw.get("intended_use", "")),
                directory=directory,
                files=files,
                inputs=inputs,
                outputs=outputs,
                preprocessing=raw.get("preprocessing") or {},
                calibration=raw.get("calibration") or {},
                metrics=raw.get("metrics") or {},
                governance=raw.get("governance") or {},
                reference_outputs=tuple(raw.get("reference_outputs") or ()),
                card=raw.get("card"),
            )
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise ModelError("model.manifest_invalid", f"{where}: {exc}") from exc

    def reads_body_part(self, body_part: str | None) -> bool:
        """Whether this model may run for an image of this body part: the one rule. A
        clinical model reads no image, so any; an image or fused model only the body part
        its manifest names, so an unknown part, or a manifest that names none, runs nothing."""
        if self.kind == "clinical":
            return True
        return bool(body_part and self.body_part) and self.body_part.upper() == body_part.upper()

    def reads_view(self, view: str | None) -> bool:
        """Whether this model may run for an image of this view: the view its manifest
        names, or any when it names none; an image whose view is not known is not refused
        for it (raster files carry no view)."""
        if self.kind == "clinical" or not self.view or not view:
            return True
        return self.view.upper() == view.upper()

    def file(self, role: str) -> ModelFile | None:
        return next((f for f in self.files if f.role == role), None)

    @property
    def used_for_referral(self) -> bool:
        return added_value_established(self)

    def weights_for(self, backend: str, precision: str) -> ModelFile:
        """The file a backend should load, falling back to FP32 ONNX when a role is absent."""
        preferences = {
            ("onnxruntime", "int8"): ("onnx_int8", "onnx_fp32"),
            ("onnxruntime", "fp32"): ("onnx_fp32",),
            ("openvino", "int8"): ("openvino_int8_xml", "openvino_xml", "onnx_int8", "onnx_fp32"),
            ("openvino", "fp32"): ("openvino_xml", "onnx_fp32"),
        }.get((backend, precision), ("onnx_fp32",))
        for role in preferences:
            found = self.file(role)
            if found is not None:
                return found
        raise ModelError("model.file_missing", f"{self.id}: no weights for {backend}/{precision}")


# The schemes in which an image or fused model must show added value: repeated patient-level
# cross-validation and leave-one-source-out (each image source held out in turn).
GOVERNANCE_SCHEMES = ("cv", "loso")
# An image score that ranks below chance in a scheme runs against the label there; a stack
# can still gain by reversing it, which is a source artefact, not bone (see the knee-image card).
IMAGE_ALONE_MIN_AUC = 0.5


def governance_rule_holds(record: Mapping[str, Any] | None) -> bool:
    """The product rule on one added-value record ``{"cv": {...}, "loso": {...}}``.

    In every scheme: the paired-bootstrap 95 % CI of AUC(model) - AUC(clinical) lies above
    zero (``ci95``), and the image score alone ranks the right way (``image_alone_auc``
    above 0.5). Anything missing or malformed fails. The training tools call this too, so
    the card and the box apply one rule.
    """
    if not isinstance(record, Mapping):
        return False
    for scheme in GOVERNANCE_SCHEMES:
        result = record.get(scheme)
        if not isinstance(result, Mapping):
            return False
        try:
            lower = float(result["ci95"][0])
            image_alone_auc = float(result["image_alone_auc"])
        except (KeyError, TypeError, ValueError, IndexError):
            return False
        if not (lower > 0.0 and image_alone_auc > IMAGE_ALONE_MIN_AUC):
            return False
    return True


# The baselines a clinical model must beat: the instruments the guideline uses without it.
CLINICAL_BASELINES = ("age", "osta")


def clinical_rule_holds(governance: Mapping[str, Any] | None) -> bool:
    """The product rule for a clinical model: for each baseline (``added_value_over_age``,
    ``added_value_over_osta``), in every scheme and for every target recorded, the paired
    bootstrap 95 % CI of AUC(model) - AUC(baseline) lies above zero. Anything missing or
    malformed fails, so a card without the record never drives the referral."""
    if not isinstance(governance, Mapping):
        return False
    for baseline in CLINICAL_BASELINES:
        record = governance.get(f"added_value_over_{baseline}")
        if not isinstance(record, Mapping):
            return False
        for scheme in GOVERNANCE_SCHEMES:
            targets = record.get(scheme)
            if not isinstance(targets, Mapping) or not targets:
                return False
            for result in targets.values():
                try:
                    lower = float(result["ci95"][0])
                except (KeyError, TypeError, ValueError, IndexError):
                    return False
                if not lower > 0.0:
                    return False
    return True


def added_value_established(manifest: ModelManifest) -> bool:
    """The governance rule, read from the card's machine-readable record.

    A clinical model drives the referral only when it beats age alone and OSTA
    (`clinical_rule_holds`); otherwise the guideline indications decide and it is shown as
    information. An image or fused model may do so only when its record
    (``governance.added_value_over_clinical``) passes `governance_rule_holds`. Any flag in the
    manifest that claims otherwise is ignored.
    """
    if manifest.kind == "clinical":
        return clinical_rule_holds(manifest.governance)
    return governance_rule_holds(manifest.governance.get("added_value_over_clinical"))


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@dataclass(frozen=True)
class FileCheck:
    role: str
    path: Path
    ok: bool
    code: str | None = None


def verify_files(manifest: ModelManifest) -> tuple[FileCheck, ...]:
    checks = []
    for f in manifest.files:
        if not f.path.is_file():
            checks.append(FileCheck(f.role, f.path, False, "model.file_missing"))
        elif sha256_of(f.path) != f.sha256:
            checks.append(FileCheck(f.role, f.path, False, "model.hash_mismatch"))
        else:
            checks.append(FileCheck(f.role, f.path, True))
    return tuple(checks)


def verify(manifest: ModelManifest) -> None:
    """Raise ModelError naming the first missing or tampered file."""
    for check in verify_files(manifest):
        if not check.ok:
            raise ModelError(
                check.code or "model.hash_mismatch", f"{manifest.id}: {check.path.name}"
            )


# the answers a clinical feature is formed from (edgeosteo.inference.clinical_feature)
FEATURE_ANSWERS: dict[str, tuple[str, ...]] = {
    "bmi": ("weight_kg", "height_m"),
    "sex_female": ("sex",),
}


def answers_needed_for_referral(registry: Iterable[ModelManifest]) -> tuple[str, ...]:
    """The clinical answers a model permitted to drive the referral reads (clinical or
    fused): without one of them that model does not run, so the page asks for it."""
    needed: dict[str, None] = {}
    for manifest in registry:
        if manifest.kind == "image" or not manifest.used_for_referral:
            continue
        for spec in manifest.inputs:
            for feature in spec.features:
                if ":" in feature:  # another model's output, not an answer
                    continue
                needed.update(dict.fromkeys(FEATURE_ANSWERS.get(feature, (feature,))))
    return tuple(needed)


class ModelRegistry:
    """The manifests found under a models directory, one subdirectory per model."""

    def __init__(self, models_dir: Path) -> None:
        self.models_dir = models_dir
        self._manifests: dict[str, ModelManifest] = {}
        self.problems: dict[str, ModelError] = {}
        if models_dir.is_dir():
            for path in sorted(models_dir.glob(f"*/{MANIFEST_NAME}")):
                try:
                    manifest = ModelManifest.load(path)
                except ModelError as exc:
                    self.problems[path.parent.name] = exc
                    continue
                self._manifests[manifest.id] = manifest

    def __iter__(self):
        return iter(self._manifests.values())

    def __len__(self) -> int:
        return len(self._manifests)

    def get(self, model_id: str) -> ModelManifest | None:
        return self._manifests.get(model_id)

    def of_kind(self, kind: str, body_part: str | None = None) -> list[ModelManifest]:
        """The installed models of a kind; with ``body_part``, only those that read it."""
        return [
            m
            for m in self._manifests.values()
            if m.kind == kind and (body_part is None or m.reads_body_part(body_part))
        ]
