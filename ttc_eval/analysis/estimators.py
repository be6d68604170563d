"""Estimators over one question's sample pool."""

from __future__ import annotations

from scipy.special import comb


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k of Chen et al. (2021): P(at least one of k draws without replacement
    from n samples, c of them correct, is correct) = 1 - C(n-c, k) / C(n, k)."""
    if not 0 < k <= n:
        raise ValueError(f"pass@k needs 0 < k <= n, got k={k}, n={n}")
    if n - c < k:
        return 1.0
    return float(1.0 - comb(n - c, k, exact=True) / comb(n, k, exact=True))


def disjoint_groups(n: int, k: int) -> list[range]:
    """The floor(n/k) disjoint groups of k consecutive pool positions.

    Accuracy at budget k averages the strategy over all of them: the same generations as
    using only the first k samples, with much lower variance.
    """
    if not 0 < k <= n:
        raise ValueError(f"budget {k} does not fit a pool of {n}")
    return [range(g * k, (g + 1) * k) for g in range(n // k)]
