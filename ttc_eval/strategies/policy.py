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

A search or revisions configuration cannot reuse the probe (it does not read the pool): in
the groups whose bin chose one, the probe is read from the pool and the configuration runs
at the budget the policy file records for it (at most N - K with ``charge=total``, N with
``extra``) on its own expansion, which the run expands for every question
(:meth:`PolicyStrategy.also_reads`); the choice is charged the probe plus what that
configuration read, the question's prompt once.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

from ttc_eval.analysis.estimators import disjoint_groups
from ttc_eval.errors import UsageError
from ttc_eval.policy import (
    CHARGES,
    Choice,
    Policy,
    apply_choice,
    companion_name,
    group_size,
    load_policy,
    reads_pool,
    resolve_policy_file,
)
from ttc_eval.registry import ESTIMATORS, STRATEGIES, strategy
from ttc_eval.strategies._base import (
    ExpansionSpec,
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
                try:
                    self.chosen[c.label] = STRATEGIES.create(c.name, **c.args)
                except (TypeError, KeyError) as e:
                    raise UsageError(
                        f"policy {file} chose {c.label}, which this ttc-eval cannot build "
                        f"({e}); fit the policy again with this version"
                    ) from None
        used = {c.label for c in self._choices()}
        # The model roles of what it may run (a reviser), with their built-in templates.
        self.roles = {r: t for c in sorted(used) for r, t in self.chosen[c].roles.items()}
        self.needs_verifier = self.estimator.needs_verifier or any(
            self.chosen[c].needs_verifier for c in used
        )
        self.needs_confidences = self.estimator.needs_confidences or any(
            self.chosen[c].needs_confidences for c in used
        )
        self.fitted_on = frozenset(self.policy.fitted_on)
        self.fitted_text = frozenset(self.policy.fitted_text)
        self.fitted_files = {file: raw}

    def _choices(self) -> list[Choice]:
        return [c for by_bin in self.policy.choices.values() for c in by_bin.values()]

    def _elsewhere(self, budget: int) -> list[Choice]:
        """The choices at ``budget`` that run on an expansion of their own (search,
        revisions), each recording the budget it runs at."""
        return [
            c
            for c in self.policy.choices.get(budget, {}).values()
            if not reads_pool(self.chosen[c.label])
        ]

    def also_reads(self, budget: int, defaults: RunDefaults) -> dict[str, ExpansionSpec]:
        # Expanded for every question, so that every group can run its bin's choice; the
        # measured cost charges only what the chosen configuration read.
        out: dict[str, ExpansionSpec] = {}
        for c in self._elsewhere(budget):
            at = c.budget or budget
            # Sized for that budget alone: revisions would otherwise grow a pool of chains x
            # length of the run's largest budget, of which a choice reads ``at``.
            alone = replace(defaults, budgets=(at,))
            out[companion_name(c.label, at)] = self.chosen[c.label].expansion(at, alone)
        return out

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
        for b in requested:
            for c in self._elsewhere(b):
                at = c.budget or b
                if at not in self.chosen[c.label].budgets([at]):
                    raise UsageError(
                        f"policy {self.path} runs {c.label} at budget {at}, which it cannot "
                        "serve; fit the policy again with this version"
                    )
        return list(requested)

    def expansion(self, budget: int, defaults: RunDefaults) -> ExpansionSpec:
        # The pool at the run's largest budget, plus the probe when it is paid on top.
        n = group_size(max(defaults.budgets), self.probe, self.charge)
        return ExpansionSpec.of("sample", n=n, temperature=defaults.params.temperature)

    def choose(
        self, trace: Trace, group: Sequence[Any], budget: int, index: int = 0
    ) -> tuple[int, Selection]:
        """The bin the probe of the ``index``-th group falls in, and the policy's choice."""
        feature = self.estimator.feature(group[: self.probe])
        bin_ = self.policy.bin_of(feature) if feature is not None else 0
        choice = self.policy.choice(budget, bin_)
        sel = apply_choice(
            self.chosen[choice.label],
            choice.label,
            trace,
            group,
            index,
            self.probe,
            choice.budget or budget,
            self.charge,
            self.estimator.needs_verifier,
        )
        return bin_, sel

    def select(self, trace: Trace, budget: int) -> list[Selection]:
        size = group_size(budget, self.probe, self.charge)
        return [
            self.choose(trace, [trace.candidates[i] for i in g], budget, index)[1]
            for index, g in enumerate(disjoint_groups(len(trace.candidates), size))
        ]
