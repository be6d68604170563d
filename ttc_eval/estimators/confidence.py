"""Estimator ``confidence``: the probe's mean token confidence (DeepConf's measure)."""

from __future__ import annotations

from collections.abc import Sequence

from ttc_eval.analysis.confidence import mean_confidence
from ttc_eval.errors import UsageError
from ttc_eval.estimators._base import EstimatorBase, lacking
from ttc_eval.registry import estimator
from ttc_eval.types import Candidate


@estimator("confidence")
class Confidence(EstimatorBase):
    """The mean over the probe of each sample's mean token confidence (minus the mean top-k
    log-probability: high when the model's distribution is peaked); needs token
    confidences."""

    needs_confidences = True

    def feature(self, probe: Sequence[Candidate]) -> float | None:
        if not probe:
            return None
        if any(c.confidences is None for c in probe):
            # A UsageError, as for DeepConf: the run's settings did not record them, and a
            # plain rerun would fail the same way.
            raise UsageError(
                "the confidence estimator reads token confidences, but "
                f"{lacking(probe, 'confidences')} none: the backend recorded no token "
                "confidences. Rerun with a backend that records them (--backend-args "
                "top_logprobs=5; top_logprobs=0 records none)"
            )
        means = [mean_confidence(c.confidences or ()) for c in probe]
        return sum(means) / len(means)
