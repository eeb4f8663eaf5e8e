"""The hub's drift tests (edgeosteo.hub.outcomes): their false-alarm rate when nothing
changed and their power for a set change, simulated (the figures in docs/sync.md).

    PYTHONPATH=. python tools/drift_power.py
"""

from __future__ import annotations

import random

from edgeosteo.hub.outcomes import (
    DRIFT_P_VALUE,
    DRIFT_RATE_CHANGE,
    score_moved,
    two_proportion_p,
)

DRAWS = 2000
rng = random.Random(20)


def osta(heavier: float = 0.0) -> int:
    """An OSTA-like index: (weight - age) x 0.2 truncated, 50-90 years, 40-80 kg."""
    return int((rng.uniform(40, 80) + heavier - rng.uniform(50, 90)) * 0.2)


def score_flag(n: int, heavier: float) -> bool:
    return score_moved([osta() for _ in range(n)], [osta(heavier) for _ in range(n)])[0]


def rate_flag(n: int, rate_before: float, rate_after: float) -> bool:
    k1 = sum(rng.random() < rate_before for _ in range(n))
    k2 = sum(rng.random() < rate_after for _ in range(n))
    return (
        two_proportion_p(k1, n, k2, n) < DRIFT_P_VALUE and abs(k1 / n - k2 / n) >= DRIFT_RATE_CHANGE
    )


def share(flag, *args) -> float:
    return sum(flag(*args) for _ in range(DRAWS)) / DRAWS


def main() -> None:
    print(
        "| cases each side | score: false alarm | score: OSTA +2 "
        "| rate: false alarm | rate: 50 -> 30 % |"
    )
    print("| --- | --- | --- | --- | --- |")
    for n in (30, 60, 100, 300):
        print(
            f"| {n} | {share(score_flag, n, 0.0):.3f} | {share(score_flag, n, 10.0):.3f} "
            f"| {share(rate_flag, n, 0.5, 0.5):.3f} | {share(rate_flag, n, 0.5, 0.3):.3f} |"
        )


if __name__ == "__main__":
    main()
