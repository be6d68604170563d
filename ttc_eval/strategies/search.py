"""Expansion ``search``: PRM-guided step-wise search (beam search, lookahead, DVTS).

One search tree per question, grown a step at a time; every round sends all live beams of
all questions to the backend in one call (search-and-learn expanded question by question,
which made beam search at N=256 take hours). A step ends at the step delimiter; a solution
ends at the end of sequence, at the run's ``max_tokens``, or when ``max_rounds`` is reached.

On a backend that batches concurrent calls together (vllm), each question's tree grows on
its own thread instead, a chunk's worth of questions at once: a question starts its next
round as soon as its own children are scored, rather than when the slowest step of every
question's round has ended, and the engine's batch stays full. A question's search depends
only on its own calls, so its trace is the same either way, as far as the engine's samples
do not depend on which other requests share its batch (on vLLM they may: see
docs/backends.md, seeds).

Budget fairness: the N candidates of a question are split into subtrees with fixed slot
counts (beam search: one subtree of N slots; DVTS: N/M subtrees of M slots). In a subtree
with r open slots (slots minus finished solutions), the top ceil(r/M) live beams by verifier
score are kept and expanded M times, trimmed to exactly r children; so finished plus live
always equals the slots, and the search ends with exactly N candidates.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, replace

from ttc_eval.aggregation import aggregate, check_aggregation
from ttc_eval.errors import UsageError
from ttc_eval.registry import expansion
from ttc_eval.strategies._base import (
    ExpansionContext,
    ExpansionSpec,
    RunDefaults,
    StrategyBase,
    choice,
    shared_prompt_cost,
    vote,
)
from ttc_eval.types import (
    POLICY,
    Candidate,
    Completion,
    Cost,
    Problem,
    Request,
    SamplingParams,
    Selection,
    Trace,
)
from ttc_eval.verifiers._base import ConcurrentVerifier, Solution, Verifier, split_steps


@dataclass(frozen=True)
class Beam:
    """A partial (or finished) solution in a search tree."""

    text: str
    """The solution so far."""
    tokens: int
    """Tokens generated along this beam's own path."""
    subtree: int
    """Which subtree it belongs to."""
    finished: bool = False
    """Ended by end of sequence, token limit or round cap."""
    finish_reason: str = "stop"
    """Reason of the last step."""
    score: float = 0.0
    """Selection score (the verifier's, after lookahead when k > 0)."""
    step_scores: tuple[float, ...] = ()
    """Verifier step scores of ``text`` itself."""
    rollout: str | None = None
    """Lookahead: the whole text of its greedy rollout when that rollout finished (ended by
    end of sequence or the token limit), so that a pruned beam's would-be answer can be
    graded; ``None`` otherwise."""
    parent: int = -1
    """Its parent's place among the beams kept in the round before (-1: grown from the
    question itself, in round 1)."""


def _verifier(ctx: ExpansionContext) -> Verifier:
    if ctx.verifier is None:
        raise UsageError("search needs a verifier: pass --verifier")
    return ctx.verifier


@dataclass
class _Spent:
    """What one question's search has spent so far."""

    generated: int = 0
    """Tokens generated (steps and rollouts)."""
    calls: int = 0
    """Step generations."""
    sent: int = 0
    """Prompt tokens as sent: the question's prompt plus the beam so far, every step."""
    question_tokens: int = 0
    """The question prompt's own length: all an engine with prefix caching computes (the
    rest of every later prompt is text the model generated)."""
    read: int = 0
    """Tokens the verifier read."""

    def add(self, comp: Completion) -> None:
        self.generated += comp.n_tokens
        self.calls += 1
        self.sent += comp.prompt_tokens


def _score(
    ctx: ExpansionContext,
    problem: Problem,
    texts: Sequence[str],
    spent: _Spent,
    lock: threading.Lock,
) -> list[tuple[float, ...]]:
    """Step scores of ``texts``; the verifier's tokens are added to ``spent``. A verifier
    safe to call from several threads at once reports each call's tokens; any other is
    called under ``lock`` (its count of tokens read is shared by the questions' threads,
    and its model need not be safe to call from two at once)."""
    verifier = _verifier(ctx)
    sols = []
    for t in texts:
        steps, ends = split_steps(t, ctx.step_delimiter)
        sols.append(Solution(steps=steps, step_ends=ends, text=t))
    if not sols:
        return []
    if isinstance(verifier, ConcurrentVerifier) and verifier.concurrent:
        scores, read = verifier.score_counted(problem, sols)
        spent.read += read
        return list(scores)
    with lock:
        before = verifier.tokens_read
        scores = list(verifier.score(problem, sols))
        spent.read += verifier.tokens_read - before
    return scores


def _trim(comp: Completion, limit: int) -> Completion:
    """Cut a completion to ``limit`` tokens (finish reason ``length``) when it is longer."""
    if comp.n_tokens <= limit:
        return comp
    ends = comp.token_ends or ()
    cut = ends[limit - 1] if len(ends) >= limit else len(comp.text)
    return replace(
        comp,
        text=comp.text[:cut],
        n_tokens=limit,
        finish_reason="length",
        stop_reason=None,
        token_logprobs=comp.token_logprobs[:limit] if comp.token_logprobs else None,
        token_ends=tuple(ends[:limit]) if ends else None,
    )


@expansion("search")
class SearchExpansion:
    """Beam search of ``width`` M over ``subtrees`` subtrees, with ``lookahead`` k."""

    def __init__(
        self,
        n: int,
        width: int,
        lookahead: int = 0,
        max_rounds: int = 40,
        subtrees: int = 1,
        temperature: float = 0.7,
        aggregation: str = "last",
    ) -> None:
        self.n, self.width, self.lookahead = n, max(1, min(width, n)), lookahead
        self.max_rounds, self.temperature, self.aggregation = max_rounds, temperature, aggregation
        per = n // subtrees
        self.slots = [per + (1 if i < n % subtrees else 0) for i in range(subtrees)]
        self._verifier_lock = threading.Lock()

    def run(self, problems: Sequence[Problem], ctx: ExpansionContext) -> Iterator[list[Trace]]:
        per_chunk = max(1, ctx.chunk_samples // self.n)
        chunks = [problems[s : s + per_chunk] for s in range(0, len(problems), per_chunk)]
        if ctx.backend.concurrent and len(problems) > 1:
            yield from self._run_concurrently(chunks, per_chunk, ctx)
            return
        for chunk in chunks:
            yield self._search(chunk, ctx)

    def _run_concurrently(
        self, chunks: Sequence[Sequence[Problem]], workers: int, ctx: ExpansionContext
    ) -> Iterator[list[Trace]]:
        """Each question of a chunk searched on its own thread, the chunk's questions at
        once. A chunk starts when the caller asks for it: nothing runs while the caller
        grades and stores the chunk before (its time is the chunk's), and a failure never
        takes an earlier, finished chunk with it."""
        with ThreadPoolExecutor(workers, thread_name_prefix="ttc-eval-search") as pool:
            for chunk in chunks:
                stop = threading.Event()

                def search(p: Problem, stop: threading.Event = stop) -> Trace:
                    try:
                        return self._search([p], ctx, stop)[0]
                    except BaseException:
                        stop.set()  # one question failed: the others stop at their next round
                        raise

                futures = [pool.submit(search, p) for p in chunk]
                try:
                    traces = [_outcome(f, futures) for f in futures]
                finally:
                    # Interrupted or failed: each running search stops at its next round.
                    stop.set()
                yield traces

    def _params(self, ctx: ExpansionContext, temperature: float, max_tokens: int) -> SamplingParams:
        base = ctx.params
        return replace(
            base,
            temperature=temperature,
            max_tokens=max(1, max_tokens),
            # The task's own stop strings (lm-eval's ``until``) end a solution, like EOS.
            stop=(ctx.step_delimiter, *base.stop),
            include_stop=True,
        )

    def _step(
        self,
        ctx: ExpansionContext,
        prompts: Sequence[str],
        prefixes: Sequence[str],
        spent: Sequence[int],
        temperature: float,
        sample_ids: Sequence[int],
    ) -> list[Completion]:
        """One step for each (prompt, prefix), in one backend call.

        Every row shares one SamplingParams (the largest remaining token budget), so the
        backend can put them in full batches; each completion is then trimmed to its own
        beam's remaining budget."""
        if not prompts:
            return []
        remaining = [ctx.params.max_tokens - s for s in spent]
        params = self._params(ctx, temperature, max(remaining))
        requests = [
            Request(p + pre, params, (sid,))
            for p, pre, sid in zip(prompts, prefixes, sample_ids, strict=True)
        ]
        comps = [c[0] for c in ctx.backend.generate(requests)]
        return [_trim(c, max(1, r)) for c, r in zip(comps, remaining, strict=True)]

    def _ended(self, ctx: ExpansionContext, comp: Completion, tokens: int) -> bool:
        eos = comp.finish_reason == "stop" and (
            comp.stop_reason is None or comp.stop_reason in ctx.params.stop
        )
        return eos or tokens >= ctx.params.max_tokens

    def _search(
        self,
        problems: Sequence[Problem],
        ctx: ExpansionContext,
        stop: threading.Event | None = None,
    ) -> list[Trace]:
        prompts = [ctx.render(p) for p in problems]
        spent = [_Spent() for _ in problems]
        # Live beams per question; round 0 grows every slot from the empty prefix.
        parents: list[list[tuple[Beam, int]]] = [
            [(Beam("", 0, t), s) for t, s in enumerate(self.slots)] for _ in problems
        ]
        finished: list[list[Beam]] = [[] for _ in problems]
        live: list[list[Beam]] = [[] for _ in problems]
        pruned: list[list[dict[str, object]]] = [[] for _ in problems]
        tree: list[list[dict[str, object]]] = [[] for _ in problems]
        rounds = 0
        while rounds < self.max_rounds and any(parents):
            if stop is not None and stop.is_set():
                raise _Stopped
            rounds += 1
            children = self._grow(ctx, prompts, parents, rounds, spent)
            children = self._score_children(ctx, problems, prompts, children, spent)
            parents = []
            for qi, kids in enumerate(children):
                ended = [b for b in kids if b.finished]
                # Finished beams are candidates, numbered in the order they finish.
                first = len(finished[qi])
                finished[qi] += ended
                live[qi] = [b for b in kids if not b.finished]
                kept = self._select(live[qi], finished[qi])
                parents.append(kept)
                last = rounds == self.max_rounds
                if not kids:
                    continue  # this question's search ended before the others'
                tree[qi].append(
                    {
                        "round": rounds,
                        "finished": [
                            _node(b, candidate=first + j) for j, b in enumerate(ended)
                        ],
                        # The last round's live beams are not kept or pruned: candidates.
                        "kept": [] if last else [_node(b, children=k) for b, k in kept],
                        **(
                            {"unfinished": [
                                _node(b, candidate=len(finished[qi]) + j)
                                for j, b in enumerate(live[qi])
                            ]}
                            if last else {}
                        ),
                    }
                )  # fmt: skip
                # The live beams not kept: the verifier pruned them (the last round's live
                # beams are not pruned: they become candidates).
                if not last:
                    pruned[qi] += _pruned(live[qi], kept, rounds)
        traces = []
        for qi, p in enumerate(problems):
            final = finished[qi] + [
                replace(b, finished=True, finish_reason="length") for b in live[qi]
            ]
            assert len(final) == self.n, "search must end with exactly n candidates"
            # Its own rounds (one tree entry each), not the chunk's: the same alone or not.
            rounds_run = len(tree[qi])
            traces.append(self._trace(p, final, spent[qi], rounds_run, ctx, pruned[qi], tree[qi]))
        return traces

    def _grow(
        self,
        ctx: ExpansionContext,
        prompts: Sequence[str],
        parents: Sequence[Sequence[tuple[Beam, int]]],
        rounds: int,
        spent: Sequence[_Spent],
    ) -> list[list[Beam]]:
        """One step for every (parent, k) pair: k children each, all questions in one call."""
        flat: list[tuple[int, Beam]] = []
        sample_ids: list[int] = []
        places: list[int] = []
        for qi, pairs in enumerate(parents):
            # Numbered within the question, not across the call: a question's samples
            # must not depend on which other questions share its chunk (resume, shards).
            n_before = len(flat)
            for place, (parent, k) in enumerate(pairs):
                flat += [(qi, parent)] * k
                places += [place if rounds > 1 else -1] * k
            sample_ids += [rounds * 1_000_000 + i for i in range(len(flat) - n_before)]
        comps = self._step(
            ctx,
            [prompts[qi] for qi, _ in flat],
            [b.text for _, b in flat],
            [b.tokens for _, b in flat],
            self.temperature,
            sample_ids,
        )
        children: list[list[Beam]] = [[] for _ in parents]
        for (qi, parent), place, comp in zip(flat, places, comps, strict=True):
            spent[qi].add(comp)
            if not parent.text:
                spent[qi].question_tokens = comp.prompt_tokens
            tokens = parent.tokens + comp.n_tokens
            children[qi].append(
                Beam(
                    parent.text + comp.text,
                    tokens,
                    parent.subtree,
                    finished=self._ended(ctx, comp, tokens),
                    finish_reason=comp.finish_reason,
                    parent=place,
                )
            )
        return children

    def _trace(
        self,
        p: Problem,
        final: Sequence[Beam],
        spent: _Spent,
        rounds: int,
        ctx: ExpansionContext,
        pruned: Sequence[dict[str, object]],
        tree: Sequence[dict[str, object]],
    ) -> Trace:
        role = ctx.verifier_role
        return Trace(
            problem_id=p.id,
            expansion="",
            candidates=tuple(
                Candidate(i, b.text, b.tokens, b.finish_reason, step_scores=b.step_scores)
                for i, b in enumerate(final)
            ),
            prompt_tokens=spent.question_tokens,
            generated_tokens=spent.generated,
            n_generations=self.n * (self.lookahead + 1),
            verifier=_verifier(ctx).name,
            verifier_tokens=spent.read,
            labels=dict(p.labels),
            extra={
                "rounds": rounds,
                "step_calls": spent.calls,
                "slots": self.slots,
                # Every pruned beam: its round, score, tokens and, with lookahead, its
                # finished rollout (graded by the pipeline, which keeps only its answer and
                # verdict: the verifier report's pruning statistic).
                "pruned": list(pruned),
                # Per round: the beams that finished (candidates), were kept (with the
                # children each was given) or, in the last round, were cut at the round cap
                # (candidates too), each with its score, tokens and parent ("from": its
                # place among the round before's kept beams); report/index.html draws it.
                "tree": list(tree),
            },
            # The tree's beams share their prefixes, so the cost is the whole tree's.
            cost=shared_prompt_cost(spent.question_tokens)
            + Cost(
                samples=spent.calls,
                prompt_tokens=spent.sent,
                generated_tokens=spent.generated,
                verifier_tokens=spent.read,
                role_tokens={
                    POLICY: spent.generated,
                    **({role: spent.read} if role and spent.read else {}),
                },
            ),
            verifier_role=role,
        )

    def _score_children(
        self,
        ctx: ExpansionContext,
        problems: Sequence[Problem],
        prompts: Sequence[str],
        children: list[list[Beam]],
        spent: Sequence[_Spent],
    ) -> list[list[Beam]]:
        out = []
        for qi, kids in enumerate(children):
            scores = _score(
                ctx, problems[qi], [b.text for b in kids], spent[qi], self._verifier_lock
            )
            out.append(
                [
                    replace(b, step_scores=s, score=aggregate(s, self.aggregation))
                    for b, s in zip(kids, scores, strict=True)
                ]
            )
        if self.lookahead == 0:
            return out
        # Lookahead: roll live children out k more steps at temperature 0; a child's
        # selection score is the verifier's score at the end of its rollout.
        roll = {
            (qi, i): b.text
            for qi, kids in enumerate(out)
            for i, b in enumerate(kids)
            if not b.finished
        }
        used = {key: out[key[0]][key[1]].tokens for key in roll}
        open_keys = list(roll)
        ended: set[tuple[int, int]] = set()
        for _ in range(self.lookahead):
            if not open_keys:
                break
            comps = self._step(
                ctx,
                [prompts[q] for q, _ in open_keys],
                [roll[k] for k in open_keys],
                [used[k] for k in open_keys],
                0.0,
                [0] * len(open_keys),
            )
            still = []
            for key, comp in zip(open_keys, comps, strict=True):
                spent[key[0]].add(comp)
                roll[key] += comp.text
                used[key] += comp.n_tokens
                if self._ended(ctx, comp, used[key]):
                    ended.add(key)
                else:
                    still.append(key)
            open_keys = still
        for qi in range(len(out)):
            keys = [k for k in roll if k[0] == qi]
            scores = _score(
                ctx, problems[qi], [roll[k] for k in keys], spent[qi], self._verifier_lock
            )
            for k, s in zip(keys, scores, strict=True):
                out[qi][k[1]] = replace(
                    out[qi][k[1]],
                    score=aggregate(s, self.aggregation),
                    rollout=roll[k] if k in ended else None,
                )
        return out

    def _select(self, live: Sequence[Beam], finished: Sequence[Beam]) -> list[tuple[Beam, int]]:
        """Per subtree: keep the top ceil(r/M) live beams, give them r children in all."""
        pairs: list[tuple[Beam, int]] = []
        for t, slots in enumerate(self.slots):
            r = slots - sum(1 for b in finished if b.subtree == t)
            mine = [(i, b) for i, b in enumerate(live) if b.subtree == t]
            if r <= 0 or not mine:
                continue
            # Highest score first; ties go to the earlier beam (deterministic).
            mine.sort(key=lambda ib: (-ib[1].score, ib[0]))
            kept = [b for _, b in mine[: math.ceil(r / self.width)]]
            for j, b in enumerate(kept):
                k = min(self.width, r - j * self.width)
                if k > 0:
                    pairs.append((b, k))
        return pairs


class _Stopped(Exception):
    """A question's search stopped early because the run was interrupted or failed."""


def _outcome(future: Future[Trace], every: Sequence[Future[Trace]]) -> Trace:
    """A question's trace; when it stopped because another question failed, that
    question's error (the cause, not the stop) is raised."""
    try:
        return future.result()
    except _Stopped:
        wait(every)
        for f in every:
            error = None if f.cancelled() else f.exception()
            if error is not None and not isinstance(error, _Stopped):
                raise error from None
        raise


def _pruned(
    live: Sequence[Beam], kept: Sequence[tuple[Beam, int]], rounds: int
) -> list[dict[str, object]]:
    """The live beams of a round that were not kept, as stored in the trace."""
    chosen = {id(b) for b, _ in kept}
    return [
        {
            "round": rounds,
            "score": b.score,
            "tokens": b.tokens,
            "from": b.parent,
            **({"rollout": b.rollout} if b.rollout is not None else {}),
        }
        for b in live
        if id(b) not in chosen
    ]


def _node(b: Beam, **more: int) -> dict[str, object]:
    """A beam as the trace's tree stores it."""
    return {"score": b.score, "tokens": b.tokens, "from": b.parent, **more}


class SearchStrategy(StrategyBase):
    """Common part of beam_search and dvts: the search's N candidates, chosen among by
    weighted best-of-N on the verifier's aggregated scores."""

    needs_verifier = True
    subtrees_per_width = False

    def __init__(
        self, width: int = 4, lookahead: int = 0, max_rounds: int = 40, aggregation: str = "last"
    ) -> None:
        if width < 1 or lookahead < 0 or max_rounds < 1:
            raise UsageError(
                f"{type(self).__name__}: width >= 1, lookahead >= 0 and max_rounds >= 1 needed"
            )
        self.width, self.lookahead, self.max_rounds = width, lookahead, max_rounds
        self.aggregation = check_aggregation(aggregation, "search")

    def expansion(self, budget: int, defaults: RunDefaults) -> ExpansionSpec:
        width = min(self.width, budget)
        subtrees = max(1, budget // width) if self.subtrees_per_width else 1
        return ExpansionSpec.of(
            "search",
            n=budget,
            width=width,
            lookahead=self.lookahead,
            max_rounds=self.max_rounds,
            subtrees=subtrees,
            temperature=defaults.params.temperature,
            aggregation=self.aggregation,
        )

    def select(self, trace: Trace, budget: int) -> list[Selection]:
        cands = trace.candidates
        scores = [aggregate(c.step_scores or (0.0,), self.aggregation) for c in cands]
        # The whole tree was spent on these candidates: the budget counts its generations.
        return [choice(vote(cands, scores), cands, trace.n_generations, trace.generated_tokens)]
