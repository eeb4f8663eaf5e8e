"""Ranking metrics shared by the decision's recalibration, `edgeosteo evaluate` and the
training tools: one AUC."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def auc(scores: Sequence[float] | np.ndarray, labels: Sequence[bool] | np.ndarray) -> float:
    """Area under the ROC curve by ranks (Mann-Whitney U), ties counted as one half; higher
    scores mean positive. NaN when either class is absent."""
    values = np.asarray(scores, dtype=float)
    positive = np.asarray(labels).astype(bool)
    if values.shape != positive.shape:
        raise ValueError("scores and labels differ in length")
    n_pos = int(positive.sum())
    n_neg = positive.size - n_pos
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    _, inverse, counts = np.unique(values, return_inverse=True, return_counts=True)
    last = np.cumsum(counts)
    ranks = ((last - counts + 1 + last) / 2.0)[inverse]
    return float((ranks[positive].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))
