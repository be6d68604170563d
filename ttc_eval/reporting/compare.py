"""``ttc-eval compare``: a paired, per-question test of whether a new run is worse than a base
run (for CI gates), and ``ttc-eval leaderboard``: a ranked view of a leaderboard CSV."""

from __future__ import annotations

import csv
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from scipy import stats
from tabulate import tabulate

from ttc_eval.analysis.results import label_groups
from ttc_eval.analysis.stats import bootstrap_ci
from ttc_eval.errors import UsageError, did_you_mean
from ttc_eval.results import Evaluated, RunView, load_run, per_question


def _pick(view: RunView, strategy: str | None, name: str) -> list[Evaluated]:
    if strategy is None:
        return [e for e in view.evaluated if not e.strategy.is_oracle]
    found = [e for e in view.evaluated if strategy in (e.label, e.strategy.name)]
    if not found:
        labels = [e.label for e in view.evaluated]
        hint = did_you_mean(strategy, labels, n=3, cutoff=0.3)
        raise UsageError(f"{name} run has no strategy {strategy!r}.{hint} It has: {labels}")
    return found


def _outcomes(ev: Evaluated, budget: int) -> tuple[dict[str, float], dict[str, bool]]:
    """Per question: expected accuracy (all disjoint groups) and the first group's verdict."""
    acc = {q: r.accuracy for q, r in per_question(ev, budget).items()}
    first = {q: ev.strategy.select(t, budget)[0].correct for q, t in ev.traces[budget].items()}
    return acc, first


def paired_test(
    base_acc: Mapping[str, float],
    new_acc: Mapping[str, float],
    base_first: Mapping[str, bool],
    new_first: Mapping[str, bool],
    questions: Sequence[str],
    seed: int = 0,
) -> dict[str, Any]:
    """Accuracy difference (new - base) with a paired bootstrap 95% CI over questions, and
    the exact McNemar test on the discordant pairs (``scipy.stats.binomtest``). The CI is
    :func:`~ttc_eval.analysis.stats.bootstrap_ci` of the per-question differences."""
    diffs = np.array([new_acc[q] - base_acc[q] for q in questions], dtype=float)
    worse = sum(1 for q in questions if base_first[q] and not new_first[q])
    better = sum(1 for q in questions if new_first[q] and not base_first[q])
    n_disc = worse + better
    p_two = stats.binomtest(worse, n_disc, 0.5).pvalue if n_disc else 1.0
    p_worse = stats.binomtest(worse, n_disc, 0.5, alternative="greater").pvalue if n_disc else 1.0
    # The paired bootstrap is the bootstrap of the mean of the per-question differences.
    lo, hi = bootstrap_ci(diffs, confidence=0.95, seed=seed) if diffs.size else (0.0, 0.0)
    return {
        "n_problems": len(questions),
        "base_accuracy": float(np.mean([base_acc[q] for q in questions])),
        "new_accuracy": float(np.mean([new_acc[q] for q in questions])),
        "difference": float(diffs.mean()),
        "ci_low": lo,
        "ci_high": hi,
        "new_worse_pairs": worse,
        "new_better_pairs": better,
        "mcnemar_p": float(p_two),
        "p_new_worse": float(p_worse),
    }


def compare_runs(
    base_dir: Path,
    new_dir: Path,
    strategy: str | None = None,
    budget: int | None = None,
    max_drop: float = 0.02,
    alpha: float = 0.05,
) -> dict[str, Any]:
    base, new = load_run(base_dir), load_run(new_dir)
    if base.config.task != new.config.task:
        raise UsageError(
            f"runs are on different tasks ({base.config.task} vs {new.config.task}); "
            "compare runs of one task"
        )
    new_by_label = {e.label: e for e in _pick(new, strategy, "NEW")}
    pairs = [
        (e, new_by_label[e.label]) for e in _pick(base, strategy, "BASE") if e.label in new_by_label
    ]
    if not pairs:
        raise UsageError("the runs share no strategy configuration; pass --strategy")
    rows = []
    for b_ev, n_ev in pairs:
        budgets = sorted(set(b_ev.budgets) & set(n_ev.budgets))
        if budget is not None:
            if budget not in budgets:
                raise UsageError(f"{b_ev.label}: budget {budget} not in both runs ({budgets})")
            budgets = [budget]
        elif budgets:
            budgets = [max(budgets)]
        for b in budgets:
            b_acc, b_first = _outcomes(b_ev, b)
            n_acc, n_first = _outcomes(n_ev, b)
            shared = sorted(set(b_acc) & set(n_acc))
            if not shared:
                raise UsageError("the runs share no questions; nothing to compare")
            groups = label_groups({q: base.labels.get(q, {}) for q in shared}, [], base.bins)
            for kind, value, qs in groups:
                if kind not in ("all", "oracle"):
                    continue
                test = paired_test(b_acc, n_acc, b_first, n_first, qs, seed=base.config.seed)
                rows.append(
                    {"config": b_ev.label, "budget": b, "bin_kind": kind, "bin": value, **test}
                )
    overall = [r for r in rows if r["bin_kind"] == "all"]
    failing = [r for r in overall if r["difference"] < -max_drop and r["p_new_worse"] < alpha]
    return {
        "base": str(base_dir),
        "new": str(new_dir),
        "task": base.config.task,
        "max_drop": max_drop,
        "alpha": alpha,
        "rows": rows,
        "worse": [r["config"] for r in failing],
        "verdict": "worse" if failing else "ok",
    }


def format_comparison(result: Mapping[str, Any], fmt: str = "github") -> str:
    body = [
        [
            r["config"],
            r["budget"],
            "all" if r["bin_kind"] == "all" else f"oracle {r['bin']}",
            r["n_problems"],
            f"{r['base_accuracy']:.3f}",
            f"{r['new_accuracy']:.3f}",
            f"{r['difference']:+.3f} [{r['ci_low']:+.2f}, {r['ci_high']:+.2f}]",
            f"{r['new_worse_pairs']}/{r['new_better_pairs']}",
            f"{r['mcnemar_p']:.3g}",
            f"{r['p_new_worse']:.3g}",
        ]
        for r in result["rows"]
    ]
    headers = [
        "config", "budget", "questions", "n", "base", "new", "new - base [95% CI]",
        "worse/better", "McNemar p", "p(new worse)",
    ]  # fmt: skip
    verdict = (
        f"verdict: NEW is significantly worse (drop > {result['max_drop']}, "
        f"p < {result['alpha']}) for {', '.join(result['worse'])}"
        if result["verdict"] == "worse"
        else f"verdict: ok (no drop > {result['max_drop']} significant at {result['alpha']})"
    )
    return tabulate(body, headers=headers, tablefmt=fmt) + "\n\n" + verdict


_LEADERBOARD_COLUMNS = (
    "model", "strategy", "strategy_args", "budget", "n_problems", "accuracy", "ci_low",
    "ci_high", "run_id",
)  # fmt: skip


def _read_leaderboard(path: Path) -> list[dict[str, str]]:
    if not path.exists():
        raise UsageError(f"{path}: no such leaderboard (runs write leaderboards/<task>.csv)")
    if not path.is_file():
        raise UsageError(f"{path}: is a folder; pass a leaderboard CSV such as {path}/arith.csv")
    try:
        with path.open(newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f)
            rows = list(reader)
            header = list(reader.fieldnames or [])
    except (UnicodeDecodeError, csv.Error) as e:
        raise UsageError(f"{path}: not a leaderboard CSV ({e})") from None
    if not header:
        raise UsageError(f"{path}: the file is empty; no run has been recorded in it")
    missing = [c for c in _LEADERBOARD_COLUMNS if c not in header]
    if "date" not in header and "created" not in header:
        missing.append("date")
    if missing:
        raise UsageError(f"{path}: not a ttc-eval leaderboard (no columns {missing})")
    if not rows:
        raise UsageError(f"{path}: no run has been recorded in it yet (only the header)")
    for lineno, r in enumerate(rows, 2):
        try:
            int(r["budget"])
            float(r["accuracy"]), float(r["ci_low"]), float(r["ci_high"])
        except (TypeError, ValueError):
            raise UsageError(
                f"{path}:{lineno}: budget and accuracy columns must be numbers"
            ) from None
    return rows


def leaderboard_table(path: Path, budget: int | None = None, fmt: str = "github") -> str:
    """Ranked by accuracy: one row per model x strategy configuration (its latest run), at
    ``budget`` (default: each configuration's largest).

    The latest run is the newest by recorded time (``created`` where the CSV has it, else
    ``date``, compared as ISO strings); runs recorded at the same time are ordered by their
    place in the file, later rows being newer (a rerun rewrites its rows at the end).
    """
    rows = _read_leaderboard(path)
    if budget is not None:
        recorded = sorted({int(r["budget"]) for r in rows})
        rows = [r for r in rows if int(r["budget"]) == budget]
        if not rows:
            raise UsageError(
                f"{path}: no run recorded budget {budget}; budgets recorded: "
                f"{', '.join(map(str, recorded))} (or omit --budget for each configuration's "
                "largest)"
            )
    best: dict[tuple[str, ...], tuple[tuple[int, str, int], dict[str, str]]] = {}
    for order, r in enumerate(rows):
        key = (
            r["model"],
            r["strategy"],
            r["strategy_args"],
            r.get("verifier") or "",
            r.get("shape") or "",
            r.get("roles") or "",
        )
        when = r.get("created") or r.get("date") or ""
        # Without --budget, the largest budget first; then the newest run.
        rank = (int(r["budget"]) if budget is None else 0, when, order)
        if key not in best or rank > best[key][0]:
            best[key] = (rank, r)
    ranked = sorted((r for _, r in best.values()), key=lambda r: -float(r["accuracy"]))
    body = [
        [
            i + 1,
            r["model"],
            r["strategy"]
            + (f" {r['strategy_args']}" if r["strategy_args"] not in ("{}", "") else "")
            + (f" roles {r['roles']}" if r.get("roles") else ""),
            r.get("verifier", ""),
            r["budget"],
            r["n_problems"],
            f"{float(r['accuracy']):.3f} [{float(r['ci_low']):.2f}, {float(r['ci_high']):.2f}]",
            r["run_id"],
        ]
        for i, r in enumerate(ranked)
    ]
    headers = ["rank", "model", "strategy", "verifier", "budget", "n", "accuracy [95% CI]", "run"]
    return tabulate(body, headers=headers, tablefmt=fmt)
