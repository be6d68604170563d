"""The difficulty-adaptive policy: its file, fitting it on calibration runs, applying it as a
strategy on the fake backend, and what a choice with a probe is charged."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import yaml

from ttc_eval.cli import main
from ttc_eval.errors import UsageError
from ttc_eval.policy import Choice, Policy, load_policy, quantile_edges, write_policy
from ttc_eval.registry import STRATEGIES
from ttc_eval.types import Candidate, Cost, Trace

FAKE = ["--backend", "fake", "--task", "arith_wide", "--quiet", "--verifier", "logprob"]


def _policy(**over: Any) -> Policy:
    fields: dict[str, Any] = {
        "estimator": "vote_agreement",
        "estimator_args": {},
        "probe": 2,
        "edges": (0.75, 1.0),
        "choices": {
            4: {
                0: Choice("majority", {}, "majority", 1.0),
                1: Choice("majority", {}, "majority", 0.8),
                3: Choice("best_of_n", {"mode": "naive"}, "best_of_n(mode=naive)", 0.6),
            }
        },
        "fitted_on": ("arith_wide:arith-L1-0000",),
    }
    fields.update(over)
    return Policy(**fields)


def test_bins_run_from_easiest_above_every_edge_to_hardest_below_every_one() -> None:
    p = _policy()
    assert p.n_bins == 3
    assert [p.bin_of(f) for f in (1.0, 0.99, 0.75, 0.74, 0.0)] == [1, 2, 2, 3, 3]
    assert p.choice(4, 3).label == "best_of_n(mode=naive)"
    assert p.choice(4, 2).label == "majority"  # no choice of its own: the fallback
    assert quantile_edges([0.0, 1.0, 2.0, 3.0, 4.0], 4) == (1.5, 2.5, 3.5)


def test_edges_of_a_discrete_feature_never_coincide() -> None:
    """Vote agreement over 2 probe samples: 0, 0.5 or 1. Eight questions of 1.0 and one each
    of 0 and 0.5: the inner quantiles (0.9, 1, 1, 1) would make bins no feature reaches; the
    edges are midpoints between observed values instead, one per distinct gap."""
    features = [0.0, 0.5] + [1.0] * 8
    assert quantile_edges(features, 5) == (0.75,)
    assert quantile_edges([0.0] * 5 + [0.5] * 5 + [1.0] * 5, 3) == (0.25, 0.75)
    assert quantile_edges([1.0] * 4, 5) == ()  # one value: one bin


def test_policy_files_round_trip_and_bad_files_say_what_to_do(tmp_path: Path) -> None:
    path = tmp_path / "p.yaml"
    write_policy(_policy(), path)
    read, digest, _ = load_policy(path)
    assert read == _policy() and len(digest) == 64
    with pytest.raises(UsageError, match="ttc-eval policy fit"):
        load_policy(tmp_path / "missing.yaml")
    (tmp_path / "bad.yaml").write_text("estimator: 3\n")
    with pytest.raises(UsageError, match="not a policy file"):
        load_policy(tmp_path / "bad.yaml")


def _trace(keys: list[str | None]) -> Trace:
    cands = tuple(
        Candidate(
            i, f"t{i}", 10, "stop", k, k, k == "a", (0.9 if k == "b" else 0.1,),
            cost=Cost(samples=1, prompt_tokens=5, generated_tokens=10,
                      role_tokens={"policy": 10}),
        )
        for i, k in enumerate(keys)
    )  # fmt: skip
    return Trace("q", "sample(n=8)", cands, 5, 10 * len(keys), len(keys))


def test_the_probe_picks_the_bin_and_is_charged(tmp_path: Path) -> None:
    """A probe that disagrees (``a, c``: agreement 0.5, bin 3) runs best_of_n naive, where
    majority would answer otherwise; one that agrees (``b, b``: bin 1) runs majority. With
    charge=extra the choice reads its budget after the probe and pays the probe on top."""
    from ttc_eval.pipeline import selections

    path, path_extra = tmp_path / "p.yaml", tmp_path / "x.yaml"
    write_policy(_policy(), path)
    write_policy(_policy(charge="extra"), path_extra)
    total = STRATEGIES.create("policy", file=str(path))
    extra = STRATEGIES.create("policy", file=str(path_extra), charge="extra")
    assert total.label().startswith("policy(charge=total,file=")
    assert "sha256=" in total.label() and total.label() != extra.label()
    hard = _trace(["a", "c", "b", "a", "b", "b", "a", "a"])
    first, second = total.select(hard, 4)
    assert first.answer == "b"  # best_of_n(mode=naive) over the first 4: b scores 0.9
    assert STRATEGIES.create("majority").select(hard, 4)[0].answer == "a"
    # The second group's probe agrees (b, b): bin 1, majority over b, b, a, a (b first).
    assert second.answer == "b" and second.read == (4, 5, 6, 7)
    x = selections(total, hard, 4)[0]
    assert x.cost is not None and x.cost.samples == 4  # the probe is part of the 4
    # charge=extra: 4 samples after the probe, the probe's 2 on top.
    (y,) = selections(extra, hard, 4)  # one group of 6 in a pool of 8
    assert y.cost is not None and y.cost.samples == 6 and set(y.read) == set(range(6))
    assert y.cost.generated_tokens == 60


def test_probe_and_budget_must_match_the_fit(tmp_path: Path) -> None:
    path = tmp_path / "p.yaml"
    write_policy(_policy(), path)
    with pytest.raises(UsageError, match="fitted on 2 probe samples"):
        STRATEGIES.create("policy", file=str(path), probe=3)
    with pytest.raises(UsageError, match="no choices at budget"):
        STRATEGIES.create("policy", file=str(path)).budgets([4, 8])
    with pytest.raises(UsageError, match="charge must be one of total, extra"):
        STRATEGIES.create("policy", file=str(path), charge="some")
    with pytest.raises(UsageError, match="fitted with charge=total"):
        STRATEGIES.create("policy", file=str(path), charge="extra")
    with pytest.raises(UsageError, match="below the probe's 2 samples"):
        STRATEGIES.create("policy", file=str(path)).budgets([1, 4])


def _run_dir(out: str) -> Path:
    (d,) = list(Path(out).iterdir())
    return d


def test_fit_then_apply_on_the_fake_backend(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    args = ["run", *FAKE, "--strategy", "majority,best_of_n,esc", "--budgets", "4,8,16"]
    assert main([*args, "--split", "calibration", "--output-dir", "cal"]) == 0
    cal = _run_dir("cal")
    fit = ["policy", "fit", str(cal), "--probe", "2", "--output", "policy.yaml"]
    assert main([*fit, "--min-questions", "2"]) == 0
    data = yaml.safe_load(Path("policy.yaml").read_text())
    assert data["probe"] == 2 and data["estimator"]["name"] == "vote_agreement"
    edges = data["edges"]
    assert sorted(data["choices"]) == [4, 8, 16] and 1 <= len(edges) <= 4
    assert edges == sorted(set(edges))  # ascending, none coincide
    fitted = set(data["fitted_on"])
    cal_ids = {json.loads(x)["problem_id"] for x in (cal / "traces.jsonl").read_text().splitlines()}
    assert (
        fitted == {f"arith_wide:{q}" for q in cal_ids} and data["sources"][0]["run_id"] == cal.name
    )
    assert "bin 1:" in capsys.readouterr().out
    extra_fit = [*fit[:-1], "extra.yaml", "--min-questions", "2", "--charge", "extra"]
    assert main(extra_fit) == 0
    assert yaml.safe_load(Path("extra.yaml").read_text())["charge"] == "extra"
    strategies = "policy:file=policy.yaml,policy:file=extra.yaml,majority"
    run_args = ["run", *FAKE, "--strategy", strategies, "--budgets", "4,8"]
    # Evaluated on the questions it was fitted on: refused, before anything is generated.
    assert main([*run_args, "--split", "calibration", "--output-dir", "leak"]) == 2
    assert "was fitted on" in capsys.readouterr().err and not Path("leak").exists()
    assert main([*run_args, "--output-dir", "leak"]) == 2  # all questions hold them too
    assert main([*run_args, "--split", "test", "--output-dir", "test"]) == 0
    results = json.loads((_run_dir("test") / "results.json").read_text())
    rows = {
        (r["config"].split(",sha256")[0], r["budget"]): r
        for r in results["rows"]
        if r["label_kind"] == "all"
    }
    for budget in (4, 8):
        assert rows[("policy(charge=total,file=policy.yaml,probe=2", budget)]["cost"][
            "samples"
        ] == pytest.approx(budget)
        # The probe paid on top: K more samples per question than the budget.
        assert rows[("policy(charge=extra,file=extra.yaml,probe=2", budget)]["cost"][
            "samples"
        ] == pytest.approx(budget + 2)
    # The report's comparison: every side on the policy's own pool at the samples the
    # policy is charged; with charge=total the majority side is the run's majority row.
    comparison = {(e["policy"].split(",sha256")[0], e["budget"]): e for e in results["policy"]}
    for budget in (4, 8):
        e = comparison[("policy(charge=total,file=policy.yaml,probe=2", budget)]
        sides = {x["kind"]: x for x in e["sides"]}
        assert list(sides) == ["policy", "best_of_n", "majority", "best_single", "oracle_bins"]
        assert (
            sides["policy"]["accuracy"]
            == rows[(e["policy"].split(",sha256")[0], budget)]["accuracy"]
        )
        assert sides["majority"]["accuracy"] == pytest.approx(
            rows[("majority", budget)]["accuracy"]
        )
        for x in e["sides"][1:]:
            assert x["policy_minus_this"] == pytest.approx(
                sides["policy"]["accuracy"] - x["accuracy"]
            )
            assert x["paired_ci"][0] <= x["policy_minus_this"] <= x["paired_ci"][1]
        # In-sample per oracle bin, the oracle-bin policy beats every single configuration.
        best = max(sides[k]["accuracy"] for k in ("best_of_n", "majority", "best_single"))
        assert sides["oracle_bins"]["in_sample"] and sides["oracle_bins"]["accuracy"] >= best
        e = comparison[("policy(charge=extra,file=extra.yaml,probe=2", budget)]
        assert e["compared_at_samples"] == budget + 2
        assert {x["kind"]: x["budget"] for x in e["sides"]}["best_of_n"] == budget + 2
    assert (
        "difficulty-adaptive policy vs baselines"
        in (_run_dir("test") / "report" / "tables.md").read_text()
    )
    assert (_run_dir("test") / "report" / "policy.png").stat().st_size > 0
    # The run keeps a copy of each policy file, and its report reads the copy: from another
    # folder, and after the original was overwritten, it computes what the run did.
    test = _run_dir("test").resolve()
    index = json.loads((test / "policies" / "index.json").read_text())
    assert set(index) == {"policy.yaml", "extra.yaml"}
    assert (test / "policies" / index["policy.yaml"]).read_bytes() == Path(
        "policy.yaml"
    ).read_bytes()
    Path("policy.yaml").write_text("overwritten: true\n")
    elsewhere = Path("elsewhere")
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    assert main(["report", str(test)]) == 0
    again = json.loads((test / "results.json").read_text())
    assert [r["accuracy"] for r in again["rows"]] == [r["accuracy"] for r in results["rows"]]


def test_fit_errors_are_usage_errors(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["policy", "fit", "nowhere", "--probe", "2", "--output", "p.yaml"]) == 2
    assert "not a run directory" in capsys.readouterr().err
    args = ["run", *FAKE, "--strategy", "majority", "--budgets", "2", "--limit", "4"]
    assert main([*args, "--output-dir", "cal"]) == 0
    code = main(["policy", "fit", str(_run_dir("cal")), "--probe", "3", "--output", "p.yaml"])
    assert code == 2 and "fewer than the probe's 3" in capsys.readouterr().err
    # Budgets below the probe are left out of the policy (it refuses to run at them).
    args = ["run", *FAKE, "--strategy", "esc", "--budgets", "1,2", "--limit", "4"]
    assert main([*args, "--output-dir", "small"]) == 0
    assert (
        main(["policy", "fit", str(_run_dir("small")), "--probe", "2", "--output", "p.yaml"]) == 0
    )
    assert sorted(yaml.safe_load(Path("p.yaml").read_text())["choices"]) == [2]


def _pool(keys: list[str | None], scores: list[float], gold: str) -> Trace:
    cands = tuple(
        Candidate(i, f"t{i}", 10, "stop", k, k, k == gold, (s,))
        for i, (k, s) in enumerate(zip(keys, scores, strict=True))
    )
    return Trace("q", "sample(n=8)", cands, 5, 80, 8)


def _majority_and_naive() -> dict[str, Any]:
    """The two configurations the constructed calibrations choose between, in run order."""
    return {
        "majority": STRATEGIES.create("majority"),
        "best_of_n(aggregation=last,mode=naive)": STRATEGIES.create("best_of_n", mode="naive"),
    }


def _six_each(a: str, first: Trace, b: str, second: Trace) -> dict[str, Trace]:
    """Six questions named ``t:<a><i>`` with pool ``first`` and six ``t:<b><i>`` with ``second``."""
    return {f"t:{a}{i}": first for i in range(6)} | {f"t:{b}{i}": second for i in range(6)}


def test_the_fit_sends_easy_questions_to_majority_and_hard_ones_to_the_verifier() -> None:
    """Easy questions: each probe agrees and majority is right, while the verifier prefers a
    wrong outlier. Hard ones: probes disagree and majority is wrong, the verifier scores the
    right answer highest. The fit per group, binning each group by its own probe, chooses
    majority in the easy bin and best-of-N in the hard one."""
    from ttc_eval.policy import Calibration, fit_on
    from ttc_eval.registry import ESTIMATORS

    easy = _pool(["a", "a", "a", "x"] * 2, [0.1, 0.1, 0.1, 0.9] * 2, gold="a")
    hard = _pool(["x", "y", "x", "a"] * 2, [0.1, 0.1, 0.1, 0.9] * 2, gold="a")
    pools = _six_each("e", easy, "h", hard)
    configs = _majority_and_naive()
    cal = Calibration(pools, configs, [4], [])
    policy = fit_on(cal, ESTIMATORS.create("vote_agreement"), probe=2, n_bins=5)
    assert policy.edges == (0.75,)  # probes agree (1.0) or not (0.5): two bins
    assert policy.choice(4, 1).label == "majority"
    assert policy.choice(4, 2).label == "best_of_n(aggregation=last,mode=naive)"
    assert policy.choice(4, 1).share == 1.0 and policy.choice(4, 2).share == 1.0
    assert set(policy.fitted_on) == set(pools) and policy.notes == ()


def test_a_bin_with_too_few_calibration_questions_runs_the_fallback() -> None:
    """The same calibration with 6 questions per bin: at min_questions=7 neither bin gets a
    choice of its own, both run the choice over all 12 questions, and the notes say so."""
    from ttc_eval.policy import Calibration, fit_on
    from ttc_eval.registry import ESTIMATORS

    easy = _pool(["a", "a", "a", "x"] * 2, [0.1, 0.1, 0.1, 0.9] * 2, gold="a")
    hard = _pool(["x", "y", "x", "a"] * 2, [0.1, 0.1, 0.1, 0.9] * 2, gold="a")
    pools = _six_each("e", easy, "h", hard)
    configs = {"majority": STRATEGIES.create("majority")}
    cal = Calibration(pools, configs, [4], [])
    est = ESTIMATORS.create("vote_agreement")
    policy = fit_on(cal, est, probe=2, n_bins=5, min_questions=7)
    assert set(policy.choices[4]) == {0} and policy.min_questions == 7
    assert len(policy.notes) == 2 and "fewer than 7" in policy.notes[0]
    assert set(fit_on(cal, est, probe=2, n_bins=5, min_questions=6).choices[4]) == {0, 1, 2}


def _write(tmp_path: Path, name: str, policy: Policy) -> Any:
    path = tmp_path / name
    write_policy(policy, path)
    return STRATEGIES.create("policy", file=str(path))


def _score(strategy: Any, pools: dict[str, Trace], budget: int) -> float:
    sels = [s for t in pools.values() for s in strategy.select(t, budget)]
    return sum(s.correct for s in sels) / len(sels)


def test_a_policy_fitted_on_the_test_questions_scores_higher_and_is_refused(
    tmp_path: Path,
) -> None:
    """The leak test. On the calibration questions, easy ones (probes agree) are won by
    majority and hard ones by the verifier; on the test questions it is the other way
    round. The honest policy, fitted on calibration only, carries its choices over and
    loses; one fitted on the test questions themselves wins: the leak a split prevents.
    The honest fit never reads the test pools (the same policy whatever they hold), and a
    run of the leaked policy on its own questions is refused."""
    from types import SimpleNamespace

    from ttc_eval.pipeline import check_not_fitted_on
    from ttc_eval.policy import Calibration, fit_on
    from ttc_eval.registry import ESTIMATORS
    from ttc_eval.types import Problem

    scores = [0.1, 0.1, 0.1, 0.9] * 2
    easy_cal = _pool(["a", "a", "a", "x"] * 2, scores, gold="a")  # majority right
    hard_cal = _pool(["x", "y", "x", "a"] * 2, scores, gold="a")  # verifier right
    easy_test = _pool(["x", "x", "x", "a"] * 2, scores, gold="a")  # verifier right
    hard_test = _pool(["a", "y", "a", "x"] * 2, scores, gold="a")  # majority right
    cal_pools = _six_each("ce", easy_cal, "ch", hard_cal)
    test_pools = _six_each("te", easy_test, "th", hard_test)
    configs = _majority_and_naive()
    est = ESTIMATORS.create("vote_agreement")
    honest = fit_on(Calibration(cal_pools, configs, [4], []), est, probe=2)
    leaked = fit_on(Calibration(test_pools, configs, [4], []), est, probe=2)
    h, k = _write(tmp_path, "honest.yaml", honest), _write(tmp_path, "leaked.yaml", leaked)
    assert _score(h, test_pools, 4) == 0.0 and _score(k, test_pools, 4) == 1.0
    assert not set(honest.fitted_on) & set(test_pools)
    task = SimpleNamespace(spec=SimpleNamespace(name="t"))
    problems = [Problem(id=q.split(":")[1], question=q, answer="a") for q in test_pools]
    check_not_fitted_on(SimpleNamespace(strategies=[h]), task, problems)  # type: ignore[arg-type]
    with pytest.raises(UsageError, match="was fitted on 12 of this run's questions"):
        check_not_fitted_on(SimpleNamespace(strategies=[k]), task, problems)  # type: ignore[arg-type]


def test_fitted_questions_are_recognised_by_their_text_under_another_name(
    tmp_path: Path,
) -> None:
    from types import SimpleNamespace

    from ttc_eval.pipeline import check_not_fitted_on
    from ttc_eval.policy import text_key
    from ttc_eval.types import Problem

    s = _write(tmp_path, "p.yaml", _policy(fitted_text=(text_key("What is 2+2?"),)))
    task = SimpleNamespace(spec=SimpleNamespace(name="other_task"))
    plan = SimpleNamespace(strategies=[s])
    check_not_fitted_on(plan, task, [Problem(id="x", question="What is 2+3?", answer="5")])  # type: ignore[arg-type]
    with pytest.raises(
        UsageError, match=r"fitted on 1 of this run's questions \(e.g. other_task:y"
    ):
        check_not_fitted_on(plan, task, [Problem(id="y", question="What is 2+2?", answer="4")])  # type: ignore[arg-type]


def test_the_fit_at_equal_tokens_reads_fewer_samples_where_they_suffice(tmp_path: Path) -> None:
    """--axis tokens at budget 4: on easy questions majority over 2 samples is as right as
    anything over 4 and costs half, so the easy bin's choice reads 2 (the probe itself); the
    hard bin needs the verifier's pick among all 4. Applied, an easy group costs 2 samples
    and a hard one 4."""
    from ttc_eval.pipeline import selections
    from ttc_eval.policy import Calibration, fit_on
    from ttc_eval.registry import ESTIMATORS

    scores = [0.1, 0.1, 0.1, 0.9] * 2
    easy = _pool(["a", "a", "a", "x"] * 2, scores, gold="a")
    hard = _pool(["x", "y", "x", "a"] * 2, scores, gold="a")
    pools = _six_each("e", easy, "h", hard)
    configs = _majority_and_naive()  # majority first: it wins the easy bin's ties
    cal = Calibration(pools, configs, [2, 4], [])
    policy = fit_on(cal, ESTIMATORS.create("vote_agreement"), probe=2, axis="tokens")
    assert policy.axis == "tokens"
    easy_choice, hard_choice = policy.choice(4, 1), policy.choice(4, 2)
    assert (easy_choice.label, easy_choice.budget) == ("majority", 2)
    assert hard_choice.label.startswith("best_of_n") and hard_choice.budget is None
    s = _write(tmp_path, "p.yaml", policy)
    assert [x.cost.samples for x in selections(s, easy, 4) if x.cost] == [2, 2]
    assert [x.cost.samples for x in selections(s, hard, 4) if x.cost] == [4, 4]
    assert all(x.correct for t in (easy, hard) for x in s.select(t, 4))
    with pytest.raises(UsageError, match="needs the models' parameter counts"):
        fit_on(cal, ESTIMATORS.create("vote_agreement"), probe=2, axis="flops")


@pytest.mark.slow
def test_done_when_fit_and_apply_on_the_default_model() -> None:
    """Issue 16's commands on the default model: fit on a calibration split, run the policy
    beside best-of-N and majority on the test split; the report holds the equal-compute
    comparison with measured FLOPs, and the policy is charged exactly N samples."""
    common = ["--task", "arith_wide", "--verifier", "logprob", "--budgets", "4,8", "--quiet"]
    candidates = "majority,best_of_n,best_of_n:mode=naive"
    assert main(["run", *common, "--strategy", candidates, "--split", "calibration",
                 "--limit", "6", "--output-dir", "cal"]) == 0  # fmt: skip
    assert main(["policy", "fit", str(_run_dir("cal")), "--probe", "4", "--min-questions", "2",
                 "--output", "policy.yaml"]) == 0  # fmt: skip
    assert main(["run", *common, "--strategy", "policy:file=policy.yaml,best_of_n,majority",
                 "--split", "test", "--limit", "4", "--output-dir", "test"]) == 0  # fmt: skip
    results = json.loads((_run_dir("test") / "results.json").read_text())
    assert [e["budget"] for e in results["policy"]] == [4, 8]
    for e in results["policy"]:
        sides = {s["kind"]: s for s in e["sides"]}
        assert set(sides) == {"policy", "best_of_n", "majority", "best_single", "oracle_bins"}
        assert sides["policy"]["samples"] == e["budget"] == sides["best_of_n"]["samples"]
        assert all(s["flops"] and s["flops"] > 0 for s in e["sides"])
        assert e["n_problems"] == 4
    assert (
        "difficulty-adaptive policy vs baselines"
        in (_run_dir("test") / "report" / "tables.md").read_text()
    )


def _costed(keys: list[str], scores: list[float], gold: str) -> Trace:
    """A pool whose every sample cost 10 generated tokens and 100 read by the verifier."""
    cands = tuple(
        Candidate(i, f"t{i}", 10, "stop", k, k, k == gold, (sc,),
                  cost=Cost(samples=1, prompt_tokens=5, generated_tokens=10, verifier_tokens=100,
                            role_tokens={"policy": 10, "verifier": 100}))
        for i, (k, sc) in enumerate(zip(keys, scores, strict=True))
    )  # fmt: skip
    return Trace("q", "sample(n=4)", cands, 5, 40, 4, verifier="logprob", verifier_tokens=400,
                 verifier_role="verifier")  # fmt: skip


def test_the_verifier_is_paid_for_what_was_read_of_it(tmp_path: Path) -> None:
    """A verifier-score estimator reads the probe's scores; majority reads none: the choice
    pays the verifier for the 2 probe samples only. Best-of-N reads all 4 scores, and a
    vote-agreement probe with majority reads none."""
    from ttc_eval.pipeline import selections

    trace = _costed(["a", "a", "b", "a"], [0.2, 0.4, 0.9, 0.1], gold="a")

    def paid(estimator: str, chosen: Choice) -> float:
        policy = _policy(estimator=estimator, edges=(), choices={4: {0: chosen}})
        (x,) = selections(_write(tmp_path, f"{estimator}-{chosen.name}.yaml", policy), trace, 4)
        assert x.cost is not None and x.cost.samples == 4
        return x.cost.verifier_tokens

    majority = Choice("majority", {}, "majority", 1.0)
    best = Choice("best_of_n", {}, "best_of_n(aggregation=last,mode=weighted)", 1.0)
    assert paid("verifier_score", majority) == 200
    assert paid("verifier_score", best) == 400
    assert paid("vote_agreement", majority) == 0


def test_the_fit_bins_each_group_by_its_probe_not_by_the_whole_group() -> None:
    """Both kinds of question have a whole-group agreement of 0.5; only their probes differ
    (a, a agree; x, y do not). Binned by the probe, as the policy applies it, they fall in
    two bins with opposite winners."""
    from ttc_eval.policy import Calibration, fit_on
    from ttc_eval.registry import ESTIMATORS

    agree = _pool(["a", "a", "x", "y"] * 2, [0.1, 0.1, 0.9, 0.1] * 2, gold="a")
    split = _pool(["x", "y", "x", "a"] * 2, [0.1, 0.1, 0.1, 0.9] * 2, gold="a")
    pools = _six_each("a", agree, "s", split)
    configs = _majority_and_naive()
    policy = fit_on(Calibration(pools, configs, [4], []), ESTIMATORS.create("vote_agreement"), 2)
    assert policy.edges == (0.75,)
    assert policy.choice(4, 1).label == "majority"
    assert policy.choice(4, 2).label == "best_of_n(aggregation=last,mode=naive)"


def test_efficiency_is_the_reference_tokens_to_match_over_the_policys() -> None:
    """The tokens majority needs on the same pools to reach a target accuracy, linear in log2
    tokens between its budgets, over the policy's tokens; recomputed here from majority's
    accuracy at each budget."""
    import itertools
    import math

    from ttc_eval.pipeline import evaluate
    from ttc_eval.policy_report import _efficiency

    traces = {
        "q1": _costed(["a", "b", "a", "a"], [0.5] * 4, gold="a"),
        "q2": _costed(["a", "a", "b", "a"], [0.5] * 4, gold="a"),
    }
    majority = STRATEGIES.create("majority")
    curve = {}
    for b in (1, 2, 4):
        res = [evaluate(majority, t, b) for t in traces.values()]
        curve[10.0 * b] = sum(r.accuracy for r in res) / 2
    points = sorted(curve.items())
    target = (points[0][1] + points[-1][1]) / 2
    assert points[0][1] < target < points[-1][1]  # majority gains with samples here
    for (t0, a0), (t1, a1) in itertools.pairwise(points):
        if a0 < target <= a1:
            expected = 2 ** (math.log2(t0) + (target - a0) / (a1 - a0) * math.log2(t1 / t0))
            break
    out = _efficiency(majority, traces, target, tokens=25.0)
    assert out["efficiency_note"] == "interpolated"
    assert out["reference_tokens_to_match"] == pytest.approx(expected)
    assert out["efficiency_ratio"] == pytest.approx(expected / 25.0)
    assert _efficiency(majority, traces, 1.01, tokens=25.0)["efficiency_ratio"] is None


def test_two_policy_files_of_one_name_keep_two_copies_and_no_verifier_is_needed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """a/policy.yaml and b/policy.yaml (different choices) in one run keep one copy each,
    and a report from another folder reads each policy's own copy. Both choose majority
    only, so the run needs no verifier, though best-of-N is among their candidates: the
    report's oracle-bin side leaves out what the traces cannot score."""
    best = Choice("best_of_n", {"mode": "naive"}, "best_of_n(mode=naive)", 0.0)
    majority = Choice("majority", {}, "majority", 1.0)
    for folder, probe in (("a", 1), ("b", 2)):
        Path(folder).mkdir()
        write_policy(
            _policy(probe=probe, edges=(), choices={4: {0: majority}}, candidates=(majority, best)),
            Path(folder) / "policy.yaml",
        )
    strategies = "policy:file=a/policy.yaml,policy:file=b/policy.yaml,majority"
    args = ["run", "--backend", "fake", "--task", "arith_wide", "--quiet", "--verifier", "none"]
    assert main([*args, "--strategy", strategies, "--budgets", "4", "--split", "test",
                 "--limit", "6", "--output-dir", "out"]) == 0  # fmt: skip
    run_dir = _run_dir("out").resolve()
    index = json.loads((run_dir / "policies" / "index.json").read_text())
    assert set(index) == {"a/policy.yaml", "b/policy.yaml"}
    assert index["a/policy.yaml"] != index["b/policy.yaml"]
    first = json.loads((run_dir / "results.json").read_text())
    probes = sorted(e["probe"] for e in first["policy"])
    assert probes == [1, 2]
    assert all(
        {s["kind"] for s in e["sides"]} == {"policy", "majority", "best_single", "oracle_bins"}
        for e in first["policy"]
    )
    Path("elsewhere").mkdir()
    monkeypatch.chdir("elsewhere")
    assert main(["report", str(run_dir)]) == 0
    again = json.loads((run_dir / "results.json").read_text())
    assert sorted(e["probe"] for e in again["policy"]) == [1, 2]
    assert [r["config"] for r in again["rows"]] == [r["config"] for r in first["rows"]]


def _searched(correct: bool, tokens: int) -> Trace:
    """A search's tree for one question: 3 step generations, ``tokens`` generated, its
    candidates' costs not separable (one tree), all right or all wrong."""
    key = "a" if correct else "x"
    cands = tuple(Candidate(i, f"s{i}", 10, "stop", key, key, correct, (0.5,)) for i in range(2))
    cost = Cost(samples=3, prompt_tokens=15, prompt_tokens_computed=5, generated_tokens=tokens,
                verifier_tokens=70, role_tokens={"policy": 5 + tokens, "verifier": 70})  # fmt: skip
    return Trace("q", "search(n=2)", cands, 5, tokens, 3, verifier="prm", verifier_tokens=70,
                 cost=cost, verifier_role="verifier")  # fmt: skip


def test_the_fit_sends_hard_questions_to_a_search_at_the_budget_the_probe_leaves(
    tmp_path: Path,
) -> None:
    """Easy questions: majority is right, the search wrong; hard ones the reverse. A search
    cannot reuse the probe: at budget 4 with charge=total it runs at 2 (4 - K), with
    charge=extra at 4. Applied, a hard group reads its probe from the pool and answers from
    the search's own trace, and is charged both, the question's prompt once."""
    from ttc_eval.pipeline import selections
    from ttc_eval.policy import Calibration, companion_name, fit_on, served_budget
    from ttc_eval.registry import ESTIMATORS

    beam = STRATEGIES.create("beam_search", width=2)
    label = beam.label()
    scores = [0.1] * 8
    easy = _pool(["a", "a", "a", "x"] * 2, scores, gold="a")
    hard = _pool(["x", "y", "x", "a"] * 2, scores, gold="a")
    searches = {b: (_searched(False, 20 * b), _searched(True, 20 * b)) for b in (2, 4)}

    def joined(pool: Trace, right: int) -> Trace:
        companions = {companion_name(label, b): pair[right] for b, pair in searches.items()}
        return replace(pool, companions=companions)

    pools = _six_each("e", joined(easy, 0), "h", joined(hard, 1))
    configs = {"majority": STRATEGIES.create("majority"), label: beam}
    est = ESTIMATORS.create("vote_agreement")
    assert served_budget([2, 4], 4, 2, "total") == 2 and served_budget([4], 4, 2, "total") is None
    for charge, runs_at in (("total", 2), ("extra", 4)):
        cal = Calibration(pools, configs, [4], [], served={label: [2, 4]})
        policy = fit_on(cal, est, probe=2, charge=charge)
        assert policy.choice(4, 1).label == "majority"
        chosen = policy.choice(4, 2)
        assert (chosen.label, chosen.budget) == (label, runs_at)
        assert {c.label for c in policy.candidates} == {"majority", label}
        s = _write(tmp_path, f"{charge}.yaml", policy)
        assert s.needs_verifier  # the search reads scores
        spec = beam.expansion(runs_at, _defaults())
        assert s.also_reads(4, _defaults()) == {companion_name(label, runs_at): spec}
        hard_q = pools["t:h0"]
        sels = selections(s, hard_q, 4)
        assert all(x.correct and x.picked_in == companion_name(label, runs_at) for x in sels)
        for x in sels:
            assert x.cost is not None
            # The probe's 2 samples (10 tokens each) plus the search's 3 generations.
            assert x.cost.samples == 2 + 3
            assert x.cost.generated_tokens == 20 + 20 * runs_at
            assert x.cost.prompt_tokens_computed == 5  # the question's prompt, once
            # The search read its scores; the vote-agreement probe read none.
            assert x.cost.verifier_tokens == 70 and x.cost.role_tokens["verifier"] == 70
        # Without the search's trace the choice cannot be made, and says what to do.
        with pytest.raises(UsageError, match="rerun the run's command"):
            s.select(replace(hard_q, companions={}), 4)


def _defaults() -> Any:
    from ttc_eval.strategies._base import RunDefaults
    from ttc_eval.types import SamplingParams

    return RunDefaults(SamplingParams(temperature=0.7, max_tokens=64), (4, 8))


def test_a_policy_runs_search_and_revisions_configurations_on_the_fake_backend() -> None:
    """Fit on a calibration run of pool, search and revisions configurations: they are all
    candidates, a search only at budgets it has beside the probe. A policy that runs
    revisions in the easy bin and beam search elsewhere at budget 8: the run expands both
    for the test questions; each question is charged its probe plus what the chosen
    configuration read there (recomputed here from traces.jsonl), and answers from it."""
    from ttc_eval.registry import ESTIMATORS

    fake = ["--backend", "fake", "--task", "arith_wide", "--quiet", "--verifier", "fake-prm"]
    configs = "majority,best_of_n,beam_search:width=2,revisions:sequential=2"
    run_args = ["run", *fake, "--budgets", "4,8"]
    assert main([*run_args, "--strategy", configs, "--split", "calibration",
                 "--output-dir", "cal"]) == 0  # fmt: skip
    fit = ["policy", "fit", str(_run_dir("cal")), "--probe", "2", "--min-questions", "2"]
    assert main([*fit, "--output", "p.yaml"]) == 0
    data = yaml.safe_load(Path("p.yaml").read_text())
    by_name = {c["name"]: c for c in data["candidates"]}
    assert set(by_name) == {"majority", "best_of_n", "beam_search", "revisions"}
    # At budget 4 the probe leaves 2, and the search ran at 4 and 8 only.
    assert any(n.startswith("budget 4: beam_search") for n in data["notes"])
    assert all(
        c["budget"] <= b - 2 for b, by_bin in data["choices"].items() for c in by_bin.values()
        if c["name"] in ("beam_search", "revisions")
    )  # fmt: skip
    beam = {**by_name["beam_search"], "share": 1.0, "budget": 4}
    revise = {**by_name["revisions"], "share": 1.0, "budget": 4}
    data["choices"][8] = {0: beam, 1: revise, 2: beam}
    Path("h.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
    assert main([*run_args, "--strategy", "policy:file=h.yaml,majority", "--split", "test",
                 "--output-dir", "test"]) == 0  # fmt: skip
    rows = [json.loads(x) for x in (_run_dir("test") / "traces.jsonl").read_text().splitlines()]
    by = {(r["expansion"].split("(")[0], r["problem_id"]): r for r in rows}
    questions = sorted({q for _, q in by})
    assert {k for k, _ in by} == {"sample", "search", "revisions"}
    policy = Policy.from_dict(data)
    est = ESTIMATORS.create("vote_agreement")
    revisions = STRATEGIES.create("revisions", sequential=2)
    search = STRATEGIES.create("beam_search", width=2)
    samples, tokens, right = [], [], []
    for q in questions:
        pool = Trace.from_dict(by[("sample", q)])
        probe = pool.candidates[:2]
        spent = sum(c.n_tokens for c in probe)
        feature = est.feature(list(probe))
        bin_ = policy.bin_of(feature) if feature is not None else 0
        if bin_ == 1:  # revisions 2 x 2: the first two attempts of chains 0 and 1
            rev = Trace.from_dict(by[("revisions", q)])
            length = int(rev.extra["length"])
            assert length == 4  # the companion is sized for budget 4, not the run's 8
            read = [rev.candidates[i] for i in (0, 1, length, length + 1)]
            samples.append(2 + 4)
            tokens.append(spent + sum(c.n_tokens for c in read))
            right.append(revisions.select(rev, 4)[0].correct)
        else:
            tree = by[("search", q)]
            samples.append(2 + tree["cost"]["samples"])
            tokens.append(spent + tree["cost"]["generated_tokens"])
            right.append(search.select(Trace.from_dict(tree), 4)[0].correct)
    results = json.loads((_run_dir("test") / "results.json").read_text())
    (row,) = [
        r for r in results["rows"]
        if r["label_kind"] == "all" and r["budget"] == 8 and r["strategy"] == "policy"
    ]  # fmt: skip
    assert row["cost"]["samples"] == pytest.approx(sum(samples) / len(samples))
    assert row["cost"]["generated_tokens"] == pytest.approx(sum(tokens) / len(tokens))
    assert row["accuracy"] == pytest.approx(sum(right) / len(right))
    assert 0 < sum(1 for s in samples if s == 6) < len(samples)  # both kinds were routed
    # The report's best single configuration is the fallback (beam search) alone at 4.
    (entry,) = [e for e in results["policy"] if e["budget"] == 8]
    single = next(s for s in entry["sides"] if s["kind"] == "best_single")
    assert single["label"] == beam["label"] and single["budget"] == 4
    # A calibration pool still under way (one question's pool row gone): the fit reads the
    # search's traces of the questions that have a pool only.
    traces = _run_dir("cal") / "traces.jsonl"
    lines = traces.read_text().splitlines()
    first = next(i for i, x in enumerate(lines) if json.loads(x)["expansion"].startswith("sample"))
    traces.write_text("\n".join(lines[:first] + lines[first + 1 :]) + "\n")
    assert main([*fit, "--output", "q.yaml"]) == 0
    assert (
        len(yaml.safe_load(Path("q.yaml").read_text())["fitted_on"]) == len(data["fitted_on"]) - 1
    )


@pytest.mark.slow
def test_a_policy_runs_revisions_on_the_default_model() -> None:
    """On the default model: revisions is a candidate of the fit (no room beside the probe at
    budget 2, a note says so), and a policy that runs it at 2 after a probe of 2 expands the
    revisions for the test questions and is charged 2 + 2 samples, answering from them."""
    common = ["--task", "arith_wide", "--budgets", "2,4", "--quiet"]
    assert main(["run", *common, "--strategy", "majority,revisions:sequential=2",
                 "--split", "calibration", "--limit", "2", "--output-dir", "cal"]) == 0  # fmt: skip
    assert main(["policy", "fit", str(_run_dir("cal")), "--probe", "2", "--min-questions", "2",
                 "--output", "p.yaml"]) == 0  # fmt: skip
    data = yaml.safe_load(Path("p.yaml").read_text())
    revise = next(c for c in data["candidates"] if c["name"] == "revisions")
    assert any(n.startswith(f"budget 2: {revise['label']} is no candidate") for n in data["notes"])
    data["choices"][4] = {0: {**revise, "share": 1.0, "budget": 2}}
    Path("h.yaml").write_text(yaml.safe_dump(data))
    assert main(["run", *common, "--strategy", "policy:file=h.yaml,majority", "--split", "test",
                 "--limit", "2", "--output-dir", "test"]) == 0  # fmt: skip
    rows = [json.loads(x) for x in (_run_dir("test") / "traces.jsonl").read_text().splitlines()]
    chains = [Trace.from_dict(r) for r in rows if r["expansion"].startswith("revisions(")]
    assert len(chains) == 2 and all(t.extra["chains"] == t.extra["length"] == 2 for t in chains)
    revisions = STRATEGIES.create("revisions", sequential=2)
    right = [revisions.select(t, 2)[0].correct for t in chains]
    results = json.loads((_run_dir("test") / "results.json").read_text())
    (row,) = [
        r for r in results["rows"]
        if r["strategy"] == "policy" and r["budget"] == 4 and r["label_kind"] == "all"
    ]  # fmt: skip
    assert row["cost"]["samples"] == 4 and row["accuracy"] == pytest.approx(sum(right) / 2)
