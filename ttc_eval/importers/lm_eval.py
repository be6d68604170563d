"""lm-evaluation-harness ``samples_<task>_<date>.jsonl`` (written with ``--log_samples``):
one row per document with ``doc_id``, ``doc``, ``target`` and ``resps`` (the raw responses of
its repeats). lm-eval records one metric per document, not per response, so every response
is graded by the task's grader. Document ids are kept: a dump of ``--tasks gsm8k`` pairs,
question by question, with a ttc-eval run of ``--task lm_eval:gsm8k``."""

from __future__ import annotations

from pathlib import Path

from ttc_eval.errors import DataError
from ttc_eval.importers._base import ImportedQuestion, ImportedSample, need, read_jsonl
from ttc_eval.registry import importer
from ttc_eval.tasks.lm_eval_tasks import gold_answer


@importer("lm-eval")
def read_lm_eval(path: Path) -> list[ImportedQuestion]:
    """lm-eval --log_samples output (doc_id, target, resps)."""
    out = []
    for line, row in read_jsonl(path):
        resps = need(row, "resps", path, line)
        # resps: one list per request of the document; generation tasks have one request
        # whose list holds its repeats.
        texts = [str(r) for group in resps for r in (group if isinstance(group, list) else [group])]
        if not texts:
            raise DataError(f"{path}:{line}: resps is empty")
        doc = row.get("doc") or {}
        labels = {k: doc[k] for k in ("level", "subject") if isinstance(doc, dict) and k in doc}
        out.append(
            ImportedQuestion(
                id=str(need(row, "doc_id", path, line)),
                # The final answer of a worked-solution target (GSM8K's "#### 18").
                gold=gold_answer(need(row, "target", path, line)),
                samples=tuple(ImportedSample(text=t) for t in texts),
                labels=labels,
            )
        )
    return out
