"""Model-specific difficulty bins (Snell et al. section 3.2): questions cut into quantile bins
by how often the model itself solves them (``oracle``) or by how highly the verifier scores its
samples (``predicted``, which needs no ground truth)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from ttc_eval.aggregation import aggregate
from ttc_eval.types import BIN_KINDS, Trace

N_BINS = 5
"""Bins per cut (the paper uses 5)."""

__all__ = ["BIN_KINDS", "N_BINS", "difficulty", "mean_verifier_score", "pass_at_1", "quantile_bins"]


def quantile_bins(values: Mapping[str, float], n_bins: int = N_BINS) -> dict[str, str]:
    """Cut questions into ``n_bins`` equal-count bins by ``values`` (higher = easier).

    Bin ``"1"`` is the easiest. Questions are ranked by value, highest first; ties are
    broken by question id, ascending, so the cut is deterministic and the bins differ in
    size by at most one: rank r (0-based) of n questions goes to bin floor(r * n_bins / n) + 1.
    Equal values may therefore straddle a bin edge (with pass@1 many questions tie at 0 or
    1, and a value-based cut would leave bins empty). With fewer questions than bins, some
    bins are empty.
    """
    order = sorted(values, key=lambda q: (-values[q], q))
    n = len(order)
    return {q: str(r * n_bins // n + 1) for r, q in enumerate(order)}


def pass_at_1(trace: Trace) -> float:
    """Fraction of the pool's samples that are correct."""
    return sum(bool(c.correct) for c in trace.candidates) / max(1, len(trace.candidates))


def mean_verifier_score(trace: Trace, aggregation: str = "last") -> float | None:
    """Mean solution score of the pool's samples (``None`` without verifier scores)."""
    scores = [aggregate(c.step_scores, aggregation) for c in trace.candidates if c.step_scores]
    return sum(scores) / len(scores) if scores else None


def difficulty(pool: Mapping[str, Trace], kinds: Sequence[str]) -> dict[str, dict[str, object]]:
    """Per question: pass@1 and mean verifier score of the pool, and its ``oracle`` and
    ``predicted`` bins when asked for (``predicted`` only when every question was scored)."""
    out: dict[str, dict[str, object]] = {
        q: {"pool_samples": len(t.candidates), "pass_at_1": pass_at_1(t)}
        for q, t in sorted(pool.items())
    }
    if "oracle" in kinds and pool:
        for q, b in quantile_bins({q: pass_at_1(t) for q, t in pool.items()}).items():
            out[q]["oracle"] = b
    scores = {q: mean_verifier_score(t) for q, t in pool.items()}
    for q, s in scores.items():
        out[q]["verifier_score"] = s
    if "predicted" in kinds and pool and all(s is not None for s in scores.values()):
        known = {q: float(s) for q, s in scores.items() if s is not None}
        for q, b in quantile_bins(known).items():
            out[q]["predicted"] = b
    return out
