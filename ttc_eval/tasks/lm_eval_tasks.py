"""Tasks of lm-evaluation-harness: ``--task lm_eval:NAME``.

lm-eval builds the documents and the prompt (its ``doc_to_text`` with the few-shot context),
the target and the stop strings; ttc-eval grades the answers with its own graders, because
lm-eval's filters compare raw strings where voting and selection need answer equivalence.

Offline, a task's hub dataset is replaced either by a local-data task YAML found through
``--include-path`` (``dataset_path: json``, ``dataset_kwargs: {data_files: ...}``), or by
``--data-files FILE``, which writes that YAML for the run (it ``include:`` s the original).
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import hashlib
import json
import logging
import os
import pickle
import tempfile
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from ttc_eval._rundir import write_atomic_bytes
from ttc_eval.errors import DataError, UsageError, did_you_mean
from ttc_eval.graders._extract import last_boxed
from ttc_eval.models import cache_root
from ttc_eval.registry import loader, task_source
from ttc_eval.tasks._spec import TaskSpec
from ttc_eval.types import Problem

PREFIX = "lm_eval"
DEFAULT_GRADER = "math"
"""math-verify: numbers and LaTeX expressions alike."""
DEFAULT_MAX_TOKENS = 256
"""lm-eval's own default ``max_gen_toks``."""

log = logging.getLogger(__name__)


def _require_lm_eval() -> None:
    try:
        import lm_eval  # noqa: F401
    except ImportError:
        raise UsageError(
            "lm_eval:* tasks need lm-evaluation-harness: pip install 'ttc-eval[lm-eval]'"
        ) from None


INDEX_CACHE_VERSION = "2"
"""Part of the on-disk task index's key: bumped when what is stored changes."""


def _task_files(root: Path) -> list[tuple[str, int, int, int]]:
    """(path, mtime, ctime, size) of every file under ``root``, not only its ``*.yaml``: a
    task YAML's name, kind and tags may come from an ``include:``d template of any name
    (lm-eval's own ``_default_template_yaml``), so any added, removed or edited file of
    the folder changes it."""
    files = []
    for folder, dirs, names in os.walk(root):
        dirs[:] = sorted(d for d in dirs if d not in {"__pycache__", ".ipynb_checkpoints"})
        for name in sorted(names):
            with contextlib.suppress(OSError):  # gone since listed: so is its task
                st = os.stat(os.path.join(folder, name))
                files.append((f"{folder}/{name}", st.st_mtime_ns, st.st_ctime_ns, st.st_size))
    return files


def _folder_index(root: Path) -> dict[str, Any]:
    """lm-eval's task index of one folder, kept on disk under the cache root and rebuilt when
    lm-eval's version or any of its task YAMLs changes: building the built-in tasks' index
    parses every YAML (about 14,000; 13 s on 2 cores), which every ``lm_eval:`` command
    paid before it read one task. The stored entries leave out the parsed YAML of tasks
    that have a file (lm-eval re-reads the file when it loads a task, and so does
    :func:`entry_config`)."""
    import lm_eval
    from lm_eval.tasks._index import TaskIndex

    stamp = [INDEX_CACHE_VERSION, lm_eval.__version__, str(root.resolve()), _task_files(root)]
    key = hashlib.sha256(json.dumps(stamp).encode()).hexdigest()[:24]
    path = cache_root() / "lm-eval-index" / f"{key}.pickle"
    try:
        with path.open("rb") as f:
            index: dict[str, Any] = pickle.load(f)  # our own file, under the cache root
        return index
    except FileNotFoundError:
        pass
    except Exception as e:  # a damaged or foreign file: rebuilt and replaced below
        log.debug("lm-eval task index %s unreadable (%r); rebuilding it", path, e)
    index = TaskIndex.build([root])
    slim = {k: dataclasses.replace(e, cfg=None) if e.yaml_path else e for k, e in index.items()}
    with contextlib.suppress(OSError):  # a read-only cache only costs the next build
        path.parent.mkdir(parents=True, exist_ok=True)
        # Whole or absent: a concurrent reader never sees half of it.
        write_atomic_bytes(path, pickle.dumps(slim, protocol=pickle.HIGHEST_PROTOCOL))
    return slim


def _task_index(roots: Sequence[Path]) -> dict[str, Any]:
    """lm-eval's index of several folders, as ``TaskIndex.build`` merges them (a later
    folder's task replaces an earlier one of the same name), each folder's from
    :func:`_folder_index`: the built-in tasks' index serves every ``--include-path``."""
    index: dict[str, Any] = {}
    for root in roots:
        index.update(_folder_index(root))
    return index


_manager_lock = threading.Lock()


@functools.lru_cache(maxsize=4)
def _manager(include_path: tuple[str, ...]) -> Any:
    """lm-eval's task manager (built-in tasks plus ``include_path``) over the stored task
    index (:func:`_task_index`), once per process."""
    _require_lm_eval()
    import lm_eval.tasks
    from lm_eval.tasks import TaskManager
    from lm_eval.tasks import manager as manager_module

    for p in include_path:
        if not Path(p).is_dir():
            raise UsageError(f"--include-path {p}: no such folder")
    # lm-eval logs a warning per YAML it cannot parse and per override; not the user's concern.
    logging.getLogger("lm_eval").setLevel(logging.ERROR)
    # The folders TaskManager indexes, in its order (built-in tasks first, then ours).
    roots = [Path(lm_eval.tasks.__file__).parent, *(Path(p) for p in include_path)]
    index = _task_index(roots)
    original = manager_module.TaskIndex

    class _Stored(original):  # type: ignore[misc,valid-type]
        """TaskManager builds its index with ``TaskIndex().build(paths)``: this one hands
        it the stored index instead, for the folders it was made of."""

        @staticmethod
        def build(paths: Any, **kwargs: Any) -> dict[str, Any]:
            if [Path(p) for p in paths] != roots or kwargs:  # another lm-eval's folders
                return dict(original.build(paths, **kwargs))
            return dict(index)

    with _manager_lock:  # TaskIndex is lm-eval's module global: replaced only meanwhile
        manager_module.TaskIndex = _Stored
        try:
            return TaskManager(include_path=list(include_path) or None)
        finally:
            manager_module.TaskIndex = original


def entry_config(entry: Any) -> dict[str, Any]:
    """A task's YAML as lm-eval's index parses it (includes merged, ``!function`` unresolved),
    read from its file now: the stored index leaves it out."""
    if entry.cfg is not None or entry.yaml_path is None:
        return dict(entry.cfg or {})
    from lm_eval.tasks._yaml_loader import load_yaml

    try:
        return dict(load_yaml(entry.yaml_path, resolve_func=False))
    except Exception as e:  # removed or broken since the index was read
        raise DataError(
            f"lm-eval task {entry.name}: cannot read {entry.yaml_path} ({type(e).__name__}: {e})"
        ) from None


def _entry(name: str, include_path: Sequence[str]) -> Any:
    tm = _manager(tuple(include_path))
    entry = tm.task_index.get(name)
    if entry is None:
        hint = did_you_mean(name, tm.all_subtasks, n=3, cutoff=0.6)
        raise UsageError(
            f"lm-eval has no task {name!r}.{hint} List them with `lm-eval ls tasks`; "
            "add your own YAML folder with --include-path DIR."
        )
    if name not in tm.all_subtasks:
        raise UsageError(f"lm_eval:{name} is a group or tag; name one of its tasks")
    return entry


def gold_answer(target: Any) -> str:
    """The final answer inside an lm-eval target: what follows ``####`` (GSM8K-style worked
    solutions), else the last ``\\boxed{}`` (MATH-style solutions), else the target itself."""
    if isinstance(target, list):
        target = target[0] if target else ""
    text = str(target)
    if "####" in text:
        return text.rsplit("####", 1)[1].strip().replace(",", "")
    boxed = last_boxed(text)
    return boxed if boxed is not None else text.strip()


@task_source(PREFIX)
def lm_eval_spec(
    name: str,
    include_path: Sequence[str] = (),
    num_fewshot: int | None = None,
    apply_chat_template: bool = False,
) -> TaskSpec:
    """Any generate_until task of lm-evaluation-harness (--num-fewshot, --apply-chat-template).

    The spec is read from lm-eval's task index; no data is loaded until the problems are."""
    entry = _entry(name, include_path)
    cfg: Mapping[str, Any] = entry_config(entry)
    if cfg.get("output_type", "generate_until") != "generate_until":
        raise UsageError(
            f"lm_eval:{name} is a {cfg.get('output_type')} task; test-time compute needs "
            "generation: pick a generate_until task (for example gsm8k or minerva_math500)"
        )
    gen = dict(cfg.get("generation_kwargs") or {})
    until = gen.get("until", [])
    until = [until] if isinstance(until, str) else list(until)
    shots = num_fewshot if num_fewshot is not None else int(cfg.get("num_fewshot") or 0)
    version = (cfg.get("metadata") or {}).get("version", "0")
    return TaskSpec(
        name=f"{PREFIX}:{name}",
        version=f"lm-eval:{version}/shots={shots}",
        loader="lm_eval",
        prompt="chat" if apply_chat_template else "raw",
        grader=DEFAULT_GRADER,
        loader_args={"task": name, "include_path": list(include_path), "num_fewshot": shots},
        # Temperature is the strategy's business (lm-eval's tasks decode greedily).
        generation={"max_tokens": int(gen.get("max_gen_toks", DEFAULT_MAX_TOKENS)), "stop": until},
        description=f"lm-eval task {name}",
        source=str(entry.yaml_path),
    )


def _local_yaml(name: str, include_path: Sequence[str], data_files: str, shots: int) -> Path:
    """A local-data task YAML over ``name``'s own, in a temporary folder."""
    entry = _entry(name, include_path)
    cfg: Mapping[str, Any] = entry_config(entry)
    path = Path(data_files)
    if not path.is_file():
        raise UsageError(f"--data-files {data_files}: no such file")
    fixed_samples = bool((cfg.get("fewshot_config") or {}).get("samples"))
    split = cfg.get("fewshot_split") or cfg.get("training_split")
    if shots > 0 and split and not fixed_samples:
        raise UsageError(
            f"lm_eval:{name} takes its {shots} few-shot examples from split {split!r}, which "
            "--data-files (one test file) does not provide: pass --num-fewshot 0, or write a "
            "local-data task YAML that also names a file for that split (README, lm-eval tasks)"
        )
    override = {
        "include": str(entry.yaml_path),
        "task": name,
        "dataset_path": "json",
        "dataset_name": None,
        # A bare string for data_files would land in split "train".
        "dataset_kwargs": {"data_files": {"test": str(path.resolve())}},
        "test_split": "test",
        "validation_split": None,
        "training_split": None,
        "fewshot_split": None,
    }
    folder = Path(tempfile.mkdtemp(prefix="ttc-lm-eval-"))
    out = folder / f"{name}.yaml"
    out.write_text(yaml.safe_dump(override, sort_keys=False))
    return out


@functools.lru_cache(maxsize=4)
def load_lm_eval_task(
    name: str, include_path: tuple[str, ...] = (), data_files: str | None = None, shots: int = 0
) -> Any:
    """lm-eval's task object (documents loaded), with ``data_files`` replacing its test split."""
    tm = _manager(include_path)
    spec: str = (
        name if data_files is None else str(_local_yaml(name, include_path, data_files, shots))
    )
    try:
        loaded = tm.load([spec])
    except Exception as e:
        where = f"--data-files {data_files}" if data_files else f"lm-eval task {name}"
        raise DataError(
            f"{where}: lm-eval could not load it ({type(e).__name__}: {e}). Offline? Pass "
            "--data-files FILE, or a local-data task YAML through --include-path DIR."
        ) from None
    tasks = loaded["tasks"]
    return tasks[name] if name in tasks else next(iter(tasks.values()))


@loader("lm_eval")
def load_lm_eval(
    args: dict[str, Any], data_files: str | None = None, limit: int | None = None
) -> list[Problem]:
    """Documents of lm-eval task ``args['task']``: the question is lm-eval's whole prompt
    (few-shot context included), the answer is :func:`gold_answer` of its target, the id is
    the document's index (lm-eval's ``doc_id``). Only the first ``limit`` documents' prompts
    are built: lm-eval renders each few-shot context anew (about 23 ms a document for GSM8K's
    8-shot chain of thought: 30 s for the whole test set when a run reads 16)."""
    shots = int(args.get("num_fewshot", 0))
    task = load_lm_eval_task(args["task"], tuple(args.get("include_path", ())), data_files, shots)
    docs = list(task.eval_docs)
    if limit is not None:
        docs = docs[:limit]
    if not docs:
        raise DataError(f"lm-eval task {args['task']} has no test documents")
    out = []
    for i, doc in enumerate(docs):
        try:
            prompt = task.fewshot_context(doc, shots)
            target = task.doc_to_target(doc)
        except Exception as e:
            where = f"lm-eval task {args['task']} document {i}" + (
                f" (from {data_files})" if data_files else ""
            )
            raise DataError(f"{where}: lm-eval could not build its prompt ({e})") from None
        out.append(Problem(id=str(i), question=str(prompt), answer=gold_answer(target)))
    return out
