"""Thinking blocks of reasoning models (``<think> ... </think>``): where a sample's thinking
ends and its answer begins.

A run's ``--thinking`` (or a task spec's ``generation.thinking``) names the delimiters:

- ``none``: an ordinary model; the whole output is the answer.
- ``tags``: the output opens its thinking with ``<think>`` and closes it with ``</think>``
  (an output with neither tag answered without thinking).
- ``open``: the prompt already opened the thinking (a chat template that ends in
  ``<think>``, or a model that is all thinking): the output is thinking until ``</think>``.
- ``OPEN,CLOSE``: other delimiters (``,CLOSE``: opened by the prompt, as ``open``).

Answers are read only from what follows the closing delimiter. A sample whose thinking never
closes has no answer at all: graders never see its text, because a number inside unfinished
thinking is a guess the model had not committed to (the failure reported by lighteval #869 and
lm-eval #3216).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ttc_eval.errors import UsageError

OPEN_TAG = "<think>"
CLOSE_TAG = "</think>"
THINKING_MODES = ("none", "tags", "open")
"""Named modes; ``OPEN,CLOSE`` names other delimiters."""


@dataclass(frozen=True)
class Thinking:
    """A run's thinking delimiters."""

    open: str
    """Opens the thinking in the output (empty: the prompt opened it)."""
    close: str
    """Closes the thinking; the answer is what follows it."""

    def split(self, text: str) -> tuple[int, int | None]:
        """Where the thinking of ``text`` ends (the closing delimiter's start, or the end of
        the text when it never closes) and where the answer starts (``None``: the thinking
        never closed, so there is no answer)."""
        start = 0
        if self.open:
            lead = len(text) - len(text.lstrip())
            if text.startswith(self.open, lead):
                start = lead + len(self.open)
            elif self.close not in text:
                return 0, 0  # no thinking at all: the whole output is the answer
        i = text.find(self.close, start)
        if i < 0:
            return len(text), None
        return i, i + len(self.close)

    def answer_text(self, text: str) -> str | None:
        """What the grader reads: the text after the closing delimiter (``None``: the
        thinking never closed)."""
        _, answer = self.split(text)
        return None if answer is None else text[answer:]

    def closed(self, text: str) -> bool:
        return self.split(text)[1] is not None

    def thinking_tokens(self, text: str, token_ends: Sequence[int] | None, n_tokens: int) -> int:
        """Generated tokens of ``text`` that lie inside its thinking: those that end before
        the closing delimiter starts (the delimiter's own tokens are the answer's); all of
        them when it never closes. Without token offsets, all tokens of an unclosed sample
        and none of a closed one are known for sure: a closed one counts its characters'
        share."""
        end, answer = self.split(text)
        if answer is None:
            return n_tokens
        if token_ends is None:
            return round(n_tokens * end / len(text)) if text else 0
        return sum(1 for e in token_ends[:n_tokens] if e <= end)


def parse_thinking(value: str | None) -> Thinking | None:
    """A ``--thinking`` value as delimiters (``None`` for ``none``)."""
    if value is None or value == "none":
        return None
    if value == "tags":
        return Thinking(OPEN_TAG, CLOSE_TAG)
    if value == "open":
        return Thinking("", CLOSE_TAG)
    if "," in value:
        opening, _, closing = value.partition(",")
        if closing:
            return Thinking(opening, closing)
    raise UsageError(
        f"--thinking {value!r}: expected one of {', '.join(THINKING_MODES)} or OPEN,CLOSE "
        f"delimiters (e.g. '<reasoning>,</reasoning>'; ',</reasoning>' when the prompt opens "
        "the thinking)"
    )
