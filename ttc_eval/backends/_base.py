"""The backend protocol: rendered prompts in, completions out. Strategies never import torch."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from typing import Any, Protocol, runtime_checkable

from ttc_eval.errors import UsageError
from ttc_eval.types import Completion, Request, token_confidence


class Backend(Protocol):
    """A policy model behind some engine."""

    name: str
    """Registered backend name (``hf``, ``fake``, ...)."""
    fingerprint: str
    """Identifies the model weights; part of every cache key."""
    version: str
    """Bumped whenever the same request could give other samples; part of a run's identity
    (a class attribute: read without loading a model)."""
    top_logprobs: int
    """k of the token confidences it records (DeepConf: minus the mean of the top-k
    log-probabilities of each generated token); 0: it records none."""
    keep_top_logprobs: bool
    """Whether its completions also carry the raw top-k log-probabilities of each token."""

    def render(self, messages: Sequence[Mapping[str, str]]) -> str:
        """The prompt text for a chat (the model's chat template when it has one)."""
        ...

    def generate(self, requests: Sequence[Request]) -> list[list[Completion]]:
        """One completion per sample id of each request, in order."""
        ...

    def parameter_counts(self) -> dict[str, int] | None:
        """Total and non-embedding parameters of the model (FLOPs accounting); ``None`` when
        they cannot be known (a scripted backend, a remote model without a local config)."""
        ...


@runtime_checkable
class NextTokenScorer(Protocol):
    """A backend that can score candidate next tokens after each prompt (self-judge)."""

    def next_token_logprobs(
        self, prompts: Sequence[str], options: Sequence[str]
    ) -> tuple[list[dict[str, float]], int]:
        """Log-probability of each option as the next token after each prompt, and the
        prompt tokens read."""
        ...


class BackendFactory(Protocol):
    """A registered backend class, built as ``factory(model, progress=..., **backend_args)``;
    its declared capabilities are read before any model loads."""

    version: str
    """As :attr:`Backend.version`."""
    takes_seed: bool
    """Whether the engine is seeded once at start (vllm): the run seed is passed as ``seed``."""

    def __call__(self, *args: Any, **kwargs: Any) -> Backend: ...


def truncate_at_stop(
    text: str, token_ends: Sequence[int], stops: Sequence[str], include_stop: bool
) -> tuple[str, int, str] | None:
    """Cut ``text`` at the earliest stop string: (new text, tokens kept, the stop string),
    or ``None`` when no stop string occurs."""
    best: tuple[int, int, str] | None = None
    for s in stops:
        i = text.find(s)
        if i >= 0 and (best is None or i < best[0]):
            best = (i, i + len(s), s)
    if best is None:
        return None
    start, end, stop = best
    kept = next((k + 1 for k, e in enumerate(token_ends) if e >= end), len(token_ends))
    return (text[:end] if include_stop else text[:start]), kept, stop


def top_k_record(
    top: Sequence[Sequence[float]], k: int, keep: bool
) -> tuple[tuple[float, ...] | None, tuple[tuple[float, ...], ...] | None]:
    """Token confidences, and the raw top-k when ``keep``, from each generated token's
    log-probabilities of its top alternatives (any order, possibly more than ``k`` of them:
    the engine's extra sampled token is left out by keeping the ``k`` largest); none at all
    when a position lists no alternatives."""
    if k <= 0 or any(not row for row in top):
        # A position without alternatives (a server that returned none there) has no
        # confidence; 0.0 would read as the least confident token there is.
        return None, None
    best = [tuple(sorted((float(v) for v in row), reverse=True)[:k]) for row in top]
    confidences = tuple(token_confidence(row) for row in best)
    raw = tuple(tuple(round(v, 6) for v in row) for row in best) if keep else None
    return confidences, raw


def check_top_logprobs(k: object) -> int:
    """The backend option ``top_logprobs`` checked: a whole number from 0 (record no
    confidences) up to 20, the most vLLM and OpenAI-compatible servers return."""
    if isinstance(k, bool) or not isinstance(k, int) or not 0 <= k <= 20:
        raise UsageError(
            f"top_logprobs must be a whole number from 0 (no token confidences) to 20, "
            f"got {k!r}; e.g. --backend-args top_logprobs=5"
        )
    return k


def request_seed(seed: int, request: Request) -> int:
    """Per-request seed for engines that derive child i's seed as ``seed + i`` (vLLM): a hash
    of (run seed, prompt) plus the request's first sample index, so sample k of a prompt gets
    the same seed whether it is drawn in one request or in a later top-up."""
    h = hashlib.sha256(f"{seed}|{request.prompt}".encode()).digest()
    return (int.from_bytes(h[:4], "little") & 0x3FFFFFFF) + request.sample_ids[0]


def render_chat(tokenizer: Any, messages: Sequence[Mapping[str, str]]) -> str:
    """The model's chat template with the generation prompt; plain paragraphs without one."""
    if getattr(tokenizer, "chat_template", None):
        return str(
            tokenizer.apply_chat_template(
                list(messages), tokenize=False, add_generation_prompt=True
            )
        )
    return "\n\n".join(m["content"] for m in messages)
