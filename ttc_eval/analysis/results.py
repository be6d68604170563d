"""Accuracy by strategy configuration x budget x difficulty label, from stored traces only."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ttc_eval.analysis.stats import bootstrap_ci
from ttc_eval.strategies._base import QuestionResult, Strategy
from ttc_eval.types import Trace


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


def per_question(ev: Evaluated, budget: int) -> dict[str, QuestionResult]:
    traces = ev.traces[budget]
    return {pid: ev.strategy.evaluate(t, budget) for pid, t in sorted(traces.items())}


def summarize(
    evaluated: Sequence[Evaluated], label_keys: Sequence[str], verifier: str | None, seed: int = 0
) -> list[dict[str, Any]]:
    """One row per (configuration, budget, label kind, label value), plus label ``all``."""
    rows: list[dict[str, Any]] = []
    for ev in evaluated:
        for budget in ev.budgets:
            res = per_question(ev, budget)
            if not res:
                continue
            labels = {p: ev.traces[budget][p].labels for p in res}
            groups: list[tuple[str, str, list[str]]] = [("all", "all", list(res))]
            for key in label_keys:
                values = sorted({str(labels[p].get(key)) for p in res})
                for v in values:
                    groups.append((key, v, [p for p in res if str(labels[p].get(key)) == v]))
            shape = getattr(ev.strategy, "shape", None)
            for kind, value, pids in groups:
                acc = [res[p].accuracy for p in pids]
                lo, hi = bootstrap_ci(acc, seed=seed)
                rows.append(
                    {
                        "strategy": ev.strategy.name,
                        "config": ev.label,
                        "strategy_args": dict(ev.strategy.args),
                        "verifier": verifier if ev.strategy.needs_verifier else None,
                        "budget": budget,
                        "shape": shape(budget) if shape else None,
                        "label_kind": kind,
                        "label": value,
                        "n_problems": len(pids),
                        "accuracy": sum(acc) / len(acc),
                        "ci_low": lo,
                        "ci_high": hi,
                        "mean_generations": sum(res[p].n_generations for p in pids) / len(pids),
                        "mean_generated_tokens": sum(res[p].n_tokens for p in pids) / len(pids),
                    }
                )
    return rows
