"""Fast checks of the issue #3 research tools: the ordinal (cumulative-link) head of
tools/knee_ordinal.py and the self-supervised pretraining of tools/ssl_pretrain.py."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))

import knee_cnn  # noqa: E402
import knee_ordinal  # noqa: E402
import ssl_pretrain  # noqa: E402


def _gratings(n: int, size: int = 256, seed: int = 0) -> np.ndarray:
    """n distinct textures (oriented sinusoidal gratings of different period + noise)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size].astype(np.float32)
    out = []
    for i in range(n):
        ang = np.pi * i / n
        period = 4 + 3 * (i % 5)
        g = np.sin((np.cos(ang) * xx + np.sin(ang) * yy) * 2 * np.pi / period)
        g = 0.5 + 0.35 * g + rng.normal(0, 0.05, g.shape)
        out.append(np.clip(g, 0, 1))
    return np.stack(out).astype(np.float32)


def test_ordinal_bands():
    t = np.array([0.5, -1.0, -1.01, -2.5, -3.0])
    assert knee_ordinal.band(t).tolist() == [0, 1, 1, 2, 2]


def test_ordinal_cumulative_probabilities_are_monotone():
    torch.manual_seed(0)
    net = knee_ordinal.OrdinalKneeNet().eval()
    with torch.no_grad():
        net.delta.fill_(-20.0)  # thresholds nearly tied: still ordered
        x = torch.rand(6, 1, 64, 64)
        cum, m = net(x)
    assert cum.shape == (6, 2) and m.shape[1] == 1
    assert torch.all(cum[:, 1] <= cum[:, 0])
    th = net.thresholds().detach()
    assert th[1] >= th[0]


def test_ordinal_train_and_predict_monotone():
    crops = _gratings(6, size=128)
    t = np.array([0.2, -0.5, -1.5, -2.0, -2.8, -3.1])
    net = knee_ordinal.train(crops, t, seed=1, epochs=1)
    p = knee_ordinal.predict(net, crops)
    assert p.shape == (6, 2)
    assert np.all(np.isfinite(p)) and np.all(p[:, 1] <= p[:, 0])


def test_coral_loss_prefers_correct_order():
    b = torch.tensor([0, 1, 2])
    pw = torch.ones(2)
    good = torch.tensor([[-5.0, -9.0], [5.0, -5.0], [9.0, 5.0]])
    bad = -good
    assert knee_ordinal.coral_loss(good, b, pw) < knee_ordinal.coral_loss(bad, b, pw)


def test_nt_xent_rewards_matching_views():
    torch.manual_seed(0)
    z = torch.randn(8, 16)
    matched = ssl_pretrain.nt_xent(z, z + 0.01 * torch.randn(8, 16))
    shuffled = ssl_pretrain.nt_xent(z, z[torch.randperm(8)])
    assert matched < shuffled


def test_ssl_loss_decreases_and_features_load_into_kneenet():
    pool = _gratings(12, size=128)
    state, info = ssl_pretrain.pretrain(pool, seed=0, steps=30, batch=12, view=32)
    assert info["loss_last"] < info["loss_first"]
    net, norm = knee_cnn.train(
        pool[:4], np.array([0.0, -1.0, -2.0, -3.0]), seed=0, epochs=1, init_features=state
    )
    assert knee_cnn.predict(net, pool[:2], norm).shape == (2, 3)
    emb = ssl_pretrain.embed_crops(state, pool[:3])
    assert emb.shape == (3, 64) and np.all(np.isfinite(emb))


def test_public_windows_reject_background():
    g = np.zeros((700, 700), np.float32)  # air everywhere except a textured block
    g[100:600, 100:600] = _gratings(1, 500)[0]
    img = ssl_pretrain.PublicImage(
        name="x",
        package="test",
        modality="CR",
        body_part=None,
        spacing_mm=0.5,
        spacing_assumed=False,
        files=["x"],
        pixels=g,
        shape=g.shape,
        thumb=np.zeros(1),
    )
    w, names = ssl_pretrain.public_windows([img], per_image=5, seed=0)
    assert w.shape == (5, 256, 256) and list(names) == ["x"] * 5
    assert w.min() >= 0 and w.max() <= 1
    assert all(np.mean(x <= 0.0) < 0.5 for x in w)
