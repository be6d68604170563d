"""The run directory's trace log: append-only JSONL, one row per (question, expansion)."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterable
from pathlib import Path

from ttc_eval.types import Trace


class TraceStore:
    """Loads ``traces.jsonl`` and appends finished questions to it, each row flushed to disk.

    A row cut short by an interruption is dropped on load (and the file trimmed back to the
    last complete row), so the rerun redoes exactly that question and nothing is duplicated.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.traces: dict[tuple[str, str], Trace] = {}
        if path.exists():
            self._load()

    def _load(self) -> None:
        good_bytes = 0
        with self.path.open("rb") as f:
            for raw in f:
                try:
                    row = json.loads(raw)
                    if not raw.endswith(b"\n"):
                        raise ValueError("unterminated row")
                except ValueError:
                    print(
                        f"warning: {self.path}: dropping an incomplete last row "
                        "(interrupted write); that question is redone",
                        file=sys.stderr,
                    )
                    break
                t = Trace.from_dict(row)
                self.traces.setdefault((t.problem_id, t.expansion), t)
                good_bytes += len(raw)
        if good_bytes != self.path.stat().st_size:
            with self.path.open("r+b") as f:
                f.truncate(good_bytes)

    def has(self, problem_id: str, expansion: str) -> bool:
        return (problem_id, expansion) in self.traces

    def add(self, traces: Iterable[Trace]) -> None:
        new = [t for t in traces if not self.has(t.problem_id, t.expansion)]
        if not new:
            return
        with self.path.open("a") as f:
            for t in new:
                f.write(json.dumps(t.to_dict()) + "\n")
                self.traces[(t.problem_id, t.expansion)] = t
            f.flush()
            os.fsync(f.fileno())

    def by_expansion(self, expansion: str) -> dict[str, Trace]:
        return {pid: t for (pid, key), t in self.traces.items() if key == expansion}
