"""Open-loop arrival schedules, fixed in advance and seeded (docs/metrics.md: "Offered load")."""

from __future__ import annotations

import numpy as np


def schedule(count: int, rate: float, arrival: str, seed: int) -> np.ndarray:
    """Intended send offsets (s) of ``count`` requests at ``rate`` per second: constant gaps, or
    exponential gaps (a Poisson process) drawn from ``seed``."""
    if arrival == "constant":
        gaps = np.full(count, 1.0 / rate)
    else:
        gaps = np.random.default_rng(seed).exponential(1.0 / rate, count)
    offsets = np.cumsum(gaps)
    return offsets - offsets[0]
