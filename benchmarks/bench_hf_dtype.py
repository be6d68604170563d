"""Generated tokens/s of the ``hf`` backend by dtype and batch size, on the default model.

Every row generates exactly ``--tokens`` tokens (min_new_tokens = max_new_tokens), so the
figures compare engine speed, not answer lengths. Settings alternate within each repeat.

    python benchmarks/bench_hf_dtype.py [--tokens 48] [--repeats 2]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--tokens", type=int, default=48)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--json", default="benchmarks/results/hf_dtype.json")
    a = ap.parse_args()

    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from ttc_eval.models import resolve_model

    path = resolve_model("smollm2-135m")
    tok = AutoTokenizer.from_pretrained(path)
    tok.padding_side = "left"
    models = {
        d: AutoModelForCausalLM.from_pretrained(path, dtype=getattr(torch, d)).eval()
        for d in ("float32", "bfloat16")
    }
    prompt = tok.apply_chat_template(
        [{"role": "user", "content": "What is 12 + 7? Think step by step."}],
        tokenize=False,
        add_generation_prompt=True,
    )
    settings = [(d, b) for d in models for b in (16, 64)]
    rates: dict[str, list[float]] = {f"{d}/batch{b}": [] for d, b in settings}
    for _ in range(a.repeats):
        for d, b in settings:
            enc = tok([prompt] * b, return_tensors="pt", add_special_tokens=False)
            torch.manual_seed(0)
            t0 = time.perf_counter()
            with torch.inference_mode():
                models[d].generate(
                    **enc,
                    do_sample=True,
                    temperature=0.7,
                    top_k=0,
                    max_new_tokens=a.tokens,
                    min_new_tokens=a.tokens,
                    pad_token_id=tok.pad_token_id,
                )
            rates[f"{d}/batch{b}"].append(b * a.tokens / (time.perf_counter() - t0))
    result = {k: round(statistics.median(v), 1) for k, v in rates.items()}
    Path(a.json).parent.mkdir(parents=True, exist_ok=True)
    Path(a.json).write_text(json.dumps({"tokens_per_s": result, "runs": rates}, indent=2) + "\n")
    for k, v in result.items():
        print(f"{k:18s} {v:7.1f} generated tokens/s")


if __name__ == "__main__":
    main()
