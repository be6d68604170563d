"""What the task registries hold (loaders, prompt builders, task sources), as protocols."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

from ttc_eval.types import Problem

if TYPE_CHECKING:
    from ttc_eval.tasks._spec import TaskSpec


class Loader(Protocol):
    """Yields a task's problems from its ``loader_args`` (and a local file, when given).
    ``limit``: the run reads only the first ``limit`` problems (None: all), so a loader that
    builds each problem at a cost (lm-eval's few-shot prompts) may stop there; one that
    returns more is cut by the task."""

    def __call__(
        self, args: dict[str, Any], data_files: str | None = None, limit: int | None = None
    ) -> list[Problem]: ...


class PromptBuilder(Protocol):
    """Turns a problem (and the task's ``prompt_args``) into a prompt: raw text, or chat
    messages that the backend renders with the model's template."""

    def __call__(self, *args: Any, **kwargs: Any) -> str | list[dict[str, str]]: ...


class TaskSource(Protocol):
    """Another harness's task collection: ``SOURCE:NAME`` to a task spec."""

    def __call__(self, *args: Any, **kwargs: Any) -> TaskSpec: ...
