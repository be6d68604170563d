"""Sequential revisions on the scripted fake backend: prompts, shapes from one pool, accounting."""

from __future__ import annotations

import json
import re
from dataclasses import replace
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_search import FakePRM

from ttc_eval.backends._base import Backend
from ttc_eval.backends.fake import FakeBackend, _u
from ttc_eval.cache import CachedBackend
from ttc_eval.cli import main
from ttc_eval.pipeline import grade_traces
from ttc_eval.registry import STRATEGIES
from ttc_eval.strategies._base import ExpansionContext
from ttc_eval.strategies.revisions import (
    RevisionExpansion,
    Revisions,
    revision_messages,
)
from ttc_eval.tasks import Task, find_task_spec
from ttc_eval.types import Problem, SamplingParams, Trace

PROBLEMS = [Problem(f"q{i}", f"What is {i} + {i + 2}?", str(2 * i + 2)) for i in range(3)]
TASK = Task(find_task_spec("arith"))


def _script(prompt: str, sid: int, seed: int) -> str:
    """A unique text per (prompt, sample), answering one of a few values (so votes split)."""
    u = _u(prompt, sid, seed)
    (a, b) = map(int, re.findall(r"What is (-?\d+) \+ (-?\d+)\?", prompt)[-1])
    return f"try {u:.6f}\n\nSo the answer is \\boxed{{{a + b + int(u * 3)}}}"


def _ctx(reviser: FakeBackend | None = None) -> tuple[ExpansionContext, FakeBackend]:
    fake = FakeBackend(script=_script)
    backend = CachedBackend(fake, None)
    revision_backend: Backend = CachedBackend(reviser, None) if reviser else backend
    # The fake backend's chat rendering: the reviser renders the task's messages wrapped in
    # the built-in revision template (DEFAULT_REVISION_TEMPLATE).
    ctx = ExpansionContext(
        backends={"policy": backend, "reviser": revision_backend},
        verifier=FakePRM(),
        verifier_role=None,
        params=SamplingParams(temperature=0.7, max_tokens=64, seed=0),
        render=lambda p: f"<user>{p.question}\n<assistant>",
        messages=lambda p: [{"role": "user", "content": p.question}],
        templates={},
        step_delimiter="\n\n",
        chunk_samples=10_000,
    )
    return ctx, fake


def _pool(chains: int, length: int, ctx: ExpansionContext | None = None) -> list[Trace]:
    ctx = ctx or _ctx()[0]
    exp = RevisionExpansion(chains, length, 0.7, "policy")
    traces = [t for chunk in exp.run(PROBLEMS, ctx) for t in chunk]
    return grade_traces(TASK, traces, {p.id: p for p in PROBLEMS})


def test_revision_prompt_holds_the_last_four_attempts_in_order() -> None:
    ctx, fake = _ctx()
    (trace, *_) = _pool(2, 7, ctx)
    assert len(fake.calls) == 7  # one call per round, all chains of all questions
    L = 7
    for t in range(1, L):
        call = fake.calls[t]
        assert len(call) == 2 * len(PROBLEMS)
        prompt = call[0].prompt  # question q0, chain 0
        chain = [trace.candidates[k].text for k in range(t)]
        shown = list(range(max(0, t - 4), t))
        numbers = [int(n) for n in re.findall(r"Attempt (\d+):", prompt)]
        assert numbers == [k + 1 for k in shown]
        positions = [prompt.index(chain[k].strip()) for k in shown]
        assert positions == sorted(positions)
        for k in set(range(t)) - set(shown):
            assert chain[k].split("\n")[0] not in prompt
        assert "What is 0 + 2?" in prompt


def test_template_keeps_latex_braces_and_requires_its_fields() -> None:
    msgs = revision_messages(
        [{"role": "system", "content": "s"}, {"role": "user", "content": "Q {x}"}],
        ["a1", "a2"],
        "{question} | {attempts} | \\boxed{}",
    )
    assert msgs[0] == {"role": "system", "content": "s"}
    assert msgs[1]["content"] == "Q {x} | Attempt 1:\na1\n\nAttempt 2:\na2 | \\boxed{}"


@settings(max_examples=25, deadline=None)
@given(
    p=st.integers(1, 4),
    s=st.integers(1, 4),
    select=st.sampled_from(["majority", "verifier", "last"]),
)
def test_a_shape_from_the_pool_selects_what_running_it_directly_selects(
    p: int, s: int, select: str
) -> None:
    pool = _pool(4, 4)
    direct = _pool(p, s)
    strategy = Revisions(select=select, sequential=s)
    for big, small in zip(pool, direct, strict=True):
        first_group = strategy.select(big, p * s)[0]
        (only,) = strategy.select(small, p * s)
        # Pool positions differ between the two layouts; the choice itself must not.
        assert replace(first_group, index=None, read=()) == replace(only, index=None, read=())
        chosen = {c.index: c.text for c in big.candidates}.get(first_group.index)
        assert chosen == {c.index: c.text for c in small.candidates}.get(only.index)
        # The pool's group 1 holds the same attempts as the direct run.
        picked = [big.candidates[c * 4 + t].text for c in range(p) for t in range(s)]
        assert picked == [c.text for c in small.candidates]


def test_shapes_and_accounting_from_one_pool() -> None:
    (trace, *_) = _pool(4, 4)
    assert trace.n_generations == 16 and len(trace.candidates) == 16
    assert trace.generated_tokens == sum(c.n_tokens for c in trace.candidates)
    # Prompt accounting, in the cost record: attempt t > 0 of a chain was sent a revision
    # prompt of its own; first attempts share the question's prompt.
    revision_prompt_tokens = sum(
        c.cost.prompt_tokens for c in trace.candidates if c.index % 4 and c.cost is not None
    )
    assert revision_prompt_tokens > 0
    first = trace.prompt_tokens
    assert trace.cost is not None
    assert trace.cost.prompt_tokens == 4 * first + revision_prompt_tokens
    assert revision_prompt_tokens > 12 * first  # revision prompts are longer
    shapes = STRATEGIES.create("revisions", select="majority").variants([4])
    assert [v.shape(4) for v in shapes] == ["4x1", "2x2", "1x4"]
    for v in shapes:
        p, s = map(int, v.shape(4).split("x"))
        sels = v.select(trace, 4)
        assert len(sels) == 4 // p  # all disjoint groups of chains
        for g, sel in enumerate(sels):
            used = [
                trace.candidates[c * 4 + t] for c in range(g * p, (g + 1) * p) for t in range(s)
            ]
            assert sel.n_generations == 4
            assert sel.n_tokens == sum(c.n_tokens for c in used)
    # "last" votes over each chain's last attempt of the shape.
    (sel,) = Revisions(select="last", sequential=2).select(trace, 2 * 2)[:1]
    lasts = [trace.candidates[c * 4 + 1] for c in range(2)]
    assert sel.answer in {c.vote_key for c in lasts}


def test_the_revision_model_writes_every_revision() -> None:
    reviser = FakeBackend(model="reviser", script=_script)
    ctx, policy = _ctx(reviser)
    _pool(3, 4, ctx)
    assert len(policy.calls) == 1 and all(r.sample_ids == (0, 1, 2) for r in policy.calls[0])
    assert len(reviser.calls) == 3
    assert all("Attempt 1:" in r.prompt for call in reviser.calls for r in call)


def test_revisions_through_the_cli() -> None:
    args = [
        "run", "--backend", "fake", "--task", "arith", "--quiet",
        "--strategy", "revisions,revisions:select=verifier,revisions:select=last",
        "--budgets", "4", "--limit", "2",
    ]  # fmt: skip
    assert main(args) == 0
    (run_dir,) = list(Path("runs").iterdir())
    results = json.loads((run_dir / "results.json").read_text())
    assert results["compute"]["by_expansion"] == {
        "revisions(chains=4,length=4,reviser=policy,temperature=0.7)": {
            "questions": 2,
            "samples": 32,
        }
    }
    rows = [r for r in results["rows"] if r["label_kind"] == "all" and r["strategy"] == "revisions"]
    by_select: dict[str, set[str]] = {}
    for r in rows:
        by_select.setdefault(r["strategy_args"]["select"], set()).add(r["shape"])
    assert by_select == {k: {"4x1", "2x2", "1x4"} for k in ("majority", "verifier", "last")}
    assert "by shape" in (run_dir / "report" / "tables.md").read_text()
    log = [
        json.loads(x)
        for x in (run_dir / "log.jsonl").read_text().splitlines()
        if json.loads(x).get("event") != "start"
    ]
    assert log[-1]["generated_samples"] == 32
    lb = (Path("leaderboards") / "arith.csv").read_text()
    assert ",2x2," in lb


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--strategy", "revisions:select=best"], "choose one of majority, verifier, last"),
        (["--strategy", "revisions:sequential=0"], "sequential must be a positive integer"),
        (["--revision-template", "missing.txt"], "no such file"),
        (["--revision-template", "bad.txt"], "lacks {attempts}"),
    ],
)
def test_bad_revision_settings_exit_2(
    extra: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    Path("bad.txt").write_text("{question} but no attempts")
    args = ["run", "--backend", "fake", "--task", "arith", "--quiet", "--limit", "1"]
    if "--strategy" not in extra:
        args += ["--strategy", "revisions"]
    assert main([*args, *extra]) == 2
    assert message in capsys.readouterr().err


@pytest.mark.parametrize(
    ("spec", "labels"),
    [
        # Labels as ttc-eval 0.1.0 (e2e2ab0) wrote them: old runs must keep their rows.
        ("revisions:select=verifier:aggregation=last", ["revisions(select=verifier,sequential=1)"]),
        ("revisions:aggregation=min", ["revisions(select=majority,sequential=1)"]),
        (
            "revisions:select=verifier:aggregation=min",
            ["revisions(aggregation=min,select=verifier,sequential=1)"],
        ),
        ("revisions:sequential=2:chains=4", ["revisions(chains=4,select=majority,sequential=2)"]),
    ],
)
def test_labels_are_those_of_earlier_versions(spec: str, labels: list[str]) -> None:
    from ttc_eval.config import StrategySpec

    parsed = StrategySpec.parse(spec)
    variants = STRATEGIES.create(parsed.name, **parsed.args).variants([1])
    assert [v.label() for v in variants] == labels
