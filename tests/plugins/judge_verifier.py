"""Plug-in verifier ``length-judge``: runs the ``judge`` role's model, one short greedy
completion per solution, and scores every step of the solution from that completion."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import ClassVar

from ttc_eval.backends._base import Backend
from ttc_eval.registry import verifier
from ttc_eval.types import Problem, Request, SamplingParams
from ttc_eval.verifiers._base import Solution


@verifier("length-judge")
class LengthJudge:
    """Asks the judge to rate each solution; the score is a deterministic function of the
    judge's reply (its words and a hash of its text), the same for every step."""

    name = "length-judge"
    version = "1"
    roles: ClassVar[tuple[str, ...]] = ("judge",)
    """Runs the ``judge`` role's model: the pipeline builds that backend and passes it in."""

    built: ClassVar[list[LengthJudge]] = []
    """Every instance built (tests read what the pipeline passed in)."""

    def __init__(self, judge: Backend, max_tokens: int = 16) -> None:
        self.judge = judge
        self.max_tokens = max_tokens
        self.tokens_read = 0
        self.replies = 0
        type(self).built.append(self)

    def score(self, problem: Problem, solutions: Sequence[Solution]) -> list[tuple[float, ...]]:
        params = SamplingParams(temperature=0.0, max_tokens=self.max_tokens)
        prompts = [
            self.judge.render(
                [
                    {
                        "role": "user",
                        "content": f"{problem.question}\n\nRate this solution:\n\n{s.text}",
                    }
                ]
            )
            for s in solutions
        ]
        replies = self.judge.generate([Request(p, params, (0,)) for p in prompts])
        out = []
        for s, (reply,) in zip(solutions, replies, strict=True):
            # What the judge's model processed: the prompt it read and the reply it wrote.
            self.tokens_read += reply.prompt_tokens + reply.n_tokens
            self.replies += 1
            h = hashlib.sha256(reply.text.encode()).digest()[0] / 255
            score = (h + 1 / (1 + reply.n_tokens)) / 2
            out.append(tuple(score for _ in s.steps))
        return out
