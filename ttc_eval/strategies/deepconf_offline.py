"""Strategy ``deepconf_offline``: DeepConf's offline voting (Fu et al. 2025, "Deep Think with
Confidence"; repository facebookresearch/deepconf), weighted and filtered by the model's own
token confidences.

It reads every trace of a group; among those with an answer it keeps the ``keep`` percent
of highest confidence by ``measure`` (at or above the ``100 - keep`` percentile, numpy's
linear interpolation, as the repository computes it) and takes the vote weighted by the
measure. The measures are in :mod:`ttc_eval.analysis.confidence`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ttc_eval.analysis.confidence import MEASURES, trace_confidence
from ttc_eval.errors import UsageError
from ttc_eval.registry import strategy
from ttc_eval.strategies._base import PoolStrategy, vote
from ttc_eval.strategies._deepconf import (
    confidences_of,
    number_in,
    positive_int,
    require_confidences,
)
from ttc_eval.types import Candidate, Selection, Trace


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
        self.keep = number_in(name, "keep", keep, "a percentage in (0, 100]", 0, 100)
        self.window = positive_int(name, "window", window)
        self.tail = positive_int(name, "tail", tail)

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
        return trace_confidence(confidences_of(c), self.measure, self.window, self.tail)

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
