"""Revision training data from a run's own samples (Snell et al. 2024, section 6.1).

``ttc-eval learn revision-data RUN --output DIR``: from each question's sample pool, every
correct sample (up to ``per_question`` of them) becomes the target of one chain. The chain
holds k incorrect samples of the same question before it, with k drawn uniformly from 0 to
``max_incorrect`` (4, as the paper's revision model sees at most 4 earlier attempts), capped
by the incorrect samples there are. The k incorrect samples are those nearest the correct
one by character edit distance, so that the attempts are correlated with the answer the model
learns to write; the nearest is shown last, just before it is revised. The prompt is the
run's own revision prompt (:func:`~ttc_eval.strategies.revisions.revision_messages` with the
run's reviser template), so a model trained on it is asked at test time exactly what it
was trained on; with k = 0 it is the task's ordinary prompt.

The output is a ``datasets`` dataset saved to disk in the prompt-completion conversational
format TRL's ``SFTTrainer`` reads (``prompt``: messages, ``completion``: the assistant's
message), plus ``learn.json``: the source run, the settings, and every question it holds
(``task:problem id``), so that evaluating a trained reviser on them can be told apart.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ttc_eval.errors import UsageError
from ttc_eval.types import Candidate

REVISION_DATA_VERSION = "1"
"""Bumped whenever the same run could give other examples; recorded in learn.json."""


@dataclass(frozen=True)
class Chain:
    """One training example: incorrect attempts, then the correct one."""

    question: str
    """The question, ``task:problem id``."""
    attempts: tuple[int, ...]
    """Pool indices of the incorrect attempts shown, in the order shown."""
    target: int
    """Pool index of the correct sample the model learns to write."""


def edit_distance(a: str, b: str) -> int:
    """Character edit (Levenshtein) distance."""
    from rapidfuzz.distance import Levenshtein

    return int(Levenshtein.distance(a, b))


def chains_of(
    question: str,
    candidates: tuple[Candidate, ...],
    rng: random.Random,
    per_question: int,
    max_incorrect: int,
) -> list[Chain]:
    """The chains one question's pool gives (see the module docstring)."""
    right = [c for c in candidates if c.correct and c.text.strip()]
    wrong = [c for c in candidates if c.correct is False and c.text.strip()]
    out = []
    for target in right[:per_question]:
        k = rng.randint(0, min(max_incorrect, len(wrong)))
        nearest = sorted(wrong, key=lambda c: (edit_distance(c.text, target.text), c.index))[:k]
        # Farthest first, so the attempt nearest the correct one comes last.
        out.append(Chain(question, tuple(c.index for c in reversed(nearest)), target.index))
    return out


def run_pool(run_dir: Path, purpose: str) -> tuple[Any, str, dict[str, Any], Any, dict[str, Any]]:
    """A stored run's sample pool: its view, the pool's expansion key, the traces by
    question, the task and its questions by id (shared by ``learn prm-data``)."""
    from ttc_eval.pipeline import load_task
    from ttc_eval.results import load_run
    from ttc_eval.verifier_report import strategy_pool

    view = load_run(run_dir)
    key = strategy_pool(view)
    pools = view.store.by_expansion(key)
    if not pools and view.difficulty_pool is not None:
        key = view.difficulty_pool.key
        pools = view.store.by_expansion(key)
    if not pools:
        raise UsageError(
            f"{run_dir} has no sample pool to {purpose}; run it with a pool strategy "
            "(majority, best_of_n)"
        )
    task = load_task(view.config)
    try:
        problems = {p.id: p for p in task.problems(view.config.data_files)}
    except OSError as e:
        raise UsageError(f"cannot read {run_dir}'s questions again ({e})") from None
    missing = sorted(set(pools) - set(problems))
    if missing:
        raise UsageError(
            f"{len(missing)} of {run_dir}'s questions (e.g. {missing[0]}) are not in its task's "
            "data any more; pass the run's data file back"
        )
    return view, key, pools, task, problems


def revision_data(
    run_dir: Path,
    output: Path,
    per_question: int = 4,
    max_incorrect: int = 4,
    seed: int = 0,
) -> dict[str, Any]:
    """Write the revision dataset of ``run_dir``'s pool to ``output``; its learn.json."""
    import datasets

    from ttc_eval._rundir import write_json
    from ttc_eval.policy import question_key
    from ttc_eval.strategies.revisions import (
        DEFAULT_REVISION_TEMPLATE,
        MAX_CONTEXT,
        REVISER,
        revision_messages,
    )

    if per_question < 1:
        raise UsageError(f"--per-question must be at least 1, got {per_question}")
    if not 0 <= max_incorrect <= MAX_CONTEXT:
        raise UsageError(
            f"--max-incorrect must be 0 to {MAX_CONTEXT} (the attempts a reviser is shown), "
            f"got {max_incorrect}"
        )
    if output.exists() and any(output.iterdir()):
        raise UsageError(f"{output} exists and is not empty; pass another --output")
    view, key, pools, task, problems = run_pool(run_dir, "build chains from")
    role = view.config.roles.get(REVISER)
    template = (role.template if role else None) or task.spec.role_templates.get(REVISER)
    template = template or DEFAULT_REVISION_TEMPLATE
    name = task.spec.name
    rng = random.Random(seed)
    rows: dict[str, list[Any]] = {"prompt": [], "completion": [], "question": [], "k": []}
    for pid, trace in sorted(pools.items()):
        q = question_key(name, pid)
        for chain in chains_of(q, trace.candidates, rng, per_question, max_incorrect):
            base = task.messages(problems[pid])
            attempts = [trace.candidates[i].text for i in chain.attempts]
            prompt = revision_messages(base, attempts, template) if attempts else base
            rows["prompt"].append(prompt)
            rows["completion"].append(
                [{"role": "assistant", "content": trace.candidates[chain.target].text}]
            )
            rows["question"].append(q)
            rows["k"].append(len(attempts))
    if not rows["prompt"]:
        raise UsageError(
            f"{run_dir}'s pool holds no correct sample to learn from; use a run with more "
            "samples per question, or easier questions"
        )
    output.mkdir(parents=True, exist_ok=True)
    datasets.Dataset.from_dict(rows).save_to_disk(str(output / "data"))
    ks = rows["k"]
    record = {
        "kind": "revision-data",
        "version": REVISION_DATA_VERSION,
        "source": {
            "run_id": view.record.get("run_id", run_dir.name),
            "run_dir": str(run_dir),
            "pool": key,
            "task": name,
            "model": view.config.model,
        },
        "settings": {"per_question": per_question, "max_incorrect": max_incorrect, "seed": seed},
        "template_is_default": template == DEFAULT_REVISION_TEMPLATE,
        "examples": len(ks),
        "examples_by_k": {str(k): ks.count(k) for k in sorted(set(ks))},
        "questions": sorted(set(rows["question"])),
        "questions_without_a_correct_sample": sorted(
            question_key(name, p)
            for p, t in pools.items()
            if not any(c.correct for c in t.candidates)
        ),
    }
    write_json(output / "learn.json", record)
    return record


def describe(record: dict[str, Any]) -> str:
    """One paragraph for the terminal."""
    by_k = ", ".join(f"{n} with {k} attempts" for k, n in record["examples_by_k"].items())
    return (
        f"{record['examples']} revision examples ({by_k}) from {len(record['questions'])} "
        f"questions of {record['source']['run_id']}; "
        f"{len(record['questions_without_a_correct_sample'])} questions had no correct sample"
    )


def trained_questions(model: str | None) -> list[str] | None:
    """The questions (``task:problem id``) a model folder written by ``ttc-eval learn`` was
    trained on, from its learn.json; None for any other model."""
    if not model:
        return None
    try:
        data = json.loads((Path(model) / "learn.json").read_text())
    except (OSError, ValueError):
        return None
    questions = data.get("questions") if isinstance(data, dict) else None
    return [str(q) for q in questions] if isinstance(questions, list) else None
