"""Compute-optimal strategy per difficulty bin and budget, chosen with honest cross-validation,
and its efficiency against best-of-N (Snell et al. section 5)."""

from __future__ import annotations

import itertools
import math
import random
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

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
    order = list(per_q)
    folds = []
    for train, test in half_splits(questions, repeats, seed):
        chosen = max(order, key=lambda c: (_mean([per_q[c][q] for q in train]), -order.index(c)))
        folds.append(Fold(train, test, chosen, _mean([per_q[chosen][q] for q in test])))
    return folds


def half_splits(
    questions: Sequence[str], repeats: int, seed: str
) -> Iterator[tuple[tuple[str, ...], tuple[str, ...]]]:
    """The (train, test) halves of 2-fold cross-validation repeated over ``repeats`` seeded
    shuffles: each shuffle gives (first half, second half) and the reverse. One sequence
    for both axes of the choice, so that they see the same splits."""
    if len(questions) < 2:
        raise ValueError("cross-validation needs at least 2 questions")
    rng = random.Random(seed)
    for _ in range(repeats):
        perm = sorted(questions)
        rng.shuffle(perm)
        half = len(perm) // 2
        a, b = tuple(perm[:half]), tuple(perm[half:])
        yield a, b
        yield b, a


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


def budget_to_match(
    curve: Mapping[int, float] | Mapping[float, float], target: float
) -> tuple[float | None, str]:
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


# ----------------------------------------------------------------------------------------------
# The choice at equal measured compute (``--optimal-axis tokens|flops``).

Pair = tuple[str, int]
"""A candidate of the choice at equal measured compute: (configuration label, budget)."""

COST_RTOL = 1e-6
"""Relative slack of "costs no more than the baseline": mean costs are float sums over
different questions and orders (FLOPs are products with parameter counts near 1e9), so a
candidate as costly as the baseline must not drop out by a rounding error. Far below any
real cost difference (one token in a million)."""


def pair_label(pair: Pair) -> str:
    """``label@budget``, e.g. ``esc(window=5)@32``: how rows and tables name a pair."""
    return f"{pair[0]}@{pair[1]}"


@dataclass(frozen=True)
class CostFold:
    """One half-split of the choice at equal measured compute."""

    train: tuple[str, ...]
    """Questions eligibility and the choice were decided on."""
    test: tuple[str, ...]
    """Questions the chosen pair is scored on (disjoint from ``train``)."""
    chosen: Pair
    """The eligible pair with the best mean accuracy on ``train``."""
    ceiling: float
    """The level's (the baseline pair's) mean cost on ``train``: the most a pair may cost."""
    test_accuracy: float
    """Mean accuracy of ``chosen`` on ``test``."""
    test_cost: float
    """Mean measured cost of ``chosen`` on ``test``."""


def _pick(
    train_accuracy: NDArray[np.float64],
    train_cost: NDArray[np.float64],
    level: int,
    rtol: float,
) -> int:
    """Index of the chosen pair: among pairs whose training cost is at most the level's
    (pair ``level``, the baseline at the level's budget) within ``rtol``, the best training
    accuracy; ties go to the cheaper, then to the earlier (lower index, run order). The
    level's own pair is always eligible, so there is always a choice."""
    ceiling = train_cost[level]
    eligible = np.flatnonzero(train_cost <= ceiling + rtol * abs(ceiling))
    # lexsort sorts by its last key first: accuracy descending, cost ascending, index.
    order = np.lexsort((eligible, train_cost[eligible], -train_accuracy[eligible]))
    return int(eligible[order[0]])


def choose_at_cost(
    accuracy: Mapping[Pair, Mapping[str, float]],
    cost: Mapping[Pair, Mapping[str, float]],
    level: Pair,
    train: Sequence[str],
    test: Sequence[str],
    rtol: float = COST_RTOL,
) -> CostFold:
    """One fold of the choice at equal measured compute: the pairs (in run order, the keys
    of ``accuracy``) whose mean cost on ``train`` is at most ``level``'s mean cost on
    ``train`` (within ``rtol``) are eligible; the one with the best mean accuracy on
    ``train`` is chosen (ties: cheaper on ``train``, then earlier) and scored on ``test``.
    Nothing about ``test`` decides eligibility or the choice."""
    pairs = list(accuracy)
    tr, te = list(train), list(test)
    acc = np.array([[accuracy[p][q] for q in tr + te] for p in pairs], dtype=float)
    cst = np.array([[cost[p][q] for q in tr + te] for p in pairs], dtype=float)
    return _fold(pairs, acc, cst, pairs.index(level), np.arange(len(tr)), tr, te, rtol)


def _fold(
    pairs: Sequence[Pair],
    acc: NDArray[np.float64],
    cst: NDArray[np.float64],
    level: int,
    train_idx: NDArray[np.intp],
    train: Sequence[str],
    test: Sequence[str],
    rtol: float,
) -> CostFold:
    """A fold on matrices (pairs x questions); ``train_idx`` are the training columns, the
    rest are the test columns."""
    test_idx = np.setdiff1d(np.arange(acc.shape[1]), train_idx)
    train_cost = cst[:, train_idx].mean(axis=1)
    i = _pick(acc[:, train_idx].mean(axis=1), train_cost, level, rtol)
    return CostFold(
        tuple(train),
        tuple(test),
        pairs[i],
        float(train_cost[level]),
        float(acc[i, test_idx].mean()),
        float(cst[i, test_idx].mean()),
    )


def compute_optimal_at_cost(
    per_q: PerQuestion,
    cost_q: PerQuestion,
    groups: Sequence[tuple[str, str, Sequence[str]]],
    baseline: str,
    axis: str,
    repeats: int = 10,
    seed: int = 0,
    rtol: float = COST_RTOL,
) -> list[dict[str, Any]]:
    """One row per (bin, level): the compute-optimal choice at equal measured compute.

    The levels are the baseline's budgets: level B is the baseline's mean cost per question
    at B (``cost_q``: configuration -> budget -> question -> measured cost on ``axis``,
    e.g. generated tokens). Candidates are every (configuration, budget) pair of ``per_q``
    with an accuracy and a cost for each question of the bin (``per_q`` must not hold
    oracles). In each fold of the same 2-fold cross-validation as :func:`compute_optimal`,
    a pair is eligible when its mean cost on the training half is at most the baseline's at
    B on that half (:func:`choose_at_cost`); the chosen pair's accuracy and cost are those
    on the test half, averaged over folds.

    The efficiency fields keep their meaning on the baseline's own curve: the baseline
    budget that matches the cross-validated accuracy, over B. The baseline's cost grows
    with its budget (N samples), so this is also about how much more compute it needs."""
    rows: list[dict[str, Any]] = []
    if baseline not in per_q or baseline not in cost_q:
        return rows
    for kind, value, questions in groups:
        qs = sorted(questions)
        if len(qs) < 2:
            continue
        pairs = [
            (c, b)
            for c, by_b in per_q.items()
            for b in sorted(by_b)
            if all(q in by_b[b] for q in qs) and all(q in cost_q.get(c, {}).get(b, {}) for q in qs)
        ]
        if not pairs:
            continue
        acc = np.array([[per_q[c][b][q] for q in qs] for c, b in pairs], dtype=float)
        cst = np.array([[cost_q[c][b][q] for q in qs] for c, b in pairs], dtype=float)
        column = {q: j for j, q in enumerate(qs)}
        base_curve = {b: float(acc[i].mean()) for i, (c, b) in enumerate(pairs) if c == baseline}
        for level, (c, budget) in enumerate(pairs):
            if c != baseline:
                continue
            # The same splits as the budget axis at this budget (same seed string).
            splits = half_splits(qs, repeats, f"{seed}|{kind}|{value}|{budget}")
            folds = [
                _fold(pairs, acc, cst, level, np.array([column[q] for q in tr]), tr, te, rtol)
                for tr, te in splits
            ]
            optimal = float(np.mean([f.test_accuracy for f in folds]))
            counts = Counter(f.chosen for f in folds)
            top = max(counts.values())
            chosen = next(p for p in pairs if counts.get(p) == top)
            needed, how = budget_to_match(base_curve, optimal)
            rows.append(
                {
                    "axis": axis,
                    "bin_kind": kind,
                    "bin": value,
                    "budget": budget,
                    "n_problems": len(qs),
                    "level_cost": float(cst[level].mean()),
                    "optimal_accuracy": optimal,
                    "optimal_cost": float(np.mean([f.test_cost for f in folds])),
                    "chosen": pair_label(chosen),
                    "chosen_config": chosen[0],
                    "chosen_budget": chosen[1],
                    "chosen_share": top / len(folds),
                    "baseline": baseline,
                    "baseline_accuracy": base_curve[budget],
                    "baseline_budget_to_match": needed,
                    "efficiency_ratio": needed / budget if needed is not None else None,
                    "efficiency_note": how,
                }
            )
    return rows
