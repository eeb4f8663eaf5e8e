"""Runs the installed models on one case and turns their outputs into Findings.

A ModelRunner verifies each model's files once, opens its session once, and reuses it for
every case in the process. It never invents an output: a model that cannot run yields an
UnavailableFinding with a stable code.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping, Sequence

import numpy as np

from edgeosteo.config import DISPLAY_LONG_SIDE_PX, RuntimeSettings
from edgeosteo.errors import ModelError
from edgeosteo.findings import UNKNOWN_BODY_PART, Findings, ModelFinding, UnavailableFinding
from edgeosteo.intake.types import Radiograph
from edgeosteo.knee_check import knee_plausibility
from edgeosteo.models import ModelManifest, ModelRegistry, TensorSpec, verify
from edgeosteo.preprocess import PreparedImage, heatmap_on_image, preprocess
from edgeosteo.runtime import InferenceSession, open_session

OUTPUT_FIELDS = {
    "p_t_le_-1": "p_low_bone_mass",
    "p_t_le_-2.5": "p_osteoporosis",
    "t_score": "t_score",
    "t_score_sd": "t_score_sd",
}


def clinical_feature(name: str, values: Mapping[str, object]) -> float | None:
    """One named clinical feature from the answers, or None when it cannot be formed."""

    def number(key: str) -> float | None:
        value = values.get(key)
        return (
            float(value)
            if isinstance(value, (int, float)) and not isinstance(value, bool)
            else None
        )

    if name == "sex_female":
        sex = values.get("sex")
        return {"female": 1.0, "male": 0.0}.get(str(sex)) if sex is not None else None
    if name == "bmi":
        weight, height = number("weight_kg"), number("height_m")
        return weight / (height * height) if weight and height else None
    return number(name)


class ModelRunner:
    def __init__(self, registry: ModelRegistry, runtime: RuntimeSettings, cache_dir=None) -> None:
        self.registry = registry
        self.runtime = runtime
        self.cache_dir = cache_dir
        self._sessions: dict[str, InferenceSession] = {}
        self._precision: dict[str, str] = {}
        self._lock = threading.Lock()

    def session(self, manifest: ModelManifest) -> InferenceSession:
        with self._lock:
            session = self._sessions.get(manifest.id)
            if session is None:
                verify(manifest)
                weights = manifest.weights_for(self.runtime.backend, self.runtime.precision)
                self._precision[manifest.id] = "int8" if "int8" in weights.role else "fp32"
                session = open_session(
                    weights.path,
                    self.runtime.backend,
                    self.runtime.intra_op_threads,
                    self.cache_dir,
                )
                self._sessions[manifest.id] = session
            return session

    def _clinical_tensor(self, spec: TensorSpec, values: Mapping[str, object]) -> np.ndarray:
        features = [clinical_feature(name, values) for name in spec.features]
        missing = [n for n, v in zip(spec.features, features, strict=True) if v is None]
        if missing:
            raise ModelError("model.missing_inputs", ", ".join(missing))
        return np.asarray([features], dtype=np.float32)

    def _inputs(
        self,
        manifest: ModelManifest,
        radiograph: Radiograph | None,
        clinical: Mapping[str, object],
        upstream: Sequence[ModelFinding],
    ) -> tuple[dict[str, np.ndarray], PreparedImage | None]:
        """Input tensors by name. Feature inputs take clinical answers, or another model's
        output named "<model id>:<output>" (a fused model reads the image model's result)."""
        tensors: dict[str, np.ndarray] = {}
        prepared: PreparedImage | None = None
        earlier = {f.model_id: f for f in upstream}
        for spec in manifest.inputs:
            if spec.features:
                values = dict(clinical)
                for name in spec.features:
                    model_id, _, output = name.partition(":")
                    if output and output in OUTPUT_FIELDS:
                        finding = earlier.get(model_id)
                        if finding is None:
                            raise ModelError("model.missing_inputs", name)
                        values[name] = getattr(finding, OUTPUT_FIELDS[output])
                tensors[spec.name] = self._clinical_tensor(spec, values)
            else:
                if radiograph is None:
                    raise ModelError("model.no_image")
                prepared = preprocess(radiograph, manifest.preprocessing)
                tensors[spec.name] = prepared.tensor
        return tensors, prepared

    def run(
        self,
        manifest: ModelManifest,
        radiograph: Radiograph | None,
        clinical: Mapping[str, object],
        timings: dict[str, list[float]] | None = None,
        upstream: Sequence[ModelFinding] = (),
    ) -> ModelFinding:
        session = self.session(manifest)
        started = time.perf_counter()
        inputs, prepared = self._inputs(manifest, radiograph, clinical, upstream)
        ready = time.perf_counter()
        outputs = session.run(inputs)
        if timings is not None:
            timings.setdefault(f"preprocess:{manifest.id}", []).append(ready - started)
            timings.setdefault(f"model:{manifest.id}", []).append(time.perf_counter() - ready)
        values: dict[str, float | None] = {}
        for output_name, field_name in OUTPUT_FIELDS.items():
            array = outputs.get(output_name)
            if array is not None:
                # one row per region (e.g. per knee): the case's value is their mean
                value = float(np.mean(np.asarray(array, dtype=np.float64).reshape(-1)))
                if not np.isfinite(value):
                    raise ModelError("model.inference_failed", f"{output_name} is not finite")
                values[field_name] = value
        heatmap = outputs.get("heatmap")
        if heatmap is not None and prepared is not None and radiograph is not None:
            heatmap = heatmap_on_image(
                np.asarray(heatmap), prepared.regions, radiograph.shape, DISPLAY_LONG_SIDE_PX
            )
        return ModelFinding(
            model_id=manifest.id,
            model_version=manifest.version,
            kind=manifest.kind,
            used_for_referral=manifest.used_for_referral,
            backend=session.backend,
            precision=self._precision[manifest.id],
            heatmap=heatmap,
            **values,
        )

    def findings(
        self,
        radiograph: Radiograph | None,
        image_usable: bool,
        body_part: str | None,
        clinical: Mapping[str, object],
        image_refused: bool = False,
        timings: dict[str, list[float]] | None = None,
        view: str | None = None,
        image_refusal: UnavailableFinding | None = None,
    ) -> Findings:
        """Every model that applies. ``image_refusal``: why no image model may run on this
        image at all (a body part that contradicts the image's own header, say)."""
        results: list[ModelFinding] = []
        unavailable: list[UnavailableFinding] = []

        def attempt(manifest: ModelManifest, image: Radiograph | None) -> None:
            try:
                results.append(self.run(manifest, image, clinical, timings, tuple(results)))
            except ModelError as exc:
                unavailable.append(
                    UnavailableFinding(exc.code, manifest.kind, manifest.id, exc.detail)
                )

        for manifest in self.registry.of_kind("clinical"):
            attempt(manifest, None)
        if image_refused:
            unavailable.append(UnavailableFinding("model.image_refused", "image"))
        elif radiograph is None:
            unavailable.append(UnavailableFinding("model.no_image", "image"))
        elif not image_usable:
            unavailable.append(UnavailableFinding("model.not_run_quality", "image"))
        elif image_refusal is not None:
            unavailable.append(image_refusal)
        else:
            part = (body_part or "").upper() or None
            image_models = self.registry.of_kind("image", part) if part else []
            if not image_models:
                unavailable.append(
                    UnavailableFinding(
                        "model.unavailable_body_part", "image", None, part or UNKNOWN_BODY_PART
                    )
                )
            fused_models = self.registry.of_kind("fused", part) if part else []
            if part == "KNEE" and (image_models or fused_models):
                # the knee models run only on what looks like a knee (a chest is not one)
                check = knee_plausibility(radiograph.pixels)
                if not check.plausible:
                    unavailable.append(
                        UnavailableFinding("image.not_knee", "image", None, check.detail)
                    )
                    image_models, fused_models = [], []
            for manifest in (*image_models, *fused_models):
                if manifest.reads_view(view):
                    attempt(manifest, radiograph)
                else:
                    unavailable.append(
                        UnavailableFinding(
                            "image.wrong_view",
                            manifest.kind,
                            manifest.id,
                            f"{view.upper() if view else ''}; accepts {manifest.view}",
                        )
                    )
        return Findings(results=tuple(results), unavailable=tuple(unavailable))
