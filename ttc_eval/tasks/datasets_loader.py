"""Loader ``hf_dataset``: a hub dataset by id, or a local JSON/JSONL file of the same shape."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ttc_eval.errors import DataError
from ttc_eval.registry import loader
from ttc_eval.types import Problem


def _line_of_row(path: Path, row: int) -> str:
    """``file:line`` of the row-th record of a JSONL file (blank lines skipped)."""
    seen = -1
    with path.open() as f:
        for lineno, line in enumerate(f, 1):
            if line.strip():
                seen += 1
                if seen == row:
                    return f"{path}:{lineno}"
    return f"{path} (record {row + 1})"


def _find_bad_json_line(path: Path) -> str | None:
    with path.open() as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError as e:
                return f"{path}:{lineno}: not valid JSON ({e.msg})"
            if not isinstance(rec, dict):
                return f"{path}:{lineno}: each line must be a JSON object"
    return None


def _load_rows(
    args: Mapping[str, Any], data_files: str | None
) -> tuple[list[dict[str, Any]], Path | None]:
    import datasets

    datasets.disable_progress_bars()
    if data_files:
        path = Path(data_files)
        if not path.is_file():
            raise DataError(f"--data-files {data_files}: no such file")
        try:
            ds = datasets.load_dataset("json", data_files=str(path), split="train")
        except Exception as e:
            bad = _find_bad_json_line(path) if path.suffix == ".jsonl" else None
            raise DataError(bad or f"{path}: could not be read as JSON/JSONL ({e})") from None
        return [dict(r) for r in ds], path
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


@loader("hf_dataset")
def load_hf_dataset(args: dict[str, Any], data_files: str | None = None) -> list[Problem]:
    """Fields come from ``loader_args``: ``question_field``, ``answer_field``, optional
    ``id_field`` (default: the row number), ``answer_after`` (keep what follows this marker,
    e.g. GSM8K's ``####``) and ``labels`` (label name -> field)."""
    rows, path = _load_rows(args, data_files)
    qf, af, idf = args["question_field"], args["answer_field"], args.get("id_field")
    after = args.get("answer_after")
    labels: Mapping[str, str] = args.get("labels", {})
    out = []
    for i, row in enumerate(rows):
        where = _line_of_row(path, i) if path else f"{args['path']} row {i}"
        for f in [qf, af] + ([idf] if idf else []):
            if not isinstance(row.get(f), str | int) or row.get(f) == "":
                raise DataError(f"{where}: field {f!r} is missing or empty (fields: {sorted(row)})")
        answer = str(row[af])
        if after:
            if after not in answer:
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
