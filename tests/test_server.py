"""The openai backend against a real `vllm serve` on 127.0.0.1 with the default model,
including a fault test: the server dies mid-run, comes back, and the rerun finishes with no
question lost or duplicated."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from ttc_eval.cli import main
from ttc_eval.config import RunConfig, StrategySpec
from ttc_eval.errors import TTCError
from ttc_eval.types import unpack_confidences

pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    """`vllm serve` in its own process group, so that a kill takes its workers too."""

    def __init__(self, model_dir: str, port: int, log: Path) -> None:
        self.model_dir, self.port, self.log = model_dir, port, log
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def start(self, timeout: float = 420) -> None:
        from ttc_eval.backends.vllm import bind_all_cpus_on_small_machines, cpu_server_command

        cmd = cpu_server_command(self.model_dir, self.port)
        bind_all_cpus_on_small_machines()
        env = {**os.environ, "VLLM_CPU_KVCACHE_SPACE": "1"}
        out = self.log.open("ab")
        self.proc = subprocess.Popen(cmd, stdout=out, stderr=out, env=env, start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"vllm serve exited; see {self.log}")
            try:
                with urllib.request.urlopen(f"{self.url}/models", timeout=2) as r:
                    if r.status == 200:
                        return
            except OSError:
                time.sleep(1)
        raise RuntimeError(f"vllm serve did not come up in {timeout} s; see {self.log}")

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()


@pytest.fixture(scope="module")
def server(session_cache: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    os.environ["TTC_EVAL_CACHE"] = str(session_cache)
    from ttc_eval.models import resolve_model

    srv = Server(
        resolve_model("smollm2-135m"), _free_port(), tmp_path_factory.mktemp("srv") / "log"
    )
    srv.start()
    yield srv
    srv.kill()


def _config(server: Server, limit: int) -> RunConfig:
    return RunConfig(
        backend="openai",
        backend_args={"base_url": f"{server.url},{server.url}", "max_retries": 1, "timeout": 30},
        task="arith",
        limit=limit,
        strategies=(StrategySpec("majority"),),
        budgets=(1, 2, 4),
        cache=False,
        run_id="fault",
        chunk_samples=4,  # one question per chunk: each is written as soon as it is done
    )


def test_run_through_the_server(server: Server) -> None:
    args = [
        "run", "--backend", "openai", "--base-url", server.url, "--task", "arith",
        "--strategy", "majority,best_of_n", "--budgets", "1,2,4", "--limit", "3", "--quiet",
        "--no-cache", "--backend-args", "top_logprobs=5",  # recorded although not read
    ]  # fmt: skip
    assert main(args) == 0
    (run_dir,) = list(Path("runs").iterdir())
    results = json.loads((run_dir / "results.json").read_text())
    assert results["compute"]["samples"] == 12
    for line in (run_dir / "traces.jsonl").read_text().splitlines():
        t = json.loads(line)
        assert len(t["candidates"]) == 4
        assert all(c["step_scores"] for c in t["candidates"])  # logprobs came back
        for c in t["candidates"]:
            # The server's top 5 of each token came back as DeepConf confidences.
            confidences = unpack_confidences(c["confidences"])
            assert len(confidences) == c["n_tokens"] and all(x > 0 for x in confidences)


def test_thinking_budget_through_the_server(server: Server) -> None:
    """The thinking sweep on the openai backend (before the test below kills the server):
    every sample is cut at each budget by the server's own token offsets, closed and forced
    to answer, and no candidate holds more thinking than its budget."""
    args = [
        "run", "--backend", "openai", "--base-url", server.url, "--task", "arith",
        "--strategy", "thinking_budget", "--thinking", "open", "--thinking-budgets", "8,16",
        "--budgets", "2", "--limit", "2", "--quiet", "--no-cache", "--verifier", "none",
        "--output-dir", "thinking",
    ]  # fmt: skip
    assert main(args) == 0
    (run_dir,) = list(Path("thinking").iterdir())
    for line in (run_dir / "traces.jsonl").read_text().splitlines():
        t = json.loads(line)
        assert t["extra"]["budgets"] == [8, 16] and t["extra"]["overrun"] == []
        for j, b in enumerate((8, 16)):
            for i in range(2):
                c = t["candidates"][j * 2 + i]
                if t["extra"]["thinking_tokens"][i] > b:
                    assert "</think>\n\nThe final answer is $\\boxed{" in c["text"]
                    assert c["cost"]["thinking_tokens"] == b


def test_server_killed_mid_run_then_rerun_finishes(server: Server) -> None:
    from ttc_eval.runner import run

    cfg = _config(server, limit=12)
    traces = Path("runs") / "fault" / "traces.jsonl"
    failure: list[BaseException] = []

    def first_attempt() -> None:
        try:
            run(cfg, progress=False, log=lambda _: None)
        except BaseException as e:  # the run must stop with an error, not hang
            failure.append(e)

    worker = threading.Thread(target=first_attempt)
    worker.start()
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and worker.is_alive():
        if traces.exists() and len(traces.read_text().splitlines()) >= 2:
            break
        time.sleep(0.1)
    assert worker.is_alive(), "the run finished before the server could be killed"
    server.kill()
    worker.join(timeout=300)
    assert not worker.is_alive()
    assert failure and isinstance(failure[0], TTCError), failure
    assert "rerun" in str(failure[0])
    before = {json.loads(x)["problem_id"]: x for x in traces.read_text().splitlines()}
    assert 2 <= len(before) < 12

    server.start()
    outcome = run(cfg, progress=False, log=lambda _: None)
    rows = traces.read_text().splitlines()
    ids = [json.loads(x)["problem_id"] for x in rows]
    assert len(ids) == len(set(ids)) == 12  # nothing lost, nothing duplicated
    assert all(rows[i] == before[ids[i]] for i in range(len(before)))  # kept as they were
    assert outcome.generated_samples == 4 * (12 - len(before))
