"""Adaptive selection rules over a stored pool: ESC and Adaptive-Consistency stop early, and
what they read is what they are charged (the pipeline's cost record)."""

from __future__ import annotations

from pathlib import Path

import pytest
from scipy.stats import beta

from ttc_eval.config import RunConfig, StrategySpec
from ttc_eval.errors import UsageError
from ttc_eval.pipeline import evaluate, selections
from ttc_eval.registry import STRATEGIES
from ttc_eval.runner import run
from ttc_eval.strategies.adaptive_consistency import leader_is_majority
from ttc_eval.types import Candidate, Cost, Trace


def _pool(keys: str, gold: str = "a") -> Trace:
    """One candidate per character (``.``: no answer), 10 tokens each, a costed sample."""
    cands = tuple(
        Candidate(
            i,
            f"answer {k}",
            10,
            "stop",
            None if k == "." else k,
            None if k == "." else k,
            k == gold,
            cost=Cost(samples=1, prompt_tokens=7, generated_tokens=10, role_tokens={"policy": 10}),
        )
        for i, k in enumerate(keys)
    )
    return Trace("q", "sample(n)", cands, 7, 10 * len(keys), len(keys))


# -- ESC ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("keys", "window", "read", "answer"),
    [
        ("abaabbbb", 2, 4, "a"),  # second window unanimous: stop there
        ("aabbbbbb", 2, 2, "a"),  # the first window already is
        ("bbcbcbaaa", 3, 9, "b"),  # majority over all read, not the window's answer
        ("a.aaaa", 3, 6, "a"),  # an answerless sample breaks unanimity
        ("abababab", 4, 8, "a"),  # never unanimous: all of it, ties to the first seen
    ],
)
def test_esc_stops_at_the_first_unanimous_window(
    keys: str, window: int, read: int, answer: str
) -> None:
    esc = STRATEGIES.create("esc", window=window)
    (sel,) = selections(esc, _pool(keys), len(keys))
    assert sel.read == tuple(range(read))
    assert sel.answer == answer
    assert sel.cost is not None
    assert sel.cost.samples == read and sel.cost.generated_tokens == 10 * read
    assert sel.cost.prompt_tokens == 7 * read and sel.cost.prompt_tokens_computed == 7


def test_esc_reads_each_disjoint_group_on_its_own() -> None:
    esc = STRATEGIES.create("esc", window=2)
    trace = _pool("aaabababbbaa")  # two groups of 6
    first, second = selections(esc, trace, 6)
    assert first.read == (0, 1) and first.answer == "a"
    assert second.read == (6, 7, 8, 9) and second.answer == "b"
    result = evaluate(esc, trace, 6)
    assert result.cost.samples == 3  # (2 + 4) / 2: the mean of what each choice read
    assert result.accuracy == 0.5


# -- Adaptive-Consistency -----------------------------------------------------------------------


@pytest.mark.parametrize(("v1", "v2"), [(1, 0), (3, 0), (4, 0), (5, 2), (9, 4), (2, 2)])
def test_beta_criterion_is_the_beta_distribution_above_one_half(v1: int, v2: int) -> None:
    assert leader_is_majority(v1, v2) == pytest.approx(beta.sf(0.5, v1 + 1, v2 + 1), abs=1e-12)


def _stop_by_hand(keys: str, threshold: float) -> int:
    """Samples read, recounted with scipy.stats.beta (independent of the strategy's code)."""
    votes: dict[str, int] = {}
    for n, k in enumerate(keys, 1):
        if k != ".":
            votes[k] = votes.get(k, 0) + 1
        ranked = [*sorted(votes.values(), reverse=True), 0, 0]
        if ranked[0] and beta.sf(0.5, ranked[0] + 1, ranked[1] + 1) > threshold:
            return n
    return len(keys)


@pytest.mark.parametrize(
    ("keys", "threshold", "read"),
    [
        ("aaaaaaaa", 0.95, 4),  # 1 - 0.5**5 = 0.969 > 0.95; after 3: 0.9375
        ("aaaaaaaa", 0.9, 3),  # 0.9375 > 0.9
        ("abaaaaaaaaaa", 0.95, 7),  # a=6, b=1: P = 0.9648; a=5, b=1: 0.9375
        ("abcaaaaaaaaaa", 0.95, 8),  # against the runner-up (b=1), not all others (10)
        ("ab" * 6, 0.95, 12),  # never confident: all of it
        ("a.aaa.aaa", 0.95, 5),  # answerless samples are read but do not vote
    ],
)
def test_adaptive_consistency_stops_when_the_leader_is_probably_the_majority(
    keys: str, threshold: float, read: int
) -> None:
    assert _stop_by_hand(keys, threshold) == read  # the expectation, recounted by hand
    ac = STRATEGIES.create("adaptive_consistency", threshold=threshold)
    (sel,) = selections(ac, _pool(keys), len(keys))
    assert sel.read == tuple(range(read))
    assert sel.answer == "a"
    assert sel.cost is not None and sel.cost.samples == read


def test_bad_arguments_are_usage_errors() -> None:
    with pytest.raises(UsageError, match="window"):
        STRATEGIES.create("esc", window=0)
    with pytest.raises(UsageError, match="threshold"):
        STRATEGIES.create("adaptive_consistency", threshold=1.0)


# -- end to end ---------------------------------------------------------------------------------


def test_adaptive_rules_read_fewer_samples_of_the_same_pool(tmp_path: Path) -> None:
    config = RunConfig(
        backend="fake",
        backend_args={"p_correct": 0.95},  # mostly one answer: room to stop early
        task="arith",
        strategies=tuple(StrategySpec(n) for n in ("majority", "esc", "adaptive_consistency")),
        verifier=None,
        budgets=(16,),
        limit=6,
        cache=False,
        output_dir=str(tmp_path / "runs"),
        leaderboard_dir=str(tmp_path / "lb"),
    )
    results = run(config, progress=False, log=lambda _: None).results
    # One pool serves all three.
    assert list(results["compute"]["by_expansion"]) == ["sample(n=16,temperature=0.7)"]
    rows = {r["strategy"]: r for r in results["rows"] if r["label_kind"] == "all"}
    assert rows["majority"]["cost"]["samples"] == 16
    for name in ("esc", "adaptive_consistency"):
        assert rows[name]["budget"] == 16  # the nominal budget
        assert 1 <= rows[name]["cost"]["samples"] < 16  # what it read
        assert rows[name]["cost"]["generated_tokens"] < rows["majority"]["cost"]["generated_tokens"]


# -- the accuracy-compute frontier ---------------------------------------------------------------


def test_pareto_frontier_keeps_what_nothing_cheaper_beats() -> None:
    from ttc_eval.analysis.frontier import pareto_frontier

    points = [(10, 0.5), (20, 0.4), (20, 0.6), (40, 0.6), (5, 0.2), (80, 0.9), (5, 0.1)]
    # (20, 0.4) is beaten by (10, 0.5); (40, 0.6) ties (20, 0.6) at more cost; (5, 0.1) by
    # (5, 0.2).
    assert pareto_frontier(points) == [4, 0, 2, 5]
    assert pareto_frontier([]) == []


def test_frontier_figures_and_section_from_a_run(tmp_path: Path) -> None:
    config = RunConfig(
        backend="fake",
        backend_args={"p_correct": 0.8},
        task="arith",
        strategies=(StrategySpec("majority"), StrategySpec("esc", {"window": 2})),
        verifier=None,
        budgets=(1, 2, 4, 8),
        limit=6,
        cache=False,
        output_dir=str(tmp_path / "runs"),
        leaderboard_dir=str(tmp_path / "lb"),
    )
    outcome = run(config, progress=False, log=lambda _: None)
    front = [f for f in outcome.results["frontier"]["tokens"] if f["label_kind"] == "all"]
    rows = [
        r
        for r in outcome.results["rows"]
        if r["label_kind"] == "all" and r["strategy"] != "coverage"
    ]
    # Every frontier point is a row, and no row is cheaper and at least as accurate.
    for f in front:
        assert any((r["config"], r["budget"]) == (f["config"], f["budget"]) for r in rows)
        for r in rows:
            cheaper = r["cost"]["generated_tokens"] <= f["cost"]
            assert not (cheaper and r["accuracy"] > f["accuracy"]), (r["config"], f)
    # Rows carry the tail of seconds per question next to the mean.
    assert all(r["cost"]["seconds_p90"] >= 0 for r in rows)
    tables = (outcome.run_dir / "report" / "tables.md").read_text()
    cost_header = next(line for line in tables.splitlines() if "prompt computed" in line)
    assert "seconds |" in cost_header and "seconds p90 |" in cost_header
    assert (outcome.run_dir / "report" / "frontier_tokens_all.png").stat().st_size > 0
    assert (outcome.run_dir / "report" / "frontier_tokens_oracle.png").exists()
    # The fake backend has no parameter count: no FLOPs axis to draw.
    assert not (outcome.run_dir / "report" / "frontier_flops_all.png").exists()
