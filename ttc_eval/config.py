"""The resolved configuration of a run: everything needed to rebuild it, recorded in config.json."""

from __future__ import annotations

import difflib
import hashlib
import json
import math
import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from typing import Any

import yaml

from ttc_eval.analysis.bins import BIN_KINDS
from ttc_eval.errors import UsageError
from ttc_eval.models import DEFAULT_MODEL


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
        return cls(name, args)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "args": dict(self.args)}


@dataclass(frozen=True)
class RunConfig:
    """One run. Defaults are the embedded default run: SmolLM2 on arith, budgets 1..16."""

    model: str = DEFAULT_MODEL
    """Alias, hub id or local directory of the policy model."""
    backend: str = "hf"
    """Registered backend."""
    backend_args: Mapping[str, Any] = field(default_factory=dict)
    """Backend options (``dtype``, ``batch_size``, ...)."""
    task: str = "arith"
    """Registered task name."""
    data_files: str | None = None
    """Local JSON/JSONL file replacing the task's hub dataset."""
    include_path: tuple[str, ...] = ()
    """Extra folders with task specs."""
    limit: int | None = None
    """Use only the first N questions."""
    strategies: tuple[StrategySpec, ...] = (StrategySpec("majority"), StrategySpec("best_of_n"))
    """Strategies to evaluate."""
    verifier: str | None = "logprob"
    """Registered verifier that scores steps (``none`` for no verifier)."""
    verifier_args: Mapping[str, Any] = field(default_factory=dict)
    """Verifier options."""
    budgets: tuple[int, ...] = (1, 2, 4, 8, 16)
    """Generation budgets N."""
    seed: int = 0
    """Sampling seed."""
    temperature: float | None = None
    """Sampling temperature of the pool (default: the task's, else 0.7)."""
    top_p: float | None = None
    """Nucleus sampling mass (default: the task's, else 1.0)."""
    max_tokens: int | None = None
    """Maximum generated tokens per sample (default: the task's, else 256)."""
    step_delimiter: str = "\n\n"
    """Separates the steps of a solution."""
    output_dir: str = "runs"
    """Parent folder of run directories."""
    run_id: str | None = None
    """Run directory name; default: derived from the settings, so a rerun resumes."""
    leaderboard_dir: str = "leaderboards"
    """Where ``<task>.csv`` leaderboards are updated."""
    cache: bool = True
    """Use the generation cache."""
    chunk_samples: int = 256
    """Samples generated between writes of finished questions."""
    bins: tuple[str, ...] = ("oracle", "predicted", "label")
    """Difficulty bins to report: ``oracle`` (the policy's pass@1), ``predicted`` (mean
    verifier score), ``label`` (the dataset's own labels, e.g. MATH level)."""
    difficulty_samples: int | None = None
    """Samples per question of a dedicated pass that measures difficulty (default: the
    largest sampled pool of the run)."""
    shard: str | None = None
    """``i/n``: run only questions i, i+n, i+2n, ... (0-based); ``ttc-eval merge`` joins the
    n shard runs into one."""
    revision_model: str | None = None
    """Model that writes revisions (``revisions`` strategy), through the run's backend with
    its options; default: the policy model."""
    revision_template: str | None = None
    """Revision prompt (text with ``{question}`` and ``{attempts}``); default: the task's,
    else the built-in one."""
    grader: str | None = None
    """Registered grader replacing the task's own (default: the task's)."""
    num_fewshot: int | None = None
    """Few-shot examples in the prompt of an lm-eval task (default: the task's own)."""
    apply_chat_template: bool = False
    """Send an lm-eval task's prompt through the model's chat template (as lm-eval's
    ``--apply_chat_template``); default: the raw prompt, as lm-eval does."""
    stop: tuple[str, ...] | None = None
    """Stop strings of every sample (set from the task: lm-eval's ``until``)."""

    def __post_init__(self) -> None:
        self._check_types()
        if not self.budgets:
            raise UsageError("--budgets needs at least one budget, e.g. --budgets 1,2,4,8")
        for b in self.budgets:
            if isinstance(b, bool) or not isinstance(b, int) or b < 1:
                raise UsageError(f"budgets must be positive integers, got {b!r}")
        # `1,2`, `2,1` and `1,2,2` are one sweep: one run id, one config.json.
        object.__setattr__(self, "budgets", tuple(sorted(set(self.budgets))))
        if self.limit is not None and (not isinstance(self.limit, int) or self.limit < 1):
            raise UsageError(f"--limit must be a positive integer, got {self.limit!r}")
        if not self.strategies:
            raise UsageError("--strategy needs at least one strategy")
        if self.max_tokens is not None and self.max_tokens < 1:
            raise UsageError(f"--max-tokens must be positive, got {self.max_tokens}")
        for kind in self.bins:
            if kind not in BIN_KINDS:
                close = difflib.get_close_matches(kind, BIN_KINDS, n=1)
                hint = f" Did you mean {close[0]}?" if close else ""
                raise UsageError(f"unknown bins {kind!r}.{hint} Choose from {', '.join(BIN_KINDS)}")
        if self.difficulty_samples is not None and self.difficulty_samples < 1:
            raise UsageError(
                f"--difficulty-samples must be positive, got {self.difficulty_samples}"
            )
        if self.shard is not None:
            self.shard_index()
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

    def _check_types(self) -> None:
        """Values from a config file arrive untyped: a wrong type is a usage error naming the
        setting, not a traceback later. Numbers are coerced where that loses nothing, so
        ``temperature: 1`` and ``--temperature 1`` are one setting."""
        ints = ("seed", "limit", "max_tokens", "chunk_samples", "difficulty_samples", "num_fewshot")
        for name in ints:
            v = getattr(self, name)
            if v is not None and (isinstance(v, bool) or not isinstance(v, int)):
                raise UsageError(f"setting {name} must be an integer, got {v!r}")
        for name in ("temperature", "top_p"):
            v = getattr(self, name)
            if v is not None:
                if isinstance(v, bool) or not isinstance(v, int | float):
                    raise UsageError(f"setting {name} must be a number, got {v!r}")
                object.__setattr__(self, name, float(v))
        for name in ("backend_args", "verifier_args"):
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

    def task_source_args(self) -> dict[str, Any]:
        """Options for a task of another harness (``lm_eval:NAME``), only those that are set."""
        args: dict[str, Any] = {}
        if self.num_fewshot is not None:
            args["num_fewshot"] = self.num_fewshot
        if self.apply_chat_template:
            args["apply_chat_template"] = True
        return args

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
        that config.json records the values actually used."""
        from dataclasses import replace

        base = {"temperature": 0.7, "top_p": 1.0, "max_tokens": 256, **task_generation}
        return replace(
            self,
            temperature=self.temperature
            if self.temperature is not None
            else float(base["temperature"]),
            top_p=self.top_p if self.top_p is not None else float(base["top_p"]),
            max_tokens=self.max_tokens if self.max_tokens is not None else int(base["max_tokens"]),
            stop=self.stop if self.stop is not None else tuple(base.get("stop", ())),
        )

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["strategies"] = [s.to_dict() for s in self.strategies]
        d["include_path"] = list(self.include_path)
        d["budgets"] = list(self.budgets)
        d["bins"] = list(self.bins)
        if self.stop is not None:
            d["stop"] = list(self.stop)
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> RunConfig:
        known = {f.name for f in fields(cls)}
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
        if isinstance(kw.get("budgets"), int) and not isinstance(kw.get("budgets"), bool):
            kw["budgets"] = [kw["budgets"]]
        try:
            if "strategies" in kw:
                kw["strategies"] = tuple(
                    StrategySpec.parse(s)
                    if isinstance(s, str)
                    else StrategySpec(s["name"], dict(s.get("args") or {}))
                    for s in kw["strategies"]
                )
            for k in ("budgets", "include_path", "bins", "stop"):
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
    _NOT_IDENTITY = ("output_dir", "run_id", "leaderboard_dir", "cache", "chunk_samples", "bins")

    def identity(self) -> dict[str, Any]:
        d = self.to_dict()
        for k in self._NOT_IDENTITY:
            d.pop(k)
        # Settings added later count only when set, so that older runs keep their run ids.
        for k in ("grader", "num_fewshot", "apply_chat_template", "stop"):
            if not d[k]:
                d.pop(k)
        d["backend_args"] = {
            k: v for k, v in d["backend_args"].items() if k not in ("batch_size", "progress")
        }
        # One spelling per file: `data.jsonl`, `./data.jsonl` and an absolute path (or a
        # config-relative one from another folder) are one setting.
        if d.get("data_files"):
            d["data_files"] = os.path.abspath(os.path.expanduser(d["data_files"]))
        d["include_path"] = [os.path.abspath(os.path.expanduser(p)) for p in d["include_path"]]
        return d

    def default_run_id(self) -> str:
        digest = hashlib.sha256(json.dumps(self.identity(), sort_keys=True).encode()).hexdigest()[
            :10
        ]
        model = self.model.rstrip("/").split("/")[-1]
        return f"{self.task.replace(':', '_')}-{model}-{digest}"
