"""Strategy ``revisions``: sequential self-revision chains, and every parallel x sequential
shape derived from one pool of chains.

The expansion generates C chains of L attempts per question. A chain starts from an ordinary
sample; attempt t is generated with the chain's last ``MAX_CONTEXT`` (4, as in Snell et al.)
previous attempts in the prompt, oldest first, through the revision template. A shape of
``p`` parallel chains x ``s`` sequential attempts (p <= C, s <= L) reads the first ``s``
attempts of ``p`` chains: exactly what running that shape directly would generate, because
attempt t of a chain depends only on the chain's earlier attempts. So one pool answers a
whole sweep over the parallel/sequential ratio and over budgets.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import replace
from typing import Any

from ttc_eval.aggregation import aggregate, check_aggregation
from ttc_eval.analysis.estimators import disjoint_groups
from ttc_eval.errors import UsageError
from ttc_eval.registry import STRATEGIES, expansion, strategy
from ttc_eval.strategies._base import (
    ExpansionContext,
    ExpansionSpec,
    RunDefaults,
    Strategy,
    StrategyBase,
    choice,
    scored_trace,
    vote,
)
from ttc_eval.types import POLICY, Candidate, Completion, Problem, Request, Selection, Trace

REVISER = "reviser"
"""The model role that writes revisions."""

MAX_CONTEXT = 4
"""Previous attempts of a chain shown to the reviser (the paper keeps the last 4)."""

DEFAULT_REVISION_TEMPLATE = (
    "{question}\n\n"
    "Here are earlier attempts at this problem, oldest first. They may contain mistakes.\n\n"
    "{attempts}\n\n"
    "Check them and write a new, complete solution in the same format."
)
"""Revision prompt: ``{question}`` is the task's own user message, ``{attempts}`` the chain's
previous attempts. Override per task (``revision_template`` in its YAML) or per run
(``--revision-template FILE``, the reviser role's template), e.g. to match a fine-tuned
revision model's format."""

SELECTIONS = ("majority", "verifier", "last")


def revision_messages(
    base: Sequence[Mapping[str, str]], attempts: Sequence[str], template: str
) -> list[dict[str, str]]:
    """The task's messages with its last user message wrapped in the revision template,
    holding the last ``MAX_CONTEXT`` attempts in order. Plain substitution, not
    ``str.format``, so that templates may hold LaTeX braces."""
    shown = list(attempts)[-MAX_CONTEXT:]
    first = len(attempts) - len(shown) + 1
    block = "\n\n".join(f"Attempt {first + i}:\n{a.strip()}" for i, a in enumerate(shown))
    messages = [dict(m) for m in base]
    last = max(i for i, m in enumerate(messages) if m["role"] == "user")
    question = messages[last]["content"]
    messages[last]["content"] = template.replace("{question}", question).replace(
        "{attempts}", block
    )
    return messages


@expansion("revisions")
class RevisionExpansion:
    """``chains`` x ``length`` attempts per question: one backend call per round for all
    chains of all questions in a chunk; round 0 on the policy, later rounds on the
    ``reviser`` role's model (the policy unless another is named)."""

    def __init__(self, chains: int, length: int, temperature: float, reviser: str) -> None:
        if chains < 1 or length < 1:
            raise UsageError(f"revisions need chains >= 1 and length >= 1, got {chains}x{length}")
        self.chains = chains
        self.length = length
        self.temperature = temperature
        self.reviser = reviser
        """Key of the reviser role's model and template (the run's role keys name it)."""

    def run(self, problems: Sequence[Problem], ctx: ExpansionContext) -> Iterator[list[Trace]]:
        params = replace(ctx.params, temperature=self.temperature)
        reviser = ctx.backend_for(REVISER)
        template = ctx.templates.get(REVISER, DEFAULT_REVISION_TEMPLATE)
        per_chunk = max(1, ctx.chunk_samples // self.chains)
        for start in range(0, len(problems), per_chunk):
            chunk = problems[start : start + per_chunk]
            first = ctx.backend.generate(
                [Request(ctx.render(p), params, tuple(range(self.chains))) for p in chunk]
            )
            # chains[q][c] = the completions of chain c of question q, in order.
            chains = [[[c] for c in comps] for comps in first]
            for _ in range(1, self.length):
                requests = [
                    Request(
                        reviser.render(
                            revision_messages(ctx.messages(p), [a.text for a in chain], template)
                        ),
                        params,
                        (c,),
                    )
                    for p, q_chains in zip(chunk, chains, strict=True)
                    for c, chain in enumerate(q_chains)
                ]
                outputs = iter(reviser.generate(requests))
                for q_chains in chains:
                    for chain in q_chains:
                        (comp,) = next(outputs)
                        chain.append(comp)
            yield [self._trace(p, q_chains, ctx) for p, q_chains in zip(chunk, chains, strict=True)]

    def _trace(self, p: Problem, chains: list[list[Completion]], ctx: ExpansionContext) -> Trace:
        attempts = [a for chain in chains for a in chain]  # chain-major: index = c * L + t
        firsts = [i % self.length == 0 for i in range(len(attempts))]
        return scored_trace(
            p,
            attempts,
            [POLICY if f else REVISER for f in firsts],
            firsts,
            ctx,
            extra={"chains": self.chains, "length": self.length},
        )


@strategy("revisions")
class Revisions(StrategyBase):
    """Sequential revisions: p parallel chains x s revisions, all shapes from one pool of
    chains; select by ``majority`` (all attempts), ``verifier`` (best attempt per chain, then
    weighted best-of-N across chains) or ``last`` (majority over each chain's last attempt)."""

    roles: Mapping[str, str | None] = {REVISER: DEFAULT_REVISION_TEMPLATE}
    """Revisions are written by the ``reviser`` role (the policy unless another is named)."""

    def __init__(
        self,
        select: str = "majority",
        sequential: int | None = None,
        chains: int | None = None,
        length: int | None = None,
        aggregation: str | None = None,
    ) -> None:
        if select not in SELECTIONS:
            raise UsageError(f"revisions: select={select!r}; choose one of {', '.join(SELECTIONS)}")
        check_aggregation(aggregation or "last", "revisions")
        for arg, v in (("sequential", sequential), ("chains", chains), ("length", length)):
            if v is not None and (not isinstance(v, int) or isinstance(v, bool) or v < 1):
                raise UsageError(f"revisions: {arg} must be a positive integer, got {v!r}")
        self.select_mode = select
        self.sequential = sequential
        self.chains = chains
        self.length = length
        self.aggregation = aggregation or "last"
        self.needs_verifier = select == "verifier"

    def canonical_args(self, args: Mapping[str, Any]) -> dict[str, Any]:
        # The aggregation matters only to select=verifier, and ``last`` is the default: as
        # labels have always been written.
        out = dict(args)
        if out.get("select") != "verifier" or out.get("aggregation") == "last":
            out.pop("aggregation", None)
        return out

    def _pool(self, budgets: Sequence[int]) -> tuple[int, int]:
        top = max(budgets)
        return self.chains or top, self.length or top

    def variants(
        self, budgets: Sequence[int], thinking_budgets: Sequence[int] = ()
    ) -> Sequence[Strategy]:
        """Without ``sequential``, one configuration per sequential length s that fits some
        budget (budget 4: shapes 4x1, 2x2, 1x4), all reading the same pool."""
        if self.sequential is not None:
            return [self]
        chains, length = self._pool(budgets)
        lengths = sorted(
            {
                s
                for b in budgets
                for s in range(1, min(b, length) + 1)
                if b % s == 0 and b // s <= chains
            }
        )
        return [STRATEGIES.create(self.name, **{**self.args, "sequential": s}) for s in lengths]

    def expansion(self, budget: int, defaults: RunDefaults) -> ExpansionSpec:
        chains, length = self._pool(defaults.budgets)
        return ExpansionSpec.of(
            "revisions",
            chains=chains,
            length=length,
            temperature=defaults.params.temperature,
            reviser=defaults.role_key(REVISER),
        )

    def budgets(self, requested: Sequence[int]) -> list[int]:
        chains, length = self._pool(requested)
        s = self.sequential or 1
        return [b for b in requested if b % s == 0 and b // s <= chains and s <= length]

    def shape(self, budget: int) -> str | None:
        s = self.sequential or 1
        return f"{budget // s}x{s}"

    def _score(self, c: Candidate) -> float:
        if c.step_scores is None:
            raise UsageError("revisions:select=verifier needs verifier scores; pass --verifier")
        return aggregate(c.step_scores, self.aggregation)

    def _choose(self, chains: Sequence[Sequence[Candidate]]) -> Candidate | None:
        if self.select_mode == "majority":
            pool = [a for chain in chains for a in chain]
            return vote(pool, [1.0] * len(pool))
        if self.select_mode == "last":
            lasts = [chain[-1] for chain in chains]
            return vote(lasts, [1.0] * len(lasts))
        # verifier: the best-scored attempt of each chain (earliest on ties), then weighted
        # best-of-N over those.
        bests = [max(chain, key=lambda a: (self._score(a), -a.index)) for chain in chains]
        return vote(bests, [self._score(a) for a in bests])

    def select(self, trace: Trace, budget: int) -> list[Selection]:
        s = self.sequential or 1
        p = budget // s
        chains, length = int(trace.extra["chains"]), int(trace.extra["length"])
        out = []
        for group in disjoint_groups(chains, p):
            picked = [[trace.candidates[c * length + t] for t in range(s)] for c in group]
            out.append(choice(self._choose(picked), [a for chain in picked for a in chain]))
        return out
