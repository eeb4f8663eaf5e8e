"""Hand PA phantoms for the second metacarpal cortical index (MCI).

The second metacarpal is an elliptical cortical tube of known outer width W and medullary
width M (in the image plane) along its shaft, widening into trabecular ends; metacarpals III
and IV lie beside it (the wrong bone is near), all inside the soft tissue of the hand, at a
random rotation, through the shared imaging chain. The truth is MCI = (W - M) / W, constant
over the middle half of the shaft, and the truth taps are the two ends of the shaft.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from phantoms import render

SHAPE = (560, 448)  # rows, columns: a hand film, fingers up


@dataclass(frozen=True)
class HandPhantom:
    display: np.ndarray = field(repr=False)  # [0, 1], bone bright
    chain: render.Chain
    mci: float  # truth (W - M) / W
    outer_px: float
    medulla_px: float
    taps: tuple[tuple[float, float], tuple[float, float]]  # truth shaft ends (x, y)
    neighbour_taps: tuple[tuple[float, float], tuple[float, float]]  # metacarpal III
    gap_point: tuple[float, float]  # soft tissue between II and III at mid-shaft
    params: dict[str, float] = field(default_factory=dict)


def _bone(shape, start, end, half_w, half_m, depth, rng, texture):
    """Cortex and medulla attenuation of one metacarpal from shaft end to shaft end."""
    along, lateral = render.axis_coordinates(shape, start, end)
    length = float(np.hypot(end[0] - start[0], end[1] - start[1]))
    s = along / length - 0.5  # -0.5 .. 0.5 over the shaft
    # constant over the middle half, flaring into the base and the head
    flare = 1.0 + 0.8 * np.clip(np.abs(s) - 0.25, 0, None) ** 1.5 * 4
    cortex, medulla = render.tube_path_lengths(lateral / flare, half_w, half_m, depth)
    cortex, medulla = cortex * flare, medulla * flare
    # the bone ends a little beyond the shaft ends, with rounded caps
    cap = 1.0 / (1.0 + np.exp((np.abs(s) - 0.62) / 0.015))
    # the ends: thinner cortex, trabecular medulla
    end_weight = np.clip((np.abs(s) - 0.3) / 0.2, 0, 1)
    cortex = cortex * (1 - 0.6 * end_weight)
    trab = 1.0 + 2.5 * end_weight * texture
    return (0.02 * cortex + 0.006 * medulla * trab) * cap


def make(seed: int, mci: float | None = None, **overrides) -> HandPhantom:
    """One phantom. ``overrides``: chain fields (blur_sigma_px, photons, bits, monochrome1)."""
    rng = np.random.default_rng(seed)
    h, w = SHAPE
    truth = float(mci if mci is not None else rng.uniform(0.30, 0.75))
    length = rng.uniform(0.40, 0.52) * h
    outer = length * rng.uniform(0.11, 0.15)
    medulla = outer * (1 - truth)
    depth = rng.uniform(0.9, 1.1)
    angle = np.deg2rad(rng.uniform(-20, 20))
    d = np.array([np.sin(angle), -np.cos(angle)])  # proximal -> distal, up the image
    n = np.array([-d[1], d[0]])
    centre = np.array([w * rng.uniform(0.38, 0.46), h * rng.uniform(0.48, 0.55)])
    a, b = centre - d * length / 2, centre + d * length / 2
    texture = render.trabecular_texture(rng, SHAPE, rng.uniform(3, 6))
    spacing = outer * rng.uniform(2.2, 2.6)
    side = 1.0 if rng.random() < 0.5 else -1.0
    atten = _bone(SHAPE, a, b, outer / 2, medulla / 2, depth, rng, texture)
    neighbours = []
    for k in (1, 2):
        tilt = np.deg2rad(rng.uniform(-4, 4)) * k
        dk = np.array([np.sin(angle + tilt), -np.cos(angle + tilt)])
        ck = centre + side * n * spacing * k + d * rng.uniform(-0.08, 0.08) * length
        lk = length * rng.uniform(0.85, 1.0)
        wk = outer * rng.uniform(0.85, 1.05)
        ak, bk = ck - dk * lk / 2, ck + dk * lk / 2
        mk = wk * (1 - rng.uniform(0.3, 0.75))
        atten = atten + _bone(SHAPE, ak, bk, wk / 2, mk / 2, depth, rng, texture)
        neighbours.append((tuple(map(float, ak)), tuple(map(float, bk))))
    # the hand's soft tissue: a slab around the metacarpals, thicker in the middle
    _, lateral = render.axis_coordinates(SHAPE, a, b)
    mid = side * spacing
    hand = 1.0 / (1.0 + np.exp((np.abs(lateral - mid) - (spacing * 2.2 + outer)) / 6.0))
    tissue = hand * (0.35 + 0.15 * render.smooth_field(rng, SHAPE, 4))
    chain_kw = {
        "blur_sigma_px": float(rng.uniform(0.6, 1.5)),
        "photons": float(rng.uniform(1500, 8000)),
        "scatter_fraction": float(rng.uniform(0.1, 0.3)),
        "bits": 16 if rng.random() < 0.6 else 8,
        "monochrome1": bool(rng.random() < 0.5),
    }
    chain_kw.update(overrides)
    chain = render.Chain(**chain_kw)
    display = render.image_chain(atten + tissue, chain, rng)
    gap = centre + side * n * spacing / 2
    return HandPhantom(
        display=display.astype(np.float32),
        chain=chain,
        mci=truth,
        outer_px=float(outer),
        medulla_px=float(medulla),
        taps=(tuple(map(float, a)), tuple(map(float, b))),
        neighbour_taps=neighbours[0],
        gap_point=(float(gap[0]), float(gap[1])),
        params={"angle_deg": float(np.rad2deg(angle)), "length_px": float(length), **chain_kw},
    )


def dicom_bytes(ph: HandPhantom, spacing_mm: float | None = 0.1) -> bytes:
    return render.write_dicom(ph.display, ph.chain, spacing_mm, "HAND", "PA")


def png_bytes(ph: HandPhantom) -> bytes:
    return render.write_png(ph.display, 16 if ph.chain.bits > 8 else 8)


def photo(ph: HandPhantom, seed: int):
    """The phantom as a phone photo of its film, rectified with the true corners: the
    radiograph intake hands on and the truth taps mapped into it (the MCI is a ratio)."""
    from edgeosteo.intake.photo import FilmCorners, read_photo

    sim = render.photo_of_film(ph.display, seed)
    corners = FilmCorners(tuple((float(x), float(y)) for x, y in sim.corners), "detected")
    result = read_photo(sim.jpeg, corners=corners)
    rad = result.radiograph
    rh, rw = rad.pixels.shape
    sx, sy = (rw - 1) / (SHAPE[1] - 1), (rh - 1) / (SHAPE[0] - 1)
    taps = tuple((x * sx, y * sy) for x, y in ph.taps)
    return rad, taps
