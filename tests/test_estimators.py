"""Difficulty estimators: the predicted-difficulty feature of K probe samples (higher =
easier), each by hand on candidates whose values are known, their edge cases and errors,
how the registry builds and labels them, and ``ttc-eval list estimators``."""

from __future__ import annotations

from collections.abc import Sequence

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ttc_eval.analysis.bins import mean_verifier_score
from ttc_eval.cli import main
from ttc_eval.errors import UsageError
from ttc_eval.estimators._base import Estimator
from ttc_eval.registry import ALL_REGISTRIES, ESTIMATORS
from ttc_eval.types import Candidate, Trace


def cand(
    index: int,
    vote_key: str | None = None,
    step_scores: Sequence[float] | None = None,
    confidences: Sequence[float] | None = None,
) -> Candidate:
    return Candidate(
        index,
        text=f"sample {index}",
        n_tokens=len(confidences) if confidences is not None else 3,
        finish_reason="stop",
        answer=vote_key,
        vote_key=vote_key,
        step_scores=tuple(step_scores) if step_scores is not None else None,
        confidences=tuple(confidences) if confidences is not None else None,
    )


def build(name: str, **args: object) -> Estimator:
    return ESTIMATORS.create(name, **args)


# -- 1. the registry: names, capabilities, arguments, labels --------------------------------------


def test_the_three_estimators_are_registered_with_their_capabilities() -> None:
    assert ESTIMATORS.names() == ["confidence", "verifier_score", "vote_agreement"]
    assert ESTIMATORS in ALL_REGISTRIES and ESTIMATORS.plural == "estimators"
    caps = {n: (build(n).needs_verifier, build(n).needs_confidences) for n in ESTIMATORS.names()}
    assert caps == {
        "verifier_score": (True, False),
        "vote_agreement": (False, False),
        "confidence": (False, True),
    }


def test_create_records_args_and_labels_differ_when_args_do() -> None:
    default = build("verifier_score")
    assert default.name == "verifier_score"
    assert dict(default.args) == {"aggregation": "last"}  # the default is recorded too
    assert default.label() == "verifier_score(aggregation=last)"
    explicit = build("verifier_score", aggregation="last")
    assert explicit.label() == default.label()  # one configuration, one label
    labels = {build("verifier_score", aggregation=a).label() for a in ("last", "min", "prod")}
    assert len(labels) == 3
    assert build("verifier_score", aggregation="min").args["aggregation"] == "min"
    # No arguments: the bare name, as for strategies.
    assert build("vote_agreement").label() == "vote_agreement"
    assert build("confidence").label() == "confidence"
    assert dict(build("confidence").args) == {}


def test_bad_names_and_arguments_are_usage_errors() -> None:
    with pytest.raises(UsageError, match=r"Did you mean: vote_agreement\?.*list estimators"):
        ESTIMATORS.get("vote_agrement")
    with pytest.raises(UsageError, match="aggregation='median'; choose one of last, min"):
        build("verifier_score", aggregation="median")
    with pytest.raises(UsageError, match="vote_agreement: bad arguments"):
        build("vote_agreement", k=3)


def test_list_estimators_prints_the_three(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["list", "estimators"]) == 0
    out = capsys.readouterr().out
    names = {line.split()[0] for line in out.splitlines() if line and not line[0].isspace()}
    assert names == {"confidence", "verifier_score", "vote_agreement"}
    assert "plurality answer" in out and "needs a verifier" in out


# -- 2. verifier_score -----------------------------------------------------------------------------


def test_verifier_score_is_the_mean_aggregated_score() -> None:
    probe = [cand(0, "1", [0.9, 0.5]), cand(1, "2", [0.4, 0.8]), cand(2, None, [0.6])]
    last = build("verifier_score").feature(probe)
    assert last == pytest.approx((0.5 + 0.8 + 0.6) / 3)
    low = build("verifier_score", aggregation="min").feature(probe)
    assert low == pytest.approx((0.5 + 0.4 + 0.6) / 3)
    prod = build("verifier_score", aggregation="prod").feature(probe)
    assert prod == pytest.approx((0.45 + 0.32 + 0.6) / 3)
    mean = build("verifier_score", aggregation="mean").feature(probe)
    assert mean == pytest.approx((0.7 + 0.6 + 0.6) / 3)
    assert build("verifier_score").feature([cand(0, "1", [0.25])]) == 0.25


def test_verifier_score_edges() -> None:
    est = build("verifier_score")
    assert est.feature([]) is None
    # A scored solution without steps scores 0.0, as best_of_n scores it.
    assert est.feature([cand(0, "1", []), cand(1, "1", [1.0])]) == 0.5


def test_verifier_score_without_step_scores_names_the_fix() -> None:
    probe = [cand(0, "1", [0.5]), cand(3, "1"), cand(7, "2")]
    with pytest.raises(UsageError) as err:
        build("verifier_score").feature(probe)
    msg = str(err.value)
    assert "probe samples 3, 7 have no step scores" in msg
    assert "a run without a verifier" in msg and "--verifier" in msg


@settings(max_examples=60, deadline=None)
@given(scores=st.lists(st.lists(st.floats(0, 1), min_size=1, max_size=4), min_size=1, max_size=8))
def test_verifier_score_matches_the_predicted_bins_score(scores: list[list[float]]) -> None:
    """On scored samples with steps, the estimator is the ``predicted`` bins' value."""
    probe = tuple(cand(i, "1", s) for i, s in enumerate(scores))
    trace = Trace("q", "sample", probe, prompt_tokens=0, generated_tokens=0, n_generations=0)
    assert build("verifier_score").feature(probe) == pytest.approx(mean_verifier_score(trace))


# -- 3. vote_agreement -----------------------------------------------------------------------------


def test_vote_agreement_is_the_plurality_share() -> None:
    est = build("vote_agreement")
    probe = [cand(0, "4"), cand(1, "4"), cand(2, "5"), cand(3, "4"), cand(4, "6")]
    assert est.feature(probe) == pytest.approx(3 / 5)
    assert est.feature([cand(0, "4")] * 4) == 1.0
    # No verifier scores or confidences needed.
    assert est.feature([cand(0, "4", None, None)]) == 1.0


def test_vote_agreement_edges() -> None:
    est = build("vote_agreement")
    assert est.feature([]) is None
    assert est.feature([cand(0, "4")]) == 1.0  # one answered sample agrees with itself
    assert est.feature([cand(0)]) == 0.0  # one answerless sample holds no answer
    assert est.feature([cand(0), cand(1), cand(2)]) == 0.0
    # Answerless samples count in the denominator but never form the plurality, even when
    # they outnumber every answer.
    assert est.feature([cand(0), cand(1), cand(2), cand(3, "7")]) == pytest.approx(1 / 4)
    # Ties: any plurality answer, the share is the same.
    assert est.feature([cand(0, "a"), cand(1, "b"), cand(2, "b"), cand(3, "a")]) == 0.5
    assert est.feature([cand(0, "a"), cand(1, "b"), cand(2)]) == pytest.approx(1 / 3)


@settings(max_examples=80, deadline=None)
@given(keys=st.lists(st.sampled_from(["a", "b", "c", None]), min_size=1, max_size=12))
def test_vote_agreement_ignores_order(keys: list[str | None]) -> None:
    est = build("vote_agreement")
    probe = [cand(i, k) for i, k in enumerate(keys)]
    share = est.feature(probe)
    assert share == est.feature(probe[::-1])
    answered = [k for k in keys if k is not None]
    top = max((answered.count(k) for k in answered), default=0)
    assert share == top / len(keys)


# -- 4. confidence ---------------------------------------------------------------------------------


def test_confidence_is_the_mean_of_per_sample_means() -> None:
    est = build("confidence")
    # Per-sample means 2.0 and 4.0: the mean of means (3.0), not the token-weighted 3.5.
    probe = [cand(0, "1", confidences=[1.0, 3.0]), cand(1, "1", confidences=[4.0] * 6)]
    assert est.feature(probe) == pytest.approx(3.0)
    assert est.feature([cand(0, None, confidences=[1.25, 2.5, 0.75])]) == pytest.approx(1.5)
    # A sample with no tokens measures 0.0, as DeepConf measures it.
    assert est.feature([cand(0, "1", confidences=[]), cand(1, "1", confidences=[2.0])]) == 1.0


def test_confidence_edges_and_errors() -> None:
    est = build("confidence")
    assert est.feature([]) is None
    probe = [cand(0, "1", confidences=[1.0]), cand(2, "1")]
    with pytest.raises(UsageError) as err:
        est.feature(probe)
    msg = str(err.value)
    assert "probe sample 2 has none:" in msg
    assert "the backend recorded no token confidences" in msg
    assert "--backend-args top_logprobs=5" in msg
