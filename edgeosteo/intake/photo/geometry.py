"""Finding the film in a photo: its four corners, their order, and the plane they outline.

Corners are (x, y) in the pixels of the photo as the phone shows it (EXIF orientation
applied), ordered top-left, top-right, bottom-right, bottom-left.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Literal

import cv2
import numpy as np

from edgeosteo.config import PhotoThresholds
from edgeosteo.errors import IntakeError
from edgeosteo.intake.pixels import shrink_to_long_side


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


def sample_bilinear(image: np.ndarray, xy: np.ndarray) -> np.ndarray:
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
            profile = sample_bilinear(image, grid)
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
            outside = sample_bilinear(image, foot + 4.0 * n)
            inside = sample_bilinear(image, foot - 4.0 * n)
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


def refine_user_corners(gray: np.ndarray, corners: np.ndarray, t: PhotoThresholds):
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


def check_placed(quad: np.ndarray, frame: tuple[int, int]) -> None:
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
