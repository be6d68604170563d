from __future__ import annotations

import math

import pytest

from ttc_eval.registry import VERIFIERS
from ttc_eval.types import Completion, Problem
from ttc_eval.verifiers._base import aggregate, split_steps, to_solution


def test_split_steps_and_offsets() -> None:
    text = "first step\n\n\n\nsecond\n\nthird  "
    steps, ends = split_steps(text)
    assert steps == ("first step", "second", "third")
    assert [text[:e].rstrip().endswith(s) for s, e in zip(steps, ends, strict=True)] == [True] * 3
    assert split_steps("   ") == (("",), (3,))


def test_aggregations() -> None:
    s = (0.5, 0.8, 0.4)
    assert aggregate(s, "last") == 0.4
    assert aggregate(s, "min") == 0.4
    assert math.isclose(aggregate(s, "prod"), 0.16)
    assert math.isclose(aggregate(s, "mean"), 1.7 / 3)


def test_logprob_verifier_running_mean_per_step() -> None:
    text = "aa bb\n\ncc"
    comp = Completion(text, 3, "stop", token_logprobs=(-1.0, -2.0, -3.0), token_ends=(3, 5, 9))
    scores = VERIFIERS.get("logprob")().score(Problem("p", "q", "a"), [to_solution(comp)])[0]
    assert len(scores) == 2
    assert scores[0] == pytest.approx(math.exp(-1.5))  # tokens of step 1
    assert scores[1] == pytest.approx(math.exp(-2.0))  # whole sample mean
