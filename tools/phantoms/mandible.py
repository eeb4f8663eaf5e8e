"""Dental panoramic phantoms for the mandibular cortical width (MCW, mental index).

A section of a panoramic radiograph around one mental foramen: the mandibular body above a
gently curved, rotated inferior border; a dense inferior cortex of known true width W (mm at
the bone) with a rounded periosteal margin and a gradual endosteal transition into
trabecular bone; the dark mental foramen (an ellipse) above the cortex; premolar and molar
roots above it; the neck's soft tissue below the border and air below the skin; an optional
ghost shadow; then the shared imaging chain (scatter, blur, quantum noise, 8/16 bit,
MONOCHROME1).

Geometry is built in millimetres at the bone and drawn at ``PX_PER_MM`` = magnification /
detector spacing (1.25 / 0.1 mm = 12.5 px per mm), so a file written with 0.1 mm pixel
spacing and read with the site's JAW magnification 1.25 measures in the same millimetres
as the truth. The truth edges: the periosteal edge is the geometric lower border (distance
0); the endosteal edge is where the cortical fraction falls to one half (distance W).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from math import erf

import cv2
import numpy as np

from phantoms import render

SHAPE = (560, 720)  # rows, columns: a section of a panoramic film
SPACING_MM = 0.1  # detector pixel spacing
MAGNIFICATION = 1.25  # the unit's factor: what the site enters as JAW
PX_PER_MM = MAGNIFICATION / SPACING_MM
_erf = np.vectorize(erf)


@dataclass(frozen=True)
class MandiblePhantom:
    display: np.ndarray = field(repr=False)  # [0, 1], bone bright
    chain: render.Chain
    width_mm: float  # truth: inferior cortical width at the foramen, mm at the bone
    taps: tuple[tuple[float, float], tuple[float, float]]  # (foramen centre, border below)
    soft_tissue_point: tuple[float, float]  # in the neck below the border
    background_point: tuple[float, float]  # in the air below the skin
    up: tuple[float, float]  # unit vector from the border into the bone
    params: dict[str, float] = field(default_factory=dict)


def _soft_step(x: np.ndarray, width: float) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x / max(width, 1e-6)))


def make(seed: int, width_mm: float | None = None, **overrides) -> MandiblePhantom:
    """One phantom. ``overrides``: chain fields (blur_sigma_px, photons, bits, monochrome1)."""
    rng = np.random.default_rng(seed)
    h, w = SHAPE
    truth = float(width_mm if width_mm is not None else rng.uniform(1.5, 6.0))
    k = PX_PER_MM
    angle = np.deg2rad(rng.uniform(-15, 15))
    t = np.array([np.cos(angle), np.sin(angle)])  # along the border
    n = np.array([np.sin(angle), -np.cos(angle)])  # up, into the bone
    p0 = np.array([w * rng.uniform(0.42, 0.58), h * rng.uniform(0.66, 0.72)])
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float64)
    u = ((xs - p0[0]) * t[0] + (ys - p0[1]) * t[1]) / k  # mm along the border
    v = ((xs - p0[0]) * n[0] + (ys - p0[1]) * n[1]) / k  # mm up from the border tangent
    curvature = rng.uniform(-1, 1) / rng.uniform(60, 150)  # 1 / radius, mm^-1
    d = (v - 0.5 * curvature * u * u) / np.sqrt(1 + (curvature * u) ** 2)  # mm above border

    # the inferior cortex: rounded periosteal margin, gradual endosteal transition
    rounding = rng.uniform(0.3, 0.8)
    x = np.clip(d / rounding, 0, 1)
    outer = np.sqrt(np.clip(x * (2 - x), 0, 1))
    slope = rng.uniform(-0.03, 0.03)  # the width changes slowly along the border
    local_w = truth * (1 + slope * u)
    tau = rng.uniform(0.25, 0.7)  # endosteal transition (SD, mm)
    cortical = 0.5 * (1 - _erf((d - local_w) / (np.sqrt(2) * tau)))
    texture = render.trabecular_texture(rng, SHAPE, rng.uniform(0.6, 1.2) * k)
    trab_level = rng.uniform(0.40, 0.55)
    trab = trab_level * (1 + rng.uniform(0.25, 0.45) * (texture - 0.5))
    bone = outer * (cortical * 1.0 + (1 - cortical) * trab) * rng.uniform(0.9, 1.1)

    # the mental foramen: a dark ellipse above the cortex, centred over the truth tap
    gap = rng.uniform(2.5, 5.0)
    rv, ru = rng.uniform(1.2, 2.0), rng.uniform(1.5, 2.5)
    fd = truth + gap + rv
    fu = rng.uniform(-0.3, 0.3)
    e = ((u - fu) / ru) ** 2 + ((d - fd) / rv) ** 2
    foramen = 1.0 / (1.0 + np.exp((np.sqrt(e) - 1.0) / 0.08))
    bone = bone * (1 - rng.uniform(0.35, 0.55) * foramen)

    # roots above the foramen: tapered bright strips with a dark ligament space
    apex_d = fd + rng.uniform(2.5, 5.0)
    for root_u in (-14.0, -7.5, 7.0, 13.5):
        ru_i = root_u + rng.uniform(-1.0, 1.0)
        length_up = d - apex_d - rng.uniform(-1.0, 1.0)
        half = np.clip(0.3 + 0.08 * length_up, 0, 2.0)
        inside = (length_up > 0) & (np.abs(u - ru_i) < half + 0.25)
        dentin = inside & (np.abs(u - ru_i) < half)
        bone = np.where(inside, bone * 0.8, bone) + 0.25 * dentin

    # ghost shadow of the other side / hyoid: a broad faint band
    ghost = np.zeros(SHAPE)
    if rng.random() < 0.5:
        ga = np.deg2rad(rng.uniform(20, 70)) * (1 if rng.random() < 0.5 else -1)
        gn = np.array([-np.sin(ga), np.cos(ga)])
        off = (xs - w / 2) * gn[0] + (ys - h / 2) * gn[1]
        ghost = rng.uniform(0.05, 0.12) * np.exp(-0.5 * (off / (rng.uniform(6, 12) * k)) ** 2)

    # soft tissue everywhere above the skin line, air below it
    skin_d = -rng.uniform(6.0, 11.0)
    tissue = _soft_step(d - skin_d, 0.3) * (0.25 + 0.1 * render.smooth_field(rng, SHAPE, 4))
    atten = bone * (d > 0) + tissue + ghost
    chain_kw = {
        "blur_sigma_px": float(rng.uniform(0.8, 2.0)),
        "photons": float(rng.uniform(1500, 8000)),
        "scatter_fraction": float(rng.uniform(0.1, 0.3)),
        "bits": 16 if rng.random() < 0.6 else 8,
        "monochrome1": bool(rng.random() < 0.4),
    }
    chain_kw.update(overrides)
    chain = render.Chain(**chain_kw)
    display = render.image_chain(atten, chain, rng)
    f_mm = np.array([fu, fd])
    # foramen centre in pixels (small-curvature placement along the normal)
    foramen_px = p0 + t * f_mm[0] * k + n * (f_mm[1] + 0.5 * curvature * fu * fu) * k
    border_px = p0 + t * fu * k + n * 0.5 * curvature * fu * fu * k
    soft = border_px + n * 0.5 * skin_d * k
    air = border_px + n * (skin_d - 4.0) * k
    air = np.array([np.clip(air[0], 5, w - 6), np.clip(air[1], 5, h - 6)])
    return MandiblePhantom(
        display=display.astype(np.float32),
        chain=chain,
        width_mm=truth,
        taps=(tuple(map(float, foramen_px)), tuple(map(float, border_px))),
        soft_tissue_point=(float(soft[0]), float(soft[1])),
        background_point=(float(air[0]), float(air[1])),
        up=(float(n[0]), float(n[1])),
        params={
            "angle_deg": float(np.rad2deg(angle)),
            "rounding_mm": float(rounding),
            "endosteal_sd_mm": float(tau),
            "foramen_gap_mm": float(gap),
            "skin_mm": float(-skin_d),
            **chain_kw,
        },
    )


def dicom_bytes(ph: MandiblePhantom, spacing_mm: float | None = SPACING_MM) -> bytes:
    """A DX file as a panoramic unit writes it: body part JAW, no view position."""
    return render.write_dicom(ph.display, ph.chain, spacing_mm, "JAW", None)


def png_bytes(ph: MandiblePhantom) -> bytes:
    return render.write_png(ph.display, 16 if ph.chain.bits > 8 else 8)


def photo(ph: MandiblePhantom, seed: int):
    """The phantom as a phone photo of its film, rectified with the true corners, and the
    truth taps mapped into it (a photo has no scale: the method must refuse)."""
    from edgeosteo.intake.photo import FilmCorners, read_photo

    sim = render.photo_of_film(ph.display, seed)
    corners = FilmCorners(tuple((float(x), float(y)) for x, y in sim.corners), "detected")
    rad = read_photo(sim.jpeg, corners=corners).radiograph
    rh, rw = rad.pixels.shape
    sx, sy = (rw - 1) / (SHAPE[1] - 1), (rh - 1) / (SHAPE[0] - 1)
    return rad, tuple((x * sx, y * sy) for x, y in ph.taps)


def resize_for_view(display: np.ndarray, size: int = 512) -> np.ndarray:
    """A small copy for looking at a phantom (not used by the evaluation)."""
    h, w = display.shape
    s = size / max(h, w)
    return cv2.resize(display, (round(w * s), round(h * s)), interpolation=cv2.INTER_AREA)
