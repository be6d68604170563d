"""--split calibration|test: a seeded question split, decided per question from a hash of
(split seed, task, problem id), before --limit and --shard apply (ttc_eval.tasks._split)."""

from __future__ import annotations

import hashlib
import json
import math
import statistics
from pathlib import Path
from typing import Any

import pytest

from ttc_eval.cli import main
from ttc_eval.config import RunConfig
from ttc_eval.pipeline import plan_run
from ttc_eval.tasks._split import CALIBRATION, SPLITS, TEST, in_split, split_draw, split_of

# Recorded by ttc-eval before --split existed (same command, same ids): runs without --split
# keep them.
DEFAULT_ID = "arith-smollm2-135m-1a5a54379e"  # RunConfig()
FAKE_ID = "arith-smollm2-135m-073204fcfb"  # backend="fake", budgets=(1, 2)
CLI_ID = "arith-smollm2-135m-a270b3e8d0"  # the run of BASE (resolved against its task)

# The calibration split of arith at split seed 0 and fraction 0.5: pinned, because a change of
# the hash would move questions between the splits of recorded runs.
ARITH_CALIBRATION_SEED0 = [
    "arith-L2-0000", "arith-L3-0000", "arith-L1-0001", "arith-L2-0001", "arith-L3-0001",
    "arith-L4-0001", "arith-L5-0001", "arith-L2-0002", "arith-L3-0002", "arith-L5-0002",
    "arith-L1-0003", "arith-L3-0003", "arith-L1-0004", "arith-L3-0004", "arith-L4-0004",
    "arith-L2-0005", "arith-L3-0005", "arith-L4-0005",
]  # fmt: skip

BASE = ["run", "--backend", "fake", "--task", "arith", "--strategy", "majority",
        "--budgets", "1,2", "--limit", "6", "--quiet", "--leaderboard-dir", "lb"]  # fmt: skip
WIDE = ["run", "--backend", "fake", "--task", "arith_wide", "--strategy", "majority",
        "--budgets", "1", "--quiet", "--leaderboard-dir", "lb"]  # fmt: skip


def _ids(task: str = "arith", **settings: Any) -> list[str]:
    """The question ids a run would ask, in order (its shard's, when sharded)."""
    plan = plan_run(RunConfig(backend="fake", task=task, **settings))
    return [p.id for p in plan.problems]


def _exit_code(args: list[str]) -> int:
    try:
        return main(args)
    except SystemExit as e:  # argparse usage errors
        return int(e.code or 0)


def _run(args: list[str], out: str) -> Path:
    assert main([*args, "--output-dir", out]) == 0
    (run_dir,) = list(Path(out).iterdir())
    return run_dir


def _asked(run_dir: Path) -> list[str]:
    """The question ids of a run's traces, in the order they were stored."""
    rows = [json.loads(x) for x in (run_dir / "traces.jsonl").read_text().splitlines()]
    seen: dict[str, None] = {}
    for r in rows:
        seen.setdefault(r["problem_id"], None)
    return list(seen)


def _json(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.read_text())
    return data


# -- The split itself -------------------------------------------------------------------------


def test_the_hash_is_the_documented_one_and_pinned() -> None:
    for pid, task, seed in [("arith-L1-0000", "arith", 0), ("x", "lm_eval:gsm8k", 12345)]:
        digest = hashlib.sha256(f"{seed}|{task}|{pid}".encode()).digest()
        assert split_draw(pid, task, seed) == int.from_bytes(digest[:8], "little") / 2**64
    assert split_draw("arith-L1-0000", "arith", 0) == 0.8461898174486026
    assert _ids(split="calibration", split_seed=0) == ARITH_CALIBRATION_SEED0
    # The run's helper: the split of any question under the run's settings.
    config = RunConfig(task="arith", split="test")
    assert [p for p in _ids() if config.question_split(p) == CALIBRATION] == (
        ARITH_CALIBRATION_SEED0
    )


def test_calibration_and_test_are_disjoint_and_cover_every_question() -> None:
    for task in ("arith", "arith_wide"):
        every = _ids(task)
        calibration = _ids(task, split="calibration")
        test = _ids(task, split="test")
        assert calibration and test
        assert not set(calibration) & set(test)
        assert sorted(calibration + test) == sorted(every)
        # Each keeps the task's order.
        assert calibration == [p for p in every if p in set(calibration)]
        assert test == [p for p in every if p in set(test)]


def test_the_calibration_share_is_about_the_fraction() -> None:
    every = _ids("arith_wide")
    assert len(every) == 60
    for fraction in (0.5, 0.25, 0.8):
        n = len(_ids("arith_wide", split="calibration", split_fraction=fraction))
        # Within 3 binomial standard deviations (seed 0 is deterministic: no flakiness).
        assert abs(n - 60 * fraction) <= 3 * math.sqrt(60 * fraction * (1 - fraction)), fraction
    # Over many seeds the share is the fraction: the hash is not biased.
    shares = [
        sum(split_of(p, "arith_wide", seed, 0.3) == CALIBRATION for p in every) / 60
        for seed in range(300)
    ]
    assert statistics.mean(shares) == pytest.approx(0.3, abs=0.01)
    # A larger fraction only moves test questions into calibration.
    small = set(_ids("arith_wide", split="calibration", split_fraction=0.3))
    assert small <= set(_ids("arith_wide", split="calibration", split_fraction=0.6))


def test_the_split_does_not_depend_on_limit_shard_or_order() -> None:
    test = _ids("arith_wide", split="test")
    for k in (1, 5, 17, len(test), 100):
        assert _ids("arith_wide", split="test", limit=k) == test[:k]
    shards = [_ids("arith_wide", split="test", shard=f"{i}/3") for i in range(3)]
    assert sorted(p for shard in shards for p in shard) == sorted(test)
    assert shards[1] == test[1::3]  # shards apply after the split
    # Per question: the same split whatever order or company the questions come in.
    plan = plan_run(RunConfig(backend="fake", task="arith_wide"))
    problems = list(plan.problems)
    picked = in_split(problems, TEST, "arith_wide", 0, 0.5)
    assert [p.id for p in picked] == test
    assert in_split(problems[::-1], TEST, "arith_wide", 0, 0.5) == picked[::-1]
    assert in_split(problems[7:9], TEST, "arith_wide", 0, 0.5) == [
        p for p in picked if p in problems[7:9]
    ]


def test_the_split_seed_chooses_the_split() -> None:
    a = _ids("arith_wide", split="calibration", split_seed=3)
    assert a == _ids("arith_wide", split="calibration", split_seed=3)
    assert a != _ids("arith_wide", split="calibration", split_seed=4)
    # The split seed defaults to the run's seed.
    assert _ids("arith_wide", split="calibration", seed=3) == a
    assert _ids("arith_wide", split="calibration", seed=3, split_seed=0) == _ids(
        "arith_wide", split="calibration"
    )
    # ... and the task is part of the hash: the same ids of two tasks split apart.
    same = [split_of(f"q{i}", "a", 0, 0.5) == split_of(f"q{i}", "b", 0, 0.5) for i in range(40)]
    assert not all(same)


# -- Run ids ----------------------------------------------------------------------------------


def test_run_ids_without_split_are_the_old_ones() -> None:
    assert RunConfig().default_run_id() == DEFAULT_ID
    assert RunConfig(backend="fake", budgets=(1, 2)).default_run_id() == FAKE_ID
    # Fraction and seed of the split choose nothing without --split.
    assert RunConfig(split_fraction=0.3, split_seed=9).default_run_id() == DEFAULT_ID
    ids = {RunConfig(split=s).default_run_id() for s in SPLITS}
    assert len(ids) == 2 and DEFAULT_ID not in ids
    calibration = RunConfig(split="calibration")
    assert (
        calibration.default_run_id()
        == RunConfig(split="calibration", split_seed=0).default_run_id()
    )
    for other in (
        RunConfig(split="calibration", split_seed=1),
        RunConfig(split="calibration", split_fraction=0.3),
        RunConfig(split="calibration", seed=1),
    ):
        assert other.default_run_id() != calibration.default_run_id()


def test_runs_by_split_through_the_command_line() -> None:
    whole = _run(BASE, "whole")
    assert whole.name == CLI_ID
    assert _run([*BASE, "--split-fraction", "0.3", "--split-seed", "4"], "same").name == CLI_ID
    assert _json(whole / "results.json")["split"] is None
    calibration = _run([*BASE, "--split", "calibration"], "cal")
    test = _run([*BASE, "--split", "test"], "test")
    assert len({whole.name, calibration.name, test.name}) == 3
    assert _asked(calibration) == ARITH_CALIBRATION_SEED0[:6]
    assert len(_asked(test)) == 6 and not set(_asked(test)) & set(ARITH_CALIBRATION_SEED0)
    results = _json(test / "results.json")
    assert results["split"] == {"name": "test", "fraction": 0.5, "seed": 0}
    assert results["n_problems"] == 6
    config = _json(test / "config.json")["config"]
    assert (config["split"], config["split_fraction"], config["split_seed"]) == ("test", 0.5, None)
    # A rerun resumes (same identity): nothing left to generate, nothing refused.
    assert main([*BASE, "--split", "test", "--output-dir", "test"]) == 0


def test_limit_and_shards_through_the_command_line() -> None:
    full = _asked(_run([*WIDE, "--split", "test"], "full"))
    assert _asked(_run([*WIDE, "--split", "test", "--limit", "7"], "first")) == full[:7]
    for i in range(2):
        assert main([*WIDE, "--split", "test", "--shard", f"{i}/2", "--output-dir", "shards"]) == 0
    shard_dirs = sorted(Path("shards").iterdir())
    assert sorted(p for d in shard_dirs for p in _asked(d)) == sorted(full)
    assert main(["merge", *map(str, shard_dirs), "--output-dir", "merged"]) == 0
    (merged,) = list(Path("merged").iterdir())
    assert merged.name == next(Path("full").iterdir()).name  # the unsharded run's id
    assert _json(merged / "results.json")["split"] == {"name": "test", "fraction": 0.5, "seed": 0}


# -- Bad values -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--split", "tset"], "expected one of calibration, test, got 'tset'. Did you mean: test?"),
        (["--split", "all"], "expected one of calibration, test, got 'all'"),
        (["--split-fraction", "0"], "strictly between 0 and 1"),
        (["--split-fraction", "1"], "strictly between 0 and 1"),
        (["--split-fraction", "1.5"], "strictly between 0 and 1"),
        (["--split-fraction", "nan"], "strictly between 0 and 1"),
        (["--split-fraction", "half"], "strictly between 0 and 1"),
        (["--split-seed", "-1"], "an integer >= 0"),
    ],
)
def test_bad_flags_exit_2(
    flags: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _exit_code([*BASE, *flags]) == 2
    assert message in capsys.readouterr().err
    assert not Path("runs").exists()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("split: calibraton\n", "Did you mean: calibration? Choose from calibration, test"),
        ("split: 1\n", "split must be one of calibration, test"),
        ("split: test\nsplit_fraction: 1\n", "strictly between 0 and 1"),
        ("split: test\nsplit_fraction: true\n", "split_fraction must be a number"),
        ("split: test\nsplit_seed: 1.5\n", "split_seed must be an integer"),
        ("split: test\nsplit_seed: -2\n", "must be an integer >= 0"),
    ],
)
def test_bad_config_values_exit_2(
    text: str, message: str, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    conf = tmp_path / "c.yaml"
    conf.write_text(text)
    assert _exit_code([*BASE, "--config", str(conf)]) == 2
    assert message in capsys.readouterr().err
    assert not Path("runs").exists()


def test_an_empty_split_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    # No arith question draws below 0.01 at split seed 0.
    assert _exit_code([*BASE, "--split", "calibration", "--split-fraction", "0.01"]) == 2
    err = capsys.readouterr().err
    assert "calibration split of task arith is empty" in err and "--split-seed" in err
