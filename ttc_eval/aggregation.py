"""Step-score aggregation: how a solution's step scores make one score (Snell et al. use the
last step's). A bottom-layer module: verifiers, strategies and analysis all read it."""

from __future__ import annotations

import math
from collections.abc import Sequence

from ttc_eval.errors import UsageError

AGGREGATIONS = ("last", "min", "prod", "mean")


def check_aggregation(how: str, owner: str) -> str:
    """``how`` when it is a known aggregation, else a usage error naming ``owner``."""
    if how not in AGGREGATIONS:
        raise UsageError(f"{owner}: aggregation={how!r}; choose one of {', '.join(AGGREGATIONS)}")
    return how


def aggregate(step_scores: Sequence[float], how: str = "last") -> float:
    """A solution's score from its step scores: ``last`` (Snell et al.'s choice), ``min``,
    ``prod`` or ``mean``."""
    if not step_scores:
        return 0.0
    if how == "last":
        return float(step_scores[-1])
    if how == "min":
        return float(min(step_scores))
    if how == "prod":
        return float(math.prod(step_scores))
    if how == "mean":
        return float(sum(step_scores) / len(step_scores))
    check_aggregation(how, "aggregate")
    raise AssertionError(how)
