"""Step-level verifier benchmark in ProcessBench's format (Zheng et al. 2024).

Each item is a problem with a given solution split into steps, and ``label``: the index of
the earliest wrong step, or -1 when every step is right. A verifier scores the given steps
(nothing is generated); its prediction is the earliest step scored under the threshold
(-1: none). As ProcessBench reports it, per split: accuracy on the erroneous items
(prediction == label), accuracy on the correct ones (prediction == -1), and their harmonic
mean, F1.

Data: the hub dataset ``Qwen/ProcessBench`` (splits gsm8k, math, olympiadbench, omnimath;
fields ``id``, ``problem``, ``steps``, ``label``, ...) through ``datasets``, or a local
JSON/JSONL file of the same shape per split (``--data-files``). ``ttc-eval processbench``
keeps each item's step scores in ``scores.jsonl`` as they come, so an interrupted run
continues where it stopped and a rerun with another threshold scores nothing again.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ttc_eval.errors import DataError, UsageError
from ttc_eval.types import Problem
from ttc_eval.verifiers._base import Solution, Verifier

HUB_ID = "Qwen/ProcessBench"
"""The hub dataset read when no local file is given."""
SPLITS = ("gsm8k", "math", "olympiadbench", "omnimath")
"""ProcessBench's splits."""
PROCESSBENCH_VERSION = "1"
"""Changes whenever the same scores could give other numbers (prediction, F1, threshold
choice); recorded in every result."""
STEP_JOIN = "\n\n"
"""How the given steps are joined into one solution text for the verifier."""


@dataclass(frozen=True)
class StepItem:
    """One step-annotated solution."""

    id: str
    """The item's id (the dataset's ``id``, else ``<split>-<row>``)."""
    problem: str
    """The problem text."""
    steps: tuple[str, ...]
    """The solution's steps, in order."""
    label: int
    """Index of the earliest wrong step, -1 when every step is right."""


def _check(row: Mapping[str, Any]) -> str | None:
    """What is wrong with a row (None: usable)."""
    present = sorted(k for k, v in row.items() if v is not None)
    problem, steps, label = row.get("problem"), row.get("steps"), row.get("label")
    if not isinstance(problem, str) or not problem.strip():
        return f"field 'problem' must be non-empty text; fields with values: {present}"
    if not isinstance(steps, list) or not steps or not all(isinstance(s, str) for s in steps):
        return "field 'steps' must be a non-empty list of texts (the solution's steps)"
    if isinstance(label, bool) or not isinstance(label, int):
        return "field 'label' must be an integer: the earliest wrong step's index, or -1"
    if not -1 <= label < len(steps):
        return (
            f"field 'label' is {label}, but the solution has {len(steps)} steps "
            f"(0..{len(steps) - 1}, or -1)"
        )
    return None


def load_items(
    split: str, data_files: str | None = None, limit: int | None = None
) -> list[StepItem]:
    """The items of ``split``: from ``data_files`` (a JSON/JSONL file in ProcessBench's format)
    when given, else from the hub (``Qwen/ProcessBench``, split ``split``)."""
    from ttc_eval.tasks.datasets_loader import _load_rows, _where

    if data_files is None and split not in SPLITS:
        raise UsageError(
            f"unknown ProcessBench split {split!r}; choose from {', '.join(SPLITS)} "
            "(or pass --data-files for a file of your own)"
        )
    rows, path = _load_rows({"path": HUB_ID, "split": split}, data_files)
    items = []
    for i, row in enumerate(rows[:limit] if limit else rows):
        problem = _check(row)
        if problem:
            where = _where(path, i) if path else f"{HUB_ID} {split} row {i}"
            raise DataError(f"{where}: {problem}")
        items.append(
            StepItem(
                id=str(row.get("id") or f"{split}-{i}"),
                problem=str(row["problem"]),
                steps=tuple(str(s) for s in row["steps"]),
                label=int(row["label"]),
            )
        )
    ids = [it.id for it in items]
    if len(set(ids)) != len(ids):
        dup = next(x for x in ids if ids.count(x) > 1)
        raise DataError(f"{data_files or HUB_ID}: item id {dup!r} appears more than once")
    return items


def solution_of(item: StepItem) -> Solution:
    """The item's steps as the verifier sees a solution: its steps exactly as given."""
    ends, pos = [], 0
    for i, step in enumerate(item.steps):
        pos += len(step) + (len(STEP_JOIN) if i else 0)
        ends.append(pos)
    return Solution(steps=item.steps, step_ends=tuple(ends), text=STEP_JOIN.join(item.steps))


def predict(scores: Sequence[float], threshold: float) -> int:
    """The earliest step scored under ``threshold``, or -1 when none is."""
    return next((i for i, s in enumerate(scores) if s < threshold), -1)


def f1_scores(labels: Sequence[int], predictions: Sequence[int]) -> dict[str, Any]:
    """ProcessBench's numbers: accuracy on erroneous items (the earliest wrong step found),
    on correct ones (no step flagged), and their harmonic mean (0 when either is 0; None
    when a class is absent)."""
    err = [p == y for y, p in zip(labels, predictions, strict=True) if y != -1]
    ok = [p == -1 for y, p in zip(labels, predictions, strict=True) if y == -1]
    acc_err = sum(err) / len(err) if err else None
    acc_ok = sum(ok) / len(ok) if ok else None
    if acc_err is None or acc_ok is None:
        f1 = None
    else:
        f1 = 2 * acc_err * acc_ok / (acc_err + acc_ok) if acc_err + acc_ok else 0.0
    return {
        "n_erroneous": len(err),
        "n_correct": len(ok),
        "accuracy_erroneous": acc_err,
        "accuracy_correct": acc_ok,
        "f1": f1,
    }


def held_out(ids: Iterable[str], seed: int) -> set[str]:
    """About half of the items, by a seeded hash of their id: where ``--threshold auto``
    chooses the threshold (it is reported on the others)."""
    return {
        i for i in ids if hashlib.sha256(f"{seed}:{i}".encode()).digest()[0] % 2 == 0
    }  # fmt: skip


def choose_threshold(
    items: Sequence[StepItem], scores: Mapping[str, Sequence[float]]
) -> tuple[float, float | None]:
    """The threshold with the best F1 on ``items`` among every distinct score (a step
    exactly at a candidate is not under it) and 1.0 above them all, ties to the one closest
    to 0.5; and that F1."""
    candidates = sorted({s for it in items for s in scores[it.id]} | {1.0 + 1e-9})
    labels = [it.label for it in items]
    best: tuple[float, tuple[float, float]] | None = None
    for t in candidates:
        f1 = f1_scores(labels, [predict(scores[it.id], t) for it in items])["f1"]
        key = (f1 if f1 is not None else -1.0, -abs(t - 0.5))
        if best is None or key > best[1]:
            best = (t, key)
    assert best is not None  # there is always the candidate above every score
    return best[0], best[1][0] if best[1][0] >= 0 else None


class ScoreStore:
    """Each item's step scores, appended to a JSONL file as they come (resumable): rows
    of another verifier setting (``identity``) are refused, not mixed."""

    def __init__(self, path: Path, identity: Mapping[str, Any]) -> None:
        self.path = path
        self.identity = dict(identity)
        self.scores: dict[str, tuple[float, ...]] = {}
        from ttc_eval._rundir import write_json

        meta = path.with_name("config.json")
        if meta.is_file():
            try:
                recorded = json.loads(meta.read_text())
            except ValueError:
                raise UsageError(
                    f"{meta} is unreadable; delete {path.parent} to score again"
                ) from None
            if recorded != self.identity:
                raise UsageError(
                    f"{path.parent} holds scores of another setting ({recorded}); pass "
                    "another --output-dir, or delete it"
                )
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            write_json(meta, self.identity)
        if path.is_file():
            text = path.read_text()
            if text and not text.endswith("\n"):
                # A row torn by an interruption: cut it off, so the next row starts clean
                # (its item is scored again).
                text = text[: text.rfind("\n") + 1]
                path.write_text(text)
            for line in text.splitlines():
                try:
                    row = json.loads(line)
                    self.scores[str(row["id"])] = tuple(float(s) for s in row["scores"])
                except (ValueError, KeyError, TypeError):
                    continue  # not a row of ours: scored again

    def add(self, item_id: str, scores: Sequence[float]) -> None:
        self.scores[item_id] = tuple(scores)
        with self.path.open("a") as f:
            f.write(json.dumps({"id": item_id, "scores": list(scores)}) + "\n")


def score_items(
    verifier: Verifier,
    items: Sequence[StepItem],
    store: ScoreStore,
    progress: bool = True,
    on_item: Callable[[], None] | None = None,
) -> dict[str, tuple[float, ...]]:
    """Every item's step scores, scoring those ``store`` lacks (one verifier call each)."""
    from tqdm.auto import tqdm

    todo = [it for it in items if it.id not in store.scores]
    for it in tqdm(todo, desc="scoring steps", unit="solution", disable=not progress):
        (scores,) = verifier.score(Problem(id=it.id, question=it.problem, answer=""),
                                   [solution_of(it)])  # fmt: skip
        if len(scores) != len(it.steps):
            raise DataError(
                f"the verifier gave {len(scores)} scores to item {it.id}'s {len(it.steps)} steps"
            )
        store.add(it.id, scores)
        if on_item:
            on_item()
    return {it.id: store.scores[it.id] for it in items}


def evaluate_split(
    items: Sequence[StepItem],
    scores: Mapping[str, Sequence[float]],
    threshold: float | None,
    seed: int = 0,
) -> dict[str, Any]:
    """ProcessBench's numbers on one split at ``threshold``; ``None`` (auto): the threshold
    is chosen on a held-out half (:func:`held_out`) and the numbers are those of the other
    half."""
    out: dict[str, Any] = {"version": PROCESSBENCH_VERSION}
    evaluated = list(items)
    if threshold is None:
        tune = held_out((it.id for it in items), seed)
        chosen_on = [it for it in items if it.id in tune]
        evaluated = [it for it in items if it.id not in tune]
        if not chosen_on or not evaluated:
            raise UsageError(
                f"--threshold auto needs items on both halves; {len(items)} item(s) are too "
                "few: give a number (e.g. --threshold 0.5)"
            )
        classes = {it.label == -1 for it in chosen_on}
        if len(classes) < 2:
            raise UsageError(
                "--threshold auto chooses by F1, which needs erroneous and correct items in "
                f"the held-out half; its {len(chosen_on)} item(s) are all "
                f"{'correct' if True in classes else 'erroneous'}: give a number (e.g. "
                "--threshold 0.5), or more items"
            )
        threshold, tuned_f1 = choose_threshold(chosen_on, scores)
        out["threshold_chosen_on"] = {"items": len(chosen_on), "f1": tuned_f1, "seed": seed}
    predictions = {it.id: predict(scores[it.id], threshold) for it in evaluated}
    out.update(f1_scores([it.label for it in evaluated], [predictions[it.id] for it in evaluated]))
    out["threshold"] = threshold
    out["n_items"] = len(evaluated)
    out["predictions"] = predictions
    return out


def data_files_by_split(splits: Sequence[str], given: Sequence[str]) -> dict[str, str]:
    """``--data-files`` values per split: ``SPLIT=FILE`` each, or one plain FILE for the
    one split asked for."""
    out: dict[str, str] = {}
    for value in given:
        split, eq, file = value.partition("=")
        if eq and split in splits:
            if split in out:
                raise UsageError(f"--data-files names two files for the split {split}")
            out[split] = file
        elif eq and not Path(value).exists():
            raise UsageError(
                f"--data-files {value}: {split!r} is not one of the splits asked for "
                f"({', '.join(splits)})"
            )
        elif len(splits) == 1:
            out[splits[0]] = value
        else:
            raise UsageError(
                f"--data-files {value}: several splits are asked for ({', '.join(splits)}); "
                "name the split of each file: --data-files SPLIT=FILE"
            )
    return out


def build_verifier(name: str, model: str | None) -> tuple[Verifier, dict[str, Any]]:
    """The verifier ``name`` (with its own weights ``model``), and its identity; one that
    reads the policy's log-probabilities of its own samples cannot score given text."""
    from ttc_eval.pipeline import check_verifier_args
    from ttc_eval.registry import VERIFIERS

    if name not in VERIFIERS:
        raise UsageError(VERIFIERS.unknown_message(name))
    factory = VERIFIERS.get(name)
    if not factory.roles:
        raise UsageError(
            f"verifier {name} reads the policy's log-probabilities of text it sampled itself; "
            "ProcessBench's solutions are given text: use one that reads text (self-judge or "
            "a PRM with --verifier-model)"
        )
    args = {"model": model} if model else {}
    check_verifier_args(name, factory, args)
    verifier = factory(**args)
    return verifier, {"verifier": name, "version": str(factory.version), "model": model}


def _digest(path: str) -> str:
    try:
        return hashlib.sha256(Path(path).read_bytes()).hexdigest()
    except OSError:
        return ""  # load_items says what is wrong with it


def processbench_command(
    verifier_name: str,
    verifier_model: str | None,
    splits: Sequence[str],
    data_files: Sequence[str],
    threshold: float | None,
    limit: int | None,
    seed: int,
    output_dir: Path | None,
    progress: bool = True,
) -> tuple[str, Path]:
    """``ttc-eval processbench``: load every split first (bad data fails before any model
    loads), score what is not scored yet, and write ``results.json``; the printed table and
    the results file."""
    from tabulate import tabulate

    from ttc_eval._rundir import write_json

    if not splits:
        raise UsageError(f"--split names no split; give one or more of {', '.join(SPLITS)}")
    files = data_files_by_split(splits, data_files)
    items = {split: load_items(split, files.get(split), limit) for split in splits}
    out_dir = output_dir or Path("processbench") / verifier_name.replace("/", "_")
    verifier, who = build_verifier(verifier_name, verifier_model)
    results: dict[str, Any] = {"verifier": who, "processbench_version": PROCESSBENCH_VERSION,
                               "splits": {}}  # fmt: skip
    rows = []
    for split, its in items.items():
        source = files.get(split)
        # The data by its content, however its path was written.
        identity = {**who, "split": split, "data": _digest(source) if source else HUB_ID}
        store = ScoreStore(out_dir / split / "scores.jsonl", identity)
        scores = score_items(verifier, its, store, progress)
        res = evaluate_split(its, scores, threshold, seed)
        results["splits"][split] = {"data": source or HUB_ID, **res}
        how = (
            f"auto: {res['threshold']:.3g}, chosen on {res['threshold_chosen_on']['items']} "
            "held-out items"
            if threshold is None
            else f"{res['threshold']:g}"
        )
        rows.append([split, res["n_erroneous"], res["n_correct"], _pct(res["accuracy_erroneous"]),
                     _pct(res["accuracy_correct"]), _pct(res["f1"]), how])  # fmt: skip
    path = out_dir / "results.json"
    write_json(path, results)
    headers = ["split", "erroneous", "correct", "acc. erroneous", "acc. correct", "F1",
               "threshold"]  # fmt: skip
    return f"ProcessBench, verifier {verifier_name}\n\n" + tabulate(
        rows, headers, "github", disable_numparse=True
    ), path


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.1f}"
