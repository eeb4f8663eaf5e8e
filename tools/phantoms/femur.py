"""AP hip phantoms for the femoral cortical thickness index (CTI).

The proximal femur in an AP view: the femoral head (a sphere) on the neck (a cylinder at a
neck-shaft angle of 125-135 degrees), the greater trochanter and intertrochanteric region
(trabecular, thin cortex), the lesser trochanter as a bump on the medial side, and below it
the diaphysis as an elliptical cortical tube flaring into the metaphysis. The tube's outer
diameter D and medullary diameter M are constant from 35 mm below the lesser trochanter to
the bottom of the film, so the truth CTI = (D - M) / D holds over the whole measuring region
(10 cm below the lesser trochanter). The acetabulum, ilium and ischium overlap the top; the
thigh's soft tissue is thick, tapering distally, with a smooth random thickness field;
scatter, blur, quantum noise, 8/16 bit and MONOCHROME1 come from the shared chain
(tools/phantoms/render.py). Pixel spacing 0.14-0.20 mm (in the DICOM header). The truth
taps are the tip of the lesser trochanter and a point on the shaft's axis 105-125 mm below
it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from phantoms import render

SHAPE = (1500, 900)  # rows, columns: a hip film, head up
LEVEL_MM = 100.0

# attenuation per mm over the soft tissue each material replaces (arbitrary units)
MU_SOFT = 0.011
MU_CORTEX = 0.030
MU_MEDULLA = 0.002
MU_TRABECULAR = 0.012


@dataclass(frozen=True)
class HipPhantom:
    display: np.ndarray = field(repr=False)  # [0, 1], bone bright
    chain: render.Chain
    pixel_spacing_mm: float
    cti: float  # truth (D - M) / D
    outer_mm: float
    medulla_mm: float
    taps: tuple[tuple[float, float], tuple[float, float]]  # lesser trochanter tip, shaft
    axis: tuple[tuple[float, float], tuple[float, float]]  # axis point at the LT, unit dir
    soft_tissue_point: tuple[float, float]  # thigh soft tissue lateral to the shaft, at LT
    params: dict[str, float] = field(default_factory=dict)


def _ellipsoid(s, u, centre, semi, depth):
    """Path length (mm) through an ellipsoid with semi-axes (along, lateral, depth) mm."""
    q = ((s - centre[0]) / semi[0]) ** 2 + ((u - centre[1]) / semi[1]) ** 2
    return 2 * depth * np.sqrt(np.clip(1 - q, 0, None))


def _shell(s, u, centre, semi, depth, wall):
    """Cortex and trabecular path lengths (mm) of an ellipsoid with a cortical wall (mm)."""
    outer = _ellipsoid(s, u, centre, semi, depth)
    inner_semi = tuple(max(a - wall, 1.0) for a in semi)
    inner = _ellipsoid(s, u, centre, inner_semi, max(depth - wall, 1.0))
    return outer - inner, inner


def make(
    seed: int,
    cti: float | None = None,
    thigh_mm: float | None = None,
    spacing_mm: float | None = None,
    **overrides,
) -> HipPhantom:
    """One phantom. ``thigh_mm``: the thigh's half-width (a thin thigh leaves air beside
    it); ``overrides``: chain fields (blur_sigma_px, photons, bits, monochrome1)."""
    rng = np.random.default_rng(seed)
    h, w = SHAPE
    truth = float(cti if cti is not None else rng.uniform(0.30, 0.75))
    spacing = float(spacing_mm if spacing_mm is not None else rng.uniform(0.14, 0.20))
    px = 1.0 / spacing  # pixels per mm
    outer = float(rng.uniform(26.0, 34.0))  # mm
    medulla = outer * (1 - truth)
    r0, m0 = outer / 2, medulla / 2
    depth = float(rng.uniform(0.9, 1.1))
    medial = 1.0 if rng.random() < 0.5 else -1.0  # +1: medial is to the image's right
    # the shaft tilts distally-medially (about 7 degrees) plus a small rotation
    theta = np.deg2rad(medial * rng.uniform(4.0, 9.0) + rng.uniform(-4.0, 4.0))
    d = np.array([np.sin(theta), np.cos(theta)])  # down the shaft
    n = np.array([-d[1], d[0]])
    if n[0] * medial < 0:
        n = -n  # n points medially
    lt_y = h - (130.0 * px) - rng.uniform(10, 40)
    lt_x = w * (0.5 - 0.10 * medial) + rng.uniform(-0.03, 0.03) * w
    origin = np.array([lt_x, lt_y])
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float64)
    s = ((xs - origin[0]) * d[0] + (ys - origin[1]) * d[1]) / px  # mm below the LT
    u = ((xs - origin[0]) * n[0] + (ys - origin[1]) * n[1]) / px  # mm medial of the axis
    texture = render.trabecular_texture(rng, SHAPE, rng.uniform(6, 12))

    # diaphysis: constant below 35 mm, flaring into the metaphysis above it
    flare = np.clip((35.0 - s) / 60.0, 0, None) ** 2
    half_outer = r0 * (1 + 0.6 * np.minimum(flare, 1.6))
    thin = np.clip((35.0 - s) / 60.0, 0, 1)
    half_medulla = m0 + (0.86 * half_outer - m0) * thin
    half_medulla = np.minimum(half_medulla, half_outer - 1.0)
    au = np.abs(u)
    total = 2 * depth * np.sqrt(np.clip(half_outer**2 - au**2, 0, None))
    marrow = 2 * depth * np.sqrt(np.clip(half_medulla**2 - au**2, 0, None))
    cortex = total - marrow
    shaft_on = 1.0 / (1.0 + np.exp((-25.0 - s) / 3.0))  # the tube ends into the trochanters
    cortex, marrow = cortex * shaft_on, marrow * shaft_on
    trab_fill = marrow * thin  # the metaphysis holds trabecular bone

    # lesser trochanter: a bump on the medial cortex; its tip is the truth tap
    r_lt = float(r0 * (1 + 0.6 * min(((35.0) / 60.0) ** 2, 1.6)))
    lt_semi = (float(rng.uniform(10, 14)), float(rng.uniform(7, 9)), 8.0)
    lt_centre = (0.0, r_lt + 1.0)
    lt_c, lt_t = _shell(s, u, lt_centre, lt_semi, lt_semi[2], 1.5)
    tip_u = lt_centre[1] + lt_semi[1]
    # greater trochanter and intertrochanteric region (lateral, above)
    gt_c, gt_t = _shell(s, u, (-45.0, -0.4 * r0), (38.0, r0 + 12.0, r0 + 6.0), r0 + 6.0, 2.0)
    # neck (a cylinder along e) and head (a sphere)
    alpha = np.deg2rad(rng.uniform(125, 135))
    e = np.array([np.cos(alpha), np.sin(alpha)])  # (along, medial): proximal-medial
    neck_start = np.array([-50.0, 0.0])
    neck_len = float(rng.uniform(50, 58))
    head_r = float(rng.uniform(21, 25))
    ts = (s - neck_start[0]) * e[0] + (u - neck_start[1]) * e[1]
    tu = -(s - neck_start[0]) * e[1] + (u - neck_start[1]) * e[0]
    neck_r = 0.65 * head_r
    on_neck = 1.0 / (1.0 + np.exp(-ts / 2.0)) / (1.0 + np.exp((ts - neck_len) / 2.0))
    neck_c, neck_t = render.tube_path_lengths(tu, neck_r, neck_r - 2.0, 1.0)
    neck_c, neck_t = neck_c * on_neck, neck_t * on_neck
    head_centre = neck_start + e * neck_len
    head_c, head_t = _shell(s, u, tuple(head_centre), (head_r, head_r, head_r), head_r, 2.0)

    # pelvis: the acetabular roof over the head, the ilium above, the ischium medially
    ac_c, ac_t = _shell(
        s, u, (head_centre[0] - 8.0, head_centre[1] + 6.0), (head_r + 9, head_r + 12, 30), 30, 3
    )
    cup = np.clip(
        1 - _ellipsoid(s, u, tuple(head_centre), (head_r + 1, head_r + 1, 1), 1) * 5, 0, 1
    )
    ac_c, ac_t = ac_c * cup, ac_t * cup
    il_c, il_t = _shell(
        s, u, (head_centre[0] - 60.0, head_centre[1] + 20.0), (55.0, 70.0, 12.0), 12.0, 2.0
    )
    is_c, is_t = _shell(s, u, (-5.0, r_lt + 45.0), (30.0, 14.0, 14.0), 14.0, 2.5)

    cortex_mm = cortex + lt_c + gt_c + neck_c + head_c + ac_c + il_c + is_c
    trab_mm = trab_fill + lt_t + gt_t + neck_t + head_t + ac_t + il_t + is_t
    tex = 0.5 + texture
    bone = MU_CORTEX * cortex_mm + MU_MEDULLA * (marrow - trab_fill) + MU_TRABECULAR * trab_mm * tex

    # the thigh: an elliptical cross-section, tapering distally; the pelvis's soft tissue
    thigh = float(thigh_mm if thigh_mm is not None else rng.uniform(70, 95))
    centre_u = float(rng.uniform(5, 20))
    half = thigh * (1 - 0.10 * np.clip(s / 150.0, -1, 1))
    q = np.clip(1 - ((u - centre_u) / half) ** 2, 0, None)
    thigh_depth = float(rng.uniform(0.85, 1.05)) * thigh
    tissue = 2 * thigh_depth * np.sqrt(q)
    pelvis_soft = 120.0 / (1.0 + np.exp((s + 40.0) / 12.0))
    tissue = (tissue + pelvis_soft) * (0.92 + 0.16 * render.smooth_field(rng, SHAPE, 5))
    atten = bone + MU_SOFT * tissue

    chain_kw = {
        "blur_sigma_px": float(rng.uniform(0.8, 1.8)),
        "photons": float(rng.uniform(2500, 10000)),
        "scatter_fraction": float(rng.uniform(0.08, 0.25)),
        "scatter_sigma_px": 80.0,
        "bits": 16 if rng.random() < 0.6 else 8,
        "monochrome1": bool(rng.random() < 0.5),
    }
    chain_kw.update(overrides)
    chain = render.Chain(**chain_kw)
    display = render.image_chain(atten, chain, rng)

    tip = origin + n * tip_u * px
    tap2_mm = float(rng.uniform(105, 125))
    tap2 = origin + d * tap2_mm * px
    soft = origin + d * LEVEL_MM * px - n * (r0 + 0.5 * (thigh - centre_u - r0)) * px
    return HipPhantom(
        display=display.astype(np.float32),
        chain=chain,
        pixel_spacing_mm=spacing,
        cti=truth,
        outer_mm=outer,
        medulla_mm=medulla,
        taps=((float(tip[0]), float(tip[1])), (float(tap2[0]), float(tap2[1]))),
        axis=((float(origin[0]), float(origin[1])), (float(d[0]), float(d[1]))),
        soft_tissue_point=(float(soft[0]), float(soft[1])),
        params={
            "spacing_mm": spacing,
            "angle_deg": float(np.rad2deg(theta)),
            "thigh_mm": thigh,
            "medial": medial,
            "tap2_mm": tap2_mm,
            **chain_kw,
        },
    )


def crop_rows(ph: HipPhantom, rows: int) -> HipPhantom:
    """The phantom's film cut off below ``rows`` (a film too short for the 10 cm level)."""
    from dataclasses import replace

    return replace(ph, display=np.ascontiguousarray(ph.display[:rows]))


def dicom_bytes(ph: HipPhantom, spacing_mm: float | None = -1.0) -> bytes:
    """A DX file; the header's spacing is the phantom's unless given (None: no spacing)."""
    spacing = ph.pixel_spacing_mm if spacing_mm == -1.0 else spacing_mm
    return render.write_dicom(ph.display, ph.chain, spacing, "HIP", "AP")


def png_bytes(ph: HipPhantom) -> bytes:
    return render.write_png(ph.display, 16 if ph.chain.bits > 8 else 8)


def photo(ph: HipPhantom, seed: int):
    """The phantom as a phone photo of its film, rectified with the true corners: the
    radiograph intake hands on (no scale) and the truth taps mapped into it."""
    from edgeosteo.intake.photo import FilmCorners, read_photo

    sim = render.photo_of_film(ph.display, seed)
    corners = FilmCorners(tuple((float(x), float(y)) for x, y in sim.corners), "detected")
    result = read_photo(sim.jpeg, corners=corners)
    rad = result.radiograph
    rh, rw = rad.pixels.shape
    sx, sy = (rw - 1) / (ph.display.shape[1] - 1), (rh - 1) / (ph.display.shape[0] - 1)
    taps = tuple((x * sx, y * sy) for x, y in ph.taps)
    return rad, taps
