"""A DXA result as the page's form or the API gives it, checked before anything is stored:
a scan date that is a real day and not in the future, the centre, at least one T-score, and
every score a finite number inside the bounds a DXA report can give. The first problem
raises FollowUpError with its stable code and the field it concerns."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from datetime import date

from edgeosteo.config import FollowUpSettings
from edgeosteo.errors import FollowUpError
from edgeosteo.records import DXA_SITES, DxaResult

ISO_DAY = re.compile(r"\d{4}-\d{2}-\d{2}", re.ASCII)
SCORE_FIELDS = tuple(f"{site}_{kind}_score" for kind in ("t", "z") for site in DXA_SITES)
TEXT_FIELDS = ("centre", "device")
DXA_FIELDS = ("date", *TEXT_FIELDS, *SCORE_FIELDS)
# the answer to research use, as the API (a boolean or null) and the form ("yes"/"no"/"")
CONSENT_FIELD = "research_consent"


def _blank(value: object) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def _scan_date(value: object, today: date) -> str:
    if _blank(value):
        raise FollowUpError("dxa.date_missing", "date")
    text = str(value).strip() if isinstance(value, str) else ""
    try:
        if not ISO_DAY.fullmatch(text):
            raise ValueError(text)
        day = date.fromisoformat(text)
    except ValueError:
        raise FollowUpError("dxa.date_invalid", f"date: {str(value)[:40]!r}") from None
    if day > today:
        raise FollowUpError("dxa.date_in_future", f"date: {text} is after {today.isoformat()}")
    return text


def _text(name: str, value: object, max_chars: int) -> str | None:
    if _blank(value):
        return None
    if not isinstance(value, str):
        raise FollowUpError("dxa.text_invalid", f"{name}: not text")
    text = value.strip()
    if len(text) > max_chars or not text.isprintable():
        raise FollowUpError(
            "dxa.text_invalid", f"{name}: {len(text)} characters, at most {max_chars} printable"
        )
    return text


def _score(name: str, value: object, settings: FollowUpSettings, from_form: bool) -> float | None:
    if _blank(value):
        return None
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise FollowUpError("dxa.score_not_a_number", name)
    if isinstance(value, str):
        if not from_form:  # JSON has numbers: a quoted score is a client's mistake
            raise FollowUpError("dxa.score_not_a_number", f"{name}: {value[:20]!r}")
        try:  # a Chinese keyboard's full-width minus, as typed into the form
            value = float(value.strip().replace("−", "-").replace("－", "-"))
        except ValueError:
            raise FollowUpError("dxa.score_not_a_number", f"{name}: {value[:20]!r}") from None
    number = float(value)
    if not math.isfinite(number):
        raise FollowUpError("dxa.score_not_a_number", name)
    if not settings.score_min <= number <= settings.score_max:
        raise FollowUpError(
            "dxa.score_out_of_range",
            f"{name}: {number:g}, expected {settings.score_min:g} to {settings.score_max:g}",
        )
    return round(number, 2)


def research_consent(value: object) -> str | None:
    """The consent answer as stored: "yes", "no", or None (not asked)."""
    if value is None or value == "":
        return None
    if value is True or value == "yes":
        return "yes"
    if value is False or value == "no":
        return "no"
    raise FollowUpError("dxa.consent_invalid", CONSENT_FIELD)


def dxa_result_from(
    fields: Mapping[str, object],
    settings: FollowUpSettings,
    today: date,
    from_form: bool = False,
) -> DxaResult:
    """The DXA result the fields describe, or FollowUpError. From the API every field is
    named exactly (an unknown one is refused: a misspelt score would silently be lost);
    from the form, scores arrive as text."""
    if not from_form:
        unknown = sorted(str(k) for k in fields if k not in DXA_FIELDS and k != CONSENT_FIELD)
        if unknown:
            raise FollowUpError("dxa.unknown_field", ", ".join(unknown)[:200])
    scan_date = _scan_date(fields.get("date"), today)
    centre = _text("centre", fields.get("centre"), settings.centre_max_chars)
    if centre is None:
        raise FollowUpError("dxa.centre_missing", "centre")
    device = _text("device", fields.get("device"), settings.centre_max_chars)
    scores = {name: _score(name, fields.get(name), settings, from_form) for name in SCORE_FIELDS}
    if all(scores[f"{site}_t_score"] is None for site in DXA_SITES):
        raise FollowUpError("dxa.no_t_score", ", ".join(f"{s}_t_score" for s in DXA_SITES))
    return DxaResult(scan_date=scan_date, centre=centre, device=device, **scores)
