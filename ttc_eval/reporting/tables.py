"""Result tables (tabulate)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from tabulate import tabulate


def _cell(r: dict[str, Any]) -> str:
    return f"{r['accuracy']:.3f} [{r['ci_low']:.2f}, {r['ci_high']:.2f}]"


def accuracy_tables(rows: Sequence[dict[str, Any]], fmt: str = "github") -> str:
    """One table per label kind: a row per (configuration, budget), a column per label value
    (``all`` first); cells are accuracy [95% CI]."""
    out = []
    kinds = ["all"] + sorted({r["label_kind"] for r in rows if r["label_kind"] != "all"})
    for kind in kinds:
        sel = [r for r in rows if r["label_kind"] in (kind, "all")]
        values = ["all"] + (
            sorted({r["label"] for r in sel if r["label_kind"] == kind}, key=_natural)
            if kind != "all"
            else []
        )
        keys = sorted({(r["config"], r["budget"]) for r in sel}, key=lambda k: (k[0], k[1]))
        index = {(r["config"], r["budget"], r["label"] if r["label_kind"] == kind else "all"): r for r in sel}
        table = []
        for config, budget in keys:
            first = index.get((config, budget, "all"))
            line = [config, budget, round(first["mean_generated_tokens"], 1) if first else ""]
            line += [_cell(index[(config, budget, v)]) if (config, budget, v) in index else "" for v in values]
            table.append(line)
        title = "accuracy [95% CI], all questions" if kind == "all" else f"accuracy [95% CI] by {kind}"
        n = {v: next((r["n_problems"] for r in sel if r["label"] == v and r["label_kind"] in (kind, "all")), 0) for v in values}
        headers = ["strategy", "budget", "tokens/q"] + [f"{kind}={v} (n={n[v]})" if v != "all" else f"all (n={n[v]})" for v in values]
        out.append(f"{title}\n\n" + tabulate(table, headers=headers, tablefmt=fmt))
        if kind == "all" and len(kinds) > 1:
            continue
    return "\n\n".join(out)


def _natural(v: str) -> tuple[int, float | str]:
    try:
        return (0, float(v))
    except ValueError:
        return (1, v)
