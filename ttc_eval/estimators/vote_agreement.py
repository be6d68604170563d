"""Estimator ``vote_agreement``: how much the probe agrees on one answer."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

from ttc_eval.estimators._base import EstimatorBase
from ttc_eval.registry import estimator
from ttc_eval.types import Candidate


@estimator("vote_agreement")
class VoteAgreement(EstimatorBase):
    """The share of probe samples that hold the plurality answer (samples without an answer
    count in the share but never form the plurality); needs neither verifier nor
    confidences."""

    def feature(self, probe: Sequence[Candidate]) -> float | None:
        if not probe:
            return None
        counts = Counter(c.vote_key for c in probe if c.vote_key is not None)
        # Ties need no rule: every plurality answer has the same count, hence the same share.
        top = max(counts.values(), default=0)
        return top / len(probe)
