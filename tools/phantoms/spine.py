"""Lateral spine phantoms with exact truth for Genant six-point morphometry.

Each vertebral body is a rounded box (cortical rim, trabecular interior) on a curved
column, with discs, posterior elements, ribs and soft tissue overlapping. A deformity of
known type (wedge, biconcave, crush) and reduction may be planted on one vertebra. The
truth is the six points of every vertebra (superior-anterior, superior-middle,
superior-posterior, inferior-anterior, inferior-middle, inferior-posterior), on the
outer edge of the endplates.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from phantoms import render

LEVELS = ("T4", "T5", "T6", "T7", "T8", "T9", "T10", "T11", "T12", "L1", "L2", "L3", "L4", "L5")


def grade_of(reduction: float) -> int:
    if reduction < 0.20:
        return 0
    if reduction < 0.25:
        return 1
    if reduction <= 0.40:
        return 2
    return 3


@dataclass
class SpinePhantom:
    display: np.ndarray
    chain: render.Chain
    pixel_spacing_mm: float
    first_level: str
    points: list[tuple[float, float]]  # 6 per vertebra, truth
    heights: list[tuple[float, float, float]]  # (ha, hm, hp) truth
    planted: dict = field(default_factory=dict)  # index, type, reduction, grade
    seed: int = 0

    @property
    def n(self) -> int:
        return len(self.heights)

    def truth_grades(self) -> list[int]:
        g = [0] * self.n
        if self.planted:
            g[self.planted["index"]] = grade_of(self.planted["reduction"])
        return g


def make(
    seed: int,
    n_vertebrae: int = 5,
    deformity: str | None = "random",
    reduction: float | None = None,
    bits: int = 16,
    monochrome1: bool = False,
    noise: str = "normal",
    blur: float | None = None,
) -> SpinePhantom:
    rng = np.random.default_rng(seed)
    first = int(rng.integers(0, len(LEVELS) - n_vertebrae + 1))
    H0 = float(rng.uniform(50, 62))
    W = H0 * float(rng.uniform(1.05, 1.25))
    gap = H0 * float(rng.uniform(0.18, 0.28))
    pitch = H0 + gap
    h_img = int(pitch * n_vertebrae + 2.2 * H0)
    w_img = int(W * 5.0)
    shape = (h_img, w_img)
    ys, xs = np.mgrid[0:h_img, 0:w_img].astype(np.float64)
    curve = float(rng.uniform(-0.35, 0.35))  # radians of bend over the segment
    theta0 = float(rng.uniform(-0.12, 0.12))
    sign = 1.0 if rng.random() < 0.5 else -1.0  # anterior on the left (1) or the right (-1)

    planted: dict = {}
    if deformity == "random":
        deformity = str(rng.choice(["none", "wedge", "biconcave", "crush"]))
    if deformity and deformity != "none":
        r = float(rng.uniform(0.0, 0.5)) if reduction is None else float(reduction)
        lo = 1 if deformity == "crush" else 0
        hi = n_vertebrae - 1 if deformity == "crush" else n_vertebrae
        planted = {"index": int(rng.integers(lo, hi)), "type": deformity, "reduction": r}
        planted["grade"] = grade_of(r)

    att = np.zeros(shape)
    # soft tissue: thick, smooth, brighter towards the middle of the body
    att += 1.2 + 0.5 * render.smooth_field(rng, shape, 4)
    tex = render.trabecular_texture(rng, shape, float(rng.uniform(3, 6)))
    cx0 = w_img * 0.5 - sign * 0.05 * W
    y = 1.1 * H0
    a_prev, h_prev = np.array([0.0, 1.0]), H0
    theta = theta0
    points: list[tuple[float, float]] = []
    heights: list[tuple[float, float, float]] = []
    centres = []
    for k in range(n_vertebrae):
        growth = 1.0 + 0.02 * k
        hp = H0 * growth * float(rng.uniform(0.98, 1.02))
        ha = hp * float(rng.uniform(0.97, 1.02))
        hm = hp * float(rng.uniform(0.95, 0.99))
        if planted.get("index") == k:
            r = planted["reduction"]
            if planted["type"] == "wedge":
                ha = hp * (1 - r)
            elif planted["type"] == "biconcave":
                hm = hp * (1 - r)
                ha = hp * float(rng.uniform(0.97, 1.0))
            else:  # crush: the whole body lower than its neighbours
                hp = hp * (1 - r)
                ha, hm = hp * float(rng.uniform(0.98, 1.0)), hp * float(rng.uniform(0.96, 0.99))
        theta = theta0 + curve * (k / max(n_vertebrae - 1, 1) - 0.5)
        a = np.array([-np.sin(theta), np.cos(theta)])  # caudal axis
        p = sign * np.array([a[1], -a[0]])  # posterior direction
        if k == 0:
            c = np.array([cx0, y + hp / 2])
        else:
            a_mid = a + a_prev
            a_mid /= np.linalg.norm(a_mid)
            c = centres[-1] + a_mid * (h_prev / 2 + gap + hp / 2)
        a_prev, h_prev = a, hp
        centres.append(c)
        up = 0.42 * W
        cc = (ha + hp) / 2 - hm

        def hfun(u, ha=ha, hp=hp, cc=cc, up=up):
            uc = np.clip(u, -up, up)
            return ha + (hp - ha) * (uc + up) / (2 * up) - cc * (1 - (uc / up) ** 2)

        u = (xs - c[0]) * p[0] + (ys - c[1]) * p[1]
        v = (xs - c[0]) * a[0] + (ys - c[1]) * a[1]
        dx = W / 2 - np.abs(u)
        dy = hfun(u) / 2 - np.abs(v)
        rr = 0.06 * W
        corner = (dx < rr) & (dy < rr)
        d = np.where(corner, rr - np.hypot(rr - dx, rr - dy), np.minimum(dx, dy))
        inside = np.clip(d + 0.5, 0, 1)
        rim = np.clip(d + 0.5, 0, 1) * np.clip(3.0 - d, 0, 1)
        att += inside * (0.35 + 0.25 * tex) + 0.45 * rim
        # disc below this body and posterior elements behind it
        disc = (np.abs(u) < W / 2) & (v > hfun(u) / 2) & (v < hfun(u) / 2 + gap)
        att += 0.08 * disc
        post = np.clip(1 - np.hypot((u - W * 0.85) / (0.25 * W), v / (0.35 * hp)), 0, 1)
        att += 0.25 * post * (0.6 + 0.4 * tex)
        for uu, sv in ((-up, -1), (0.0, -1), (up, -1), (-up, 1), (0.0, 1), (up, 1)):
            q = c + uu * p + sv * hfun(np.array(uu)) / 2 * a
            points.append((float(q[0]), float(q[1])))
        heights.append((ha, hm, hp))
    # ribs: curved bands crossing the column
    for _ in range(int(rng.integers(1, 4))):
        y0 = rng.uniform(0, h_img)
        k2 = rng.uniform(-0.002, 0.002)
        yy = y0 + k2 * (xs - w_img / 2) ** 2 + rng.uniform(-0.3, 0.3) * (xs - w_img / 2)
        dist = np.abs(ys - yy)
        t = rng.uniform(6, 12)
        att += 0.12 * np.clip(1 - dist / t, 0, 1) + 0.08 * (np.abs(dist - t) < 1.5)
    photons = {"low": 20000.0, "normal": 6000.0, "high": 1500.0, "destroyed": 40.0}[noise]
    chain = render.Chain(
        blur_sigma_px=float(rng.uniform(0.6, 1.6)) if blur is None else blur,
        scatter_fraction=float(rng.uniform(0.1, 0.3)),
        photons=photons,
        bits=bits,
        monochrome1=monochrome1,
    )
    display = render.image_chain(att, chain, rng)
    return SpinePhantom(
        display=display.astype(np.float32),
        chain=chain,
        pixel_spacing_mm=0.4,
        first_level=LEVELS[first],
        points=points,
        heights=heights,
        planted=planted,
        seed=seed,
    )


def dicom_bytes(ph: SpinePhantom, body_part: str = "LSPINE") -> bytes:
    return render.write_dicom(ph.display, ph.chain, ph.pixel_spacing_mm, body_part, "LATERAL")


def jitter(points, rng: np.random.Generator, radius: float = 3.0) -> list[tuple[float, float]]:
    """Taps as a reader places them: within ``radius`` px of the truth."""
    out = []
    for x, y in points:
        r = radius * np.sqrt(rng.random())
        t = rng.uniform(0, 2 * np.pi)
        out.append((float(x + r * np.cos(t)), float(y + r * np.sin(t))))
    return out


def photo(ph: SpinePhantom, seed: int):
    """The phantom as a phone photo of its printed film, rectified with the true corners:
    the radiograph intake hands on and the truth points mapped into it (the ratios are
    scale-free, so the photo is graded like the file)."""
    from edgeosteo.intake.photo import FilmCorners, read_photo

    sim = render.photo_of_film(ph.display, seed)
    corners = FilmCorners(tuple((float(x), float(y)) for x, y in sim.corners), "detected")
    rad = read_photo(sim.jpeg, corners=corners).radiograph
    rh, rw = rad.pixels.shape
    h, w = ph.display.shape
    sx, sy = (rw - 1) / (w - 1), (rh - 1) / (h - 1)
    return rad, [(x * sx, y * sy) for x, y in ph.points]
