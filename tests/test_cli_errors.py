"""The command line's usage errors, help and listings: exit codes and the messages users see."""

from __future__ import annotations

import csv
import logging
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from conftest import MATH500, ROOT

from ttc_eval import registry
from ttc_eval.cli import (
    _QUIET_ENV,
    LIST_KINDS,
    build_parser,
    config_from_args,
    main,
    parse_args,
)
from ttc_eval.config import RunConfig
from ttc_eval.errors import DataError
from ttc_eval.reporting.compare import leaderboard_table
from ttc_eval.reporting.leaderboard import COLUMNS
from ttc_eval.tasks import load_task_spec

FAKE = ["--backend", "fake", "--task", "arith", "--quiet"]


def exit_code(args: list[str]) -> int:
    try:
        return main(args)
    except SystemExit as e:  # argparse usage errors
        return int(e.code or 0)


def _fake_run(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """Replace the runner: record how the CLI calls it."""
    calls: list[dict[str, Any]] = []

    def run(config: RunConfig, **kwargs: Any) -> Any:
        calls.append({"config": config, **kwargs})
        return SimpleNamespace(
            table="table",
            run_dir=Path("runs/x"),
            results={"compute": {"samples": 0}},
            generated_samples=0,
        )

    monkeypatch.setattr("ttc_eval.runner.run", run)
    return calls


# 1. Options without a command mean `run`.


def test_options_without_a_command_mean_run(capsys: pytest.CaptureFixture[str]) -> None:
    args = ["--model", "m", "--strategy", "majority", *FAKE, "--budgets", "1,2", "--limit", "2"]
    assert main(args) == 0
    (run_dir,) = Path("runs").iterdir()
    assert run_dir.name.startswith("arith-m-")
    assert "run directory:" in capsys.readouterr().err
    assert parse_args(["--task", "arith"]).command == "run"


def test_top_level_help_stays_top_level(capsys: pytest.CaptureFixture[str]) -> None:
    for flag in ("-h", "--help"):
        assert exit_code([flag]) == 0
        out = capsys.readouterr().out
        assert "usage: ttc-eval [-h] COMMAND" in out and "compare-flops" in out
        assert "Options without a command mean `run`" in out
    assert exit_code(["--limit", "2", "-h"]) == 0
    assert "usage: ttc-eval run" in capsys.readouterr().out


# 2. A usage error is one line and a hint, exit 2.


@pytest.mark.parametrize(
    ("args", "message", "hint"),
    [
        (["run", "--limit", "x"], "argument --limit: expected a positive integer, got 'x'", "run"),
        (["--budgets", "1,0"], "argument --budgets: expected budgets as positive integers", "run"),
        (
            ["--temprature", "1"],
            "unrecognized arguments: --temprature (did you mean --temperature?)",
            "run",
        ),
        (["run", "extra"], "unrecognized arguments: extra", "run"),
        (["rn"], "invalid choice: 'rn'", ""),
        ([], "the following arguments are required: COMMAND", ""),
        (["list", "loader"], "did you mean loaders?", "list"),
        (["leaderboard"], "the following arguments are required: csv", "leaderboard"),
        (
            ["compare", "a", "b", "--alpha", "2"],
            "expected a significance level in (0, 1)",
            "compare",
        ),
        (["compare", "a", "b", "--max-drop", "nan"], "argument --max-drop", "compare"),
        (
            ["compare-flops", "a", "b", "--ratios", "0,1"],
            "ratios must be positive",
            "compare-flops",
        ),
        (["import", "generic", "f.jsonl"], "required: --task", "import"),
        (["run", "--seed", "-1"], "argument --seed: expected an integer >= 0", "run"),
    ],
)
def test_usage_error_is_one_line_and_a_hint(
    capsys: pytest.CaptureFixture[str], args: list[str], message: str, hint: str
) -> None:
    assert exit_code(args) == 2
    err = capsys.readouterr().err
    assert "usage:" not in err
    first, second = err.strip().splitlines()
    assert first.startswith("ttc-eval: error: ") and message in first
    assert second == f"see ttc-eval{' ' + hint if hint else ''} --help"


def test_strategy_arguments_split_by_a_comma_say_how_to_join_them(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """``revisions:chains=1,length=16`` reads as a second strategy named ``length=16``: the
    error says that arguments are joined by colons, not that no such strategy exists."""
    assert exit_code(["run", "--strategy", "revisions:chains=1,length=16"]) == 2
    err = capsys.readouterr().err
    assert "'length=16' is not a strategy" in err and "revisions:chains=1:length=16" in err


# 3. Every option says its default; the defaults are RunConfig's.


def test_every_option_of_every_command_shows_its_default() -> None:
    parser = build_parser()
    assert set(parser.commands) == {
        "run",
        "report",
        "compare",
        "leaderboard",
        "import",
        "merge",
        "compare-flops",
        "list",
        "policy",
        "verifiers",
        "processbench",
        "learn",
        "view",
    }
    for name, command in parser.commands.items():
        for action in command._actions:
            if not action.option_strings or action.option_strings == ["-h", "--help"]:
                assert action.option_strings or action.help, (name, action.dest)
                continue
            assert (action.help and "default" in action.help) or action.required, (
                name,
                action.option_strings,
            )


def test_run_help_defaults_come_from_the_config(capsys: pytest.CaptureFixture[str]) -> None:
    assert exit_code(["run", "--help"]) == 0
    out = " ".join(capsys.readouterr().out.split())
    d = RunConfig()
    for text in (
        f"generation budgets N (default: {','.join(map(str, d.budgets))})",
        f"(default: {','.join(s.name for s in d.strategies)})",
        "only the first N questions (default: all)",
        f"sampling seed (default: {d.seed})",
        "(default: the task's, else 0.7)",
        "(default: the task's, else 1.0)",
        "(default: the task's, else 256)",
        f"(default: {d.model})",
        f"(default: {d.verifier})",
        f"(default: {d.output_dir})",
        "--force-new start the run afresh when the run directory holds a run with other "
        "settings or code versions",
        "--verbose show third-party library logs and warnings",
    ):
        assert text in out, text


# 4. --force-new reaches the runner; third-party noise is hidden unless --verbose.


def test_force_new_and_quiet_reach_the_runner(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = _fake_run(monkeypatch)
    assert main([*FAKE, "--force-new"]) == 0
    assert main(["run", "--backend", "fake"]) == 0
    assert [(c["force_new"], c["progress"]) for c in calls] == [(True, False), (False, True)]


@pytest.fixture(autouse=True)
def _restore_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """main() sets library verbosity variables; undo them after each test."""
    for name in _QUIET_ENV:
        monkeypatch.delenv(name, raising=False)


def test_third_party_logs_are_hidden_unless_verbose(
    monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text('{"problem": "1+1", "answer": "2"}\n{"problem": oops}\n')
    import datasets  # imported now, so that its own set-up does not set levels below

    assert datasets
    for name in ("datasets", "transformers", "vllm", "httpx"):
        monkeypatch.setattr(logging.getLogger(name), "level", logging.NOTSET)
    args = ["--backend", "fake", "--task", "math500", "--data-files", str(bad), "--quiet"]
    assert main([*args, "--verbose"]) == 2
    assert logging.getLogger("datasets").level == logging.NOTSET  # left alone
    capfd.readouterr()
    assert main(args) == 2
    err = capfd.readouterr().err
    assert err == f"ttc-eval: error: {bad}:2: not valid JSON (Expecting value)\n"
    for name in ("datasets", "transformers", "vllm", "httpx", "math_verify", "torch"):
        assert logging.getLogger(name).level == logging.ERROR


def test_quiet_hides_the_grading_bar(capfd: pytest.CaptureFixture[str]) -> None:
    """The math grader's bar, drawn inside the pipeline's, obeys --quiet like every bar."""
    args = ["--backend", "fake", "--task", "math500", "--data-files", str(MATH500)]
    args += ["--limit", "2", "--budgets", "1", "--strategy", "majority"]
    assert main([*args, "--run-id", "loud"]) == 0
    assert "grading:" in capfd.readouterr().err  # the bar this test is about is drawn
    assert main([*args, "--run-id", "quiet", "--quiet"]) == 0
    err = capfd.readouterr().err
    assert "grading" not in err and "%|" not in err


# 5. `list` prints whole descriptions, for every kind a hint can name.


def test_list_prints_whole_descriptions(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["list", "strategies"]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "or last (majority over each chain's last attempt)." in out  # revisions, 3rd line
    assert "mode=naive: the single best-scored sample" in out  # no ``markup``
    assert main(["list", "tasks"]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "the split Snell et al. evaluate on; math-verify grading." in out
    assert "lm_eval:NAME" in out
    for kind in ("loaders", "prompts", "importers", "task_sources", "graders", "backends"):
        assert main(["list", kind]) == 0
        assert capsys.readouterr().out.strip()


def test_every_registry_hint_names_a_list_kind() -> None:
    regs = [getattr(registry, n) for n in dir(registry) if n.isupper()]
    for reg in regs:
        if isinstance(reg, registry.Registry) and reg is not registry.EXPANSIONS:
            assert reg.plural in LIST_KINDS
            assert f"`ttc-eval list {reg.plural}`" in reg.unknown_message("nothing")


def test_unknown_loader_points_to_list_loaders(tmp_path: Path) -> None:
    spec = tmp_path / "t.yaml"
    spec.write_text("name: t\nversion: 1\nloader: hf_datset\nprompt: raw\ngrader: exact\n")
    with pytest.raises(DataError, match=r"Did you mean: hf_dataset\?.*`ttc-eval list loaders`"):
        load_task_spec(spec)


# 6. Input paths of a config file resolve against its folder.


def _spec_folder(folder: Path) -> None:
    folder.mkdir(parents=True)
    (folder / "sums.yaml").write_text(
        "name: sums\nversion: 1\nloader: hf_dataset\n"
        "loader_args: {path: none, question_field: q, answer_field: a}\n"
        "prompt: boxed_steps\ngrader: exact\n"
    )


def test_config_paths_resolve_against_the_config_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    conf = tmp_path / "project" / "conf"
    (conf / "data").mkdir(parents=True)
    (conf / "data" / "q.jsonl").write_text('{"q": "What is 1 + 2?", "a": "3"}\n')
    _spec_folder(tmp_path / "project" / "specs")
    (conf / "c.yaml").write_text(
        "backend: fake\ntask: sums\ndata_files: data/q.jsonl\ninclude_path: [../specs]\n"
        "strategies: [majority]\nbudgets: [1, 2]\n"
    )
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    config = config_from_args(parse_args(["--config", str(conf / "c.yaml")]))
    assert Path(config.data_files) == conf / "data" / "q.jsonl"
    assert [Path(p) for p in config.include_path] == [tmp_path / "project" / "specs"]
    assert main(["--config", str(conf / "c.yaml"), "--quiet"]) == 0
    # A relative config path stays relative (the run id does not depend on the folder).
    monkeypatch.chdir(tmp_path / "project")
    config = config_from_args(parse_args(["--config", "conf/c.yaml"]))
    assert config.data_files == "conf/data/q.jsonl" and config.include_path == ("specs",)
    # Flags stay relative to the working directory.
    config = config_from_args(parse_args(["--config", "conf/c.yaml", "--data-files", "x.jsonl"]))
    assert config.data_files == "x.jsonl"


def test_shipped_configs_load_from_any_folder(tmp_path: Path) -> None:
    for path in sorted((ROOT / "configs").glob("*.yaml")):
        config = config_from_args(parse_args(["--config", str(path)]))
        if config.data_files:
            assert Path(config.data_files).resolve() == MATH500.resolve()


def test_bad_config_file_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text("task: arith\nbudgets: [1, 2\n")
    assert main(["--config", str(cfg)]) == 2
    assert f"--config {cfg}:2: expected ',' or ']'" in capsys.readouterr().err
    cfg.write_text("data_files: 3\n")
    assert main(["--config", str(cfg)]) == 2
    assert "data_files must be a path, got 3" in capsys.readouterr().err
    assert main(["--config", "nowhere.yaml"]) == 2
    assert "--config nowhere.yaml: no such file" in capsys.readouterr().err


# 7. Bad data inputs.


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"\x89PNG\r\n\x1a\n\x00\x00\xff\xfe", "{f}: not a UTF-8 text file"),
        (b"", "{f}: the file is empty; expected JSON lines"),
        (b"\n  \n", "{f}: the file is empty"),
        (
            b'{"problem": "1+1", "answer": "2", "unique_id": "a"}\n\n'
            b'{"problem": "2+2", "unique_id": "b"}\n',
            "{f}:3: field 'answer' (gold answer) is missing; fields with values: "
            "['problem', 'unique_id']",
        ),
        (
            b'[{"problem": "1+1", "answer": "2", "unique_id": "a"},\n'
            b' {"problem": "2+2", "answer": "", "unique_id": "b"}]',
            "{f} (record 2): field 'answer' (gold answer) is empty",
        ),
        (b'[{"problem": "1+1"},\n 7]', "{f} (record 2): each record must be a JSON object"),
        (b'{"problem": "1+1"}\n[1]\n', "{f}:2: each line must be a JSON object"),
    ],
)
def test_bad_data_file_errors(
    tmp_path: Path, capfd: pytest.CaptureFixture[str], content: bytes, message: str
) -> None:
    f = tmp_path / "data.jsonl"
    f.write_bytes(content)
    assert main(["--backend", "fake", "--task", "math500", "--data-files", str(f)]) == 2
    err = capfd.readouterr().err
    assert err.startswith(f"ttc-eval: error: {message.format(f=f)}")
    assert "Traceback" not in err and "Failed to load JSON" not in err
    assert len(err.splitlines()) == 1


def test_data_files_folder_and_missing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--backend", "fake", "--task", "math500", "--data-files", str(tmp_path)]) == 2
    assert "is a folder" in capsys.readouterr().err
    assert main(["--backend", "fake", "--task", "math500", "--data-files", "no.jsonl"]) == 2
    assert "--data-files no.jsonl: no such file" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("text", "line", "message"),
    [
        (
            "name: broken\nversion: 1\nloader: [unclosed\n",
            3,
            "(while parsing a flow sequence opened on this line)",
        ),
        ("name: broken\nversion: 1\nloader: [unclosed", 3, "expected ',' or ']'"),
        ('name: broken\nversion: "1\nloader: arith\n', 2, "while scanning a quoted scalar"),
        ("name: x\nversion: 1\n  bad: indent\nloader: a\n", 3, "mapping values are not allowed"),
        ("a: 1\nb: [1, 2\nc: 3\n", 3, "started on line 2"),
    ],
)
def test_yaml_error_names_the_line_to_fix(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str, line: int, message: str
) -> None:
    specs = tmp_path / "specs"
    specs.mkdir()
    (specs / "broken.yaml").write_text(text)
    with pytest.raises(DataError) as e:
        load_task_spec(specs / "broken.yaml")
    assert str(e.value).startswith(f"{specs / 'broken.yaml'}:{line}: malformed task spec: ")
    assert message in str(e.value)
    assert main([*FAKE[:2], "--task", "broken", "--include-path", str(specs)]) == 2
    assert f"broken.yaml:{line}: malformed task spec" in capsys.readouterr().err


def test_binary_task_spec(tmp_path: Path) -> None:
    spec = tmp_path / "t.yaml"
    spec.write_bytes(b"\xff\xfe\x00bad")
    with pytest.raises(DataError, match="cannot read the task spec as text"):
        load_task_spec(spec)


# 8. Leaderboards.


def _leaderboard(path: Path, rows: list[dict[str, Any]]) -> None:
    with path.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=COLUMNS, extrasaction="ignore")
        w.writeheader()
        for r in rows:
            w.writerow(
                {
                    "task": "arith",
                    "model": "m",
                    "strategy": "majority",
                    "strategy_args": "{}",
                    "verifier": "",
                    "shape": "",
                    "n_problems": 30,
                    "ci_low": 0.1,
                    "ci_high": 0.9,
                    **r,
                }
            )


def test_leaderboard_with_no_row_at_the_budget(capsys: pytest.CaptureFixture[str]) -> None:
    path = Path("lb.csv")
    _leaderboard(
        path,
        [
            {"budget": 1, "accuracy": 0.3, "run_id": "r1", "date": "2025-01-01"},
            {"budget": 4, "accuracy": 0.5, "run_id": "r1", "date": "2025-01-01"},
        ],
    )
    assert main(["leaderboard", str(path), "--budget", "16"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(
        "ttc-eval: error: lb.csv: no run recorded budget 16; budgets recorded: 1, 4"
    )
    assert main(["leaderboard", str(path), "--budget", "4"]) == 0
    assert "0.500" in capsys.readouterr().out


def test_leaderboard_missing_empty_or_foreign_csv(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["leaderboard", "nowhere.csv"]) == 2
    assert "nowhere.csv: no such leaderboard" in capsys.readouterr().err
    Path("empty.csv").write_text("")
    assert main(["leaderboard", "empty.csv"]) == 2
    assert "empty.csv: the file is empty" in capsys.readouterr().err
    _leaderboard(Path("header.csv"), [])
    assert main(["leaderboard", "header.csv"]) == 2
    assert "header.csv: no run has been recorded in it yet" in capsys.readouterr().err
    Path("other.csv").write_text("a,b\n1,2\n")
    assert main(["leaderboard", "other.csv"]) == 2
    assert "other.csv: not a ttc-eval leaderboard (no columns ['model'," in capsys.readouterr().err
    Path("bin.csv").write_bytes(b"\xff\xfe\x00\x01")
    assert main(["leaderboard", "bin.csv"]) == 2
    assert "bin.csv: not a leaderboard CSV" in capsys.readouterr().err


def test_leaderboard_keeps_the_newest_run_not_the_largest_id() -> None:
    path = Path("lb.csv")
    _leaderboard(
        path,
        [
            {"budget": 4, "accuracy": 0.9, "run_id": "zzz-old", "date": "2025-01-02"},
            {"budget": 4, "accuracy": 0.2, "run_id": "aaa-new", "date": "2025-03-01"},
            # Same day: the later row in the file is the newer run.
            {
                "budget": 4,
                "accuracy": 0.8,
                "run_id": "zz-first",
                "date": "2025-03-01",
                "model": "m2",
            },
            {
                "budget": 4,
                "accuracy": 0.4,
                "run_id": "aa-second",
                "date": "2025-03-01",
                "model": "m2",
            },
            # Without --budget, a configuration's largest budget is shown.
            {"budget": 16, "accuracy": 0.6, "run_id": "big", "date": "2024-12-01", "model": "m3"},
            {"budget": 4, "accuracy": 0.7, "run_id": "small", "date": "2025-03-01", "model": "m3"},
        ],
    )
    table = leaderboard_table(path)
    runs = [line.split("|")[-2].strip() for line in table.splitlines()[2:]]
    assert runs == ["big", "aa-second", "aaa-new"]
    table = leaderboard_table(path, budget=4)
    runs = [line.split("|")[-2].strip() for line in table.splitlines()[2:]]
    assert runs == ["small", "aa-second", "aaa-new"]


# 9. Sampling values are checked on the command line.


@pytest.mark.parametrize(
    ("flag", "value", "message"),
    [
        ("--temperature", "nan", "expected a finite temperature >= 0 (0 is greedy), got 'nan'"),
        ("--temperature", "inf", "expected a finite temperature >= 0"),
        ("--temperature", "-0.5", "expected a finite temperature >= 0"),
        ("--temperature", "hot", "expected a finite temperature >= 0"),
        ("--top-p", "0", "expected a top-p in (0, 1] (1 keeps every token), got '0'"),
        ("--top-p", "5", "expected a top-p in (0, 1]"),
        ("--top-p", "nan", "expected a top-p in (0, 1]"),
    ],
)
def test_sampling_values_are_refused(
    capsys: pytest.CaptureFixture[str], flag: str, value: str, message: str
) -> None:
    assert exit_code([*FAKE, flag, value]) == 2
    err = capsys.readouterr().err
    assert f"ttc-eval: error: argument {flag}: {message}" in err
    assert not Path("runs").exists()


def test_valid_sampling_values_pass(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = _fake_run(monkeypatch)
    assert main([*FAKE, "--temperature", "0", "--top-p", "1"]) == 0
    assert (calls[0]["config"].temperature, calls[0]["config"].top_p) == (0.0, 1.0)


@pytest.mark.parametrize(
    ("generation", "message"),
    [
        ("{temperature: hot}", "generation.temperature must be a finite number >= 0 (0 = greedy), "
         "got 'hot'; fix the spec, or override it with --temperature"),
        ("{temperature: .nan}", "generation.temperature must be a finite number >= 0"),
        ("{temperature: -1}", "generation.temperature must be a finite number >= 0"),
        ("{top_p: 0}", "generation.top_p must be a number in (0, 1] (1 = no nucleus cut), got 0"),
        ("{top_p: yes}", "generation.top_p must be a number in (0, 1]"),
        ("{max_tokens: 2.5}", "generation.max_tokens must be a positive integer, got 2.5"),
        ("{max_tokens: 0}", "generation.max_tokens must be a positive integer"),
        ("{stop: [1]}", "generation.stop must be a string or a list of strings, got [1]; "
         "fix the spec\n"),
        ("{temprature: 0}", "unknown generation setting 'temprature'. Did you mean: "
         "temperature? Allowed: temperature, top_p, max_tokens, stop"),
    ],
)  # fmt: skip
def test_bad_task_spec_sampling_values_name_the_spec(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], generation: str, message: str
) -> None:
    specs = tmp_path / "specs"
    specs.mkdir()
    spec = specs / "sums.yaml"
    spec.write_text(
        "name: sums\nversion: 1\nloader: arith\nprompt: boxed_steps\ngrader: exact\n"
        f"generation: {generation}\n"
    )
    args = [*FAKE[:2], "--task", "sums", "--include-path", str(specs), "--quiet"]
    # Even where a flag overrides the value: the spec is wrong for every other run.
    for extra in ([], ["--temperature", "0", "--top-p", "1", "--max-tokens", "8"]):
        assert exit_code([*args, *extra]) == 2
        err = capsys.readouterr().err
        assert err.startswith(f"ttc-eval: error: task spec 'sums' ({spec}): {message}")
        assert "Traceback" not in err and "--temperature must be" not in err
    assert not Path("runs").exists()


def test_task_spec_sampling_values_are_used(tmp_path: Path) -> None:
    config = RunConfig(task="arith")
    given = {"temperature": 0, "top_p": 0.5, "max_tokens": 9, "stop": "##"}
    resolved = config.resolve(given)
    assert (resolved.temperature, resolved.top_p, resolved.max_tokens) == (0.0, 0.5, 9)
    assert resolved.stop == ("##",)  # one string is one stop string, not its characters
    assert config.resolve({"stop": ["a", "b"]}).stop == ("a", "b")
    assert RunConfig(task="arith", temperature=1.0).resolve(given).temperature == 1.0


# 10. Usage errors of the other commands.


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["report", "notrun"], "notrun is not a run directory (no config.json)"),
        (["compare", "notrun", "nowhere"], "is not a run directory"),
        (["compare-flops", "notrun", "nowhere"], "is not a run directory"),
        (["merge", "notrun", "nowhere"], "is not a run directory"),
        (["import", "qwen", "x.jsonl", "--task", "arith"], "Did you mean: qwen-math?"),
        (["import", "generic", "x.jsonl", "--task", "arith"], "x.jsonl: no such file"),
        (["leaderboard", "notrun"], "notrun: is a folder"),
        (["policy", "fit", "notrun", "--probe", "2", "--output", "p.yaml"], "is not a run"),
    ],
)
def test_other_commands_usage_errors(
    capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    Path("notrun").mkdir()
    assert exit_code(args) == 2
    err = capsys.readouterr().err
    assert err.startswith("ttc-eval: error: ") and message in err
    assert "Traceback" not in err
