"""A deployable difficulty-adaptive policy (Snell et al. 2024, section 3): estimate how hard a
question is for the model from K probe samples, then spend the budget the way that worked
best at that estimated difficulty.

:func:`fit_policy` learns one from calibration runs: the estimator's feature of each
question's first K pool samples, quantile bin edges on it, and per bin and budget the
configuration chosen by the same 2-fold cross-validation as the compute-optimal report. The
:class:`Policy` is written to YAML with everything needed to apply it (the ``policy``
strategy, :mod:`ttc_eval.strategies.policy`): the estimator, the edges, the choices, the
questions it was fitted on (so that it is never evaluated on them) and the source runs' ids
and versions.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from ttc_eval.errors import UsageError
from ttc_eval.types import Candidate, Trace

if TYPE_CHECKING:
    from ttc_eval.estimators._base import Estimator
    from ttc_eval.strategies._base import Strategy

POLICY_VERSION = "1"
"""Bumped whenever the same calibration runs could give another policy; recorded in the
file, and the ``policy`` strategy's label carries the file's digest."""


@dataclass(frozen=True)
class Choice:
    """The configuration a policy runs in one bin at one budget."""

    name: str
    """Registered strategy name."""
    args: Mapping[str, Any]
    """Its arguments, as the strategy recorded them."""
    label: str
    """Its label in the calibration runs' reports."""
    share: float
    """Share of cross-validation folds that chose it (how settled the choice is)."""

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "args": dict(self.args),
            "label": self.label,
            "share": self.share,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Choice:
        return cls(str(d["name"]), dict(d.get("args") or {}), str(d["label"]), float(d["share"]))


@dataclass(frozen=True)
class Policy:
    """A fitted difficulty-adaptive policy."""

    estimator: str
    """Registered difficulty estimator (``ttc-eval list estimators``)."""
    estimator_args: Mapping[str, Any]
    """Its arguments."""
    probe: int
    """K: the probe samples the feature is read from (the first K of each group)."""
    edges: tuple[float, ...]
    """Ascending feature thresholds between the bins (n_bins - 1 of them). A higher feature
    is an easier question: bin 1 (the easiest) is above every edge."""
    choices: Mapping[int, Mapping[int, Choice]]
    """Budget -> bin -> the configuration to run; bin 0 is the fallback for a bin the
    calibration could not decide (too few questions in it): the best over all questions."""
    fitted_on: tuple[str, ...]
    """Questions the policy was fitted on, as ``task:problem id``: never evaluate it on them."""
    sources: tuple[Mapping[str, Any], ...] = ()
    """The calibration runs: run id, task, model and versions."""
    axis: str = "budget"
    """What "equal compute" meant when choosing (only ``budget`` so far)."""
    version: str = POLICY_VERSION
    """ttc-eval's policy format and fitting rules."""
    notes: tuple[str, ...] = field(default=())
    """What the fit could not do as asked (bins left to the fallback)."""

    @property
    def n_bins(self) -> int:
        return len(self.edges) + 1

    def bin_of(self, feature: float) -> int:
        """The bin of a feature: 1 (the easiest) above every edge, ``n_bins`` below every one;
        a feature on an edge goes to the easier side."""
        return 1 + sum(1 for e in self.edges if feature < e)

    def choice(self, budget: int, bin_: int) -> Choice:
        by_bin = self.choices[budget]
        return by_bin.get(bin_) or by_bin[0]

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "estimator": {"name": self.estimator, "args": dict(self.estimator_args)},
            "probe": self.probe,
            "axis": self.axis,
            "edges": list(self.edges),
            "choices": {
                int(b): {int(k): c.to_dict() for k, c in sorted(by_bin.items())}
                for b, by_bin in sorted(self.choices.items())
            },
            "fitted_on": list(self.fitted_on),
            "sources": [dict(s) for s in self.sources],
            "notes": list(self.notes),
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], where: str = "policy") -> Policy:
        try:
            est = d["estimator"]
            return cls(
                estimator=str(est["name"]),
                estimator_args=dict(est.get("args") or {}),
                probe=int(d["probe"]),
                edges=tuple(float(x) for x in d["edges"]),
                choices={
                    int(b): {int(k): Choice.from_dict(c) for k, c in by_bin.items()}
                    for b, by_bin in d["choices"].items()
                },
                fitted_on=tuple(str(q) for q in d["fitted_on"]),
                sources=tuple(dict(s) for s in d.get("sources") or ()),
                axis=str(d.get("axis", "budget")),
                version=str(d.get("version", POLICY_VERSION)),
                notes=tuple(str(n) for n in d.get("notes") or ()),
            )
        except (KeyError, TypeError, ValueError, AttributeError) as e:
            raise UsageError(
                f"{where} is not a policy file written by `ttc-eval policy fit` ({e!r})"
            ) from None


def read_policy(path: Path) -> tuple[Policy, str]:
    """The policy in ``path`` and the SHA-256 of the file (what a run's label records)."""
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise UsageError(
            f"cannot read the policy file {path} ({e.strerror}); write one with "
            "`ttc-eval policy fit RUN --probe K --output FILE`"
        ) from None
    try:
        data = yaml.safe_load(raw)
    except yaml.YAMLError as e:
        raise UsageError(f"{path} is not valid YAML: {e}") from None
    if not isinstance(data, Mapping):
        raise UsageError(f"{path} is not a policy file written by `ttc-eval policy fit`")
    return Policy.from_dict(data, str(path)), hashlib.sha256(raw).hexdigest()


def write_policy(policy: Policy, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    text = yaml.safe_dump(policy.to_dict(), sort_keys=False)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(
        "# A difficulty-adaptive policy written by `ttc-eval policy fit`; apply it with\n"
        f"# --strategy policy:file={path.name}\n" + text
    )
    tmp.replace(path)


def question_key(task: str, problem_id: str) -> str:
    """How a policy names a question: ``task:problem id``."""
    return f"{task}:{problem_id}"


def quantile_edges(features: Sequence[float], n_bins: int) -> tuple[float, ...]:
    """Up to ``n_bins - 1`` ascending edges between equal-count bins of ``features``: the
    inner quantiles, each moved to the midpoint between the observed values around it, and
    duplicates dropped. A discrete feature (vote agreement over K samples takes K + 1 values)
    then gets fewer bins, each holding distinct values, rather than edges that coincide and
    bins no feature can reach."""
    import numpy as np

    values = np.unique(np.asarray(features, dtype=float))
    edges: list[float] = []
    for q in np.quantile(np.asarray(features, dtype=float), [i / n_bins for i in range(1, n_bins)]):
        above = values[values > q]
        below = values[values <= q]
        if not len(above) or not len(below):
            continue  # every value on one side: no edge to draw
        edge = float((below[-1] + above[0]) / 2)
        if edge not in edges:
            edges.append(edge)
    return tuple(sorted(edges))


@dataclass(frozen=True)
class Calibration:
    """What the fit reads from the calibration runs."""

    pools: dict[str, Trace]
    """Question (``task:problem id``) -> its sample pool."""
    configs: dict[str, Strategy]
    """Label -> pool strategy: the candidates of every choice, in run order."""
    budgets: list[int]
    """Budgets every candidate configuration was reported at."""
    sources: list[dict[str, Any]]
    """Run id, task, model and versions of each calibration run."""


def read_calibration(run_dirs: Sequence[Path], probe: int) -> Calibration:
    from ttc_eval.pipeline import load_task
    from ttc_eval.results import load_run
    from ttc_eval.strategies._base import PoolStrategy

    pools: dict[str, Trace] = {}
    configs: dict[str, Strategy] = {}
    budgets: set[int] | None = None
    sources: list[dict[str, Any]] = []
    for run_dir in run_dirs:
        view = load_run(run_dir)
        # The spec's own name, as a run of the policy names its questions.
        task = load_task(view.config).spec.name
        if view.difficulty_pool is None:
            raise UsageError(
                f"{run_dir}: no sample pool to read probes from; fit on a run of pool "
                "strategies (majority, best_of_n, ...)"
            )
        for pid, trace in view.store.by_expansion(view.difficulty_pool.key).items():
            if len(trace.candidates) < probe:
                raise UsageError(
                    f"{run_dir}: question {pid} has {len(trace.candidates)} pool samples, "
                    f"fewer than the probe's {probe}"
                )
            pools[question_key(task, pid)] = trace
        # Only configurations the policy strategy can run (those that read the sample pool),
        # and never an oracle.
        for ev in view.evaluated:
            if isinstance(ev.strategy, PoolStrategy) and not ev.strategy.is_oracle:
                configs.setdefault(ev.label, ev.strategy)
                budgets = set(ev.budgets) if budgets is None else budgets & set(ev.budgets)
        sources.append(
            {
                "run_id": view.record.get("run_id", run_dir.name),
                "task": task,
                "model": view.config.model,
                "versions": {k: v for k, v in view.record.items() if k.endswith("_version") and v},
            }
        )
    return Calibration(pools, configs, sorted(budgets or ()), sources)


def fit_policy(
    run_dirs: Sequence[Path],
    probe: int,
    estimator: str = "vote_agreement",
    estimator_args: Mapping[str, Any] | None = None,
    n_bins: int = 5,
    repeats: int = 10,
    seed: int = 0,
) -> Policy:
    """Fit a policy on the calibration runs ``run_dirs`` (stored traces only, no model),
    exactly as the ``policy`` strategy applies it: on each group of N samples of a pool the
    first ``probe`` give the feature, hence the bin, and the configuration runs on that group.

    The bin edges are the quantiles of the feature over every window of ``probe`` samples of
    the calibration pools (:func:`quantile_edges`). Per budget N and bin, each question's
    accuracy under each pool configuration is the mean over its groups of N whose probe fell
    in the bin; the configuration is the one 2-fold cross-validation over questions chooses
    most often (a question's groups stay in one fold), and per budget the same over every
    group is the fallback (bin 0) for a bin with fewer than 2 questions."""
    from ttc_eval.registry import ESTIMATORS

    if probe < 1:
        raise UsageError(f"--probe must be a positive number of samples, got {probe}")
    if n_bins < 1:
        raise UsageError(f"--bins must be at least 1, got {n_bins}")
    est = ESTIMATORS.create(estimator, **dict(estimator_args or {}))
    return fit_on(read_calibration(run_dirs, probe), est, probe, n_bins, repeats, seed)


def fit_on(
    cal: Calibration, est: Estimator, probe: int, n_bins: int = 5, repeats: int = 10, seed: int = 0
) -> Policy:
    """:func:`fit_policy` on calibration data already read (pools and configurations)."""
    from collections import Counter

    from ttc_eval.analysis.estimators import disjoint_groups
    from ttc_eval.analysis.optimal import cross_validate

    if len(cal.pools) < 2:
        raise UsageError("fitting a policy needs at least 2 calibration questions")
    if not cal.configs:
        raise UsageError(
            "the calibration runs hold no pool configuration (majority, best_of_n, esc, ...) "
            "for the policy to choose"
        )

    def windows(trace: Trace, size: int) -> list[list[Candidate]]:
        return [
            [trace.candidates[i] for i in g] for g in disjoint_groups(len(trace.candidates), size)
        ]

    probes = [
        f
        for trace in cal.pools.values()
        for w in windows(trace, probe)
        if (f := est.feature(w)) is not None
    ]
    if not probes:
        raise UsageError(f"the estimator {est.label()} could not read any probe")
    edges = quantile_edges(probes, n_bins)
    draft = Policy(est.name, dict(est.args), probe, edges, {}, ())
    order = list(cal.configs)
    choices: dict[int, dict[int, Choice]] = {}
    counts: dict[int, dict[int, int]] = {}
    for budget in cal.budgets:
        if budget < probe:
            continue  # a probe larger than the group: the policy refuses such budgets
        # bin -> configuration -> question -> accuracies of its groups in that bin
        acc: dict[int, dict[str, dict[str, list[float]]]] = {}
        for q, trace in sorted(cal.pools.items()):
            for group in windows(trace, budget):
                feature = est.feature(group[:probe])
                bin_ = draft.bin_of(feature) if feature is not None else 0
                sub = replace(trace, candidates=tuple(group))
                for label, strategy in cal.configs.items():
                    (sel,) = strategy.select(sub, budget)
                    for b in (0, bin_) if bin_ else (0,):
                        acc.setdefault(b, {}).setdefault(label, {}).setdefault(q, []).append(
                            float(sel.correct)
                        )
        # Questions with a group in each bin (every configuration saw the same groups).
        counts[budget] = {b: len(by_label[order[0]]) for b, by_label in acc.items()}
        for b, by_label in sorted(acc.items()):
            per_q = {c: {q: sum(v) / len(v) for q, v in by_label[c].items()} for c in order}
            questions = sorted(per_q[order[0]])
            if len(questions) < 2:
                continue
            folds = cross_validate(per_q, questions, repeats, seed=f"{seed}|{budget}|{b}")
            tally = Counter(f.chosen for f in folds)
            top = max(tally.values())
            label = next(c for c in order if tally.get(c) == top)
            strategy = cal.configs[label]
            choices.setdefault(budget, {})[b] = Choice(
                strategy.name, dict(strategy.args), label, top / len(folds)
            )
    if not choices:
        raise UsageError(
            f"no budget of the calibration runs ({cal.budgets}) holds a group of at least "
            f"the probe's {probe} samples"
        )
    notes = [
        f"budget {b}: bin {k} ({counts[b].get(k, 0)} calibration questions) runs the "
        "fallback, the choice over all questions"
        for b, by_bin in sorted(choices.items())
        for k in range(1, draft.n_bins + 1)
        if k not in by_bin
    ]
    return Policy(
        estimator=est.name,
        estimator_args=dict(est.args),
        probe=probe,
        edges=edges,
        choices=choices,
        fitted_on=tuple(sorted(cal.pools)),
        sources=tuple(cal.sources),
        notes=tuple(notes),
    )
