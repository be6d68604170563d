"""The vllm backend's engine loop on a scripted engine: routing, failures, aborts, its thread.

The real engine is in tests/test_vllm.py (slow); this one has vLLM's engine interface
(``renderer.render_cmpl``, ``add_request``, ``step``, ``abort_request``) and decodes one
token of every running request per step, so the cases that a real engine rarely shows
(a refused request, a failed step, an aborted request) run in milliseconds.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any

import pytest

from ttc_eval.backends import vllm as vllm_backend
from ttc_eval.backends.vllm import EngineFailed, EngineLoop


@dataclass
class _Sample:
    token_ids: list[int]
    finish_reason: str


@dataclass
class _Output:
    request_id: str
    outputs: list[_Sample]
    finished: bool = True


@dataclass
class _Params:
    """What the loop sets on vLLM's SamplingParams."""

    output_kind: Any = None


class _Renderer:
    def render_cmpl(self, prompts: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [dict(p) for p in prompts]


@dataclass
class ScriptedEngine:
    """A request's prompt says its length (``tokens``), whether the engine refuses it
    (``refuse``) or aborts it (``abort``); ``fail_steps`` steps raise."""

    renderer: _Renderer = field(default_factory=_Renderer)
    running: dict[str, dict[str, Any]] = field(default_factory=dict)
    aborted: list[str] = field(default_factory=list)
    steps: int = 0
    fail_steps: int = 0
    batch_sizes: list[int] = field(default_factory=list)

    def add_request(self, rid: str, prompt: dict[str, Any], params: _Params) -> str:
        assert params.output_kind is not None  # the loop asks for final outputs only
        if prompt.get("refuse"):
            raise ValueError("prompt too long for this engine")
        self.running[rid] = {**prompt, "done": 0}
        return rid + "-internal"

    def step(self) -> list[_Output]:
        self.steps += 1
        time.sleep(0.002)
        if self.fail_steps:
            self.fail_steps -= 1
            raise RuntimeError("engine step failed")
        self.batch_sizes.append(len(self.running))
        out = []
        for rid, r in list(self.running.items()):
            r["done"] += 1
            if r.get("abort") or r["done"] >= r["tokens"]:
                del self.running[rid]
                reason = "abort" if r.get("abort") else "length"
                out.append(_Output(rid, [_Sample([r["tokens"]] * r["done"], reason)]))
        return out

    def abort_request(self, ids: list[str]) -> None:
        self.aborted += ids
        for i in ids:
            self.running.pop(i, None)


def _loop(engine: ScriptedEngine) -> EngineLoop:
    return EngineLoop(type("LLM", (), {"llm_engine": engine})())


def _ask(loop: EngineLoop, *tokens: int, **flags: Any) -> list[int]:
    outs = loop.run([({"tokens": t, **flags}, _Params()) for t in tokens])
    return [len(o.outputs[0].token_ids) for o in outs]


def test_callers_on_several_threads_get_their_own_outputs_in_order() -> None:
    engine = ScriptedEngine()
    loop = _loop(engine)
    got: dict[int, list[int]] = {}

    def call(i: int) -> None:
        got[i] = _ask(loop, 30 + i, 5, 12 - i)

    threads = [threading.Thread(target=call, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert got == {i: [30 + i, 5, 12 - i] for i in range(4)}
    # The callers' requests ran in the same steps, not one caller after another.
    assert max(engine.batch_sizes) > 3 and engine.steps < 4 * 30


def test_a_short_request_ends_before_a_long_one_sent_earlier() -> None:
    engine = ScriptedEngine()
    loop = _loop(engine)
    ended: dict[str, float] = {}

    def call(name: str, tokens: int) -> None:
        _ask(loop, tokens)
        ended[name] = time.perf_counter()

    long = threading.Thread(target=call, args=("long", 400))
    long.start()
    while not engine.running:
        time.sleep(0.001)
    call("short", 3)
    assert "long" not in ended
    long.join()
    assert ended["short"] < ended["long"]


def test_a_refused_request_fails_its_caller_only() -> None:
    engine = ScriptedEngine()
    loop = _loop(engine)
    other: list[list[int]] = []
    t = threading.Thread(target=lambda: other.append(_ask(loop, 50)))
    t.start()
    while not engine.running:
        time.sleep(0.001)
    with pytest.raises(ValueError, match="too long"):
        loop.run([({"tokens": 3}, _Params()), ({"tokens": 3, "refuse": True}, _Params())])
    t.join()
    assert other == [[50]]
    # The refused caller's first request, already added, was taken back out of the engine.
    assert len(engine.aborted) == 1 and not engine.running


def test_a_failed_step_fails_every_waiting_caller_and_the_loop_goes_on() -> None:
    engine = ScriptedEngine(fail_steps=1)
    loop = _loop(engine)
    with pytest.raises(RuntimeError, match="engine step failed"):
        _ask(loop, 4, 6)
    assert len(engine.aborted) == 2
    assert _ask(loop, 4) == [4]


def test_an_aborted_request_is_an_error_never_a_sample() -> None:
    """After Ctrl-C vLLM's engine aborts what it holds and returns those requests as
    finished ("abort"): such an output must not reach a caller (or the cache) as a sample."""
    engine = ScriptedEngine()
    loop = _loop(engine)
    with pytest.raises(EngineFailed, match="abort"):
        loop.run([({"tokens": 9}, _Params()), ({"tokens": 2, "abort": True}, _Params())])
    assert engine.aborted and not engine.running  # its other request was dropped too
    assert _ask(loop, 3) == [3]


def test_the_loop_thread_ends_when_idle_and_a_later_call_starts_another(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(vllm_backend, "ENGINE_LOOP_IDLE_S", 0.05)
    loop = _loop(ScriptedEngine())
    assert _ask(loop, 2) == [2]
    first = loop._thread
    assert first is not None
    first.join(timeout=5)
    assert not first.is_alive() and loop._thread is None
    assert _ask(loop, 3) == [3]


def test_a_broken_loop_fails_its_callers_instead_of_leaving_them_waiting() -> None:
    engine = ScriptedEngine()
    loop = _loop(engine)

    # A bar whose update raises: the loop's own code fails while a caller waits.
    class Bar:
        def update(self, n: int) -> None:
            raise AttributeError("a bug in the loop")

        def close(self) -> None:
            pass

    with pytest.raises(EngineFailed, match="a bug in the loop"):
        loop.run([({"tokens": 2}, _Params())], progress=Bar())
    # The thread is gone, and the next call starts a new one.
    assert _ask(loop, 2) == [2]
