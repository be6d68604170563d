"""lm-evaluation-harness integration: lm-eval tasks loaded offline from local data, and the
``ttc`` model answering lm-eval's requests (fake backend here; the real model in the slow
tests at the end)."""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import GSM8K, MATH500

from ttc_eval.backends.fake import FakeBackend, arithmetic_script
from ttc_eval.cli import main
from ttc_eval.errors import DataError, UsageError
from ttc_eval.tasks import Task, find_task_spec

lm_eval = pytest.importorskip("lm_eval")
LM_EVAL_TASKS = Path(lm_eval.__file__).parent / "tasks"


def local_yaml(folder: Path, name: str, data: Path, **extra: Any) -> Path:
    """A local-data task YAML over lm-eval's gsm8k, as a user would write it."""
    folder.mkdir(parents=True, exist_ok=True)
    cfg = {
        "include": str(LM_EVAL_TASKS / "gsm8k" / "gsm8k.yaml"),
        "task": name,
        "dataset_path": "json",
        "dataset_name": None,
        "dataset_kwargs": {"data_files": {"test": str(data)}},
        "test_split": "test",
        "training_split": None,
        "fewshot_split": None,
        "num_fewshot": 0,
        **extra,
    }
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


@pytest.fixture(scope="module")
def tasks_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("lm-eval-tasks")
    local_yaml(folder, "gsm8k_local", GSM8K)
    # Arithmetic questions in GSM8K's format: the fake backend answers them, half right.
    arith = folder / "arith.jsonl"
    rows = [(3, 4), (12, 30), (7, 9)]
    arith.write_text(
        "".join(
            json.dumps({"question": f"What is {a} + {b}?", "answer": f"So.\n#### {a + b}"}) + "\n"
            for a, b in rows
        )
    )
    local_yaml(folder / "repeats", "arith_votes", arith, repeats=3)
    return folder


def _gsm8k_rows(n: int) -> list[dict[str, Any]]:
    with GSM8K.open() as f:
        return [json.loads(next(f)) for _ in range(n)]


def test_local_data_yaml_loads_gsm8k_offline(tasks_dir: Path) -> None:
    spec = find_task_spec("lm_eval:gsm8k_local", [str(tasks_dir)])
    assert spec.name == "lm_eval:gsm8k_local"
    # lm-eval's stop strings and default length come with the task; temperature does not.
    assert spec.generation == {"max_tokens": 256, "stop": ["Question:", "</s>", "<|im_end|>"]}
    assert spec.prompt == "raw" and spec.grader == "math"
    problems = Task(spec).problems(limit=30)
    rows = _gsm8k_rows(30)
    assert [p.id for p in problems] == [str(i) for i in range(30)]
    for p, row in zip(problems, rows, strict=True):
        assert p.question == f"Question: {row['question']}\nAnswer:"
        assert p.answer == row["answer"].split("####")[-1].strip().replace(",", "")
    assert problems[0].answer == "18"


def test_a_limit_builds_only_the_prompts_a_run_reads(
    tasks_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """lm-eval renders each few-shot context anew: with --limit 3, three are rendered, and
    the problems are those of the whole list."""
    from lm_eval.api.task import ConfigurableTask

    spec = find_task_spec("lm_eval:gsm8k_local", [str(tasks_dir)])
    whole = Task(spec).problems()
    built: list[object] = []
    real = ConfigurableTask.fewshot_context

    def counted(self: Any, doc: Any, *args: Any, **kwargs: Any) -> Any:
        built.append(doc)
        return real(self, doc, *args, **kwargs)

    monkeypatch.setattr(ConfigurableTask, "fewshot_context", counted)
    assert Task(spec).problems(limit=3) == whole[:3]
    assert len(built) == 3 and len(whole) > 3


def test_data_files_replaces_the_hub_dataset_of_minerva_math500() -> None:
    spec = find_task_spec("lm_eval:minerva_math500")
    assert spec.generation["stop"] == ["Problem:"]
    assert spec.version.endswith("shots=4")
    problems = Task(spec).problems(str(MATH500), limit=5)
    with MATH500.open() as f:
        rows = [json.loads(next(f)) for _ in range(5)]
    for p, row in zip(problems, rows, strict=True):
        # lm-eval's 4 fixed examples, then the question.
        assert p.question.startswith("Problem:\nFind the domain of the expression")
        assert p.question.count("Problem:") == 5
        assert p.question.endswith(f"Problem:\n{row['problem']}\n\nSolution:")
    # lm-eval normalizes the boxed answer of the solution (spaces dropped); it is equivalent
    # to the file's answer field.
    assert problems[0].answer == "\\left(3,\\frac{\\pi}{2}\\right)"
    assert rows[0]["answer"] == "\\left( 3, \\frac{\\pi}{2} \\right)"
    pairs = [(p.answer, row["answer"]) for p, row in zip(problems, rows, strict=True)]
    graded = Task(spec).grader.grade(pairs)
    assert all(g.correct for g in graded)


def test_few_shot_from_a_split_that_local_data_lacks_is_refused() -> None:
    with pytest.raises(UsageError, match="--num-fewshot 0"):
        Task(find_task_spec("lm_eval:gsm8k")).problems(str(GSM8K))
    spec = find_task_spec("lm_eval:gsm8k", num_fewshot=0)
    assert Task(spec).problems(str(GSM8K), limit=2)[1].answer == "3"


def test_bad_names_list_close_matches_and_exit_2(tasks_dir: Path, capsys: Any) -> None:
    with pytest.raises(UsageError, match="Did you mean: gsm8k"):
        find_task_spec("lm_eval:gsm8kk")
    with pytest.raises(UsageError, match="lm_eval"):
        find_task_spec("lm_evl:gsm8k")
    with pytest.raises(UsageError, match=r"loglikelihood|generate_until"):
        find_task_spec("lm_eval:arc_easy")
    with pytest.raises(UsageError, match="apply only to tasks of another harness"):
        find_task_spec("arith", num_fewshot=2)
    rc = main(["run", "--backend", "fake", "--task", "lm_eval:gsm8kk", "--limit", "1"])
    assert rc == 2
    assert "Did you mean: gsm8k" in capsys.readouterr().err


def test_raw_prompt_unless_the_chat_template_is_asked_for(tasks_dir: Path) -> None:
    backend = FakeBackend()
    raw = Task(find_task_spec("lm_eval:gsm8k_local", [str(tasks_dir)]))
    (p,) = raw.problems(limit=1)
    assert raw.render(p, backend) == p.question
    chat = Task(find_task_spec("lm_eval:gsm8k_local", [str(tasks_dir)], apply_chat_template=True))
    assert chat.render(p, backend) == f"<user>{p.question}\n<assistant>"


def test_run_on_an_lm_eval_task_records_its_settings(tasks_dir: Path) -> None:
    rc = main(
        ["run", "--backend", "fake", "--task", "lm_eval:arith_votes",
         "--include-path", str(tasks_dir / "repeats"), "--strategy", "majority",
         "--budgets", "1,4", "--limit", "3", "--verifier", "none", "--run-id", "r"]
    )  # fmt: skip
    assert rc == 0
    config = json.loads(Path("runs/r/config.json").read_text())
    assert config["config"]["stop"] == ["Question:", "</s>", "<|im_end|>"]
    assert config["task_version"].startswith("lm-eval:3.0/shots=0+math-verify")
    results = json.loads(Path("runs/r/results.json").read_text())
    # The fake backend is right about half the time on these sums: graded by ttc-eval.
    acc = {(r["strategy"], r["budget"]): r["accuracy"] for r in results["rows"]}
    assert 0 < acc[("majority", 1)] < 1


def _majority(texts: list[str]) -> str:
    """The most frequent boxed answer, ties to the first seen; the first text holding it."""
    answers = [re.findall(r"\\boxed\{(-?\d+)\}", t)[-1] for t in texts]
    counts = Counter(answers)
    best = max(counts.values())
    winner = next(a for a in answers if counts[a] == best)
    return texts[answers.index(winner)]


def test_ttc_model_through_lm_eval_serves_repeats_from_one_pool(
    tasks_dir: Path, tmp_path: Path
) -> None:
    rc = main(
        ["lm-eval", "--model", "ttc",
         "--model_args", "backend=fake,strategy=majority,n=4,cache=false,progress=false",
         "--tasks", "arith_votes", "--include_path", str(tasks_dir / "repeats"),
         "--limit", "2", "--log_samples", "--output_path", str(tmp_path / "out")]
    )  # fmt: skip
    assert rc == 0
    (samples_file,) = (tmp_path / "out").rglob("samples_arith_votes_*.jsonl")
    samples = [json.loads(line) for line in samples_file.read_text().splitlines()]
    by_filter = {(s["doc_id"], s["filter"]): s for s in samples}
    script = arithmetic_script()
    for doc_id, (a, b) in enumerate([(3, 4), (12, 30)]):
        prompt = f"Question: What is {a} + {b}?\nAnswer:"
        pool = [script(prompt, i, 0) for i in range(12)]
        # repeats: 3 copies answered from one pool of 3 x 4 samples, one vote per group.
        expected = [_majority(pool[g * 4 : (g + 1) * 4]) for g in range(3)]
        sample = by_filter[(doc_id, "flexible-extract")]
        assert sample["resps"] == [expected]
        assert len(set(pool)) > 1
    results = json.loads(next((tmp_path / "out").rglob("results_*.json")).read_text())
    assert results["config"]["model"] == "ttc"


def test_ttc_model_makes_one_backend_call_for_all_requests(tasks_dir: Path) -> None:
    from lm_eval.api.instance import Instance

    from ttc_eval.lm_eval_model import TTCLM

    lm = TTCLM(backend="fake", strategy="majority", n=2, cache=False, progress=False)
    gen = {"until": ["Question:"], "max_gen_toks": 64, "do_sample": False, "temperature": 0.0}
    reqs = [
        Instance("generate_until", {}, (f"Question: What is {i} + 1?\nAnswer:", gen), 0)
        for i in (1, 1, 2, 2)
    ]
    out = lm.generate_until(reqs)
    backend = lm._ctx.backend.inner
    (call,) = backend.calls
    assert [r.sample_ids for r in call] == [(0, 1, 2, 3), (0, 1, 2, 3)]
    assert call[0].params.stop == ("Question:",) and call[0].params.max_tokens == 64
    # lm-eval asks for greedy decoding; the strategy samples.
    assert call[0].params.temperature == 0.7
    assert all("\\boxed{" in o for o in out)


def test_ttc_model_rejects_what_it_cannot_serve() -> None:
    from ttc_eval.lm_eval_model import TTCLM

    with pytest.raises(UsageError, match="unknown nn"):
        TTCLM(backend="fake", nn=3)
    with pytest.raises(UsageError, match="needs a verifier"):
        TTCLM(backend="fake", strategy="best_of_n")
    with pytest.raises(UsageError, match="correctness"):
        TTCLM(backend="fake", strategy="coverage")
    with pytest.raises(UsageError, match="Did you mean: majority"):
        TTCLM(backend="fake", strategy="majorty")
    with pytest.raises(UsageError, match="generate_until"):
        TTCLM(backend="fake").loglikelihood([])


@pytest.mark.slow
def test_done_when_lm_eval_gsm8k_with_a_local_data_yaml(tmp_path: Path) -> None:
    # The YAML names the task gsm8k itself: --include-path overrides lm-eval's own.
    local_yaml(tmp_path / "tasks", "gsm8k", GSM8K)
    rc = main(
        ["run", "--model", "smollm2-135m", "--task", "lm_eval:gsm8k",
         "--include-path", str(tmp_path / "tasks"), "--strategy", "majority",
         "--budgets", "1,2", "--limit", "2", "--verifier", "none", "--max-tokens", "64",
         "--run-id", "g"]
    )  # fmt: skip
    assert rc == 0
    traces = [json.loads(line) for line in Path("runs/g/traces.jsonl").read_text().splitlines()]
    assert sorted(t["problem_id"] for t in traces) == ["0", "1"]
    for t in traces:
        assert len(t["candidates"]) == 2
        # The raw prompt asks for the next answer; lm-eval's stop strings end it.
        assert all("Question:" not in c["text"] for c in t["candidates"])


@pytest.mark.slow
def test_done_when_ttc_model_through_lm_eval_on_the_default_model(tmp_path: Path) -> None:
    local_yaml(tmp_path / "tasks", "gsm8k", GSM8K)
    rc = main(
        ["lm-eval", "--model", "ttc",
         "--model_args", "model=smollm2-135m,backend=hf,strategy=majority,n=2,max_tokens=64",
         "--tasks", "gsm8k", "--include_path", str(tmp_path / "tasks"), "--limit", "2",
         "--gen_kwargs", "max_gen_toks=64", "--log_samples", "--output_path", str(tmp_path / "o")]
    )  # fmt: skip
    assert rc == 0
    (samples_file,) = (tmp_path / "o").rglob("samples_gsm8k_*.jsonl")
    samples = [json.loads(line) for line in samples_file.read_text().splitlines()]
    assert {s["doc_id"] for s in samples} == {0, 1}
    assert all(len(s["resps"][0]) == 1 and s["resps"][0][0] for s in samples)


def test_ttc_model_refuses_a_policy_on_the_questions_it_was_fitted_on(tmp_path: Path) -> None:
    """lm-eval names its documents by its own task, so a fitted policy recognises its
    calibration questions by text: a request whose document holds one is refused before
    anything is generated; others are answered."""
    from lm_eval.api.instance import Instance

    from ttc_eval.lm_eval_model import TTCLM
    from ttc_eval.policy import Choice, Policy, text_key, write_policy

    seen = "What is 3 + 4?"
    policy = Policy(
        estimator="vote_agreement",
        estimator_args={},
        probe=2,
        edges=(),
        choices={4: {0: Choice("majority", {}, "majority", 1.0)}},
        fitted_on=("arith:arith-L1-0000",),
        fitted_text=(text_key(seen),),
    )
    write_policy(policy, tmp_path / "p.yaml")
    lm = TTCLM(backend="fake", strategy=f"policy:file={tmp_path / 'p.yaml'}", n=4, cache=False,
               progress=False)  # fmt: skip
    gen = {"until": ["Question:"], "max_gen_toks": 64}

    def request(question: str, doc_id: int) -> Instance:
        doc = {"question": question, "answer": "#### 0"}
        prompt = f"Question: {question}\nAnswer:"
        return Instance("generate_until", doc, (prompt, gen), doc_id, ("arith_votes", doc_id, 1))

    with pytest.raises(UsageError, match=r"fitted on a question .*document 1"):
        lm.generate_until([request("What is 5 + 5?", 0), request(seen, 1)])
    assert lm._ctx is None  # nothing was loaded, nothing generated
    (out,) = lm.generate_until([request("What is 5 + 5?", 0)])
    assert "\\boxed{" in out


def _index_view(index: dict[str, Any]) -> dict[str, tuple[Any, ...]]:
    return {k: (e.kind, e.yaml_path, frozenset(e.tags)) for k, e in index.items()}


def test_task_index_is_stored_and_rebuilt_when_a_task_yaml_changes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from lm_eval.tasks._index import TaskIndex

    from ttc_eval.tasks import lm_eval_tasks

    folder = tmp_path / "tasks"
    local_yaml(folder, "one_local", GSM8K)
    local_yaml(folder / "sub", "two_local", GSM8K, tag="my_tag")
    builds: list[list[Path]] = []
    build = TaskIndex.build

    def counting(paths: Any, **kwargs: Any) -> dict[str, Any]:
        builds.append(list(paths))
        return build(paths, **kwargs)

    monkeypatch.setattr(TaskIndex, "build", staticmethod(counting))
    first = lm_eval_tasks._task_index([folder])
    assert len(builds) == 1
    assert _index_view(first) == _index_view(build([folder]))  # what lm-eval itself builds
    assert {"one_local", "two_local", "my_tag"} <= set(first)
    again = lm_eval_tasks._task_index([folder])
    assert len(builds) == 1 and _index_view(again) == _index_view(first)  # read back
    assert again["one_local"].cfg is None  # the YAML itself is re-read from its file

    both = [folder, tmp_path / "other"]
    local_yaml(both[1], "one_local", GSM8K, num_fewshot=2)  # the later folder's task wins
    assert _index_view(lm_eval_tasks._task_index(both)) == _index_view(build(both))
    assert builds[1:] == [[both[1]]]  # the first folder's index read back, the other's built

    local_yaml(folder, "three_local", GSM8K)  # a new task: a new index
    assert "three_local" in lm_eval_tasks._task_index([folder]) and len(builds) == 3
    (folder / "sub" / "two_local.yaml").unlink()  # a removed one
    assert "two_local" not in lm_eval_tasks._task_index([folder]) and len(builds) == 4
    lm_eval_tasks._task_index([folder])
    assert len(builds) == 4

    monkeypatch.setattr(lm_eval, "__version__", "0.0.0-other")  # another lm-eval: rebuilt
    lm_eval_tasks._task_index([folder])
    assert len(builds) == 5
    for stored in (tmp_path / "cache" / "lm-eval-index").glob("*.pickle"):
        stored.write_bytes(b"not a pickle")  # damaged: rebuilt and replaced, no error
    assert "three_local" in lm_eval_tasks._task_index([folder]) and len(builds) == 6
    lm_eval_tasks._task_index([folder])
    assert len(builds) == 6


def test_task_manager_over_the_stored_index_reads_each_task_yaml_afresh(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from lm_eval.tasks import manager as manager_module

    from ttc_eval.tasks import lm_eval_tasks

    folder = tmp_path / "tasks"
    path = local_yaml(folder, "fresh_local", GSM8K, generation_kwargs={"max_gen_toks": 77})
    original = manager_module.TaskIndex
    tm = lm_eval_tasks._manager((str(folder),))
    assert manager_module.TaskIndex is original  # lm-eval's own class is back
    ours = _index_view(tm.task_index)
    # What lm-eval itself indexes in that folder, and its own built-in gsm8k.
    alone = _index_view(original.build([folder]))
    assert ours["fresh_local"] == alone["fresh_local"]
    # Its tag replaces the built-in tag of that name, as lm-eval's own merge does.
    assert ours["math_word_problems"] == alone["math_word_problems"]
    assert ours["gsm8k"][1] == LM_EVAL_TASKS / "gsm8k" / "gsm8k.yaml"
    assert {"gsm8k", "fresh_local"} <= set(tm.all_subtasks) and "gsm8k" not in tm.all_groups
    spec = find_task_spec("lm_eval:fresh_local", [str(folder)])
    assert spec.generation["max_tokens"] == 77
    cfg = yaml.safe_load(path.read_text())
    path.write_text(yaml.safe_dump({**cfg, "generation_kwargs": {"max_gen_toks": 33}}))
    spec = find_task_spec("lm_eval:fresh_local", [str(folder)])
    assert spec.generation["max_tokens"] == 33  # not the value parsed when it was indexed
    task = Task(spec)
    assert len(task.problems(data_files=None, limit=2)) == 2  # lm-eval loads it by name
    path.write_text("task: [unclosed")  # broken since it was indexed: a clear error
    with pytest.raises(DataError, match="fresh_local"):
        find_task_spec("lm_eval:fresh_local", [str(folder)])


def test_an_included_template_of_any_name_is_part_of_the_stored_index(tmp_path: Path) -> None:
    from ttc_eval.tasks import lm_eval_tasks

    folder = tmp_path / "tasks"
    folder.mkdir()
    (folder / "_template_yaml").write_text(yaml.safe_dump({"tag": "tag_one"}))
    local_yaml(folder, "templated", GSM8K).write_text(
        yaml.safe_dump({"include": "_template_yaml", "task": "templated"})
    )
    assert "tag_one" in lm_eval_tasks._task_index([folder])
    (folder / "_template_yaml").write_text(yaml.safe_dump({"tag": "tag_two"}))
    index = lm_eval_tasks._task_index([folder])
    assert "tag_two" in index and "tag_one" not in index
