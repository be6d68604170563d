"""Strategies ``deepconf_offline`` and ``deepconf_online``: DeepConf (Fu et al. 2025, "Deep
Think with Confidence"; repository facebookresearch/deepconf), voting weighted and filtered
by the model's own token confidences.

A token's confidence is minus the mean of the top-k log-probabilities at that position
(``Candidate.confidences``, recorded by the backend). A trace's *group confidences* are the
means of a sliding window of ``window`` tokens (a trace shorter than the window has one group:
all its tokens). Its measures: ``mean`` (all tokens), ``tail`` (the last ``tail`` tokens),
``lowest`` (the smallest group) and ``bottom`` (the mean of the lowest 10% of groups, at
least one: the paper's bottom-10% group confidence). A trace with no tokens measures 0.0.

- ``deepconf_offline`` reads every trace of a group; among those with an answer it keeps the
  ``keep`` percent of highest measure (at or above the ``100 - keep`` percentile, numpy's
  linear interpolation) and takes the vote weighted by the measure.
- ``deepconf_online`` (the paper's Algorithm 2) reads the first ``n_init`` traces in full;
  their lowest group confidences set the threshold s (their ``100 - keep`` percentile).
  Each later trace, in pool order, is stopped at the first token whose window (the one
  ending there) falls below s (a trace shorter than the window: checked once, by its mean,
  at its end); a stopped trace spends the tokens up to and including that one and does not
  vote. Warmup traces vote when their lowest group is at least s, later
  ones when they ran to the end; the weight is the lowest group confidence. After each
  later trace the rule stops once the leading answer holds at least ``tau`` of the total
  weight. No vote at all: no answer (the repository returns None too).

Replaying the online rule on a stored pool is exact: whether, and where, trace t is stopped
depends only on its own tokens and on s, which depends only on the warmup traces, and the
tokens a stopped trace did generate are the first tokens of the stored one (a token depends
only on the tokens before it). The choice charges what the live rule would have spent: the
traces it read, stopped ones only up to their stopping token (``Selection.cut``).

Confidences are thousandths (DeepConf rounds them so, and traces store them so); sums are
taken exactly in integer thousandths, so that equal windows compare equal and no decision
hangs on the order of a floating-point sum.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
from numpy.typing import NDArray

from ttc_eval.analysis.estimators import disjoint_groups
from ttc_eval.errors import UsageError
from ttc_eval.registry import strategy
from ttc_eval.strategies._base import PoolStrategy, choice, vote
from ttc_eval.types import CONFIDENCE_DECIMALS, Candidate, Selection, Trace

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


def require_confidences(trace: Trace, name: str) -> None:
    """Refuse a trace whose candidates carry no token confidences, saying how to get them."""
    missing = [c.index for c in trace.candidates if c.confidences is None]
    if not missing:
        return
    shown = ", ".join(map(str, missing[:5])) + (", ..." if len(missing) > 5 else "")
    # A UsageError (exit code 2), as for best_of_n without verifier scores: the run's
    # settings did not record what this strategy reads, and rerunning the same command would
    # fail the same way (exit code 1 is for failures that a plain rerun may get past).
    raise UsageError(
        f"{name} reads token confidences, but samples {shown} of question "
        f"{trace.problem_id!r} have none: the backend recorded no token confidences. Rerun "
        "with a backend that records them (--backend-args top_logprobs=5, the default of the "
        "hf, vllm, openai and fake backends; top_logprobs=0 records none). Traces stored "
        "before token confidences were recorded lack them: write the rerun to a new run "
        "directory (--run-id NAME or another --output-dir)."
    )


def _confidences(c: Candidate) -> tuple[float, ...]:
    assert c.confidences is not None  # checked per trace by require_confidences
    return c.confidences


def _positive_int(name: str, key: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise UsageError(f"{name}: {key} must be a positive integer, got {value!r}")
    return value


def _number(name: str, key: str, value: object, what: str, low: float, high: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not low < value <= high:
        raise UsageError(f"{name}: {key} must be {what}, got {value!r}")
    return float(value)


# -- offline ------------------------------------------------------------------------------------


@strategy("deepconf_offline")
class DeepConfOffline(PoolStrategy):
    """DeepConf offline: among the answered traces of the group, those of the top ``keep``
    percent by ``measure`` vote, each weighted by its measure (``keep=100``: all of them)."""

    needs_verifier = False
    needs_confidences = True

    def __init__(
        self, measure: str = "bottom", keep: float = 100, window: int = 2048, tail: int = 2048
    ) -> None:
        name = "deepconf_offline"
        if measure not in MEASURES:
            raise UsageError(
                f"{name}: measure must be one of {', '.join(MEASURES)}, not {measure!r}"
            )
        self.measure = measure
        self.keep = _number(name, "keep", keep, "a percentage in (0, 100]", 0, 100)
        self.window = _positive_int(name, "window", window)
        self.tail = _positive_int(name, "tail", tail)

    def canonical_args(self, args: Mapping[str, Any]) -> dict[str, Any]:
        # window shapes only the group measures, tail only the tail one: one label for equal
        # configurations.
        out = dict(args)
        if self.measure not in ("bottom", "lowest"):
            out.pop("window", None)
        if self.measure != "tail":
            out.pop("tail", None)
        return out

    def measure_of(self, c: Candidate) -> float:
        return trace_confidence(_confidences(c), self.measure, self.window, self.tail)

    def choose(self, group: Sequence[Candidate]) -> Candidate | None:
        answered = [c for c in group if c.vote_key is not None]
        if not answered:
            return None
        measures = [self.measure_of(c) for c in answered]
        # The repository's own percentile expression, so that thresholds match it bit for bit.
        threshold = float(np.percentile(measures, (1 - self.keep / 100) * 100))
        kept = [(c, m) for c, m in zip(answered, measures, strict=True) if m >= threshold]
        return vote([c for c, _ in kept], [m for _, m in kept])

    def select(self, trace: Trace, budget: int) -> list[Selection]:
        require_confidences(trace, self.name or "deepconf_offline")
        return super().select(trace, budget)


# -- online -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class OnlineReplay:
    """What the online rule did with one group: the threshold, what it read and spent, and
    who voted with what weight."""

    threshold: float
    """s: the ``100 - keep`` percentile of the warmup traces' lowest group confidences."""
    read: tuple[Candidate, ...]
    """Traces read, in pool order (the warmup, then later ones until it stopped)."""
    cut: tuple[tuple[int, int], ...]
    """(pool index, tokens spent) of each later trace stopped below the threshold."""
    voters: tuple[Candidate, ...]
    """Traces that vote, in pool order."""
    weights: tuple[float, ...]
    """Their weights: each one's lowest group confidence."""

    @property
    def tokens(self) -> int:
        """Generated tokens spent: whole traces, stopped ones up to their stopping token."""
        spent = dict(self.cut)
        return sum(spent.get(c.index, c.n_tokens) for c in self.read)

    @property
    def pick(self) -> Candidate | None:
        return vote(self.voters, self.weights)


def _consensus(totals: Mapping[str, float]) -> float:
    """beta: the leading answer's share of the total weight (0.0 while nothing is weighed)."""
    total = sum(totals.values())
    return max(totals.values()) / total if total > 0 else 0.0


def replay_online(
    group: Sequence[Candidate], n_init: int, keep: float, tau: float, window: int
) -> OnlineReplay:
    """DeepConf online on ``group`` (pool order); every candidate carries confidences."""
    warmup = list(group[:n_init])
    lowest = [lowest_confidence(_confidences(c), window) for c in warmup]
    threshold = float(np.percentile(lowest, 100 - keep))
    voters: list[Candidate] = []
    weights: list[float] = []
    totals: dict[str, float] = {}

    def add(c: Candidate, weight: float) -> None:
        if c.vote_key is None:
            return  # read, but no answer to vote for
        voters.append(c)
        weights.append(weight)
        totals[c.vote_key] = totals.get(c.vote_key, 0.0) + weight

    for c, low in zip(warmup, lowest, strict=True):
        if low >= threshold:
            add(c, low)
    read = list(warmup)
    cut: list[tuple[int, int]] = []
    for c in group[n_init:]:
        read.append(c)
        confs = _confidences(c)
        stop = stop_position(confs, window, threshold)
        if stop is None:
            add(c, lowest_confidence(confs, window))
        else:
            # Stopped at its last token (or later: a trace with fewer confidences than
            # tokens) it spent all of them.
            cut.append((c.index, c.n_tokens if stop >= len(confs) else min(stop, c.n_tokens)))
        # Consensus is checked after each later trace, not after the warmup (Algorithm 2).
        if _consensus(totals) >= tau:
            break
    return OnlineReplay(threshold, tuple(read), tuple(cut), tuple(voters), tuple(weights))


@strategy("deepconf_online")
class DeepConfOnline(PoolStrategy):
    """DeepConf online: ``n_init`` warmup traces set the threshold (their ``100 - keep``
    percentile of lowest group confidence); later traces stop early below it and the rule
    stops once the leading answer holds ``tau`` of the weight; at most the budget's traces."""

    needs_verifier = False
    needs_confidences = True

    def __init__(
        self, n_init: int = 16, keep: float = 90, tau: float = 0.95, window: int = 2048
    ) -> None:
        name = "deepconf_online"
        self.n_init = _positive_int(name, "n_init", n_init)
        self.keep = _number(name, "keep", keep, "a percentage in (0, 100]", 0, 100)
        self.tau = _number(name, "tau", tau, "a consensus share in (0, 1]", 0, 1)
        self.window = _positive_int(name, "window", window)

    def replay(self, group: Sequence[Candidate]) -> OnlineReplay:
        return replay_online(group, self.n_init, self.keep, self.tau, self.window)

    def choose(self, group: Sequence[Candidate]) -> Candidate | None:
        return self.replay(group).pick

    def select(self, trace: Trace, budget: int) -> list[Selection]:
        """One choice per disjoint group of ``budget`` samples; each reads the warmup and the
        later traces up to its stop, and is charged their tokens as they were spent."""
        require_confidences(trace, self.name or "deepconf_online")
        out = []
        for g in disjoint_groups(len(trace.candidates), budget):
            r = self.replay([trace.candidates[i] for i in g])
            sel = choice(r.pick, r.read, n_tokens=r.tokens)
            out.append(replace(sel, cut=r.cut))
        return out
