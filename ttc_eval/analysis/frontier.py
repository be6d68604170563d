"""The accuracy-compute frontier: which (configuration, budget) points are worth their cost."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

AXES = ("tokens", "flops")
"""Measured cost axes a frontier is drawn on: mean generated tokens, mean FLOPs per question."""


def cost_of(row: Mapping[str, Any], axis: str) -> float | None:
    """A row's measured mean cost per question on ``axis`` (``None``: not measured, e.g.
    FLOPs of a model whose parameter count is unknown, or a row from before costs)."""
    cost = row.get("cost") or {}
    value = cost.get("generated_tokens") if axis == "tokens" else cost.get("flops_total")
    return float(value) if value is not None else None


def pareto_frontier(points: Sequence[tuple[float, float]]) -> list[int]:
    """Indices of the points (cost, accuracy) that no other point dominates (costs no more
    and is at least as accurate, one of them strictly), ordered by cost."""
    order = sorted(range(len(points)), key=lambda i: (points[i][0], -points[i][1]))
    kept: list[int] = []
    best = float("-inf")
    for i in order:
        if points[i][1] > best:
            kept.append(i)
            best = points[i][1]
    return kept


def frontiers(rows: Sequence[Mapping[str, Any]], axis: str) -> list[dict[str, Any]]:
    """Per label kind and value: the frontier across every configuration and budget (oracle
    configurations such as coverage left out), as rows of config, budget, cost, accuracy."""
    out: list[dict[str, Any]] = []
    groups = sorted({(r["label_kind"], r["label"]) for r in rows})
    for kind, value in groups:
        mine = [
            r
            for r in rows
            if (r["label_kind"], r["label"]) == (kind, value)
            and r["strategy"] != "coverage"
            and cost_of(r, axis) is not None
        ]
        points = [(cost_of(r, axis) or 0.0, float(r["accuracy"])) for r in mine]
        for i in pareto_frontier(points):
            r = mine[i]
            out.append(
                {
                    "axis": axis,
                    "label_kind": kind,
                    "label": value,
                    "config": r["config"],
                    "budget": r["budget"],
                    "cost": points[i][0],
                    "accuracy": points[i][1],
                }
            )
    return out
