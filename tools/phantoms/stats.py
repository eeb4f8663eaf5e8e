"""The figures a measurement card reports: errors, repeatability and refusals, with CIs."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def bootstrap_ci(
    values: Sequence[float], statistic, seed: int = 0, n_boot: int = 1000, level: float = 0.95
) -> tuple[float, float]:
    """Percentile bootstrap confidence interval of ``statistic`` over ``values``."""
    v = np.asarray(values, dtype=np.float64)
    rng = np.random.default_rng(seed)
    stats = [float(statistic(v[rng.integers(0, len(v), len(v))])) for _ in range(n_boot)]
    alpha = (1 - level) / 2
    return float(np.quantile(stats, alpha)), float(np.quantile(stats, 1 - alpha))


def error_summary(errors: Sequence[float], seed: int = 0) -> dict[str, float | int | list[float]]:
    """Median and 95th percentile of absolute errors, each with a bootstrap 95 % CI."""
    a = np.abs(np.asarray(errors, dtype=np.float64))
    return {
        "n": len(a),
        "median_abs_error": float(np.median(a)),
        "median_abs_error_ci95": list(bootstrap_ci(a, np.median, seed)),
        "p95_abs_error": float(np.quantile(a, 0.95)),
        "p95_abs_error_ci95": list(bootstrap_ci(a, lambda x: np.quantile(x, 0.95), seed)),
        "mean_error": float(np.mean(np.asarray(errors, dtype=np.float64))),
    }


def icc_a1(measurements: np.ndarray) -> float:
    """ICC(A,1), two-way random effects, absolute agreement, single measurement (McGraw &
    Wong 1996), for an (n subjects x k repeats) array."""
    x = np.asarray(measurements, dtype=np.float64)
    n, k = x.shape
    grand = x.mean()
    ms_rows = k * np.sum((x.mean(axis=1) - grand) ** 2) / (n - 1)
    ms_cols = n * np.sum((x.mean(axis=0) - grand) ** 2) / (k - 1)
    ss_err = np.sum(
        (x - x.mean(axis=1, keepdims=True) - x.mean(axis=0, keepdims=True) + grand) ** 2
    )
    ms_err = ss_err / ((n - 1) * (k - 1))
    return float((ms_rows - ms_err) / (ms_rows + (k - 1) * ms_err + k * (ms_cols - ms_err) / n))


def repeatability(measurements: np.ndarray, seed: int = 0) -> dict[str, float | int | list[float]]:
    """Within-phantom SD (root mean of the per-phantom variances) and ICC(A,1), with
    bootstrap CIs over phantoms, for an (n phantoms x k re-tapped repeats) array."""
    x = np.asarray(measurements, dtype=np.float64)
    rng = np.random.default_rng(seed)

    def within_sd(rows: np.ndarray) -> float:
        return float(np.sqrt(np.mean(np.var(rows, axis=1, ddof=1))))

    boots_sd, boots_icc = [], []
    for _ in range(500):
        idx = rng.integers(0, len(x), len(x))
        boots_sd.append(within_sd(x[idx]))
        boots_icc.append(icc_a1(x[idx]))
    return {
        "n_phantoms": int(x.shape[0]),
        "repeats": int(x.shape[1]),
        "within_sd": within_sd(x),
        "within_sd_ci95": [
            float(np.quantile(boots_sd, 0.025)),
            float(np.quantile(boots_sd, 0.975)),
        ],
        "icc_a1": icc_a1(x),
        "icc_a1_ci95": [float(np.quantile(boots_icc, 0.025)), float(np.quantile(boots_icc, 0.975))],
    }


def wilson_ci(successes: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """Wilson score interval of a proportion."""
    if n == 0:
        return (0.0, 1.0)
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return (float(max(0.0, centre - half)), float(min(1.0, centre + half)))


def weighted_kappa(a: Sequence[int], b: Sequence[int], categories: int) -> float:
    """Linearly weighted Cohen's kappa between two gradings on 0..categories-1."""
    observed = np.zeros((categories, categories))
    for i, j in zip(a, b, strict=True):
        observed[i, j] += 1
    observed /= observed.sum()
    expected = np.outer(observed.sum(axis=1), observed.sum(axis=0))
    idx = np.arange(categories)
    weights = np.abs(idx[:, None] - idx[None, :]) / max(categories - 1, 1)
    denominator = float((weights * expected).sum())
    return 1.0 - float((weights * observed).sum()) / denominator if denominator else 1.0
