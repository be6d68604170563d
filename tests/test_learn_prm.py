"""``ttc-eval learn prm-data`` (step labels from rollouts) and ``learn prm`` (a PRM trained on
them, read by the ``qwen-prm`` verifier)."""

from __future__ import annotations

import json
import random
import re
from pathlib import Path
from typing import ClassVar

import pytest

from ttc_eval.backends.fake import FakeBackend
from ttc_eval.cli import main
from ttc_eval.registry import backend

ROLLOUTS = 4


def _scripted(prompt: str, sample_id: int, seed: int) -> str:
    """Four solutions per question whose step prefixes lead to known outcomes: continued
    from a prefix holding "right" every rollout is right, from "wrong" none is, from "half"
    the even-numbered ones are."""
    a, op, b = re.findall(r"What is (-?\d+) ([+\-×]) (-?\d+)\?", prompt)[-1]
    gold = int(a) + int(b) if op == "+" else int(a) - int(b) if op == "-" else int(a) * int(b)
    prefix = prompt.partition("<assistant>")[2]
    if prefix:
        right = "right" in prefix or ("half" in prefix and sample_id % 2 == 0)
        return f"So \\boxed{{{gold if right else gold + 1}}}"
    return [
        f"Start right.\n\nKeep right.\n\nSo \\boxed{{{gold + 1}}}",
        f"Start wrong.\n\nSo \\boxed{{{gold}}}",
        f"Start half.\n\nSo \\boxed{{{gold}}}",
        f"At once \\boxed{{{gold}}}",
    ][sample_id % 4]


@backend("fake-rollouts")
class RolloutBackend(FakeBackend):
    """The fake backend with :func:`_scripted`; counts what it is asked for."""

    asked: ClassVar[list[int]] = []

    def __init__(self, model: str = "fake", progress: bool = False, **kw: object) -> None:
        super().__init__(model, script=_scripted)

    def generate(self, requests):  # type: ignore[no-untyped-def]
        RolloutBackend.asked.append(sum(len(r.sample_ids) for r in requests))
        return super().generate(requests)


EXPECTED = {  # pool index -> (soft labels, hard labels, verdict)
    0: ([1.0, 1.0, 0.0], [True, True, False], False),
    1: ([0.0, 1.0], [False, True], True),
    2: ([0.5, 1.0], [True, True], True),
    3: ([1.0], [True], True),
}


def _pool_run(limit: int = 3) -> Path:
    run = ["run", "--backend", "fake-rollouts", "--task", "arith", "--quiet", "--verifier",
           "none", "--strategy", "majority", "--budgets", "4", "--limit", str(limit),
           "--output-dir", "r"]  # fmt: skip
    assert main(run) == 0
    (run_dir,) = list(Path("r").iterdir())
    return run_dir


def test_rollout_labels_are_the_share_of_rollouts_that_reach_the_answer() -> None:
    """Each step's soft label is the share of its K rollouts that are right, the hard label
    whether any is, and the last step carries the solution's own verdict; one backend call
    holds every prefix of the chunk, each prefix asked once with K samples; the dataset is in
    the stepwise format and learn.json records the cost and the questions."""
    import datasets

    run_dir = _pool_run()
    RolloutBackend.asked.clear()
    argv = ["learn", "prm-data", str(run_dir), "--output", "pd", "--rollouts", str(ROLLOUTS)]
    assert main([*argv, "--quiet"]) == 0
    # 3 questions x 4 prefixes (2 + 1 + 1 + 0) x K samples, in one call.
    assert RolloutBackend.asked == [3 * 4 * ROLLOUTS]
    data = datasets.load_from_disk("pd/data")
    assert {"prompt", "completions", "labels", "soft_labels"} <= set(data.column_names)
    assert len(data) == 3 * 4
    for row, index in zip(data, [0, 1, 2, 3] * 3, strict=True):
        soft, hard, correct = EXPECTED[index]
        assert row["soft_labels"] == soft and row["labels"] == hard and row["correct"] == correct
        assert row["prompt"].startswith("What is ") and len(row["completions"]) == len(soft)
    record = json.loads(Path("pd/learn.json").read_text())
    assert record["cost"]["requests"] == 3 * 4
    assert record["cost"]["samples"] == 3 * 4 * ROLLOUTS
    assert record["cost"]["generated_tokens"] > 0 and record["cost"]["prompt_tokens"] > 0
    assert record["steps"] == 3 * 8 and record["positive_steps"] == 3 * 6
    assert record["questions"] == sorted(set(data["question"]))
    assert record["this_invocation"]["generated_samples"] == 3 * 4 * ROLLOUTS


def test_prm_data_resumes_where_it_stopped_and_refuses_other_settings() -> None:
    """A killed command leaves finished questions in rollouts.jsonl (and perhaps a torn
    line): a rerun keeps them, cuts the torn line, labels only the rest and ends with the same
    dataset; rerunning with another --rollouts into the same folder is refused."""
    import datasets

    run_dir = _pool_run(limit=5)
    argv = ["learn", "prm-data", str(run_dir), "--output", "pd", "--quiet"]
    assert main(argv) == 0
    whole = datasets.load_from_disk("pd/data").to_list()
    lines = Path("pd/rollouts.jsonl").read_text().splitlines(keepends=True)
    Path("pd/rollouts.jsonl").write_text("".join(lines[:2]) + lines[2][:30])
    RolloutBackend.asked.clear()
    assert main(argv) == 0
    # Served from the generation cache, but asked for the three unfinished questions only.
    assert RolloutBackend.asked == []
    assert datasets.load_from_disk("pd/data").to_list() == whole
    again = Path("pd/rollouts.jsonl").read_text().splitlines()
    assert again[:2] == [x.rstrip("\n") for x in lines[:2]] and len(again) == 5
    assert main([*argv, "--rollouts", "2"]) == 2
    # A question whose pool changed since it was labelled is labelled again, alone.
    rows = [json.loads(x) for x in Path("pd/rollouts.jsonl").read_text().splitlines()]
    rows[0]["pool_sha256"] = "another pool"
    Path("pd/rollouts.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    RolloutBackend.asked.clear()
    assert main(argv) == 0
    assert len(Path("pd/rollouts.jsonl").read_text().splitlines()) == 6
    assert datasets.load_from_disk("pd/data").to_list() == whole
    # A folder that is not PRM data is not written into.
    Path("other").mkdir()
    Path("other/notes.txt").write_text("mine")
    assert main(["learn", "prm-data", str(run_dir), "--output", "other", "--quiet"]) == 2
    assert sorted(p.name for p in Path("other").iterdir()) == ["notes.txt"]


def test_prm_data_without_a_run_samples_its_own_pool_first() -> None:
    """Without RUN, --task/--model/--backend choose what a majority run at N = --per-question
    samples in OUTPUT/pool; the labels come from it."""
    import datasets

    argv = ["learn", "prm-data", "--task", "arith", "--backend", "fake-rollouts", "--limit",
            "2", "--per-question", "4", "--output", "pd", "--quiet"]  # fmt: skip
    assert main(argv) == 0
    assert (Path("pd/pool") / "traces.jsonl").exists()
    soft = datasets.load_from_disk("pd/data")["soft_labels"]
    assert soft == [EXPECTED[i][0] for i in range(4)] * 2


@pytest.mark.parametrize(
    "argv",
    [
        ["learn", "prm-data", "RUN", "--task", "arith", "--output", "o"],  # a run has its own
        ["learn", "prm", "--output", "o"],  # no data
        ["learn", "prm", "nowhere", "--output", "o"],  # not a prm-data folder
        ["learn", "revision-data", "RUN", "--output", "o", "--max-steps", "3"],
        ["learn", "prm-data", "RUN", "--output", "o", "--rollouts", "0"],
        ["learn", "prm-data", "RUN", "--output", "o", "--seed", "5"],  # the run's own seed
        ["learn", "prm", "nowhere", "--output", "o", "--rollouts", "8"],  # not a prm option
        ["learn", "reviser", "nowhere", "--output", "o", "--labels", "soft"],
    ],
)
def test_learn_usage_errors_exit_2(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    if "RUN" in argv:
        argv[argv.index("RUN")] = str(_pool_run(limit=1))
    try:
        code = main(argv)
    except SystemExit as e:  # argparse's own refusals
        code = int(e.code or 0)
    assert code == 2
    assert capsys.readouterr().err.strip()


@pytest.fixture
def tiny_base(tmp_path: Path) -> Path:
    """A randomly initialised 2-layer Llama with the default model's tokenizer (seconds to
    train on CPU)."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    from ttc_eval.models import resolve_model

    torch.manual_seed(0)
    tok = AutoTokenizer.from_pretrained(resolve_model("smollm2-135m"))
    config = LlamaConfig(
        vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
        num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=1024,
        bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
        tie_word_embeddings=True,
    )  # fmt: skip
    out = tmp_path / "tiny"
    LlamaForCausalLM(config).save_pretrained(out)
    tok.save_pretrained(out)
    return out


def _good_bad_data(folder: Path) -> None:
    """Stepwise rows whose steps say whether they are good, labelled accordingly."""
    import datasets

    rng = random.Random(0)
    rows: dict[str, list[object]] = {"prompt": [], "completions": [], "labels": [],
                                     "soft_labels": []}  # fmt: skip
    for i in range(40):
        steps = [rng.choice(["This step is good.", "This step is bad."]) for _ in range(3)]
        rows["prompt"].append(f"What is {i} + 1?")
        rows["completions"].append(steps)
        rows["labels"].append(["good" in s for s in steps])
        rows["soft_labels"].append([1.0 if "good" in s else 0.0 for s in steps])
    folder.mkdir()
    datasets.Dataset.from_dict(rows).save_to_disk(str(folder / "data"))
    (folder / "learn.json").write_text(
        json.dumps({"kind": "prm-data", "questions": ["arith:arith-L1-0000"]})
    )


@pytest.mark.parametrize("labels", ["hard", "soft"])
def test_a_trained_prm_loads_through_the_verifier_registry_and_scores_what_it_learned(
    tiny_base: Path, labels: str
) -> None:
    """A tiny model trained on steps that say whether they are good: the saved folder,
    loaded by the registered qwen-prm verifier unchanged, scores good steps high and bad
    ones low (the labels sit at the step tags the verifier reads), and learn.json records
    the questions."""
    import ttc_eval.verifiers  # noqa: F401  (registers the verifiers)
    from ttc_eval.registry import VERIFIERS
    from ttc_eval.types import Problem
    from ttc_eval.verifiers._base import Solution

    _good_bad_data(Path("gb"))
    argv = ["learn", "prm", "gb", "--base", str(tiny_base), "--output", "prm", "--max-steps",
            "60", "--learning-rate", "1e-2", "--labels", labels, "--quiet"]  # fmt: skip
    assert main(argv) == 0
    record = json.loads(Path("prm/learn.json").read_text())
    assert record["verifier"] == "qwen-prm" and record["questions"] == ["arith:arith-L1-0000"]
    assert record["data"]["step_labels"] == 120 and record["settings"]["labels"] == labels
    prm = VERIFIERS.get("qwen-prm")(model="prm")
    problem = Problem(id="x", question="What is 99 + 1?", answer="100")
    steps = ("This step is good.", "This step is bad.", "This step is bad.", "This step is good.")
    (scores,) = prm.score(problem, [Solution(steps=steps, step_ends=(1, 2, 3, 4), text="")])
    assert scores[0] > 0.9 and scores[3] > 0.9 and scores[1] < 0.1 and scores[2] < 0.1


def test_encoded_targets_sit_exactly_at_the_tags_the_verifier_reads(tiny_base: Path) -> None:
    """Training targets are placed at the positions qwen-prm reads, in step order, and
    nowhere else; a step beyond --max-length loses its label."""
    from transformers import AutoTokenizer

    from ttc_eval.learn_prm import encode_rows
    from ttc_eval.verifiers.prm import qwen_prm_inputs

    tok = AutoTokenizer.from_pretrained(tiny_base)
    tok.add_special_tokens({"additional_special_tokens": ["<extra_0>"]})
    sep = int(tok.convert_tokens_to_ids("<extra_0>"))
    rows = {"prompt": ["What is 2 + 2?"], "completions": [["a", "b b", "c"]],
            "labels": [[True, False, True]], "soft_labels": [[0.75, 0.0, 1.0]]}  # fmt: skip
    (full,), kept = encode_rows(rows, tok, sep, "soft", 512)
    ids, positions = qwen_prm_inputs(tok, sep, "What is 2 + 2?", ["a", "b b", "c"])
    assert full["input_ids"] == ids and kept == 3
    assert [i for i, t in enumerate(full["labels"]) if t != -100] == positions
    assert [full["labels"][p] for p in positions] == [0.75, 0.0, 1.0]
    assert [ids[p] for p in positions] == [sep] * 3
    (cut,), kept = encode_rows(rows, tok, sep, "hard", positions[1] + 1)
    assert kept == 2 and [cut["labels"][p] for p in positions[:2]] == [1.0, 0.0]


@pytest.mark.slow
def test_the_default_model_labels_its_own_steps_trains_a_prm_and_a_run_uses_it() -> None:
    """On the default model: prm-data samples and rolls out on arith, learn prm trains the
    default model as a PRM for a step, and a best-of-N run scores with the saved folder;
    the run warns that its verifier saw these questions."""
    argv = ["learn", "prm-data", "--task", "arith", "--limit", "2", "--per-question", "2",
            "--rollouts", "2", "--output", "pd", "--quiet"]  # fmt: skip
    assert main(argv) == 0
    record = json.loads(Path("pd/learn.json").read_text())
    assert record["cost"]["samples"] == 2 * record["cost"]["requests"] > 0
    assert main(["learn", "prm", "pd", "--output", "prm", "--max-steps", "1", "--batch-size",
                 "2", "--max-length", "256", "--quiet"]) == 0  # fmt: skip
    run = ["run", "--task", "arith", "--limit", "2", "--budgets", "2", "--strategy",
           "best_of_n", "--verifier", "qwen-prm", "--verifier-model", "prm", "--quiet",
           "--output-dir", "r"]  # fmt: skip
    assert main(run) == 0
    (run_dir,) = list(Path("r").iterdir())
    results = json.loads((run_dir / "results.json").read_text())
    assert results["trained_overlap"]["verifier"]["questions"] == 2
    rows = [json.loads(x) for x in (run_dir / "traces.jsonl").read_text().splitlines()]
    assert all(0 <= s <= 1 for r in rows for c in r["candidates"] for s in c["step_scores"])
