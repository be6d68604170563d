"""Small frozen value types shared by every component.

The flow: a task yields :class:`Problem` s; a backend turns :class:`Request` s into
:class:`Completion` s; an expansion scores them into :class:`Candidate` s kept in a
:class:`Trace` (ungraded: ``correct is None``); the pipeline grades them; a strategy's pure
``select`` turns a trace into :class:`Selection` s, and the pipeline attaches each one's
measured :class:`Cost`.

This module is the bottom layer: it imports nothing of ttc-eval's, so that every other module
may import it (and ``import ttc_eval.types`` stays light).
"""

from __future__ import annotations

import base64
import math
import struct
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

BIN_KINDS = ("oracle", "predicted", "label")
"""Difficulty binnings a run can report: the policy's pass@1 (``oracle``), the mean verifier
score (``predicted``), the dataset's own labels (``label``)."""

POLICY = "policy"
"""The role of the model that proposes solutions; every run has one."""

CONFIDENCE_DECIMALS = 3
"""Token confidences are kept to 3 decimals, the precision DeepConf itself rounds them to."""


def token_confidence(top_logprobs: Iterable[float]) -> float:
    """DeepConf's token confidence (Fu et al. 2025): minus the mean of the top-k
    log-probabilities at one position, rounded as DeepConf rounds it. High when the model's
    distribution is peaked, low when it hesitates among alternatives."""
    values = [float(v) for v in top_logprobs if v is not None and math.isfinite(v)]
    if not values:
        return 0.0
    return round(-sum(values) / len(values), CONFIDENCE_DECIMALS)


def pack_confidences(values: Sequence[float]) -> str:
    """Token confidences as they are stored: little-endian 16-bit thousandths in base64, about
    2.7 characters a token instead of 6 or more for JSON numbers (lossless at DeepConf's own
    precision; values above 65.535, a top-k mean log-probability below -65.5 nats, which does
    not occur in practice, are clipped there)."""
    scaled = [min(max(round(v * 1000), 0), 65535) for v in values]
    return base64.b64encode(struct.pack(f"<{len(scaled)}H", *scaled)).decode("ascii")


def unpack_confidences(data: str | Sequence[float]) -> tuple[float, ...]:
    """The stored form back to confidences; a plain list of numbers is read as it is (an
    imported or hand-written trace)."""
    if not isinstance(data, str):
        return tuple(float(x) for x in data)
    raw = base64.b64decode(data.encode("ascii"), validate=True)
    if len(raw) % 2:
        raise ValueError("packed token confidences must be whole 16-bit values")
    return tuple(v / 1000 for v in struct.unpack(f"<{len(raw) // 2}H", raw))


@dataclass(frozen=True)
class Cost:
    """Compute measured for one choice, one candidate or one trace: what the engines were
    asked for and produced, never a nominal budget."""

    samples: float = 0
    """Generations (policy and reviser samples; search: step generations, rollouts included)."""
    prompt_tokens: float = 0
    """Prompt tokens as sent to the engines (a prompt sent with n samples counts n times)."""
    prompt_tokens_computed: float = 0
    """Prompt tokens an engine with prefix sharing computes: the question's prompt once per
    choice however many samples share it, a prompt of its own (a revision prompt) in full,
    and for search only the question's prompt (the rest of each step's prompt is text the
    model generated, cached as it was generated)."""
    generated_tokens: float = 0
    """Tokens generated."""
    verifier_tokens: float = 0
    """Tokens the verifier's own model read (0 for verifiers that read the policy's
    log-probabilities)."""
    seconds: float = 0
    """Wall seconds the expansion spent (shared in proportion to generated tokens; samples
    served by the generation cache cost only the time to read them)."""
    role_tokens: Mapping[str, float] = field(default_factory=dict)
    """Tokens each role's model processed (computed prompt plus generated; the verifier:
    read): the FLOPs of a role are 2 x its non-embedding parameters x these."""
    thinking_tokens: float = 0
    """Of ``generated_tokens``, those inside a reasoning model's thinking block (the rest
    are its answer's); 0 for runs without thinking delimiters."""

    def __add__(self, other: Cost) -> Cost:
        return Cost.total((self, other))

    def scaled(self, factor: float) -> Cost:
        """Every quantity times ``factor`` (a share, or 1/n for a mean)."""
        return Cost(
            self.samples * factor,
            self.prompt_tokens * factor,
            self.prompt_tokens_computed * factor,
            self.generated_tokens * factor,
            self.verifier_tokens * factor,
            self.seconds * factor,
            {k: v * factor for k, v in self.role_tokens.items()},
            self.thinking_tokens * factor,
        )

    @staticmethod
    def total(costs: Iterable[Cost]) -> Cost:
        # One pass, one dict: sums of many candidates sit on the report's hot path.
        # Integers stay integers (token counts), as a stored trace writes them.
        samples: float = 0
        sent: float = 0
        computed: float = 0
        generated: float = 0
        verifier: float = 0
        seconds: float = 0
        roles: dict[str, float] = {}
        thinking: float = 0
        for c in costs:
            samples += c.samples
            sent += c.prompt_tokens
            computed += c.prompt_tokens_computed
            generated += c.generated_tokens
            verifier += c.verifier_tokens
            seconds += c.seconds
            thinking += c.thinking_tokens
            for k, v in c.role_tokens.items():
                roles[k] = roles.get(k, 0) + v
        return Cost(samples, sent, computed, generated, verifier, seconds, roles, thinking)

    @staticmethod
    def mean(costs: Sequence[Cost]) -> Cost:
        return Cost.total(costs).scaled(1 / len(costs)) if costs else Cost()

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["role_tokens"] = dict(sorted(self.role_tokens.items()))
        if not self.thinking_tokens:
            d.pop("thinking_tokens")  # records of runs without thinking stay as they were
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Cost:
        return cls(
            samples=d.get("samples", 0),
            prompt_tokens=d.get("prompt_tokens", 0),
            prompt_tokens_computed=d.get("prompt_tokens_computed", 0),
            generated_tokens=d.get("generated_tokens", 0),
            verifier_tokens=d.get("verifier_tokens", 0),
            seconds=d.get("seconds", 0),
            role_tokens=dict(d.get("role_tokens") or {}),
            thinking_tokens=d.get("thinking_tokens", 0),
        )


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
    token_confidences: tuple[float, ...] | None = None
    """DeepConf confidence of each generated token (:func:`token_confidence` of the top-k
    log-probabilities there); ``None``: the backend recorded none (or an older cache entry)."""
    top_logprobs: tuple[tuple[float, ...], ...] | None = None
    """The raw top-k log-probabilities of each generated token, best first (only when the
    backend is asked to keep them: ``keep_top_logprobs=true``)."""

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        for key in ("token_confidences", "top_logprobs"):
            if d[key] is None:
                d.pop(key)  # entries stay as they were for backends that record none
        if self.token_confidences is not None:
            d["token_confidences"] = pack_confidences(self.token_confidences)
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Completion:
        lp = d.get("token_logprobs")
        te = d.get("token_ends")
        tc = d.get("token_confidences")
        top = d.get("top_logprobs")
        return cls(
            text=d["text"],
            n_tokens=int(d["n_tokens"]),
            finish_reason=d["finish_reason"],
            stop_reason=d.get("stop_reason"),
            prompt_tokens=int(d.get("prompt_tokens", 0)),
            token_logprobs=tuple(lp) if lp is not None else None,
            token_ends=tuple(te) if te is not None else None,
            token_confidences=unpack_confidences(tc) if tc is not None else None,
            top_logprobs=tuple(tuple(float(x) for x in t) for t in top)
            if top is not None
            else None,
        )


@dataclass(frozen=True)
class Candidate:
    """A scored solution in a trace; graded once the pipeline has set ``correct``."""

    index: int
    """Position in the question's pool (sample index)."""
    text: str
    """The solution text."""
    n_tokens: int
    """Generated tokens spent on this candidate."""
    finish_reason: str
    """Why generation stopped (``stop`` or ``length``)."""
    answer: str | None = None
    """Extracted final answer, ``None`` if none could be found (or not graded yet)."""
    vote_key: str | None = None
    """Canonical form of the answer: equal keys are the same answer for voting."""
    correct: bool | None = None
    """The grader's verdict; ``None`` until graded (an ungraded candidate is not a wrong one)."""
    step_scores: tuple[float, ...] | None = None
    """Verifier score of each step, when a verifier ran."""
    cost: Cost | None = None
    """What producing and scoring this candidate cost, beyond the question's shared prompt
    (``None``: a trace from before costs were recorded, or a search tree's shared beams)."""
    confidences: tuple[float, ...] | None = None
    """DeepConf confidence of each generated token (``None``: the backend recorded none, or
    a trace from before they were recorded); stored packed (:func:`pack_confidences`)."""
    top_logprobs: tuple[tuple[float, ...], ...] | None = None
    """Raw top-k log-probabilities of each generated token, when the backend kept them."""
    thinking_closed: bool | None = None
    """Whether its thinking block closed (``None``: the run has no thinking delimiters); one
    that never closed has no answer."""

    @property
    def graded(self) -> bool:
        return self.correct is not None

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        if self.cost is None:
            d.pop("cost")
        else:
            d["cost"] = {k: v for k, v in self.cost.to_dict().items() if v}
        for key in ("confidences", "top_logprobs", "thinking_closed"):
            if d[key] is None:
                d.pop(key)  # traces stay as they were when nothing was recorded
        if self.confidences is not None:
            d["confidences"] = pack_confidences(self.confidences)
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Candidate:
        ss = d.get("step_scores")
        correct = d.get("correct")
        cost = d.get("cost")
        conf = d.get("confidences")
        top = d.get("top_logprobs")
        return cls(
            index=int(d["index"]),
            text=d["text"],
            n_tokens=int(d["n_tokens"]),
            finish_reason=d["finish_reason"],
            answer=d.get("answer"),
            vote_key=d.get("vote_key"),
            correct=None if correct is None else bool(correct),
            step_scores=tuple(float(x) for x in ss) if ss is not None else None,
            cost=Cost.from_dict(cost) if cost is not None else None,
            confidences=unpack_confidences(conf) if conf is not None else None,
            top_logprobs=tuple(tuple(float(x) for x in t) for t in top)
            if top is not None
            else None,
            thinking_closed=d.get("thinking_closed"),
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
    cost: Cost | None = None
    """Everything this trace cost, measured (``None``: stored before costs were recorded;
    :func:`ttc_eval.pipeline.trace_cost` derives it from the fields above)."""
    verifier_role: str | None = None
    """The model role whose tokens the verifier's reading is counted under (``None``: no
    verifier, or one that runs no model of its own)."""
    companions: Mapping[str, Trace] = field(default_factory=dict, compare=False, repr=False)
    """Traces of other expansions of the same question that a strategy reads besides this
    one (:meth:`~ttc_eval.strategies._base.StrategyBase.also_reads`: a policy that runs a
    search in some bins), by the name the strategy gave them. Attached when a run is
    evaluated, never stored."""

    @property
    def graded(self) -> bool:
        return all(c.graded for c in self.candidates)

    def to_dict(self) -> dict[str, Any]:
        d = self._fields()
        if self.cost is not None:
            d["cost"] = self.cost.to_dict()
        if self.verifier_role is not None:
            d["verifier_role"] = self.verifier_role
        return d

    def _fields(self) -> dict[str, Any]:
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
            cost=Cost.from_dict(d["cost"]) if d.get("cost") is not None else None,
            verifier_role=d.get("verifier_role"),
        )


@dataclass(frozen=True)
class Selection:
    """What a strategy chose from one group of candidates at one budget."""

    answer: str | None
    """The chosen answer's vote key (``None``: no answer)."""
    correct: bool
    """Whether the chosen answer is correct."""
    n_generations: int
    """Samples this choice spent, as the strategy counts its budget."""
    n_tokens: int
    """Generated tokens this choice spent."""
    index: int | None = None
    """Pool index of the chosen candidate in the trace (``None``: no answer); its text is what
    a caller that wants the output (the lm-eval ``ttc`` model) returns."""
    read: tuple[int, ...] = ()
    """Pool indices of every candidate this choice read: its measured cost is theirs."""
    cut: tuple[tuple[int, int], ...] = ()
    """(pool index, generated tokens spent) of each candidate in ``read`` that the strategy
    stopped part-way (DeepConf online): only those tokens of its generation are charged."""
    cost: Cost | None = None
    """Measured cost, attached by the pipeline (never by the strategy)."""
    scored: tuple[int, ...] | None = None
    """Pool indices whose verifier scores this choice read (``None``: all it read when the
    strategy declares ``needs_verifier``, none otherwise). A policy that runs majority in
    one group and best-of-N in another pays for the verifier's reading only in the second,
    and for the probe's alone when only its estimator read scores."""
    elsewhere: tuple[tuple[str, Selection], ...] = ()
    """Choices made on companion traces (:attr:`Trace.companions`, by name), whose measured
    cost the pipeline adds to this one's: a policy's probe is read here, the search it chose
    ran there. The question's prompt is charged once."""
    picked_in: str | None = None
    """The companion whose trace holds the chosen candidate ``index`` (``None``: this trace)."""


@dataclass(frozen=True)
class QuestionResult:
    """A strategy's expected outcome on one question at one budget."""

    accuracy: float
    """Mean correctness over the disjoint groups of the pool (or an unbiased estimate)."""
    n_generations: float
    """Mean samples spent per choice (the strategy's own count: nominal for search)."""
    n_tokens: float
    """Mean generated tokens spent per choice."""
    cost: Cost = field(default_factory=Cost)
    """Mean measured cost per choice."""
    thinking_max: int | None = None
    """The most thinking tokens of one candidate any choice read (``None``: the run has no
    thinking delimiters)."""
    unclosed: float | None = None
    """Mean share of the candidates a choice read whose thinking never closed (so had no
    answer); ``None``: the run has no thinking delimiters."""
    overrun: bool = False
    """An engine returned more tokens than the cap it was given for one of the question's
    samples (the sample was cut back to its cap, and the row counts the question)."""
