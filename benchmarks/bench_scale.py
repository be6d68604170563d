"""ttc-eval at the scale users run: 500 questions x 256 samples, 10 strategy configurations.

A synthetic MATH-500-shaped dump (seeded) is imported with the generic importer, then
``ttc-eval report`` is timed on it, with its peak memory; the run's trace store and a
generation cache holding the same 500 x 256 completions are measured for size on disk and
load time.

    python benchmarks/bench_scale.py [--questions 500] [--samples 256] [--out DIR] [--seed 0]
                                     [--repeats 3]

Target: ``ttc-eval report RUN`` under 20 s at 500 x 256 with 10 configurations, its HTML
page (``report/index.html``) included; the median of ``--repeats`` timings. A timing:
on a loaded or small machine run it under ``nice`` and alone; the import and the report run
in child processes of their own (peak RSS is each child's own ``ru_maxrss``, from
``os.wait4``); the store and the cache are read back right after being written, so from a
warm page cache.

**How an imported run gets 10 configurations.** No command re-selects a stored pool with
other strategies: ``ttc-eval import`` writes ``majority`` (and ``best_of_n`` when every
sample has a score) and takes no ``--strategy``; ``ttc-eval report`` takes only
``--optimal-axis``; ``ttc-eval run`` cannot resume an imported run (its backend,
``import-generic``, is not a registered backend, and the strategies are part of a run's
settings, so other strategies make another run directory that generates its own pool).
What ``report`` does is rebuild everything from ``config.json``: ``load_run`` plans the
strategies listed under ``config.strategies`` and gives each the stored traces of the
expansion it reads. Every pool strategy (majority, best_of_n in either mode, esc,
adaptive_consistency, ...) reads the one pool ``sample(n=<largest budget>,
temperature=<T>)`` at every budget, the pool the importer stored. So this script rewrites
that list in the imported run's ``config.json`` to the 10 configurations of
``STRATEGIES`` (the only edit; traces are untouched), and ``report`` then evaluates each of
them on the stored pool with no model, as it would a ``ttc-eval run`` of those 10 strategies
whose pool is already stored. ``coverage`` is added by the report itself (11 configurations
evaluated). Not possible on an imported pool: ``deepconf_offline`` / ``deepconf_online`` (they
read token confidences, which no import format carries: the report refuses them), ``greedy``
(it reads a temperature-0 pool of its own) and searches or revisions (expansions of their own).

**What the synthetic samples are.** Per question: a MATH level (1-5) and subject in
MATH-500's proportions, a gold answer (integer, fraction, surd, multiple of pi or pair), and a
pass@1 drawn from a Beta around a level-dependent mean (about 0.9 at level 1 down to 0.35 at
level 5), so the oracle and label bins differ. Each sample: 3 to 8 steps of LaTeX-flavoured
text separated by blank lines (median about 490 characters, 10th to 90th percentile 290 to
680), ending in ``\\boxed{}`` with the gold answer (with the question's pass@1) or one of 2
to 8 recurring wrong answers (so voting has something to do), about 3% cut off with no
answer; a reward-model score in [0, 1], higher on right samples, with a bias per wrong answer
(so best_of_n and the predicted bins work, and naive best-of-N can be fooled); its verdict
(``correct``). On 100 questions: pass@1 0.56, majority@256 0.68, weighted best-of-N@256
0.76, naive 0.67. The generic format has no token counts: the imported run's tokens are 0 (so
``--optimal-axis tokens`` and the tokens columns say nothing here). The cache's completions
carry what a real backend records: text, token count (about 3.7 characters a token), prompt
tokens, per-token log-probabilities, character ends and packed top-5 confidences.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

STRATEGIES = (
    "majority",
    "best_of_n",
    "best_of_n:mode=naive",
    "esc",
    "esc:window=2",
    "esc:window=8",
    "adaptive_consistency",
    "adaptive_consistency:threshold=0.8",
    "adaptive_consistency:threshold=0.9",
    "adaptive_consistency:threshold=0.99",
)
"""The 10 configurations the report evaluates (every one reads the imported pool)."""

TASK = "math500"
"""The task whose grader extracts each sample's answer (math-verify) and whose labels apply."""

# MATH-500's own counts per level and per subject.
LEVELS = {1: 43, 2: 90, 3: 105, 4: 128, 5: 134}
SUBJECTS = {
    "Prealgebra": 82,
    "Algebra": 124,
    "Number Theory": 62,
    "Counting & Probability": 38,
    "Geometry": 41,
    "Intermediate Algebra": 97,
    "Precalculus": 56,
}
LEVEL_PASS = {1: 0.9, 2: 0.8, 3: 0.68, 4: 0.52, 5: 0.35}
"""Mean pass@1 per level (a 7B math model's, roughly); each question draws around it."""

STEPS = (
    "First, we rewrite the equation as ${a}x + {b} = {c}$.",
    "Subtracting ${b}$ from both sides gives ${a}x = {d}$, so $x = \\frac{{{d}}}{{{a}}}$.",
    "The number of ways to choose ${a}$ items from ${c}$ is $\\binom{{{c}}}{{{a}}}$.",
    "By the Pythagorean theorem, $a^2 + b^2 = {c}^2$, which gives $a = \\sqrt{{{d}}}$.",
    "We factor the quadratic: $x^2 - {a}x + {b} = (x - {e})(x - {f})$.",
    "Since ${c} \\equiv {e} \\pmod{{{a}}}$, the remainder when dividing by ${a}$ is ${e}$.",
    "Let $s$ denote the side length. Then the area is $s^2 = {d}$, so $s = \\sqrt{{{d}}}$.",
    "Substituting back into the original expression, we check that the value satisfies "
    "every condition of the problem.",
    "Multiplying both sides by ${a}$ and collecting like terms, we get ${b}y - {e} = {c}$.",
    "The sum of the roots is $-\\frac{{b}}{{a}} = {e}$ and their product is ${f}$ by Vieta's "
    "formulas.",
    "Using the identity $\\sin^2\\theta + \\cos^2\\theta = 1$ with $\\cos\\theta = "
    "\\frac{{{e}}}{{{c}}}$, we find $\\sin\\theta$.",
    "There are ${c}$ cases in all, and exactly ${e}$ of them satisfy the condition.",
)
ENDINGS = (
    "Therefore, the final answer is $\\boxed{{{ans}}}$.",
    "So the answer is $\\boxed{{{ans}}}$.",
    "Hence the value we are looking for is $\\boxed{{{ans}}}$.",
)


def _answer(rng: random.Random) -> str:
    """A MATH-style gold or wrong answer."""
    kind = rng.random()
    if kind < 0.55:
        return str(rng.randint(-20, 500))
    if kind < 0.75:
        q = rng.randint(2, 30)
        return f"\\frac{{{rng.randint(1, q - 1)}}}{{{q}}}"
    if kind < 0.87:
        return f"{rng.randint(2, 9)}\\sqrt{{{rng.choice((2, 3, 5, 6, 7))}}}"
    if kind < 0.95:
        return f"{rng.randint(2, 12)}\\pi"
    return f"({rng.randint(-9, 9)}, {rng.randint(-9, 9)})"


def _solution(rng: random.Random, answer: str | None) -> str:
    """Steps separated by blank lines, ending in a boxed answer (``None``: cut off)."""
    steps = []
    for _ in range(rng.randint(3, 8)):
        a, b = rng.randint(2, 12), rng.randint(1, 40)
        c = rng.randint(a + 1, 90)
        e, f = rng.randint(1, 15), rng.randint(1, 60)
        steps.append(rng.choice(STEPS).format(a=a, b=b, c=c, d=c - b, e=e, f=f))
    if answer is None:  # ran out of tokens mid-step
        last = steps[-1]
        steps[-1] = last[: rng.randint(5, len(last))]
    else:
        steps.append(rng.choice(ENDINGS).format(ans=answer))
    return "\n\n".join(steps)


def _weighted(rng: random.Random, counts: dict[Any, int]) -> Any:
    return rng.choices(list(counts), weights=list(counts.values()))[0]


def synthesize(path: Path, questions: int, samples: int, seed: int) -> list[dict[str, Any]]:
    """Write the generic dump; returns, per question, what the cache part needs (id,
    question text, sample texts)."""
    rng = random.Random(seed)
    meta = []
    with path.open("w") as f:
        for qi in range(questions):
            level = _weighted(rng, LEVELS)
            subject = _weighted(rng, SUBJECTS)
            qid = f"test/{subject.lower().replace(' ', '_')}/{qi}.json"
            gold = _answer(rng)
            # Beta with mean LEVEL_PASS[level], concentration 2: spread from near 0 to near 1.
            m = LEVEL_PASS[level]
            p = rng.betavariate(2 * m, 2 * (1 - m))
            # Recurring mistakes: a few wrong answers, one often dominant, each with its own
            # reward-model bias (a verifier is fooled by some mistakes more than by others).
            wrong = [_answer(rng) for _ in range(rng.randint(2, 8))]
            wrong = [w for w in wrong if w != gold] or ["0" if gold != "0" else "1"]
            wrong_w = [rng.expovariate(1.0) for _ in wrong]
            bias = {w: rng.gauss(0, 0.12) for w in wrong}
            shift = rng.gauss(0, 0.08)  # some questions' scores run high or low
            rows = []
            for _ in range(samples):
                if rng.random() < 0.03:
                    ans, correct = None, False
                elif rng.random() < p:
                    ans, correct = gold, True
                else:
                    ans, correct = rng.choices(wrong, weights=wrong_w)[0], False
                if correct:
                    score = rng.betavariate(4, 2.5)
                else:
                    score = rng.betavariate(2.5, 3) + (bias[ans] if ans is not None else -0.1)
                rows.append(
                    {
                        "text": _solution(rng, ans),
                        "score": round(min(1.0, max(0.0, score + shift)), 6),
                        "correct": correct,
                    }
                )
            row = {"id": qid, "answer": gold, "level": level, "subject": subject, "samples": rows}
            f.write(json.dumps(row) + "\n")
            question = (
                f"Problem {qi} ({subject}, level {level}): find the value described below, "
                "giving an exact answer. " + _solution(rng, None)[:200]
            )
            meta.append({"id": qid, "question": question, "texts": [r["text"] for r in rows]})
    return meta


def _child(cmd: Sequence[str], log: Path) -> dict[str, Any]:
    """Run ``cmd`` in a child process (output to ``log``): its wall and CPU seconds (user +
    system: what contention for the cores does not inflate), exit code, and its own peak RSS
    in bytes (``ru_maxrss`` of that child alone, from ``os.wait4``)."""
    with log.open("w") as out:
        start = time.perf_counter()
        proc = subprocess.Popen(list(cmd), stdout=out, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    return {
        "wall_s": wall,
        "cpu_s": usage.ru_utime + usage.ru_stime,
        "rc": proc.returncode,
        "peak_rss_bytes": usage.ru_maxrss * 1024,  # Linux: kilobytes
    }


def _du(path: Path) -> tuple[int, int]:
    """(apparent bytes, bytes allocated on disk) of a file or a folder's files."""
    files = [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file()]
    stats = [p.stat() for p in files]
    return sum(s.st_size for s in stats), sum(s.st_blocks * 512 for s in stats)


def measure_store(run_dir: Path, repeats: int = 3) -> dict[str, Any]:
    """Size of ``traces.jsonl`` and the time :class:`~ttc_eval.store.TraceStore` takes to
    load it (what every ``report`` starts with): the fastest of ``repeats`` loads, wall and
    CPU seconds."""
    from ttc_eval.store import TraceStore

    path = run_dir / "traces.jsonl"
    walls, cpus = [], []
    for _ in range(repeats):
        start, cpu = time.perf_counter(), time.process_time()
        store = TraceStore(path)
        walls.append(time.perf_counter() - start)
        cpus.append(time.process_time() - cpu)
    size, disk = _du(path)
    return {
        "path": str(path),
        "bytes": size,
        "disk_bytes": disk,
        "load_s": min(walls),
        "load_cpu_s": min(cpus),
        "load_s_all": walls,
        "traces": len(store.traces),
        "candidates": sum(len(t.candidates) for t in store.traces.values()),
    }


def measure_cache(path: Path, meta: list[dict[str, Any]], seed: int) -> dict[str, Any]:
    """A generation cache holding every sample of ``meta``, filled and read back through
    :class:`~ttc_eval.cache.GenerationCache` one question (the default chunk of 256 samples)
    at a time, as a run does."""
    import numpy as np

    from ttc_eval.cache import GenerationCache
    from ttc_eval.types import Completion, Request, SamplingParams

    rng = np.random.default_rng(seed)
    fingerprint = "hf:Qwen/Qwen2.5-Math-7B-Instruct:synthetic"
    params = SamplingParams(temperature=0.7, top_p=1.0, max_tokens=1024, seed=seed)
    system = "Please reason step by step, and put your final answer within \\boxed{}."
    keys: list[list[str]] = []
    cache = GenerationCache(path)
    write = 0.0
    for q in meta:
        prompt = (
            f"<|im_start|>system\n{system}<|im_end|>\n<|im_start|>user\n{q['question']}"
            "<|im_end|>\n<|im_start|>assistant\n"
        )
        n = len(q["texts"])
        request = Request(prompt, params, tuple(range(n)))
        ks = [GenerationCache.key(fingerprint, "hf", request, s, top_logprobs=5) for s in range(n)]
        items = {}
        for k, text in zip(ks, q["texts"], strict=True):
            n_tok = max(1, round(len(text) / 3.7))
            ends = np.linspace(0, len(text), n_tok + 1).round().astype(int)[1:]
            items[k] = Completion(
                text=text,
                n_tokens=n_tok,
                finish_reason="stop" if "boxed" in text else "length",
                prompt_tokens=len(prompt) // 4,
                token_logprobs=tuple(-rng.exponential(0.3, n_tok)),
                token_ends=tuple(int(e) for e in ends),
                token_confidences=tuple(rng.uniform(0.5, 12.0, n_tok)),
            )
        start = time.perf_counter()
        cache.put_many(items)
        write += time.perf_counter() - start
        keys.append(ks)
    cache.db.close()
    size, disk = _du(path.parent)  # the database (and its WAL, were one left)
    start, cpu = time.perf_counter(), time.process_time()
    cache = GenerationCache(path)
    opened = time.perf_counter() - start
    found = 0
    for ks in keys:
        found += len(cache.get_many(ks))  # each chunk's completions, parsed, then dropped
    read = time.perf_counter() - start - opened
    load_cpu = time.process_time() - cpu
    cache.db.close()
    wanted = sum(len(ks) for ks in keys)
    if found != wanted:
        raise SystemExit(f"the cache gave back {found} of {wanted} completions")
    return {
        "path": str(path),
        "bytes": size,
        "disk_bytes": disk,
        "entries": found,
        "write_s": write,
        "open_s": opened,
        "read_all_s": read,
        "load_s": opened + read,
        "load_cpu_s": load_cpu,
    }


def _mib(n: float) -> str:
    return f"{n / 2**20:.1f} MiB"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--questions", type=int, default=500)
    ap.add_argument("--samples", type=int, default=256, help="samples per question (the pool)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=None, help="working folder (default: a new temp folder)")
    ap.add_argument("--json", default="benchmarks/results/scale.json")
    ap.add_argument("--target", type=float, default=20.0, help="report wall-time target (s)")
    ap.add_argument("--repeats", type=int, default=3, help="times `report` is timed (median)")
    a = ap.parse_args()

    out = Path(a.out or tempfile.mkdtemp(prefix="bench-scale-"))
    out.mkdir(parents=True, exist_ok=True)
    if (out / "runs").exists():
        raise SystemExit(f"{out} holds an earlier benchmark's runs/; give another --out")
    cli = [sys.executable, "-m", "ttc_eval"]

    # 1. The dump, then `ttc-eval import generic`.
    dump = out / "math500_synthetic.jsonl"
    start = time.perf_counter()
    meta = synthesize(dump, a.questions, a.samples, a.seed)
    synth_s = time.perf_counter() - start
    imported = _child(
        [*cli, "import", "generic", str(dump), "--task", TASK, "--output-dir", str(out / "runs")],
        out / "import.log",
    )
    if imported["rc"] != 0:
        raise SystemExit(f"the import failed (exit {imported['rc']}); see {out / 'import.log'}")
    (run_dir,) = [d for d in (out / "runs").iterdir() if (d / "config.json").is_file()]

    # 2. The 10 configurations: config.json's strategy list, which `report` plans from
    # (see the docstring: every one reads the stored pool).
    from ttc_eval.config import StrategySpec

    record = json.loads((run_dir / "config.json").read_text())
    record["config"]["strategies"] = [StrategySpec.parse(s).to_dict() for s in STRATEGIES]
    (run_dir / "config.json").write_text(json.dumps(record, indent=2) + "\n")

    # 3. `ttc-eval report`, in a child process of its own, --repeats times (the median
    # timing is reported; each rewrites the same files).
    timings = []
    for _ in range(max(1, a.repeats)):
        timings.append(_child([*cli, "report", str(run_dir)], out / "report.log"))
        if timings[-1]["rc"] != 0:
            raise SystemExit(f"the report failed; see {out / 'report.log'}")
    reported = sorted(timings, key=lambda t: t["wall_s"])[(len(timings) - 1) // 2]
    reported = {**reported, "rounds_wall_s": [t["wall_s"] for t in timings]}
    report_s = reported["wall_s"]
    page = run_dir / "report" / "index.html"
    results = json.loads((run_dir / "results.json").read_text())
    configs = sorted({r["config"] for r in results["rows"]})
    if len(configs) != len(STRATEGIES) + 1:  # + coverage
        raise SystemExit(f"the report has {len(configs)} configurations: {configs}")

    # 4. The trace store and the generation cache.
    store = measure_store(run_dir)
    run_bytes, run_disk = _du(run_dir)
    cache = measure_cache(out / "cache" / "generations.sqlite", meta, a.seed)

    n = a.questions * a.samples
    report = {
        "questions": a.questions,
        "samples": a.samples,
        "seed": a.seed,
        "task": TASK,
        "strategies": list(STRATEGIES),
        "configurations_reported": configs,
        "budgets": sorted({r["budget"] for r in results["rows"]}),
        "result_rows": len(results["rows"]),
        "run_dir": str(run_dir),
        "dump_bytes": dump.stat().st_size,
        "synthesize_s": synth_s,
        "import": imported,
        "run_dir_bytes": run_bytes,
        "run_dir_disk_bytes": run_disk,
        "trace_store": store,
        "report": reported,
        "report_target_s": a.target,
        "report_target_met": report_s < a.target,
        "cache": cache,
    }
    Path(a.json).parent.mkdir(parents=True, exist_ok=True)
    Path(a.json).write_text(json.dumps(report, indent=2) + "\n")

    print(
        f"{a.questions} questions x {a.samples} samples ({n} samples), task {TASK}, "
        f"{len(STRATEGIES)} configurations (+ coverage), budgets {report['budgets']}\n"
    )
    print("| what | figure |")
    print("| --- | --- |")
    table = [
        ("synthesize the dump", f"{synth_s:.1f} s ({_mib(report['dump_bytes'])})"),
        (
            "`ttc-eval import generic` (build the run)",
            f"{imported['wall_s']:.1f} s wall, {imported['cpu_s']:.1f} s CPU",
        ),
        ("import peak RSS", _mib(imported["peak_rss_bytes"])),
        ("run dir size on disk", f"{_mib(run_disk)} ({_mib(run_bytes)} apparent)"),
        (
            "trace store (traces.jsonl) size",
            f"{_mib(store['disk_bytes'])} ({store['traces']} traces, "
            f"{store['candidates']} candidates)",
        ),
        (
            "trace store load (TraceStore, fastest of 3)",
            f"{store['load_s']:.2f} s wall, {store['load_cpu_s']:.2f} s CPU",
        ),
        (
            f"`ttc-eval report` wall, median of {len(timings)} (target < {a.target:.0f} s)",
            f"{report_s:.1f} s wall ({'met' if report_s < a.target else 'NOT met'}; rounds "
            + ", ".join(f"{t:.1f}" for t in reported["rounds_wall_s"])
            + f"), "
            f"{reported['cpu_s']:.1f} s CPU; {len(results['rows'])} result rows",
        ),
        ("report peak RSS", _mib(reported["peak_rss_bytes"])),
        ("report/index.html size", _mib(page.stat().st_size)),
        ("generation cache size", f"{_mib(cache['disk_bytes'])} ({cache['entries']} entries)"),
        ("cache write (put_many per question)", f"{cache['write_s']:.1f} s"),
        (
            "cache load (open + get_many of every entry)",
            f"{cache['load_s']:.2f} s wall, {cache['load_cpu_s']:.2f} s CPU "
            f"(open {cache['open_s'] * 1000:.0f} ms)",
        ),
    ]
    for what, figure in table:
        print(f"| {what} | {figure} |")
    print(f"\nwritten to {a.json}; run directory {run_dir}")


if __name__ == "__main__":
    main()
