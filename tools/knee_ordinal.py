"""Ordinal (cumulative-link, CORAL-style) variant of the knee CNN.

Three ordered WHO bands of the T-score: 0 normal (T > -1), 1 osteopenia (-2.5 < T <= -1),
2 osteoporosis (T <= -2.5). The network is KneeNet with a 1-channel head: one shared
"low bone density" score s (spatial mean of the per-location map, multiple-instance as in
knee_cnn) and two ordered thresholds theta_1 < theta_2 (theta_2 = theta_1 + softplus(delta)),
so the cumulative probabilities P(band >= k) = sigmoid(s - theta_k) are monotone by
construction: P(T <= -2.5) <= P(T <= -1) for every input.
Loss (CORAL): sum over k of the binary cross-entropy of P(band >= k), each task
class-balanced with pos_weight as in knee_cnn's classification heads. Same backbone, patch
size, augmentation, optimiser, schedule and epochs as knee_cnn.train, so the comparison with
cnn_cls / cnn_reg isolates the output head and loss.
"""

from __future__ import annotations

import knee_cnn
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

torch.set_num_threads(2)

THRESHOLDS = (-1.0, -2.5)  # band >= 1 <=> T <= -1; band >= 2 <=> T <= -2.5


def band(t: np.ndarray) -> np.ndarray:
    return np.where(t <= THRESHOLDS[1], 2, np.where(t <= THRESHOLDS[0], 1, 0))


class OrdinalKneeNet(nn.Module):
    def __init__(self):
        super().__init__()
        base = knee_cnn.KneeNet()
        self.features = base.features
        self.head = nn.Conv2d(base.head.in_channels, 1, 1)
        self.theta1 = nn.Parameter(torch.zeros(()))
        self.delta = nn.Parameter(torch.zeros(()))

    def thresholds(self) -> torch.Tensor:
        return torch.stack([self.theta1, self.theta1 + F.softplus(self.delta)])

    def forward(self, x):
        """Returns cumulative logits [N,2] (logit P(T<=-1), logit P(T<=-2.5)) and the
        score map [N,1,h,w]."""
        m = self.head(self.features(x))
        s = m.mean((2, 3))  # [N,1]
        return s - self.thresholds().view(1, 2), m


def coral_loss(cum_logits: torch.Tensor, b: torch.Tensor, pos_weight: torch.Tensor):
    """cum_logits [N,2], b [N] integer bands, pos_weight [2]."""
    target = torch.stack([(b >= 1), (b >= 2)], 1).float()
    return sum(
        F.binary_cross_entropy_with_logits(cum_logits[:, k], target[:, k], pos_weight=pos_weight[k])
        for k in range(2)
    )


def train(
    crops: np.ndarray, t: np.ndarray, seed: int, epochs: int = knee_cnn.EPOCHS, log=None
) -> OrdinalKneeNet:
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    net = OrdinalKneeNet()
    b = band(t)
    pw = torch.tensor(
        [max((b < k).sum(), 1) / max((b >= k).sum(), 1) for k in (1, 2)], dtype=torch.float32
    )
    knee_cnn.fit(
        net, crops, lambda o, bi: coral_loss(o, torch.from_numpy(b[bi]), pw), rng, epochs, log
    )
    return net


def predict(net: OrdinalKneeNet, crops: np.ndarray, batch: int = 32) -> np.ndarray:
    """[K,2] cumulative logits (logit P(T<=-1), logit P(T<=-2.5)) from full crops."""
    return knee_cnn.pooled_outputs(net, crops, batch)
