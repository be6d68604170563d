from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from ttc_eval.graders._extract import last_boxed, last_number
from ttc_eval.registry import GRADERS

GOLDEN: list[dict[str, Any]] = yaml.safe_load(
    (Path(__file__).parent / "data" / "grader_golden.yaml").read_text()
)


def _grader(name: str) -> Any:
    return GRADERS.get(name)(progress=False) if name == "math" else GRADERS.get(name)()


@pytest.mark.parametrize("name", ["math", "numeric", "exact"])
def test_golden_table(name: str) -> None:
    rows = [r for r in GOLDEN if r["grader"] == name]
    assert rows
    g = _grader(name)
    grades = g.grade([(r["target"], g.extract(r["output"])) for r in rows])
    wrong = [
        (r["output"], r["target"], r["expected"], gr)
        for r, gr in zip(rows, grades, strict=True)
        if gr.correct != r["expected"]
    ]
    assert not wrong


def test_adversarial_answers_finish_within_timeout() -> None:
    g = GRADERS.get("math")(timeout_s=2.0, progress=False)
    t0 = time.monotonic()
    grades = g.grade([("3", "9^{9^{9^{9}}}"), ("3", "9!!!!!!"), ("3", "3")])
    assert time.monotonic() - t0 < 20
    assert [x.correct for x in grades] == [False, False, True]


def test_math_grading_is_deduplicated_and_keys_equivalent_forms() -> None:
    g = GRADERS.get("math")(progress=False)
    grades = g.grade(
        [("\\frac{1}{2}", "\\frac{1}{2}"), ("\\frac{1}{2}", "1/2"), ("\\frac{1}{2}", None)]
    )
    assert [x.correct for x in grades] == [True, True, False]
    # Equivalent forms share one vote key, so majority voting counts them together.
    assert grades[0].vote_key == grades[1].vote_key
    assert grades[2].vote_key is None


def test_extraction() -> None:
    assert last_boxed("a \\boxed{1} b \\boxed{\\frac{1}{2}}") == "\\frac{1}{2}"
    assert last_boxed("\\boxed{\\frac{1}{2}") is None
    assert last_boxed("so \\boxed 5$") == "5"
    assert last_number("from 1,200 to -3.5.") == "-3.5"
    assert last_number("none") is None
