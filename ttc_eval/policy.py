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
import json
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from ttc_eval.errors import UsageError
from ttc_eval.types import Candidate, Cost, Selection, Trace

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
    budget: int | None = None
    """A pool configuration: the samples it reads (``None``: the policy's budget); a choice
    made at equal measured compute (``--axis tokens|flops``) may read fewer, the first
    ``budget`` of the group. A search or revisions configuration: the budget it runs at, in
    its own expansion (:func:`served_budget`), after the probe."""

    def to_dict(self) -> dict[str, Any]:
        d = {"name": self.name, "args": dict(self.args), "label": self.label, "share": self.share}
        return d if self.budget is None else {**d, "budget": self.budget}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Choice:
        budget = d.get("budget")
        return cls(
            str(d["name"]),
            dict(d.get("args") or {}),
            str(d["label"]),
            float(d["share"]),
            int(budget) if budget is not None else None,
        )


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
    """What "equal compute" meant when choosing: ``budget`` (the same N samples), or the
    measured ``tokens`` or ``flops`` of best-of-N at N (choices may then read fewer)."""
    version: str = POLICY_VERSION
    """ttc-eval's policy format and fitting rules."""
    notes: tuple[str, ...] = field(default=())
    """What the fit could not do as asked (bins left to the fallback)."""
    charge: str = "total"
    """How the probe was paid for when fitting: ``total`` (the first K of the N samples) or
    ``extra`` (K more, the configuration reads the N after them); applied the same way."""
    candidates: tuple[Choice, ...] = ()
    """Every configuration the fit chose among (share 0): what the report's in-sample
    oracle-bin policy chooses among too."""
    fitted_text: tuple[str, ...] = ()
    """SHA-256 (first 16 hex digits) of each fitted question's text, so that the same
    question under another task name or id is refused too (empty: texts were unavailable)."""
    min_questions: int = 1
    """The fewest calibration questions a bin needed to get its own choice."""

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
            "charge": self.charge,
            "min_questions": self.min_questions,
            "candidates": [c.to_dict() for c in self.candidates],
            "fitted_on": list(self.fitted_on),
            "fitted_text": list(self.fitted_text),
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
                charge=str(d.get("charge", "total")),
                candidates=tuple(Choice.from_dict(c) for c in d.get("candidates") or ()),
                fitted_text=tuple(str(h) for h in d.get("fitted_text") or ()),
                min_questions=int(d.get("min_questions", 1)),
            )
        except (KeyError, TypeError, ValueError, AttributeError) as e:
            raise UsageError(
                f"{where} is not a policy file written by `ttc-eval policy fit` ({e!r})"
            ) from None


def load_policy(path: Path) -> tuple[Policy, str, bytes]:
    """The policy in ``path``, the SHA-256 of the file (what a run's label records) and the
    exact bytes it was read from (what the run keeps a copy of)."""
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
    return Policy.from_dict(data, str(path)), hashlib.sha256(raw).hexdigest(), raw


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


def text_key(question: str) -> str:
    """How a policy names a question's text: the first 16 hex digits of its SHA-256."""
    return hashlib.sha256(question.encode()).hexdigest()[:16]


AXES = ("budget", "tokens", "flops")
"""What "equal compute" means in the fit (see :attr:`Policy.axis`)."""
CHARGES = ("total", "extra")
"""How the probe is paid for: within the budget (reused) or on top of it."""


def group_size(budget: int, probe: int, charge: str) -> int:
    """Samples one application of the policy at ``budget`` takes from the pool."""
    return budget + probe if charge == "extra" else budget


def reads_pool(strategy: Strategy) -> bool:
    """Whether a configuration picks from the sample pool the probe is read from (majority,
    best-of-N, ESC, ...), so that the probe's samples can be part of what it reads; search
    and revisions run their own expansion after the probe."""
    from ttc_eval.strategies._base import PoolStrategy

    return isinstance(strategy, PoolStrategy)


def served_budget(available: Sequence[int], budget: int, probe: int, charge: str) -> int | None:
    """The budget a search or revisions configuration runs at in a policy at ``budget``: the
    largest of its ``available`` ones within what the probe leaves (``total``: N - K; the
    probe cannot be reused by a configuration that does not read the pool) or within N
    (``extra``: the probe is paid on top). ``None``: none fits."""
    room = budget - probe if charge == "total" else budget
    return max((b for b in available if b <= room), default=None)


def companion_name(label: str, budget: int) -> str:
    """What a policy calls the trace of configuration ``label`` at ``budget`` among a
    question's companion traces (:attr:`~ttc_eval.types.Trace.companions`)."""
    return f"{label}@{budget}"


def apply_choice(
    strategy: Strategy,
    label: str,
    trace: Trace,
    group: Sequence[Candidate],
    index: int,
    probe: int,
    budget: int,
    charge: str,
    probe_scored: bool,
) -> Selection:
    """One application of a policy's choice ``strategy`` (called ``label``) at ``budget`` on
    the ``index``-th group of the pool: :func:`apply_in_group` for a pool configuration;
    otherwise the probe is read here and the configuration's own choice is made on its
    companion trace at ``budget`` (the ``index``-th of its independent choices, cycling),
    and charged there (:attr:`~ttc_eval.types.Selection.elsewhere`)."""
    if reads_pool(strategy):
        return apply_in_group(strategy, trace, group, probe, budget, charge, probe_scored)
    name = companion_name(label, budget)
    other = trace.companions.get(name)
    if other is None:
        raise UsageError(
            f"question {trace.problem_id}: the policy chose {label} at budget {budget}, whose "
            "trace is not in this run; rerun the run's command to expand it"
        )
    sels = strategy.select(other, budget)
    sub = sels[index % len(sels)]
    sub = replace(sub, scored=sub.read if strategy.needs_verifier else ())
    probed = tuple(c.index for c in group[:probe])
    return Selection(
        answer=sub.answer,
        correct=sub.correct,
        n_generations=len(probed) + sub.n_generations,
        n_tokens=sum(c.n_tokens for c in group[:probe]) + sub.n_tokens,
        index=sub.index,
        read=probed,
        scored=probed if probe_scored else (),
        elsewhere=((name, sub),),
        picked_in=name,
    )


def apply_in_group(
    strategy: Strategy,
    trace: Trace,
    group: Sequence[Candidate],
    probe: int,
    budget: int,
    charge: str,
    probe_scored: bool,
) -> Selection:
    """One application of a policy's choice: ``strategy`` runs at ``budget`` on the group's
    first ``budget`` samples (``total``: the probe is among them) or on the ``budget`` after
    the probe (``extra``). The probe is spent whatever the configuration reads of it (an
    adaptive rule may stop first), and the estimator read each probe sample whole: the
    probe is in the choice's ``read`` and never in its ``cut``. The verifier's reading is
    paid for the samples the configuration read when it reads scores, and for the probe
    when the estimator does (``probe_scored``)."""
    body = (group[probe:] if charge == "extra" else group)[:budget]
    (sel,) = strategy.select(replace(trace, candidates=tuple(body)), budget)
    probed = {c.index for c in group[:probe]}
    by_index = {c.index: c for c in group}
    seen = set(sel.read)
    cut = tuple((i, spent) for i, spent in sel.cut if i not in probed)
    # Tokens the configuration did not count of a probe sample: unread, or cut short.
    unspent = sum(c.n_tokens for c in group[:probe] if c.index not in seen) + sum(
        by_index[i].n_tokens - spent for i, spent in sel.cut if i in probed
    )
    read = tuple(sorted(probed | seen))
    scored = read if strategy.needs_verifier else (tuple(sorted(probed)) if probe_scored else ())
    return replace(
        sel,
        read=read,
        cut=cut,
        n_generations=len(read),
        n_tokens=sel.n_tokens + unspent,
        scored=scored,
    )


_RUN_COPIES: ContextVar[Path | None] = ContextVar("policy_run_copies", default=None)

COPY_INDEX = "index.json"
"""In a run's copies folder: each policy file argument -> the name of its copy."""


@contextmanager
def run_copies(folder: Path) -> Iterator[None]:
    """Within this block a policy file argument is read from ``folder`` (a run's
    ``policies/``, the copies it took when it ran) when the folder's index names a copy of
    it, so that ``report`` from any folder, or after the file was refitted, computes what
    the run computed."""
    token = _RUN_COPIES.set(folder)
    try:
        yield
    finally:
        _RUN_COPIES.reset(token)


def resolve_policy_file(file: str) -> Path:
    """The file a ``policy:file=...`` argument names: the run's copy inside
    :func:`run_copies`, else the path itself."""
    folder = _RUN_COPIES.get()
    if folder is not None:
        index = read_copy_index(folder)
        if file in index and (folder / index[file]).is_file():
            return folder / index[file]
    return Path(file)


def read_copy_index(folder: Path) -> dict[str, str]:
    try:
        data = json.loads((folder / COPY_INDEX).read_text())
    except (OSError, ValueError):
        return {}
    return {str(k): str(v) for k, v in data.items()} if isinstance(data, dict) else {}


def keep_copies(folder: Path, files: Mapping[str, bytes]) -> None:
    """Write each file (argument -> exact bytes) into ``folder`` as ``<sha256[:12]>-<name>``,
    so that two files of one name never share a copy, and record it in the index."""
    from ttc_eval._rundir import write_atomic, write_atomic_bytes

    index = read_copy_index(folder)
    for arg, raw in files.items():
        name = f"{hashlib.sha256(raw).hexdigest()[:12]}-{Path(arg).name}"
        if not (folder / name).is_file():
            write_atomic_bytes(folder / name, raw)
        index[arg] = name
    write_atomic(folder / COPY_INDEX, json.dumps(index, indent=1, sort_keys=True) + "\n")


@dataclass(frozen=True)
class Calibration:
    """What the fit reads from the calibration runs."""

    pools: dict[str, Trace]
    """Question (``task:problem id``) -> its sample pool, with the traces of the search and
    revisions configurations attached as companions (:func:`companion_name`)."""
    configs: dict[str, Strategy]
    """Label -> strategy: the candidates of every choice, in run order."""
    budgets: list[int]
    """Budgets every pool configuration was reported at (the policy's budgets)."""
    sources: list[dict[str, Any]]
    """Run id, task, model and versions of each calibration run."""
    texts: dict[str, str] = field(default_factory=dict)
    """Question -> :func:`text_key` of its text (questions whose text could be read)."""
    params: dict[str, int | None] = field(default_factory=dict)
    """Non-embedding parameters per model role (for ``--axis flops``; None: unknown)."""
    served: dict[str, list[int]] = field(default_factory=dict)
    """Label -> the budgets a search or revisions configuration has a trace at for every
    calibration question (pool configurations are not listed: they read the pool)."""
    notes: list[str] = field(default_factory=list)
    """What reading the runs left out (a search whose traces are incomplete)."""

    def budget_of(self, label: str, budget: int, probe: int, charge: str) -> int | None:
        """The budget configuration ``label`` runs at in a policy at ``budget``: ``budget``
        for a pool configuration, else :func:`served_budget`."""
        if label not in self.served:
            return budget
        return served_budget(self.served[label], budget, probe, charge)


def read_calibration(run_dirs: Sequence[Path], probe: int) -> Calibration:
    from ttc_eval.pipeline import load_task
    from ttc_eval.results import _role_params, load_run, recorded_params
    from ttc_eval.strategies._base import PoolStrategy

    pools: dict[str, Trace] = {}
    configs: dict[str, Strategy] = {}
    budgets: set[int] | None = None
    sources: list[dict[str, Any]] = []
    texts: dict[str, str] = {}
    params: dict[str, int | None] = {}
    # Search and revisions configurations: label -> budget -> question -> trace, per run.
    served: dict[str, list[dict[int, dict[str, Trace]]]] = {}
    for run_dir in run_dirs:
        view = load_run(run_dir)
        # The spec's own name, as a run of the policy names its questions.
        loaded = load_task(view.config)
        task = loaded.spec.name
        # The pool the candidate configurations ran on (their largest budget's), which a
        # run of the policy reads as well; not the difficulty pool, which may be smaller.
        runs_on = [
            ev
            for ev in view.evaluated
            if isinstance(ev.strategy, PoolStrategy)
            and not ev.strategy.is_oracle
            and not ev.strategy.fitted_on
        ]
        if not runs_on:
            raise UsageError(
                f"{run_dir}: no sample pool to read probes from; fit on a run of pool "
                "strategies (majority, best_of_n, ...)"
            )
        stored = dict(runs_on[0].traces[max(runs_on[0].budgets)])
        for pid, trace in stored.items():
            if len(trace.candidates) < probe:
                raise UsageError(
                    f"{run_dir}: question {pid} has {len(trace.candidates)} pool samples, "
                    f"fewer than the probe's {probe}"
                )
            pools[question_key(task, pid)] = trace
        try:
            problems = loaded.problems(view.config.data_files)
        except (UsageError, OSError):
            problems = []  # the data moved: fitted questions are then named by id only
        texts.update(
            {question_key(task, p.id): text_key(p.question) for p in problems if p.id in stored}
        )
        # Pool configurations (never an oracle or another fitted policy): the probe is
        # read from their pool and they can reuse it.
        for ev in runs_on:
            configs.setdefault(ev.label, ev.strategy)
            budgets = set(ev.budgets) if budgets is None else budgets & set(ev.budgets)
        # Search and revisions: chosen after the probe, run on their own traces.
        for ev in view.evaluated:
            s = ev.strategy
            if reads_pool(s) or s.is_oracle or s.fitted_on or not ev.budgets:
                continue
            configs.setdefault(ev.label, s)
            # Only budgets with a trace for each of this run's pool questions, and only
            # those questions' traces (a pool still under way holds fewer).
            served.setdefault(ev.label, []).append(
                {
                    b: {question_key(task, pid): ev.traces[b][pid] for pid in stored}
                    for b in ev.budgets
                    if set(stored) <= set(ev.traces[b])
                }
            )
        for role, count in _role_params(recorded_params(run_dir)).items():
            if params.get(role, count) != count:
                # Two models in one role: FLOPs per token are not one number (flops refuses).
                count = None
            params[role] = count
        sources.append(
            {
                "run_id": view.record.get("run_id", run_dir.name),
                "task": task,
                "model": view.config.model,
                "versions": {k: v for k, v in view.record.items() if k.endswith("_version") and v},
            }
        )
    # A configuration some calibration run lacks, or holds for only some of its questions,
    # cannot be evaluated on them: it is no candidate, and the fit says so.
    at: dict[str, list[int]] = {}
    notes: list[str] = []
    for label, per_run in served.items():
        common = set.intersection(*(set(by_b) for by_b in per_run))
        if len(per_run) < len(run_dirs) or not common:
            del configs[label]
            notes.append(
                f"{label}: not a candidate, no budget of it has a trace for every "
                "calibration question in every calibration run (finish those runs)"
            )
            continue
        at[label] = sorted(common)
        for by_b in per_run:
            for b in common:
                for q, t in by_b[b].items():
                    pool = pools[q]
                    companions = {**pool.companions, companion_name(label, b): t}
                    pools[q] = replace(pool, companions=companions)
    return Calibration(
        pools, configs, sorted(budgets or ()), sources, texts, params, served=at, notes=notes
    )


MIN_QUESTIONS = 10
"""Default fewest calibration questions for a bin's own choice: with fewer, each half of
2-fold cross-validation chooses on 4 or fewer questions, and the choice is mostly noise.
(It does not make a choice on more questions right: the file records each choice's share
of folds, and a share near 0.5 says the fold halves disagreed.)"""


def fit_policy(
    run_dirs: Sequence[Path],
    probe: int,
    estimator: str = "vote_agreement",
    estimator_args: Mapping[str, Any] | None = None,
    n_bins: int = 5,
    repeats: int = 10,
    seed: int = 0,
    axis: str = "budget",
    charge: str = "total",
    min_questions: int = MIN_QUESTIONS,
) -> Policy:
    """Fit a policy on the calibration runs ``run_dirs`` (stored traces only, no model),
    exactly as the ``policy`` strategy applies it: on each group of a pool the first
    ``probe`` samples give the feature, hence the bin, and the configuration runs on that
    group (:func:`apply_choice`). See :func:`fit_on`."""
    from ttc_eval.registry import ESTIMATORS

    if probe < 1:
        raise UsageError(f"--probe must be a positive number of samples, got {probe}")
    if n_bins < 1:
        raise UsageError(f"--bins must be at least 1, got {n_bins}")
    if axis not in AXES:
        raise UsageError(f"unknown --axis {axis!r}; choose from {', '.join(AXES)}")
    if charge not in CHARGES:
        raise UsageError(f"unknown --charge {charge!r}; choose from {', '.join(CHARGES)}")
    est = ESTIMATORS.create(estimator, **dict(estimator_args or {}))
    cal = read_calibration(run_dirs, probe)
    return fit_on(cal, est, probe, n_bins, repeats, seed, axis, charge, min_questions)


def _baseline_label(configs: Mapping[str, Strategy]) -> str | None:
    """The configuration equal measured compute is measured against: best-of-N, else
    majority (as the compute-optimal report does)."""
    for name in ("best_of_n", "majority"):
        for label, s in configs.items():
            if s.name == name:
                return label
    return None


def fit_on(
    cal: Calibration,
    est: Estimator,
    probe: int,
    n_bins: int = 5,
    repeats: int = 10,
    seed: int = 0,
    axis: str = "budget",
    charge: str = "total",
    min_questions: int = 1,
) -> Policy:
    """:func:`fit_policy` on calibration data already read (pools and configurations).

    The bin edges are the quantiles of the feature over every window of ``probe`` samples
    of the calibration pools (:func:`quantile_edges`). Per budget N and bin, each question's
    accuracy (and measured cost) under each configuration is the mean over its groups whose
    probe fell in the bin. ``axis=budget``: the configuration at N that 2-fold
    cross-validation over questions chooses most often (a question's groups stay in one
    fold). ``tokens`` / ``flops``: any (configuration, budget <= N) whose mean measured cost
    on the training half is at most best-of-N's at N, as ``--optimal-axis`` chooses
    (:func:`~ttc_eval.analysis.optimal.compute_optimal_at_cost`). The same over every group
    is the fallback (bin 0), used by a bin with fewer than ``min_questions`` questions."""
    if len(cal.pools) < 2:
        raise UsageError("fitting a policy needs at least 2 calibration questions")
    if not cal.configs:
        raise UsageError(
            "the calibration runs hold no pool configuration (majority, best_of_n, esc, ...) "
            "for the policy to choose"
        )
    base = _baseline_label(cal.configs)
    if axis != "budget" and base is None:
        raise UsageError(
            f"--axis {axis} measures compute against best-of-N (else majority) at each "
            "budget, and the calibration runs have neither; add one, or use --axis budget"
        )
    if axis == "flops" and (not cal.params or any(v is None for v in cal.params.values())):
        raise UsageError(
            "--axis flops needs the models' parameter counts, which the calibration runs "
            "did not record (a scripted backend such as fake reports none); use --axis tokens"
        )
    probes = [
        f
        for trace in cal.pools.values()
        for w in _windows(trace, probe)
        if (f := est.feature(w)) is not None
    ]
    if not probes:
        raise UsageError(f"the estimator {est.label()} could not read any probe")
    edges = quantile_edges(probes, n_bins)
    draft = Policy(est.name, dict(est.args), probe, edges, {}, ())
    choices: dict[int, dict[int, Choice]] = {}
    counts: dict[int, dict[int, int]] = {}
    skipped: list[str] = []
    for budget in cal.budgets:
        size = group_size(budget, probe, charge)
        if budget < probe and charge == "total":
            continue  # a probe larger than the group: the policy refuses such budgets
        if any(len(t.candidates) < size for t in cal.pools.values()):
            skipped.append(
                f"budget {budget}: no choice, the calibration pools hold fewer than the "
                f"{size} samples it takes" + (" with the probe on top" if charge == "extra" else "")
            )
            continue
        table = _bin_table(cal, est, draft, budget, size, charge, axis)
        if table is None:
            continue  # no pool holds a whole group
        counts[budget] = {b: len(qs) for b, (qs, _, _) in table.items()}
        for b, (questions, acc, cost) in sorted(table.items()):
            if len(questions) < max(2, min_questions if b else 2):
                continue
            choice = _choose(
                cal, questions, acc, cost, base, budget, axis, repeats, seed, b, probe, charge
            )
            choices.setdefault(budget, {})[b] = choice
    if not choices:
        raise UsageError(
            f"no budget of the calibration runs ({cal.budgets}) holds a group of at least "
            f"the probe's {probe} samples"
        )
    room = "N - K" if charge == "total" else "N"
    notes = [*cal.notes, *skipped]
    notes += [
        f"budget {b}: {label} is no candidate, none of its budgets {cal.served[label]} "
        f"fits within {room} = {b - probe if charge == 'total' else b}"
        for b in sorted(choices)
        for label in cal.served
        if cal.budget_of(label, b, probe, charge) is None
    ]
    notes += [
        f"budget {b}: bin {k} ({counts[b].get(k, 0)} calibration questions, fewer than "
        f"{min_questions}) runs the fallback, the choice over all questions"
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
        axis=axis,
        notes=tuple(notes),
        charge=charge,
        candidates=tuple(
            Choice(s.name, dict(s.args), label, 0.0) for label, s in cal.configs.items()
        ),
        fitted_text=tuple(sorted(set(cal.texts.values()))),
        min_questions=min_questions,
    )


def _windows(trace: Trace, size: int) -> list[list[Candidate]]:
    from ttc_eval.analysis.estimators import disjoint_groups

    return [[trace.candidates[i] for i in g] for g in disjoint_groups(len(trace.candidates), size)]


Table = dict[int, tuple[list[str], dict[str, Any], dict[str, Any]]]
"""Bin -> (its questions, configuration -> budget -> question -> accuracy, the same of
measured cost); bin 0 holds every question."""


def _bin_table(
    cal: Calibration,
    est: Estimator,
    draft: Policy,
    budget: int,
    size: int,
    charge: str,
    axis: str,
) -> Table | None:
    """Each question's mean accuracy and cost per bin, over its groups of ``size`` samples
    whose probe fell in that bin, for each configuration at ``budget`` (and, on a measured
    axis, at each smaller calibration budget of at least the probe)."""
    from ttc_eval.pipeline import measured_cost

    inner = [b for b in cal.budgets if b <= budget and (b >= draft.probe or charge == "extra")]
    reads = inner if axis != "budget" else [budget]
    # bin -> (config, budget) -> question -> values of its groups in that bin
    acc: dict[int, dict[tuple[str, int], dict[str, list[float]]]] = {}
    cost: dict[int, dict[tuple[str, int], dict[str, list[float]]]] = {}
    for q, trace in sorted(cal.pools.items()):
        for index, group in enumerate(_windows(trace, size)):
            feature = est.feature(group[: draft.probe])
            bin_ = draft.bin_of(feature) if feature is not None else 0
            for label, strategy in cal.configs.items():
                for b in reads:
                    runs_at = cal.budget_of(label, b, draft.probe, charge)
                    if runs_at is None:
                        continue  # a search with no budget that fits beside the probe
                    sel = apply_choice(
                        strategy, label, trace, group, index, draft.probe, runs_at, charge,
                        est.needs_verifier,
                    )  # fmt: skip
                    # Every choice here says what it read of the verifier (``scored``).
                    spent = _cost(measured_cost(trace, sel, False), axis, cal)
                    for k in (0, bin_) if bin_ else (0,):
                        acc.setdefault(k, {}).setdefault((label, b), {}).setdefault(q, [])
                        acc[k][(label, b)][q].append(float(sel.correct))
                        cost.setdefault(k, {}).setdefault((label, b), {}).setdefault(q, [])
                        cost[k][(label, b)][q].append(spent)
    if not acc:
        return None
    out: Table = {}
    for k in acc:
        per_acc: dict[str, dict[int, dict[str, float]]] = {}
        per_cost: dict[str, dict[int, dict[str, float]]] = {}
        for (label, b), by_q in acc[k].items():
            per_acc.setdefault(label, {})[b] = {q: sum(v) / len(v) for q, v in by_q.items()}
            costs = cost[k][(label, b)]
            per_cost.setdefault(label, {})[b] = {q: sum(v) / len(v) for q, v in costs.items()}
        # Pool configurations answer every question of the bin at ``budget``.
        questions = {q for by_b in per_acc.values() for q in by_b.get(budget, {})}
        out[k] = (sorted(questions), per_acc, per_cost)
    return out


def _cost(cost: Cost, axis: str, cal: Calibration) -> float:
    """A choice's measured cost on the fit's axis (0 on ``budget``, where it is not read)."""
    from ttc_eval.analysis.flops import inference_flops

    if axis == "tokens":
        return float(cost.generated_tokens)
    if axis == "flops":
        missing = sorted(r for r in cost.role_tokens if cal.params.get(r) is None)
        if missing:
            raise UsageError(
                f"--axis flops: no single parameter count is recorded for role(s) "
                f"{', '.join(missing)} in the calibration runs (a scripted backend, or "
                "runs of different models in one role); use --axis tokens"
            )
        return sum(
            inference_flops(cal.params[role] or 0, tokens)
            for role, tokens in cost.role_tokens.items()
        )
    return 0.0


def _choose(
    cal: Calibration,
    questions: list[str],
    acc: Mapping[str, Any],
    cost: Mapping[str, Any],
    base: str | None,
    budget: int,
    axis: str,
    repeats: int,
    seed: int,
    bin_: int,
    probe: int,
    charge: str,
) -> Choice:
    """The configuration (and, on a measured axis, its budget; for a search or revisions
    configuration, always the budget it runs at) for one bin at ``budget``."""
    from collections import Counter

    from ttc_eval.analysis.optimal import compute_optimal_at_cost, cross_validate

    def runs_at(label: str, level: int) -> int | None:
        # A pool configuration at the policy's own budget reads it all (None); a search
        # records the budget it runs at.
        if label not in cal.served:
            return None if level == budget else level
        return cal.budget_of(label, level, probe, charge)

    if axis == "budget":
        per_q = {c: acc[c][budget] for c in cal.configs if budget in acc.get(c, {})}
        folds = cross_validate(per_q, questions, repeats, seed=f"{seed}|{budget}|{bin_}")
        tally = Counter(f.chosen for f in folds)
        top = max(tally.values())
        label = next(c for c in per_q if tally.get(c) == top)
        s = cal.configs[label]
        return Choice(s.name, dict(s.args), label, top / len(folds), runs_at(label, budget))
    assert base is not None  # checked by fit_on
    rows = compute_optimal_at_cost(
        acc, cost, [("bin", str(bin_), questions)], baseline=base, axis=axis, repeats=repeats,
        seed=seed,
    )  # fmt: skip
    (row,) = [r for r in rows if r["budget"] == budget]
    label = row["chosen_config"]
    s = cal.configs[label]
    return Choice(s.name, dict(s.args), label, row["chosen_share"],
                  runs_at(label, int(row["chosen_budget"])))  # fmt: skip
