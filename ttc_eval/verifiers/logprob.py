"""Verifier ``logprob``: the policy's own confidence, from the token log-probabilities."""

from __future__ import annotations

import bisect
import math
from collections.abc import Sequence
from typing import ClassVar

from ttc_eval.errors import UsageError
from ttc_eval.registry import verifier
from ttc_eval.types import Problem
from ttc_eval.verifiers._base import Solution


@verifier("logprob")
class LogprobVerifier:
    """Step i scores exp(mean log-probability of the tokens up to the end of step i).

    The score of the last step is the sample's geometric-mean token probability, so ``last``
    aggregation ranks samples by mean token log-probability; scores stay in (0, 1] so that
    weighted best-of-N can sum them. Needs no extra model: the backend returns log-probs.
    """

    name = "logprob"
    version = "1"
    roles: ClassVar[tuple[str, ...]] = ()
    """Runs no model of its own: it reads the policy's log-probabilities (no FLOPs)."""

    def __init__(self) -> None:
        self.tokens_read = 0

    def score(self, problem: Problem, solutions: Sequence[Solution]) -> list[tuple[float, ...]]:
        out = []
        for sol in solutions:
            comp = sol.completion
            if comp is None or comp.token_logprobs is None or comp.token_ends is None:
                raise UsageError(
                    "verifier logprob scores sampled pools from a backend that returns "
                    "log-probabilities; for beam_search/dvts use a verifier that reads text "
                    "(self-judge or a PRM)"
                )
            lps, ends = comp.token_logprobs, comp.token_ends
            if not lps:
                out.append(tuple(0.0 for _ in sol.steps))
                continue
            prefix = [0.0]
            for x in lps:
                prefix.append(prefix[-1] + x)
            scores = []
            for end in sol.step_ends:
                # Tokens ending at or before the step's end belong to steps 1..i.
                k = max(1, bisect.bisect_right(ends, end))
                scores.append(math.exp(prefix[k] / k))
            scores[-1] = math.exp(prefix[-1] / len(lps))
            out.append(tuple(scores))
        return out
