"""One registry per kind of component, filled by decorators.

Components register themselves where they are defined (``@strategy("majority")``); nothing
dispatches on names with dicts or if-chains. Looking up an unknown name raises a
:class:`~ttc_eval.errors.UsageError` that lists close matches.
"""

from __future__ import annotations

import difflib
import importlib
import importlib.metadata
import pkgutil
from collections.abc import Callable, Iterator
from typing import Any, Generic, TypeVar

from ttc_eval.errors import UsageError

T = TypeVar("T")


class Registry(Generic[T]):
    """A named collection of factories of one kind (strategies, backends, ...)."""

    def __init__(self, kind: str, package: str | None = None, plural: str | None = None) -> None:
        self.kind = kind
        self.plural = plural or kind + "s"
        self._items: dict[str, T] = {}
        self._package = package
        self._loaded = False

    def register(self, name: str) -> Callable[[T], T]:
        """Decorator: register ``obj`` under ``name``."""

        def deco(obj: T) -> T:
            if name in self._items and self._items[name] is not obj:
                raise ValueError(f"{self.kind} {name!r} is registered twice")
            self._items[name] = obj
            return obj

        return deco

    def _load(self) -> None:
        # Built-in components live in modules that register on import; import them lazily so
        # that `import ttc_eval` stays light and heavy backends are only imported when used.
        # Every module of the component's package is imported, so a new component is one new
        # file; plug-ins from other distributions register through the entry-point group
        # ``ttc_eval.<plural>`` (e.g. ``ttc_eval.strategies``).
        if self._loaded:
            return
        self._loaded = True
        if self._package:
            pkg = importlib.import_module(self._package)
            for info in pkgutil.iter_modules(pkg.__path__):
                importlib.import_module(f"{self._package}.{info.name}")
        for ep in importlib.metadata.entry_points(group=f"ttc_eval.{self.plural}"):
            ep.load()

    def get(self, name: str) -> T:
        self._load()
        try:
            return self._items[name]
        except KeyError:
            raise UsageError(self.unknown_message(name)) from None

    def unknown_message(self, name: str) -> str:
        close = difflib.get_close_matches(name, list(self._items), n=3, cutoff=0.5)
        hint = f" Did you mean: {', '.join(close)}?" if close else ""
        return (
            f"unknown {self.kind} {name!r}.{hint} "
            f"Available: {', '.join(sorted(self._items))} (`ttc-eval list {self.plural}`)."
        )

    def names(self) -> list[str]:
        self._load()
        return sorted(self._items)

    def __contains__(self, name: object) -> bool:
        self._load()
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())


STRATEGIES: Registry[Any] = Registry("strategy", "ttc_eval.strategies", "strategies")
BACKENDS: Registry[Any] = Registry("backend", "ttc_eval.backends")
VERIFIERS: Registry[Any] = Registry("verifier", "ttc_eval.verifiers")
GRADERS: Registry[Any] = Registry("grader", "ttc_eval.graders")
EXPANSIONS: Registry[Any] = Registry("expansion", "ttc_eval.strategies")
LOADERS: Registry[Any] = Registry("loader", "ttc_eval.tasks")
PROMPTS: Registry[Any] = Registry("prompt", "ttc_eval.tasks")
IMPORTERS: Registry[Any] = Registry("importer", "ttc_eval.importers")
TASK_SOURCES: Registry[Any] = Registry("task source", "ttc_eval.tasks", "task_sources")
"""Other harnesses' task collections, named ``SOURCE:TASK`` on the command line."""

strategy = STRATEGIES.register
backend = BACKENDS.register
verifier = VERIFIERS.register
grader = GRADERS.register
expansion = EXPANSIONS.register
loader = LOADERS.register
prompt = PROMPTS.register
task_source = TASK_SOURCES.register
importer = IMPORTERS.register
