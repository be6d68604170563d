from __future__ import annotations

import csv
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from ttc_eval.backends.fake import FakeBackend
from ttc_eval.cli import main
from ttc_eval.config import RunConfig, StrategySpec
from ttc_eval.registry import GRADERS, backend
from ttc_eval.runner import run
from ttc_eval.store import TraceStore
from ttc_eval.types import Completion, Request

BASE = ["run", "--backend", "fake", "--task", "arith", "--quiet"]


def _only_run_dir(root: Path = Path("runs")) -> Path:
    (d,) = list(root.iterdir())
    return d


def _traces(run_dir: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (run_dir / "traces.jsonl").read_text().splitlines()]


def _log(run_dir: Path) -> list[dict[str, Any]]:
    return [
        json.loads(line)
        for line in (run_dir / "log.jsonl").read_text().splitlines()
        if json.loads(line).get("event") != "start"
    ]


def test_run_writes_everything_and_rerun_generates_nothing() -> None:
    args = [*BASE, "--strategy", "majority,best_of_n,greedy", "--budgets", "1,2,4", "--limit", "5"]
    assert main(args) == 0
    run_dir = _only_run_dir()
    results = json.loads((run_dir / "results.json").read_text())
    # One pool of 4 per question serves majority and best_of_n at every budget; greedy is 1 more.
    assert results["compute"]["by_expansion"] == {
        "sample(n=1,temperature=0.0)": {"questions": 5, "samples": 5},
        "sample(n=4,temperature=0.7)": {"questions": 5, "samples": 20},
    }
    assert results["compute"]["samples"] == 25
    for row in results["rows"]:
        assert (
            row["task_version"] == "1+" + GRADERS.get("exact").version and row["ttc_eval_version"]
        )
        assert row["verifier_version"] == "1"
    assert len(_traces(run_dir)) == 10
    configs = {(r["config"], r["budget"]) for r in results["rows"] if r["label_kind"] == "all"}
    assert ("majority", 4) in configs and ("greedy", 1) in configs and ("coverage", 2) in configs
    assert ("greedy", 2) not in configs
    assert main(args) == 0
    assert [e["generated_samples"] for e in _log(run_dir)] == [25, 0]
    assert len(_traces(run_dir)) == 10
    with open("leaderboards/arith.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == len(configs)  # the rerun replaced its rows, did not add
    bon = next(r for r in rows if r["strategy"] == "best_of_n")
    assert json.loads(bon["strategy_args"]) == {"aggregation": "last", "mode": "weighted"}
    assert bon["verifier"] == "logprob" and bon["task_version"].startswith("1+")


def test_run_stops_each_engine_once_generation_is_over(monkeypatch: pytest.MonkeyPatch) -> None:
    events: list[str] = []

    def close(self: FakeBackend) -> None:
        run_dir = _only_run_dir()
        # After the log's end line (its counters read the backend) and before the results.
        events.append(f"close {len(_log(run_dir))} {(run_dir / 'results.json').exists()}")

    monkeypatch.setattr(FakeBackend, "close", close)
    args = [*BASE, "--strategy", "majority", "--budgets", "1,2", "--limit", "3"]
    assert main(args) == 0
    assert events == ["close 1 False"]  # one backend, closed once
    assert main(args) == 0  # nothing to generate: no backend was made, none closed
    assert events == ["close 1 False"]


def test_a_failed_run_still_stops_its_engine_and_logs_what_it_generated(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    closed: list[FakeBackend] = []
    generate = FakeBackend.generate

    def failing(self: FakeBackend, requests: Sequence[Request]) -> list[list[Completion]]:
        if self.calls:  # the second call fails
            raise RuntimeError("engine died")
        return generate(self, requests)

    monkeypatch.setattr(FakeBackend, "generate", failing)
    monkeypatch.setattr(FakeBackend, "close", lambda self: closed.append(self))
    # Two expansions (sampled, then greedy): the second one's call fails.
    args = [*BASE, "--strategy", "majority,greedy", "--budgets", "2", "--limit", "3"]
    with pytest.raises(RuntimeError, match="engine died"):
        main(args)
    assert len(closed) == 1
    (end,) = _log(_only_run_dir())
    assert end["status"].startswith("error: RuntimeError") and end["generated_samples"] > 0


def test_report_rebuilds_results_exactly() -> None:
    assert main([*BASE, "--budgets", "1,2,4", "--limit", "6"]) == 0
    run_dir = _only_run_dir()
    before = (run_dir / "results.json").read_text()
    (run_dir / "results.json").unlink()
    assert main(["report", str(run_dir)]) == 0
    assert (run_dir / "results.json").read_text() == before
    assert (run_dir / "report" / "tables.md").exists()


def test_cache_serves_a_new_run_and_a_larger_pool_reuses_samples() -> None:
    assert main([*BASE, "--budgets", "1,2", "--limit", "3", "--output-dir", "a"]) == 0
    assert _log(_only_run_dir(Path("a")))[-1]["generated_samples"] == 6
    assert main([*BASE, "--budgets", "1,2", "--limit", "3", "--output-dir", "b"]) == 0
    assert _log(_only_run_dir(Path("b")))[-1] == {
        **_log(_only_run_dir(Path("b")))[-1],
        "generated_samples": 0,
        "cached_samples": 6,
    }
    assert main([*BASE, "--budgets", "1,2,4", "--limit", "3", "--output-dir", "c"]) == 0
    entry = _log(_only_run_dir(Path("c")))[-1]
    assert (entry["generated_samples"], entry["cached_samples"]) == (6, 6)
    # --no-cache generates everything again.
    assert main([*BASE, "--budgets", "1,2", "--limit", "3", "--output-dir", "d", "--no-cache"]) == 0
    assert _log(_only_run_dir(Path("d")))[-1]["generated_samples"] == 6


@backend("fake-interrupted")
class _InterruptedFake(FakeBackend):
    """Raises KeyboardInterrupt on its second call, like a user pressing Ctrl-C mid-run."""

    name = "fake-interrupted"
    calls_total = 0

    def generate(self, requests: Sequence[Request]) -> list[list[Completion]]:
        type(self).calls_total += 1
        if type(self).calls_total == 2:
            raise KeyboardInterrupt
        return super().generate(requests)


def test_interrupted_run_resumes_without_loss_or_duplicates() -> None:
    cfg = RunConfig(
        backend="fake-interrupted",
        budgets=(1, 2, 4),
        limit=10,
        chunk_samples=12,
        run_id="r",
        cache=False,
    )
    with pytest.raises(KeyboardInterrupt):
        run(cfg, progress=False, log=lambda _: None)
    done = [t["problem_id"] for t in _traces(Path("runs/r"))]
    assert len(done) == 3  # the first chunk (12 samples / 4 per question) was written
    out = run(cfg, progress=False, log=lambda _: None)
    ids = [t["problem_id"] for t in _traces(Path("runs/r"))]
    assert len(ids) == len(set(ids)) == 10
    assert ids[:3] == done
    assert out.generated_samples == 7 * 4


def test_truncated_last_row_is_dropped_and_redone() -> None:
    cfg = RunConfig(backend="fake", budgets=(1, 2), limit=4, run_id="t", cache=False)
    run(cfg, progress=False, log=lambda _: None)
    path = Path("runs/t/traces.jsonl")
    lines = path.read_text().splitlines(keepends=True)
    path.write_text("".join(lines[:-1]) + lines[-1][: len(lines[-1]) // 2])
    out = run(cfg, progress=False, log=lambda _: None)
    assert out.generated_samples == 2
    # The torn row is moved, as it was, to traces.rejected.jsonl; the redone question's row
    # follows the good ones.
    store = TraceStore(path, warn=lambda _: None)
    assert store.bad_lines == []
    torn = lines[-1][: len(lines[-1]) // 2]
    assert Path("runs/t/traces.rejected.jsonl").read_text() == torn + "\n"
    ids = [pid for pid, _ in store.traces]
    assert sorted(ids) == sorted(set(ids)) and len(ids) == 4


def test_same_seed_same_samples_other_seed_differs() -> None:
    def texts(seed: int, out: str) -> list[str]:
        run(
            RunConfig(
                backend="fake", budgets=(4,), limit=3, seed=seed, output_dir=out, cache=False
            ),
            progress=False,
            log=lambda _: None,
        )
        return [c["text"] for t in _traces(_only_run_dir(Path(out))) for c in t["candidates"]]

    assert texts(1, "x") == texts(1, "y")
    assert texts(1, "x") != texts(2, "z")


def test_changed_settings_in_same_run_dir_is_an_error() -> None:
    run(
        RunConfig(backend="fake", budgets=(1,), limit=2, run_id="same"),
        progress=False,
        log=lambda _: None,
    )
    assert main([*BASE, "--budgets", "1", "--limit", "2", "--seed", "9", "--run-id", "same"]) == 2


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--strategy", "majorty"], "Did you mean: majority"),
        (["--backend", "hff"], "unknown backend 'hff'"),
        (["--verifier", "logprb"], "Did you mean: logprob"),
        (["--task", "gsm8"], "Did you mean: gsm8k"),
        (["--budgets", "1,-2"], "positive integers"),
        (["--budgets", "1,x"], "positive integers"),
        (["--strategy", "best_of_n", "--verifier", "none"], "needs a verifier"),
        (["--strategy", "best_of_n:mode=bogus"], "weighted or naive"),
        (["--limit", "0"], "positive integer"),
        (["--verifier", "qwen-prm"], "--verifier-model"),
    ],
)
def test_bad_input_exits_2_with_a_clear_message(
    extra: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main_exit([*BASE, *extra]) == 2
    assert message in capsys.readouterr().err
    assert not Path("runs").exists() or not any(Path("runs").iterdir())


def main_exit(args: list[str]) -> int:
    try:
        return main(args)
    except SystemExit as e:  # argparse usage errors
        return int(e.code or 0)


def test_unwritable_output_dir_fails_before_generation(capsys: pytest.CaptureFixture[str]) -> None:
    Path("afile").write_text("")
    assert main([*BASE, "--output-dir", "afile/runs", "--limit", "2"]) == 2
    assert "not writable" in capsys.readouterr().err


def test_config_file_with_cli_override(tmp_path: Path) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text(
        "backend: fake\ntask: arith\nbudgets: [1, 2]\nlimit: 2\n"
        "strategies: [majority, {name: best_of_n, args: {mode: naive}}]\n"
    )
    assert main(["run", "--config", str(cfg), "--limit", "3", "--quiet"]) == 0
    record = json.loads((_only_run_dir() / "config.json").read_text())
    assert record["config"]["limit"] == 3
    assert record["config"]["strategies"][1] == {"name": "best_of_n", "args": {"mode": "naive"}}
    assert record["task_version"] and "created" in record
    cfg.write_text("bogus_key: 1\n")
    assert main(["run", "--config", str(cfg)]) == 2


def test_strategy_spec_parsing() -> None:
    s = StrategySpec.parse("best_of_n:mode=naive:aggregation=min")
    assert s == StrategySpec("best_of_n", {"mode": "naive", "aggregation": "min"})
