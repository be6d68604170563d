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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ttc_eval.errors import UsageError

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


def fit_policy(
    run_dirs: Sequence[Path],
    probe: int,
    estimator: str = "vote_agreement",
    estimator_args: Mapping[str, Any] | None = None,
    n_bins: int = 5,
    repeats: int = 10,
    seed: int = 0,
) -> Policy:
    """Fit a policy on the calibration runs ``run_dirs`` (stored traces only, no model).

    Each question's feature is the estimator's reading of the first ``probe`` samples of its
    pool; the bin edges are the feature's quantiles over every calibration question; per bin
    and budget the configuration is the one 2-fold cross-validation chooses most often (the
    compute-optimal report's rule, with best-of-N else majority as the baseline), and per
    budget the same over all questions is the fallback (bin 0) for a bin with fewer than 2
    questions."""
    from ttc_eval.analysis.optimal import compute_optimal
    from ttc_eval.pipeline import load_task
    from ttc_eval.registry import ESTIMATORS
    from ttc_eval.results import baseline, load_run, per_question_accuracy
    from ttc_eval.strategies._base import PoolStrategy

    if probe < 1:
        raise UsageError(f"--probe must be a positive number of samples, got {probe}")
    if n_bins < 1:
        raise UsageError(f"--bins must be at least 1, got {n_bins}")
    est = ESTIMATORS.create(estimator, **dict(estimator_args or {}))
    features: dict[str, float] = {}
    per_q: dict[str, dict[int, dict[str, float]]] = {}
    specs: dict[str, tuple[str, Mapping[str, Any]]] = {}
    sources: list[dict[str, Any]] = []
    base = ""
    for run_dir in run_dirs:
        view = load_run(run_dir)
        # The spec's own name, as a run of the policy names its questions.
        task = load_task(view.config).spec.name
        if view.difficulty_pool is None:
            raise UsageError(
                f"{run_dir}: no sample pool to read probes from; fit on a run of pool "
                "strategies (majority, best_of_n, ...)"
            )
        pool = view.store.by_expansion(view.difficulty_pool.key)
        for pid, trace in sorted(pool.items()):
            if len(trace.candidates) < probe:
                raise UsageError(
                    f"{run_dir}: question {pid} has {len(trace.candidates)} pool samples, "
                    f"fewer than the probe's {probe}"
                )
            value = est.feature(trace.candidates[:probe])
            if value is not None:
                features[question_key(task, pid)] = value
        # Only configurations the policy strategy can run: those that read the sample pool.
        pooled = [ev for ev in view.evaluated if isinstance(ev.strategy, PoolStrategy)]
        for label, by_budget in per_question_accuracy(pooled).items():
            into = per_q.setdefault(label, {})
            for budget, accs in by_budget.items():
                into.setdefault(budget, {}).update(
                    {question_key(task, pid): a for pid, a in accs.items()}
                )
        for ev in pooled:
            specs.setdefault(ev.label, (ev.strategy.name, dict(ev.strategy.args)))
        base = base or baseline(pooled)
        sources.append(
            {
                "run_id": view.record.get("run_id", run_dir.name),
                "task": task,
                "model": view.config.model,
                "versions": {k: v for k, v in view.record.items() if k.endswith("_version") and v},
            }
        )
    if len(features) < 2:
        raise UsageError("fitting a policy needs at least 2 calibration questions with a feature")
    if not base:
        raise UsageError(
            "fitting a policy needs best_of_n or majority in the calibration runs: the choice "
            "per bin is cross-validated against it, as in the compute-optimal report"
        )
    edges = quantile_edges(list(features.values()), n_bins)
    draft = Policy(est.name, dict(est.args), probe, edges, {}, ())
    bins: dict[int, list[str]] = {}
    for q, f in features.items():
        bins.setdefault(draft.bin_of(f), []).append(q)
    groups = [("all", "0", sorted(features))]
    groups += [("policy", str(b), sorted(qs)) for b, qs in sorted(bins.items())]
    rows = compute_optimal(per_q, groups, baseline=base, repeats=repeats, seed=seed)
    choices: dict[int, dict[int, Choice]] = {}
    fallback_budgets = {int(r["budget"]) for r in rows if r["bin_kind"] == "all"}
    for r in rows:
        if int(r["budget"]) not in fallback_budgets:
            continue  # a budget not every calibration question has: no fallback, left out
        name, args = specs[r["chosen"]]
        choices.setdefault(int(r["budget"]), {})[int(r["bin"])] = Choice(
            name, args, r["chosen"], float(r["chosen_share"])
        )
    notes = [
        f"budget {b}: bin {k} ({len(bins.get(k, []))} calibration questions) runs the "
        "fallback, the best over all questions"
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
        fitted_on=tuple(sorted(features)),
        sources=tuple(sources),
        notes=tuple(notes),
    )
