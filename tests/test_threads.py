"""CPU threads of the hf backend: the ``threads`` option, shards sharing a machine's cores,
and the warning when the machine's load would stall the chosen threads."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, ClassVar

import pytest
from conftest import without_seconds

from ttc_eval.backends._base import load_warning, parse_threads, shard_threads, usable_cpus
from ttc_eval.backends.fake import FakeBackend
from ttc_eval.cli import main
from ttc_eval.config import RunConfig
from ttc_eval.errors import UsageError
from ttc_eval.pipeline import make_backend
from ttc_eval.registry import backend
from ttc_eval.types import POLICY

SEEN: list[dict[str, Any]] = []


@backend("fake-threads")
class ThreadsFake(FakeBackend):
    """The fake backend declaring that it computes on CPU threads; records its arguments."""

    takes_threads: ClassVar[bool] = True

    def __init__(self, model: str = "fake", threads: int | None = None, **kw: Any) -> None:
        SEEN.append({"threads": threads})
        super().__init__(model, **kw)


def test_threads_option_is_checked() -> None:
    assert parse_threads(3, 8) == 3
    assert parse_threads("all", 8) == 8
    for bad in (0, -1, "two", 1.5, True):
        with pytest.raises(UsageError, match="threads must be a whole number"):
            parse_threads(bad, 8)


def test_shards_divide_the_cpus() -> None:
    assert shard_threads(16, 1) == 16
    assert shard_threads(16, 3) == 5
    assert shard_threads(2, 2) == 1
    assert shard_threads(2, 4) == 1  # never none


def test_warns_only_when_the_load_leaves_too_few_cpus() -> None:
    warning = load_warning(2, 2, 1.0)  # one core busy elsewhere, two threads wanted
    assert warning is not None and "threads=1" in warning and "1.0 on 2 CPUs" in warning
    assert load_warning(2, 2, 0.3) is None  # an idle machine
    assert load_warning(1, 2, 3.0) is None  # one thread cannot wait on another
    assert load_warning(8, 16, 8.4) is None  # 7.6 free CPUs: within the margin of 8
    warning = load_warning(16, 16, 12.0)
    assert warning is not None and "threads=4" in warning


def _config(**kw: Any) -> RunConfig:
    return RunConfig(task="arith", backend="fake-threads", model="fake", **kw)


def test_a_shard_gets_its_share_unless_told(capsys: pytest.CaptureFixture[str]) -> None:
    SEEN.clear()
    config = _config(shard="1/2")
    make_backend(config.role(POLICY), config, None, progress=True)
    assert SEEN[-1]["threads"] == max(1, usable_cpus() // 2)
    assert "threads=all" in capsys.readouterr().err
    config = _config(shard="1/2", backend_args={"threads": 3})
    make_backend(config.role(POLICY), config, None, progress=True)
    assert SEEN[-1]["threads"] == 3
    config = _config()  # unsharded: the backend's own default
    make_backend(config.role(POLICY), config, None, progress=True)
    assert SEEN[-1]["threads"] is None


def test_threads_do_not_change_the_run(tmp_path: Path) -> None:
    base = ["run", "--backend", "fake-threads", "--task", "arith", "--quiet", "--limit", "2"]
    assert main([*base, "--output-dir", str(tmp_path / "a")]) == 0
    assert main([*base, "--output-dir", str(tmp_path / "b"), "--backend-args", "threads=1"]) == 0
    (a,) = (tmp_path / "a").iterdir()
    (b,) = (tmp_path / "b").iterdir()
    assert a.name == b.name  # one run id
    rows = [json.loads((d / "results.json").read_text())["rows"] for d in (a, b)]
    assert without_seconds(rows[0]) == without_seconds(rows[1])


def test_hf_backend_sets_torch_threads(capsys: pytest.CaptureFixture[str]) -> None:
    import torch

    from ttc_eval.backends.hf import HFBackend

    before = torch.get_num_threads()
    try:
        b = HFBackend("smollm2-135m", progress=False, threads=1)
        assert b.threads == 1 and torch.get_num_threads() == 1
        with pytest.raises(UsageError, match="threads must be"):
            HFBackend("smollm2-135m", progress=False, threads=0)
    finally:
        torch.set_num_threads(before)
