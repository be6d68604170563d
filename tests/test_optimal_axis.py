"""`--optimal-axis tokens|flops`: the compute-optimal choice at equal measured compute, with
eligibility decided on the training half of each fold only (docs/analysis.md)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from ttc_eval.analysis.optimal import (
    COST_RTOL,
    choose_at_cost,
    compute_optimal,
    compute_optimal_at_cost,
)
from ttc_eval.cli import main
from ttc_eval.config import RunConfig
from ttc_eval.registry import STRATEGIES
from ttc_eval.results import Evaluated, per_question_cost
from ttc_eval.types import Cost, QuestionResult

QS = [f"q{i}" for i in range(10)]
ALL = [("all", "all", QS)]


def _flat(value: float, qs: list[str] = QS) -> dict[str, float]:
    return dict.fromkeys(qs, value)


# -- The pure choice ----------------------------------------------------------------------------


def _adaptive_case() -> tuple[dict[str, Any], dict[str, Any]]:
    """Majority costs 10 tokens per sample; ESC stops early: at budget 32 it spends 60
    tokens, fewer than majority@8 (80), and beats it."""
    per_q = {
        "majority": {1: _flat(0.2), 8: _flat(0.5), 32: _flat(0.6)},
        "esc": {8: _flat(0.55), 32: _flat(0.65)},
    }
    cost_q = {
        "majority": {1: _flat(10), 8: _flat(80), 32: _flat(320)},
        "esc": {8: _flat(30), 32: _flat(60)},
    }
    return per_q, cost_q


def test_a_cheap_adaptive_config_wins_the_level_it_costs_less_than() -> None:
    per_q, cost_q = _adaptive_case()
    rows = compute_optimal_at_cost(per_q, cost_q, ALL, baseline="majority", axis="tokens")
    by_level = {r["budget"]: r for r in rows}
    assert sorted(by_level) == [1, 8, 32]  # the baseline's budgets are the levels
    at8 = by_level[8]
    assert at8["axis"] == "tokens"
    assert at8["chosen"] == "esc@32" and at8["chosen_share"] == 1.0
    assert (at8["chosen_config"], at8["chosen_budget"]) == ("esc", 32)
    assert at8["optimal_accuracy"] == pytest.approx(0.65)
    assert at8["optimal_cost"] == pytest.approx(60)
    assert at8["level_cost"] == pytest.approx(80)
    assert at8["baseline_accuracy"] == pytest.approx(0.5)
    # Majority never reaches 0.65 within its budgets.
    assert at8["baseline_budget_to_match"] is None and at8["efficiency_note"] == "out of range"
    # Level 1 (10 tokens): only majority@1 is that cheap.
    assert by_level[1]["chosen"] == "majority@1"
    assert by_level[1]["optimal_accuracy"] == pytest.approx(0.2)
    # On the budget axis esc@32 is no candidate at budget 8: esc@8 is the best there.
    budget_rows = compute_optimal(per_q, ALL, baseline="majority")
    (b8,) = [r for r in budget_rows if r["budget"] == 8]
    assert b8["chosen"] == "esc" and b8["optimal_accuracy"] == pytest.approx(0.55)
    assert "axis" not in b8  # budget rows keep their keys


def test_rows_carry_the_documented_fields() -> None:
    per_q, cost_q = _adaptive_case()
    (row, *_) = compute_optimal_at_cost(per_q, cost_q, ALL, baseline="majority", axis="tokens")
    assert set(row) == {
        "axis", "bin_kind", "bin", "budget", "n_problems", "level_cost", "optimal_accuracy",
        "optimal_cost", "chosen", "chosen_config", "chosen_budget", "chosen_share", "baseline",
        "baseline_accuracy", "baseline_budget_to_match", "efficiency_ratio", "efficiency_note",
    }  # fmt: skip


def _choose(costs: dict[str, float], accs: dict[str, float]) -> str:
    """The label chosen among flat candidates at budget 1, level ``base``@1."""
    accuracy = {(c, 1): _flat(a) for c, a in accs.items()}
    cost = {(c, 1): _flat(costs[c]) for c in accs}
    fold = choose_at_cost(accuracy, cost, ("base", 1), QS[:5], QS[5:])
    return fold.chosen[0]


def test_a_candidate_exactly_as_costly_as_the_level_is_eligible() -> None:
    # "at most", not "less than": equal cost and better accuracy wins.
    assert _choose({"base": 100.0, "tie": 100.0}, {"base": 0.0, "tie": 1.0}) == "tie"
    # A level that cost nothing (no slack: the tolerance is relative).
    assert _choose({"base": 0.0, "tie": 0.0}, {"base": 0.0, "tie": 1.0}) == "tie"
    # On the edge of the tolerance itself.
    edge = 100.0 + COST_RTOL * 100.0
    assert _choose({"base": 100.0, "edge": edge}, {"base": 0.0, "edge": 1.0}) == "edge"


def test_rounding_noise_above_the_level_is_tolerated_a_real_excess_is_not() -> None:
    noise = 100.0 * (1 + COST_RTOL / 10)
    assert _choose({"base": 100.0, "noisy": noise}, {"base": 0.0, "noisy": 1.0}) == "noisy"
    over = 100.0 * (1 + 1e-3)
    assert _choose({"base": 100.0, "over": over}, {"base": 0.0, "over": 1.0}) == "base"


def test_ties_go_to_the_cheaper_then_to_the_earlier() -> None:
    accs = {"base": 0.0, "dear": 0.7, "cheap": 0.7}
    assert _choose({"base": 100.0, "dear": 90.0, "cheap": 50.0}, accs) == "cheap"
    accs = {"base": 0.0, "first": 0.7, "second": 0.7}
    assert _choose({"base": 100.0, "first": 50.0, "second": 50.0}, accs) == "first"


def test_eligibility_is_decided_on_the_training_half_only() -> None:
    train, test = ["q1", "q2"], ["q3", "q4"]
    qs = train + test
    accuracy = {
        ("base", 1): _flat(0.0, qs),
        # Cheap on the training half, dear on the test half: eligible, and charged its test
        # cost. Over all questions (52.5) or on the test half (100) it would not be.
        ("x", 1): _flat(1.0, qs),
        # Dear on the training half, cheap on the test half: never eligible.
        ("y", 1): _flat(1.0, qs),
    }
    cost = {
        ("base", 1): _flat(10.0, qs),
        ("x", 1): {"q1": 5.0, "q2": 5.0, "q3": 100.0, "q4": 100.0},
        ("y", 1): {"q1": 100.0, "q2": 100.0, "q3": 1.0, "q4": 1.0},
    }
    fold = choose_at_cost(accuracy, cost, ("base", 1), train, test)
    assert fold.chosen == ("x", 1)
    assert fold.ceiling == 10.0
    assert fold.test_cost == 100.0 and fold.test_accuracy == 1.0
    del accuracy[("x", 1)], cost[("x", 1)]
    assert choose_at_cost(accuracy, cost, ("base", 1), train, test).chosen == ("base", 1)


def test_cross_validation_decides_eligibility_per_fold_on_its_training_half() -> None:
    # Two questions: every split trains on one and tests on the other. X is cheap on q1 and
    # dear on q2. Training on q1 it is eligible and chosen, scoring 1 on q2 at cost 100;
    # training on q2 it is not, and the baseline scores 0 on q1 at cost 10. Deciding on all
    # questions (X: 50.5 > 10) gives 0 at cost 10; deciding on the test half gives 0.25 at
    # cost 5.5.
    qs = ["q1", "q2"]
    per_q = {"base": {1: _flat(0.0, qs)}, "x": {1: {"q1": 0.5, "q2": 1.0}}}
    cost_q = {"base": {1: _flat(10.0, qs)}, "x": {1: {"q1": 1.0, "q2": 100.0}}}
    (row,) = compute_optimal_at_cost(
        per_q, cost_q, [("all", "all", qs)], baseline="base", axis="tokens", repeats=3
    )
    assert row["optimal_accuracy"] == pytest.approx(0.5)
    assert row["optimal_cost"] == pytest.approx(55.0)
    assert row["chosen_share"] == 0.5 and row["chosen"] == "base@1"  # tie: run order


def test_pairs_without_a_measured_cost_are_no_candidates() -> None:
    per_q, cost_q = _adaptive_case()
    del cost_q["esc"][32]
    rows = compute_optimal_at_cost(per_q, cost_q, ALL, baseline="majority", axis="flops")
    at8 = next(r for r in rows if r["budget"] == 8)
    assert at8["chosen"] == "esc@8" and at8["axis"] == "flops"
    assert compute_optimal_at_cost(per_q, {}, ALL, baseline="majority", axis="flops") == []


# -- Per-question costs from evaluated results ---------------------------------------------------


def _evaluated() -> list[Evaluated]:
    cost = Cost(generated_tokens=10, role_tokens={"policy": 15, "verifier": 4})
    results = {1: {"q1": QuestionResult(1.0, 1.0, 10.0, cost)}}
    return [
        Evaluated("majority", STRATEGIES.create("majority"), {}, [1], dict(results)),
        Evaluated("coverage", STRATEGIES.create("coverage"), {}, [1], dict(results)),
    ]


def test_per_question_costs_on_each_axis() -> None:
    tokens, unknown = per_question_cost(_evaluated(), "tokens", {})
    assert tokens == {"majority": {1: {"q1": 10.0}}} and not unknown  # no oracle
    flops, unknown = per_question_cost(_evaluated(), "flops", {"policy": 100, "verifier": 7})
    assert flops == {"majority": {1: {"q1": 2 * 100 * 15 + 2 * 7 * 4}}} and not unknown
    flops, unknown = per_question_cost(_evaluated(), "flops", {"policy": 100, "verifier": None})
    assert flops == {} and unknown == {"verifier"}


# -- Through the command line, on the fake backend ----------------------------------------------

BASE = ["run", "--backend", "fake", "--task", "arith", "--strategy", "majority,esc:window=2",
        "--budgets", "1,4,8", "--limit", "8", "--leaderboard-dir", "lb", "--quiet"]  # fmt: skip


def _run(*extra: str, out: str = "runs") -> Path:
    assert main([*BASE, "--output-dir", out, *extra]) == 0
    (run_dir,) = list(Path(out).iterdir())
    return run_dir


def _exit_code(args: list[str]) -> int:
    try:
        return main(args)
    except SystemExit as e:  # argparse usage errors
        return int(e.code or 0)


def _results(run_dir: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((run_dir / "results.json").read_text())
    return data


def _row_cost(results: dict[str, Any], config: str, budget: int, key: str) -> float:
    (row,) = [
        r
        for r in results["rows"]
        if (r["config"], r["budget"], r["label_kind"]) == (config, budget, "all")
    ]
    value: float = row["cost"][key]
    return value


def test_tokens_axis_end_to_end_keeps_the_run_id() -> None:
    tokens_dir = _run("--optimal-axis", "tokens", out="a")
    budget_dir = _run(out="b")
    assert tokens_dir.name == budget_dir.name
    assert RunConfig(optimal_axis="tokens").default_run_id() == RunConfig().default_run_id()
    results = _results(tokens_dir)
    assert results["compute_optimal_axis"] == "tokens"
    assert results["compute_optimal_note"] is None
    rows = results["compute_optimal"]
    assert rows and all(r["axis"] == "tokens" for r in rows)
    for r in rows:
        assert r["optimal_cost"] <= r["level_cost"] * 1.5  # test halves may cost a bit more
        assert "@" in r["chosen"] and 0 < r["chosen_share"] <= 1
    # The level is the baseline's measured mean generated tokens (its row's cost).
    for r in (r for r in rows if r["bin_kind"] == "all"):
        level = _row_cost(results, "majority", r["budget"], "generated_tokens")
        assert r["level_cost"] == pytest.approx(level)
    tables = (tokens_dir / "report" / "tables.md").read_text()
    assert "at equal measured generated tokens/q (axis tokens" in tables
    assert "level generated tokens/q" in tables
    # The default is today's: budget rows, no axis in them.
    plain = _results(budget_dir)
    assert plain["compute_optimal_axis"] == "budget"
    assert all("axis" not in r for r in plain["compute_optimal"])
    # report recomputes on another axis without touching the run's setting.
    assert main(["report", str(budget_dir), "--optimal-axis", "tokens"]) == 0
    assert _results(budget_dir)["compute_optimal"] == rows
    assert json.loads((budget_dir / "config.json").read_text())["config"]["optimal_axis"] == (
        "budget"
    )
    assert main(["report", str(budget_dir)]) == 0
    assert _results(budget_dir)["compute_optimal"] == plain["compute_optimal"]
    # A rerun of the run command (nothing left to generate) reports on the axis it is given.
    assert main([*BASE, "--output-dir", "b", "--optimal-axis", "tokens"]) == 0
    assert _results(budget_dir)["compute_optimal"] == rows


def test_flops_axis_without_parameter_counts_says_why(capsys: pytest.CaptureFixture[str]) -> None:
    run_dir = _run("--optimal-axis", "flops")
    err = capsys.readouterr().err
    assert "no compute-optimal choice at equal FLOPs" in err
    assert "no parameter count is recorded for role policy (backend fake" in err
    results = _results(run_dir)
    assert results["compute_optimal"] == []
    assert "no parameter count" in results["compute_optimal_note"]
    assert "no parameter count" in (run_dir / "report" / "tables.md").read_text()


def test_flops_axis_with_recorded_parameter_counts() -> None:
    run_dir = _run()
    # What an invocation with a real model records (runner: log.jsonl's end line).
    counts = {"policy": {"total": 3000, "non_embedding": 1000},
              "verifier": {"total": 0, "non_embedding": 0}}  # fmt: skip
    with (run_dir / "log.jsonl").open("a") as f:
        f.write(json.dumps({"event": "end", "params": counts}) + "\n")
    assert main(["report", str(run_dir), "--optimal-axis", "flops"]) == 0
    results = _results(run_dir)
    rows = results["compute_optimal"]
    assert rows and all(r["axis"] == "flops" for r in rows)
    for r in (r for r in rows if r["bin_kind"] == "all"):
        level = _row_cost(results, "majority", r["budget"], "flops_total")
        assert r["level_cost"] == pytest.approx(level)
    assert "FLOPs/q" in (run_dir / "report" / "tables.md").read_text()


def test_a_bad_axis_is_a_usage_error(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert _exit_code([*BASE, "--optimal-axis", "bogus"]) == 2
    assert "expected one of budget, tokens, flops, got 'bogus'" in capsys.readouterr().err
    conf = tmp_path / "c.yaml"
    conf.write_text("optimal_axis: flop\n")
    assert _exit_code([*BASE, "--config", str(conf)]) == 2
    err = capsys.readouterr().err
    assert "budget, tokens, flops" in err and "flops?" in err
    assert not Path("runs").exists()
    assert _exit_code(["report", ".", "--optimal-axis", "bogus"]) == 2
    assert "expected one of budget, tokens, flops" in capsys.readouterr().err
