"""Where beam search spends its time on vLLM, engine call by engine call.

The same job as ``bench_search.py --backend vllm`` (arith, 8 questions, N = 8, width 4,
self-judge on the policy model), once best-of-N and once beam search, after a warm-up. Every
call into the engine is logged: its wall time, requests and sequences, prompt tokens and how
many of them vLLM's prefix cache held (``RequestOutput.num_cached_tokens``), generated
tokens and the longest sequence. Generation calls have sequences of many tokens; the
verifier's calls generate one token per prompt (self-judge reads P(Yes) at the next token).
A search's questions call from their own threads, so calls overlap: their times add up to
more than the wall time. Every engine step is counted too, with the sequences in the engine
at that step (how full its batches were).

    python benchmarks/profile_search_vllm.py [--questions 8] [--n 8] [--width 4]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_search import search_job


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--questions", type=int, default=8)
    ap.add_argument("--n", type=int, default=8)
    ap.add_argument("--width", type=int, default=4)
    ap.add_argument("--json", default="benchmarks/results/profile_search_vllm.json")
    a = ap.parse_args()

    from ttc_eval.strategies.sample import SampleExpansion
    from ttc_eval.strategies.search import SearchExpansion

    problems, policy, _, ctx = search_job("vllm", a.questions)
    calls: list[dict[str, Any]] = []
    steps: list[int] = []
    raw_run, raw_step = policy.loop.run, policy.loop.engine.step

    def logged(inputs: Any, progress: Any = None) -> Any:
        start = time.perf_counter()
        outs = raw_run(inputs, progress)
        lengths = [len(c.token_ids) for o in outs for c in o.outputs]
        calls.append(
            {
                "wall_s": time.perf_counter() - start,
                "requests": len(outs),
                "sequences": len(lengths),
                "prompt_tokens": sum(len(o.prompt_token_ids) for o in outs),
                "cached_prompt_tokens": sum(o.num_cached_tokens or 0 for o in outs),
                "generated_tokens": sum(lengths),
                "longest": max(lengths, default=0),
            }
        )
        return outs

    def counted() -> Any:
        steps.append(policy.loop.engine.get_num_unfinished_requests())
        return raw_step()

    policy.loop.run = logged
    policy.loop.engine.step = counted

    def profile(expander: Any) -> dict[str, Any]:
        calls.clear()
        steps.clear()
        start = time.perf_counter()
        for _ in expander.run(problems, ctx()):
            pass
        wall = time.perf_counter() - start
        gen = [c for c in calls if c["longest"] > 1]
        judge = [c for c in calls if c["longest"] <= 1]
        tokens = sum(c["generated_tokens"] for c in gen)
        return {
            "wall_s": wall,
            "engine_steps": len(steps),
            "mean_sequences_per_step": sum(steps) / max(1, len(steps)),
            "generation_calls": gen,
            "generation_call_s": sum(c["wall_s"] for c in gen),
            "generated_tokens": tokens,
            "ms_per_generated_token": 1000 * wall / max(1, tokens),
            "judge_calls": len(judge),
            "judge_call_s": sum(c["wall_s"] for c in judge),
            "judge_prompts": sum(c["requests"] for c in judge),
        }

    profile(SampleExpansion(2, 0.7))  # warm-up
    result = {
        "best_of_n": profile(SampleExpansion(a.n, 0.7)),
        "beam_search": profile(SearchExpansion(a.n, a.width, temperature=0.7)),
    }
    Path(a.json).parent.mkdir(parents=True, exist_ok=True)
    Path(a.json).write_text(json.dumps(result, indent=2) + "\n")
    for side, r in result.items():
        print(
            f"{side}: {r['wall_s']:.1f} s for {r['generated_tokens']} tokens "
            f"({r['ms_per_generated_token']:.2f} ms/token); {r['engine_steps']} engine steps, "
            f"{r['mean_sequences_per_step']:.1f} sequences per step; "
            f"{len(r['generation_calls'])} generation calls ({r['generation_call_s']:.1f} s "
            f"summed), {r['judge_calls']} verifier calls ({r['judge_call_s']:.1f} s summed, "
            f"{r['judge_prompts']} prompts)"
        )
        for c in r["generation_calls"][:12]:
            print(
                f"  {c['wall_s']:5.2f} s  {c['sequences']:3d} sequences  "
                f"{c['generated_tokens']:5d} tokens  longest {c['longest']:3d}  prompt "
                f"{c['prompt_tokens']} ({c['cached_prompt_tokens']} from the prefix cache)"
            )


if __name__ == "__main__":
    main()
