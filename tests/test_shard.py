"""--shard i/n and ttc-eval merge: the merged run equals the unsharded run."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from conftest import without_seconds

from ttc_eval.cli import main

BASE = [
    "run", "--backend", "fake", "--task", "arith", "--quiet", "--limit", "11",
    "--strategy", "majority,best_of_n,revisions", "--budgets", "1,2,4",
]  # fmt: skip


def _results(run_dir: Path) -> dict[str, Any]:
    r: dict[str, Any] = json.loads((run_dir / "results.json").read_text())
    return r


def test_merged_shards_equal_the_unsharded_run() -> None:
    assert main([*BASE, "--output-dir", "whole"]) == 0
    (whole,) = list(Path("whole").iterdir())
    for i in range(3):
        assert main([*BASE, "--output-dir", "shards", "--shard", f"{i}/3"]) == 0
    shard_dirs = sorted(Path("shards").iterdir())
    assert len(shard_dirs) == 3
    sizes = [len((d / "traces.jsonl").read_text().splitlines()) for d in shard_dirs]
    assert sum(sizes) == len((whole / "traces.jsonl").read_text().splitlines())
    assert main(["merge", *map(str, shard_dirs), "--output-dir", "merged"]) == 0
    (merged,) = list(Path("merged").iterdir())
    assert merged.name == whole.name  # the unsharded run's id
    a, b = _results(whole), _results(merged)
    for key in ("rows", "compute", "difficulty", "compute_optimal", "n_problems"):
        assert without_seconds(a[key]) == without_seconds(b[key]), key
    traces = [json.loads(x) for x in (merged / "traces.jsonl").read_text().splitlines()]
    keys = [(t["problem_id"], t["expansion"]) for t in traces]
    assert len(keys) == len(set(keys))


def test_bad_shards_and_merges_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([*BASE, "--shard", "3/3"]) == 2
    assert "0 <= i < n" in capsys.readouterr().err
    assert main([*BASE, "--shard", "a/b"]) == 2
    assert "i/n" in capsys.readouterr().err
    assert main([*BASE, "--output-dir", "s", "--shard", "0/2"]) == 0
    (only,) = list(Path("s").iterdir())
    assert main(["merge", str(only), "--output-dir", "m"]) == 2
    assert "exactly once" in capsys.readouterr().err
    assert main([*BASE, "--output-dir", "u"]) == 0
    (unsharded,) = list(Path("u").iterdir())
    assert main(["merge", str(only), str(unsharded), "--output-dir", "m"]) == 2
    assert "not sharded" in capsys.readouterr().err
