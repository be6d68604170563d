"""ttc-eval import: each format round-trips into the accuracies its own fields imply."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from ttc_eval.cli import main


def _write(path: str, rows: list[dict[str, Any]]) -> Path:
    p = Path(path)
    p.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return p


def _rows(run_dir: Path) -> dict[tuple[str, int], float]:
    results = json.loads((run_dir / "results.json").read_text())
    return {
        (r["config"], r["budget"]): r["accuracy"]
        for r in results["rows"]
        if r["label_kind"] == "all"
    }


def _only(out: str = "runs") -> Path:
    (d,) = list(Path(out).iterdir())
    return d


QWEN = [
    {
        "idx": 0, "question": "1+1?", "gt": "2",
        "code": ["\\boxed{2}", "\\boxed{3}", "\\boxed{2}", "\\boxed{5}"],
        "pred": ["2", "3", "2", "5"], "score": [True, False, True, False],
        "pred_score": [[0.9], [0.95], [0.2], [0.1]],
    },
    {
        "idx": 1, "question": "2+2?", "gt": "4",
        "code": ["\\boxed{1}", "\\boxed{4}", "\\boxed{1}", "\\boxed{4}"],
        "pred": ["1", "4", "1", "4"], "score": [False, True, False, True],
        "pred_score": [[0.3], [0.8], [0.3], [0.9]],
    },
]  # fmt: skip


def test_qwen_math_output_round_trips() -> None:
    src = _write("qwen.jsonl", QWEN)
    assert main(["import", "qwen-math", str(src), "--task", "arith"]) == 0
    acc = _rows(_only())
    # Budget 1: the mean of the dump's own verdicts; budget 4: majority and best-of-N.
    assert acc[("majority", 1)] == pytest.approx((2 / 4 + 2 / 4) / 2)
    assert acc[("coverage", 4)] == 1.0
    # q0 at budget 4: votes 2 (x2), 3, 5 -> 2, correct; q1: 1 (x2) vs 4 (x2), tie -> first (1).
    assert acc[("majority", 4)] == pytest.approx(0.5)
    # Weighted best-of-N at 4: q0 {2: 1.1, 3: 0.95} -> 2; q1 {1: 0.6, 4: 1.7} -> 4.
    assert acc[("best_of_n(aggregation=last,mode=weighted)", 4)] == 1.0
    # Weighted best-of-N at 2: q0 groups (0.9 vs 0.95 -> wrong), (0.2 vs 0.1 -> right).
    assert acc[("best_of_n(aggregation=last,mode=weighted)", 2)] == pytest.approx(0.75)


def test_generic_jsonl_round_trips_and_regrade() -> None:
    rows = [
        {"id": "a", "answer": "7", "samples": [
            {"text": "so \\boxed{7}", "score": 0.2, "correct": True},
            {"text": "so \\boxed{8}", "score": 0.9, "correct": False},
        ]},
        {"id": "b", "answer": "3", "samples": [
            {"text": "\\boxed{3}", "score": 0.5, "correct": True},
            {"text": "\\boxed{3}", "score": 0.4, "correct": True},
        ]},
    ]  # fmt: skip
    src = _write("gen.jsonl", rows)
    assert main(["import", "generic", str(src), "--task", "arith", "--output-dir", "a"]) == 0
    acc = _rows(_only("a"))
    assert acc[("majority", 1)] == pytest.approx((0.5 + 1.0) / 2)
    assert acc[("best_of_n(aggregation=last,mode=weighted)", 2)] == pytest.approx(0.5)
    # The dump says sample a/1 is correct although it answers 8: --regrade trusts the grader.
    rows[0]["samples"][1]["correct"] = True
    src = _write("gen.jsonl", rows)
    assert main(["import", "generic", str(src), "--task", "arith", "--output-dir", "b"]) == 0
    assert _rows(_only("b"))[("coverage", 1)] == 1.0
    assert main(["import", "generic", str(src), "--task", "arith", "--output-dir", "c",
                 "--regrade"]) == 0  # fmt: skip
    assert _rows(_only("c"))[("coverage", 1)] == pytest.approx(0.75)


def test_lm_eval_samples_are_graded_by_the_task_grader() -> None:
    rows = [
        {"doc_id": 0, "doc": {"question": "q"}, "target": "12",
         "resps": [["The answer is 12.", "It is 13.", "12"]], "filtered_resps": ["12"]},
        {"doc_id": 1, "doc": {"question": "r"}, "target": "5",
         "resps": [["4", "5", "4"]], "filtered_resps": ["4"]},
    ]  # fmt: skip
    src = _write("samples_gsm8k_2026.jsonl", rows)
    assert main(["import", "lm-eval", str(src), "--task", "arith"]) == 0
    acc = _rows(_only())
    assert acc[("majority", 1)] == pytest.approx((2 / 3 + 1 / 3) / 2)
    assert acc[("coverage", 2)] > acc[("majority", 1)]
    results = json.loads((_only() / "results.json").read_text())
    assert results["model"] == "import:lm-eval:samples_gsm8k_2026"


def test_bad_dumps_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    Path("bad.jsonl").write_text('{"idx": 0, "gt": "1"}\n{not json\n')
    assert main(["import", "qwen-math", "bad.jsonl", "--task", "arith"]) == 2
    assert "bad.jsonl:1: missing field 'code'" in capsys.readouterr().err
    Path("bad.jsonl").write_text('{"idx": 0, "gt": "1", "code": ["x"]}\n{not json\n')
    assert main(["import", "qwen-math", "bad.jsonl", "--task", "arith"]) == 2
    assert "bad.jsonl:2: not valid JSON" in capsys.readouterr().err
    assert main(["import", "qwen", "bad.jsonl", "--task", "arith"]) == 2
    assert "qwen-math" in capsys.readouterr().err
    assert main(["import", "generic", "missing.jsonl", "--task", "arith"]) == 2


@pytest.mark.parametrize(
    ("sample", "message"),
    [
        ({"text": "x", "score": "high"}, "sample 2: score must be a finite number (a reward-model "
         "score such as 0.87) or null, got 'high'"),
        ({"text": "x", "score": float("nan")}, "sample 2: score must be a finite number"),
        ({"text": "x", "score": True}, "sample 2: score must be a finite number"),
        ({"text": "x", "correct": "no"}, "sample 2: correct must be true or false (or null when "
         "the dump has no verdict), got 'no'"),
    ],
)  # fmt: skip
def test_generic_dump_with_a_bad_sample_value_names_file_and_line(
    capsys: pytest.CaptureFixture[str], sample: dict[str, Any], message: str
) -> None:
    rows = [
        {"id": "a", "answer": "7", "samples": [{"text": "\\boxed{7}", "score": 0.2}] * 2},
        {"id": "b", "answer": "3", "samples": [{"text": "\\boxed{3}", "score": 0.5}, sample]},
    ]
    src = _write("gen.jsonl", rows)
    assert main(["import", "generic", str(src), "--task", "arith"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"ttc-eval: error: gen.jsonl:2: {message}") and len(err.splitlines()) == 1
    assert not Path("runs").exists()


def test_qwen_math_dump_with_a_bad_verdict_or_reward_names_file_and_line(
    capsys: pytest.CaptureFixture[str],
) -> None:
    row = {**QWEN[0], "score": [True, "no", True, False]}
    _write("q.jsonl", [QWEN[1], row])
    assert main(["import", "qwen-math", "q.jsonl", "--task", "arith"]) == 2
    assert "q.jsonl:2: sample 2: score must be true or false" in capsys.readouterr().err
    row = {**QWEN[0], "pred_score": [[0.9], [float("inf")], [0.2], [0.1]]}
    _write("q.jsonl", [row])
    assert main(["import", "qwen-math", "q.jsonl", "--task", "arith"]) == 2
    assert "q.jsonl:1: pred_score must hold finite numbers" in capsys.readouterr().err
