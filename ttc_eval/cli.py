"""``ttc-eval run | report | compare | leaderboard | import | merge | compare-flops | list``."""

from __future__ import annotations

import argparse
import difflib
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
from dataclasses import fields
from pathlib import Path
from typing import Any, NoReturn

import yaml

from ttc_eval.errors import TTCError, UsageError

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


def _int(text: str, what: str, minimum: int) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
    if value < minimum:
        raise argparse.ArgumentTypeError(f"expected {what}, got {value}")
    return value


def _budgets(text: str) -> tuple[int, ...]:
    what = "budgets as positive integers, e.g. 1,4,16"
    return tuple(_int(part, what, 1) for part in text.split(","))


def _positive(text: str) -> int:
    return _int(text, "a positive integer", 1)


def _nonnegative(text: str) -> int:
    return _int(text, "an integer >= 0", 0)


def _number(text: str, what: str = "a finite number") -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}")
    return value


def _bounded(what: str, ok: Callable[[float], bool]) -> Callable[[str], float]:
    """An argparse type: a finite number for which ``ok`` holds, else "expected {what}"."""

    def parse(text: str) -> float:
        value = _number(text, what)
        if not ok(value):
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}")
        return value

    return parse


_temperature = _bounded("a finite temperature >= 0 (0 is greedy)", lambda v: v >= 0)
_top_p = _bounded("a top-p in (0, 1] (1 keeps every token)", lambda v: 0 < v <= 1)
_alpha = _bounded("a significance level in (0, 1)", lambda v: 0 < v < 1)
_drop = _bounded("an allowed accuracy drop >= 0, e.g. 0.02", lambda v: v >= 0)
_count = _bounded("a positive number such as 1.5e9", lambda v: v > 0)


def _kv(text: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for part in filter(None, text.split(",")):
        if "=" not in part:
            raise argparse.ArgumentTypeError(f"expected key=value pairs, got {part!r}")
        k, v = part.split("=", 1)
        out[k.strip()] = yaml.safe_load(v)
    return out


def _names(text: str) -> list[str]:
    return [x.strip() for x in text.split(",") if x.strip()]


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


class _Parser(argparse.ArgumentParser):
    """Usage errors: one line saying what is wrong, one line saying where help is; exit 2."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", argparse.RawDescriptionHelpFormatter)
        super().__init__(*args, **kwargs)
        self.commands: dict[str, _Parser] = {}

    def error(self, message: str) -> NoReturn:
        m = re.search(r"invalid choice: '([^']*)' \(choose from (.*)\)", message)
        if m:
            choices = re.findall(r"'([^']*)'", m.group(2))
            close = difflib.get_close_matches(m.group(1), choices, n=1)
            message += f"; did you mean {close[0]}?" if close else ""
        print(f"ttc-eval: error: {message}\nsee {self.prog} --help", file=sys.stderr)
        raise SystemExit(2)

    def unrecognized(self, extra: Sequence[str]) -> NoReturn:
        options = [s for a in self._actions for s in a.option_strings]
        described = []
        for arg in extra:
            flag = arg.split("=", 1)[0]
            close = (
                difflib.get_close_matches(flag, options, n=1, cutoff=0.75)
                if flag.startswith("--")
                else []
            )
            described.append(f"{arg} (did you mean {close[0]}?)" if close else arg)
        self.error(f"unrecognized arguments: {' '.join(described)}")


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

LIST_KINDS = (
    "tasks",
    "strategies",
    "verifiers",
    "backends",
    "graders",
    "loaders",
    "prompts",
    "importers",
    "task_sources",
)


def _add_run_options(r: argparse.ArgumentParser) -> None:
    from ttc_eval.config import RunConfig

    d = {f.name: getattr(RunConfig(), f.name) for f in fields(RunConfig)}
    gen = RunConfig().resolve({})  # what a run uses when neither the flag nor the task says
    r.add_argument(
        "--config",
        metavar="FILE",
        help="YAML file of run settings, keyed as the fields of config.json; flags given here "
        "override it; its relative data_files and include_path resolve against the file's "
        "folder (default: none)",
    )
    r.add_argument(
        "--model",
        help=f"policy model: alias, hub id or local directory (default: {_show(d['model'])})",
    )
    r.add_argument(
        "--backend",
        help=f"registered backend, see `ttc-eval list backends` (default: {d['backend']})",
    )
    r.add_argument(
        "--backend-args",
        type=_kv,
        metavar="K=V,...",
        help="backend options, e.g. dtype=float32,batch_size=64 (default: the backend's own)",
    )
    r.add_argument(
        "--task",
        help="registered task (`ttc-eval list tasks`), or lm_eval:NAME for a task of "
        f"lm-evaluation-harness (default: {d['task']})",
    )
    r.add_argument(
        "--data-files",
        metavar="FILE",
        help="local JSON/JSONL file replacing the task's hub dataset (default: the task's data)",
    )
    r.add_argument(
        "--include-path",
        action="append",
        metavar="DIR",
        help="extra folder of task specs, ttc-eval's or lm-eval's for lm_eval:NAME; "
        "repeatable (default: the built-in tasks only)",
    )
    r.add_argument(
        "--grader", help="registered grader replacing the task's own (default: the task's)"
    )
    r.add_argument(
        "--num-fewshot",
        type=_nonnegative,
        metavar="N",
        help="lm_eval:NAME tasks: few-shot examples in the prompt (default: the task's)",
    )
    r.add_argument(
        "--apply-chat-template",
        action="store_true",
        default=None,
        help="lm_eval:NAME tasks: send the prompt through the model's chat template "
        "(default: off, the raw prompt as lm-eval sends it)",
    )
    r.add_argument(
        "--strategy",
        metavar="NAME[:K=V...],...",
        help="comma list of strategies (`ttc-eval list strategies`); arguments after colons, "
        f"e.g. best_of_n:mode=naive (default: {_show(d['strategies'])})",
    )
    r.add_argument(
        "--verifier",
        help="registered step scorer (`ttc-eval list verifiers`), or none "
        f"(default: {_show(d['verifier'])})",
    )
    r.add_argument(
        "--verifier-args",
        type=_kv,
        metavar="K=V,...",
        help="verifier options, e.g. device=cuda,dtype=bfloat16 (default: the verifier's own)",
    )
    r.add_argument(
        "--verifier-model",
        metavar="MODEL",
        help="weights of the verifier; PRMs need it (default: none; self-judge uses the policy)",
    )
    r.add_argument(
        "--revision-model",
        metavar="MODEL",
        help="model that writes the revisions of the revisions strategy (default: the policy)",
    )
    r.add_argument(
        "--revision-template",
        metavar="FILE",
        help="file holding the revision prompt, with {question} and {attempts} "
        "(default: the task's, else the built-in prompt)",
    )
    r.add_argument(
        "--bins",
        type=_names,
        metavar="KIND,...",
        help="difficulty bins to report, from oracle, predicted, label "
        f"(default: {_show(d['bins'])})",
    )
    r.add_argument(
        "--difficulty-samples",
        type=_positive,
        metavar="N",
        help="samples per question of a dedicated pass that measures difficulty "
        "(default: none, the run's largest sampled pool)",
    )
    r.add_argument(
        "--shard",
        metavar="I/N",
        help="run only questions i, i+n, i+2n, ... (0-based); the merge command joins the "
        "shards (default: every question)",
    )
    r.add_argument(
        "--base-url",
        metavar="URL[,URL...]",
        help="openai backend: server URL(s), e.g. http://host:8000/v1 (default: none)",
    )
    r.add_argument(
        "--budgets",
        type=_budgets,
        metavar="N,...",
        help=f"generation budgets N (default: {_show(d['budgets'])})",
    )
    r.add_argument(
        "--limit",
        type=_positive,
        metavar="N",
        help="only the first N questions (default: all)",
    )
    r.add_argument(
        "--seed",
        type=_nonnegative,
        metavar="N",
        help=f"sampling seed (default: {_show(d['seed'])})",
    )
    r.add_argument(
        "--temperature",
        type=_temperature,
        metavar="T",
        help=f"sampling temperature, >= 0 (default: the task's, else {gen.temperature})",
    )
    r.add_argument(
        "--top-p",
        type=_top_p,
        metavar="P",
        help=f"nucleus sampling mass, in (0, 1] (default: the task's, else {gen.top_p})",
    )
    r.add_argument(
        "--max-tokens",
        type=_positive,
        metavar="N",
        help=f"most tokens generated per sample (default: the task's, else {gen.max_tokens})",
    )
    r.add_argument(
        "--output-dir",
        metavar="DIR",
        help=f"parent of run directories (default: {d['output_dir']})",
    )
    r.add_argument(
        "--run-id",
        help="run directory name (default: derived from the settings, so a rerun resumes)",
    )
    r.add_argument(
        "--leaderboard-dir",
        metavar="DIR",
        help=f"where <task>.csv is updated (default: {d['leaderboard_dir']})",
    )
    r.add_argument(
        "--no-cache",
        action="store_true",
        help="do not read or write the generation cache (default: use it)",
    )
    r.add_argument("--force-new", action="store_true", help=_FORCE_NEW_HELP)
    r.add_argument(
        "--quiet", action="store_true", help="no progress bars (default: progress on stderr)"
    )
    r.add_argument(
        "--verbose",
        action="store_true",
        help="show third-party library logs and warnings (default: hidden)",
    )


def build_parser() -> _Parser:
    p = _Parser(
        prog="ttc-eval",
        description="Evaluate test-time compute scaling of language models.",
        epilog=_EPILOG,
    )
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser, metavar="COMMAND")

    def command(name: str, text: str, **kwargs: Any) -> _Parser:
        parser: _Parser = sub.add_parser(name, help=text, description=text, **kwargs)
        p.commands[name] = parser
        return parser

    r = command("run", "generate, score and grade; write the run directory (resumable)")
    _add_run_options(r)

    rep = command("report", "rebuild results and tables from a run directory (no model)")
    rep.add_argument("run_dir", help="run directory written by `ttc-eval run`")

    cmp = command("compare", "paired test: is NEW_RUN worse than BASE_RUN? (exit 1 if so; for CI)")
    cmp.add_argument("base_run", help="run directory of the baseline")
    cmp.add_argument("new_run", help="run directory to test against it")
    cmp.add_argument(
        "--strategy",
        help="configuration label or strategy name (default: every configuration both share)",
    )
    cmp.add_argument(
        "--budget",
        type=_positive,
        help="budget to compare at (default: the largest both runs share)",
    )
    cmp.add_argument(
        "--max-drop",
        type=_drop,
        default=0.02,
        help="accuracy drop allowed before NEW counts as worse (default: %(default)s)",
    )
    cmp.add_argument(
        "--alpha",
        type=_alpha,
        default=0.05,
        help="significance level of the one-sided test (default: %(default)s)",
    )
    cmp.add_argument(
        "--json", metavar="FILE", help="also write the comparison as JSON here (default: none)"
    )

    lb = command("leaderboard", "print a leaderboard CSV ranked, with CIs")
    lb.add_argument("csv", help="leaderboard file that runs update (leaderboards/<task>.csv)")
    lb.add_argument(
        "--budget", type=_positive, help="only this budget (default: each configuration's largest)"
    )

    im = command("import", "convert another tool's sample dump into a ttc-eval run")
    im.add_argument("format", help="dump format: generic, qwen-math or lm-eval "
                    "(`ttc-eval list importers`)")  # fmt: skip
    im.add_argument("file", help="the dump (JSONL)")
    im.add_argument("--task", required=True, help="task whose grader and labels apply (required)")
    im.add_argument(
        "--regrade",
        action="store_true",
        help="grade every sample with the task's grader (default: the dump's own verdicts "
        "where it has them)",
    )
    im.add_argument(
        "--output-dir", default="runs", help="parent of the new run (default: %(default)s)"
    )

    sub.add_parser(
        "lm-eval",
        help="lm-eval's own command line with the ttc model registered "
        "(--model ttc --model_args model=...,strategy=majority,n=8); every argument is lm-eval's",
        add_help=False,
    )

    mg = command("merge", "join shard runs (--shard i/n) into one run")
    mg.add_argument("run_dirs", nargs="+", help="the run directories of all n shards")
    mg.add_argument("--output-dir", help="parent of the merged run (default: the shards' parent)")

    cf = command(
        "compare-flops",
        "small model + test-time compute vs a larger model's greedy answers at equal FLOPs",
    )
    cf.add_argument("small_run", help="run directory of the small model (sampled budgets)")
    cf.add_argument("large_run", help="run directory of the larger model (greedy or budget 1)")
    cf.add_argument(
        "--ratios",
        type=_ratios,
        default=(0.16, 0.79, 22.0),
        metavar="R,...",
        help="R = inference tokens / pretraining tokens, comma list (default: 0.16,0.79,22)",
    )
    cf.add_argument(
        "--params-small",
        type=_count,
        metavar="N",
        help="non-embedding parameters of the small model (default: recorded in its run)",
    )
    cf.add_argument(
        "--params-large",
        type=_count,
        metavar="N",
        help="non-embedding parameters of the larger model (default: recorded in its run)",
    )
    cf.add_argument(
        "--json", metavar="FILE", help="also write the table as JSON here (default: none)"
    )
    cf.add_argument(
        "--figure",
        metavar="PNG",
        help="figure path (default: SMALL_RUN/report/compare_flops.png)",
    )

    ls = command("list", "list registered components with their descriptions")
    ls.add_argument(
        "kind", choices=LIST_KINDS, metavar="KIND", help=f"one of {', '.join(LIST_KINDS)}"
    )
    return p


_FLAG_TO_FIELD = {
    "model": "model",
    "backend": "backend",
    "backend_args": "backend_args",
    "task": "task",
    "data_files": "data_files",
    "include_path": "include_path",
    "verifier": "verifier",
    "verifier_args": "verifier_args",
    "budgets": "budgets",
    "limit": "limit",
    "seed": "seed",
    "temperature": "temperature",
    "top_p": "top_p",
    "max_tokens": "max_tokens",
    "output_dir": "output_dir",
    "run_id": "run_id",
    "leaderboard_dir": "leaderboard_dir",
    "revision_model": "revision_model",
    "bins": "bins",
    "shard": "shard",
    "difficulty_samples": "difficulty_samples",
    "grader": "grader",
    "num_fewshot": "num_fewshot",
    "apply_chat_template": "apply_chat_template",
}


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


def config_from_args(args: argparse.Namespace) -> Any:
    from ttc_eval.config import RunConfig, StrategySpec

    settings: dict[str, Any] = {}
    if args.config:
        settings.update(_read_config(Path(args.config)))
    for flag, field_name in _FLAG_TO_FIELD.items():
        value = getattr(args, flag)
        if value is not None:
            settings[field_name] = value
    if args.strategy is not None:
        settings["strategies"] = [
            StrategySpec.parse(s).to_dict() for s in args.strategy.split(",") if s.strip()
        ]
    if args.verifier_model is not None:
        settings["verifier_args"] = {
            **settings.get("verifier_args", {}),
            "model": args.verifier_model,
        }
    if args.base_url is not None:
        settings["backend_args"] = {**settings.get("backend_args", {}), "base_url": args.base_url}
    if args.revision_template is not None:
        path = Path(args.revision_template)
        if not path.is_file():
            raise UsageError(f"--revision-template {path}: no such file")
        try:
            settings["revision_template"] = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as e:
            raise UsageError(f"--revision-template {path}: cannot be read as text ({e})") from None
    if args.no_cache:
        settings["cache"] = False
    if str(settings.get("verifier", "")).lower() == "none":
        settings["verifier"] = None
    known = {f.name for f in fields(RunConfig)}
    unknown = set(settings) - known
    if unknown:
        raise UsageError(f"unknown settings {sorted(unknown)} in --config; known: {sorted(known)}")
    return RunConfig.from_dict(settings)


def describe(obj: Any) -> str:
    """The first paragraph of a docstring as one line, without reST markup."""
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
    from ttc_eval import registry
    from ttc_eval.tasks import available_tasks, load_task_spec

    regs = {
        r.plural: r
        for r in (
            registry.STRATEGIES, registry.VERIFIERS, registry.BACKENDS, registry.GRADERS,
            registry.LOADERS, registry.PROMPTS, registry.IMPORTERS, registry.TASK_SOURCES,
        )
    }  # fmt: skip
    names: list[str] = []
    texts: list[str] = []
    if kind == "tasks":
        for name, path in sorted(available_tasks().items()):
            spec = load_task_spec(path)
            names.append(name)
            about = f"(version {spec.version}, grader {spec.grader}, loader {spec.loader})"
            texts.append(f"{describe(spec.description)} {about}".strip())
        for source in registry.TASK_SOURCES.names():
            names.append(f"{source}:NAME")
            texts.append(describe(registry.TASK_SOURCES.get(source)))
    else:
        reg = regs[kind]
        for name in reg.names():
            names.append(name)
            texts.append(describe(reg.get(name)))
    if not names:
        return f"no {kind} registered"
    return _entries(names, texts)


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


def _lm_eval(argv: Sequence[str]) -> int:
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
    try:
        return cli(argv)
    except TTCError as e:
        print(f"ttc-eval: error: {e}", file=sys.stderr)
        return e.exit_code


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
    if argv[:1] == ["lm-eval"]:
        return _lm_eval(argv[1:])
    args = parse_args(argv)
    if not getattr(args, "verbose", False):
        quiet_third_party()
    try:
        if args.command == "list":
            print(_list(args.kind))
            return 0
        if args.command == "report":
            from ttc_eval.runner import build_results

            run_dir = Path(args.run_dir)
            if not (run_dir / "config.json").is_file():
                raise UsageError(f"{run_dir} is not a run directory (no config.json)")
            _, table = build_results(run_dir)
            print(table)
            print(f"\nwrote {run_dir / 'results.json'} and {run_dir / 'report'}/", file=sys.stderr)
            return 0
        if args.command == "compare-flops":
            return _compare_flops(args)
        if args.command == "compare":
            from ttc_eval.reporting.compare import compare_runs, format_comparison

            result = compare_runs(
                Path(args.base_run), Path(args.new_run), args.strategy, args.budget,
                args.max_drop, args.alpha,
            )  # fmt: skip
            print(format_comparison(result))
            if args.json:
                Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
            return 1 if result["verdict"] == "worse" else 0
        if args.command == "leaderboard":
            from ttc_eval.reporting.compare import leaderboard_table

            print(leaderboard_table(Path(args.csv), args.budget))
            return 0
        if args.command == "import":
            from ttc_eval.importers._base import write_run
            from ttc_eval.registry import IMPORTERS

            reader = IMPORTERS.get(args.format)
            source = Path(args.file)
            run_dir = write_run(
                reader(source), args.format, source, args.task, args.regrade,
                Path(args.output_dir),
            )  # fmt: skip
            print((run_dir / "report" / "tables.md").read_text())
            print(f"imported {source} into {run_dir}", file=sys.stderr)
            return 0
        if args.command == "merge":
            from ttc_eval.runner import merge_runs

            out = merge_runs(
                [Path(d) for d in args.run_dirs],
                Path(args.output_dir) if args.output_dir else None,
            )
            print(f"merged {len(args.run_dirs)} shards into {out}", file=sys.stderr)
            return 0
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
    except TTCError as e:
        print(f"ttc-eval: error: {e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print(
            "\nttc-eval: interrupted; finished questions are saved. "
            "Rerun the same command to resume.",
            file=sys.stderr,
        )
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
