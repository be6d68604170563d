"""The README's "Learn" tables from the runs ``benchmarks/learn_arith.sh OUT`` made.

    python benchmarks/learn_table.py OUT

Reads each run's results.json (accuracy rows with their confidence intervals, and the
verifier's headline numbers), OUT/times.tsv and the learn.json records; prints markdown.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any


def _results(out: Path, run_id: str) -> dict[str, Any]:
    return dict(json.loads((out / "runs" / run_id / "results.json").read_text()))


def _row(results: dict[str, Any], prefix: str, budget: int, shape: str | None = None) -> str:
    for r in results["rows"]:
        if (
            r["label_kind"] == "all"
            and r["config"].startswith(prefix)
            and r["budget"] == budget
            and (shape is None or r.get("shape") == shape)
        ):
            return f"{r['accuracy']:.3f} [{r['ci_low']:.2f}, {r['ci_high']:.2f}]"
    return "n/a"


def _auroc(results: dict[str, Any]) -> tuple[str, str]:
    ev = results.get("verifier_evaluation") or {}
    for a in ev.get("auroc", []):
        if a["aggregation"] == ev.get("aggregation", "last"):
            pooled, within = a["pooled"], a["within_question"]

            def fmt(d: dict[str, Any]) -> str:
                if d.get("auroc") is None:
                    return "n/a"
                return f"{d['auroc']:.3f} [{d['ci_low']:.2f}, {d['ci_high']:.2f}]"

            return fmt(pooled), fmt(within)
    return "n/a", "n/a"


def _naive(out: Path, run_id: str, budget: int) -> str:
    """Naive best-of-N (the top-scored sample) from the report's verifier section, which
    averages it over the disjoint groups of the pool as the accuracy rows do."""
    report = json.loads((out / "runs" / run_id / "report" / "verifier.json").read_text())
    for s in report["selection"]:
        if s["kind"] == "all" and s["budget"] == budget:
            return f"{s['naive']:.3f}"
    return "n/a"


def main(out: Path) -> None:
    times = dict(line.split("\t") for line in (out / "times.tsv").read_text().splitlines() if line)
    n = _results(out, "verifier-logprob")["n_problems"]
    print(f"Verifiers on the test half ({n} questions, one pool of 16 samples each, "
          "aggregation last):\n")  # fmt: skip
    print("| verifier | AUROC pooled | AUROC within question | naive best-of-N at 16 | "
          "weighted best-of-N at 16 | majority at 16 |")  # fmt: skip
    print("| --- | --- | --- | --- | --- | --- |")
    for name, run_id in (
        ("trained PRM (qwen-prm layout)", "verifier-trained-prm"),
        ("logprob", "verifier-logprob"),
        ("self-judge", "verifier-self-judge"),
    ):
        r = _results(out, run_id)
        pooled, within = _auroc(r)
        print(f"| {name} | {pooled} | {within} | {_naive(out, run_id, 16)} | "
              f"{_row(r, 'best_of_n', 16)} | {_row(r, 'majority', 16)} |")  # fmt: skip
    prm = _results(out, "verifier-trained-prm")
    beam = _results(out, "beam-trained-prm")
    print("\nSearch with the trained PRM (same questions):\n")
    print("| budget | beam search (width 4) | weighted best-of-N | majority |")
    print("| --- | --- | --- | --- |")
    for b in (4, 16):
        print(f"| {b} | {_row(beam, 'beam_search', b)} | {_row(prm, 'best_of_n', b)} | "
              f"{_row(prm, 'majority', b)} |")  # fmt: skip
    print("\nRevisions at budget 16 (first 30 test questions; sequential: one chain of 16 "
          "attempts, majority over it; parallel: majority of 16 samples):\n")  # fmt: skip
    print("| reviser | sequential 1x16 | parallel (majority at 16) |")
    print("| --- | --- | --- |")
    for who in ("untuned", "trained"):
        r = _results(out, f"revisions-{who}")
        label = "untuned policy" if who == "untuned" else "trained reviser"
        print(f"| {label} | {_row(r, 'revisions', 16, '1x16')} | {_row(r, 'majority', 16)} |")
    print("\nWall time of each step (2 cores):\n")
    print("| step | seconds |")
    print("| --- | --- |")
    for k, v in times.items():
        print(f"| {k} | {float(v):.0f} |")
    for name in ("prm-data", "prm", "revision-data", "reviser"):
        path = out / name / "learn.json"
        if path.exists():
            record = json.loads(path.read_text())
            keep = {k: record[k] for k in record if k not in ("questions",)}
            print(f"\n{name}: {json.dumps(keep)[:600]}")


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "learn-arith"))
