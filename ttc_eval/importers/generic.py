"""Generic JSONL: one row per question, ``{"id", "answer", "samples": [{"text", "score"?,
"correct"?}]}`` (``answer`` is the gold answer)."""

from __future__ import annotations

from pathlib import Path

from ttc_eval.errors import DataError
from ttc_eval.importers._base import (
    ImportedQuestion,
    ImportedSample,
    need,
    read_jsonl,
    score_value,
    verdict_value,
)
from ttc_eval.registry import importer


@importer("generic")
def read_generic(path: Path) -> list[ImportedQuestion]:
    """{"id", "answer", "samples": [{"text", "score"?, "correct"?}]} per line."""
    out = []
    for line, row in read_jsonl(path):
        samples = need(row, "samples", path, line)
        if not isinstance(samples, list):
            raise DataError(f"{path}:{line}: samples must be a list")
        items = []
        for i, s in enumerate(samples, 1):
            if not isinstance(s, dict) or "text" not in s:
                raise DataError(f"{path}:{line}: each sample needs a 'text'")
            where = f"{path}:{line}: sample {i}"
            items.append(
                ImportedSample(
                    text=str(s["text"]),
                    score=score_value(s.get("score"), where),
                    correct=verdict_value(s.get("correct"), where),
                )
            )
        out.append(
            ImportedQuestion(
                id=str(need(row, "id", path, line)),
                gold=str(need(row, "answer", path, line)),
                samples=tuple(items),
                labels={k: row[k] for k in ("level", "subject") if k in row},
            )
        )
    return out
