"""The report's fast paths give the numbers of the plain ones, to the last bit: pool strategies
choosing on many questions at once (``evaluate_many``, ``select_many``) against ``evaluate``
one question at a time, and the verifier statistics' fast counts."""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Any

import pytest

from ttc_eval.analysis.results import _GroupCosts, mean_cost
from ttc_eval.analysis.verifier_eval import QuestionScores, _pair_counts
from ttc_eval.pipeline import choices_many, evaluate, evaluate_many
from ttc_eval.registry import STRATEGIES
from ttc_eval.strategies._batch import PoolBatch
from ttc_eval.strategies.selection import Majority
from ttc_eval.types import POLICY, Candidate, Cost, QuestionResult, Trace

CONFIGS: list[tuple[str, dict[str, Any]]] = [
    ("majority", {}),
    ("best_of_n", {}),
    ("best_of_n", {"mode": "naive"}),
    ("best_of_n", {"aggregation": "min"}),
    ("best_of_n", {"mode": "naive", "aggregation": "prod"}),
    ("esc", {}),
    ("esc", {"window": 1}),
    ("esc", {"window": 2}),
    ("esc", {"window": 3}),
    ("adaptive_consistency", {}),
    ("adaptive_consistency", {"threshold": 0.5}),
    ("adaptive_consistency", {"threshold": 0.8}),
    ("coverage", {}),
]


def _cost(rng: random.Random, tokens: int, verifier_role: str | None) -> Cost | None:
    """A stored candidate cost, of the kinds runs write (with wall seconds or without, the
    verifier's tokens under its role or none)."""
    roles: dict[str, float] = {POLICY: tokens}
    read = rng.randint(0, 30) if verifier_role else 0
    if read:
        roles[verifier_role or ""] = read
    return Cost(
        samples=1,
        prompt_tokens=rng.randint(5, 40),
        prompt_tokens_computed=0,
        generated_tokens=tokens,
        verifier_tokens=read,
        seconds=rng.choice([0, rng.random(), rng.random() * 1e-3]),
        role_tokens=roles,
    )


def _trace(rng: random.Random, pid: str, n: int, kind: str) -> Trace:
    """A graded pool with ties, answerless and empty-answer samples, multi-step scores and,
    by ``kind``, no costs (imported), stored costs, or stored costs plus the trace's."""
    answers = [f"a{k}" for k in range(rng.randint(1, 5))]
    role = "verifier" if kind != "imported" else None
    cands = []
    for i in range(n):
        key = rng.choice([*answers, *answers, None, ""])
        steps = tuple(round(rng.random(), rng.choice([1, 6])) for _ in range(rng.randint(1, 3)))
        tokens = rng.randint(0, 50)
        cands.append(
            Candidate(
                i,
                f"text {i}",
                tokens,
                "stop",
                key,
                key,
                key == "a0" or (key is not None and rng.random() < 0.1),
                steps,
                cost=None if kind == "imported" else _cost(rng, tokens, role),
            )
        )
    total = Cost.total(c.cost for c in cands if c.cost is not None)
    return Trace(
        pid,
        f"sample(n={n})",
        tuple(cands),
        rng.randint(0, 30),
        sum(c.n_tokens for c in cands),
        n,
        verifier="prm",
        verifier_tokens=rng.randint(0, 100),
        cost=total if kind == "with_trace_cost" else None,
        verifier_role=role if rng.random() < 0.8 else None,
    )


def _pools(seed: int, n: int, kind: str, questions: int = 12) -> dict[str, Trace]:
    rng = random.Random(seed)
    return {f"q{i:02d}": _trace(rng, f"q{i:02d}", n, kind) for i in range(questions)}


@pytest.mark.parametrize("kind", ["imported", "with_costs", "with_trace_cost"])
@pytest.mark.parametrize("n", [1, 7, 16])
def test_evaluate_many_equals_evaluate(kind: str, n: int) -> None:
    traces = _pools(n * 7 + len(kind), n, kind)
    batch = PoolBatch(list(traces.values()))
    for name, args in CONFIGS:
        s = STRATEGIES.create(name, **args)
        for budget in range(1, n + 1):
            # The arrays choose (coverage estimates instead), and agree with select.
            assert (s.select_many(batch, budget) is None) == (name == "coverage")
            many = evaluate_many(s, traces, budget)
            assert list(many) == list(traces)
            # The chosen sample of each group is select's (the report page lists it).
            arrays = {
                pid: (chosen.chosen[i], chosen.correct[i], chosen.read[i])
                for pids, chosen in choices_many(s, traces, budget)
                for i, pid in enumerate(pids)
            }
            # Imported pools are all batched; with costs, those whose roles differ are not.
            batched = set() if name == "coverage" else set(traces)
            assert set(arrays) == batched if kind == "imported" else set(arrays) <= batched
            for pid, (at, right, read) in arrays.items():
                sels = s.select(traces[pid], budget)
                assert at.tolist() == [-1 if sel.index is None else sel.index for sel in sels], (
                    name, args, budget, pid,
                )  # fmt: skip
                assert right.tolist() == [sel.correct for sel in sels]
                assert read.tolist() == [len(sel.read) for sel in sels]
            for pid, t in traces.items():
                # Equal dataclasses compare every number exactly (and role order: below).
                one = evaluate(s, t, budget)
                assert many[pid] == one, (name, args, budget, pid)
                assert list(many[pid].cost.role_tokens) == list(one.cost.role_tokens)


def test_evaluate_many_with_pools_of_several_sizes() -> None:
    traces = {
        **_pools(1, 8, "imported", 5),
        **{f"r{k}": t for k, t in _pools(2, 6, "with_costs", 5).items()},
    }
    for name, args in CONFIGS:
        s = STRATEGIES.create(name, **args)
        many = evaluate_many(s, traces, 3)
        assert many == {pid: evaluate(s, t, 3) for pid, t in traces.items()}


class _ReadsTwo(Majority):
    """A subclass that reads otherwise and has no ``select_many`` of its own."""

    def read(self, group: Sequence[Candidate]) -> Sequence[Candidate]:
        return group[:2]


def test_a_subclass_that_reads_otherwise_is_not_batched() -> None:
    s = _ReadsTwo()
    assert s.select_many is not None and not s.batched_by(Majority)
    traces = _pools(3, 8, "imported")
    assert evaluate_many(s, traces, 4) == {p: evaluate(s, t, 4) for p, t in traces.items()}


def test_missing_verifier_scores_are_refused_as_before() -> None:
    t = _pools(4, 4, "imported", 2)
    bare = {p: Trace(x.problem_id, x.expansion,
                     tuple(Candidate(c.index, c.text, c.n_tokens, "stop", c.answer, c.vote_key,
                                     c.correct) for c in x.candidates),
                     0, 0, 4) for p, x in t.items()}  # fmt: skip
    with pytest.raises(Exception, match="verifier scores"):
        evaluate_many(STRATEGIES.create("best_of_n"), bare, 2)


def test_pair_counts_count_wins_and_half_ties() -> None:
    qs = [
        QuestionScores((0.5, 0.2, 0.5), (True, False, False)),
        QuestionScores((0.2, 0.9), (True, False)),
        QuestionScores((0.7,), (True,)),
    ]
    c, pos, neg = _pair_counts(qs)
    # Rows: correct samples of q; columns: wrong samples of r (1 per win, 1/2 per tie).
    assert c.tolist() == [[1.5, 0.0, 0.0], [0.5, 0.0, 0.0], [2.0, 0.0, 0.0]]
    assert pos.tolist() == [1.0, 1.0, 1.0] and neg.tolist() == [2.0, 1.0, 0.0]


def test_group_cost_means_equal_mean_cost() -> None:
    rng = random.Random(5)
    results = {}
    for i in range(40):
        c = _cost(rng, rng.randint(0, 90), "verifier")
        assert c is not None
        results[f"q{i}"] = QuestionResult(rng.random(), 4.0, 20.0, c.scaled(1 / rng.randint(1, 9)))
    params = {POLICY: 1000, "verifier": None}
    costs = _GroupCosts(results)
    for _ in range(30):
        pids = rng.sample(sorted(results), rng.randint(1, 40))
        assert costs.mean(pids, params) == mean_cost([results[p].cost for p in pids], params)
