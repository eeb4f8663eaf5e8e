"""Typed errors with stable codes.

Every error that can reach a person carries a stable dotted code (``intake.truncated``)
whose wording in English and Simplified Chinese lives in :mod:`edgeosteo.messages`.
"""

from __future__ import annotations

from edgeosteo.messages import text


class EdgeOsteoError(Exception):
    """Base class: an expected failure with a stable code and a human sentence."""

    def __init__(self, code: str, detail: str | None = None) -> None:
        self.code = code
        self.detail = detail
        super().__init__(f"{code}: {self.message('en')}" + (f" ({detail})" if detail else ""))

    def message(self, language: str = "en") -> str:
        return text(self.code, language)

    def to_dict(self) -> dict[str, str | None]:
        return {
            "code": self.code,
            "message_en": self.message("en"),
            "message_zh_CN": self.message("zh_CN"),
            "detail": self.detail,
        }


class IntakeError(EdgeOsteoError):
    """The file could not be turned into a radiograph."""


class RequestError(EdgeOsteoError):
    """A screening request (page or API) that cannot become a case: nothing is screened
    or stored."""


class FollowUpError(EdgeOsteoError):
    """A DXA result or referral outcome that cannot be recorded: nothing is changed."""


class ModelError(EdgeOsteoError):
    """A model is missing, tampered with or cannot run."""


class ConfigError(EdgeOsteoError):
    """The configuration is invalid."""


class CommandError(EdgeOsteoError):
    """A command line command could not do its work."""


class CalibrationRefused(EdgeOsteoError):
    """A site threshold that cannot be set from the labelled cases: the policy is unchanged."""
