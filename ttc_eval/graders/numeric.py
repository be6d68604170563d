"""Numeric and exact graders (GSM8K, arith): cheap, in-process."""

from __future__ import annotations

import math
import re
from collections.abc import Sequence

from ttc_eval.graders._base import Grade
from ttc_eval.graders._extract import boxed_or_last_number, last_number
from ttc_eval.registry import grader


def _to_number(s: str) -> float | None:
    cleaned = re.sub(r"\\[,!;: ]|\\text\{[^}]*\}|[$,%\s]", "", s).rstrip(".")
    cleaned = cleaned.replace("\\$", "")
    try:
        return float(cleaned)
    except ValueError:
        # A boxed expression such as "18 \text{ dollars}" or "x = 18": fall back to its last number.
        n = last_number(s)
        return float(n) if n is not None else None


def _number_key(x: float) -> str:
    return str(int(x)) if x.is_integer() else repr(x)


@grader("numeric")
class NumericGrader:
    """Equal as numbers (relative tolerance 1e-6); commas, dollar signs and units ignored."""

    version = "numeric/1"

    def extract(self, text: str) -> str | None:
        return boxed_or_last_number(text)

    def grade(self, pairs: Sequence[tuple[str, str | None]]) -> list[Grade]:
        out = []
        for gold, answer in pairs:
            if answer is None:
                out.append(Grade(False, None))
                continue
            a = _to_number(answer)
            g = _to_number(gold)
            if a is None or not math.isfinite(a):
                out.append(Grade(False, re.sub(r"\s+", "", answer)))
                continue
            ok = g is not None and math.isclose(a, g, rel_tol=1e-6, abs_tol=1e-9)
            out.append(Grade(ok, _number_key(a)))
        return out


def _normalize(s: str) -> str:
    return re.sub(r"\s+|\$|\\[,!]", "", s).rstrip(".")


@grader("exact")
class ExactGrader:
    """Equal after removing white space, dollar signs and a trailing period."""

    version = "exact/1"

    def extract(self, text: str) -> str | None:
        return boxed_or_last_number(text)

    def grade(self, pairs: Sequence[tuple[str, str | None]]) -> list[Grade]:
        return [
            Grade(
                a is not None and _normalize(a) == _normalize(g),
                None if a is None else _normalize(a),
            )
            for g, a in pairs
        ]
