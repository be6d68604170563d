"""kill -9 at any point, rerun: the results are those of an uninterrupted run, byte for byte.

On the real default model, in a child process group that is killed (SIGKILL, no cleanup)
as soon as the first trace rows land, with chunking that puts several chunks in the run.
This needs batch-invariant sampling: the resumed run draws the unfinished questions in
other batches than the uninterrupted one, and must still draw the same samples. The
generation cache is off, so every sample is really drawn again.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from conftest import without_seconds

from ttc_eval.types import unpack_confidences

pytestmark = pytest.mark.slow

LIMIT = 8


def _command(tmp: Path, out: str) -> list[str]:
    config = tmp / "chunked.yaml"
    # 2 questions x 4 samples per chunk: four chunks, so the kill lands mid-run.
    config.write_text(yaml.safe_dump({"chunk_samples": 8}))
    return [
        sys.executable,
        "-m",
        "ttc_eval.cli",
        "run",
        "--config",
        str(config),
        "--model",
        "smollm2-135m",
        "--task",
        "arith",
        # No verifier: sample texts are batch-invariant, but a logprob score can differ in its
        # last bits between batch shapes (README, "Seeds"), which byte-for-byte would catch.
        "--strategy",
        "majority",
        "--verifier",
        "none",
        # Recorded although no strategy reads them: a resume must keep them too.
        "--backend-args",
        "top_logprobs=5",
        "--budgets",
        "1,2,4",
        "--limit",
        str(LIMIT),
        "--max-tokens",
        "48",
        "--no-cache",
        "--quiet",
        "--output-dir",
        out,
        "--leaderboard-dir",
        f"{out}-leaderboards",
    ]


def _rows(run_dir: Path) -> int:
    path = run_dir / "traces.jsonl"
    return len(path.read_text().splitlines()) if path.exists() else 0


def test_kill_9_then_rerun_equals_an_uninterrupted_run(tmp_path: Path) -> None:
    subprocess.run(_command(tmp_path, "whole"), check=True, capture_output=True)
    (whole,) = list(Path("whole").iterdir())

    cmd = _command(tmp_path, "killed")
    child = subprocess.Popen(
        cmd, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    run_dir = Path("killed") / whole.name
    deadline = time.monotonic() + 600
    while _rows(run_dir) == 0 and child.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    os.killpg(child.pid, signal.SIGKILL)
    child.wait()
    landed = _rows(run_dir)
    assert 0 < landed < LIMIT, f"the kill should land mid-run; {landed} rows were stored"
    assert not (run_dir / "results.json").exists()
    log = [json.loads(x) for x in (run_dir / "log.jsonl").read_text().splitlines()]
    assert [e["event"] for e in log] == ["start"]  # the killed invocation is on record

    done = subprocess.run(cmd, check=True, capture_output=True, text=True)
    assert f"{landed} of {LIMIT} questions already done" in done.stderr
    # Byte for byte but for measured wall times, which no rerun reproduces.
    assert without_seconds(json.loads((run_dir / "results.json").read_text())) == without_seconds(
        json.loads((whole / "results.json").read_text())
    )

    def traces(d: Path) -> tuple[list[str], dict[tuple[str, int], tuple[float, ...]]]:
        rows = [
            without_seconds(json.loads(x)) for x in (d / "traces.jsonl").read_text().splitlines()
        ]
        # Token confidences are floats of the logits: like a logprob score they can differ in
        # their last bits between batch shapes, which can move a value across a rounding
        # boundary (3 decimals). Compared apart, within that rounding step.
        confidences = {
            (r["problem_id"], c["index"]): unpack_confidences(c.pop("confidences"))
            for r in rows
            for c in r["candidates"]
        }
        return sorted(json.dumps(r, sort_keys=True) for r in rows), confidences

    (resumed, resumed_conf), (uninterrupted, uninterrupted_conf) = traces(run_dir), traces(whole)
    assert resumed == uninterrupted
    assert resumed_conf.keys() == uninterrupted_conf.keys()
    for key, values in uninterrupted_conf.items():
        assert len(values) > 0 and resumed_conf[key] == pytest.approx(values, abs=2e-3), key
