"""DeepConf's trace confidences (Fu et al. 2025, "Deep Think with Confidence"; repository
facebookresearch/deepconf), from the per-token confidences backends record.

A token's confidence is minus the mean of the top-k log-probabilities at that position
(``Candidate.confidences``). A trace's *group confidences* are the means of a sliding window
of ``window`` tokens (a trace shorter than the window has one group: all its tokens). Its
measures: ``mean`` (all tokens), ``tail`` (the last ``tail`` tokens), ``lowest`` (the
smallest group) and ``bottom`` (the mean of the lowest 10% of groups, at least one: the
paper's bottom-10% group confidence). A trace with no tokens measures 0.0.

Confidences are thousandths (DeepConf rounds them so, and traces store them so); sums are
taken exactly in integer thousandths, so that equal windows compare equal and no decision
hangs on the order of a floating-point sum. Pure functions: the DeepConf strategies read
them, and so may a difficulty estimator.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray

from ttc_eval.types import CONFIDENCE_DECIMALS

MEASURES = ("mean", "bottom", "lowest", "tail")
"""Trace confidence measures, as ``deepconf_offline:measure=`` names them."""

BOTTOM_SHARE = 0.1
"""The share of lowest groups the ``bottom`` measure averages (the paper's 10%)."""

_SCALE = 10**CONFIDENCE_DECIMALS


def _milli(confidences: Sequence[float]) -> NDArray[np.int64]:
    scaled = np.asarray(confidences, dtype=np.float64) * _SCALE
    milli: NDArray[np.int64] = np.rint(scaled).astype(np.int64)
    return milli


def _mean(total: int, count: int) -> float:
    # An integer sum over an integer count: one correctly rounded division.
    return total / (_SCALE * count) if count else 0.0


def _window_sums(milli: NDArray[np.int64], window: int) -> NDArray[np.int64]:
    """Sum of each window of ``window`` tokens (``len(milli) >= window``), the window ending
    at token ``window - 1`` first."""
    running = np.concatenate((np.zeros(1, dtype=np.int64), np.cumsum(milli)))
    sums: NDArray[np.int64] = running[window:] - running[:-window]
    return sums


def _check_window(window: int) -> None:
    if window < 1:
        raise ValueError(f"window must be at least 1, got {window}")


def group_confidences(confidences: Sequence[float], window: int) -> list[float]:
    """DeepConf's group confidences: the mean of each window of ``window`` consecutive
    tokens, in order; a trace shorter than the window has one group, its mean (0.0 for no
    tokens)."""
    _check_window(window)
    m = _milli(confidences)
    if len(m) < window:
        return [_mean(int(m.sum()), len(m))]
    return [float(x) for x in _window_sums(m, window) / (_SCALE * window)]


def mean_confidence(confidences: Sequence[float]) -> float:
    """The mean token confidence of a trace (0.0 for no tokens)."""
    m = _milli(confidences)
    return _mean(int(m.sum()), len(m))


def tail_confidence(confidences: Sequence[float], tail: int = 2048) -> float:
    """The mean confidence of the last ``tail`` tokens (all of them in a shorter trace)."""
    return mean_confidence(confidences[-tail:] if tail < len(confidences) else confidences)


def bottom_confidence(
    confidences: Sequence[float], window: int = 2048, share: float = BOTTOM_SHARE
) -> float:
    """The mean of the lowest ``share`` of the group confidences, at least one group (a
    trace shorter than the window: its mean)."""
    _check_window(window)
    m = _milli(confidences)
    if len(m) < window:
        return _mean(int(m.sum()), len(m))
    sums = _window_sums(m, window)
    k = max(1, int(len(sums) * share))  # DeepConf's count, truncated as it truncates it
    return _mean(int(np.partition(sums, k - 1)[:k].sum()), k * window)


def lowest_confidence(confidences: Sequence[float], window: int = 2048) -> float:
    """The lowest group confidence (a trace shorter than the window: its mean)."""
    _check_window(window)
    m = _milli(confidences)
    if len(m) < window:
        return _mean(int(m.sum()), len(m))
    return _mean(int(_window_sums(m, window).min()), window)


def trace_confidence(
    confidences: Sequence[float], measure: str, window: int = 2048, tail: int = 2048
) -> float:
    """A trace's confidence by the measure named ``measure`` (one of :data:`MEASURES`)."""
    if measure == "mean":
        return mean_confidence(confidences)
    if measure == "tail":
        return tail_confidence(confidences, tail)
    if measure == "bottom":
        return bottom_confidence(confidences, window)
    if measure == "lowest":
        return lowest_confidence(confidences, window)
    raise ValueError(f"unknown confidence measure {measure!r}; one of {', '.join(MEASURES)}")


def stop_position(confidences: Sequence[float], window: int, threshold: float) -> int | None:
    """Tokens an online trace generates before it is stopped: up to and including the first
    token where the window ending there falls below ``threshold`` (a trace shorter than the
    window: checked once, its mean at its end); ``None`` when it never falls below."""
    _check_window(window)
    m = _milli(confidences)
    if len(m) < window:
        return len(m) if _mean(int(m.sum()), len(m)) < threshold else None
    below = np.flatnonzero(_window_sums(m, window) / (_SCALE * window) < threshold)
    # Window j covers tokens j .. j + window - 1: stopped at its last token.
    return int(below[0]) + window if below.size else None
