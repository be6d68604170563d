"""Shared by importers: the imported rows, reading JSONL with file:line errors, and writing
a run directory that every analysis and report reads like a generated run."""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from ttc_eval._rundir import run_record, write_json
from ttc_eval.config import RunConfig, StrategySpec
from ttc_eval.errors import DataError, UsageError
from ttc_eval.pipeline import grade_traces, plan_strategies
from ttc_eval.results import build_results
from ttc_eval.store import TraceStore
from ttc_eval.tasks import Task, find_task_spec
from ttc_eval.thinking import parse_thinking
from ttc_eval.types import Candidate, Problem, Trace


@dataclass(frozen=True)
class ImportedSample:
    """One sampled response of a dump."""

    text: str
    """The response."""
    score: float | None = None
    """A reward-model score, when the dump has one."""
    answer: str | None = None
    """The dump's extracted answer, when it has one."""
    correct: bool | None = None
    """The dump's own verdict, when it has one."""


@dataclass(frozen=True)
class ImportedQuestion:
    """One question of a dump, with its samples in order."""

    id: str
    """Question id (the dump's, as a string)."""
    gold: str
    """Gold answer."""
    samples: tuple[ImportedSample, ...]
    """The sampled responses."""
    labels: dict[str, Any] = field(default_factory=dict)
    """Labels such as ``level``, when the dump carries them."""


class Importer(Protocol):
    """Reads another tool's dump into questions with their samples (``ttc-eval import``)."""

    def __call__(self, path: Path) -> list[ImportedQuestion]: ...


def read_jsonl(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number, row) for each non-empty line; a malformed line names file and line."""
    if not path.is_file():
        raise UsageError(f"{path}: no such file")
    with path.open() as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                raise DataError(f"{path}:{n}: not valid JSON ({e.msg})") from None
            if not isinstance(row, dict):
                raise DataError(f"{path}:{n}: expected a JSON object per line")
            yield n, row


def need(row: dict[str, Any], key: str, path: Path, line: int) -> Any:
    if key not in row:
        raise DataError(f"{path}:{line}: missing field {key!r} (has {sorted(row)})")
    return row[key]


def score_value(value: Any, where: str) -> float | None:
    """A sample's reward score: a finite number, or None (null) when the dump has none.
    ``where`` (``file:line: sample 2``) starts the error of anything else."""
    if value is None:
        return None
    # A string ("high", "0.9") or a bool is a mistake in the dump, not a score to guess at.
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise DataError(
            f"{where}: score must be a finite number (a reward-model score such as 0.87) or "
            f"null, got {value!r}"
        )
    return float(value)


def verdict_value(value: Any, where: str, name: str = "correct") -> bool | None:
    """A sample's own verdict (the dump's field ``name``): true or false (1 or 0), or None
    (null) when the dump has none."""
    if value is None:
        return None
    # bool("no") is True: a string verdict would be read as correct.
    if isinstance(value, bool) or (isinstance(value, int) and value in (0, 1)):
        return bool(value)
    raise DataError(
        f"{where}: {name} must be true or false (or null when the dump has no verdict), "
        f"got {value!r}"
    )


def write_run(
    questions: Sequence[ImportedQuestion],
    fmt: str,
    source: Path,
    task_name: str,
    regrade: bool,
    output_dir: Path,
) -> Path:
    """A run directory holding one sample pool per question, graded by the dump's own verdicts
    (or by the task's grader with ``regrade``, or where the dump has none)."""
    if not questions:
        raise DataError(f"{source}: no questions found")
    spec = find_task_spec(task_name)
    # A task spec that names thinking delimiters: answers are read after them here too.
    task = Task(spec, thinking=parse_thinking(spec.generation.get("thinking")))
    pool = min(len(q.samples) for q in questions)
    if pool < 1:
        empty = next(q.id for q in questions if not q.samples)
        raise DataError(f"{source}: question {empty} has no samples")
    budgets = tuple(2**k for k in range(pool.bit_length()) if 2**k <= pool)
    scored = all(s.score is not None for q in questions for s in q.samples)
    strategies = [StrategySpec("majority")] + ([StrategySpec("best_of_n")] if scored else [])
    digest = hashlib.sha256(source.read_bytes()).hexdigest()[:10]
    config = RunConfig(
        model=f"import:{fmt}:{source.stem}",
        backend=f"import-{fmt}",
        task=task_name,
        strategies=tuple(strategies),
        verifier="imported" if scored else None,
        budgets=budgets,
        temperature=0.7,
        top_p=1.0,
        max_tokens=1,  # unknown for dumps; recorded only because the config needs one
        run_id=f"{task_name.replace(':', '_')}-import-{fmt}-{source.stem}-{digest}"
        + ("-regraded" if regrade else ""),
        output_dir=str(output_dir),
        # Next to the runs folder (``runs`` -> ``leaderboards``), recorded absolute so that
        # `report` updates the same file from any folder.
        leaderboard_dir=str(output_dir.resolve().parent / "leaderboards"),
        cache=False,
    )
    run_dir = output_dir / str(config.run_id)
    if run_dir.exists():
        raise UsageError(f"{run_dir} already exists (this dump was imported); remove it first")
    run_dir.mkdir(parents=True)
    (key,) = [spec.key for spec in plan_strategies(config).expansions]
    traces = _traces(questions, key, task, regrade, scored, source)
    record = run_record(
        config,
        task_version=task.version,
        grader_version=None,
        verifier_version="imported" if scored else None,
        backend_version=None,
        task_spec=task.spec.source,
        imported={"format": fmt, "source": str(source), "regraded": regrade},
    )
    write_json(run_dir / "config.json", record)
    TraceStore(run_dir / "traces.jsonl").add(traces)
    build_results(run_dir)
    return run_dir


def _traces(
    questions: Sequence[ImportedQuestion],
    key: str,
    task: Task,
    regrade: bool,
    scored: bool,
    source: Path,
) -> list[Trace]:
    """One graded pool per question: the dump's verdicts where it has them (unless
    ``regrade``), the pipeline's grading step for the rest."""
    traces = []
    for q in questions:
        cands = []
        for si, s in enumerate(q.samples):
            verdict: dict[str, Any] = {}
            if not regrade and s.correct is not None:
                # The dump's own verdict stands; its answer (or ours) is the vote key.
                answer = s.answer if s.answer is not None else task.extract(s.text)
                verdict = {"answer": answer, "vote_key": answer, "correct": bool(s.correct)}
            cands.append(
                Candidate(
                    index=si,
                    text=s.text,
                    n_tokens=0,  # dumps do not record token counts
                    finish_reason="unknown",
                    step_scores=(float(s.score),) if s.score is not None else None,
                    **verdict,
                )
            )
        traces.append(
            Trace(
                problem_id=q.id,
                expansion=key,
                candidates=tuple(cands),
                prompt_tokens=0,
                generated_tokens=0,
                n_generations=len(cands),
                verifier="imported" if scored else None,
                labels=dict(q.labels),
                extra={"imported_from": str(source)},
            )
        )
    problems = {q.id: Problem(id=q.id, question="", answer=q.gold) for q in questions}
    return grade_traces(task, traces, problems)
