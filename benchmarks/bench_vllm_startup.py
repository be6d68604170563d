"""Start-up and generation of the vllm backend's engine, with engine settings to compare.

One process per call: the backend's engine is built with ``--engine-args`` (JSON), then 16
GSM8K questions behind an 8-shot prompt (the shape of lm-eval's chain-of-thought tasks) are
sampled 8 times each, ``--rounds`` times, the prefix cache emptied before each round. Prints
the seconds to import vLLM and to have the engine ready, and each round's seconds, generated
tokens and tokens per second. Run it once per setting, in alternation:

    VLLM_CPU_KVCACHE_SPACE=2 python benchmarks/bench_vllm_startup.py [--engine-args '{}']
    VLLM_ENABLE_V1_MULTIPROCESSING=0 VLLM_CPU_KVCACHE_SPACE=2 \\
        python benchmarks/bench_vllm_startup.py \\
        --engine-args '{"distributed_executor_backend": "mp"}'
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

T0 = time.perf_counter()
DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "gsm8k" / "test.jsonl"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--engine-args", default="{}", help="JSON of extra vLLM engine arguments")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--data-files", type=Path, default=DATA, help="the GSM8K test file")
    a = ap.parse_args()
    extra = json.loads(a.engine_args)

    from vllm import SamplingParams as VParams
    from vllm.inputs import TokensPrompt

    from ttc_eval.backends.vllm import VLLMBackend

    imported = time.perf_counter() - T0
    b = VLLMBackend(
        "smollm2-135m", progress=False, max_model_len=2048, top_logprobs=0, logprobs=False,
        **extra,
    )  # fmt: skip
    ready = time.perf_counter() - T0
    with a.data_files.open() as f:
        rows = [json.loads(next(f)) for _ in range(28)]
    shots = "".join(f"Q: {r['question']}\nA: {r['answer']}\n\n" for r in rows[20:28])
    prompts = [
        TokensPrompt(prompt_token_ids=b.tokenizer.encode(shots + f"Q: {r['question']}\nA:"))
        for r in rows[:16]
    ]
    rounds = []
    for _ in range(a.rounds):
        b.llm.reset_prefix_cache()
        t = time.perf_counter()
        stop = ["Q:", "\n\n"]
        params = [VParams(n=8, temperature=0.7, max_tokens=128, stop=stop) for _ in prompts]
        outs = b.loop.run(list(zip(prompts, params, strict=True)))
        dt = time.perf_counter() - t
        tokens = sum(len(o.token_ids) for r in outs for o in r.outputs)
        rounds.append({"s": round(dt, 1), "tokens": tokens, "tok_per_s": round(tokens / dt, 1)})
    print(json.dumps({"engine_args": extra, "import_s": round(imported, 1),
                      "ready_s": round(ready, 1), "rounds": rounds}))  # fmt: skip
    b.close()


if __name__ == "__main__":
    main()
