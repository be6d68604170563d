"""``ttc-eval verifiers RUN [RUN...]``: how good a run's verifier is, from its stored traces
alone (no model): outcome AUROC per step-score aggregation, calibration (ECE and a
reliability diagram), naive best-of-N's regret against the oracle and against majority, and
over-optimization (verifier-guided selection falling below majority as N grows).

Every section reads the pool the run's majority and best-of-N read (so selection numbers are
results.json's own), falling back to the difficulty pool (``--difficulty-samples``) only for
a run without one; every number is about the same samples. The oracle and predicted bins are
the run's own (measured on its difficulty pool). Each run gets ``report/verifier.json``,
``report/verifier.md``, ``report/reliability.png`` and ``report/overoptimization.png`` (the
figures when there is something to draw); several runs print side by side (one column block
per run), which makes a verifier's in- and out-of-distribution numbers one table.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from ttc_eval._rundir import run_dirs as check_run_dirs
from ttc_eval._rundir import write_atomic, write_json
from ttc_eval.aggregation import AGGREGATIONS, aggregate, check_aggregation
from ttc_eval.analysis.results import label_groups
from ttc_eval.analysis.verifier_eval import (
    ECE_BINS,
    N_RESAMPLES,
    Calibration,
    Discrimination,
    QuestionScores,
    WithinQuestion,
    calibration,
    discrimination,
    over_optimization,
    paired_differences,
    within_question,
)
from ttc_eval.errors import UsageError
from ttc_eval.pipeline import evaluate, evaluate_many
from ttc_eval.registry import STRATEGIES
from ttc_eval.reporting.figures import draw_all, overoptimization_curves, reliability_diagrams
from ttc_eval.reporting.tables import verifier_tables
from ttc_eval.results import RunView, load_run, per_question
from ttc_eval.strategies._base import Strategy
from ttc_eval.types import Trace

SELECTIONS = ("oracle", "majority", "naive", "weighted")
"""What the selection and over-optimization sections compare, on the same disjoint groups of
the pool: the oracle (a correct sample when the group has one: not the run's pass@k coverage
row, which averages over every subset), majority voting, and best-of-N naive (the
best-scored sample) and weighted (the answer with the largest summed score)."""

FIGURE_KINDS = ("all", "oracle")
"""Groups drawn in the over-optimization figure, and printed in the regret table: all
questions and the oracle difficulty bins (every group is in verifier.json)."""


def run_aggregations(view: RunView) -> list[str]:
    """The distinct step-score aggregations of the run's best_of_n configurations."""
    return sorted(
        {
            str(s.args.get("aggregation", "last"))
            for s in view.plan.strategies
            if s.name == "best_of_n"
        }
    )


def default_aggregation(view: RunView) -> str:
    """The run's best_of_n aggregation when it has exactly one, else ``last``."""
    mine = run_aggregations(view)
    return mine[0] if len(mine) == 1 else "last"


def evaluate_verifier(
    run_dir: Path, aggregation: str | None = None, seed: int | None = None
) -> dict[str, Any]:
    """verifier.json's content for one run (see the module docstring); ``aggregation``
    makes solution scores for calibration, selection and over-optimization (AUROC is
    reported for every aggregation; default: :func:`default_aggregation`); ``seed``: the
    bootstrap's (default: the run's)."""
    return evaluate_view(load_run(run_dir), run_dir, aggregation, seed)


def evaluate_view(
    view: RunView, run_dir: Path, aggregation: str | None = None, seed: int | None = None
) -> dict[str, Any]:
    """:func:`evaluate_verifier` on a run already loaded (``report`` has it)."""
    if aggregation is not None:
        check_aggregation(aggregation, "ttc-eval verifiers --aggregation")
    key, traces, notes = _scored_pool(view, run_dir)
    seed = view.config.seed if seed is None else seed
    run_aggs = run_aggregations(view)
    aggregation = default_aggregation(view) if aggregation is None else aggregation
    if run_aggs and run_aggs != [aggregation]:
        notes.append(
            f"aggregation {aggregation}: the run's best_of_n used {', '.join(run_aggs)}, so the "
            "weighted and naive best-of-N numbers here are not its results.json rows"
            + ("" if len(run_aggs) == 1 else " (several: pick one with --aggregation)")
        )
    labels = {p: view.labels.get(p, {}) for p in traces}
    groups = label_groups(labels, view.label_keys, view.bins)
    scored = {p: _question_scores(t) for p, t in traces.items()}
    # Aggregations that give every sample the same score (all of them, for one-step
    # solutions) have the same numbers: each is computed for the first of them only.
    alike = {
        how: next(h for h in AGGREGATIONS if all(_same(q[h], q[how]) for q in scored.values()))
        for how in AGGREGATIONS
    }
    discrim, calib = [], []
    for kind, value, pids in groups:
        done: dict[str, tuple[Discrimination, WithinQuestion, Calibration]] = {}
        for how in AGGREGATIONS:
            if alike[how] not in done:
                qs = [scored[p][how] for p in pids]
                done[how] = (
                    discrimination(qs, seed=seed),
                    within_question(qs, seed=seed),
                    calibration(qs, seed=seed),
                )
            pooled, within, calibrated = done[alike[how]]
            discrim.append(
                {
                    "kind": kind,
                    "value": value,
                    "aggregation": how,
                    "pooled": asdict(pooled),
                    "within_question": asdict(within),
                }
            )
            calib.append({"kind": kind, "value": value, "aggregation": how} | asdict(calibrated))
    complete = {p: t for p, t in traces.items() if all(c.step_scores for c in t.candidates)}
    if len(complete) < len(traces):
        notes.append(
            f"{len(traces) - len(complete)} question(s) with unscored samples are left out "
            "of the selection and over-optimization sections"
        )
    sizes = sorted({len(t.candidates) for t in complete.values()})
    if len(sizes) > 1:
        notes.append(
            f"pools hold {sizes[0]} to {sizes[-1]} samples per question: the budget sweep "
            f"is cut at the smallest, {sizes[0]}"
        )
    budgets = _budgets(complete, view.config.budgets)
    accuracy = _accuracies(complete, budgets, aggregation, view)
    selection, overopt = [], []
    # Every paired difference of every group, computed together once the rows are made
    # (hundreds of bootstrap intervals on a large run).
    pending = _Pending()
    for kind, value, pids in groups:
        mine = [p for p in pids if p in complete]
        if not mine or not budgets:
            continue
        selection += _selection_rows(kind, value, mine, budgets, accuracy, pending)
        overopt += _overopt_rows(kind, value, mine, budgets, accuracy, pending)
    pending.compute(seed)
    all_scores = [s for q in scored.values() for s in q["last"].scores]
    return {
        "run_id": run_dir.name,
        "run_dir": str(run_dir),
        "task": view.config.task,
        "model": view.config.model,
        "verifier": view.config.verifier,
        "pool": key,
        "n_questions": len(traces),
        "n_samples": len(all_scores),
        "score_range": [min(all_scores), max(all_scores)] if all_scores else None,
        "aggregation": aggregation,
        "run_aggregations": run_aggs,
        "budgets": budgets,
        "pool_sizes": [sizes[0], sizes[-1]] if sizes else None,
        # Every CI resamples questions with all their samples (ttc_eval.analysis.verifier_eval).
        "bootstrap": {
            "unit": "question",
            "resamples": N_RESAMPLES,
            "confidence": 0.95,
            "seed": seed,
        },
        "ece_bins": ECE_BINS,
        "groups": [{"kind": k, "value": v, "n_questions": len(p)} for k, v, p in groups],
        "discrimination": discrim,
        "calibration": calib,
        "selection": selection,
        "overoptimization": overopt,
        "pruning": pruning_rows(view),
        "notes": notes,
    }


def pruning_rows(view: RunView) -> list[dict[str, Any]]:
    """Per search configuration and budget: how often the verifier pruned a path that was
    going to be right. A pruned beam's verdict is its lookahead rollout's, graded when the
    rollout finished; without lookahead (k = 0) pruned beams are partial solutions with no
    verdict, and the row says so."""
    rows = []
    for ev in view.evaluated:
        for budget in ev.budgets:
            traces = ev.traces[budget]
            if not traces or not all("pruned" in t.extra for t in traces.values()):
                continue  # not a search, or a search stored before pruned beams were kept
            n = len(traces)
            beams = [b for t in traces.values() for b in t.extra["pruned"]]
            judged = [b for b in beams if "correct" in b]
            right_pruned = {
                q for q, t in traces.items() if any(b.get("correct") for b in t.extra["pruned"])
            }
            wrong = {q for q, t in traces.items() if evaluate(ev.strategy, t, budget).accuracy < 1}
            # Wrong with no right final candidate either: the search itself lost the path
            # (not only its final selection).
            none_right = {q for q in wrong if not any(c.correct for c in traces[q].candidates)}
            rows.append(
                {
                    "config": ev.label,
                    "budget": budget,
                    "n_questions": n,
                    "pruned_per_question": len(beams) / n,
                    "pruned_with_verdict": len(judged),
                    "pruned_correct": sum(1 for b in judged if b["correct"]),
                    # Questions where some pruned beam's rollout was right.
                    "questions_with_a_correct_pruned_beam": len(right_pruned),
                    # ... and the search's own answer was wrong: lost to pruning.
                    "wrong_with_a_correct_pruned_beam": len(right_pruned & wrong),
                    # ... and no final candidate right: only pruning lost it.
                    "no_right_candidate_with_a_correct_pruned_beam": len(right_pruned & none_right),
                    "n_wrong": len(wrong),
                    "n_no_right_candidate": len(none_right),
                    "note": None
                    if judged or not beams
                    else "no pruned beam has a verdict: no pruned beam's lookahead rollout "
                    "finished (without lookahead, lookahead=0, there is none); a longer "
                    "lookahead=k finishes more",
                }
            )
    return rows


def _no_scores(view: RunView, run_dir: Path) -> UsageError:
    if view.record.get("imported"):
        fix = (
            "the imported dump had no reward scores: give every sample a `score` (generic) "
            "or `pred_score` (qwen-math) and import it again"
        )
    else:
        fix = (
            "rerun its command with --verifier logprob (the policy's own token "
            "probabilities, no extra model), --verifier self-judge, or a PRM (`ttc-eval "
            "list verifiers`), into a new --output-dir"
        )
    return UsageError(f"{run_dir} has no verifier scores to evaluate; {fix}")


def strategy_pool(view: RunView) -> str:
    """Key of the pool the run's pool strategies (majority, best_of_n, coverage) read."""
    majority = STRATEGIES.create("majority")
    return majority.expansion(max(view.config.budgets), view.plan.defaults).key


def _scored_pool(view: RunView, run_dir: Path) -> tuple[str, dict[str, Trace], list[str]]:
    """The pool the run's majority and best_of_n read (else its difficulty pool), questions
    in id order, with notes."""
    if view.config.verifier is None:
        raise _no_scores(view, run_dir)
    notes = []
    key = strategy_pool(view)
    traces = view.store.by_expansion(key)
    if not traces:
        spec = view.difficulty_pool
        if spec is None:
            raise UsageError(
                f"{run_dir} has no pool of independent samples (its strategies are all search "
                "or sequential); verifier evaluation reads one: rerun with --strategy "
                "best_of_n added"
            )
        key, traces = spec.key, view.store.by_expansion(spec.key)
        notes.append(
            f"the run's strategies read no sample pool: every section reads its difficulty "
            f"pool {key}"
        )
    traces = dict(sorted(traces.items()))
    if not any(c.step_scores for t in traces.values() for c in t.candidates):
        raise _no_scores(view, run_dir)
    unusable = sum(
        1 for t in traces.values() for c in t.candidates if not c.step_scores or c.correct is None
    )
    if unusable:
        notes.append(
            f"{unusable} sample(s) without a verifier score or a verdict are left out of "
            "discrimination and calibration"
        )
    return key, traces, notes


def _question_scores(trace: Trace) -> dict[str, QuestionScores]:
    """Per aggregation, the question's scored and graded samples."""
    usable = [c for c in trace.candidates if c.step_scores and c.correct is not None]
    steps = [c.step_scores or () for c in usable]
    correct = tuple(bool(c.correct) for c in usable)
    return {how: QuestionScores(tuple(_aggregated(steps, how)), correct) for how in AGGREGATIONS}


def _same(a: QuestionScores, b: QuestionScores) -> bool:
    """Whether two aggregations gave every sample the very same score, to the bit (-0.0 is
    not 0.0 here: a mean of scores could print either)."""
    if a.scores != b.scores or a.correct != b.correct:
        return False
    bits_a = np.asarray(a.scores, dtype=np.float64).view(np.uint64)
    return bool(np.array_equal(bits_a, np.asarray(b.scores, dtype=np.float64).view(np.uint64)))


def _aggregated(steps: Sequence[Sequence[float]], how: str) -> list[float]:
    """``aggregate(s, how)`` of each non-empty ``s`` (its expressions inlined for the usual
    aggregations: a report aggregates every sample of the pool four ways)."""
    if how == "last":
        return [float(s[-1]) for s in steps]
    if how == "min":
        return [float(min(s)) for s in steps]
    return [aggregate(s, how) for s in steps]


def _budgets(traces: Mapping[str, Trace], run_budgets: Sequence[int]) -> list[int]:
    """The budget sweep: 1, 2, 4, ..., the run's own budgets and the pool size, all capped at
    the smallest pool (imported pools may differ in size)."""
    if not traces:
        return []
    n = min(len(t.candidates) for t in traces.values())
    powers = {2**k for k in range(n.bit_length())}
    return sorted(b for b in powers | set(run_budgets) | {n} if 1 <= b <= n)


def _accuracies(
    traces: Mapping[str, Trace], budgets: Sequence[int], aggregation: str, view: RunView
) -> dict[str, dict[int, dict[str, float]]]:
    """Per selection (:data:`SELECTIONS`), budget and question: the expected accuracy, as
    the run's report computes it (mean over the disjoint groups of the pool). The oracle
    chooses a correct sample in those same groups (not the report's coverage row, pass@N
    over every subset): then its regret over naive best-of-N is what naive lost on the very
    samples it read, never below zero for a question."""
    strategies = {
        "majority": STRATEGIES.create("majority"),
        "naive": STRATEGIES.create("best_of_n", mode="naive", aggregation=aggregation),
        "weighted": STRATEGIES.create("best_of_n", mode="weighted", aggregation=aggregation),
    }
    out = {
        name: {b: _evaluated(view, s, b, traces) for b in budgets} for name, s in strategies.items()
    }
    # The oracle is right in a group when any of its samples is (coverage's choice).
    correct = {p: np.array([bool(c.correct) for c in t.candidates]) for p, t in traces.items()}
    out["oracle"] = {
        b: {
            p: _mean(_groups(right, b).any(axis=1).astype(float).tolist())
            for p, right in correct.items()
        }
        for b in budgets
    }
    return out


def _groups(values: NDArray[np.bool_], budget: int) -> NDArray[np.bool_]:
    """A pool's values as its disjoint groups of ``budget`` (one row each)."""
    if not 0 < budget <= len(values):
        raise ValueError(f"budget {budget} does not fit a pool of {len(values)}")
    g = len(values) // budget
    return values[: g * budget].reshape(g, budget)


def _evaluated(
    view: RunView, strategy: Strategy, budget: int, traces: Mapping[str, Trace]
) -> dict[str, float]:
    """Each question's accuracy of ``strategy`` at ``budget``: the report's own result when
    the run evaluated the same configuration on these very traces (``report`` has, by now),
    else evaluated here."""
    for ev in view.evaluated:
        mine = ev.traces.get(budget, {}) if ev.label == strategy.label() else {}
        # Only a result already computed: evaluating every trace of the configuration here
        # could fail on traces this section leaves out.
        if mine and budget in ev.evaluated and all(mine.get(p) is t for p, t in traces.items()):
            done = per_question(ev, budget)
            return {p: done[p].accuracy for p in traces}
    return {p: r.accuracy for p, r in evaluate_many(strategy, traces, budget).items()}


def _mean(values: Sequence[float]) -> float:
    return sum(values) / len(values)


class _Pending:
    """Paired differences asked for while rows are made: each is an empty dict in its row
    until :meth:`compute` fills it (with :class:`PairedDifference`'s fields, in order)."""

    def __init__(self) -> None:
        self.pairs: list[tuple[list[float], list[float]]] = []
        self.slots: list[dict[str, Any]] = []

    def difference(self, a: list[float], b: list[float]) -> dict[str, Any]:
        self.pairs.append((a, b))
        self.slots.append({})
        return self.slots[-1]

    def compute(self, seed: int) -> None:
        for slot, made in zip(self.slots, paired_differences(self.pairs, seed=seed), strict=True):
            slot.update(asdict(made))


def _selection_rows(
    kind: str,
    value: str,
    pids: Sequence[str],
    budgets: Sequence[int],
    acc: Mapping[str, Mapping[int, Mapping[str, float]]],
    pending: _Pending,
) -> list[dict[str, Any]]:
    rows = []
    for b in budgets:
        per = {name: [acc[name][b][p] for p in pids] for name in SELECTIONS}
        rows.append(
            {
                "kind": kind,
                "value": value,
                "budget": b,
                "n_questions": len(pids),
                **{name: _mean(v) for name, v in per.items()},
                # Regret of picking the best-scored sample: against the oracle (a correct
                # sample was in the group) and against plain voting.
                "oracle_minus_naive": pending.difference(per["oracle"], per["naive"]),
                "majority_minus_naive": pending.difference(per["majority"], per["naive"]),
            }
        )
    return rows


def _overopt_rows(
    kind: str,
    value: str,
    pids: Sequence[str],
    budgets: Sequence[int],
    acc: Mapping[str, Mapping[int, Mapping[str, float]]],
    pending: _Pending,
) -> list[dict[str, Any]]:
    rows = []
    majority = [_mean([acc["majority"][b][p] for p in pids]) for b in budgets]
    for mode in ("weighted", "naive"):
        guided = [_mean([acc[mode][b][p] for p in pids]) for b in budgets]
        result = over_optimization(budgets, guided, majority)
        diffs = [
            pending.difference(
                [acc[mode][b][p] for p in pids], [acc["majority"][b][p] for p in pids]
            )
            for b in budgets
        ]
        rows.append(
            {"kind": kind, "value": value, "mode": mode, "n_questions": len(pids)}
            | asdict(result)
            | {"guided_minus_majority": diffs}
        )
    return rows


def write_verifier_report(run_dir: Path, report: Mapping[str, Any]) -> tuple[list[Path], list[str]]:
    """verifier.json, verifier.md and the figures into ``run_dir/report``; returns the files
    written and notes on what could not be drawn."""
    out = run_dir / "report"
    out.mkdir(exist_ok=True)
    write_json(out / "verifier.json", report)
    write_atomic(out / "verifier.md", verifier_tables([dict(report)]) + "\n")
    written, notes = [out / "verifier.json", out / "verifier.md"], []
    drawn = [c for c in report["calibration"] if c["kind"] == "all" and c["ece"] is not None]
    panels = [
        _overopt_panel(report, kind, value)
        for kind, value in _groups_of(report["overoptimization"], FIGURE_KINDS)
    ]
    reliable, curves = draw_all(
        [
            (reliability_diagrams, (drawn, out / "reliability.png")),
            (overoptimization_curves, (panels, out / "overoptimization.png")),
        ]
    )
    if reliable:
        written.append(out / "reliability.png")
    else:
        why = next((c["reason"] for c in report["calibration"] if c["kind"] == "all"), None)
        notes.append(f"{out / 'reliability.png'} not written: {why or 'no scores'}")
    if curves:
        written.append(out / "overoptimization.png")
    else:
        notes.append(f"{out / 'overoptimization.png'} not written: no budgets to compare")
    return written, notes


def _groups_of(rows: Sequence[Mapping[str, Any]], kinds: Sequence[str]) -> list[tuple[str, str]]:
    return list(dict.fromkeys((r["kind"], r["value"]) for r in rows if r["kind"] in kinds))


def _overopt_panel(report: Mapping[str, Any], kind: str, value: str) -> dict[str, Any]:
    """One panel of the over-optimization figure: every selection's accuracy by budget."""
    sel = sorted(
        (r for r in report["selection"] if (r["kind"], r["value"]) == (kind, value)),
        key=lambda r: r["budget"],
    )
    onsets = {
        r["mode"]: r["onset"]
        for r in report["overoptimization"]
        if (r["kind"], r["value"]) == (kind, value)
    }
    n = sel[0]["n_questions"] if sel else 0
    title = f"all questions (n={n})" if kind == "all" else f"{kind} = {value} (n={n})"
    return {
        "title": title,
        "budgets": [r["budget"] for r in sel],
        "lines": {name: [r[name] for r in sel] for name in SELECTIONS},
        "onsets": onsets,
    }


def verifiers_command(
    run_dirs: Sequence[Path], aggregation: str | None = None, seed: int | None = None
) -> tuple[str, list[str], list[Path]]:
    """Evaluate every run, then write each one's report (a run that cannot be evaluated is
    refused before anything is written); the side-by-side tables to print, the notes and
    the files written. ``aggregation``: ``None`` takes each run's own
    (:func:`default_aggregation`)."""
    check_run_dirs(run_dirs)
    reports = [evaluate_verifier(run_dir, aggregation, seed) for run_dir in run_dirs]
    notes: list[str] = []
    written: list[Path] = []
    for run_dir, report in zip(run_dirs, reports, strict=True):
        notes += [f"{run_dir.name}: {n}" for n in report["notes"]]
        files, skipped = write_verifier_report(run_dir, report)
        written += files
        notes += skipped
    return verifier_tables(reports, regret_kinds=FIGURE_KINDS), notes, written
