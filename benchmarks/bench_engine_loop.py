"""The vllm backend's engine loop against ``LLM.generate`` on the same requests.

One engine (the default model on ``vllm``), the same prompts and sampling parameters, fed
alternately through ``LLM.generate`` and through the backend's ``EngineLoop`` (one thread
stepping the engine for callers on any thread), medians of the rounds. Generated tokens per
second of each; the loop should cost nothing measurable.

    python benchmarks/bench_engine_loop.py [--prompts 16] [--n 8] [--max-tokens 96] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from typing import Any


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--prompts", type=int, default=16)
    ap.add_argument("--n", type=int, default=8)
    ap.add_argument("--max-tokens", type=int, default=96)
    ap.add_argument("--repeats", type=int, default=3)
    a = ap.parse_args()

    from vllm import SamplingParams as VParams
    from vllm.inputs import TokensPrompt

    from ttc_eval.backends.vllm import VLLMBackend

    backend = VLLMBackend(
        "smollm2-135m", progress=False, max_model_len=2048, top_logprobs=0, logprobs=False
    )
    prompts = [
        TokensPrompt(
            prompt_token_ids=backend.tokenizer.encode(
                backend.render([{"role": "user", "content": f"What is {i} * {i + 7}? Explain."}]),
                add_special_tokens=False,
            )
        )
        for i in range(a.prompts)
    ]

    def params() -> list[Any]:
        return [VParams(n=a.n, temperature=0.7, max_tokens=a.max_tokens) for _ in prompts]

    def generate() -> Any:
        return backend.llm.generate(prompts, params(), use_tqdm=False)

    def loop() -> Any:
        return backend.loop.run(list(zip(prompts, params(), strict=True)))

    sides = {"LLM.generate": generate, "EngineLoop": loop}
    generate()  # warm-up: first-call allocations, and the prompts in the prefix cache
    rates: dict[str, list[float]] = {k: [] for k in sides}
    for _ in range(a.repeats):
        for name, fn in sides.items():
            t0 = time.perf_counter()
            outs = fn()
            wall = time.perf_counter() - t0
            tokens = sum(len(c.token_ids) for o in outs for c in o.outputs)
            rates[name].append(tokens / wall)
            print(f"{name}: {tokens} tokens in {wall:.1f} s = {tokens / wall:.1f} tok/s")
    med = {k: statistics.median(v) for k, v in rates.items()}
    print(json.dumps({"tok_per_s": rates, "median": med}, indent=2))
    print(f"\nEngineLoop / LLM.generate: {med['EngineLoop'] / med['LLM.generate']:.3f}x")


if __name__ == "__main__":
    main()
