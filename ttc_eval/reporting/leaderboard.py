"""Leaderboard CSVs: one row per (run, strategy configuration, budget) over all questions."""

from __future__ import annotations

import csv
import fcntl
import io
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ttc_eval._rundir import write_atomic

COLUMNS = [
    "task",
    "task_version",
    "model",
    "backend",
    "strategy",
    "strategy_args",
    "verifier",
    "budget",
    "shape",
    "n_problems",
    "accuracy",
    "ci_low",
    "ci_high",
    "mean_generated_tokens",
    "run_id",
    "ttc_eval_version",
    "roles",
    "date",
]
"""``date`` is the run's creation time (ISO 8601, UTC; older rows hold the day only), so the
newest run of a configuration is the one with the largest ``date``. ``roles``: the models of
the configuration's roles other than the policy (JSON; empty when the policy plays every
role, and in rows written before roles), so that runs differing in their reviser or judge
are different leaderboard entries."""


def update_leaderboard(path: Path, rows: Sequence[Mapping[str, Any]], run_id: str) -> None:
    """Replace this run's rows in ``path`` (so a rerun does not duplicate them), keep the rest.

    Written to a temporary file and renamed, so an interruption never leaves half a CSV.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    # Read-modify-replace under a lock: two runs finishing at once must not drop each other's
    # rows (the atomic replace alone prevents torn files, not lost updates).
    with (path.parent / f".{path.name}.lock").open("a") as lock:
        fcntl.flock(lock.fileno(), fcntl.LOCK_EX)
        _replace_rows(path, rows, run_id)


def _replace_rows(path: Path, rows: Sequence[Mapping[str, Any]], run_id: str) -> None:
    kept: list[dict[str, str]] = []
    if path.exists():
        with path.open(newline="") as f:
            kept = [r for r in csv.DictReader(f) if r.get("run_id") != run_id]
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=COLUMNS, extrasaction="ignore")
    w.writeheader()
    w.writerows(kept)
    for r in rows:
        out = dict(r)
        out["strategy_args"] = json.dumps(out.get("strategy_args", {}), sort_keys=True)
        others = {k: v for k, v in (out.get("roles") or {}).items() if k != "policy"}
        out["roles"] = json.dumps(others, sort_keys=True) if others else ""
        for k in ("accuracy", "ci_low", "ci_high", "mean_generated_tokens"):
            out[k] = f"{float(out[k]):.4f}"
        w.writerow(out)
    # Atomic, and readable by others (a shared leaderboard is the point of the file).
    write_atomic(path, buf.getvalue())
