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


def accuracy_tables(rows: Sequence[dict[str, Any]], fmt: str = "github") -> str:
    """One table per label kind: a row per (configuration, budget), a column for all
    questions and one per label value; cells are accuracy [95% CI]."""
    index = {(r["config"], r["budget"], r["label_kind"], r["label"]): r for r in rows}
    keys = sorted({(r["config"], r["budget"]) for r in rows})
    kinds = ["all", *sorted({r["label_kind"] for r in rows} - {"all"})]
    tables = []
    for kind in kinds:
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
        tables.append(f"{title}\n\n" + tabulate(body, headers=headers, tablefmt=fmt))
    return "\n\n".join(tables)
