"""The verifier protocol (step-score aggregation lives in :mod:`ttc_eval.aggregation` and is
re-exported here).

A *verifier* scores the steps of candidate solutions to guide selection and search; it never
sees the gold answer (that is the grader's job, used only by the runner).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from ttc_eval.aggregation import AGGREGATIONS, aggregate, check_aggregation
from ttc_eval.types import Completion, Problem

DEFAULT_STEP_DELIMITER = "\n\n"


@dataclass(frozen=True)
class Solution:
    """A candidate solution as a verifier sees it."""

    steps: tuple[str, ...]
    """The solution split into steps."""
    step_ends: tuple[int, ...]
    """Character offset where each step ends in ``text``."""
    text: str
    """The whole solution."""
    completion: Completion | None = None
    """Generation details (token log-probabilities), for verifiers that read them."""


def split_steps(
    text: str, delimiter: str = DEFAULT_STEP_DELIMITER
) -> tuple[tuple[str, ...], tuple[int, ...]]:
    """Steps of ``text`` split on ``delimiter`` (empty pieces dropped) and where each ends.

    A text with no non-empty piece is one (empty) step, so every solution has a score.
    """
    steps: list[str] = []
    ends: list[int] = []
    pos = 0
    for piece in text.split(delimiter):
        end = pos + len(piece)
        if piece.strip():
            steps.append(piece.strip())
            ends.append(end)
        pos = end + len(delimiter)
    if not steps:
        return ("",), (len(text),)
    return tuple(steps), tuple(ends)


def step_texts(text: str, delimiter: str = DEFAULT_STEP_DELIMITER) -> tuple[str, ...]:
    """The steps of :func:`split_steps` alone (without where each ends), for a report's
    thousands of samples."""
    steps = tuple(s for s in (piece.strip() for piece in text.split(delimiter)) if s)
    return steps or ("",)


def to_solution(completion: Completion, delimiter: str = DEFAULT_STEP_DELIMITER) -> Solution:
    steps, ends = split_steps(completion.text, delimiter)
    return Solution(steps=steps, step_ends=ends, text=completion.text, completion=completion)


class Verifier(Protocol):
    """Scores every step of each solution; higher is better, scores in [0, 1]."""

    name: str
    """Registered name."""
    version: str
    """Changes whenever scores can change."""
    tokens_read: int
    """Tokens the verifier has read so far (0 for verifiers needing no extra model)."""

    def score(self, problem: Problem, solutions: Sequence[Solution]) -> list[tuple[float, ...]]:
        """One tuple of step scores per solution, one score per step."""
        ...


@runtime_checkable
class ConcurrentVerifier(Protocol):
    """A verifier that can also report what one call read, so that callers on several
    threads (a search's questions on a concurrent backend) each count their own tokens
    without holding the others back."""

    @property
    def concurrent(self) -> bool:
        """Whether :meth:`score_counted` may be called from several threads at once (its
        model's backend runs concurrent calls together)."""
        ...

    def score_counted(
        self, problem: Problem, solutions: Sequence[Solution]
    ) -> tuple[list[tuple[float, ...]], int]:
        """As :meth:`Verifier.score`, and the tokens this call read."""
        ...


class VerifierFactory(Protocol):
    """A registered verifier class. Its declared ``roles`` say which models it runs: the
    pipeline builds a ``judge`` role's backend (the policy's unless ``--role judge=MODEL``)
    and passes it as ``judge=``; a ``verifier`` role is its own weights
    (``--verifier-model``/``--role verifier=``, passed as ``model=``); no role: it reads
    the policy's own log-probabilities."""

    version: str
    """As :attr:`Verifier.version` (read without building the verifier)."""
    roles: tuple[str, ...]
    """Model roles this verifier runs (``judge``, ``verifier``), for loading and FLOPs."""

    def __call__(self, *args: Any, **kwargs: Any) -> Verifier: ...


__all__ = [
    "AGGREGATIONS",
    "DEFAULT_STEP_DELIMITER",
    "ConcurrentVerifier",
    "Solution",
    "Verifier",
    "VerifierFactory",
    "aggregate",
    "check_aggregation",
    "split_steps",
    "to_solution",
]
