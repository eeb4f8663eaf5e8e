"""Heatmaps placed back on the image: the crop's border is not where the page says hottest."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from edgeosteo.imaging import heatmap_png
from edgeosteo.preprocess import HEATMAP_BORDER, Region, heatmap_on_image, quiet_border


def _border_hot_map(size: int = 16) -> np.ndarray:
    """What the knee model's 16 x 16 maps look like: its two top rows hottest (zero padding
    read by the network), a cold right column, and a milder bump where the joint is."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    centre = (size - 1) / 2
    bump = 0.8 * np.exp(-((yy - centre) ** 2 + (xx - centre * 0.8) ** 2) / (2 * (size / 8) ** 2))
    heatmap = bump - 0.5
    heatmap[0, :], heatmap[1, :] = 3.7, 1.7
    heatmap[:, -2] = -1.0
    return heatmap


def _margin(side: int) -> int:
    """The crop's border band, in display pixels, that quiet_border keeps cold."""
    return round(side * HEATMAP_BORDER)


def _on_border(index: tuple[int, int], box: tuple[int, int, int, int], margin: int) -> bool:
    y, x = index
    y0, x0, y1, x1 = box
    return min(y - y0, y1 - 1 - y, x - x0, x1 - 1 - x) < margin


def _hottest(values: np.ndarray) -> tuple[int, int]:
    return tuple(int(i) for i in np.unravel_index(int(np.nanargmax(values)), values.shape))


def test_untouched_the_synthetic_maps_are_hottest_on_the_crop_border():
    """The artefact is there to remove: upsampled as it was, the maximum is on the edge."""
    patch = cv2.resize(_border_hot_map(), (200, 200), interpolation=cv2.INTER_LINEAR)
    assert _hottest(patch)[0] < 13


def test_the_hottest_point_of_a_crop_is_inside_it_not_on_its_border():
    # two knee crops of 400 px in a 900 x 1200 image, drawn at 600 px long side (scale 0.5)
    regions = (Region(100.0, 200.0, 400.0), Region(650.0, 250.0, 400.0))
    maps = np.stack([_border_hot_map(), _border_hot_map()[:, ::-1]])
    canvas = heatmap_on_image(maps, regions, (900, 1200), 600)
    assert canvas.shape == (450, 600)
    for region in regions:
        x0, y0 = round(region.x0 / 2), round(region.y0 / 2)
        box = (y0, x0, y0 + 200, x0 + 200)
        patch = canvas[box[0] : box[2], box[1] : box[3]]
        assert np.isfinite(patch).all()
        hottest = _hottest(patch)
        assert not _on_border((hottest[0] + y0, hottest[1] + x0), box, _margin(200)), hottest
        # the border band is the crop's coldest value, so the overlay is clear there
        assert patch[: _margin(200) - 6, :].max() == pytest.approx(patch.min())
        assert patch[:, -(_margin(200) - 6) :].max() == pytest.approx(patch.min())
        # and the joint's bump is still where the model put it
        assert abs(hottest[0] - 100) <= 8
    assert np.isnan(canvas[0, 0])  # outside every crop: not looked at


def test_the_overlay_is_clear_at_the_crop_border_and_strongest_inside():
    canvas = heatmap_on_image(_border_hot_map()[None], (Region(0.0, 0.0, 512.0),), (512, 512), 512)
    decoded = cv2.imdecode(np.frombuffer(heatmap_png(canvas, (512, 512)), np.uint8), -1)
    alpha = decoded[:, :, 3]
    assert alpha[:40, :].max() == 0 and alpha[:, :40].max() == 0 and alpha[:, -40:].max() == 0
    assert not _on_border(_hottest(alpha), (0, 0, 512, 512), _margin(512))


def test_quiet_border_keeps_the_inside_nan_and_small_maps():
    heatmap = _border_hot_map()
    quiet = quiet_border(heatmap)
    assert np.array_equal(quiet[2:-2, 2:-2], heatmap[2:-2, 2:-2])
    assert (quiet[:2] == heatmap[2:-2, 2:-2].min()).all()
    assert np.array_equal(quiet_border(heatmap, 0.0), heatmap)
    blank = np.full((16, 16), np.nan, np.float32)
    assert np.isnan(quiet_border(blank)).all()
    tiny = np.arange(4, dtype=np.float32).reshape(2, 2)
    assert np.array_equal(quiet_border(tiny), tiny)  # nothing would be left inside
    assert heatmap[0, 0] == 3.7  # the model's output itself is left as it was
