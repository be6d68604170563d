"""Two shards side by side on one machine against one unsharded run: wall time of the whole
job (every question, every sample), hf backend, generation cache off.

Three ways to run the same job (arith questions x samples, majority):

- ``one run``: ``ttc-eval run`` alone, torch's default threads (one per core);
- ``2 shards, shared cores``: ``--shard 0/2`` and ``--shard 1/2`` started together, each
  taking its share of the cores (the default since issue 19);
- ``2 shards, all cores each``: the same with ``--backend-args threads=all``, as before:
  each shard's OpenMP threads take every core, so the two oversubscribe them.

Rounds alternate the three; medians are reported. A shard job's time is from starting both
to the end of the later one (the merge is not included: it reads and writes files only).

    python benchmarks/bench_shards.py [--questions 16] [--samples 8] [--repeats 2]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def _command(a: argparse.Namespace, out: Path, extra: list[str]) -> list[str]:
    return [
        sys.executable, "-m", "ttc_eval", "run", "--task", "arith", "--limit", str(a.questions),
        "--strategy", "majority", "--verifier", "none", "--budgets", str(a.samples),
        "--no-cache", "--quiet", "--output-dir", str(out), *extra,
    ]  # fmt: skip


def _wall(commands: list[list[str]]) -> float:
    """Start every command at once; seconds until the last one ends."""
    t0 = time.perf_counter()
    procs = [
        subprocess.Popen(c, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE) for c in commands
    ]
    for p in procs:
        _, err = p.communicate()
        if p.returncode != 0:
            raise RuntimeError(f"{p.args!r} failed:\n{err.decode()[-2000:]}")
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--questions", type=int, default=16)
    ap.add_argument("--samples", type=int, default=8)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--json", default="benchmarks/results/shards.json")
    a = ap.parse_args()
    sides: dict[str, list[list[str]]] = {}
    walls: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(a.repeats):
            base = Path(tmp) / f"r{r}"
            sides = {
                "one run": [_command(a, base / "one", [])],
                "2 shards, shared cores": [
                    _command(a, base / "shared", ["--shard", f"{i}/2"]) for i in range(2)
                ],
                "2 shards, all cores each": [
                    _command(
                        a, base / "all", ["--shard", f"{i}/2", "--backend-args", "threads=all"]
                    )
                    for i in range(2)
                ],
            }
            for name, commands in sides.items():
                wall = _wall(commands)
                walls.setdefault(name, []).append(wall)
                print(f"round {r}: {name}: {wall:.1f} s", flush=True)
    med = {k: statistics.median(v) for k, v in walls.items()}
    one = med["one run"]
    print(f"\n{a.questions} arith questions x {a.samples} samples, {os.cpu_count()} CPUs\n")
    print("| how | wall time (median) | vs one run | rounds |")
    print("| --- | --- | --- | --- |")
    for k, v in med.items():
        rounds = " / ".join(f"{x:.1f}" for x in walls[k])
        print(f"| {k} | {v:.1f} s | {v / one:.2f}x | {rounds} |")
    Path(a.json).parent.mkdir(parents=True, exist_ok=True)
    Path(a.json).write_text(
        json.dumps({"questions": a.questions, "samples": a.samples, "walls": walls}, indent=2)
        + "\n"
    )


if __name__ == "__main__":
    main()
