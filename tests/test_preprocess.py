"""Heatmaps placed back on the image: the crop's border is not where the page says hottest."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from edgeosteo.imaging import heatmap_png
from edgeosteo.preprocess import HEATMAP_BORDER_TAPER, Region, heatmap_on_image, taper_border


def _border_hot_map(size: int = 64) -> np.ndarray:
    """What the knee model's maps look like: a hot band on the crop's edge (zero padding,
    then upsampling) around a milder bump where the joint is."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    centre = (size - 1) / 2
    bump = 0.6 * np.exp(-((yy - centre) ** 2 + (xx - centre * 0.8) ** 2) / (2 * (size / 8) ** 2))
    heatmap = bump - 0.5
    heatmap[:3, :] = heatmap[-3:, :] = heatmap[:, :3] = heatmap[:, -3:] = 1.0
    return heatmap


def _on_border(index: tuple[int, int], box: tuple[int, int, int, int], margin: int) -> bool:
    y, x = index
    y0, x0, y1, x1 = box
    return min(y - y0, y1 - 1 - y, x - x0, x1 - 1 - x) < margin


def test_the_hottest_point_of_a_crop_is_inside_it_not_on_its_border():
    # two knee crops of 400 px in a 900 x 1200 image, drawn at 600 px long side (scale 0.5)
    regions = (Region(100.0, 200.0, 400.0), Region(650.0, 250.0, 400.0))
    maps = np.stack([_border_hot_map(), _border_hot_map()[:, ::-1]])
    canvas = heatmap_on_image(maps, regions, (900, 1200), 600)
    assert canvas.shape == (450, 600)
    margin = round(200 * HEATMAP_BORDER_TAPER)
    for region in regions:
        x0, y0 = round(region.x0 / 2), round(region.y0 / 2)
        box = (y0, x0, y0 + 200, x0 + 200)
        patch = canvas[box[0] : box[2], box[1] : box[3]]
        assert np.isfinite(patch).all()
        hottest = np.unravel_index(int(np.argmax(patch)), patch.shape)
        assert not _on_border((hottest[0] + y0, hottest[1] + x0), box, margin), hottest
        # the edge itself is the crop's coldest value, so the overlay is clear there
        assert patch[0, :].max() == pytest.approx(patch.min())
        assert patch[:, -1].max() == pytest.approx(patch.min())
        # and the joint's bump is still where the model put it
        assert abs(hottest[0] - 100) <= 6
    assert np.isnan(canvas[0, 0])  # outside every crop: not looked at


def test_without_the_taper_the_border_would_be_hottest():
    """The synthetic map does have the artefact: untapered, its maximum is on the edge."""
    patch = cv2.resize(_border_hot_map(), (200, 200), interpolation=cv2.INTER_LINEAR)
    hottest = np.unravel_index(int(np.argmax(patch)), patch.shape)
    assert _on_border(hottest, (0, 0, 200, 200), 3)
    tapered = taper_border(patch)
    hottest = np.unravel_index(int(np.argmax(tapered)), tapered.shape)
    assert not _on_border(hottest, (0, 0, 200, 200), round(200 * HEATMAP_BORDER_TAPER))


def test_the_overlay_is_clear_at_the_crop_border_and_strongest_inside():
    regions = (Region(0.0, 0.0, 512.0),)
    canvas = heatmap_on_image(_border_hot_map()[None], regions, (512, 512), 512)
    decoded = cv2.imdecode(np.frombuffer(heatmap_png(canvas, (512, 512)), np.uint8), -1)
    alpha = decoded[:, :, 3]
    assert alpha[0, :].max() == 0 and alpha[:, 0].max() == 0
    hottest = np.unravel_index(int(np.argmax(alpha)), alpha.shape)
    assert not _on_border(hottest, (0, 0, 512, 512), round(512 * HEATMAP_BORDER_TAPER))


def test_taper_keeps_nan_and_a_flat_map():
    flat = np.full((10, 10), 0.3, np.float32)
    assert np.allclose(taper_border(flat), 0.3)
    blank = np.full((10, 10), np.nan, np.float32)
    assert np.isnan(taper_border(blank)).all()
