"""What strategies and expansions are, and what an expansion may use.

A :class:`Strategy` names the expensive trace it reads (``expansion``) and picks answers from
it (``select``: cheap and pure, no model, no I/O). An :class:`Expansion` produces that trace,
batched across questions, from an :class:`ExpansionContext`: the backends of the run's model
roles, the verifier, the sampling parameters. Capabilities (``is_oracle``,
``needs_confidences``, ``variants``, ``shape``, ``roles``, ``estimate``,
``also_reads``) are declared on
:class:`StrategyBase` with defaults, never probed; the registry sets ``name`` and ``args``
when it builds a strategy.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from ttc_eval.analysis.estimators import disjoint_groups
from ttc_eval.backends._base import Backend
from ttc_eval.registry import label_of
from ttc_eval.strategies._batch import GroupChoices, PoolBatch
from ttc_eval.thinking import Thinking
from ttc_eval.types import (
    POLICY,
    Candidate,
    Completion,
    Cost,
    Problem,
    SamplingParams,
    Selection,
    Trace,
)
from ttc_eval.verifiers._base import Verifier, to_solution


@dataclass(frozen=True)
class ExpansionSpec:
    """Which expansion a strategy needs, with its arguments (the trace store keys on it)."""

    kind: str
    """Registered expansion name."""
    args: tuple[tuple[str, Any], ...] = ()
    """Arguments, sorted by name."""

    @property
    def key(self) -> str:
        inner = ",".join(f"{k}={v}" for k, v in self.args)
        return f"{self.kind}({inner})"

    @classmethod
    def of(cls, kind: str, **args: Any) -> ExpansionSpec:
        return cls(kind, tuple(sorted(args.items())))


@dataclass(frozen=True)
class RunDefaults:
    """Run-level settings that strategies turn into expansion arguments."""

    params: SamplingParams
    """Sampling parameters of the run."""
    budgets: tuple[int, ...] = (1,)
    """All budgets of the run (a shared pool is sized for the largest)."""
    step_delimiter: str = "\n\n"
    """Separates the steps of a solution (step-wise search stops generation there)."""
    role_keys: Mapping[str, str] = field(default_factory=dict)
    """Names each non-policy role's model and template in expansion keys (``policy`` when
    the role is played by the policy with built-in templates), so that stored traces are
    never reused across models of a role."""

    thinking_budgets: tuple[int, ...] = ()
    """Thinking budgets (tokens) of the run's sweep (``--thinking-budgets``)."""
    thinking: str = "none"
    """The run's thinking delimiters as ``--thinking`` names them (keys thinking traces)."""

    def role_key(self, role: str) -> str:
        return self.role_keys.get(role, POLICY)


@dataclass(frozen=True)
class ExpansionContext:
    """What an expansion may use: a backend per model role, the verifier, the settings."""

    backends: Mapping[str, Backend]
    """A (cached) backend per role: ``policy`` and every role the run's components declare
    (a role nobody named is played by the policy's backend)."""
    verifier: Verifier | None
    """Scores steps (``None``: the run has no verifier)."""
    verifier_role: str | None
    """The role whose model the verifier runs (its tokens are counted there), if any."""
    params: SamplingParams
    """The run's sampling parameters."""
    render: Callable[[Problem], str]
    """A problem to the policy's prompt text."""
    messages: Callable[[Problem], list[dict[str, str]]]
    """A problem to the task's chat messages (for roles that wrap them in their own prompt)."""
    templates: Mapping[str, str]
    """Prompt template in force per role that has one (the run's ``--role R=M:template=FILE``
    or ``roles:`` map, else the task's, else the component's built-in one)."""
    step_delimiter: str
    """Separates the steps of a solution."""
    chunk_samples: int
    """Samples generated between writes of finished questions."""
    thinking: Thinking | None = None
    """The run's thinking delimiters (``None``: an ordinary model): expansions count each
    sample's thinking tokens and whether its thinking closed."""

    @property
    def backend(self) -> Backend:
        return self.backends[POLICY]

    def backend_for(self, role: str) -> Backend:
        return self.backends.get(role, self.backends[POLICY])


class Expansion(Protocol):
    """The expensive part: generation and verifier scoring, batched across questions. Yields
    scored, ungraded traces chunk by chunk (the pipeline grades, times and stores them)."""

    def run(self, problems: Sequence[Problem], ctx: ExpansionContext) -> Iterator[list[Trace]]: ...


class Strategy(Protocol):
    """A registered factory's product: how to spend a budget and how to pick an answer."""

    name: str
    """Registered name (set by the registry)."""
    args: Mapping[str, Any]
    """Every argument it was built with, defaults filled in (set by the registry)."""
    needs_verifier: bool
    """Whether ``select`` reads verifier scores."""
    is_oracle: bool
    """Reads correctness to choose (coverage): never a candidate of compute-optimal choices."""
    needs_confidences: bool
    """Whether ``select`` reads the candidates' token confidences (DeepConf)."""
    fitted_on: frozenset[str]
    """Questions (``task:problem id``) it was fitted on (a difficulty-adaptive policy): a run
    of any of them is refused."""
    fitted_text: frozenset[str]
    """The same questions by their text (:func:`ttc_eval.policy.text_key`), so that one under
    another task name or id is refused too."""
    thinking_cap: int | None
    """Thinking tokens it allows each sample (``thinking_budget``), checked against what
    was measured; ``None``: no cap."""
    fitted_files: Mapping[str, bytes]
    """Files its choices are read from (a policy file), by the argument that names them, with
    the exact bytes read: a run keeps a copy in its ``policies/`` folder, and its reports
    read that copy."""

    @property
    def roles(self) -> Mapping[str, str | None]:
        """Model roles it uses besides the policy, with the built-in prompt template of each."""
        ...

    def label(self) -> str:
        """Name with arguments: what tables and rows call this configuration."""
        ...

    def canonical_args(self, args: Mapping[str, Any]) -> dict[str, Any]:
        """The recorded arguments less those that do not change what it does, so that equal
        configurations share one label."""
        ...

    def expansion(self, budget: int, defaults: RunDefaults) -> ExpansionSpec:
        """The expansion whose trace ``select`` reads at ``budget``; strategies that reuse
        one pool return the same spec for every budget."""
        ...

    def also_reads(self, budget: int, defaults: RunDefaults) -> Mapping[str, ExpansionSpec]:
        """Other expansions ``select`` reads at ``budget`` besides its own, by the name it
        finds their traces under in :attr:`~ttc_eval.types.Trace.companions` (a policy
        that runs a search in some bins); empty for almost every strategy."""
        ...

    def budgets(self, requested: Sequence[int]) -> list[int]: ...

    def variants(
        self, budgets: Sequence[int], thinking_budgets: Sequence[int] = ()
    ) -> Sequence[Strategy]:
        """The configurations this one stands for (revisions: one per shape; thinking
        budgets: one per budget of the run's ``--thinking-budgets``)."""
        ...

    def shape(self, budget: int) -> str | None:
        """Parallel x sequential shape at ``budget``, for strategies that have one."""
        ...

    def select(self, trace: Trace, budget: int) -> list[Selection]:
        """One choice per disjoint group of ``budget`` generations (pure, no model); each
        lists the candidates it read (``read``), which is what it cost."""
        ...

    def estimate(self, trace: Trace, budget: int) -> float | None:
        """An accuracy estimate that replaces the mean over the choices (coverage's unbiased
        pass@k), or ``None``."""
        ...


class StrategyBase(ABC):
    """Defaults of every declared capability; subclasses override what they have and
    implement ``expansion`` and ``select``."""

    name = ""
    args: Mapping[str, Any] = {}
    needs_verifier = False
    is_oracle = False
    needs_confidences = False
    fitted_on: frozenset[str] = frozenset()
    fitted_text: frozenset[str] = frozenset()
    fitted_files: Mapping[str, bytes] = {}
    thinking_cap: int | None = None
    roles: Mapping[str, str | None] = {}
    """Model roles it uses besides the policy, with the built-in prompt template of each
    (a class constant for most; a policy names those of what it may run)."""

    def label(self) -> str:
        return label_of(self.name, self.args)

    def canonical_args(self, args: Mapping[str, Any]) -> dict[str, Any]:
        return dict(args)

    @abstractmethod
    def expansion(self, budget: int, defaults: RunDefaults) -> ExpansionSpec: ...

    @abstractmethod
    def select(self, trace: Trace, budget: int) -> list[Selection]: ...

    def also_reads(self, budget: int, defaults: RunDefaults) -> Mapping[str, ExpansionSpec]:
        return {}

    def budgets(self, requested: Sequence[int]) -> list[int]:
        return list(requested)

    def variants(
        self, budgets: Sequence[int], thinking_budgets: Sequence[int] = ()
    ) -> Sequence[Strategy]:
        return [self]

    def shape(self, budget: int) -> str | None:
        return None

    def estimate(self, trace: Trace, budget: int) -> float | None:
        return None


def choice(
    pick: Candidate | None,
    read: Sequence[Candidate],
    n_generations: int | None = None,
    n_tokens: int | None = None,
) -> Selection:
    """The selection of ``pick`` after reading ``read`` (spent: those candidates, unless the
    strategy counts its budget otherwise, as search does)."""
    return Selection(
        answer=pick.vote_key if pick else None,
        correct=bool(pick and pick.correct),
        n_generations=len(read) if n_generations is None else n_generations,
        n_tokens=sum(c.n_tokens for c in read) if n_tokens is None else n_tokens,
        index=pick.index if pick else None,
        read=tuple(c.index for c in read),
    )


class PoolStrategy(StrategyBase):
    """A strategy that picks from groups of a sample pool; subclasses define ``choose``."""

    def expansion(self, budget: int, defaults: RunDefaults) -> ExpansionSpec:
        # One pool at the largest budget serves every budget.
        n = max(defaults.budgets)
        return ExpansionSpec.of("sample", n=n, temperature=defaults.params.temperature)

    @abstractmethod
    def choose(self, group: Sequence[Candidate]) -> Candidate | None: ...

    def read(self, group: Sequence[Candidate]) -> Sequence[Candidate]:
        """The candidates a choice reads, in pool order: the whole group, unless the strategy
        stops early (an adaptive rule); what it reads is what it is charged."""
        return group

    def select(self, trace: Trace, budget: int) -> list[Selection]:
        """One selection per disjoint group of ``budget`` samples, chosen among what it read."""
        out = []
        for g in disjoint_groups(len(trace.candidates), budget):
            read = self.read([trace.candidates[i] for i in g])
            out.append(choice(self.choose(read), read))
        return out

    def select_many(self, batch: PoolBatch, budget: int) -> GroupChoices | None:
        """``select``'s choices on every question of ``batch`` at once, as arrays (what a
        report evaluates: :func:`~ttc_eval.pipeline.evaluate_many`); ``None``: this
        strategy has no such path, or not for these pools, and ``select`` makes them."""
        return None

    def batched_by(self, cls: type) -> bool:
        """Whether ``cls.select_many`` speaks for this object: no subclass of ``cls``
        changes how it reads, chooses or selects (a subclass that does, and has no
        ``select_many`` of its own, is evaluated by its ``select``)."""
        mro = type(self).__mro__
        for name in ("read", "choose", "select", "select_many", "estimate"):
            owner = next(c for c in mro if name in vars(c))
            if not issubclass(cls, owner):
                return False
        return True


def vote(group: Sequence[Candidate], weights: Sequence[float]) -> Candidate | None:
    """The candidate whose answer has the largest total weight.

    Candidates without an answer do not vote. Ties go to the answer that appears first in
    pool order (deterministic), and the returned candidate is that answer's first holder.
    """
    totals: dict[str, float] = {}
    first: dict[str, Candidate] = {}
    for c, w in zip(group, weights, strict=True):
        if c.vote_key is None:
            continue
        totals[c.vote_key] = totals.get(c.vote_key, 0.0) + w
        first.setdefault(c.vote_key, c)
    if not totals:
        return None
    best = max(totals.values())
    winner = next(k for k in first if totals[k] == best)
    return first[winner]


def shared_prompt_cost(prompt_tokens: int) -> Cost:
    """The question's prompt, computed once per choice however many samples share it."""
    return Cost(prompt_tokens_computed=prompt_tokens, role_tokens={POLICY: prompt_tokens})


def split_evenly(total: int, parts: int) -> list[int]:
    """``total`` in ``parts`` integers that sum to it (the first ones get the remainder)."""
    if parts <= 0:
        return []
    q, r = divmod(total, parts)
    return [q + (1 if i < r else 0) for i in range(parts)]


def scored_trace(
    problem: Problem,
    completions: Sequence[Completion],
    roles: Sequence[str],
    shares_prompt: Sequence[bool],
    ctx: ExpansionContext,
    extra: Mapping[str, Any] | None = None,
) -> Trace:
    """A trace of one candidate per completion (pool order), scored by the run's verifier,
    with each candidate's measured cost: completion i was generated by ``roles[i]``;
    ``shares_prompt[i]`` says its prompt is the question's own (computed once per choice,
    see :func:`shared_prompt_cost`) rather than one of its own (a revision prompt)."""
    scores: list[tuple[float, ...] | None] = [None] * len(completions)
    verifier_tokens = [0] * len(completions)
    if ctx.verifier is not None:
        before = ctx.verifier.tokens_read
        sols = [to_solution(c, ctx.step_delimiter) for c in completions]
        scores = list(ctx.verifier.score(problem, sols))
        # The verifier reads a question's solutions in one call; its tokens are shared out.
        verifier_tokens = split_evenly(ctx.verifier.tokens_read - before, len(completions))
    candidates = []
    for i, (comp, s, vt, role, shared) in enumerate(
        zip(completions, scores, verifier_tokens, roles, shares_prompt, strict=True)
    ):
        computed = 0 if shared else comp.prompt_tokens
        role_tokens: dict[str, float] = {role: computed + comp.n_tokens}
        if vt and ctx.verifier_role:
            role_tokens[ctx.verifier_role] = vt
        thinking = ctx.thinking
        cost = Cost(
            samples=1,
            prompt_tokens=comp.prompt_tokens,
            prompt_tokens_computed=computed,
            generated_tokens=comp.n_tokens,
            verifier_tokens=vt,
            role_tokens=role_tokens,
            thinking_tokens=thinking.thinking_tokens(comp.text, comp.token_ends, comp.n_tokens)
            if thinking is not None
            else 0,
        )
        candidates.append(
            Candidate(
                i,
                comp.text,
                comp.n_tokens,
                comp.finish_reason,
                step_scores=s,
                cost=cost,
                confidences=comp.token_confidences,
                top_logprobs=comp.top_logprobs,
                thinking_closed=thinking.closed(comp.text) if thinking is not None else None,
            )
        )
    base = next(
        (c.prompt_tokens for c, sh in zip(completions, shares_prompt, strict=True) if sh), 0
    )
    total = Cost.total(c.cost for c in candidates if c.cost is not None)
    return Trace(
        problem_id=problem.id,
        expansion="",  # set by the pipeline from the spec
        candidates=tuple(candidates),
        prompt_tokens=base,
        generated_tokens=sum(c.n_tokens for c in completions),
        n_generations=len(completions),
        verifier=ctx.verifier.name if ctx.verifier else None,
        verifier_tokens=sum(verifier_tokens),
        labels=dict(problem.labels),
        extra=dict(extra or {}),
        cost=total + shared_prompt_cost(base) if completions else total,
        verifier_role=ctx.verifier_role if ctx.verifier is not None else None,
    )
