"""End-to-end agreement of the graders with the golden table (extract, then grade).

    python benchmarks/grader_agreement.py
    # the same table against another checkout's graders (rows with grader_args skipped when
    # that checkout's graders do not take them):
    PYTHONPATH=/path/to/old/checkout python benchmarks/grader_agreement.py

Prints, per grader: rows agreeing with the expected verdict, rows, and false positives (a
wrong answer graded right).
"""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any

import yaml

GOLDEN = Path(__file__).resolve().parents[1] / "tests" / "data" / "grader_golden.yaml"


def main() -> None:
    from ttc_eval.registry import GRADERS

    rows: list[dict[str, Any]] = yaml.safe_load(GOLDEN.read_text())
    total = agree = false_pos = skipped = 0
    for name in ("math", "numeric", "exact"):
        factory = GRADERS.get(name)
        accepted = set(inspect.signature(factory).parameters)
        mine = [r for r in rows if r["grader"] == name]
        usable = [r for r in mine if set(r.get("grader_args") or {}) <= accepted]
        skipped += len(mine) - len(usable)
        by_args: dict[str, list[dict[str, Any]]] = {}
        for r in usable:
            by_args.setdefault(yaml.safe_dump(r.get("grader_args") or {}), []).append(r)
        a = f = 0
        for args_text, group in by_args.items():
            args = yaml.safe_load(args_text) or {}
            if name == "math":
                args["progress"] = False
            grader = factory(**args)
            grades = grader.grade(
                [(str(r["target"]), grader.extract(str(r["output"]))) for r in group]
            )
            a += sum(g.correct == r["expected"] for r, g in zip(group, grades, strict=True))
            f += sum(g.correct and not r["expected"] for r, g in zip(group, grades, strict=True))
        print(f"{name:8s} {a}/{len(usable)} agree, {f} false positives")
        total, agree, false_pos = total + len(usable), agree + a, false_pos + f
    print(
        f"all      {agree}/{total} agree ({agree / total:.1%}), {false_pos} false positives"
        + (f"; {skipped} rows skipped (grader_args this checkout lacks)" if skipped else "")
    )


if __name__ == "__main__":
    main()
