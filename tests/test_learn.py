"""``ttc-eval learn``: training data built from a run's own samples."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ttc_eval.cli import main
from ttc_eval.strategies.revisions import DEFAULT_REVISION_TEMPLATE
from ttc_eval.tasks import Task, find_task_spec


def _levenshtein(a: str, b: str) -> int:
    """Edit distance by the textbook dynamic programme (no code under test)."""
    row = list(range(len(b) + 1))
    for i, x in enumerate(a, 1):
        prev, row[0] = row[0], i
        for j, y in enumerate(b, 1):
            prev, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, prev + (x != y))
    return row[-1]


def test_revision_chains_end_in_a_correct_sample_after_its_nearest_wrong_ones(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Each example's target is a correct sample of its question; the attempts before it are
    that question's wrong samples nearest it by edit distance, nearest last, as many as the
    example says (0 to 4); the prompt is the run's revision prompt; learn.json names the
    questions."""
    import datasets

    run = ["run", "--backend", "fake", "--task", "arith", "--quiet", "--verifier", "none",
           "--strategy", "majority", "--budgets", "8", "--limit", "6"]  # fmt: skip
    assert main([*run, "--output-dir", "r"]) == 0
    (run_dir,) = list(Path("r").iterdir())
    assert main(["learn", "revision-data", str(run_dir), "--output", "rev"]) == 0
    assert "revision examples" in capsys.readouterr().out
    record = json.loads(Path("rev/learn.json").read_text())
    data = datasets.load_from_disk("rev/data")
    assert len(data) == record["examples"] > 0
    pools = {}
    for line in (run_dir / "traces.jsonl").read_text().splitlines():
        t = json.loads(line)
        pools[f"arith:{t['problem_id']}"] = t["candidates"]
    assert set(record["questions"]) == set(data["question"]) <= set(pools)
    questions = {p.id: p.question for p in Task(find_task_spec("arith")).problems(None)}
    ks = set()
    for ex in data:
        cands = pools[ex["question"]]
        right = {c["text"] for c in cands if c["correct"]}
        wrong = [c["text"] for c in cands if c["correct"] is False]
        (target,) = ex["completion"]
        assert target["role"] == "assistant" and target["content"] in right
        prompt = ex["prompt"][-1]["content"]
        k = ex["k"]
        ks.add(k)
        assert 0 <= k <= min(4, len(wrong))
        if k == 0:
            assert "Attempt 1:" not in prompt
            continue
        assert questions[ex["question"].split(":", 1)[1]] in prompt
        assert DEFAULT_REVISION_TEMPLATE.split("\n\n")[1].split("{")[0] in prompt
        shown = [prompt.split(f"Attempt {i}:\n")[1].split("\n\nAttempt")[0].split(
                 "\n\nCheck them")[0] for i in range(1, k + 1)]  # fmt: skip
        dist = sorted(_levenshtein(w, target["content"]) for w in wrong)
        got = [_levenshtein(s, target["content"]) for s in shown]
        # The k nearest, farthest first and the nearest last.
        assert sorted(got) == dist[:k] and got == sorted(got, reverse=True)
    assert len(ks) > 1  # the number of attempts varies
    # An output folder that is not empty is refused, and so is a bad setting.
    assert main(["learn", "revision-data", str(run_dir), "--output", "rev"]) == 2
    assert "not empty" in capsys.readouterr().err
    bad = ["learn", "revision-data", str(run_dir), "--output", "x", "--max-incorrect", "5"]
    assert main(bad) == 2 and "--max-incorrect must be 0 to 4" in capsys.readouterr().err
    assert main(["learn", "revision-data", "nowhere", "--output", "y"]) == 2


@pytest.mark.slow
def test_a_reviser_fine_tuned_on_revision_chains_runs_as_the_reviser() -> None:
    """The default model fine-tuned for 1 step on revision chains (full, and through a
    LoRA adapter merged back): the saved folder is an ordinary model whose weights moved,
    and a run uses it as its reviser."""
    import torch
    from safetensors.torch import load_file

    from ttc_eval.models import resolve_model

    run = ["run", "--backend", "fake", "--task", "arith", "--quiet", "--verifier", "none",
           "--strategy", "majority", "--budgets", "8", "--limit", "6"]  # fmt: skip
    assert main([*run, "--output-dir", "r"]) == 0
    (run_dir,) = list(Path("r").iterdir())
    assert main(["learn", "revision-data", str(run_dir), "--output", "rev"]) == 0
    small = ["--max-steps", "1", "--batch-size", "2", "--max-length", "192", "--quiet"]
    assert main(["learn", "reviser", "rev", "--output", "full", *small]) == 0
    assert main(["learn", "reviser", "rev", "--output", "lora", "--lora", *small]) == 0
    base = load_file(str(Path(resolve_model("smollm2-135m")) / "model.safetensors"))
    for out in ("full", "lora"):
        record = json.loads(Path(out, "learn.json").read_text())
        assert record["settings"]["lora"] == (out == "lora") and record["seconds"] > 0
        assert record["questions"] and record["train_loss"] > 0
        tuned = load_file(str(Path(out) / "model.safetensors"))
        assert not any("lora" in k for k in tuned)  # the adapter is merged in
        moved = [k for k in base if k in tuned and not torch.equal(base[k], tuned[k])]
        assert moved, out
    revise = ["run", "--task", "arith", "--quiet", "--verifier", "none", "--budgets", "2",
              "--limit", "1", "--strategy", "revisions:sequential=2", "--role",
              "reviser=full", "--output-dir", "rv"]  # fmt: skip
    assert main(revise) == 0
    (rv,) = list(Path("rv").iterdir())
    config = json.loads((rv / "config.json").read_text())
    assert config["config"]["roles"]["reviser"]["model"] == "full"
    rows = [json.loads(x) for x in (rv / "traces.jsonl").read_text().splitlines()]
    (chains,) = [r for r in rows if r["expansion"].startswith("revisions(")]
    assert "reviser=policy" not in chains["expansion"]  # the trained model wrote them
    assert len(chains["candidates"]) == 4


def test_a_run_on_questions_its_trained_reviser_saw_warns_and_marks_its_rows(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A model folder written by ``ttc-eval learn`` lists the questions it was trained on: a
    run that holds any of them says so loudly, and results.json and every row record it;
    a run on other questions does not."""
    ids = [p.id for p in Task(find_task_spec("arith")).problems(None)]
    Path("tuned").mkdir()
    (Path("tuned") / "learn.json").write_text(
        json.dumps({"kind": "reviser", "questions": [f"arith:{ids[1]}", "gsm8k:7"]})
    )
    run = ["run", "--backend", "fake", "--task", "arith", "--quiet", "--verifier", "none",
           "--strategy", "revisions:sequential=2", "--budgets", "2",
           "--role", "reviser=tuned"]  # fmt: skip
    assert main([*run, "--limit", "2", "--output-dir", "seen"]) == 0
    assert "WARNING: the reviser model tuned was trained" in capsys.readouterr().err
    results = json.loads(next(Path("seen").iterdir()).joinpath("results.json").read_text())
    mark = {"reviser": {"model": "tuned", "questions": 1, "example": f"arith:{ids[1]}"}}
    assert results["trained_overlap"] == mark
    assert results["rows"] and all(r["trained_overlap"] == mark for r in results["rows"])
    # The first question only: not one it was trained on.
    assert main([*run, "--limit", "1", "--output-dir", "unseen"]) == 0
    assert "WARNING" not in capsys.readouterr().err
    results = json.loads(next(Path("unseen").iterdir()).joinpath("results.json").read_text())
    assert results["trained_overlap"] == {} and "trained_overlap" not in results["rows"][0]
