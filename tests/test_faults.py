"""Fault tests of run directories, as a hostile tester would: corrupt rows, stale specs,
concurrent writers, damaged caches and config files. Fast: the scripted fake backend."""

from __future__ import annotations

import json
import os
import sqlite3
import stat
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import without_seconds

from ttc_eval.cli import main
from ttc_eval.config import RunConfig
from ttc_eval.errors import UsageError
from ttc_eval.registry import GRADERS
from ttc_eval.runner import run
from ttc_eval.store import TraceStore

ROOT = Path(__file__).resolve().parents[1]
ARGS = ["run", "--backend", "fake", "--task", "arith", "--quiet", "--verifier", "none"]
ARGS += ["--strategy", "majority", "--budgets", "1,2", "--no-cache"]


def _cfg(**kw: Any) -> RunConfig:
    base: dict[str, Any] = dict(
        backend="fake", budgets=(1, 2), limit=6, run_id="r", cache=False, verifier=None
    )
    base["strategies"] = ({"name": "majority"},)
    base.update(kw)
    return RunConfig.from_dict(base)


def _quiet(_: str) -> None:
    pass


def _rows(path: Path) -> list[dict[str, Any]]:
    return [json.loads(x) for x in path.read_text().splitlines() if x.startswith("{")]


def _results(run_dir: Path) -> dict[str, Any]:
    r = json.loads((run_dir / "results.json").read_text())
    return {k: r[k] for k in ("rows", "compute", "n_problems")}


# --- torn and foreign rows -------------------------------------------------------------------


def _no_warning(message: str) -> None:
    raise AssertionError(f"unexpected warning: {message}")


def test_garbage_middle_row_keeps_every_other_row_and_redoes_its_question(
    capsys: pytest.CaptureFixture[str],
) -> None:
    run(_cfg(), progress=False, log=_quiet)
    path = Path("runs/r/traces.jsonl")
    rejected = Path("runs/r/traces.rejected.jsonl")
    lines = path.read_text().splitlines(keepends=True)
    assert len(lines) == 6
    victim = json.loads(lines[2])["problem_id"]
    lines[2] = "}}garbage{{ not json\n"
    path.write_text("".join(lines))
    # A reader leaves the file as it is and says what the next run does about the row.
    capsys.readouterr()
    assert main(["report", "runs/r"]) == 0
    err = capsys.readouterr().err
    assert err.count("warning") == 1 and "traces.jsonl:3: skipping an unreadable" in err
    assert "The next `ttc-eval run` of this run directory moves it to traces.rejected" in err
    assert path.read_text() == "".join(lines) and not rejected.exists()
    warnings: list[str] = []
    out = run(_cfg(), progress=False, log=warnings.append)
    # Only the bad row's question is generated again (2 samples), nothing else.
    assert out.generated_samples == 2
    # The run warns once (its results are rebuilt from a clean file), naming line and file.
    (warning,) = [w for w in warnings if w.startswith("warning")]
    assert f"{path}: line 3 could not be read as a trace row (Expecting value" in warning
    assert f"moved it, as it was, to {rejected}" in warning
    assert "warning" not in capsys.readouterr().err
    # Nothing is lost: the row as it was is in the side file, the five good rows are still
    # there byte for byte and in order, then the redone question's row.
    assert rejected.read_text() == "}}garbage{{ not json\n"
    now = path.read_text().splitlines(keepends=True)
    assert len(now) == 6 and now[:2] == lines[:2] and now[2:5] == lines[3:6]
    assert json.loads(now[5])["problem_id"] == victim
    store = TraceStore(path, warn=_no_warning)
    assert store.bad_lines == [] and len(store.traces) == 6
    # The warning is gone for good: report and a rerun say nothing more.
    assert main(["report", "runs/r"]) == 0
    assert "warning" not in capsys.readouterr().err
    assert run(_cfg(), progress=False, log=_no_warning_but_progress).generated_samples == 0
    # Later bad rows are added to the side file, not written over the first.
    path.write_text("[1, 2]\n" + path.read_text() + "{}\n")
    later: list[str] = []
    run(_cfg(), progress=False, log=later.append)
    assert rejected.read_text() == "}}garbage{{ not json\n[1, 2]\n{}\n"
    (warning,) = [w for w in later if w.startswith("warning")]
    assert "lines 1, 8 could not be read as trace rows (line 1: not a JSON object; line 8: " in (
        warning
    )
    assert len(path.read_text().splitlines()) == 6


def _no_warning_but_progress(message: str) -> None:
    """The runner's log: its progress lines are fine, a warning is not."""
    assert not message.startswith("warning"), message


def test_valid_json_with_wrong_fields_is_skipped_not_a_traceback(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main([*ARGS, "--limit", "3", "--run-id", "w"]) == 0
    path = Path("runs/w/traces.jsonl")
    lines = path.read_text().splitlines(keepends=True)
    lines.insert(1, json.dumps({"problem_id": "x", "candidates": 3}) + "\n")
    path.write_text("".join(lines))
    capsys.readouterr()
    assert main(["report", "runs/w"]) == 0
    err = capsys.readouterr().err
    assert "traces.jsonl:2" in err and "missing field" in err
    assert json.loads(Path("runs/w/results.json").read_text())["n_problems"] == 3


def test_unterminated_last_row_then_append_keeps_rows_apart() -> None:
    run(_cfg(limit=3), progress=False, log=_quiet)
    path = Path("runs/r/traces.jsonl")
    lines = path.read_text().splitlines(keepends=True)
    path.write_text("".join(lines[:2]) + '{"problem_id": "half')  # torn mid-write, no newline
    out = run(_cfg(limit=3), progress=False, log=_quiet)
    assert out.generated_samples == 2
    store = TraceStore(path, warn=_no_warning)
    assert store.bad_lines == [] and len(store.traces) == 3
    # The torn row moved aside whole; the same sample on a new line (its wall time aside).
    assert Path("runs/r/traces.rejected.jsonl").read_text() == '{"problem_id": "half\n'
    redone = json.loads(path.read_text().splitlines()[2])
    assert without_seconds(redone) == without_seconds(json.loads(lines[2]))


# --- identity: a changed task, grader or question set is never resumed -----------------------


def _task_copy(tmp: Path, edit: dict[str, Any]) -> Path:
    spec = yaml.safe_load((ROOT / "tasks" / "arith.yaml").read_text())
    for k, v in edit.items():
        if isinstance(v, dict):
            spec[k] = {**spec.get(k, {}), **v}
        else:
            spec[k] = v
    folder = tmp / "mytasks"
    folder.mkdir(exist_ok=True)
    (folder / "arith.yaml").write_text(yaml.safe_dump(spec))
    return folder


@pytest.mark.parametrize(
    ("edit", "what"),
    [
        ({"loader_args": {"seed": 7}}, "questions_sha256"),  # the questions themselves change
        ({"prompt_args": {"system": "Answer briefly."}}, "spec_sha256"),
        ({"version": 2}, "task.version"),
    ],
)
def test_changed_task_spec_refuses_to_resume(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], edit: dict[str, Any], what: str
) -> None:
    folder = _task_copy(tmp_path, {})
    run_args = [*ARGS, "--limit", "3", "--run-id", "t", "--include-path", str(folder)]
    assert main(run_args) == 0
    before = Path("runs/t/traces.jsonl").read_bytes()
    _task_copy(tmp_path, edit)  # the same file, edited in place: every setting is the same
    capsys.readouterr()
    assert main(run_args) == 2
    err = capsys.readouterr().err
    assert what in err and "--force-new" in err and "--run-id" in err
    assert "settings." not in err
    assert Path("runs/t/traces.jsonl").read_bytes() == before  # nothing touched
    # --force-new moves the old run aside whole and starts afresh.
    assert main([*run_args, "--force-new"]) == 0
    (old,) = [d for d in Path("runs").iterdir() if d.name.startswith("t.old-")]
    assert (old / "traces.jsonl").read_bytes() == before
    new = json.loads(Path("runs/t/config.json").read_text())
    assert (
        new["identity"]["task"] != json.loads((old / "config.json").read_text())["identity"]["task"]
    )


def test_changed_grader_version_refuses_to_resume_and_report_says_so(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    run_args = [*ARGS, "--limit", "2", "--run-id", "g"]
    assert main(run_args) == 0
    grader = GRADERS.get("exact")
    monkeypatch.setattr(grader, "version", grader.version + "-changed")
    capsys.readouterr()
    assert main(run_args) == 2
    err = capsys.readouterr().err
    assert "grader.version" in err and "-changed" in err
    assert main(["report", "runs/g"]) == 0
    err = capsys.readouterr().err
    assert "note: grader exact: this run used" in err
    results = json.loads(Path("runs/g/results.json").read_text())
    recorded = grader.version.removesuffix("-changed")
    assert results["stale_versions"] and results["rows"][0]["grader_version"] == recorded


def test_added_backend_options_refuse_to_resume(capsys: pytest.CaptureFixture[str]) -> None:
    run_args = [*ARGS, "--limit", "2", "--run-id", "b"]
    assert main(run_args) == 0
    capsys.readouterr()
    assert main([*run_args, "--backend-args", "p_correct=1.0"]) == 2
    assert "settings.backend_args" in capsys.readouterr().err
    # batch_size cannot change a sample (batch-invariant sampling): it resumes.
    assert main([*run_args, "--backend-args", "batch_size=3"]) == 0


def test_run_from_before_identities_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    run_args = [*ARGS, "--limit", "2", "--run-id", "legacy"]
    assert main(run_args) == 0
    cfg = Path("runs/legacy/config.json")
    record = json.loads(cfg.read_text())
    del record["identity"]
    cfg.write_text(json.dumps(record))
    capsys.readouterr()
    assert main(run_args) == 2
    assert "recorded before run identities" in capsys.readouterr().err
    assert main([*run_args, "--force-new"]) == 0


def test_traces_without_config_json_are_not_adopted(capsys: pytest.CaptureFixture[str]) -> None:
    run_args = [*ARGS, "--limit", "2", "--run-id", "orphan"]
    assert main(run_args) == 0
    Path("runs/orphan/config.json").unlink()
    capsys.readouterr()
    assert main(run_args) == 2
    assert "traces.jsonl without config.json" in capsys.readouterr().err
    assert main([*run_args, "--force-new"]) == 0
    assert [d.name.startswith("orphan.old-") for d in Path("runs").iterdir()].count(True) == 1


def test_torn_log_line_is_skipped_and_the_next_entry_starts_a_new_line() -> None:
    run(_cfg(limit=2), progress=False, log=_quiet)
    log = Path("runs/r/log.jsonl")
    with log.open("a") as f:
        f.write('{"event": "start", "ti')  # killed mid-write
    Path("runs/r/traces.jsonl").write_text(
        Path("runs/r/traces.jsonl").read_text().splitlines(keepends=True)[0]
    )
    run(_cfg(limit=2), progress=False, log=_quiet)  # resumes; results rebuilt
    lines = log.read_text().splitlines()
    assert lines[2] == '{"event": "start", "ti'
    assert [json.loads(x)["event"] for x in lines[3:]] == ["start", "end"]
    assert main(["report", "runs/r"]) == 0


def test_config_file_values_of_the_wrong_type_are_usage_errors(tmp_path: Path) -> None:
    for bad in (
        {"max_tokens": "lots"},
        {"difficulty_samples": "5"},
        {"backend_args": [1]},
        {"strategies": [{"args": {}}]},
        {"seed": "abc"},
        {"run_id": "a/b"},
    ):
        with pytest.raises(UsageError):
            RunConfig.from_dict({"backend": "fake", **bad})
    # Lists written as one string mean what they say.
    cfg = RunConfig.from_dict({"strategies": "majority,greedy", "bins": "oracle", "stop": "##"})
    assert [s.name for s in cfg.strategies] == ["majority", "greedy"]
    assert cfg.bins == ("oracle",) and cfg.stop == ("##",)
    assert RunConfig(temperature=1).temperature == 1.0 and isinstance(
        RunConfig(temperature=1).temperature, float
    )


def test_data_path_spelling_does_not_change_the_run_id(tmp_path: Path) -> None:
    data = tmp_path / "d.jsonl"
    a = RunConfig(data_files=str(data)).default_run_id()
    assert RunConfig(data_files="d.jsonl").default_run_id() == a  # cwd is tmp_path
    assert RunConfig(data_files="./d.jsonl").default_run_id() == a


def test_identity_ignores_what_does_not_change_numbers() -> None:
    a = _cfg(budgets=(1, 2), backend_args={"batch_size": 8}, chunk_samples=4)
    b = _cfg(budgets=(2, 1, 2), backend_args={"batch_size": 64}, chunk_samples=256)
    assert a.default_run_id() == b.default_run_id()
    assert b.budgets == (1, 2)
    assert _cfg(budgets=(1, 4)).default_run_id() != a.default_run_id()


# --- one writer per run directory -------------------------------------------------------------


def test_second_concurrent_writer_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    run_dir = Path("runs/c")
    run_dir.mkdir(parents=True)
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time; from pathlib import Path; from ttc_eval._rundir import RunLock; "
            "lock = RunLock(Path(sys.argv[1])); lock.acquire(); print('held', flush=True); "
            "time.sleep(60)",
            str(run_dir),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        assert main([*ARGS, "--limit", "2", "--run-id", "c"]) == 2
        err = capsys.readouterr().err
        assert "being written by another ttc-eval run" in err and f"pid {holder.pid}" in err
        assert not (run_dir / "traces.jsonl").exists()
    finally:
        holder.kill()
        holder.wait()
    # The kernel drops a dead holder's lock: the run goes ahead.
    assert main([*ARGS, "--limit", "2", "--run-id", "c"]) == 0
    assert len(_rows(run_dir / "traces.jsonl")) == 2


# --- damaged cache and config.json -------------------------------------------------------------


@pytest.mark.parametrize("damage", ["garbage", "malformed"])
def test_corrupt_generation_cache_is_a_clear_error(
    capsys: pytest.CaptureFixture[str], damage: str
) -> None:
    args = ["run", "--backend", "fake", "--task", "arith", "--quiet", "--verifier", "none"]
    args += ["--strategy", "majority", "--budgets", "1,2", "--limit", "2"]
    assert main(args) == 0  # creates the cache
    db = Path(os.environ["TTC_EVAL_CACHE"]) / "generations.sqlite"
    # Move the WAL's pages into the file first: otherwise the file may still be nearly empty,
    # and damaging it would damage nothing.
    con = sqlite3.connect(db)
    con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    con.close()
    for extra in ("-wal", "-shm"):
        Path(str(db) + extra).unlink(missing_ok=True)
    assert db.stat().st_size > 1000
    if damage == "garbage":
        db.write_bytes(b"this is not a database, just garbage " * 200)
    else:
        data = bytearray(db.read_bytes())
        data[100:] = b"\xff" * (len(data) - 100)  # header intact, every page destroyed
        db.write_bytes(bytes(data))
    capsys.readouterr()
    assert main([*args, "--run-id", "fresh"]) == 2
    err = capsys.readouterr().err
    assert str(db) in err and "--no-cache" in err and "Delete" in err
    assert "Traceback" not in err
    # The fix works: --no-cache runs.
    assert main([*args, "--run-id", "fresh", "--no-cache"]) == 0


@pytest.mark.parametrize("content", ["", '{"config": {"model": "x"', "[1, 2]"])
def test_empty_or_truncated_config_json_is_a_clear_error(
    capsys: pytest.CaptureFixture[str], content: str
) -> None:
    run_args = [*ARGS, "--limit", "2", "--run-id", "e"]
    assert main(run_args) == 0
    traces = Path("runs/e/traces.jsonl").read_bytes()
    Path("runs/e/config.json").write_text(content)
    capsys.readouterr()
    assert main(run_args) == 2
    err = capsys.readouterr().err
    assert "runs/e/config.json" in err and "--force-new" in err and "Traceback" not in err
    assert main(["report", "runs/e"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("ttc-eval: error: runs/e/config.json ") and "Traceback" not in err
    # report has no --force-new: the advice names the command that has it.
    assert "Rerun the same command" not in err
    assert (
        "Rerun the `ttc-eval run` command that wrote this run directory, adding --force-new" in err
    )
    assert "delete the directory" in err and "runs/e/log.jsonl records the arguments" in err
    with pytest.raises(SystemExit) as refused:  # why the advice had to change
        main(["report", "runs/e", "--force-new"])
    assert refused.value.code == 2
    assert main([*run_args, "--force-new"]) == 0
    (old,) = [d for d in Path("runs").iterdir() if d.name.startswith("e.old-")]
    assert (old / "traces.jsonl").read_bytes() == traces  # nothing lost


# --- atomic files, logs, leaderboards ---------------------------------------------------------


def test_files_are_readable_by_others_and_log_records_start_and_end() -> None:
    old = os.umask(0o022)
    try:
        run(_cfg(limit=2), progress=False, log=_quiet)
    finally:
        os.umask(old)
    for f in ("runs/r/config.json", "runs/r/results.json", "leaderboards/arith.csv"):
        assert stat.S_IMODE(Path(f).stat().st_mode) == 0o644, f
    events = [json.loads(x) for x in Path("runs/r/log.jsonl").read_text().splitlines()]
    assert [e["event"] for e in events] == ["start", "end"]
    assert events[1]["status"] == "finished" and events[0]["pid"] == os.getpid()


def test_failed_invocation_is_logged_and_loses_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    run(_cfg(limit=2), progress=False, log=_quiet)
    path = Path("runs/r/traces.jsonl")
    path.write_text(path.read_text().splitlines(keepends=True)[0])  # one question to redo
    before = path.read_bytes()
    import ttc_eval.runner as runner

    def boom(*a: Any, **k: Any) -> Any:
        raise UsageError("simulated failure while loading the model")

    monkeypatch.setattr(runner, "build_context", boom)
    with pytest.raises(UsageError):
        run(_cfg(limit=2), progress=False, log=_quiet)
    events = [json.loads(x) for x in Path("runs/r/log.jsonl").read_text().splitlines()]
    assert [e["event"] for e in events] == ["start", "end", "start", "end"]
    assert events[-1]["status"].startswith("error: UsageError")
    assert Path("runs/r/traces.jsonl").read_bytes() == before


def test_leaderboard_goes_where_the_run_said_whatever_the_current_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run(_cfg(limit=2), progress=False, log=_quiet)
    board = tmp_path / "leaderboards" / "arith.csv"
    first = board.stat().st_mtime_ns
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    time.sleep(0.01)
    assert main(["report", str(tmp_path / "runs" / "r")]) == 0
    assert not (elsewhere / "leaderboards").exists()
    assert board.stat().st_mtime_ns > first
    rows = board.read_text().splitlines()
    assert "T" in rows[1].split(",")[-1]  # date is the creation time, not just the day


def test_config_file_and_flag_values_are_validated() -> None:
    for bad in (
        {"temperature": float("nan")},
        {"temperature": float("inf")},
        {"temperature": -0.1},
        {"top_p": 0.0},
        {"top_p": 5.0},
        {"top_p": float("nan")},
    ):
        with pytest.raises(UsageError):
            _cfg(**bad)


def test_task_spec_with_unknown_prompt_argument_is_a_clear_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = _task_copy(tmp_path, {"prompt_args": {"instruction": "Answer briefly."}})
    assert main([*ARGS, "--limit", "2", "--include-path", str(folder)]) == 2
    err = capsys.readouterr().err
    assert "arith.yaml" in err and "prompt_args" in err and "instruction" in err
    assert not Path("runs").exists() or not any(Path("runs").iterdir())


def test_changed_built_in_templates_refuse_to_resume(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Templates that live in code, not in the task's YAML, are part of the identity too."""
    from ttc_eval.strategies.revisions import Revisions
    from ttc_eval.tasks.prompts import boxed_steps

    run_args = [*ARGS, "--limit", "2", "--run-id", "p"]
    run_args[run_args.index("majority")] = "majority,revisions"
    assert main(run_args) == 0
    capsys.readouterr()
    with monkeypatch.context() as m:
        m.setattr(boxed_steps, "__defaults__", ("Solve: {question}", None))
        assert main(run_args) == 2
        assert "task.prompt_sha256" in capsys.readouterr().err
    with monkeypatch.context() as m:
        # The revisions strategy's built-in reviser template.
        m.setattr(Revisions, "roles", {"reviser": "{question}\n\nTry again:\n{attempts}"})
        assert main(run_args) == 2
        assert "revision_template_sha256" in capsys.readouterr().err
    assert main(run_args) == 0  # unchanged again: resumes
