"""Compute-optimal strategy per difficulty bin and budget, chosen with honest cross-validation,
and its efficiency against best-of-N (Snell et al. section 5)."""

from __future__ import annotations

import itertools
import math
import random
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

PerQuestion = Mapping[str, Mapping[int, Mapping[str, float]]]
"""Configuration label -> budget -> question id -> expected accuracy on that question."""


@dataclass(frozen=True)
class Fold:
    """One half-split: the configuration chosen on ``train``, scored on ``test``."""

    train: tuple[str, ...]
    """Questions the choice was made on."""
    test: tuple[str, ...]
    """Questions the chosen configuration is scored on (disjoint from ``train``)."""
    chosen: str
    """The configuration with the best mean accuracy on ``train`` (ties: earliest in run order)."""
    test_accuracy: float
    """Mean accuracy of ``chosen`` on ``test``."""


def _mean(values: Sequence[float]) -> float:
    return sum(values) / len(values)


def cross_validate(
    per_q: Mapping[str, Mapping[str, float]],
    questions: Sequence[str],
    repeats: int = 10,
    seed: str = "0",
) -> list[Fold]:
    """2-fold cross-validation repeated over ``repeats`` seeded splits: choose on one half,
    report on the other, and the reverse. ``per_q`` maps each candidate configuration (in
    run order) to its per-question accuracy. Needs at least 2 questions."""
    if len(questions) < 2:
        raise ValueError("cross-validation needs at least 2 questions")
    order = list(per_q)
    rng = random.Random(seed)
    folds = []
    for _ in range(repeats):
        perm = sorted(questions)
        rng.shuffle(perm)
        half = len(perm) // 2
        a, b = tuple(perm[:half]), tuple(perm[half:])
        for train, test in ((a, b), (b, a)):
            chosen = max(
                order, key=lambda c: (_mean([per_q[c][q] for q in train]), -order.index(c))
            )
            folds.append(Fold(train, test, chosen, _mean([per_q[chosen][q] for q in test])))
    return folds


_EPS = 1e-9


def _lerp(x: float, x0: float, x1: float, y0: float, y1: float) -> float:
    """The value at ``x`` of the line through (``x0``, ``y0``) and (``x1``, ``y1``)."""
    return y0 + (x - x0) / (x1 - x0) * (y1 - y0)


def log2_interpolate(curve: Mapping[int, float], budget: float) -> tuple[float, int, int]:
    """Accuracy of ``curve`` (accuracy by budget) at ``budget``, linear in log2 budget between
    the curve's two budgets around it: (accuracy, lower budget, upper budget). ``budget``
    must lie within the curve's budgets (clamping outside them is the caller's choice)."""
    for (b0, a0), (b1, a1) in itertools.pairwise(sorted(curve.items())):
        if b0 <= budget <= b1:
            return _lerp(math.log2(budget), math.log2(b0), math.log2(b1), a0, a1), b0, b1
    raise ValueError(f"budget {budget} is outside the curve's budgets {sorted(curve)}")


def budget_to_match(curve: Mapping[int, float], target: float) -> tuple[float | None, str]:
    """The budget at which ``curve`` (accuracy by budget) first reaches ``target``, linearly
    interpolated in log2 budget (the inverse of :func:`log2_interpolate`). Returns (budget,
    how): ``interpolated``; ``at most`` when the smallest budget already reaches it (the
    budget returned is an upper bound); ``out of range`` (budget ``None``) when no budget of
    the curve reaches it."""
    points = sorted(curve.items())
    if not points:
        return None, "out of range"
    # Accuracies are means over folds and groups: compare with a tolerance for rounding.
    target -= _EPS
    if target <= points[0][1]:
        return float(points[0][0]), "at most"
    for (b0, a0), (b1, a1) in itertools.pairwise(points):
        if a0 < target <= a1:
            return 2 ** _lerp(target, a0, a1, math.log2(b0), math.log2(b1)), "interpolated"
    return None, "out of range"


def compute_optimal(
    per_q: PerQuestion,
    groups: Sequence[tuple[str, str, Sequence[str]]],
    baseline: str,
    repeats: int = 10,
    seed: int = 0,
) -> list[dict[str, Any]]:
    """One row per (bin, budget): the cross-validated compute-optimal accuracy, the modal
    choice, the baseline's (best-of-N's) accuracy on the same questions, and the efficiency
    ratio: the budget the baseline needs to match the compute-optimal accuracy, over N.

    ``groups`` are (kind, value, question ids) bins; ``per_q`` must not hold oracle
    configurations such as coverage."""
    rows: list[dict[str, Any]] = []
    budgets = sorted({b for by_b in per_q.values() for b in by_b})
    for kind, value, questions in groups:
        qs = sorted(questions)
        if len(qs) < 2 or baseline not in per_q:
            continue
        base_curve = {
            b: _mean([per_q[baseline][b][q] for q in qs])
            for b in budgets
            if b in per_q[baseline] and all(q in per_q[baseline][b] for q in qs)
        }
        for budget in budgets:
            cands = {
                c: by_b[budget]
                for c, by_b in per_q.items()
                if budget in by_b and all(q in by_b[budget] for q in qs)
            }
            if not cands or budget not in base_curve:
                continue
            folds = cross_validate(cands, qs, repeats, seed=f"{seed}|{kind}|{value}|{budget}")
            acc = _mean([f.test_accuracy for f in folds])
            counts = Counter(f.chosen for f in folds)
            top = max(counts.values())
            chosen = next(c for c in cands if counts.get(c) == top)
            needed, how = budget_to_match(base_curve, acc)
            rows.append(
                {
                    "bin_kind": kind,
                    "bin": value,
                    "budget": budget,
                    "n_problems": len(qs),
                    "optimal_accuracy": acc,
                    "chosen": chosen,
                    "chosen_share": top / len(folds),
                    "baseline": baseline,
                    "baseline_accuracy": base_curve[budget],
                    "baseline_budget_to_match": needed,
                    "efficiency_ratio": needed / budget if needed is not None else None,
                    "efficiency_note": how,
                }
            )
    return rows
