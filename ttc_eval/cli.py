"""``ttc-eval run | report | list``."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from dataclasses import fields
from pathlib import Path
from typing import Any

import yaml

from ttc_eval.errors import TTCError, UsageError


def _budgets(text: str) -> tuple[int, ...]:
    out = []
    for part in text.split(","):
        try:
            value = int(part)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"budgets must be positive integers, got {part!r}"
            ) from None
        if value < 1:
            raise argparse.ArgumentTypeError(f"budgets must be positive integers, got {value}")
        out.append(value)
    return tuple(out)


def _positive(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if v < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {v}")
    return v


def _kv(text: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for part in filter(None, text.split(",")):
        if "=" not in part:
            raise argparse.ArgumentTypeError(f"expected key=value pairs, got {part!r}")
        k, v = part.split("=", 1)
        out[k.strip()] = yaml.safe_load(v)
    return out


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> Any:  # usage errors exit 2 with a one-line reason
        self.print_usage(sys.stderr)
        print(f"ttc-eval: error: {message}", file=sys.stderr)
        raise SystemExit(2)


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog="ttc-eval", description="Evaluate test-time compute scaling of language models."
    )
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)

    r = sub.add_parser("run", help="generate, score and grade; write the run directory (resumable)")
    r.add_argument("--config", help="YAML file of run settings (flags given here override it)")
    r.add_argument("--model", help="alias (smollm2-135m), hub id or local directory")
    r.add_argument("--backend", help="registered backend (default: hf)")
    r.add_argument(
        "--backend-args", type=_kv, help="backend options, e.g. dtype=float32,batch_size=64"
    )
    r.add_argument(
        "--task", help="registered task, or lm_eval:NAME for an lm-eval task (default: arith)"
    )
    r.add_argument("--data-files", help="local JSON/JSONL replacing the task's hub dataset")
    r.add_argument(
        "--include-path",
        action="append",
        help="extra folder with task specs (ttc-eval's, or lm-eval's for lm_eval:NAME)",
    )
    r.add_argument("--grader", help="registered grader replacing the task's own")
    r.add_argument(
        "--num-fewshot", type=int, help="lm_eval tasks: few-shot examples (default: the task's)"
    )
    r.add_argument(
        "--apply-chat-template",
        action="store_true",
        default=None,
        help="lm_eval tasks: send the prompt through the model's chat template",
    )
    r.add_argument(
        "--strategy", help="comma list; arguments as name:key=value, e.g. best_of_n:mode=naive"
    )
    r.add_argument("--verifier", help="registered verifier, or none (default: logprob)")
    r.add_argument("--verifier-args", type=_kv, help="verifier options as key=value,...")
    r.add_argument(
        "--verifier-model", help="model of the verifier (self-judge: default the policy)"
    )
    r.add_argument(
        "--revision-model", help="model that writes revisions (revisions; default the policy)"
    )
    r.add_argument(
        "--revision-template",
        help="file holding the revision prompt, with {question} and {attempts}",
    )
    r.add_argument(
        "--bins",
        type=lambda t: [x.strip() for x in t.split(",") if x.strip()],
        help="difficulty bins to report: oracle,predicted,label (default: all three)",
    )
    r.add_argument(
        "--difficulty-samples",
        type=_positive,
        help="samples per question of a dedicated difficulty pass (default: the run's pool)",
    )
    r.add_argument("--shard", help="i/n: run only every n-th question from the i-th (0-based)")
    r.add_argument(
        "--base-url", help="openai backend: server URL(s), comma-separated, e.g. http://h:8000/v1"
    )
    r.add_argument("--budgets", type=_budgets, help="generation budgets, e.g. 1,2,4,8,16")
    r.add_argument("--limit", type=_positive, help="only the first N questions")
    r.add_argument("--seed", type=int)
    r.add_argument("--temperature", type=float)
    r.add_argument("--top-p", type=float)
    r.add_argument("--max-tokens", type=_positive)
    r.add_argument("--output-dir", help="parent of run directories (default: runs)")
    r.add_argument("--run-id", help="run directory name (default: derived from the settings)")
    r.add_argument("--leaderboard-dir", help="where <task>.csv is updated (default: leaderboards)")
    r.add_argument(
        "--no-cache", action="store_true", help="do not read or write the generation cache"
    )
    r.add_argument("--quiet", action="store_true", help="no progress bars")

    rep = sub.add_parser(
        "report", help="rebuild results and tables from a run directory (no model)"
    )
    rep.add_argument("run_dir")

    cmp = sub.add_parser(
        "compare", help="paired test: is NEW_RUN worse than BASE_RUN? (exit 1 if so; for CI)"
    )
    cmp.add_argument("base_run")
    cmp.add_argument("new_run")
    cmp.add_argument("--strategy", help="configuration label or strategy name (default: all)")
    cmp.add_argument("--budget", type=_positive, help="budget (default: the largest shared)")
    cmp.add_argument("--max-drop", type=float, default=0.02, help="allowed drop (default 0.02)")
    cmp.add_argument("--alpha", type=float, default=0.05, help="significance level (0.05)")
    cmp.add_argument("--json", help="also write the comparison as JSON here")

    lb = sub.add_parser("leaderboard", help="print a leaderboard CSV ranked, with CIs")
    lb.add_argument("csv")
    lb.add_argument("--budget", type=_positive, help="only this budget (default: each largest)")

    im = sub.add_parser("import", help="convert another tool's sample dump into a ttc-eval run")
    im.add_argument("format", help="generic, qwen-math or lm-eval")
    im.add_argument("file")
    im.add_argument("--task", required=True, help="task whose grader and labels apply")
    im.add_argument("--regrade", action="store_true", help="grade with ttc-eval's grader")
    im.add_argument("--output-dir", default="runs", help="parent of the new run (runs)")

    sub.add_parser(
        "lm-eval",
        help="lm-eval's own command line with the ttc model registered "
        "(--model ttc --model_args model=...,strategy=majority,n=8); every argument is lm-eval's",
        add_help=False,
    )

    mg = sub.add_parser("merge", help="join shard runs (--shard i/n) into one run")
    mg.add_argument("run_dirs", nargs="+")
    mg.add_argument("--output-dir", help="parent of the merged run (default: the shards' parent)")

    cf = sub.add_parser(
        "compare-flops",
        help="small model + test-time compute vs a larger model's greedy answers at equal FLOPs",
    )
    cf.add_argument("small_run")
    cf.add_argument("large_run")
    cf.add_argument(
        "--ratios",
        type=_ratios,
        default=(0.16, 0.79, 22.0),
        help="R = inference tokens / pretraining tokens, comma list (default 0.16,0.79,22)",
    )
    cf.add_argument("--params-small", type=float, help="non-embedding parameters (override)")
    cf.add_argument("--params-large", type=float, help="non-embedding parameters (override)")
    cf.add_argument("--json", help="also write the table as JSON here")
    cf.add_argument("--figure", help="PNG path (default: SMALL_RUN/report/compare_flops.png)")

    ls = sub.add_parser("list", help="list registered components")
    ls.add_argument("kind", choices=["tasks", "strategies", "verifiers", "backends", "graders"])
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


def config_from_args(args: argparse.Namespace) -> Any:
    from ttc_eval.config import RunConfig, StrategySpec

    settings: dict[str, Any] = {}
    if args.config:
        path = Path(args.config)
        if not path.is_file():
            raise UsageError(f"--config {path}: no such file")
        try:
            loaded = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as e:
            raise UsageError(f"--config {path}: not valid YAML ({e})") from None
        if not isinstance(loaded, dict):
            raise UsageError(f"--config {path}: expected a mapping of settings")
        settings.update(loaded)
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
        settings["revision_template"] = path.read_text()
    if args.no_cache:
        settings["cache"] = False
    if str(settings.get("verifier", "")).lower() == "none":
        settings["verifier"] = None
    known = {f.name for f in fields(RunConfig)}
    unknown = set(settings) - known
    if unknown:
        raise UsageError(f"unknown settings {sorted(unknown)} in --config; known: {sorted(known)}")
    return RunConfig.from_dict(settings)


def _list(kind: str) -> None:
    from tabulate import tabulate

    from ttc_eval import registry
    from ttc_eval.tasks import available_tasks, load_task_spec

    if kind == "tasks":
        rows = []
        for name, path in sorted(available_tasks().items()):
            spec = load_task_spec(path)
            rows.append([name, spec.version, spec.grader, spec.description])
        for source in registry.TASK_SOURCES.names():
            doc = (registry.TASK_SOURCES.get(source).__doc__ or "").strip().splitlines()
            rows.append([f"{source}:NAME", "", "", doc[0] if doc else ""])
        print(tabulate(rows, headers=["task", "version", "grader", "description"]))
        return
    reg = {
        "strategies": registry.STRATEGIES,
        "verifiers": registry.VERIFIERS,
        "backends": registry.BACKENDS,
        "graders": registry.GRADERS,
    }[kind]
    for name in reg.names():
        obj = reg.get(name)
        doc = (obj.__doc__ or "").strip().splitlines()
        print(f"{name:14s} {doc[0] if doc else ''}")


def _ratios(text: str) -> tuple[float, ...]:
    try:
        values = tuple(float(x) for x in text.split(",") if x.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected numbers like 0.16,0.79,22, got {text!r}"
        ) from None
    if not values or any(v <= 0 for v in values):
        raise argparse.ArgumentTypeError(f"ratios must be positive numbers, got {text!r}")
    return values


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


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["lm-eval"]:
        return _lm_eval(argv[1:])
    args = build_parser().parse_args(argv)
    try:
        if args.command == "list":
            _list(args.kind)
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

            if not 0 < args.alpha < 1 or args.max_drop < 0:
                raise UsageError("--alpha must be in (0, 1) and --max-drop >= 0")
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
        outcome = run(config, progress=not args.quiet)
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
