"""Best-of-N family: greedy, majority (self-consistency), best_of_n (naive / weighted), coverage."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ttc_eval.aggregation import aggregate, check_aggregation
from ttc_eval.analysis.estimators import pass_at_k
from ttc_eval.errors import UsageError
from ttc_eval.registry import strategy
from ttc_eval.strategies._base import ExpansionSpec, PoolStrategy, RunDefaults, vote
from ttc_eval.strategies._batch import BoolArray, GroupChoices, PoolBatch
from ttc_eval.types import Candidate, Trace


@strategy("greedy")
class Greedy(PoolStrategy):
    """One sample at temperature 0; reported at budget 1 only."""

    def expansion(self, budget: int, defaults: RunDefaults) -> ExpansionSpec:
        return ExpansionSpec.of("sample", n=1, temperature=0.0)

    def budgets(self, requested: Sequence[int]) -> list[int]:
        return [1]

    def choose(self, group: Sequence[Candidate]) -> Candidate | None:
        return group[0]


@strategy("majority")
class Majority(PoolStrategy):
    """Self-consistency: the most frequent answer (grouped by the grader's canonical form)."""

    def choose(self, group: Sequence[Candidate]) -> Candidate | None:
        return vote(group, [1.0] * len(group))

    def select_many(self, batch: PoolBatch, budget: int) -> GroupChoices | None:
        if not self.batched_by(Majority):
            return None
        return GroupChoices(*batch.vote(budget), batch.whole(budget))


@strategy("best_of_n")
class BestOfN(PoolStrategy):
    """``mode=weighted`` (default): sum verifier scores per distinct answer, take the largest;
    ``mode=naive``: the single best-scored sample. ``aggregation``: how step scores make a
    solution score (last, min, prod, mean)."""

    needs_verifier = True

    def __init__(self, mode: str = "weighted", aggregation: str = "last", **rest: Any) -> None:
        if rest:
            raise UsageError(f"best_of_n takes mode and aggregation, not {sorted(rest)}")
        if mode not in ("weighted", "naive"):
            raise UsageError(f"best_of_n mode must be weighted or naive, not {mode!r}")
        self.mode, self.aggregation = mode, check_aggregation(aggregation, "best_of_n")

    def _score(self, c: Candidate) -> float:
        if c.step_scores is None:
            raise UsageError("best_of_n needs verifier scores in the traces: run with --verifier")
        return aggregate(c.step_scores, self.aggregation)

    def choose(self, group: Sequence[Candidate]) -> Candidate | None:
        scores = [self._score(c) for c in group]
        if self.mode == "weighted":
            return vote(group, scores)
        answered = [
            (s, -i) for i, (c, s) in enumerate(zip(group, scores, strict=True)) if c.vote_key
        ]
        if not answered:
            return None
        _, neg_i = max(answered)  # ties: earliest in the pool
        return group[-neg_i]

    def select_many(self, batch: PoolBatch, budget: int) -> GroupChoices | None:
        scores = batch.scores(self.aggregation) if self.batched_by(BestOfN) else None
        if scores is None:
            return None  # select says why (no verifier scores)
        if self.mode == "weighted":
            return GroupChoices(*batch.vote(budget, scores), batch.whole(budget))
        answered: BoolArray = np.asarray(batch.grouped(batch.named, budget).any(axis=2))
        # The first of the best-scored answered candidates, as max over (score, -index).
        best = batch.grouped(np.where(batch.named, scores, -np.inf), budget).argmax(axis=2)
        return GroupChoices(*batch.picked(budget, best, answered), batch.whole(budget))


@strategy("coverage")
class Coverage(PoolStrategy):
    """Oracle upper bound pass@k (unbiased estimator); always reported next to the others."""

    is_oracle = True
    """Reads correctness to choose: never a candidate of the compute-optimal choice."""

    def choose(self, group: Sequence[Candidate]) -> Candidate | None:
        return next((c for c in group if c.correct), group[0] if group else None)

    def estimate(self, trace: Trace, budget: int) -> float | None:
        # Unbiased over every k-subset of the pool, not only the disjoint groups.
        n = len(trace.candidates)
        return pass_at_k(n, sum(bool(x.correct) for x in trace.candidates), budget)
