"""Strategy ``adaptive_consistency`` (Aggarwal et al. 2023, "Let's Sample Step by Step").

Reads the pool one sample at a time, in pool order, and stops as soon as the current leading
answer is probably the majority answer of the distribution the samples come from: with v1
votes for the leader and v2 for the runner-up, the Beta stopping rule of the paper computes
P(p1 > p2) = P(X > 1/2) for X ~ Beta(v1 + 1, v2 + 1) and stops when it exceeds ``threshold``
(0.95, the paper's). At budget N it reads at most N samples; what it read is what it spent.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from functools import lru_cache

import numpy as np
from scipy.special import betainc

from ttc_eval.errors import UsageError
from ttc_eval.registry import strategy
from ttc_eval.strategies._batch import FloatArray, GroupChoices, IntArray, PoolBatch, first_stop
from ttc_eval.strategies.selection import Majority
from ttc_eval.types import Candidate


def leader_is_majority(v1: int, v2: int) -> float:
    """P(X > 1/2) for X ~ Beta(v1 + 1, v2 + 1): the Beta stopping criterion."""
    return _leader_is_majority(int(v1), int(v2))


@lru_cache(maxsize=1 << 16)
def _leader_is_majority(v1: int, v2: int) -> float:
    # Every sample read of every group asks again for one of few (v1, v2) pairs.
    # The regularized incomplete beta function I_x(a, b) is the Beta(a, b) CDF at x.
    return float(1.0 - betainc(v1 + 1, v2 + 1, 0.5))


def criterion(v1: IntArray, v2: IntArray) -> FloatArray:
    """:func:`leader_is_majority` of vote counts ``v1`` (the leader's) and ``v2``,
    elementwise, from one evaluation per distinct pair."""
    width = int(v2.max(initial=0)) + 1
    pairs, where = np.unique(v1 * width + v2, return_inverse=True)
    p = np.array([leader_is_majority(int(x) // width, int(x) % width) for x in pairs])
    out: FloatArray = p[where].reshape(v1.shape)
    return out


def read_until_confident(group: Sequence[Candidate], threshold: float) -> list[Candidate]:
    """The samples Adaptive-Consistency reads from ``group``: one at a time until the
    criterion exceeds ``threshold`` (all of them when it never does). Answerless samples are
    read but do not vote."""
    votes: Counter[str] = Counter()
    for n, c in enumerate(group, 1):
        if c.vote_key is not None:
            votes[c.vote_key] += 1
        top = [v for _, v in votes.most_common(2)] + [0, 0]
        if top[0] and leader_is_majority(top[0], top[1]) > threshold:
            return list(group[:n])
    return list(group)


@strategy("adaptive_consistency")
class AdaptiveConsistency(Majority):
    """Majority over samples read one at a time until the Beta stopping rule is confident
    (``threshold``, 0.95) that the leader is the majority answer; at most the budget's."""

    def __init__(self, threshold: float = 0.95) -> None:
        if isinstance(threshold, bool) or not isinstance(threshold, int | float):
            raise UsageError(f"adaptive_consistency: threshold must be a number, got {threshold!r}")
        if not 0.5 <= threshold < 1:
            raise UsageError(
                f"adaptive_consistency: threshold must be in [0.5, 1), got {threshold!r}"
            )
        self.threshold = float(threshold)

    def read(self, group: Sequence[Candidate]) -> Sequence[Candidate]:
        return read_until_confident(group, self.threshold)

    def select_many(self, batch: PoolBatch, budget: int) -> GroupChoices | None:
        if not self.batched_by(AdaptiveConsistency):
            return None
        v1, v2 = batch.top_two(budget)
        # One criterion per budget for every threshold (the configurations differ only there).
        p = batch.cached(("adaptive_consistency", budget), lambda: criterion(v1, v2))
        read = first_stop((v1 > 0) & (p > self.threshold), budget)
        return GroupChoices(*batch.vote(budget, upto=read), read)
