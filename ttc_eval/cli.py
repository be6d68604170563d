"""The ``ttc-eval`` command line: one registered :class:`Command` per subcommand (``ttc-eval
list commands``). The options of ``run`` are generated from the settings they set (see
:mod:`ttc_eval.config`)."""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import math
import os
import re
import shutil
import sys
import textwrap
import warnings
from collections.abc import Callable, Sequence
from dataclasses import Field, dataclass
from pathlib import Path
from typing import Any, NoReturn

import yaml

from ttc_eval._rundir import run_dirs
from ttc_eval.config import (
    GROUPS,
    OPTIMAL_AXES,
    SHORTHANDS,
    TASK_DEFAULT,
    Option,
    RunConfig,
    Shorthand,
    StrategySpec,
    bounded,
    key_values,
    optimal_axis,
    positive_int,
    run_options,
    settings_from_flags,
)
from ttc_eval.errors import TTCError, UsageError, did_you_mean
from ttc_eval.registry import ALL_REGISTRIES, COMMANDS

# Loggers of libraries that ttc-eval drives; their notices are not the user's business unless
# they ask (``ttc-eval run --verbose``). Errors still show.
_THIRD_PARTY_LOGGERS = (
    "datasets",
    "transformers",
    "math_verify",
    "latex2sympy2_extended",
    "httpx",
    "vllm",
    "torch",
    "huggingface_hub",
    "urllib3",
    "filelock",
    "lm_eval",
)
# Libraries that configure their own logging from the environment when they are imported
# (after this runs); a user's own setting wins.
_QUIET_ENV = {
    "DATASETS_VERBOSITY": "error",
    "TRANSFORMERS_VERBOSITY": "error",
    "TRANSFORMERS_NO_ADVISORY_WARNINGS": "1",
    "VLLM_LOGGING_LEVEL": "ERROR",
    "TOKENIZERS_PARALLELISM": "false",
    # transformers' "Loading weights" and the hub's download bars (read once, at import).
    "HF_HUB_DISABLE_PROGRESS_BARS": "1",
}


def quiet_third_party() -> None:
    """Silence third-party logs and warnings in this process (not ttc-eval's own messages)."""
    for name, value in _QUIET_ENV.items():
        os.environ.setdefault(name, value)
    for name in _THIRD_PARTY_LOGGERS:
        logging.getLogger(name).setLevel(logging.ERROR)
    # The logger levels above are what datasets' and transformers' set_verbosity_error() set;
    # a library imported already has read its environment, so its bars are turned off here.
    if "datasets" in sys.modules:
        import datasets

        datasets.disable_progress_bars()
    warnings.filterwarnings("ignore")
    warnings.filterwarnings("default", module=r"ttc_eval(\.|$)")


# ----------------------------------------------------------------------------------------------
# Value types of the other commands' options (those of `run` are declared with its settings).

_alpha = bounded("a significance level in (0, 1)", lambda v: 0 < v < 1)
_drop = bounded("an allowed accuracy drop >= 0, e.g. 0.02", lambda v: v >= 0)
_count = bounded("a positive number such as 1.5e9", lambda v: v > 0)


def _ratios(text: str) -> tuple[float, ...]:
    try:
        values = tuple(float(x) for x in text.split(",") if x.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected numbers like 0.16,0.79,22, got {text!r}"
        ) from None
    if not values or any(not math.isfinite(v) or v <= 0 for v in values):
        raise argparse.ArgumentTypeError(f"ratios must be positive numbers, got {text!r}")
    return values


def _hint(name: str, choices: Sequence[str], cutoff: float) -> str:
    """``did you mean X?`` (argparse's lowercase style), or empty."""
    hint = did_you_mean(name, choices, n=1, cutoff=cutoff).strip()
    return hint.replace("Did you mean: ", "did you mean ", 1)


class _Parser(argparse.ArgumentParser):
    """Usage errors: one line saying what is wrong, one line saying where help is; exit 2."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", argparse.RawDescriptionHelpFormatter)
        super().__init__(*args, **kwargs)
        self.commands: dict[str, _Parser] = {}

    def error(self, message: str) -> NoReturn:
        m = re.search(r"invalid choice: '([^']*)' \(choose from (.*)\)", message)
        if m:
            hint = _hint(m.group(1), re.findall(r"'([^']*)'", m.group(2)), cutoff=0.6)
            message += f"; {hint}" if hint else ""
        print(f"ttc-eval: error: {message}\nsee {self.prog} --help", file=sys.stderr)
        raise SystemExit(2)

    def unrecognized(self, extra: Sequence[str]) -> NoReturn:
        options = [s for a in self._actions for s in a.option_strings]
        described = []
        for arg in extra:
            flag = arg.split("=", 1)[0]
            hint = _hint(flag, options, cutoff=0.75) if flag.startswith("--") else ""
            described.append(f"{arg} ({hint})" if hint else arg)
        self.error(f"unrecognized arguments: {' '.join(described)}")


# ----------------------------------------------------------------------------------------------
# Subcommands.


@dataclass(frozen=True)
class Command:
    """A subcommand of ``ttc-eval``, registered in :data:`ttc_eval.registry.COMMANDS` under
    its name (``registry.command(name)(Command(...))``, or :func:`subcommand` on its ``run``)."""

    name: str
    """What the user types: ``ttc-eval NAME``."""
    help: str
    """One line for ``ttc-eval --help`` and ``ttc-eval list commands``."""
    add_arguments: Callable[[argparse.ArgumentParser], None]
    """Declares the command's arguments and options, each help saying its default."""
    run: Callable[[argparse.Namespace], int]
    """Does the work; returns the exit code. TTCErrors become one-line messages."""
    passthrough: bool = False
    """Takes its command line unparsed, as ``args.argv`` (a front end for another tool's own
    command line, such as ``lm-eval``)."""
    quick_exit: bool = False
    """Leaves nothing open once it succeeds (every file written, closed and flushed, no
    engine or worker running): the console script then ends the process without freeing
    its objects one by one, which takes a report of 500 x 256 samples more than a second."""


def _no_arguments(parser: argparse.ArgumentParser) -> None:
    return None


def subcommand(
    name: str,
    help: str,
    add_arguments: Callable[[argparse.ArgumentParser], None] = _no_arguments,
    passthrough: bool = False,
    quick_exit: bool = False,
) -> Callable[[Callable[[argparse.Namespace], int]], Command]:
    """Decorator: register the decorated function as the ``run`` of command ``name``."""

    def deco(run: Callable[[argparse.Namespace], int]) -> Command:
        command = Command(name, help, add_arguments, run, passthrough, quick_exit)
        return COMMANDS.register(name)(command)

    return deco


# `ttc-eval list KIND`: tasks, and every registry by its plural.
LIST_KINDS = ("tasks", *(r.plural for r in ALL_REGISTRIES))


# ----------------------------------------------------------------------------------------------
# `run`: options generated from RunConfig.


def _show(value: Any) -> str:
    """A default as it is written on the command line."""
    if isinstance(value, tuple | list):
        return ",".join(_show(v) for v in value)
    name = getattr(value, "name", None)
    if isinstance(name, str) and hasattr(value, "args"):  # StrategySpec
        return name + "".join(f":{k}={v}" for k, v in value.args.items())
    return "none" if value is None else str(value)


_EPILOG = """\
Options without a command mean `run`: `ttc-eval --task arith --budgets 1,4` is
`ttc-eval run --task arith --budgets 1,4`, and `ttc-eval run` alone is the embedded default.
`ttc-eval COMMAND --help` lists the options of a command, each with its default."""

_FORCE_NEW_HELP = (
    "start the run afresh when the run directory holds a run with other settings or code "
    "versions: the earlier run is moved aside, nothing is deleted (default: stop with an "
    "error that lists what differs)"
)


def _default_text(f: Field[Any], opt: Option, config: type[RunConfig]) -> str:
    if opt.default_text == TASK_DEFAULT:
        # What a run uses when neither the flag nor the task says.
        return TASK_DEFAULT.format(_show(getattr(config().resolve({}), f.name)))
    if opt.default_text is not None:
        return opt.default_text
    return _show(getattr(config(), f.name))


def _add_field_option(
    group: argparse._ArgumentGroup, f: Field[Any], opt: Option, config: type[RunConfig]
) -> None:
    kwargs: dict[str, Any] = {
        "dest": f.name,
        "help": f"{opt.help} (default: {_default_text(f, opt, config)})",
    }
    if opt.switch:
        kwargs.update(action="store_true", default=None)
    else:
        kwargs.update(metavar=opt.metavar, type=opt.parse)
        if opt.repeat:
            kwargs["action"] = "append"
    group.add_argument(opt.flag_for(f.name), **kwargs)


def _add_shorthand(group: argparse._ArgumentGroup, sh: Shorthand) -> None:
    kwargs: dict[str, Any] = {"dest": sh.dest, "help": sh.help}
    if sh.switch:
        kwargs.update(action="store_true", default=None)
    else:
        kwargs.update(metavar=sh.metavar, type=sh.parse)
        if sh.repeat:
            kwargs["action"] = "append"
    group.add_argument(sh.flag, **kwargs)


def add_run_options(
    parser: argparse.ArgumentParser,
    config: type[RunConfig] = RunConfig,
    shorthands: Sequence[Shorthand] = SHORTHANDS,
) -> None:
    """The options of ``run``: one per field of ``config`` declared with
    :func:`~ttc_eval.config.option`, and the ``shorthands`` (each after the field it writes
    into), in sections; then the invocation's own options."""
    options = run_options(config)
    group_of = {f.name: opt.group for f, opt in options}
    placed = {sh.flag: sh.group or group_of.get(sh.field, "run settings") for sh in shorthands}
    titles = [*GROUPS, *dict.fromkeys(list(group_of.values()) + list(placed.values()))]
    for title in dict.fromkeys(titles):
        fields_here = [(f, opt) for f, opt in options if opt.group == title]
        shorthands_here = [sh for sh in shorthands if placed[sh.flag] == title]
        if not fields_here and not shorthands_here:
            continue
        group = parser.add_argument_group(title)
        for f, opt in fields_here:
            _add_field_option(group, f, opt, config)
            for sh in shorthands_here:
                if sh.field == f.name:
                    _add_shorthand(group, sh)
        for sh in shorthands_here:
            if sh.field not in {f.name for f, _ in fields_here}:
                _add_shorthand(group, sh)
    parser.add_argument(
        "--config",
        metavar="FILE",
        help="YAML file of run settings, keyed as the fields of config.json (roles: a map "
        "such as {reviser: smollm2-360m}); flags given here override it; its relative "
        "data_files and include_path resolve against the file's folder (default: none)",
    )
    parser.add_argument("--force-new", action="store_true", help=_FORCE_NEW_HELP)
    parser.add_argument(
        "--quiet", action="store_true", help="no progress bars (default: progress on stderr)"
    )
    parser.add_argument(
        "--verbose",
        action="store_true",
        help="show third-party library logs and warnings (default: hidden)",
    )


def _against(folder: Path, value: Any, key: str, config: Path) -> str:
    """A path from a config file, relative to the file's folder (absolute and ~ kept)."""
    if not isinstance(value, str) or not value:
        raise UsageError(f"--config {config}: {key} must be a path, got {value!r}")
    path = Path(value).expanduser()
    return str(path) if path.is_absolute() else os.path.normpath(folder / path)


def _read_config(path: Path) -> dict[str, Any]:
    """The settings of a ``--config`` file; its input paths resolved against its folder."""
    from ttc_eval.tasks._spec import describe_yaml_error

    if not path.is_file():
        raise UsageError(f"--config {path}: no such file")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise UsageError(f"--config {path}: cannot be read as text ({e})") from None
    try:
        loaded = yaml.safe_load(text) or {}
    except yaml.YAMLError as e:
        raise UsageError(f"--config {describe_yaml_error(path, text, e)}") from None
    if not isinstance(loaded, dict):
        raise UsageError(f"--config {path}: expected a mapping of settings, such as task: arith")
    folder = path.parent
    if loaded.get("data_files") is not None:
        loaded["data_files"] = _against(folder, loaded["data_files"], "data_files", path)
    if loaded.get("include_path") is not None:
        paths = loaded["include_path"]
        paths = [paths] if isinstance(paths, str) else paths
        if not isinstance(paths, list):
            raise UsageError(f"--config {path}: include_path must be a list of folders")
        loaded["include_path"] = [_against(folder, p, "include_path", path) for p in paths]
    return loaded


def config_from_args(args: argparse.Namespace, config: type[RunConfig] = RunConfig) -> RunConfig:
    """The run's settings: the ``--config`` file's, with the flags given over them."""
    loaded = _read_config(Path(args.config)) if args.config else {}
    known = config.setting_names()
    unknown = set(loaded) - set(known)
    if unknown:
        raise UsageError(f"unknown settings {sorted(unknown)} in --config; known: {sorted(known)}")
    return config.from_dict(settings_from_flags(vars(args), loaded, config))


@subcommand(
    "run", "generate, score and grade; write the run directory (resumable)", add_run_options
)
def _run(args: argparse.Namespace) -> int:
    from ttc_eval.runner import run

    config = config_from_args(args)
    outcome = run(config, progress=not args.quiet, force_new=args.force_new)
    print(outcome.table)
    print(
        f"\nrun directory: {outcome.run_dir}  (samples in traces: "
        f"{outcome.results['compute']['samples']}; generated now: {outcome.generated_samples})",
        file=sys.stderr,
    )
    return 0


# ----------------------------------------------------------------------------------------------
# The other commands.


def _report_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("run_dir", help="run directory written by `ttc-eval run`")
    p.add_argument(
        "--optimal-axis",
        type=optimal_axis,
        metavar="{" + ",".join(OPTIMAL_AXES) + "}",
        help="compute level of the compute-optimal choice: budget (equal nominal N), tokens "
        "(equal measured generated tokens per question) or flops (equal measured FLOPs) "
        "(default: the run's own setting, budget unless it was run with another)",
    )


@subcommand(
    "report",
    "rebuild results and tables from a run directory (no model)",
    _report_arguments,
    quick_exit=True,
)
def _report(args: argparse.Namespace) -> int:
    from ttc_eval.runner import build_results

    (run_dir,) = run_dirs([args.run_dir])
    _, table = build_results(run_dir, optimal_axis=args.optimal_axis)
    print(table)
    print(f"\nwrote {run_dir / 'results.json'} and {run_dir / 'report'}/", file=sys.stderr)
    return 0


def _view_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("run_dir", help="run directory written by `ttc-eval run`")
    p.add_argument(
        "--print-path",
        action="store_true",
        help="only print the page's path, open no browser (default: open it when a browser "
        "is available)",
    )


@subcommand(
    "view", "open a run's report/index.html in a browser (or print its path)", _view_arguments
)
def _view(args: argparse.Namespace) -> int:
    import webbrowser

    (run_dir,) = run_dirs([args.run_dir])
    page = (run_dir / "report" / "index.html").resolve()
    if not page.is_file():
        raise UsageError(f"{run_dir} has no report/index.html: run `ttc-eval report {run_dir}`")
    opened = False
    # Without a display a "browser" would be a text one taking over the terminal.
    headless = sys.platform.startswith("linux") and not (
        os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")
    )
    if not args.print_path and not headless:
        try:
            opened = webbrowser.get().open(page.as_uri())
        except webbrowser.Error:
            opened = False  # no browser on this machine: the path is printed instead
    print(page if not opened else f"opened {page}")
    return 0


def _policy_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("action", choices=["fit"], help="fit: learn a policy from calibration runs")
    p.add_argument("runs", nargs="+", metavar="RUN", help="calibration run directories")
    p.add_argument(
        "--probe",
        type=positive_int,
        required=True,
        help="K: probe samples per question the difficulty estimate is read from",
    )
    p.add_argument(
        "--estimator",
        default="vote_agreement",
        help="difficulty estimator, NAME[:key=value...] (`ttc-eval list estimators`; "
        "default: %(default)s)",
    )
    p.add_argument(
        "--bins", type=positive_int, default=5, help="quantile bins (default: %(default)s)"
    )
    p.add_argument("--seed", type=int, default=0, help="cross-validation seed (default: 0)")
    p.add_argument(
        "--axis",
        choices=["budget", "tokens", "flops"],
        default="budget",
        help="equal compute in each bin's choice: the same budget N, or at most best-of-N's "
        "measured tokens or FLOPs at N (a choice may then read fewer samples; default: "
        "%(default)s)",
    )
    p.add_argument(
        "--charge",
        choices=["total", "extra"],
        default="total",
        help="the probe is the first K of the N samples (total), or K more on top (extra); "
        "the policy is applied the same way (default: %(default)s)",
    )
    p.add_argument(
        "--min-questions",
        type=positive_int,
        default=10,
        help="fewest calibration questions a bin needs for its own choice; smaller bins run "
        "the choice over all questions (default: %(default)s)",
    )
    p.add_argument("--output", required=True, help="the policy file to write (YAML)")


@subcommand(
    "policy",
    "fit a difficulty-adaptive policy on calibration runs (apply: --strategy policy:file=F)",
    _policy_arguments,
)
def _policy(args: argparse.Namespace) -> int:
    from ttc_eval.policy import Choice, fit_policy, write_policy

    runs = run_dirs(args.runs)
    spec = StrategySpec.parse(args.estimator)
    policy = fit_policy(
        runs,
        args.probe,
        spec.name,
        dict(spec.args),
        n_bins=args.bins,
        seed=args.seed,
        axis=args.axis,
        charge=args.charge,
        min_questions=args.min_questions,
    )
    write_policy(policy, Path(args.output))
    for budget, by_bin in sorted(policy.choices.items()):

        def name(c: Choice) -> str:
            return c.label if c.budget is None else f"{c.label}@{c.budget}"

        picks = ", ".join(f"bin {k}: {name(c)}" for k, c in sorted(by_bin.items()) if k)
        print(f"budget {budget}: {picks or 'every bin: fallback'} (fallback: {name(by_bin[0])})")
    for note in policy.notes:
        print(f"note: {note}", file=sys.stderr)
    print(
        f"\nwrote {args.output}: {policy.estimator} on {policy.probe} probe samples, "
        f"{policy.n_bins} bins, fitted on {len(policy.fitted_on)} questions",
        file=sys.stderr,
    )
    return 0


def _verifiers_arguments(p: argparse.ArgumentParser) -> None:
    from ttc_eval.aggregation import AGGREGATIONS

    p.add_argument(
        "runs",
        nargs="+",
        metavar="RUN",
        help="run directories with verifier scores; several print side by side (the same "
        "verifier in and out of distribution)",
    )
    p.add_argument(
        "--aggregation",
        choices=AGGREGATIONS,
        help="step scores to a solution score for calibration, regret and over-optimization "
        "(AUROC is shown for every aggregation; default: the run's best_of_n aggregation "
        "when it has one, else last)",
    )
    p.add_argument("--seed", type=int, help="bootstrap seed (default: each run's own seed)")


@subcommand(
    "verifiers",
    "evaluate a run's verifier from its traces: AUROC, calibration, regret, over-optimization",
    _verifiers_arguments,
)
def _verifiers(args: argparse.Namespace) -> int:
    from ttc_eval.verifier_report import verifiers_command

    runs = [Path(r) for r in args.runs]
    table, notes, written = verifiers_command(runs, args.aggregation, args.seed)
    print(table)
    for note in notes:
        print(f"note: {note}", file=sys.stderr)
    by_folder: dict[Path, list[str]] = {}
    for f in written:
        names = by_folder.setdefault(f.parent, [])
        if f.name not in names:
            names.append(f.name)
    print(file=sys.stderr)
    for folder, names in by_folder.items():
        print(f"wrote {', '.join(names)} into {folder}", file=sys.stderr)
    return 0


def _processbench_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--verifier",
        required=True,
        help="verifier to score the steps (self-judge or a PRM; required, no default)",
    )
    p.add_argument(
        "--verifier-model",
        help="the verifier's weights (a PRM's hub id or folder; self-judge: its judge model; "
        "default: none, self-judge then judges with the embedded smollm2-135m)",
    )
    p.add_argument(
        "--split",
        default="gsm8k",
        help="ProcessBench split(s), comma-separated: gsm8k, math, olympiadbench, omnimath "
        "(default: gsm8k)",
    )
    p.add_argument(
        "--data-files",
        action="append",
        metavar="[SPLIT=]FILE",
        help="a local JSON/JSONL file in ProcessBench's format instead of the hub dataset "
        "(SPLIT=FILE, repeated, when several splits are asked for; default: none, the hub)",
    )
    p.add_argument(
        "--threshold",
        default="0.5",
        help="a step scored under it is wrong (default 0.5); auto: chosen on a held-out half "
        "of each split (best F1), reported on the other half",
    )
    p.add_argument("--limit", type=int, help="first N items of each split (default: all)")
    p.add_argument(
        "--seed", type=int, default=0, help="the held-out half of --threshold auto (default: 0)"
    )
    p.add_argument(
        "--output-dir",
        help="where scores and results go (default: processbench/<verifier>); an "
        "interrupted run continues there",
    )
    p.add_argument(
        "--quiet", action="store_true", help="no progress bars (default: progress bars shown)"
    )


@subcommand(
    "processbench",
    "score a verifier on step-annotated solutions (ProcessBench): earliest wrong step, F1",
    _processbench_arguments,
)
def _processbench(args: argparse.Namespace) -> int:
    from ttc_eval.processbench import processbench_command

    threshold: float | None
    if args.threshold == "auto":
        threshold = None
    else:
        try:
            threshold = float(args.threshold)
        except ValueError:
            threshold = math.nan
        if not math.isfinite(threshold):
            raise UsageError(f"--threshold must be a number or auto, not {args.threshold!r}")
    if args.limit is not None and args.limit < 1:
        raise UsageError(f"--limit must be a positive number of items, got {args.limit}")
    splits = [x.strip() for x in str(args.split).split(",") if x.strip()]
    table, out = processbench_command(
        args.verifier,
        args.verifier_model,
        splits,
        args.data_files or [],
        threshold,
        args.limit,
        args.seed,
        Path(args.output_dir) if args.output_dir else None,
        progress=not args.quiet,
    )
    print(table)
    print(f"\nwrote {out}", file=sys.stderr)
    return 0


def _learn_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "action",
        choices=["prm-data", "prm", "revision-data", "reviser"],
        help="prm-data [RUN]: step labels from Monte Carlo rollouts of the policy; prm DATA: "
        "train a PRM (token classifier, --verifier qwen-prm) on them; revision-data RUN: "
        "chains of incorrect attempts then a correct one, from a run's pool; reviser DATA: "
        "fine-tune --base on such chains (TRL's SFTTrainer)",
    )
    p.add_argument(
        "source",
        metavar="RUN_OR_DATA",
        nargs="?",
        help="the run (prm-data, revision-data) or the dataset (prm, reviser); prm-data "
        "without a run samples its own solutions from --task and --model (default: none)",
    )
    p.add_argument("--output", required=True, help="folder to write to (must be new or empty)")
    p.add_argument(
        "--per-question",
        type=positive_int,
        help="prm-data: solutions labelled per question (without RUN: samples drawn); "
        "revision-data: chains per question, one per correct sample (default: 4)",
    )
    p.add_argument(
        "--rollouts",
        type=positive_int,
        help="prm-data: completions rolled out from each step (default: 4)",
    )
    for flag, text in (
        ("--task", "prm-data without RUN: the task to sample (default: arith)"),
        ("--model", "prm-data without RUN: the policy (default: smollm2-135m)"),
        ("--backend", "prm-data without RUN: backend (default: hf)"),
        ("--data-files", "prm-data without RUN: local data file of the task (default: its own)"),
    ):
        p.add_argument(flag, help=text)
    p.add_argument(
        "--backend-args",
        type=key_values,
        metavar="K=V,...",
        help="prm-data without RUN: backend options (default: the backend's own)",
    )
    p.add_argument(
        "--split",
        choices=["calibration", "test"],
        help="prm-data without RUN: only one seeded split of the questions, as in run "
        "(default: all); train on calibration and evaluate on test to keep them apart",
    )
    p.add_argument(
        "--limit",
        type=positive_int,
        help="prm-data without RUN: only the first N questions (default: all)",
    )
    p.add_argument(
        "--max-incorrect",
        type=int,
        help="revision-data: most incorrect attempts before the correct one; each chain draws "
        "0 to this many (default: 4)",
    )
    p.add_argument(
        "--base",
        help="prm, reviser: the model to fine-tune (default: smollm2-135m)",
    )
    p.add_argument(
        "--labels",
        choices=["hard", "soft"],
        help="prm: train on hard labels (any rollout right) or soft ones (the share right) "
        "(default: hard)",
    )
    p.add_argument(
        "--max-steps",
        type=positive_int,
        help="prm, reviser: optimizer steps (default: 100 for prm, 60 for reviser)",
    )
    p.add_argument(
        "--batch-size",
        type=positive_int,
        help="prm, reviser: examples per step (default: 8 for prm, 4 for reviser)",
    )
    p.add_argument(
        "--learning-rate",
        type=float,
        help="prm, reviser: (default: 1e-4 for prm, 5e-5 for reviser)",
    )
    p.add_argument(
        "--max-length",
        type=positive_int,
        help="prm, reviser: tokens per example, longer ones are cut (default: 512 for prm, "
        "768 for reviser)",
    )
    p.add_argument(
        "--lora",
        action="store_true",
        default=None,
        help="prm, reviser: train a LoRA adapter (peft), merged into the saved weights "
        "(default: full fine-tuning)",
    )
    p.add_argument(
        "--seed",
        type=int,
        help="revision-data: draws; prm, reviser: training; prm-data without RUN: the pool's "
        "sampling (with a RUN, the run's own) (default: 0)",
    )
    p.add_argument("--quiet", action="store_true", help="no progress bars (default: shown)")


_TRAINING = {"max_steps", "batch_size", "learning_rate", "max_length", "lora", "base", "seed"}
_POOL_FLAGS = ("task", "model", "backend", "backend_args", "data_files", "split", "limit")
_LEARN_DEFAULTS: dict[str, dict[str, Any]] = {
    "prm-data": {"per_question": 4, "rollouts": 4, "seed": 0},
    "prm": {"max_steps": 100, "batch_size": 8, "learning_rate": 1e-4, "max_length": 512,
            "labels": "hard", "lora": False, "base": "smollm2-135m", "seed": 0},
    "revision-data": {"per_question": 4, "max_incorrect": 4, "seed": 0},
    "reviser": {"max_steps": 60, "batch_size": 4, "learning_rate": 5e-5, "max_length": 768,
                "lora": False, "base": "smollm2-135m", "seed": 0},
}  # fmt: skip
"""Each action's options and their defaults; any other option given is refused."""


def _learn_settings(args: argparse.Namespace) -> None:
    """Refuse options the action does not read; fill the defaults of those it does."""
    takes = dict(_LEARN_DEFAULTS[args.action])
    if args.action == "prm-data" and args.source is None:
        takes |= dict.fromkeys(_POOL_FLAGS)
    elif args.action == "prm-data":
        takes.pop("seed")  # the run's own sampling
    flags = {*_POOL_FLAGS, *(k for d in _LEARN_DEFAULTS.values() for k in d)}
    stray = sorted(f"--{f.replace('_', '-')}" for f in flags - set(takes)
                   if getattr(args, f) is not None)  # fmt: skip
    if stray:
        why = (
            "; a run's own settings are used: --task, --model and the like choose what "
            "learn prm-data samples only when it is given no RUN"
            if args.action == "prm-data"
            else ""
        )
        raise UsageError(f"learn {args.action} does not take {', '.join(stray)}{why}")
    for k, v in takes.items():
        if getattr(args, k) is None:
            setattr(args, k, v)


@subcommand(
    "learn",
    "learn from the policy's own samples: a PRM from rollout step labels, a reviser from "
    "revision chains",
    _learn_arguments,
)
def _learn(args: argparse.Namespace) -> int:
    from ttc_eval._rundir import run_dirs

    if args.source is None and args.action != "prm-data":
        raise UsageError(
            f"learn {args.action} needs its source: "
            + ("a run directory" if args.action == "revision-data" else "a dataset folder")
        )
    _learn_settings(args)
    if args.action == "prm-data":
        from ttc_eval.learn_prm_data import describe as describe_prm
        from ttc_eval.learn_prm_data import pool_config, prm_data

        if args.source is None:
            from ttc_eval.runner import run as run_pool

            config = pool_config(
                Path(args.output),
                args.per_question,
                {f: getattr(args, f) for f in _POOL_FLAGS} | {"seed": args.seed},
            )
            run_dir = run_pool(config, progress=not args.quiet).run_dir
        else:
            (run_dir,) = run_dirs([Path(args.source)])
        prm_record = prm_data(
            run_dir, Path(args.output), args.rollouts, args.per_question, not args.quiet
        )
        print(describe_prm(prm_record))
        print(f"wrote {args.output}/data and {args.output}/learn.json", file=sys.stderr)
        return 0
    if args.action == "revision-data":
        from ttc_eval.learn_revisions import describe, revision_data

        (source_run,) = run_dirs([Path(args.source)])
        record = revision_data(
            source_run, Path(args.output), args.per_question, args.max_incorrect, args.seed
        )
        print(describe(record))
        print(f"wrote {args.output}/data and {args.output}/learn.json", file=sys.stderr)
        return 0
    settings = {
        "max_steps": args.max_steps,
        "batch_size": args.batch_size,
        "learning_rate": args.learning_rate,
        "max_length": args.max_length,
        "lora": args.lora,
        "seed": args.seed,
        "progress": not args.quiet,
    }
    if args.action == "prm":
        from ttc_eval.learn_prm import train_prm

        done = train_prm(
            Path(args.source), args.base, Path(args.output), labels=args.labels, **settings
        )
        use = f"--verifier qwen-prm --verifier-model {args.output}"
        examples = f"{done['data']['step_labels']} step labels"
    else:
        from ttc_eval.learn_reviser import train_reviser

        done = train_reviser(Path(args.source), args.base, Path(args.output), **settings)
        use = f"--revision-model {args.output}"
        examples = f"{done['data']['examples']} examples"
    print(
        f"trained {args.base} on {examples}, {args.max_steps} steps in "
        f"{done['seconds']:.0f} s (loss {done['first_logged_loss']} -> "
        f"{done['last_logged_loss']}); use it with {use}"
    )
    return 0


def _compare_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("base_run", help="run directory of the baseline")
    p.add_argument("new_run", help="run directory to test against it")
    p.add_argument(
        "--strategy",
        help="configuration label or strategy name (default: every configuration both share)",
    )
    p.add_argument(
        "--budget",
        type=positive_int,
        help="budget to compare at (default: the largest both runs share)",
    )
    p.add_argument(
        "--max-drop",
        type=_drop,
        default=0.02,
        help="accuracy drop allowed before NEW counts as worse (default: %(default)s)",
    )
    p.add_argument(
        "--alpha",
        type=_alpha,
        default=0.05,
        help="significance level of the one-sided test (default: %(default)s)",
    )
    p.add_argument(
        "--json", metavar="FILE", help="also write the comparison as JSON here (default: none)"
    )


@subcommand(
    "compare",
    "paired test: is NEW_RUN worse than BASE_RUN? (exit 1 if so; for CI)",
    _compare_arguments,
)
def _compare(args: argparse.Namespace) -> int:
    from ttc_eval.reporting.compare import compare_runs, format_comparison

    result = compare_runs(
        Path(args.base_run), Path(args.new_run), args.strategy, args.budget,
        args.max_drop, args.alpha,
    )  # fmt: skip
    print(format_comparison(result))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
    return 1 if result["verdict"] == "worse" else 0


def _leaderboard_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("csv", help="leaderboard file that runs update (leaderboards/<task>.csv)")
    p.add_argument(
        "--budget",
        type=positive_int,
        help="only this budget (default: each configuration's largest)",
    )


@subcommand("leaderboard", "print a leaderboard CSV ranked, with CIs", _leaderboard_arguments)
def _leaderboard(args: argparse.Namespace) -> int:
    from ttc_eval.reporting.compare import leaderboard_table

    print(leaderboard_table(Path(args.csv), args.budget))
    return 0


def _import_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("format", help="dump format: generic, qwen-math or lm-eval "
                   "(`ttc-eval list importers`)")  # fmt: skip
    p.add_argument("file", help="the dump (JSONL)")
    p.add_argument("--task", required=True, help="task whose grader and labels apply (required)")
    p.add_argument(
        "--regrade",
        action="store_true",
        help="grade every sample with the task's grader (default: the dump's own verdicts "
        "where it has them)",
    )
    p.add_argument(
        "--output-dir", default="runs", help="parent of the new run (default: %(default)s)"
    )


@subcommand("import", "convert another tool's sample dump into a ttc-eval run", _import_arguments)
def _import(args: argparse.Namespace) -> int:
    from ttc_eval.importers._base import write_run
    from ttc_eval.registry import IMPORTERS

    reader = IMPORTERS.get(args.format)
    source = Path(args.file)
    run_dir = write_run(
        reader(source), args.format, source, args.task, args.regrade, Path(args.output_dir)
    )
    print((run_dir / "report" / "tables.md").read_text())
    print(f"imported {source} into {run_dir}", file=sys.stderr)
    return 0


@subcommand(
    "lm-eval",
    "lm-eval's own command line with the ttc model registered "
    "(--model ttc --model_args model=...,strategy=majority,n=8); every argument is lm-eval's",
    passthrough=True,
)
def _lm_eval(args: argparse.Namespace) -> int:
    """Hand every argument to lm-eval's command line (its flags, its exit codes)."""
    try:
        from ttc_eval.lm_eval_model import cli
    except ImportError:
        print(
            "ttc-eval: error: `ttc-eval lm-eval` needs lm-evaluation-harness: "
            "pip install 'ttc-eval[lm-eval]'",
            file=sys.stderr,
        )
        return 2
    return cli(args.argv)


def _merge_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("run_dirs", nargs="+", help="the run directories of all n shards")
    p.add_argument("--output-dir", help="parent of the merged run (default: the shards' parent)")


@subcommand("merge", "join shard runs (--shard i/n) into one run", _merge_arguments)
def _merge(args: argparse.Namespace) -> int:
    from ttc_eval.runner import merge_runs

    out = merge_runs(
        [Path(d) for d in args.run_dirs],
        Path(args.output_dir) if args.output_dir else None,
    )
    print(f"merged {len(args.run_dirs)} shards into {out}", file=sys.stderr)
    return 0


def _compare_flops_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("small_run", help="run directory of the small model (sampled budgets)")
    p.add_argument("large_run", help="run directory of the larger model (greedy or budget 1)")
    p.add_argument(
        "--ratios",
        type=_ratios,
        default=(0.16, 0.79, 22.0),
        metavar="R,...",
        help="R = inference tokens / pretraining tokens, comma list (default: 0.16,0.79,22)",
    )
    p.add_argument(
        "--params-small",
        type=_count,
        metavar="N",
        help="non-embedding parameters of the small model (default: recorded in its run)",
    )
    p.add_argument(
        "--params-large",
        type=_count,
        metavar="N",
        help="non-embedding parameters of the larger model (default: recorded in its run)",
    )
    p.add_argument(
        "--json", metavar="FILE", help="also write the table as JSON here (default: none)"
    )
    p.add_argument(
        "--figure",
        metavar="PNG",
        help="figure path (default: SMALL_RUN/report/compare_flops.png)",
    )


@subcommand(
    "compare-flops",
    "small model + test-time compute vs a larger model's greedy answers at equal FLOPs",
    _compare_flops_arguments,
)
def _compare_flops(args: argparse.Namespace) -> int:
    from ttc_eval.reporting.compare_flops import compare_flops, format_table, write_figure

    small = Path(args.small_run)
    result = compare_flops(
        small, Path(args.large_run), args.ratios, args.params_small, args.params_large
    )
    print(format_table(result))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
    figure = Path(args.figure) if args.figure else small / "report" / "compare_flops.png"
    figure.parent.mkdir(parents=True, exist_ok=True)
    if write_figure(result, figure):
        print(f"\nwrote {figure}", file=sys.stderr)
    return 0


def describe(obj: Any) -> str:
    """The first paragraph of a docstring (a command's help) as one line, without reST
    markup."""
    if isinstance(obj, Command):
        obj = obj.help
    doc = obj if isinstance(obj, str) else (getattr(obj, "__doc__", None) or "")
    paragraph = textwrap.dedent(doc).strip().split("\n\n")[0]
    text = " ".join(paragraph.split())
    text = re.sub(r":\w+:`([^`]*)`", r"\1", text)
    return text.replace("``", "")


def _entries(names: Sequence[str], texts: Sequence[str]) -> str:
    """Names in a column, each description wrapped beside it (under it for long names)."""
    width = min(max(shutil.get_terminal_size((100, 24)).columns, 60), 100)
    column = max(len(n) for n in names) + 2
    long_names = column > 24
    lines = []
    for name, text in zip(names, texts, strict=True):
        indent = " " * (4 if long_names else column)
        first = indent if long_names else f"{name:<{column}}"
        body = textwrap.fill(
            text or "-",
            width,
            initial_indent=first,
            subsequent_indent=indent,
            break_long_words=False,
            break_on_hyphens=False,
        )
        lines.append(f"{name}\n{body}" if long_names else body)
    return "\n".join(lines)


def _list(kind: str) -> str:
    from ttc_eval.registry import TASK_SOURCES
    from ttc_eval.tasks import available_tasks, load_task_spec

    names: list[str] = []
    texts: list[str] = []
    if kind == "tasks":
        for name, path in sorted(available_tasks().items()):
            spec = load_task_spec(path)
            names.append(name)
            about = f"(version {spec.version}, grader {spec.grader}, loader {spec.loader})"
            texts.append(f"{describe(spec.description)} {about}".strip())
        for source in TASK_SOURCES.names():
            names.append(f"{source}:NAME")
            texts.append(describe(TASK_SOURCES.get(source)))
    else:
        reg = {r.plural: r for r in ALL_REGISTRIES}[kind]
        for name in reg.names():
            names.append(name)
            texts.append(describe(reg.get(name)))
    if not names:
        return f"no {kind} registered"
    return _entries(names, texts)


def _list_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "kind", choices=LIST_KINDS, metavar="KIND", help=f"one of {', '.join(LIST_KINDS)}"
    )


@subcommand("list", "list registered components with their descriptions", _list_arguments)
def _list_command(args: argparse.Namespace) -> int:
    print(_list(args.kind))
    return 0


# ----------------------------------------------------------------------------------------------
# Dispatch.


def build_parser() -> _Parser:
    p = _Parser(
        prog="ttc-eval",
        description="Evaluate test-time compute scaling of language models.",
        epilog=_EPILOG,
    )
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser, metavar="COMMAND")
    for name in COMMANDS.names():
        cmd = COMMANDS.get(name)
        if cmd.passthrough:  # its arguments are another tool's: no parser of ours
            sub.add_parser(name, help=cmd.help, add_help=False)
            continue
        parser: _Parser = sub.add_parser(name, help=cmd.help, description=cmd.help)
        p.commands[name] = parser
        cmd.add_arguments(parser)
    return p


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    """Parse a command line; options with no command before them mean ``run``."""
    argv = list(argv)
    if argv and argv[0].startswith("-") and argv[0] not in ("-h", "--help"):
        argv.insert(0, "run")
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra:
        parser.commands.get(args.command, parser).unrecognized(extra)
    return args


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    passthrough = COMMANDS.get(argv[0]) if argv and argv[0] in COMMANDS else None
    if passthrough is not None and passthrough.passthrough:
        args = argparse.Namespace(command=passthrough.name, argv=argv[1:])
    else:
        args = parse_args(argv)
        if not getattr(args, "verbose", False):
            quiet_third_party()
    try:
        return COMMANDS.get(args.command).run(args)
    except TTCError as e:
        print(f"ttc-eval: error: {e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        if passthrough is not None:
            raise
        print(
            "\nttc-eval: interrupted; finished questions are saved. "
            "Rerun the same command to resume.",
            file=sys.stderr,
        )
        return 130


def console() -> NoReturn:
    """The ``ttc-eval`` console script and ``python -m ttc_eval``: :func:`main`, then the
    process ends with its exit code (at once after a :attr:`Command.quick_exit` command
    succeeded)."""
    code = main()
    name = sys.argv[1] if len(sys.argv) > 1 else ""
    if code == 0 and name in COMMANDS and COMMANDS.get(name).quick_exit:
        for stream in (sys.stdout, sys.stderr):
            # A reader that went away (a closed pipe) misses nothing more.
            with contextlib.suppress(OSError):
                stream.flush()
        os._exit(0)
    sys.exit(code)


if __name__ == "__main__":
    console()
