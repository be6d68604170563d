"""ttc-eval end to end against a raw ``model.generate`` loop: same prompts, samples, tokens.

Both sides run in this process on this machine, alternating (raw, ttc, raw, ttc, ...) so that
machine noise hits both. Each side loads the model from the converted default-model
directory, renders the same chat prompts, samples in the same batches with the same seeds,
and the same token budget. ttc-eval decodes with its own loop (rows leave the batch when they
end) and its own per-sample random streams, so its samples are not the raw loop's samples: the
figure compared is wall time per generated token, next to the plain wall-time ratio. ttc-eval
additionally records log-probabilities, scores with the logprob verifier, grades, and writes
traces/results/leaderboard. The generation cache is off.

    python benchmarks/bench_hf_overhead.py [--questions 16] [--samples 8] [--repeats 2]

Target (issue 2): ttc-eval at most 1.10x the raw loop.

``--mode sampler`` instead compares two ttc-eval sides, alternating (new, old, new, old, ...):
the hf backend's batch-invariant sampler (one counter-based uniform per sample and position,
inverse CDF) against the ``torch.multinomial`` draw on one generator seeded per batch that it
replaced. Both report ms per generated token, for the whole run and for the backend's
``generate`` calls alone (the verifier and the rest are outside those).

    python benchmarks/bench_hf_overhead.py --mode sampler --questions 16 --samples 8 --repeats 3

Target: the batch-invariant sampler within 5% of the multinomial one per generated token.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import statistics
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any


def chunk_seed(seed: int, rows: Sequence[tuple[str, int]]) -> int:
    """A seed per batch from the run seed and its (prompt, sample id) rows: how the hf backend
    seeded its one generator per batch before version 3."""
    h = hashlib.sha256(str(seed).encode())
    for prompt, sid in rows:
        h.update(hashlib.sha256(prompt.encode()).digest())
        h.update(sid.to_bytes(8, "little", signed=True))
    return int.from_bytes(h.digest()[:8], "little") & ((1 << 63) - 1)


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

    t0 = time.perf_counter()
    tok = AutoTokenizer.from_pretrained(model_dir)
    tok.padding_side = "left"
    auto: Any = AutoModelForCausalLM
    model = auto.from_pretrained(model_dir, dtype=torch.float32).eval()
    rows = [(p, s) for p in prompts for s in range(n)]
    tokens = 0
    eos = tok.eos_token_id
    for b in range(0, len(rows), batch):
        chunk = rows[b : b + batch]
        enc = tok(
            [p for p, _ in chunk], return_tensors="pt", padding=True, add_special_tokens=False
        )
        torch.manual_seed(chunk_seed(seed, chunk))
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


def multinomial_sample(backend: Any, scores: Any, keys: Sequence[int], position: int) -> Any:
    """The hf backend's draw before version 3: ``torch.multinomial`` on one generator seeded
    per batch (a stand-in for ``HFBackend._sample``)."""
    import torch

    if position == 0:  # a new batch: one generator for all of its rows
        backend._bench_rng = torch.Generator(device=scores.device)
        backend._bench_rng.manual_seed(chunk_seed(0, [(str(k), 0) for k in keys]))
    probs = torch.softmax(scores, dim=-1)
    return torch.multinomial(probs, 1, generator=backend._bench_rng).squeeze(1)


class _Sampler:
    """Swaps the hf backend's sampler for the old multinomial draw (``old=True``) and times
    its ``generate`` calls."""

    def __init__(self) -> None:
        from ttc_eval.backends.hf import HFBackend

        self.cls = HFBackend
        self.new_sample = HFBackend._sample
        self.generate = HFBackend.generate
        self.generate_s = 0.0

    def use(self, old: bool) -> None:
        timer = self

        def timed(backend: Any, requests: Any) -> Any:
            t0 = time.perf_counter()
            try:
                return timer.generate(backend, requests)
            finally:
                timer.generate_s += time.perf_counter() - t0

        setattr(self.cls, "_sample", multinomial_sample if old else self.new_sample)  # noqa: B010
        setattr(self.cls, "generate", timed)  # noqa: B010
        self.generate_s = 0.0


def sampler_mode(a: argparse.Namespace) -> None:
    from ttc_eval.models import resolve_model

    resolve_model("smollm2-135m")  # converted once, outside the timings
    sampler = _Sampler()
    sides = ("invariant", "multinomial")
    runs: dict[str, list[dict[str, float]]] = {s: [] for s in sides}
    sampler.use(old=False)
    with tempfile.TemporaryDirectory() as d:  # warm-up, untimed
        ttc_run(2, 2, a.batch, d)
    for r in range(a.repeats):
        for side in sides if r % 2 == 0 else sides[::-1]:
            sampler.use(old=side == "multinomial")
            with tempfile.TemporaryDirectory() as d:
                wall, tokens = ttc_run(a.questions, a.samples, a.batch, d)
            runs[side].append(
                {
                    "wall_s": wall,
                    "generate_s": sampler.generate_s,
                    "tokens": tokens,
                    "ms_per_token": 1000 * wall / tokens,
                    "generate_ms_per_token": 1000 * sampler.generate_s / tokens,
                }
            )
            print(side, json.dumps(runs[side][-1]), flush=True)
    med = {s: {k: statistics.median(x[k] for x in runs[s]) for k in runs[s][0]} for s in sides}
    result: dict[str, Any] = {
        "mode": "sampler",
        "questions": a.questions,
        "samples_per_question": a.samples,
        "batch": a.batch,
        "rounds": a.repeats,
        "runs": runs,
        "median": med,
        "ms_per_token_ratio": med["invariant"]["ms_per_token"] / med["multinomial"]["ms_per_token"],
        "generate_ms_per_token_ratio": med["invariant"]["generate_ms_per_token"]
        / med["multinomial"]["generate_ms_per_token"],
    }
    _write(a.json, result)
    print(
        f"\nbatch-invariant / multinomial sampler: {result['ms_per_token_ratio']:.3f}x per "
        f"generated token end to end, {result['generate_ms_per_token_ratio']:.3f}x in generate "
        f"(medians of {a.repeats} alternating rounds)"
    )


def _write(path: str, result: dict[str, Any]) -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--questions", type=int, default=16)
    ap.add_argument("--samples", type=int, default=8)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--mode", choices=["raw", "sampler"], default="raw")
    ap.add_argument("--json", default=None, help="default benchmarks/results/hf_<mode>.json")
    a = ap.parse_args()
    if a.json is None:
        a.json = f"benchmarks/results/hf_{'overhead' if a.mode == 'raw' else 'sampler'}.json"
    if a.mode == "sampler":
        sampler_mode(a)
        return

    from ttc_eval.models import resolve_model
    from ttc_eval.tasks import Task, find_task_spec

    model_dir = resolve_model("smollm2-135m")  # converted once, outside the timings
    from transformers import AutoTokenizer

    task = Task(find_task_spec("arith"))
    tok = AutoTokenizer.from_pretrained(model_dir)
    prompts = [
        str(tok.apply_chat_template(task.messages(p), tokenize=False, add_generation_prompt=True))
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
    _write(a.json, result)
    print(
        f"\nttc-eval / raw generate: {result['per_token_ratio_median']:.3f}x per generated "
        f"token, {result['ratio_median']:.3f}x wall (medians of {a.repeats})"
    )


if __name__ == "__main__":
    main()
