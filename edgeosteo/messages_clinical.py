"""Wording for the clinical instruments' and the referral decision's codes (en, zh_CN)."""

from __future__ import annotations

# code -> (English, Simplified Chinese)
CLINICAL_CATALOGUE: dict[str, tuple[str, str]] = {}
