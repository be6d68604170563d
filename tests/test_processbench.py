"""ProcessBench-format step benchmark: loading, the earliest-wrong-step prediction, F1 as
ProcessBench defines it, the threshold chosen on a held-out half, and the command."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from pathlib import Path

import pytest

from ttc_eval.cli import main
from ttc_eval.errors import DataError
from ttc_eval.processbench import (
    StepItem,
    choose_threshold,
    evaluate_split,
    f1_scores,
    held_out,
    load_items,
    predict,
    solution_of,
)
from ttc_eval.registry import verifier
from ttc_eval.types import Problem
from ttc_eval.verifiers._base import Solution

DATA = Path(__file__).parent / "data" / "processbench_gsm8k.jsonl"


@verifier("arith-checker")
class ArithChecker:
    """Checks each step's ``a op b = c`` by computing it, as a PRM's value would: from the
    first wrong equation on, every step scores low (the solution is lost). For tests only."""

    name = "arith-checker"
    version = "test"
    roles: tuple[str, ...] = ("verifier",)
    calls = 0

    def __init__(self, model: str | None = None) -> None:
        self.tokens_read = 0

    def score(self, problem: Problem, solutions: Sequence[Solution]) -> list[tuple[float, ...]]:
        out = []
        for sol in solutions:
            ArithChecker.calls += 1
            lost, scores = False, []
            for step in sol.steps:
                for a, op, b, c in re.findall(r"(\d+) ([-+*]) (\d+) = (\d+)", step):
                    x, y = int(a), int(b)
                    value = x + y if op == "+" else x - y if op == "-" else x * y
                    lost = lost or value != int(c)
                scores.append(0.1 if lost else 0.9)
            out.append(tuple(scores))
        return out


def _labels() -> list[int]:
    return [json.loads(x)["label"] for x in DATA.read_text().splitlines()]


def test_f1_is_the_harmonic_mean_of_both_accuracies_by_hand() -> None:
    """Erroneous items: labels 0, 1, 2 predicted 0, 2, 2: 2 of 3 right. Correct items: 3,
    predicted -1, 0, -1: 2 of 3. F1 = 2 * (2/3) * (2/3) / (4/3) = 2/3."""
    got = f1_scores([-1, -1, -1, 0, 1, 2], [-1, 0, -1, 0, 2, 2])
    assert got["accuracy_erroneous"] == pytest.approx(2 / 3)
    assert got["accuracy_correct"] == pytest.approx(2 / 3)
    assert got["f1"] == pytest.approx(2 / 3)
    # 3/4 and 1/2: 2 * 0.375 / 1.25 = 0.6.
    assert f1_scores([0, 0, 0, 0, -1, -1], [0, 0, 0, 1, -1, 3])["f1"] == pytest.approx(0.6)
    assert f1_scores([-1], [-1])["f1"] is None  # no erroneous item: undefined
    assert f1_scores([0, -1], [1, 0])["f1"] == 0.0


def test_the_prediction_is_the_earliest_step_under_the_threshold() -> None:
    assert predict((0.9, 0.2, 0.8, 0.1), 0.5) == 1  # the last low step would be 3
    assert predict((0.9, 0.5, 0.8), 0.5) == -1  # at the threshold is not under it
    assert predict((0.4,), 0.5) == 0


def test_the_bundled_file_loads_and_bad_rows_name_their_line(tmp_path: Path) -> None:
    items = load_items("gsm8k", str(DATA))
    assert len(items) == 12 and [it.label for it in items] == _labels()
    sol = solution_of(items[0])
    assert sol.steps == items[0].steps
    assert [sol.text[:e].rsplit("\n\n", 1)[-1] for e in sol.step_ends] == list(sol.steps)
    assert len(load_items("gsm8k", str(DATA), limit=3)) == 3
    rows = DATA.read_text().splitlines()
    bad = json.loads(rows[2])
    bad["label"] = 7
    (tmp_path / "bad.jsonl").write_text("\n".join([rows[0], rows[1], json.dumps(bad)]) + "\n")
    with pytest.raises(
        DataError, match=r"bad\.jsonl:3: field 'label' is 7, but the solution has 3"
    ):
        load_items("gsm8k", str(tmp_path / "bad.jsonl"))
    bad["label"], bad["steps"] = 0, "one step"
    (tmp_path / "bad.jsonl").write_text(json.dumps(bad) + "\n")
    with pytest.raises(DataError, match=r"bad\.jsonl:1: field 'steps' must be a non-empty list"):
        load_items("gsm8k", str(tmp_path / "bad.jsonl"))


def test_the_checker_finds_every_earliest_wrong_step_of_the_bundled_file() -> None:
    """A verifier that is right about every step gets F1 = 1 at any threshold between its
    two scores; taking the last low step instead of the earliest would miss gsm8k-8 and
    gsm8k-10, whose later steps also score low."""
    items = load_items("gsm8k", str(DATA))
    checker = ArithChecker()
    scores = {it.id: checker.score(Problem(it.id, it.problem, ""), [solution_of(it)])[0]
              for it in items}  # fmt: skip
    res = evaluate_split(items, scores, 0.5)
    assert (res["accuracy_erroneous"], res["accuracy_correct"], res["f1"]) == (1.0, 1.0, 1.0)
    last_low = [max((i for i, s in enumerate(scores[it.id]) if s < 0.5), default=-1)
                for it in items]  # fmt: skip
    assert f1_scores([it.label for it in items], last_low)["accuracy_erroneous"] < 1.0


def test_auto_threshold_is_chosen_on_the_held_out_half_and_reported_on_the_other() -> None:
    """Wrong steps score 0.3, right ones 0.6: 0.5 would do, and so does any threshold in
    (0.3, 0.6]; the choice is made on one half by F1 (0.6, the candidate closest to 0.5
    among the best) and the numbers are the other half's."""
    items = [StepItem(f"q{i}", "p", ("a", "b"), -1 if i % 2 else 1) for i in range(20)]
    scores = {it.id: (0.6, 0.6) if it.label == -1 else (0.6, 0.3) for it in items}
    assert choose_threshold(items, scores) == (0.6, 1.0)
    res = evaluate_split(items, scores, None, seed=3)
    tune = held_out([it.id for it in items], 3)
    assert 0 < len(tune) < 20
    assert res["threshold"] == 0.6 and res["threshold_chosen_on"]["items"] == len(tune)
    assert res["n_items"] == 20 - len(tune) and set(res["predictions"]).isdisjoint(tune)
    assert res["f1"] == 1.0


def _run(*extra: str) -> int:
    return main(["processbench", "--verifier", "arith-checker", "--data-files", str(DATA),
                 "--split", "gsm8k", "--quiet", "--output-dir", "pb", *extra])  # fmt: skip


def test_the_command_scores_once_resumes_and_refuses_what_it_cannot_do(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    ArithChecker.calls = 0
    assert _run("--limit", "5") == 0
    assert ArithChecker.calls == 5
    assert _run() == 0  # the first 5 are kept; only the other 7 are scored
    assert ArithChecker.calls == 12
    out = re.sub(r" +", " ", capsys.readouterr().out)
    assert "| gsm8k | 5 | 7 | 100.0 | 100.0 | 100.0 | 0.5 |" in out
    results = json.loads(Path("pb/results.json").read_text())
    split = results["splits"]["gsm8k"]
    assert split["f1"] == 1.0 and split["threshold"] == 0.5 and split["version"] == "1"
    assert sorted(split["predictions"].values()) == sorted(_labels())
    # Another threshold scores nothing again.
    assert _run("--threshold", "0.05") == 0 and ArithChecker.calls == 12
    assert json.loads(Path("pb/results.json").read_text())["splits"]["gsm8k"]["f1"] == 0.0
    assert _run("--threshold", "auto") == 0
    assert "chosen on" in capsys.readouterr().out
    # What it cannot do: exit 2, saying what to do.
    for args, says in [
        (["--verifier", "logprob"], "given text: use one that reads text"),
        (["--verifier", "self-judg"], "Did you mean: self-judge"),
        (["--verifier", "qwen-prm"], "a PRM needs its weights: --verifier-model"),
        (["--threshold", "high"], "must be a number or auto"),
        (["--split", "gsm8k,math"], "name the split of each file"),
    ]:
        cmd = ["processbench", "--data-files", str(DATA), "--quiet", "--output-dir", "x"]
        cmd += ["--verifier", "arith-checker", *args] if args[0] != "--verifier" else args
        assert main(cmd) == 2, args
        assert says in capsys.readouterr().err
    assert main(["processbench", "--verifier", "arith-checker", "--split", "gsm9k"]) == 2
    assert "unknown ProcessBench split 'gsm9k'" in capsys.readouterr().err
    # Scores of another verifier are not mixed into a folder's.
    other = ["processbench", "--verifier", "arith-checker", "--verifier-model", "m",
             "--data-files", str(DATA), "--quiet", "--output-dir", "pb"]  # fmt: skip
    assert main(other) == 2 and "holds scores of another setting" in capsys.readouterr().err


@pytest.mark.slow
def test_done_when_self_judge_on_the_bundled_file_offline() -> None:
    """Issue 17: ``ttc-eval processbench --verifier self-judge --data-files FILE --split
    gsm8k`` runs offline on the embedded model."""
    code = main(["processbench", "--verifier", "self-judge", "--data-files", str(DATA),
                 "--split", "gsm8k", "--quiet", "--output-dir", "sj"])  # fmt: skip
    assert code == 0
    split = json.loads(Path("sj/results.json").read_text())["splits"]["gsm8k"]
    assert split["n_erroneous"] == 5 and split["n_correct"] == 7
    scores = [
        json.loads(x)["scores"] for x in Path("sj/gsm8k/scores.jsonl").read_text().splitlines()
    ]
    assert len(scores) == 12 and all(0 <= s <= 1 for row in scores for s in row)
    assert len({s for row in scores for s in row}) > 1  # the judge does tell steps apart
    assert all(
        len(row) == len(it.steps)
        for row, it in zip(scores, load_items("gsm8k", str(DATA)), strict=True)
    )


def test_a_torn_row_a_moved_file_and_a_changed_one(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """An interrupted run's torn last row is cut off and its item scored again, the next row
    starting clean; the same data under another path is the same setting, other data is
    not; auto needs both classes in its half; a threshold must be a finite number."""
    ArithChecker.calls = 0
    assert _run("--limit", "4") == 0
    scores = Path("pb/gsm8k/scores.jsonl")
    scores.write_text(scores.read_text()[:-20])  # the last row torn mid-way
    assert _run() == 0
    assert ArithChecker.calls == 4 + 9  # the torn item again, and the 8 not scored yet
    rows = [json.loads(x) for x in scores.read_text().splitlines()]
    assert len(rows) == 12 and len({r["id"] for r in rows}) == 12
    copy = tmp_path / "copy.jsonl"
    copy.write_bytes(DATA.read_bytes())
    same = ["processbench", "--verifier", "arith-checker", "--split", "gsm8k", "--quiet",
            "--output-dir", "pb", "--data-files"]  # fmt: skip
    assert main([*same, str(copy)]) == 0 and ArithChecker.calls == 13
    copy.write_text(DATA.read_text().replace("Tom has 3", "Tom has 5"))
    assert main([*same, str(copy)]) == 2
    assert "holds scores of another setting" in capsys.readouterr().err
    correct_only = tmp_path / "correct.jsonl"
    correct_only.write_text(
        "".join(x + "\n" for x in DATA.read_text().splitlines() if '"label": -1' in x)
    )
    auto = ["processbench", "--verifier", "arith-checker", "--quiet", "--threshold", "auto"]
    assert main([*auto, "--output-dir", "c", "--data-files", str(correct_only)]) == 2
    assert "needs erroneous and correct items" in capsys.readouterr().err
    assert _run("--threshold", "nan") == 2
    assert "must be a number or auto" in capsys.readouterr().err
