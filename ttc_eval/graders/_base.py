"""The grader protocol: ground-truth checking, used only by the runner (never by search)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol


@dataclass(frozen=True)
class Grade:
    """The verdict on one extracted answer."""

    correct: bool
    """Whether the answer is equivalent to the gold answer."""
    vote_key: str | None
    """Canonical form of the answer for voting (``None`` when there is no answer)."""


class Grader(Protocol):
    """Extracts final answers and checks them against gold answers."""

    version: str
    """Changes whenever the grader's verdicts can change; recorded in every result row."""

    def extract(self, text: str) -> str | None:
        """The final answer stated in a model output, or ``None``."""
        ...

    def grade(self, pairs: Sequence[tuple[str, str | None]]) -> list[Grade]:
        """Grade ``(gold, extracted answer)`` pairs; one :class:`Grade` per pair, in order."""
        ...


class GraderFactory(Protocol):
    """A registered grader class: its ``version`` is read without building it (run identity,
    stale-version notes)."""

    version: str
    """As :attr:`Grader.version`."""

    def __call__(self, *args: Any, **kwargs: Any) -> Grader: ...
