"""Difficulty bins, compute-optimal selection, efficiency, FLOPs and compare-flops on
synthetic traces and fake-backend runs with known correctness."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import GSM8K

from ttc_eval.analysis.bins import difficulty, quantile_bins
from ttc_eval.analysis.flops import (
    inference_flops,
    parameter_counts,
    tokens_multiplier,
)
from ttc_eval.analysis.optimal import budget_to_match, compute_optimal, cross_validate
from ttc_eval.cli import main
from ttc_eval.types import Candidate, Trace


def _trace(pid: str, correct: list[bool], scores: list[float] | None = None) -> Trace:
    cands = tuple(
        Candidate(
            index=i,
            text="",
            n_tokens=1,
            finish_reason="stop",
            answer=None,
            vote_key=None,
            correct=c,
            step_scores=(scores[i],) if scores else None,
        )
        for i, c in enumerate(correct)
    )
    return Trace(pid, "sample(n=4)", cands, 1, len(cands), len(cands))


def test_quantile_bins_follow_the_rank_definition_with_ties_by_id() -> None:
    values = {
        f"q{i:02d}": v for i, v in enumerate([0.9, 0.1, 0.5, 0.5, 0.0, 1.0, 0.3, 0.5, 0.0, 0.7])
    }
    bins = quantile_bins(values)
    # Ranked by value (highest first), ties by id: q05 q00 q09 q02 q03 q07 q06 q01 q04 q08.
    order = ["q05", "q00", "q09", "q02", "q03", "q07", "q06", "q01", "q04", "q08"]
    assert [bins[q] for q in order] == ["1", "1", "2", "2", "3", "3", "4", "4", "5", "5"]
    # 7 questions in 5 bins: sizes differ by at most one, easiest first.
    seven = quantile_bins({f"q{i}": 1 - i / 10 for i in range(7)})
    sizes = [list(seven.values()).count(str(b)) for b in range(1, 6)]
    assert sizes == [2, 1, 2, 1, 1] and max(sizes) - min(sizes) <= 1


def test_oracle_and_predicted_bins_from_a_pool() -> None:
    pool = {
        f"q{i}": _trace(f"q{i}", [k < i for k in range(4)], [0.9 - 0.1 * i] * 4) for i in range(5)
    }
    d = difficulty(pool, ["oracle", "predicted"])
    assert [d[f"q{i}"]["pass_at_1"] for i in range(5)] == [0.0, 0.25, 0.5, 0.75, 1.0]
    assert [d[f"q{i}"]["oracle"] for i in range(5)] == ["5", "4", "3", "2", "1"]
    assert [d[f"q{i}"]["predicted"] for i in range(5)] == ["1", "2", "3", "4", "5"]
    unscored = {k: _trace(k, [True]) for k in pool}
    assert "predicted" not in difficulty(unscored, ["oracle", "predicted"])["q0"]


def test_compute_optimal_picks_the_known_best_configuration() -> None:
    qs = [f"q{i}" for i in range(10)]
    per_q = {
        "weak": {4: {q: 0.2 for q in qs}},
        "strong": {4: {q: 0.8 for q in qs}},
        "middling": {4: {q: 0.5 for q in qs}},
    }
    (row,) = compute_optimal(per_q, [("all", "all", qs)], baseline="weak")
    assert row["chosen"] == "strong" and row["chosen_share"] == 1.0
    assert row["optimal_accuracy"] == pytest.approx(0.8)
    assert row["baseline_accuracy"] == pytest.approx(0.2)


def test_cross_validation_never_chooses_on_the_reported_half() -> None:
    # A and B are each perfect on one question and wrong on the other; C is mediocre on
    # both. Choosing on the reported question would score 1; choosing on all questions picks
    # A (0.5). Honest 2-fold CV chooses A on q1 and reports q2 (0), and the reverse: 0.
    per_q = {"A": {"q1": 1.0, "q2": 0.0}, "B": {"q1": 0.0, "q2": 1.0}, "C": {"q1": 0.4, "q2": 0.4}}
    folds = cross_validate(per_q, ["q1", "q2"], repeats=5)
    assert all(set(f.train).isdisjoint(f.test) for f in folds)
    assert all(f.test_accuracy == 0.0 for f in folds)
    (row,) = compute_optimal(
        {c: {1: acc} for c, acc in per_q.items()}, [("all", "all", ["q1", "q2"])], baseline="C"
    )
    assert row["optimal_accuracy"] == 0.0


def test_folds_choose_the_best_on_their_training_half() -> None:
    qs = [f"q{i}" for i in range(12)]
    per_q = {
        c: {q: ((i * 7 + j * 3) % 5) / 4 for i, q in enumerate(qs)} for j, c in enumerate("abcd")
    }
    for f in cross_validate(per_q, qs, repeats=4, seed="s"):
        train_mean = {c: sum(per_q[c][q] for q in f.train) / len(f.train) for c in per_q}
        assert train_mean[f.chosen] == max(train_mean.values())
        assert sorted(f.train + f.test) == sorted(qs)


def test_efficiency_ratio_on_a_constructed_curve() -> None:
    curve = {1: 0.2, 2: 0.4, 4: 0.5, 8: 0.6}
    needed, how = budget_to_match(curve, 0.5)
    assert how == "interpolated" and needed == pytest.approx(4.0)
    needed, how = budget_to_match(curve, 0.55)  # halfway from 4 to 8 in log2: 2 ** 2.5
    assert how == "interpolated" and needed == pytest.approx(2**2.5)
    assert budget_to_match(curve, 0.1) == (1.0, "at most")
    assert budget_to_match(curve, 0.7) == (None, "out of range")
    qs = ["a", "b"]
    per_q = {
        "best_of_n": {b: dict.fromkeys(qs, acc) for b, acc in curve.items()},
        "clever": {4: dict.fromkeys(qs, 0.6)},
    }
    rows = compute_optimal(per_q, [("all", "all", qs)], baseline="best_of_n")
    at4 = next(r for r in rows if r["budget"] == 4)
    # best-of-N needs budget 8 to match 0.6: twice the budget, ratio 2.
    assert at4["chosen"] == "clever" and at4["efficiency_ratio"] == pytest.approx(2.0)


def test_tokens_multiplier_for_m_14() -> None:
    ks = [tokens_multiplier(14, r) for r in (0.16, 0.79, 22)]
    assert [round(k) for k in ks] == [258, 63, 16]
    assert ks[0] == pytest.approx(14 + 39 / 0.16)


def test_flops_for_a_known_model_config() -> None:
    torch = pytest.importorskip("torch")
    from transformers import LlamaConfig, LlamaForCausalLM

    cfg = LlamaConfig(
        vocab_size=100,
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        tie_word_embeddings=True,
    )
    with torch.device("meta"):
        model = LlamaForCausalLM(cfg)
    # Per layer: q 16x16, k and v 16x8 each, o 16x16, MLP 3 x 16x32, two norms of 16.
    per_layer = 256 + 128 + 128 + 256 + 3 * 512 + 2 * 16
    counts = parameter_counts(model)
    assert counts["non_embedding"] == 2 * per_layer + 16  # plus the final norm
    assert counts["total"] == counts["non_embedding"] + 100 * 16  # tied: embeddings once
    cfg.tie_word_embeddings = False
    with torch.device("meta"):
        untied = parameter_counts(LlamaForCausalLM(cfg))
    assert untied["non_embedding"] == counts["non_embedding"]
    assert untied["total"] == counts["total"] + 100 * 16
    assert inference_flops(counts["non_embedding"], 10) == 2 * counts["non_embedding"] * 10


def _fake_run(*extra: str) -> Path:
    before = set(Path("runs").iterdir()) if Path("runs").exists() else set()
    args = ["run", "--backend", "fake", "--task", "arith", "--quiet", *extra]
    assert main(args) == 0
    (new,) = set(Path("runs").iterdir()) - before
    return new


def test_report_writes_bins_optimal_figures_and_reproduces_results() -> None:
    run_dir = _fake_run("--strategy", "majority,best_of_n", "--budgets", "1,2,4,8")
    first = (run_dir / "results.json").read_text()
    results = json.loads(first)
    kinds = {r["label_kind"] for r in results["rows"]}
    assert {"all", "level", "oracle", "predicted"} <= kinds
    assert results["difficulty"]["pool"] == "sample(n=8,temperature=0.7)"
    assert len(results["difficulty"]["questions"]) == 30
    opt_kinds = {r["bin_kind"] for r in results["compute_optimal"]}
    assert opt_kinds == {"all", "level", "oracle", "predicted"}
    for r in results["compute_optimal"]:
        assert r["baseline"].startswith("best_of_n") and "coverage" not in r["chosen"]
    tables = (run_dir / "report" / "tables.md").read_text()
    assert "compute-optimal vs baseline by oracle bin" in tables
    for kind in ("oracle", "predicted", "level", "all"):
        assert (run_dir / "report" / f"accuracy_by_budget_{kind}.png").stat().st_size > 1000
        assert (run_dir / "report" / f"compute_optimal_{kind}.png").stat().st_size > 1000
    (run_dir / "results.json").unlink()
    assert main(["report", str(run_dir)]) == 0
    assert (run_dir / "results.json").read_text() == first


def test_dedicated_difficulty_pass_and_bins_option() -> None:
    run_dir = _fake_run(
        "--strategy", "greedy", "--budgets", "1", "--difficulty-samples", "6",
        "--bins", "oracle", "--limit", "10",
    )  # fmt: skip
    results = json.loads((run_dir / "results.json").read_text())
    assert results["difficulty"]["pool"] == "sample(n=6,temperature=0.7)"
    assert results["compute"]["by_expansion"]["sample(n=6,temperature=0.7)"]["samples"] == 60
    kinds = {r["label_kind"] for r in results["rows"]}
    assert kinds == {"all", "oracle"}


def test_compare_flops_table_follows_the_formula(capsys: pytest.CaptureFixture[str]) -> None:
    small = _fake_run("--strategy", "majority,best_of_n", "--budgets", "1,2,4,8,16")
    large = _fake_run(
        "--model", "big", "--backend-args", "p_correct=0.9", "--strategy", "greedy",
        "--budgets", "1",
    )  # fmt: skip
    out = Path("cf.json")
    code = main(
        [
            "compare-flops", str(small), str(large), "--ratios", "0.16,0.79,22",
            "--params-small", "1e8", "--params-large", "1.4e9", "--json", str(out),
        ]
    )  # fmt: skip
    assert code == 0
    result = json.loads(out.read_text())
    assert result["M"] == pytest.approx(14)
    ks = sorted({round(r["K"], 6) for r in result["rows"]})
    assert ks == sorted(round(tokens_multiplier(14, r), 6) for r in (0.16, 0.79, 22))
    bins = {(r["bin_kind"], r["bin"]) for r in result["rows"]}
    assert ("all", "all") in bins and ("oracle", "5") in bins
    for r in result["rows"]:
        assert r["ci_low"] <= r["difference"] <= r["ci_high"]
        assert r["difference"] == pytest.approx(r["small_accuracy"] - r["large_accuracy"])
    assert "K = M + 3(M-1)/R" in capsys.readouterr().out
    assert (small / "report" / "compare_flops.png").stat().st_size > 1000


def test_compare_flops_bad_input_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    small = _fake_run("--strategy", "majority", "--budgets", "1,2", "--limit", "4")
    other = _fake_run(
        "--task", "gsm8k", "--data-files", str(GSM8K), "--strategy", "greedy",
        "--budgets", "1", "--limit", "2",
    )  # fmt: skip
    assert main(["compare-flops", str(small), "nowhere"]) == 2
    assert "not a run directory" in capsys.readouterr().err
    # The fake backend records no parameter count: the error says which flag to pass.
    assert main(["compare-flops", str(small), str(small)]) == 2
    assert "--params-small" in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:
        main(["compare-flops", str(small), str(small), "--ratios", "0,1"])
    assert e.value.code == 2
    assert "ratios must be positive" in capsys.readouterr().err
    args = ["compare-flops", str(small), str(other), "--params-small", "1", "--params-large", "2"]
    assert main(args) == 2
    assert "different tasks" in capsys.readouterr().err


def test_unknown_bins_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    args = ["run", "--backend", "fake", "--task", "arith", "--quiet", "--bins", "oracel"]
    assert main(args) == 2
    assert "Did you mean: oracle" in capsys.readouterr().err
