"""Thinking delimiters and the ``thinking_budget`` strategy on scripted thinking traces (fast:
a fake backend whose outputs are known, so every cut, forced answer and "Wait" is checked
against numbers worked out here from the script, not from ttc-eval's code)."""

from __future__ import annotations

import json
import re
from dataclasses import replace
from pathlib import Path
from typing import Any, ClassVar

import pytest

from ttc_eval.backends.fake import FakeBackend
from ttc_eval.cli import main
from ttc_eval.registry import backend
from ttc_eval.tasks import Task, find_task_spec
from ttc_eval.thinking import Thinking, parse_thinking
from ttc_eval.types import Request, SamplingParams

LENGTHS = (3, 6, 12, 20)
"""Thinking words of samples 0..3 before they close (each word is one fake token)."""
ENOUGH = 8
"""A forced answer is right when at least this many words of thinking came before it."""


def _gold(prompt: str) -> int:
    a, op, b = re.findall(r"What is (-?\d+) ([+\-×]) (-?\d+)\?", prompt)[-1]
    return int(a) + int(b) if op == "+" else int(a) - int(b) if op == "-" else int(a) * int(b)


def _scripted(prompt: str, sample_id: int, seed: int) -> str:
    """Open thinking: sample i thinks LENGTHS[i % 4] words ("hmm") and closes, then answers
    right when i is even. A forced answer (the prompt ends in a box) is right after
    ENOUGH words of thinking. After a forced "Wait" the sample thinks 4 more words and
    closes again."""
    gold = _gold(prompt)
    output = prompt.partition("<assistant>\n")[2]
    thought = output.split("</think>")[0].split().count("hmm")
    if output.endswith("\\boxed{"):
        return f"{gold if thought >= ENOUGH else gold + 1}}}$"
    if output.endswith("</think>"):
        return f" The answer is \\boxed{{{gold if sample_id % 2 == 0 else gold + 7}}}"
    if output.endswith("Wait"):
        return " " + "hmm " * 4 + "</think> never read"
    return "hmm " * LENGTHS[sample_id % 4] + "</think> never read"


@backend("fake-thinking")
class ThinkingBackend(FakeBackend):
    """The fake backend with :func:`_scripted`; keeps every request it was sent."""

    requests: ClassVar[list[list[Request]]] = []

    def __init__(self, model: str = "fake", progress: bool = False, **kw: Any) -> None:
        super().__init__(model, script=_scripted)

    def render(self, messages):  # type: ignore[no-untyped-def]
        # A line break after the turn marker (as real chat templates have), so that the
        # first thinking word is a token of its own.
        return super().render(messages) + "\n"

    def generate(self, requests):  # type: ignore[no-untyped-def]
        ThinkingBackend.requests.append(list(requests))
        return super().generate(requests)


def _run(*extra: str, budgets: str = "1,4", thinking_budgets: str = "2,4,8,16") -> Path:
    ThinkingBackend.requests.clear()
    args = ["run", "--backend", "fake-thinking", "--task", "arith", "--quiet", "--verifier",
            "none", "--strategy", "thinking_budget", "--thinking", "open", "--budgets",
            budgets, "--thinking-budgets", thinking_budgets, "--limit", "3", "--output-dir",
            "r", *extra]  # fmt: skip
    assert main(args) == 0
    (run_dir,) = list(Path("r").iterdir())
    return run_dir


def _rows(run_dir: Path) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = json.loads((run_dir / "results.json").read_text())["rows"]
    return [r for r in rows if r["label_kind"] == "all"]


def _traces(run_dir: Path) -> list[dict[str, Any]]:
    lines = (run_dir / "traces.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines]


def _expected(b: int) -> list[tuple[bool, int]]:
    """(right, thinking tokens) of samples 0..3 at thinking budget b, from the script: one
    that closed within b answers itself (right when even), any other is cut at b."""
    out = []
    for i, length in enumerate(LENGTHS):
        if length <= b:
            out.append((i % 2 == 0, length))
        else:
            out.append((b >= ENOUGH, b))
    return out


def test_one_trace_per_sample_is_cut_and_answered_at_every_budget() -> None:
    """Each sample thinks once (one request per question in the first call, capped at the
    largest budget and stopped at </think>); at each budget a sample that closed within it
    keeps its own answer and any other is cut after b tokens and forced to answer; rows
    report the accuracy and the measured thinking tokens the script implies."""
    run_dir = _run()
    first = ThinkingBackend.requests[0]
    assert len(first) == 3 and all(r.sample_ids == (0, 1, 2, 3) for r in first)
    assert all(r.params.max_tokens == 16 and r.params.stop == ("</think>",) for r in first)
    rows = _rows(run_dir)
    for b in (2, 4, 8, 16):
        expected = _expected(b)
        (row,) = [r for r in rows if r["config"] == f"thinking_budget(budget={b})"
                  and r["budget"] == 1]  # fmt: skip
        assert row["accuracy"] == pytest.approx(sum(r for r, _ in expected) / 4)
        assert row["shape"] == f"1x{b}"
        thinking = row["thinking"]
        assert thinking["budget"] == b
        assert thinking["tokens_max"] == max(t for _, t in expected) <= b
        assert thinking["tokens_mean"] == pytest.approx(sum(t for _, t in expected) / 4)
        assert thinking["over_budget"] == 0 and thinking["unclosed_rate"] == 0
    # Forced answers: the prompt is the cut thinking, the close and the answer prompt.
    forced = [r for call in ThinkingBackend.requests for r in call
              if r.prompt.endswith("\\boxed{")]  # fmt: skip
    # Per question: b=2 cuts all 4 samples, b=4 cuts 3, b=8 cuts 2, b=16 cuts 1.
    assert len(forced) == 3 * (4 + 3 + 2 + 1)
    cut = next(r for r in forced if r.prompt.count("hmm") == 2)
    assert cut.prompt.endswith("<assistant>\nhmm hmm </think>\n\nThe final answer is $\\boxed{")
    assert all(r.params.max_tokens == 16 for r in forced)
    # One trace per question serves every budget.
    traces = _traces(run_dir)
    assert len(traces) == 3 and {len(t["candidates"]) for t in traces} == {4 * 4}
    assert traces[0]["extra"]["forced"] == [4, 3, 2, 1]


def test_costs_charge_what_a_capped_run_spends() -> None:
    """Each choice at budget b is charged b thinking tokens at most, its answer and what the
    forcing inserted; the trace records what the engine really generated, once."""
    run_dir = _run()
    rows = {(r["config"], r["budget"]): r for r in _rows(run_dir)}
    # b=2: every sample cut after 2 words, then a one-word forced answer, and the forcing
    # inserted 6 words ("</think>", "The final answer is $\boxed{").
    cost = rows[("thinking_budget(budget=2)", 1)]["cost"]
    assert cost["generated_tokens"] == 3
    assert rows[("thinking_budget(budget=2)", 1)]["thinking"]["answer_tokens_mean"] == 1
    # b=16: 3, 6 and 12 words close within it (the word "</think>" and a 4-word answer of
    # their own); 20 is cut at 16 and answers in one word.
    cost16 = rows[("thinking_budget(budget=16)", 1)]["cost"]
    assert cost16["generated_tokens"] == ((3 + 5) + (6 + 5) + (12 + 5) + 17) / 4
    # Computed prompt beyond the question's own: 6 inserted words for the one forced sample.
    question = cost["prompt_tokens_computed"] - 6
    assert cost16["prompt_tokens_computed"] == pytest.approx(question + 6 / 4)
    trace = _traces(run_dir)[0]
    # Really generated: the traces once (3+1, 6+1, 12+1, 16), 3 own answers of 4 words,
    # 4 + 3 + 2 + 1 forced one-word answers.
    assert trace["generated_tokens"] == 40 + 12 + 10
    assert trace["cost"]["generated_tokens"] == 62
    assert trace["cost"]["thinking_tokens"] == 3 + 6 + 12 + 16
    results = json.loads((run_dir / "results.json").read_text())
    assert results["compute"]["generated_tokens"] == 3 * 62


def test_thinking_settings_round_trip_and_keep_old_run_ids() -> None:
    from ttc_eval.config import RunConfig

    config = RunConfig(thinking="open", thinking_budgets=(64, 16, 16))
    assert config.thinking_budgets == (16, 64)
    assert RunConfig.from_dict(config.to_dict()) == config
    assert RunConfig.from_dict({"thinking_budgets": 32}).thinking_budgets == (32,)
    plain = RunConfig()
    assert "thinking" not in plain.identity() and "thinking_budgets" not in plain.identity()
    assert RunConfig(thinking="none").identity() == plain.identity()
    assert config.identity()["thinking"] == "open"


def test_majority_over_parallel_samples_at_each_budget() -> None:
    """Budget N votes over N samples' answers at the same thinking budget."""
    run_dir = _run()
    (row,) = [r for r in _rows(run_dir) if r["config"] == "thinking_budget(budget=16)"
              and r["budget"] == 4]  # fmt: skip
    assert row["shape"] == "4x16"
    # At 16 every sample closed within budget except the one of 20 words (cut, 16 >= 8:
    # right): answers right, wrong(+7), right, right: the right one wins.
    assert row["accuracy"] == 1.0
    assert row["mean_generations"] == 4


def test_extend_mode_appends_wait_and_counts_it() -> None:
    """extend=2: a sample that closes before the largest budget has its close replaced by
    "Wait" and thinks on (4 words a time), at most twice; the waits are counted per sample
    and their tokens charged."""
    run_dir = _run("--strategy", "thinking_budget:extend=2")
    traces = _traces(run_dir)
    # Samples of 3, 6, 12 and 20 words against a largest budget of 16: 3 -> 7 -> 11 (two
    # waits), 6 -> 10 -> 14 (two), 12 -> 16 (one: the cap is reached), 20 (none).
    assert traces[0]["extra"]["waits"] == [2, 2, 1, 0]
    assert traces[0]["extra"]["thinking_tokens"] == [11, 14, 16, 16]
    assert traces[0]["extra"]["wait_tokens"] == [2, 2, 1, 0]  # one fake token per "Wait"
    waited = [r for call in ThinkingBackend.requests for r in call if r.prompt.endswith("Wait")]
    assert len(waited) == 3 * 5
    # At b=16 the first sample closed within (11 <= 16) after its 2 waits: its own answer,
    # right; the text holds both waits.
    cands = traces[0]["candidates"]
    own = cands[3 * 4 + 0]
    assert own["text"].count("Wait") == 2 and "The answer is" in own["text"]
    assert own["cost"]["thinking_tokens"] == 11
    assert own["cost"]["prompt_tokens_computed"] == 2  # the two waits' tokens


def test_unclosed_thinking_is_never_graded() -> None:
    """A sample whose thinking never closes has no answer, even when its thinking holds the
    right boxed answer; once it closes, only what follows the close is read."""
    spec = find_task_spec("arith")
    task = Task(spec, thinking=parse_thinking("open"))
    assert task.extract("so \\boxed{4} maybe") is None
    assert task.extract("so \\boxed{4} maybe </think> final \\boxed{5}") == "5"
    assert task.extract("\\boxed{4} </think> no box here") is None
    tags = Task(spec, thinking=parse_thinking("tags"))
    assert tags.extract("<think> \\boxed{4}") is None
    assert tags.extract("<think> \\boxed{4} </think> \\boxed{6}") == "6"
    assert tags.extract("\\boxed{6}") == "6"  # no thinking block at all
    plain = Task(spec)
    assert plain.extract("so \\boxed{4} maybe") == "4"


def test_unclosed_thinking_is_counted_in_a_majority_run() -> None:
    """Majority over samples whose thinking never closes (the max-token cap cuts them):
    none is graded, every row reports the unclosed rate, and candidates say so."""
    ThinkingBackend.requests.clear()
    args = ["run", "--backend", "fake-thinking", "--task", "arith", "--quiet", "--verifier",
            "none", "--strategy", "majority", "--thinking", "open", "--budgets", "4",
            "--max-tokens", "10", "--limit", "2", "--output-dir", "r"]  # fmt: skip
    assert main(args) == 0
    (run_dir,) = list(Path("r").iterdir())
    traces = _traces(run_dir)
    for t in traces:
        closed = [c["thinking_closed"] for c in t["candidates"]]
        # 3 and 6 words close within 10 tokens; 12 and 20 do not.
        assert closed == [True, True, False, False]
        for c in t["candidates"]:
            if not c["thinking_closed"]:
                assert c["answer"] is None and c["correct"] is False
        assert [c["cost"]["thinking_tokens"] for c in t["candidates"]] == [3, 6, 10, 10]
    (row,) = [r for r in _rows(run_dir) if r["config"] == "majority" and r["budget"] == 4]
    assert row["thinking"]["unclosed_rate"] == 0.5
    assert row["thinking"]["budget"] is None and row["thinking"]["tokens_max"] == 10


def test_thinking_split_counts_tokens_before_the_close() -> None:
    t = Thinking("", "</think>")
    text = "a b c </think> d"
    ends = (2, 4, 6, 14, 16)
    assert t.split(text) == (6, 14)
    assert t.thinking_tokens(text, ends, 5) == 3
    assert t.thinking_tokens("a b c", (2, 4, 5), 3) == 3  # unclosed: all of it
    custom = parse_thinking("<reasoning>,</reasoning>")
    assert custom == Thinking("<reasoning>", "</reasoning>")


def test_bad_thinking_settings_are_usage_errors(capsys: pytest.CaptureFixture[str]) -> None:
    base = ["run", "--backend", "fake-thinking", "--task", "arith", "--quiet", "--verifier",
            "none", "--limit", "1", "--output-dir", "r"]  # fmt: skip
    assert main([*base, "--strategy", "thinking_budget", "--thinking", "open"]) == 2
    assert "--thinking-budgets" in capsys.readouterr().err
    assert main([*base, "--strategy", "thinking_budget", "--thinking-budgets", "8"]) == 2
    assert "pass --thinking tags" in capsys.readouterr().err
    assert main([*base, "--strategy", "majority", "--thinking-budgets", "8"]) == 2
    assert "thinking_budget" in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:
        main([*base, "--thinking", "sometimes"])
    assert e.value.code == 2
    assert "OPEN,CLOSE" in capsys.readouterr().err
    assert not Path("r").exists()


def test_engine_overrun_is_flagged_and_the_cut_still_holds() -> None:
    """An engine that returns more tokens than the cap it was given (vLLM #39573): the
    sample is listed as an overrun and no candidate holds more thinking than its budget."""

    class Overrun(ThinkingBackend):
        def generate(self, requests):  # type: ignore[no-untyped-def]
            widened = [
                Request(r.prompt, replace(r.params, max_tokens=99), r.sample_ids)
                if r.params.stop == ("</think>",)
                else r
                for r in requests
            ]
            return super().generate(widened)

    backend("fake-overrun")(Overrun)
    args = ["run", "--backend", "fake-overrun", "--task", "arith", "--quiet", "--verifier",
            "none", "--strategy", "thinking_budget", "--thinking", "open", "--budgets", "4",
            "--thinking-budgets", "4,8", "--limit", "1", "--output-dir", "r"]  # fmt: skip
    assert main(args) == 0
    (run_dir,) = list(Path("r").iterdir())
    (trace,) = _traces(run_dir)
    # 12 and 20 words against a cap of 8: the 12 words closed beyond it, so that sample does
    # not keep its own answer at 8 but is cut there like the other.
    assert trace["extra"]["overrun"] == [2, 3]
    assert trace["extra"]["closed"] == [True, True, False, False]
    assert all(c["cost"]["thinking_tokens"] <= 8 for c in trace["candidates"])
    for row in _rows(run_dir):
        assert row["thinking"]["tokens_max"] <= row["thinking"]["budget"]


@pytest.mark.slow
def test_default_model_thinking_sweep_from_one_trace(tmp_path: Path) -> None:
    """The embedded model behind a tiny chat template that opens a think block (so its whole
    output is thinking: --thinking open): one trace per sample serves the sweep 16..128;
    each cut sample holds exactly the first b tokens a run capped at b generates from the
    same sample, closed and forced to answer; rows report thinking tokens within budget."""
    from ttc_eval.backends.hf import HFBackend
    from ttc_eval.models import resolve_model

    source = Path(resolve_model("smollm2-135m"))
    model = tmp_path / "smollm2-think"
    model.mkdir()
    for f in source.iterdir():
        if f.name != "chat_template.jinja":
            (model / f.name).symlink_to(f)
    template = (source / "chat_template.jinja").read_text()
    opened = "'<|im_start|>assistant\n<think>\n'"
    assert "'<|im_start|>assistant\n'" in template
    (model / "chat_template.jinja").write_text(
        template.replace("'<|im_start|>assistant\n'", opened)
    )
    args = ["run", "--model", str(model), "--task", "arith", "--quiet", "--verifier", "none",
            "--strategy", "thinking_budget", "--thinking", "open", "--thinking-budgets",
            "16,32,64,128", "--budgets", "1,2", "--limit", "3", "--output-dir", "r"]  # fmt: skip
    assert main(args) == 0
    (run_dir,) = list(Path("r").iterdir())
    traces = _traces(run_dir)
    assert len(traces) == 3
    hf = HFBackend(str(model), progress=False)
    messages = [{"role": "user", "content": "What is 1 + 1?"}]
    assert hf.render(messages).endswith("<|im_start|>assistant\n<think>\n")
    checked = 0
    for t in traces:
        extra = t["extra"]
        assert extra["budgets"] == [16, 32, 64, 128] and extra["samples"] == 2
        assert len(t["candidates"]) == 2 * 4
        assert extra["overrun"] == []
        for j, b in enumerate(extra["budgets"]):
            for i in range(2):
                c = t["candidates"][j * 2 + i]
                if extra["thinking_tokens"][i] > b or not extra["closed"][i]:
                    head, sep, _ = c["text"].partition("</think>\n\nThe final answer is $\\boxed{")
                    assert sep and c["thinking_closed"] is True
                    assert c["cost"]["thinking_tokens"] == min(b, extra["thinking_tokens"][i])
                    if checked < 2 and extra["thinking_tokens"][i] > b:
                        # The same sample capped at b by the engine: the same b tokens.
                        params = SamplingParams(temperature=0.7, max_tokens=b, stop=("</think>",))
                        from ttc_eval.config import RunConfig
                        from ttc_eval.pipeline import load_task

                        task = load_task(RunConfig(task="arith"))
                        problem = next(p for p in task.problems(limit=3) if p.id == t["problem_id"])
                        prompt = task.render(problem, hf)
                        (capped,) = hf.generate([Request(prompt, params, (i,))])[0]
                        assert capped.n_tokens == b
                        assert head.rstrip("\n") == capped.text.rstrip("\n")
                        checked += 1
    assert checked == 2
    rows = [r for r in _rows(run_dir) if r["strategy"] == "thinking_budget"]
    assert {r["thinking"]["budget"] for r in rows} == {16, 32, 64, 128}
    for r in rows:
        assert 0 < r["thinking"]["tokens_max"] <= r["thinking"]["budget"]
        assert r["thinking"]["over_budget"] == 0
        assert r["shape"] == f"{r['budget']}x{r['thinking']['budget']}"
