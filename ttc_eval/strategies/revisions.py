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

import hashlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import replace
from typing import Any

from ttc_eval.analysis.estimators import disjoint_groups
from ttc_eval.errors import UsageError
from ttc_eval.registry import expansion, strategy
from ttc_eval.strategies._base import ExpansionSpec, PoolStrategy, RunDefaults, vote
from ttc_eval.types import Candidate, Problem, Request, Selection, Trace
from ttc_eval.verifiers._base import AGGREGATIONS, aggregate, to_solution

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
(``--revision-template FILE``), e.g. to match a fine-tuned revision model's format."""

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


def revision_key(model: str | None, template: str | None) -> str:
    """Names the reviser in expansion keys, so stored chains are never reused across
    revision models or templates (the task's own template is covered by its version)."""
    if model is None and template is None:
        return "policy"
    blob = f"{model or ''}\n{template or ''}"
    return hashlib.sha256(blob.encode()).hexdigest()[:10]


@expansion("revisions")
class RevisionExpansion:
    """``chains`` x ``length`` attempts per question: one backend call per round for all
    chains of all questions in a chunk; round 0 on the policy, later rounds on the reviser."""

    def __init__(self, chains: int, length: int, temperature: float, reviser: str) -> None:
        if chains < 1 or length < 1:
            raise UsageError(f"revisions need chains >= 1 and length >= 1, got {chains}x{length}")
        self.chains = chains
        self.length = length
        self.temperature = temperature
        self.reviser = reviser

    def run(self, problems: Sequence[Problem], ctx: Any) -> Iterator[list[Trace]]:
        if ctx.revision_key != self.reviser:
            raise UsageError(
                f"stored revision expansion is for reviser {self.reviser}, "
                f"this run's is {ctx.revision_key}"
            )
        params = replace(ctx.params, temperature=self.temperature)
        render_revision: Callable[[Problem, Sequence[str]], str] | None = ctx.render_revision
        if render_revision is None:
            raise UsageError("the revisions expansion needs a context with render_revision")
        reviser = ctx.revision_backend or ctx.backend
        per_chunk = max(1, ctx.chunk_samples // self.chains)
        for start in range(0, len(problems), per_chunk):
            chunk = problems[start : start + per_chunk]
            first = ctx.backend.generate(
                [Request(ctx.render(p), params, tuple(range(self.chains))) for p in chunk]
            )
            # chains[q][c] = the completions of chain c of question q, in order.
            chains = [[[c] for c in comps] for comps in first]
            revision_prompt_tokens = [0] * len(chunk)
            for _ in range(1, self.length):
                requests = [
                    Request(render_revision(p, [a.text for a in chain]), params, (c,))
                    for p, q_chains in zip(chunk, chains, strict=True)
                    for c, chain in enumerate(q_chains)
                ]
                outputs = iter(reviser.generate(requests))
                for qi, q_chains in enumerate(chains):
                    for chain in q_chains:
                        (comp,) = next(outputs)
                        chain.append(comp)
                        revision_prompt_tokens[qi] += comp.prompt_tokens
            yield [
                self._trace(p, q_chains, tokens, ctx)
                for p, q_chains, tokens in zip(chunk, chains, revision_prompt_tokens, strict=True)
            ]

    def _trace(self, p: Problem, chains: list[list[Any]], revision_tokens: int, ctx: Any) -> Trace:
        attempts = [a for chain in chains for a in chain]  # chain-major: index = c * L + t
        scores: list[tuple[float, ...] | None] = [None] * len(attempts)
        read_before = ctx.verifier.tokens_read if ctx.verifier else 0
        if ctx.verifier is not None:
            scores = list(
                ctx.verifier.score(p, [to_solution(a, ctx.step_delimiter) for a in attempts])
            )
        cands = tuple(
            Candidate(
                index=i,
                text=a.text,
                n_tokens=a.n_tokens,
                finish_reason=a.finish_reason,
                answer=None,
                vote_key=None,
                correct=False,
                step_scores=s,
            )
            for i, (a, s) in enumerate(zip(attempts, scores, strict=True))
        )
        return Trace(
            problem_id=p.id,
            expansion="",
            candidates=cands,
            prompt_tokens=attempts[0].prompt_tokens if attempts else 0,
            generated_tokens=sum(a.n_tokens for a in attempts),
            n_generations=len(attempts),
            verifier=ctx.verifier.name if ctx.verifier else None,
            verifier_tokens=(ctx.verifier.tokens_read - read_before) if ctx.verifier else 0,
            labels=dict(p.labels),
            extra={
                "chains": self.chains,
                "length": self.length,
                "revision_prompt_tokens": revision_tokens,
                # Revision prompts hold earlier attempts, so they are longer than the first.
                "prompt_tokens_total": (attempts[0].prompt_tokens if attempts else 0) * self.chains
                + revision_tokens,
            },
        )


@strategy("revisions")
class Revisions(PoolStrategy):
    """Sequential revisions: p parallel chains x s revisions, all shapes from one pool of
    chains; select by ``majority`` (all attempts), ``verifier`` (best attempt per chain, then
    weighted best-of-N across chains) or ``last`` (majority over each chain's last attempt)."""

    name = "revisions"

    def __init__(
        self,
        select: str = "majority",
        sequential: int | None = None,
        chains: int | None = None,
        length: int | None = None,
        aggregation: str = "last",
    ) -> None:
        if select not in SELECTIONS:
            raise UsageError(f"revisions: select={select!r}; choose one of {', '.join(SELECTIONS)}")
        if aggregation not in AGGREGATIONS:
            raise UsageError(
                f"revisions: aggregation={aggregation!r}; choose one of {', '.join(AGGREGATIONS)}"
            )
        for arg, v in (("sequential", sequential), ("chains", chains), ("length", length)):
            if v is not None and (not isinstance(v, int) or isinstance(v, bool) or v < 1):
                raise UsageError(f"revisions: {arg} must be a positive integer, got {v!r}")
        self.select_mode = select
        self.sequential = sequential
        self.chains = chains
        self.length = length
        self.aggregation = aggregation
        args: dict[str, Any] = {"select": select}
        for k, v in (("sequential", sequential), ("chains", chains), ("length", length)):
            if v is not None:
                args[k] = v
        if select == "verifier" and aggregation != "last":
            args["aggregation"] = aggregation
        super().__init__(**args)
        self.needs_verifier = select == "verifier"

    def _pool(self, budgets: Sequence[int]) -> tuple[int, int]:
        top = max(budgets)
        return self.chains or top, self.length or top

    def variants(self, budgets: Sequence[int]) -> list[Revisions]:
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
        return [
            Revisions(self.select_mode, s, self.chains, self.length, self.aggregation)
            for s in lengths
        ]

    def expansion(self, budget: int, defaults: RunDefaults) -> ExpansionSpec:
        chains, length = self._pool(defaults.budgets)
        return ExpansionSpec.of(
            "revisions",
            chains=chains,
            length=length,
            temperature=defaults.params.temperature,
            reviser=defaults.reviser,
        )

    def budgets(self, requested: Sequence[int]) -> list[int]:
        chains, length = self._pool(requested)
        s = self.sequential or 1
        return [b for b in requested if b % s == 0 and b // s <= chains and s <= length]

    def shape(self, budget: int) -> str:
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
            pick = self._choose(picked)
            spent = [a for chain in picked for a in chain]
            out.append(
                Selection(
                    answer=pick.vote_key if pick else None,
                    correct=bool(pick and pick.correct),
                    n_generations=len(spent),
                    n_tokens=sum(a.n_tokens for a in spent),
                    index=pick.index if pick else None,
                )
            )
        return out
