"""The page's names for DXA sites, WHO bands and referral outcomes (the follow-up list and
the case page's follow-up card)."""

from __future__ import annotations

from flask_babel import lazy_gettext as _l

DXA_SITE_NAMES = {
    "femoral_neck": _l("Femoral neck"),
    "total_hip": _l("Total hip"),
    "lumbar_spine": _l("Lumbar spine L1–L4"),
}
WHO_BAND_NAMES = {
    "normal": _l("Normal (T-score −1.0 or above)"),
    "low_bone_mass": _l("Low bone mass (osteopenia, T-score between −1.0 and −2.5)"),
    "osteoporosis": _l("Osteoporosis (T-score −2.5 or below)"),
}
NO_DXA_OUTCOME_NAMES = {
    "declined": _l("Patient declined the DXA"),
    "could_not_travel": _l("Patient could not travel to the DXA"),
}
