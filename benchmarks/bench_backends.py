"""Generated tokens/s of the hf, vllm and openai (a local `vllm serve`) backends: same
questions, same samples per question, same max_tokens, same machine, one process run.

Each side gets the same requests (the arith questions' chat prompts, n samples each) and is
timed on its generate call only, after an untimed warm-up (engine or server start excluded,
reported separately). Each side runs in its own child process, one after another, so that
no idle engine of another side competes for the 2 cores; the rounds alternate
(hf, vllm, openai, hf, vllm, openai).

    python benchmarks/bench_backends.py [--questions 16] [--samples 16] [--repeats 2]

Target (issue 6): vllm at least 1.6x hf on CPU.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from dataclasses import replace
from pathlib import Path
from typing import Any


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _serve(model_dir: str, port: int) -> subprocess.Popen[bytes]:
    from ttc_eval.backends.vllm import bind_all_cpus_on_small_machines, cpu_server_command

    cmd = cpu_server_command(model_dir, port)
    bind_all_cpus_on_small_machines()  # as the vllm backend does for its own engine
    env = {**os.environ, "VLLM_CPU_KVCACHE_SPACE": "2"}
    proc = subprocess.Popen(
        cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, start_new_session=True
    )
    for _ in range(600):
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/v1/models", timeout=2):
                return proc
        except OSError:
            time.sleep(1)
    raise RuntimeError("vllm serve did not start")


def measure(side: str, a: argparse.Namespace) -> dict[str, Any]:
    """One side in this process: start, warm up, time one generate call."""
    from ttc_eval.models import resolve_model
    from ttc_eval.tasks import Task, find_task_spec
    from ttc_eval.types import Request, SamplingParams

    model_dir = resolve_model("smollm2-135m")
    task = Task(find_task_spec("arith"))
    problems = task.problems(limit=a.questions)
    params = SamplingParams(temperature=0.7, max_tokens=a.max_tokens, seed=a.round)
    server = None
    t0 = time.perf_counter()
    b: Any
    if side == "hf":
        from ttc_eval.backends.hf import HFBackend

        b = HFBackend("smollm2-135m", progress=False)
    elif side == "vllm":
        from ttc_eval.backends.vllm import VLLMBackend

        b = VLLMBackend("smollm2-135m", progress=False, max_model_len=2048)
    else:
        from ttc_eval.backends.openai_server import OpenAIBackend

        port = _free_port()
        server = _serve(model_dir, port)
        b = OpenAIBackend(
            "smollm2-135m", base_url=f"http://127.0.0.1:{port}/v1", concurrency=16, progress=False
        )
    start = time.perf_counter() - t0
    try:
        prompts = [b.render(task.messages(p)) for p in problems]
        b.generate([Request(prompts[0], replace(params, seed=999), (0, 1))])  # warm-up
        reqs = [Request(p, params, tuple(range(a.samples))) for p in prompts]
        t0 = time.perf_counter()
        out = b.generate(reqs)
        wall = time.perf_counter() - t0
    finally:
        if server is not None:
            os.killpg(server.pid, signal.SIGKILL)
    tokens = sum(c.n_tokens for row in out for c in row)
    return {"start_s": start, "wall_s": wall, "tokens": tokens, "tok_per_s": tokens / wall}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--questions", type=int, default=16)
    ap.add_argument("--samples", type=int, default=16)
    ap.add_argument("--max-tokens", type=int, default=96)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--json", default="benchmarks/results/backends.json")
    ap.add_argument("--side", help=argparse.SUPPRESS)  # child process: measure one side
    ap.add_argument("--round", type=int, default=0, help=argparse.SUPPRESS)
    a = ap.parse_args()
    os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "2")
    if a.side:
        print("RESULT " + json.dumps(measure(a.side, a)))
        return

    sides = ("hf", "vllm", "openai")
    runs: dict[str, list[dict[str, float]]] = {k: [] for k in sides}
    for rep in range(a.repeats):
        for side in sides:
            cmd = [
                sys.executable, __file__, "--side", side, "--round", str(rep),
                "--questions", str(a.questions), "--samples", str(a.samples),
                "--max-tokens", str(a.max_tokens),
            ]  # fmt: skip
            out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
            line = next(x for x in out.splitlines() if x.startswith("RESULT "))
            r = json.loads(line[len("RESULT ") :])
            runs[side].append(r)
            print(
                f"{side}: {r['tokens']} tokens in {r['wall_s']:.1f} s = {r['tok_per_s']:.1f} tok/s"
            )
    median = {k: statistics.median(r["tok_per_s"] for r in v) for k, v in runs.items()}
    result = {
        "questions": a.questions,
        "samples": a.samples,
        "max_tokens": a.max_tokens,
        "runs": runs,
        "median_tok_per_s": median,
        "vllm_over_hf": median["vllm"] / median["hf"],
        "openai_over_hf": median["openai"] / median["hf"],
    }
    Path(a.json).parent.mkdir(parents=True, exist_ok=True)
    Path(a.json).write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    print(
        f"\nvllm / hf: {result['vllm_over_hf']:.2f}x; openai (local vllm serve) / hf: "
        f"{result['openai_over_hf']:.2f}x generated tokens/s (medians of {a.repeats})"
    )


if __name__ == "__main__":
    main()
