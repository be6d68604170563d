"""The run directory's trace log: append-only JSONL, one row per (question, expansion)."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Iterable
from pathlib import Path

from ttc_eval._heap import collector_paused
from ttc_eval._rundir import write_atomic_bytes
from ttc_eval.types import Trace

REJECTED_SUFFIX = ".rejected.jsonl"
"""``traces.jsonl``'s unreadable rows are moved to ``traces.rejected.jsonl`` beside it."""


class TraceStore:
    """Loads ``traces.jsonl`` and appends finished questions to it, each row flushed to disk.

    A row that cannot be read (cut short by an interruption, garbage from a manual edit, valid
    JSON with the wrong fields) is skipped; every good row before and after it is kept, and
    its question has no trace, so a run redoes it. A reader leaves the file as it is and warns
    of each such row. The writer (``repair``: a run, holding the run directory's lock) moves
    them out, so that they are reported once, not by every later command: appended as they
    were to ``traces.rejected.jsonl`` (nothing is deleted), then ``traces.jsonl`` is replaced
    in one rename by its good rows. The first append after an unterminated last row starts a
    new line, so a torn row never swallows the next one.
    """

    def __init__(
        self, path: Path, warn: Callable[[str], None] | None = None, repair: bool = False
    ) -> None:
        self.path = path
        self.rejected_path = path.with_name(path.name.removesuffix(".jsonl") + REJECTED_SUFFIX)
        self.traces: dict[tuple[str, str], Trace] = {}
        self.bad_lines: list[int] = []
        """Line numbers (1-based) of rows that could not be read (before any were moved)."""
        self._warn = warn or (lambda m: print(m, file=sys.stderr))
        self._needs_newline = False
        if path.exists():
            self._load(repair)

    def _parse(self, data: bytes, good: list[bytes], bad: list[tuple[int, bytes, str]]) -> None:
        """Each line of ``data`` into :attr:`traces` (its bytes into ``good``), or into
        ``bad`` with its line number and what is wrong with it."""
        for lineno, raw in enumerate(data.split(b"\n"), 1):
            if not raw.strip():
                continue
            try:
                row = json.loads(raw)
                if not isinstance(row, dict):
                    raise ValueError("not a JSON object")
                t = Trace.from_dict(row)
            except (ValueError, KeyError, TypeError, AttributeError) as e:
                reason = e.args[0] if isinstance(e, KeyError) and e.args else e
                what = f"missing field {reason!r}" if isinstance(e, KeyError) else str(reason)
                bad.append((lineno, raw, what[:120]))
                continue
            good.append(raw)
            self.traces.setdefault((t.problem_id, t.expansion), t)

    def _load(self, repair: bool) -> None:
        with self.path.open("rb") as f:
            data = f.read()
        self._needs_newline = bool(data) and not data.endswith(b"\n")
        good: list[bytes] = []
        bad: list[tuple[int, bytes, str]] = []
        with collector_paused():  # rows and traces hold no cycles
            self._parse(data, good, bad)
        self.bad_lines = [lineno for lineno, _, _ in bad]
        if bad and repair:
            self._set_aside(good, bad)
        else:
            for lineno, _, what in bad:
                self._warn(
                    f"warning: {self.path}:{lineno}: skipping an unreadable trace row ({what}); "
                    "the rows around it are kept. The next `ttc-eval run` of this run "
                    f"directory moves it to {self.rejected_path.name} and redoes its question"
                )

    def _set_aside(self, good: list[bytes], bad: list[tuple[int, bytes, str]]) -> None:
        """Append the unreadable rows to the rejected file, then replace the store by its good
        rows: interrupted in between, a row is in both files, never in neither."""
        with self.rejected_path.open("ab") as f:
            f.write(b"".join(raw + b"\n" for _, raw, _ in bad))
            f.flush()
            os.fsync(f.fileno())
        # Bytes, not text: a good row is kept exactly as it was written.
        write_atomic_bytes(self.path, b"".join(raw + b"\n" for raw in good))
        self._needs_newline = False
        where = self.rejected_path
        if len(bad) == 1:
            ((n, _, what),) = bad
            self._warn(
                f"warning: {self.path}: line {n} could not be read as a trace row ({what}); "
                f"moved it, as it was, to {where} and kept every other row. Its question (if "
                "this run covers it) is generated again now"
            )
            return
        numbers = ", ".join(str(n) for n, _, _ in bad[:20])
        numbers += f" (and {len(bad) - 20} more)" if len(bad) > 20 else ""
        shown = "; ".join(f"line {n}: {what}" for n, _, what in bad[:5])
        more = f"; and {len(bad) - 5} more" if len(bad) > 5 else ""
        self._warn(
            f"warning: {self.path}: lines {numbers} could not be read as trace rows ({shown}"
            f"{more}); moved them, as they were, to {where} and kept every other row. Their "
            "questions (those this run covers) are generated again now"
        )

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
