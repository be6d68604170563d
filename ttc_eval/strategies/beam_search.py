"""Strategy ``beam_search``: PRM-guided beam search of width M, optional lookahead k."""

from __future__ import annotations

from ttc_eval.registry import strategy
from ttc_eval.strategies.search import SearchStrategy


@strategy("beam_search")
class BeamSearch(SearchStrategy):
    """N first steps; keep the top N/M by verifier score, expand each M times; lookahead k
    scores a step by a greedy k-step rollout (costs N(k+1) generations). Weighted best-of-N
    over the N final candidates."""

    name = "beam_search"
