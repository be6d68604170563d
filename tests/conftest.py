from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

# None of these imports torch or vLLM: pytest_configure below must pin CPUs before they load.
from ttc_eval.registry import verifier
from ttc_eval.types import Problem
from ttc_eval.verifiers._base import Solution

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"
MATH500 = SHARED_DATA / "math500" / "test.jsonl"
GSM8K = SHARED_DATA / "gsm8k" / "test.jsonl"


def pytest_configure(config: pytest.Config) -> None:
    """With ``TTC_EVAL_TEST_PIN_CPUS=1`` under pytest-xdist (``make test``'s slow tests), each
    worker takes its own share of the CPUs before torch or vLLM start: torch then uses that
    many threads, and ttc-eval binds vLLM's to them (what a ``--shard`` run on a shared
    machine does). Two workers that each took every core would oversubscribe them, and
    OpenMP threads that wait on each other stall (measured: about 17x slower)."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    if not (worker.startswith("gw") and os.environ.get("TTC_EVAL_TEST_PIN_CPUS") == "1"):
        return
    if not hasattr(os, "sched_setaffinity"):
        return
    cpus = sorted(os.sched_getaffinity(0))
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    share = cpus[int(worker[2:]) :: max(1, workers)]
    if share:
        os.sched_setaffinity(0, share)


@pytest.fixture(autouse=True)
def _isolated(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest
) -> None:
    """Every test writes runs, leaderboards and caches under its own tmp dir; slow tests share
    one cache per session so the default model is converted once."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    if "slow" in request.keywords:
        shared = request.getfixturevalue("session_cache")
        monkeypatch.setenv("TTC_EVAL_CACHE", str(shared))
    else:
        monkeypatch.setenv("TTC_EVAL_CACHE", str(tmp_path / "cache"))


@pytest.fixture(scope="session")
def session_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("ttc-cache")


def without_seconds(obj: Any) -> Any:
    """``obj`` (parsed JSON) without its measured wall times (``seconds`` and
    ``seconds_p90`` keys, at any depth): the only numbers of a run that no rerun can
    reproduce."""
    if isinstance(obj, dict):
        return {k: without_seconds(v) for k, v in obj.items() if not k.startswith("seconds")}
    if isinstance(obj, list):
        return [without_seconds(v) for v in obj]
    return obj


@verifier("fake-prm")
class FakePRM:
    """Deterministic step scores from a hash of the text so far (for tests only)."""

    name = "fake-prm"
    version = "test"
    roles: tuple[str, ...] = ()

    def __init__(self, **_: Any) -> None:
        self.tokens_read = 0

    def score(self, problem: Problem, solutions: Sequence[Solution]) -> list[tuple[float, ...]]:
        out = []
        for s in solutions:
            self.tokens_read += len(s.text.split())
            acc = ""
            scores = []
            for step in s.steps:
                acc += step
                h = hashlib.sha256(acc.encode()).digest()
                scores.append(int.from_bytes(h[:4], "little") / 2**32)
            out.append(tuple(scores))
        return out
