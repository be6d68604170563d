"""Plug-in loader ``plugin_sums``: a few additions "What is a + b?" from a seed, two levels."""

from __future__ import annotations

import random
from typing import Any

from ttc_eval.errors import DataError
from ttc_eval.registry import loader
from ttc_eval.types import Problem


@loader("plugin_sums")
def load_sums(
    args: dict[str, Any], data_files: str | None = None, limit: int | None = None
) -> list[Problem]:
    """``n`` questions from ``seed``; odd ones use two-digit operands (level 2)."""
    if data_files:
        raise DataError("task plugin_arith is generated from a seed; it takes no --data-files")
    rng = random.Random(int(args.get("seed", 0)))
    out = []
    for i in range(int(args["n"])):
        level = 1 + i % 2
        hi = 9 if level == 1 else 99
        a, b = rng.randint(1, hi), rng.randint(1, hi)
        out.append(Problem(f"sum-{i}", f"What is {a} + {b}?", str(a + b), {"level": level}))
    return out
