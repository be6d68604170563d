from __future__ import annotations

from pathlib import Path

import pytest
from conftest import GSM8K, MATH500

from ttc_eval.errors import DataError, UsageError
from ttc_eval.tasks import Task, find_task_spec, load_task_spec


def test_arith_is_deterministic_interleaved_and_correct() -> None:
    task = Task(find_task_spec("arith"))
    a, b = task.problems(), task.problems()
    assert a == b
    assert [p.labels["level"] for p in a[:5]] == [1, 2, 3, 4, 5]
    for p in a:
        expr = p.question.removeprefix("What is ").removesuffix("?").replace("×", "*")
        assert str(eval(expr)) == p.answer
    assert len({p.id for p in a}) == len(a)


def test_arith_wide_has_60_distinct_questions_and_unique_only_replaces_repeats() -> None:
    from ttc_eval.tasks.arith import load_arith

    spec = find_task_spec("arith_wide")
    wide = Task(spec).problems()
    assert len(wide) == 60 and len({p.question for p in wide}) == 60
    assert {p.labels["level"] for p in wide} == {1, 2, 3, 4, 5}
    for p in wide:
        expr = p.question.removeprefix("What is ").removesuffix("?")
        assert str(eval(expr)) == p.answer
    drawn = load_arith({**spec.loader_args, "unique": False})
    repeats = [i for i, p in enumerate(drawn) if p.question in {q.question for q in drawn[:i]}]
    assert repeats  # without it, some questions repeat (level 1 has 25 possible)
    # A question that was not a repeat stays as drawn; each repeat is a new question.
    assert [p for i, p in enumerate(drawn) if i not in repeats] == [
        p for i, p in enumerate(wide) if i not in repeats
    ]
    assert all(wide[i].question != drawn[i].question for i in repeats)
    tiny = {"seed": 0, "n_per_level": 5, "unique": True,
            "levels": {1: {"terms": 2, "digits": [1], "max_value": 1, "ops": ["+"]}}}  # fmt: skip
    with pytest.raises(DataError, match="level 1 has fewer than 5 questions"):
        load_arith(tiny)


def test_arith_120_has_120_distinct_questions_24_per_level() -> None:
    problems = Task(find_task_spec("arith_120")).problems()
    assert len({p.question for p in problems}) == len(problems) == 120
    levels = [p.labels["level"] for p in problems]
    assert all(levels.count(lv) == 24 for lv in range(1, 6))


def test_math500_local_file_keeps_level_and_subject() -> None:
    task = Task(find_task_spec("math500"))
    probs = task.problems(str(MATH500))
    assert len(probs) == 500
    assert probs[0].id.startswith("test/")
    assert {p.labels["level"] for p in probs} == {1, 2, 3, 4, 5}
    assert all(isinstance(p.labels["subject"], str) for p in probs)
    assert task.problems(str(MATH500), limit=3) == probs[:3]


def test_gsm8k_answer_is_the_number_after_marker() -> None:
    probs = Task(find_task_spec("gsm8k")).problems(str(GSM8K), limit=5)
    assert len(probs) == 5
    for p in probs:
        assert "####" not in p.answer
        float(p.answer)


def test_prompt_asks_for_steps_and_boxed_answer() -> None:
    task = Task(find_task_spec("arith"))
    msg = task.messages(task.problems(limit=1)[0])
    assert msg[-1]["role"] == "user"
    assert "\\boxed{" in msg[-1]["content"] and "blank line" in msg[-1]["content"]


def test_bad_data_row_names_file_and_line(tmp_path: Path) -> None:
    f = tmp_path / "bad.jsonl"
    f.write_text(
        '{"problem": "1+1", "answer": "2", "unique_id": "a"}\n\n'
        '{"problem": "2+2", "unique_id": "b"}\n'
    )
    with pytest.raises(DataError, match=rf"{f}:3: field 'answer'"):
        Task(find_task_spec("math500")).problems(str(f))
    f.write_text('{"problem": "1+1", "answer": "2", "unique_id": "a"}\n{"problem": oops}\n')
    with pytest.raises(DataError, match=rf"{f}:2: not valid JSON"):
        Task(find_task_spec("math500")).problems(str(f))


def test_missing_data_file_and_offline_hub_errors(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="no such file"):
        Task(find_task_spec("gsm8k")).problems(str(tmp_path / "nope.jsonl"))
    with pytest.raises(DataError, match="--data-files"):
        Task(find_task_spec("gsm8k")).problems()


def test_unknown_task_lists_close_matches() -> None:
    with pytest.raises(UsageError, match="Did you mean: math500"):
        find_task_spec("math50")


def test_malformed_spec_names_file_and_line(tmp_path: Path) -> None:
    spec = tmp_path / "broken.yaml"
    spec.write_text("name: broken\nversion: 1\nloader: [unclosed\n")
    with pytest.raises(DataError, match=rf"{spec}:\d+: malformed task spec"):
        load_task_spec(spec)
    spec.write_text(
        "name: broken\nversion: 1\nloader: arith\nprompt: boxed_steps\ngrader: exactt\n"
    )
    with pytest.raises(DataError, match="Did you mean: exact"):
        load_task_spec(spec)


def test_include_path_adds_tasks(tmp_path: Path) -> None:
    (tmp_path / "tiny.yaml").write_text(
        "name: tiny\nversion: 3\nloader: arith\nprompt: boxed_steps\ngrader: exact\n"
        "loader_args: {seed: 1, n_per_level: 2, levels: {1: {terms: 2, digits: [1]}}}\n"
    )
    task = Task(find_task_spec("tiny", [str(tmp_path)]))
    assert len(task.problems()) == 2 and task.version.startswith("3+")
