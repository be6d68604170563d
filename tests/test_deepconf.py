"""DeepConf (Fu et al. 2025): confidence measures, the offline filtered vote and the online
early-stopping rule, on hand-built pools where every number is known, against an independent
re-implementation of the repository's own functions, and end to end on the fake backend."""

from __future__ import annotations

import json
import random
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from ttc_eval.analysis.confidence import (
    bottom_confidence,
    group_confidences,
    lowest_confidence,
    mean_confidence,
    stop_position,
    tail_confidence,
    trace_confidence,
)
from ttc_eval.backends._base import top_k_record
from ttc_eval.cli import main
from ttc_eval.errors import UsageError
from ttc_eval.pipeline import evaluate, selections
from ttc_eval.registry import STRATEGIES
from ttc_eval.strategies.deepconf_online import replay_online
from ttc_eval.types import Candidate, Completion, Cost, Trace

PROMPT = 7


def _cand(i: int, key: str | None, confs: Sequence[float], gold: str = "a") -> Candidate:
    """A graded, costed candidate with one confidence per generated token."""
    n = len(confs)
    return Candidate(
        i,
        f"answer {key}",
        n,
        "stop",
        key,
        key,
        key == gold,
        cost=Cost(
            samples=1,
            prompt_tokens=PROMPT,
            prompt_tokens_computed=0,
            generated_tokens=n,
            role_tokens={"policy": n},
        ),
        confidences=tuple(float(c) for c in confs),
    )


def _trace(specs: Sequence[tuple[str | None, Sequence[float]]]) -> Trace:
    cands = tuple(_cand(i, k, c) for i, (k, c) in enumerate(specs))
    return Trace("q", "sample(n)", cands, PROMPT, sum(c.n_tokens for c in cands), len(cands))


# -- measures -----------------------------------------------------------------------------------


def test_group_confidences_are_sliding_window_means() -> None:
    assert group_confidences([1, 2, 3, 4], 2) == [1.5, 2.5, 3.5]
    assert group_confidences([1, 2, 3, 4], 4) == [2.5]
    assert group_confidences([1, 2, 3, 4], 5) == [2.5]  # shorter than the window: its mean
    assert group_confidences([], 3) == [0.0]


def test_trace_measures_by_hand() -> None:
    confs = [float(v) for v in range(1, 21)]  # 1 .. 20
    assert mean_confidence(confs) == 10.5
    assert tail_confidence(confs, 3) == 19.0  # 18, 19, 20
    assert tail_confidence(confs, 50) == 10.5  # shorter than the tail: all of it
    # window 1: 20 groups, the bottom 10% is 2 of them (1 and 2).
    assert bottom_confidence(confs, 1) == 1.5
    # window 2: 19 groups; int(1.9) = 1: only the lowest (1.5), not the lowest two.
    assert bottom_confidence(confs, 2) == 1.5
    # window 1 on 19 tokens: int(1.9) = 1 group, the lowest.
    assert bottom_confidence(confs[:19], 1) == 1.0
    assert lowest_confidence(confs, 4) == 2.5  # (1 + 2 + 3 + 4) / 4
    assert lowest_confidence([5.0, 1.0], 4) == 3.0  # shorter than the window: its mean
    for measure in ("mean", "bottom", "lowest", "tail"):
        assert trace_confidence((), measure, 4, 4) == 0.0  # no tokens: 0.0, no crash
    with pytest.raises(ValueError, match="measure"):
        trace_confidence(confs, "median")


def test_bottom_averages_the_lowest_tenth_of_the_groups() -> None:
    # 30 tokens, window 1: 3 bottom groups, wherever they are.
    confs = [9.0] * 30
    confs[4], confs[17], confs[29] = 1.0, 2.0, 3.0
    assert bottom_confidence(confs, 1) == 2.0
    assert lowest_confidence(confs, 1) == 1.0


def test_confidences_by_hand_from_stored_top_k_log_probs() -> None:
    rows = [
        [-0.1, -2.0, -3.0, -9.0],  # the sampled token ranked below k: left out
        [-0.5, -0.7, -4.25],
        [-1.0, -1.0, -1.0, -0.0001],  # any order: the k largest are kept
    ]
    confs, raw = top_k_record(rows, 3, keep=True)
    assert raw == ((-0.1, -2.0, -3.0), (-0.5, -0.7, -4.25), (-0.0001, -1.0, -1.0))
    assert confs is not None
    by_hand = [round(-(-0.1 - 2.0 - 3.0) / 3, 3), round(-(-0.5 - 0.7 - 4.25) / 3, 3)]
    by_hand.append(round(-(-0.0001 - 1.0 - 1.0) / 3, 3))
    assert list(confs) == by_hand == [1.7, 1.817, 0.667]
    comp = Completion("x y z", 3, "stop", token_confidences=confs, top_logprobs=raw)
    cand = Candidate(0, comp.text, comp.n_tokens, "stop", confidences=comp.token_confidences)
    assert cand.confidences is not None
    assert mean_confidence(cand.confidences) == pytest.approx((1.7 + 1.817 + 0.667) / 3)
    assert group_confidences(cand.confidences, 2) == [1.7585, 1.242]


def test_stored_confidences_are_the_top_k_means_of_the_stored_log_probs() -> None:
    # The fake backend keeps its raw top-k (k=5); the trace stores both, packed and plain.
    assert main(_run_args("keep", "deepconf_offline", "2", limit=2, extra=_KEEP_TOP)) == 0
    traces = _traces("keep")
    assert len(traces) == 2
    for t in traces:
        for c in t.candidates:
            assert c.confidences is not None and c.top_logprobs is not None
            assert len(c.confidences) == len(c.top_logprobs) == c.n_tokens
            for conf, top in zip(c.confidences, c.top_logprobs, strict=True):
                assert len(top) == 5 and list(top) == sorted(top, reverse=True)
                # The stored log-probs are rounded to 6 decimals: within a thousandth.
                assert conf == pytest.approx(round(-sum(top) / 5, 3), abs=1.0001e-3)
            by_hand = [round(-sum(top) / 5, 3) for top in c.top_logprobs]
            assert mean_confidence(c.confidences) == pytest.approx(
                float(np.mean(by_hand)), abs=1e-3
            )


# -- offline ------------------------------------------------------------------------------------


def _offline(
    specs: Sequence[tuple[str | None, Sequence[float]]], **args: Any
) -> tuple[str | None, tuple[int, ...]]:
    strategy = STRATEGIES.create("deepconf_offline", **args)
    (sel,) = selections(strategy, _trace(specs), len(specs))
    return sel.answer, sel.read


# Mean confidences: a 2.0; b 3.0 twice; c 3.5; an answerless trace at 9.0.
FILTERED = [("a", [2.0]), ("b", [3.0]), ("b", [2.9, 3.1]), ("c", [3.5]), (None, [9.0, 9.0])]


@pytest.mark.parametrize(
    ("keep", "answer"),
    [
        # percentile 60 of (2, 3, 3, 3.5): 3.0 exactly; b, b, c kept (>=): b 6.0 > c 3.5.
        # (A strict > keeps only c; counting the answerless trace gives 3.2: only c.)
        (40, "b"),
        # percentile 90: 3.35, only c (the 10th percentile, 2.3, would keep b, b, c: b).
        (10, "c"),
        (100, "b"),  # no filter: a 2.0, b 6.0, c 3.5
    ],
)
def test_offline_keeps_the_top_percent_of_answered_traces(keep: int, answer: str) -> None:
    assert _offline(FILTERED, measure="mean", keep=keep) == (answer, (0, 1, 2, 3, 4))


def test_offline_vote_is_weighted_by_the_measure() -> None:
    pool = [("a", [1.0]), ("a", [1.0]), ("b", [2.5])]
    assert _offline(pool, measure="mean")[0] == "b"  # a 2.0 < b 2.5; majority would say a
    # Ties go to the answer first in pool order.
    assert _offline([("a", [2.0]), ("b", [2.0])], measure="mean")[0] == "a"
    assert _offline([("b", [2.0]), ("a", [2.0])], measure="mean")[0] == "b"
    assert _offline([(None, [2.0]), (None, [3.0])], measure="mean")[0] is None
    # No tokens: measure 0.0, no crash (and it still counts as a vote of weight 0).
    assert _offline([("a", []), ("b", [1.0])], measure="bottom", window=4)[0] == "b"


def test_offline_measures_pick_different_traces() -> None:
    # a: steady 3.0; b: higher on average, one dip to 0.5 at the start, high at the end.
    pool = [("a", [3.0] * 6), ("b", [0.5, 5.0, 5.0, 5.0, 5.0, 5.0])]
    assert _offline(pool, measure="mean")[0] == "b"  # 3.0 vs 4.25
    assert _offline(pool, measure="lowest", window=2)[0] == "a"  # 3.0 vs 2.75
    assert _offline(pool, measure="bottom", window=2)[0] == "a"  # 5 groups: 1 of them
    assert _offline(pool, measure="tail", tail=2)[0] == "b"
    assert _offline(pool, measure="tail", tail=6)[0] == "b"
    assert _offline(pool, measure="lowest", window=6)[0] == "b"  # one group: the means


# -- online -------------------------------------------------------------------------------------

# window 2, n_init 4, keep 75 (the 25th percentile), tau 0.8. Lowest group confidence:
# warmup 6.0 (a), 6.8 (a), 2.0 (b), 9.0 (no answer): s = 2 + 0.75 * (6 - 2) = 5.0; a and a
# vote (12.8), b does not (2.0 < s), the answerless one cannot.
ONLINE = [
    ("a", [6.0, 6.0, 6.0]),
    ("a", [7.0, 6.6, 7.0]),
    ("b", [2.0, 2.0]),
    (None, [9.0, 9.0]),
    ("b", [6.0, 5.0, 5.0, 7.0]),  # windows 5.5, 5.0, 6.0: lowest = s, not below: votes 5.0
    ("b", [6.0, 6.0, 4.8, 5.1, 9.0]),  # windows 6, 5.4, 4.95: stopped at token 4 of 5
    ("a", [8.0, 8.0]),  # votes 8.0: a 20.8 of 25.8 = 0.806 >= 0.8: stop
    ("b", [9.0, 9.0]),  # never read
]
ONLINE_ARGS: dict[str, Any] = {"n_init": 4, "keep": 75, "tau": 0.8, "window": 2}


def test_online_rule_by_hand() -> None:
    group = _trace(ONLINE).candidates
    r = replay_online(group, **ONLINE_ARGS)
    assert r.threshold == 5.0
    assert [c.index for c in r.read] == [0, 1, 2, 3, 4, 5, 6]
    assert r.cut == ((5, 4),)
    assert [c.index for c in r.voters] == [0, 1, 4, 6]
    assert r.weights == (6.0, 6.8, 5.0, 8.0)
    assert r.tokens == 3 + 3 + 2 + 2 + 4 + 4 + 2
    assert r.pick is not None and r.pick.index == 0
    # Mutations and what they would give: a cut at <= s stops trace 4 too (read 5); the
    # 75th percentile (7.35) stops 4 and 5 at their first window (16 tokens); a vote for
    # the stopped trace keeps beta below tau (read all 8); charging all of its tokens: 21;
    # checking consensus after the warmup already stops there (beta 1.0, read 4).


def test_online_selection_charges_stopped_traces_only_their_spent_tokens() -> None:
    strategy = STRATEGIES.create("deepconf_online", **ONLINE_ARGS)
    (sel,) = selections(strategy, _trace(ONLINE), 8)
    assert sel.answer == "a" and sel.correct and sel.index == 0
    assert sel.read == (0, 1, 2, 3, 4, 5, 6) and sel.cut == ((5, 4),)
    assert sel.n_generations == 7 and sel.n_tokens == 20
    assert sel.cost is not None
    assert sel.cost.samples == 7
    assert sel.cost.generated_tokens == 20  # trace 5: 4 of its 5 tokens
    assert sel.cost.prompt_tokens == 7 * PROMPT
    assert sel.cost.prompt_tokens_computed == PROMPT  # the question's prompt, once
    assert sel.cost.role_tokens == {"policy": 20 + PROMPT}


def test_online_at_or_below_the_warmup_is_the_warmup_vote() -> None:
    strategy = STRATEGIES.create("deepconf_online", **ONLINE_ARGS)
    first, second = selections(strategy, _trace(ONLINE), 4)
    assert first.read == (0, 1, 2, 3) and first.cut == () and first.answer == "a"
    assert first.n_tokens == 10
    assert first.cost is not None and first.cost.generated_tokens == 10
    # Second group, all warmup: lowest 5.0 (b), 4.95 (b), 8.0 (a), 9.0 (b); s is their 25th
    # percentile, 4.9875: 4.95 does not vote; b 14.0 beats a 8.0. Warmup traces are never cut.
    assert second.read == (4, 5, 6, 7) and second.cut == () and second.answer == "b"
    assert second.n_tokens == 4 + 5 + 2 + 2


def test_online_stops_when_the_leader_holds_tau_of_the_weight() -> None:
    # window 1, one warmup trace (s = its own 4.0); then beta after each later trace:
    # 0.5, 0.667, 0.75 = tau: stop there (>=), not one later.
    pool = [("a", [4.0]), ("b", [4.0]), ("a", [4.0]), ("a", [4.0]), ("b", [4.0]), ("b", [4.0])]
    args = {"n_init": 1, "keep": 100, "tau": 0.75, "window": 1}
    (sel,) = selections(STRATEGIES.create("deepconf_online", **args), _trace(pool), 6)
    assert sel.read == (0, 1, 2, 3) and sel.answer == "a"
    # A trace shorter than the window is checked once, at its end, by its mean: stopped, it
    # spent all its tokens and does not vote. s = 5.0 (the lower warmup); a 5.0, b 5.5; the
    # stopped b would make b win, 10.4 to 10.0.
    pool = [("a", [5.0] * 3), ("b", [5.5, 5.5]), ("b", [9.0, 0.8]), ("a", [5.0] * 3)]
    args = {"n_init": 2, "keep": 100, "tau": 1.0, "window": 3}
    (sel,) = selections(STRATEGIES.create("deepconf_online", **args), _trace(pool), 4)
    assert sel.read == (0, 1, 2, 3) and sel.cut == ((2, 2),)  # mean 4.9 < s = 5.0
    assert sel.answer == "a" and sel.n_tokens == 3 + 2 + 2 + 3  # a 10.0, b 5.5
    assert stop_position([9.0, 1.0], 3, 5.0) is None  # mean 5.0 is not below 5.0


def test_online_without_any_vote_has_no_answer() -> None:
    pool = [(None, [5.0]), ("a", [1.0]), ("b", [1.0]), (None, [9.0])]
    args = {"n_init": 1, "keep": 100, "window": 1}
    (sel,) = selections(STRATEGIES.create("deepconf_online", **args), _trace(pool), 4)
    # s = 5.0: the warmup has no answer, the later answered traces stop at their one token.
    assert sel.answer is None and not sel.correct and sel.index is None
    assert sel.read == (0, 1, 2, 3) and sel.cut == ((1, 1), (2, 1))


# -- the repository's own functions, re-implemented from their definitions ----------------------
# analysis_offline.py and helper.py of facebookresearch/deepconf (plain numpy and float sums,
# nothing shared with ttc_eval's code), compared with the strategies on random pools.


def calculate_mean_confidence(confs: Sequence[float]) -> float:
    return float(np.mean(confs)) if len(confs) else 0.0


def calculate_tail_confidence(confs: Sequence[float], tail_tokens: int = 2048) -> float:
    if not confs:
        return 0.0
    tail = confs[-tail_tokens:] if len(confs) > tail_tokens else confs
    return float(np.mean(tail))


def calculate_bottom_window_confidence(
    confs: Sequence[float], window_size: int = 2048, bottom_percent: float = 0.1
) -> float:
    if not confs:
        return 0.0
    if len(confs) < window_size:
        return float(np.mean(confs))
    means = [np.mean(confs[i : i + window_size]) for i in range(len(confs) - window_size + 1)]
    if bottom_percent == -1:  # the repository's "min window"
        return float(min(means))
    num_bottom = max(1, int(len(means) * bottom_percent))
    return float(np.mean(np.sort(means)[:num_bottom]))


def peer_measure(confs: Sequence[float], measure: str, window: int, tail: int) -> float:
    if measure == "mean":
        return calculate_mean_confidence(confs)
    if measure == "tail":
        return calculate_tail_confidence(confs, tail)
    if measure == "bottom":
        return calculate_bottom_window_confidence(confs, window)
    return calculate_bottom_window_confidence(confs, window, bottom_percent=-1)


def filter_top_confidence(measures: Sequence[float], top_percent: float) -> tuple[list[int], float]:
    threshold = float(np.percentile(measures, (1 - top_percent) * 100))
    return [i for i, m in enumerate(measures) if m >= threshold], threshold


def weighted_majority_vote(
    answers: Sequence[str], weights: Sequence[float]
) -> tuple[str | None, dict[str, float]]:
    totals: dict[str, float] = {}
    for a, w in zip(answers, weights, strict=True):
        totals[a] = totals.get(a, 0.0) + w
    if not totals:
        return None, totals
    return max(totals.items(), key=lambda x: x[1])[0], totals


def _near_tie(totals: dict[str, float]) -> bool:
    ranked = sorted(totals.values(), reverse=True)
    return len(ranked) > 1 and ranked[0] - ranked[1] < 1e-9


def peer_offline(
    group: Sequence[Candidate], measure: str, keep: float, window: int, tail: int
) -> tuple[str | None, bool]:
    """The repository's offline vote; and whether float rounding could decide it."""
    valid = [c for c in group if c.vote_key]
    if not valid:
        return None, False
    measures = [peer_measure(list(c.confidences or ()), measure, window, tail) for c in valid]
    kept, threshold = filter_top_confidence(measures, keep / 100)
    answer, totals = weighted_majority_vote(
        [str(valid[i].vote_key) for i in kept], [measures[i] for i in kept]
    )
    borderline = any(0 < abs(m - threshold) < 1e-9 for m in measures)
    return answer, borderline or _near_tie(totals)


def peer_online(
    group: Sequence[Candidate], n_init: int, keep: float, tau: float, window: int
) -> tuple[str | None, int, int, bool]:
    """deepconf-online.py with the paper's consensus stop (Algorithm 2), token by token as the
    engine's logits processor checks it: (answer, traces read, tokens, float-decided)."""

    def least_grouped(confs: Sequence[float]) -> list[float]:
        if len(confs) < window:
            return [sum(confs) / len(confs)] if confs else [0.0]
        return [float(np.mean(confs[i : i + window])) for i in range(len(confs) - window + 1)]

    warmup = group[:n_init]
    min_confs = [min(least_grouped(list(c.confidences or ()))) for c in warmup]
    conf_bar = float(np.percentile(min_confs, 100 - keep))
    close = [abs(m - conf_bar) for m in min_confs]
    answers: list[str] = []
    weights: list[float] = []
    for c, m in zip(warmup, min_confs, strict=True):
        if m >= conf_bar and c.vote_key:
            answers.append(c.vote_key)
            weights.append(m)
    read, tokens = len(warmup), sum(c.n_tokens for c in warmup)
    for c in group[n_init:]:
        confs = list(c.confidences or ())
        read += 1
        stopped, spent = False, len(confs)
        for t in range(window, len(confs) + 1):
            group_conf = float(np.mean(confs[t - window : t]))
            close.append(abs(group_conf - conf_bar))
            if group_conf < conf_bar:
                stopped, spent = True, t
                break
        if len(confs) < window:
            mean = least_grouped(confs)[0]
            close.append(abs(mean - conf_bar))
            stopped = mean < conf_bar  # the script drops a trace with min_conf < conf_bar
        tokens += spent
        if not stopped and c.vote_key:
            answers.append(c.vote_key)
            weights.append(min(least_grouped(confs)))
        _, totals = weighted_majority_vote(answers, weights)
        total = sum(totals.values())
        beta = max(totals.values()) / total if total > 0 else 0.0
        close.append(abs(beta - tau))
        if beta >= tau:
            break
    answer, totals = weighted_majority_vote(answers, weights)
    borderline = any(0 < d < 1e-9 for d in close)
    return answer, read, tokens, borderline or _near_tie(totals)


def _random_group(rng: random.Random, size: int, keys: str, top: float) -> Trace:
    specs = []
    for _ in range(size):
        n = rng.choice([0, 1, 2, 3, 5, 8, 13, 21, 30])
        confs = [rng.randint(0, int(top * 1000)) / 1000 for _ in range(n)]
        key = rng.choice(keys)
        specs.append((None if key == "." else key, confs))
    return _trace(specs)


def test_measures_equal_the_repository_functions() -> None:
    rng = random.Random(1)
    for _ in range(300):
        n = rng.randint(0, 40)
        confs = [rng.randint(0, 20000) / 1000 for _ in range(n)]
        window, tail = rng.randint(1, 12), rng.randint(1, 12)
        for measure in ("mean", "tail", "bottom", "lowest"):
            ours = trace_confidence(confs, measure, window, tail)
            assert ours == pytest.approx(peer_measure(confs, measure, window, tail), abs=1e-9)


def test_offline_choices_equal_the_repository_vote_on_random_pools() -> None:
    rng = random.Random(2)
    compared = 0
    for _ in range(400):
        size = rng.randint(1, 12)
        trace = _random_group(rng, size, "aabbc.", 20.0)
        measure = rng.choice(["mean", "tail", "bottom", "lowest"])
        keep = rng.choice([10, 25, 50, 90, 100, 33.3])
        window, tail = rng.randint(1, 8), rng.randint(1, 8)
        strategy = STRATEGIES.create(
            "deepconf_offline", measure=measure, keep=keep, window=window, tail=tail
        )
        (sel,) = selections(strategy, trace, size)
        expected, ambiguous = peer_offline(trace.candidates, measure, keep, window, tail)
        if ambiguous:
            continue
        compared += 1
        assert sel.answer == expected, (measure, keep, window, tail, trace)
        assert sel.read == tuple(range(size))
    assert compared > 350


def test_online_choices_equal_the_repository_rule_on_random_pools() -> None:
    rng = random.Random(3)
    compared = 0
    stopped_early = 0
    for _ in range(400):
        size = rng.randint(1, 14)
        trace = _random_group(rng, size, "aaaab.", 10.0)
        args: dict[str, Any] = {
            "n_init": rng.randint(1, 5),
            "keep": rng.choice([10, 50, 90, 100]),
            "tau": rng.choice([0.6, 0.8, 0.95, 1.0]),
            "window": rng.randint(1, 6),
        }
        (sel,) = selections(STRATEGIES.create("deepconf_online", **args), trace, size)
        answer, read, tokens, ambiguous = peer_online(trace.candidates, **args)
        if ambiguous:
            continue
        compared += 1
        assert (sel.answer, sel.n_generations, sel.n_tokens) == (answer, read, tokens), args
        assert sel.cost is not None and sel.cost.generated_tokens == tokens
        stopped_early += read < size
    assert compared > 350 and stopped_early > 50


# -- arguments and missing confidences ----------------------------------------------------------


def test_bad_arguments_are_usage_errors() -> None:
    bad: list[tuple[str, dict[str, Any], str]] = [
        ("deepconf_offline", {"measure": "median"}, "measure"),
        ("deepconf_offline", {"keep": 0}, "keep"),
        ("deepconf_offline", {"keep": 101}, "keep"),
        ("deepconf_offline", {"keep": True}, "keep"),
        ("deepconf_offline", {"window": 0}, "window"),
        ("deepconf_offline", {"tail": 1.5}, "tail"),
        ("deepconf_online", {"n_init": 0}, "n_init"),
        ("deepconf_online", {"keep": -5}, "keep"),
        ("deepconf_online", {"tau": 0}, "tau"),
        ("deepconf_online", {"tau": 1.5}, "tau"),
        ("deepconf_online", {"window": "2048"}, "window"),
    ]
    for name, args, key in bad:
        with pytest.raises(UsageError, match=key):
            STRATEGIES.create(name, **args)


def test_labels_name_only_arguments_that_change_the_choice() -> None:
    assert STRATEGIES.create("deepconf_offline").label() == (
        "deepconf_offline(keep=100,measure=bottom,window=2048)"
    )
    assert STRATEGIES.create("deepconf_offline", measure="tail", window=5).label() == (
        "deepconf_offline(keep=100,measure=tail,tail=2048)"
    )
    assert STRATEGIES.create("deepconf_online", n_init=4).label() == (
        "deepconf_online(keep=90,n_init=4,tau=0.95,window=2048)"
    )
    for name in ("deepconf_offline", "deepconf_online"):
        assert not STRATEGIES.create(name).needs_verifier


@pytest.mark.parametrize("name", ["deepconf_offline", "deepconf_online"])
def test_traces_without_confidences_are_refused_clearly(name: str) -> None:
    trace = _trace([("a", [1.0]), ("b", [2.0])])
    bare = Trace(
        "q7",
        trace.expansion,
        (trace.candidates[0], Candidate(1, "x", 3, "stop", "b", "b", False)),
        PROMPT,
        4,
        2,
    )
    with pytest.raises(UsageError, match=r"samples 1 of question 'q7'.*top_logprobs=5"):
        selections(STRATEGIES.create(name), bare, 2)


def test_a_run_that_would_record_no_confidences_exits_2_before_generating(
    capsys: pytest.CaptureFixture[str],
) -> None:
    args = _run_args("bare", "majority,deepconf_online", "2", limit=1, extra=["top_logprobs=0"])
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "deepconf_online reads token confidences, which top_logprobs=0 turns off" in err
    assert not Path("bare").exists() or not list(Path("bare").rglob("traces.jsonl"))
    # Without a DeepConf rule the same backend option is fine.
    assert main(_run_args("plain", "majority", "2", limit=1, extra=["top_logprobs=0"])) == 0


# -- end to end on the fake backend -------------------------------------------------------------

_KEEP_TOP = ["keep_top_logprobs=true"]


def _run_args(
    out: str, strategies: str, budgets: str, limit: int = 6, extra: Sequence[str] = ()
) -> list[str]:
    return [
        "run", "--backend", "fake", "--task", "arith", "--quiet", "--no-cache",
        "--limit", str(limit), "--strategy", strategies, "--budgets", budgets,
        "--backend-args", ",".join(["p_correct=0.9", *extra]), "--output-dir", out,
    ]  # fmt: skip


def _run_dir(out: str) -> Path:
    (d,) = list(Path(out).iterdir())
    return d


def _traces(out: str) -> list[Trace]:
    lines = (_run_dir(out) / "traces.jsonl").read_text().splitlines()
    return [Trace.from_dict(json.loads(x)) for x in lines]


def test_end_to_end_one_pool_and_online_reads_less(capsys: pytest.CaptureFixture[str]) -> None:
    online = "deepconf_online:n_init=4:window=4"
    names = f"majority,deepconf_offline,deepconf_offline:measure=tail:keep=10,{online}"
    assert main(_run_args("e2e", names, "1,8")) == 0
    capsys.readouterr()
    results = json.loads((_run_dir("e2e") / "results.json").read_text())
    assert list(results["compute"]["by_expansion"]) == ["sample(n=8,temperature=0.7)"]
    rows = {(r["config"], r["budget"]): r for r in results["rows"] if r["label_kind"] == "all"}
    labels = [
        "majority",
        "deepconf_offline(keep=100,measure=bottom,window=2048)",
        "deepconf_offline(keep=10,measure=tail,tail=2048)",
        "deepconf_online(keep=90,n_init=4,tau=0.95,window=4)",
    ]
    for label in labels:
        for budget in (1, 8):
            assert rows[label, budget]["cost"]["samples"] <= budget
    for label in labels[:3]:
        assert rows[label, 8]["cost"]["samples"] == 8  # offline reads the whole group
    on, maj = rows[labels[3], 8]["cost"], rows["majority", 8]["cost"]
    assert on["samples"] < maj["samples"]  # mostly one answer: the rule stops early
    # Stopped traces are charged only what they spent: fewer tokens than whole samples.
    assert on["generated_tokens"] < on["samples"] * maj["generated_tokens"] / maj["samples"]
    # The rows are the strategy's own choices on the stored pool, with their measured cost.
    strategy = STRATEGIES.create("deepconf_online", n_init=4, window=4)
    traces = _traces("e2e")
    evaluated = [evaluate(strategy, t, 8) for t in traces]
    assert on["samples"] == pytest.approx(np.mean([e.cost.samples for e in evaluated]))
    assert on["generated_tokens"] == pytest.approx(
        np.mean([e.cost.generated_tokens for e in evaluated])
    )
    assert any(s.cut for t in traces for s in selections(strategy, t, 8))
