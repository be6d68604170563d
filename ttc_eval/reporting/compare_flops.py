"""``ttc-eval compare-flops``: a small model plus test-time compute against a larger model's
greedy answers at equal total FLOPs (Snell et al. section 7)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from tabulate import tabulate

from ttc_eval.analysis.flops import tokens_multiplier
from ttc_eval.analysis.optimal import compute_optimal, log2_interpolate
from ttc_eval.analysis.results import label_groups
from ttc_eval.analysis.stats import bootstrap_ci
from ttc_eval.errors import UsageError
from ttc_eval.reporting.figures import flops_comparison
from ttc_eval.results import (
    Evaluated,
    RunView,
    baseline,
    load_run,
    per_question,
    per_question_accuracy,
    recorded_params,
)


def _params(view: RunView, run_dir: Path, override: float | None, flag: str) -> float:
    if override is not None:
        return override
    policy = recorded_params(run_dir).get("policy") or {}
    n = policy.get("non_embedding")
    if not n:
        raise UsageError(
            f"{run_dir}: no recorded parameter count for {view.config.model}; pass {flag} N"
        )
    return float(n)


def _large_answers(view: RunView) -> tuple[str, dict[str, float], float]:
    """The larger model's greedy correctness per question (``greedy``; else the first
    configuration's budget-1 accuracy, the expected accuracy of one sample) and its
    generated tokens per question."""
    ev = next((e for e in view.evaluated if e.strategy.name == "greedy"), None)
    if ev is None:
        ev = next((e for e in view.evaluated if 1 in e.budgets), None)
    if ev is None:
        raise UsageError("the larger model's run has no budget-1 configuration (add greedy)")
    res = per_question(ev, 1)
    tokens = sum(r.n_tokens for r in res.values()) / max(1, len(res))
    return ev.label, {q: r.accuracy for q, r in res.items()}, tokens


def _interpolate(curve: Mapping[int, float], budget: float) -> tuple[float, str]:
    """Linear in log2 budget between the run's budgets; clamped (and said) outside them."""
    pts = sorted(curve.items())
    lo, hi = pts[0], pts[-1]
    if budget <= lo[0]:
        return lo[1], f"at N={lo[0]} (smallest budget run; matched {budget:.1f})"
    if budget >= hi[0]:
        return hi[1], f"capped at N={hi[0]} (largest budget run; matched {budget:.1f})"
    acc, b0, b1 = log2_interpolate(curve, budget)
    return acc, f"log2-interpolated between N={b0} and N={b1}"


def compare_flops(
    small_dir: Path,
    large_dir: Path,
    ratios: Sequence[float],
    params_small: float | None = None,
    params_large: float | None = None,
) -> dict[str, Any]:
    # Longer than most functions on purpose: each output row's fields sit next to the lines
    # that compute them, which is how the comparison is checked against the paper.
    small, large = load_run(small_dir), load_run(large_dir)
    if small.config.task != large.config.task:
        raise UsageError(
            f"runs are on different tasks ({small.config.task} vs {large.config.task})"
        )
    ps = _params(small, small_dir, params_small, "--params-small")
    pl = _params(large, large_dir, params_large, "--params-large")
    m = pl / ps
    large_label, large_acc, large_tokens = _large_answers(large)
    per_q = per_question_accuracy(small.evaluated)
    shared = sorted(
        set(large_acc) & {q for by_b in per_q.values() for qs in by_b.values() for q in qs}
    )
    if len(shared) < 2:
        raise UsageError("the runs share fewer than 2 questions; nothing to compare")
    small_tokens = _tokens_per_sample(small.evaluated)
    oracle = {k: v for k, v in small.bins.items() if k == "oracle"}  # the small model's bins
    groups = label_groups({q: small.labels.get(q, {}) for q in shared}, [], oracle)
    optimal = compute_optimal(per_q, groups, baseline(small.evaluated), seed=small.config.seed)
    table = []
    for r in ratios:
        k = tokens_multiplier(m, r)
        # The small model may generate K times the larger model's tokens per question.
        matched = k * large_tokens / small_tokens if small_tokens else k
        for kind, value, qs in groups:
            mine = {o["budget"]: o for o in optimal if (o["bin_kind"], o["bin"]) == (kind, value)}
            if not mine:
                continue
            curve = {b: float(o["optimal_accuracy"]) for b, o in mine.items()}
            acc, how = _interpolate(curve, matched)
            chosen = _at_matched(mine, matched)
            small_q = {q: _interp_q(per_q[str(chosen["chosen"])], q, matched) for q in qs}
            diffs = [small_q[q] - large_acc[q] for q in qs]
            lo, hi = bootstrap_ci(diffs, seed=small.config.seed)
            large_mean = sum(large_acc[q] for q in qs) / len(qs)
            table.append(
                {
                    "R": r,
                    "K": k,
                    "matched_budget": matched,
                    "interpolation": how,
                    "bin_kind": kind,
                    "bin": value,
                    "n_problems": len(qs),
                    "small_config": chosen["chosen"],
                    "small_accuracy": sum(small_q.values()) / len(qs),
                    "small_cv_accuracy": acc,
                    "large_config": large_label,
                    "large_accuracy": large_mean,
                    "difference": sum(diffs) / len(diffs),
                    "ci_low": lo,
                    "ci_high": hi,
                }
            )
    return {
        "M": m,
        "params_small": ps,
        "params_large": pl,
        "large_tokens_per_question": large_tokens,
        "small_tokens_per_sample": small_tokens,
        "rows": table,
    }


def _tokens_per_sample(evaluated: Sequence[Evaluated]) -> float:
    total = n = 0.0
    for ev in evaluated:
        for b in ev.budgets:
            for r in per_question(ev, b).values():
                total += r.n_tokens
                n += r.n_generations
    return total / n if n else 0.0


def _at_matched(by_budget: Mapping[int, Mapping[str, Any]], matched: float) -> Mapping[str, Any]:
    """The compute-optimal row of the largest budget not above the matched one."""
    fitting = [b for b in by_budget if b <= matched]
    return by_budget[max(fitting) if fitting else min(by_budget)]


def _interp_q(by_budget: Mapping[int, Mapping[str, float]], q: str, matched: float) -> float:
    curve = {b: accs[q] for b, accs in by_budget.items() if q in accs}
    return _interpolate(curve, matched)[0]


def format_table(result: Mapping[str, Any], fmt: str = "github") -> str:
    body = [
        [
            r["R"],
            f"{r['K']:.1f}",
            f"{r['matched_budget']:.1f}",
            r["bin_kind"] if r["bin_kind"] == "all" else f"{r['bin_kind']} {r['bin']}",
            r["n_problems"],
            f"{r['small_accuracy']:.3f} ({r['small_config']})",
            f"{r['large_accuracy']:.3f}",
            f"{r['difference']:+.3f} [{r['ci_low']:+.2f}, {r['ci_high']:+.2f}]",
            r["interpolation"],
        ]
        for r in result["rows"]
    ]
    head = (
        f"M = {result['params_large']:.3g} / {result['params_small']:.3g} = {result['M']:.2f} "
        "(non-embedding parameters); K = M + 3(M-1)/R; matched budget = K x large tokens per "
        f"question ({result['large_tokens_per_question']:.1f}) / small tokens per sample "
        f"({result['small_tokens_per_sample']:.1f})"
    )
    headers = [
        "R",
        "K",
        "matched N",
        "bin",
        "n",
        "small+TTC",
        "large",
        "difference [95% CI]",
        "how",
    ]
    return head + "\n\n" + tabulate(body, headers=headers, tablefmt=fmt)


def write_figure(result: Mapping[str, Any], path: Path) -> bool:
    return flops_comparison(result["rows"], path)
