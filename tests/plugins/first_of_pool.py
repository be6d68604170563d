"""Plug-in strategy ``first_answer``: the first candidate of a group that has an answer."""

from __future__ import annotations

from collections.abc import Sequence

from ttc_eval.registry import strategy
from ttc_eval.strategies._base import PoolStrategy
from ttc_eval.types import Candidate


@strategy("first_answer")
class FirstAnswer(PoolStrategy):
    """Reads its whole group of the shared sample pool and keeps the earliest answered
    candidate (``None`` when no candidate has an answer)."""

    def choose(self, group: Sequence[Candidate]) -> Candidate | None:
        return next((c for c in group if c.vote_key is not None), None)
