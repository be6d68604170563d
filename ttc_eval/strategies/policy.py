"""Strategy ``policy``: apply a difficulty-adaptive policy fitted by ``ttc-eval policy fit``
(:mod:`ttc_eval.policy`).

At budget N, on each group of the pool: read the first K samples (the probe), estimate the
question's bin from them with the policy's estimator, and run the configuration the policy
chose for that bin at N. ``charge=total`` (default): the probe samples are the first K of
the N the configuration reads (reused, so the whole choice costs N samples, or the probe's K
if the configuration stops before them). ``charge=extra``: the configuration reads N
samples after the probe, which is charged on top (N + K; the pool must hold them). Every
probe sample, and the verifier's reading of it, is in the choice's measured cost.

Only configurations that read the sample pool can be chosen so far: a policy that chose a
search or revisions configuration is refused with a clear error.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from ttc_eval.analysis.estimators import disjoint_groups
from ttc_eval.errors import UsageError
from ttc_eval.policy import Policy, read_policy
from ttc_eval.registry import ESTIMATORS, STRATEGIES, strategy
from ttc_eval.strategies._base import (
    ExpansionSpec,
    PoolStrategy,
    RunDefaults,
    Strategy,
    StrategyBase,
)
from ttc_eval.types import Selection, Trace

CHARGES = ("total", "extra")
"""How the probe is paid for: within the budget (reused) or on top of it."""


@strategy("policy")
class PolicyStrategy(StrategyBase):
    """A fitted difficulty-adaptive policy: K probe samples estimate the bin, then the bin's
    configuration runs (``file``: the policy YAML; ``charge``: total or extra)."""

    def __init__(self, file: str, probe: int | None = None, charge: str = "total") -> None:
        self.path = Path(file)
        self.policy: Policy
        self.policy, self.digest = read_policy(self.path)
        if probe is not None and probe != self.policy.probe:
            raise UsageError(
                f"policy: probe={probe}, but {file} was fitted on {self.policy.probe} probe "
                "samples (its bin edges hold only for that many); fit another policy with "
                f"`ttc-eval policy fit RUN --probe {probe}`"
            )
        if charge not in CHARGES:
            raise UsageError(f"policy: charge must be one of {', '.join(CHARGES)}, not {charge!r}")
        self.charge = charge
        self.probe = self.policy.probe
        self.estimator = ESTIMATORS.create(self.policy.estimator, **self.policy.estimator_args)
        self.chosen: dict[str, Strategy] = {}
        for by_bin in self.policy.choices.values():
            for c in by_bin.values():
                if c.label not in self.chosen:
                    s = STRATEGIES.create(c.name, **c.args)
                    if not isinstance(s, PoolStrategy):
                        raise UsageError(
                            f"policy {file} chose {c.label}, which does not read the sample "
                            "pool; only pool configurations (majority, best_of_n, esc, ...) "
                            "can be applied so far"
                        )
                    self.chosen[c.label] = s
        self.needs_verifier = self.estimator.needs_verifier or any(
            s.needs_verifier for s in self.chosen.values()
        )
        self.needs_confidences = self.estimator.needs_confidences or any(
            s.needs_confidences for s in self.chosen.values()
        )
        self.fitted_on = frozenset(self.policy.fitted_on)

    def canonical_args(self, args: Mapping[str, Any]) -> dict[str, Any]:
        # The file's content decides every choice: its digest is part of the label (and so
        # of the run id), so a refitted policy never reuses another's results.
        return {**args, "probe": self.probe, "sha256": self.digest[:12]}

    def budgets(self, requested: Sequence[int]) -> list[int]:
        if self.charge == "total" and any(b < self.probe for b in requested):
            raise UsageError(
                f"policy: budget {min(requested)} is below the probe's {self.probe} samples; "
                "use budgets of at least the probe, or charge=extra"
            )
        missing = [b for b in requested if b not in self.policy.choices]
        if missing:
            raise UsageError(
                f"policy {self.path} has no choices at budget(s) {missing}: it was fitted at "
                f"{sorted(self.policy.choices)}; fit on a run with those budgets"
            )
        return list(requested)

    def expansion(self, budget: int, defaults: RunDefaults) -> ExpansionSpec:
        # The pool at the run's largest budget, plus the probe when it is paid on top.
        extra = self.probe if self.charge == "extra" else 0
        n = max(defaults.budgets) + extra
        return ExpansionSpec.of("sample", n=n, temperature=defaults.params.temperature)

    def select(self, trace: Trace, budget: int) -> list[Selection]:
        extra = self.charge == "extra"
        size = budget + self.probe if extra else budget
        out = []
        for g in disjoint_groups(len(trace.candidates), size):
            group = [trace.candidates[i] for i in g]
            probe = group[: self.probe]
            feature = self.estimator.feature(probe)
            bin_ = self.policy.bin_of(feature) if feature is not None else 0
            chosen = self.chosen[self.policy.choice(budget, bin_).label]
            body = group[self.probe :] if extra else group
            (sel,) = chosen.select(replace(trace, candidates=tuple(body)), budget)
            # The probe is spent whatever the configuration reads of it (an adaptive rule
            # may stop before its end).
            unread = [c for c in probe if c.index not in set(sel.read)]
            read = sorted({*(c.index for c in probe), *sel.read})
            out.append(
                replace(
                    sel,
                    read=tuple(read),
                    n_generations=len(read),
                    n_tokens=sel.n_tokens + sum(c.n_tokens for c in unread),
                )
            )
        return out
