"""Strategy ``thinking_budget``: sequential scaling of one long thinking trace per sample,
cut at every budget of the run's ``--thinking-budgets`` (s1's budget forcing, Muennighoff et
al. 2025).

The expansion generates, per sample, one thinking trace up to the largest budget B (the
engine's own cap: ``max_tokens`` B, stopped at the closing delimiter). For each budget b:

- a sample whose thinking closed within b tokens keeps its own answer (generated once, after
  its closing delimiter, with the run's sampling settings);
- any other sample is cut after its first b thinking tokens, closed, and made to answer: the
  cut thinking, the closing delimiter, then ``answer_prompt`` (ending in ``\\boxed{``), and
  ``answer_tokens`` generated tokens. The cuts of all questions and budgets of a chunk go to
  the engine in one call (on vLLM their common prefix is cached).

A trace cut at b is exactly what a run capped at b would have produced from the same
sample, so one trace answers the whole sweep. A choice at b is charged what that capped
run spends: at most b thinking tokens per sample, the forced answer and the prompt tokens
the forcing inserted, not the tokens the longer trace generated past b.

**Extend mode** (``extend=k``): when a sample closes its thinking before B tokens, the
closing delimiter is dropped and ``wait`` ("Wait") appended, and the sample thinks on, up to
k times. Forcing to B and cutting at b gives what forcing to b would: forcing only acts when
the model tries to close. The inserted tokens are counted (``trace.extra["wait_tokens"]``)
and charged as computed prompt tokens.

Every candidate records its measured thinking tokens; a row reports their mean and maximum
against the budget, and the number of questions with a sample over it (never, unless an
engine returned more tokens than it was capped at: such samples are listed in
``trace.extra["overrun"]``). Majority vote over a group of N samples gives the ``N x b``
shapes of one pool.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

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
    shared_prompt_cost,
    vote,
)
from ttc_eval.thinking import Thinking
from ttc_eval.types import POLICY, Candidate, Completion, Cost, Problem, Request, Selection, Trace

DEFAULT_ANSWER_PROMPT = "The final answer is $\\boxed{"
"""What follows the closed thinking of a cut sample; the model completes the box."""
DEFAULT_ANSWER_TOKENS = 16
"""Tokens a forced answer may take (the box's content and its closing brace)."""
DEFAULT_WAIT = "Wait"
"""Appended in place of an early closing delimiter in extend mode (s1's choice)."""


@dataclass
class _Sample:
    """One sample's thinking as it grows over extension rounds."""

    base: int = 0
    """The question's prompt tokens, as the engine counted them in the first round."""
    text: str = ""
    """Its thinking text so far, forced waits included, without a closing delimiter."""
    ends: list[int] = field(default_factory=list)
    """End offset in ``text`` of each thinking token the model generated."""
    waits: list[tuple[int, int, int]] = field(default_factory=list)
    """Per forced wait: (offset in ``text`` where it starts, its tokens as measured from the
    next round's prompt, tokens of the closing delimiter it replaced)."""
    closed: bool = False
    """Whether its last round stopped at the closing delimiter."""
    delimiter_tokens: int = 0
    """Tokens of the closing delimiter of its last round."""
    sent: int = 0
    """Prompt tokens sent for its thinking, all rounds."""
    last_prompt: int = 0
    """Prompt tokens of its last round."""
    last_kept: int = 0
    """Thinking tokens its last round added."""
    overrun: bool = False
    """Whether an engine gave it more tokens than it was capped at."""
    unthought: Completion | None = None
    """The output of a sample that opened no thinking block (``tags`` mode): an answer
    without thinking."""
    answer: Completion | None = None
    """Its own answer, generated after its closing delimiter."""

    def waits_before(self, cut: int | None) -> list[tuple[int, int, int]]:
        """The forced waits inside its thinking as cut at ``cut`` (``None``: uncut)."""
        return [w for w in self.waits if cut is None or w[0] < cut]

    def inserted(self, b: int, forced: Completion) -> int:
        """Tokens the forcing inserted at budget ``b`` (the closing delimiter and the answer
        prompt): what the forced answer's prompt held beyond the question, the cut
        thinking and the waits in it."""
        waits = sum(w[1] for w in self.waits_before(self.cut_at(b)))
        return max(0, forced.prompt_tokens - self.base - min(b, len(self.ends)) - waits)

    def cut_at(self, b: int) -> int | None:
        """Where its thinking is cut at budget ``b`` (characters of ``text``); ``None``: it
        closed within ``b`` tokens (or never opened a thinking block) and keeps its own
        answer."""
        if self.unthought is not None or (self.closed and len(self.ends) <= b):
            return None
        if len(self.ends) <= b:
            return len(self.text)  # its thinking ended (end of sequence) without closing
        return self.ends[b - 1]


@expansion("thinking")
class ThinkingExpansion:
    """``n`` thinking traces per question up to the largest budget, each cut and closed at
    every budget it had not closed within; see the module's docstring."""

    def __init__(
        self,
        n: int,
        budgets: str,
        temperature: float,
        thinking: str,
        answer_prompt: str = DEFAULT_ANSWER_PROMPT,
        answer_tokens: int = DEFAULT_ANSWER_TOKENS,
        extend: int = 0,
        wait: str = DEFAULT_WAIT,
    ) -> None:
        self.n = n
        self.budgets = tuple(int(b) for b in budgets.split(","))
        self.temperature = temperature
        self.thinking = thinking
        """The run's ``--thinking`` (keys the trace; the context holds its delimiters)."""
        self.answer_prompt = answer_prompt
        self.answer_tokens = answer_tokens
        self.extend = extend
        self.wait = wait

    def run(self, problems: Sequence[Problem], ctx: ExpansionContext) -> Iterator[list[Trace]]:
        if ctx.thinking is None:
            raise UsageError("thinking_budget needs thinking delimiters: pass --thinking")
        delims = ctx.thinking
        params = replace(ctx.params, temperature=self.temperature)
        top = max(self.budgets)
        # Thinking is capped by the engine at the largest budget and stopped at its close;
        # the task's own stop strings apply to answers only.
        think = replace(params, max_tokens=top, stop=(delims.close,), include_stop=True)
        per_chunk = max(1, ctx.chunk_samples // self.n)
        for start in range(0, len(problems), per_chunk):
            chunk = problems[start : start + per_chunk]
            prompts = [ctx.render(p) for p in chunk]
            samples = [[_Sample() for _ in range(self.n)] for _ in chunk]
            # Round 0: one request per question for its n samples.
            first = ctx.backend.generate(
                [Request(prompt, think, tuple(range(self.n))) for prompt in prompts]
            )
            for q, comps in enumerate(first):
                for i, comp in enumerate(comps):
                    self._grow(samples[q][i], comp, delims, top, first=True)
            # Extension rounds: a sample that closed early thinks on after a forced wait.
            for _ in range(self.extend):
                todo = [
                    (q, i)
                    for q, row in enumerate(samples)
                    for i, s in enumerate(row)
                    if s.closed and len(s.ends) < top
                ]
                if not todo:
                    break
                for q, i in todo:
                    self._force_wait(samples[q][i])
                outs = ctx.backend.generate(
                    [
                        Request(
                            prompts[q] + samples[q][i].text,
                            replace(think, max_tokens=top - len(samples[q][i].ends)),
                            (i,),
                        )
                        for q, i in todo
                    ]
                )
                for (q, i), (comp,) in zip(todo, outs, strict=True):
                    self._grow(samples[q][i], comp, delims, top, first=False)
            # Own answers of the samples that closed their thinking.
            closed = [
                (q, i) for q, row in enumerate(samples) for i, s in enumerate(row) if s.closed
            ]
            own = ctx.backend.generate(
                [
                    Request(prompts[q] + samples[q][i].text + delims.close, params, (i,))
                    for q, i in closed
                ]
            )
            for (q, i), (comp,) in zip(closed, own, strict=True):
                samples[q][i].answer = comp
            # Forced answers of every sample that had not closed within b, at each b: the
            # cuts of the whole chunk in one call.
            cuts = [
                (q, i, b)
                for q, row in enumerate(samples)
                for b in self.budgets
                for i, s in enumerate(row)
                if s.cut_at(b) is not None
            ]
            answer_params = replace(params, max_tokens=self.answer_tokens, stop=())
            forced = ctx.backend.generate(
                [
                    Request(
                        prompts[q] + self._forced_prompt(samples[q][i], b, delims),
                        answer_params,
                        (i,),
                    )
                    for q, i, b in cuts
                ]
            )
            by_q: list[dict[tuple[int, int], Completion]] = [{} for _ in chunk]
            for (q, i, b), (comp,) in zip(cuts, forced, strict=True):
                by_q[q][(i, b)] = comp
            yield [self._trace(p, samples[q], by_q[q], delims) for q, p in enumerate(chunk)]

    # -- one sample's thinking ------------------------------------------------------------

    def _grow(self, s: _Sample, comp: Completion, delims: Thinking, top: int, first: bool) -> None:
        """Add one round's output to a sample's thinking."""
        room = top - len(s.ends)
        s.overrun = s.overrun or comp.n_tokens > room
        if s.waits:
            # The wait's tokens: what this round's prompt held beyond the last round's
            # prompt and the thinking it added.
            at, _, dropped = s.waits[-1]
            s.waits[-1] = (at, max(0, comp.prompt_tokens - s.last_prompt - s.last_kept), dropped)
        if first:
            s.base = comp.prompt_tokens
        s.last_prompt = comp.prompt_tokens
        s.sent += comp.prompt_tokens
        text = comp.text
        s.closed = comp.stop_reason == delims.close
        if first and not s.closed and delims.split(text) == (0, 0):
            s.unthought = comp  # tags mode: an output without a thinking block
            return
        if comp.token_ends is None or (comp.text and not comp.token_ends):
            raise UsageError(
                "thinking_budget needs each token's offset in the text, and this backend "
                "returned none (an OpenAI-compatible server that sends no log-probability "
                "tokens): use hf, vllm, or a vLLM server"
            )
        body = text[: len(text) - len(delims.close)] if s.closed else text
        kept = [e for e in comp.token_ends[: comp.n_tokens] if e <= len(body)]
        if len(kept) > room:
            # The engine overran its cap inside the thinking: cut it where the cap was, as
            # if the engine had stopped there (the sample is listed as an overrun).
            kept = kept[: max(0, room)]
            body = body[: kept[-1] if kept else 0]
            s.closed = False
        offset = len(s.text)
        s.text += body
        s.ends += [offset + e for e in kept]
        s.last_kept = len(kept)
        s.delimiter_tokens = comp.n_tokens - len(kept) if s.closed else 0

    def _force_wait(self, s: _Sample) -> None:
        """Replace the closing delimiter a sample just wrote by ``wait``: it thinks on."""
        sep = "" if not s.text or s.text[-1].isspace() else "\n"
        s.waits.append((len(s.text), 0, s.delimiter_tokens))
        s.text += sep + self.wait
        s.closed = False

    def _forced_prompt(self, s: _Sample, b: int, delims: Thinking) -> str:
        """The cut thinking, closed, and the answer prompt."""
        cut = s.cut_at(b)
        assert cut is not None
        thought = s.text[:cut]
        sep = "" if not thought or thought[-1].isspace() else "\n"
        return thought + sep + delims.close + "\n\n" + self.answer_prompt

    # -- the trace ------------------------------------------------------------------------

    def _trace(
        self,
        p: Problem,
        samples: Sequence[_Sample],
        forced: Mapping[tuple[int, int], Completion],
        delims: Thinking,
    ) -> Trace:
        base = samples[0].base if samples else 0
        candidates = [
            self._candidate(j * self.n + i, s, b, forced.get((i, b)), delims)
            for j, b in enumerate(self.budgets)
            for i, s in enumerate(samples)
        ]
        spent = self._spent(samples, forced, base)
        return Trace(
            problem_id=p.id,
            expansion="",  # set by the pipeline from the spec
            candidates=tuple(candidates),
            prompt_tokens=base,
            generated_tokens=int(spent.generated_tokens),
            n_generations=self.n,
            labels=dict(p.labels),
            extra={
                "samples": self.n,
                "budgets": list(self.budgets),
                "thinking_tokens": [len(s.ends) for s in samples],
                "closed": [s.closed for s in samples],
                "waits": [len(s.waits) for s in samples],
                "wait_tokens": [sum(w[1] for w in s.waits) for s in samples],
                "overrun": [i for i, s in enumerate(samples) if s.overrun],
                "forced": [sum((i, b) in forced for i in range(self.n)) for b in self.budgets],
            },
            cost=spent,
        )

    @staticmethod
    def _spent(
        samples: Sequence[_Sample], forced: Mapping[tuple[int, int], Completion], base: int
    ) -> Cost:
        """What the engines did for this question: the question's prompt once, each thinking
        trace once (dropped delimiters included), each own answer, every forced answer; the
        waits and what each forced answer's prompt inserted, as computed prompt tokens.
        (Each candidate is charged instead what a run capped at its budget would spend.)"""
        thinking = sum(len(s.ends) for s in samples)
        generated = thinking + sum(s.delimiter_tokens + sum(w[2] for w in s.waits) for s in samples)
        sent = sum(s.sent for s in samples)
        computed = sum(w[1] for s in samples for w in s.waits)
        for s in samples:
            for c in (s.answer, s.unthought):
                if c is not None:
                    generated += c.n_tokens
                    sent += c.prompt_tokens if c is s.answer else 0
        for (i, b), c in forced.items():
            generated += c.n_tokens
            sent += c.prompt_tokens
            computed += samples[i].inserted(b, c)
        return Cost(
            samples=len(samples),
            prompt_tokens=sent,
            prompt_tokens_computed=computed,
            generated_tokens=generated,
            role_tokens={POLICY: computed + generated},
            thinking_tokens=thinking,
        ) + shared_prompt_cost(base)

    def _candidate(
        self,
        index: int,
        s: _Sample,
        b: int,
        forced: Completion | None,
        delims: Thinking,
    ) -> Candidate:
        """Sample ``s`` at budget ``b``, charged what a run capped at ``b`` would spend."""
        cut = s.cut_at(b)
        if s.unthought is not None:
            text, thought, inserted = s.unthought.text, 0, 0
            answer, reason = s.unthought.n_tokens, s.unthought.finish_reason
        elif cut is None:  # closed within b: its own answer
            assert s.answer is not None
            text = s.text + delims.close + s.answer.text
            thought = len(s.ends)
            answer = s.delimiter_tokens + s.answer.n_tokens
            inserted, reason = 0, s.answer.finish_reason
        else:
            assert forced is not None
            thought = min(b, len(s.ends))
            text = self._forced_prompt(s, b, delims) + forced.text
            answer, reason = forced.n_tokens, forced.finish_reason
            inserted = s.inserted(b, forced)
        before = s.waits_before(cut)
        computed = inserted + sum(w[1] for w in before)
        generated = thought + answer + sum(w[2] for w in before)
        cost = Cost(
            samples=1,
            prompt_tokens=s.base + computed,
            prompt_tokens_computed=computed,
            generated_tokens=generated,
            role_tokens={POLICY: computed + generated},
            thinking_tokens=thought,
        )
        return Candidate(index, text, generated, reason, cost=cost, thinking_closed=True)


@strategy("thinking_budget")
class ThinkingBudget(StrategyBase):
    """Sequential scaling of thinking (s1 budget forcing): one trace per sample, cut and
    closed at each of the run's ``--thinking-budgets``; majority vote over N samples (the
    run's ``--budgets``) gives the N x b shapes. ``extend=k``: suppress an early close and
    append "Wait" up to k times."""

    def __init__(
        self,
        budget: int | None = None,
        extend: int = 0,
        wait: str = DEFAULT_WAIT,
        answer_prompt: str = DEFAULT_ANSWER_PROMPT,
        answer_tokens: int = DEFAULT_ANSWER_TOKENS,
    ) -> None:
        for arg, v, low in (
            ("budget", budget, 1),
            ("extend", extend, 0),
            ("answer_tokens", answer_tokens, 1),
        ):
            if v is not None and (not isinstance(v, int) or isinstance(v, bool) or v < low):
                raise UsageError(f"thinking_budget: {arg} must be an integer >= {low}, got {v!r}")
        if not isinstance(wait, str) or not wait:
            raise UsageError(f"thinking_budget: wait must be a non-empty string, got {wait!r}")
        if not isinstance(answer_prompt, str):
            raise UsageError("thinking_budget: answer_prompt must be a string")
        self.budget = budget
        self.thinking_cap = budget
        self.extend = extend
        self.wait = wait
        self.answer_prompt = answer_prompt
        self.answer_tokens = answer_tokens

    _DEFAULTS: Mapping[str, Any] = {
        "extend": 0,
        "wait": DEFAULT_WAIT,
        "answer_prompt": DEFAULT_ANSWER_PROMPT,
        "answer_tokens": DEFAULT_ANSWER_TOKENS,
    }

    def canonical_args(self, args: Mapping[str, Any]) -> dict[str, Any]:
        # Settings left at their defaults stay out of the label: thinking_budget(budget=64).
        return {k: v for k, v in args.items() if k not in self._DEFAULTS or self._DEFAULTS[k] != v}

    def variants(
        self, budgets: Sequence[int], thinking_budgets: Sequence[int] = ()
    ) -> Sequence[Strategy]:
        """One configuration per thinking budget of the sweep (all reading one trace)."""
        if self.budget is not None:
            return [self]
        if not thinking_budgets:
            raise UsageError(
                "thinking_budget needs the thinking budgets to sweep: pass --thinking-budgets "
                "(e.g. --thinking-budgets 16,32,64,128), or budget=N"
            )
        return [
            STRATEGIES.create(self.name, **{**self.args, "budget": b}) for b in thinking_budgets
        ]

    def _cuts(self, defaults: RunDefaults) -> tuple[int, ...]:
        assert self.budget is not None
        cuts = defaults.thinking_budgets or (self.budget,)
        if self.budget not in cuts:
            raise UsageError(
                f"thinking_budget:budget={self.budget} is not in --thinking-budgets "
                f"{','.join(map(str, cuts))}: add it there (one trace serves every budget)"
            )
        return cuts

    def expansion(self, budget: int, defaults: RunDefaults) -> ExpansionSpec:
        if self.budget is None:
            raise UsageError("thinking_budget needs --thinking-budgets (or budget=N)")
        if defaults.thinking == "none":
            raise UsageError(
                "thinking_budget needs thinking delimiters: pass --thinking tags (the output "
                "opens <think>), open (the prompt opened it: every output is thinking until "
                "</think>) or OPEN,CLOSE"
            )
        return ExpansionSpec.of(
            "thinking",
            n=max(defaults.budgets),
            budgets=",".join(map(str, self._cuts(defaults))),
            temperature=defaults.params.temperature,
            thinking=defaults.thinking,
            answer_prompt=self.answer_prompt,
            answer_tokens=self.answer_tokens,
            extend=self.extend,
            wait=self.wait,
        )

    def shape(self, budget: int) -> str | None:
        return f"{budget}x{self.budget}"

    def select(self, trace: Trace, budget: int) -> list[Selection]:
        n = int(trace.extra["samples"])
        j = list(trace.extra["budgets"]).index(self.budget)
        out = []
        for group in disjoint_groups(n, budget):
            read = [trace.candidates[j * n + i] for i in group]
            out.append(choice(vote(read, [1.0] * len(read)), read))
        return out
