"""The DXA referral recommendation: clinical answers, instruments, model findings, image
quality and the site policy in; one Referral out.

Every piece of evidence points to a category on its own; the recommendation is the most
severe of them. Nothing subtracts, so a positive finding can never be argued back to normal by
other inputs, and raising any risk input can only keep or raise the category.

Pure and deterministic: no I/O, no clock, no global mutable state.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from edgeosteo.calibration import DIRECTION, RULE_NAMES, live_score, refers
from edgeosteo.clinical import (
    FORM_QUESTIONS,
    ClinicalAnswers,
    ClinicalAssessment,
    assess_clinical,
    who_band,
)
from edgeosteo.config import PolicySettings
from edgeosteo.findings import (
    UNKNOWN_BODY_PART,
    Findings,
    ModelFinding,
    UnavailableFinding,
    probability_against,
    probability_text,
    t_score_range_text,
    threshold_text,
)
from edgeosteo.measurement import Measurement, MeasurementRefusal, MeasurementResult
from edgeosteo.messages import LANGUAGES, Evidence, both, field_names, quality_codes, text
from edgeosteo.metrics import auc
from edgeosteo.models import FEATURE_ANSWERS
from edgeosteo.quality import QualityReport

Category = Literal["cannot_assess", "retake", "routine", "consider", "refer", "urgent"]

# Severity order, lowest first. cannot_assess and retake carry no evidence of risk and make no
# recommendation, so they sit below routine; they are never to be read as "normal".
CATEGORY_ORDER: tuple[Category, ...] = (
    "cannot_assess",
    "retake",
    "routine",
    "consider",
    "refer",
    "urgent",
)
SEVERITY: dict[Category, int] = {c: i for i, c in enumerate(CATEGORY_ORDER)}

# What each instrument band points to on its own, when the site counts the instrument.
INSTRUMENT_BANDS: dict[str, dict[str, Category]] = {
    # OSTA <= -1 is itself a guideline DXA indication, so the intermediate band refers too
    "osta": {"low": "routine", "intermediate": "refer", "high": "refer"},
    "ost_men": {"low": "routine", "moderate": "consider", "high": "refer"},
    "orai": {"low": "routine", "high": "consider"},
    "score": {"low": "routine", "high": "consider"},
    "osiris": {"low": "routine", "intermediate": "consider", "high": "refer"},
}
# A measured T-score always counts.
WHO_BANDS: dict[str, Category] = {
    "normal": "routine",
    "low_bone_mass": "consider",
    "osteoporosis": "refer",
    "severe_osteoporosis": "urgent",
}
# Guideline DXA indications (cspbmr2017): each one met refers for DXA now. None is "consider":
# a clinic acts on a split, refer or routine with the rescreen interval; "consider" is left to
# evidence that is truly intermediate (a moderate band below the guideline's cut-offs).
INDICATIONS: dict[str, Category] = {
    "clinical.indication.age": "refer",
    "clinical.indication.younger_with_risk_factors": "refer",
    "clinical.indication.fragility_fracture": "refer",
    "clinical.indication.glucocorticoids": "refer",
    "clinical.indication.bone_disease_or_drugs": "refer",
    "clinical.indication.radiograph_change": "refer",
    "clinical.indication.osta": "refer",
    "clinical.indication.iof_positive": "refer",
}

# What each measurement band points to: the band is set by the cut-off its method's card
# cites (models/<method>/method.json), so a lower index can only keep or raise the category.
MEASUREMENT_BANDS: dict[str, Category] = {
    "normal": "routine",
    "low_bone_mass": "consider",
    "osteoporosis_likely": "refer",
    "no_vertebral_fracture": "routine",
    "possible_vertebral_fracture": "refer",
    "vertebral_fracture": "urgent",
}


# The site's policy is configuration: its fields, defaults and validation live in config.
SitePolicy = PolicySettings


@dataclass(frozen=True)
class Reason:
    """A stable code, the evidence in numbers (both languages), and the category that evidence
    points to on its own (None for information that does not move the category)."""

    code: str
    evidence: Evidence
    points_to: Category | None = None

    def to_dict(self) -> dict[str, object]:
        # "evidence" stays the English text of schema 1.0; results stored before the Chinese
        # text existed lack "evidence_zh_CN".
        return {
            "code": self.code,
            "evidence": self.evidence.en,
            "evidence_zh_CN": self.evidence.zh_CN,
            "points_to": self.points_to,
            "en": text(self.code, "en"),
            "zh_CN": text(self.code, "zh_CN"),
        }


def stored_evidence(reason: Mapping[str, object], language: str) -> str:
    """The evidence of a reason in ``Reason.to_dict()`` form, in a language. Results stored
    before the Chinese text existed have English only, and show it."""
    english = reason.get("evidence")
    chinese = reason.get("evidence_zh_CN") if language.startswith("zh") else None
    shown = chinese or english
    return shown if isinstance(shown, str) else ""


@dataclass(frozen=True)
class Referral:
    category: Category
    reasons: tuple[Reason, ...]  # evidence pointing to a category, most severe first
    notes: tuple[Reason, ...] = ()  # information only
    rescreen_interval_months: int | None = None  # set for routine only
    clinical_only: bool = True
    primary_model: str | None = None
    policy_version: str = ""

    @property
    def severity(self) -> int:
        return SEVERITY[self.category]

    @property
    def driving(self) -> tuple[Reason, ...]:
        """The reasons that set the category."""
        return tuple(r for r in self.reasons if r.points_to == self.category)

    @property
    def patient_key(self) -> str:
        return f"referral.{self.category}.patient"

    @property
    def clinician_key(self) -> str:
        return f"referral.{self.category}.clinician"

    @property
    def codes(self) -> tuple[str, ...]:
        """Every message code this referral shows."""
        return (
            self.patient_key,
            self.clinician_key,
            *(r.code for r in (*self.reasons, *self.notes)),
        )

    def wording(self, audience: Literal["patient", "clinician"], language: str = "en") -> str:
        return text(f"referral.{self.category}.{audience}", language)

    def to_dict(self) -> dict[str, object]:
        return {
            "category": self.category,
            "severity": self.severity,
            "patient_key": self.patient_key,
            "clinician_key": self.clinician_key,
            "patient": {lang: self.wording("patient", lang) for lang in LANGUAGES},
            "clinician": {lang: self.wording("clinician", lang) for lang in LANGUAGES},
            "reasons": [r.to_dict() for r in self.reasons],
            "driving": [r.code for r in self.driving],
            "notes": [r.to_dict() for r in self.notes],
            "rescreen_interval_months": self.rescreen_interval_months,
            "clinical_only": self.clinical_only,
            "primary_model": self.primary_model,
            "policy_version": self.policy_version,
        }


_KIND_ZH = {"image": "图像", "fused": "图像与临床融合", "clinical": "临床"}
INFORMATION_ONLY = Evidence(" (information only)", "（仅供参考）")
SITE_REPLACED = Evidence(
    " (replaced by the site's calibrated threshold)", "（已由本机构校准的阈值取代）"
)
QUALITY = Evidence("quality: ", "图像质量：")


def _model_prefix(finding: ModelFinding) -> str:
    return "clinical_model" if finding.kind == "clinical" else "image"


def _label(finding: ModelFinding) -> Evidence:
    return Evidence(
        f"model {finding.model_id} {finding.model_version}".strip(),
        f"模型 {finding.model_id} {finding.model_version}".strip(),
    )


def _probability_evidence(
    f: ModelFinding, of: Literal["osteoporosis", "low_bone_mass"], p: float, threshold: float
) -> Evidence:
    """A model probability against the site threshold it was compared with."""
    subject = (
        Evidence("image", "图像")
        if f.kind != "clinical"
        else Evidence("clinical model", "临床模型")
    )
    what = both(f"clinical.band.{of}")
    above = p >= threshold
    label = _label(f)
    shown, limit = probability_against(p, threshold), threshold_text(threshold)
    return Evidence(
        f"{subject.en} probability of {what.en} {shown} "
        f"{'at or above' if above else 'below'} site threshold {limit} ({label.en})",
        f"{subject.zh_CN}{what.zh_CN}概率 {shown}，"
        f"{'达到或超过' if above else '低于'}本机构阈值 {limit}（{label.zh_CN}）",
    )


def _estimate(f: ModelFinding, t: float, limit: float) -> Evidence:
    label = _label(f)
    if t <= limit:
        return Evidence(
            f"estimated T-score {t:.1f} at or below {limit:g} ({label.en})",
            f"估计T值 {t:.1f}，不高于 {limit:g}（{label.zh_CN}）",
        )
    return Evidence(
        f"estimated T-score {t:.1f} above {limit:g} ({label.en})",
        f"估计T值 {t:.1f}，高于 {limit:g}（{label.zh_CN}）",
    )


def _finding_reasons(f: ModelFinding, policy: SitePolicy) -> list[Reason]:
    prefix = _model_prefix(f)
    reasons: list[Reason] = []
    p = f.p_osteoporosis
    if p is not None:
        if p >= policy.refer_p_osteoporosis:
            reasons.append(
                Reason(
                    f"{prefix}.p_osteoporosis_above_threshold",
                    _probability_evidence(f, "osteoporosis", p, policy.refer_p_osteoporosis),
                    "refer",
                )
            )
        elif p >= policy.consider_p_osteoporosis:
            reasons.append(
                Reason(
                    f"{prefix}.p_osteoporosis_above_consider_threshold",
                    _probability_evidence(f, "osteoporosis", p, policy.consider_p_osteoporosis),
                    "consider",
                )
            )
        else:
            reasons.append(
                Reason(
                    f"{prefix}.p_osteoporosis_below_threshold",
                    _probability_evidence(f, "osteoporosis", p, policy.consider_p_osteoporosis),
                    "routine",
                )
            )
    q = f.p_low_bone_mass
    if q is not None:
        above = q >= policy.consider_p_low_bone_mass
        reasons.append(
            Reason(
                f"{prefix}.p_low_bone_mass_{'above' if above else 'below'}_threshold",
                _probability_evidence(f, "low_bone_mass", q, policy.consider_p_low_bone_mass),
                "consider" if above else "routine",
            )
        )
    t = f.t_score
    if t is not None and policy.use_estimated_t_score:
        if t <= policy.refer_estimated_t_score:
            reasons.append(
                Reason(
                    f"{prefix}.t_score_refer",
                    _estimate(f, t, policy.refer_estimated_t_score),
                    "refer",
                )
            )
        elif t <= policy.consider_estimated_t_score:
            reasons.append(
                Reason(
                    f"{prefix}.t_score_consider",
                    _estimate(f, t, policy.consider_estimated_t_score),
                    "consider",
                )
            )
        else:
            reasons.append(
                Reason(
                    f"{prefix}.t_score_above",
                    _estimate(f, t, policy.consider_estimated_t_score),
                    "routine",
                )
            )
    return reasons


def _finding_summary(f: ModelFinding) -> Evidence:
    label = _label(f)
    en = [label.en, f"kind {f.kind}"]
    zh = [label.zh_CN, f"类型：{_KIND_ZH.get(f.kind, f.kind)}"]
    if f.p_osteoporosis is not None:
        en.append(f"probability of osteoporosis {probability_text(f.p_osteoporosis)}")
        zh.append(f"骨质疏松概率 {probability_text(f.p_osteoporosis)}")
    if f.p_low_bone_mass is not None:
        en.append(f"probability of low bone mass {probability_text(f.p_low_bone_mass)}")
        zh.append(f"低骨量概率 {probability_text(f.p_low_bone_mass)}")
    if f.t_score is not None:
        shown = t_score_range_text(f.t_score, f.t_score_sd)
        spread = f.t_score_sd is not None and f.t_score_sd > 0
        en.append(f"estimated T-score {shown}" + (" (95% range)" if spread else ""))
        zh.append(f"估计T值 {shown}" + ("（95%范围）" if spread else ""))
    return Evidence(", ".join(en), "，".join(zh))


def _unavailable(u: UnavailableFinding, answers: ClinicalAnswers) -> Evidence:
    """Which model did not run, and the detail where it is answer fields or a body part.
    Other details are software diagnostics (paths, runtime errors) for IT support: they stay
    in the English text only, since the reason's own sentence already says what to do."""
    en = ", ".join(x for x in (u.model_id, u.detail) if x)
    detail = None
    if u.code == "model.missing_inputs" and u.detail:
        # a feature such as bmi is named by the answers it is formed from (height, weight)
        names = dict.fromkeys(
            name for f in u.detail.split(", ") for name in FEATURE_ANSWERS.get(f, (f,))
        )
        unanswered = [n for n in names if getattr(answers, n, None) is None]
        detail = "缺少" + field_names(unanswered or names).zh_CN
    elif u.code == "model.unavailable_body_part" and u.detail:
        detail = "部位未知" if u.detail == UNKNOWN_BODY_PART else f"部位 {u.detail}"
    parts = [f"模型 {u.model_id}" if u.model_id else None, detail]
    zh = "，".join(x for x in parts if x) or ("技术信息见英文" if en else "")
    return Evidence(en, zh)


def _clinical_reasons(
    answers: ClinicalAnswers, assessment: ClinicalAssessment, policy: SitePolicy
) -> tuple[list[Reason], list[Reason]]:
    reasons: list[Reason] = []
    notes: list[Reason] = []
    site_osta = policy.calibrated_rule == "osta"
    met = [item.code for item in assessment.indications_met]
    osta_counted = False
    for result in assessment.instruments:
        counted = result.name in policy.counted_instruments or result.name == "who"
        if result.computed and result.code is not None and result.band is not None:
            bands = WHO_BANDS if result.name == "who" else INSTRUMENT_BANDS[result.name]
            if site_osta and result.name in ("osta", "ost_men"):
                notes.append(Reason(result.code, result.evidence + SITE_REPLACED))
            elif counted:
                reasons.append(Reason(result.code, result.evidence, bands[result.band]))
                osta_counted = osta_counted or result.name == "osta"
            elif not (result.name == "osta" and "clinical.indication.osta" in met):
                notes.append(Reason(result.code, result.evidence + INFORMATION_ONLY))
            notes.extend(Reason(c, result.evidence) for c in result.caveats)
        elif counted and result.missing and result.name != "who":
            notes.append(Reason("clinical.missing_answers", result.evidence))
    for item in assessment.indications_met:
        if site_osta and item.code == "clinical.indication.osta":
            notes.append(Reason(item.code, item.evidence + SITE_REPLACED))
            continue
        # one OSTA index is one piece of evidence: its band (which refers at <= -1, the
        # guideline's indication) when the site counts OSTA, else the indication
        if item.code == "clinical.indication.osta" and osta_counted:
            continue
        reasons.append(Reason(item.code, item.evidence, INDICATIONS[item.code]))
    return reasons, notes


def _relevant_missing(assessment: ClinicalAssessment, policy: SitePolicy) -> tuple[str, ...]:
    """Unanswered questions of the page's form that a counted instrument or a guideline
    indication needed."""
    seen: dict[str, None] = {}
    for result in assessment.instruments:
        if result.name in policy.counted_instruments:
            seen.update(dict.fromkeys(result.missing))
    for item in assessment.indications:
        seen.update(dict.fromkeys(item.missing))
    return tuple(name for name in seen if name in FORM_QUESTIONS)


def decide(
    answers: ClinicalAnswers,
    assessment: ClinicalAssessment | None,
    findings: Findings | None,
    quality: QualityReport | None,
    policy: SitePolicy | None = None,
    measurements: Sequence[MeasurementResult] = (),
) -> Referral:
    """The referral for one patient.

    ``measurements`` point to a category through their band when the site counts their
    method; a refused measurement is a note with its reason, never evidence.

    ``quality`` is None when no image was given; image and fused findings are then not used.
    Only findings whose card permits referral use drive the category, the preferred one
    (fused, then image, then clinical) alone; others are listed as information.
    """
    policy = policy or SitePolicy()
    if assessment is None:
        assessment = assess_clinical(answers)
    elif assessment.answers != answers:
        raise ValueError("the clinical assessment was made from other answers")
    findings = findings or Findings()
    image_failed = quality is not None and not quality.usable

    reasons, notes = _clinical_reasons(answers, assessment, policy)
    primary = findings.for_referral(image_usable=quality is not None and not image_failed)
    notes.extend(_finding_notes(findings, primary, quality, image_failed, answers))
    primary, model_reasons, model_notes = _primary_reasons(primary, policy)
    if (
        primary is not None
        and primary.kind == "clinical"
        and (policy.calibrated_rule == "clinical_model")
    ):
        # the site's calibrated threshold on this model's probability replaces the default ones
        model_notes = [
            *(Reason(r.code, r.evidence + SITE_REPLACED) for r in model_reasons),
            *model_notes,
        ]
        model_reasons = []
    reasons.extend(model_reasons)
    notes.extend(model_notes)
    reasons.extend(_fracture_with_probable_osteoporosis(answers, primary, policy))
    measured_reasons, measured_notes = _measurement_reasons(measurements, policy)
    reasons.extend(measured_reasons)
    notes.extend(measured_notes)
    site = _site_threshold_reason(assessment, findings, measurements, policy)
    reasons.extend(site)

    image_used = primary is not None and primary.kind != "clinical"
    quality_listed = QUALITY + quality_codes(quality.codes if quality else ())
    notes.extend(_image_use_notes(image_used, quality, image_failed, quality_listed))

    category, floor_reasons, floor_notes = _category(
        answers,
        assessment,
        reasons,
        primary or bool(measured_reasons) or bool(site),
        image_failed,
        quality_listed,
    )
    reasons.extend(floor_reasons)
    notes.extend(floor_notes)
    notes.extend(_policy_notes(category, assessment, policy))

    ordered = tuple(sorted(reasons, key=lambda r: -SEVERITY[r.points_to or "cannot_assess"]))
    return Referral(
        category=category,
        reasons=ordered,
        notes=tuple(notes),
        rescreen_interval_months=policy.rescreen_interval_months if category == "routine" else None,
        clinical_only=not image_used,
        primary_model=primary.model_id if primary is not None else None,
        policy_version=policy.policy_version,
    )


def _finding_notes(
    findings: Findings,
    primary: ModelFinding | None,
    quality: QualityReport | None,
    image_failed: bool,
    answers: ClinicalAnswers,
) -> list[Reason]:
    """Why each finding other than the primary one is information only, and why models did
    not run."""
    notes: list[Reason] = []
    for f in findings.results:
        if not f.used_for_referral:
            # a clinical model is refused for not beating age alone and OSTA, not for being new
            code = (
                "decision.model_below_baselines"
                if f.kind == "clinical"
                else "decision.experimental_finding"
            )
            notes.append(Reason(code, _finding_summary(f) + INFORMATION_ONLY))
        elif f.kind != "clinical" and quality is None:
            notes.append(Reason("image.not_used_no_quality_report", _finding_summary(f)))
        elif f.kind != "clinical" and image_failed:
            notes.append(Reason("image.not_used_quality_failed", _finding_summary(f)))
    image_usable = quality is not None and not image_failed
    for f in findings.results:
        if f.used_for_referral and (image_usable or f.kind == "clinical") and f is not primary:
            notes.append(
                Reason("decision.secondary_finding", _finding_summary(f) + INFORMATION_ONLY)
            )
    for u in findings.unavailable:
        notes.append(Reason(u.code, _unavailable(u, answers)))
    return notes


def _primary_reasons(
    primary: ModelFinding | None, policy: SitePolicy
) -> tuple[ModelFinding | None, list[Reason], list[Reason]]:
    """The primary finding's reasons; a finding with no usable output stops being primary."""
    if primary is None:
        return None, [], []
    reasons = _finding_reasons(primary, policy)
    if not reasons:
        return None, [], [Reason("decision.finding_without_output", _finding_summary(primary))]
    notes: list[Reason] = []
    if primary.t_score is not None and not policy.use_estimated_t_score:
        band = both(f"clinical.band.{who_band(primary.t_score)}")
        notes.append(
            Reason(
                "decision.estimated_t_score",
                _finding_summary(primary)
                + Evidence(
                    f"; WHO band of the estimate: {band.en} (estimate, not a measurement)",
                    f"；估计值对应的WHO分级：{band.zh_CN}（估计值，不是测量值）",
                ),
            )
        )
    return primary, reasons, notes


def _fracture_with_probable_osteoporosis(
    answers: ClinicalAnswers, primary: ModelFinding | None, policy: SitePolicy
) -> list[Reason]:
    p = primary.p_osteoporosis if primary is not None else None
    if answers.prior_fragility_fracture is not True or p is None:
        return []
    if p < policy.refer_p_osteoporosis:
        return []
    return [
        Reason(
            "decision.fracture_with_probable_osteoporosis",
            Evidence(
                f"prior fragility fracture and probability of osteoporosis "
                f"{probability_against(p, policy.refer_p_osteoporosis)} at or above "
                f"{threshold_text(policy.refer_p_osteoporosis)}",
                f"有脆性骨折史，且骨质疏松概率 "
                f"{probability_against(p, policy.refer_p_osteoporosis)} "
                f"达到或超过 {threshold_text(policy.refer_p_osteoporosis)}",
            ),
            "urgent",
        )
    ]


def _measurement_evidence(m: Measurement) -> Evidence:
    value = f"{m.value:.2f}" if m.unit != "grade" else f"{m.value:g}"
    unit = "" if m.unit in ("ratio", "grade") else f" {m.unit}"
    cutoff = f"{m.cutoff.rule}, {m.cutoff.citation}" if m.cutoff else ""
    levels = m.details.get("finding") if isinstance(m.details.get("finding"), Mapping) else None
    extra_en = f"; {levels['en']}" if levels and levels.get("en") else ""
    extra_zh = f"；{levels['zh_CN']}" if levels and levels.get("zh_CN") else ""
    return Evidence(
        f"{m.method} {m.method_version}: {value}{unit} ({cutoff}){extra_en}",
        f"{m.method} {m.method_version}：{value}{unit}（{cutoff}）{extra_zh}",
    )


def _measurement_reasons(
    measurements: Sequence[MeasurementResult], policy: SitePolicy
) -> tuple[list[Reason], list[Reason]]:
    reasons: list[Reason] = []
    notes: list[Reason] = []
    for m in measurements:
        if isinstance(m, MeasurementRefusal):
            notes.append(Reason(m.code, Evidence(m.method, m.method)))
            continue
        if m.band is None or m.band not in MEASUREMENT_BANDS:
            notes.append(Reason("measurement.information_only", _measurement_evidence(m)))
            continue
        code = f"measurement.band.{m.band}"
        calibrated = m.method == policy.calibrated_rule
        if calibrated and MEASUREMENT_BANDS[m.band] != "urgent":
            notes.append(Reason(code, _measurement_evidence(m) + SITE_REPLACED))
        elif m.method in policy.counted_measurements or calibrated:
            reasons.append(Reason(code, _measurement_evidence(m), MEASUREMENT_BANDS[m.band]))
        else:
            notes.append(
                Reason("measurement.information_only", _measurement_evidence(m) + INFORMATION_ONLY)
            )
    return reasons, notes


def _image_use_notes(
    image_used: bool,
    quality: QualityReport | None,
    image_failed: bool,
    quality_listed: Evidence,
) -> list[Reason]:
    if image_used:
        if quality is not None and quality.verdict == "warn":
            return [Reason("image.quality_warning", quality_listed)]
        return []
    return [
        Reason(
            "decision.clinical_only",
            Evidence("no usable image result", "无可用的图像结果")
            if quality is None or image_failed
            else Evidence(
                "no image model result permitted for referral",
                "没有获准用于转诊判断的图像模型结果",
            ),
        )
    ]


def _category(
    answers: ClinicalAnswers,
    assessment: ClinicalAssessment,
    reasons: Sequence[Reason],
    primary: ModelFinding | bool | None,
    image_failed: bool,
    quality_listed: Evidence,
) -> tuple[Category, list[Reason], list[Reason]]:
    """The most severe category the evidence points to; without one, retake, routine or
    cannot_assess, each with the reason that set it."""
    category = max(
        (r.points_to for r in reasons if r.points_to is not None),
        key=SEVERITY.__getitem__,
        default=None,
    )
    if category is not None and SEVERITY[category] >= SEVERITY["consider"]:
        notes = [Reason("decision.retake_advised", quality_listed)] if image_failed else []
        return category, [], notes
    if image_failed:
        return "retake", [Reason("decision.image_unusable", quality_listed, "retake")], []
    clinical_enough = answers.prior_fragility_fracture is not None and any(
        r.code.startswith(("clinical.", "site.")) and r.points_to is not None for r in reasons
    )
    if primary or clinical_enough:
        return "routine", [], []
    wanted = [
        name
        for name in ("age_years", "sex", "weight_kg", "prior_fragility_fracture")
        if getattr(answers, name) is None
    ]
    missing = Reason(
        "decision.insufficient_information",
        Evidence("missing: ", "缺少：")
        + field_names(wanted or [n for n in assessment.missing if n in FORM_QUESTIONS]),
        "cannot_assess",
    )
    return "cannot_assess", [missing], []


def _site_threshold_reason(
    assessment: ClinicalAssessment,
    findings: Findings,
    measurements: Sequence[MeasurementResult],
    policy: SitePolicy,
) -> list[Reason]:
    """The site's calibrated threshold (edgeosteo.calibration): refer at or beyond it,
    routine short of it; nothing when the case has no such score."""
    rule = policy.calibrated_rule
    if not rule:
        return []
    score = live_score(rule, policy.calibrated_reference, assessment, findings, measurements)
    if score is None:
        return []
    threshold = policy.calibrated_threshold
    met = refers(rule, score, threshold)
    low = DIRECTION[rule] == "low"
    side_en = ("at or below" if low else "at or above") if met else ("above" if low else "below")
    side_zh = ("不高于" if low else "达到或超过") if met else ("高于" if low else "低于")
    name_en, name_zh = RULE_NAMES[rule]
    basis = (
        f"{policy.policy_version}, {policy.calibration_date}, "
        f"{policy.calibration_cases} DXA-labelled cases"
    )
    basis_zh = (
        f"{policy.policy_version}，{policy.calibration_date}，"
        f"基于 {policy.calibration_cases} 例有DXA结果的病例"
    )
    evidence = Evidence(
        f"{name_en} {score:g} {side_en} the site threshold {threshold:g} ({basis})",
        f"{name_zh} {score:g}，{side_zh}本机构校准阈值 {threshold:g}（{basis_zh}）",
    )
    if met:
        return [Reason("site.threshold_met", evidence, "refer")]
    return [Reason("site.threshold_not_met", evidence, "routine")]


def _policy_notes(
    category: Category, assessment: ClinicalAssessment, policy: SitePolicy
) -> list[Reason]:
    notes: list[Reason] = []
    if category in ("consider", "refer", "urgent"):
        notes.append(
            Reason(
                "decision.dxa_local" if policy.dxa_locally_available else "decision.dxa_not_local",
                Evidence("site policy", "本机构策略"),
            )
        )
    if missing := _relevant_missing(assessment, policy):
        notes.append(
            Reason(
                "clinical.incomplete", Evidence("not answered: ", "未填写：") + field_names(missing)
            )
        )
    return notes


# --- a site's own operating point ---------------------------------------------------------


@dataclass(frozen=True)
class OperatingPoint:
    threshold: float
    sensitivity: float
    specificity: float
    target_sensitivity: float
    n_positive: int
    n_negative: int

    def to_dict(self) -> dict[str, object]:
        return dataclasses.asdict(self)


def _checked(scores: Sequence[float], labels: Sequence[bool]) -> tuple[list[float], list[bool]]:
    if len(scores) != len(labels):
        raise ValueError("scores and labels differ in length")
    values = [float(s) for s in scores]
    if not all(math.isfinite(s) for s in values):
        raise ValueError("scores must be finite")
    flags = [bool(x) for x in labels]
    if all(flags) or not any(flags):
        raise ValueError("both positive and negative cases are needed")
    return values, flags


def recalibrate_threshold(
    scores: Sequence[float], labels: Sequence[bool], target_sensitivity: float
) -> OperatingPoint:
    """The highest threshold whose sensitivity on the site's labelled cases reaches the target.

    A case is called positive when ``score >= threshold`` (the rule :func:`decide` applies).
    The threshold is one of the positive cases' scores, so the sensitivity is reached exactly
    on these cases; on new cases it is an estimate, with a confidence interval that is wide
    when positives are few. The specificity is what that threshold gives on the negatives.
    """
    if not 0.0 < target_sensitivity <= 1.0:
        raise ValueError("target_sensitivity must be in (0, 1]")
    values, flags = _checked(scores, labels)
    positives = sorted((s for s, y in zip(values, flags, strict=True) if y), reverse=True)
    negatives = [s for s, y in zip(values, flags, strict=True) if not y]
    needed = max(1, math.ceil(target_sensitivity * len(positives) - 1e-9))
    threshold = positives[needed - 1]
    sensitivity = sum(s >= threshold for s in positives) / len(positives)
    specificity = sum(s < threshold for s in negatives) / len(negatives)
    return OperatingPoint(
        threshold, sensitivity, specificity, target_sensitivity, len(positives), len(negatives)
    )


def roc_auc(scores: Sequence[float], labels: Sequence[bool]) -> float:
    """Area under the ROC curve by ranks (Mann-Whitney U), ties counted as one half.
    Higher scores are taken to mean positive."""
    values, flags = _checked(scores, labels)
    return auc(values, flags)


__all__ = [
    "CATEGORY_ORDER",
    "SEVERITY",
    "Category",
    "OperatingPoint",
    "Reason",
    "Referral",
    "SitePolicy",
    "decide",
    "recalibrate_threshold",
    "roc_auc",
    "stored_evidence",
]
