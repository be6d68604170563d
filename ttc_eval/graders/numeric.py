"""Numeric and exact graders (GSM8K, arith): cheap, in-process.

Both extract like the math grader (:mod:`ttc_eval.graders._extract`: math-verify's extraction
regexes, the last ``\\boxed{}`` first, then "final answer is ..." / "answer: ..." anchors, then
the guarded bare final number), except that a bare ``$...$`` span is not read as LaTeX: in
GSM8K-style outputs ``$`` is currency. The fallback never glues a tuple, interval, set or
thousands group into one number and never reads an unterminated box. ``answer_after`` (grader
argument, e.g. ``"</think>"``): only the text after the last marker is read; an output without
it has no answer.

Percentages: a percent sign is notation (``33.5%`` = ``33.5``, not ``0.335``), as in the math
grader.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence

from ttc_eval.graders._base import Grade
from ttc_eval.graders._extract import MATH_VERIFY_VERSION, extract_answer, number_value, unwrap
from ttc_eval.registry import grader

_SEP = r"(?:,|\{,\}|\\,|\\;|\\:|\\ |~|\u2009|\u202f)"
_NUM = rf"-?(?:\d{{1,3}}(?:{_SEP}\d{{3}})+|\d+)(?:\.\d+)?|-?\.\d+"
_NUMBER_ONLY = re.compile(rf"(?:{_NUM})")
_FRACTION = re.compile(rf"(-?)\\[dt]?frac\{{({_NUM})\}}\{{({_NUM})\}}|({_NUM})\s*/\s*({_NUM})")
_WORDS = re.compile(r"\\(?:text|mbox|mathrm)\s*\{[^{}]*\}")
_PERCENT = re.compile(r"\s*(?:\\%|%|percent)\s*\Z")
_DEGREES = re.compile(r"\s*(?:°|\^\s*\\circ|\^\s*\{\s*\\circ\s*\})\s*\Z")
_UNIT_TAIL = re.compile(r"(?<=\d)\s*[A-Za-z][A-Za-z .]*\Z")


def read_number(answer: str) -> float | None:
    """The number an answer states (``1,200``, ``\\$18.00``, ``18 \\text{ dollars}``,
    ``x = 18``, ``33.5\\%``, ``74^\\circ``, ``\\frac{7}{2}``), or ``None`` when it is not one
    number (a tuple ``(1,2)`` is not the number 12)."""
    s = unwrap(answer)
    s = _WORDS.sub(" ", s).replace("\\$", "").replace("$", "")
    s = re.sub(r"\\[!]", "", s)
    if "=" in s:
        s = s.rsplit("=", 1)[1]
    s = _DEGREES.sub("", _PERCENT.sub("", unwrap(s)))
    s = _UNIT_TAIL.sub("", s).strip().rstrip(".").strip()
    if _NUMBER_ONLY.fullmatch(s):
        return float(number_value(s))
    m = _FRACTION.fullmatch(s)
    if m:
        if m.group(2):
            sign, num, den = m.group(1), m.group(2), m.group(3)
        else:
            sign, num, den = "", m.group(4), m.group(5)
        d = float(number_value(den))
        if d == 0:
            return None
        value = float(number_value(num)) / d
        return -value if sign else value
    return None


def _number_key(x: float) -> str:
    return str(int(x)) if x.is_integer() else repr(x)


class _DollarsAreCurrency:
    """The extraction both graders share: the math grader's, except that a bare ``$...$`` span
    is currency, not LaTeX; ``answer_after``: read only the text after the last marker."""

    def __init__(self, answer_after: str | None = None) -> None:
        self.answer_after = answer_after

    def extract(self, text: str) -> str | None:
        return extract_answer(text, plain_latex=False, answer_after=self.answer_after)


@grader("numeric")
class NumericGrader(_DollarsAreCurrency):
    """Equal as numbers (relative tolerance 1e-6); thousands separators, dollar signs, units and
    percent signs ignored."""

    version = f"numeric/2+math-verify-{MATH_VERIFY_VERSION}"

    def grade(self, pairs: Sequence[tuple[str, str | None]]) -> list[Grade]:
        out = []
        for gold, answer in pairs:
            if answer is None:
                out.append(Grade(False, None))
                continue
            a = read_number(answer)
            g = read_number(gold)
            if a is None or not math.isfinite(a):
                out.append(Grade(False, re.sub(r"\s+", "", answer)))
                continue
            ok = g is not None and math.isclose(a, g, rel_tol=1e-6, abs_tol=1e-9)
            out.append(Grade(ok, _number_key(a)))
        return out


def _normalize(s: str) -> str:
    s = re.sub(r"\s+|(?<!\\)\$|\\\$|\\[!]", "", unwrap(s)).rstrip(".")
    return number_value(s) if _NUMBER_ONLY.fullmatch(s) else s


@grader("exact")
class ExactGrader(_DollarsAreCurrency):
    """Equal after removing wrapping (``$...$``, ``\\boxed{}``), white space, dollar signs, a
    trailing period and the thousands separators of a number."""

    version = f"exact/2+math-verify-{MATH_VERIFY_VERSION}"

    def grade(self, pairs: Sequence[tuple[str, str | None]]) -> list[Grade]:
        return [
            Grade(
                a is not None and _normalize(a) == _normalize(g),
                None if a is None else _normalize(a),
            )
            for g, a in pairs
        ]
