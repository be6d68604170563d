"""The results of a run, rebuilt from its stored traces alone (no model): results.json's
schema, the tables, figures and leaderboard rows written from it.

``ttc-eval report`` is :func:`build_results`; comparisons read a :class:`RunView`.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from ttc_eval._heap import frozen_heap
from ttc_eval._rundir import read_record, spec_digest, write_atomic, write_json
from ttc_eval.analysis.bins import difficulty as bin_difficulty
from ttc_eval.analysis.flops import flops_summary, inference_flops
from ttc_eval.analysis.frontier import AXES, frontiers
from ttc_eval.analysis.optimal import PerQuestion, compute_optimal, compute_optimal_at_cost
from ttc_eval.analysis.results import ConfigResults, label_groups, summarize
from ttc_eval.config import OPTIMAL_AXES, RunConfig
from ttc_eval.errors import TTCError, UsageError
from ttc_eval.pipeline import (
    StrategyPlan,
    choices_many,
    evaluate_many,
    load_task,
    plan_strategies,
    trace_cost,
    with_companions,
)
from ttc_eval.policy_report import policy_comparison
from ttc_eval.registry import BACKENDS, GRADERS, VERIFIERS
from ttc_eval.reporting.figures import policy_vs_baselines, write_figures
from ttc_eval.reporting.html import HTML_VERSION, figure_uris, vote_totals, write_page
from ttc_eval.reporting.leaderboard import update_leaderboard
from ttc_eval.reporting.tables import (
    accuracy_tables,
    cost_table,
    flops_table,
    optimal_tables,
    policy_tables,
    pruning_table,
    revision_tables,
    thinking_table,
    verifier_tables,
)
from ttc_eval.store import TraceStore
from ttc_eval.strategies._base import ExpansionSpec, PoolStrategy, Strategy
from ttc_eval.types import POLICY, Cost, QuestionResult, Selection, Trace
from ttc_eval.verifiers._base import step_texts


@dataclass(frozen=True)
class Evaluated:
    """A strategy configuration to report, with the traces it reads."""

    label: str
    """Display name with arguments, e.g. ``best_of_n(aggregation=last,mode=weighted)``."""
    strategy: Strategy
    """The strategy object."""
    traces: Mapping[int, Mapping[str, Trace]]
    """Per budget, the trace of the expansion it reads, per question id."""
    budgets: Sequence[int]
    """Budgets it is reported at."""
    evaluated: dict[int, dict[str, QuestionResult]] = field(default_factory=dict)
    """Per budget, each question's result once computed (rows, the compute-optimal choice
    and comparisons all read them: each is evaluated once)."""


def per_question(ev: Evaluated, budget: int) -> dict[str, QuestionResult]:
    if budget not in ev.evaluated:
        traces = ev.traces[budget]
        ev.evaluated[budget] = evaluate_many(ev.strategy, dict(sorted(traces.items())), budget)
    return ev.evaluated[budget]


@dataclass(frozen=True)
class RunView:
    """A stored run, evaluated from its traces (no model): what reports and comparisons read."""

    record: dict[str, Any]
    """config.json."""
    config: RunConfig
    """The run's settings."""
    store: TraceStore
    """Its traces."""
    evaluated: list[Evaluated]
    """Every strategy configuration with the traces it reads, per budget."""
    labels: dict[str, Mapping[str, Any]]
    """Dataset labels per question."""
    label_keys: list[str]
    """Dataset label kinds reported as bins (empty unless ``label`` bins are on)."""
    difficulty_pool: ExpansionSpec | None
    """The pool difficulty is measured on."""
    difficulty: dict[str, dict[str, object]]
    """Per question: pass@1, mean verifier score and bins."""
    bins: dict[str, dict[str, str]]
    """Bin kind (oracle, predicted) -> question -> bin."""
    kept: set[str] | None
    """Questions the view is restricted to (None: all stored)."""
    plan: StrategyPlan
    """The run's strategy configurations and roles."""


POLICY_COPIES = "policies"
"""Folder of a run directory holding the files its fitted strategies read (policy files)."""


def load_run(run_dir: Path, problem_ids: Sequence[str] | None = None) -> RunView:
    from ttc_eval.policy import run_copies

    record = read_record(run_dir)
    try:
        config = RunConfig.from_dict(record["config"])
    except TypeError as e:
        raise UsageError(f"{run_dir / 'config.json'}: unreadable settings ({e})") from None
    with run_copies(run_dir / POLICY_COPIES):
        plan = plan_strategies(config)
    store = TraceStore(run_dir / "traces.jsonl")
    evaluated = []
    for s in plan.strategies:
        budgets = s.budgets(config.budgets)
        per_budget = {}
        for b in budgets:
            traces = with_companions(
                s, b, plan.defaults, store.by_expansion(s.expansion(b, plan.defaults).key),
                store.by_expansion,
            )  # fmt: skip
            if problem_ids is not None:
                traces = {p: traces[p] for p in problem_ids if p in traces}
            # One order whatever order the rows were stored in (a resumed run stores them
            # in another): bootstrap CIs and tie-breaks then do not depend on it.
            per_budget[b] = dict(sorted(traces.items()))
        evaluated.append(Evaluated(s.label(), s, per_budget, budgets))
    kept = set(problem_ids) if problem_ids is not None else None
    labels = {
        pid: t.labels for (pid, _), t in sorted(store.traces.items()) if kept is None or pid in kept
    }
    label_keys = (
        sorted({k for lab in labels.values() for k in lab}) if "label" in config.bins else []
    )
    difficulty: dict[str, dict[str, object]] = {}
    if plan.difficulty is not None:
        pool = store.by_expansion(plan.difficulty.key)
        difficulty = bin_difficulty(
            {p: t for p, t in sorted(pool.items()) if kept is None or p in kept}, config.bins
        )
    bins = {
        kind: {q: str(d[kind]) for q, d in difficulty.items() if kind in d}
        for kind in ("oracle", "predicted")
    }
    bins = {k: v for k, v in bins.items() if v}
    return RunView(
        record,
        config,
        store,
        evaluated,
        labels,
        label_keys,
        plan.difficulty,
        difficulty,
        bins,
        kept,
        plan,
    )


def stale_versions(record: Mapping[str, Any]) -> list[str]:
    """How the installed code differs from what computed a stored run, one line per
    component whose numbers could now differ (empty when nothing changed or it cannot be
    told: components that are not installed, imported runs)."""
    identity = record.get("identity") or {}
    config = record.get("config") or {}
    notes: list[str] = []

    def check(what: str, recorded: Any, current: Any) -> None:
        if recorded is not None and current is not None and str(recorded) != str(current):
            notes.append(f"{what}: this run used {recorded}, the installed code has {current}")

    grader_name = str((identity.get("grader") or {}).get("name"))
    if grader_name in GRADERS:
        now = GRADERS.get(grader_name).version
        check(f"grader {grader_name}", record.get("grader_version"), now)
    verifier = str(config.get("verifier"))
    if verifier in VERIFIERS:
        now = VERIFIERS.get(verifier).version
        check(f"verifier {verifier}", record.get("verifier_version"), now)
    backend = str(config.get("backend"))
    if backend in BACKENDS:
        check(f"backend {backend}", record.get("backend_version"), BACKENDS.get(backend).version)
    task_id = identity.get("task") or {}
    if task_id and config.get("task"):
        try:
            # As the run loaded it: --grader, lm-eval's few-shot and chat-template options.
            spec = load_task(RunConfig.from_dict(config)).spec
        except Exception:  # the task may come from a folder or plug-in not present now
            spec = None
        if spec is not None and grader_name in GRADERS:
            now = f"{spec.version}+{GRADERS.get(grader_name).version}"
            check(f"task {config['task']} version", task_id.get("version"), now)
            if task_id.get("version") == now:
                check(f"task {config['task']} spec (hash)", task_id.get("spec_sha256"),
                      spec_digest(spec))  # fmt: skip
    return notes


def per_question_accuracy(
    evaluated: Sequence[Evaluated],
) -> dict[str, dict[int, dict[str, float]]]:
    """Candidates of the compute-optimal choice: every configuration but oracles (coverage)."""
    return {
        ev.label: {b: {p: r.accuracy for p, r in per_question(ev, b).items()} for b in ev.budgets}
        for ev in evaluated
        if _candidate(ev.strategy)
    }


def _candidate(strategy: Strategy) -> bool:
    """Whether a configuration is a candidate of the compute-optimal choice: not an oracle
    (coverage), and not a policy fitted on other questions (it is compared on its own, in
    results.json's ``policy`` section)."""
    return not strategy.is_oracle and not strategy.fitted_on


def per_question_cost(
    evaluated: Sequence[Evaluated], axis: str, params: Mapping[str, int | None]
) -> tuple[dict[str, dict[int, dict[str, float]]], set[str]]:
    """Each candidate's measured cost per question on ``axis`` (candidates as in
    :func:`per_question_accuracy`): ``tokens``, the generated tokens of the row cost's
    ``generated_tokens``; ``flops``, its ``flops_total`` (2 x non-embedding parameters x
    tokens, summed over the roles, from ``params``). A (configuration, budget) whose FLOPs
    cannot be known (a role without a parameter count) is left out; the second value names
    those roles."""
    out: dict[str, dict[int, dict[str, float]]] = {}
    unknown: set[str] = set()
    for ev in evaluated:
        if not _candidate(ev.strategy):
            continue
        by_budget: dict[int, dict[str, float]] = {}
        for b in ev.budgets:
            costs: dict[str, float] = {}
            for pid, r in per_question(ev, b).items():
                if axis == "tokens":
                    costs[pid] = float(r.cost.generated_tokens)
                    continue
                missing = {role for role in r.cost.role_tokens if params.get(role) is None}
                if missing:
                    unknown |= missing
                    break
                costs[pid] = sum(
                    inference_flops(params[role] or 0, tokens)
                    for role, tokens in r.cost.role_tokens.items()
                )
            else:
                by_budget[b] = costs
        if by_budget:
            out[ev.label] = by_budget
    return out, unknown


def optimal_choice(
    view: RunView, params: Mapping[str, Any], axis: str
) -> tuple[list[dict[str, Any]], str | None]:
    """results.json's ``compute_optimal`` rows on ``axis`` (``budget``: at equal nominal
    budget, as always; ``tokens`` / ``flops``: at equal measured cost, see
    :func:`~ttc_eval.analysis.optimal.compute_optimal_at_cost`), and a note when the axis
    cannot be honoured in full (FLOPs without parameter counts)."""
    if axis not in OPTIMAL_AXES:
        raise UsageError(f"unknown --optimal-axis {axis!r}; choose from {', '.join(OPTIMAL_AXES)}")
    per_q: PerQuestion = per_question_accuracy(view.evaluated)
    groups = label_groups(view.labels, view.label_keys, view.bins)
    base = baseline(view.evaluated)
    if axis == "budget":
        return compute_optimal(per_q, groups, baseline=base, seed=view.config.seed), None
    if not base:
        return [], (
            f"no compute-optimal choice at equal {axis}: the levels are best-of-N's (else "
            "majority's) measured costs, and the run has neither"
        )
    cost_q, unknown = per_question_cost(view.evaluated, axis, _role_params(params))
    note = None
    if unknown:
        roles = ", ".join(sorted(unknown))
        why = (
            f"no parameter count is recorded for role{'s' if len(unknown) > 1 else ''} "
            f"{roles} (backend {view.config.backend}; a scripted backend such as fake, or a "
            "model served without a local config, reports none)"
        )
        if base not in cost_q:
            return [], (
                f"no compute-optimal choice at equal FLOPs: {why}; use --optimal-axis tokens "
                "(or budget)"
            )
        left_out = [c for c in per_q if set(cost_q.get(c, {})) != set(per_q[c])]
        note = f"left out of the choice at equal FLOPs, {why}: {', '.join(left_out)}"
    rows = compute_optimal_at_cost(
        per_q, cost_q, groups, baseline=base, axis=axis, seed=view.config.seed
    )
    return rows, note


def _role_params(params: Mapping[str, Any]) -> dict[str, int | None]:
    """Non-embedding parameter count per role, from the recorded counts (None: unknown)."""
    return {role: (counts or {}).get("non_embedding") for role, counts in params.items()}


# The paper compares against best-of-N weighted; majority stands in for runs without it.
_BASELINES = ("best_of_n", "majority")


def baseline(evaluated: Sequence[Evaluated]) -> str:
    for name in _BASELINES:
        for ev in evaluated:
            if ev.strategy.name == name:
                return ev.label
    return ""


def recorded_params(run_dir: Path) -> dict[str, Any]:
    """Parameter counts by role, recorded by the last invocation that loaded the models."""
    log = run_dir / "log.jsonl"
    found: dict[str, Any] = {}
    if log.exists():
        for line in log.read_text(errors="replace").splitlines():
            try:
                entry = json.loads(line)
            except ValueError:
                continue  # a line torn by a killed invocation
            if isinstance(entry, dict) and entry.get("params"):
                found = entry["params"]
    return found


def _role_models(view: RunView, strategy: Strategy) -> dict[str, str | None]:
    """The model playing each role a configuration used (``None``: a verifier role with no
    model named)."""
    plan = view.plan
    roles = [POLICY, *strategy.roles]
    if strategy.needs_verifier:
        roles += plan.verifier_roles
    return {role: plan.roles[role].model for role in roles if role in plan.roles}


def _config_results(view: RunView) -> list[ConfigResults]:
    return [
        ConfigResults(
            label=ev.label,
            name=ev.strategy.name,
            args=ev.strategy.args,
            needs_verifier=ev.strategy.needs_verifier,
            roles=_role_models(view, ev.strategy),
            shapes={b: ev.strategy.shape(b) for b in ev.budgets},
            results={b: per_question(ev, b) for b in ev.budgets},
            labels={p: t.labels for b in ev.budgets for p, t in ev.traces[b].items()},
            thinking_cap=ev.strategy.thinking_cap,
        )
        for ev in view.evaluated
    ]


def _compute_section(view: RunView, all_traces: Sequence[Trace]) -> dict[str, Any]:
    store = view.store
    total = Cost.total(trace_cost(t) for t in all_traces)
    return {
        "samples": sum(t.n_generations for t in all_traces),
        "generated_tokens": sum(t.generated_tokens for t in all_traces),
        "prompt_tokens": int(total.prompt_tokens),
        "verifier_tokens": sum(t.verifier_tokens for t in all_traces),
        "prompt_tokens_computed": total.prompt_tokens_computed,
        "seconds": total.seconds,
        "role_tokens": dict(sorted(total.role_tokens.items())),
        "by_expansion": {
            key: {
                "questions": len(ts),
                "samples": sum(t.n_generations for t in ts.values()),
            }
            for key in sorted({k for _, k in store.traces})
            for ts in [store.by_expansion(key)]
        },
    }


def build_results(
    run_dir: Path,
    problem_ids: Sequence[str] | None = None,
    leaderboard_dir: Path | None = None,
    say: Callable[[str], None] | None = None,
    optimal_axis: str | None = None,
) -> tuple[dict[str, Any], str]:
    """Rebuild results.json, the tables and the leaderboard rows from stored traces only.

    Returns the results and the tables to print (accuracy, one table per binning; every
    table is in ``report/tables.md``). The leaderboard goes to ``leaderboard_dir``, else
    where the run recorded. The compute-optimal choice is made on ``optimal_axis``, else on
    the run's recorded ``optimal_axis`` (``budget`` for runs that have none). Differences
    between the code that computed the run and the installed code are reported through
    ``say`` (stderr) and recorded in results.json.
    """
    # Longer than most on purpose: most of it is results.json's schema, one dict literal that
    # reads in one place.
    say = say or (lambda m: print(m, file=sys.stderr))
    view = load_run(run_dir, problem_ids)
    # The run's traces are only read from here on: the collector need not walk them
    # (ttc_eval._heap).
    with frozen_heap():
        return _build_results(view, run_dir, leaderboard_dir, say, optimal_axis)


def _build_results(
    view: RunView,
    run_dir: Path,
    leaderboard_dir: Path | None,
    say: Callable[[str], None],
    optimal_axis: str | None,
) -> tuple[dict[str, Any], str]:
    """:func:`build_results` of a loaded run."""
    record, config = view.record, view.config
    stale = stale_versions(record)
    for note in stale:
        say(
            f"note: {note}; the stored numbers are the old code's (rerun the run's command "
            "with --force-new to recompute them)"
        )
    versions = {
        "task_version": record.get("task_version"),
        "grader_version": record.get("grader_version"),
        "verifier_version": record.get("verifier_version"),
        "backend_version": record.get("backend_version"),
        "ttc_eval_version": record.get("ttc_eval_version"),
    }
    all_traces = [
        t for t in view.store.traces.values() if view.kept is None or t.problem_id in view.kept
    ]
    params = recorded_params(run_dir)
    overlap = trained_overlap(view, {t.problem_id for t in all_traces})
    for role, o in overlap.items():
        say(
            f"WARNING: the {role} model {o['model']} was trained (ttc-eval learn) on "
            f"{o['questions']} of this run's questions (e.g. {o['example']}): its numbers here "
            "are not held-out results; every row is marked trained_overlap"
        )
    rows = [
        {**r, **versions, **({"trained_overlap": overlap} if overlap else {})}
        for r in _rows(view, all_traces, params)
    ]
    axis = optimal_axis or config.optimal_axis
    optimal, optimal_note = optimal_choice(view, params, axis)
    if optimal_note:
        say(f"note: {optimal_note}")
    diff_spec = view.difficulty_pool
    flops = flops_summary([trace_cost(t) for t in all_traces], params)
    roles = {role: spec.model for role, spec in view.plan.roles.items()}
    results: dict[str, Any] = {
        "run_id": run_dir.name,
        "task": config.task,
        # The seeded question split the run was limited to (--split); null: every question.
        "split": config.split_record(),
        "model": config.model,
        "backend": config.backend,
        "verifier": config.verifier,
        "roles": roles,
        **versions,
        "stale_versions": stale,
        "n_problems": len({t.problem_id for t in all_traces}),
        # Models of this run trained on some of its questions (ttc-eval learn), per role.
        "trained_overlap": overlap,
        "compute": _compute_section(view, all_traces),
        "flops": flops,
        "difficulty": {
            "pool": diff_spec.key if diff_spec else None,
            "note": "bins: 1 = easiest; see ttc_eval.analysis.bins.quantile_bins",
            "questions": view.difficulty,
        },
        # The compute level the choice is made at: nominal budget, or measured tokens or
        # FLOPs per question (--optimal-axis; rows of a measured axis say it too).
        "compute_optimal_axis": axis,
        "compute_optimal_note": optimal_note,
        "compute_optimal": optimal,
        # Per label: the configurations and budgets no other beats at equal or lower measured
        # cost (ttc_eval.analysis.frontier; figures report/frontier_*.png).
        "frontier": {axis: frontiers(rows, axis) for axis in AXES},
        "rows": rows,
    }
    policy = policy_comparison(
        [(ev.strategy, ev.traces) for ev in view.evaluated],
        view.bins.get("oracle", {}),
        _role_params(params),
        seed=config.seed,
    )
    if policy:
        # Each fitted policy against best-of-N, majority, the best single configuration and
        # the in-sample oracle-bin bound, on these questions at equal compute (policy_report).
        results["policy"] = policy
    verifier, pruning = _verifier_section(view, run_dir, say)
    if pruning is not None:
        # A run of search strategies only: no pool to judge the verifier on, but its
        # pruned beams still say how often the search cut a path that was right.
        results["verifier_evaluation"] = {"pruning": pruning}
    if verifier is not None:
        # The headline numbers; report/verifier.json has every group (ttc-eval verifiers).
        results["verifier_evaluation"] = {
            k: verifier[k] for k in ("pool", "aggregation", "n_questions", "n_samples", "notes")
        } | {
            "auroc": [d for d in verifier["discrimination"] if d["kind"] == "all"],
            "calibration": [c for c in verifier["calibration"] if c["kind"] == "all"],
            "overoptimization": [o for o in verifier["overoptimization"] if o["kind"] == "all"],
            "pruning": verifier["pruning"],
        }
    write_json(run_dir / "results.json", results)
    extra = [policy_tables(policy), cost_table(rows), flops_table(flops, roles)]
    if verifier is not None:
        extra.append("## How good is the verifier\n\n" + verifier_tables([verifier]))
    elif pruning:
        extra.append("## How good is the verifier\n\n" + pruning_table(pruning))
    # The page's data is made while the figures are drawn (in other processes where they
    # may fork); the page itself is written last, with every figure written below embedded.
    page: dict[str, Any] = {}
    printed, figures = _write_report(
        run_dir, rows, optimal, extra, optimal_note, lambda: page.update(html_data(view, results))
    )
    report = run_dir / "report"
    if policy and policy_vs_baselines(policy, report / "policy.png"):
        figures.append(report / "policy.png")
    if verifier is not None:
        from ttc_eval.verifier_report import write_verifier_report

        written, skipped = write_verifier_report(run_dir, verifier)
        figures += [p for p in written if p.suffix == ".png"]
        for note in skipped:
            say(f"note: {note}")
    # The figures this report drew, not every PNG in report/ (an older report's may be left).
    write_page(report / "index.html", page | {"figures": figure_uris(figures)})
    _update_board(run_dir, record, config, rows, leaderboard_dir)
    return results, printed


def html_data(view: RunView, results: Mapping[str, Any]) -> dict[str, Any]:
    """What ``report/index.html`` shows (:mod:`ttc_eval.reporting.html`), its figures
    apart: the run, its rows, the compute-optimal choices, and per question its groups, the
    accuracy of each configuration at each budget, every trace's samples and every choice
    made on them."""
    config = view.config
    texts = _question_texts(view)
    run = {k: results.get(k) for k in ("run_id", "task", "model", "backend", "verifier",
                                       "n_problems", "task_version", "grader_version",
                                       "verifier_version", "backend_version",
                                       "ttc_eval_version", "compute_optimal_axis")}  # fmt: skip
    run["settings"] = {**_public(view.record.get("config", {})), "html_version": HTML_VERSION}
    run["step_delimiter"] = config.step_delimiter
    rows = [
        {
            "group": "all" if r["label_kind"] == "all" else f"{r['label_kind']}={r['label']}",
            "config": r["config"],
            "budget": r["budget"],
            "shape": r.get("shape"),
            "n_problems": r["n_problems"],
            "accuracy": r["accuracy"],
            "ci_low": r["ci_low"],
            "ci_high": r["ci_high"],
            "tokens": r["mean_generated_tokens"],
            "flops": r["cost"].get("flops_total"),
        }
        for r in results["rows"]
    ]
    by_question: dict[str, dict[str, Trace]] = {}
    for (pid, key), t in view.store.traces.items():
        if view.kept is None or pid in view.kept:
            by_question.setdefault(pid, {})[key] = t
    pids = sorted(by_question)
    picks = _page_picks(view, pids)
    questions, details = [], {}
    for pid in pids:
        bins_of = {k: str(v) for k, v in view.labels.get(pid, {}).items()}
        bins_of |= {kind: bins[pid] for kind, bins in view.bins.items() if pid in bins}
        accuracy = {
            ev.label: {str(b): per_question(ev, b)[pid].accuracy
                       for b in ev.budgets if pid in ev.traces[b]}
            for ev in view.evaluated
        }  # fmt: skip
        text, gold = texts.get(pid, (None, None))
        questions.append({"id": pid, "text": text, "gold": gold, "groups": bins_of,
                          "accuracy": accuracy})  # fmt: skip
        details[pid] = {
            "traces": [
                _trace_view(t, config.budgets, config.step_delimiter)
                for _, t in sorted(by_question[pid].items())
            ],
            "picks": picks[pid],
        }
    return {
        "run": run,
        "rows": rows,
        "optimal": list(results.get("compute_optimal") or []),
        "optimal_note": results.get("compute_optimal_note"),
        "configs": [{"label": ev.label, "budgets": list(ev.budgets)} for ev in view.evaluated],
        "page_groups": PAGE_GROUPS,
        "questions": questions,
        "details": details,
    }


def _page_picks(view: RunView, pids: Sequence[str]) -> dict[str, dict[str, dict[str, Any]]]:
    """Per question, per configuration and budget: the choices in the groups the page
    lists, as columns (:func:`_picks_columns`). Pool strategies with an array path give the
    choices the report's numbers came from (:func:`~ttc_eval.pipeline.choices_many`); the
    others choose again with ``select``."""
    out: dict[str, dict[str, dict[str, Any]]] = {pid: {} for pid in pids}
    for ev in view.evaluated:
        for b in ev.budgets:
            # In per_question's order: the batch it built for these pools is reused.
            traces = {pid: t for pid, t in sorted(ev.traces[b].items()) if pid in out}
            done = set()
            for batch, chosen in choices_many(ev.strategy, traces, b):
                # The first groups of every question of the batch as lists at once; each
                # group reads a prefix of itself (``read``: how many), in this trace.
                g = PAGE_GROUPS
                columns = zip(batch, chosen.chosen[:, :g].tolist(),
                              chosen.correct[:, :g].tolist(), chosen.read[:, :g].tolist(),
                              strict=True)  # fmt: skip
                for pid, at, right, read in columns:
                    cands = traces[pid].candidates
                    out[pid].setdefault(ev.label, {})[str(b)] = {
                        "index": [i if i >= 0 else None for i in at],
                        "answer": [cands[i].vote_key if i >= 0 else None for i in at],
                        "correct": right,
                        "read": read,
                        "trace": traces[pid].expansion,
                    }
                    done.add(pid)
            for pid, trace in traces.items():
                if pid in done or ev.strategy.estimate(trace, b) is not None:
                    continue  # coverage chooses nothing
                sels = _page_selections(ev.strategy, trace, b)
                out[pid].setdefault(ev.label, {})[str(b)] = _picks_columns(trace, sels)
    return out


def _picks_columns(trace: Trace, sels: Sequence[Selection]) -> dict[str, Any]:
    """Choices as the page reads them: per group the chosen sample's pool index, its
    answer, whether it is right, the samples read (as spans) and the trace it is in (a
    policy's choice may be made in a companion trace)."""
    return {
        "index": [s.index for s in sels],
        "answer": [s.answer for s in sels],
        "correct": [s.correct for s in sels],
        "read": [_spans(s.read) for s in sels],
        "trace": [s.picked_in or trace.expansion for s in sels],
    }


PAGE_GROUPS = 64
"""The page lists a pool strategy's choice in the first this many disjoint groups at each
budget: every group of a pool of 64 at every budget; of a pool of 256, all from budget 4 on
(the first 64 of 256 at budget 1 and of 128 at budget 2: rows nobody reads; 64 groups
instead of 16 added 15 MiB and about 0.3 s to the page of a 500 x 256 run)."""


def _page_selections(strategy: Strategy, trace: Trace, budget: int) -> list[Selection]:
    """The choices the page lists: a pool strategy reads each group on its own, so its
    choices in the first :data:`PAGE_GROUPS` groups are those of the pool cut after them."""
    # Only the base class's select reads groups one by one (a plug-in may override it).
    pooled = isinstance(strategy, PoolStrategy) and type(strategy).select is PoolStrategy.select
    if pooled and len(trace.candidates) > PAGE_GROUPS * budget:
        trace = replace(trace, candidates=trace.candidates[: PAGE_GROUPS * budget])
    return strategy.select(trace, budget)


def _spans(indices: Sequence[int]) -> str:
    """``0-3,6``: pool indices as runs."""
    runs: list[list[int]] = []
    for i in sorted(indices):
        if runs and runs[-1][1] == i - 1:
            runs[-1][1] = i
        else:
            runs.append([i, i])
    return ",".join(str(a) if a == b else f"{a}-{b}" for a, b in runs)


_SECRET = ("key", "token", "secret", "password")


def _public(settings: Any) -> Any:
    """Settings without anything that looks like a credential (an openai ``api_key``): the
    page is made to be shared."""
    if isinstance(settings, Mapping):
        return {
            k: "(hidden)" if any(w in str(k).lower() for w in _SECRET) else _public(v)
            for k, v in settings.items()
        }
    return settings


def _trace_view(t: Trace, budgets: Sequence[int], delimiter: str) -> dict[str, Any]:
    """One trace as the page shows it: its samples, and by kind its vote totals per budget
    (a sample pool: the first group of that many samples), its chains (revisions) or its
    tree and pruned beams per round (search)."""
    cands = t.candidates
    out: dict[str, Any] = {
        "expansion": t.expansion,
        # As columns, one entry per sample (the page makes them rows when it opens them).
        "candidates": {
            "index": [c.index for c in cands],
            "answer": [c.answer for c in cands],
            "correct": [c.correct for c in cands],
            "tokens": [c.n_tokens for c in cands],
            # The steps as the verifier scored them (empty pieces dropped).
            "steps": [list(step_texts(c.text, delimiter)) for c in cands],
            "scores": [list(c.step_scores) if c.step_scores else None for c in cands],
            "thinking_closed": [c.thinking_closed for c in cands],
        },
    }
    if t.expansion.startswith("sample("):
        keys = [c.vote_key for c in t.candidates]
        # [answer, votes] pairs: a JSON object would reorder number-like answers.
        out["votes"] = {
            str(b): [list(kv) for kv in vote_totals(keys[:b]).items()]
            for b in budgets
            if b <= len(keys)
        }
    if "chains" in t.extra and "length" in t.extra:
        out["chains"], out["length"] = int(t.extra["chains"]), int(t.extra["length"])
    if "pruned" in t.extra:
        out["rounds"] = t.extra.get("rounds")
        out["pruned"] = [
            {k: b[k] for k in ("round", "score", "tokens", "from", "answer", "correct") if k in b}
            for b in t.extra["pruned"]
        ]
        if "tree" in t.extra:  # searches stored before trees were have none
            out["tree"] = t.extra["tree"]
    return out


def _question_texts(view: RunView) -> dict[str, tuple[str, str]]:
    """Question text and gold answer by id, when the task's questions can be read without a
    download (a generated task, or a local data file): traces do not store them."""
    from ttc_eval.tasks import find_task_spec

    config = view.config
    try:
        spec = find_task_spec(config.task, config.include_path, **config.task_source_args())
        if spec.loader != "arith" and not config.data_files:
            return {}
        problems = load_task(config).problems(config.data_files)
    except (TTCError, OSError, ValueError) as e:
        print(f"note: report/index.html shows no question texts ({e})", file=sys.stderr)
        return {}
    return {p.id: (p.question, p.answer) for p in problems}


def trained_overlap(view: RunView, problem_ids: set[str]) -> dict[str, dict[str, Any]]:
    """Per model role: a model trained by ``ttc-eval learn`` on some of these questions (its
    learn.json lists them), with how many and one of them; empty when none was."""
    from ttc_eval.learn_revisions import trained_questions
    from ttc_eval.policy import question_key

    models = {role: spec.model or view.config.model for role, spec in view.plan.roles.items()}
    if view.config.verifier_args.get("model"):
        models["verifier"] = str(view.config.verifier_args["model"])
    trained = {role: m for role, m in models.items() if trained_questions(m)}
    out: dict[str, dict[str, Any]] = {}
    if not trained:
        return out  # no model of this run was trained by ttc-eval learn
    name = load_task(view.config).spec.name
    asked = {question_key(name, p) for p in problem_ids}
    for role, model in trained.items():
        seen = sorted(asked & set(trained_questions(model) or ()))
        if seen:
            out[role] = {"model": model, "questions": len(seen), "example": seen[0]}
    return out


def _verifier_section(
    view: RunView, run_dir: Path, say: Callable[[str], None]
) -> tuple[dict[str, Any] | None, list[dict[str, Any]] | None]:
    """The verifier's evaluation (``ttc-eval verifiers``) when the run's pool has verifier
    scores; else, for a run of searches only, their pruning rows alone."""
    from ttc_eval.verifier_report import evaluate_view, pruning_rows

    if view.config.verifier is None:
        return None, None
    try:
        return evaluate_view(view, run_dir), None
    except UsageError as e:
        rows = pruning_rows(view)
        if not rows:
            say(f"note: no verifier section in the report ({e})")
        return None, rows or None


def _rows(
    view: RunView, all_traces: Sequence[Trace], params: Mapping[str, Any]
) -> list[dict[str, Any]]:
    """One row per configuration x budget x label, with its measured cost (FLOPs per role
    from the recorded parameter counts)."""
    role_params = _role_params(params)
    rows = summarize(
        _config_results(view),
        view.label_keys,
        view.config.verifier,
        seed=view.config.seed,
        bins=view.bins,
        params=role_params,
    )
    policy_n = role_params.get(POLICY)
    mean_prompt = sum(t.prompt_tokens for t in all_traces) / max(1, len(all_traces))
    for r in rows:
        # The figure of runs before measured costs (a run-wide mean prompt; kept so that old
        # runs report what they did); ``cost.flops`` is the measured one.
        r["policy_flops_per_question"] = (
            inference_flops(
                policy_n, r["mean_generated_tokens"] + r["mean_generations"] * mean_prompt
            )
            if policy_n
            else None
        )
    return rows


def _write_report(
    run_dir: Path,
    rows: Sequence[dict[str, Any]],
    optimal: Sequence[dict[str, Any]],
    extra: Sequence[str],
    optimal_note: str | None = None,
    meanwhile: Callable[[], object] | None = None,
) -> tuple[str, list[Path]]:
    """report/tables.md (with the ``extra`` tables) and the figures, ``meanwhile()`` run
    while they are drawn; the tables to print and the figures written."""
    accuracy = accuracy_tables(rows)
    optimal_text = optimal_tables(optimal, note=optimal_note)
    thinking = thinking_table(rows)
    every = "\n\n".join(
        filter(None, [accuracy, thinking, revision_tables(rows), optimal_text, *extra])
    )
    # The terminal gets one table per binning (each has the all-questions column, so the plain
    # overall table would repeat it); report/tables.md has every table.
    binned = accuracy_tables(rows, kinds="binned")
    report = run_dir / "report"
    report.mkdir(exist_ok=True)
    write_atomic(report / "tables.md", every + "\n")
    figures = write_figures(rows, optimal, report, meanwhile)
    printed = "\n\n".join(filter(None, [binned or accuracy, thinking]))
    if every != printed:
        printed += f"\n\n(every table, compute-optimal choices included: {report / 'tables.md'})"
    return printed, figures


def _update_board(
    run_dir: Path,
    record: Mapping[str, Any],
    config: RunConfig,
    rows: Sequence[dict[str, Any]],
    leaderboard_dir: Path | None,
) -> None:
    # The run's creation time, so that "latest run" means the newest, not the id sorting last.
    date = str(record.get("created") or "")
    lb_rows = [
        {
            **r,
            "task": config.task,
            "model": config.model,
            "backend": config.backend,
            "run_id": run_dir.name,
            "date": date,
        }
        for r in rows
        if r["label_kind"] == "all"
    ]
    board = leaderboard_dir or Path(config.leaderboard_dir)
    if not board.is_absolute():
        # Runs recorded before leaderboard paths were absolute: next to the run's parent.
        board = run_dir.resolve().parent.parent / board
    update_leaderboard(board / f"{config.task.replace(':', '_')}.csv", lb_rows, run_dir.name)
