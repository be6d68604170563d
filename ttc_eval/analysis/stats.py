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


_FORK_VALUES = 200_000
"""Values (all samples together) from which :func:`bootstrap_cis` shares its work among
processes: below, forking costs more than it saves."""


def bootstrap_cis(
    samples: Sequence[Sequence[float]], confidence: float = 0.95, seed: int = 0
) -> list[tuple[float, float]]:
    """:func:`bootstrap_ci` of each sample, the very same numbers (each interval has its own
    seeded stream), computed in forked processes side by side when there are many (a large
    report has thousands of rows, two milliseconds each)."""
    from ttc_eval._forked import MAX_PROCESSES, fork_map, usable_cpus

    if sum(len(s) for s in samples) < _FORK_VALUES:
        return _cis(samples, confidence, seed)
    parts = max(1, min(usable_cpus(), MAX_PROCESSES))
    step = -(-len(samples) // parts)
    chunks = [samples[i : i + step] for i in range(0, len(samples), step)]
    made = fork_map([(_cis, (chunk, confidence, seed)) for chunk in chunks])
    return [ci for part in made for ci in part]


def _cis(
    samples: Sequence[Sequence[float]], confidence: float, seed: int
) -> list[tuple[float, float]]:
    return [bootstrap_ci(s, confidence, seed) for s in samples]
