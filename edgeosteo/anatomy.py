"""Which body part and view an image shows, read from its own header first.

BodyPartExamined and ViewPosition when the console fills them in; otherwise the free-text
Study, Series and Protocol descriptions that Chinese DR consoles write (膝关节正位, 腰椎侧位,
全景片 ...). One table in configuration (``[anatomy]``, edgeosteo.config.AnatomySettings)
maps all of them, so the page, the receiver and the one path agree.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from edgeosteo.config import AnatomySettings
from edgeosteo.findings import UnavailableFinding


@dataclass(frozen=True)
class Anatomy:
    """A body part and view (upper-case names such as KNEE and AP; None when unknown) and
    where each came from ("BodyPartExamined", "description", "chosen", ...)."""

    body_part: str | None = None
    view: str | None = None
    body_part_source: str | None = None
    view_source: str | None = None


def from_header(
    body_part_examined: str | None,
    view_position: str | None,
    descriptions: Sequence[str],
    table: AnatomySettings,
) -> Anatomy:
    """The body part and view the header states: the coded tags win over the descriptions."""
    part, part_source = _coded(body_part_examined, table.body_parts, "BodyPartExamined")
    view, view_source = _coded(view_position, table.views, "ViewPosition")
    # a leading space lets a pattern such as " AP" match at the start, not inside a word
    text = " " + " ".join(d for d in descriptions if d).upper() if any(descriptions) else ""
    if part is None and text:
        part = _first_match(text, table.description_body_parts)
        part_source = "description" if part else None
    if view is None and text:
        view = _first_match(text, table.description_views)
        if view == "FRONTAL":  # 正位: PA for a chest or a hand, AP for everything else
            view = "PA" if part in ("CHEST", "HAND") else "AP"
        view_source = "description" if view else None
    return Anatomy(part, view, part_source, view_source)


def normalise_body_part(value: str | None, table: AnatomySettings) -> str | None:
    """A body part as a person or a form names it (KNEE, knee, PELVIS) in the table's terms."""
    return _coded(value, table.body_parts, "chosen")[0] if value else None


def _coded(
    value: str | None, mapping: dict[str, str], source: str
) -> tuple[str | None, str | None]:
    if not value or not value.strip():
        return None, None
    key = value.strip().upper()
    upper = {k.upper(): v.upper() for k, v in mapping.items()}
    # a coded value the table does not know stands for itself: EXTREMITY is not KNEE
    return upper.get(key, key), source


def _first_match(text: str, patterns: Sequence[Sequence[str]]) -> str | None:
    """The value of the first pattern found in the text; the table lists longer, more
    specific patterns first (胸椎 before 胸)."""
    for pattern, value in patterns:
        wanted = pattern.upper()
        if wanted.startswith(" "):
            # a word (" PA"): not the start of a longer one ("PANCREAS", "KNEE PATELLA")
            if re.search(re.escape(wanted) + r"(?![A-Z0-9])", text):
                return value.upper()
        elif wanted in text:
            return value.upper()
    return None


@dataclass(frozen=True)
class BodyPartChoice:
    """The body part the models are run for, from the header and the technician's choice,
    with both kept for the case. A choice that contradicts the header runs no image model
    until the technician confirms it (the header can be a console's default)."""

    header: Anatomy
    chosen: str | None
    confirmed: bool

    @property
    def conflict(self) -> bool:
        return bool(
            self.chosen
            and self.header.body_part
            and self.chosen != self.header.body_part
            and not self.confirmed
        )

    @property
    def body_part(self) -> str | None:
        """The body part models are chosen for: the technician's when given (a conflict
        runs none of them), else the header's."""
        return self.chosen or self.header.body_part

    @property
    def view(self) -> str | None:
        return self.header.view

    def refusal(self) -> UnavailableFinding | None:
        if not self.conflict:
            return None
        detail = f"header {self.header.body_part}, chosen {self.chosen}"
        return UnavailableFinding("image.wrong_body_part", "image", None, detail)

    def to_dict(self) -> dict[str, object]:
        return {
            "body_part": self.body_part,
            "view": self.view,
            "header_body_part": self.header.body_part,
            "header_body_part_source": self.header.body_part_source,
            "header_view_source": self.header.view_source,
            "chosen_body_part": self.chosen,
            "confirmed": self.confirmed,
            "conflict": self.conflict,
        }


def choose_body_part(
    chosen: str | None, confirmed: bool, header: Anatomy, table: AnatomySettings
) -> BodyPartChoice:
    return BodyPartChoice(header, normalise_body_part(chosen, table), bool(confirmed))
