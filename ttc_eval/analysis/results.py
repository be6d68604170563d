"""Accuracy and measured cost by strategy configuration x budget x difficulty label, from
per-question results only (``ttc_eval.results`` evaluates the stored traces into them)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ttc_eval.analysis.stats import bootstrap_cis
from ttc_eval.types import Cost, QuestionResult


@dataclass(frozen=True)
class ConfigResults:
    """One strategy configuration's per-question results, ready to be summarized."""

    label: str
    """Display name with arguments, e.g. ``best_of_n(aggregation=last,mode=weighted)``."""
    name: str
    """Registered strategy name."""
    args: Mapping[str, Any]
    """Its arguments."""
    needs_verifier: bool
    """Whether it reads verifier scores."""
    roles: Mapping[str, str | None]
    """Model of each role it used (``policy`` included)."""
    shapes: Mapping[int, str | None]
    """Parallel x sequential shape per budget (``None``: no shape)."""
    results: Mapping[int, Mapping[str, QuestionResult]]
    """Per budget, per question id."""
    labels: Mapping[str, Mapping[str, Any]]
    """Dataset labels per question."""
    thinking_cap: int | None = None
    """Thinking tokens it allows a sample (the ``thinking_budget`` strategy's budget)."""


def mean_cost(costs: Sequence[Cost], params: Mapping[str, int | None]) -> dict[str, Any]:
    """Mean measured cost per question, with FLOPs per role (2 x non-embedding parameters x
    tokens the role processed; ``None`` where a role's parameter count is unknown)."""
    return _cost_summary(Cost.mean(costs), sorted(x.seconds for x in costs), params)


_FIELDS = ("samples", "prompt_tokens", "prompt_tokens_computed", "generated_tokens",
           "verifier_tokens", "seconds")  # fmt: skip
""":class:`Cost`'s scalar fields, in the order of its constructor."""


class _GroupCosts:
    """One configuration's per-question costs at one budget as a matrix, so that the mean
    cost of each of its groups of questions (every label and bin: each question is in
    several) is a running sum over rows, in the order and with the sums :func:`mean_cost`
    makes (``Cost.total`` adds in order; so does ``cumsum``)."""

    def __init__(self, results: Mapping[str, QuestionResult]) -> None:
        self.results = results
        costs = [r.cost for r in results.values()]
        self.roles = tuple(costs[0].role_tokens) if costs else ()
        self.rows = {p: i for i, p in enumerate(results)}
        self.matrix: np.ndarray[Any, np.dtype[np.float64]] | None = None
        if costs and all(tuple(c.role_tokens) == self.roles for c in costs):
            self.matrix = np.array(
                [[getattr(c, f) for f in _FIELDS] + [c.role_tokens[r] for r in self.roles]
                 for c in costs],
                dtype=np.float64,
            )  # fmt: skip

    def mean(self, pids: Sequence[str], params: Mapping[str, int | None]) -> dict[str, Any]:
        if self.matrix is None or not pids:  # roles that differ by question: one by one
            return mean_cost([self.results[p].cost for p in pids], params)
        sub = self.matrix[[self.rows[p] for p in pids]]
        v = (np.cumsum(sub, axis=0)[-1] * (1 / len(pids))).tolist()
        roles = {r: v[len(_FIELDS) + j] for j, r in enumerate(self.roles)}
        c = Cost(v[0], v[1], v[2], v[3], v[4], v[5], roles)
        return _cost_summary(c, np.sort(sub[:, _FIELDS.index("seconds")]), params)


def _cost_summary(
    c: Cost, seconds: Sequence[float] | np.ndarray[Any, Any], params: Mapping[str, int | None]
) -> dict[str, Any]:
    """A row's ``cost``: the mean cost ``c``, the tail of the (sorted) ``seconds``, FLOPs."""
    flops: dict[str, float | None] = {}
    for role, tokens in sorted(c.role_tokens.items()):
        n = params.get(role)
        flops[role] = 2.0 * n * tokens if n is not None else None
    known = [f for f in flops.values() if f is not None]
    return {
        "samples": c.samples,
        "prompt_tokens": c.prompt_tokens,
        "prompt_tokens_computed": c.prompt_tokens_computed,
        "generated_tokens": c.generated_tokens,
        "verifier_tokens": c.verifier_tokens,
        "seconds": c.seconds,
        # Sequential strategies are cheap in FLOPs and slow per question: the tail shows it.
        "seconds_p90": float(np.percentile(seconds, 90)) if len(seconds) else 0.0,
        "flops": flops,
        "flops_total": sum(known) if len(known) == len(flops) else None,
    }


def summarize(
    configs: Sequence[ConfigResults],
    label_keys: Sequence[str],
    verifier: str | None,
    seed: int = 0,
    bins: Mapping[str, Mapping[str, str]] | None = None,
    params: Mapping[str, int | None] | None = None,
) -> list[dict[str, Any]]:
    """One row per (configuration, budget, label kind, label value), plus label ``all``.
    Label kinds are the dataset's labels (``label_keys``, e.g. ``level``) and the difficulty
    bins in ``bins`` (kind -> question id -> bin). Each row has the nominal budget and the
    measured mean cost per question (``cost``; FLOPs per role from ``params``, the roles'
    non-embedding parameter counts)."""
    rows: list[dict[str, Any]] = []
    samples: list[list[float]] = []  # each row's per-question accuracies, for its CI
    for cr in configs:
        # The same questions at every budget (as a rule): their groups are made once.
        made: dict[tuple[str, ...], list[tuple[str, str, list[str]]]] = {}
        for budget, res in cr.results.items():
            if not res:
                continue
            key = tuple(res)
            if key not in made:
                made[key] = label_groups({p: cr.labels[p] for p in res}, label_keys, bins or {})
            costs = _GroupCosts(res)
            for kind, value, pids in made[key]:
                acc = [res[p].accuracy for p in pids]
                samples.append(acc)
                rows.append(
                    {
                        "strategy": cr.name,
                        "config": cr.label,
                        "strategy_args": dict(cr.args),
                        "verifier": verifier if cr.needs_verifier else None,
                        "roles": dict(cr.roles),
                        "budget": budget,
                        "shape": cr.shapes.get(budget),
                        "label_kind": kind,
                        "label": value,
                        "n_problems": len(pids),
                        "accuracy": sum(acc) / len(acc),
                        "ci_low": None,  # below, all rows at once
                        "ci_high": None,
                        "mean_generations": sum(res[p].n_generations for p in pids) / len(pids),
                        "mean_generated_tokens": sum(res[p].n_tokens for p in pids) / len(pids),
                        "cost": costs.mean(pids, params or {}),
                        **thinking_row([res[p] for p in pids], cr.thinking_cap),
                    }
                )
    for row, (lo, hi) in zip(rows, bootstrap_cis(samples, seed=seed), strict=True):
        row["ci_low"], row["ci_high"] = lo, hi
    return rows


def thinking_row(results: Sequence[QuestionResult], cap: int | None) -> dict[str, Any]:
    """A row's ``thinking`` entry (none for a run without thinking delimiters): thinking
    and answer tokens per sample read, the most one sample thought, the cap it was held to,
    how many questions had a sample over it, how many had a sample the engine overran its
    cap for (cut back to it), and the share of samples whose thinking never closed (they
    have no answer)."""
    known = [r for r in results if r.thinking_max is not None]
    if not known:
        return {}
    samples = sum(r.cost.samples for r in known) or 1
    thinking = sum(r.cost.thinking_tokens for r in known)
    most = max(int(r.thinking_max or 0) for r in known)
    return {
        "thinking": {
            "budget": cap,
            "tokens_mean": thinking / samples,
            "tokens_max": most,
            "answer_tokens_mean": sum(r.cost.generated_tokens for r in known) / samples
            - thinking / samples,
            "over_budget": sum(1 for r in known if cap is not None and (r.thinking_max or 0) > cap),
            "overrun": sum(1 for r in known if r.overrun),
            "unclosed_rate": sum(r.unclosed or 0.0 for r in known) / len(known),
        }
    }


def label_groups(
    labels: Mapping[str, Mapping[str, Any]],
    label_keys: Sequence[str],
    bins: Mapping[str, Mapping[str, str]],
) -> list[tuple[str, str, list[str]]]:
    """(kind, value, question ids) for all questions, each dataset label and each bin kind."""
    pids = list(labels)
    groups: list[tuple[str, str, list[str]]] = [("all", "all", pids)]
    for key in label_keys:
        for v in sorted({str(labels[p].get(key)) for p in pids}):
            groups.append((key, v, [p for p in pids if str(labels[p].get(key)) == v]))
    for kind, by_q in bins.items():
        for v in sorted({by_q[p] for p in pids if p in by_q}):
            groups.append((kind, v, [p for p in pids if by_q.get(p) == v]))
    return groups
