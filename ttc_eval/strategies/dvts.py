"""Strategy ``dvts``: diverse verifier tree search."""

from __future__ import annotations

from ttc_eval.registry import strategy
from ttc_eval.strategies.search import SearchStrategy


@strategy("dvts")
class DVTS(SearchStrategy):
    """N/M independent subtrees, each a beam search of width M that keeps its best beam;
    more diverse than one beam search at the same budget. Weighted best-of-N at the end."""

    name = "dvts"
    subtrees_per_width = True
