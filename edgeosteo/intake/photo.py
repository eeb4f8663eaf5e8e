"""Phone photographs of X-ray films: find the film, rectify it, normalise it, judge it.

A technician photographs a printed film on a lightbox or against a window. This module
finds the film's four corners, corrects the perspective to the film's own aspect ratio,
removes the lightbox's uneven light, and runs the photo gates (glare, blur, moire, tilt,
film size, exposure, is-it-a-film) so that a bad photo is refused with advice the
technician can act on at once. The rectified image has no pixel spacing: nothing measured
on it may be stated in millimetres.

Corners are (x, y) in the pixels of the photo as the phone shows it (EXIF orientation
applied), ordered top-left, top-right, bottom-right, bottom-left.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Literal

import cv2
import numpy as np

from edgeosteo.config import IntakeLimits, PhotoThresholds, QualityThresholds
from edgeosteo.errors import IntakeError
from edgeosteo.intake import ImageSource, read_bytes
from edgeosteo.intake.detect import detect_kind
from edgeosteo.intake.pixels import colourfulness, shrink_to_long_side
from edgeosteo.intake.raster import _header
from edgeosteo.intake.types import Radiograph
from edgeosteo.quality import GateResult, QualityReport, graded_gate, radiograph_gate

CornerSource = Literal["detected", "user", "whole_frame"]

# A photo whose short side falls below intake's own floor once its long side is reduced to
# the working size (a strip, a panorama: longer than about 32:1) cannot show a film.
_MIN_WORK_SIDE_PX = IntakeLimits().min_side_px

# Where on the film a reflection sits, as a 3 x 3 grid (row, column) -> code suffix.
_GLARE_PLACES = (
    ("upper_left", "top", "upper_right"),
    ("left", "centre", "right"),
    ("lower_left", "bottom", "lower_right"),
)


@dataclass(frozen=True)
class PhotoResult:
    """A rectified film photo and the photo gates that judged it."""

    radiograph: Radiograph
    corners: np.ndarray  # (4, 2) float32, photo pixels, TL TR BR BL
    corner_source: CornerSource
    gates: tuple[GateResult, ...]
    glare_mask: np.ndarray  # bool, in the rectified film's pixels
    tilt_deg: float
    film_fraction: float

    @property
    def whole_frame_fallback(self) -> bool:
        return self.corner_source == "whole_frame"

    @property
    def quality(self) -> QualityReport:
        return QualityReport(gates=self.gates)

    @property
    def usable(self) -> bool:
        return self.quality.usable

    def describe(self) -> dict[str, object]:
        """JSON-ready summary without pixels."""
        return {
            "corners": [[round(float(x), 1), round(float(y), 1)] for x, y in self.corners],
            "corner_source": self.corner_source,
            "tilt_deg": round(self.tilt_deg, 1),
            "film_fraction": round(self.film_fraction, 3),
            "glare_fraction": round(float(self.glare_mask.mean()), 4),
            "quality": self.quality.to_dict(),
        }


# --- decoding ----------------------------------------------------------------------------


def decode_photo(data: bytes, limits: IntakeLimits | None = None) -> np.ndarray:
    """RGB uint8 pixels of a JPEG/PNG/TIFF photo, EXIF orientation applied, colour kept."""
    limits = limits or IntakeLimits()
    if not data:
        raise IntakeError("intake.empty_file")
    kind = detect_kind(data[:132])
    if kind == "dicom":
        raise IntakeError("photo.not_a_photo")
    if kind not in ("png", "jpeg", "tiff"):
        raise IntakeError("intake.not_an_image")
    _header(data, limits)
    try:
        # IMREAD_COLOR (without IGNORE_ORIENTATION) applies the EXIF orientation
        decoded = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_COLOR)
    except cv2.error as exc:
        raise IntakeError("intake.corrupt_pixels", str(exc)) from exc
    if decoded is None or decoded.size == 0:
        raise IntakeError("intake.truncated", "the image decoder could not read the pixels")
    return cv2.cvtColor(decoded, cv2.COLOR_BGR2RGB)


@dataclass(frozen=True)
class FilmCorners:
    """Four film corners in the photo's pixels (EXIF orientation applied) and who placed
    them: ``"user"`` clicks are snapped onto the film's edges; ``"detected"`` corners come
    back from an earlier review of the same photo and are used as they are."""

    points: tuple[tuple[float, float], ...]
    source: Literal["user", "detected"] = "user"

    @classmethod
    def parse(cls, points: object, source: str = "user") -> FilmCorners:
        """Four (x, y) pairs from a form or JSON; anything else is ``photo.bad_corners``."""
        try:
            array = np.asarray(points, dtype=np.float64)
        except (TypeError, ValueError, OverflowError) as exc:
            raise IntakeError("photo.bad_corners", str(exc)) from exc
        if array.shape != (4, 2) or not np.isfinite(array).all():
            raise IntakeError("photo.bad_corners", f"expected four (x, y) pairs, got {array.shape}")
        if source not in ("user", "detected"):
            raise IntakeError("photo.bad_corners", f"unknown corner source {source!r}")
        return cls(tuple((float(x), float(y)) for x, y in array), source)  # type: ignore[arg-type]

    @classmethod
    def from_json(cls, text: str, source: str = "user") -> FilmCorners:
        """Four (x, y) pairs written as JSON, e.g. ``[[120, 80], [900, 95], ...]``."""
        try:
            points = json.loads(text)
        except (ValueError, RecursionError) as exc:
            raise IntakeError("photo.bad_corners", str(exc)) from exc
        return cls.parse(points, source)


@dataclass(frozen=True)
class PhotoFile:
    """A decoded photo as the phone shows it, with where it came from."""

    rgb: np.ndarray  # H x W x 3 uint8, EXIF orientation applied
    source_format: Literal["jpeg", "png", "tiff"]
    content_sha256: str
    transforms: tuple[str, ...]


def load_photo(source: ImageSource, limits: IntakeLimits | None = None) -> PhotoFile:
    """Read and decode a photo file (path, bytes or binary file)."""
    limits = limits or IntakeLimits()
    data = read_bytes(source, limits)
    rgb = decode_photo(data, limits)
    kind = detect_kind(data[:132])
    orientation = _header(data, limits)[2]
    return PhotoFile(
        rgb=rgb,
        source_format="jpeg" if kind == "jpeg" else kind,  # type: ignore[arg-type]
        content_sha256=hashlib.sha256(data).hexdigest(),
        transforms=(f"exif_orientation_{orientation}",) if orientation != 1 else (),
    )


def rectify_file(
    photo: PhotoFile,
    thresholds: PhotoThresholds | None = None,
    corners: FilmCorners | np.ndarray | list[list[float]] | None = None,
) -> PhotoResult:
    """Rectify the film in a loaded photo and judge it."""
    return rectify_photo(
        photo.rgb,
        thresholds,
        corners,
        source_format=photo.source_format,
        content_sha256=photo.content_sha256,
        transforms=photo.transforms,
    )


def read_photo(
    source: ImageSource,
    thresholds: PhotoThresholds | None = None,
    corners: FilmCorners | np.ndarray | list[list[float]] | None = None,
    limits: IntakeLimits | None = None,
) -> PhotoResult:
    """Read a photo file (path, bytes or binary file) and rectify the film in it."""
    return rectify_file(load_photo(source, limits), thresholds, corners)


# --- geometry ----------------------------------------------------------------------------


def order_corners(points: np.ndarray | list[list[float]]) -> np.ndarray:
    """Four (x, y) points ordered top-left, top-right, bottom-right, bottom-left."""
    pts = np.asarray(points, dtype=np.float64).reshape(4, 2)
    centre = pts.mean(axis=0)
    angles = np.arctan2(pts[:, 1] - centre[1], pts[:, 0] - centre[0])
    pts = pts[np.argsort(angles)]  # clockwise on screen (y points down)
    start = int(np.argmin(pts.sum(axis=1)))
    return np.roll(pts, -start, axis=0).astype(np.float32)


def _is_convex_quad(quad: np.ndarray) -> bool:
    crosses = []
    for i in range(4):
        a, b, c = quad[i], quad[(i + 1) % 4], quad[(i + 2) % 4]
        u, v = b - a, c - b
        crosses.append(float(u[0] * v[1] - u[1] * v[0]))
    return all(x > 0 for x in crosses) or all(x < 0 for x in crosses)


def _intersect(l1: tuple[np.ndarray, np.ndarray], l2: tuple[np.ndarray, np.ndarray]):
    (p, d), (q, e) = l1, l2
    denom = d[0] * e[1] - d[1] * e[0]
    if abs(denom) < 1e-6:
        return None
    t = ((q[0] - p[0]) * e[1] - (q[1] - p[1]) * e[0]) / denom
    return p + t * d


def _quad_from_contour(contour: np.ndarray) -> np.ndarray | None:
    hull = cv2.convexHull(contour)
    perimeter = cv2.arcLength(hull, True)
    for eps in (0.01, 0.02, 0.035, 0.05):
        approx = cv2.approxPolyDP(hull, eps * perimeter, True).reshape(-1, 2)
        if len(approx) == 4:
            return order_corners(approx)
        if len(approx) < 4:
            break
    return None


def _quads_from_lines(
    contour: np.ndarray, frame: tuple[int, int], min_side: float
) -> list[np.ndarray]:
    """Quads from the straight stretches of a contour: pieces of one film side split by a
    hand or a clip are joined, stretches along the photo's border are ignored, and every
    convex choice of four of the longest sides that the stretches cover is offered."""
    h, w = frame
    perimeter = cv2.arcLength(contour, True)
    poly = cv2.approxPolyDP(contour, max(2.0, 0.004 * perimeter), True).reshape(-1, 2)
    poly = poly.astype(np.float64)
    n = len(poly)
    if n < 4:
        return []
    segments = []
    for i in range(n):
        a, b = poly[i], poly[(i + 1) % n]
        length = float(np.linalg.norm(b - a))
        on_border = all(min(p[0], p[1], w - 1 - p[0], h - 1 - p[1]) < 2.0 for p in (a, b))
        if length >= 0.2 * min_side and not on_border:
            segments.append((length, a, b))
    segments.sort(key=lambda item: -item[0])
    groups: list[list] = []  # [covered length, point, direction, endpoints]
    for length, a, b in segments:
        d = (b - a) / length
        for g in groups:
            normal = np.array([-g[2][1], g[2][0]])
            if (
                abs(float(g[2][0] * d[1] - g[2][1] * d[0])) < 0.07
                and abs(float((a - g[1]) @ normal)) < 4.0
                and abs(float((b - g[1]) @ normal)) < 4.0
            ):
                g[0] += length
                g[3].extend([a, b])
                break
        else:
            groups.append([length, a, d, [a, b]])
    groups = [g for g in groups if g[0] >= 0.4 * min_side][:10]
    middles = [np.mean(g[3], axis=0) for g in groups]
    quads = []
    margin = 0.05 * max(h, w)
    for combo in _combinations(len(groups), 4):
        chosen = [groups[i] for i in combo]
        mids = np.array([middles[i] for i in combo])
        centre = mids.mean(axis=0)
        order = np.argsort(np.arctan2(mids[:, 1] - centre[1], mids[:, 0] - centre[0]))
        chosen = [chosen[i] for i in order]
        lines = [(g[1], g[2]) for g in chosen]
        corners = [_intersect(lines[i - 1], lines[i]) for i in range(4)]
        if any(c is None for c in corners):
            continue
        quad = np.array(corners)
        if (quad < -margin).any() or (quad[:, 0] > w + margin).any():
            continue
        if (quad[:, 1] > h + margin).any() or not _is_convex_quad(quad):
            continue
        # each side must be largely drawn by its own stretches
        sides = [float(np.linalg.norm(quad[(i + 1) % 4] - quad[i])) for i in range(4)]
        if min(sides) < min_side * 0.5:
            continue
        if any(chosen[i][0] < 0.4 * sides[i] for i in range(4)):
            continue
        quads.append(order_corners(quad))
    return quads


def _combinations(n: int, k: int) -> list[tuple[int, ...]]:
    from itertools import combinations

    return list(combinations(range(n), k))


def _sample(image: np.ndarray, xy: np.ndarray) -> np.ndarray:
    """Bilinear samples of a float32 image at (..., 2) float coordinates."""
    flat = xy.reshape(-1, 1, 2).astype(np.float32)
    values = cv2.remap(
        image, flat[..., 0], flat[..., 1], cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
    )
    return values.reshape(xy.shape[:-1])


@dataclass(frozen=True)
class _Fit:
    quad: np.ndarray
    support: tuple[float, ...]  # per side: fraction of the side on a straight edge
    step: tuple[float, ...]  # per side: median (outside - inside) brightness


def _fit_line(points: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Robust total-least-squares line: (point, direction, inlier mask)."""
    keep = np.ones(len(points), dtype=bool)
    for _ in range(3):
        sel = points[keep]
        centre = sel.mean(axis=0)
        _, _, vt = np.linalg.svd(sel - centre, full_matrices=False)
        direction, normal = vt[0], vt[1]
        residual = np.abs((points - centre) @ normal)
        mad = float(np.median(residual[keep])) * 1.4826
        new_keep = residual <= max(1.0, 2.5 * mad)
        if new_keep.sum() < 2 or np.array_equal(new_keep, keep):
            keep = new_keep if new_keep.sum() >= 2 else keep
            break
        keep = new_keep
    return centre, direction, keep


def _refine(image: np.ndarray, quad: np.ndarray, search: float, t: PhotoThresholds) -> _Fit | None:
    """Snap each side of a rough quad onto the straight edge nearest to it."""
    quad = quad.astype(np.float64)
    fit: _Fit | None = None
    for radius in (search, max(2.0, search / 4)):
        centre = quad.mean(axis=0)
        lines, support, steps = [], [], []
        for i in range(4):
            p0, p1 = quad[i], quad[(i + 1) % 4]
            d = p1 - p0
            length = float(np.linalg.norm(d))
            if length < 8:
                return None
            u = d / length
            n = np.array([u[1], -u[0]])
            if (0.5 * (p0 + p1) - centre) @ n < 0:
                n = -n  # outward
            m = int(np.clip(length / 4, 16, 96))
            along = p0 + np.linspace(0.08, 0.92, m)[:, None] * d
            offsets = np.arange(-radius, radius + 0.5, 0.5)
            grid = along[:, None, :] + offsets[None, :, None] * n[None, None, :]
            profile = _sample(image, grid)
            # the film is darker than the light behind it: look for a rise going outward
            # (a lightbox's own border, light to dark, is a fall and is passed over)
            deriv = np.diff(profile, axis=1)
            best = np.argmax(deriv, axis=1)
            # contrast of the step 2-4 px either side of it, whatever its sharpness
            k = len(offsets)
            ahead = np.clip(best[:, None] + np.arange(4, 9)[None, :], 0, k - 1)
            behind = np.clip(best[:, None] - np.arange(3, 8)[None, :], 0, k - 1)
            rows = np.arange(m)[:, None]
            strength = profile[rows, ahead].mean(1) - profile[rows, behind].mean(1)
            # sub-sample peak by a parabola through the neighbours
            b = np.clip(best, 1, deriv.shape[1] - 2)
            y0, y1, y2 = (deriv[np.arange(m), b + k] for k in (-1, 0, 1))
            denom = y0 - 2 * y1 + y2
            safe = np.where(np.abs(denom) > 1e-9, denom, 1.0)
            frac = np.where(np.abs(denom) > 1e-9, 0.5 * (y0 - y2) / safe, 0.0)
            offset = offsets[0] + (b + 0.5 + np.clip(frac, -0.5, 0.5)) * 0.5
            strong = strength >= t.film_edge_step
            if strong.sum() < max(6, 0.3 * m):
                return None
            pts = along[strong] + offset[strong, None] * n[None, :]
            point, direction, inliers = _fit_line(pts)
            lines.append((point, direction))
            support.append(float(inliers.sum()) / m)
            # brightness step across the fitted line: lightbox outside is brighter
            on_line = pts[inliers]
            foot = point + ((on_line - point) @ direction)[:, None] * direction[None, :]
            outside = _sample(image, foot + 4.0 * n)
            inside = _sample(image, foot - 4.0 * n)
            steps.append(float(np.median(outside - inside)))
        corners = [_intersect(lines[i - 1], lines[i]) for i in range(4)]
        if any(c is None for c in corners):
            return None
        new_quad = np.array(corners)
        if not _is_convex_quad(new_quad):
            return None
        quad = new_quad
        fit = _Fit(quad.astype(np.float32), tuple(support), tuple(steps))
    return fit


def _candidates(gray: np.ndarray, t: PhotoThresholds) -> list[np.ndarray]:
    h, w = gray.shape
    min_area = t.film_min_area_fraction * h * w
    min_side = 0.5 * float(np.sqrt(min_area))
    u8 = np.clip(gray * 255.0, 0, 255).astype(np.uint8)
    masks = []
    edges = cv2.Canny(u8, 10, 30)
    masks.append(cv2.dilate(edges, np.ones((3, 3), np.uint8)))
    light = float(np.percentile(gray, 99.5))
    for k in (0.55, 0.75, 0.9):
        dark = (gray < k * light).astype(np.uint8) * 255
        masks.append(cv2.morphologyEx(dark, cv2.MORPH_OPEN, np.ones((5, 5), np.uint8)))
    quads = []
    for mask in masks:
        contours, _ = cv2.findContours(mask, cv2.RETR_LIST, cv2.CHAIN_APPROX_SIMPLE)
        for contour in contours:
            if len(contour) < 4 or cv2.contourArea(cv2.convexHull(contour)) < min_area:
                continue
            quad = _quad_from_contour(contour)
            if quad is not None and _is_convex_quad(quad.astype(np.float64)):
                quads.append(quad)
            quads.extend(_quads_from_lines(contour, (h, w), min_side))
    return quads


def find_film(gray: np.ndarray, thresholds: PhotoThresholds | None = None) -> np.ndarray | None:
    """Corners of the film (lit from behind) in a gray [0, 1] photo, or None."""
    t = thresholds or PhotoThresholds()
    small, scale = shrink_to_long_side(gray.astype(np.float32), t.detect_long_side_px)
    small = cv2.GaussianBlur(small, (0, 0), 1.0)
    h, w = small.shape
    search = 0.02 * float(np.hypot(h, w))
    best, best_score = None, 0.0
    seen: list[np.ndarray] = []
    for quad in _candidates(small, t):
        if any(np.abs(quad - s).max() < 3.0 for s in seen):
            continue
        seen.append(quad)
        fit = _refine(small, quad, search, t)
        if fit is None:
            continue
        area = abs(cv2.contourArea(fit.quad)) / (h * w)
        inside = np.all((fit.quad >= -2) & (fit.quad <= [w + 1, h + 1]))
        brighter_outside = sum(s >= t.film_edge_step for s in fit.step)
        if (
            not inside
            or area < t.film_min_area_fraction
            or area > 0.98
            or min(fit.support) < t.film_side_support
            or brighter_outside < 4
        ):
            continue
        score = area * (0.5 + 0.5 * float(np.mean(fit.support)))
        if score > best_score:
            best, best_score = fit.quad, score
    if best is None:
        return None
    return _polish(gray, best / scale, 2.0 / scale, t)


def _polish(gray: np.ndarray, quad: np.ndarray, search: float, t: PhotoThresholds) -> np.ndarray:
    """Refit the sides at full working resolution; keeps the quad if that fails."""
    sharp = cv2.GaussianBlur(gray.astype(np.float32), (0, 0), 0.7)
    fit = _refine(sharp, quad, max(3.0, search), t)
    if fit is None or np.abs(fit.quad - quad).max() > 2 * max(3.0, search):
        return quad.astype(np.float32)
    return order_corners(fit.quad)


def _refine_user_corners(gray: np.ndarray, corners: np.ndarray, t: PhotoThresholds):
    """Snap four clicked corners onto the film's edges when the edges are clear."""
    small, scale = shrink_to_long_side(gray.astype(np.float32), t.detect_long_side_px)
    small = cv2.GaussianBlur(small, (0, 0), 1.0)
    search = 0.015 * float(np.hypot(*small.shape))
    fit = _refine(small, corners * scale, search, t)
    if fit is None or min(fit.support) < t.film_side_support:
        return corners
    snapped = fit.quad / scale
    if np.abs(snapped - corners).max() > 2 * search / scale:
        return corners
    return order_corners(snapped)


def _check_placed(quad: np.ndarray, frame: tuple[int, int]) -> None:
    """Given corners must lie in the photo and outline a real four-sided shape."""
    h, w = frame
    margin = 0.02 * max(h, w)
    inside = (quad[:, 0] >= -margin).all() and (quad[:, 0] <= w - 1 + margin).all()
    inside = inside and (quad[:, 1] >= -margin).all() and (quad[:, 1] <= h - 1 + margin).all()
    if not inside:
        raise IntakeError("photo.bad_corners", "a corner lies outside the photo")
    if not _is_convex_quad(quad) or abs(cv2.contourArea(quad.astype(np.float32))) < 0.01 * h * w:
        raise IntakeError("photo.bad_corners", "the corners do not outline the film")


def plane_geometry(
    corners: np.ndarray, frame: tuple[int, int], focal_length_factor: float
) -> tuple[float, float]:
    """(width / height of the film, tilt of the phone from square-on in degrees) from the
    corners, for a pinhole camera with its principal point at the frame centre."""
    h, w = frame
    f = focal_length_factor * max(h, w)
    k_inv = np.linalg.inv(np.array([[f, 0, w / 2], [0, f, h / 2], [0, 0, 1.0]]))
    unit = np.array([[0, 0], [1, 0], [1, 1], [0, 1]], dtype=np.float32)
    homography = cv2.getPerspectiveTransform(unit, corners.astype(np.float32))
    m = k_inv @ homography
    r1, r2 = m[:, 0], m[:, 1]
    n1, n2 = float(np.linalg.norm(r1)), float(np.linalg.norm(r2))
    if n1 <= 0 or n2 <= 0:
        return 1.0, 90.0
    normal = np.cross(r1 / n1, r2 / n2)
    normal /= max(float(np.linalg.norm(normal)), 1e-12)
    tilt = float(np.degrees(np.arccos(min(1.0, abs(float(normal[2]))))))
    return n1 / n2, tilt


# --- photometry --------------------------------------------------------------------------


def _srgb_to_linear(x: np.ndarray) -> np.ndarray:
    return np.where(x <= 0.04045, x / 12.92, ((x + 0.055) / 1.055) ** 2.4).astype(np.float32)


def _illumination(
    work_linear: np.ndarray, corners: np.ndarray, t: PhotoThresholds
) -> np.ndarray | None:
    """Coefficients of a quadratic fit of log lightbox brightness around the film, in
    work-image coordinates scaled to [-1, 1]; None when too little lightbox shows."""
    small, scale = shrink_to_long_side(work_linear, 400)
    h, w = small.shape
    quad = (corners * scale).astype(np.int32)
    mask = np.zeros((h, w), np.uint8)
    cv2.fillConvexPoly(mask, quad, 255)
    gap = max(2, round(0.01 * max(h, w)))
    near = cv2.dilate(mask, np.ones((2 * gap + 1, 2 * gap + 1), np.uint8))
    far = cv2.dilate(mask, np.ones((8 * gap + 1, 8 * gap + 1), np.uint8))
    ring = (far > 0) & (near == 0)
    if ring.sum() < 100:
        return None
    values = small[ring]
    top = float(np.percentile(values, 95))
    lit = ring & (small >= 0.6 * top) & (small < 0.97)
    if lit.sum() < 0.3 * ring.sum() or top < 0.05:
        return None
    ys, xs = np.nonzero(lit)
    x = xs / (w - 1) * 2 - 1
    y = ys / (h - 1) * 2 - 1
    design = np.stack([np.ones_like(x), x, y, x * x, x * y, y * y], axis=1)
    target = np.log(small[lit])
    keep = np.ones(len(target), dtype=bool)
    coef = np.zeros(6)
    for _ in range(3):
        coef, *_ = np.linalg.lstsq(design[keep], target[keep], rcond=None)
        residual = np.abs(design @ coef - target)
        keep = residual <= max(0.02, 2.5 * 1.4826 * float(np.median(residual[keep])))
    return coef


# A lightbox's fitted light over the film: 21 simulated photos (every condition) span at
# most a factor 1.6 and stay below the clip level. A fit from a thin sliver of lightbox (a
# film filling the frame) can extrapolate to overflow (inf, then NaN pixels): not used.
_MAX_LIGHT_LOG_SPREAD = float(np.log(8.0))
_MAX_LIGHT_LOG = float(np.log(2.0))


def _evaluate_illumination(
    coef: np.ndarray, inverse_map: np.ndarray, out_size: tuple[int, int], work_shape
) -> np.ndarray | None:
    """The fitted light at every pixel of the rectified film; None when the fit is not
    plausible over the film (see _MAX_LIGHT_LOG_SPREAD)."""
    out_w, out_h = out_size
    gh, gw = 48, 48
    gx, gy = np.meshgrid(np.linspace(0, out_w - 1, gw), np.linspace(0, out_h - 1, gh))
    pts = np.stack([gx, gy], axis=-1).reshape(-1, 1, 2).astype(np.float32)
    mapped = cv2.perspectiveTransform(pts, inverse_map).reshape(gh, gw, 2)
    h, w = work_shape
    x = mapped[..., 0] / (w - 1) * 2 - 1
    y = mapped[..., 1] / (h - 1) * 2 - 1
    log_l = coef[0] + coef[1] * x + coef[2] * y + coef[3] * x * x + coef[4] * x * y
    log_l = log_l + coef[5] * y * y
    if (
        not np.isfinite(log_l).all()
        or float(np.ptp(log_l)) > _MAX_LIGHT_LOG_SPREAD
        or float(log_l.max()) > _MAX_LIGHT_LOG
    ):
        return None
    field = np.exp(log_l).astype(np.float32)
    return cv2.resize(field, (out_w, out_h), interpolation=cv2.INTER_LINEAR)


def _inset(mask_shape: tuple[int, int], fraction: float) -> tuple[slice, slice]:
    h, w = mask_shape
    dy, dx = max(1, round(fraction * h)), max(1, round(fraction * w))
    return slice(dy, h - dy), slice(dx, w - dx)


def _to_unit(values: np.ndarray, valid: np.ndarray) -> np.ndarray:
    sample = values[valid] if valid.any() else values.ravel()
    lo, hi = np.percentile(sample, (0.5, 99.5))
    if hi - lo < 1e-6:
        return np.zeros_like(values, dtype=np.float32)
    return np.clip((values - lo) / (hi - lo), 0.0, 1.0).astype(np.float32)


# --- gates -------------------------------------------------------------------------------


def _graded(
    gate: str, code: str, measured: float, warn: float, fail: float, higher_is_worse: bool = True
) -> GateResult:
    worse = (lambda a, b: a > b) if higher_is_worse else (lambda a, b: a < b)
    failed = worse(measured, fail)
    return graded_gate(
        gate, float(measured), failed, worse(measured, warn), (code, code), fail if failed else warn
    )


def edge_blur_px(gray: np.ndarray) -> float:
    """Spread (Gaussian sigma, px) of the sharper strong edges, in their most blurred
    direction.

    The gradient peak of an edge of blur s, measured after smoothing with sigma, falls as
    1 / sqrt(s^2 + sigma^2); the ratio of the peaks at two smoothings gives s whatever the
    edge's contrast, so the same figure holds for a faint chest film and a crisp knee.
    """
    s1, s2 = 1.0, 3.0
    fine = cv2.GaussianBlur(gray, (0, 0), s1)
    coarse = cv2.GaussianBlur(gray, (0, 0), s2)
    worst = 0.0
    for angle in (0.0, 45.0, 90.0, 135.0):
        c, s = np.cos(np.radians(angle)), np.sin(np.radians(angle))
        d_fine = np.abs(
            c * cv2.Sobel(fine, cv2.CV_32F, 1, 0, ksize=3)
            + s * cv2.Sobel(fine, cv2.CV_32F, 0, 1, ksize=3)
        )
        d_coarse = np.abs(
            c * cv2.Sobel(coarse, cv2.CV_32F, 1, 0, ksize=3)
            + s * cv2.Sobel(coarse, cv2.CV_32F, 0, 1, ksize=3)
        )
        # peaks of the coarse response: the strongest edges facing this direction
        local_max = d_coarse >= cv2.dilate(d_coarse, np.ones((5, 5), np.uint8))
        level = float(np.percentile(d_coarse, 99.0))
        peaks = local_max & (d_coarse >= level) & (d_coarse > 0)
        if peaks.sum() < 20:
            continue
        fine_peak = cv2.dilate(d_fine, np.ones((3, 3), np.uint8))[peaks]
        # the sharpest quarter: shake blurs every edge, anatomy and collimator only some
        ratio = float(np.percentile(fine_peak / d_coarse[peaks], 75))
        r2 = ratio * ratio
        if r2 <= 1.0:
            spread = 50.0
        else:
            spread = float(np.sqrt(max(0.0, (s2 * s2 - r2 * s1 * s1) / (r2 - 1.0))))
        worst = max(worst, spread)
    return worst


def film_edge_blur_px(linear: np.ndarray, quad: np.ndarray) -> float:
    """Spread (Gaussian sigma, px) of the film's own cut edges against the light, in the
    most blurred of the four sides. The cut edge is sharp whatever the film shows, so this
    measures the phone (shake, focus) and not the radiograph."""
    centre = quad.mean(axis=0)
    offsets = np.arange(-16.0, 16.01, 0.25)
    worst = 0.0
    found = 0
    for i in range(4):
        p0, p1 = quad[i].astype(np.float64), quad[(i + 1) % 4].astype(np.float64)
        d = p1 - p0
        length = float(np.linalg.norm(d))
        if length < 40:
            continue
        u = d / length
        n = np.array([u[1], -u[0]])
        if (0.5 * (p0 + p1) - centre) @ n < 0:
            n = -n
        along = p0 + np.linspace(0.15, 0.85, 48)[:, None] * d
        grid = along[:, None, :] + offsets[None, :, None] * n[None, None, :]
        profiles = _sample(linear, grid)
        steps = profiles[:, -16:].mean(axis=1) - profiles[:, :16].mean(axis=1)
        typical = float(np.median(steps))
        if typical <= 0:
            continue
        # leave out stretches covered by a hand, a clip or a reflection
        keep = np.abs(steps - typical) < 0.3 * typical
        if keep.sum() < 12:
            continue
        mean = profiles[keep].mean(axis=0)
        deriv = np.diff(mean) / (offsets[1] - offsets[0])
        peak = int(np.argmax(deriv))
        if deriv[peak] <= 0:
            continue
        # a blurred step of height H peaks at H / (sigma sqrt(2 pi)); H is read 4-12 px
        # out, so the film's own shading near its border hardly counts
        x = offsets[peak]
        after = mean[(offsets >= x + 4) & (offsets <= x + 12)]
        before = mean[(offsets <= x - 4) & (offsets >= x - 12)]
        if after.size == 0 or before.size == 0:
            continue
        height = float(after.mean() - before.mean())
        if height <= 0:
            continue
        spread = height / (np.sqrt(2 * np.pi) * float(deriv[peak]))
        worst = max(worst, spread)
        found += 1
    return worst if found >= 2 else float("nan")


def moire_ratio(rgb: np.ndarray, window: int) -> float:
    """Strongest isolated peak in the spectrum of a photo crop's brightness or colour.

    A photographed monitor's pixel grid beats with the phone's sensor and leaves sharp
    peaks; a film leaves a smooth spectrum. Straight edges (film borders, collimation)
    make ridges through the origin rather than peaks, so a peak must stand above its
    neighbours along the radius as well as above the median power at its frequency.
    Frequencies of the JPEG block grid are skipped (the crop is taken in the
    photo's own pixels so they fall on known bins).
    """
    h, w = rgb.shape[:2]
    n = min(window, h, w) // 16 * 16
    if n < 256:
        return 0.0  # too few pixels to tell a beat from the film's own texture
    y0, x0 = (h - n) // 2, (w - n) // 2
    crop = rgb[y0 : y0 + n, x0 : x0 + n].astype(np.float32) / 255.0
    r, g, b = crop[..., 0], crop[..., 1], crop[..., 2]
    channels = (0.299 * r + 0.587 * g + 0.114 * b, r - g, 0.5 * (r + g) - b)
    tile = n // 2
    step = tile // 2
    hann = np.outer(np.hanning(tile), np.hanning(tile)).astype(np.float32)
    freq = np.fft.fftshift(np.fft.fftfreq(tile)) * tile
    ky, kx = np.meshgrid(freq, freq, indexing="ij")
    radius = np.hypot(ky, kx)
    ring = np.round(radius).astype(int)
    block = tile // 16  # 16-pixel MCUs: 8-pixel luma blocks, 2x subsampled colour
    near_grid = (np.abs((kx + 1) % block - 1) <= 1) | (np.abs((ky + 1) % block - 1) <= 1)
    valid = (radius >= 6) & (radius <= 0.45 * tile) & ~near_grid
    reach = 4.0 / np.maximum(radius, 1e-6)
    inward = (
        np.clip(np.round(ky * (1 - reach)), -tile // 2, tile // 2 - 1).astype(int) + tile // 2,
        np.clip(np.round(kx * (1 - reach)), -tile // 2, tile // 2 - 1).astype(int) + tile // 2,
    )
    outward = (
        np.clip(np.round(ky * (1 + reach)), -tile // 2, tile // 2 - 1).astype(int) + tile // 2,
        np.clip(np.round(kx * (1 + reach)), -tile // 2, tile // 2 - 1).astype(int) + tile // 2,
    )
    ring_ids = ring[valid]
    order = np.argsort(ring_ids, kind="stable")
    bounds = np.flatnonzero(np.diff(ring_ids[order])) + 1
    groups = np.split(order, bounds)
    best = 0.0
    for channel in channels:
        power = np.zeros((tile, tile), np.float64)
        for ty in range(0, n - tile + 1, step):
            for tx in range(0, n - tile + 1, step):
                part = channel[ty : ty + tile, tx : tx + tile]
                spectrum = cv2.dft((part - part.mean()) * hann, flags=cv2.DFT_COMPLEX_OUTPUT)
                power += spectrum[..., 0] ** 2 + spectrum[..., 1] ** 2
        power = np.fft.fftshift(power)
        values = power[valid]
        floor = np.empty_like(values)
        for group in groups:
            floor[group] = np.median(values[group])
        floor = np.maximum(floor, 1e-20)
        neighbours = np.maximum(power[inward][valid], power[outward][valid])
        score = np.minimum(values / floor, values / np.maximum(neighbours, 1e-20))
        best = max(best, float(score.max()))
    return best


def colour_fringe(rgb: np.ndarray) -> float:
    """Fine-grained colour (0-255 scale) of a photo crop once the light's tint is removed.

    A film is gray: its photo carries almost no colour detail. A monitor's red, green and
    blue sub-pixels alias into fine coloured fringes even where the beat is too irregular
    to make a spectral peak.
    """
    if rgb.size == 0 or min(rgb.shape[:2]) < 32:
        return 0.0
    unit = rgb.astype(np.float32) / 255.0
    means = unit.reshape(-1, 3).mean(axis=0)
    unit = unit * (means.mean() / np.maximum(means, 1e-3))
    rg = unit[..., 0] - unit[..., 1]
    yb = 0.5 * (unit[..., 0] + unit[..., 1]) - unit[..., 2]
    fine_rg = rg - cv2.GaussianBlur(rg, (0, 0), 3)
    fine_yb = yb - cv2.GaussianBlur(yb, (0, 0), 3)
    return float(np.hypot(fine_rg.std(), fine_yb.std()) * 255.0)


def _glare_place(mask: np.ndarray) -> str:
    count, _, stats, centroids = cv2.connectedComponentsWithStats(mask.astype(np.uint8))
    if count <= 1:
        return "centre"
    largest = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
    cx, cy = centroids[largest]
    h, w = mask.shape
    return _GLARE_PLACES[min(2, int(3 * cy / h))][min(2, int(3 * cx / w))]


# --- the pipeline ------------------------------------------------------------------------


def rectify_photo(
    image: np.ndarray,
    thresholds: PhotoThresholds | None = None,
    corners: FilmCorners | np.ndarray | list[list[float]] | None = None,
    *,
    source_format: Literal["jpeg", "png", "tiff"] = "jpeg",
    content_sha256: str = "",
    transforms: tuple[str, ...] = (),
) -> PhotoResult:
    """Rectify the film in a photo (H x W x 3 RGB or H x W gray, uint8) and judge it.

    ``corners`` are four film corners in the photo's pixels (any order): clicked ones
    (a plain array, or FilmCorners with source "user") are snapped onto the film's edges;
    without them the film is found automatically, and when it cannot be found the whole
    frame is used with a warning.
    """
    t = thresholds or PhotoThresholds()
    if image.ndim == 2:
        image = np.repeat(image[:, :, None], 3, axis=2)
    if image.dtype != np.uint8:
        image = np.clip(image.astype(np.float32) * (255.0 if image.max() <= 1.0 else 1.0), 0, 255)
        image = image.astype(np.uint8)
    rgb = np.ascontiguousarray(image[:, :, :3])
    work, work_scale = shrink_to_long_side(rgb, t.work_long_side_px)
    if min(work.shape[:2]) < _MIN_WORK_SIDE_PX:
        raise IntakeError("photo.too_narrow", f"{rgb.shape[1]}x{rgb.shape[0]}")
    work_gray = cv2.cvtColor(work, cv2.COLOR_RGB2GRAY).astype(np.float32) / 255.0

    source: CornerSource
    if corners is not None:
        given = corners if isinstance(corners, FilmCorners) else FilmCorners.parse(corners)
        placed = order_corners(given.points) * work_scale
        _check_placed(placed, work_gray.shape)
        if given.source == "detected":
            quad, source = placed, "detected"
        else:
            quad, source = _refine_user_corners(work_gray, placed, t), "user"
    else:
        found = find_film(work_gray, t)
        if found is not None:
            quad, source = found, "detected"
        else:
            h, w = work_gray.shape
            quad = np.array([[0, 0], [w - 1, 0], [w - 1, h - 1], [0, h - 1]], np.float32)
            source = "whole_frame"

    aspect, tilt = plane_geometry(quad, work_gray.shape, t.focal_length_factor)
    if source == "whole_frame":
        tilt = 0.0
        aspect = work_gray.shape[1] / work_gray.shape[0]
    sides = [float(np.linalg.norm(quad[(i + 1) % 4] - quad[i])) for i in range(4)]
    out_h = max(sides[1], sides[3], max(sides[0], sides[2]) / aspect)
    out_w = out_h * aspect
    # the film's size in work pixels (the scale its blur is measured at)
    work_cap = min(1.0, t.output_long_side_px / max(out_w, out_h))
    work_size = (max(16, round(out_w * work_cap)), max(16, round(out_h * work_cap)))
    # the film is taken at the photo's own resolution, up to output_long_side_px: a 12 MP
    # photo is reduced to work_long_side_px for the search, which would halve its film's
    # resolution and leave the knee's bone texture softer than the film shows it
    native = 1.0 if source == "whole_frame" else 1.0 / work_scale
    cap = min(native, t.output_long_side_px / max(out_w, out_h))
    out_size = (max(16, round(out_w * cap)), max(16, round(out_h * cap)))
    if source == "whole_frame":
        out_size = work_size = (work_gray.shape[1], work_gray.shape[0])
    target = np.array(
        [[0, 0], [out_size[0] - 1, 0], [out_size[0] - 1, out_size[1] - 1], [0, out_size[1] - 1]],
        np.float32,
    )
    to_work = cv2.getPerspectiveTransform(target, quad.astype(np.float32))
    source_image, source_quad = work, quad.astype(np.float32)
    if cap > work_cap * 1.001:
        # more of the film's detail is in the photo than in the work copy: resample the
        # photo (area-averaged) to about the output's scale and rectify from that
        factor = min(1.0, cap * work_scale)
        frame_quad = quad / work_scale
        # only the film's bounding box (and a few pixels for the interpolation) is needed
        x0, y0 = np.maximum(np.floor(frame_quad.min(axis=0)) - 4, 0).astype(int)
        x1, y1 = np.ceil(frame_quad.max(axis=0)).astype(int) + 5
        box = rgb[y0:y1, x0:x1]
        box_h, box_w = box.shape[:2]
        size = (max(1, round(box_w * factor)), max(1, round(box_h * factor)))
        source_image = box if factor >= 1.0 else cv2.resize(box, size, interpolation=cv2.INTER_AREA)
        per_axis = np.array(
            [source_image.shape[1] / box_w, source_image.shape[0] / box_h], np.float32
        )
        source_quad = ((frame_quad - [x0, y0]) * per_axis).astype(np.float32)
    to_source = cv2.getPerspectiveTransform(target, source_quad)
    # bicubic: the film is resampled near 1:1, where bilinear averages neighbours at every
    # sub-pixel shift and softens the bone texture the knee model reads (docs/photos.md,
    # "The knee models on photos")
    film_rgb = cv2.warpPerspective(
        source_image,
        to_source,
        out_size,
        flags=cv2.INTER_CUBIC | cv2.WARP_INVERSE_MAP,
        borderMode=cv2.BORDER_REPLICATE,
    )
    film_fraction = abs(cv2.contourArea(quad)) / float(work_gray.shape[0] * work_gray.shape[1])

    # brightness as the phone saw it, then as light through the film
    film_srgb = film_rgb.astype(np.float32) / 255.0
    brightest = film_srgb.max(axis=2)
    film_gray = cv2.cvtColor(film_srgb, cv2.COLOR_RGB2GRAY)
    linear = _srgb_to_linear(film_gray)
    applied = list(transforms)
    applied.append("whole_frame" if source == "whole_frame" else "film_rectified")
    coef = None
    if source != "whole_frame":
        coef = _illumination(_srgb_to_linear(work_gray), quad, t)
    light = None
    if coef is not None:
        light = _evaluate_illumination(coef, to_work, out_size, work_gray.shape)
    if light is not None:
        applied.append("lightbox_flat_field")
    else:
        light = np.full_like(linear, max(float(np.percentile(linear, 99.5)), 1e-3))
    transmission = np.clip(linear / np.maximum(light, 1e-4), 1e-4, None)

    inner = _inset(film_gray.shape, 0.02)
    interior = np.zeros(film_gray.shape, bool)
    interior[inner] = True
    clipped = brightest >= t.clipped_level
    glare = _glare_mask(clipped, interior)
    # print densities are linear in the displayed value, so log transmission is too
    pixels = _to_unit(np.log(transmission), interior & ~clipped)
    if not np.isfinite(pixels).all():
        # nothing above should leave one; a NaN would pass every gate and reach the models
        raise IntakeError("intake.invalid_values", "non-finite pixels after rectification")
    applied.append("log_transmission_stretch")

    # colour of the film once the light's tint is removed
    means = film_srgb[inner].reshape(-1, 3).mean(axis=0)
    balanced = film_srgb * (means.mean() / np.maximum(means, 1e-3))
    colour = colourfulness(np.clip(balanced * 255.0, 0, 255).astype(np.uint8)[inner])

    radiograph = Radiograph(
        pixels=np.ascontiguousarray(pixels, dtype=np.float32),
        source_format=source_format,
        capture="photo",
        pixel_spacing_mm=None,
        spacing_source=None,
        photometric="MONOCHROME2",
        bits_stored=8,
        colourfulness=colour,
        transforms=tuple(applied),
        content_sha256=content_sha256,
    )
    analysis, _ = shrink_to_long_side(pixels, t.analysis_long_side_px)
    # measurements the gates judge
    to_analysis = min(1.0, t.analysis_long_side_px / max(work_size))
    blur = float("nan")
    if source != "whole_frame":
        blur = film_edge_blur_px(_srgb_to_linear(work_gray), quad) * to_analysis
    if not np.isfinite(blur):
        blur = edge_blur_px(analysis)
    frame_h, frame_w = rgb.shape[:2]
    centre = np.array(
        [
            [0.2 * frame_w, 0.2 * frame_h],
            [0.8 * frame_w, 0.2 * frame_h],
            [0.8 * frame_w, 0.8 * frame_h],
            [0.2 * frame_w, 0.8 * frame_h],
        ],
        np.float32,
    )
    film_crop = _inner_crop(rgb, quad / work_scale)
    moire = max(
        moire_ratio(film_crop, t.moire_window_px),
        moire_ratio(_inner_crop(rgb, centre), t.moire_window_px),
    )
    fringe = colour_fringe(film_crop[: t.moire_window_px, : t.moire_window_px])
    measures = _Measures(
        clipped_film=float(clipped[inner].mean()),
        clipped_frame=float((work_gray >= t.clipped_level).mean()),
        glare_fraction=float(glare.sum()) / max(1, clipped[inner].size),
        glare_place=_glare_place(glare),
        blur_px=blur,
        moire=moire,
        fringe=fringe,
        tilt_deg=tilt,
        film_fraction=film_fraction,
    )
    gates = _photo_gates(radiograph, analysis, source, measures, t)
    return PhotoResult(
        radiograph=radiograph,
        corners=(quad / work_scale).astype(np.float32),
        corner_source=source,
        gates=gates,
        glare_mask=glare,
        tilt_deg=tilt,
        film_fraction=film_fraction,
    )


def _inner_crop(rgb: np.ndarray, quad: np.ndarray) -> np.ndarray:
    """The upright rectangle inside the film's quad, in the photo's own pixels."""
    x0 = max(quad[0, 0], quad[3, 0])
    x1 = min(quad[1, 0], quad[2, 0])
    y0 = max(quad[0, 1], quad[1, 1])
    y1 = min(quad[2, 1], quad[3, 1])
    if x1 - x0 < 16 or y1 - y0 < 16:
        return rgb[:0, :0]
    dx, dy = 0.05 * (x1 - x0), 0.05 * (y1 - y0)
    return rgb[int(y0 + dy) : int(y1 - dy), int(x0 + dx) : int(x1 - dx)]


def _glare_mask(clipped: np.ndarray, interior: np.ndarray) -> np.ndarray:
    mask = (clipped & interior).astype(np.uint8)
    mask = cv2.morphologyEx(mask, cv2.MORPH_OPEN, np.ones((3, 3), np.uint8))
    return mask.astype(bool)


@dataclass(frozen=True)
class _Measures:
    clipped_film: float
    clipped_frame: float
    glare_fraction: float
    glare_place: str
    blur_px: float
    moire: float
    fringe: float
    tilt_deg: float
    film_fraction: float


def _photo_gates(
    radiograph: Radiograph,
    analysis: np.ndarray,
    source: CornerSource,
    m: _Measures,
    t: PhotoThresholds,
) -> tuple[GateResult, ...]:
    gates: list[GateResult] = []
    if source == "whole_frame":
        gates.append(GateResult("film_found", "warn", "photo.no_film_found", source, None))
    else:
        gates.append(GateResult("film_found", "pass", "quality.ok", source, None))

    moire = _graded("moire", "photo.moire", m.moire, t.moire_fail_ratio, t.moire_fail_ratio)
    # colour fringes on an otherwise gray picture: a screen, even without a clean beat
    if (
        moire.verdict == "pass"
        and m.fringe > t.fringe_fail
        and m.fringe >= t.fringe_share_of_colour * radiograph.colourfulness
    ):
        moire = GateResult("moire", "fail", "photo.moire", round(m.fringe, 4), t.fringe_fail)
    document = radiograph_gate(radiograph, analysis, QualityThresholds(colour_fail=t.colour_fail))
    if document.verdict == "fail" and moire.verdict != "fail":
        # a monitor's colour fringes are the moire's doing, not a colour photograph's
        gates.append(
            GateResult("is_film", "fail", "photo.not_radiograph", document.measured, document.limit)
        )
    else:
        gates.append(
            GateResult(
                "is_film", "pass", "quality.ok", round(radiograph.colourfulness, 2), t.colour_fail
            )
        )
    gates.append(moire)

    # the film's own clipping, or a frame so blown out that the film cannot be told apart
    if m.clipped_frame > t.overexposed_frame_fraction:
        exposure = GateResult(
            "exposure",
            "fail",
            "photo.overexposed",
            round(m.clipped_frame, 4),
            t.overexposed_frame_fraction,
        )
    else:
        exposure = _graded(
            "exposure",
            "photo.overexposed",
            m.clipped_film,
            t.overexposed_warn_fraction,
            t.overexposed_fail_fraction,
        )
    gates.append(exposure)

    if exposure.verdict == "fail":
        # a blown-out photo is one problem, not many reflections
        gates.append(GateResult("glare", "pass", "quality.ok", round(m.glare_fraction, 4), None))
    else:
        gates.append(
            _graded(
                "glare",
                f"photo.glare_{m.glare_place}",
                m.glare_fraction,
                t.glare_warn_fraction,
                t.glare_fail_fraction,
            )
        )
    gates.append(_graded("blur", "photo.blurred", m.blur_px, t.blur_warn_px, t.blur_fail_px))
    gates.append(
        _graded(
            "perspective",
            "photo.perspective_steep",
            m.tilt_deg,
            t.perspective_warn_deg,
            t.perspective_fail_deg,
        )
    )
    if source == "whole_frame":
        gates.append(GateResult("film_size", "pass", "quality.ok", None, None))
    else:
        gates.append(
            _graded(
                "film_size",
                "photo.film_too_small",
                m.film_fraction,
                t.film_small_warn_fraction,
                t.film_small_fail_fraction,
                higher_is_worse=False,
            )
        )
    return tuple(gates)
