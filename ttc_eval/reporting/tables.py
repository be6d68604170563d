"""Result tables (tabulate)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from tabulate import tabulate


def _cell(r: dict[str, Any]) -> str:
    return f"{r['accuracy']:.3f} [{r['ci_low']:.2f}, {r['ci_high']:.2f}]"


def _natural(v: str) -> tuple[int, float | str]:
    try:
        return (0, float(v))
    except ValueError:
        return (1, v)


def accuracy_tables(
    rows: Sequence[dict[str, Any]], fmt: str = "github", kinds: str = "every"
) -> str:
    """One table per label kind: a row per (configuration, budget), a column for all
    questions and one per label value; cells are accuracy [95% CI]. ``kinds="binned"``
    leaves out the all-questions table (every other table has that column); "" when there
    is no binning."""
    index = {(r["config"], r["budget"], r["label_kind"], r["label"]): r for r in rows}
    keys = sorted({(r["config"], r["budget"]) for r in rows})
    binned = sorted({r["label_kind"] for r in rows} - {"all"})
    kinds_shown = binned if kinds == "binned" else ["all", *binned]
    return "\n\n".join(_accuracy_table(rows, index, keys, kind, fmt) for kind in kinds_shown)


def _accuracy_table(
    rows: Sequence[dict[str, Any]],
    index: dict[tuple[Any, ...], dict[str, Any]],
    keys: list[tuple[Any, Any]],
    kind: str,
    fmt: str,
) -> str:
    columns = [("all", "all")]
    if kind != "all":
        values = sorted({r["label"] for r in rows if r["label_kind"] == kind}, key=_natural)
        columns += [(kind, v) for v in values]
    headers = ["strategy", "budget", "tokens/q"]
    for k, v in columns:
        n = next((r["n_problems"] for r in rows if (r["label_kind"], r["label"]) == (k, v)), 0)
        headers.append(f"all (n={n})" if k == "all" else f"{k}={v} (n={n})")
    body = []
    for config, budget in keys:
        overall = index.get((config, budget, "all", "all"))
        line: list[Any] = [
            config,
            budget,
            round(overall["mean_generated_tokens"], 1) if overall else "",
        ]
        for k, v in columns:
            r = index.get((config, budget, k, v))
            line.append(_cell(r) if r else "")
        body.append(line)
    title = "accuracy [95% CI]" + ("" if kind == "all" else f" by {kind}")
    return f"{title}\n\n" + tabulate(body, headers=headers, tablefmt=fmt)


def revision_tables(rows: Sequence[dict[str, Any]], fmt: str = "github") -> str:
    """The parallel/sequential trade-off: for each revisions selection rule, a row per
    (budget, label) and a column per number of sequential attempts s (shape N/s x s)."""
    shaped = [r for r in rows if r.get("shape") and r.get("thinking", {}).get("budget") is None]
    if not shaped:
        return ""

    def rule(r: dict[str, Any]) -> str:
        args = {k: v for k, v in r["strategy_args"].items() if k != "sequential"}
        inner = ",".join(f"{k}={v}" for k, v in sorted(args.items()))
        return f"{r['strategy']}({inner})"

    def sequential(r: dict[str, Any]) -> int:
        return int(r["shape"].split("x")[1])

    tables = []
    for name in sorted({rule(r) for r in shaped}):
        mine = [r for r in shaped if rule(r) == name]
        lengths = sorted({sequential(r) for r in mine})
        index = {(r["budget"], r["label_kind"], r["label"], sequential(r)): r for r in mine}
        keys = sorted(
            {(r["budget"], r["label_kind"], r["label"]) for r in mine},
            key=lambda k: (k[0], k[1] != "all", k[1], _natural(k[2])),
        )
        body = []
        for budget, kind, value in keys:
            cells = [index.get((budget, kind, value, s)) for s in lengths]
            label = "all" if kind == "all" else f"{kind}={value}"
            body.append([budget, label, *(_cell(c) if c else "" for c in cells)])
        headers = ["budget N", "questions", *(f"s={s} (N/{s} x {s})" for s in lengths)]
        title = f"{name}: accuracy [95% CI] by shape, parallel chains x sequential attempts s"
        tables.append(f"{title}\n\n" + tabulate(body, headers=headers, tablefmt=fmt))
    return "\n\n".join(tables)


def thinking_table(rows: Sequence[dict[str, Any]], fmt: str = "github") -> str:
    """A run with thinking delimiters: per configuration and budget, the accuracy next to the
    measured thinking tokens (mean and most, per sample read) against the thinking budget,
    the answer tokens, and the checks (questions over the budget, engine overruns, share
    of samples whose thinking never closed)."""
    mine = [r for r in rows if r.get("thinking") and r["label_kind"] == "all"]
    if not mine:
        return ""
    body = []
    for r in sorted(mine, key=lambda r: (r["strategy"], r["thinking"]["budget"] or 0,
                                         r["config"], r["budget"])):  # fmt: skip
        t = r["thinking"]
        body.append(
            [r["config"], r["budget"], _cell(r), t["budget"] if t["budget"] is not None else "",
             f"{t['tokens_mean']:.1f}", t["tokens_max"], f"{t['answer_tokens_mean']:.1f}",
             t["over_budget"], t["overrun"], f"{t['unclosed_rate']:.3f}"]
        )  # fmt: skip
    headers = ["strategy", "budget N", "accuracy [95% CI]", "thinking budget",
               "thinking tokens (mean)", "(max)", "answer tokens (mean)", "over budget",
               "engine overruns", "unclosed"]  # fmt: skip
    title = "thinking: accuracy and measured thinking tokens per sample read"
    return f"{title}\n\n" + tabulate(body, headers=headers, tablefmt=fmt)


def _efficiency(r: dict[str, Any]) -> str:
    ratio, note = r["efficiency_ratio"], r["efficiency_note"]
    if ratio is None:
        return "out of range (best-of-N never reaches it)"
    if note == "at most":
        return f"<= {ratio:.2f}"
    return f"{ratio:.2f}"


# What the cost columns of a compute-optimal table measure, per axis other than budget.
_AXIS_UNITS = {"tokens": "generated tokens/q", "flops": "FLOPs/q"}


def _cost_cell(value: float, axis: str) -> str:
    return _flops(value) if axis == "flops" else f"{value:.1f}"


def optimal_tables(
    rows: Sequence[dict[str, Any]], fmt: str = "github", note: str | None = None
) -> str:
    """Compute-optimal (2-fold cross-validated) against the baseline, per bin kind. Rows
    chosen at equal measured cost (``axis`` tokens or flops) add the level's cost (the
    baseline's at that budget) and the chosen pairs' cost on the test halves; ``note`` (why
    the choice is missing or partial) follows the tables."""
    if not rows:
        return f"compute-optimal vs baseline\n\nnote: {note}" if note else ""
    axis = rows[0].get("axis", "budget")
    unit = _AXIS_UNITS.get(axis)
    tables = []
    for kind in sorted({r["bin_kind"] for r in rows}, key=lambda k: (k != "all", k)):
        mine = [r for r in rows if r["bin_kind"] == kind]
        body = []
        for r in sorted(mine, key=lambda r: (_natural(r["bin"]), r["budget"])):
            line: list[Any] = [r["bin"], r["n_problems"], r["budget"]]
            if unit:
                line.append(_cost_cell(r["level_cost"], axis))
            line.append(f"{r['optimal_accuracy']:.3f}")
            if unit:
                line.append(_cost_cell(r["optimal_cost"], axis))
            line += [
                f"{r['chosen']} ({r['chosen_share']:.0%})",
                f"{r['baseline_accuracy']:.3f}",
                _efficiency(r),
            ]
            body.append(line)
        headers = [kind if kind != "all" else "questions", "n", "budget"]
        if unit:
            headers[-1] = "level: baseline budget"
            headers.append(f"level {unit}")
        headers.append("compute-optimal (CV)")
        if unit:
            headers.append(f"chosen {unit} (CV)")
        headers += [
            "chosen (share of folds)",
            mine[0]["baseline"],
            "efficiency (baseline budget / level budget)"
            if unit
            else "efficiency (baseline budget / N)",
        ]
        title = "compute-optimal vs baseline" + ("" if kind == "all" else f" by {kind} bin")
        if unit:
            title += f", at equal measured {unit} (axis {axis}; chosen: configuration@budget)"
        tables.append(f"{title}\n\n" + tabulate(body, headers=headers, tablefmt=fmt))
    if note:
        tables.append(f"note: {note}")
    return "\n\n".join(tables)


def cost_table(rows: Sequence[dict[str, Any]], fmt: str = "github") -> str:
    """Measured mean cost per question next to the nominal budget, per configuration (all
    questions); "" for results written before costs were measured."""
    shown = sorted(
        (r for r in rows if r["label_kind"] == "all" and r.get("cost")),
        key=lambda r: (r["config"], r["budget"]),
    )
    if not shown:
        return ""
    headers = ["strategy", "budget", "accuracy", "samples", "prompt sent", "prompt computed",
               "generated", "verifier read", "FLOPs", "seconds", "seconds p90"]  # fmt: skip
    body = [
        [
            r["config"],
            r["budget"],
            f"{r['accuracy']:.3f}",
            round(r["cost"]["samples"], 2),
            round(r["cost"]["prompt_tokens"], 1),
            round(r["cost"]["prompt_tokens_computed"], 1),
            round(r["cost"]["generated_tokens"], 1),
            round(r["cost"]["verifier_tokens"], 1),
            _flops(r["cost"].get("flops_total")),
            round(r["cost"]["seconds"], 3),
            # Rows written before the tail was measured have none.
            round(r["cost"]["seconds_p90"], 3) if "seconds_p90" in r["cost"] else "",
        ]
        for r in shown
    ]
    title = "measured cost per question (means; budget = the nominal N)"
    return f"{title}\n\n" + tabulate(body, headers=headers, tablefmt=fmt)


def flops_table(flops: dict[str, Any], roles: dict[str, Any] | None, fmt: str = "github") -> str:
    """One line per model role: its model, non-embedding parameters, the tokens it
    processed in the whole run and their FLOPs; "" for results without roles."""
    by_role = flops.get("by_role") or {}
    if not by_role:
        return ""
    params = flops.get("params") or {}
    body = [
        [
            role,
            (roles or {}).get(role, ""),
            (params.get(role) or {}).get("non_embedding", "unknown"),
            round(entry["tokens"], 1),
            _flops(entry["flops"]),
        ]
        for role, entry in sorted(by_role.items())
    ]
    headers = ["role", "model", "parameters (non-embedding)", "tokens", "FLOPs"]
    return "FLOPs by model role (whole run)\n\n" + tabulate(body, headers=headers, tablefmt=fmt)


def _flops(value: float | None) -> str:
    return "unknown" if value is None else f"{value:.3g}"


_POLICY_SIDES = {
    "policy": "policy",
    "best_of_n": "best-of-N",
    "majority": "majority",
    "best_single": "best single (calibration)",
    "oracle_bins": "oracle bins (in-sample bound)",
}


def policy_tables(entries: Sequence[dict[str, Any]], fmt: str = "github") -> str:
    """The difficulty-adaptive policy against its baselines on this run's questions, one
    table per policy configuration: every side at the samples the policy is charged, with
    its measured cost and the paired difference to the policy."""
    tables = []
    for label in sorted({e["policy"] for e in entries}):
        body = []
        notes = []
        for e in sorted((e for e in entries if e["policy"] == label), key=lambda e: e["budget"]):
            for s in e["sides"]:
                diff = (
                    f"{s['policy_minus_this']:+.3f} [{s['paired_ci'][0]:+.2f}, "
                    f"{s['paired_ci'][1]:+.2f}]"
                    if "policy_minus_this" in s
                    else ""
                )
                body.append(
                    [
                        e["budget"],
                        _POLICY_SIDES.get(s["kind"], s["kind"]),
                        s["label"] if s["kind"] in ("best_single",) else "",
                        s["budget"],
                        f"{s['samples']:.1f}",
                        f"{s['generated_tokens']:.0f}",
                        _flops(s["flops"]),
                        f"{s['accuracy']:.3f} [{s['ci'][0]:.2f}, {s['ci'][1]:.2f}]",
                        diff,
                    ]
                )
            ratio = e["efficiency_ratio"]
            how = e["efficiency_note"]
            notes.append(
                f"budget {e['budget']}: {e['reference']} needs "
                + (
                    f"{'at most ' if how == 'at most' else ''}"
                    f"{e['reference_tokens_to_match']:.0f} generated tokens/q to match the "
                    f"policy ({'<= ' if how == 'at most' else ''}{ratio:.2f}x the policy's)"
                    if ratio is not None
                    else "more than its largest budget on this pool to match the policy"
                )
            )
        first = next(e for e in entries if e["policy"] == label)
        headers = [
            "policy budget",
            "side",
            "configuration",
            "samples read at",
            "samples/q",
            "tokens/q",
            "FLOPs/q",
            "accuracy [95% CI]",
            "policy - this [paired 95% CI]",
        ]
        tables.append(
            f"difficulty-adaptive policy vs baselines on this run's {first['n_problems']} "
            f"questions, at equal compute: {label} (probe {first['probe']}, charge "
            f"{first['charge']}; the oracle-bin row is an in-sample bound: its bins "
            "and choices come from these questions' ground truth)\n\n"
            + tabulate(body, headers=headers, tablefmt=fmt)
            + "\n\n"
            + "\n".join(f"- {n}" for n in notes)
        )
    return "\n\n".join(tables)


def _interval(value: float | None, low: float | None, high: float | None) -> str:
    """``0.734 [0.65, 0.81]``, or ``-`` for an undefined value (no interval: a bare value)."""
    if value is None:
        return "-"
    if low is None or high is None:
        return f"{value:.3f}"
    return f"{value:.3f} [{low:.2f}, {high:.2f}]"


def _signed(d: dict[str, Any]) -> str:
    return f"{d['mean']:+.3f} [{d['ci_low']:+.2f}, {d['ci_high']:+.2f}]"


def _run_names(reports: Sequence[dict[str, Any]]) -> list[str]:
    """Column-block prefixes: ``RUN: `` with several runs (numbered when two share an id),
    none for one run."""
    ids = [str(r["run_id"]) for r in reports]
    if len(ids) == 1:
        return [""]
    return [f"{i}: {n}: " if ids.count(n) > 1 else f"{n}: " for i, n in enumerate(ids, 1)]


def _group_name(kind: str, value: str) -> str:
    return "all" if kind == "all" else f"{kind}={value}"


def verifier_tables(
    reports: Sequence[dict[str, Any]],
    fmt: str = "github",
    regret_kinds: Sequence[str] | None = None,
) -> str:
    """`ttc-eval verifiers`: outcome AUROC by aggregation, AUROC and ECE by bin, naive
    best-of-N's regret and over-optimization, one column block per run (``reports``:
    verifier.json's of each run); ``regret_kinds`` limits the regret table's groups."""
    names = _run_names(reports)
    how = _aggregations(reports, names)
    runs = "\n".join(
        f"- {r['run_id']}: verifier {r['verifier']} on {r['task']} ({r['model']}), pool "
        f"{r['pool']}{_pool_sizes(r)}, {r['n_questions']} questions, {r['n_samples']} scored "
        f"samples, aggregation {r['aggregation']}"
        for r in reports
    )
    tables = [
        f"verifier evaluation\n\n{runs}",
        _auroc_by_aggregation(reports, names, fmt),
        _by_group(reports, names, how, fmt),
        _regret(reports, names, how, fmt, regret_kinds),
        _overoptimization(reports, names, how, fmt),
        _pruning(reports, names, fmt),
    ]
    return "\n\n".join(t for t in tables if t)


def pruning_table(rows: Sequence[dict[str, Any]], fmt: str = "github") -> str:
    """The search-pruning table of one run's rows alone (a run of searches only)."""
    return _pruning([{"pruning": list(rows)}], [""], fmt)


def _pruning(reports: Sequence[dict[str, Any]], names: Sequence[str], fmt: str) -> str:
    """Search runs: pruned beams, the verdicts of their finished lookahead rollouts, and the
    questions the search got wrong although it pruned a beam whose rollout was right."""
    body = []
    notes = []
    for name, r in zip(names, reports, strict=True):
        for row in r.get("pruning") or ():
            judged = row["pruned_with_verdict"]
            body.append(
                [
                    f"{name}{row['config']}",
                    row["budget"],
                    row["n_questions"],
                    f"{row['pruned_per_question']:.1f}",
                    judged,
                    f"{row['pruned_correct']} ({row['pruned_correct'] / judged:.0%})"
                    if judged
                    else "-",
                    row["questions_with_a_correct_pruned_beam"] if judged else "-",
                    f"{row['wrong_with_a_correct_pruned_beam']} of {row['n_wrong']}"
                    if judged
                    else "-",
                    f"{row['no_right_candidate_with_a_correct_pruned_beam']} of "
                    f"{row['n_no_right_candidate']}"
                    if judged
                    else "-",
                ]
            )
            if row.get("note"):
                notes.append(f"- {name}{row['config']} at {row['budget']}: {row['note']}")
    if not body:
        return ""
    headers = ["search", "budget", "questions", "pruned beams/q", "with a verdict", "right",
               "questions with one right", "wrong answers with one right",
               "no right candidate, one right pruned"]  # fmt: skip
    return (
        "search pruning (a pruned beam's verdict: its finished lookahead rollout's; the last "
        "columns: questions the search answered wrong, and those where no final candidate was "
        "right, although it had pruned a beam whose rollout was right; only rollouts that "
        "finished have a verdict, so late-pruned beams are over-represented)\n\n"
        + tabulate(body, headers=headers, tablefmt=fmt, disable_numparse=True)
        + ("\n\n" + "\n".join(dict.fromkeys(notes)) if notes else "")
    )


def _aggregations(reports: Sequence[dict[str, Any]], names: Sequence[str]) -> str:
    """``aggregation=min``, or each run's when they differ (each run defaults to its own
    best_of_n aggregation)."""
    hows = [str(r["aggregation"]) for r in reports]
    if len(set(hows)) == 1:
        return f"aggregation={hows[0]}"
    return "aggregation per run: " + "; ".join(f"{n}{h}" for n, h in zip(names, hows, strict=True))


def _pool_sizes(report: dict[str, Any]) -> str:
    """`` (3 to 8 samples per question; sweep cut at 3)`` when pools differ in size."""
    sizes = report.get("pool_sizes")
    if not sizes or sizes[0] == sizes[-1]:
        return ""
    return f" ({sizes[0]} to {sizes[-1]} samples per question; budget sweep cut at {sizes[0]})"


def _index(rows: Sequence[dict[str, Any]], *keys: str) -> dict[tuple[Any, ...], dict[str, Any]]:
    return {tuple(r[k] for k in keys): r for r in rows}


def _groups(reports: Sequence[dict[str, Any]]) -> list[tuple[str, str]]:
    """Every (kind, value) of any run, in the runs' own order (all, labels, bins)."""
    return list(dict.fromkeys((g["kind"], g["value"]) for r in reports for g in r["groups"]))


def _auroc_by_aggregation(reports: Sequence[dict[str, Any]], names: Sequence[str], fmt: str) -> str:
    headers = ["aggregation"]
    for name, r in zip(names, reports, strict=True):
        headers += [f"{name}pooled (n={r['n_samples']})", f"{name}within question"]
    body = []
    # Each run's rows by key, indexed once (not once per cell).
    found = [_index(r["discrimination"], "kind", "aggregation") for r in reports]
    for how in dict.fromkeys(d["aggregation"] for r in reports for d in r["discrimination"]):
        line: list[Any] = [how]
        for by_key in found:
            d = by_key.get(("all", how))
            if d is None:
                line += ["", ""]
                continue
            p, w = d["pooled"], d["within_question"]
            line += [
                _interval(p["auroc"], p["ci_low"], p["ci_high"]),
                _interval(w["auroc"], w["ci_low"], w["ci_high"]) + f" (q={w['n_questions']})",
            ]
        body.append(line)
    notes = []
    for name, r, by_key in zip(names, reports, found, strict=True):
        d = by_key.get(("all", "last"))
        if d is None:
            continue
        p = d["pooled"]
        if p.get("ci_reason"):
            notes.append(f"- {name}pooled: no interval, {p['ci_reason']}")
        if p.get("resamples_dropped"):
            notes.append(
                f"- {name}pooled: {p['resamples_dropped']} of {r['bootstrap']['resamples']} "
                "resamples held no correct or no wrong sample and were left out of the interval"
            )
    return (
        "outcome AUROC [95% CI] by step-score aggregation, all questions (pooled: over every "
        "sample, unanswered ones included; within question: mean over questions with both "
        "correct and wrong samples; CIs resample questions)\n\n"
        + tabulate(body, headers=headers, tablefmt=fmt, disable_numparse=True)
        + ("\n\n" + "\n".join(notes) if notes else "")
    )


def _by_group(reports: Sequence[dict[str, Any]], names: Sequence[str], how: str, fmt: str) -> str:
    headers = ["questions"]
    for name in names:
        headers += [f"{name}n", f"{name}AUROC", f"{name}ECE"]
    body = []
    found = [
        (
            _index(r["discrimination"], "kind", "value", "aggregation"),
            _index(r["calibration"], "kind", "value", "aggregation"),
        )
        for r in reports
    ]
    for kind, value in _groups(reports):
        line: list[Any] = [_group_name(kind, value)]
        for r, (discrimination, calibration) in zip(reports, found, strict=True):
            key = (kind, value, r["aggregation"])
            d = discrimination.get(key)
            c = calibration.get(key)
            if d is None or c is None:
                line += ["", "", ""]
                continue
            p = d["pooled"]
            line += [
                p["n_questions"],
                _interval(p["auroc"], p["ci_low"], p["ci_high"]),
                _interval(c["ece"], c["ci_low"], c["ci_high"]),
            ]
        body.append(line)
    reasons = sorted(
        {
            f"{name}ECE undefined: {c['reason']}"
            for name, r in zip(names, reports, strict=True)
            for c in r["calibration"]
            if c["kind"] == "all" and c["aggregation"] == r["aggregation"] and c["ece"] is None
        }
    )
    notes = "".join(f"\n- {n}" for n in reasons)
    return (
        f"outcome AUROC and expected calibration error [95% CI] by group ({how}; "
        f"ECE: {reports[0]['ece_bins']} equal-width bins of the score read as P(correct); it "
        "is biased upward with few samples, so small groups inflate ECE: even a perfectly "
        "calibrated verifier shows about 0.05 on 400 samples)\n\n"
        + tabulate(body, headers=headers, tablefmt=fmt, disable_numparse=True)
        + (f"\n{notes}" if notes else "")
    )


def _regret(
    reports: Sequence[dict[str, Any]],
    names: Sequence[str],
    how: str,
    fmt: str,
    kinds: Sequence[str] | None,
) -> str:
    headers = ["budget", "questions"]
    for name in names:
        headers += [f"{name}naive", f"{name}oracle - naive", f"{name}majority - naive"]
    budgets = sorted({s["budget"] for r in reports for s in r["selection"]})
    groups = [g for g in _groups(reports) if kinds is None or g[0] in kinds]
    body = []
    found = [_index(r["selection"], "kind", "value", "budget") for r in reports]
    for b in budgets:
        for kind, value in groups:
            line: list[Any] = [b, _group_name(kind, value)]
            cells = []
            for by_key in found:
                s = by_key.get((kind, value, b))
                if s is None:
                    cells += ["", "", ""]
                    continue
                cells += [
                    f"{s['naive']:.3f}",
                    _signed(s["oracle_minus_naive"]),
                    _signed(s["majority_minus_naive"]),
                ]
            if any(cells):
                body.append(line + cells)
    if not body:
        return ""
    return (
        f"naive best-of-N's regret [paired 95% CI] ({how}): oracle - naive is what an "
        "oracle would gain by picking a correct sample from the same disjoint groups (not "
        "the run's pass@k coverage row, which averages over every subset); majority - naive "
        "> 0 means plain voting beats trusting the best score\n\n"
        + tabulate(body, headers=headers, tablefmt=fmt, disable_numparse=True)
    )


def _overoptimization(
    reports: Sequence[dict[str, Any]], names: Sequence[str], how: str, fmt: str
) -> str:
    headers = ["budget"]
    for name in names:
        headers += [f"{name}majority", f"{name}weighted", f"{name}naive"]
    budgets = sorted({s["budget"] for r in reports for s in r["selection"]})
    body = []
    found = [_index(r["selection"], "kind", "budget") for r in reports]
    for b in budgets:
        line: list[Any] = [b]
        for by_key in found:
            s = by_key.get(("all", b))
            line += [f"{s[k]:.3f}" for k in ("majority", "weighted", "naive")] if s else [""] * 3
        body.append(line)
    if not body:
        return ""
    flags = []
    for name, r in zip(names, reports, strict=True):
        for o in r["overoptimization"]:
            if o["kind"] != "all":
                continue
            onset, first = o["onset"], o["first_below"]
            said = (
                f"below majority from N={onset} on"
                if onset is not None
                else "never ends below majority"
            )
            if first is not None and first != onset:
                said += f" (first below at N={first})"
            flags.append(f"- {name}{o['mode']} best-of-N {said}")
    return (
        f"over-optimization, all questions ({how}): accuracy as N grows; the "
        "flagged N is the smallest from which verifier-guided selection stays below "
        "majority at every larger budget\n\n"
        + tabulate(body, headers=headers, tablefmt=fmt, disable_numparse=True)
        + "\n\n"
        + "\n".join(flags)
    )
