"""Many questions' sample pools as arrays, so that a pool strategy chooses in every disjoint
group of every question at once (:meth:`~ttc_eval.strategies._base.PoolStrategy.select_many`).

A report evaluates each configuration at each budget on every question: choosing group by
group in Python (``select``) is most of its time on large pools (500 questions x 256 samples x
10 configurations is 2.5 million choices). The arrays here reproduce ``select``'s choices
exactly (the same tie-breaks, the same floating-point sums in the same order), so that the
report's numbers do not depend on which path computed them; ``tests/test_batch_eval.py``
checks the two against each other.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np
from numpy.typing import NDArray

from ttc_eval.aggregation import aggregate
from ttc_eval.types import Trace

IntArray = NDArray[np.int64]
BoolArray = NDArray[np.bool_]
FloatArray = NDArray[np.float64]
T = TypeVar("T")

_CELLS = 1 << 22
"""Most (group, answer) cells a vote tallies at once: bounds its memory on pools with many
distinct answers (the tally is groups x distinct answers)."""


@dataclass(frozen=True)
class GroupChoices:
    """A pool strategy's choices in every disjoint group of ``budget`` samples of every
    question of a batch, as ``select`` makes them one by one."""

    correct: BoolArray
    """(questions, groups): whether the chosen answer is correct (no answer: False)."""
    chosen: IntArray
    """(questions, groups): pool position of the chosen candidate (-1: no answer), the
    ``index`` of ``select``'s choice where pool indices are positions."""
    read: IntArray
    """(questions, groups): candidates read, from the group's first one (strategies read a
    prefix of each group, in pool order)."""


class PoolBatch:
    """The pools of several questions, all of one size ``n``: answers as per-question ids
    (first seen first, -1 for none), verdicts, and what strategies derive from them, each
    computed once and shared by every configuration and budget."""

    def __init__(self, traces: Sequence[Trace]) -> None:
        self.traces = tuple(traces)
        self.n = len(self.traces[0].candidates) if self.traces else 0
        if any(len(t.candidates) != self.n for t in self.traces):
            raise ValueError("a PoolBatch holds pools of one size")
        q = len(self.traces)
        self.keys = np.full((q, self.n), -1, dtype=np.int64)
        """Vote key ids per question (``None``: -1), numbered in order of first appearance."""
        self.named = np.zeros((q, self.n), dtype=bool)
        """Candidates whose vote key is truthy (naive best-of-N's test of an answer)."""
        self.correct = np.zeros((q, self.n), dtype=bool)
        self.n_keys = 0
        """The most distinct answers of one question."""
        for i, t in enumerate(self.traces):
            ids: dict[str, int] = {}
            row = self.keys[i]
            for j, c in enumerate(t.candidates):
                if c.vote_key is not None:
                    row[j] = ids.setdefault(c.vote_key, len(ids))
                    self.named[i, j] = bool(c.vote_key)
                self.correct[i, j] = bool(c.correct)
            self.n_keys = max(self.n_keys, len(ids))
        self._memo: dict[Any, Any] = {}

    def groups(self, budget: int) -> int:
        return self.n // budget

    def cached(self, key: Any, make: Callable[[], T]) -> T:
        """``make()``, computed once per batch under ``key`` (what several configurations of a
        strategy derive alike, such as a criterion per vote count)."""
        if key not in self._memo:
            self._memo[key] = make()
        value: T = self._memo[key]
        return value

    def whole(self, budget: int) -> IntArray:
        """Candidates read per group by a strategy that reads whole groups."""
        return np.full((len(self.traces), self.groups(budget)), budget, dtype=np.int64)

    def grouped(self, values: NDArray[Any], budget: int) -> NDArray[Any]:
        """(questions, n, ...) values as (questions, groups, budget, ...): the disjoint groups
        of :func:`~ttc_eval.analysis.estimators.disjoint_groups`."""
        g = self.groups(budget)
        return values[:, : g * budget].reshape(len(self.traces), g, budget, *values.shape[2:])

    def picked(self, budget: int, pos: IntArray, has: BoolArray) -> tuple[BoolArray, IntArray]:
        """The choice of the candidate at group position ``pos`` (where ``has``): whether it
        is correct, and its pool position (-1 where not ``has``)."""
        right = np.take_along_axis(self.grouped(self.correct, budget), pos[..., None], axis=2)
        correct: BoolArray = has & right[..., 0]
        start = np.arange(pos.shape[1], dtype=np.int64) * budget
        chosen: IntArray = np.where(has, start[None, :] + pos, -1).astype(np.int64)
        return correct, chosen

    def scores(self, aggregation: str) -> FloatArray | None:
        """Each candidate's solution score (``None``: some candidate has no step scores, which
        ``select`` refuses, or a score that is not finite, whose comparisons the arrays would
        not reproduce)."""
        key = ("scores", aggregation)
        if key not in self._memo:
            out = np.zeros((len(self.traces), self.n))
            for i, t in enumerate(self.traces):
                for j, c in enumerate(t.candidates):
                    if c.step_scores is None:
                        self._memo[key] = None
                        return None
                    out[i, j] = aggregate(c.step_scores, aggregation)
            self._memo[key] = out if np.isfinite(out).all() else None
        scores: FloatArray | None = self._memo[key]
        return scores

    def vote(
        self, budget: int, weights: FloatArray | None = None, upto: IntArray | None = None
    ) -> tuple[BoolArray, IntArray]:
        """:func:`~ttc_eval.strategies._base.vote` in every group (unit weights when
        ``weights`` is None; among each group's first ``upto`` candidates when given): the
        winning answer's first holder, as :meth:`picked`."""
        keys = self.grouped(self.keys, budget)
        q, g, b = keys.shape
        rows = keys.reshape(q * g, b)
        voting = rows >= 0
        if upto is not None:
            voting &= np.arange(b) < upto.reshape(q * g, 1)
        w = None if weights is None else self.grouped(weights, budget).reshape(q * g, b)
        width = max(1, self.n_keys)
        is_best = np.zeros((q * g, b), dtype=bool)
        step = max(1, _CELLS // width)
        for start in range(0, q * g, step):
            part = slice(start, min(q * g, start + step))
            is_best[part] = _best_holders(rows[part], voting[part], width,
                                          None if w is None else w[part])  # fmt: skip
        has = is_best.any(axis=1)
        # The first holder of a best answer is the first holder of the best answer seen first.
        pos = is_best.argmax(axis=1)
        return self.picked(budget, pos.reshape(q, g), has.reshape(q, g))

    def run_lengths(self) -> IntArray:
        """Per candidate: how many candidates up to it, itself included, have its answer
        (0 for no answer): ESC's windows are unanimous where this reaches their width."""
        if "runs" not in self._memo:
            runs = np.zeros_like(self.keys)
            answered = self.keys >= 0
            for j in range(self.n):
                runs[:, j] = answered[:, j]
                if j:
                    same = answered[:, j] & (self.keys[:, j] == self.keys[:, j - 1])
                    runs[:, j] += np.where(same, runs[:, j - 1], 0)
            self._memo["runs"] = runs
        runs_: IntArray = self._memo["runs"]
        return runs_

    def top_two(self, budget: int) -> tuple[IntArray, IntArray]:
        """After each candidate of each group (questions, groups, budget): the votes of the
        leading answer and of the runner-up (``Counter.most_common(2)``'s counts; 0 when
        there is none), as Adaptive-Consistency reads them sample by sample."""
        key = ("top_two", budget)
        if key not in self._memo:
            keys = self.grouped(self.keys, budget)
            q, g, b = keys.shape
            rows = keys.reshape(q * g, b)
            seen = _occurrences(rows)
            first = np.zeros((q * g, b), dtype=np.int64)
            second = np.zeros((q * g, b), dtype=np.int64)
            v1 = np.zeros(q * g, dtype=np.int64)
            v2 = np.zeros(q * g, dtype=np.int64)
            leader = np.full(q * g, -1, dtype=np.int64)
            for j in range(b):
                k, c = rows[:, j], seen[:, j]
                other = (k >= 0) & (k != leader)
                # An answer other than the leader's that overtakes it leads; the old leader's
                # votes are then the most any other answer has.
                ahead = other & (c > v1)
                v2 = np.where(ahead, v1, np.where(other, np.maximum(v2, c), v2))
                v1 = np.where(ahead | ((k >= 0) & (k == leader)), c, v1)
                leader = np.where(ahead, k, leader)
                first[:, j], second[:, j] = v1, v2
            self._memo[key] = (first.reshape(q, g, b), second.reshape(q, g, b))
        pair: tuple[IntArray, IntArray] = self._memo[key]
        return pair


def first_stop(stop: BoolArray, full: int, step: int = 1) -> IntArray:
    """Candidates read per group (questions, groups) when reading stops at the first check
    where ``stop`` (questions, groups, checks) holds, checks falling every ``step``
    candidates; ``full`` (the whole group) where it never does."""
    at = (stop.argmax(axis=-1) + 1) * step
    return np.where(stop.any(axis=-1), at, full).astype(np.int64)


def _occurrences(rows: IntArray) -> IntArray:
    """Per position: how many times its answer has appeared in its row so far, itself
    included (0 for no answer)."""
    r, b = rows.shape
    width = int(rows.max(initial=-1)) + 2
    tag = np.where(rows >= 0, np.arange(r)[:, None] * width + rows, -1).ravel()
    order = np.argsort(tag, kind="stable")
    ordered = tag[order]
    index = np.arange(tag.size)
    starts = np.ones(tag.size, dtype=bool)
    starts[1:] = ordered[1:] != ordered[:-1]
    rank = index - np.maximum.accumulate(np.where(starts, index, 0))
    out = np.empty(tag.size, dtype=np.int64)
    out[order] = rank + 1
    return np.where(rows >= 0, out.reshape(r, b), 0)


def _best_holders(
    rows: IntArray, voting: BoolArray, width: int, weights: FloatArray | None
) -> BoolArray:
    """Per position: whether it votes for an answer whose total in its row is the row's
    largest (the totals summed in pool order, as ``vote`` sums them)."""
    r, b = rows.shape
    cell = (np.arange(r)[:, None] * width + rows)[voting]
    counts = np.bincount(cell, minlength=r * width)
    if weights is None:
        totals: NDArray[Any] = counts
        best = counts.reshape(r, width).max(axis=1)
    else:
        # bincount adds the weights in input order: each answer's total is summed in pool
        # order from 0.0, as vote's running dict is.
        totals = np.bincount(cell, weights=weights[voting], minlength=r * width)
        present = np.where(counts > 0, totals, -np.inf)
        best = present.reshape(r, width).max(axis=1)
    out = np.zeros((r, b), dtype=bool)
    out[voting] = totals[cell] == np.broadcast_to(best[:, None], (r, b))[voting]
    return out
