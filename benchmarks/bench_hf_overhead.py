"""ttc-eval end to end against a raw ``model.generate`` loop: same prompts, samples, tokens.

Both sides run in this process on this machine, alternating (raw, ttc, raw, ttc, ...) so that
machine noise hits both. Each side loads the model from the converted default-model
directory, renders the same chat prompts, samples in the same batches with the same seeds,
and the same token budget. ttc-eval decodes with its own loop (rows leave the batch when they
end) and its own seeded generator, so its samples are not the raw loop's samples: the figure
compared is wall time per generated token, next to the plain wall-time ratio. ttc-eval
additionally records log-probabilities, scores with the logprob verifier, grades, and writes
traces/results/leaderboard. The generation cache is off.

    python benchmarks/bench_hf_overhead.py [--questions 16] [--samples 8] [--repeats 2]

Target (issue 2): ttc-eval at most 1.10x the raw loop.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any


def raw_loop(
    model_dir: str,
    prompts: list[str],
    n: int,
    batch: int,
    temperature: float,
    max_tokens: int,
    seed: int,
) -> tuple[float, int]:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from ttc_eval.backends._base import batch_seed

    t0 = time.perf_counter()
    tok = AutoTokenizer.from_pretrained(model_dir)
    tok.padding_side = "left"
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
    rows = [(p, s) for p in prompts for s in range(n)]
    tokens = 0
    eos = tok.eos_token_id
    for b in range(0, len(rows), batch):
        chunk = rows[b : b + batch]
        enc = tok(
            [p for p, _ in chunk], return_tensors="pt", padding=True, add_special_tokens=False
        )
        torch.manual_seed(batch_seed(seed, chunk))
        with torch.inference_mode():
            out = model.generate(
                **enc,
                do_sample=True,
                temperature=temperature,
                top_k=0,
                top_p=1.0,
                max_new_tokens=max_tokens,
                pad_token_id=tok.pad_token_id,
            )
        for row in out[:, enc["input_ids"].shape[1] :].tolist():
            end = row.index(eos) + 1 if eos in row else len(row)
            tokens += end
    return time.perf_counter() - t0, tokens


def ttc_run(questions: int, n: int, batch: int, out_dir: str) -> tuple[float, int]:
    from ttc_eval import RunConfig, StrategySpec, run

    cfg = RunConfig(
        task="arith",
        limit=questions,
        budgets=(n,),
        backend_args={"batch_size": batch},
        strategies=(StrategySpec("majority"), StrategySpec("best_of_n")),
        verifier="logprob",
        cache=False,
        output_dir=out_dir,
        leaderboard_dir=out_dir,
        chunk_samples=batch * 4,
    )
    t0 = time.perf_counter()
    outcome = run(cfg, progress=False, log=lambda _: None)
    wall = time.perf_counter() - t0
    return wall, int(outcome.results["compute"]["generated_tokens"])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--questions", type=int, default=16)
    ap.add_argument("--samples", type=int, default=8)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--json", default="benchmarks/results/hf_overhead.json")
    a = ap.parse_args()

    from ttc_eval.models import resolve_model
    from ttc_eval.tasks import Task, find_task_spec

    model_dir = resolve_model("smollm2-135m")  # converted once, outside the timings
    from transformers import AutoTokenizer

    task = Task(find_task_spec("arith"))
    tok = AutoTokenizer.from_pretrained(model_dir)
    prompts = [
        tok.apply_chat_template(task.messages(p), tokenize=False, add_generation_prompt=True)
        for p in task.problems(limit=a.questions)
    ]
    gen = task.spec.generation
    temperature, max_tokens = 0.7, int(gen.get("max_tokens", 256))

    raw_loop(model_dir, prompts[:1], 2, a.batch, temperature, 8, seed=1)  # warm-up, untimed
    raw_t: list[float] = []
    ttc_t: list[float] = []
    raw_tok: list[int] = []
    ttc_tok: list[int] = []
    for _ in range(a.repeats):
        w, t = raw_loop(model_dir, prompts, a.samples, a.batch, temperature, max_tokens, seed=0)
        raw_t.append(w)
        raw_tok.append(t)
        with tempfile.TemporaryDirectory() as d:
            w, t = ttc_run(a.questions, a.samples, a.batch, d)
        ttc_t.append(w)
        ttc_tok.append(t)
    result: dict[str, Any] = {
        "questions": a.questions,
        "samples_per_question": a.samples,
        "batch": a.batch,
        "raw_wall_s": raw_t,
        "ttc_wall_s": ttc_t,
        "raw_tokens": raw_tok,
        "ttc_tokens": ttc_tok,
        "ratio_median": statistics.median(ttc_t) / statistics.median(raw_t),
        "per_token_ratio_median": (statistics.median(ttc_t) / statistics.median(ttc_tok))
        / (statistics.median(raw_t) / statistics.median(raw_tok)),
    }
    Path(a.json).parent.mkdir(parents=True, exist_ok=True)
    Path(a.json).write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    print(
        f"\nttc-eval / raw generate: {result['per_token_ratio_median']:.3f}x per generated "
        f"token, {result['ratio_median']:.3f}x wall (medians of {a.repeats})"
    )


if __name__ == "__main__":
    main()
