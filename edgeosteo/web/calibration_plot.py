"""The site calibration plot, drawn on the box with matplotlib (Agg, PNG; no internet)."""

from __future__ import annotations

import io

from edgeosteo.calibration import REFERENCE_NAMES, operating_row
from edgeosteo.config import PolicySettings


def plot_png(figures, reference: str, policy: PolicySettings, language: str) -> bytes:
    """Sensitivity against referral rate on the labelled cases, one line per rule with
    enough cases, a point per threshold seen; the site's current threshold marked."""
    # a bare Figure renders through Agg without pyplot or a global backend choice
    from matplotlib import font_manager
    from matplotlib.figure import Figure

    chinese = language == "zh_CN" and _cjk_font(font_manager)
    figure = Figure(figsize=(6.4, 4.2))
    axes = figure.add_subplot()
    for item in (f for f in figures if f.enough):
        points = sorted(
            {
                (row.referred.value, row.sensitivity.value)
                for row in (
                    operating_row(item.rule, score, item.cases)
                    for score in {c.score for c in item.cases}
                )
            }
        )
        xs, ys = [0.0, *(p[0] for p in points)], [0.0, *(p[1] for p in points)]
        # each point is one threshold; a rule that cannot drive the referral is dashed
        axes.plot(
            xs,
            ys,
            marker="o",
            markersize=3,
            linestyle="-" if item.selectable else "--",
            label=item.rule
            if item.selectable
            else f"{item.rule} ({'仅供参考' if chinese else 'information only'})",
        )
        if policy.calibrated_rule == item.rule and policy.calibrated_reference == reference:
            row = operating_row(item.rule, policy.calibrated_threshold, item.cases)
            axes.plot([row.referred.value], [row.sensitivity.value], "ko")
            axes.annotate(
                f"{policy.policy_version}: {policy.calibrated_threshold:g}",
                (row.referred.value, row.sensitivity.value),
                textcoords="offset points",
                xytext=(6, -12),
            )
    axes.set_xlim(0, 1)
    axes.set_ylim(0, 1.02)
    axes.grid(alpha=0.3)
    if chinese:
        axes.set_xlabel("有DXA结果病例中的转诊率", fontproperties=chinese)
        axes.set_ylabel(f"敏感度（{REFERENCE_NAMES[reference][1]}）", fontproperties=chinese)
    else:
        axes.set_xlabel("referral rate among the cases with a DXA result")
        axes.set_ylabel(f"sensitivity ({REFERENCE_NAMES[reference][0]})")
    if figures:
        axes.legend(loc="lower right", prop=chinese or None)
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=150)
    return buffer.getvalue()


def _cjk_font(font_manager):
    """A font with Chinese glyphs, if the box has one (Noto CJK on Debian); without one the
    plot's two axis titles are in English and the page around it stays Chinese."""
    for entry in font_manager.fontManager.ttflist:
        if "CJK SC" in entry.name or "CJK" in entry.name:
            return font_manager.FontProperties(fname=entry.fname)
    return None
