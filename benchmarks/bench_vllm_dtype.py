"""Micro-run behind the README's dtype figures for the vllm backend on CPU: 64 samples x 48
tokens of one prompt (the default model), after an untimed warm-up, start-up excluded.

    python benchmarks/bench_vllm_dtype.py --backend vllm --dtype bfloat16
    python benchmarks/bench_vllm_dtype.py --backend vllm --dtype float32
    python benchmarks/bench_vllm_dtype.py --backend hf
"""

from __future__ import annotations

import argparse
import os
import time
from typing import Any


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--backend", choices=["vllm", "hf"], default="vllm")
    ap.add_argument("--dtype", default="float32")
    a = ap.parse_args()
    os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "2")
    from ttc_eval.types import Request, SamplingParams

    b: Any
    if a.backend == "vllm":
        from ttc_eval.backends.vllm import VLLMBackend

        b = VLLMBackend("smollm2-135m", progress=False, max_model_len=2048, dtype=a.dtype)
    else:
        from ttc_eval.backends.hf import HFBackend

        b = HFBackend("smollm2-135m", progress=False)
    p = b.render([{"role": "user", "content": "Tell me a long story about a dragon."}])
    b.generate([Request(p, SamplingParams(temperature=0.7, max_tokens=4, seed=1), (0, 1))])
    t = time.perf_counter()
    params = SamplingParams(temperature=0.7, max_tokens=48, seed=1)
    out = b.generate([Request(p, params, tuple(range(64)))])
    wall = time.perf_counter() - t
    n = sum(c.n_tokens for c in out[0])
    print(
        f"{a.backend} {a.dtype if a.backend == 'vllm' else 'float32'}: {n} tokens in "
        f"{wall:.1f} s = {n / wall:.1f} tok/s"
    )


if __name__ == "__main__":
    main()
