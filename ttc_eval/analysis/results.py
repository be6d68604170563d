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
    evaluated: Sequence[Evaluated],
    label_keys: Sequence[str],
    verifier: str | None,
    seed: int = 0,
    bins: Mapping[str, Mapping[str, str]] | None = None,
) -> list[dict[str, Any]]:
    """One row per (configuration, budget, label kind, label value), plus label ``all``.
    Label kinds are the dataset's labels (``label_keys``, e.g. ``level``) and the difficulty
    bins in ``bins`` (kind -> question id -> bin)."""
    rows: list[dict[str, Any]] = []
    for ev in evaluated:
        for budget in ev.budgets:
            res = per_question(ev, budget)
            if not res:
                continue
            groups = label_groups(
                {p: ev.traces[budget][p].labels for p in res}, label_keys, bins or {}
            )
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


def label_groups(
    labels: Mapping[str, Mapping[str, Any]],
    label_keys: Sequence[str],
    bins: Mapping[str, Mapping[str, str]],
) -> list[tuple[str, str, list[str]]]:
    """(kind, value, question ids) for all questions, each dataset label and each bin kind."""
    pids = list(labels)
    groups: list[tuple[str, str, list[str]]] = [("all", "all", pids)]
    for key in label_keys:
        for v in sorted({str(labels[p].get(key)) for p in pids}):
            groups.append((key, v, [p for p in pids if str(labels[p].get(key)) == v]))
    for kind, by_q in bins.items():
        for v in sorted({by_q[p] for p in pids if p in by_q}):
            groups.append((kind, v, [p for p in pids if by_q.get(p) == v]))
    return groups
