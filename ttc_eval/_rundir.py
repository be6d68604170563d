"""Run-directory state: atomic writes, the one-writer lock, config.json, and run identity.

A run directory is the only copy of what a run computed, so nothing here may lose it: files
are replaced atomically (write a temporary file, then rename), a second writer is refused
rather than interleaved, and a directory whose settings or code versions no longer match is
never silently resumed: it is refused, or moved aside whole with ``--force-new``.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import hashlib
import json
import os
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import asdict
from pathlib import Path
from types import TracebackType
from typing import IO, Any

from ttc_eval.errors import UsageError

IDENTITY_VERSION = 1
"""Version of the identity record itself (what it covers)."""


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_atomic(path: Path, text: str) -> None:
    """Replace ``path`` with ``text`` in one rename, readable by others like any new file
    (0644 under the usual umask; ``mkstemp`` alone would make it 0600)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_json(path: Path, data: Any) -> None:
    write_atomic(path, json.dumps(data, indent=2) + "\n")


class RunLock:
    """An exclusive ``flock`` on ``RUN_DIR/.lock`` for the life of one invocation.

    The kernel drops it when the process dies (even by ``kill -9``), so a crashed run never
    leaves a stale lock behind; a second process that finds it held is refused at once.
    """

    def __init__(self, run_dir: Path) -> None:
        self.path = run_dir / ".lock"
        self._file: IO[str] | None = None

    def acquire(self) -> None:
        f = self.path.open("a+")
        try:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            f.seek(0)
            holder = f.read().strip() or "another process"
            f.close()
            raise UsageError(
                f"{self.path.parent} is being written by another ttc-eval run ({holder}). "
                "Wait for it to finish (rerunning then resumes), or write elsewhere with "
                "--run-id NAME or --output-dir DIR"
            ) from None
        try:
            same = os.fstat(f.fileno()).st_ino == os.stat(self.path).st_ino
        except FileNotFoundError:
            same = False
        if not same:
            # Another run moved this directory aside (--force-new) while we waited: the lock
            # we hold is on the old directory's file, not on the one at this path.
            f.close()
            raise UsageError(
                f"{self.path.parent} was moved aside by another ttc-eval run while this one "
                "started; rerun the command"
            )
        f.seek(0)
        f.truncate()
        now = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
        f.write(f"pid {os.getpid()}, started {now}\n")
        f.flush()
        self._file = f

    def release(self) -> None:
        if self._file is not None:
            self._file.close()  # closing drops the flock
            self._file = None

    def __enter__(self) -> RunLock:
        self.acquire()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()


def read_record(run_dir: Path) -> dict[str, Any]:
    """config.json of a run directory, or a clear error saying how to recover."""
    path = run_dir / "config.json"
    if not path.is_file():
        raise UsageError(f"{run_dir} is not a run directory (no config.json)")
    fix = (
        "Rerun the same command with --force-new to move this run directory aside (its traces "
        "are kept there) and start afresh, or restore the file"
    )
    try:
        record = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        what = "empty" if path.stat().st_size == 0 else f"not valid JSON ({e})"
        raise UsageError(f"{path} is {what}. {fix}") from None
    if not isinstance(record, dict) or not isinstance(record.get("config"), dict):
        raise UsageError(f"{path} holds no run settings (no 'config' object). {fix}")
    return record


def move_aside(run_dir: Path) -> Path:
    """Rename a run directory out of the way (nothing is deleted); returns its new path."""
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S")
    target = run_dir.with_name(f"{run_dir.name}.old-{stamp}")
    n = 1
    while target.exists():
        n += 1
        target = run_dir.with_name(f"{run_dir.name}.old-{stamp}-{n}")
    run_dir.rename(target)
    return target


def spec_digest(spec: Any) -> str:
    """Content hash of a task spec: every field that can change a number (not its file path,
    so a moved checkout keeps its runs)."""
    fields = {k: v for k, v in asdict(spec).items() if k != "source"}
    blob = json.dumps(fields, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def text_digest(text: str) -> str:
    """A short content hash of a text (a rendered prompt template, a revision template)."""
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def questions_digest(problems: Sequence[Any]) -> str:
    """Hash of the questions themselves (ids, text, gold answers): a changed loader seed or an
    edited data file changes it even when every setting is the same."""
    h = hashlib.sha256()
    for p in problems:
        h.update(json.dumps([p.id, p.question, p.answer], ensure_ascii=False).encode())
        h.update(b"\n")
    return h.hexdigest()[:16]


def _flat(d: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, Mapping) and v:
            out.update(_flat(v, key + "."))
        else:
            out[key] = v
    return out


def identity_changes(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    """Human-readable differences between two identity records, one line each."""
    a, b = _flat(old), _flat(new)
    lines = []
    for k in sorted(set(a) | set(b)):
        if a.get(k, "<unset>") != b.get(k, "<unset>"):
            before = json.dumps(a[k], default=str) if k in a else "unset"
            after = json.dumps(b[k], default=str) if k in b else "unset"
            lines.append(f"{k}: {_short(before)} -> {_short(after)}")
    return lines


def _short(s: str, n: int = 80) -> str:
    return s if len(s) <= n else s[: n - 3] + "..."
