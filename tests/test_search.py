"""Beam search / lookahead / DVTS invariants on the scripted fake backend and verifier."""

from __future__ import annotations

import dataclasses
import json
import re
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from conftest import FakePRM

from ttc_eval.backends.fake import FakeBackend
from ttc_eval.cache import CachedBackend
from ttc_eval.config import RunConfig, StrategySpec
from ttc_eval.runner import run
from ttc_eval.strategies._base import ExpansionContext
from ttc_eval.strategies.search import Beam, SearchExpansion
from ttc_eval.types import Completion, Problem, Request, SamplingParams


def _endless(prompt: str, sid: int, seed: int) -> str:
    return f"step {sid} {len(prompt)}\n\nmore"


def _ctx(script: Any = None, max_tokens: int = 64) -> tuple[ExpansionContext, FakeBackend]:
    fake = FakeBackend(script=script) if script else FakeBackend()
    ctx = ExpansionContext(
        backends={"policy": CachedBackend(fake, None)},
        verifier=FakePRM(),
        verifier_role=None,
        params=SamplingParams(temperature=0.7, max_tokens=max_tokens, seed=0),
        render=lambda p: f"<user>{p.question}\n<assistant>",
        messages=lambda p: [{"role": "user", "content": p.question}],
        templates={},
        step_delimiter="\n\n",
        chunk_samples=10_000,
    )
    return ctx, fake


PROBLEMS = [Problem(f"q{i}", f"What is {i} + {i + 2}?", str(2 * i + 2)) for i in range(3)]


@pytest.mark.parametrize(
    ("n", "width", "subtrees"), [(4, 2, 1), (8, 4, 1), (8, 2, 4), (6, 4, 1), (1, 4, 1)]
)
def test_exactly_n_candidates(n: int, width: int, subtrees: int) -> None:
    ctx, _ = _ctx()
    (traces,) = list(SearchExpansion(n, width, subtrees=subtrees).run(PROBLEMS, ctx))
    assert [len(t.candidates) for t in traces] == [n] * len(PROBLEMS)


def test_all_questions_share_one_backend_call_per_round() -> None:
    ctx, fake = _ctx()
    (traces,) = list(SearchExpansion(4, 2).run(PROBLEMS, ctx))
    # The arithmetic script takes two steps: two rounds, two calls, each for every question.
    assert len(fake.calls) == 2
    assert {r.prompt.split("<assistant>")[0] for r in fake.calls[0]} == {
        ctx.render(p).split("<assistant>")[0] for p in PROBLEMS
    }
    assert len(fake.calls[0]) == 4 * 3
    assert all(t.extra["rounds"] == 2 for t in traces)


def test_kept_beams_are_the_top_n_over_m() -> None:
    exp = SearchExpansion(8, 4)
    live = [
        Beam(f"b{i}", 1, 0, score=s) for i, s in enumerate([0.1, 0.9, 0.5, 0.9, 0.2, 0.3, 0.8, 0.0])
    ]
    pairs = exp._select(live, [])
    # Top 2 of 8 (ties to the earlier beam), each expanded 4 times.
    assert [(b.text, k) for b, k in pairs] == [("b1", 4), ("b3", 4)]
    # With 3 finished, 5 open slots: ceil(5/4) = 2 beams, 4 + 1 children.
    done = [Beam("f", 1, 0, finished=True)] * 3
    pairs = exp._select(live[:5], done)
    assert [(b.text, k) for b, k in pairs] == [("b1", 4), ("b3", 1)]


def test_round_cap_and_unfinished_beams_count() -> None:
    ctx, fake = _ctx(script=_endless, max_tokens=10_000)
    (traces,) = list(SearchExpansion(4, 2, max_rounds=3).run(PROBLEMS[:1], ctx))
    assert traces[0].extra["rounds"] == 3 and len(fake.calls) == 3
    assert len(traces[0].candidates) == 4
    assert all(c.finish_reason == "length" for c in traces[0].candidates)


def test_finished_beams_are_kept() -> None:
    ctx, _ = _ctx()
    (traces,) = list(SearchExpansion(4, 2).run(PROBLEMS[:1], ctx))
    for c in traces[0].candidates:
        assert c.text.startswith("We compute") and "\\boxed{" in c.text
        assert len(c.step_scores or ()) == 2


def test_lookahead_costs_k_more_steps_per_live_child() -> None:
    ctx0, fake0 = _ctx(script=_endless, max_tokens=10_000)
    list(SearchExpansion(4, 2, max_rounds=2).run(PROBLEMS[:1], ctx0))
    ctx2, fake2 = _ctx(script=_endless, max_tokens=10_000)
    (traces,) = list(SearchExpansion(4, 2, lookahead=2, max_rounds=2).run(PROBLEMS[:1], ctx2))
    rows0 = sum(len(c) for c in fake0.calls)
    rows2 = sum(len(c) for c in fake2.calls)
    assert rows0 == 8 and rows2 == 8 * 3  # every child rolled out 2 more steps
    assert traces[0].n_generations == 4 * 3
    assert all(r.params.temperature == 0 for call in fake2.calls[1:3] for r in call)


def test_search_is_reproducible_and_ties_deterministic() -> None:
    a = list(SearchExpansion(8, 2).run(PROBLEMS, _ctx()[0]))
    b = list(SearchExpansion(8, 2).run(PROBLEMS, _ctx()[0]))
    assert [[c.text for c in t.candidates] for t in a[0]] == [
        [c.text for c in t.candidates] for t in b[0]
    ]


def test_beam_search_and_dvts_through_the_runner() -> None:
    cfg = RunConfig(
        backend="fake",
        verifier="fake-prm",
        budgets=(2, 4),
        limit=3,
        cache=False,
        run_id="s",
        strategies=(
            StrategySpec("beam_search", {"width": 2}),
            StrategySpec("dvts", {"width": 2}),
            StrategySpec("best_of_n"),
        ),
    )
    out = run(cfg, progress=False, log=lambda _: None)
    traces = [json.loads(x) for x in Path("runs/s/traces.jsonl").read_text().splitlines()]
    keys = {t["expansion"] for t in traces}
    # 2 strategies x 2 budgets, but at N = M = 2 DVTS (one subtree) is the same search as
    # beam search, and the runner expands it once.
    assert sum(k.startswith("search(") for k in keys) == 3
    assert all(
        len(t["candidates"]) == int(re.search(r"[(,]n=(\d+)", t["expansion"]).group(1))  # type: ignore[union-attr]
        for t in traces
        if t["expansion"].startswith("search(")
    )
    got = {(r["strategy"], r["budget"]) for r in out.results["rows"] if r["label_kind"] == "all"}
    assert {("beam_search", 2), ("beam_search", 4), ("dvts", 2), ("dvts", 4)} <= got


def test_search_samples_do_not_depend_on_chunking() -> None:
    """A question's search draws the same samples whichever questions share its chunk (a
    resumed or sharded run forms other chunks): sample ids count within the question."""

    def texts(chunk: int, out: str) -> dict[str, list[str]]:
        cfg = RunConfig(
            backend="fake",
            verifier="fake-prm",
            budgets=(4,),
            limit=4,
            cache=False,
            output_dir=out,
            chunk_samples=chunk,
            strategies=(StrategySpec("beam_search", {"width": 2}),),
        )
        run(cfg, progress=False, log=lambda _: None)
        (run_dir,) = list(Path(out).iterdir())
        rows = [json.loads(x) for x in (run_dir / "traces.jsonl").read_text().splitlines()]
        return {
            t["problem_id"]: [c["text"] for c in t["candidates"]]
            for t in rows
            if t["expansion"].startswith("search(")
        }

    one_by_one, all_at_once = texts(4, "a"), texts(10_000, "b")
    assert len(one_by_one) == 4 and one_by_one == all_at_once


def test_pruned_beams_are_kept_graded_and_reported(capsys: pytest.CaptureFixture[str]) -> None:
    """Each pruned beam is in its trace with its round and score; with lookahead its
    finished rollout is graded (its answer and verdict kept, not its text), and the verifier
    report counts the pruned beams that were right (recounted here against the questions'
    gold answers) and the questions the search got wrong although one was. DVTS prunes per
    subtree; a search stopped by max_rounds prunes nothing in its last round."""
    from ttc_eval.cli import main
    from ttc_eval.tasks import Task, find_task_spec

    strategies = "best_of_n,beam_search:width=2:lookahead=1,beam_search:width=2,dvts:width=2"
    args = ["run", "--backend", "fake", "--task", "arith", "--quiet", "--verifier", "fake-prm",
            "--strategy", strategies, "--budgets", "4", "--limit", "6"]  # fmt: skip
    assert main([*args, "--output-dir", "s"]) == 0
    (run_dir,) = list(Path("s").iterdir())
    gold = {p.id: p.answer for p in Task(find_task_spec("arith")).problems(None)}
    rows = [json.loads(x) for x in (run_dir / "traces.jsonl").read_text().splitlines()]
    expected = {}
    for key in {r["expansion"] for r in rows if r["expansion"].startswith("search(")}:
        mine = [r for r in rows if r["expansion"] == key]
        lookahead = "lookahead=1" in key
        if "subtrees=2" in key:  # DVTS: 2 subtrees of 2 slots each keep 1 of their 2
            assert all(sum(1 for b in r["extra"]["pruned"] if b["round"] == 1) == 2 for r in mine)
            continue
        pruned = [b for r in mine for b in r["extra"]["pruned"]]
        assert pruned and all(b["round"] >= 1 and 0 <= b["score"] <= 1 for b in pruned)
        # Round 1 grows 4 beams and keeps the top 2 of them (width 2): 2 are pruned.
        assert all(sum(1 for b in r["extra"]["pruned"] if b["round"] == 1) == 2 for r in mine)
        assert all("rollout" not in b and ("answer" in b) == ("correct" in b) for b in pruned)
        assert any("correct" in b for b in pruned) == lookahead
        right = 0
        for r in mine:
            for b in r["extra"]["pruned"]:
                if "correct" in b:
                    ok = b["answer"] is not None and b["answer"].strip() == gold[r["problem_id"]]
                    assert b["correct"] == ok
                    right += ok
        expected[lookahead] = (len(pruned), right)
    assert expected[True][1] > 0  # some pruned path was going to be right
    assert main(["verifiers", str(run_dir)]) == 0
    assert "search pruning" in capsys.readouterr().out
    report = json.loads((run_dir / "report" / "verifier.json").read_text())
    by = {"lookahead=1" in r["config"]: r for r in report["pruning"] if "beam" in r["config"]}
    for lookahead, (n, right) in expected.items():
        assert by[lookahead]["pruned_per_question"] * 6 == n
        assert by[lookahead]["pruned_correct"] == right
    assert by[False]["pruned_with_verdict"] == 0 and "lookahead=k" in by[False]["note"]
    assert by[True]["wrong_with_a_correct_pruned_beam"] <= by[True]["n_wrong"]
    # A search of one round prunes nothing: its live beams are its candidates. A run of
    # searches only still reports its pruning.
    one = ["run", "--backend", "fake", "--task", "arith", "--quiet", "--verifier", "fake-prm",
           "--strategy", "beam_search:width=2:max_rounds=1,beam_search:width=2:lookahead=1",
           "--budgets", "4", "--limit", "3", "--output-dir", "one"]  # fmt: skip
    assert main(one) == 0
    (one_dir,) = list(Path("one").iterdir())
    rows = [json.loads(x) for x in (one_dir / "traces.jsonl").read_text().splitlines()]
    assert all(r["extra"]["pruned"] == [] for r in rows if "max_rounds=1," in r["expansion"])
    section = json.loads((one_dir / "results.json").read_text())["verifier_evaluation"]
    assert {r["config"].split("(")[0] for r in section["pruning"]} == {"beam_search"}
    assert "search pruning" in (one_dir / "report" / "tables.md").read_text()


@pytest.mark.parametrize(
    ("n", "width", "subtrees", "max_rounds", "endless"),
    [(4, 2, 1, 40, False), (8, 2, 1, 3, True), (8, 2, 4, 40, False), (6, 4, 1, 2, True)],
)
def test_the_tree_accounts_for_every_beam(
    n: int, width: int, subtrees: int, max_rounds: int, endless: bool
) -> None:
    """Each round's beams are the children the round before gave its kept beams; every
    candidate is a beam that finished (or was cut at the round cap) exactly once; the kept
    beams outscore the pruned ones (one subtree); the page reads this tree."""
    ctx, _ = _ctx(script=_endless if endless else None, max_tokens=10_000 if endless else 64)
    exp = SearchExpansion(n, width, subtrees=subtrees, max_rounds=max_rounds)
    (traces,) = list(exp.run(PROBLEMS, ctx))
    for t in traces:
        tree = t.extra["tree"]
        assert [level["round"] for level in tree] == list(range(1, t.extra["rounds"] + 1))
        given = None
        candidates: list[int] = []
        for level in tree:
            r = level["round"]
            pruned = [p for p in t.extra["pruned"] if p["round"] == r]
            grown = level["kept"] + level["finished"] + level.get("unfinished", []) + pruned
            if given is None:
                assert len(grown) == n and all(b["from"] == -1 for b in grown)
            else:
                # Every kept beam of the round before has exactly its children here.
                counts = [sum(1 for b in grown if b["from"] == i) for i in range(len(given))]
                assert counts == [b["children"] for b in given]
            if subtrees == 1 and level["kept"] and pruned:
                assert min(b["score"] for b in level["kept"]) >= max(p["score"] for p in pruned)
            for b in level["finished"] + level.get("unfinished", []):
                c = t.candidates[b["candidate"]]
                assert c.n_tokens == b["tokens"]
                assert b["score"] == (c.step_scores or (0.0,))[-1]  # aggregation "last"
                candidates.append(b["candidate"])
            assert ("unfinished" in level) == (r == max_rounds)
            given = level["kept"]
        assert sorted(candidates) == list(range(n))
        assert given == []  # the last round keeps nothing: its beams are candidates


def _uneven(prompt: str, sid: int, seed: int) -> str:
    """q0 answers in its first step; the others take three steps."""
    if "What is 0 + 2?" in prompt:
        return "We compute 0 + 2 = \\boxed{2}"
    done = prompt.split("<assistant>", 1)[1].count("step ")
    return "step one\n\nmore" if done < 2 else "so \\boxed{7}"


def test_a_question_that_ends_early_has_a_shorter_tree() -> None:
    """In one chunk, q0's search ends in round 1 while the others go on: its tree has one
    round and every candidate; the others' trees have all their rounds."""
    ctx, _ = _ctx(script=_uneven)
    (traces,) = list(SearchExpansion(4, 2).run(PROBLEMS, ctx))
    first, *others = traces
    # Its own rounds, not the chunk's (3): the same whichever questions share its chunk.
    assert first.extra["rounds"] == 1
    assert [level["round"] for level in first.extra["tree"]] == [1]
    assert [b["candidate"] for b in first.extra["tree"][0]["finished"]] == [0, 1, 2, 3]
    assert first.extra["pruned"] == []
    for t in others:
        tree = t.extra["tree"]
        assert [level["round"] for level in tree] == [1, 2, 3]
        assert sorted(b["candidate"] for level in tree for b in level["finished"]) == [0, 1, 2, 3]


class ConcurrentFake(FakeBackend):
    """The scripted backend declared concurrent, recording which thread made each call; the
    first ``meet`` calls wait for each other (a barrier), which only questions searched at
    the same time can pass."""

    concurrent = True

    def __init__(self, meet: int = 0, fail_on: str | None = None, **kw: Any) -> None:
        super().__init__(**kw)
        self.threads: list[str] = []
        self.barrier = threading.Barrier(meet, timeout=10) if meet else None
        self.fail_on = fail_on

    def generate(self, requests: Sequence[Request]) -> list[list[Completion]]:
        self.threads.append(threading.current_thread().name)
        if self.fail_on and any(self.fail_on in r.prompt for r in requests):
            raise RuntimeError("engine failed on one question")
        if self.barrier is not None and len(self.threads) <= self.barrier.parties:
            self.barrier.wait()
        return super().generate(requests)


def _concurrent_ctx(
    fake: FakeBackend, chunk_samples: int = 10_000, cache: Any = None
) -> ExpansionContext:
    ctx, _ = _ctx()
    backends = {"policy": CachedBackend(fake, cache)}
    return dataclasses.replace(ctx, backends=backends, chunk_samples=chunk_samples)


SIX = [Problem(f"q{i}", f"What is {i} + {i + 2}?", str(2 * i + 2)) for i in range(6)]


@pytest.mark.parametrize(
    ("width", "subtrees", "lookahead", "chunk_samples", "script"),
    [
        (2, 1, 0, 10_000, None),
        (2, 2, 0, 8, None),  # DVTS, two questions per chunk
        (2, 1, 1, 4, _endless),  # lookahead, one question per chunk, the round cap
        (2, 1, 0, 10_000, _uneven),  # questions that end in other rounds
    ],
)
def test_a_concurrent_backend_searches_questions_apart_with_the_same_traces(
    width: int, subtrees: int, lookahead: int, chunk_samples: int, script: Any
) -> None:
    """On a backend declared concurrent each question's tree grows on its own thread, and
    every trace (candidates, scores, costs, tree, rounds) equals the lock-step search's."""
    kw = {"script": script} if script else {}
    exp = SearchExpansion(4, width, lookahead=lookahead, subtrees=subtrees, max_rounds=3)
    lockstep = [
        t for c in exp.run(SIX, _concurrent_ctx(FakeBackend(**kw), chunk_samples)) for t in c
    ]
    fake = ConcurrentFake(**kw)
    chunks = list(exp.run(SIX, _concurrent_ctx(fake, chunk_samples)))
    assert [len(c) for c in chunks] == [
        len(c) for c in exp.run(SIX, _concurrent_ctx(FakeBackend(**kw), chunk_samples))
    ]
    assert [t for c in chunks for t in c] == lockstep
    # Every call came from a search thread and holds one question's beams only.
    assert all(name.startswith("ttc-eval-search") for name in fake.threads)
    for call in fake.calls:
        assert len({r.prompt.split("<assistant>")[0] for r in call}) == 1


def test_concurrent_questions_are_in_flight_together() -> None:
    """Six questions' first steps are all inside the backend at once: a lock-step search,
    or one question at a time, would never pass the six-party barrier."""
    fake = ConcurrentFake(meet=6)
    (traces,) = list(SearchExpansion(4, 2).run(SIX, _concurrent_ctx(fake)))
    assert len(traces) == 6 and len(set(fake.threads[:6])) == 6


def test_one_failing_question_fails_the_search_and_stops_the_others() -> None:
    fake = ConcurrentFake(fail_on="What is 2 + 4?", script=_endless)
    with pytest.raises(RuntimeError, match="engine failed"):
        list(SearchExpansion(4, 2, max_rounds=40).run(SIX, _concurrent_ctx(fake)))
    # The others stopped at their next round instead of running their 40 rounds.
    assert len(fake.calls) < 6 * 10
    assert not [t for t in threading.enumerate() if t.name.startswith("ttc-eval-search")]


def test_concurrent_searches_share_the_generation_cache(tmp_path: Path) -> None:
    """Questions on several threads write one SQLite cache; a second run reads every sample
    back from it and gives the same traces."""
    from ttc_eval.cache import GenerationCache

    cache = GenerationCache(tmp_path / "gen.sqlite")
    first_ctx = _concurrent_ctx(ConcurrentFake(), cache=cache)
    first = list(SearchExpansion(4, 2).run(SIX, first_ctx))
    again_fake = ConcurrentFake()
    again_ctx = _concurrent_ctx(again_fake, cache=GenerationCache(tmp_path / "gen.sqlite"))
    assert list(SearchExpansion(4, 2).run(SIX, again_ctx)) == first
    policy = again_ctx.backend
    assert isinstance(policy, CachedBackend) and policy.generated_samples == 0
    assert policy.cached_samples == first_ctx.backend.generated_samples > 0  # type: ignore[attr-defined]
    assert again_fake.calls == []


class CountingPRM(FakePRM):
    """The fake PRM, recording how many threads are inside it at once; ``concurrent``
    declares it safe from several threads (it then reports each call's tokens), and its
    first three calls wait for each other (a barrier only calls made together pass)."""

    def __init__(self, concurrent: bool) -> None:
        super().__init__()
        self._concurrent = concurrent
        self.calls = self.inside = self.most_inside = 0
        self._lock = threading.Lock()
        self.barrier = threading.Barrier(3, timeout=10)

    @property
    def concurrent(self) -> bool:
        return self._concurrent

    def score(self, problem: Problem, solutions: Any) -> list[tuple[float, ...]]:
        with self._lock:
            self.calls += 1
            first_three = self.calls <= 3
            self.inside += 1
            self.most_inside = max(self.most_inside, self.inside)
        try:
            if self._concurrent and first_three:
                self.barrier.wait()
            return super().score(problem, solutions)
        finally:
            with self._lock:
                self.inside -= 1

    def score_counted(self, problem: Problem, solutions: Any) -> tuple[Any, int]:
        # This call's own count (one per word, as the fake counts), not the shared total.
        return self.score(problem, solutions), sum(len(s.text.split()) for s in solutions)


@pytest.mark.parametrize("concurrent", [True, False])
def test_verifier_calls_overlap_only_when_the_verifier_allows_it(concurrent: bool) -> None:
    """A verifier declared concurrent is called from several questions' threads at once and
    each question counts the tokens of its own calls; any other is called one at a time.
    Either way every trace, verifier tokens included, equals the lock-step search's."""
    ctx = _concurrent_ctx(FakeBackend())
    lockstep = list(SearchExpansion(4, 2).run(SIX, dataclasses.replace(ctx, verifier=FakePRM())))
    prm = CountingPRM(concurrent)
    ctx = _concurrent_ctx(ConcurrentFake())
    traces = list(SearchExpansion(4, 2).run(SIX, dataclasses.replace(ctx, verifier=prm)))
    assert traces == lockstep
    assert sum(t.verifier_tokens for t in traces[0]) == prm.tokens_read > 0
    if concurrent:
        assert not prm.barrier.broken and prm.most_inside >= 3
    else:
        assert prm.most_inside == 1
