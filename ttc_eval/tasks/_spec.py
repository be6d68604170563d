"""Task specs: YAML files in ``tasks/`` that name registered Python (loader, prompt, grader)."""

from __future__ import annotations

import inspect
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from ttc_eval.errors import DataError, UsageError, did_you_mean
from ttc_eval.registry import GRADERS, LOADERS, PROMPTS, TASK_SOURCES
from ttc_eval.types import Problem

if TYPE_CHECKING:
    from ttc_eval.backends._base import Backend
    from ttc_eval.thinking import Thinking

_KEYS = {
    "name",
    "version",
    "description",
    "revision_template",
    "loader",
    "loader_args",
    "prompt",
    "prompt_args",
    "grader",
    "grader_args",
    "generation",
}
_REQUIRED = ("name", "version", "loader", "prompt", "grader")


@dataclass(frozen=True)
class TaskSpec:
    """A task as written in its YAML file."""

    name: str
    """Task name, as passed to ``--task``."""
    version: str
    """Bumped whenever the task's numbers can change (data, prompt, grading)."""
    loader: str
    """Registered loader that yields the problems."""
    prompt: str
    """Registered prompt builder."""
    grader: str
    """Registered grader."""
    loader_args: Mapping[str, Any] = field(default_factory=dict)
    """Arguments of the loader (dataset id, field names, generator settings)."""
    prompt_args: Mapping[str, Any] = field(default_factory=dict)
    """Arguments of the prompt builder."""
    grader_args: Mapping[str, Any] = field(default_factory=dict)
    """Arguments of the grader."""
    generation: Mapping[str, Any] = field(default_factory=dict)
    """Default generation settings (``max_tokens``, ``temperature``, ``top_p``, ``stop``); the
    run may override all but ``stop``."""
    description: str = ""
    """One line for ``ttc-eval list tasks``."""
    revision_template: str | None = None
    """Revision prompt of the ``revisions`` strategy for this task (``{question}``,
    ``{attempts}``); default: the built-in one."""
    source: str = ""
    """The file the spec came from."""

    @property
    def role_templates(self) -> dict[str, str]:
        """Prompt templates the task gives model roles (its ``revision_template`` is the
        ``reviser``'s)."""
        return {"reviser": self.revision_template} if self.revision_template else {}


def task_dirs(extra: Sequence[str] = ()) -> list[Path]:
    """Where task specs are looked up: ``extra``, ``$TTC_EVAL_TASKS_PATH``, then built-ins."""
    dirs = [Path(p) for p in extra]
    dirs += [Path(p) for p in os.environ.get("TTC_EVAL_TASKS_PATH", "").split(os.pathsep) if p]
    pkg = Path(__file__).resolve().parent.parent
    # A wheel carries the specs inside the package; a source checkout has them at the top level.
    dirs += [pkg / "_builtin_tasks", pkg.parent / "tasks"]
    return [d for d in dirs if d.is_dir()]


def available_tasks(extra: Sequence[str] = ()) -> dict[str, Path]:
    found: dict[str, Path] = {}
    for d in task_dirs(extra):
        for f in sorted(d.glob("*.yaml")):
            found.setdefault(f.stem, f)
    return found


def find_task_spec(name: str, extra: Sequence[str] = (), **source_args: Any) -> TaskSpec:
    """The spec of task ``name``: a YAML spec in ``extra`` or the built-ins, or ``SOURCE:TASK``
    from another harness's collection (``lm_eval:gsm8k``), which takes ``source_args``."""
    source, sep, rest = name.partition(":")
    if sep:
        if not rest:
            raise UsageError(f"--task {name}: name the task after {source}:")
        spec: TaskSpec = TASK_SOURCES.get(source)(rest, include_path=tuple(extra), **source_args)
        return spec
    if source_args:
        raise UsageError(
            f"{', '.join(sorted(source_args))} apply only to tasks of another harness "
            f"(--task lm_eval:NAME), not to {name!r}"
        )
    tasks = available_tasks(extra)
    if name not in tasks:
        hint = did_you_mean(name, tasks, n=3, cutoff=0.5)
        raise UsageError(
            f"unknown task {name!r}.{hint} Available: {', '.join(sorted(tasks))} "
            "(`ttc-eval list tasks`; add a spec file with --include-path DIR)."
        )
    return load_task_spec(tasks[name])


def describe_yaml_error(path: Path, text: str, error: yaml.YAMLError, what: str = "") -> str:
    """``file:line: <what>: problem``, the line 1-based and inside the file.

    PyYAML's marks are 0-based. A construct left open (``[unclosed``, a quote) is reported at
    the end of the stream, one line past the last one; then the line where the construct
    opened (the context mark) is named instead.
    """
    prefix = f"{what}: " if what else ""
    if not isinstance(error, yaml.MarkedYAMLError):
        return f"{path}: {prefix}not valid YAML ({error})"
    problem = error.problem or "not valid YAML"
    n_lines = max(1, len(text.splitlines()))
    mark, context = error.problem_mark, error.context_mark
    if mark is None and context is None:
        return f"{path}: {prefix}{problem}"
    if context is not None and (mark is None or mark.line >= n_lines):
        opened = error.context or "the construct"
        return f"{path}:{context.line + 1}: {prefix}{problem} ({opened} opened on this line)"
    assert mark is not None
    line = min(mark.line + 1, n_lines)
    note = ""
    if context is not None and error.context and context.line + 1 != line:
        note = f" ({error.context} started on line {context.line + 1})"
    return f"{path}:{line}: {prefix}{problem}{note}"


def load_task_spec(path: Path) -> TaskSpec:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise DataError(f"{path}: cannot read the task spec as text ({e})") from None
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise DataError(describe_yaml_error(path, text, e, "malformed task spec")) from None
    if not isinstance(raw, dict):
        raise DataError(f"{path}:1: a task spec must be a mapping of keys to values")
    unknown = set(raw) - _KEYS
    if unknown:
        raise DataError(f"{path}: unknown keys {sorted(unknown)}; allowed: {sorted(_KEYS)}")
    missing = [k for k in _REQUIRED if k not in raw]
    if missing:
        raise DataError(f"{path}: missing keys {missing}")
    for kind, reg in (("loader", LOADERS), ("prompt", PROMPTS), ("grader", GRADERS)):
        if raw[kind] not in reg:
            raise DataError(f"{path}: {reg.unknown_message(str(raw[kind]))}")
    for key in ("loader_args", "prompt_args", "grader_args", "generation"):
        if not isinstance(raw.get(key, {}), dict):
            raise DataError(f"{path}: {key} must be a mapping")
    return TaskSpec(
        name=str(raw["name"]),
        version=str(raw["version"]),
        loader=raw["loader"],
        prompt=raw["prompt"],
        grader=raw["grader"],
        loader_args=raw.get("loader_args", {}),
        prompt_args=raw.get("prompt_args", {}),
        grader_args=raw.get("grader_args", {}),
        generation=raw.get("generation", {}),
        description=str(raw.get("description", "")),
        revision_template=_revision_template(raw, path),
        source=str(path),
    )


def _revision_template(raw: Mapping[str, Any], path: Path) -> str | None:
    value = raw.get("revision_template")
    if value is None:
        return None
    if not isinstance(value, str):
        raise DataError(f"{path}: revision_template must be a string")
    missing = missing_revision_fields(value)
    if missing:
        raise DataError(f"{path}: revision_template lacks {missing}")
    return value


def missing_revision_fields(template: str) -> str:
    """The placeholders a revision template lacks, e.g. ``{attempts}`` ('' if none)."""
    return " and ".join(f for f in ("{question}", "{attempts}") if f not in template)


def _check_args(
    spec: TaskSpec, kind: str, factory: Any, args: Mapping[str, Any], **fixed: Any
) -> None:
    """A spec's ``prompt_args``/``grader_args`` must fit the registered function: a typo is a
    clear error naming the spec file, not a TypeError mid-run."""
    try:
        inspect.signature(factory).bind(*fixed.values(), **args)
    except TypeError as e:
        where = spec.source or spec.name
        raise DataError(
            f"{where}: {kind}_args {dict(args)} do not fit {kind} {getattr(spec, kind)!r} ({e})"
        ) from None
    except ValueError:  # no signature to check (a builtin)
        return


class Task:
    """A loaded task: its problems, prompts and grader."""

    def __init__(
        self,
        spec: TaskSpec,
        grader_overrides: Mapping[str, Any] | None = None,
        thinking: Thinking | None = None,
    ) -> None:
        self.spec = spec
        self.thinking = thinking
        """The run's thinking delimiters: answers are read only after the thinking closes."""
        self._overrides = dict(grader_overrides or {})
        grader_factory = GRADERS.get(spec.grader)
        grader_args = {**spec.grader_args, **(grader_overrides or {})}
        _check_args(spec, "grader", grader_factory, grader_args)
        self.grader = grader_factory(**grader_args)
        self._prompt = PROMPTS.get(spec.prompt)
        _check_args(spec, "prompt", self._prompt, spec.prompt_args, first=None)

    @property
    def name(self) -> str:
        return self.spec.name

    def with_thinking(self, thinking: Thinking | None) -> Task:
        """The same task, its answers read after ``thinking``'s closing delimiter."""
        return Task(self.spec, self._overrides, thinking)

    def extract(self, text: str) -> str | None:
        """The answer of an output: the grader's extraction from what follows the thinking
        (``None``, never graded, when the thinking did not close)."""
        if self.thinking is not None:
            answer = self.thinking.answer_text(text)
            if answer is None:
                return None
            text = answer
        return self.grader.extract(text)

    @property
    def version(self) -> str:
        """Task version plus grader version: both change the numbers."""
        return f"{self.spec.version}+{self.grader.version}"

    def problems(self, data_files: str | None = None, limit: int | None = None) -> list[Problem]:
        problems: list[Problem] = LOADERS.get(self.spec.loader)(
            dict(self.spec.loader_args), data_files=data_files, limit=limit
        )
        ids = [p.id for p in problems]
        if len(set(ids)) != len(ids):
            dup = next(i for i in ids if ids.count(i) > 1)
            raise DataError(f"task {self.name}: problem id {dup!r} appears more than once")
        return problems[:limit] if limit is not None else problems

    def messages(self, problem: Problem) -> list[dict[str, str]]:
        """The prompt as chat messages (a raw-text prompt becomes the one user message)."""
        result = self._prompt(problem, **self.spec.prompt_args)
        if isinstance(result, str):
            return [{"role": "user", "content": result}]
        return list(result)

    def render(self, problem: Problem, backend: Backend) -> str:
        """The prompt text: through the backend's chat template, unless the prompt builder
        returns raw text (lm-eval's prompts without ``--apply_chat_template``)."""
        result = self._prompt(problem, **self.spec.prompt_args)
        if isinstance(result, str):
            return result
        rendered: str = backend.render(result)
        return rendered
