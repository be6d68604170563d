"""Step labels for a process reward model from Monte Carlo rollouts of the policy itself
(Math-Shepherd, Wang et al. 2024; the PRM data of Snell et al. 2024, section 5).

``ttc-eval learn prm-data RUN --output DIR --rollouts K``: from each question's sample pool
(the first ``per_question`` non-empty samples), every solution is split into steps on the
run's step delimiter. From the prefix that ends each step but the last, the policy writes K
completions (the prefix is the solution's own text up to and including the delimiter, so the
model continues its own words); each is graded as a whole solution (prefix + continuation)
by the task's grader. A step's soft label is the share of its rollouts that reach the right
answer, its hard label whether any does (Math-Shepherd's "hard estimation"). The last step's
rollout is the solution itself: its label is the solution's own verdict.

Every rollout of a chunk of questions goes to the backend in one call (``K`` samples per
prefix request, so vLLM's prefix cache shares the prompt and prefix), through the generation
cache. Finished questions are appended to ``DIR/rollouts.jsonl`` as each chunk ends, so an
interrupted command resumes where it stopped; each line records what its rollouts cost.

Without a RUN, the samples come from a run of ``majority`` at N = ``per_question`` that this
command makes first in ``DIR/pool`` (the ordinary resumable pipeline).

The output is a ``datasets`` dataset on disk in the standard stepwise format (TRL's:
``prompt`` the question, ``completions`` the steps, ``labels`` one bool per step), with
``soft_labels`` beside it, plus ``learn.json``: the source, the settings, the label
statistics, the cost and every question used (``task:problem id``), so that evaluating a PRM
trained on them can be told apart.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ttc_eval.errors import UsageError
from ttc_eval.types import Candidate, Completion, Problem, Request, SamplingParams

PRM_DATA_VERSION = "1"
"""Bumped whenever the same run and settings could give other labels; in learn.json."""


@dataclass(frozen=True)
class Rollouts:
    """The rollouts from one step prefix of one solution."""

    step: int
    """Index of the step whose prefix is continued (0-based)."""
    prefix: str
    """The solution's text up to and including the delimiter after that step."""
    correct: tuple[bool, ...]
    """Verdict of each rollout (prefix + continuation, graded as a whole)."""


@dataclass(frozen=True)
class LabelledSolution:
    """One solution with a label per step."""

    index: int
    """Pool index of the sample."""
    steps: tuple[str, ...]
    """Its steps, as the verifiers split them."""
    soft: tuple[float, ...]
    """Share of rollouts from each step that reach the right answer."""
    hard: tuple[bool, ...]
    """Whether any does."""
    correct: bool
    """The solution's own verdict (the last step's label)."""


def step_prefixes(text: str, delimiter: str) -> tuple[tuple[str, ...], list[str]]:
    """The steps of ``text`` and the prefix ending each step but the last (the text up to and
    including the delimiter that follows the step)."""
    from ttc_eval.verifiers._base import split_steps

    steps, ends = split_steps(text, delimiter)
    return steps, [text[: e + len(delimiter)] for e in ends[:-1]]


def label_solution(
    candidate: Candidate, steps: tuple[str, ...], rollouts: Sequence[Rollouts]
) -> LabelledSolution:
    """Soft and hard labels of each step from its rollouts; the last from the verdict."""
    soft = [sum(r.correct) / len(r.correct) for r in rollouts]
    soft.append(1.0 if candidate.correct else 0.0)
    return LabelledSolution(
        index=candidate.index,
        steps=steps,
        soft=tuple(soft),
        hard=tuple(s > 0 for s in soft),
        correct=bool(candidate.correct),
    )


@dataclass(frozen=True)
class _Job:
    """The solutions of one question to label."""

    problem: Problem
    key: str
    candidates: tuple[Candidate, ...]

    @property
    def digest(self) -> str:
        """Names the solutions labelled: a resumed command relabels a question whose pool
        changed (a run redone in the same folder) instead of keeping stale labels."""
        from ttc_eval._rundir import text_digest

        return text_digest(json.dumps([[c.index, c.text] for c in self.candidates]))


def _rollout_chunk(
    jobs: Sequence[_Job],
    render: Callable[[Problem], str],
    generate: Callable[[Sequence[Request]], list[list[Completion]]],
    grade: Callable[[Problem, Sequence[str]], list[bool]],
    params: SamplingParams,
    rollouts: int,
    delimiter: str,
) -> Iterator[tuple[_Job, list[LabelledSolution], dict[str, int]]]:
    """Label every solution of ``jobs`` with one backend call for all their prefixes."""
    ids = tuple(range(rollouts))
    plan: list[tuple[int, int, int, str]] = []  # (job, candidate, step, prefix)
    steps_of: dict[tuple[int, int], tuple[str, ...]] = {}
    requests: list[Request] = []
    for j, job in enumerate(jobs):
        prompt = render(job.problem)
        for c, cand in enumerate(job.candidates):
            steps, prefixes = step_prefixes(cand.text, delimiter)
            steps_of[j, c] = steps
            for s, prefix in enumerate(prefixes):
                plan.append((j, c, s, prefix))
                requests.append(Request(prompt + prefix, params, ids))
    # Solutions that begin alike share prefixes: each distinct prompt is generated (and
    # charged) once; its rollouts are the same samples for every solution that holds it.
    first: dict[str, int] = {}
    for i, r in enumerate(requests):
        first.setdefault(r.prompt, i)
    unique = list(first.values())
    made = dict(zip(unique, generate([requests[i] for i in unique]), strict=True)) if unique else {}
    outputs = [made[first[r.prompt]] for r in requests]
    texts = [p[3] + comp.text for p, comps in zip(plan, outputs, strict=True) for comp in comps]
    problems = [jobs[p[0]].problem for p in plan for _ in ids]
    verdicts = _grade_by_problem(grade, problems, texts)
    found: dict[tuple[int, int], list[Rollouts]] = {}
    cost: dict[int, dict[str, int]] = {
        j: {"requests": 0, "samples": 0, "prompt_tokens": 0, "generated_tokens": 0}
        for j in range(len(jobs))
    }
    for i, ((j, c, s, prefix), comps) in enumerate(zip(plan, outputs, strict=True)):
        found.setdefault((j, c), []).append(
            Rollouts(s, prefix, tuple(verdicts[i * rollouts : (i + 1) * rollouts]))
        )
        if first[requests[i].prompt] != i:
            continue  # charged where it was first asked for
        spent = cost[j]
        spent["requests"] += 1
        spent["samples"] += len(comps)
        # The prompt and prefix are read once per request: its K samples share them.
        spent["prompt_tokens"] += comps[0].prompt_tokens if comps else 0
        spent["generated_tokens"] += sum(x.n_tokens for x in comps)
    for j, job in enumerate(jobs):
        labelled = [
            label_solution(cand, steps_of[j, c], found.get((j, c), []))
            for c, cand in enumerate(job.candidates)
        ]
        yield job, labelled, cost[j]


def _grade_by_problem(
    grade: Callable[[Problem, Sequence[str]], list[bool]],
    problems: Sequence[Problem],
    texts: Sequence[str],
) -> list[bool]:
    """``grade`` called once per question on its texts, the verdicts back in order."""
    where: dict[str, list[int]] = {}
    for i, p in enumerate(problems):
        where.setdefault(p.id, []).append(i)
    out = [False] * len(texts)
    for idx in where.values():
        for i, v in zip(idx, grade(problems[idx[0]], [texts[i] for i in idx]), strict=True):
            out[i] = v
    return out


def _solution_row(s: LabelledSolution) -> dict[str, Any]:
    return {"index": s.index, "steps": list(s.steps), "soft": list(s.soft),
            "hard": list(s.hard), "correct": s.correct}  # fmt: skip


def _read_done(path: Path) -> dict[str, dict[str, Any]]:
    """Questions already labelled (a torn last line, from a kill, is cut off)."""
    done: dict[str, dict[str, Any]] = {}
    if not path.exists():
        return done
    good = 0
    with path.open("rb") as f:
        for raw in f:
            try:
                row = json.loads(raw)
            except ValueError:
                break
            if not raw.endswith(b"\n"):
                break
            done[row["question"]] = row
            good += len(raw)
    if good != path.stat().st_size:
        with path.open("r+b") as f:
            f.truncate(good)
    return done


def _settings_guard(output: Path, settings: Mapping[str, Any], name: str = "settings.json") -> None:
    """Refuse to resume into a folder labelled with other settings (recorded in ``name``),
    or into a non-empty folder that is not one of ours."""
    path = output / name
    ours = any((output / f).exists() for f in ("settings.json", "pool.json"))
    if not ours and output.exists() and any(output.iterdir()):
        raise UsageError(
            f"{output} exists, is not empty and holds no PRM data to resume; pass another --output"
        )
    if path.exists():
        old = json.loads(path.read_text())
        if old != dict(settings):
            changed = sorted(k for k in set(old) | set(settings) if old.get(k) != settings.get(k))
            raise UsageError(
                f"{output} holds PRM data made with other settings ({', '.join(changed)}); "
                "pass another --output or the same settings to resume"
            )
    else:
        from ttc_eval._rundir import write_json

        output.mkdir(parents=True, exist_ok=True)
        write_json(path, dict(settings))


def prm_data(
    run_dir: Path,
    output: Path,
    rollouts: int = 4,
    per_question: int = 4,
    progress: bool = True,
    say: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Label the steps of ``run_dir``'s samples by rollouts; write ``output``; its learn.json."""
    import datasets
    from tqdm import tqdm

    if not progress:
        datasets.disable_progress_bars()

    from ttc_eval._rundir import recorded_identity, text_digest, write_json
    from ttc_eval.cache import GenerationCache
    from ttc_eval.learn_revisions import run_pool
    from ttc_eval.models import cache_root
    from ttc_eval.pipeline import make_backend, sampling_params
    from ttc_eval.policy import question_key
    from ttc_eval.types import POLICY

    if rollouts < 1 or per_question < 1:
        raise UsageError("--rollouts and --per-question must be at least 1")
    view, key, pools, task, problems = run_pool(run_dir, "label")
    config = view.config
    name = task.spec.name
    settings = {
        "version": PRM_DATA_VERSION,
        "run_id": view.record.get("run_id", run_dir.name),
        "run_identity": text_digest(json.dumps(recorded_identity(view.record), sort_keys=True)),
        "pool": key,
        "rollouts": rollouts,
        "per_question": per_question,
    }
    _settings_guard(output, settings)
    done_path = output / "rollouts.jsonl"
    done = _read_done(done_path)
    jobs = [
        _Job(
            problems[pid],
            question_key(name, pid),
            tuple(c for c in trace.candidates if c.text.strip())[:per_question],
        )
        for pid, trace in sorted(pools.items())
    ]
    todo = [j for j in jobs if done.get(j.key, {}).get("pool_sha256") != j.digest]
    params = sampling_params(config)  # the run's own sampling, its stop strings included
    started = time.monotonic()
    cached_before = generated_before = 0
    if todo:
        cache = GenerationCache(cache_root() / "generations.sqlite") if config.cache else None
        backend = make_backend(config.role(POLICY), config, cache, progress)

        def grade(problem: Problem, texts: Sequence[str]) -> list[bool]:
            pairs = [(problem.answer, task.extract(t)) for t in texts]
            return [bool(g.correct) for g in task.grader.grade(pairs)]

        per_chunk = max(1, config.chunk_samples // (rollouts * per_question * 2))
        bar = tqdm(total=len(todo), desc="rollouts", unit="q", disable=not progress)
        with done_path.open("a", encoding="utf-8") as out:
            for start in range(0, len(todo), per_chunk):
                chunk = todo[start : start + per_chunk]
                t0 = time.monotonic()
                before = (backend.generated_samples, backend.cached_samples)
                labelled = list(
                    _rollout_chunk(
                        chunk,
                        lambda p: task.render(p, backend),
                        backend.generate,
                        grade,
                        params,
                        rollouts,
                        config.step_delimiter,
                    )
                )
                seconds = (time.monotonic() - t0) / len(chunk)
                fresh = backend.generated_samples - before[0]
                hits = backend.cached_samples - before[1]
                generated_before += fresh
                cached_before += hits
                for job, sols, cost in labelled:
                    row = {
                        "question": job.key,
                        "problem_id": job.problem.id,
                        "pool_sha256": job.digest,
                        "prompt": job.problem.question,
                        "solutions": [_solution_row(s) for s in sols],
                        "cost": {**cost, "seconds": round(seconds, 3)},
                    }
                    out.write(json.dumps(row) + "\n")
                    done[job.key] = row
                out.flush()
                bar.update(len(chunk))
        bar.close()
    rows: dict[str, list[Any]] = {
        "prompt": [], "completions": [], "labels": [], "soft_labels": [], "question": [],
        "correct": [],
    }  # fmt: skip
    for job in jobs:
        for sol in done[job.key]["solutions"]:
            rows["prompt"].append(done[job.key]["prompt"])
            rows["completions"].append(sol["steps"])
            rows["labels"].append(sol["hard"])
            rows["soft_labels"].append(sol["soft"])
            rows["question"].append(job.key)
            rows["correct"].append(sol["correct"])
    if not rows["prompt"]:
        raise UsageError(f"{run_dir}'s pool holds no non-empty sample to label")
    datasets.Dataset.from_dict(rows).save_to_disk(str(output / "data"))
    costs = [done[j.key]["cost"] for j in jobs]
    labels = [x for ls in rows["labels"] for x in ls]
    soft = [x for ls in rows["soft_labels"] for x in ls]
    record = {
        "kind": "prm-data",
        "version": PRM_DATA_VERSION,
        "source": {
            "run_id": settings["run_id"],
            "run_dir": str(run_dir),
            "pool": key,
            "task": name,
            "model": config.model,
        },
        "settings": {"rollouts": rollouts, "per_question": per_question},
        "solutions": len(rows["prompt"]),
        "steps": len(labels),
        "positive_steps": sum(labels),
        "mean_soft_label": sum(soft) / len(soft),
        "correct_solutions": sum(rows["correct"]),
        "cost": {
            k: sum(c[k] for c in costs)
            for k in ("requests", "samples", "prompt_tokens", "generated_tokens")
        }
        | {"seconds": round(sum(c["seconds"] for c in costs), 1)},
        "this_invocation": {
            "questions": len(todo),
            "generated_samples": generated_before,
            "cached_samples": cached_before,
            "seconds": round(time.monotonic() - started, 1),
        },
        "questions": sorted(j.key for j in jobs),
    }
    write_json(output / "learn.json", record)
    return record


def pool_config(output: Path, per_question: int, settings: Mapping[str, Any]) -> Any:
    """The run that samples the solutions when no RUN is given: ``majority`` at N =
    ``per_question`` in ``output/pool``, with the given task and model settings."""
    from ttc_eval.config import RunConfig

    base = {k: v for k, v in settings.items() if v is not None}
    # Checked before the pool run, which would otherwise refuse other settings with advice
    # (--force-new, --run-id) that learn does not take.
    _settings_guard(output, {"per_question": per_question, **base}, name="pool.json")
    return RunConfig.from_dict(
        {
            **base,
            "strategies": [{"name": "majority", "args": {}}],
            "budgets": [per_question],
            "verifier": None,
            "output_dir": str(output),
            "run_id": "pool",
            "leaderboard_dir": str(output / "leaderboards"),
        }
    )


def describe(record: Mapping[str, Any]) -> str:
    """One paragraph for the terminal."""
    cost = record["cost"]
    return (
        f"{record['solutions']} solutions of {len(record['questions'])} questions, "
        f"{record['steps']} steps ({record['positive_steps']} with a rollout reaching the "
        f"answer, mean soft label {record['mean_soft_label']:.3f}); {cost['samples']} "
        f"rollouts, {cost['generated_tokens']} generated tokens"
    )
