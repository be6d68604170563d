"""Loader ``hf_dataset``: a hub dataset by id, or a local JSON/JSONL file of the same shape."""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ttc_eval.errors import DataError
from ttc_eval.registry import loader
from ttc_eval.types import Problem

_SHAPE = "expected JSON lines (one object per line) or a JSON array of objects"


@contextmanager
def _silenced(name: str) -> Iterator[None]:
    """Mute a library logger for a moment (its errors are reported as DataError instead)."""
    log = logging.getLogger(name)
    level = log.level
    log.setLevel(logging.CRITICAL + 1)
    try:
        yield
    finally:
        log.setLevel(level)


def _is_array(path: Path) -> bool:
    """Whether the file holds one JSON array (else: JSON lines)."""
    with path.open("rb") as f:
        head = f.read(4096).lstrip(b"\xef\xbb\xbf \t\r\n")
    return head.startswith(b"[")


def _where(path: Path, row: int) -> str:
    """``file:line`` of the row-th record of a JSONL file (blank lines skipped), or
    ``file (record n)`` for a JSON array."""
    if not _is_array(path):
        seen = -1
        with path.open(encoding="utf-8", errors="replace") as f:
            for lineno, line in enumerate(f, 1):
                if line.strip():
                    seen += 1
                    if seen == row:
                        return f"{path}:{lineno}"
    return f"{path} (record {row + 1})"


def _reason(error: BaseException) -> str:
    """The innermost cause of a library error that says something."""
    found = error
    seen: set[int] = set()
    cur: BaseException | None = error
    while cur is not None and id(cur) not in seen:
        seen.add(id(cur))
        if str(cur).strip():
            found = cur
        cur = cur.__cause__ or cur.__context__
    text = str(found).strip().splitlines()[0] if str(found).strip() else ""
    return f"{type(found).__name__}: {text}" if text else type(found).__name__


def _diagnose(path: Path, error: BaseException) -> str:
    """What is wrong with a local data file that the datasets library could not read."""
    data = path.read_bytes()
    if not data.strip():
        return f"{path}: the file is empty; {_SHAPE}"
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        return (
            f"{path}: not a UTF-8 text file (undecodable byte at offset {e.start}; binary or "
            f"compressed?); {_SHAPE}"
        )
    if text.lstrip().startswith("["):
        try:
            whole = json.loads(text)
        except json.JSONDecodeError as e:
            return f"{path}:{e.lineno}: not valid JSON ({e.msg})"
        if isinstance(whole, list):
            for i, rec in enumerate(whole):
                if not isinstance(rec, dict):
                    return f"{path} (record {i + 1}): each record must be a JSON object"
    else:  # JSON lines
        for lineno, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError as e:
                return f"{path}:{lineno}: not valid JSON ({e.msg})"
            if not isinstance(rec, dict):
                return f"{path}:{lineno}: each line must be a JSON object"
    return f"{path}: could not be read as JSON/JSONL ({_reason(error)})"


def _load_rows(
    args: Mapping[str, Any], data_files: str | None
) -> tuple[list[dict[str, Any]], Path | None]:
    import datasets

    datasets.disable_progress_bars()
    if data_files:
        path = Path(data_files)
        if path.is_dir():
            raise DataError(f"--data-files {data_files}: is a folder; pass a JSON/JSONL file")
        if not path.is_file():
            raise DataError(f"--data-files {data_files}: no such file")
        try:
            with _silenced("datasets.packaged_modules.json.json"):
                ds = datasets.load_dataset("json", data_files=str(path), split="train")
        except Exception as e:
            raise DataError(_diagnose(path, e)) from None
        return [dict(r) for r in ds], path
    if "path" not in args:
        raise DataError("loader hf_dataset: loader_args lacks 'path' (the hub dataset id)")
    hub_id = args["path"]
    try:
        ds = datasets.load_dataset(hub_id, args.get("name"), split=args.get("split", "test"))
    except Exception as e:
        raise DataError(
            f"could not load the hub dataset {hub_id!r} ({type(e).__name__}: {e}). "
            "Offline? Pass --data-files PATH with a local JSON/JSONL file of the same shape."
        ) from None
    return [dict(r) for r in ds], None


def _label(value: Any) -> Any:
    # MATH's local copies say "Level 3" where the hub has 3.
    if isinstance(value, str):
        m = re.fullmatch(r"Level (\d+)", value.strip())
        if m:
            return int(m.group(1))
    return value


def _check_field(row: Mapping[str, Any], name: str, role: str) -> str | None:
    """What is wrong with ``row[name]`` (None if it is usable text or a number)."""
    value = row.get(name)
    # A JSON file's rows share one schema: a key absent from a row reads as None there.
    present = sorted(k for k, v in row.items() if v is not None)
    if value is None:
        return f"field {name!r} ({role}) is missing; fields with values: {present}"
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        return f"field {name!r} ({role}) must be text or a number, not {type(value).__name__}"
    if isinstance(value, str) and not value.strip():
        return f"field {name!r} ({role}) is empty"
    return None


@loader("hf_dataset")
def load_hf_dataset(
    args: dict[str, Any], data_files: str | None = None, limit: int | None = None
) -> list[Problem]:
    """Fields come from ``loader_args``: ``question_field``, ``answer_field``, optional
    ``id_field`` (default: the row number), ``answer_after`` (keep what follows this marker,
    e.g. GSM8K's ``####``) and ``labels`` (label name -> field)."""
    missing = [k for k in ("question_field", "answer_field") if k not in args]
    if missing:
        raise DataError(f"loader hf_dataset: loader_args lacks {missing} in the task spec")
    rows, path = _load_rows(args, data_files)
    qf, af, idf = args["question_field"], args["answer_field"], args.get("id_field")
    after = args.get("answer_after")
    labels: Mapping[str, str] = args.get("labels", {})
    roles = [(qf, "question text"), (af, "gold answer")] + ([(idf, "problem id")] if idf else [])
    out = []
    for i, row in enumerate(rows):
        for f, role in roles:
            problem = _check_field(row, f, role)
            if problem:
                where = _where(path, i) if path else f"{args['path']} row {i}"
                raise DataError(f"{where}: {problem}")
        answer = str(row[af])
        if after:
            if after not in answer:
                where = _where(path, i) if path else f"{args['path']} row {i}"
                raise DataError(f"{where}: field {af!r} has no {after!r} marker before the answer")
            answer = answer.rsplit(after, 1)[1].strip().replace(",", "")
        out.append(
            Problem(
                id=str(row[idf]) if idf else str(i),
                question=str(row[qf]),
                answer=answer,
                labels={k: _label(row.get(v)) for k, v in labels.items()},
            )
        )
    return out
