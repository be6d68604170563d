"""One registry per kind of component, filled by decorators.

Components register themselves where they are defined (``@strategy("majority")``); nothing
dispatches on names with dicts or if-chains. Looking up an unknown name raises a
:class:`~ttc_eval.errors.UsageError` that lists close matches.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import inspect
import pkgutil
from collections.abc import Callable, Iterator, Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar

from ttc_eval.errors import UsageError, did_you_mean

if TYPE_CHECKING:  # the protocols live with their components; only mypy needs them here
    from ttc_eval.backends._base import BackendFactory
    from ttc_eval.cli import Command
    from ttc_eval.estimators._base import Estimator
    from ttc_eval.graders._base import GraderFactory
    from ttc_eval.importers._base import Importer
    from ttc_eval.strategies._base import Expansion, Strategy
    from ttc_eval.tasks._protocols import Loader, PromptBuilder, TaskSource
    from ttc_eval.verifiers._base import VerifierFactory

T = TypeVar("T")


class Registry(Generic[T]):
    """A named collection of one kind of component (strategies, backends, ...), typed by what
    it holds: a registered object that is not a ``T`` fails ``mypy``."""

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
        hint = did_you_mean(name, self._items)
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


class Recorded(Protocol):
    """A product whose registry records how it was built."""

    name: str
    args: Mapping[str, Any]

    def canonical_args(self, args: Mapping[str, Any]) -> dict[str, Any]:
        """``args`` less those that do not change what it does (equal products, one label)."""
        ...


P = TypeVar("P", bound=Recorded)


class FactoryRegistry(Registry[Callable[..., P]]):
    """A registry of factories of ``P`` that records the arguments each product was built
    with: ``product.args`` (every parameter, defaults filled in, ``None`` left out) is what
    labels a configuration, so two configurations that differ in an argument can never
    share a label, whatever the component's own code does."""

    def create(self, name: str, /, **args: Any) -> P:
        factory = self.get(name)
        signature = inspect.signature(factory)
        try:
            bound = signature.bind(**args)
        except TypeError as e:
            raise UsageError(f"{self.kind} {name}: bad arguments {dict(args)} ({e})") from None
        bound.apply_defaults()
        recorded: dict[str, Any] = {}
        for key, value in bound.arguments.items():
            if signature.parameters[key].kind is inspect.Parameter.VAR_KEYWORD:
                recorded.update(value)  # **rest: what was given
            elif value is not None:
                recorded[key] = value
        product = factory(**args)
        # Set on the product, not left to its constructor: a component cannot forget one.
        product.name = name
        product.args = MappingProxyType(dict(sorted(product.canonical_args(recorded).items())))
        return product


def label_of(name: str, args: Mapping[str, Any]) -> str:
    """A built component's label: its name with its recorded arguments, sorted
    (``best_of_n(aggregation=last,mode=weighted)``); what reports, leaderboards and policy
    files call a configuration, for strategies and estimators alike."""
    inner = ",".join(f"{k}={v}" for k, v in sorted(args.items()))
    return f"{name}({inner})" if inner else name


STRATEGIES: FactoryRegistry[Strategy] = FactoryRegistry(
    "strategy", "ttc_eval.strategies", "strategies"
)
BACKENDS: Registry[BackendFactory] = Registry("backend", "ttc_eval.backends")
VERIFIERS: Registry[VerifierFactory] = Registry("verifier", "ttc_eval.verifiers")
GRADERS: Registry[GraderFactory] = Registry("grader", "ttc_eval.graders")
EXPANSIONS: Registry[Callable[..., Expansion]] = Registry("expansion", "ttc_eval.strategies")
LOADERS: Registry[Loader] = Registry("loader", "ttc_eval.tasks")
PROMPTS: Registry[PromptBuilder] = Registry("prompt", "ttc_eval.tasks")
IMPORTERS: Registry[Importer] = Registry("importer", "ttc_eval.importers")
TASK_SOURCES: Registry[TaskSource] = Registry("task source", "ttc_eval.tasks", "task_sources")
"""Other harnesses' task collections, named ``SOURCE:TASK`` on the command line."""
ESTIMATORS: FactoryRegistry[Estimator] = FactoryRegistry("estimator", "ttc_eval.estimators")
"""Difficulty estimators: a question's predicted difficulty from K probe samples."""
COMMANDS: Registry[Command] = Registry("command", None)
"""Subcommands of ``ttc-eval`` (registered by ``ttc_eval.cli``)."""

ALL_REGISTRIES: tuple[Registry[Any], ...] = (
    STRATEGIES,
    EXPANSIONS,
    BACKENDS,
    VERIFIERS,
    GRADERS,
    LOADERS,
    PROMPTS,
    TASK_SOURCES,
    IMPORTERS,
    ESTIMATORS,
    COMMANDS,
)
"""Every registry, for ``ttc-eval list``."""

strategy = STRATEGIES.register
backend = BACKENDS.register
verifier = VERIFIERS.register
grader = GRADERS.register
expansion = EXPANSIONS.register
loader = LOADERS.register
prompt = PROMPTS.register
task_source = TASK_SOURCES.register
importer = IMPORTERS.register
estimator = ESTIMATORS.register
command = COMMANDS.register
