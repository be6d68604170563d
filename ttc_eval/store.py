"""The run directory's trace log: append-only JSONL, one row per (question, expansion)."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Iterable
from pathlib import Path

from ttc_eval.types import Trace


class TraceStore:
    """Loads ``traces.jsonl`` and appends finished questions to it, each row flushed to disk.

    A row that cannot be read (cut short by an interruption, garbage from a manual edit, valid
    JSON with the wrong fields) is skipped with a warning naming its line; every good row
    before and after it is kept, and its question has no trace, so a rerun redoes it. The bad
    line stays in the file (nothing is deleted behind the user's back); the first append after
    an unterminated last row starts a new line, so a torn row never swallows the next one.
    """

    def __init__(self, path: Path, warn: Callable[[str], None] | None = None) -> None:
        self.path = path
        self.traces: dict[tuple[str, str], Trace] = {}
        self.bad_lines: list[int] = []
        """Line numbers (1-based) of rows that could not be read."""
        self._warn = warn or (lambda m: print(m, file=sys.stderr))
        self._needs_newline = False
        if path.exists():
            self._load()

    def _load(self) -> None:
        with self.path.open("rb") as f:
            data = f.read()
        self._needs_newline = bool(data) and not data.endswith(b"\n")
        for lineno, raw in enumerate(data.split(b"\n"), 1):
            if not raw.strip():
                continue
            try:
                row = json.loads(raw)
                if not isinstance(row, dict):
                    raise ValueError("not a JSON object")
                t = Trace.from_dict(row)
            except (ValueError, KeyError, TypeError, AttributeError) as e:
                self.bad_lines.append(lineno)
                reason = e.args[0] if isinstance(e, KeyError) and e.args else e
                what = f"missing field {reason!r}" if isinstance(e, KeyError) else str(reason)
                self._warn(
                    f"warning: {self.path}:{lineno}: skipping an unreadable trace row "
                    f"({what[:120]}); the rows around it are kept and its question is redone "
                    "on the next run"
                )
                continue
            self.traces.setdefault((t.problem_id, t.expansion), t)

    def has(self, problem_id: str, expansion: str) -> bool:
        return (problem_id, expansion) in self.traces

    def add(self, traces: Iterable[Trace]) -> None:
        new = [t for t in traces if not self.has(t.problem_id, t.expansion)]
        if not new:
            return
        with self.path.open("a") as f:
            if self._needs_newline:
                f.write("\n")
                self._needs_newline = False
            for t in new:
                f.write(json.dumps(t.to_dict()) + "\n")
                self.traces[(t.problem_id, t.expansion)] = t
            f.flush()
            os.fsync(f.fileno())

    def by_expansion(self, expansion: str) -> dict[str, Trace]:
        return {pid: t for (pid, key), t in self.traces.items() if key == expansion}
