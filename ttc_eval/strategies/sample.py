"""Expansion ``sample``: n independent samples per question, scored by the run's verifier.

Every pool strategy (greedy, majority, best_of_n, coverage) reads this one trace, at every
budget: the whole sweep over budgets 1..N costs N samples per question.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import replace

from ttc_eval.registry import expansion
from ttc_eval.strategies._base import ExpansionContext, scored_trace
from ttc_eval.types import POLICY, Problem, Request, Trace


@expansion("sample")
class SampleExpansion:
    """Generates ``n`` samples per question at ``temperature``, batched across questions."""

    def __init__(self, n: int, temperature: float) -> None:
        self.n = n
        self.temperature = temperature

    def run(self, problems: Sequence[Problem], ctx: ExpansionContext) -> Iterator[list[Trace]]:
        params = replace(ctx.params, temperature=self.temperature)
        # Chunks of questions, so that finished questions are written while the run goes on
        # (an interruption loses at most one chunk) and batches stay full.
        per_chunk = max(1, ctx.chunk_samples // self.n)
        for start in range(0, len(problems), per_chunk):
            chunk = problems[start : start + per_chunk]
            requests = [Request(ctx.render(p), params, tuple(range(self.n))) for p in chunk]
            outputs = ctx.backend.generate(requests)
            yield [
                scored_trace(p, comps, [POLICY] * len(comps), [True] * len(comps), ctx)
                for p, comps in zip(chunk, outputs, strict=True)
            ]
