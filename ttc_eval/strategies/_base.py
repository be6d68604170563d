"""Strategy protocol: ``expansion`` names the expensive trace a strategy reads; ``select`` is
cheap and pure (no model, no I/O) and picks an answer from a trace at a budget."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from ttc_eval.analysis.estimators import disjoint_groups
from ttc_eval.types import Candidate, Problem, SamplingParams, Selection, Trace


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
class QuestionResult:
    """A strategy's expected outcome on one question at one budget."""

    accuracy: float
    """Mean correctness over the disjoint groups of the pool (or an unbiased estimate)."""
    n_generations: float
    """Mean samples spent per choice."""
    n_tokens: float
    """Mean generated tokens spent per choice."""


@dataclass(frozen=True)
class RunDefaults:
    """Run-level settings that strategies turn into expansion arguments."""

    params: SamplingParams
    """Sampling parameters of the run."""
    budgets: tuple[int, ...] = (1,)
    """All budgets of the run (a shared pool is sized for the largest)."""
    step_delimiter: str = "\n\n"
    """Separates the steps of a solution (step-wise search stops generation there)."""
    reviser: str = "policy"
    """Names the revision model and template (``revisions`` keys its pool on it)."""


class Strategy(Protocol):
    """A registered factory's product: how to spend a budget and how to pick an answer."""

    name: str
    """Registered name."""
    args: Mapping[str, Any]
    """Arguments as given (recorded in the run config and every result row)."""
    needs_verifier: bool
    """Whether ``select`` reads verifier scores."""

    def expansion(self, budget: int, defaults: RunDefaults) -> ExpansionSpec:
        """The expansion whose trace ``evaluate`` reads at ``budget``; strategies that reuse
        one pool return the same spec for every budget."""
        ...

    def budgets(self, requested: Sequence[int]) -> list[int]: ...

    def select(self, trace: Trace, budget: int) -> list[Selection]:
        """One choice per disjoint group of ``budget`` generations (pure, no model)."""
        ...

    def evaluate(self, trace: Trace, budget: int) -> QuestionResult: ...


class Expansion(Protocol):
    """The expensive part: generation and verifier scoring, batched across questions."""

    def run(self, problems: Sequence[Problem], ctx: Any) -> Iterator[list[Trace]]: ...


class PoolStrategy:
    """A strategy that picks from groups of a sample pool; subclasses define ``choose``."""

    name = ""
    needs_verifier = False

    def __init__(self, **args: Any) -> None:
        self.args: Mapping[str, Any] = args

    def label(self) -> str:
        inner = ",".join(f"{k}={v}" for k, v in sorted(self.args.items()))
        return f"{self.name}({inner})" if inner else self.name

    def expansion(self, budget: int, defaults: RunDefaults) -> ExpansionSpec:
        # One pool at the largest budget serves every budget.
        n = max(defaults.budgets)
        return ExpansionSpec.of("sample", n=n, temperature=defaults.params.temperature)

    def budgets(self, requested: Sequence[int]) -> list[int]:
        return list(requested)

    def choose(self, group: Sequence[Candidate]) -> Candidate | None:
        raise NotImplementedError

    def select(self, trace: Trace, budget: int) -> list[Selection]:
        """One selection per disjoint group of ``budget`` samples."""
        out = []
        for g in disjoint_groups(len(trace.candidates), budget):
            group = [trace.candidates[i] for i in g]
            pick = self.choose(group)
            out.append(
                Selection(
                    answer=pick.vote_key if pick else None,
                    correct=bool(pick and pick.correct),
                    n_generations=len(group),
                    n_tokens=sum(c.n_tokens for c in group),
                    index=pick.index if pick else None,
                )
            )
        return out

    def evaluate(self, trace: Trace, budget: int) -> QuestionResult:
        sels = self.select(trace, budget)
        n = len(sels)
        return QuestionResult(
            accuracy=sum(s.correct for s in sels) / n,
            n_generations=sum(s.n_generations for s in sels) / n,
            n_tokens=sum(s.n_tokens for s in sels) / n,
        )


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
