"""Verifier ``self-judge``: a model asked whether each step is correct; P(Yes) over {Yes, No}.

Works with the embedded default model, so PRM-guided search runs on a machine with no PRM
weights. It runs the ``judge`` role: by default the policy model itself (no second model in
memory), another with ``--role judge=MODEL``; ``model=`` (``--verifier-model``) loads one of
its own through ``backend``.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Sequence
from typing import Any, ClassVar

from ttc_eval.backends._base import Backend, NextTokenScorer
from ttc_eval.errors import UsageError
from ttc_eval.registry import BACKENDS, verifier
from ttc_eval.types import Problem
from ttc_eval.verifiers._base import Solution

JUDGE_TEMPLATE = (
    "Here is a math problem and a step of a proposed solution. Is the last step correct? "
    "Answer Yes or No.\n\nProblem: {question}\n\nEarlier steps:\n{previous}\n\n"
    "Last step:\n{step}"
)


@verifier("self-judge")
class SelfJudge:
    """Asks a model, step by step, "Is the last step correct?"; score = P(Yes)/(P(Yes)+P(No))."""

    name = "self-judge"
    version = "1"
    roles: ClassVar[tuple[str, ...]] = ("judge",)
    """Asks the ``judge`` role's model (the policy unless another is named)."""

    def __init__(
        self,
        judge: Backend | None = None,
        model: str | None = None,
        backend: str = "hf",
        template: str = JUDGE_TEMPLATE,
        **backend_args: Any,
    ) -> None:
        self.judge: Backend
        if model is None and judge is not None:
            self.judge = judge
        else:
            self.judge = BACKENDS.get(backend)(
                model or "smollm2-135m", progress=False, **backend_args
            )
        self.template = template
        self.tokens_read = 0
        self._count = threading.Lock()
        # Step verdicts by (question, earlier steps, step): a search re-scores the same
        # prefixes every round, and a pool repeats first steps.
        self._memo: dict[tuple[str, tuple[str, ...], str], float] = {}

    @property
    def concurrent(self) -> bool:
        """Safe from several threads at once when its judge's backend is: the verdicts it
        remembers are keyed by question, so threads on other questions never share one."""
        return self.judge.concurrent

    def score(self, problem: Problem, solutions: Sequence[Solution]) -> list[tuple[float, ...]]:
        return self.score_counted(problem, solutions)[0]

    def score_counted(
        self, problem: Problem, solutions: Sequence[Solution]
    ) -> tuple[list[tuple[float, ...]], int]:
        wanted: dict[tuple[str, tuple[str, ...], str], str] = {}
        for sol in solutions:
            for i, step in enumerate(sol.steps):
                key = (problem.question, sol.steps[:i], step)
                if key not in self._memo and key not in wanted:
                    previous = "\n\n".join(sol.steps[:i]) or "(none)"
                    text = self.template.format(
                        question=problem.question, previous=previous, step=step
                    )
                    wanted[key] = self.judge.render([{"role": "user", "content": text}])
        read = 0
        if wanted:
            if not isinstance(self.judge, NextTokenScorer):
                raise UsageError(
                    f"self-judge needs a judge backend that scores next tokens; "
                    f"{self.judge.name} cannot (use --role judge=MODEL on hf or vllm)"
                )
            lps, read = self.judge.next_token_logprobs(list(wanted.values()), ["Yes", "No"])
            with self._count:
                self.tokens_read += read
            for key, lp in zip(wanted, lps, strict=True):
                # Normalized over the two answers only: P(Yes) / (P(Yes) + P(No)).
                self._memo[key] = 1.0 / (1.0 + math.exp(lp["No"] - lp["Yes"]))
        scores = [
            tuple(self._memo[(problem.question, sol.steps[:i], s)] for i, s in enumerate(sol.steps))
            for sol in solutions
        ]
        return scores, read
