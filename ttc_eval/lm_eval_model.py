"""ttc-eval as an lm-evaluation-harness model: ``--model ttc``.

Each ``generate_until`` request is answered with a test-time-compute strategy's selected
output: ``--model_args model=smollm2-135m,backend=hf,strategy=majority,n=8`` draws 8 samples
and returns the one whose answer wins the vote. lm-eval's ``repeats: K`` clones a request K
times; the K copies are served from one call of n x K samples, split into K disjoint groups of
n (one selection each), so that they are independent answers that cost one prompt encoding.

lm-eval finds no model by entry point: :func:`register` registers the class in this process,
and ``ttc-eval lm-eval ARGS`` calls it before handing over to lm-eval's own command line.
Importing this module imports lm-eval; ``import ttc_eval`` does not.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from lm_eval.api.model import LM
from tqdm.auto import tqdm

from ttc_eval.analysis.estimators import disjoint_groups
from ttc_eval.config import RunConfig, StrategySpec
from ttc_eval.errors import UsageError
from ttc_eval.models import DEFAULT_MODEL
from ttc_eval.pipeline import (
    answer,
    build_context,
    build_strategies,
    check_components,
    plan_strategies,
)
from ttc_eval.registry import GRADERS
from ttc_eval.strategies._base import ExpansionContext, Strategy
from ttc_eval.tasks import Task, TaskSpec
from ttc_eval.thinking import parse_thinking
from ttc_eval.types import Problem, Selection, Trace

REQUESTS_TASK = TaskSpec(
    name="lm-eval-requests", version="1", loader="lm_eval", prompt="raw", grader="math"
)
"""lm-eval hands over prompts already written (and grades them itself): the raw text is the
prompt; the grader only reads answers for voting."""

MODEL_NAME = "ttc"
"""The name lm-eval knows this model by (``--model ttc``)."""

# lm-eval passes these from its own command line; ttc-eval's backends batch by themselves.
_LM_EVAL_ARGS = ("batch_size", "max_batch_size", "device")


class TTCLM(LM):  # type: ignore[misc]
    """An lm-eval model that answers with a ttc-eval strategy over a ttc-eval backend."""

    def __init__(
        self,
        model: str = DEFAULT_MODEL,
        backend: str = "hf",
        strategy: str = "majority",
        n: int = 8,
        temperature: float = 0.7,
        top_p: float = 1.0,
        max_tokens: int = 256,
        verifier: str | None = None,
        verifier_model: str | None = None,
        grader: str = "math",
        seed: int = 0,
        cache: bool = True,
        progress: bool = True,
        base_url: str | None = None,
        dtype: str | None = None,
        thinking: str | None = None,
        **rest: Any,
    ) -> None:
        # Long only because --model_args are lm-eval's keyword arguments, one per setting;
        # the checks are the pipeline's (check_components).
        super().__init__()
        unknown = sorted(k for k in rest if k not in _LM_EVAL_ARGS)
        if unknown:
            raise UsageError(
                f"--model_args: unknown {', '.join(unknown)}; known: model, backend, strategy, "
                "n, temperature, top_p, max_tokens, verifier, verifier_model, grader, seed, "
                "cache, progress, base_url, dtype, thinking"
            )
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise UsageError(f"--model_args n must be a positive integer, got {n!r}")
        if grader not in GRADERS:
            raise UsageError(GRADERS.unknown_message(grader))
        backend_args: dict[str, Any] = {}
        if base_url:
            # lm-eval splits model_args on commas: several URLs are separated by "|".
            backend_args["base_url"] = str(base_url).replace("|", ",")
        if dtype:
            backend_args["dtype"] = dtype
        verifier_name = None if str(verifier).lower() in ("none", "") else str(verifier)
        self.n = n
        self.config = RunConfig(
            model=str(model),
            backend=str(backend),
            backend_args=backend_args,
            strategies=(StrategySpec.parse(str(strategy)),),
            verifier=verifier_name,
            verifier_args={"model": verifier_model} if verifier_model else {},
            budgets=(n,),
            seed=int(seed),
            temperature=float(temperature),
            top_p=float(top_p),
            max_tokens=int(max_tokens),
            cache=bool(cache),
            grader=grader,
            thinking=None if thinking is None else str(thinking),
        )
        self.strategy = self._one_strategy(str(strategy))
        try:
            check_components(plan_strategies(self.config))
        except UsageError as e:
            # The run's flags are --model_args keys here.
            raise UsageError(
                str(e).replace("pass --verifier", "add verifier=NAME to --model_args")
            ) from None
        # A reasoning model's answers are read after its thinking, and lm-eval is handed
        # only that part (its filters would otherwise read inside the thinking).
        self.task = Task(
            replace(REQUESTS_TASK, grader=grader), thinking=parse_thinking(self.config.thinking)
        )
        self.progress = bool(progress)
        self._ctx: ExpansionContext | None = None

    def _one_strategy(self, text: str) -> Strategy:
        strategies = build_strategies(self.config)
        if len(strategies) != 1:
            raise UsageError(
                f"strategy {text!r} stands for {len(strategies)} configurations; "
                "name one (revisions: add sequential=S)"
            )
        if strategies[0].is_oracle:
            raise UsageError(
                f"{strategies[0].name} picks by correctness, which only lm-eval knows here"
            )
        return strategies[0]

    def _config(self, gen_kwargs: dict[str, Any], copies: int) -> RunConfig:
        """The run settings of one batch of lm-eval requests: its stop strings and token
        limit, and budgets n and n x copies (lm-eval's repeats are disjoint groups of one
        pool)."""
        until = gen_kwargs.get("until") or []
        until = [until] if isinstance(until, str) else list(until)
        # The strategy owns the temperature: lm-eval's tasks ask for greedy decoding, which
        # would leave nothing to select from.
        return replace(
            self.config,
            budgets=(self.n, self.n * copies),
            max_tokens=int(gen_kwargs.get("max_gen_toks") or self.config.max_tokens or 256),
            stop=tuple(until),
        )

    def _check_not_fitted_on(self, requests: Sequence[Any]) -> None:
        """Refuse requests whose document is a question the strategy was fitted on (a
        policy): lm-eval names its documents by its own task, so they are recognised by
        text, the request's prompt or any text field of its document (the question as
        the dataset writes it)."""
        fitted = self.strategy.fitted_text
        if not fitted:
            return
        from ttc_eval.policy import text_key

        for req in requests:
            doc = req.doc if isinstance(req.doc, dict) else {}
            texts = [req.args[0], *(v for v in doc.values() if isinstance(v, str))]
            if any(text_key(t) in fitted for t in texts):
                raise UsageError(
                    f"{self.strategy.label()} was fitted on a question of this evaluation "
                    f"(lm-eval task {req.task_name}, document {req.doc_id}): evaluate it on "
                    "questions it has not seen"
                )

    def generate_until(self, requests: Sequence[Any], disable_tqdm: bool = False) -> list[str]:
        self._check_not_fitted_on(requests)
        # Identical requests (lm-eval's repeats) are one question with K answers.
        positions: dict[tuple[str, str], list[int]] = {}
        kwargs_of: dict[str, dict[str, Any]] = {}
        for i, req in enumerate(requests):
            context, gen_kwargs = req.args
            gk = json.dumps(gen_kwargs, sort_keys=True, default=str)
            kwargs_of[gk] = dict(gen_kwargs)
            positions.setdefault((context, gk), []).append(i)
        batches: dict[tuple[str, int], list[tuple[str, str]]] = {}
        for key, where in positions.items():
            batches.setdefault((key[1], len(where)), []).append(key)

        out: list[str | None] = [None] * len(requests)
        bar = tqdm(
            total=len(requests),
            desc=f"ttc {self.strategy.name} n={self.n}",
            unit="request",
            disable=disable_tqdm or not self.progress,
        )
        for (gk, copies), keys in batches.items():
            plan = plan_strategies(self._config(kwargs_of[gk], copies))
            strategy = next(s for s in plan.strategies if s.label() == self.strategy.label())
            if self._ctx is None:
                self._ctx = build_context(plan, self.task, {}, self.progress)
            ctx = replace(self._ctx, params=plan.defaults.params)
            problems = [Problem(id=str(i), question=k[0], answer="") for i, k in enumerate(keys)]
            for trace, sels in answer(plan, strategy, self.n, problems, ctx, self.task):
                key = keys[int(trace.problem_id)]
                for pos, text in zip(
                    positions[key], self._answers(trace, sels, copies), strict=True
                ):
                    out[pos] = text
                    self.cache_hook.add_partial("generate_until", requests[pos].args, text)
                bar.update(copies)
        bar.close()
        return [o if o is not None else "" for o in out]

    def _answers(self, trace: Trace, sels: Sequence[Selection], copies: int) -> list[str]:
        """``copies`` independent selections from one trace, as output texts."""
        if len(sels) < copies:
            raise UsageError(
                f"{self.strategy.name} gives {len(sels)} independent answer(s) per call, and "
                f"lm-eval asks for {copies} repeats: use a sampling strategy (majority, "
                "best_of_n), or repeats: 1"
            )
        n_cands = len(trace.candidates)
        groups = disjoint_groups(n_cands, self.n) if self.n <= n_cands else [range(n_cands)]
        texts = []
        for g, sel in enumerate(sels[:copies]):
            if sel.index is not None:
                # A policy's pick may come from a companion trace (the search it ran).
                source = trace.companions[sel.picked_in] if sel.picked_in else trace
                text = next(c for c in source.candidates if c.index == sel.index).text
            else:
                # No sample had an answer ttc-eval could read: hand lm-eval the group's first
                # sample, so that its own filters still see an output.
                first = groups[g][0] if g < len(groups) else 0
                text = trace.candidates[first].text
            thinking = self.task.thinking
            # Unclosed thinking has no answer: lm-eval gets an empty output, not the thinking.
            texts.append((thinking.answer_text(text) or "") if thinking is not None else text)
        return texts

    def loglikelihood(self, requests: Sequence[Any], disable_tqdm: bool = False) -> list[Any]:
        raise UsageError(
            "the ttc model answers generate_until tasks only (test-time compute is spent on "
            "generation); this task asks for log-likelihoods"
        )

    def loglikelihood_rolling(
        self, requests: Sequence[Any], disable_tqdm: bool = False
    ) -> list[Any]:
        raise UsageError("the ttc model answers generate_until tasks only (no perplexity)")


def register() -> type[TTCLM]:
    """Register :class:`TTCLM` with lm-eval as ``ttc`` (idempotent)."""
    import lm_eval.models  # noqa: F401  (lm-eval's own models: it loads them only into an empty registry)
    from lm_eval.api.registry import MODEL_REGISTRY, register_model

    if MODEL_REGISTRY.get(MODEL_NAME, None) is not TTCLM:
        register_model(MODEL_NAME)(TTCLM)
    return TTCLM


def cli(argv: Sequence[str]) -> int:
    """lm-eval's own command line, with the ``ttc`` model registered."""
    import sys

    from lm_eval.__main__ import cli_evaluate

    register()
    saved = sys.argv
    sys.argv = ["lm-eval", *argv]
    try:
        cli_evaluate()
    except SystemExit as e:
        return int(e.code) if isinstance(e.code, int) else (0 if e.code is None else 1)
    finally:
        sys.argv = saved
    return 0
