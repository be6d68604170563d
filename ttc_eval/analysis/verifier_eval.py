"""How good is the judge: outcome discrimination (AUROC), calibration (ECE, reliability
bins) and over-optimization of verifier scores against ground truth, from numbers only.

Inputs are per question: the solution scores of its samples and whether each is correct.
Samples of one question are not independent (one model, one prompt, one difficulty), so every
confidence interval here resamples *questions* with all their samples (a cluster bootstrap),
never single samples: resampling samples would treat 16 draws of one easy question as 16
independent facts and give intervals that are too narrow.

The report (:mod:`ttc_eval.verifier_report`) turns a run's stored traces into these inputs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from numpy.typing import NDArray
from scipy import stats

from ttc_eval.analysis.stats import bootstrap_ci, bootstrap_cis

N_RESAMPLES = 2000
"""Bootstrap resamples of questions (as :func:`ttc_eval.analysis.stats.bootstrap_ci`)."""

ECE_BINS = 10
"""Equal-width bins of [0, 1] for the expected calibration error (the usual choice)."""

MIN_CLASS_QUESTIONS = 3
"""The pooled AUROC's interval needs at least this many questions with a correct sample and
as many with a wrong one: with fewer, many resamples hold one class only (AUROC undefined,
left out) and the rest say little, so no interval is given."""

_CHUNK = 250
"""Resamples computed at once: bounds the (resamples x questions) weight matrix in memory."""

FloatArray = NDArray[np.float64]


@dataclass(frozen=True)
class QuestionScores:
    """One question's scored samples."""

    scores: tuple[float, ...]
    """Solution score of each sample (a step-score aggregation)."""
    correct: tuple[bool, ...]
    """The grader's verdict on each sample, in the same order."""


@dataclass(frozen=True)
class Discrimination:
    """Outcome AUROC: the probability that a correct sample outscores a wrong one, both
    drawn from all samples of the questions (ties count half)."""

    auroc: float | None
    """Mann-Whitney U over (correct, wrong) pairs / (correct x wrong); ``None``: undefined."""
    ci_low: float | None
    """Percentile bootstrap bound, questions resampled with their samples."""
    ci_high: float | None
    """Upper bound of the same interval."""
    n_questions: int
    """Questions with at least one scored sample."""
    n_correct: int
    """Correct samples."""
    n_wrong: int
    """Wrong samples."""
    reason: str | None = None
    """Why ``auroc`` is ``None`` (every sample correct, or every one wrong)."""
    resamples_dropped: int = 0
    """Bootstrap resamples left out of the interval because they held no correct or no
    wrong sample (AUROC undefined there); 0 when no bootstrap was run."""
    ci_reason: str | None = None
    """Why the interval is ``None`` while ``auroc`` is not."""


@dataclass(frozen=True)
class WithinQuestion:
    """AUROC inside each question, averaged: whether the verifier ranks a question's own
    samples right, which is all best-of-N needs (pooled AUROC also rewards telling easy
    questions from hard ones)."""

    auroc: float | None
    """Mean over the questions that have both correct and wrong samples."""
    ci_low: float | None
    """Percentile bootstrap bound over those questions."""
    ci_high: float | None
    """Upper bound of the same interval."""
    n_questions: int
    """Questions with both correct and wrong samples (the others say nothing of ranking)."""
    reason: str | None = None
    """Why ``auroc`` is ``None`` (no question has both)."""
    ci_reason: str | None = None
    """Why the interval is ``None`` while ``auroc`` is not (a single question)."""


@dataclass(frozen=True)
class ReliabilityBin:
    """One bin of the reliability diagram."""

    low: float
    """Lower edge (inclusive)."""
    high: float
    """Upper edge (exclusive; the last bin includes 1.0)."""
    count: int
    """Samples whose score falls in the bin."""
    mean_score: float | None
    """Mean score of those samples (the confidence); ``None`` for an empty bin."""
    accuracy: float | None
    """Fraction of them that are correct; ``None`` for an empty bin."""


@dataclass(frozen=True)
class Calibration:
    """Expected calibration error of the score read as P(correct)."""

    ece: float | None
    """sum over bins of (samples in bin / samples) x |accuracy - mean score|; ``None``:
    the scores are not probabilities (outside [0, 1]) or there are none."""
    ci_low: float | None
    """Percentile bootstrap bound, questions resampled with their samples."""
    ci_high: float | None
    """Upper bound of the same interval."""
    bins: tuple[ReliabilityBin, ...]
    """The reliability diagram's bins (empty when ``ece`` is ``None``)."""
    n_samples: int
    """Samples scored."""
    reason: str | None = None
    """Why ``ece`` is ``None``."""


@dataclass(frozen=True)
class PairedDifference:
    """Mean over questions of a per-question difference, with its bootstrap CI."""

    mean: float
    """Mean difference."""
    ci_low: float
    """Percentile bootstrap bound (:func:`~ttc_eval.analysis.stats.bootstrap_ci`)."""
    ci_high: float
    """Upper bound of the same interval."""
    n_questions: int
    """Questions compared."""


@dataclass(frozen=True)
class OverOptimization:
    """Verifier-guided selection against majority voting as the budget grows."""

    budgets: tuple[int, ...]
    """Budgets N, ascending."""
    guided: tuple[float, ...]
    """Accuracy of the verifier-guided selection at each budget."""
    majority: tuple[float, ...]
    """Majority voting's accuracy at each budget."""
    first_below: int | None
    """The smallest budget where guided < majority (``None``: never)."""
    onset: int | None
    """The smallest budget from which guided < majority at that budget and at every larger
    one of the sweep: where it starts to lose and does not recover (``None``: it ends at or
    above majority). This is the flagged budget."""


def auroc(scores: Sequence[float], correct: Sequence[bool]) -> float | None:
    """P(score of a correct sample > score of a wrong one), ties counting half: the
    Mann-Whitney U of the correct samples' scores against the wrong ones', over
    n_correct x n_wrong.
    ``None`` when either class is empty."""
    s = np.asarray(scores, dtype=float)
    y = np.asarray(correct, dtype=bool)
    pos, neg = s[y], s[~y]
    if not pos.size or not neg.size:
        return None
    # Mann-Whitney U from average ranks (a tie shares its ranks: half a win each way).
    ranks = stats.rankdata(np.concatenate([pos, neg]))
    u = ranks[: pos.size].sum() - pos.size * (pos.size + 1) / 2
    return float(u / (pos.size * neg.size))


@lru_cache(maxsize=4)
def _resample_weights(n: int, n_resamples: int, seed: int) -> tuple[FloatArray, ...]:
    """How often each of ``n`` questions is drawn, per resample (in chunks): a bootstrap
    over questions as multiplicities, so statistics are weighted sums (no copies). Kept for
    the next call (read-only): every aggregation's AUROC and ECE of a group of questions
    draws the same ones."""
    rng = np.random.default_rng(seed)
    out = []
    for start in range(0, n_resamples, _CHUNK):
        size = min(_CHUNK, n_resamples - start)
        chunk = rng.multinomial(n, np.full(n, 1.0 / n), size=size).astype(float)
        chunk.flags.writeable = False
        out.append(chunk)
    return tuple(out)


def _percentile_ci(values: FloatArray, confidence: float) -> tuple[float | None, float | None]:
    values = values[np.isfinite(values)]
    if not values.size:
        return None, None
    tail = (1 - confidence) / 2 * 100
    lo, hi = np.percentile(values, [tail, 100 - tail])
    return float(lo), float(hi)


def _arrays(q: QuestionScores) -> tuple[FloatArray, NDArray[np.bool_]]:
    return np.asarray(q.scores, dtype=float), np.asarray(q.correct, dtype=bool)


def _pair_counts(questions: Sequence[QuestionScores]) -> tuple[FloatArray, FloatArray, FloatArray]:
    """``C[q, r]`` = over (correct sample of q, wrong sample of r) pairs, 1 when the correct
    one scores higher and 1/2 on a tie; and the correct and wrong counts per question. Any
    resample of questions (weights w) has AUROC = w'Cw / ((w . pos) (w . neg))."""
    n = len(questions)
    arrays = [_arrays(q) for q in questions]
    pos_scores = np.concatenate([np.zeros(0), *(s[y] for s, y in arrays)])
    pos_owner = np.concatenate(
        [np.zeros(0, dtype=np.intp), *(np.full(int(y.sum()), i) for i, (_, y) in enumerate(arrays))]
    )
    # The correct samples in score order: a wrong sample of score v then counts 1/2 from the
    # first correct one at v on and another 1/2 from the first above v on, a step function
    # whose running sum gives every correct sample's wins over r's wrong ones at once (all
    # counts of halves: exact in any order of adding).
    order = np.argsort(pos_scores, kind="stable")
    ranked, owner = pos_scores[order], pos_owner[order]
    c = np.zeros((n, n))
    for r, (s, y) in enumerate(arrays):
        neg = s[~y]
        if not neg.size or not ranked.size:
            continue
        steps = np.bincount(np.searchsorted(ranked, neg, side="left"), minlength=ranked.size + 1)
        steps += np.bincount(np.searchsorted(ranked, neg, side="right"), minlength=ranked.size + 1)
        wins = np.cumsum(steps[:-1]) * 0.5
        c[:, r] = np.bincount(owner, weights=wins, minlength=n)
    n_pos = np.array([y.sum() for _, y in arrays], dtype=float)
    n_neg = np.array([(~y).sum() for _, y in arrays], dtype=float)
    return c, n_pos, n_neg


def discrimination(
    questions: Sequence[QuestionScores],
    confidence: float = 0.95,
    n_resamples: int = N_RESAMPLES,
    seed: int = 0,
    min_class_questions: int = MIN_CLASS_QUESTIONS,
) -> Discrimination:
    """Pooled outcome AUROC of ``questions`` with a cluster-bootstrap CI. Resamples where
    one class is empty are left out of the interval and counted (``resamples_dropped``);
    no interval when fewer than ``min_class_questions`` questions have a correct sample, or
    fewer have a wrong one."""
    questions = [q for q in questions if q.scores]
    n_pos = sum(sum(q.correct) for q in questions)
    n_neg = sum(len(q.correct) for q in questions) - n_pos
    value = auroc(
        [s for q in questions for s in q.scores], [y for q in questions for y in q.correct]
    )
    if value is None:
        if not questions:
            why = "no samples"
        else:
            why = "every sample is correct" if n_neg == 0 else "every sample is wrong"
        return Discrimination(None, None, None, len(questions), n_pos, n_neg, why)
    with_pos = sum(1 for q in questions if any(q.correct))
    with_neg = sum(1 for q in questions if not all(q.correct))
    if min(with_pos, with_neg) < min_class_questions:
        why = (
            f"{with_pos} question(s) have a correct sample and {with_neg} a wrong one; an "
            f"interval needs at least {min_class_questions} of each"
        )
        return Discrimination(value, None, None, len(questions), n_pos, n_neg, ci_reason=why)
    lo, hi, dropped = _clustered(questions, confidence, n_resamples, seed)
    return Discrimination(value, lo, hi, len(questions), n_pos, n_neg, resamples_dropped=dropped)


def _clustered(
    questions: Sequence[QuestionScores], confidence: float, n_resamples: int, seed: int
) -> tuple[float | None, float | None, int]:
    """The percentile interval of the pooled AUROC over resamples of questions, and how
    many resamples were left out (one class empty: AUROC undefined)."""
    c, pos, neg = _pair_counts(questions)
    if len(questions) < 2:
        return None, None, 0
    draws = []
    for w in _resample_weights(len(questions), n_resamples, seed):
        pairs = (w @ pos) * (w @ neg)
        # w_b' C w_b per resample b: the (correct, wrong) pairs it wins, ties counting half.
        wins = ((w @ c) * w).sum(axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            draws.append(np.where(pairs > 0, wins / np.where(pairs > 0, pairs, 1), np.nan))
    values = np.concatenate(draws)
    dropped = int(np.count_nonzero(~np.isfinite(values)))
    lo, hi = _percentile_ci(values, confidence)
    return lo, hi, dropped


def within_question(
    questions: Sequence[QuestionScores], confidence: float = 0.95, seed: int = 0
) -> WithinQuestion:
    """Mean per-question AUROC over the questions with both classes, with a bootstrap CI
    over those questions (none from a single question: it would have zero width)."""
    values = [v for q in questions if (v := auroc(q.scores, q.correct)) is not None]
    if not values:
        return WithinQuestion(None, None, None, 0, "no question has both correct and wrong samples")
    if len(values) < 2:
        why = "one question has both correct and wrong samples: no interval from one"
        return WithinQuestion(values[0], None, None, 1, ci_reason=why)
    lo, hi = bootstrap_ci(values, confidence=confidence, seed=seed)
    return WithinQuestion(float(np.mean(values)), lo, hi, len(values))


def _bin_index(scores: FloatArray, n_bins: int) -> NDArray[np.intp]:
    # [k/B, (k+1)/B) for every bin but the last, which also takes 1.0.
    return np.minimum((scores * n_bins).astype(np.intp), n_bins - 1)


def expected_calibration_error(
    scores: Sequence[float], correct: Sequence[bool], n_bins: int = ECE_BINS
) -> float | None:
    """ECE = sum over equal-width bins of (n_b / N) |accuracy_b - mean score_b|; ``None``
    without samples or with a score outside [0, 1]."""
    s = np.asarray(scores, dtype=float)
    if not s.size or s.min() < 0 or s.max() > 1:
        return None
    return _ece(s, np.asarray(correct, dtype=float), n_bins)


def _ece(scores: FloatArray, correct: FloatArray, n_bins: int) -> float:
    gap = np.bincount(_bin_index(scores, n_bins), weights=correct - scores, minlength=n_bins)
    # n_b/N x |acc_b - conf_b| = |sum over the bin of (correct - score)| / N.
    return float(np.abs(gap).sum() / scores.size)


def calibration(
    questions: Sequence[QuestionScores],
    n_bins: int = ECE_BINS,
    confidence: float = 0.95,
    n_resamples: int = N_RESAMPLES,
    seed: int = 0,
) -> Calibration:
    """ECE with a cluster-bootstrap CI, and the reliability bins. Only scores that are
    probabilities are calibrated: any score outside [0, 1] (a reward model's logit, an
    imported ``pred_score`` of 3.5) makes it ``None``, with the range in ``reason``; no
    mapping to [0, 1] is guessed, since it would change the number being judged."""
    questions = [q for q in questions if q.scores]
    all_scores = np.array([s for q in questions for s in q.scores], dtype=float)
    all_correct = np.array([y for q in questions for y in q.correct], dtype=float)
    n = int(all_scores.size)
    if not n:
        return Calibration(None, None, None, (), 0, "no samples")
    if all_scores.min() < 0 or all_scores.max() > 1:
        why = (
            f"scores range over [{all_scores.min():.3g}, {all_scores.max():.3g}], not [0, 1]: "
            "they are not probabilities of correctness"
        )
        return Calibration(None, None, None, (), n, why)
    ece = _ece(all_scores, all_correct, n_bins)
    idx = _bin_index(all_scores, n_bins)
    count = np.bincount(idx, minlength=n_bins)
    score_sum = np.bincount(idx, weights=all_scores, minlength=n_bins)
    right = np.bincount(idx, weights=all_correct, minlength=n_bins)
    bins = tuple(
        ReliabilityBin(
            low=k / n_bins,
            high=(k + 1) / n_bins,
            count=int(count[k]),
            mean_score=float(score_sum[k] / count[k]) if count[k] else None,
            accuracy=float(right[k] / count[k]) if count[k] else None,
        )
        for k in range(n_bins)
    )
    lo, hi = _ece_ci(questions, n_bins, confidence, n_resamples, seed)
    return Calibration(ece, lo, hi, bins, n)


def _ece_ci(
    questions: Sequence[QuestionScores],
    n_bins: int,
    confidence: float,
    n_resamples: int,
    seed: int,
) -> tuple[float | None, float | None]:
    if len(questions) < 2:
        return None, None
    # Per question and bin: sum of (correct - score), and the sample count.
    gap = np.zeros((len(questions), n_bins))
    size = np.array([len(q.scores) for q in questions], dtype=float)
    for i, q in enumerate(questions):
        s, y = _arrays(q)
        gap[i] = np.bincount(_bin_index(s, n_bins), weights=y - s, minlength=n_bins)
    weights = _resample_weights(len(questions), n_resamples, seed)
    draws = [np.abs(w @ gap).sum(axis=1) / (w @ size) for w in weights]
    return _percentile_ci(np.concatenate(draws), confidence)


def paired_difference(
    a: Sequence[float], b: Sequence[float], confidence: float = 0.95, seed: int = 0
) -> PairedDifference:
    """Mean of ``a - b`` over questions (paired), with the bootstrap CI of the differences."""
    (out,) = paired_differences([(a, b)], confidence, seed)
    return out


def paired_differences(
    pairs: Sequence[tuple[Sequence[float], Sequence[float]]],
    confidence: float = 0.95,
    seed: int = 0,
) -> list[PairedDifference]:
    """:func:`paired_difference` of each pair, the same numbers, their bootstrap intervals
    computed together (side by side in forked processes when there are many:
    :func:`~ttc_eval.analysis.stats.bootstrap_cis`)."""
    diffs = [np.asarray(a, dtype=float) - np.asarray(b, dtype=float) for a, b in pairs]
    cis = bootstrap_cis(diffs, confidence=confidence, seed=seed)
    return [
        PairedDifference(float(d.mean()) if d.size else float("nan"), lo, hi, d.size)
        for d, (lo, hi) in zip(diffs, cis, strict=True)
    ]


def over_optimization(
    budgets: Sequence[int], guided: Sequence[float], majority: Sequence[float]
) -> OverOptimization:
    """Where verifier-guided selection falls below majority: the first budget that it does,
    and the onset of a loss that lasts to the largest budget (see :class:`OverOptimization`).
    Accuracies closer than 1e-9 count as equal (the same samples chosen at N = 1)."""
    order = sorted(range(len(budgets)), key=lambda i: budgets[i])
    b = tuple(int(budgets[i]) for i in order)
    g = tuple(float(guided[i]) for i in order)
    m = tuple(float(majority[i]) for i in order)
    below = [gi < mi - 1e-9 for gi, mi in zip(g, m, strict=True)]
    first = next((bi for bi, lose in zip(b, below, strict=True) if lose), None)
    onset = None
    for i in range(len(b) - 1, -1, -1):
        if not below[i]:
            break
        onset = b[i]
    return OverOptimization(b, g, m, first, onset)
