"""Small fully-convolutional CNN for knee crops (multiple-instance by construction: the
prediction is the spatial average of per-location outputs, so it equals the mean of
patch-level predictions; the per-location map is the class-activation heatmap).

Training: random 128x128 patches from the 256x256 normalised knee crops (scale-normalised by
knee width), strong radiograph augmentation, multi-task loss (T-score regression + BCE for
T<=-1 and T<=-2.5). Inference: the full 256x256 crop.
"""

from __future__ import annotations

import math

import cv2
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

torch.set_num_threads(2)

PATCH = 128
EPOCHS = 30
PATCHES_PER_KNEE = 2
BATCH = 32
LR = 2e-3
WD = 1e-4


class KneeNet(nn.Module):
    def __init__(self, w=(16, 24, 32, 64, 64)):
        super().__init__()
        c = [1, *w]
        strides = [2, 2, 2, 2, 1]
        layers = []
        for i in range(5):
            layers += [
                nn.Conv2d(c[i], c[i + 1], 3, strides[i], 1, bias=False),
                nn.BatchNorm2d(c[i + 1]),
                nn.ReLU(inplace=True),
            ]
        self.features = nn.Sequential(*layers)
        self.head = nn.Conv2d(w[-1], 3, 1)  # channels: t_std, logit(T<=-1), logit(T<=-2.5)

    def forward(self, x):
        m = self.head(self.features(x))
        return m.mean((2, 3)), m


class ExportNet(nn.Module):
    """Wraps a trained KneeNet with de-standardisation + Platt calibration baked in.
    Outputs p_t_le_-1 [N], p_t_le_-2.5 [N], t_score [N], heatmap [N,h,w] (calibrated logit map
    for T<=-1: higher = more suggestive of low bone density)."""

    def __init__(self, net: KneeNet, t_mean, t_sd, platt1, platt25):
        super().__init__()
        self.net = net
        self.register_buffer(
            "aff_a", torch.tensor([t_sd, platt1[0], platt25[0]], dtype=torch.float32)
        )
        self.register_buffer(
            "aff_b", torch.tensor([t_mean, platt1[1], platt25[1]], dtype=torch.float32)
        )

    def forward(self, image):
        m = self.net.head(self.net.features(image))
        m = m * self.aff_a.view(1, 3, 1, 1) + self.aff_b.view(1, 3, 1, 1)
        o = m.mean((2, 3))
        return torch.sigmoid(o[:, 1]), torch.sigmoid(o[:, 2]), o[:, 0], m[:, 1]


def augment(img: np.ndarray, rng: np.random.Generator, patch: int = PATCH) -> np.ndarray:
    """img: float32 [256,256] in [0,1]. Random affine (scale 0.9-1.1, rotation +-8 deg), flip,
    patch crop centred in the central region, gamma, contrast/brightness, blur or
    down-up sampling (resolution change), Gaussian noise; renormalised by percentiles."""
    H, W = img.shape
    ang = rng.uniform(-8, 8)
    sc = rng.uniform(0.9, 1.1)
    cx, cy = rng.uniform(64, W - 64), rng.uniform(64, H - 64)
    M = cv2.getRotationMatrix2D((cx, cy), ang, sc)
    M[0, 2] += patch / 2 - cx
    M[1, 2] += patch / 2 - cy
    p = cv2.warpAffine(
        img, M, (patch, patch), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT
    )
    if rng.random() < 0.5:
        p = p[:, ::-1]
    r = rng.random()
    if r < 0.3:
        p = cv2.GaussianBlur(p, (0, 0), rng.uniform(0.5, 1.5))
    elif r < 0.6:
        f = rng.uniform(0.5, 0.9)
        small = cv2.resize(p, (max(8, int(patch * f)),) * 2, interpolation=cv2.INTER_AREA)
        p = cv2.resize(small, (patch, patch), interpolation=cv2.INTER_LINEAR)
    p = np.clip(p, 0, 1) ** rng.uniform(0.6, 1.6)
    p = p * rng.uniform(0.8, 1.2) + rng.uniform(-0.1, 0.1)
    p = p + rng.normal(0, rng.uniform(0, 0.03), p.shape)
    lo, hi = np.percentile(p, [1, 99])
    return np.clip((p - lo) / max(hi - lo, 1e-6), 0, 1).astype(np.float32)


def fit(
    net: nn.Module,
    crops: np.ndarray,
    batch_loss,
    rng: np.random.Generator,
    epochs: int = EPOCHS,
    log=None,
) -> nn.Module:
    """The training loop every knee head shares: each epoch PATCHES_PER_KNEE augmented random
    patches per knee, AdamW with a one-cycle schedule. ``batch_loss(outputs, indices)`` gives
    the loss of one batch from the network's pooled outputs and the crops' indices."""
    opt = torch.optim.AdamW(net.parameters(), lr=LR, weight_decay=WD)
    n_steps = epochs * math.ceil(len(crops) * PATCHES_PER_KNEE / BATCH)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=LR, total_steps=n_steps)
    net.train()
    for ep in range(epochs):
        idx = np.concatenate([rng.permutation(len(crops)) for _ in range(PATCHES_PER_KNEE)])
        tot = 0.0
        for b0 in range(0, len(idx), BATCH):
            bi = idx[b0 : b0 + BATCH]
            x = torch.from_numpy(np.stack([augment(crops[i], rng) for i in bi])[:, None])
            o, _ = net(x)
            loss = batch_loss(o, bi)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            tot += float(loss.detach()) * len(bi)
        if log and (ep % 10 == 9 or ep == epochs - 1):
            log(f"  epoch {ep + 1}: loss {tot / len(idx):.3f}")
    net.eval()
    return net


@torch.no_grad()
def pooled_outputs(net: nn.Module, crops: np.ndarray, batch: int = 32) -> np.ndarray:
    """The network's pooled outputs for full crops, in batches."""
    net.eval()
    out = []
    for b0 in range(0, len(crops), batch):
        o, _ = net(torch.from_numpy(crops[b0 : b0 + batch][:, None].astype(np.float32)))
        out.append(o.numpy())
    return np.concatenate(out)


def train(
    crops: np.ndarray,
    t: np.ndarray,
    seed: int,
    epochs: int = EPOCHS,
    log=None,
    init_features: dict | None = None,
) -> tuple[KneeNet, dict]:
    """crops: [K,256,256] float32, t: [K] T-scores (per knee; patient label repeated).
    init_features: optional KneeNet.features state dict (self-supervised pretraining,
    tools/ssl_pretrain.py) loaded before fine-tuning; the head starts from scratch."""
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    t_mean, t_sd = float(t.mean()), float(t.std())
    net = KneeNet()
    if init_features is not None:
        net.features.load_state_dict(init_features)
    y1 = (t <= -1).astype(np.float32)
    y25 = (t <= -2.5).astype(np.float32)
    pw1 = torch.tensor(max((1 - y1).sum(), 1) / max(y1.sum(), 1))
    pw25 = torch.tensor(max((1 - y25).sum(), 1) / max(y25.sum(), 1))

    def batch_loss(o, bi):
        ts = torch.from_numpy(((t[bi] - t_mean) / t_sd).astype(np.float32))
        return (
            F.mse_loss(o[:, 0], ts)
            + F.binary_cross_entropy_with_logits(o[:, 1], torch.from_numpy(y1[bi]), pos_weight=pw1)
            + F.binary_cross_entropy_with_logits(
                o[:, 2], torch.from_numpy(y25[bi]), pos_weight=pw25
            )
        )

    fit(net, crops, batch_loss, rng, epochs, log)
    return net, {"t_mean": t_mean, "t_sd": t_sd}


def predict(net: KneeNet, crops: np.ndarray, norm: dict, batch: int = 32) -> np.ndarray:
    """Returns [K,3]: t_score (de-standardised), logit1, logit25 from full crops."""
    o = pooled_outputs(net, crops, batch)
    o[:, 0] = o[:, 0] * norm["t_sd"] + norm["t_mean"]
    return o


def macs(net: nn.Module, size=256) -> int:
    total = 0
    h = size
    for m in net.modules():
        if isinstance(m, nn.Conv2d):
            h = (h + 2 * m.padding[0] - m.kernel_size[0]) // m.stride[0] + 1
            total += (
                h
                * h
                * m.out_channels
                * m.in_channels
                * m.kernel_size[0]
                * m.kernel_size[1]
                // m.groups
            )
    return total
