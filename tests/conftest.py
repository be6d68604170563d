from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"
MATH500 = SHARED_DATA / "math500" / "test.jsonl"
GSM8K = SHARED_DATA / "gsm8k" / "test.jsonl"


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
