"""What the models found: one ModelFinding per model that ran, and why others did not."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np

ModelKind = Literal["clinical", "image", "fused"]
# which permitted finding drives the referral when several ran: the one rule (decide() uses it)
KIND_PREFERENCE: tuple[ModelKind, ...] = ("fused", "image", "clinical")


@dataclass(frozen=True)
class ModelFinding:
    """Outputs of one model on one case. Probabilities are calibrated (see the model card)."""

    model_id: str
    model_version: str
    kind: ModelKind
    # True only when the model card records added value (governance rule, edgeosteo.models)
    used_for_referral: bool
    p_low_bone_mass: float | None = None  # P(T-score <= -1)
    p_osteoporosis: float | None = None  # P(T-score <= -2.5)
    t_score: float | None = None
    t_score_sd: float | None = None
    backend: str = ""
    precision: str = ""
    heatmap: np.ndarray | None = field(default=None, compare=False, repr=False)

    def to_dict(self) -> dict[str, object]:
        return {
            "model_id": self.model_id,
            "model_version": self.model_version,
            "kind": self.kind,
            "used_for_referral": self.used_for_referral,
            "status": "used" if self.used_for_referral else "experimental",
            "p_low_bone_mass": self.p_low_bone_mass,
            "p_osteoporosis": self.p_osteoporosis,
            "t_score": self.t_score,
            "t_score_sd": self.t_score_sd,
            "backend": self.backend,
            "precision": self.precision,
            "has_heatmap": self.heatmap is not None,
        }


# How a probability and an estimated T-score are written, the same on the page, in the
# printout and in the reasons' evidence: a probability never reads as certainty, and a
# T-score's spread is always its 95 % range (1.96 standard deviations).
T_SCORE_Z95 = 1.96


def probability_text(probability: float) -> str:
    """A probability as a whole percentage that never claims certainty: ">99%", "<1%"."""
    value = probability * 100.0
    if value > 99.0:
        return ">99%"
    if value < 1.0:
        return "<1%"
    return f"{value:.0f}%"


def threshold_text(threshold: float) -> str:
    """A site threshold (a probability) as a percentage, exact: 0.125 is "12.5%"."""
    return f"{threshold * 100:.4g}%"


def probability_against(probability: float, threshold: float) -> str:
    """A probability next to the threshold it was compared with: one decimal more where the
    whole percentage would read as the threshold itself (0.496 against 0.50: "49.6%")."""
    shown = probability_text(probability)
    if shown == threshold_text(threshold) and probability != threshold:
        shown = f"{probability * 100:.1f}%"
    return shown


def t_score_range_text(t_score: float, sd: float | None) -> str:
    """An estimated T-score with its 95 % range: "-2.6 ± 0.9" ("-2.6" without a spread)."""
    text = f"{t_score:.1f}"
    return f"{text} ± {T_SCORE_Z95 * sd:.1f}" if sd else text


UNKNOWN_BODY_PART = "unknown body part"  # the detail of model.unavailable_body_part without one


@dataclass(frozen=True)
class UnavailableFinding:
    """A model that did not run for this case, with the stable reason code."""

    code: str
    kind: ModelKind | None = None
    model_id: str | None = None
    detail: str | None = None

    def to_dict(self) -> dict[str, object]:
        return {
            "code": self.code,
            "kind": self.kind,
            "model_id": self.model_id,
            "detail": self.detail,
        }


@dataclass(frozen=True)
class Findings:
    results: tuple[ModelFinding, ...] = ()
    unavailable: tuple[UnavailableFinding, ...] = ()

    def for_referral(self, image_usable: bool = True) -> ModelFinding | None:
        """The finding the referral should use: fused, then image, then clinical, among
        those whose card permits referral use; image and fused findings only when the
        image they read was usable."""
        usable = [
            r
            for r in self.results
            if r.used_for_referral and (image_usable or r.kind == "clinical")
        ]
        return next((r for kind in KIND_PREFERENCE for r in usable if r.kind == kind), None)

    def first_heatmap(self) -> np.ndarray | None:
        """The heatmap a case stores: the first finding that drew one, preferring a model
        used for the referral (the case page reads which from the findings' JSON)."""
        drawn = [r for r in self.results if r.heatmap is not None]
        return next((r.heatmap for r in sorted(drawn, key=lambda r: not r.used_for_referral)), None)

    def to_dict(self) -> dict[str, object]:
        """The findings' JSON form; the primary model is the referral's, so Screening adds
        it beside these."""
        return {
            "results": [r.to_dict() for r in self.results],
            "unavailable": [u.to_dict() for u in self.unavailable],
        }
