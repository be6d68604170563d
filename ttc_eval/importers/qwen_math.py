"""The Qwen2.5-Math evaluation output: one row per question with ``idx``, ``question``,
``gt``, ``code`` (sampled responses), ``pred`` (extracted answers), ``score`` (correctness
booleans) and optionally ``pred_score`` (per-sample reward scores such as ``[[3.54], [3.51]]``)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from ttc_eval.errors import DataError
from ttc_eval.importers._base import (
    ImportedQuestion,
    ImportedSample,
    need,
    read_jsonl,
    verdict_value,
)
from ttc_eval.registry import importer


def _reward(value: Any) -> float:
    # Reward scores come as [[x]] per sample (one score per step; the last one counts).
    while isinstance(value, list):
        if not value:
            raise ValueError("empty score")
        value = value[-1]
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError(f"not a finite number: {value!r}")
    return float(value)


@importer("qwen-math")
def read_qwen_math(path: Path) -> list[ImportedQuestion]:
    """Qwen2.5-Math evaluation output (idx, gt, code[], pred[], score[], pred_score[])."""
    out = []
    for line, row in read_jsonl(path):
        code = need(row, "code", path, line)
        n = len(code)
        preds = row.get("pred") or [None] * n
        verdicts = row.get("score") or [None] * n
        rewards = row.get("pred_score")
        if len(preds) != n or len(verdicts) != n or (rewards is not None and len(rewards) != n):
            raise DataError(f"{path}:{line}: code, pred, score and pred_score differ in length")
        try:
            scores = [_reward(r) for r in rewards] if rewards is not None else [None] * n
        except (TypeError, ValueError) as e:
            raise DataError(
                f"{path}:{line}: pred_score must hold finite numbers, e.g. [[3.5]] ({e})"
            ) from None
        samples = tuple(
            ImportedSample(
                text=str(t),
                score=s,
                answer=str(p) if p is not None else None,
                correct=verdict_value(v, f"{path}:{line}: sample {i}", "score"),
            )
            for i, (t, p, v, s) in enumerate(zip(code, preds, verdicts, scores, strict=True), 1)
        )
        labels: dict[str, Any] = {k: row[k] for k in ("level", "subject") if k in row}
        out.append(
            ImportedQuestion(
                id=str(need(row, "idx", path, line)),
                gold=str(need(row, "gt", path, line)),
                samples=samples,
                labels=labels,
            )
        )
    return out
