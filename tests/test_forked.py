"""Work shared among forked processes gives what the same work gives in one process."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from ttc_eval import _forked
from ttc_eval.analysis import stats
from ttc_eval.cli import main

FORK_MAP_SCRIPT = """
import os, json
from ttc_eval import _forked
_forked.usable_cpus = lambda: 2
assert _forked.may_fork(), "a fresh process may fork"
def pid_and(x):
    return os.getpid(), x * x
seen = []
out = _forked.fork_map([(pid_and, (i,)) for i in range(6)], lambda: seen.append(os.getpid()))
# Bootstrap intervals shared among the workers, however few: each as computed alone, and
# computed in the workers (each chunk's process id noted).
import sys
from ttc_eval.analysis import stats
stats._FORK_VALUES = 0
chunk = stats._cis
def traced(*args):
    with open(sys.argv[1], "a") as f:
        f.write(f"{os.getpid()}\\n")
    return chunk(*args)
stats._cis = traced
samples = [[float(i % k == 0) for i in range(n)] for k, n in ((2, 5), (3, 40), (5, 17), (1, 9))]
shared = stats.bootstrap_cis(samples, seed=7)
alone = [stats.bootstrap_ci(x, seed=7) for x in samples]
print(json.dumps({"main": os.getpid(), "out": out, "seen": seen, "cis": [shared, alone]}))
"""


def test_fork_map_runs_jobs_in_workers_and_meanwhile_here(tmp_path: Path) -> None:
    """In a process of its own (a pytest-xdist worker runs threads, so it never forks)."""
    pids = tmp_path / "chunk-pids"
    done = subprocess.run(
        [sys.executable, "-c", FORK_MAP_SCRIPT, str(pids)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    got = json.loads(done.stdout)
    assert [sq for _, sq in got["out"]] == [i * i for i in range(6)]
    assert got["seen"] == [got["main"]]  # meanwhile ran in the main process
    assert got["main"] not in {pid for pid, _ in got["out"]}  # the jobs in the workers
    shared, alone = got["cis"]
    assert shared == alone and len(shared) == 4 and shared[0][0] < shared[0][1]
    chunks = pids.read_text().split()
    assert len(chunks) == 2 and str(got["main"]) not in chunks  # two chunks, both in workers


def test_bootstrap_cis_in_chunks_equal_one_by_one(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(3)
    samples = [list(rng.integers(0, 2, size=n).astype(float)) for n in (5, 40, 1, 0, 17, 40)]
    samples[2] = [1.0, 1.0, 1.0]  # all equal: a zero-width interval
    alone = [stats.bootstrap_ci(s, seed=7) for s in samples[:3] + samples[4:]]
    monkeypatch.setattr(stats, "_FORK_VALUES", 0)  # share them out, however few
    monkeypatch.setattr(_forked, "usable_cpus", lambda: 2)
    shared = stats.bootstrap_cis(samples[:3] + samples[4:], seed=7)
    assert shared == alone


def test_report_exits_at_once_with_its_files_written(tmp_path: Path) -> None:
    """``python -m ttc_eval report`` ends the process without tearing down its objects:
    exit code 0, its output printed in full, every file written."""
    args = ["run", "--backend", "fake", "--task", "arith", "--strategy", "majority",
            "--budgets", "1,2", "--limit", "3", "--quiet", "--output-dir", "r"]  # fmt: skip
    assert main(args) == 0
    (run_dir,) = list(Path("r").iterdir())
    (run_dir / "results.json").unlink()
    (run_dir / "report" / "index.html").unlink()
    done = subprocess.run(
        [sys.executable, "-m", "ttc_eval", "report", str(run_dir)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    # The last lines, whole: the tables' pointer (stdout) and what was written (stderr).
    assert done.stdout.rstrip().endswith(f"{run_dir / 'report' / 'tables.md'})")
    assert done.stderr.rstrip().endswith(f"{run_dir / 'report'}/")
    assert (run_dir / "results.json").is_file() and (run_dir / "report" / "index.html").is_file()
    bad = subprocess.run(
        [sys.executable, "-m", "ttc_eval", "report", str(tmp_path / "nothing")],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert bad.returncode == 2 and "ttc-eval: error" in bad.stderr
