"""Strategy ``deepconf_online``: DeepConf's online mode (Fu et al. 2025, "Deep Think with
Confidence", Algorithm 2; repository facebookresearch/deepconf) replayed on the stored pool.

It reads the first ``n_init`` traces in full; their lowest group confidences set the
threshold s (their ``100 - keep`` percentile). Each later trace, in pool order, is stopped at
the first token whose window (the one ending there) falls below s (a trace shorter than the
window: checked once, by its mean, at its end); a stopped trace spends the tokens up to and
including that one and does not vote. Warmup traces vote when their lowest group is at least
s, later ones when they ran to the end; the weight is the lowest group confidence. After
each later trace the rule stops once the leading answer holds at least ``tau`` of the total
weight. No vote at all: no answer (the repository returns None too).

Replaying the online rule on a stored pool is exact: whether, and where, trace t is stopped
depends only on its own tokens and on s, which depends only on the warmup traces, and the
tokens a stopped trace did generate are the first tokens of the stored one (a token depends
only on the tokens before it). The choice charges what the live rule would have spent: the
traces it read, stopped ones only up to their stopping token (``Selection.cut``).

The measures are in :mod:`ttc_eval.analysis.confidence`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

import numpy as np

from ttc_eval.analysis.confidence import lowest_confidence, stop_position
from ttc_eval.analysis.estimators import disjoint_groups
from ttc_eval.registry import strategy
from ttc_eval.strategies._base import PoolStrategy, choice, vote
from ttc_eval.strategies._deepconf import (
    confidences_of,
    number_in,
    positive_int,
    require_confidences,
)
from ttc_eval.types import Candidate, Selection, Trace


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
    lowest = [lowest_confidence(confidences_of(c), window) for c in warmup]
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
        confs = confidences_of(c)
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
        self.n_init = positive_int(name, "n_init", n_init)
        self.keep = number_in(name, "keep", keep, "a percentage in (0, 100]", 0, 100)
        self.tau = number_in(name, "tau", tau, "a consensus share in (0, 1]", 0, 1)
        self.window = positive_int(name, "window", window)

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
