"""The resolved configuration of a run: everything needed to rebuild it, recorded in config.json.

Each setting is declared once, on its :class:`RunConfig` field: the field's name is its key in
config files and config.json, and its :func:`option` metadata is its command-line flag (the
parser, the help text and the flag-to-setting mapping of ``ttc-eval run`` are generated from
it). Flags that write part of a setting (``--verifier-model``, ``--role``, ...) are declared
once too, in :data:`SHORTHANDS`.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import re
from collections.abc import Callable, Container, Iterator, Mapping, Sequence
from dataclasses import Field, asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import yaml

from ttc_eval.errors import DataError, UsageError, did_you_mean
from ttc_eval.models import DEFAULT_MODEL
from ttc_eval.tasks._split import SPLITS, split_of
from ttc_eval.types import BIN_KINDS, POLICY

# ----------------------------------------------------------------------------------------------
# Command-line value types: each raises argparse's error type, so that a bad value is reported
# as ``argument --flag: expected ..., got ...`` (exit 2).


def parse_int(text: str, what: str, minimum: int) -> int:
    """An integer >= ``minimum``, else "expected {what}"."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
    if value < minimum:
        raise argparse.ArgumentTypeError(f"expected {what}, got {value}")
    return value


def positive_int(text: str) -> int:
    return parse_int(text, "a positive integer", 1)


def nonnegative_int(text: str) -> int:
    return parse_int(text, "an integer >= 0", 0)


def budget_list(text: str) -> tuple[int, ...]:
    what = "budgets as positive integers, e.g. 1,4,16"
    return tuple(parse_int(part, what, 1) for part in text.split(","))


def parse_number(text: str, what: str = "a finite number") -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}")
    return value


def bounded(what: str, ok: Callable[[float], bool]) -> Callable[[str], float]:
    """An argparse type: a finite number for which ``ok`` holds, else "expected {what}"."""

    def parse(text: str) -> float:
        value = parse_number(text, what)
        if not ok(value):
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}")
        return value

    return parse


# The ``generation:`` keys of a task spec, what each may hold and the flag overriding it.
_GENERATION_FIELDS = {
    "temperature": ("a finite number >= 0 (0 = greedy)", "--temperature"),
    "top_p": ("a number in (0, 1] (1 = no nucleus cut)", "--top-p"),
    "max_tokens": ("a positive integer", "--max-tokens"),
    "stop": ("a string or a list of strings", None),
    "thinking": ("none, tags, open or OPEN,CLOSE delimiters", "--thinking"),
}


def check_task_generation(
    generation: Mapping[str, Any], where: Callable[[], str]
) -> dict[str, Any]:
    """A task spec's ``generation:`` settings, checked and typed (``stop`` as a tuple; one
    string is one stop string). A bad key or value is a :class:`DataError` naming
    ``where()`` (the spec, looked up only then), the field and the values allowed."""
    out: dict[str, Any] = {}
    for key, value in generation.items():
        if key not in _GENERATION_FIELDS:
            hint = did_you_mean(str(key), _GENERATION_FIELDS, n=1)
            raise DataError(
                f"{where()}: unknown generation setting {key!r}.{hint} Allowed: "
                f"{', '.join(_GENERATION_FIELDS)}"
            )
        checked = _generation_value(key, value)
        if checked is None:
            allowed, flag = _GENERATION_FIELDS[key]
            override = f", or override it with {flag}" if flag else ""
            raise DataError(
                f"{where()}: generation.{key} must be {allowed}, got {value!r}; fix the "
                f"spec{override}"
            )
        out[key] = checked
    return out


def _generation_value(key: str, value: Any) -> Any:
    """``value`` of generation setting ``key`` as used, or None when it is not allowed."""
    if key == "thinking":
        return value if isinstance(value, str) and _thinking_ok(value) else None
    if key == "stop":
        if isinstance(value, str):
            return (value,)
        if isinstance(value, list | tuple) and all(isinstance(v, str) for v in value):
            return tuple(value)
        return None
    # YAML reads `hot` as a string and `yes` as a bool: neither is a number here.
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    if key == "max_tokens":
        return value if isinstance(value, int) and value >= 1 else None
    if not math.isfinite(value):
        return None
    if key == "temperature":
        return float(value) if value >= 0 else None
    return float(value) if 0 < value <= 1 else None


def _thinking_ok(value: str) -> bool:
    from ttc_eval.thinking import parse_thinking

    try:
        parse_thinking(value)
    except UsageError:
        return False
    return True


def thinking_mode(text: str) -> str:
    """A ``--thinking`` value (:func:`ttc_eval.thinking.parse_thinking` reads it)."""
    if not _thinking_ok(text):
        raise argparse.ArgumentTypeError(
            f"expected none, tags, open or OPEN,CLOSE delimiters, got {text!r}"
        )
    return text


def key_values(text: str) -> dict[str, Any]:
    """``k=v,k=v`` (values parsed as YAML scalars)."""
    out: dict[str, Any] = {}
    for part in filter(None, text.split(",")):
        if "=" not in part:
            raise argparse.ArgumentTypeError(f"expected key=value pairs, got {part!r}")
        k, v = part.split("=", 1)
        out[k.strip()] = yaml.safe_load(v)
    return out


def name_list(text: str) -> list[str]:
    return [x.strip() for x in text.split(",") if x.strip()]


OPTIMAL_AXES = ("budget", "tokens", "flops")
"""Compute levels the compute-optimal choice may be made at: the nominal budget N, or the
measured generated tokens or FLOPs per question (``ttc_eval.analysis.optimal``)."""


def optimal_axis(text: str) -> str:
    """One of :data:`OPTIMAL_AXES`."""
    if text not in OPTIMAL_AXES:
        hint = did_you_mean(text, OPTIMAL_AXES, n=1)
        message = f"expected one of {', '.join(OPTIMAL_AXES)}, got {text!r}"
        raise argparse.ArgumentTypeError(f"{message}.{hint}" if hint else message)
    return text


def split_name(text: str) -> str:
    """One of :data:`~ttc_eval.tasks._split.SPLITS`."""
    if text not in SPLITS:
        hint = did_you_mean(text, SPLITS, n=1)
        message = f"expected one of {', '.join(SPLITS)}, got {text!r}"
        raise argparse.ArgumentTypeError(f"{message}.{hint}" if hint else message)
    return text


# ----------------------------------------------------------------------------------------------
# Declaring a setting's flag.

OPTION = "ttc_eval.option"
"""The key of a field's :class:`Option` in its ``dataclasses.field(metadata=...)``."""

TASK_DEFAULT = "the task's, else {}"
"""``default_text`` of a generation setting that the task may set: the built-in fallback (what
:meth:`RunConfig.resolve` fills in) is shown in place of ``{}``."""


@dataclass(frozen=True)
class Option:
    """The command-line flag of one :class:`RunConfig` field."""

    help: str
    """What the flag sets; ``(default: ...)`` is appended."""
    flag: str | None = None
    """The flag; default ``--`` and the field name with dashes."""
    metavar: str | None = None
    """The value's placeholder in ``--help``."""
    parse: Callable[[str], Any] | None = None
    """argparse type: checks and converts the flag's text (raises ArgumentTypeError)."""
    setting: Callable[[Any], Any] | None = None
    """Turns the parsed value into the setting's value as a config file writes it (default:
    as parsed); may raise UsageError."""
    default_text: str | None = None
    """The default as ``--help`` states it; default: the field's default as a flag writes it
    (:data:`TASK_DEFAULT` for a generation setting)."""
    repeat: bool = False
    """The flag may be given several times (a list of values)."""
    switch: bool = False
    """A flag without a value that sets True."""
    group: str = "run settings"
    """Section of ``ttc-eval run --help``."""

    def flag_for(self, name: str) -> str:
        return self.flag or "--" + name.replace("_", "-")


def option(
    help: str,
    *,
    flag: str | None = None,
    metavar: str | None = None,
    parse: Callable[[str], Any] | None = None,
    setting: Callable[[Any], Any] | None = None,
    default_text: str | None = None,
    repeat: bool = False,
    switch: bool = False,
    group: str = "run settings",
) -> dict[str, Option]:
    """``dataclasses.field`` metadata that makes a :class:`RunConfig` field a flag of
    ``ttc-eval run`` (see :class:`Option` for the arguments)."""
    return {
        OPTION: Option(help, flag, metavar, parse, setting, default_text, repeat, switch, group)
    }


def option_of(f: Field[Any]) -> Option | None:
    """The flag declared on a field, or None for a setting of config files only."""
    opt = f.metadata.get(OPTION)
    return opt if isinstance(opt, Option) else None


# The sections of `ttc-eval run --help`, in order.
GROUP_MODELS = "models and roles"
GROUP_TASK = "task"
GROUP_STRATEGIES = "strategies and verifier"
GROUP_SAMPLING = "sampling"
GROUP_DIFFICULTY = "difficulty bins"
GROUP_OUTPUT = "output"
GROUPS = (
    GROUP_MODELS,
    GROUP_TASK,
    GROUP_STRATEGIES,
    GROUP_SAMPLING,
    GROUP_DIFFICULTY,
    GROUP_OUTPUT,
)


# ----------------------------------------------------------------------------------------------
# Strategies and roles.


@dataclass(frozen=True)
class StrategySpec:
    """A strategy name with its arguments, as written on the command line or in a config."""

    name: str
    """Registered strategy name."""
    args: Mapping[str, Any] = field(default_factory=dict)
    """Keyword arguments of the strategy's factory."""

    @classmethod
    def parse(cls, text: str) -> StrategySpec:
        """``name`` or ``name:key=value:key=value`` (values parsed as YAML scalars)."""
        name, *parts = text.strip().split(":")
        args: dict[str, Any] = {}
        for part in parts:
            if "=" not in part:
                raise UsageError(f"strategy argument {part!r} in {text!r} must be key=value")
            k, v = part.split("=", 1)
            args[k.strip()] = yaml.safe_load(v)
        if not name:
            raise UsageError(f"empty strategy name in {text!r}")
        if "=" in name:
            # "revisions:chains=1,length=16": the comma began a new strategy.
            raise UsageError(
                f"{name!r} is not a strategy: arguments of one strategy are joined by colons, "
                "commas separate strategies (e.g. revisions:chains=1:length=16)"
            )
        return cls(name, args)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "args": dict(self.args)}


def _strategy_list(text: str) -> list[dict[str, Any]]:
    return [StrategySpec.parse(s).to_dict() for s in text.split(",") if s.strip()]


_ROLE_KEYS = ("model", "backend", "backend_args", "template")


@dataclass(frozen=True)
class RoleSpec:
    """The model of one role of a run (``reviser``, ``judge``, ...): unset parts are the
    policy's (see :meth:`RunConfig.role`)."""

    model: str | None = None
    """Alias, hub id or local directory; None: the policy's model."""
    backend: str | None = None
    """Registered backend; None: the run's backend."""
    backend_args: Mapping[str, Any] = field(default_factory=dict)
    """Backend options. Empty with the run's backend: the run's ``backend_args``; with another
    backend only these."""
    template: str | None = None
    """A prompt template the role's component uses; for ``reviser``, the revision prompt with
    ``{question}`` and ``{attempts}``. None: the component's (or the task's) own."""

    def __post_init__(self) -> None:
        _check_role_parts("role", {k: getattr(self, k) for k in _ROLE_KEYS})

    @classmethod
    def parse(cls, text: str) -> RoleSpec:
        """``MODEL[:backend=NAME][:template=FILE][:K=V...]``: ``template=`` names a file
        holding the role's prompt template; K=V other than ``backend`` and ``template`` are
        backend options (values parsed as YAML scalars); an empty MODEL is the policy's. Only
        a colon before ``key=`` starts an option, so ``qwen:7b`` names a model and
        ``base_url=http://h:80`` is one option."""
        model, *parts = re.split(r":(?=[A-Za-z_][A-Za-z0-9_]*=)", text.strip())
        backend: str | None = None
        template: str | None = None
        args: dict[str, Any] = {}
        for part in parts:
            k, v = part.split("=", 1)
            if k == "backend":
                if not v.strip():
                    raise UsageError(f"backend= in {text!r} needs a backend name")
                backend = v.strip()
            elif k == "template":
                template = read_template_file(v.strip(), f"template= in {text!r}")
            else:
                args[k] = yaml.safe_load(v)
        return cls(model.strip() or None, backend, args, template)

    def to_dict(self) -> dict[str, Any]:
        """The parts that are set (what a config file writes)."""
        d: dict[str, Any] = {}
        if self.model is not None:
            d["model"] = self.model
        if self.backend is not None:
            d["backend"] = self.backend
        if self.backend_args:
            d["backend_args"] = dict(self.backend_args)
        if self.template is not None:
            d["template"] = self.template
        return d

    @classmethod
    def from_dict(cls, d: Any, role: str = "") -> RoleSpec:
        """A role as a config file writes it: a mapping of :data:`_ROLE_KEYS`, or a plain
        string (the model); None is the policy's."""
        if isinstance(d, RoleSpec):
            return d
        if d is None:
            return cls()
        if isinstance(d, str):
            return cls(model=d)
        where = f"role {role}" if role else "role"
        if not isinstance(d, Mapping):
            raise UsageError(
                f"{where} must be a model name or a mapping of {', '.join(_ROLE_KEYS)}, got {d!r}"
            )
        unknown = sorted(set(d) - set(_ROLE_KEYS))
        if unknown:
            hint = did_you_mean(str(unknown[0]), _ROLE_KEYS)
            raise UsageError(
                f"unknown keys {unknown} in {where}.{hint} Known: {', '.join(_ROLE_KEYS)}"
            )
        parts: dict[str, Any] = {k: d.get(k) for k in _ROLE_KEYS}
        parts["backend_args"] = parts["backend_args"] or {}
        _check_role_parts(where, parts)
        return cls(**parts)


def _check_role_parts(where: str, parts: Mapping[str, Any]) -> None:
    for name in ("model", "backend", "template"):
        value = parts[name]
        if value is not None and (not isinstance(value, str) or not value):
            raise UsageError(f"{where}: {name} must be a non-empty string, got {value!r}")
    if not isinstance(parts["backend_args"], Mapping):
        raise UsageError(f"{where}: backend_args must be a mapping, got {parts['backend_args']!r}")


def parse_role_flag(text: str) -> tuple[str, RoleSpec]:
    """argparse type of ``--role NAME=MODEL[:backend=NAME][:template=FILE][:K=V...]``."""
    name, sep, spec = text.partition("=")
    name = name.strip()
    if not sep or not name.isidentifier():
        raise argparse.ArgumentTypeError(
            f"expected ROLE=MODEL[:backend=NAME][:template=FILE][:K=V...] such as "
            f"reviser=smollm2-360m, "
            f"got {text!r}"
        )
    try:
        return name, RoleSpec.parse(spec)
    except UsageError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def _check_role_name(name: object) -> str:
    if not isinstance(name, str) or not name.isidentifier():
        raise UsageError(f"role names must be identifiers such as reviser, got {name!r}")
    if name == POLICY:
        raise UsageError(
            "the policy is not set in roles: use --model, --backend and --backend-args "
            "(model, backend, backend_args in a config file)"
        )
    return name


# ----------------------------------------------------------------------------------------------
# The run's settings.


@dataclass(frozen=True)
class RunConfig:
    """One run. Defaults are the embedded default run: SmolLM2 on arith, budgets 1..16.

    Every field is a key of config files (and of config.json); a field with :func:`option`
    metadata is also a flag of ``ttc-eval run``."""

    model: str = field(
        default=DEFAULT_MODEL,
        metadata=option("policy model: alias, hub id or local directory", group=GROUP_MODELS),
    )
    """Alias, hub id or local directory of the policy model."""
    backend: str = field(
        default="hf",
        metadata=option("registered backend, see `ttc-eval list backends`", group=GROUP_MODELS),
    )
    """Registered backend."""
    backend_args: Mapping[str, Any] = field(
        default_factory=dict,
        metadata=option(
            "backend options, e.g. dtype=float32,batch_size=64",
            metavar="K=V,...",
            parse=key_values,
            default_text="the backend's own",
            group=GROUP_MODELS,
        ),
    )
    """Backend options (``dtype``, ``batch_size``, ...)."""
    task: str = field(
        default="arith",
        metadata=option(
            "registered task (`ttc-eval list tasks`), or lm_eval:NAME for a task of "
            "lm-evaluation-harness",
            group=GROUP_TASK,
        ),
    )
    """Registered task name."""
    data_files: str | None = field(
        default=None,
        metadata=option(
            "local JSON/JSONL file replacing the task's hub dataset",
            metavar="FILE",
            default_text="the task's data",
            group=GROUP_TASK,
        ),
    )
    """Local JSON/JSONL file replacing the task's hub dataset."""
    include_path: tuple[str, ...] = field(
        default=(),
        metadata=option(
            "extra folder of task specs, ttc-eval's or lm-eval's for lm_eval:NAME; repeatable",
            metavar="DIR",
            repeat=True,
            default_text="the built-in tasks only",
            group=GROUP_TASK,
        ),
    )
    """Extra folders with task specs."""
    limit: int | None = field(
        default=None,
        metadata=option(
            "only the first N questions",
            metavar="N",
            parse=positive_int,
            default_text="all",
            group=GROUP_TASK,
        ),
    )
    """Use only the first N questions."""
    strategies: tuple[StrategySpec, ...] = field(
        default=(StrategySpec("majority"), StrategySpec("best_of_n")),
        metadata=option(
            "comma list of strategies (`ttc-eval list strategies`); arguments after colons, "
            "e.g. best_of_n:mode=naive",
            flag="--strategy",
            metavar="NAME[:K=V...],...",
            setting=_strategy_list,
            group=GROUP_STRATEGIES,
        ),
    )
    """Strategies to evaluate."""
    verifier: str | None = field(
        default="logprob",
        metadata=option(
            "registered step scorer (`ttc-eval list verifiers`), or none", group=GROUP_STRATEGIES
        ),
    )
    """Registered verifier that scores steps (``none`` for no verifier)."""
    verifier_args: Mapping[str, Any] = field(
        default_factory=dict,
        metadata=option(
            "verifier options, e.g. device=cuda,dtype=bfloat16",
            metavar="K=V,...",
            parse=key_values,
            default_text="the verifier's own",
            group=GROUP_STRATEGIES,
        ),
    )
    """Verifier options; ``model`` is the weights of the ``verifier`` role."""
    roles: Mapping[str, RoleSpec] = field(default_factory=dict)
    """Models of the run's roles other than the policy, by role name (``reviser``, ``judge``,
    ...): set with ``--role NAME=SPEC`` or a ``roles:`` map; a role not named here is the
    policy's model. The ``verifier`` role is stored as ``verifier_args["model"]``."""
    budgets: tuple[int, ...] = field(
        default=(1, 2, 4, 8, 16),
        metadata=option(
            "generation budgets N", metavar="N,...", parse=budget_list, group=GROUP_STRATEGIES
        ),
    )
    """Generation budgets N."""
    thinking_budgets: tuple[int, ...] = field(
        default=(),
        metadata=option(
            "thinking budgets in tokens, the sweep of the thinking_budget strategy (each "
            "sample's one trace is cut at each)",
            metavar="T,...",
            parse=budget_list,
            default_text="none",
            group=GROUP_STRATEGIES,
        ),
    )
    """Thinking budgets (tokens) the ``thinking_budget`` strategy cuts each trace at."""
    seed: int = field(
        default=0,
        metadata=option("sampling seed", metavar="N", parse=nonnegative_int, group=GROUP_SAMPLING),
    )
    """Sampling seed."""
    temperature: float | None = field(
        default=None,
        metadata=option(
            "sampling temperature, >= 0",
            metavar="T",
            parse=bounded("a finite temperature >= 0 (0 is greedy)", lambda v: v >= 0),
            default_text=TASK_DEFAULT,
            group=GROUP_SAMPLING,
        ),
    )
    """Sampling temperature of the pool (default: the task's, else 0.7)."""
    top_p: float | None = field(
        default=None,
        metadata=option(
            "nucleus sampling mass, in (0, 1]",
            metavar="P",
            parse=bounded("a top-p in (0, 1] (1 keeps every token)", lambda v: 0 < v <= 1),
            default_text=TASK_DEFAULT,
            group=GROUP_SAMPLING,
        ),
    )
    """Nucleus sampling mass (default: the task's, else 1.0)."""
    max_tokens: int | None = field(
        default=None,
        metadata=option(
            "most tokens generated per sample",
            metavar="N",
            parse=positive_int,
            default_text=TASK_DEFAULT,
            group=GROUP_SAMPLING,
        ),
    )
    """Maximum generated tokens per sample (default: the task's, else 256)."""
    thinking: str | None = field(
        default=None,
        metadata=option(
            "thinking delimiters of a reasoning model: none; tags (<think>...</think> in the "
            "output); open (the prompt opened the thinking, </think> closes it); or OPEN,CLOSE. "
            "Answers are read only after the close; unclosed thinking has no answer",
            metavar="MODE",
            parse=thinking_mode,
            default_text="the task's, else none",
            group=GROUP_SAMPLING,
        ),
    )
    """Thinking delimiters (:mod:`ttc_eval.thinking`; default: the task's, else none)."""
    step_delimiter: str = "\n\n"
    """Separates the steps of a solution."""
    output_dir: str = field(
        default="runs",
        metadata=option("parent of run directories", metavar="DIR", group=GROUP_OUTPUT),
    )
    """Parent folder of run directories."""
    run_id: str | None = field(
        default=None,
        metadata=option(
            "run directory name",
            default_text="derived from the settings, so a rerun resumes",
            group=GROUP_OUTPUT,
        ),
    )
    """Run directory name; default: derived from the settings, so a rerun resumes."""
    leaderboard_dir: str = field(
        default="leaderboards",
        metadata=option("where <task>.csv is updated", metavar="DIR", group=GROUP_OUTPUT),
    )
    """Where ``<task>.csv`` leaderboards are updated."""
    cache: bool = True
    """Use the generation cache."""
    chunk_samples: int = 256
    """Samples generated between writes of finished questions."""
    bins: tuple[str, ...] = field(
        default=("oracle", "predicted", "label"),
        metadata=option(
            f"difficulty bins to report, from {', '.join(BIN_KINDS)}",
            metavar="KIND,...",
            parse=name_list,
            group=GROUP_DIFFICULTY,
        ),
    )
    """Difficulty bins to report: ``oracle`` (the policy's pass@1), ``predicted`` (mean
    verifier score), ``label`` (the dataset's own labels, e.g. MATH level)."""
    difficulty_samples: int | None = field(
        default=None,
        metadata=option(
            "samples per question of a dedicated pass that measures difficulty",
            metavar="N",
            parse=positive_int,
            default_text="none, the run's largest sampled pool",
            group=GROUP_DIFFICULTY,
        ),
    )
    """Samples per question of a dedicated pass that measures difficulty (default: the
    largest sampled pool of the run)."""
    shard: str | None = field(
        default=None,
        metadata=option(
            "run only questions i, i+n, i+2n, ... (0-based); the merge command joins the shards",
            metavar="I/N",
            default_text="every question",
            group=GROUP_TASK,
        ),
    )
    """``i/n``: run only questions i, i+n, i+2n, ... (0-based); ``ttc-eval merge`` joins the
    n shard runs into one."""
    split: str | None = field(
        default=None,
        metadata=option(
            "run only the questions of one seeded split: calibration (a share "
            "--split-fraction of them) or test (the rest); chosen per question from a hash "
            "of (split seed, task, problem id), before --limit and --shard apply",
            metavar="{" + ",".join(SPLITS) + "}",
            parse=split_name,
            default_text="every question",
            group=GROUP_TASK,
        ),
    )
    """Run only the questions of one split (:data:`~ttc_eval.tasks._split.SPLITS`), e.g. to
    fit a policy on ``calibration`` and evaluate it on ``test``; None: every question."""
    split_fraction: float = field(
        default=0.5,
        metadata=option(
            "share of the questions in the calibration split, in (0, 1)",
            metavar="F",
            parse=bounded("a share strictly between 0 and 1", lambda v: 0 < v < 1),
            group=GROUP_TASK,
        ),
    )
    """Share of the questions in the calibration split (strictly between 0 and 1)."""
    split_seed: int | None = field(
        default=None,
        metadata=option(
            "seed of the question split",
            metavar="N",
            parse=nonnegative_int,
            default_text="the run's --seed",
            group=GROUP_TASK,
        ),
    )
    """Seed of the question split (default: the run's ``seed``)."""
    grader: str | None = field(
        default=None,
        metadata=option(
            "registered grader replacing the task's own",
            default_text="the task's",
            group=GROUP_TASK,
        ),
    )
    """Registered grader replacing the task's own (default: the task's)."""
    num_fewshot: int | None = field(
        default=None,
        metadata=option(
            "lm_eval:NAME tasks: few-shot examples in the prompt",
            metavar="N",
            parse=nonnegative_int,
            default_text="the task's",
            group=GROUP_TASK,
        ),
    )
    """Few-shot examples in the prompt of an lm-eval task (default: the task's own)."""
    apply_chat_template: bool = field(
        default=False,
        metadata=option(
            "lm_eval:NAME tasks: send the prompt through the model's chat template",
            switch=True,
            default_text="off, the raw prompt as lm-eval sends it",
            group=GROUP_TASK,
        ),
    )
    """Send an lm-eval task's prompt through the model's chat template (as lm-eval's
    ``--apply_chat_template``); default: the raw prompt, as lm-eval does."""
    stop: tuple[str, ...] | None = None
    """Stop strings of every sample (set from the task: lm-eval's ``until``)."""
    optimal_axis: str = field(
        default="budget",
        metadata=option(
            "compute level of the compute-optimal choice: budget (equal nominal N), tokens "
            "(equal measured generated tokens per question) or flops (equal measured FLOPs; "
            "needs every role's parameter count); changes the report only, not the run id",
            metavar="{" + ",".join(OPTIMAL_AXES) + "}",
            parse=optimal_axis,
            group=GROUP_OUTPUT,
        ),
    )
    """Compute level of the compute-optimal choice (:data:`OPTIMAL_AXES`); the report's
    only, so not part of the run identity."""

    def __post_init__(self) -> None:
        self._check_types()
        if isinstance(self.verifier, str) and self.verifier.lower() == "none":
            object.__setattr__(self, "verifier", None)
        self._normalize_roles()
        if not self.budgets:
            raise UsageError("--budgets needs at least one budget, e.g. --budgets 1,2,4,8")
        for b in self.budgets:
            if isinstance(b, bool) or not isinstance(b, int) or b < 1:
                raise UsageError(f"budgets must be positive integers, got {b!r}")
        # `1,2`, `2,1` and `1,2,2` are one sweep: one run id, one config.json.
        object.__setattr__(self, "budgets", tuple(sorted(set(self.budgets))))
        for b in self.thinking_budgets:
            if isinstance(b, bool) or not isinstance(b, int) or b < 1:
                raise UsageError(f"thinking budgets must be positive integers, got {b!r}")
        object.__setattr__(self, "thinking_budgets", tuple(sorted(set(self.thinking_budgets))))
        if self.thinking is not None and (
            not isinstance(self.thinking, str) or not _thinking_ok(self.thinking)
        ):
            raise UsageError(
                f"setting thinking must be none, tags, open or OPEN,CLOSE delimiters, got "
                f"{self.thinking!r}"
            )
        if self.limit is not None and (not isinstance(self.limit, int) or self.limit < 1):
            raise UsageError(f"--limit must be a positive integer, got {self.limit!r}")
        if not self.strategies:
            raise UsageError("--strategy needs at least one strategy")
        if self.max_tokens is not None and self.max_tokens < 1:
            raise UsageError(f"--max-tokens must be positive, got {self.max_tokens}")
        for kind in self.bins:
            if kind not in BIN_KINDS:
                hint = did_you_mean(kind, BIN_KINDS)
                raise UsageError(f"unknown bins {kind!r}.{hint} Choose from {', '.join(BIN_KINDS)}")
        if self.difficulty_samples is not None and self.difficulty_samples < 1:
            raise UsageError(
                f"--difficulty-samples must be positive, got {self.difficulty_samples}"
            )
        if self.shard is not None:
            self.shard_index()
        if self.split is not None and self.split not in SPLITS:
            hint = did_you_mean(str(self.split), SPLITS, n=1)
            raise UsageError(f"unknown split {self.split!r}.{hint} Choose from {', '.join(SPLITS)}")
        if not 0 < self.split_fraction < 1:
            raise UsageError(
                f"--split-fraction must be strictly between 0 and 1, got {self.split_fraction}"
            )
        if self.split_seed is not None and self.split_seed < 0:
            raise UsageError(f"--split-seed must be an integer >= 0, got {self.split_seed}")
        if self.temperature is not None and (
            isinstance(self.temperature, bool)
            or not isinstance(self.temperature, int | float)
            or not math.isfinite(self.temperature)
            or self.temperature < 0
        ):
            raise UsageError(
                f"--temperature must be a finite number >= 0 (0 = greedy), got {self.temperature}"
            )
        if self.top_p is not None and (
            isinstance(self.top_p, bool)
            or not isinstance(self.top_p, int | float)
            or not 0 < self.top_p <= 1
        ):
            raise UsageError(f"--top-p must be in (0, 1] (1 = no nucleus cut), got {self.top_p}")
        if self.num_fewshot is not None and self.num_fewshot < 0:
            raise UsageError(f"--num-fewshot must be >= 0, got {self.num_fewshot}")
        if self.optimal_axis not in OPTIMAL_AXES:
            hint = did_you_mean(str(self.optimal_axis), OPTIMAL_AXES, n=1)
            raise UsageError(
                f"unknown optimal_axis {self.optimal_axis!r}.{hint} "
                f"Choose from {', '.join(OPTIMAL_AXES)}"
            )

    def _check_types(self) -> None:
        """Values from a config file arrive untyped: a wrong type is a usage error naming the
        setting, not a traceback later. Numbers are coerced where that loses nothing, so
        ``temperature: 1`` and ``--temperature 1`` are one setting."""
        ints = (
            "seed",
            "limit",
            "max_tokens",
            "chunk_samples",
            "difficulty_samples",
            "num_fewshot",
            "split_seed",
        )
        for name in ints:
            v = getattr(self, name)
            if v is not None and (isinstance(v, bool) or not isinstance(v, int)):
                raise UsageError(f"setting {name} must be an integer, got {v!r}")
        for name in ("temperature", "top_p", "split_fraction"):
            v = getattr(self, name)
            if v is not None:
                if isinstance(v, bool) or not isinstance(v, int | float):
                    raise UsageError(f"setting {name} must be a number, got {v!r}")
                object.__setattr__(self, name, float(v))
        if self.split is not None and not isinstance(self.split, str):
            raise UsageError(
                f"setting split must be one of {', '.join(SPLITS)} or null, got {self.split!r}"
            )
        for name in ("backend_args", "verifier_args", "roles"):
            if not isinstance(getattr(self, name), Mapping):
                raise UsageError(
                    f"setting {name} must be a mapping of options, got {getattr(self, name)!r}"
                )
        for name in ("model", "backend", "task", "output_dir", "leaderboard_dir"):
            if not isinstance(getattr(self, name), str) or not getattr(self, name):
                raise UsageError(f"setting {name} must be a non-empty string")
        if self.run_id is not None and (
            not isinstance(self.run_id, str)
            or self.run_id in ("", ".", "..")
            or "/" in self.run_id
            or "\\" in self.run_id
        ):
            raise UsageError(
                f"--run-id must be a plain folder name (no path separators), got {self.run_id!r}; "
                "choose the parent folder with --output-dir"
            )

    def _normalize_roles(self) -> None:
        """Roles as :class:`RoleSpec` s sorted by name, unset parts and roles dropped (a
        ``backend`` equal to the run's is unset: it means the same), and those stored in
        another setting moved there (``verifier``: ``verifier_args["model"]``)."""
        stored = {fld for fld, _ in ROLE_STORAGE.values()}
        settings = store_roles({"roles": self.roles, **{f: getattr(self, f) for f in stored}})
        for f in stored:
            object.__setattr__(self, f, settings[f])
        roles = {name: RoleSpec.from_dict(spec, name) for name, spec in settings["roles"].items()}
        # The run's backend named again is the run's backend: one spelling, one run id.
        roles = {n: replace(r, backend=None) if r.backend == self.backend else r
                 for n, r in roles.items()}  # fmt: skip
        object.__setattr__(self, "roles", {n: r for n, r in sorted(roles.items()) if r.to_dict()})

    def role(self, name: str) -> RoleSpec:
        """The model of role ``name`` as the run uses it: the policy's for ``policy`` and for
        a role the config does not name; a named role's unset parts filled from the policy
        (its backend options are the run's only when it runs on the run's backend and sets
        none). ``verifier``: the verifier's weights (``verifier_args["model"]``, None when
        the verifier has none)."""
        if name == "verifier":
            model = self.verifier_args.get("model")
            return RoleSpec(model=None if model is None else str(model))
        policy = RoleSpec(self.model, self.backend, dict(self.backend_args))
        spec = self.roles.get(name)
        if name == POLICY or spec is None:
            return policy
        backend = spec.backend or self.backend
        args = spec.backend_args
        if not args and backend == self.backend:
            args = self.backend_args
        return RoleSpec(spec.model or self.model, backend, dict(args), spec.template)

    @property
    def revision_model(self) -> str | None:
        """Shorthand: the ``reviser`` role's model as configured (None: the policy's)."""
        spec = self.roles.get("reviser")
        return spec.model if spec else None

    @property
    def revision_template(self) -> str | None:
        """Shorthand: the ``reviser`` role's template as configured (None: the task's, else
        the built-in one)."""
        spec = self.roles.get("reviser")
        return spec.template if spec else None

    def task_source_args(self) -> dict[str, Any]:
        """Options for a task of another harness (``lm_eval:NAME``), only those that are set."""
        args: dict[str, Any] = {}
        if self.num_fewshot is not None:
            args["num_fewshot"] = self.num_fewshot
        if self.apply_chat_template:
            args["apply_chat_template"] = True
        return args

    @property
    def question_split_seed(self) -> int:
        """The seed the question split is drawn with: ``split_seed``, else the run's seed."""
        return self.seed if self.split_seed is None else self.split_seed

    def question_split(self, problem_id: str, task_name: str | None = None) -> str:
        """The split (``calibration`` or ``test``) question ``problem_id`` of this run's task
        is in under this run's split settings, whether or not the run is limited to one: so
        a policy fitted on one run can tell whether another run's questions were its own.
        ``task_name``: the task spec's own name (the run draws with it; ``--task`` as
        written when omitted, the same for a built-in task named by its name)."""
        task = task_name or self.task
        return split_of(problem_id, task, self.question_split_seed, self.split_fraction)

    def split_record(self) -> dict[str, Any] | None:
        """The split as results.json records it (the seed in force); None: every question."""
        if self.split is None:
            return None
        return {
            "name": self.split,
            "fraction": self.split_fraction,
            "seed": self.question_split_seed,
        }

    def shard_index(self) -> tuple[int, int] | None:
        """(i, n) of ``--shard i/n``; None for an unsharded run."""
        if self.shard is None:
            return None
        try:
            i, n = (int(x) for x in str(self.shard).split("/"))
        except ValueError:
            raise UsageError(f"--shard expects i/n such as 0/4, got {self.shard!r}") from None
        if n < 1 or not 0 <= i < n:
            raise UsageError(f"--shard {self.shard}: need 0 <= i < n")
        return i, n

    def resolve(self, task_generation: Mapping[str, Any]) -> RunConfig:
        """Fill unset generation settings from the task spec, then from built-in defaults, so
        that config.json records the values actually used. A bad value in the spec is a
        :class:`DataError` naming the spec and the field, even where a flag overrides it: the
        spec is broken for every other run."""
        given = check_task_generation(task_generation, lambda: self._task_spec_label())
        base: dict[str, Any] = {"temperature": 0.7, "top_p": 1.0, "max_tokens": 256, **given}
        return replace(
            self,
            temperature=self.temperature if self.temperature is not None else base["temperature"],
            top_p=self.top_p if self.top_p is not None else base["top_p"],
            max_tokens=self.max_tokens if self.max_tokens is not None else base["max_tokens"],
            stop=self.stop if self.stop is not None else tuple(base.get("stop", ())),
            thinking=self.thinking if self.thinking is not None else base.get("thinking"),
        )

    def _task_spec_label(self) -> str:
        """``task spec 'x' (DIR/x.yaml)``: the run's task as the user can find it."""
        from ttc_eval.tasks._spec import available_tasks

        if ":" in self.task:  # another harness's task: no file of ours to name
            return f"task {self.task!r}"
        path = available_tasks(self.include_path).get(self.task)
        return f"task spec {self.task!r}" + (f" ({path})" if path else "")

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["strategies"] = [s.to_dict() for s in self.strategies]
        d["roles"] = {name: spec.to_dict() for name, spec in self.roles.items()}
        d["include_path"] = list(self.include_path)
        d["budgets"] = list(self.budgets)
        d["thinking_budgets"] = list(self.thinking_budgets)
        d["bins"] = list(self.bins)
        if self.stop is not None:
            d["stop"] = list(self.stop)
        return d

    # Keys of config files and config.json written by earlier versions: the reviser role's
    # model and template.
    LEGACY_KEYS = ("revision_model", "revision_template")

    @classmethod
    def setting_names(cls) -> list[str]:
        """Every key a config file may hold."""
        return [f.name for f in fields(cls)] + list(cls.LEGACY_KEYS)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> RunConfig:
        known = set(cls.setting_names())
        unknown = set(d) - known
        if unknown:
            raise UsageError(f"unknown config keys {sorted(unknown)}; known: {sorted(known)}")
        kw = dict(d)
        # A config file may write a list as one string: "majority,best_of_n", "oracle", "##".
        for k in ("strategies", "bins", "include_path"):
            if isinstance(kw.get(k), str):
                kw[k] = [x.strip() for x in kw[k].split(",") if x.strip()]
        if isinstance(kw.get("stop"), str):
            kw["stop"] = [kw["stop"]]
        for k in ("budgets", "thinking_budgets"):
            if isinstance(kw.get(k), int) and not isinstance(kw.get(k), bool):
                kw[k] = [kw[k]]
        kw = canonical_settings(kw)
        try:
            if "strategies" in kw:
                kw["strategies"] = tuple(
                    StrategySpec.parse(s)
                    if isinstance(s, str)
                    else StrategySpec(s["name"], dict(s.get("args") or {}))
                    for s in kw["strategies"]
                )
            for k in ("budgets", "thinking_budgets", "include_path", "bins", "stop"):
                if kw.get(k) is not None:
                    kw[k] = tuple(kw[k])
            return cls(**kw)
        except UsageError:
            raise
        except (TypeError, ValueError, KeyError, AttributeError) as e:
            raise UsageError(
                f"bad run settings ({type(e).__name__}: {e}); check the types in --config "
                "(e.g. budgets: [1, 2, 4], strategies: [majority], max_tokens: 256)"
            ) from None

    # Settings that do not change any number: excluded from the run identity.
    _NOT_IDENTITY = (
        "output_dir",
        "run_id",
        "leaderboard_dir",
        "cache",
        "chunk_samples",
        "bins",
        "optimal_axis",
    )
    # Backend options that do not change any number.
    _NOT_IDENTITY_BACKEND_ARGS = ("batch_size", "progress", "threads")

    def identity(self) -> dict[str, Any]:
        """The settings that change a number, as the run id hashes them. Settings added later
        count only when set, so that older runs keep their run ids: the reviser role is the
        ``revision_model`` and ``revision_template`` of earlier versions, and ``roles`` holds
        only what those could not say."""
        d = self.to_dict()
        for k in self._NOT_IDENTITY:
            d.pop(k)
        for k in ("grader", "num_fewshot", "apply_chat_template", "stop", "thinking_budgets"):
            if not d[k]:
                d.pop(k)
        if d["thinking"] in (None, "none"):
            d.pop("thinking")
        # The split settings choose the questions only when a split is: a run of every
        # question keeps its run id whatever they hold. The seed counts as drawn, so leaving
        # it to default to --seed and writing that seed are one run.
        d.pop("split_fraction")
        d.pop("split_seed")
        if d["split"] is None:
            d.pop("split")
        else:
            d["split"] = self.split_record()
        d["backend_args"] = self._identity_backend_args(d["backend_args"])
        roles: dict[str, dict[str, Any]] = {}
        for name, spec in d.pop("roles").items():
            spec = dict(spec)
            if name == "reviser":
                d["revision_model"] = spec.pop("model", None)
                d["revision_template"] = spec.pop("template", None)
            if "backend_args" in spec:
                spec["backend_args"] = self._identity_backend_args(spec["backend_args"])
                if not spec["backend_args"]:
                    spec.pop("backend_args")
            if spec:
                roles[name] = spec
        d.setdefault("revision_model", None)
        d.setdefault("revision_template", None)
        if roles:
            d["roles"] = roles
        # One spelling per file: `data.jsonl`, `./data.jsonl` and an absolute path (or a
        # config-relative one from another folder) are one setting.
        if d.get("data_files"):
            d["data_files"] = os.path.abspath(os.path.expanduser(d["data_files"]))
        d["include_path"] = [os.path.abspath(os.path.expanduser(p)) for p in d["include_path"]]
        return d

    def _identity_backend_args(self, args: Mapping[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in args.items() if k not in self._NOT_IDENTITY_BACKEND_ARGS}

    def default_run_id(self) -> str:
        digest = hashlib.sha256(json.dumps(self.identity(), sort_keys=True).encode()).hexdigest()[
            :10
        ]
        model = self.model.rstrip("/").split("/")[-1]
        return f"{self.task.replace(':', '_')}-{model}-{digest}"


ROLE_STORAGE: dict[str, tuple[str, str]] = {"verifier": ("verifier_args", "model")}
"""Roles stored in another setting, as (field, key): the verifier's weights have always been
``verifier_args["model"]``, so ``--role verifier=M`` writes there (one setting, one run id)."""


def store_roles(settings: Mapping[str, Any], override: Container[str] = ()) -> dict[str, Any]:
    """``settings`` with the roles of :data:`ROLE_STORAGE` moved out of ``roles`` into their
    setting. A different value already there is refused, or replaced in the settings named
    in ``override``."""
    out = dict(settings)
    roles = out.get("roles")
    if roles is None:
        roles = {}
    if not isinstance(roles, Mapping):
        raise UsageError(f"setting roles must be a mapping of role names to models, got {roles!r}")
    roles = {_check_role_name(name): spec for name, spec in roles.items()}
    for name, (fld, key) in ROLE_STORAGE.items():
        if name not in roles:
            continue
        spec = RoleSpec.from_dict(roles.pop(name), name)
        if spec.backend is not None or spec.backend_args or spec.template is not None:
            raise UsageError(
                f"the {name} role takes a model only; its options go in "
                f"--{fld.replace('_', '-')} ({fld} in a config file)"
            )
        target = out.get(fld)
        if target is None:
            target = {}
        if not isinstance(target, Mapping):
            raise UsageError(f"setting {fld} must be a mapping of options, got {target!r}")
        have = target.get(key)
        if spec.model is None or have == spec.model:
            continue
        if have is not None and fld not in override:
            raise UsageError(
                f"two {name} models: {spec.model!r} as the {name} role and {have!r} as "
                f"{fld} {key}; give one"
            )
        out[fld] = {**target, key: spec.model}
    out["roles"] = roles
    return out


def canonical_settings(settings: Mapping[str, Any]) -> dict[str, Any]:
    """Settings (config-file keys) with roles in one form: the ``revision_model`` and
    ``revision_template`` of earlier versions as the ``reviser`` role's model and template,
    each role a mapping of its set parts, and roles stored elsewhere moved there (see
    :func:`store_roles`)."""
    kw = dict(settings)
    roles = kw.get("roles")
    if roles is None:
        roles = {}
    if not isinstance(roles, Mapping):
        raise UsageError(f"setting roles must be a mapping of role names to models, got {roles!r}")
    roles = {
        _check_role_name(name): RoleSpec.from_dict(spec, str(name)).to_dict()
        for name, spec in roles.items()
    }
    for part, key in (("model", "revision_model"), ("template", "revision_template")):
        value = kw.pop(key, None)
        if value is None:
            continue
        reviser = roles.setdefault("reviser", {})
        if reviser.get(part, value) != value:
            raise UsageError(
                f"two reviser {part}s: {reviser[part]!r} in roles and {value!r} as {key}; give one"
            )
        reviser[part] = value
    kw["roles"] = roles
    return store_roles(kw)


# ----------------------------------------------------------------------------------------------
# Flags that write part of a setting.


def read_template_file(text: str, what: str) -> str:
    """The text of a prompt-template file named on the command line."""
    path = Path(text)
    if not path.is_file():
        raise UsageError(f"{what} {path}: no such file")
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise UsageError(f"{what} {path}: cannot be read as text ({e})") from None


def _read_template(text: str) -> str:
    return read_template_file(text, "--revision-template")


def _role_setting(value: tuple[str, RoleSpec]) -> dict[str, Any]:
    name, spec = value
    return {name: spec.to_dict()}


@dataclass(frozen=True)
class Shorthand:
    """A flag of ``ttc-eval run`` that writes into a setting (or a part of one) rather than
    being a setting: the value lands at ``key`` inside the mapping of ``field``, merged with
    what a config file or other flags put there."""

    flag: str
    """The flag."""
    field: str
    """The :class:`RunConfig` field it writes into."""
    help: str
    """Help text, its default included."""
    key: tuple[str, ...] = ()
    """Where inside the field's mapping (empty: the field itself; a mapping value is merged
    into it)."""
    metavar: str | None = None
    """The value's placeholder in ``--help``."""
    parse: Callable[[str], Any] | None = None
    """argparse type of the flag's text."""
    setting: Callable[[Any], Any] | None = None
    """Turns the parsed value into what is written (may raise UsageError)."""
    switch: bool = False
    """A flag without a value; ``setting(True)`` is written when given."""
    repeat: bool = False
    """The flag may be given several times; each is written in turn."""
    group: str | None = None
    """Section of ``--help``; default: the field's."""

    @property
    def dest(self) -> str:
        """Its attribute in argparse's namespace."""
        return self.flag.lstrip("-").replace("-", "_")

    def values(self, given: Any) -> Iterator[Any]:
        """What the flag writes, one item per time it was given."""
        for value in given if self.repeat else [given]:
            yield self.setting(value) if self.setting else value

    def write(self, settings: dict[str, Any], value: Any) -> None:
        """Write ``value`` into ``settings`` (a config file's keys) at ``field`` / ``key``."""
        path = (self.field, *self.key)
        target = settings
        for i, k in enumerate(path[:-1]):
            inner = target.get(k)
            if inner is None:
                inner = {}
            elif not isinstance(inner, Mapping):
                raise UsageError(
                    f"{self.flag}: setting {'.'.join(path[: i + 1])} must be a mapping, "
                    f"got {inner!r}"
                )
            target[k] = inner = dict(inner)
            target = inner
        target[path[-1]] = _merged(target.get(path[-1]), value)


def _merged(old: Any, new: Any) -> Any:
    """``new`` over ``old``; mappings merge key by key."""
    if isinstance(old, Mapping) and isinstance(new, Mapping):
        out = dict(old)
        for k, v in new.items():
            out[k] = _merged(out.get(k), v)
        return out
    return new


SHORTHANDS: tuple[Shorthand, ...] = (
    Shorthand(
        "--base-url",
        "backend_args",
        "openai backend: server URL(s), e.g. http://host:8000/v1 (default: none)",
        key=("base_url",),
        metavar="URL[,URL...]",
    ),
    Shorthand(
        "--role",
        "roles",
        "the model of a role other than the policy, "
        "ROLE=MODEL[:backend=NAME][:template=FILE][:K=V...] (K=V: the role's backend "
        "options; without backend=, the run's backend and options; template=: the role's "
        "prompt template), e.g. reviser=smollm2-360m; roles: reviser (the revisions "
        "strategy), judge (self-judge), verifier (as --verifier-model) and those plug-ins "
        "declare; repeatable (default: every role uses the policy's model)",
        metavar="ROLE=SPEC",
        parse=parse_role_flag,
        setting=_role_setting,
        repeat=True,
        group=GROUP_MODELS,
    ),
    Shorthand(
        "--revision-model",
        "roles",
        "model that writes the revisions of the revisions strategy; as --role reviser=MODEL "
        "(default: the policy)",
        key=("reviser", "model"),
        metavar="MODEL",
        group=GROUP_MODELS,
    ),
    Shorthand(
        "--revision-template",
        "roles",
        "file holding the revision prompt, with {question} and {attempts} "
        "(default: the task's, else the built-in prompt)",
        key=("reviser", "template"),
        metavar="FILE",
        setting=_read_template,
        group=GROUP_MODELS,
    ),
    Shorthand(
        "--verifier-model",
        "verifier_args",
        "weights of the verifier; PRMs need it; as --role verifier=MODEL "
        "(default: none; self-judge uses the policy)",
        key=("model",),
        metavar="MODEL",
    ),
    Shorthand(
        "--no-cache",
        "cache",
        "do not read or write the generation cache (default: use it)",
        setting=lambda _: False,
        switch=True,
        group=GROUP_OUTPUT,
    ),
)
"""Every flag of ``ttc-eval run`` that is not a field of its own."""


def run_options(config: type[RunConfig] = RunConfig) -> list[tuple[Field[Any], Option]]:
    """The fields of ``config`` that are flags, with their declarations, in field order."""
    out = []
    for f in fields(config):
        opt = option_of(f)
        if opt is not None:
            out.append((f, opt))
    return out


def settings_from_flags(
    given: Mapping[str, Any],
    settings: Mapping[str, Any] | None = None,
    config: type[RunConfig] = RunConfig,
    shorthands: Sequence[Shorthand] = SHORTHANDS,
) -> dict[str, Any]:
    """Config-file keys: ``settings`` (a config file's) with the flags in ``given`` (argparse
    values by dest, None for a flag not given) written over them. A flag of a field replaces
    the setting; a shorthand writes its part of one. Two flags that write different values
    into one place are refused."""
    out = canonical_settings(settings or {})
    for f, opt in run_options(config):
        value = given.get(f.name)
        if value is not None:
            out[f.name] = opt.setting(value) if opt.setting else value
    written: dict[tuple[str, ...], tuple[str, Any]] = {}
    for sh in shorthands:
        if given.get(sh.dest) is None:
            continue
        for value in sh.values(given[sh.dest]):
            for path, leaf in _leaves((sh.field, *sh.key), value):
                if len(path) == 3 and path[0] == "roles" and path[2] == "model":
                    path = ROLE_STORAGE.get(path[1], path)  # where that role is stored
                if path in written and written[path][1] != leaf:
                    raise UsageError(
                        f"{written[path][0]} and {sh.flag} set {'.'.join(path)} to different "
                        f"values ({written[path][1]!r}, {leaf!r}); give one"
                    )
                written[path] = (sh.flag, leaf)
            sh.write(out, value)
    # A role stored elsewhere that a flag named replaces what the config file put there, not
    # what another flag did.
    return store_roles(out, override={f for f, _ in ROLE_STORAGE.values() if given.get(f) is None})


def _leaves(path: tuple[str, ...], value: Any) -> Iterator[tuple[tuple[str, ...], Any]]:
    if isinstance(value, Mapping) and value:
        for k, v in value.items():
            yield from _leaves((*path, str(k)), v)
    else:
        yield path, value
