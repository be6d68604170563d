"""The pipeline's promises, checked from outside: measured cost equals what the fake backend
was asked for and produced (counted here, independently of the code under test); every
result row carries that cost next to the nominal budget; two configurations that differ in
an argument never share a label; ``import ttc_eval.types`` stays light; and a new strategy,
a new verifier needing a ``judge`` role and a new task plug in from one new file each
(``tests/plugins``) and run end to end."""

from __future__ import annotations

import hashlib
import inspect
import itertools
import json
import subprocess
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, ClassVar

import plugins.first_of_pool
import plugins.judge_verifier
import plugins.tiny_loader
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ttc_eval.backends.fake import FakeBackend
from ttc_eval.cache import CachedBackend
from ttc_eval.config import RoleSpec, RunConfig, StrategySpec, parse_role_flag
from ttc_eval.errors import UsageError
from ttc_eval.pipeline import evaluate, expand, selections
from ttc_eval.registry import STRATEGIES, verifier
from ttc_eval.runner import run
from ttc_eval.strategies._base import ExpansionContext, RunDefaults, Strategy
from ttc_eval.tasks import Task, find_task_spec
from ttc_eval.types import Candidate, Completion, Cost, Problem, Request, SamplingParams, Trace
from ttc_eval.verifiers._base import Solution

PLUGINS = Path(plugins.__file__).resolve().parent
TASK = Task(find_task_spec("arith"))
PARAMS = SamplingParams(temperature=0.7, max_tokens=64, seed=0)
BUDGETS = (1, 2, 4)
# "What is " then the operands: no question is a substring of another, so a request belongs
# to the question whose text it contains.
PROBLEMS = [
    Problem("q0", "What is 2 + 5?", "7"),
    Problem("q1", "What is 13 + 4?", "17"),
    Problem("q2", "What is 7 + 21?", "28"),
]


# -- what the engines were asked for, recorded on the way out --------------------------------


class RecordingFake(FakeBackend):
    """The fake backend, keeping every request with the completions it returned for it."""

    def __init__(self, script: Callable[[str, int, int], str] | None = None) -> None:
        super().__init__(script=script)
        self.log: list[tuple[Request, list[Completion]]] = []

    def generate(self, requests: Sequence[Request]) -> list[list[Completion]]:
        out = super().generate(requests)
        self.log += [(r, list(c)) for r, c in zip(requests, out, strict=True)]
        return out


@dataclass
class Asked:
    """Counted from a backend's log: samples returned, prompt tokens as sent (a prompt sent
    with n sample ids counts n times), tokens generated."""

    samples: int = 0
    sent: int = 0
    generated: int = 0


def asked(backend: RecordingFake, problem: Problem) -> Asked:
    a = Asked()
    for r, comps in backend.log:
        if problem.question not in r.prompt:
            continue
        assert len(comps) == len(r.sample_ids)
        a.samples += len(comps)
        a.sent += len(r.prompt.split()) * len(r.sample_ids)
        a.generated += sum(c.n_tokens for c in comps)
    return a


def _step_score(text: str) -> float:
    return hashlib.sha256(text.encode()).digest()[0] / 255


class WordCounter:
    """A verifier that reads something real: the question and each solution, one token per
    word; it logs every text it read so the test can count its reading on its own."""

    name = "pipeline-word-count"
    version = "test"
    roles: ClassVar[tuple[str, ...]] = ("verifier",)

    def __init__(self, **_: Any) -> None:
        self.tokens_read = 0
        self.read: list[tuple[str, str]] = []

    def score(self, problem: Problem, solutions: Sequence[Solution]) -> list[tuple[float, ...]]:
        out = []
        for s in solutions:
            self.read.append((problem.question, s.text))
            self.tokens_read += len(problem.question.split()) + len(s.text.split())
            acc = ""
            scores = []
            for step in s.steps:
                acc += step
                scores.append(_step_score(acc))
            out.append(tuple(scores))
        return out


verifier("pipeline-word-count")(WordCounter)


def words_read(v: WordCounter, problem: Problem) -> int:
    """The verifier's reading of one question, from the texts it was given."""
    return sum(len(q.split()) + len(t.split()) for q, t in v.read if q == problem.question)


def _ctx(
    policy: RecordingFake, reviser: RecordingFake | None = None, v: WordCounter | None = None
) -> ExpansionContext:
    backends = {"policy": CachedBackend(policy, None)}
    if reviser is not None:
        backends["reviser"] = CachedBackend(reviser, None)
    return ExpansionContext(
        backends=backends,
        verifier=v,
        verifier_role="verifier" if v is not None else None,
        params=PARAMS,
        render=lambda p: TASK.render(p, policy),
        messages=TASK.messages,
        templates={},
        step_delimiter="\n\n",
        chunk_samples=10_000,
    )


def _expand(strategy: Strategy, budget: int, ctx: ExpansionContext) -> dict[str, Trace]:
    spec = strategy.expansion(budget, RunDefaults(PARAMS, BUDGETS))
    traces = [t for chunk in expand(spec, PROBLEMS, ctx, TASK) for t in chunk]
    assert [t.problem_id for t in traces] == [p.id for p in PROBLEMS]
    return {t.problem_id: t for t in traces}


def _roles(**tokens: float) -> dict[str, float]:
    return {k: v for k, v in tokens.items() if v}


def _close(a: Cost, b: Cost) -> None:
    """Equal costs (float sums of shares may differ in the last bits)."""
    for f in ("samples", "prompt_tokens", "prompt_tokens_computed", "generated_tokens"):
        assert getattr(a, f) == pytest.approx(getattr(b, f)), f
    assert a.verifier_tokens == pytest.approx(b.verifier_tokens)
    assert a.seconds == pytest.approx(b.seconds)
    assert set(a.role_tokens) == set(b.role_tokens)
    for role in a.role_tokens:
        assert a.role_tokens[role] == pytest.approx(b.role_tokens[role]), role


# -- 1. cost = what the fake backend was asked for and produced --------------------------------


@pytest.mark.parametrize(
    ("name", "args", "with_verifier"),
    [
        ("greedy", {}, False),
        ("majority", {}, False),
        ("majority", {}, True),  # the run's verifier scored the pool: the trace paid for it
        ("best_of_n", {}, True),
        ("best_of_n", {"mode": "naive", "aggregation": "min"}, True),
    ],
)
def test_pool_cost_is_what_the_backend_was_asked_for(
    name: str, args: dict[str, Any], with_verifier: bool
) -> None:
    policy = RecordingFake()
    v = WordCounter() if with_verifier else None
    ctx = _ctx(policy, v=v)
    strategy = STRATEGIES.create(name, **args)
    traces = _expand(strategy, max(BUDGETS), ctx)
    for p in PROBLEMS:
        t = traces[p.id]
        a = asked(policy, p)
        question = len(ctx.render(p).split())
        read = words_read(v, p) if v is not None else 0
        if v is not None:  # it read each candidate once, and nothing else
            assert read == sum(len(p.question.split()) + len(c.text.split()) for c in t.candidates)
        cost = t.cost
        assert cost is not None
        assert cost.samples == a.samples == len(t.candidates)
        assert cost.prompt_tokens == a.sent == question * a.samples
        assert cost.prompt_tokens_computed == question  # one prompt, computed once
        assert cost.generated_tokens == a.generated
        assert cost.verifier_tokens == read
        assert dict(cost.role_tokens) == _roles(policy=question + a.generated, verifier=read)
        assert cost.seconds >= 0
        # The pool's candidates are its samples, in sample-id order.
        ((request, comps),) = [(r, c) for r, c in policy.log if p.question in r.prompt]
        assert request.sample_ids == tuple(range(len(t.candidates)))
        for b in strategy.budgets(BUDGETS):
            sels = selections(strategy, t, b)
            assert len(sels) == len(t.candidates) // b
            assert sorted(i for s in sels for i in s.read) == list(range(len(sels) * b))
            for s in sels:
                assert s.cost is not None and len(s.read) == b
                own = sum(comps[i].n_tokens for i in s.read)
                # Its k candidates: k prompts sent, the question's prompt computed once.
                assert s.cost.samples == b
                assert s.cost.prompt_tokens == question * b
                assert s.cost.prompt_tokens_computed == question
                assert s.cost.generated_tokens == own == s.n_tokens
                assert s.cost.role_tokens["policy"] == question + own
                assert s.cost.seconds <= cost.seconds + 1e-9
            if strategy.needs_verifier:
                # The verifier's reading is shared out evenly over the candidates: the groups
                # that cover the pool read it all.
                assert sum(s.cost.verifier_tokens for s in sels if s.cost) == pytest.approx(
                    read * len(sels) * b / len(t.candidates)
                )
            else:
                # A strategy that reads no scores is not charged for a verifier that other
                # configurations of the run needed: what it costs run on its own.
                assert all(s.cost and s.cost.verifier_tokens == 0 for s in sels)
                assert all(s.cost and "verifier" not in s.cost.role_tokens for s in sels)
            result = evaluate(strategy, t, b)
            _close(result.cost, Cost.mean([s.cost for s in sels if s.cost is not None]))
            assert result.cost.samples == b == result.n_generations
        if len(t.candidates) in strategy.budgets(BUDGETS):
            (whole,) = selections(strategy, t, len(t.candidates))
            if strategy.needs_verifier:
                assert whole.cost == cost
            else:
                assert whole.cost == replace(
                    cost, verifier_tokens=0, role_tokens=_roles(policy=question + a.generated)
                )


@pytest.mark.parametrize(
    ("name", "width", "lookahead"),
    [("beam_search", 2, 0), ("beam_search", 2, 1), ("beam_search", 4, 0), ("dvts", 2, 0)],
)
def test_search_cost_counts_every_step_prompt(name: str, width: int, lookahead: int) -> None:
    policy = RecordingFake()
    v = WordCounter()
    ctx = _ctx(policy, v=v)
    strategy = STRATEGIES.create(name, width=width, lookahead=lookahead)
    budget = 4
    traces = _expand(strategy, budget, ctx)
    for p in PROBLEMS:
        t = traces[p.id]
        a = asked(policy, p)
        question = len(ctx.render(p).split())
        read = words_read(v, p)
        cost = t.cost
        assert cost is not None
        # Every step's prompt as sent (the question's prompt plus the beam's text so far);
        # an engine with prefix caching computes the question's prompt only.
        later = [r for r, _ in policy.log if p.question in r.prompt and not r.prompt.endswith(">")]
        assert later, "the search took more than one step"
        assert cost.samples == a.samples
        assert cost.prompt_tokens == a.sent > question * a.samples
        assert cost.prompt_tokens_computed == question
        assert cost.generated_tokens == a.generated == t.generated_tokens
        assert cost.verifier_tokens == read == t.verifier_tokens
        assert dict(cost.role_tokens) == _roles(policy=question + a.generated, verifier=read)
        # Nominal budget: N x (k + 1) generations; the measured samples are the step calls.
        assert t.n_generations == budget * (lookahead + 1)
        (sel,) = selections(strategy, t, budget)
        assert sorted(sel.read) == list(range(budget))
        assert sel.cost == cost
        _close(evaluate(strategy, t, budget).cost, cost)


def _revision_script(prompt: str, sid: int, seed: int) -> str:
    """A distinct text per (prompt, sample), so attempts differ in length and answer."""
    h = hashlib.sha256(f"{prompt}|{sid}|{seed}".encode()).digest()
    words = " ".join(["so"] * (h[0] % 5))
    return f"try {h[1]} {words}\n\nSo the answer is \\boxed{{{h[2] % 3}}}"


def test_revisions_cost_counts_revision_prompts_in_full() -> None:
    policy = RecordingFake(_revision_script)
    reviser = RecordingFake(_revision_script)
    v = WordCounter()
    ctx = _ctx(policy, reviser, v)
    chains, length = 2, 3
    base = STRATEGIES.create("revisions", chains=chains, length=length, select="verifier")
    traces = _expand(base, max(BUDGETS), ctx)
    # One request per question on the policy (all chains' first attempts), one per chain and
    # later round on the reviser.
    assert len(policy.log) == len(PROBLEMS)
    assert len(reviser.log) == len(PROBLEMS) * chains * (length - 1)
    for p in PROBLEMS:
        t = traces[p.id]
        first, revised = asked(policy, p), asked(reviser, p)
        question = len(ctx.render(p).split())
        read = words_read(v, p)
        cost = t.cost
        assert cost is not None
        assert cost.samples == first.samples + revised.samples == chains * length
        assert cost.prompt_tokens == first.sent + revised.sent
        # Revision prompts hold earlier attempts: counted in full, on the reviser's model.
        assert cost.prompt_tokens_computed == question + revised.sent
        assert cost.generated_tokens == first.generated + revised.generated
        assert cost.verifier_tokens == read
        assert dict(cost.role_tokens) == _roles(
            policy=question + first.generated,
            reviser=revised.sent + revised.generated,
            verifier=read,
        )
        # Attempt t of chain c (pool index c * length + t): its prompt and its completion.
        ((request, firsts),) = [(r, c) for r, c in policy.log if p.question in r.prompt]
        assert request.sample_ids == tuple(range(chains))
        attempts: dict[int, tuple[int, Completion]] = {
            c * length: (question, comp) for c, comp in enumerate(firsts)
        }
        rounds = [(r, c) for r, c in reviser.log if p.question in r.prompt]
        for k, (r, (comp,)) in enumerate(rounds):
            (chain,) = r.sample_ids
            attempt = 1 + k // chains
            assert chain == k % chains and r.prompt.count("Attempt ") == attempt
            attempts[chain * length + attempt] = (len(r.prompt.split()), comp)
        for c in t.candidates:
            assert c.text == attempts[c.index][1].text
        for s_ in base.variants(BUDGETS):
            for b in s_.budgets(BUDGETS):
                for sel in selections(s_, t, b):
                    assert sel.cost is not None
                    revisions = [i for i in sel.read if i % length]
                    own = sum(attempts[i][1].n_tokens for i in sel.read)
                    revision_prompts = sum(attempts[i][0] for i in revisions)
                    firsts_read = [i for i in sel.read if i % length == 0]
                    assert sel.cost.samples == len(sel.read) == b
                    assert sel.cost.prompt_tokens == (
                        question * len(firsts_read) + revision_prompts
                    )
                    assert sel.cost.prompt_tokens_computed == question + revision_prompts
                    assert sel.cost.generated_tokens == own
                    assert sel.cost.role_tokens["policy"] == question + sum(
                        attempts[i][1].n_tokens for i in firsts_read
                    )
                    assert sel.cost.role_tokens.get("reviser", 0) == revision_prompts + sum(
                        attempts[i][1].n_tokens for i in revisions
                    )


# -- 2. every row carries its measured cost next to the nominal budget ----------------------


POOL = ("majority", "best_of_n", "coverage")


def _config(tmp_path: Path, **kw: Any) -> RunConfig:
    return RunConfig(
        backend="fake",
        budgets=BUDGETS,
        limit=4,
        cache=False,
        output_dir=str(tmp_path / "runs"),
        leaderboard_dir=str(tmp_path / "leaderboards"),
        **kw,
    )


def _traces(run_dir: Path) -> list[Trace]:
    lines = (run_dir / "traces.jsonl").read_text().splitlines()
    return [Trace.from_dict(json.loads(line)) for line in lines]


def test_rows_carry_measured_cost_next_to_the_budget(tmp_path: Path) -> None:
    config = _config(
        tmp_path,
        task="arith",
        strategies=(StrategySpec("majority"), StrategySpec("best_of_n")),
        verifier="pipeline-word-count",
    )
    outcome = run(config, progress=False, log=lambda _: None)
    rows = outcome.results["rows"]
    assert {r["strategy"] for r in rows} == set(POOL)
    traces = _traces(outcome.run_dir)
    # One pool serves every configuration and budget.
    assert {t.expansion for t in traces} == {"sample(n=4,temperature=0.7)"}
    assert len(traces) == 4
    whole = Cost.mean([t.cost for t in traces if t.cost is not None])
    keys = {"samples", "prompt_tokens", "prompt_tokens_computed", "generated_tokens"}
    keys |= {"verifier_tokens", "seconds", "seconds_p90", "flops", "flops_total"}
    for r in rows:
        cost = r["cost"]
        assert set(cost) == keys
        assert r["budget"] in BUDGETS
        assert cost["samples"] == pytest.approx(r["budget"])
        assert cost["generated_tokens"] == pytest.approx(r["mean_generated_tokens"])
        assert cost["prompt_tokens"] >= cost["prompt_tokens_computed"] > 0
        assert set(r["roles"]) == ({"policy", "verifier"} if r["verifier"] else {"policy"})
        if r["budget"] == 4 and r["label_kind"] == "all":  # the whole pool of each question
            for k in ("samples", "prompt_tokens", "prompt_tokens_computed", "generated_tokens"):
                assert cost[k] == pytest.approx(getattr(whole, k)), (r["config"], k)
            # Only configurations that read the scores pay for the verifier.
            expected = whole.verifier_tokens if r["verifier"] else 0
            assert cost["verifier_tokens"] == pytest.approx(expected), r["config"]
    bon = [r for r in rows if r["strategy"] == "best_of_n"]
    assert all(r["cost"]["verifier_tokens"] > 0 and "verifier" in r["cost"]["flops"] for r in bon)


# -- 3. labels: configurations that differ in an argument never share one --------------------

STRINGS = ("naive", "weighted", "min", "prod", "mean", "last", "majority", "verifier", "extra")
_OMIT = object()


def _candidates(param: inspect.Parameter) -> list[Any]:
    d = param.default
    if d is inspect.Parameter.empty or d is None:
        values: list[Any] = [1, 2, 3, *STRINGS]
    elif isinstance(d, bool):
        values = [not d]
    elif isinstance(d, int):
        # Smaller too: a percentage at its maximum (deepconf_offline's keep=100) accepts only
        # those.
        values = [d + 1, d + 2, d - 1, d // 2]
    elif isinstance(d, float):
        # Larger and smaller: a probability threshold (0.95) accepts only the latter.
        values = [d + 0.5, d * 2 + 1, round(d - 0.05, 6), round((d + 0.5) / 2, 6)]
    elif isinstance(d, str):
        values = list(STRINGS)
    else:
        values = []
    return [v for v in values if v != d]


def _policy_file() -> str:
    """A small fitted policy for the registry-wide label tests: ``policy`` cannot be built
    without one (its file is a required argument, fixed here, never varied)."""
    import tempfile

    from ttc_eval.policy import Choice, Policy, write_policy

    choices = {
        b: {0: Choice("majority", {}, "majority", 1.0),
            2: Choice("best_of_n", {"mode": "naive"}, "best_of_n(mode=naive)", 1.0)}
        for b in (1, 2, 4)
    }  # fmt: skip
    path = Path(tempfile.mkdtemp(prefix="ttc-policy-")) / "policy.yaml"
    write_policy(Policy("vote_agreement", {}, 1, (1.0,), choices, ("t:q",)), path)
    return str(path)


REQUIRED: dict[str, dict[str, Any]] = {"policy": {"file": _policy_file()}}
"""Arguments a strategy cannot be built without, given to every build of it."""


def _create(name: str, args: dict[str, Any]) -> Strategy:
    return STRATEGIES.create(name, **{**REQUIRED.get(name, {}), **args})


def _builds(name: str, args: dict[str, Any]) -> bool:
    try:
        _create(name, args)
    except (UsageError, TypeError, ValueError):
        return False
    return True


def _params(name: str) -> dict[str, inspect.Parameter]:
    sig = inspect.signature(STRATEGIES.get(name))
    return {
        k: p
        for k, p in sig.parameters.items()
        if p.kind not in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)
    }


CANDIDATES: dict[tuple[str, str], list[Any]] = {("policy", "charge"): ["total", "extra"]}
"""Candidate values of parameters whose default (None: as the file says) gives none."""


def _accepted(name: str) -> dict[str, list[Any]]:
    """Per parameter, the candidate values the factory accepts when only it is given."""
    return {
        k: [v for v in CANDIDATES.get((name, k), _candidates(p)) if _builds(name, {k: v})]
        for k, p in _params(name).items()
        if k not in REQUIRED.get(name, {})
    }


ACCEPTED = {name: _accepted(name) for name in STRATEGIES.names()}


def _label(name: str, args: dict[str, Any]) -> str:
    return _create(name, args).label()


def _revisions_trace(seed: int) -> Trace:
    """4 chains x 4 attempts with split votes, step scores and token confidences (what
    revisions and DeepConf read; a pool strategy reads it as a pool of 16)."""
    cands = []
    for i in range(16):
        h = hashlib.sha256(f"{seed}|{i}".encode()).digest()
        key = "abc"[h[0] % 3]
        scores = (h[1] / 255, h[2] / 255, h[3] / 255)
        confidences = (h[4] / 100, h[5] / 100, h[6] / 100)  # DeepConf reads these
        cands.append(
            Candidate(i, f"t{i}", 3, "stop", key, key, key == "a", scores, confidences=confidences)
        )
    return Trace("q", "revisions", tuple(cands), 5, 48, 16, extra={"chains": 4, "length": 4})


def _same_choices(name: str, a: dict[str, Any], b: dict[str, Any]) -> bool:
    """Whether two configurations choose alike: the only excuse for one label. A strategy
    declares such equivalences in ``canonical_args`` (revisions: the aggregation matters
    only to select=verifier; deepconf_offline: the window only to group measures; policy:
    the probe and the charge are its file's); this checks the declaration against what they
    select."""
    sa, sb = _create(name, a), _create(name, b)
    if name not in ("revisions", "deepconf_offline", "policy"):
        return False  # no other strategy declares equivalent arguments
    for seed in range(20):
        t = _revisions_trace(seed)
        for budget in (1, 2, 4):
            if budget in sa.budgets([budget]) and sa.select(t, budget) != sb.select(t, budget):
                return False
    return True


def test_every_registered_strategy_is_covered() -> None:
    assert {"greedy", "majority", "best_of_n", "coverage", "beam_search", "dvts"} <= set(ACCEPTED)
    assert {"revisions", "first_answer"} <= set(ACCEPTED)
    for name, per_param in ACCEPTED.items():
        for param, values in per_param.items():
            # A parameter no candidate value can vary would pass the label test vacuously.
            assert values, f"{name}: no candidate value varies {param}; extend _candidates"


@pytest.mark.parametrize("name", sorted(ACCEPTED))
def test_changing_one_argument_changes_the_label(name: str) -> None:
    # Guards the registry's promise: if a strategy dropped an argument from its label (its
    # own ``label()`` leaving out, say, ``lookahead``, or a factory whose product hid one),
    # beam_search(lookahead=0) and beam_search(lookahead=1) would share a label, and the
    # tables, leaderboards and compute-optimal choice would silently merge them.
    default = _label(name, {})
    for param, values in ACCEPTED[name].items():
        labels = [_label(name, {param: v}) for v in values]
        for v, label in zip(values, labels, strict=True):
            if label == default:  # one label for two settings: they must choose alike
                assert _same_choices(name, {}, {param: v}), (name, param, v)
        for (v, lv), (w, lw) in itertools.combinations(zip(values, labels, strict=True), 2):
            if lv == lw:
                assert _same_choices(name, {param: v}, {param: w}), (name, param, v, w)
        for v in values:
            # The same configuration, however written, has one label.
            assert _label(name, {param: v}) == _label(name, {param: v})
            spec = StrategySpec.parse(f"{name}:{param}={v}")
            assert _label(spec.name, dict(spec.args)) == _label(name, {param: v})
        d = _params(name)[param].default
        if d is not inspect.Parameter.empty:
            assert _label(name, {param: d}) == default, (name, param)


@settings(max_examples=150, deadline=None)
@given(data=st.data())
def test_labels_differ_exactly_when_an_argument_does(data: st.DataObject) -> None:
    name = data.draw(st.sampled_from(sorted(n for n in ACCEPTED if ACCEPTED[n])))
    params = {k: p for k, p in _params(name).items() if k not in REQUIRED.get(name, {})}
    base: dict[str, Any] = {}
    for k, values in ACCEPTED[name].items():
        v = data.draw(st.sampled_from([_OMIT, *values]), label=k)
        if v is not _OMIT:
            base[k] = v
    param = data.draw(st.sampled_from(sorted(params)))
    default = params[param].default
    current = base.get(param, default)
    new = data.draw(st.sampled_from([v for v in [default, *ACCEPTED[name][param]] if v != current]))
    changed = {**base, param: new}
    if not (_builds(name, base) and _builds(name, changed)):
        return  # a combination the factory refuses is no configuration
    if _label(name, base) == _label(name, changed):
        assert _same_choices(name, base, changed), (name, base, changed)
    assert _label(name, dict(base)) == _label(name, base)


# -- 4. import ttc_eval.types stays light -------------------------------------------------------

HEAVY = {"scipy", "torch", "pandas", "numpy"}


@pytest.mark.parametrize("module", ["ttc_eval.types", "ttc_eval"])
def test_import_stays_light(module: str, tmp_path: Path) -> None:
    code = f"import json, sys\nimport {module}\nprint(json.dumps(sorted(sys.modules)))"
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=tmp_path
    )
    loaded = set(json.loads(done.stdout))
    assert not {m.split(".")[0] for m in loaded} & HEAVY
    # The bottom layer imports nothing of ttc-eval's (the package's __init__ is lazy).
    ours = {m for m in loaded if m == "ttc_eval" or m.startswith("ttc_eval.")}
    assert ours <= {"ttc_eval", "ttc_eval.types"}


# -- 5. plug-ins: one new file each, no edit elsewhere ---------------------------------------


def test_plugins_run_end_to_end(tmp_path: Path) -> None:
    judge_cls = plugins.judge_verifier.LengthJudge
    judge_cls.built.clear()
    config = _config(
        tmp_path,
        task="plugin_arith",
        include_path=(str(PLUGINS / "tasks"),),
        strategies=(StrategySpec("first_answer"), StrategySpec("best_of_n")),
        verifier="length-judge",
    )
    outcome = run(config, progress=False, log=lambda _: None)
    results = outcome.results
    assert results["task"] == "plugin_arith" and results["n_problems"] == 4
    # The pipeline built the judge role's backend (the policy's model: no --role judge) and
    # passed it in.
    (judge,) = judge_cls.built
    assert isinstance(judge.judge, CachedBackend) and isinstance(judge.judge.inner, FakeBackend)
    assert judge.replies == 4 * max(BUDGETS)  # one reply per sampled solution
    assert set(results["roles"]) == {"policy", "judge"}
    rows = results["rows"]
    configs = {(r["strategy"], r["budget"]) for r in rows if r["label_kind"] == "all"}
    assert {("first_answer", b) for b in BUDGETS} <= configs
    assert {("best_of_n", b) for b in BUDGETS} <= configs
    assert {r["label_kind"] for r in rows} >= {"all", "level"}  # the loader's labels
    first = [r for r in rows if r["strategy"] == "first_answer"]
    assert all(r["config"] == "first_answer" and r["accuracy"] >= 0 for r in first)
    bon = [r for r in rows if r["strategy"] == "best_of_n"]
    assert all(r["verifier"] == "length-judge" and set(r["roles"]) == {"policy", "judge"}
               for r in bon)  # fmt: skip
    # The judge's tokens, counted from the requests it sent (the fake backend is scripted:
    # the same requests give the same replies).
    fake = judge.judge.inner
    asks = [r for call in fake.calls for r in call if "Rate this solution" in r.prompt]
    assert len(asks) == judge.replies
    replies = [c for (c,) in FakeBackend().generate(asks)]
    counted = sum(len(r.prompt.split()) + c.n_tokens for r, c in zip(asks, replies, strict=True))
    assert judge.tokens_read == counted
    traces = _traces(outcome.run_dir)
    assert sum(t.verifier_tokens for t in traces) == counted
    assert results["compute"]["role_tokens"]["judge"] == counted
    whole = [r for r in bon if r["budget"] == 4 and r["label_kind"] == "all"]
    assert whole[0]["cost"]["verifier_tokens"] == pytest.approx(counted / 4)
    assert "judge" in whole[0]["cost"]["flops"]


# -- 6. a component that breaks its protocol fails mypy ---------------------------------------


def test_a_strategy_that_breaks_the_protocol_fails_mypy(tmp_path: Path) -> None:
    """The registries are typed by what they hold: registering a class that is not a
    Strategy is a type error, and a proper one (the plug-in) is not."""
    bad = tmp_path / "bad_strategy.py"
    bad.write_text(
        "from ttc_eval.registry import strategy\n\n\n"
        '@strategy("broken")\n'
        "class Broken:\n"
        '    """No expansion, select or label: not a Strategy."""\n\n'
        '    name = "broken"\n'
    )
    good = Path(__file__).parent / "plugins" / "first_of_pool.py"
    cmd = [sys.executable, "-m", "mypy", "--strict", "--no-incremental", "--config-file", ""]
    failed = subprocess.run([*cmd, str(bad)], capture_output=True, text=True)
    assert failed.returncode == 1, failed.stdout + failed.stderr
    assert 'expected "Callable[..., Strategy]"' in failed.stdout
    passed = subprocess.run([*cmd, str(good)], capture_output=True, text=True)
    assert passed.returncode == 0, passed.stdout + passed.stderr


@pytest.mark.parametrize(
    "naming",
    [{"roles": {"judge": RoleSpec(model="judge-m")}}, {"verifier_args": {"model": "judge-m"}}],
)
def test_the_judge_role_is_named_by_role_or_by_verifier_model(
    tmp_path: Path, naming: dict[str, Any]
) -> None:
    """``--role judge=M`` and its shorthand ``--verifier-model M`` give a judging verifier
    a backend of its own model (the run's backend), recorded as the judge role's."""
    judge_cls = plugins.judge_verifier.LengthJudge
    judge_cls.built.clear()
    config = _config(
        tmp_path,
        strategies=(StrategySpec("best_of_n"),),
        verifier="length-judge",
        **naming,
    )
    results = run(config, progress=False, log=lambda _: None).results
    (judge,) = judge_cls.built
    assert judge.judge.fingerprint.startswith("fake:judge-m:")
    assert results["roles"] == {"policy": config.model, "judge": "judge-m"}
    assert all(r["roles"]["judge"] == "judge-m" for r in results["rows"] if r["verifier"])


def test_a_role_no_component_uses_is_refused(tmp_path: Path) -> None:
    config = _config(tmp_path, roles={"revisor": RoleSpec(model="m")})
    with pytest.raises(UsageError, match="no component of this run uses the role 'revisor'"):
        run(config, progress=False, log=lambda _: None)


def test_role_template_from_a_file(tmp_path: Path) -> None:
    template = tmp_path / "t.txt"
    template.write_text("{question}\n\nTry again:\n{attempts}")
    name, spec = parse_role_flag(f"reviser=m:backend=fake:template={template}:dtype=float32")
    assert name == "reviser"
    assert spec == RoleSpec("m", "fake", {"dtype": "float32"}, template.read_text())
