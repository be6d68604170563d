"""The report's comparison of a difficulty-adaptive policy (``--strategy policy:file=...``)
with what it claims to beat, on the run's own (test) questions, at equal compute.

For each policy configuration and budget N every side reads the same pool, so the
comparison is paired question by question, at the samples the policy is charged (N, or
N + K with ``charge=extra``):

- the policy itself (probe included in its measured cost);
- best-of-N (weighted; the paper's baseline) and majority voting;
- the best single configuration: the policy's fallback (bin 0) choice, chosen on the
  calibration questions, run on every question (a search or revisions fallback at the
  budget the policy runs it, on its own trace, without the probe);
- the oracle-bin policy, in-sample: the test questions' own difficulty bins (from their
  ground truth) and, per bin, the candidate configuration that scores best on those very
  questions; no deployable policy can know either. It bounds what choosing one
  configuration per question-level difficulty bin can buy, not the policy itself: the
  policy routes each group of a pool by its own probe, which can beat it. Search and
  revisions candidates take part where the run holds their traces (the budgets the policy
  runs them at, the largest within the compared samples).

Each side gets its accuracy with a bootstrap CI, its measured cost (samples, generated
tokens, FLOPs where parameter counts are known) and the paired difference to the policy
with a bootstrap CI of the per-question differences; the policy gets the efficiency ratio:
the generated tokens best-of-N needs to match its accuracy (interpolated in log tokens over
best-of-N's budgets on the same pool) over the policy's own.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from ttc_eval.analysis.estimators import disjoint_groups
from ttc_eval.analysis.flops import inference_flops
from ttc_eval.analysis.optimal import budget_to_match
from ttc_eval.analysis.stats import bootstrap_ci
from ttc_eval.pipeline import evaluate
from ttc_eval.policy import companion_name, group_size, reads_pool
from ttc_eval.registry import STRATEGIES
from ttc_eval.strategies._base import Strategy
from ttc_eval.strategies.policy import PolicyStrategy
from ttc_eval.types import QuestionResult, Trace

Results = dict[str, QuestionResult]
"""Question id -> a configuration's result on it."""


def _side(
    kind: str,
    label: str,
    budget: int,
    results: Results,
    policy: Results,
    flops_of: Callable[[QuestionResult], float | None],
    seed: int,
    in_sample: bool = False,
) -> dict[str, Any]:
    """One side of the comparison; ``in_sample``: chosen from these questions' ground truth."""
    qs = sorted(results)
    acc = [results[q].accuracy for q in qs]
    flops = [flops_of(results[q]) for q in qs]
    side: dict[str, Any] = {
        "kind": kind,
        "label": label,
        "budget": budget,
        "in_sample": in_sample,
        "accuracy": sum(acc) / len(acc),
        "ci": list(bootstrap_ci(acc, seed=seed)),
        "samples": sum(results[q].cost.samples for q in qs) / len(qs),
        "generated_tokens": sum(results[q].cost.generated_tokens for q in qs) / len(qs),
        "flops": None if None in flops else sum(f or 0.0 for f in flops) / len(qs),
    }
    if kind != "policy":
        diff = [policy[q].accuracy - results[q].accuracy for q in qs]
        side["policy_minus_this"] = sum(diff) / len(diff)
        side["paired_ci"] = list(bootstrap_ci(diff, seed=seed))
    return side


def _oracle_bins(
    candidates: Mapping[str, Results], bins: Mapping[str, str], questions: Sequence[str]
) -> tuple[Results, dict[str, str]]:
    """Per oracle bin of ``questions``, the candidate with the best mean accuracy on that
    bin's own questions (ties: the earlier candidate), chosen in-sample: the most a choice
    per question-level bin can buy."""
    order = list(candidates)
    chosen: dict[str, str] = {}
    out: Results = {}
    for value in sorted({bins[q] for q in questions if q in bins}):
        mine = [q for q in questions if bins.get(q) == value]
        best = max(
            order,
            key=lambda c: (sum(candidates[c][q].accuracy for q in mine), -order.index(c)),
        )
        chosen[value] = best
        out.update({q: candidates[best][q] for q in mine})
    return out, chosen


def _efficiency(
    reference: Strategy, traces: Mapping[str, Trace], target: float, tokens: float
) -> dict[str, Any]:
    """The generated tokens ``reference`` needs on the same pools to reach ``target``
    accuracy, over ``tokens`` (the policy's)."""
    pool = min(len(t.candidates) for t in traces.values())
    budgets = [b for b in (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024) if b <= pool]
    curve: dict[float, float] = {}
    for b in budgets:
        res = [evaluate(reference, t, b) for t in traces.values()]
        spent = sum(r.cost.generated_tokens for r in res) / len(res)
        curve[spent] = max(curve.get(spent, 0.0), sum(r.accuracy for r in res) / len(res))
    needed, how = budget_to_match(curve, target)
    return {
        "reference": reference.label(),
        "reference_tokens_to_match": needed,
        "efficiency_ratio": needed / tokens if needed is not None and tokens else None,
        "efficiency_note": how,
    }


def policy_comparison(
    strategies: Sequence[tuple[Strategy, Mapping[int, Mapping[str, Trace]]]],
    oracle_bins: Mapping[str, str],
    params: Mapping[str, int | None],
    seed: int = 0,
) -> list[dict[str, Any]]:
    """One entry per policy configuration and budget (see the module docstring).
    ``strategies`` are the run's configurations with their traces per budget (only policies
    are compared); ``oracle_bins`` the run's oracle difficulty bin per question; ``params``
    the non-embedding parameters per role (FLOPs are None where one is unknown)."""

    def flops_of(r: QuestionResult) -> float | None:
        if any(params.get(role) is None for role in r.cost.role_tokens):
            return None
        return sum(inference_flops(params[role] or 0, t) for role, t in r.cost.role_tokens.items())

    out = []
    for strategy, by_budget in strategies:
        if not isinstance(strategy, PolicyStrategy):
            continue
        for budget, traces in sorted(by_budget.items()):
            if len(traces) < 2:
                continue
            out.append(_compare(strategy, budget, traces, oracle_bins, flops_of, seed))
    return out


def _compare(
    strategy: PolicyStrategy,
    budget: int,
    traces: Mapping[str, Trace],
    oracle_bins: Mapping[str, str],
    flops_of: Callable[[QuestionResult], float | None],
    seed: int,
) -> dict[str, Any]:
    policy = strategy.policy
    qs = sorted(traces)
    at = group_size(budget, strategy.probe, strategy.charge)

    done: dict[tuple[str, int], Results] = {}

    def run(s: Strategy, b: int, label: str | None = None) -> Results:
        # Baselines are often candidates too (best-of-N, majority): each is evaluated once.
        # A search or revisions configuration (``label``) reads its companion trace.
        key = (s.label(), b)
        if key not in done:
            done[key] = {
                q: evaluate(s, traces[q].companions[companion_name(label, b)] if label
                            else traces[q], b)
                for q in qs
            }  # fmt: skip
        return done[key]

    def own_budget(label: str, most: int) -> int | None:
        """The largest budget up to ``most`` at which every question holds the trace of
        the search or revisions configuration ``label``."""
        held = [
            {int(n.rsplit("@", 1)[1]) for n in traces[q].companions if n.rsplit("@", 1)[0] == label}
            for q in qs
        ]
        return max((b for b in set.intersection(*held) if b <= most), default=None)

    mine = run(strategy, budget)
    sides = [_side("policy", strategy.label(), at, mine, mine, flops_of, seed)]
    scored = all(t.verifier is not None for t in traces.values())
    confident = all(c.confidences is not None for t in traces.values() for c in t.candidates)
    baselines = (["best_of_n"] if scored else []) + ["majority"]
    reference: Strategy | None = None
    for name in baselines:
        s = STRATEGIES.create(name)
        reference = reference or s
        sides.append(_side(name, s.label(), at, run(s, at), mine, flops_of, seed))
    fallback = policy.choice(budget, 0)
    best = strategy.chosen[fallback.label]
    if reads_pool(best):
        # At the samples the policy is charged: a choice made at equal tokens may read fewer
        # (then with the probe on top when the policy pays for it on top, as it does).
        single = (
            group_size(fallback.budget, strategy.probe, strategy.charge) if fallback.budget else at
        )
        sides.append(
            _side("best_single", fallback.label, single, run(best, single), mine, flops_of, seed)
        )
    else:
        # A search or revisions configuration alone, at the budget the policy runs it.
        single = fallback.budget or budget
        sides.append(
            _side("best_single", fallback.label, single, run(best, single, fallback.label),
                  mine, flops_of, seed)
        )  # fmt: skip
    # The candidates these traces can serve (a run without a verifier cannot score
    # best-of-N, one without token confidences cannot weigh DeepConf; a search only where
    # the run holds its trace).
    candidates: dict[str, Results] = {}
    for label, s in strategy.chosen.items():
        if (s.needs_verifier and not scored) or (s.needs_confidences and not confident):
            continue
        if reads_pool(s):
            candidates[label] = run(s, at)
        elif (b := own_budget(label, at)) is not None:
            candidates[label] = run(s, b, label)
    upper, chosen = _oracle_bins(candidates, oracle_bins, qs)
    if candidates and len(upper) == len(qs):
        sides.append(
            _side("oracle_bins", "oracle-bin policy (in-sample)", at, upper, mine,
                  flops_of, seed, in_sample=True)
        )  # fmt: skip
    assert reference is not None  # majority is always a baseline
    groups = len(disjoint_groups(min(len(t.candidates) for t in traces.values()), at))
    return {
        "policy": strategy.label(),
        "budget": budget,
        "probe": strategy.probe,
        "charge": strategy.charge,
        "compared_at_samples": at,
        "n_problems": len(qs),
        "groups_per_question": groups,
        "sides": sides,
        "oracle_bin_choices": chosen,
        **_efficiency(reference, traces, sides[0]["accuracy"], sides[0]["generated_tokens"]),
    }
