"""Clinical risk instruments and the Chinese guideline's DXA indications.

Each instrument is implemented from its published definition (see ``CITATIONS`` and
docs/clinical.md). An instrument never guesses: an unanswered input is reported as missing,
a population the paper did not study is reported as not applicable, and nothing is
defaulted. FRAX is deliberately absent: its equations are not public.

Pure functions of the answers: no I/O, no global mutable state.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from edgeosteo.errors import EdgeOsteoError
from edgeosteo.messages import Evidence, both, field_names, text

Sex = Literal["female", "male"]

CITATIONS: dict[str, str] = {
    "koh2001": (
        "Koh LKH, Ben Sedrine W, Torralba TP, et al. A simple tool to identify Asian women at "
        "increased risk of osteoporosis. Osteoporos Int. 2001;12(8):699-705."
    ),
    "adler2003": (
        "Adler RA, Tran MT, Petkov VI. Performance of the Osteoporosis Self-assessment Screening "
        "Tool for osteoporosis in American men. Mayo Clin Proc. 2003;78(6):723-727."
    ),
    "cadarette2000": (
        "Cadarette SM, Jaglal SB, Kreiger N, et al. Development and validation of the "
        "Osteoporosis Risk Assessment Instrument to facilitate selection of women for bone "
        "densitometry. CMAJ. 2000;162(9):1289-1294."
    ),
    "lydick1998": (
        "Lydick E, Cook K, Turpin J, et al. Development and validation of a simple questionnaire "
        "to facilitate identification of women likely to have low bone density. "
        "Am J Manag Care. 1998;4(1):37-48."
    ),
    "sedrine2002": (
        "Ben Sedrine W, Chevallier T, Zegels B, et al. Development and assessment of the "
        "Osteoporosis Index of Risk (OSIRIS) to facilitate selection of women for bone "
        "densitometry. Gynecol Endocrinol. 2002;16(3):245-250."
    ),
    "who1994": (
        "WHO Study Group. Assessment of fracture risk and its application to screening for "
        "postmenopausal osteoporosis. WHO Technical Report Series 843. Geneva: WHO; 1994."
    ),
    "cspbmr2017": (
        "中华医学会骨质疏松和骨矿盐疾病分会. 原发性骨质疏松症诊疗指南（2017）. "
        "中华骨质疏松和骨矿盐疾病杂志. 2017;10(5):413-444."
    ),
}

# The questions the page's clinical form asks (edgeosteo.web.form.CLINICAL_FIELDS; a test
# keeps the two equal). A note that lists unanswered questions lists only these: it never
# asks the technician for an answer the form has no place for.
FORM_QUESTIONS: tuple[str, ...] = (
    "age_years",
    "sex",
    "weight_kg",
    "height_m",
    "prior_fragility_fracture",
    "glucocorticoids_3_months",
    "postmenopausal",
    "estrogen_current",
    "rheumatoid_arthritis",
    "secondary_causes",
    "family_history_osteoporosis",
    "current_smoker",
    "iof_one_minute_positive",
)

# Plausible ranges (inclusive). A value outside is a typing or unit error, never clipped.
RANGES: dict[str, tuple[float, float]] = {
    "age_years": (18.0, 110.0),
    "weight_kg": (25.0, 200.0),
    "height_m": (1.0, 2.2),
    "menopause_age_years": (20.0, 65.0),
    "entered_t_score": (-7.0, 5.0),
    "fracture_sites_after_45": (0, 3),
}

BOOLEAN_FIELDS: tuple[str, ...] = (
    "prior_fragility_fracture",
    "glucocorticoids_3_months",
    "estrogen_current",
    "estrogen_ever",
    "postmenopausal",
    "rheumatoid_arthritis",
    "secondary_causes",
    "iof_one_minute_positive",
    "black_ancestry",
    "current_smoker",
    "alcohol_3_units_daily",
    "family_history_osteoporosis",
    "radiograph_osteoporotic_change",
)


class ClinicalAnswersError(EdgeOsteoError):
    """ClinicalAnswers built directly with an invalid value (use from_dict for form input)."""


@dataclass(frozen=True)
class AnswerProblem:
    """One answer that could not be accepted; the field is then treated as unanswered."""

    field: str
    code: str  # answers.out_of_range, answers.wrong_type, answers.height_units, ...
    value: str
    expected: str

    def to_dict(self) -> dict[str, str]:
        return {
            "field": self.field,
            "code": self.code,
            "value": self.value,
            "expected": self.expected,
        }


@dataclass(frozen=True)
class ClinicalAnswers:
    """What the technician entered. Every field is optional: None means not answered."""

    age_years: float | None = None
    sex: Sex | None = None
    weight_kg: float | None = None
    height_m: float | None = None
    prior_fragility_fracture: bool | None = None  # low-trauma fracture in adulthood
    # SCORE counts fracture types (wrist, rib, hip) after age 45: 0-3
    fracture_sites_after_45: int | None = None
    glucocorticoids_3_months: bool | None = None  # oral glucocorticoids for >= 3 months
    estrogen_current: bool | None = None  # current estrogen or HRT
    estrogen_ever: bool | None = None
    postmenopausal: bool | None = None
    menopause_age_years: float | None = None
    rheumatoid_arthritis: bool | None = None
    secondary_causes: bool | None = None  # diseases or drugs affecting bone metabolism
    iof_one_minute_positive: bool | None = None
    black_ancestry: bool | None = None
    current_smoker: bool | None = None
    alcohol_3_units_daily: bool | None = None
    family_history_osteoporosis: bool | None = None  # parental hip fracture or osteoporosis
    radiograph_osteoporotic_change: bool | None = None  # as reported by a reader
    entered_t_score: float | None = None  # a measured (DXA) T-score, if one exists

    def __post_init__(self) -> None:
        values = dataclasses.asdict(self)
        problems = [p for name, v in values.items() if (p := _typed_problem(name, v))]
        problems += [p for p, _ in _consistency_problems(values)]
        if problems:
            detail = "; ".join(
                f"{p.field}: {p.code} ({p.value}, expected {p.expected})" for p in problems
            )
            raise ClinicalAnswersError("answers.invalid", detail)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ParsedAnswers:
        """Build from form or CSV input. Values may be strings; blanks mean not answered.

        Every value that cannot be accepted becomes a coded problem and the field stays
        unanswered, so no instrument uses it. Units are never converted by guesswork.
        """
        known = {f.name for f in dataclasses.fields(cls)}
        problems: list[AnswerProblem] = []
        values: dict[str, Any] = {}
        for key, raw in data.items():
            if key not in known:
                problems.append(AnswerProblem(key, "answers.unknown_field", _show(raw), ""))
                continue
            value, problem = _parse(key, raw)
            if problem is None and value is not None:
                problem = _typed_problem(key, value)
            if problem is not None:
                problems.append(problem)
            else:
                values[key] = value
        for problem, drop in _consistency_problems(values):
            problems.append(problem)
            values.pop(drop, None)
        return ParsedAnswers(cls(**values), tuple(problems))

    def to_dict(self) -> dict[str, object]:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class ParsedAnswers:
    answers: ClinicalAnswers
    problems: tuple[AnswerProblem, ...] = ()

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_dict(self) -> dict[str, object]:
        return {"answers": self.answers.to_dict(), "problems": [p.to_dict() for p in self.problems]}


def _show(value: object) -> str:
    return repr(value)[:60]


def _expected(name: str) -> str:
    if name in RANGES:
        low, high = RANGES[name]
        return f"{low:g}-{high:g}"
    if name == "sex":
        return "female|male"
    return "yes|no"


_TRUE = {"1", "yes", "y", "true", "t", "是"}
_FALSE = {"0", "no", "n", "false", "f", "否"}
_SEX = {
    "female": "female",
    "f": "female",
    "女": "female",
    "male": "male",
    "m": "male",
    "男": "male",
}


def _parse(name: str, raw: object) -> tuple[Any, AnswerProblem | None]:
    """Lenient parsing of one form value into its typed form (no range checks)."""
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        return None, None
    wrong = AnswerProblem(name, "answers.wrong_type", _show(raw), _expected(name))
    text = raw.strip().lower() if isinstance(raw, str) else None
    if name == "sex":
        if text is not None and text in _SEX:
            return _SEX[text], None
        return None, wrong
    if name in BOOLEAN_FIELDS:
        if isinstance(raw, bool):
            return raw, None
        if isinstance(raw, numbers.Integral) and raw in (0, 1):
            return bool(raw), None
        if text in _TRUE:
            return True, None
        if text in _FALSE:
            return False, None
        return None, wrong
    if isinstance(raw, bool):
        return None, wrong
    number: float
    try:
        if isinstance(raw, numbers.Real):  # includes numpy scalars from data frames
            number = float(raw)
        elif text is not None:
            number = float(text)
        else:
            return None, wrong
    except (ValueError, OverflowError):  # OverflowError: an integer beyond any float
        return None, wrong
    if not math.isfinite(number):
        return None, wrong
    if name == "fracture_sites_after_45":
        if number != int(number):
            return None, wrong
        return int(number), None
    return number, None


def _typed_problem(name: str, value: object) -> AnswerProblem | None:
    """Type and range check of an already typed value."""
    if value is None:
        return None
    expected = _expected(name)
    wrong = AnswerProblem(name, "answers.wrong_type", _show(value), expected)
    if name == "sex":
        return None if value in ("female", "male") else wrong
    if name in BOOLEAN_FIELDS:
        return None if isinstance(value, bool) else wrong
    if isinstance(value, bool) or not isinstance(value, int | float):
        return wrong
    if name == "fracture_sites_after_45" and not isinstance(value, int):
        return wrong
    if not math.isfinite(value):
        return wrong
    low, high = RANGES[name]
    if low <= value <= high:
        return None
    if name == "height_m" and 100.0 <= value <= 220.0:
        return AnswerProblem(name, "answers.height_units", _show(value), expected)
    return AnswerProblem(name, "answers.out_of_range", _show(value), expected)


def _consistency_problems(values: Mapping[str, Any]) -> list[tuple[AnswerProblem, str]]:
    """Answers that contradict each other, with the field to treat as unanswered."""
    found: list[tuple[AnswerProblem, str]] = []

    def clash(drop: str, expected: str) -> None:
        found.append(
            (AnswerProblem(drop, "answers.inconsistent", _show(values[drop]), expected), drop)
        )

    if values.get("sex") == "male":
        for name in ("postmenopausal", "menopause_age_years"):
            if values.get(name) not in (None, False):
                clash(name, "not answered for men")
    age, menopause = values.get("age_years"), values.get("menopause_age_years")
    if age is not None and menopause is not None and menopause > age:
        clash("menopause_age_years", "not later than age_years")
    elif menopause is not None and values.get("postmenopausal") is False:
        clash("menopause_age_years", "blank when postmenopausal is no")
    sites = values.get("fracture_sites_after_45")
    if sites and values.get("prior_fragility_fracture") is False:
        clash("fracture_sites_after_45", "0 when prior_fragility_fracture is no")
    elif sites and age is not None and age < 45:
        clash("fracture_sites_after_45", "0 before age 45")
    if values.get("estrogen_current") is True and values.get("estrogen_ever") is False:
        clash("estrogen_ever", "yes when estrogen_current is yes")
    return found


# --- instrument results -------------------------------------------------------------------


@dataclass(frozen=True)
class InstrumentResult:
    """One instrument on one patient. score and band are None when it could not be computed;
    then ``missing`` names the unanswered fields or ``not_applicable`` gives the coded reason."""

    name: str
    score: float | None = None
    band: str | None = None
    missing: tuple[str, ...] = ()
    not_applicable: str | None = None
    citation: str = ""
    caveats: tuple[str, ...] = ()

    @property
    def computed(self) -> bool:
        return self.band is not None

    @property
    def code(self) -> str | None:
        """The stable code of the band, e.g. ``clinical.osta_high``."""
        return f"clinical.{self.name}_{self.band}" if self.band is not None else None

    @property
    def evidence(self) -> Evidence:
        en, zh = DISPLAY_NAMES.get(self.name, (self.name, self.name))
        if self.band is None:
            if self.not_applicable:
                why = text(self.not_applicable, "zh_CN").rstrip("。")
                return Evidence(
                    f"{en} not applicable ({self.not_applicable})", f"{zh}不适用：{why}"
                )
            missing = field_names(self.missing)
            return Evidence(
                f"{en} not computed: missing {missing.en}", f"{zh}未计算：缺少{missing.zh_CN}"
            )
        score = f" {score_text(self.score)}" if self.score is not None else ""
        band = both(f"clinical.band.{self.band}")
        return Evidence(f"{en}{score} ({band.en})", f"{zh}{score}（{band.zh_CN}）")

    def to_dict(self) -> dict[str, object]:
        return {
            "name": self.name,
            "score": self.score,
            "band": self.band,
            "code": self.code,
            "missing": list(self.missing),
            "not_applicable": self.not_applicable,
            "citation": self.citation,
            "caveats": list(self.caveats),
        }


# Short instrument names for evidence: (English, Simplified Chinese).
DISPLAY_NAMES: dict[str, tuple[str, str]] = {
    "osta": ("OSTA", "OSTA"),
    "ost_men": ("OST (men)", "男性OST"),
    "orai": ("ORAI", "ORAI"),
    "score": ("SCORE", "SCORE"),
    "osiris": ("OSIRIS", "OSIRIS"),
    "who": ("WHO T-score band", "WHO T值分级"),
}


def _truncate(value: float) -> int:
    """Integer part toward zero, tolerant of binary rounding (3.9999999 -> 4, -1.0000001 -> -1)."""
    return math.trunc(round(value, 9))


def osta_index(weight_kg: float, age_years: float) -> int:
    """0.2 x (weight kg - age years), integer part (truncated toward zero). Koh 2001.

    Computed as a division by 5 so that exact multiples give exact integers.
    """
    return _truncate((weight_kg - age_years) / 5.0)


def _women_only(name: str, citation: str, a: ClinicalAnswers) -> InstrumentResult | None:
    if a.sex == "male":
        return InstrumentResult(
            name, not_applicable="clinical.not_applicable.men", citation=citation
        )
    return None


def _missing(a: ClinicalAnswers, *fields: str) -> tuple[str, ...]:
    return tuple(f for f in fields if getattr(a, f) is None)


def _premenopausal_caveat(a: ClinicalAnswers) -> tuple[str, ...]:
    return ("clinical.caveat.premenopausal",) if a.postmenopausal is False else ()


def osta(a: ClinicalAnswers) -> InstrumentResult:
    """Osteoporosis Self-assessment Tool for Asians (Koh 2001), Chinese guideline bands
    (cspbmr2017): index > -1 low, -1 to -4 intermediate, < -4 high.

    Developed in postmenopausal Asian women; for men use :func:`ost_men`. Koh 2001 reports
    at the cut-off -1 a sensitivity of 91 % and specificity of 45 % (AUC 0.79).
    """
    if (na := _women_only("osta", "koh2001", a)) is not None:
        return na
    if missing := _missing(a, "sex", "age_years", "weight_kg"):
        return InstrumentResult("osta", missing=missing, citation="koh2001")
    assert a.weight_kg is not None and a.age_years is not None
    index = osta_index(a.weight_kg, a.age_years)
    band = "low" if index > -1 else "intermediate" if index >= -4 else "high"
    return InstrumentResult(
        "osta", float(index), band, citation="koh2001", caveats=_premenopausal_caveat(a)
    )


def ost_men(a: ClinicalAnswers) -> InstrumentResult:
    """OST in men (Adler 2003): the OSTA index with the men's bands: low >= 4 (> 3),
    moderate -1 to 3, high <= -2 (< -1)."""
    if a.sex == "female":
        return InstrumentResult(
            "ost_men", not_applicable="clinical.not_applicable.women", citation="adler2003"
        )
    if missing := _missing(a, "sex", "age_years", "weight_kg"):
        return InstrumentResult("ost_men", missing=missing, citation="adler2003")
    assert a.weight_kg is not None and a.age_years is not None
    index = osta_index(a.weight_kg, a.age_years)
    band = "low" if index >= 4 else "moderate" if index >= -1 else "high"
    return InstrumentResult("ost_men", float(index), band, citation="adler2003")


def _estrogen_current(a: ClinicalAnswers) -> bool | None:
    if a.estrogen_current is not None:
        return a.estrogen_current
    return False if a.estrogen_ever is False else None


def _estrogen_ever(a: ClinicalAnswers) -> bool | None:
    if a.estrogen_ever is not None:
        return a.estrogen_ever
    return True if a.estrogen_current is True else None


def _fracture_sites(a: ClinicalAnswers) -> int | None:
    if a.fracture_sites_after_45 is not None:
        return a.fracture_sites_after_45
    return 0 if a.prior_fragility_fracture is False else None


def orai_points(age_years: float, weight_kg: float, estrogen_current: bool) -> int:
    """ORAI points (Cadarette 2000). Age in completed years, 45 or over."""
    age = int(age_years)
    if age < 45:
        raise ValueError("ORAI is defined from age 45")
    age_points = 15 if age >= 75 else 9 if age >= 65 else 5 if age >= 55 else 0
    weight_points = 9 if weight_kg < 60 else 3 if weight_kg < 70 else 0
    return age_points + weight_points + (0 if estrogen_current else 2)


def orai(a: ClinicalAnswers) -> InstrumentResult:
    """Osteoporosis Risk Assessment Instrument (Cadarette 2000), women aged 45 and over:
    age 45-54: 0, 55-64: 5, 65-74: 9, >= 75: 15; weight < 60 kg: 9, 60-69.9: 3, >= 70: 0;
    not currently on estrogen: 2. A score >= 9 selects for bone densitometry ("high")."""
    if (na := _women_only("orai", "cadarette2000", a)) is not None:
        return na
    estrogen = _estrogen_current(a)
    missing = _missing(a, "sex", "age_years", "weight_kg")
    if estrogen is None:
        missing += ("estrogen_current",)
    if missing:
        return InstrumentResult("orai", missing=missing, citation="cadarette2000")
    assert a.age_years is not None and a.weight_kg is not None and estrogen is not None
    if a.age_years < 45:
        return InstrumentResult(
            "orai", not_applicable="clinical.not_applicable.under_45", citation="cadarette2000"
        )
    points = orai_points(a.age_years, a.weight_kg, estrogen)
    return InstrumentResult(
        "orai",
        float(points),
        "high" if points >= 9 else "low",
        citation="cadarette2000",
        caveats=_premenopausal_caveat(a),
    )


POUNDS_PER_KG = 1 / 0.45359237


def score_points(
    *,
    age_years: float,
    weight_kg: float,
    black: bool,
    rheumatoid_arthritis: bool,
    fracture_sites_after_45: int,
    estrogen_ever: bool,
) -> int:
    """SCORE points (Lydick 1998): 5 if not black + 4 if rheumatoid arthritis + 4 per
    low-trauma fracture type (wrist, rib, hip) after 45, at most 12 + 3 x first digit of age
    + 1 if never on estrogen - integer part of weight in pounds / 10.

    "First digit of age" is taken as completed decades, which is the same for ages 10-99.
    """
    weight_points = _truncate(weight_kg * POUNDS_PER_KG / 10.0)
    return (
        (0 if black else 5)
        + (4 if rheumatoid_arthritis else 0)
        + 4 * min(fracture_sites_after_45, 3)
        + 3 * (int(age_years) // 10)
        + (0 if estrogen_ever else 1)
        - weight_points
    )


def score_lydick(a: ClinicalAnswers) -> InstrumentResult:
    """Simple Calculated Osteoporosis Risk Estimation (Lydick 1998), women. A score >= 6
    selects for bone densitometry ("high")."""
    if (na := _women_only("score", "lydick1998", a)) is not None:
        return na
    sites, ever = _fracture_sites(a), _estrogen_ever(a)
    missing = _missing(a, "sex", "age_years", "weight_kg", "black_ancestry", "rheumatoid_arthritis")
    if sites is None:
        missing += ("fracture_sites_after_45",)
    if ever is None:
        missing += ("estrogen_ever",)
    if missing:
        return InstrumentResult("score", missing=missing, citation="lydick1998")
    assert a.age_years is not None and a.weight_kg is not None and sites is not None
    assert a.black_ancestry is not None and a.rheumatoid_arthritis is not None
    points = score_points(
        age_years=a.age_years,
        weight_kg=a.weight_kg,
        black=a.black_ancestry,
        rheumatoid_arthritis=a.rheumatoid_arthritis,
        fracture_sites_after_45=sites,
        estrogen_ever=bool(ever),
    )
    return InstrumentResult(
        "score",
        float(points),
        "high" if points >= 6 else "low",
        citation="lydick1998",
        caveats=_premenopausal_caveat(a),
    )


def osiris_index(
    weight_kg: float, age_years: float, current_hrt: bool, prior_fracture: bool
) -> int:
    """OSIRIS (Sedrine 2002): integer part of 0.2 x (weight kg - age) + 2 if current HRT
    - 2 if prior low-impact fracture."""
    return (
        osta_index(weight_kg, age_years) + (2 if current_hrt else 0) - (2 if prior_fracture else 0)
    )


def osiris(a: ClinicalAnswers) -> InstrumentResult:
    """Osteoporosis Index of Risk (Sedrine 2002), women: > 1 low, -3 to 1 intermediate,
    < -3 high."""
    if (na := _women_only("osiris", "sedrine2002", a)) is not None:
        return na
    hrt = _estrogen_current(a)
    missing = _missing(a, "sex", "age_years", "weight_kg")
    if hrt is None:
        missing += ("estrogen_current",)
    missing += _missing(a, "prior_fragility_fracture")
    if missing:
        return InstrumentResult("osiris", missing=missing, citation="sedrine2002")
    assert a.age_years is not None and a.weight_kg is not None and hrt is not None
    index = osiris_index(a.weight_kg, a.age_years, hrt, bool(a.prior_fragility_fracture))
    band = "low" if index > 1 else "intermediate" if index >= -3 else "high"
    return InstrumentResult(
        "osiris", float(index), band, citation="sedrine2002", caveats=_premenopausal_caveat(a)
    )


WhoBand = Literal["normal", "low_bone_mass", "osteoporosis", "severe_osteoporosis"]


def score_text(score: float) -> str:
    """A score as people write it: at most two decimals, no exponent (an entered T-score of
    1e-9 reads 0, not 1e-09)."""
    return f"{round(score, 2) + 0.0:g}"


def who_band(t_score: float, fragility_fracture: bool = False) -> WhoBand:
    """WHO 1994 densitometric band: T >= -1 normal, -2.5 < T < -1 low bone mass (osteopenia),
    T <= -2.5 osteoporosis, and with a fragility fracture severe (established) osteoporosis."""
    if t_score >= -1.0:
        return "normal"
    if t_score > -2.5:
        return "low_bone_mass"
    return "severe_osteoporosis" if fragility_fracture else "osteoporosis"


def who_classification(a: ClinicalAnswers) -> InstrumentResult:
    """The WHO band of an entered (measured) T-score. Without an answer about fragility
    fracture, T <= -2.5 is osteoporosis; it is severe only when a fracture is known."""
    if a.entered_t_score is None:
        return InstrumentResult("who", missing=("entered_t_score",), citation="who1994")
    band = who_band(a.entered_t_score, a.prior_fragility_fracture is True)
    return InstrumentResult("who", a.entered_t_score, band, citation="who1994")


INSTRUMENTS = {
    "osta": osta,
    "ost_men": ost_men,
    "orai": orai,
    "score": score_lydick,
    "osiris": osiris,
    "who": who_classification,
}


# --- DXA indications (Chinese guideline 2017) ---------------------------------------------

# Risk factors the guideline lists that the answers can carry. Early menopause: before 45.
RISK_FACTOR_FIELDS: tuple[str, ...] = (
    "prior_fragility_fracture",
    "glucocorticoids_3_months",
    "rheumatoid_arthritis",
    "secondary_causes",
    "current_smoker",
    "alcohol_3_units_daily",
    "family_history_osteoporosis",
)
EARLY_MENOPAUSE_AGE = 45.0
LOW_BMI = 18.5  # kg/m2, the Chinese adult underweight cut-off


@dataclass(frozen=True)
class Indication:
    """One item of the guideline's DXA-indication list. met is None when it cannot be told
    from the answers; ``missing`` then names what would decide it."""

    code: str
    met: bool | None
    evidence: Evidence = dataclasses.field(default_factory=Evidence)
    missing: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, object]:
        return {
            "code": self.code,
            "met": self.met,
            "evidence": self.evidence.en,
            "evidence_zh_CN": self.evidence.zh_CN,
            "missing": list(self.missing),
        }


def _flag(code: str, value: bool | None, field: str, evidence: str) -> Indication:
    """A yes/no answer as an indication; the Chinese evidence is the question's wording."""
    if value is None:
        return Indication(code, None, missing=(field,))
    return Indication(
        code, value, Evidence(evidence, field_names((field,)).zh_CN) if value else Evidence()
    )


_SEX_ZH: dict[str, str] = {"female": "女性", "male": "男性"}


def _risk_factor_names(present: list[str]) -> Evidence:
    """Risk factors by field name; BMI and early menopause are not one answer each."""
    special = {
        "low_bmi": "clinical.risk_factor.low_bmi",
        "menopause_age_years": "clinical.risk_factor.early_menopause",
    }
    chinese = (
        text(special[f], "zh_CN") if f in special else field_names((f,)).zh_CN for f in present
    )
    return Evidence(", ".join(present), "、".join(chinese))


def _risk_factors(a: ClinicalAnswers) -> tuple[list[str], list[str]]:
    """(risk factors present, risk factors unanswered)."""
    present = [f for f in RISK_FACTOR_FIELDS if getattr(a, f) is True]
    unknown = [f for f in RISK_FACTOR_FIELDS if getattr(a, f) is None]
    if a.menopause_age_years is not None and a.menopause_age_years < EARLY_MENOPAUSE_AGE:
        present.append("menopause_age_years")
    if a.weight_kg is not None and a.height_m is not None:
        if a.weight_kg / a.height_m**2 < LOW_BMI:
            present.append("low_bmi")
    else:
        unknown.append("height_m" if a.weight_kg is not None else "weight_kg")
    return present, unknown


def dxa_indications(a: ClinicalAnswers) -> tuple[Indication, ...]:
    """The guideline's indications for bone densitometry (cspbmr2017), one item each."""
    items: list[Indication] = []
    if a.age_years is None or a.sex is None:
        items.append(
            Indication("clinical.indication.age", None, missing=_missing(a, "age_years", "sex"))
        )
        older = None
    else:
        threshold = 65.0 if a.sex == "female" else 70.0
        older = a.age_years >= threshold
        evidence = Evidence(
            f"{a.sex} aged {a.age_years:g} (>= {threshold:g})",
            f"{_SEX_ZH[a.sex]}，{a.age_years:g}岁（≥ {threshold:g}）",
        )
        items.append(
            Indication("clinical.indication.age", older, evidence if older else Evidence())
        )
    present, unknown = _risk_factors(a)
    code = "clinical.indication.younger_with_risk_factors"
    if older is True:
        items.append(Indication(code, False))
    elif present and older is False:
        items.append(
            Indication(
                code, True, Evidence("risk factors: ", "危险因素：") + _risk_factor_names(present)
            )
        )
    elif present or unknown or older is None:
        missing = tuple(unknown) + (_missing(a, "age_years", "sex") if older is None else ())
        items.append(Indication(code, None, missing=missing))
    else:
        items.append(Indication(code, False))
    items.append(
        _flag(
            "clinical.indication.fragility_fracture",
            a.prior_fragility_fracture,
            "prior_fragility_fracture",
            "prior fragility fracture",
        )
    )
    items.append(
        _flag(
            "clinical.indication.glucocorticoids",
            a.glucocorticoids_3_months,
            "glucocorticoids_3_months",
            "glucocorticoids for 3 months or more",
        )
    )
    bone = [f for f in ("secondary_causes", "rheumatoid_arthritis") if getattr(a, f) is True]
    unanswered = _missing(a, "secondary_causes", "rheumatoid_arthritis")
    items.append(
        Indication(
            "clinical.indication.bone_disease_or_drugs",
            True if bone else (None if unanswered else False),
            field_names(bone),
            () if bone else unanswered,
        )
    )
    items.append(
        _flag(
            "clinical.indication.radiograph_change",
            a.radiograph_osteoporotic_change,
            "radiograph_osteoporotic_change",
            "radiograph reported as osteoporotic",
        )
    )
    if a.age_years is None or a.weight_kg is None:
        items.append(
            Indication(
                "clinical.indication.osta", None, missing=_missing(a, "age_years", "weight_kg")
            )
        )
    else:
        index = osta_index(a.weight_kg, a.age_years)
        items.append(
            Indication(
                "clinical.indication.osta",
                index <= -1,
                Evidence(f"OSTA index {index} (<= -1)", f"OSTA指数 {index}（≤ -1）")
                if index <= -1
                else Evidence(),
            )
        )
    items.append(
        _flag(
            "clinical.indication.iof_positive",
            a.iof_one_minute_positive,
            "iof_one_minute_positive",
            "IOF one-minute test positive",
        )
    )
    return tuple(items)


# --- the assessment -----------------------------------------------------------------------


@dataclass(frozen=True)
class ClinicalAssessment:
    answers: ClinicalAnswers
    instruments: tuple[InstrumentResult, ...]
    indications: tuple[Indication, ...]

    def result(self, name: str) -> InstrumentResult:
        for item in self.instruments:
            if item.name == name:
                return item
        raise KeyError(name)

    @property
    def indications_met(self) -> tuple[Indication, ...]:
        return tuple(i for i in self.indications if i.met is True)

    @property
    def dxa_indicated(self) -> bool | None:
        """True if any indication is met, False if all are answered and none is, else None."""
        if self.indications_met:
            return True
        return None if any(i.met is None for i in self.indications) else False

    @property
    def missing(self) -> tuple[str, ...]:
        """Every unanswered field some instrument or indication needed, in a stable order."""
        seen: dict[str, None] = {}
        for item in (*self.instruments, *self.indications):
            for name in item.missing:
                seen.setdefault(name, None)
        return tuple(seen)

    def to_dict(self) -> dict[str, object]:
        return {
            "answers": self.answers.to_dict(),
            "instruments": [i.to_dict() for i in self.instruments],
            "indications": [i.to_dict() for i in self.indications],
            "indications_met": [i.code for i in self.indications_met],
            "dxa_indicated": self.dxa_indicated,
            "missing": list(self.missing),
        }


def assess_clinical(answers: ClinicalAnswers) -> ClinicalAssessment:
    """Run every instrument and the DXA-indication checklist on one patient's answers."""
    return ClinicalAssessment(
        answers=answers,
        instruments=tuple(fn(answers) for fn in INSTRUMENTS.values()),
        indications=dxa_indications(answers),
    )
