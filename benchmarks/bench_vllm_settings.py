"""Generated tokens/s of the vllm backend alone under given engine arguments: the
README's figures on vLLM's CPU settings (KV block size, graph compilation, KV cache size,
concurrent sequences). Same requests as ``bench_backends.py`` (the arith questions' chat
prompts, n samples each), timed on one generate call after an untimed warm-up.

    cd benchmarks
    python bench_vllm_settings.py                                        # the defaults
    python bench_vllm_settings.py --engine-args '{"block_size": 128}'
    python bench_vllm_settings.py --engine-args '{"block_size": 128, "enforce_eager": false}'
    python bench_vllm_settings.py --engine-args '{"block_size": 128, "max_num_seqs": 64}'
    VLLM_CPU_KVCACHE_SPACE=8 python bench_vllm_settings.py --engine-args '{"block_size": 128}'
"""

from __future__ import annotations

import argparse
import json
import os
import time
from dataclasses import replace


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--questions", type=int, default=16)
    ap.add_argument("--samples", type=int, default=16)
    ap.add_argument("--max-tokens", type=int, default=96)
    ap.add_argument("--engine-args", default="{}", help="JSON: extra VLLMBackend arguments")
    a = ap.parse_args()
    os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "2")
    engine_args = json.loads(a.engine_args)
    from ttc_eval.backends.vllm import VLLMBackend
    from ttc_eval.tasks import Task, find_task_spec
    from ttc_eval.types import Request, SamplingParams

    task = Task(find_task_spec("arith"))
    problems = task.problems(limit=a.questions)
    params = SamplingParams(temperature=0.7, max_tokens=a.max_tokens, seed=0)
    t0 = time.perf_counter()
    b = VLLMBackend("smollm2-135m", progress=False, max_model_len=2048, **engine_args)
    start = time.perf_counter() - t0
    prompts = [b.render(task.messages(p)) for p in problems]
    b.generate([Request(prompts[0], replace(params, seed=999), (0, 1))])  # warm-up
    t0 = time.perf_counter()
    out = b.generate([Request(p, params, tuple(range(a.samples))) for p in prompts])
    wall = time.perf_counter() - t0
    tokens = sum(c.n_tokens for row in out for c in row)
    print(
        f"vllm {json.dumps(engine_args)}: start {start:.0f} s; {tokens} tokens in {wall:.1f} s "
        f"= {tokens / wall:.1f} tok/s"
    )


if __name__ == "__main__":
    main()
