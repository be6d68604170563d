"""Expansion ``sample``: n independent samples per question, scored by the run's verifier.

Every pool strategy (greedy, majority, best_of_n, coverage) reads this one trace, at every
budget: the whole sweep over budgets 1..N costs N samples per question.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import replace
from typing import Any

from ttc_eval.registry import expansion
from ttc_eval.types import Candidate, Problem, Request, Trace
from ttc_eval.verifiers._base import to_solution


@expansion("sample")
class SampleExpansion:
    """Generates ``n`` samples per question at ``temperature``, batched across questions."""

    def __init__(self, n: int, temperature: float) -> None:
        self.n = n
        self.temperature = temperature

    def run(self, problems: Sequence[Problem], ctx: Any) -> Iterator[list[Trace]]:
        params = replace(ctx.params, temperature=self.temperature)
        # Chunks of questions, so that finished questions are written while the run goes on
        # (an interruption loses at most one chunk) and batches stay full.
        per_chunk = max(1, ctx.chunk_samples // self.n)
        for start in range(0, len(problems), per_chunk):
            chunk = problems[start : start + per_chunk]
            requests = [Request(ctx.render(p), params, tuple(range(self.n))) for p in chunk]
            outputs = ctx.backend.generate(requests)
            traces = []
            for p, comps in zip(chunk, outputs, strict=True):
                scores: list[tuple[float, ...] | None] = [None] * len(comps)
                read_before = ctx.verifier.tokens_read if ctx.verifier else 0
                if ctx.verifier is not None:
                    sols = [to_solution(c, ctx.step_delimiter) for c in comps]
                    scores = list(ctx.verifier.score(p, sols))
                cands = tuple(
                    Candidate(
                        index=i,
                        text=c.text,
                        n_tokens=c.n_tokens,
                        finish_reason=c.finish_reason,
                        answer=None,
                        vote_key=None,
                        correct=False,
                        step_scores=s,
                    )
                    for i, (c, s) in enumerate(zip(comps, scores, strict=True))
                )
                traces.append(
                    Trace(
                        problem_id=p.id,
                        expansion="",  # set by the runner from the spec
                        candidates=cands,
                        prompt_tokens=comps[0].prompt_tokens if comps else 0,
                        generated_tokens=sum(c.n_tokens for c in comps),
                        n_generations=len(comps),
                        verifier=ctx.verifier.name if ctx.verifier else None,
                        verifier_tokens=(ctx.verifier.tokens_read - read_before)
                        if ctx.verifier
                        else 0,
                        labels=dict(p.labels),
                    )
                )
            yield traces
