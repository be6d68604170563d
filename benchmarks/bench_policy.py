"""The difficulty-adaptive policy on the default model, honestly split: fit on the calibration
questions, evaluate on the others, at equal measured compute, for several probe sizes.

Task ``arith_120`` (arith's 5 levels x 24 distinct questions), split by ``--split`` (seeded
hash of each question, half to each side: 67 calibration, 53 test questions at seed 0).
One calibration run of the candidate configurations (majority, best-of-N weighted and
naive with the logprob verifier, ESC, Adaptive-Consistency) at budgets 4..32; a policy is
fitted on it for each probe size K (``ttc-eval policy fit --probe K``); each policy is run
on the test split beside best-of-N and majority (budgets of at least K), and its report's
comparison (``results.json`` ``policy``: every side on the same pool at equal samples,
paired bootstrap CIs, the in-sample oracle-bin bound, best-of-N's tokens to match) is
collected into one JSON and one figure of accuracy against measured tokens.

    TTC_EVAL_CACHE=... python benchmarks/bench_policy.py [--probes 1,2,4,8] \
        [--estimators vote_agreement,verifier_score] [--work-dir DIR]

An accuracy and compute measurement, not a timing: deterministic given the seed (samples
are batch-invariant on the hf backend, and the generation cache serves a repeat).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

CANDIDATES = "majority,best_of_n,best_of_n:mode=naive,esc,adaptive_consistency"
"""What the policy chooses among in each bin."""


def _ttc(*args: str) -> None:
    cmd = [sys.executable, "-m", "ttc_eval", *args]
    done = subprocess.run(cmd, capture_output=True, text=True, env=os.environ.copy())
    if done.returncode:
        raise SystemExit(f"{' '.join(cmd)} failed ({done.returncode}):\n{done.stderr[-3000:]}")


def _only_run(folder: Path) -> Path:
    (run,) = [d for d in folder.iterdir() if (d / "results.json").exists()]
    return run


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--task", default="arith_120")
    ap.add_argument("--budgets", default="4,8,16,32")
    ap.add_argument("--probes", default="1,2,4,8")
    ap.add_argument("--estimators", default="vote_agreement")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--work-dir", type=Path, default=None)
    ap.add_argument("--output", type=Path, default=Path("benchmarks/results/policy.json"))
    ap.add_argument("--figure", type=Path, default=Path("docs/figures/policy_default.png"))
    args = ap.parse_args()
    work = args.work_dir or Path(tempfile.mkdtemp(prefix="ttc-policy-"))
    budgets = [int(b) for b in args.budgets.split(",")]
    common = ["--task", args.task, "--verifier", "logprob", "--seed", str(args.seed), "--quiet",
              "--leaderboard-dir", str(work / "leaderboards")]  # fmt: skip
    cal_dir = work / "calibration"
    _ttc("run", *common, "--split", "calibration", "--strategy", CANDIDATES,
         "--budgets", args.budgets, "--output-dir", str(cal_dir))  # fmt: skip
    cal = _only_run(cal_dir)
    out: dict[str, Any] = {
        "task": args.task,
        "model": "smollm2-135m",
        "calibration_run": cal.name,
        "candidates": CANDIDATES,
        "budgets": budgets,
        "policies": [],
    }
    for estimator in args.estimators.split(","):
        for k in (int(x) for x in args.probes.split(",")):
            mine = [b for b in budgets if b >= k]
            policy = work / f"policy-{estimator}-k{k}.yaml"
            _ttc("policy", "fit", str(cal), "--probe", str(k), "--estimator", estimator,
                 "--output", str(policy))  # fmt: skip
            test_dir = work / f"test-{estimator}-k{k}"
            _ttc("run", *common, "--split", "test", "--budgets", ",".join(map(str, mine)),
                 "--strategy", f"policy:file={policy},best_of_n,majority",
                 "--output-dir", str(test_dir))  # fmt: skip
            results = json.loads((_only_run(test_dir) / "results.json").read_text())
            fitted = json.loads(json.dumps(__import__("yaml").safe_load(policy.read_text())))
            out["policies"].append(
                {
                    "estimator": estimator,
                    "probe": k,
                    "n_test": results["n_problems"],
                    "n_calibration": len(fitted["fitted_on"]),
                    "edges": fitted["edges"],
                    "choices": {
                        b: {k2: c["label"] for k2, c in by_bin.items()}
                        for b, by_bin in fitted["choices"].items()
                    },
                    "notes": fitted["notes"],
                    "comparison": results["policy"],
                }
            )
            print(f"{estimator} K={k}: done", file=sys.stderr)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(out, indent=1) + "\n")
    _figure(out, args.figure)
    _print(out)


def _figure(out: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    estimators = sorted({p["estimator"] for p in out["policies"]})
    fig, axes = plt.subplots(1, len(estimators), figsize=(6 * len(estimators), 4.2), squeeze=False)
    for ax, est in zip(axes[0], estimators, strict=True):
        drawn: set[str] = set()
        for p in (p for p in out["policies"] if p["estimator"] == est):
            pts = [(s["generated_tokens"], s["accuracy"], s["kind"])
                   for e in p["comparison"] for s in e["sides"]]  # fmt: skip
            mine = sorted((x, y) for x, y, kind in pts if kind == "policy")
            ax.plot(*zip(*mine, strict=True), marker="o", ms=3, label=f"policy K={p['probe']}")
            for kind, style in (("best_of_n", "k-"), ("majority", "k:"), ("oracle_bins", "k--")):
                if kind in drawn:
                    continue
                line = sorted((x, y) for x, y, k in pts if k == kind)
                if len(line) == len(out["budgets"]):  # the sweep with every budget
                    name = "oracle bins (in-sample bound)" if kind == "oracle_bins" else kind
                    ax.plot(*zip(*line, strict=True), style, lw=1.2, label=name)
                    drawn.add(kind)
        ax.set_xscale("log")
        ax.set_xlabel("generated tokens per question (measured, probe included)")
        ax.set_ylabel("accuracy on the test questions")
        ax.set_title(f"{out['task']}, estimator {est}")
        ax.legend(fontsize=7)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)


def _print(out: dict[str, Any]) -> None:
    from tabulate import tabulate

    body = []
    for p in out["policies"]:
        for e in p["comparison"]:
            s = {x["kind"]: x for x in e["sides"]}
            pol = s["policy"]
            body.append(
                [p["estimator"], p["probe"], e["budget"], f"{pol['generated_tokens']:.0f}",
                 f"{pol['accuracy']:.3f} [{pol['ci'][0]:.2f}, {pol['ci'][1]:.2f}]"]
                + [f"{s[k]['accuracy']:.3f} ({s[k]['policy_minus_this']:+.3f} "
                   f"[{s[k]['paired_ci'][0]:+.2f}, {s[k]['paired_ci'][1]:+.2f}])"
                   for k in ("best_of_n", "majority", "best_single", "oracle_bins")]
                + [f"{e['efficiency_ratio']:.2f}" if e["efficiency_ratio"] else "n/a"]
            )  # fmt: skip
    headers = ["estimator", "K", "N", "tokens/q", "policy", "best-of-N", "majority",
               "best single", "oracle bins (in-sample bound)",
               "best-of-N tokens to match / policy's"]  # fmt: skip
    print(tabulate(body, headers=headers, tablefmt="github"))


if __name__ == "__main__":
    main()
