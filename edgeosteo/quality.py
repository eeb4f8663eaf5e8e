"""Quality gates run before any model: each returns pass / warn / fail with a reason code.

The gates are pure functions of a Radiograph and the QualityThresholds. The reason codes'
wording and retake advice live in edgeosteo.messages.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import cv2
import numpy as np

from edgeosteo.config import QualityThresholds
from edgeosteo.intake.pixels import shrink_to_long_side
from edgeosteo.intake.types import Radiograph

Verdict = Literal["pass", "warn", "fail"]
_ORDER = {"pass": 0, "warn": 1, "fail": 2}


@dataclass(frozen=True)
class GateResult:
    gate: str
    verdict: Verdict
    code: str
    measured: float | str | None = None
    limit: float | str | None = None

    def to_dict(self) -> dict[str, object]:
        return {
            "gate": self.gate,
            "verdict": self.verdict,
            "code": self.code,
            "measured": self.measured,
            "limit": self.limit,
        }


@dataclass(frozen=True)
class QualityReport:
    gates: tuple[GateResult, ...]

    @property
    def verdict(self) -> Verdict:
        worst = max((g.verdict for g in self.gates), key=_ORDER.__getitem__, default="pass")
        return worst

    @property
    def usable(self) -> bool:
        return self.verdict != "fail"

    @property
    def codes(self) -> tuple[str, ...]:
        return tuple(g.code for g in self.gates if g.verdict != "pass")

    def to_dict(self) -> dict[str, object]:
        return {
            "verdict": self.verdict,
            "codes": list(self.codes),
            "gates": [g.to_dict() for g in self.gates],
        }


def graded_gate(
    name: str, measured: float, fail: bool, warn: bool, codes: tuple[str, str], limit: float
) -> GateResult:
    """One measured gate's result (codes: fail, warn). Shared by the photo gates."""
    # every comparison with NaN is false, so an unmeasurable image would pass: fail it instead
    if not math.isfinite(measured):
        return GateResult(name, "fail", codes[0], None, limit)
    if fail:
        return GateResult(name, "fail", codes[0], round(measured, 4), limit)
    if warn:
        return GateResult(name, "warn", codes[1], round(measured, 4), limit)
    return GateResult(name, "pass", "quality.ok", round(measured, 4), limit)


def modality_gate(radiograph: Radiograph, t: QualityThresholds) -> GateResult:
    modality = (radiograph.modality or "").upper()
    if radiograph.source_format == "dicom" and modality and modality not in t.radiograph_modalities:
        return GateResult(
            "modality",
            "fail",
            "quality.wrong_modality",
            modality,
            ",".join(t.radiograph_modalities),
        )
    return GateResult("modality", "pass", "quality.ok", modality or None, None)


def resolution_gate(radiograph: Radiograph, t: QualityThresholds) -> GateResult:
    short = float(min(radiograph.shape))
    return graded_gate(
        "resolution",
        short,
        short < t.resolution_fail_px,
        short < t.resolution_warn_px,
        ("quality.resolution_too_low", "quality.resolution_low"),
        t.resolution_fail_px if short < t.resolution_fail_px else t.resolution_warn_px,
    )


def blank_gate(small: np.ndarray, t: QualityThresholds) -> GateResult:
    spread = float(small.std())
    return graded_gate(
        "blank",
        spread,
        spread < t.blank_fail_std,
        False,
        ("quality.blank", "quality.blank"),
        t.blank_fail_std,
    )


def exposure_gate(small: np.ndarray, t: QualityThresholds) -> GateResult:
    h, w = small.shape
    centre = small[h // 4 : h - h // 4, w // 4 : w - w // 4]
    clipped = float((centre >= t.clipped_level).mean()) if centre.size else 0.0
    return graded_gate(
        "exposure",
        clipped,
        clipped > t.clipped_fail_fraction,
        clipped > t.clipped_warn_fraction,
        ("quality.overexposed", "quality.exposure_marginal"),
        t.clipped_fail_fraction if clipped > t.clipped_fail_fraction else t.clipped_warn_fraction,
    )


def sharpness(small: np.ndarray, tiles: int) -> float:
    laplacian = cv2.Laplacian(small * 255.0, cv2.CV_32F, ksize=1)
    h, w = laplacian.shape
    per_tile = [
        float(
            laplacian[
                i * h // tiles : (i + 1) * h // tiles, j * w // tiles : (j + 1) * w // tiles
            ].var()
        )
        for i in range(tiles)
        for j in range(tiles)
    ]
    return float(np.percentile(per_tile, 90))


def blur_gate(small: np.ndarray, t: QualityThresholds) -> GateResult:
    value = sharpness(small, t.blur_tiles)
    return graded_gate(
        "blur",
        value,
        value < t.blur_fail_variance,
        value < t.blur_warn_variance,
        ("quality.blurred", "quality.soft"),
        t.blur_fail_variance if value < t.blur_fail_variance else t.blur_warn_variance,
    )


def radiograph_gate(radiograph: Radiograph, small: np.ndarray, t: QualityThresholds) -> GateResult:
    """Refuse colour photographs and documents: what a radiograph is not."""
    if radiograph.colourfulness > t.colour_fail:
        return GateResult(
            "is_radiograph",
            "fail",
            "quality.not_radiograph",
            round(radiograph.colourfulness, 2),
            t.colour_fail,
        )
    bright = float((small > 0.85).mean())
    if bright > t.document_bright_fraction:
        kernel = cv2.getStructuringElement(
            cv2.MORPH_RECT, (t.document_stroke_px, t.document_stroke_px)
        )
        blackhat = cv2.morphologyEx(small, cv2.MORPH_BLACKHAT, kernel)
        ink = float((blackhat > t.document_ink_contrast).mean())
        if ink > t.document_ink_fraction:
            return GateResult(
                "is_radiograph",
                "fail",
                "quality.not_radiograph",
                round(ink, 4),
                t.document_ink_fraction,
            )
    return GateResult(
        "is_radiograph", "pass", "quality.ok", round(radiograph.colourfulness, 2), t.colour_fail
    )


def assess(radiograph: Radiograph, thresholds: QualityThresholds) -> QualityReport:
    small, _ = shrink_to_long_side(radiograph.pixels, thresholds.analysis_long_side_px)
    gates = (
        modality_gate(radiograph, thresholds),
        radiograph_gate(radiograph, small, thresholds),
        resolution_gate(radiograph, thresholds),
        blank_gate(small, thresholds),
        exposure_gate(small, thresholds),
        blur_gate(small, thresholds),
    )
    return QualityReport(gates=gates)
