"""Confidence intervals (scipy)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray
from scipy import stats


def bootstrap_ci(
    values: Sequence[float] | NDArray[np.floating[Any]], confidence: float = 0.95, seed: int = 0
) -> tuple[float, float]:
    """Percentile bootstrap CI of the mean over questions (``scipy.stats.bootstrap``): of
    per-question accuracies, or of per-question differences for a paired comparison.

    Degenerate samples (fewer than two questions, or all equal) give a zero-width interval.
    """
    arr = np.asarray(values, dtype=float)
    if arr.size < 2 or np.all(arr == arr[0]):
        m = float(arr.mean()) if arr.size else float("nan")
        return m, m
    res = stats.bootstrap(
        (arr,),
        np.mean,
        confidence_level=confidence,
        n_resamples=2000,
        method="percentile",
        rng=np.random.default_rng(seed),
    )
    return float(res.confidence_interval.low), float(res.confidence_interval.high)
