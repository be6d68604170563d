"""ttc-eval compare (paired McNemar + bootstrap, CI exit codes) and ttc-eval leaderboard."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import GSM8K

from ttc_eval.cli import main
from ttc_eval.reporting.compare import paired_test


def _run(out: str, *extra: str) -> Path:
    args = [
        "run", "--backend", "fake", "--task", "arith", "--quiet", "--strategy", "majority",
        "--budgets", "1,4", "--output-dir", out, *extra,
    ]  # fmt: skip
    assert main(args) == 0
    (d,) = list(Path(out).iterdir())
    return d


def test_paired_test_on_known_counts() -> None:
    qs = [f"q{i}" for i in range(20)]
    base = {q: True for q in qs}
    new = {q: i >= 8 for i, q in enumerate(qs)}  # 8 flipped to wrong, none to right
    acc_b = {q: float(v) for q, v in base.items()}
    acc_n = {q: float(v) for q, v in new.items()}
    r = paired_test(acc_b, acc_n, base, new, qs)
    assert (r["new_worse_pairs"], r["new_better_pairs"]) == (8, 0)
    assert r["p_new_worse"] == pytest.approx(0.5**8)  # exact binomial, one-sided
    assert r["mcnemar_p"] == pytest.approx(2 * 0.5**8)
    assert r["difference"] == pytest.approx(-0.4)
    assert r["ci_low"] <= -0.4 <= r["ci_high"] < 0


def test_identical_runs_exit_0_and_a_much_worse_run_exits_1(
    capsys: pytest.CaptureFixture[str],
) -> None:
    base = _run("base")
    same = _run("same")
    assert main(["compare", str(base), str(same), "--json", "same.json"]) == 0
    result = json.loads(Path("same.json").read_text())
    overall = [r for r in result["rows"] if r["bin_kind"] == "all"]
    assert overall and all(r["difference"] == 0 and r["mcnemar_p"] == 1 for r in overall)
    worse = _run("worse", "--backend-args", "p_correct=0.05")
    capsys.readouterr()
    assert main(["compare", str(base), str(worse), "--strategy", "majority"]) == 1
    assert "significantly worse" in capsys.readouterr().out
    # The reverse direction is an improvement: not a failure.
    assert main(["compare", str(worse), str(base)]) == 0


def test_a_small_noisy_difference_is_not_significant() -> None:
    base = _run("base")
    noisy = _run("noisy", "--seed", "7")  # same model, other samples
    assert main(["compare", str(base), str(noisy), "--budget", "4", "--json", "n.json"]) == 0
    (row,) = [r for r in json.loads(Path("n.json").read_text())["rows"] if r["bin_kind"] == "all"]
    assert row["difference"] != 0 and row["p_new_worse"] > 0.05


def test_bad_comparisons_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    base = _run("base", "--limit", "4")
    args = [
        "run", "--backend", "fake", "--task", "gsm8k", "--data-files", str(GSM8K),
        "--quiet", "--strategy", "majority", "--budgets", "1", "--limit", "2",
        "--output-dir", "other",
    ]  # fmt: skip
    assert main(args) == 0
    (other,) = list(Path("other").iterdir())
    assert main(["compare", str(base), str(other)]) == 2
    assert "different tasks" in capsys.readouterr().err
    assert main(["compare", str(base), str(base), "--strategy", "majorty"]) == 2
    assert "Did you mean: majority" in capsys.readouterr().err
    assert main(["compare", str(base), str(base), "--budget", "8"]) == 2
    assert main(["compare", str(base), "missing"]) == 2


def test_leaderboard_ranks_configurations(capsys: pytest.CaptureFixture[str]) -> None:
    _run("good")
    _run("bad", "--backend-args", "p_correct=0.05", "--model", "bad-model")
    capsys.readouterr()
    assert main(["leaderboard", "leaderboards/arith.csv", "--budget", "4"]) == 0
    out = capsys.readouterr().out
    lines = [
        x for x in out.splitlines() if x.startswith("|") and "rank" not in x and "---" not in x
    ]
    assert len(lines) == 4  # majority and coverage, for each model
    assert "bad-model" in lines[-1]
    assert main(["leaderboard", "nowhere.csv"]) == 2
