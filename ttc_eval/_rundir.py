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
import subprocess
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict
from pathlib import Path
from types import TracebackType
from typing import IO, TYPE_CHECKING, Any

import ttc_eval
from ttc_eval.errors import UsageError

if TYPE_CHECKING:
    from ttc_eval.config import RunConfig

IDENTITY_VERSION = 1
"""Version of the identity record itself (what it covers)."""


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_atomic(path: Path, text: str) -> None:
    """Replace ``path`` with ``text`` in one rename, readable by others like any new file
    (0644 under the usual umask; ``mkstemp`` alone would make it 0600)."""
    _write_atomic(path, text, "w")


def write_atomic_bytes(path: Path, data: bytes) -> None:
    """:func:`write_atomic` of bytes, written as they are."""
    _write_atomic(path, data, "wb")


def _write_atomic(path: Path, data: str | bytes, mode: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, mode) as f:
            f.write(data)
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


# How to recover from a damaged config.json, as said by `ttc-eval run` (which has
# --force-new) and by every other command (which reads the run and has not).
_FIX_BY_RUN = (
    "Rerun the same command with --force-new to move this run directory aside (its traces "
    "are kept there) and start afresh, or restore the file"
)
_FIX_ELSEWHERE = (
    "Rerun the `ttc-eval run` command that wrote this run directory, adding --force-new, to "
    "move it aside (its traces are kept there) and start afresh; or restore the file, or "
    "delete the directory to discard the run"
)


def run_dirs(paths: Sequence[str | Path]) -> list[Path]:
    """``paths`` as run directories, each checked to hold a ``config.json`` (a usage error
    names the first that does not)."""
    out = [Path(p) for p in paths]
    for run_dir in out:
        if not (run_dir / "config.json").is_file():
            raise UsageError(f"{run_dir} is not a run directory (no config.json)")
    return out


def read_record(run_dir: Path, by_run: bool = False) -> dict[str, Any]:
    """config.json of a run directory, or a clear error saying how to recover (``by_run``:
    the reader is `ttc-eval run`, whose own command takes --force-new)."""
    path = run_dir / "config.json"
    if not path.is_file():
        raise UsageError(f"{run_dir} is not a run directory (no config.json)")
    fix = _FIX_BY_RUN
    if not by_run:
        fix = _FIX_ELSEWHERE
        if (run_dir / "log.jsonl").is_file():
            fix += f" ({run_dir / 'log.jsonl'} records the arguments of each run)"
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


# -- provenance: the run directory's record, lock and log ----------------------------------


def _git_commit() -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=Path(__file__).resolve().parent,
            capture_output=True,
            text=True,
            timeout=5,
        )
        return out.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def check_writable(folder: Path, what: str) -> None:
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / f".write-test-{os.getpid()}"
        probe.write_text("")
        probe.unlink()
    except OSError as e:
        raise UsageError(
            f"{what} {folder} is not writable ({e.strerror}); choose another"
        ) from None


def recorded_identity(record: Mapping[str, Any]) -> dict[str, Any] | None:
    """The identity a run directory recorded (None for runs from before identities)."""
    ident = record.get("identity")
    return dict(ident) if isinstance(ident, dict) else None


def _resume_problems(run_dir: Path, identity: Mapping[str, Any]) -> list[str]:
    """Why the stored run cannot be resumed under ``identity`` (empty: it can, or there is
    nothing stored). Raises UsageError when config.json cannot be read."""
    if not (run_dir / "config.json").exists():
        if (run_dir / "traces.jsonl").exists():
            # Traces whose settings are unknown: adopting them could mix another model's or
            # another seed's samples into this run.
            return ["traces.jsonl without config.json: its settings are unknown"]
        return []
    old = recorded_identity(read_record(run_dir, by_run=True))
    if old is None:
        return [
            "recorded before run identities (an older ttc-eval): its task spec, grader and "
            "backend versions are unknown"
        ]
    return identity_changes(old, identity)


def prepare_run_dir(
    config: RunConfig,
    identity: Mapping[str, Any],
    task_spec_file: str,
    force_new: bool,
    say: Callable[[str], None],
) -> tuple[Path, RunLock]:
    """The run directory, locked for this invocation: resumed when its identity matches,
    created when new; a mismatch is refused (or, with ``force_new``, moved aside whole)."""
    run_id = config.run_id or config.default_run_id()
    out = Path(config.output_dir)
    check_writable(out, "output directory")
    check_writable(Path(config.leaderboard_dir), "leaderboard directory")
    run_dir = out / run_id
    run_dir.mkdir(exist_ok=True)
    lock = RunLock(run_dir)
    lock.acquire()
    try:
        try:
            problems = _resume_problems(run_dir, identity)
        except UsageError as e:
            if not force_new:
                raise
            problems = [str(e).split(". ")[0]]
        if not problems and (run_dir / "config.json").exists():
            return run_dir, lock
        if problems:
            if not force_new:
                listed = "\n".join(f"  {c}" for c in problems[:20])
                raise UsageError(
                    f"{run_dir} holds a run with other settings or code versions, so its "
                    f"results cannot be resumed:\n{listed}\n"
                    "Pass --force-new to move it aside (nothing is deleted) and start afresh, "
                    "or --run-id NAME to keep both"
                )
            # Still holding the old directory's lock: no other writer can slip in between
            # the rename and the new directory's lock.
            moved = move_aside(run_dir)
            run_dir.mkdir(exist_ok=True)
            fresh = RunLock(run_dir)
            fresh.acquire()
            lock.release()
            lock = fresh
            say(f"moved the earlier run ({'; '.join(problems[:3])}) aside to {moved}")
        record = run_record(
            config,
            task_version=identity["task"]["version"],
            grader_version=identity["grader"]["version"],
            verifier_version=(identity["verifier"] or {}).get("version"),
            backend_version=identity["backend"]["version"],
            task_spec=task_spec_file,
            identity=identity,
            git_commit=_git_commit(),
        )
        write_json(run_dir / "config.json", record)
        return run_dir, lock
    except BaseException:
        lock.release()
        raise


def run_record(
    config: RunConfig,
    task_version: str,
    grader_version: str | None,
    verifier_version: str | None,
    backend_version: str | None,
    task_spec: str | None,
    identity: Mapping[str, Any] | None = None,
    git_commit: str | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """config.json of a run: its settings, identity, the versions that computed it and when
    (one schema for generated, imported and merged runs)."""
    record: dict[str, Any] = {"config": config.to_dict()}
    if identity is not None:
        record["identity"] = dict(identity)
    record.update(
        {
            "ttc_eval_version": ttc_eval.__version__,
            "git_commit": git_commit,
            "task_version": task_version,
            "grader_version": grader_version,
            "verifier_version": verifier_version,
            "backend_version": backend_version,
            "task_spec": task_spec,
            "created": now(),
            **extra,
        }
    )
    return record


def log_event(run_dir: Path, entry: Mapping[str, Any]) -> None:
    """One line of log.jsonl, flushed at once: a killed invocation still left its start."""
    path = run_dir / "log.jsonl"
    # A line torn by a kill must not swallow this one.
    torn = path.exists() and path.stat().st_size > 0 and not path.read_bytes().endswith(b"\n")
    with path.open("a") as f:
        f.write(("\n" if torn else "") + json.dumps(dict(entry)) + "\n")
        f.flush()
        os.fsync(f.fileno())


def now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
