"""Simulated phone photographs of printed X-ray films, with the true film corners.

No public set of film photos with bone-density labels exists, so photos are rendered from
real radiographs: the radiograph is printed to film (optical density linear in the display
value), laid on a lightbox (or held against a window, or shown on a monitor for moire)
and photographed by a pinhole camera with a random pose. The phone then adds what phones
add: lens vignetting, uneven backlight, reflections, sensor noise, shake, sRGB encoding and
JPEG at phone quality. Everything is deterministic from the seed.

Conditions: ``good`` (usable photos with realistic flaws) and the deliberately unusable
``glare``, ``blur``, ``moire``, ``steep``, ``small`` and ``overexposed``, each with the
reason code the pipeline must give.

    python tools/photo_sim.py OUT_DIR --count 12   # write example photos to look at
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from edgeosteo.intake import read_image

CONDITIONS = ("good", "glare", "blur", "moire", "steep", "small", "overexposed")
EXPECTED_CODE = {
    "good": None,
    "glare": "photo.glare",  # prefix: the code names where the reflection is
    "blur": "photo.blurred",
    "moire": "photo.moire",
    "steep": "photo.perspective_steep",
    "small": "photo.film_too_small",
    "overexposed": "photo.overexposed",
}
PHOTO_SIZE = (1600, 1200)  # long, short side of the simulated phone photo
SOURCE_LONG_SIDE = 1400


@dataclass(frozen=True)
class SimPhoto:
    jpeg: bytes
    corners: np.ndarray  # (4, 2) true film corners in the photo, TL TR BR BL of the film
    condition: str
    expected_code: str | None
    source: str
    film: np.ndarray  # the radiograph that was printed (gray float32, bone bright)
    params: dict[str, float | str] = field(default_factory=dict)


def load_source(path: str | Path) -> np.ndarray:
    """A radiograph's displayed pixels (bone bright), long side at most SOURCE_LONG_SIDE."""
    pixels = read_image(path).radiograph.pixels
    h, w = pixels.shape
    scale = min(1.0, SOURCE_LONG_SIDE / max(h, w))
    if scale < 1.0:
        pixels = cv2.resize(
            pixels, (round(w * scale), round(h * scale)), interpolation=cv2.INTER_AREA
        )
    return np.ascontiguousarray(pixels, dtype=np.float32)


def packaged_sources() -> dict[str, Path]:
    """The radiographs shipped with the test packages (always present)."""
    import deid_data

    site = Path(deid_data.__file__).resolve().parents[1]
    return {
        "RG1_UNCR": site / "data_store" / "data" / "RG1_UNCR.dcm",
        "RG3_UNCR": site / "data_store" / "data" / "RG3_UNCR.dcm",
        "cat": site / "deid_data" / "data" / "animals" / "cat.dcm",
    }


def _rotation(axis: np.ndarray, angle: float) -> np.ndarray:
    rvec = (axis / np.linalg.norm(axis) * angle).reshape(3, 1)
    return cv2.Rodrigues(rvec)[0]


def _project(points: np.ndarray, rot: np.ndarray, trans: np.ndarray, f: float, c) -> np.ndarray:
    cam = points @ rot.T + trans
    return np.stack([f * cam[:, 0] / cam[:, 2] + c[0], f * cam[:, 1] / cam[:, 2] + c[1]], 1)


def _smooth_field(rng: np.random.Generator, shape: tuple[int, int], cells: int) -> np.ndarray:
    noise = rng.standard_normal((cells, cells)).astype(np.float32)
    field_ = cv2.resize(noise, (shape[1], shape[0]), interpolation=cv2.INTER_CUBIC)
    return field_ / max(1e-6, float(np.abs(field_).max()))


def _pose(rng, film_wh, frame_wh, f, tilt_deg, roll_deg, area_target):
    """Rotation and translation putting the film at the wanted tilt, roll and frame share,
    fully inside the frame; None when it does not fit."""
    fw, fh = film_wh
    w, h = frame_wh
    c = (w / 2, h / 2)
    film = np.array(
        [[-fw / 2, -fh / 2, 0], [fw / 2, -fh / 2, 0], [fw / 2, fh / 2, 0], [-fw / 2, fh / 2, 0]],
        dtype=np.float64,
    )
    direction = rng.uniform(0, 2 * np.pi)
    tilt_axis = np.array([np.cos(direction), np.sin(direction), 0.0])
    rot = _rotation(np.array([0, 0, 1.0]), np.radians(roll_deg))
    if tilt_deg > 0:
        rot = _rotation(tilt_axis, np.radians(tilt_deg)) @ rot
    z = f * np.sqrt(fw * fh / (area_target * w * h))
    for _ in range(4):
        quad = _project(film, rot, np.array([0, 0, z]), f, c)
        area = abs(cv2.contourArea(quad.astype(np.float32))) / (w * h)
        z *= np.sqrt(area / area_target)
    quad = _project(film, rot, np.array([0, 0, z]), f, c)
    margin = 0.03 * min(w, h)
    lo = quad.min(axis=0)
    hi = quad.max(axis=0)
    room_x = (margin - lo[0], w - margin - hi[0])
    room_y = (margin - lo[1], h - margin - hi[1])
    if room_x[0] > room_x[1] or room_y[0] > room_y[1]:
        return None
    for _ in range(10):
        shift = np.array([rng.uniform(*room_x), rng.uniform(*room_y)])
        trans = np.array([shift[0] * z / f, shift[1] * z / f, z])
        moved = _project(film, rot, trans, f, c)
        if (moved.min(axis=0) >= margin).all() and (
            moved.max(axis=0) <= [w - margin, h - margin]
        ).all():
            return rot, trans
    return None


def _film_texture(film: np.ndarray, rng: np.random.Generator, scale: float) -> np.ndarray:
    """Linear RGB transmission of the printed film at the given resolution scale."""
    h, w = film.shape
    size = (max(8, round(w * scale)), max(8, round(h * scale)))
    p = cv2.resize(film, size, interpolation=cv2.INTER_AREA)
    d_min, d_max = rng.uniform(0.12, 0.25), rng.uniform(1.8, 2.6)
    density = d_min + (d_max - d_min) * (1.0 - np.clip(p, 0, 1))
    transmission = np.power(10.0, -density).astype(np.float32)
    base_tint = np.array([1 - rng.uniform(0, 0.08), 1 - rng.uniform(0, 0.04), 1.0], np.float32)
    return transmission[:, :, None] * base_tint[None, None, :]


def _monitor_texture(film: np.ndarray, rng: np.random.Generator, pixels_across: int):
    """Emitted light of a monitor showing the radiograph: RGB stripes with a black matrix."""
    h, w = film.shape
    cols = pixels_across
    rows = max(8, round(cols * h / w))
    shown = cv2.resize(film, (cols, rows), interpolation=cv2.INTER_AREA)
    gamma = np.clip(shown, 0, 1) ** 2.2
    k = 3
    stripe = np.zeros((k, k, 3), np.float32)
    for ch in range(3):
        stripe[: k - 1, ch, ch] = 1.0
    tex = np.repeat(np.repeat(gamma, k, axis=0), k, axis=1)[:, :, None] * np.tile(
        stripe, (rows, cols, 1)
    )
    return tex * 1.5


def simulate(film: np.ndarray, seed: int, condition: str = "good", source: str = "") -> SimPhoto:
    """One photo of ``film`` (gray float32, bone bright) under ``condition``."""
    if condition not in CONDITIONS:
        raise ValueError(condition)
    rng = np.random.default_rng(seed)
    portrait = rng.random() < 0.5
    w, h = (PHOTO_SIZE[1], PHOTO_SIZE[0]) if portrait else PHOTO_SIZE
    f = rng.uniform(0.7, 0.95) * max(w, h)
    fh, fw = film.shape
    film_wh = (1.0, fh / fw)
    params: dict[str, float | str] = {"focal_factor": round(f / max(w, h), 3)}

    tilt = rng.uniform(0, 35) if condition != "steep" else rng.uniform(48, 60)
    roll = rng.uniform(-15, 15)
    if condition == "small":
        area = rng.uniform(0.05, 0.12)
    elif condition == "steep":
        area = rng.uniform(0.25, 0.45)
    else:
        area = rng.uniform(0.3, 0.7)
    pose = None
    for _ in range(20):
        pose = _pose(rng, film_wh, (w, h), f, tilt, roll, area)
        if pose is not None:
            break
        area *= 0.9
    assert pose is not None
    rot, trans = pose
    params.update(tilt_deg=round(tilt, 1), roll_deg=round(roll, 1), area=round(area, 3))

    film_plane = np.array(
        [[0, 0, 0], [1, 0, 0], [1, film_wh[1], 0], [0, film_wh[1], 0]], dtype=np.float64
    ) - [0.5, film_wh[1] / 2, 0]
    corners = _project(film_plane, rot, trans, f, (w / 2, h / 2)).astype(np.float32)
    film_px = float(np.linalg.norm(corners[1] - corners[0]))

    # the plane behind and around the film, in film-plane units (film at [0,1] x [0,a])
    backdrop = str(rng.choice(["lightbox", "lightbox", "lightbox", "window"]))
    if condition == "moire":
        backdrop = "monitor"
    params["backdrop"] = backdrop
    margins = rng.uniform(0.04, 0.3, size=4)  # lit area beyond the film: left, top, right, bottom
    pad = 0.8
    extent = (-pad, -pad, 1 + pad, film_wh[1] + pad)
    bg_scale = 0.4 * film_px  # background pixels per film-plane unit (it is smooth)
    bw = round((extent[2] - extent[0]) * bg_scale)
    bh = round((extent[3] - extent[1]) * bg_scale)

    def to_bg(x: float, y: float) -> tuple[int, int]:
        return round((x - extent[0]) * bg_scale), round((y - extent[1]) * bg_scale)

    room = 0.02 + 0.2 * rng.random()
    wall = 1 + 0.5 * _smooth_field(rng, (bh, bw), 5)
    plane = (room * wall)[:, :, None] * rng.uniform(0.7, 1.2, size=3)[None, None, :]
    plane = plane.astype(np.float32)
    tint = np.array([1.0, rng.uniform(0.95, 1.03), rng.uniform(0.9, 1.12)], np.float32)
    if backdrop == "monitor":
        x0, y0 = to_bg(-0.05, -0.05)
        x1, y1 = to_bg(1.05, film_wh[1] + 0.05)
        plane[y0:y1, x0:x1] = 0.01  # the monitor's black bezel
    else:
        if backdrop == "window":
            x0, y0, x1, y1 = 0, 0, bw, bh
        else:
            x0, y0 = to_bg(-margins[0], -margins[1])
            x1, y1 = to_bg(1 + margins[2], film_wh[1] + margins[3])
        glow = 1.0 - rng.uniform(0.0, 0.25) * (
            0.5 + 0.5 * _smooth_field(rng, (y1 - y0, x1 - x0), 3)
        )
        if backdrop == "lightbox":  # fluorescent tubes behind a diffuser
            tubes = rng.uniform(0, 0.05)
            xs = np.linspace(0, rng.uniform(2, 4) * 2 * np.pi, x1 - x0)
            glow = glow * (1 - tubes * (0.5 + 0.5 * np.cos(xs)))[None, :]
        plane[y0:y1, x0:x1] = glow[:, :, None] * tint[None, None, :]
    unit = np.array([[0, 0], [1, 0], [1, film_wh[1]], [0, film_wh[1]]], np.float32)
    bg_quad = (unit - [extent[0], extent[1]]) * bg_scale
    bg_h = cv2.getPerspectiveTransform(bg_quad.astype(np.float32), corners)
    photo = cv2.warpPerspective(
        plane, bg_h, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
    )

    if backdrop == "monitor":
        # screen pixels near the sensor's pitch, warped without pre-filter: they alias
        across = round(film_px * rng.uniform(0.75, 1.3))
        tex = _monitor_texture(film, rng, across)
        params["screen_pixels"] = across
        fill = 0.0
        interp = cv2.INTER_LINEAR
    else:
        tex = _film_texture(film, rng, 1.3 * film_px / fw)
        tex = cv2.GaussianBlur(tex, (0, 0), 0.8)
        fill = 1.0
        interp = cv2.INTER_LINEAR
    th_, tw_ = tex.shape[:2]
    tex_quad = np.array([[0, 0], [tw_, 0], [tw_, th_], [0, th_]], np.float32)
    tex_h = cv2.getPerspectiveTransform(tex_quad, corners)
    layer = cv2.warpPerspective(
        tex,
        tex_h,
        (w, h),
        flags=interp,
        borderMode=cv2.BORDER_CONSTANT,
        borderValue=(fill, fill, fill),
    )
    if backdrop == "monitor":
        inside = cv2.warpPerspective(np.ones((th_, tw_), np.float32), tex_h, (w, h))
        photo = photo * (1 - inside[:, :, None]) + layer
    else:
        photo = photo * layer

    # hands and clips in front of the film edge (never over a corner)
    if rng.random() < 0.35:
        side = int(rng.integers(4))
        a, b = corners[side], corners[(side + 1) % 4]
        pos = a + rng.uniform(0.2, 0.8) * (b - a)
        radius = rng.uniform(0.03, 0.07) * film_px
        outward = pos - corners.mean(axis=0)
        outward /= np.linalg.norm(outward)
        kind = rng.choice(["thumb", "clip"])
        colour = np.array([0.55, 0.38, 0.3]) if kind == "thumb" else np.array([0.05, 0.05, 0.06])
        colour = colour * rng.uniform(0.4, 1.0)
        centre = pos + outward * radius * 0.8
        end = centre + outward * radius * 6
        mask = np.zeros((h, w), np.uint8)
        cv2.line(
            mask,
            tuple(int(v) for v in centre),
            tuple(int(v) for v in end),
            255,
            thickness=int(2 * radius),
        )
        cv2.circle(mask, tuple(int(v) for v in centre), int(radius), 255, -1)
        m = cv2.GaussianBlur(mask.astype(np.float32) / 255.0, (0, 0), 1.5)[:, :, None]
        photo = photo * (1 - m) + m * colour[None, None, :].astype(np.float32)
        params["occluder"] = str(kind)

    # exposure: the phone meters on the bright end of the scene
    film_mask = np.zeros((h, w), np.uint8)
    cv2.fillConvexPoly(film_mask, corners.astype(np.int32), 1)
    lum = photo.mean(axis=2)
    if condition == "overexposed":
        gain = rng.uniform(1.0, 1.6) / max(1e-4, float(np.percentile(lum[film_mask > 0], 50)))
    else:
        gain = rng.uniform(0.78, 0.95) / max(1e-4, float(np.percentile(lum, 99.5)))
    photo = photo * gain

    # lens vignetting
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    r2 = ((xx - w / 2) ** 2 + (yy - h / 2) ** 2) / (0.25 * (w * w + h * h))
    photo *= (1 - rng.uniform(0.1, 0.35) * r2)[:, :, None]

    # reflections of room lights on the film's glossy surface
    blobs = 0
    if condition == "glare":
        blobs = int(rng.integers(1, 3))
    elif rng.random() < 0.3:
        blobs = 1
    glare_share = 0.0
    for _ in range(blobs):
        u, v = rng.uniform(0.1, 0.9), rng.uniform(0.1, 0.9)
        centre = corners[0] + u * (corners[1] - corners[0]) + v * (corners[3] - corners[0])
        film_area = abs(cv2.contourArea(corners))
        if condition == "glare":
            share = rng.uniform(0.025, 0.08) / blobs
            peak = rng.uniform(2.0, 4.0)
        else:
            share = rng.uniform(0.005, 0.02)
            peak = rng.uniform(0.15, 0.4)  # faint: it never clips
        glare_share += share
        ax = np.sqrt(share * film_area / np.pi) * rng.uniform(0.7, 1.4)
        ay = share * film_area / (np.pi * ax)
        ang = rng.uniform(0, np.pi)
        dx, dy = xx - centre[0], yy - centre[1]
        ux = (dx * np.cos(ang) + dy * np.sin(ang)) / ax
        uy = (-dx * np.sin(ang) + dy * np.cos(ang)) / ay
        bump = peak * np.exp(-0.5 * (ux * ux + uy * uy) ** 2 * 1.5)
        photo += bump[:, :, None] * np.array([1.0, 1.0, 0.97], np.float32)[None, None, :]
    params["glare_share"] = round(glare_share, 4)

    # shake and focus
    if condition == "blur":
        if rng.random() < 0.7:
            length = rng.uniform(12, 30)
            params["motion_px"] = round(length, 1)
        else:
            length = 0.0
            sigma = rng.uniform(3.0, 6.0)
            params["defocus_px"] = round(sigma, 1)
            photo = cv2.GaussianBlur(photo, (0, 0), sigma)
    else:
        length = rng.uniform(0, 3.0)
        params["motion_px"] = round(length, 1)
        photo = cv2.GaussianBlur(photo, (0, 0), rng.uniform(0.3, 0.8))
    if length >= 1.0:
        k = int(np.ceil(length)) | 1
        kernel = np.zeros((k, k), np.float32)
        kernel[k // 2, :] = 1.0
        rot_k = cv2.getRotationMatrix2D((k / 2 - 0.5, k / 2 - 0.5), rng.uniform(0, 180), 1.0)
        kernel = cv2.warpAffine(kernel, rot_k, (k, k))
        photo = cv2.filter2D(photo, -1, kernel / kernel.sum())

    # sensor noise (shot + read) in linear light, then the phone's sRGB encoding
    shot = rng.uniform(2e-4, 1.5e-3)
    noise = rng.standard_normal(photo.shape, dtype=np.float32)
    photo = photo + noise * np.sqrt(np.clip(photo, 0, None) * shot + 1e-6)
    photo = np.clip(photo, 0, 1)
    srgb = np.where(photo <= 0.0031308, photo * 12.92, 1.055 * np.power(photo, 1 / 2.4) - 0.055)
    u8 = np.clip(srgb * 255 + 0.5, 0, 255).astype(np.uint8)
    quality = int(rng.integers(70, 93))
    ok, buf = cv2.imencode(
        ".jpg", cv2.cvtColor(u8, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, quality]
    )
    assert ok
    params["jpeg_quality"] = quality
    return SimPhoto(
        jpeg=buf.tobytes(),
        corners=corners,
        condition=condition,
        expected_code=EXPECTED_CODE[condition],
        source=source,
        film=film,
        params=params,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--count", type=int, default=14)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    sources = {name: load_source(p) for name, p in packaged_sources().items()}
    names = sorted(sources)
    for i in range(args.count):
        condition = CONDITIONS[i % len(CONDITIONS)]
        name = names[i % len(names)]
        photo = simulate(sources[name], args.seed + i, condition, name)
        stem = f"{i:03d}_{condition}_{name}"
        (args.out / f"{stem}.jpg").write_bytes(photo.jpeg)
        meta = {
            "corners": photo.corners.tolist(),
            "params": photo.params,
            "expected_code": photo.expected_code,
        }
        (args.out / f"{stem}.json").write_text(json.dumps(meta, indent=1))


if __name__ == "__main__":
    main()
