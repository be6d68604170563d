"""The one pipeline every front end runs: plan -> expand -> grade -> store -> select.

:func:`plan_run` resolves a run's settings once into a frozen :class:`RunPlan` (the task and
its questions, the strategy configurations with their expansions, the model roles, the
sampling parameters, the identity); every later stage reads the plan. :func:`expand` turns
questions into graded, timed traces; :func:`evaluate` turns a stored trace into a
:class:`~ttc_eval.types.QuestionResult` with the measured :class:`~ttc_eval.types.Cost` of
each choice. ``run``, the lm-eval ``ttc`` model, ``import`` and ``merge`` are front ends of
these functions; none re-implements a step.
"""

from __future__ import annotations

import hashlib
import json
import re
import sys
import time
import weakref
from collections import OrderedDict
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from ttc_eval._progress import progress_bars
from ttc_eval._rundir import IDENTITY_VERSION, questions_digest, spec_digest, text_digest
from ttc_eval.backends._base import Backend, shard_threads, usable_cpus
from ttc_eval.cache import CachedBackend, GenerationCache
from ttc_eval.config import RoleSpec, RunConfig
from ttc_eval.errors import UsageError, did_you_mean
from ttc_eval.models import cache_root
from ttc_eval.registry import BACKENDS, EXPANSIONS, GRADERS, STRATEGIES, VERIFIERS
from ttc_eval.store import TraceStore
from ttc_eval.strategies._base import (
    ExpansionContext,
    ExpansionSpec,
    RunDefaults,
    Strategy,
    shared_prompt_cost,
)
from ttc_eval.strategies._batch import GroupChoices, PoolBatch
from ttc_eval.tasks import Task, find_task_spec
from ttc_eval.tasks._split import in_split
from ttc_eval.thinking import parse_thinking
from ttc_eval.types import POLICY, Cost, Problem, QuestionResult, SamplingParams, Selection, Trace
from ttc_eval.verifiers._base import Verifier, VerifierFactory

# -- resolving a run once -------------------------------------------------------------------


def build_strategies(config: RunConfig) -> list[Strategy]:
    """The configurations to report; one that has variants (revisions: one per parallel x
    sequential shape) stands for all of them."""
    out: list[Strategy] = []
    for spec in config.strategies:
        try:
            s = STRATEGIES.create(spec.name, **spec.args)
        except TypeError as e:
            raise UsageError(
                f"strategy {spec.name}: bad arguments {dict(spec.args)} ({e})"
            ) from None
        # The thinking sweep only when there is one: plug-ins written before it take budgets.
        sweep = {"thinking_budgets": config.thinking_budgets} if config.thinking_budgets else {}
        out.extend(s.variants(config.budgets, **sweep))
    return out


def with_coverage(strategies: list[Strategy], defaults: RunDefaults) -> list[Strategy]:
    """Coverage (pass@k, the oracle upper bound) is reported next to any sampled pool."""
    cov = STRATEGIES.create("coverage")
    pools = {s.expansion(b, defaults) for s in strategies for b in s.budgets(defaults.budgets)}
    if cov.expansion(max(defaults.budgets), defaults) in pools and not any(
        s.name == "coverage" for s in strategies
    ):
        return [*strategies, cov]
    return strategies


def sampling_params(config: RunConfig) -> SamplingParams:
    if config.temperature is None or config.top_p is None or config.max_tokens is None:
        raise ValueError("config must be resolved against its task first (RunConfig.resolve)")
    return SamplingParams(
        temperature=config.temperature,
        top_p=config.top_p,
        max_tokens=config.max_tokens,
        stop=tuple(config.stop or ()),
        seed=config.seed,
    )


def role_key(spec: RoleSpec | None) -> str:
    """Names a role's model and template in expansion keys: ``policy`` when the policy plays
    it with built-in templates, else a hash (the spelling of run directories written before
    roles, so their stored traces are found)."""
    if spec is None or spec == RoleSpec():
        return POLICY
    blob = f"{spec.model or ''}\n{spec.template or ''}"
    # Thread counts change no sample: not part of the key (resumes with other threads).
    args = {k: v for k, v in spec.backend_args.items() if k != "threads"}
    if spec.backend is not None or args:
        blob += "\n" + json.dumps([spec.backend, args], sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:10]


def run_defaults(config: RunConfig, budgets: Sequence[int] | None = None) -> RunDefaults:
    return RunDefaults(
        sampling_params(config),
        tuple(budgets or config.budgets),
        config.step_delimiter,
        {name: role_key(spec) for name, spec in config.roles.items()},
        config.thinking_budgets,
        config.thinking or "none",
    )


@dataclass(frozen=True)
class StrategyPlan:
    """The strategy configurations of a run and what they read; all a stored run needs to
    be evaluated (no questions, no models)."""

    config: RunConfig
    """The run's settings, resolved against its task."""
    strategies: tuple[Strategy, ...]
    """Every configuration reported (variants expanded, coverage added)."""
    defaults: RunDefaults
    """Run-level settings the strategies turn into expansions."""
    expansions: tuple[ExpansionSpec, ...]
    """Distinct expansions to run, the difficulty pass (when asked for) first."""
    difficulty: ExpansionSpec | None
    """The sample pool difficulty is measured on."""
    roles: Mapping[str, RoleSpec]
    """Every model role the run uses (``policy`` first, then each role its strategies and
    verifier declare), resolved: the model, backend and options that play it."""
    verifier_roles: tuple[str, ...]
    """The roles the verifier declares (``judge``: a generation backend it is handed;
    ``verifier``: its own weights)."""


def resolve_roles(config: RunConfig, declared: Sequence[str]) -> dict[str, RoleSpec]:
    """Each declared role's model, backend and options. A verifier that judges with a
    generation backend (self-judge's ``judge``) takes ``--verifier-model`` as that role's
    model, as it always has: the shorthand of ``--role judge=MODEL``."""
    out: dict[str, RoleSpec] = {}
    verifier_model = config.verifier_args.get("model")
    for role in declared:
        spec = config.role(role)
        if role == "judge" and role not in config.roles and verifier_model:
            spec = replace(config.role(POLICY), model=str(verifier_model))
        out[role] = spec
    return out


def plan_strategies(config: RunConfig) -> StrategyPlan:
    defaults = run_defaults(config)
    strategies = with_coverage(build_strategies(config), defaults)
    difficulty = difficulty_spec(config, strategies, defaults)
    specs: dict[str, ExpansionSpec] = {}
    if config.difficulty_samples and difficulty is not None:
        specs[difficulty.key] = difficulty
    for s in strategies:
        for b in s.budgets(config.budgets):
            for spec in (s.expansion(b, defaults), *s.also_reads(b, defaults).values()):
                specs.setdefault(spec.key, spec)
    roles = [POLICY]
    for s in strategies:
        roles += [r for r in s.roles if r not in roles]
    # An imported run's scores come from a verifier that is not registered here.
    verifier_roles: tuple[str, ...] = ()
    if config.verifier and config.verifier in VERIFIERS:
        verifier_roles = tuple(VERIFIERS.get(config.verifier).roles)
        roles += [r for r in verifier_roles if r not in roles]
    return StrategyPlan(
        config,
        tuple(strategies),
        defaults,
        tuple(specs.values()),
        difficulty,
        resolve_roles(config, roles),
        verifier_roles,
    )


def difficulty_spec(
    config: RunConfig, strategies: Sequence[Strategy], defaults: RunDefaults
) -> ExpansionSpec | None:
    """The sample pool that measures difficulty: the dedicated pass when asked for, else the
    run's largest sampled pool (temperature > 0), else none."""
    temperature = defaults.params.temperature
    if config.difficulty_samples:
        return ExpansionSpec.of("sample", n=config.difficulty_samples, temperature=temperature)
    pools = {s.expansion(b, defaults) for s in strategies for b in s.budgets(config.budgets)}
    sampled = [p for p in pools if p.kind == "sample" and float(dict(p.args)["temperature"]) > 0]
    return max(sampled, key=lambda p: (int(dict(p.args)["n"]), p.key), default=None)


@dataclass(frozen=True)
class RunPlan:
    """A run resolved once: every stage reads this, never the raw settings."""

    strategy_plan: StrategyPlan
    """Strategy configurations, expansions and roles."""
    task: Task
    """The task (with ``--grader`` applied)."""
    problems: tuple[Problem, ...]
    """The questions this invocation runs (its shard's, when sharded)."""
    templates: Mapping[str, str]
    """Prompt template in force per role that has one (run's, else task's, else built-in)."""
    identity: Mapping[str, Any]
    """Everything that changes a number of the run (see :func:`run_identity`)."""

    @property
    def config(self) -> RunConfig:
        return self.strategy_plan.config

    @property
    def strategies(self) -> tuple[Strategy, ...]:
        return self.strategy_plan.strategies


def load_task(config: RunConfig) -> Task:
    """The run's task, with ``--grader`` replacing the task's own grader, its answers read
    after the run's thinking delimiters (those of a resolved config: a stored run's)."""
    spec = find_task_spec(config.task, config.include_path, **config.task_source_args())
    if config.grader is not None and config.grader != spec.grader:
        if config.grader not in GRADERS:
            raise UsageError(GRADERS.unknown_message(config.grader))
        spec = replace(spec, grader=config.grader, grader_args={})
    return Task(spec, thinking=parse_thinking(config.thinking))


def role_templates(plan: StrategyPlan, task: Task) -> dict[str, str]:
    """The template in force for each role that has one, checked for the placeholders its
    built-in template uses."""
    defaults: dict[str, str | None] = {}
    for s in plan.strategies:
        defaults.update(s.roles)
    out: dict[str, str] = {}
    for role, default in defaults.items():
        given = plan.roles[role].template if role in plan.roles else None
        from_task = task.spec.role_templates.get(role)
        template = given or from_task or default
        if template is None:
            continue
        if given and default:
            missing = [f for f in re.findall(r"\{\w+\}", default) if f not in given]
            if missing:
                flag = "--revision-template" if role == "reviser" else f"--role {role}=...:template"
                raise UsageError(
                    f"the {role} template ({flag}) lacks {' and '.join(sorted(set(missing)))}"
                )
        out[role] = template
    return out


def verifier_arguments(
    roles: Sequence[str], args: Mapping[str, Any], backends: Mapping[str, Any]
) -> dict[str, Any]:
    """The verifier's keyword arguments: its options, and every generation role it declares
    handed over as a backend (``--verifier-model`` of a judging verifier names its judge's
    model, see :func:`resolve_roles`, so it is not passed on)."""
    out = dict(args)
    for role in roles:
        if role != "verifier":
            out[role] = backends.get(role)
            if role == "judge":
                out.pop("model", None)
    return out


def check_verifier_args(name: str, factory: VerifierFactory, args: Mapping[str, Any]) -> None:
    import inspect

    try:
        inspect.signature(factory).bind(**verifier_arguments(factory.roles, args, {}))
    except TypeError as e:
        hint = (
            " (a PRM needs its weights: --verifier-model HUB_ID_OR_PATH)"
            if "model" in str(e)
            else ""
        )
        raise UsageError(f"verifier {name}: {e}{hint}") from None


def check_components(plan: StrategyPlan) -> None:
    """Every named role is one a component declares, every role's backend exists, the
    verifier exists and takes its arguments, each strategy that reads scores has a verifier
    and each that reads token confidences a backend that records them: usage errors before
    any model loads."""
    config, strategies = plan.config, plan.strategies
    for role in config.roles:
        if role not in plan.roles:
            used = ", ".join(r for r in plan.roles if r != POLICY) or "none"
            raise UsageError(
                f"no component of this run uses the role {role!r}.{did_you_mean(role, plan.roles)}"
                f" Roles it uses: {used} (`--role` names a role's model)"
            )
    for spec in plan.roles.values():
        if spec.backend is not None and spec.backend not in BACKENDS:
            raise UsageError(BACKENDS.unknown_message(spec.backend))
    if config.verifier:
        check_verifier_args(config.verifier, VERIFIERS.get(config.verifier), config.verifier_args)
    elif any(s.needs_verifier for s in strategies):
        need = sorted({s.name for s in strategies if s.needs_verifier})
        raise UsageError(
            f"{', '.join(need)} needs a verifier: pass --verifier ({', '.join(VERIFIERS.names())})"
        )
    if config.thinking_budgets and not any(s.thinking_cap is not None for s in strategies):
        raise UsageError(
            "--thinking-budgets is the sweep of the thinking_budget strategy, which this run "
            "does not have: add --strategy thinking_budget (or drop --thinking-budgets)"
        )
    confident = sorted({s.name for s in strategies if s.needs_confidences})
    if confident and config.backend_args.get("top_logprobs") == 0:
        raise UsageError(
            f"{', '.join(confident)} reads token confidences, which top_logprobs=0 turns off: "
            "drop it from --backend-args (the default records the top 5 of each token)"
        )


def plan_run(config: RunConfig) -> RunPlan:
    """Resolve and check everything a user can get wrong before any model loads."""
    task = load_task(config)
    config = config.resolve(task.spec.generation)
    task = task.with_thinking(parse_thinking(config.thinking))  # the task's own, if unset
    # Leaderboards go where this invocation said, recorded absolute so that `report` from any
    # folder updates the same file.
    config = replace(config, leaderboard_dir=str(Path(config.leaderboard_dir).resolve()))
    splan = plan_strategies(config)
    check_components(splan)
    templates = role_templates(splan, task)
    problems = split_problems(config, task)
    check_not_fitted_on(splan, task, problems)
    identity = run_identity(splan, task, problems, templates)
    shard = config.shard_index()
    if shard is not None:
        problems = problems[shard[0] :: shard[1]]
    return RunPlan(splan, task, tuple(problems), templates, identity)


def check_not_fitted_on(plan: StrategyPlan, task: Task, problems: Sequence[Problem]) -> None:
    """Refuse to evaluate a strategy fitted on data (a difficulty-adaptive policy) on any of
    the questions it was fitted on: its accuracy there would be a leak, not a result.
    Questions are named by the task spec's own name, however ``--task`` wrote it, and by
    their text, so that the same question in another task (or under another id) is caught."""
    from ttc_eval.policy import text_key

    asked = {f"{task.spec.name}:{p.id}" for p in problems}
    texts = {text_key(p.question): p.id for p in problems}
    for s in plan.strategies:
        seen = sorted(asked & s.fitted_on) or sorted(
            f"{task.spec.name}:{texts[h]}" for h in set(texts) & s.fitted_text
        )
        if seen:
            raise UsageError(
                f"{s.label()} was fitted on {len(seen)} of this run's questions (e.g. "
                f"{seen[0]}): evaluate it on questions it has not seen, e.g. fit on a "
                "--split calibration run and run this one with --split test"
            )


def split_problems(config: RunConfig, task: Task) -> list[Problem]:
    """The questions of the run before sharding: those of ``--split`` (all without it), then
    the first ``--limit`` of them, so that ``--split test --limit 30`` is the first 30 test
    questions and a larger limit only adds questions after them."""
    if config.split is None:
        return task.problems(config.data_files, config.limit)
    everything = task.problems(config.data_files)
    problems = in_split(
        # The spec's own name: ``arith_120`` and ``tasks/arith_120.yaml`` are one split.
        everything,
        config.split,
        task.spec.name,
        config.question_split_seed,
        config.split_fraction,
    )
    if everything and not problems:
        raise UsageError(
            f"the {config.split} split of task {config.task} is empty: none of its "
            f"{len(everything)} questions falls in it at --split-fraction "
            f"{config.split_fraction} (split seed {config.question_split_seed}); choose "
            "another fraction or --split-seed"
        )
    return problems[: config.limit]


def run_identity(
    plan: StrategyPlan, task: Task, problems: Sequence[Problem], templates: Mapping[str, str]
) -> dict[str, Any]:
    """Everything that changes a number of this run: its settings (model roles included),
    the task spec (content hash and version) and its questions, and the versions of the
    grader, verifier and backend. A stored run is resumed only when this matches exactly."""
    config = plan.config
    verifier = VERIFIERS.get(config.verifier) if config.verifier else None
    return {
        "identity_version": IDENTITY_VERSION,
        "settings": config.identity(),
        "task": {
            "name": task.spec.name,
            "version": task.version,
            "spec_sha256": spec_digest(task.spec),
            "questions_sha256": questions_digest(problems),
            # The templates as the run renders them, built-in defaults included (the spec
            # hash sees only what its YAML writes).
            "prompt_sha256": text_digest(
                json.dumps(task.messages(Problem(id="", question="{question}", answer="")))
            ),
        },
        "revision_template_sha256": text_digest(templates["reviser"])
        if "reviser" in templates
        else None,
        "grader": {"name": task.spec.grader, "version": task.grader.version},
        "verifier": {"name": config.verifier, "version": str(verifier.version)}
        if verifier is not None
        else None,
        "backend": {"name": config.backend, "version": str(BACKENDS.get(config.backend).version)},
        **_role_identity(plan, templates),
        # A fitted policy's label carries its file's digest: a refitted file is a changed
        # run (only runs that have one hold the key, so other identities are unchanged).
        **(
            {"fitted": sorted(s.label() for s in plan.strategies if s.fitted_files)}
            if any(s.fitted_files for s in plan.strategies)
            else {}
        ),
    }


def _role_identity(plan: StrategyPlan, templates: Mapping[str, str]) -> dict[str, Any]:
    """What the roles add to the identity beyond the settings: the version of each backend
    a role runs on other than the policy's, and the template in force of each role other
    than the reviser (whose template has its own key). Empty (so identities of runs without
    such roles are unchanged) when there is none."""
    out: dict[str, Any] = {}
    backends = {
        role: {"name": spec.backend, "version": str(BACKENDS.get(spec.backend).version)}
        for role, spec in plan.roles.items()
        if spec.backend is not None and spec.backend != plan.config.backend and role != "verifier"
    }
    if backends:
        out["role_backends"] = backends
    others = {role: text_digest(t) for role, t in sorted(templates.items()) if role != "reviser"}
    if others:
        out["role_templates_sha256"] = others
    return out


# -- expanding ------------------------------------------------------------------------------


def recorded_options(plan: StrategyPlan) -> dict[str, Any]:
    """Backend options that turn off what no component of the run reads: token confidences
    (``top_logprobs=0``) unless a strategy declares ``needs_confidences``, and the sampled
    tokens' log-probabilities (``logprobs=false``) unless the verifier reads them (one that
    runs no model of its own: ``logprob``). On vLLM they cost the most: its front-end process
    builds and detokenizes an entry per token and alternative. Options the user set win."""
    out: dict[str, Any] = {}
    if not any(s.needs_confidences for s in plan.strategies):
        out["top_logprobs"] = 0
    verifier = plan.config.verifier
    if not verifier or VERIFIERS.get(verifier).roles:
        out["logprobs"] = False
    return out


def make_backend(
    spec: RoleSpec,
    config: RunConfig,
    cache: GenerationCache | None,
    progress: bool,
    defaults: Mapping[str, Any] | None = None,
) -> CachedBackend:
    """The backend of a role behind the generation cache; ``defaults``: options it takes
    unless the role's backend options set them (:func:`recorded_options`)."""
    factory = BACKENDS.get(spec.backend or config.backend)
    defaults = dict(defaults or {})
    if spec.backend_args.get("keep_top_logprobs"):
        defaults.pop("top_logprobs", None)  # keeping the raw top-k asks for it: k stays
    args = {**defaults, **spec.backend_args}
    # Engines seeded once at start (vllm) take the run seed unless told otherwise.
    if factory.takes_seed:
        args.setdefault("seed", config.seed)
    shard = config.shard_index()
    if factory.takes_threads and shard is not None and "threads" not in args:
        # Shards are usually started side by side on one machine: each takes its share of
        # the cores, so that their OpenMP threads do not oversubscribe them.
        cpus = usable_cpus()
        args["threads"] = shard_threads(cpus, shard[1])
        if progress:
            print(
                f"shard {config.shard}: {args['threads']} of this machine's {cpus} CPU threads "
                f"(its share beside the other shards; on a machine of its own pass "
                f"--backend-args threads=all)",
                file=sys.stderr,
            )
    return CachedBackend(factory(spec.model or config.model, progress=progress, **args), cache)


def build_context(
    plan: StrategyPlan,
    task: Task,
    templates: Mapping[str, str],
    progress: bool,
    params: SamplingParams | None = None,
) -> ExpansionContext:
    """Load the run's models, one backend per distinct role spec, behind the generation cache."""
    config = plan.config
    cache = GenerationCache(cache_root() / "generations.sqlite") if config.cache else None
    backends: dict[str, Backend] = {}
    built: dict[str, Backend] = {}
    recorded = recorded_options(plan)
    for role, spec in plan.roles.items():
        if role == "verifier":
            continue  # a PRM's own weights, loaded by the verifier
        key = json.dumps([spec.model, spec.backend, dict(spec.backend_args)], sort_keys=True)
        if key not in built:
            built[key] = make_backend(spec, config, cache, progress, recorded)
        backends[role] = built[key]
    policy = backends[POLICY]
    verifier: Verifier | None = None
    if config.verifier:
        vargs = verifier_arguments(plan.verifier_roles, config.verifier_args, backends)
        verifier = VERIFIERS.get(config.verifier)(**vargs)
    return ExpansionContext(
        backends=backends,
        verifier=verifier,
        verifier_role=plan.verifier_roles[0] if plan.verifier_roles else None,
        params=params or sampling_params(config),
        render=lambda p: task.render(p, policy),
        messages=task.messages,
        templates=dict(templates),
        step_delimiter=config.step_delimiter,
        chunk_samples=config.chunk_samples,
        thinking=task.thinking,
    )


def grade_traces(
    task: Task, traces: Sequence[Trace], problems: Mapping[str, Problem]
) -> list[Trace]:
    """Extract each ungraded candidate's answer, grade it against the gold answer, set its
    vote key (candidates that carry a verdict, such as an imported dump's, keep it)."""
    todo = [(ti, ci) for ti, t in enumerate(traces) for ci, c in enumerate(t.candidates)
            if not c.graded]  # fmt: skip
    answers = [task.extract(traces[ti].candidates[ci].text) for ti, ci in todo]
    pairs = [
        (problems[traces[ti].problem_id].answer, a)
        for (ti, _), a in zip(todo, answers, strict=True)
    ]
    graded = {
        where: replace(traces[where[0]].candidates[where[1]], answer=a, vote_key=g.vote_key,
                       correct=g.correct)
        for where, a, g in zip(todo, answers, task.grader.grade(pairs), strict=True)
    }  # fmt: skip
    out = [
        replace(t, candidates=tuple(graded.get((ti, ci), c) for ci, c in enumerate(t.candidates)))
        for ti, t in enumerate(traces)
    ]
    return _grade_pruned(task, out, problems)


def _grade_pruned(
    task: Task, traces: Sequence[Trace], problems: Mapping[str, Problem]
) -> list[Trace]:
    """A search keeps the rollouts of the beams it pruned (``extra["pruned"]``, lookahead
    only): each finished one is graded like a candidate (all of a chunk in one call), so
    the verifier report can say how often the search pruned a path that was going to be
    right."""
    todo = [
        (ti, i)
        for ti, t in enumerate(traces)
        for i, b in enumerate(t.extra.get("pruned") or ())
        if "rollout" in b and "correct" not in b
    ]
    if not todo:
        return list(traces)
    answers = [task.extract(traces[ti].extra["pruned"][i]["rollout"]) for ti, i in todo]
    pairs = [(problems[traces[ti].problem_id].answer, a)
             for (ti, _), a in zip(todo, answers, strict=True)]  # fmt: skip
    # Only the answer and the verdict are kept: the rollout's text would make a wide
    # search's trace many times larger.
    done: dict[tuple[int, int], dict[str, Any]] = {
        (ti, i): {k: v for k, v in traces[ti].extra["pruned"][i].items() if k != "rollout"}
        | {"answer": a, "correct": g.correct}
        for (ti, i), a, g in zip(todo, answers, task.grader.grade(pairs), strict=True)
    }
    out = []
    for ti, t in enumerate(traces):
        beams = t.extra.get("pruned")
        if beams and any((ti, i) in done for i in range(len(beams))):
            graded = [done.get((ti, i), b) for i, b in enumerate(beams)]
            t = replace(t, extra={**t.extra, "pruned": graded})
        out.append(t)
    return out


def _with_seconds(trace: Trace, seconds: float) -> Trace:
    """The trace with its share of a chunk's wall time, shared out to its candidates in
    proportion to their generated tokens."""
    total = trace_cost(trace)
    tokens = sum(c.n_tokens for c in trace.candidates) or 1
    cands = tuple(
        replace(c, cost=replace(c.cost, seconds=seconds * c.n_tokens / tokens))
        if c.cost is not None
        else c
        for c in trace.candidates
    )
    return replace(trace, candidates=cands, cost=replace(total, seconds=seconds))


def expand(
    spec: ExpansionSpec,
    problems: Sequence[Problem],
    ctx: ExpansionContext,
    task: Task,
) -> Iterator[list[Trace]]:
    """Graded, timed traces of ``spec`` for ``problems``, chunk by chunk as they finish."""
    expander = EXPANSIONS.get(spec.kind)(**dict(spec.args))
    by_id = {p.id: p for p in problems}
    chunks = iter(expander.run(problems, ctx))
    while True:
        # Only the expansion's own time: grading and storing the chunk are not its cost.
        started = time.monotonic()
        traces = next(chunks, None)
        if traces is None:
            return
        seconds = time.monotonic() - started
        # A chunk's time is shared by its questions in proportion to what they generated.
        tokens = sum(t.generated_tokens for t in traces) or 1
        timed = [
            _with_seconds(replace(t, expansion=spec.key), seconds * t.generated_tokens / tokens)
            for t in traces
        ]
        yield grade_traces(task, timed, by_id)


def expand_missing(
    plan: RunPlan,
    store: TraceStore,
    context: Callable[[], ExpansionContext],
    progress: bool,
    say: Callable[[str], None],
) -> ExpansionContext | None:
    """Expand, grade and store the questions each expansion still lacks; the context (None
    when nothing had to be generated)."""
    ctx: ExpansionContext | None = None
    for spec in plan.strategy_plan.expansions:
        key = spec.key
        pending = [p for p in plan.problems if not store.has(p.id, key)]
        done = len(plan.problems) - len(pending)
        say(f"[{key}] {done} of {len(plan.problems)} questions already done")
        if not pending:
            continue
        if ctx is None:
            ctx = context()
        with (
            tqdm(total=len(pending), desc=key, unit="question", disable=not progress) as bar,
            progress_bars(progress),
        ):
            for traces in expand(spec, pending, ctx, plan.task):
                store.add(traces)
                bar.update(len(traces))
    return ctx


# -- selecting, with measured cost ----------------------------------------------------------


def trace_cost(trace: Trace) -> Cost:
    """What a trace cost: as recorded, or (traces stored before costs were) from its token
    counts: every sample's prompt sent, the question's prompt computed once."""
    if trace.cost is not None:
        return trace.cost
    sent = int(trace.extra.get("prompt_tokens_total", trace.prompt_tokens * trace.n_generations))
    return Cost(
        samples=trace.n_generations,
        prompt_tokens=sent,
        prompt_tokens_computed=trace.prompt_tokens,
        generated_tokens=trace.generated_tokens,
        verifier_tokens=trace.verifier_tokens,
        role_tokens={POLICY: trace.prompt_tokens + trace.generated_tokens},
    )


def _candidate_cost(trace: Trace, index: int) -> Cost:
    c = trace.candidates[index]
    if c.cost is not None:
        return c.cost
    return _candidate_costs(trace)[index]


def _candidate_costs(trace: Trace) -> tuple[Cost, ...]:
    """Every candidate's cost, made once per trace (imported candidates record none, and a
    report reads each candidate for every configuration and budget)."""
    memo = _memo(trace)
    if "costs" not in memo:
        # Stored before costs were: one sample with the question's prompt, an equal share of
        # the verifier's reading.
        n = len(trace.candidates) or 1
        memo["costs"] = tuple(
            c.cost
            if c.cost is not None
            else Cost(
                samples=1,
                prompt_tokens=trace.prompt_tokens,
                generated_tokens=c.n_tokens,
                verifier_tokens=trace.verifier_tokens / n,
                role_tokens={POLICY: c.n_tokens},
            )
            for c in trace.candidates
        )
    costs: tuple[Cost, ...] = memo["costs"]
    return costs


def _total_cost(trace: Trace) -> Cost:
    """Every candidate's cost summed (``Cost.total``; from the arrays of
    :func:`_pool_costs` when there are, in the same order)."""
    pool = _pool_costs(trace)
    if pool is None:
        return Cost.total(_candidate_costs(trace))
    v = np.cumsum(pool.values, axis=0)[-1].tolist()
    roles = {r: v[len(_FIELDS) + j] for j, r in enumerate(pool.roles)}
    return Cost(v[0], v[1], v[2], v[3], v[4], v[5], roles)


_MEMOS: dict[int, dict[str, Any]] = {}


def _memo(trace: Trace) -> dict[str, Any]:
    """What is derived from a trace and read many times (its candidates' costs), kept while
    the trace lives: traces are frozen, so it never goes stale."""
    key = id(trace)
    memo = _MEMOS.get(key)
    if memo is None:
        memo = _MEMOS[key] = {}
        # Dropped with the trace, before its id can be another object's.
        weakref.finalize(trace, _MEMOS.pop, key, None)
    return memo


def selection_cost(
    trace: Trace,
    read: Sequence[int],
    scored: bool | Collection[int] = True,
    cut: Sequence[tuple[int, int]] = (),
) -> Cost:
    """What a choice that read the candidates ``read`` cost: the whole trace when it read
    them all (a search tree's shared beams included), else those candidates plus the
    question's prompt, computed once. ``cut`` lists (index, tokens spent) of candidates the
    strategy stopped part-way: only those tokens of their generation are charged.
    ``scored=False`` (a strategy that reads no verifier scores) leaves out the verifier's
    reading, which a run without the verifier would not have spent; a collection of
    indices keeps it for those candidates only (a policy whose estimator read the probe's
    scores, and whose chosen configuration reads none)."""
    if not read:
        return Cost()
    if not isinstance(scored, bool):
        paid = set(scored)
        if paid & set(read) and not paid >= set(read):
            return _partly_scored_cost(trace, read, paid, dict(cut))
        scored = bool(paid & set(read))
    kept = dict(cut)
    if len(set(read)) == len(trace.candidates) and not kept:
        cost = trace_cost(trace)
    elif trace.cost is not None and any(trace.candidates[i].cost is None for i in read):
        # Candidates that share a tree (search): their cost is not separable, so a choice
        # that reads some of them pays their share of the whole.
        cost = trace.cost.scaled(len(set(read)) / len(trace.candidates))
    else:
        own = Cost.total(
            _cut_cost(trace, i, kept[i]) if i in kept else _candidate_cost(trace, i) for i in read
        )
        cost = own + shared_prompt_cost(trace.prompt_tokens)
    return cost if scored else _without_verifier(cost, trace)


def _partly_scored_cost(
    trace: Trace, read: Sequence[int], paid: Collection[int], cut: Mapping[int, int]
) -> Cost:
    """Each candidate's own cost, the verifier's reading of it only when it is in ``paid``,
    plus the question's prompt once."""

    def one(i: int) -> Cost:
        c = _cut_cost(trace, i, cut[i]) if i in cut else _candidate_cost(trace, i)
        return c if i in paid else _without_verifier(c, trace)

    return Cost.total(one(i) for i in read) + shared_prompt_cost(trace.prompt_tokens)


def _cut_cost(trace: Trace, index: int, spent: int) -> Cost:
    """A candidate's cost had its generation stopped after ``spent`` tokens: the same prompt,
    one sample, ``spent`` generated tokens, and that share of its wall time and of any
    verifier reading."""
    cost = _candidate_cost(trace, index)
    n = trace.candidates[index].n_tokens
    spent = max(0, min(spent, n))
    share = spent / n if n else 1.0
    unspent = n - spent
    roles = {
        k: v * share if k == trace.verifier_role else v - unspent
        for k, v in cost.role_tokens.items()
    }
    return replace(
        cost,
        generated_tokens=spent,
        thinking_tokens=min(cost.thinking_tokens, spent),  # the thinking comes first
        verifier_tokens=cost.verifier_tokens * share,
        seconds=cost.seconds * share,
        role_tokens=roles,
    )


def _without_verifier(cost: Cost, trace: Trace) -> Cost:
    if not cost.verifier_tokens and trace.verifier_role not in cost.role_tokens:
        return cost  # nothing of the verifier's to take out
    roles = {k: v for k, v in cost.role_tokens.items() if k != trace.verifier_role}
    return replace(cost, verifier_tokens=0, role_tokens=roles)


def measured_cost(trace: Trace, sel: Selection, needs_verifier: bool) -> Cost:
    """What one choice cost: what it read of ``trace``, plus what its choices on companion
    traces read there (:attr:`Selection.elsewhere`), the question's prompt computed once."""
    scored = needs_verifier if sel.scored is None else sel.scored
    cost = selection_cost(trace, sel.read, scored, sel.cut)
    for name, sub in sel.elsewhere:
        other = trace.companions.get(name)
        if other is None:
            raise UsageError(
                f"question {trace.problem_id}: the trace {name} a choice read is not in the run "
                "(rerun the run's command to expand it)"
            )
        more = measured_cost(other, sub, needs_verifier)
        if sel.read and sub.read:
            # The same question's prompt: an engine that shares prefixes computes it once.
            more = more + shared_prompt_cost(other.prompt_tokens).scaled(-1)
        cost = cost + more
    return cost


def selections(strategy: Strategy, trace: Trace, budget: int) -> list[Selection]:
    """The strategy's choices at ``budget``, each with its measured cost attached."""
    return [
        replace(s, cost=measured_cost(trace, s, strategy.needs_verifier))
        for s in strategy.select(trace, budget)
    ]


def with_companions(
    strategy: Strategy,
    budget: int,
    defaults: RunDefaults,
    traces: Mapping[str, Trace],
    stored: Callable[[str], Mapping[str, Trace]],
) -> dict[str, Trace]:
    """``traces`` (question -> the trace the strategy reads at ``budget``) with the
    companion traces it also reads attached (``stored``: expansion key -> question ->
    trace); a question that lacks one of them is left out, as a question without its own
    trace is (a run still under way)."""
    wanted = strategy.also_reads(budget, defaults)
    if not wanted:
        return dict(traces)
    found = {name: stored(spec.key) for name, spec in wanted.items()}
    return {
        q: replace(t, companions={name: by_q[q] for name, by_q in found.items()})
        for q, t in traces.items()
        if all(q in by_q for by_q in found.values())
    }


def evaluate(strategy: Strategy, trace: Trace, budget: int) -> QuestionResult:
    """Expected accuracy and mean measured cost of one configuration on one question."""
    estimate = strategy.estimate(trace, budget)
    if estimate is not None:
        # An estimate over every k-subset of the pool (coverage's pass@k): a choice reads k
        # average candidates.
        n = len(trace.candidates)
        memo = _memo(trace)
        if "total" not in memo:  # the same at every budget
            memo["total"] = _total_cost(trace)
            memo["tokens"] = sum(c.n_tokens for c in trace.candidates)
        share = memo["total"].scaled(budget / n)
        tokens = memo["tokens"] / n * budget
        cost = share + shared_prompt_cost(trace.prompt_tokens)
        if not strategy.needs_verifier:
            cost = _without_verifier(cost, trace)
        most, unclosed = thinking_stats(trace, [tuple(range(n))])
        overrun = bool(trace.extra.get("overrun"))
        return QuestionResult(estimate, float(budget), tokens, cost, most, unclosed, overrun)
    sels = selections(strategy, trace, budget)
    n = len(sels)
    most, unclosed = thinking_stats(trace, [s.read for s in sels])
    return QuestionResult(
        accuracy=sum(s.correct for s in sels) / n,
        n_generations=sum(s.n_generations for s in sels) / n,
        n_tokens=sum(s.n_tokens for s in sels) / n,
        cost=Cost.mean([s.cost for s in sels if s.cost is not None]),
        thinking_max=most,
        unclosed=unclosed,
        overrun=bool(trace.extra.get("overrun")),
    )


def thinking_stats(trace: Trace, reads: Sequence[Sequence[int]]) -> tuple[int | None, float | None]:
    """Of the candidates each choice read (pool indices): the most thinking tokens one of
    them holds, and the mean share of them whose thinking never closed; ``None``, ``None``
    for a trace without thinking delimiters."""
    if not reads or all(c.thinking_closed is None for c in trace.candidates):
        return None, None
    at = {c.index: c for c in trace.candidates}
    most = 0
    shares = []
    for read in reads:
        cands = [at[i] for i in read]
        for c in cands:
            most = max(most, int(c.cost.thinking_tokens) if c.cost is not None else 0)
        shares.append(sum(c.thinking_closed is False for c in cands) / len(cands) if cands else 0.0)
    return most, sum(shares) / len(shares)


def evaluate_many(
    strategy: Strategy, traces: Mapping[str, Trace], budget: int
) -> dict[str, QuestionResult]:
    """:func:`evaluate` on each question (question id -> trace), with the same numbers: a
    pool strategy with :meth:`~ttc_eval.strategies._base.PoolStrategy.select_many`
    chooses on all pools of one size at once and its choices are costed as arrays."""
    out: dict[str, QuestionResult] = {}
    for pids, costs, chosen in _choose_batched(strategy, traces, budget):
        out.update(zip(pids, costs.results(chosen, budget, strategy.needs_verifier), strict=True))
    return {
        pid: out[pid] if pid in out else evaluate(strategy, t, budget) for pid, t in traces.items()
    }


def choices_many(
    strategy: Strategy, traces: Mapping[str, Trace], budget: int
) -> list[tuple[list[str], GroupChoices]]:
    """The choices :func:`evaluate_many` makes as arrays: per batch, its question ids and
    their choices (one row each; positions are pool indices there). Questions it evaluates
    one by one (a strategy or trace without the array path) are in none: ``strategy.select``
    chooses for those."""
    return [(pids, chosen) for pids, _, chosen in _choose_batched(strategy, traces, budget)]


def _choose_batched(
    strategy: Strategy, traces: Mapping[str, Trace], budget: int
) -> Iterator[tuple[list[str], _BatchCosts, GroupChoices]]:
    """Pool strategies with ``select_many``: their choices on the questions whose pools can
    be batched (one batch per pool size), with the batch's costs."""
    select_many = getattr(strategy, "select_many", None)
    if select_many is None:
        return
    by_size: dict[int, dict[str, Trace]] = {}
    for pid, t in traces.items():
        if 0 < budget <= len(t.candidates) and _pool_costs(t) is not None:
            by_size.setdefault(len(t.candidates), {})[pid] = t
    for same in by_size.values():
        batch, costs = _batch(tuple(same.values()))
        chosen: GroupChoices | None = select_many(batch, budget)
        if chosen is not None:
            yield list(same), costs, chosen


_FIELDS = (
    "samples",
    "prompt_tokens",
    "prompt_tokens_computed",
    "generated_tokens",
    "verifier_tokens",
    "seconds",
)
"""The scalar fields of :class:`Cost`, in the order of its constructor."""
_COMPUTED, _VERIFIER = _FIELDS.index("prompt_tokens_computed"), _FIELDS.index("verifier_tokens")


@dataclass(frozen=True)
class _PoolCosts:
    """A pool trace's candidate costs as columns (:data:`_FIELDS`, then ``roles``)."""

    values: np.ndarray[Any, np.dtype[np.float64]]
    """(candidates, fields + roles)."""
    roles: tuple[str, ...]
    """The roles every candidate's cost names, in the order they name them."""


def _pool_costs(trace: Trace) -> _PoolCosts | None:
    """The trace's candidate costs as arrays, when a choice that reads some of them costs
    their sum plus the question's prompt (:func:`selection_cost`), in one order of roles;
    ``None`` otherwise (candidates that share a search tree's cost, whose costs name
    different roles, or whose pool indices are not their positions): :func:`evaluate`
    costs those."""
    memo = _memo(trace)
    if "pool" not in memo:
        memo["pool"] = None
        cands = trace.candidates
        if any(c.index != i for i, c in enumerate(cands)):
            cands = ()  # a choice's `read` names pool indices: the arrays go by position
        if any(c.thinking_closed is not None for c in cands):
            cands = ()  # thinking statistics are evaluate's (per choice, not in the arrays)
        # float64 holds token counts exactly (below 2**53), so sums in the order Cost.total
        # adds them give its very numbers.
        # A trace with a cost of its own but none per candidate (a search tree's shape) is
        # charged a share of that cost by selection_cost: not this default.
        if cands and trace.cost is None and all(c.cost is None for c in cands):
            # _candidate_cost's default, without a Cost per candidate (imported pools).
            n = len(cands)
            tokens = np.array([c.n_tokens for c in cands], dtype=np.float64)
            values = np.zeros((n, len(_FIELDS) + 1))
            values[:, _FIELDS.index("samples")] = 1
            values[:, _FIELDS.index("prompt_tokens")] = trace.prompt_tokens
            values[:, _FIELDS.index("generated_tokens")] = tokens
            values[:, _VERIFIER] = trace.verifier_tokens / n
            values[:, len(_FIELDS)] = tokens
            memo["pool"] = _PoolCosts(values, (POLICY,))
        elif cands and (trace.cost is None or all(c.cost is not None for c in cands)):
            costs = _candidate_costs(trace)
            roles = tuple(costs[0].role_tokens)
            if all(tuple(c.role_tokens) == roles for c in costs):
                values = np.array(
                    [[getattr(c, f) for f in _FIELDS] + [c.role_tokens[r] for r in roles]
                     for c in costs],
                    dtype=np.float64,
                )  # fmt: skip
                memo["pool"] = _PoolCosts(values, roles)
    pool: _PoolCosts | None = memo["pool"]
    return pool


_BATCHES: OrderedDict[tuple[int, ...], tuple[PoolBatch, _BatchCosts]] = OrderedDict()
"""The last few batches built: a report evaluates every configuration and budget on the same
traces (keyed by identity; a batch holds its traces, so an id cannot be reused meanwhile)."""


def _batch(traces: tuple[Trace, ...]) -> tuple[PoolBatch, _BatchCosts]:
    key = tuple(map(id, traces))
    if key in _BATCHES:
        _BATCHES.move_to_end(key)
        return _BATCHES[key]
    made = PoolBatch(traces), _BatchCosts(traces)
    _BATCHES[key] = made
    while len(_BATCHES) > 2:
        _BATCHES.popitem(last=False)
    return made


class _BatchCosts:
    """The candidate costs of a batch's pools (:class:`_PoolCosts`, roles aligned), and what
    choices that read a prefix of each group cost: :func:`evaluate`'s mean of
    :func:`measured_cost`, summed in the same order (each group's candidates in pool order,
    then its prompt, then the groups in order), so equal to the last bit."""

    def __init__(self, traces: Sequence[Trace]) -> None:
        self.traces = tuple(traces)
        pools = [_pool_costs(t) for t in traces]
        # Each question's roles in the order its costs name them, the prompt's role last
        # when they do not (shared_prompt_cost adds it): Cost.total's order.
        self.trace_roles = [
            [*p.roles, *([] if POLICY in p.roles else [POLICY])] for p in pools if p is not None
        ]
        self.roles = list(dict.fromkeys(r for roles in self.trace_roles for r in roles))
        self.columns = [
            [(r, len(_FIELDS) + self.roles.index(r)) for r in roles] for roles in self.trace_roles
        ]
        """Per question: each of its roles with the column of its tokens, in its order."""
        self.n = n = len(traces[0].candidates)
        width = len(_FIELDS)
        self.values = np.zeros((len(traces), n, width + len(self.roles)))
        for i, p in enumerate(pools):
            assert p is not None
            self.values[i, :, :width] = p.values[:, :width]
            for j, role in enumerate(p.roles):
                self.values[i, :, width + self.roles.index(role)] = p.values[:, width + j]
        self.tokens = np.array([[c.n_tokens for c in t.candidates] for t in traces],
                               dtype=np.int64)  # fmt: skip
        self.prompt = np.array([t.prompt_tokens for t in traces], dtype=np.float64)
        self._prefix: dict[int, tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]] = {}

    def prefix(self, budget: int) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]:
        """Running sums of the costs and of the generated tokens within each group
        (questions, groups, budget, ...), in pool order: a group read up to position k
        costs entry k."""
        if budget not in self._prefix:
            q, g = len(self.traces), len(self.traces[0].candidates) // budget
            shape = (q, g, budget)
            values = self.values[:, : g * budget].reshape(*shape, -1)
            tokens = self.tokens[:, : g * budget].reshape(shape)
            # cumsum adds in order (no pairwise summation): a running Cost.total.
            self._prefix[budget] = np.cumsum(values, axis=2), np.cumsum(tokens, axis=2)
        return self._prefix[budget]

    def results(self, chosen: GroupChoices, budget: int, scored: bool) -> list[QuestionResult]:
        """Each question's :class:`QuestionResult` of choices that read ``chosen.read``
        candidates of each group (``scored``: they read the verifier's scores)."""
        costs, tokens = self.prefix(budget)
        last = chosen.read - 1
        own = np.take_along_axis(costs, last[:, :, None, None], axis=2)[:, :, 0]
        spent = np.take_along_axis(tokens, last[:, :, None], axis=2)[:, :, 0]
        # Plus the question's prompt, computed once per choice (shared_prompt_cost).
        policy = len(_FIELDS) + self.roles.index(POLICY)
        own[:, :, _COMPUTED] += self.prompt[:, None]
        own[:, :, policy] += self.prompt[:, None]
        if not scored:
            own[:, :, _VERIFIER] = 0  # _without_verifier (its role is left out below)
        groups = own.shape[1]
        # Cost.mean: the groups summed in order, then times 1/groups.
        mean = np.cumsum(own, axis=1)[:, -1] * (1 / groups)
        right = chosen.correct.sum(axis=1)
        read = chosen.read.sum(axis=1)
        spent_total = spent.sum(axis=1)
        whole = (chosen.read[:, 0] == self.n) & (groups == 1)
        out = []
        for t, v, roles, right_i, read_i, spent_i, whole_i in zip(
            self.traces, mean.tolist(), self.columns, right.tolist(), read.tolist(),
            spent_total.tolist(), whole.tolist(), strict=True,
        ):  # fmt: skip
            if whole_i:
                # Every candidate read: the whole trace's cost (selection_cost).
                cost = Cost.mean([selection_cost(t, tuple(range(self.n)), scored)])
            else:
                cost = Cost(
                    v[0], v[1], v[2], v[3], v[4], v[5],
                    {r: v[j] for r, j in roles if scored or r != t.verifier_role},
                )  # fmt: skip
            out.append(QuestionResult(right_i / groups, read_i / groups, spent_i / groups, cost))
        return out


def answer(
    plan: StrategyPlan,
    strategy: Strategy,
    budget: int,
    problems: Sequence[Problem],
    ctx: ExpansionContext,
    task: Task,
) -> Iterator[tuple[Trace, list[Selection]]]:
    """Each question's graded trace and the strategy's choices on it at ``budget``, as the
    chunks finish: the pipeline without a run directory (the lm-eval ``ttc`` model)."""
    spec = strategy.expansion(budget, plan.defaults)
    # Companion traces (a policy's searches) first, kept until their question's own is done.
    stored: dict[str, dict[str, Trace]] = {}
    for other in strategy.also_reads(budget, plan.defaults).values():
        if other.key not in stored:
            stored[other.key] = {
                t.problem_id: t for chunk in expand(other, problems, ctx, task) for t in chunk
            }
    for traces in expand(spec, problems, ctx, task):
        joined = with_companions(
            strategy,
            budget,
            plan.defaults,
            {t.problem_id: t for t in traces},
            lambda key: stored.get(key, {}),
        )
        for trace in joined.values():
            yield trace, selections(strategy, trace, budget)
