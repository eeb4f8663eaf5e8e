"""Wording for the phone-photo pipeline's codes (en, zh_CN)."""

from __future__ import annotations

# code -> (English, Simplified Chinese)
PHOTO_CATALOGUE: dict[str, tuple[str, str]] = {}
