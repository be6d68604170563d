"""Verifier evaluation (`ttc-eval verifiers`): AUROC, ECE and over-optimization checked
against hand computations, then the command end to end on the fake backend and on an
imported dump."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from ttc_eval.analysis.verifier_eval import (
    QuestionScores,
    _clustered,
    _pair_counts,
    _resample_weights,
    auroc,
    calibration,
    discrimination,
    expected_calibration_error,
    over_optimization,
    paired_difference,
    within_question,
)
from ttc_eval.cli import main

# 1. AUROC by hand.


def test_auroc_counts_every_correct_wrong_pair_and_ties_half() -> None:
    # Correct 0.9, 0.6, 0.4 against wrong 0.6, 0.3: six pairs.
    # 0.9 beats both (2); 0.6 ties 0.6 (1/2) and beats 0.3 (1); 0.4 loses to 0.6 and beats
    # 0.3 (1). 4.5 / 6 = 0.75 (ties as losses would give 4/6, as wins 5/6).
    scores = [0.9, 0.6, 0.4, 0.6, 0.3]
    correct = [True, True, True, False, False]
    assert auroc(scores, correct) == pytest.approx(0.75)
    assert auroc([0.5] * 4, [True, False, True, False]) == pytest.approx(0.5)
    assert auroc([0.1, 0.9], [False, True]) == 1.0
    assert auroc([0.1, 0.9], [True, True]) is None
    # Every resample of three all-tied questions is all ties: the interval is 0.5 exactly.
    tied = discrimination([QuestionScores((0.5, 0.5), (True, False))] * 3)
    assert (tied.auroc, tied.ci_low, tied.ci_high) == (0.5, 0.5, 0.5)
    none = discrimination([QuestionScores((0.2, 0.4), (False, False))])
    assert none.auroc is None and none.reason == "every sample is wrong"


def test_pooled_auroc_pairs_samples_across_questions_and_resamples_questions() -> None:
    # Q1: correct 0.8, wrong 0.2; Q2: correct 0.3, wrong 0.7. Pooled pairs: 0.8>0.2,
    # 0.8>0.7, 0.3>0.2, 0.3<0.7: 3/4. Within question: Q1 1, Q2 0, mean 0.5.
    q1 = QuestionScores((0.8, 0.2), (True, False))
    q2 = QuestionScores((0.3, 0.7), (True, False))
    # Two questions per class is below the default minimum for an interval (3): allowed here
    # to check the bootstrap by hand.
    d = discrimination([q1, q2], min_class_questions=2)
    assert d.auroc == pytest.approx(0.75)
    assert (d.n_questions, d.n_correct, d.n_wrong) == (2, 2, 2)
    # Resampling the two questions: {Q1, Q1} -> 1 (p 1/4), {Q2, Q2} -> 0 (1/4), one of
    # each -> 0.75 (1/2). The 2.5% and 97.5% percentiles are therefore 0 and 1; a bootstrap
    # over the four samples would never give 0 (it needs both classes and Q1's pair).
    assert (d.ci_low, d.ci_high) == (0.0, 1.0)
    assert d.resamples_dropped == 0  # every resample holds both classes
    w = within_question([q1, q2])
    assert w.auroc == pytest.approx(0.5) and w.n_questions == 2
    # A question with one class says nothing of ranking: left out of the within mean.
    w3 = within_question([q1, q2, QuestionScores((0.9,), (True,))])
    assert w3.auroc == pytest.approx(0.5) and w3.n_questions == 2


def test_pooled_auroc_interval_needs_three_questions_per_class_and_counts_dropped() -> None:
    q1 = QuestionScores((0.8, 0.2), (True, False))
    q2 = QuestionScores((0.3, 0.7), (True, False))
    few = discrimination([q1, q2])
    assert few.auroc == pytest.approx(0.75)
    assert (few.ci_low, few.ci_high) == (None, None)
    assert few.ci_reason and "at least 3" in few.ci_reason
    # Three questions with only correct samples and three with only wrong ones: a resample
    # drawing from one side only has no AUROC and is dropped, and counted.
    right = [QuestionScores((0.6 + 0.1 * i,), (True,)) for i in range(3)]
    wrong = [QuestionScores((0.1 * i,), (False,)) for i in range(3)]
    d = discrimination([*right, *wrong], n_resamples=1000, seed=5)
    assert d.auroc == 1.0 and d.ci_reason is None
    one_sided = sum(
        int(((w[:, :3].sum(1) == 0) | (w[:, 3:].sum(1) == 0)).sum())
        for w in _resample_weights(6, 1000, 5)
    )
    # P(one side only) = 2 x (1/2)^6: about 31 of 1000.
    assert one_sided > 0 and d.resamples_dropped == one_sided
    assert (d.ci_low, d.ci_high) == (1.0, 1.0)


def test_pooled_auroc_bootstrap_matches_resampling_the_samples_themselves() -> None:
    # w'Cw over (w . pos)(w . neg) against the AUROC of the resampled questions' samples.
    rng = np.random.default_rng(3)
    questions = [
        QuestionScores(
            tuple(float(x) for x in rng.choice([0.1, 0.4, 0.4, 0.7, 0.9], size=4)),
            tuple(bool(x) for x in rng.random(4) < 0.5),
        )
        for _ in range(7)
    ]
    c, pos, neg = _pair_counts(questions)
    undefined = 0
    for w in _resample_weights(len(questions), 300, 11):
        pairs = (w @ pos) * (w @ neg)
        wins = ((w @ c) * w).sum(axis=1)
        assert wins == pytest.approx(np.einsum("bq,qr,br->b", w, c, w))
        for b in range(w.shape[0]):
            picked = [q for q, k in zip(questions, w[b], strict=True) for _ in range(int(k))]
            brute = auroc(
                [s for q in picked for s in q.scores], [y for q in picked for y in q.correct]
            )
            if brute is None:
                assert pairs[b] == 0
                undefined += 1
            else:
                assert wins[b] / pairs[b] == pytest.approx(brute)
    lo, hi, dropped = _clustered(questions, 0.95, 300, 11)
    assert lo is not None and hi is not None and lo <= hi and dropped == undefined


def test_within_question_gives_no_interval_from_one_question() -> None:
    one = within_question([QuestionScores((0.8, 0.2), (True, False))])
    assert one.auroc == 1.0 and one.n_questions == 1
    assert (one.ci_low, one.ci_high) == (None, None) and one.ci_reason


# 2. ECE by hand.

# Bin [0.2, 0.3): 0.2 (right), 0.25 (wrong): accuracy 0.5, mean score 0.225, gap 0.275.
# Bin [0.6, 0.7): 0.65 (right): gap 0.35.
# Bin [0.9, 1.0] (1.0 belongs to the last bin): 0.9, 0.9 (right), 1.0 (wrong): accuracy
# 2/3, mean score 2.8/3, gap 0.8/3.
# ECE = (2 x 0.275 + 1 x 0.35 + 3 x 0.8/3) / 6 = 1.7 / 6.
# Wrong weights: the plain mean of the three gaps is 0.2972; 1.0 in a bin of its own gives
# 0.35; 0.2 in the bin below gives 0.3667.
ECE_SCORES = [0.2, 0.25, 0.65, 0.9, 0.9, 1.0]
ECE_CORRECT = [True, False, True, True, True, False]


def test_ece_weights_each_bin_by_its_share_of_the_samples() -> None:
    assert expected_calibration_error(ECE_SCORES, ECE_CORRECT) == pytest.approx(1.7 / 6)
    assert expected_calibration_error([0.5, 1.5], [True, False]) is None
    perfect = [0.25] * 4
    assert expected_calibration_error(perfect, [True, False, False, False]) == pytest.approx(0)


def test_calibration_gives_the_reliability_bins_and_refuses_non_probabilities() -> None:
    questions = [
        QuestionScores((0.2, 0.25, 0.65), (True, False, True)),
        QuestionScores((0.9, 0.9, 1.0), (True, True, False)),
    ]
    c = calibration(questions)
    assert c.ece == pytest.approx(1.7 / 6) and c.n_samples == 6
    assert [b.count for b in c.bins] == [0, 0, 2, 0, 0, 0, 1, 0, 0, 3]
    assert c.bins[2].mean_score == pytest.approx(0.225) and c.bins[2].accuracy == 0.5
    assert c.bins[9].mean_score == pytest.approx(2.8 / 3)
    assert c.bins[9].accuracy == pytest.approx(2 / 3)
    assert c.bins[0].mean_score is None and c.bins[0].accuracy is None
    assert c.ci_low is not None and c.ci_high is not None and c.ci_low <= c.ci_high
    # Resamples of identical questions are the same sample set: the interval is the point.
    same = calibration([QuestionScores(tuple(ECE_SCORES), tuple(ECE_CORRECT))] * 3)
    assert same.ci_low == pytest.approx(1.7 / 6) and same.ci_high == pytest.approx(1.7 / 6)
    logits = calibration([QuestionScores((3.5, -1.0), (True, False))])
    assert logits.ece is None and logits.bins == ()
    assert logits.reason and "not probabilities" in logits.reason and "3.5" in logits.reason


# 3. Over-optimization and paired differences.


def test_over_optimization_flags_the_loss_that_lasts_to_the_largest_budget() -> None:
    budgets = [16, 1, 2, 4, 8]  # any order
    guided = [0.45, 0.5, 0.6, 0.55, 0.5]
    majority = [0.6, 0.5, 0.55, 0.6, 0.48]
    o = over_optimization(budgets, guided, majority)
    assert o.budgets == (1, 2, 4, 8, 16)
    # Below at 4, recovers at 8, below again at 16: first below 4, onset 16.
    assert (o.first_below, o.onset) == (4, 16)
    steady = over_optimization([1, 2, 4], [0.5, 0.5, 0.4], [0.5, 0.45, 0.5])
    assert (steady.first_below, steady.onset) == (4, 4)
    never = over_optimization([1, 2], [0.5, 0.7], [0.5, 0.6])
    assert (never.first_below, never.onset) == (None, None)


def test_paired_difference_is_the_mean_of_per_question_differences() -> None:
    d = paired_difference([1.0, 0.0, 1.0], [0.0, 0.0, 1.0])
    assert d.mean == pytest.approx(1 / 3) and d.n_questions == 3
    assert d.ci_low <= d.mean <= d.ci_high


# 4. `ttc-eval verifiers` end to end.

RUN = ["run", "--backend", "fake", "--task", "arith", "--strategy", "majority,best_of_n",
       "--limit", "6", "--quiet"]  # fmt: skip
FAKE = ["run", "--backend", "fake", "--task", "arith", "--verifier", "logprob", "--quiet"]


def _run_dir(out: str) -> Path:
    (d,) = list(Path(out).iterdir())
    return d


def _results_rows(run: Path) -> dict[tuple[str, str, str, int], dict[str, Any]]:
    """results.json's rows by (kind, value, selection, budget); selection as verifier.json
    names it (majority, weighted, naive), best_of_n rows keyed by their aggregation too."""
    out = {}
    for r in json.loads((run / "results.json").read_text())["rows"]:
        name = r["strategy"]
        if name == "best_of_n":
            name = f"{r['strategy_args']['mode']}:{r['strategy_args']['aggregation']}"
        elif name != "majority":
            continue
        out[(r["label_kind"], r["label"], name, r["budget"])] = r
    return out


def _assert_selection_is_the_runs(
    run: Path, report: dict[str, Any], modes: set[str], budgets: list[int]
) -> None:
    """Every selection number of the report, per group and budget, equals results.json's row
    of the same selection (majority, and best_of_n ``modes`` at the report's aggregation);
    the run's ``budgets`` must all be there."""
    rows = _results_rows(run)
    how = report["aggregation"]
    checked = 0
    for s in report["selection"]:
        for name in ("majority", *sorted(modes)):
            key = name if name == "majority" else f"{name}:{how}"
            row = rows.get((s["kind"], s["value"], key, s["budget"]))
            if s["budget"] in budgets:
                assert row is not None, (s["kind"], s["value"], key, s["budget"])
            if row is None:
                continue
            assert row["n_problems"] == s["n_questions"]
            assert s[name] == pytest.approx(row["accuracy"]), (s["kind"], s["value"], key)
            checked += 1
    assert checked >= len(budgets) * len(report["groups"]) * (1 + len(modes))


def _brute_auroc(traces: Path) -> float:
    """Pooled AUROC of the last step's score, by counting pairs (no code under test)."""
    right: list[float] = []
    wrong: list[float] = []
    for line in traces.read_text().splitlines():
        for c in json.loads(line)["candidates"]:
            (right if c["correct"] else wrong).append(c["step_scores"][-1])
    wins = sum(1.0 if r > w else 0.5 if r == w else 0.0 for r in right for w in wrong)
    return wins / (len(right) * len(wrong))


def test_verifiers_command_on_a_fake_run(capsys: pytest.CaptureFixture[str]) -> None:
    strategies = "majority,best_of_n,best_of_n:mode=naive"
    args = [*FAKE, "--strategy", strategies, "--limit", "6", "--budgets", "1,2,4,8"]
    assert main([*args, "--output-dir", "out"]) == 0
    run = _run_dir("out")
    capsys.readouterr()
    assert main(["verifiers", str(run)]) == 0
    captured = capsys.readouterr()
    printed = captured.out
    for title in ("outcome AUROC", "expected calibration error", "regret", "over-optimization"):
        assert title in printed
    assert "weighted best-of-N" in printed and "naive best-of-N" in printed
    assert "small groups inflate ECE" in printed
    report = json.loads((run / "report" / "verifier.json").read_text())
    for key in ("discrimination", "calibration", "selection", "overoptimization", "groups"):
        assert report[key], key
    assert report["verifier"] == "logprob" and report["n_samples"] == 48
    assert report["budgets"] == [1, 2, 4, 8]
    assert (run / "report" / "reliability.png").stat().st_size > 0
    assert (run / "report" / "overoptimization.png").stat().st_size > 0
    assert (run / "report" / "verifier.md").is_file()
    written = "wrote verifier.json, verifier.md, reliability.png, overoptimization.png"
    assert written in captured.err

    overall = next(
        d for d in report["discrimination"] if (d["kind"], d["aggregation"]) == ("all", "last")
    )
    assert overall["pooled"]["auroc"] == pytest.approx(_brute_auroc(run / "traces.jsonl"))
    kinds = {g["kind"] for g in report["groups"]}
    assert {"all", "oracle", "level"} <= kinds
    calib = next(c for c in report["calibration"] if c["kind"] == "all")
    assert 0 <= calib["ece"] <= 1 and len(calib["bins"]) == 10

    # Majority, weighted and naive best-of-N are the run's own numbers (the same selections,
    # same pool), in every group (labels and bins) at every budget.
    assert report["aggregation"] == "last" and report["run_aggregations"] == ["last"]
    _assert_selection_is_the_runs(run, report, {"weighted", "naive"}, [1, 2, 4, 8])
    for row in report["selection"]:
        # The oracle chooses from the very groups naive reads: it never does worse.
        assert row["oracle_minus_naive"]["mean"] >= 0
        assert row["oracle"] >= row["naive"]
    assert "resamples_dropped" in overall["pooled"]
    for o in report["overoptimization"]:
        assert o["budgets"] == [1, 2, 4, 8] and o["mode"] in ("weighted", "naive")
        below = [g < m - 1e-9 for g, m in zip(o["guided"], o["majority"], strict=True)]
        if o["onset"] is not None:
            assert all(below[o["budgets"].index(o["onset"]) :])

    # Several runs: one column block each (here the same run twice, numbered).
    assert main(["verifiers", str(run), str(run), "--aggregation", "min"]) == 0
    captured = capsys.readouterr()
    side = captured.out
    assert f"1: {run.name}: pooled" in side and f"2: {run.name}: pooled" in side
    assert "aggregation=min" in side and "oracle - naive" in side
    # min is not the run's aggregation: said.
    assert "the run's best_of_n used last" in captured.err


def test_verifiers_aggregation_min_changes_best_of_n_as_the_run_does(
    capsys: pytest.CaptureFixture[str],
) -> None:
    # Both aggregations in one run: results.json has best_of_n rows under each.
    strategies = (
        "majority,best_of_n,best_of_n:mode=naive,"
        "best_of_n:aggregation=min,best_of_n:mode=naive:aggregation=min"
    )
    args = [*FAKE, "--strategy", strategies, "--limit", "6", "--budgets", "1,2,4,8"]
    assert main([*args, "--output-dir", "out"]) == 0
    run = _run_dir("out")
    capsys.readouterr()
    # Several aggregations in the run: the default is last, with a note.
    assert main(["verifiers", str(run)]) == 0
    assert "several: pick one with --aggregation" in capsys.readouterr().err
    last = json.loads((run / "report" / "verifier.json").read_text())
    assert last["aggregation"] == "last" and last["run_aggregations"] == ["last", "min"]
    _assert_selection_is_the_runs(run, last, {"weighted", "naive"}, [1, 2, 4, 8])
    assert main(["verifiers", str(run), "--aggregation", "min"]) == 0
    capsys.readouterr()
    low = json.loads((run / "report" / "verifier.json").read_text())
    assert low["aggregation"] == "min"
    _assert_selection_is_the_runs(run, low, {"weighted", "naive"}, [1, 2, 4, 8])
    # min and last choose differently here: the numbers moved (majority did not).
    for mode in ("weighted", "naive"):
        moved = [
            (a["kind"], a["value"], a["budget"])
            for a, b in zip(last["selection"], low["selection"], strict=True)
            if a[mode] != pytest.approx(b[mode])
        ]
        assert moved, mode
    for a, b in zip(last["selection"], low["selection"], strict=True):
        assert a["majority"] == b["majority"]


def test_verifiers_defaults_to_the_runs_aggregation_and_sweeps_its_budgets(
    capsys: pytest.CaptureFixture[str],
) -> None:
    strategies = "majority,best_of_n:aggregation=min"
    args = [*FAKE, "--strategy", strategies, "--limit", "4", "--budgets", "1,3,6"]
    assert main([*args, "--output-dir", "out"]) == 0
    run = _run_dir("out")
    capsys.readouterr()
    assert main(["verifiers", str(run)]) == 0
    err = capsys.readouterr().err
    report = json.loads((run / "report" / "verifier.json").read_text())
    assert report["aggregation"] == "min" and "the run's best_of_n used" not in err
    # Powers of 2, the run's budgets and the pool size (6), capped at the pool.
    assert report["budgets"] == [1, 2, 3, 4, 6] and report["pool_sizes"] == [6, 6]
    _assert_selection_is_the_runs(run, report, {"weighted"}, [1, 3, 6])
    assert main(["verifiers", str(run), "--aggregation", "last"]) == 0
    assert "aggregation last: the run's best_of_n used min" in capsys.readouterr().err


def test_verifiers_reads_the_strategies_pool_not_the_difficulty_pass(
    capsys: pytest.CaptureFixture[str],
) -> None:
    # --difficulty-samples 8 stores a pool of 8 for the bins; majority and best_of_n read the
    # pool of 4. Every section reads the latter; the bins stay the run's own.
    args = [*FAKE, "--strategy", "majority,best_of_n", "--limit", "6", "--budgets", "1,2,4"]
    assert main([*args, "--difficulty-samples", "8", "--output-dir", "out"]) == 0
    run = _run_dir("out")
    capsys.readouterr()
    assert main(["verifiers", str(run)]) == 0
    report = json.loads((run / "report" / "verifier.json").read_text())
    assert report["pool"].startswith("sample(n=4,") and report["budgets"] == [1, 2, 4]
    assert report["n_samples"] == 24
    assert {"oracle", "predicted"} <= {g["kind"] for g in report["groups"]}
    _assert_selection_is_the_runs(run, report, {"weighted"}, [1, 2, 4])


def test_verifiers_refuses_runs_without_scores_and_non_runs(
    capsys: pytest.CaptureFixture[str],
) -> None:
    bare = ["run", "--backend", "fake", "--task", "arith", "--strategy", "majority",
            "--verifier", "none", "--budgets", "1,2", "--limit", "2", "--quiet"]  # fmt: skip
    assert main([*bare, "--output-dir", "bare"]) == 0
    scored = [*FAKE, "--strategy", "majority,best_of_n", "--budgets", "1,2", "--limit", "2"]
    assert main([*scored, "--output-dir", "good"]) == 0
    capsys.readouterr()
    good = _run_dir("good")
    (good / "report" / "verifier.json").unlink()  # written by the run's own report
    # The good run comes first, but nothing is written: every run is checked up front.
    assert main(["verifiers", str(good), str(_run_dir("bare"))]) == 2
    err = capsys.readouterr().err
    assert "has no verifier scores" in err and "--verifier logprob" in err
    assert not (good / "report" / "verifier.json").exists()
    assert main(["verifiers", "nowhere"]) == 2
    assert "nowhere is not a run directory" in capsys.readouterr().err


def test_verifiers_on_an_imported_dump_with_reward_logits(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = tmp_path / "dump.jsonl"
    rows = [
        {"id": "a", "answer": "3", "samples": [
            {"text": "3", "score": 2.5, "correct": True},
            {"text": "4", "score": -1.0, "correct": False}]},
        {"id": "b", "answer": "5", "samples": [
            {"text": "5", "score": 0.5, "correct": True},
            {"text": "6", "score": 1.5, "correct": False},
            {"text": "7", "score": -2.0, "correct": False}]},
    ]  # fmt: skip
    src.write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert main(["import", "generic", str(src), "--task", "arith", "--output-dir", "imp"]) == 0
    run = _run_dir("imp")
    capsys.readouterr()
    assert main(["verifiers", str(run)]) == 0
    captured = capsys.readouterr()
    report = json.loads((run / "report" / "verifier.json").read_text())
    overall = next(d for d in report["discrimination"] if d["kind"] == "all")
    # Pairs: 2.5 beats -1.0, 1.5 and -2.0; 0.5 beats -1.0 and -2.0, not 1.5: 5/6. Two
    # questions: too few for an interval.
    assert overall["pooled"]["auroc"] == pytest.approx(5 / 6)
    assert overall["pooled"]["ci_low"] is None and overall["pooled"]["ci_reason"]
    # Pools of 2 and 3: the sweep stops at 2, and says so.
    assert report["pool_sizes"] == [2, 3] and report["budgets"] == [1, 2]
    assert "pools hold 2 to 3 samples per question" in captured.err
    assert "budget sweep cut at 2" in captured.out
    calib = next(c for c in report["calibration"] if c["kind"] == "all")
    assert calib["ece"] is None and "not probabilities" in calib["reason"]
    assert "ECE undefined" in captured.out
    assert "reliability.png not written" in captured.err
    # Only what was written is claimed.
    assert "wrote verifier.json, verifier.md, overoptimization.png into" in captured.err
    assert not (run / "report" / "reliability.png").exists()
    assert (run / "report" / "overoptimization.png").is_file()


def test_the_report_has_the_verifier_section(capsys: pytest.CaptureFixture[str]) -> None:
    """A run with a verifier reports how good the verifier is: tables.md's section, the
    figures, and results.json's headline AUROC, which is the pooled AUROC counted here from
    the stored scores; a run without one has no section."""
    args = [*FAKE, "--strategy", "majority,best_of_n", "--limit", "6", "--budgets", "1,2,4,8"]
    assert main([*args, "--output-dir", "out"]) == 0
    run = _run_dir("out")
    for name in ("verifier.json", "verifier.md", "reliability.png", "overoptimization.png"):
        assert (run / "report" / name).stat().st_size > 0
    assert "## How good is the verifier" in (run / "report" / "tables.md").read_text()
    section = json.loads((run / "results.json").read_text())["verifier_evaluation"]
    (last,) = [a for a in section["auroc"] if a["aggregation"] == "last"]
    assert last["pooled"]["auroc"] == pytest.approx(_brute_auroc(run / "traces.jsonl"))
    assert section["aggregation"] == "last" and section["n_questions"] == 6
    bare = ["run", "--backend", "fake", "--task", "arith", "--quiet", "--strategy", "majority",
            "--verifier", "none"]  # fmt: skip
    assert main([*bare, "--budgets", "2", "--limit", "2", "--output-dir", "bare"]) == 0
    results = json.loads((_run_dir("bare") / "results.json").read_text())
    assert "verifier_evaluation" not in results
    assert not (_run_dir("bare") / "report" / "verifier.json").exists()


def test_two_runs_side_by_side_show_each_runs_own_numbers(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The out-of-distribution table: two different runs (arith and arith_wide questions),
    one column block each, each holding that run's own pooled AUROC as its verifier.json
    has it."""
    args = ["--strategy", "majority,best_of_n", "--budgets", "1,2,4", "--limit", "5"]
    assert main([*FAKE, *args, "--output-dir", "a"]) == 0
    wide = [x if x != "arith" else "arith_wide" for x in FAKE]
    assert main([*wide, *args, "--output-dir", "b"]) == 0
    runs = [_run_dir("a"), _run_dir("b")]
    capsys.readouterr()
    assert main(["verifiers", *map(str, runs)]) == 0
    out = capsys.readouterr().out
    header = next(line for line in out.splitlines() if line.startswith("| aggregation"))
    row = next(line for line in out.splitlines() if line.startswith("| last"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    names = [c.strip() for c in header.strip("|").split("|")]
    for run in runs:
        auroc = json.loads((run / "report" / "verifier.json").read_text())["discrimination"]
        (mine,) = [d for d in auroc if d["kind"] == "all" and d["aggregation"] == "last"]
        (col,) = [i for i, n in enumerate(names) if n.startswith(run.name) and "pooled" in n]
        assert cells[col].startswith(f"{mine['pooled']['auroc']:.3f}")
    assert runs[0].name.split("-")[0] == "arith" and runs[1].name.startswith("arith_wide")
