"""Token confidences: their stored form, how backends derive them from top-k log-probabilities,
the generation cache's keys, and what a choice that stopped a sample part-way is charged."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ttc_eval.backends._base import check_top_logprobs, top_k_record
from ttc_eval.backends.fake import FakeBackend
from ttc_eval.backends.vllm import vllm_completion
from ttc_eval.cache import CachedBackend, GenerationCache
from ttc_eval.errors import UsageError
from ttc_eval.pipeline import selection_cost
from ttc_eval.types import (
    Candidate,
    Completion,
    Cost,
    Request,
    SamplingParams,
    Trace,
    pack_confidences,
    token_confidence,
    unpack_confidences,
)


def test_packed_confidences_round_trip_at_three_decimals_and_clip() -> None:
    values = (0.0, 0.001, 1.234, 2.2, 17.5, 65.535)
    packed = pack_confidences(values)
    assert isinstance(packed, str) and len(packed) <= 4 * len(values)  # 2 bytes a token
    assert unpack_confidences(packed) == values
    assert unpack_confidences(pack_confidences([70.0, -1.0])) == (65.535, 0.0)  # clipped
    assert unpack_confidences([1.5, 2]) == (1.5, 2.0)  # a plain list is read as it is
    with pytest.raises(ValueError):
        unpack_confidences("AA==")  # one byte: not a whole 16-bit value


def test_token_confidence_is_minus_the_mean_rounded_like_deepconf() -> None:
    assert token_confidence([-0.5, -1.5, -2.5, -3.0, -3.5]) == 2.2
    assert token_confidence([-1.0004, -1.0008]) == 1.001
    assert token_confidence([]) == 0.0


def test_top_k_record_keeps_the_k_largest_and_refuses_empty_positions() -> None:
    rows = [[-3.0, -0.5, -9.0, -1.0], [-0.25, -2.0]]
    confidences, raw = top_k_record(rows, 3, keep=True)
    assert confidences == (round((0.5 + 1.0 + 3.0) / 3, 3), 1.125)
    assert raw == ((-0.5, -1.0, -3.0), (-0.25, -2.0))
    assert top_k_record(rows, 3, keep=False) == (confidences, None)
    assert top_k_record(rows, 0, keep=True) == (None, None)
    assert top_k_record([[-0.5], []], 3, keep=False) == (None, None)
    for bad in (-1, 21, 2.5, True):
        with pytest.raises(UsageError, match="top_logprobs must be a whole number"):
            check_top_logprobs(bad)


def test_completions_and_candidates_store_confidences_packed_and_old_rows_load() -> None:
    c = Completion("a b", 2, "stop", token_confidences=(1.5, 0.25), top_logprobs=((-1.0,),) * 2)
    d = c.to_dict()
    assert isinstance(d["token_confidences"], str)
    assert Completion.from_dict(json.loads(json.dumps(d))) == c
    old = Completion("a b", 2, "stop").to_dict()
    assert "token_confidences" not in old and "top_logprobs" not in old  # rows as before
    assert Completion.from_dict(old).token_confidences is None
    cand = Candidate(0, "x", 2, "stop", confidences=(1.5, 0.25))
    row = cand.to_dict()
    assert isinstance(row["confidences"], str) and "top_logprobs" not in row
    assert Candidate.from_dict(json.loads(json.dumps(row))) == cand
    assert Candidate.from_dict(Candidate(0, "x", 2, "stop").to_dict()).confidences is None


def test_vllm_completion_cuts_confidences_with_the_text_at_an_unreported_stop() -> None:
    """The engine did not report the stop string: the text is cut there, and so are the
    token log-probabilities, ends and confidences (one per kept token)."""
    params = SamplingParams(stop=("\n\n",), include_stop=True)
    pieces = ["Step", " one", "\n\n", "Step", " two"]
    comp = vllm_completion(
        "Step one\n\nStep two", pieces, [-0.1] * 5, "stop", None, 7, params,
        ((1.0, 2.0, 3.0, 4.0, 5.0), None),
    )  # fmt: skip
    assert comp.text == "Step one\n\n" and comp.n_tokens == 3
    assert comp.token_confidences == (1.0, 2.0, 3.0)
    assert comp.token_logprobs is not None and len(comp.token_logprobs) == 3


def _requests(n: int = 2) -> list[Request]:
    params = SamplingParams(temperature=0.7, max_tokens=16, seed=1)
    return [Request("<user>What is 2 + 3?\n<assistant>", params, tuple(range(n)))]


def test_the_cache_keys_confidences_on_k_and_keeps_raw_top_k_apart(tmp_path: Path) -> None:
    cache = GenerationCache(tmp_path / "gen.sqlite")
    five = CachedBackend(FakeBackend(), cache)
    (first,) = five.generate(_requests())
    assert five.generated_samples == 2 and all(c.token_confidences for c in first)
    again = CachedBackend(FakeBackend(), cache)
    assert again.generate(_requests()) == [first] and again.generated_samples == 0
    # Another k: other numbers, so other entries (the same samples, drawn again).
    three = CachedBackend(FakeBackend(top_logprobs=3), cache)
    (other,) = three.generate(_requests())
    assert three.generated_samples == 2
    assert [c.text for c in other] == [c.text for c in first]
    assert other[0].token_confidences != first[0].token_confidences
    # Asking for the raw top-k draws under a key of its own and leaves the entries above.
    raw = CachedBackend(FakeBackend(keep_top_logprobs=True), cache)
    (kept,) = raw.generate(_requests())
    assert raw.generated_samples == 2 and all(c.top_logprobs for c in kept)
    assert [c.token_confidences for c in kept] == [c.token_confidences for c in first]
    plain = CachedBackend(FakeBackend(), cache)
    assert plain.generate(_requests()) == [first] and plain.generated_samples == 0


def test_entries_stored_before_confidences_are_not_served_without_them(tmp_path: Path) -> None:
    cache = GenerationCache(tmp_path / "gen.sqlite")
    request = _requests(1)[0]
    backend = FakeBackend()
    # What an older ttc-eval stored: keyed without a k, no confidences.
    old_key = GenerationCache.key(backend.fingerprint, "fake", request, 0)
    cache.put_many({old_key: Completion("stale text", 2, "stop")})
    cached = CachedBackend(backend, cache)
    ((c,),) = cached.generate([request])
    assert cached.generated_samples == 1 and c.text != "stale text" and c.token_confidences
    none = CachedBackend(FakeBackend(top_logprobs=0), cache)
    ((d,),) = none.generate([request])  # a backend that records none reads the old entry
    assert none.generated_samples == 0 and d.text == "stale text"


def test_a_sample_stopped_part_way_is_charged_its_share() -> None:
    """Sample 1 generated 10 tokens in 2 s; a choice that stopped it after 4 is charged 4
    tokens and 0.8 s of it, its whole prompt, and one sample."""

    def cand(i: int) -> Candidate:
        cost = Cost(
            samples=1, prompt_tokens=5, generated_tokens=10, seconds=2.0,
            role_tokens={"policy": 10},
        )  # fmt: skip
        return Candidate(i, "x", 10, "stop", answer="1", vote_key="1", correct=True, cost=cost)

    cands = (cand(0), cand(1))
    # The question's prompt is computed once for both samples.
    prompt = Cost(prompt_tokens_computed=5, role_tokens={"policy": 5})
    total = Cost.total([*(c.cost for c in cands if c.cost is not None), prompt])
    trace = Trace("q", "sample(n=2)", cands, 5, 20, 2, cost=total)
    whole = selection_cost(trace, (0, 1))
    cut = selection_cost(trace, (0, 1), cut=((1, 4),))
    assert whole.generated_tokens == 20 and cut.generated_tokens == 14
    assert cut.seconds == pytest.approx(2.0 + 0.8) and whole.seconds == pytest.approx(4.0)
    assert cut.samples == 2 and cut.prompt_tokens == 10
    assert cut.role_tokens["policy"] == whole.role_tokens["policy"] - 6


def test_a_backend_recording_less_is_served_richer_entries_stripped(tmp_path: Path) -> None:
    cache = GenerationCache(tmp_path / "gen.sqlite")
    full = CachedBackend(FakeBackend(), cache)
    (first,) = full.generate(_requests())
    assert all(c.token_logprobs and c.token_confidences for c in first)
    for k, logprobs in ((0, False), (0, True), (5, False)):
        lean = CachedBackend(FakeBackend(top_logprobs=k, logprobs=logprobs), cache)
        (got,) = lean.generate(_requests())
        assert lean.generated_samples == 0 and lean.cached_samples == 2
        assert [c.text for c in got] == [c.text for c in first]
        assert all((c.token_logprobs is not None) == logprobs for c in got)
        assert all((c.token_confidences is not None) == (k > 0) for c in got)
    # Not the other way: a lean entry never serves a backend that records more.
    cache2 = GenerationCache(tmp_path / "lean.sqlite")
    lean = CachedBackend(FakeBackend(top_logprobs=0, logprobs=False), cache2)
    (got,) = lean.generate(_requests())
    assert lean.generated_samples == 2 and all(c.token_logprobs is None for c in got)
    rich = CachedBackend(FakeBackend(), cache2)
    (again,) = rich.generate(_requests())
    assert rich.generated_samples == 2 and all(c.token_logprobs for c in again)
    # The lean entries are stored under their own keys: served again without generating.
    lean2 = CachedBackend(FakeBackend(top_logprobs=0, logprobs=False), cache2)
    assert lean2.generate(_requests()) == [got] and lean2.generated_samples == 0


@pytest.mark.parametrize(
    ("strategies", "verifier", "backend_args", "recorded"),
    [
        ("majority", None, {}, {"top_logprobs": 0, "logprobs": False}),
        ("majority,best_of_n", "logprob", {}, {"top_logprobs": 0}),  # logprob reads them
        ("deepconf_offline", None, {}, {"logprobs": False}),  # reads confidences
        ("majority", None, {"top_logprobs": 3}, {"top_logprobs": 3, "logprobs": False}),
    ],
)
def test_a_run_records_only_what_its_components_read(
    strategies: str, verifier: str | None, backend_args: dict[str, int], recorded: dict[str, object]
) -> None:
    from ttc_eval.config import RunConfig, StrategySpec
    from ttc_eval.pipeline import plan_strategies, recorded_options

    config = RunConfig(
        task="arith",
        backend="fake",
        model="fake",
        strategies=tuple(StrategySpec.parse(s) for s in strategies.split(",")),
        verifier=verifier,
        backend_args=backend_args,
    ).resolve({"temperature": 0.7, "top_p": 1.0, "max_tokens": 32})
    assert {**recorded_options(plan_strategies(config)), **config.backend_args} == recorded


def test_a_run_without_confidence_readers_stores_none(tmp_path: Path) -> None:
    from ttc_eval.cli import main

    base = ["run", "--backend", "fake", "--task", "arith", "--quiet", "--limit", "2", "--no-cache"]
    for strategy, stored in (("majority", False), ("deepconf_offline", True)):
        out = tmp_path / strategy
        argv = [*base, "--strategy", strategy, "--verifier", "none", "--output-dir", str(out)]
        assert main(argv) == 0
        (run,) = out.iterdir()
        rows = [json.loads(x) for x in (run / "traces.jsonl").read_text().splitlines()]
        assert all(("confidences" in c) == stored for r in rows for c in r["candidates"])


def test_keeping_the_raw_top_k_keeps_its_k() -> None:
    """``keep_top_logprobs=true`` alone asks for the raw top-k: the run's default of no
    confidences does not turn it off."""
    from ttc_eval.config import RunConfig, StrategySpec
    from ttc_eval.pipeline import make_backend, plan_strategies, recorded_options
    from ttc_eval.types import POLICY

    config = RunConfig(
        task="arith",
        backend="fake",
        model="fake",
        strategies=(StrategySpec.parse("majority"),),
        verifier=None,
        backend_args={"keep_top_logprobs": True},
    ).resolve({"temperature": 0.7, "top_p": 1.0, "max_tokens": 32})
    defaults = recorded_options(plan_strategies(config))
    backend = make_backend(config.role(POLICY), config, None, False, defaults)
    assert backend.top_logprobs == 5 and backend.keep_top_logprobs and not backend.logprobs
