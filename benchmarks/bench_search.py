"""Beam search against best-of-N at the same N: wall time per generated token.

Same questions, same model (loaded once), same verifier (self-judge on the policy model),
cache off, alternating (best-of-N, beam, best-of-N, beam, ...) in one process. Reported per
generated token: the whole expansion's wall time (generation + verifier scoring), and the
time during which at least one generate call was in flight ("generation alone"; on vLLM a
search's questions run on their own threads and their calls overlap, with each other and
with the verifier's).

    python benchmarks/bench_search.py [--questions 8] [--n 8] [--width 4] [--repeats 2]
    python benchmarks/bench_search.py --backend vllm

Targets: beam search at most 1.5x best-of-N per generated token on hf (issue 3), 1.2x on
vLLM, whose prefix cache keeps each kept beam's KV blocks, so a round re-reads nothing it
has computed before (issue 19). Both sides record what they read, as a run would: no token
confidences or log-probabilities (self-judge reads neither).
"""

from __future__ import annotations

import argparse
import json
import statistics
import threading
import time
from pathlib import Path
from typing import Any


class OneAtATime:
    """A verifier without ``score_counted``: a search calls it one question at a time (the
    way every verifier was called before self-judge could be called concurrently)."""

    def __init__(self, inner: Any) -> None:
        self.inner, self.name, self.version = inner, inner.name, inner.version

    @property
    def tokens_read(self) -> int:
        return int(self.inner.tokens_read)

    def score(self, problem: Any, solutions: Any) -> Any:
        return self.inner.score(problem, solutions)


def search_job(backend_name: str, questions: int) -> tuple[Any, Any, Any, Any]:
    """The job both sides run: the first ``questions`` arith questions, the default model on
    ``backend_name`` recording no log-probabilities (self-judge reads none), the cache off,
    and a factory of expansion contexts with the self-judge verifier on the policy model.
    Returns (questions, the policy backend, its cache wrapper, the context factory)."""
    from ttc_eval.cache import CachedBackend
    from ttc_eval.strategies._base import ExpansionContext
    from ttc_eval.tasks import Task, find_task_spec
    from ttc_eval.types import SamplingParams
    from ttc_eval.verifiers.self_judge import SelfJudge

    task = Task(find_task_spec("arith"))
    problems = task.problems(limit=questions)
    policy: Any
    if backend_name == "hf":
        from ttc_eval.backends.hf import HFBackend

        policy = HFBackend("smollm2-135m", progress=False, top_logprobs=0, logprobs=False)
    else:
        from ttc_eval.backends.vllm import VLLMBackend

        policy = VLLMBackend(
            "smollm2-135m", progress=False, max_model_len=2048, top_logprobs=0, logprobs=False
        )
    backend = CachedBackend(policy, cache=None)
    params = SamplingParams(
        temperature=0.7, max_tokens=int(task.spec.generation["max_tokens"]), seed=0
    )

    def ctx(one_at_a_time: bool = False) -> ExpansionContext:
        judge = SelfJudge(judge=backend)
        verifier: Any = OneAtATime(judge) if one_at_a_time else judge
        return ExpansionContext(
            backends={"policy": backend},
            verifier=verifier,
            verifier_role="judge",
            params=params,
            render=lambda p: backend.render(task.messages(p)),
            messages=task.messages,
            templates={},
            step_delimiter="\n\n",
            chunk_samples=10_000,
        )

    return problems, policy, backend, ctx


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--questions", type=int, default=8)
    ap.add_argument("--n", type=int, default=8)
    ap.add_argument("--width", type=int, default=4)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--backend", choices=("hf", "vllm"), default="hf")
    ap.add_argument(
        "--one-at-a-time",
        action="store_true",
        help="also time beam search with the verifier called one question at a time",
    )
    ap.add_argument("--json", help="default: benchmarks/results/search[-vllm].json")
    a = ap.parse_args()
    a.json = a.json or f"benchmarks/results/search{'' if a.backend == 'hf' else '-vllm'}.json"

    from ttc_eval.strategies.sample import SampleExpansion
    from ttc_eval.strategies.search import SearchExpansion

    problems, _, backend, ctx = search_job(a.backend, a.questions)
    # Time with at least one generate call in flight: on vLLM a search's questions call from
    # their own threads at once, and their calls overlap.
    gen_time = [0.0]
    busy = {"calls": 0, "since": 0.0}
    lock = threading.Lock()
    raw_generate = backend.generate

    def generate(requests: Any) -> Any:
        with lock:
            if busy["calls"] == 0:
                busy["since"] = time.perf_counter()
            busy["calls"] += 1
        try:
            return raw_generate(requests)
        finally:
            with lock:
                busy["calls"] -= 1
                if busy["calls"] == 0:
                    gen_time[0] += time.perf_counter() - busy["since"]

    backend.generate = generate  # type: ignore[method-assign]

    def timed(expander: Any, one_at_a_time: bool = False) -> tuple[float, float, int]:
        gen_time[0] = 0.0
        t0 = time.perf_counter()
        traces = [t for chunk in expander.run(problems, ctx(one_at_a_time)) for t in chunk]
        wall = time.perf_counter() - t0
        return wall, gen_time[0], sum(t.generated_tokens for t in traces)

    sides: dict[str, Any] = {
        "best_of_n": lambda: SampleExpansion(a.n, 0.7),
        "beam_search": lambda: SearchExpansion(a.n, a.width, temperature=0.7),
    }
    if a.one_at_a_time:
        sides["beam_search_one_at_a_time"] = lambda: SearchExpansion(a.n, a.width, temperature=0.7)
    # Warm-up outside the timings: the first generate call pays one-off allocation costs.
    timed(SampleExpansion(2, 0.7))
    runs: dict[str, list[dict[str, float]]] = {k: [] for k in sides}
    for _ in range(a.repeats):
        for name, make in sides.items():
            wall, gen, tokens = timed(make(), name.endswith("one_at_a_time"))
            runs[name].append(
                {
                    "wall_s": wall,
                    "generate_s": gen,
                    "tokens": tokens,
                    "s_per_token": wall / tokens,
                    "generate_s_per_token": gen / tokens,
                }
            )
    med = {k: statistics.median(r["s_per_token"] for r in v) for k, v in runs.items()}
    gmed = {k: statistics.median(r["generate_s_per_token"] for r in v) for k, v in runs.items()}
    result = {
        "backend": a.backend,
        "questions": a.questions,
        "n": a.n,
        "width": a.width,
        "runs": runs,
        "median_ms_per_token": {k: round(v * 1000, 2) for k, v in med.items()},
        "median_generate_ms_per_token": {k: round(v * 1000, 2) for k, v in gmed.items()},
        "ratio": med["beam_search"] / med["best_of_n"],
        "generate_ratio": gmed["beam_search"] / gmed["best_of_n"],
        "ratio_by_round": [
            b["s_per_token"] / o["s_per_token"]
            for b, o in zip(runs["beam_search"], runs["best_of_n"], strict=True)
        ],
    }
    if a.one_at_a_time:
        result["one_at_a_time_ratio"] = med["beam_search_one_at_a_time"] / med["best_of_n"]
    Path(a.json).parent.mkdir(parents=True, exist_ok=True)
    Path(a.json).write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    print(
        f"\nbeam_search / best_of_n per generated token: {result['ratio']:.2f}x with verifier, "
        f"{result['generate_ratio']:.2f}x generation alone"
    )
    if a.one_at_a_time:
        print(f"with the verifier one question at a time: {result['one_at_a_time_ratio']:.2f}x")


if __name__ == "__main__":
    main()
