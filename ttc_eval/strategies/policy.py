"""Strategy ``policy``: apply a difficulty-adaptive policy fitted by ``ttc-eval policy fit``
(:mod:`ttc_eval.policy`).

At budget N, on each group of the pool: read the first K samples (the probe), estimate the
question's bin from them with the policy's estimator, and run the configuration the policy
chose for that bin at N (:func:`ttc_eval.policy.apply_in_group`). ``charge=total`` (the
default): the probe samples are the first K of the N the configuration reads (reused, so
the whole choice costs N samples, or the probe's K if the configuration stops before them).
``charge=extra``: the configuration reads N samples after the probe, which is charged on top
(N + K; the pool holds them). The policy file says which way it was fitted, and a run that
asks for the other is refused. Every probe sample, and the verifier's reading where the
estimator or the chosen configuration reads scores, is in the choice's measured cost.

Only configurations that read the sample pool can be chosen so far: a policy that chose a
search or revisions configuration is refused with a clear error.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from ttc_eval.analysis.estimators import disjoint_groups
from ttc_eval.errors import UsageError
from ttc_eval.policy import (
    CHARGES,
    Policy,
    apply_in_group,
    group_size,
    load_policy,
    resolve_policy_file,
)
from ttc_eval.registry import ESTIMATORS, STRATEGIES, strategy
from ttc_eval.strategies._base import (
    ExpansionSpec,
    PoolStrategy,
    RunDefaults,
    Strategy,
    StrategyBase,
)
from ttc_eval.types import Selection, Trace


@strategy("policy")
class PolicyStrategy(StrategyBase):
    """A fitted difficulty-adaptive policy: K probe samples estimate the bin, then the bin's
    configuration runs (``file``: the policy YAML; ``charge``: total or extra, as fitted)."""

    def __init__(self, file: str, probe: int | None = None, charge: str | None = None) -> None:
        self.path = resolve_policy_file(file)
        self.policy: Policy
        self.policy, self.digest, raw = load_policy(self.path)
        if probe is not None and probe != self.policy.probe:
            raise UsageError(
                f"policy: probe={probe}, but {file} was fitted on {self.policy.probe} probe "
                "samples (its bin edges hold only for that many); fit another policy with "
                f"`ttc-eval policy fit RUN --probe {probe}`"
            )
        if charge is not None and charge not in CHARGES:
            raise UsageError(f"policy: charge must be one of {', '.join(CHARGES)}, not {charge!r}")
        if charge is not None and charge != self.policy.charge:
            raise UsageError(
                f"policy: charge={charge}, but {file} was fitted with charge={self.policy.charge} "
                "(its choices assume that many samples after the probe); fit another with "
                f"`ttc-eval policy fit RUN --charge {charge}`, or drop charge="
            )
        self.charge = self.policy.charge
        self.probe = self.policy.probe
        self.estimator = ESTIMATORS.create(self.policy.estimator, **self.policy.estimator_args)
        self.chosen: dict[str, Strategy] = {}
        for c in [*self.policy.candidates, *self._choices()]:
            if c.label not in self.chosen:
                s = STRATEGIES.create(c.name, **c.args)
                if not isinstance(s, PoolStrategy):
                    raise UsageError(
                        f"policy {file} chose {c.label}, which does not read the sample "
                        "pool; only pool configurations (majority, best_of_n, esc, ...) "
                        "can be applied so far"
                    )
                self.chosen[c.label] = s
        used = {c.label for c in self._choices()}
        self.needs_verifier = self.estimator.needs_verifier or any(
            self.chosen[c].needs_verifier for c in used
        )
        self.needs_confidences = self.estimator.needs_confidences or any(
            self.chosen[c].needs_confidences for c in used
        )
        self.fitted_on = frozenset(self.policy.fitted_on)
        self.fitted_text = frozenset(self.policy.fitted_text)
        self.fitted_files = {file: raw}

    def _choices(self) -> list[Any]:
        return [c for by_bin in self.policy.choices.values() for c in by_bin.values()]

    def canonical_args(self, args: Mapping[str, Any]) -> dict[str, Any]:
        # The file's content decides every choice: its digest is part of the label (and so
        # of the run's identity), so a refitted policy never reuses another's results.
        return {**args, "probe": self.probe, "charge": self.charge, "sha256": self.digest[:12]}

    def budgets(self, requested: Sequence[int]) -> list[int]:
        if self.charge == "total" and any(b < self.probe for b in requested):
            raise UsageError(
                f"policy: budget {min(requested)} is below the probe's {self.probe} samples; "
                "use budgets of at least the probe, or fit with --charge extra"
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
        n = group_size(max(defaults.budgets), self.probe, self.charge)
        return ExpansionSpec.of("sample", n=n, temperature=defaults.params.temperature)

    def choose(self, trace: Trace, group: Sequence[Any], budget: int) -> tuple[int, Selection]:
        """The bin the group's probe falls in, and the policy's choice on the group."""
        feature = self.estimator.feature(group[: self.probe])
        bin_ = self.policy.bin_of(feature) if feature is not None else 0
        choice = self.policy.choice(budget, bin_)
        sel = apply_in_group(
            self.chosen[choice.label],
            trace,
            group,
            self.probe,
            choice.budget or budget,
            self.charge,
            self.estimator.needs_verifier,
        )
        return bin_, sel

    def select(self, trace: Trace, budget: int) -> list[Selection]:
        size = group_size(budget, self.probe, self.charge)
        return [
            self.choose(trace, [trace.candidates[i] for i in g], budget)[1]
            for g in disjoint_groups(len(trace.candidates), size)
        ]
