"""Genant six-point vertebral morphometry on lateral spine and chest radiographs.

Six taps per vertebra, in this order: superior-anterior, superior-middle,
superior-posterior, inferior-anterior, inferior-middle, inferior-posterior; vertebrae from
the top down, the top one's level in ``first_level`` (T4..T12, L1..L5). Each tap is snapped
to the endplate's outer edge along the vertebra's axis (within 8 % of its height). Heights
Ha, Hm, Hp give the wedge (Ha/Hp), biconcave (Hm/Hp) and crush (Hp over the neighbours'
mean Hp) ratios; the largest reduction gives the Genant grade (Genant et al. 1993).
"""

from __future__ import annotations

import itertools

import numpy as np

from edgeosteo.measurement import (
    Cutoff,
    Measurement,
    MeasurementError,
    MeasurementRequest,
    OverlayShape,
    PointCheck,
)
from edgeosteo.methods import edges
from edgeosteo.methods.base import MeasureImage, MeasurementMethod, MethodCard

LEVELS = ("T4", "T5", "T6", "T7", "T8", "T9", "T10", "T11", "T12", "L1", "L2", "L3", "L4", "L5")
LABELS = ("sup_ant", "sup_mid", "sup_post", "inf_ant", "inf_mid", "inf_post")
SNAP_FRACTION = 0.08
MIN_GRADIENT = 0.006  # display units per pixel: below this there is no endplate edge
NOISE_FACTOR = 1.5  # an edge stands this many robust SDs above the profile's slope noise
BOUNDARIES = (0.20, 0.25, 0.40)


def grade(reduction: float) -> int:
    if reduction < 0.20:
        return 0
    if reduction < 0.25:
        return 1
    if reduction <= 0.40:
        return 2
    return 3


def borderline(reduction: float) -> bool:
    return any(abs(reduction - b) <= 0.01 for b in BOUNDARIES)


def _check_order(v: np.ndarray) -> None:
    """v: (n, 6, 2). Inferior below superior, middle between anterior and posterior,
    anterior on the same side for every vertebra, vertebrae going down."""
    side = None
    for k in range(len(v)):
        sa, sm, sp, ia, im, ip = v[k]
        for s, i in ((sa, ia), (sm, im), (sp, ip)):
            if i[1] <= s[1]:
                raise MeasurementError(
                    "measurement.points_out_of_order", f"vertebra {k + 1}: inferior above superior"
                )
        for a, m, p in ((sa, sm, sp), (ia, im, ip)):
            ap = p - a
            t = float(np.dot(m - a, ap)) / max(float(np.dot(ap, ap)), 1e-9)
            if not 0.0 < t < 1.0:
                raise MeasurementError(
                    "measurement.points_out_of_order", f"vertebra {k + 1}: middle not between"
                )
        s_k = np.sign((sp - sa)[0] + (ip - ia)[0])
        if side is None:
            side = s_k
        elif s_k != side:
            raise MeasurementError(
                "measurement.points_out_of_order",
                f"vertebra {k + 1}: posterior and anterior swapped",
            )
        if k and v[k, :, 1].mean() <= v[k - 1, :, 1].mean():
            raise MeasurementError(
                "measurement.points_out_of_order", f"vertebra {k + 1} not below {k}"
            )


def _first_level_index(options, n: int) -> int:
    """The top vertebra's index in LEVELS, from ``first_level`` or a ``levels`` list (which
    must name n contiguous levels from the top down, T4..L5)."""
    first = options.get("first_level")
    named = options.get("levels")
    if named is not None:
        if not isinstance(named, list) or not all(isinstance(x, str) for x in named):
            raise MeasurementError("measurement.level_sequence_invalid", "levels: not a list")
        upper = [x.strip().upper() for x in named]
        if any(x not in LEVELS for x in upper):
            raise MeasurementError("measurement.level_sequence_invalid", f"levels {named}")
        idx = [LEVELS.index(x) for x in upper]
        if any(b != a + 1 for a, b in itertools.pairwise(idx)):
            raise MeasurementError(
                "measurement.level_sequence_invalid", f"levels {named} are not contiguous"
            )
        if len(idx) != n:
            raise MeasurementError(
                "measurement.level_sequence_invalid", f"{len(idx)} levels for {n} vertebrae"
            )
        if first is not None and str(first).strip().upper() != upper[0]:
            raise MeasurementError(
                "measurement.level_sequence_invalid", f"first_level {first} but levels {named}"
            )
        return idx[0]
    if not isinstance(first, str) or first.strip().upper() not in LEVELS:
        raise MeasurementError("measurement.level_sequence_invalid", f"first_level {first!r}")
    i0 = LEVELS.index(first.strip().upper())
    if i0 + n > len(LEVELS):
        raise MeasurementError(
            "measurement.level_sequence_invalid", f"{n} vertebrae from {first} pass L5"
        )
    return i0


def _check_spacing(v: np.ndarray, levels: list[str]) -> None:
    """Consecutive vertebrae must be neighbours: a vertebra that starts above the end of the
    one over it overlaps it, and a gap of more than a vertebra's height between two means
    one was skipped, so the levels named after it would be wrong."""
    for k in range(1, len(v)):
        above, below = v[k - 1], v[k]
        down, _, h_above, _ = _frame(above)
        _, _, h_below, _ = _frame(below)
        gap = float(np.dot(below[:3].mean(axis=0) - above[3:].mean(axis=0), down))
        if gap < -0.1 * h_above:
            raise MeasurementError(
                "measurement.points_out_of_order", f"{levels[k]} overlaps {levels[k - 1]}"
            )
        if gap > 0.9 * max(h_above, h_below):
            raise MeasurementError(
                "measurement.level_sequence_invalid",
                f"a vertebra seems to be missing between {levels[k - 1]} and {levels[k]}",
            )


def _frame(pts: np.ndarray) -> tuple[np.ndarray, np.ndarray, float, float]:
    """Caudal axis, posterior direction, height and width of one vertebra's six points."""
    down = edges.unit((pts[3] + pts[4] + pts[5] - pts[0] - pts[1] - pts[2]) / 3)
    post = pts[2] + pts[5] - pts[0] - pts[3]
    post = post - np.dot(post, down) * down
    post = edges.unit(post)
    height = float(np.mean([np.dot(pts[i + 3] - pts[i], down) for i in range(3)]))
    width = float(np.mean([np.dot(pts[2] - pts[0], post), np.dot(pts[5] - pts[3], post)]))
    return down, post, height, width


def _snap(
    pixels: np.ndarray, point: np.ndarray, down: np.ndarray, radius: float, superior: bool
) -> tuple[np.ndarray | None, float]:
    step = 0.25
    half = radius + 4.0
    offsets, values = edges.profile(
        pixels, point, down, half, step, band_half_width=2.0, band_samples=5
    )
    if not np.isfinite(values).all():
        return None, 0.0
    # superior endplate: dark disc -> bright bone going down (rising); inferior: falling
    pos, strength = edges.gradient_extrema(
        values, sigma_samples=1.0 / step, polarity=1 if superior else -1
    )
    g_all = np.gradient(edges.smooth(values, 1.0 / step))
    noise = 1.4826 * float(np.median(np.abs(g_all - np.median(g_all)))) / step
    best = None
    for p_i, g in zip(pos, strength, strict=True):
        off = float(np.interp(p_i, np.arange(len(offsets)), offsets))
        if abs(off) <= radius:
            best = (off, float(g) / step)
            break
    if best is None or best[1] < max(MIN_GRADIENT, NOISE_FACTOR * noise):
        return None, 0.0 if best is None else best[1]
    return point + best[0] * down, best[1]


TYPE_NAMES = {
    "wedge": ("wedge", "楔形"),
    "biconcave": ("biconcave", "双凹形"),
    "crush": ("crush", "压缩形"),
}


def _finding(vertebrae: list[dict], levels: list[str]) -> dict[str, str]:
    """The graded levels with their measured reductions, in both languages, for the
    referral's evidence."""
    graded = [v for v in vertebrae if v["grade"] > 0 or v["borderline"]]
    span = f"{levels[0]}-{levels[-1]}" if len(levels) > 1 else levels[0]
    if not graded:
        # a negative read covers only the levels measured: say so unless T4-L4 is complete
        complete = levels[0] == "T4" and LEVELS.index(levels[-1]) >= LEVELS.index("L4")
        return {
            "en": f"{span}: no height reduction of 20 % or more"
            + ("" if complete else " (only these levels were measured, not all of T4-L4)"),
            "zh_CN": f"{span}：无椎体高度降低达20%及以上"
            + ("" if complete else "（仅测量了这些节段，并非T4至L4全部）"),
        }
    en, zh = [], []
    for v in graded:
        kind_en, kind_zh = TYPE_NAMES.get(v["type"] or "", ("", ""))
        pct = round(100 * v["reduction"])
        mark_en = " (borderline)" if v["borderline"] else ""
        mark_zh = "（临界值）" if v["borderline"] else ""
        en.append(f"{v['level']} grade {v['grade']} {kind_en} {pct} %{mark_en}".replace("  ", " "))
        zh.append(f"{v['level']} {v['grade']}级{kind_zh} 降低{pct}%{mark_zh}")
    return {"en": f"{span}: " + "; ".join(en), "zh_CN": f"{span}：" + "；".join(zh)}


def propose_next(used: np.ndarray) -> np.ndarray:
    """The six points of the vertebra below the last one: its size, the disc gap and the
    curve of the ones above carried on."""
    last = used[-1]
    down, post, height, width = _frame(last)
    hp = max(float(np.linalg.norm(last[5] - last[2])), float(np.linalg.norm(last[3] - last[0])))
    centre = last.mean(axis=0)
    if len(used) >= 2:
        prev = used[-2]
        d_prev, _, h_prev, _ = _frame(prev)
        turn = np.arctan2(down[1], down[0]) - np.arctan2(d_prev[1], d_prev[0])
        gap = float(np.mean([np.dot(last[i] - prev[i + 3], d_prev) for i in range(3)]))
        hp = max(hp, h_prev * 1.02)
    else:
        turn = 0.0
        gap = 0.23 * hp
    c, s = np.cos(turn), np.sin(turn)
    rot = np.array([[c, -s], [s, c]])
    new_down = rot @ down
    new_post = rot @ post
    new_h = hp * 1.02
    mid = 0.5 * (down + new_down)
    mid = mid / np.linalg.norm(mid)
    new_centre = centre + mid * (height / 2 + gap + new_h / 2)
    half_w = width / 2
    out = []
    for sv in (-1, 1):
        for uu in (-half_w, 0.0, half_w):
            out.append(new_centre + uu * new_post + sv * new_h / 2 * new_down)
    return np.array(out)


class VertebralMorphometry(MeasurementMethod):
    id = "vertebrae"
    version = "1.0.0"

    def measure(
        self, image: MeasureImage, request: MeasurementRequest, card: MethodCard
    ) -> Measurement:
        pts = np.asarray(request.points, dtype=np.float64).reshape(-1, 2)
        n_pts = len(pts)
        if n_pts < 6 or n_pts % 6:
            raise MeasurementError(
                "measurement.too_few_points", f"{n_pts} given: six per vertebra needed"
            )
        self.require_taps(image, request, 6, int(card.taps.get("max", 78)))
        n = n_pts // 6
        i0 = _first_level_index(request.options, n)
        levels = list(LEVELS[i0 : i0 + n])
        v = pts.reshape(n, 6, 2)
        _check_order(v)
        _check_spacing(v, levels)
        checks: list[PointCheck] = []
        used = np.zeros_like(v)
        failed: str | None = None
        for k in range(n):
            down, _, height, width = _frame(v[k])
            if height <= 0 or width <= 0 or not 0.3 <= height / width <= 2.0:
                raise MeasurementError(
                    "measurement.implausible_height", f"{levels[k]}: height {height:.1f} px"
                )
            radius = max(SNAP_FRACTION * height, 3.0)
            for j in range(6):
                label = f"{levels[k]}.{LABELS[j]}"
                given = (float(v[k, j, 0]), float(v[k, j, 1]))
                snapped, _ = _snap(image.pixels, v[k, j], down, radius, superior=j < 3)
                if snapped is None:
                    checks.append(
                        PointCheck(label, given, None, False, "measurement.edge_not_found")
                    )
                    failed = failed or label
                    used[k, j] = v[k, j]
                else:
                    used[k, j] = snapped
                    checks.append(
                        PointCheck(label, given, (float(snapped[0]), float(snapped[1])), True)
                    )
        if failed:
            raise MeasurementError("measurement.edge_not_found", failed, checks)
        hs = np.linalg.norm(used[:, 3:] - used[:, :3], axis=2)  # (n, 3): ha, hm, hp
        for k in range(n):
            ha, hm, hp = hs[k]
            if min(ha, hm, hp) <= 2.0 or not 0.3 <= min(ha, hm) / hp <= 1.6:
                raise MeasurementError(
                    "measurement.implausible_height",
                    f"{levels[k]}: ha {ha:.1f} hm {hm:.1f} hp {hp:.1f} px",
                    checks,
                )
        out = []
        grades = []
        for k in range(n):
            ha, hm, hp = (float(x) for x in hs[k])
            ratios: dict[str, float] = {"wedge": ha / hp, "biconcave": hm / hp}
            nb = [hs[j, 2] for j in (k - 1, k + 1) if 0 <= j < n]
            if len(nb) == 2 or (len(nb) == 1 and n == 2):
                ratios["crush"] = hp / float(np.mean(nb))
            reductions = {t: max(0.0, 1.0 - r) for t, r in ratios.items()}
            kind = max(reductions, key=lambda t: reductions[t])
            red = reductions[kind]
            g = grade(red)
            grades.append(g)
            out.append(
                {
                    "level": levels[k],
                    "grade": g,
                    "type": kind if g > 0 else None,
                    "ha": round(ha, 3),
                    "hm": round(hm, 3),
                    "hp": round(hp, 3),
                    "ratios": {t: round(r, 4) for t, r in ratios.items()},
                    "reductions": {t: round(r, 4) for t, r in reductions.items()},
                    "reduction": round(red, 4),
                    "borderline": borderline(red),
                }
            )
        worst = max(grades)
        n1 = sum(1 for g in grades if g == 1)
        summary = 2 if worst >= 2 or n1 >= 2 else (1 if n1 == 1 else 0)
        band, cutoff = card.band_for(float(summary))
        finding = _finding(out, levels)
        overlay = []
        for k in range(n):
            u = used[k]
            overlay.append(
                OverlayShape("polygon", tuple(map(tuple, u[[0, 1, 2, 5, 4, 3]])), levels[k])
            )
            for j in range(3):
                overlay.append(
                    OverlayShape("line", (tuple(u[j]), tuple(u[j + 3])), levels[k], "measure")
                )
        proposed: tuple = ()
        if i0 + n < len(LEVELS):
            proposed = tuple((float(x), float(y)) for x, y in propose_next(used))
        return Measurement(
            method=self.id,
            method_version=self.version,
            value=float(summary),
            unit="grade",
            band=band,
            cutoff=Cutoff(cutoff.band, cutoff.rule, cutoff.citation),
            points_given=request.points,
            points_used=tuple((float(x), float(y)) for x, y in used.reshape(-1, 2)),
            point_checks=tuple(checks),
            overlay=tuple(overlay),
            details={
                "vertebrae": out,
                "levels": levels,
                "worst_grade": worst,
                "grade_1_count": n1,
                "summary": summary,
                "finding": finding,
                "complete_t4_l4": levels[0] == "T4" and LEVELS.index(levels[-1]) >= 12,
                "next_level": LEVELS[i0 + n] if proposed else None,
            },
            scale_mm_per_px=image.mm_per_px,
            points_proposed=proposed,
            options=dict(request.options),
        )
