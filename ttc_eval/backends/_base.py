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
    logprobs: bool
    """Whether its completions carry each sampled token's log-probability (the ``logprob``
    verifier reads them); off, an engine that computes them at a cost (vLLM) skips them."""

    @property
    def concurrent(self) -> bool:
        """Whether several threads may call it at once, their requests then sharing the
        engine's batch (vllm): a search then grows each question's tree on its own thread,
        so no question waits for the slowest step of the others."""
        ...

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

    def close(self) -> None:
        """Stop its engine now that the run needs it no more (it holds nothing to save); it
        may return before the engine has stopped (vllm: its processes take about 5 s, spent
        beside the run's report rather than after it)."""
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
    takes_threads: bool
    """Whether it computes on this machine's CPU threads and takes ``threads`` (hf): shards
    of one run are given a share of the cores unless told otherwise."""

    def __call__(self, *args: Any, **kwargs: Any) -> Backend: ...


DEFAULT_TOP_LOGPROBS = 5
"""The k of the token confidences backends record unless told otherwise."""

LOAD_WARNING_MARGIN = 0.5
"""How far the other processes' load may push the CPUs past busy before a warning: the
1-minute load average is an average, and a load of 1.2 on 2 CPUs still leaves one free."""


def usable_cpus() -> int:
    """The CPUs this process may run on (its affinity, where the OS reports one)."""
    import os

    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)


def parse_threads(value: object, cpus: int) -> int:
    """The backend option ``threads`` checked: a whole number from 1, or ``all`` (every
    usable CPU)."""
    if value == "all":
        return cpus
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise UsageError(
            f"threads must be a whole number of CPU threads from 1, or all, got {value!r}; "
            f"e.g. --backend-args threads=1 (this machine has {cpus} usable CPUs)"
        )
    return value


def shard_threads(cpus: int, shards: int) -> int:
    """The threads each of ``shards`` runs gets by default when they share a machine: an
    equal share of its CPUs, at least one. Two OpenMP processes that each take every core
    oversubscribe them (measured here: two runs side by side each ran about 17x slower
    than alone)."""
    return max(1, cpus // max(1, shards))


def load_warning(threads: int, cpus: int, load: float) -> str | None:
    """A warning when the machine's other load (``load``: the 1-minute load average read
    before this process starts computing) leaves fewer free CPUs than ``threads``: OpenMP
    threads spin-wait for each other, so one thread held up by another process stalls them
    all (measured: a 2-thread torch ``generate`` fell from about 96 to 7 tokens/s beside
    one busy process, while 1 thread kept 96)."""
    free = cpus - load
    if threads <= 1 or threads <= free + LOAD_WARNING_MARGIN:
        return None
    advice = max(1, int(free + LOAD_WARNING_MARGIN))
    return (
        f"warning: this machine's load average is {load:.1f} on {cpus} CPUs, so {threads} "
        f"compute threads will wait on each other (OpenMP threads stall when another "
        f"process holds a core); pass --backend-args threads={advice} to use the free "
        f"CPUs only, or run when the machine is idle"
    )


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
