from __future__ import annotations

import itertools
import math

import pytest

from ttc_eval.analysis.estimators import disjoint_groups, pass_at_k
from ttc_eval.pipeline import evaluate
from ttc_eval.registry import STRATEGIES
from ttc_eval.types import Candidate, Trace


def cand(i: int, key: str | None, correct: bool, score: float = 0.5, tokens: int = 10) -> Candidate:
    return Candidate(i, f"text {i}", tokens, "stop", key, key, correct, (0.1, score))


def trace(cands: list[Candidate]) -> Trace:
    return Trace(
        "q",
        f"sample(n={len(cands)})",
        tuple(cands),
        5,
        sum(c.n_tokens for c in cands),
        len(cands),
    )


def test_pass_at_k_matches_enumeration() -> None:
    for n, c in [(5, 0), (5, 2), (6, 3), (4, 4)]:
        outcomes = [True] * c + [False] * (n - c)
        for k in range(1, n + 1):
            subsets = list(itertools.combinations(outcomes, k))
            exact = sum(any(s) for s in subsets) / len(subsets)
            assert math.isclose(pass_at_k(n, c, k), exact)


def test_disjoint_groups() -> None:
    assert disjoint_groups(8, 2) == [range(0, 2), range(2, 4), range(4, 6), range(6, 8)]
    assert disjoint_groups(7, 4) == [range(0, 4)]
    with pytest.raises(ValueError):
        disjoint_groups(4, 8)


def test_majority_averages_over_all_disjoint_groups() -> None:
    # Budget 2 groups: (a,a) right; (b,a) tie, first b wrong; (a,c) tie, a right; (c,c) wrong.
    t = trace(
        [
            cand(0, "a", True),
            cand(1, "a", True),
            cand(2, "b", False),
            cand(3, "a", True),
            cand(4, "a", True),
            cand(5, "c", False),
            cand(6, "c", False),
            cand(7, "c", False),
        ]
    )
    maj = STRATEGIES.create("majority")
    sels = maj.select(t, 2)
    assert [s.correct for s in sels] == [True, False, True, False]
    assert evaluate(maj, t, 2).accuracy == 0.5
    assert evaluate(maj, t, 8).accuracy == 1.0  # a:4, c:3, b:1
    assert evaluate(maj, t, 1).accuracy == 4 / 8
    assert evaluate(maj, t, 2).n_tokens == 20


def test_candidates_without_answer_do_not_vote() -> None:
    t = trace(
        [cand(0, None, False), cand(1, None, False), cand(2, "x", True), cand(3, None, False)]
    )
    assert evaluate(STRATEGIES.create("majority"), t, 4).accuracy == 1.0
    empty = trace([cand(0, None, False), cand(1, None, False)])
    sel = STRATEGIES.create("majority").select(empty, 2)
    assert sel[0].answer is None and not sel[0].correct


def test_weighted_and_naive_best_of_n_differ_as_defined() -> None:
    # Two wrong samples agree with modest scores; one right sample has the top score.
    t = trace([cand(0, "w", False, 0.6), cand(1, "w", False, 0.6), cand(2, "r", True, 0.9)])
    weighted = STRATEGIES.create("best_of_n", mode="weighted")
    naive = STRATEGIES.create("best_of_n", mode="naive")
    assert evaluate(weighted, t, 3).accuracy == 0.0  # 1.2 > 0.9
    assert evaluate(naive, t, 3).accuracy == 1.0


def test_best_of_n_aggregation_changes_the_choice() -> None:
    a = Candidate(0, "", 1, "stop", "a", "a", True, (0.1, 0.9))
    b = Candidate(1, "", 1, "stop", "b", "b", False, (0.5, 0.6))
    t = trace([a, b])
    assert (
        evaluate(STRATEGIES.create("best_of_n", mode="naive", aggregation="last"), t, 2).accuracy
        == 1.0
    )
    assert (
        evaluate(STRATEGIES.create("best_of_n", mode="naive", aggregation="min"), t, 2).accuracy
        == 0.0
    )


def test_naive_ties_break_to_earliest() -> None:
    t = trace([cand(0, "a", False, 0.7), cand(1, "b", True, 0.7)])
    assert STRATEGIES.create("best_of_n", mode="naive").select(t, 2)[0].answer == "a"


def test_coverage_is_unbiased_pass_at_k() -> None:
    t = trace([cand(0, "a", True), cand(1, "b", False), cand(2, "c", False), cand(3, "d", False)])
    cov = STRATEGIES.create("coverage")
    assert math.isclose(evaluate(cov, t, 2).accuracy, pass_at_k(4, 1, 2))
    assert evaluate(cov, t, 4).accuracy == 1.0


def test_greedy_reports_budget_one_only() -> None:
    g = STRATEGIES.create("greedy")
    assert g.budgets([1, 2, 4]) == [1]
