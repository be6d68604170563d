"""Estimator ``verifier_score``: the mean verifier score of the probe."""

from __future__ import annotations

from collections.abc import Sequence

from ttc_eval.aggregation import aggregate, check_aggregation
from ttc_eval.errors import UsageError
from ttc_eval.estimators._base import EstimatorBase, lacking
from ttc_eval.registry import estimator
from ttc_eval.types import Candidate


@estimator("verifier_score")
class VerifierScore(EstimatorBase):
    """The mean over the probe of each sample's solution score (its step scores aggregated by
    ``aggregation``: last, min, prod, mean), as Snell et al.'s predicted difficulty; needs a
    verifier."""

    needs_verifier = True

    def __init__(self, aggregation: str = "last") -> None:
        self.aggregation = check_aggregation(aggregation, "verifier_score")

    def feature(self, probe: Sequence[Candidate]) -> float | None:
        if not probe:
            return None
        if any(c.step_scores is None for c in probe):
            # Refused rather than skipped: a mean over the scored samples only would rank
            # questions on different evidence, and the cause is the run's settings.
            raise UsageError(
                "the verifier_score estimator reads verifier scores, but "
                f"{lacking(probe, 'step_scores')} no step scores (a run without a verifier): "
                "run with --verifier NAME, or use the vote_agreement estimator"
            )
        # A scored solution with no steps aggregates to 0.0, as best_of_n scores it.
        scores = [aggregate(c.step_scores or (), self.aggregation) for c in probe]
        return sum(scores) / len(scores)
