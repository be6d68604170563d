"""Loader ``arith``: procedural arithmetic with graded difficulty, generated from a seed.

No download. Each level fixes the number of terms, the digits of each operand and the
operators; the levels in ``tasks/arith.yaml`` are calibrated so that the embedded default
model's pass@1 spreads from near 1 to near 0 (measured figures in the README).
"""

from __future__ import annotations

import random
from typing import Any

from ttc_eval.errors import DataError
from ttc_eval.registry import loader
from ttc_eval.types import Problem


def _operand(rng: random.Random, digits: int, max_value: int | None) -> int:
    lo = 0 if digits == 1 else 10 ** (digits - 1)
    hi = 10**digits - 1
    if max_value is not None:
        hi = min(hi, max_value)
    return rng.randint(lo, hi)


def make_problem(rng: random.Random, level: int, spec: dict[str, Any], index: int) -> Problem:
    terms = int(spec.get("terms", 2))
    digits = spec.get("digits", [1] * terms)
    ops = spec.get("ops", ["+"])
    nonneg = bool(spec.get("nonnegative", True))
    max_value = spec.get("max_value")
    while True:
        nums = [_operand(rng, int(digits[i % len(digits)]), max_value) for i in range(terms)]
        chosen = [rng.choice(ops) for _ in range(terms - 1)]
        value = nums[0]
        for op, n in zip(chosen, nums[1:], strict=True):
            value = value + n if op == "+" else value - n if op == "-" else value * n
        if value >= 0 or not nonneg:
            break
    expr = str(nums[0]) + "".join(
        f" {op.replace('*', '×')} {n}" for op, n in zip(chosen, nums[1:], strict=True)
    )
    return Problem(
        id=f"arith-L{level}-{index:04d}",
        question=f"What is {expr}?",
        answer=str(value),
        labels={"level": level},
    )


_OPS = ("+", "-", "*")


def _levels(args: dict[str, Any]) -> dict[int, dict[str, Any]]:
    """``loader_args['levels']`` checked: level number -> terms, digits, ops."""
    missing = [k for k in ("levels", "n_per_level") if k not in args]
    if missing:
        raise DataError(f"loader arith: loader_args lacks {missing} in the task spec")
    raw = args["levels"]
    if not isinstance(raw, dict) or not raw:
        raise DataError("loader arith: levels must map level numbers to settings")
    levels: dict[int, dict[str, Any]] = {}
    for key, spec in raw.items():
        try:
            level = int(key)
        except (TypeError, ValueError):
            raise DataError(f"loader arith: level {key!r} is not a number") from None
        if not isinstance(spec, dict):
            raise DataError(f"loader arith: level {level} must be a mapping (terms, digits, ops)")
        bad = [op for op in spec.get("ops", ["+"]) if op not in _OPS]
        if bad:
            raise DataError(f"loader arith: level {level}: unknown ops {bad}; use {list(_OPS)}")
        if int(spec.get("terms", 2)) < 1 or not spec.get("digits", [1]):
            raise DataError(f"loader arith: level {level} needs terms >= 1 and some digits")
        levels[level] = spec
    return levels


@loader("arith")
def load_arith(
    args: dict[str, Any], data_files: str | None = None, limit: int | None = None
) -> list[Problem]:
    """Procedural arithmetic from ``loader_args``: ``seed``, ``n_per_level``, ``levels``
    (level -> terms, digits, ops) and ``unique`` (default false: arith's own questions, a
    few of which repeat; true: each repeat within a level is replaced by a new question).

    Problems are interleaved across levels (L1, L2, ..., L1, L2, ...) so that ``--limit``
    keeps every level represented.
    """
    if data_files:
        raise DataError("task arith is generated from a seed; it takes no --data-files")
    levels = _levels(args)
    seed = int(args.get("seed", 0))
    rng = random.Random(seed)
    per_level = {
        lv: [make_problem(rng, lv, spec, i) for i in range(int(args["n_per_level"]))]
        for lv, spec in sorted(levels.items())
    }
    if args.get("unique", False):
        seen: set[str] = set()  # across levels: an easy question can recur one level up
        per_level = {
            lv: _unique(problems, seed, lv, levels[lv], seen) for lv, problems in per_level.items()
        }
    return [p for group in zip(*per_level.values(), strict=True) for p in group]


_REDRAWS = 1000
"""Draws tried for each repeated question before a level is declared too small."""


def _unique(
    problems: list[Problem], seed: int, level: int, spec: dict[str, Any], seen: set[str]
) -> list[Problem]:
    """``problems`` with each repeat of a question in ``seen`` or earlier in the level
    replaced by a new one, drawn from a stream of its own (seed, level): questions that were
    unique stay exactly as they are (and so do their stored samples). Adds them to ``seen``."""
    rng = random.Random(f"{seed}|unique|{level}")
    out = []
    for i, p in enumerate(problems):
        for _ in range(_REDRAWS):
            if p.question not in seen:
                break
            p = make_problem(rng, level, spec, i)
        else:
            raise DataError(
                f"loader arith: level {level} has fewer than {len(problems)} questions not "
                "already asked; lower n_per_level or widen the level (digits, ops, terms)"
            )
        seen.add(p.question)
        out.append(p)
    return out
