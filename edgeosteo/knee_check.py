"""Is this a plausible AP knee radiograph? An image-content check run before the knee models.

The knee finder (edgeosteo.knee_roi.detect_knees) always proposes a joint line wherever a dark
band lies between two brighter ones, so on a chest film it "finds" a knee at the neck. This
check measures, around each proposed knee, what a real knee joint shows and accepts the image
when at least one proposal looks like a knee:

- a joint space: a dark band at the joint row between the femoral condyles and the tibial
  plateau (``gap``), and the finder's own joint score (``score``);
- two bone ends: the condyles above and the plateau below are brighter than the soft tissue
  beside them (``fem_rise``, ``tib_rise``) and well above the body threshold (``bone_tb``);
- two roughly vertical long bones: femoral and tibial shafts further out are not darker than
  the tissue beside them (``femsh_rise``, ``tibsh_rise``);
- proportions: bone width vs the image width (``width_frac``), condyle vs plateau width
  (``fem_tib``).

Works on the finder's 512-px working copy (same resize + blur), so it costs about as much as
the finder itself. Pure numpy + OpenCV, deterministic. Thresholds are the constants below;
tools/eval_knee_check.py measures them (tools/reports/knee_check.json).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

import cv2
import numpy as np

from edgeosteo import knee_roi

NOT_KNEE = "image.not_knee"

# Thresholds, from tools/eval_knee_check.py on the 147 development films (per proposed knee,
# range [min, 1st pct]) and the 64 non-knee images intake reads in pydicom-data / deid-data.
MIN_SCORE = 0.01  # knee [0.003, 0.007]; most non-knee proposals < 0.02
MIN_GAP = 0.03  # knee [0.017, 0.036]; RG3 lower leg, CT, flat images ~0
MIN_FEM_RISE = 0.0  # knee [-0.046, 0.019]; MR shoulder -2.1, US, CT -0.48
MIN_TIB_RISE = 0.08  # knee [-0.010, 0.089]; mlut/vlut test patterns <= 0.012, cat -0.15
MIN_SHAFT_RISE = -0.25  # knee femur [-0.226, -0.074], tibia [-0.206, 0.140]; US -0.99
MIN_BONE_TB = 1.45  # knee [1.486, 1.602]; chest RG1 at the neck 1.14, colour US 1.44
WIDTH_FRAC = (0.09, 0.35)  # knee [0.108, 0.296]; MR abdomen 0.08, US 0.06, flat NM 0.40-0.49
FEM_TIB = (0.5, 1.45)  # knee [0.525, 1.661] (99th pct 1.345); CT neck 1.59, colour US 0.40


@dataclass(frozen=True)
class KneeCheck:
    """The check's verdict: ``code`` is ``image.not_knee`` when not plausible; ``measures``
    are those of the best proposal (the first that passes, else the one failing fewest
    tests); ``knees`` is the number of proposals that pass."""

    plausible: bool
    code: str | None
    measures: Mapping[str, float] = field(default_factory=lambda: MappingProxyType({}))
    knees: int = 0
    failed: tuple[str, ...] = ()

    @property
    def detail(self) -> str:
        if self.plausible:
            return f"{self.knees} knee(s)"
        if not self.measures:
            return "no knee joint proposed"
        return "not knee-like: " + ", ".join(self.failed)


def _working(gray: np.ndarray) -> tuple[float, np.ndarray]:
    params = knee_roi.PARAMS
    rows, columns = gray.shape
    scale = params["work_long_side"] / max(rows, columns)
    small = cv2.resize(
        gray, (round(columns * scale), round(rows * scale)), interpolation=cv2.INTER_AREA
    )
    return scale, cv2.GaussianBlur(small, (0, 0), params["blur_sigma"])


def _otsu(b: np.ndarray) -> float:
    v8 = np.clip(b * 255, 0, 255).astype(np.uint8).reshape(-1, 1)
    t, _ = cv2.threshold(v8, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    return float(t) / 255.0


def _box(b: np.ndarray, y0: float, y1: float, x0: float, x1: float) -> np.ndarray | None:
    rows, columns = b.shape
    r0, r1 = int(max(0, round(y0))), int(min(rows, round(y1)))
    c0, c1 = int(max(0, round(x0))), int(min(columns, round(x1)))
    if r1 <= r0 or c1 <= c0:
        return None
    return b[r0:r1, c0:c1]


def _measures(b: np.ndarray, scale: float, knee: knee_roi.Knee, tb: float) -> dict[str, float]:
    rows, columns = b.shape
    y, cx, w = knee.cy * scale, knee.cx * scale, knee.width * scale
    m = {
        "width_frac": w / columns,
        "fem_tib": knee.fem_width / knee.tib_width if knee.tib_width else 0.0,
        "score": knee.score,
    }
    centre = _box(b, 0, rows, cx - 0.3 * w, cx + 0.3 * w)
    gap = -1.0
    if centre is not None:
        profile = centre.mean(1)
        yi = round(y)
        up = profile[max(0, int(y - 0.3 * w)) : max(0, yi - 3)]
        down = profile[min(rows, yi + 4) : min(rows, int(y + 0.3 * w))]
        band = profile[max(0, yi - 3) : yi + 4]
        if len(up) >= 3 and len(down) >= 3 and len(band):
            ref = min(up.max(), down.max())
            gap = (ref - band.min()) / max(ref, 1e-6)
    m["gap"] = gap
    strips = (
        ("fem_rise", y - 0.35 * w, y - 0.05 * w, 0.4),
        ("tib_rise", y + 0.05 * w, y + 0.35 * w, 0.4),
        ("femsh_rise", y - 0.8 * w, y - 0.45 * w, 0.2),
        ("tibsh_rise", y + 0.45 * w, y + 0.8 * w, 0.2),
    )
    for name, y0, y1, half in strips:
        bone = _box(b, y0, y1, cx - half * w, cx + half * w)
        flanks = [
            _box(b, y0, y1, cx - 0.8 * w, cx - 0.6 * w),
            _box(b, y0, y1, cx + 0.6 * w, cx + 0.8 * w),
        ]
        sides = [float(f.mean()) for f in flanks if f is not None]
        if bone is None or bone.shape[0] < 0.2 * (y1 - y0) or not sides:
            m[name] = -1.0  # off the image: not measured, reads as "no bone"
            continue
        mean = float(bone.mean())
        m[name] = (mean - max(sides)) / max(mean, 1e-6)
    ends = [
        _box(b, y - 0.35 * w, y - 0.05 * w, cx - 0.4 * w, cx + 0.4 * w),
        _box(b, y + 0.05 * w, y + 0.35 * w, cx - 0.4 * w, cx + 0.4 * w),
    ]
    m["bone_tb"] = (
        min(float(e.mean()) for e in ends) / max(tb, 1e-6)
        if all(e is not None for e in ends)
        else 0.0
    )
    return {k: float(v) for k, v in m.items()}


def _failed(m: Mapping[str, float]) -> tuple[str, ...]:
    tests = (
        ("score", m["score"] >= MIN_SCORE),
        ("gap", m["gap"] >= MIN_GAP),
        ("fem_rise", m["fem_rise"] >= MIN_FEM_RISE),
        ("tib_rise", m["tib_rise"] >= MIN_TIB_RISE),
        ("femsh_rise", m["femsh_rise"] >= MIN_SHAFT_RISE),
        ("tibsh_rise", m["tibsh_rise"] >= MIN_SHAFT_RISE),
        ("bone_tb", m["bone_tb"] >= MIN_BONE_TB),
        ("width_frac", WIDTH_FRAC[0] <= m["width_frac"] <= WIDTH_FRAC[1]),
        ("fem_tib", FEM_TIB[0] <= m["fem_tib"] <= FEM_TIB[1]),
    )
    return tuple(name for name, ok in tests if not ok)


def knee_plausibility(pixels: np.ndarray) -> KneeCheck:
    """Check a grayscale radiograph (float32 in [0, 1], bone bright) for a plausible knee."""
    gray = np.asarray(pixels, np.float32)
    knees = knee_roi.detect_knees(gray)
    if not knees:
        return KneeCheck(False, NOT_KNEE)
    scale, b = _working(gray)
    tb = _otsu(b)
    results = [(_measures(b, scale, k, tb), k) for k in knees]
    judged = [(m, _failed(m)) for m, _ in results]
    passing = [m for m, f in judged if not f]
    if passing:
        return KneeCheck(True, None, MappingProxyType(passing[0]), len(passing))
    best, failed = min(judged, key=lambda mf: len(mf[1]))
    return KneeCheck(False, NOT_KNEE, MappingProxyType(best), 0, failed)
