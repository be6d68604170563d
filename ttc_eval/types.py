"""Small frozen value types shared by every component.

The flow: a task yields :class:`Problem` s; a backend turns :class:`Request` s into
:class:`Completion` s; an expansion grades and scores them into :class:`Candidate` s kept in a
:class:`Trace`; a strategy's pure ``select`` turns a trace into :class:`Selection` s.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class Problem:
    """One question of a task."""

    id: str
    """Stable identifier, unique within the task (used for resume and paired comparisons)."""
    question: str
    """The question text shown to the model."""
    answer: str
    """The gold final answer (already extracted: no worked solution)."""
    labels: Mapping[str, Any] = field(default_factory=dict)
    """Dataset difficulty labels and metadata (MATH ``level`` and ``subject``, arith ``level``)."""


@dataclass(frozen=True)
class SamplingParams:
    """How to sample; every field changes the output, so every field keys the cache."""

    temperature: float = 0.7
    """0 means greedy decoding."""
    top_p: float = 1.0
    """Nucleus sampling mass."""
    max_tokens: int = 256
    """Maximum generated tokens per sample."""
    stop: tuple[str, ...] = ()
    """Stop strings; generation ends at the first one (besides the model's end of sequence)."""
    include_stop: bool = False
    """Keep the matched stop string in the text (step-by-step search needs it)."""
    seed: int = 0
    """Run seed; a sample's randomness derives from it and the sample's index."""

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["stop"] = list(self.stop)
        return d


@dataclass(frozen=True)
class Request:
    """Samples wanted for one rendered prompt."""

    prompt: str
    """The fully rendered prompt text (chat template already applied)."""
    params: SamplingParams
    """Sampling parameters shared by every sample of the request."""
    sample_ids: tuple[int, ...] = (0,)
    """Indices of the wanted samples in the prompt's pool; the cache keys on them."""


@dataclass(frozen=True)
class Completion:
    """One generated sample."""

    text: str
    """Generated text, without the prompt (and without the stop string unless asked)."""
    n_tokens: int
    """Generated tokens, including the end-of-sequence token when one was produced."""
    finish_reason: str
    """``stop`` (end of sequence or stop string) or ``length`` (hit ``max_tokens``)."""
    stop_reason: str | None = None
    """The stop string that ended generation; ``None`` for end of sequence or length."""
    prompt_tokens: int = 0
    """Tokens in the prompt."""
    token_logprobs: tuple[float, ...] | None = None
    """Log-probability of each generated token under the model's untempered distribution."""
    token_ends: tuple[int, ...] | None = None
    """Character offset in ``text`` where each generated token ends (aligns logprobs to steps)."""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Completion:
        lp = d.get("token_logprobs")
        te = d.get("token_ends")
        return cls(
            text=d["text"],
            n_tokens=int(d["n_tokens"]),
            finish_reason=d["finish_reason"],
            stop_reason=d.get("stop_reason"),
            prompt_tokens=int(d.get("prompt_tokens", 0)),
            token_logprobs=tuple(lp) if lp is not None else None,
            token_ends=tuple(te) if te is not None else None,
        )


@dataclass(frozen=True)
class Candidate:
    """A graded, scored solution in a trace."""

    index: int
    """Position in the question's pool (sample index)."""
    text: str
    """The solution text."""
    n_tokens: int
    """Generated tokens spent on this candidate."""
    finish_reason: str
    """Why generation stopped (``stop`` or ``length``)."""
    answer: str | None
    """Extracted final answer, ``None`` if none could be found."""
    vote_key: str | None
    """Canonical form of the answer: equal keys are the same answer for voting."""
    correct: bool
    """Whether the answer matches the gold answer (the grader's verdict)."""
    step_scores: tuple[float, ...] | None = None
    """Verifier score of each step, when a verifier ran."""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Candidate:
        ss = d.get("step_scores")
        return cls(
            index=int(d["index"]),
            text=d["text"],
            n_tokens=int(d["n_tokens"]),
            finish_reason=d["finish_reason"],
            answer=d.get("answer"),
            vote_key=d.get("vote_key"),
            correct=bool(d["correct"]),
            step_scores=tuple(float(x) for x in ss) if ss is not None else None,
        )


@dataclass(frozen=True)
class Trace:
    """Everything one expansion produced for one question; stored as a row of traces.jsonl."""

    problem_id: str
    """The question."""
    expansion: str
    """Key of the expansion that produced it (kind plus arguments), e.g. ``pool(n=16)``."""
    candidates: tuple[Candidate, ...]
    """Graded candidates, in pool order."""
    prompt_tokens: int
    """Prompt tokens of one request for this question."""
    generated_tokens: int
    """All tokens the policy generated for this trace."""
    n_generations: int
    """All samples the policy generated for this trace."""
    verifier: str | None = None
    """Name of the verifier that scored the steps, if any."""
    verifier_tokens: int = 0
    """Tokens the verifier read (0 for verifiers that need no extra model)."""
    labels: Mapping[str, Any] = field(default_factory=dict)
    """The problem's labels, copied so reports need no dataset."""
    extra: Mapping[str, Any] = field(default_factory=dict)
    """Expansion-specific details (e.g. search statistics)."""

    def to_dict(self) -> dict[str, Any]:
        return {
            "problem_id": self.problem_id,
            "expansion": self.expansion,
            "candidates": [c.to_dict() for c in self.candidates],
            "prompt_tokens": self.prompt_tokens,
            "generated_tokens": self.generated_tokens,
            "n_generations": self.n_generations,
            "verifier": self.verifier,
            "verifier_tokens": self.verifier_tokens,
            "labels": dict(self.labels),
            "extra": dict(self.extra),
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Trace:
        return cls(
            problem_id=str(d["problem_id"]),
            expansion=d["expansion"],
            candidates=tuple(Candidate.from_dict(c) for c in d["candidates"]),
            prompt_tokens=int(d["prompt_tokens"]),
            generated_tokens=int(d["generated_tokens"]),
            n_generations=int(d["n_generations"]),
            verifier=d.get("verifier"),
            verifier_tokens=int(d.get("verifier_tokens", 0)),
            labels=dict(d.get("labels", {})),
            extra=dict(d.get("extra", {})),
        )


@dataclass(frozen=True)
class Selection:
    """What a strategy chose from one group of candidates at one budget."""

    answer: str | None
    """The chosen answer's vote key (``None``: no answer)."""
    correct: bool
    """Whether the chosen answer is correct."""
    n_generations: int
    """Samples this choice spent."""
    n_tokens: int
    """Generated tokens this choice spent."""
    index: int | None = None
    """Pool index of the chosen candidate in the trace (``None``: no answer); its text is what
    a caller that wants the output (the lm-eval ``ttc`` model) returns."""
