"""Final-answer extraction from whole model outputs, shared by the graders.

Extraction runs in the runner's process for every candidate, so it must be fast and can never
hang: it is string work only (regular expressions and math-verify's string normalization), no
sympy (about a millisecond per output). It uses math-verify's own extraction, split where
math-verify itself splits it:

1. **Selection** (here): math-verify's extraction regexes (``get_extraction_regexes``) for the
   grader's configs (:func:`extraction_configs`) are matched against the whole output and
   ranked as math-verify's ``parse`` ranks them (by priority, then the match ending last); the
   chosen match is rendered as the string math-verify returns for it (its normalized LaTeX, or
   its number or expression text). :func:`math_verify_choice` is exactly
   ``parse(text, configs, extraction_mode="first_match")`` without the sympy conversion, which
   only decides whether the chosen match *parses*, never which match is chosen (a test checks
   the two agree).
2. **Conversion** (in the math grader's worker processes, with a hard timeout): the rendered
   string is parsed to sympy (``ttc_eval.graders.math.parse_answer``); the numeric and exact
   graders read it as a number or a string.

What is ours, on top of math-verify (:func:`select_answer`):

* **Tiers.** Boxes (priority 0 with our config) and "final answer is ..." (0, 50) outrank
  everything, in math-verify's order. Below them, math-verify's weaker matches ("answer ..."
  anchors at 100 and 200, any ``$...$`` at 300) and the bare final number (below) compete by
  position: the one ending last wins. math-verify would rank an early "To answer this, we
  first count 3 cases" above the ``$7$`` the reasoning ends with.
* **Guards** (:func:`stands_alone`): a plain-text number or expression match is skipped when
  it is one part of something larger: an element of a tuple, list, range, interval or set
  (``(1, 2)``, ``3 and 5``), a piece of a thousands group it did not read whole
  (``1\\,234``), an operand of an operator or a code keyword (``x or 0``, ``sqrt(3)``,
  ``n == 0``), a list marker or an option label, or a decimal comma (``1,5`` is as likely a
  list as 1.5).
* **Unterminated box**: if the output's last ``\\boxed{`` (or ``\\fbox{``) never closes, the
  output has *no answer*: its final answer was cut off, and an earlier number is not it.
* **Bare final number** (:func:`final_number`), math-verify's anchor-less number rule
  replaced: the last number of the output, whole (thousands groups ``14,916``, ``14{,}916``
  and ``1\\,234`` are one number; ``3/4`` is one fraction), and only if it stands alone.
  Otherwise there is none: it never walks back to an earlier number.

``answer_after`` (a grader argument, e.g. ``"</think>"``): only the text after the last
occurrence of the marker is read; an output without the marker has no answer.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import replace
from functools import cache
from importlib.metadata import version as _installed
from typing import Any

_BOX_COMMANDS = ("\\boxed", "\\fbox")

# --- boxes ---------------------------------------------------------------------------------


def last_boxed(text: str) -> str | None:
    """Content of the last ``\\boxed{...}`` or ``\\fbox{...}`` (braces matched), or ``None``.

    Also accepts the brace-less form ``\\boxed 5``. An unclosed brace counts as absent.
    """
    start = max(text.rfind(cmd) for cmd in _BOX_COMMANDS)
    if start < 0:
        return None
    cmd = next(c for c in _BOX_COMMANDS if text.startswith(c, start))
    i = start + len(cmd)
    if i < len(text) and text[i] == " ":
        m = re.match(r"\s+([^\s${}]+)", text[i:])
        return m.group(1) if m else None
    if i >= len(text) or text[i] != "{":
        return None
    end = _closing_brace(text, i)
    return None if end is None else text[i + 1 : end].strip()


def _closing_brace(text: str, i: int) -> int | None:
    """Index of the brace closing the one at ``text[i]``, or ``None``."""
    depth = 0
    for j in range(i, len(text)):
        if text[j] == "{":
            depth += 1
        elif text[j] == "}":
            depth -= 1
            if depth == 0:
                return j
    return None


def last_box_unterminated(text: str) -> bool:
    """Whether the last ``\\boxed{`` / ``\\fbox{`` of ``text`` never closes (a cut-off answer)."""
    start = max(text.rfind(cmd) for cmd in _BOX_COMMANDS)
    if start < 0:
        return False
    cmd = next(c for c in _BOX_COMMANDS if text.startswith(c, start))
    m = re.compile(r"\s*\{").match(text, start + len(cmd))
    return m is not None and _closing_brace(text, m.end() - 1) is None


def after_marker(text: str, marker: str | None) -> str | None:
    """The text after the last ``marker`` (``None`` when it is missing); ``text`` if no marker."""
    if not marker:
        return text
    i = text.rfind(marker)
    return None if i < 0 else text[i + len(marker) :]


# --- numbers -------------------------------------------------------------------------------

# A thousands separator: comma, LaTeX thin spaces / braced comma, Unicode thin spaces.
MATH_VERIFY_VERSION = _installed("math-verify")
"""The installed math-verify: part of every grader's version, since its extraction and
equivalence decide verdicts and ``math-verify>=0.9`` admits later releases."""

_SEP = r"(?:,|\{,\}|\\,|\\;|\\:|\\ |~|\u2009|\u202f)"
_NUMBER = re.compile(
    rf"(?<![\d.])-?(?:\d{{1,3}}(?:{_SEP}\d{{3}})+(?![\d])|\d+)(?:\.\d+)?(?![\d])|(?<![\d.])-?\.\d+"
)
_SEP_RE = re.compile(_SEP)
_FRACTION_HEAD = re.compile(r"(?<![\d.,/])(-?\d+)\s*/\s*\Z")
# What may not come right before a number that stands alone (after optional spaces) ...
_OPERAND_BEFORE = re.compile(
    r"(?:[(\[{,;+*/^_×÷≤≥≠|&\d]|[=!<>]=|(?<=[\s$])[<>]|\\[lg]eq?|\\[lg]t|\\neq|\\cdot|\\times|\\div|"
    r"\\pm|\\sqrt|\\frac|\\log|\\ln|-|"
    r"(?<![A-Za-z])(?:or|and|not|return|else|if|elif|lambda|yield|xor|mod)|(?<=\d):|"
    r"(?<![A-Za-z])(?:or|and)\s+[A-Za-z]\w*\s*=|"
    # a label or a word operator, not an answer: "an error in step 3", "10 apples minus 3"
    r"(?<![A-Za-z])(?i:step|case|part|question|line|problem|example|exercise|page|equation|"
    r"figure|chapter|section|item|option|row|column|minus|plus|times)s?\s*#?|"
    # a multiple-choice option: "(B) 6"
    r"(?:\(|\b)[A-Ea-e]\)|\b[A-E]\.)\s*(?:\\?\$\s*)?\Z"
)
# ... and right after it.
_OPERAND_AFTER = re.compile(
    r"\A\s*(?:[+*^(\[{_!×÷<>=|&]|/(?![A-Za-z]{2})|\\cdot|\\times|\\div|\\pm|-\s*[\w(\\.]|"
    r":|\\[,;: ]\s*\d|\{,\}\s*\d|\.\d|\$?\s*(?:or|else)(?![A-Za-z])|"
    # the first of a list or range: "5, 7", "$5$ and $7$", "3 to 5"
    r"\$?\s*(?:[,;]|(?:and|to|through)\s)\s*\$?-?\.?\d)"
)
_DEGREES = re.compile(r"\A\s*(?:°|\^\s*\\circ|\^\s*\{\s*\\circ\s*\})")
# Letters glued after a number: a unit or ordinal ("72Mb", "5cm", "6th") is fine, a variable
# or a constant ("5x", "2pi", "3i") makes it an expression.
_GLUED_UNIT = re.compile(r"\A(?!(?:pi|sqrt|ln|log|sin|cos|tan|exp|e|i)(?![A-Za-z]))[A-Za-z]{2,}")
_PERCENT = re.compile(r"\A\s*(?:\\?%|percent\b)")
# A numbered-list marker: "2. Multiply" at the start of a line.
_LIST_MARKER = re.compile(r"[ \t>*#-]*")
_LIST_ITEM = re.compile(r"\A[.)]\s+\S")
_CONTEXT = 80


def number_value(token: str) -> str:
    """A number token with its thousands separators removed (``14{,}916`` -> ``14916``)."""
    return _SEP_RE.sub("", token)


def stands_alone(text: str, start: int, end: int) -> bool:
    """Whether ``text[start:end]`` (a number or expression) is not part of something larger:
    not glued to letters or digits, not an element of a tuple/list/interval/set, not an
    operand (arithmetic, comparison, code keywords), not one piece of a separated group."""
    # Local context only (the rules look a few characters around; a window keeps it linear).
    before, after = text[max(0, start - _CONTEXT) : start], text[end : end + _CONTEXT]
    line_start = text.rfind("\n", max(0, start - _CONTEXT), start) + 1
    if start > 0 and (text[start - 1].isalnum() or text[start - 1] in "\\.}"):
        return False
    if after[:1].isdigit() or (after[:1].isalpha() and not _GLUED_UNIT.match(after)):
        return False
    if _OPERAND_BEFORE.search(before):
        return False
    at_line_start = line_start > 0 or start <= _CONTEXT
    if (
        at_line_start
        and _LIST_MARKER.fullmatch(text, line_start, start)
        and _LIST_ITEM.match(after)
    ):
        return False  # "2. Multiply": a list marker
    return bool(_DEGREES.match(after)) or not _OPERAND_AFTER.match(after)


def final_number(text: str) -> str | None:
    """The bare final number of ``text``, whole and standing alone, or ``None``.

    Thousands groups are read whole (``14,916``, ``14{,}916``, ``1\\,234`` -> ``14916``...);
    the last number is never glued to its neighbours (``(1,2)``, ``[0,1)``, ``(3,2,7)`` have no
    bare final number) and never taken from an expression (``\\frac{1+\\sqrt5}{2}``,
    ``-1 + sqrt(3)``) or code (``x or 0``). A trailing percent or degree sign is kept.
    """
    found = _final_number_span(text)
    return None if found is None else found[0]


def _final_number_span(text: str) -> tuple[str, int] | None:
    """:func:`final_number` and where it ends."""
    if last_box_unterminated(text):
        return None
    found = None
    for found in _NUMBER.finditer(text):  # noqa: B007  (the last one)
        pass
    if found is None:
        return None
    start, end = found.span()
    token = found.group()
    value = number_value(token)
    fraction = _FRACTION_HEAD.search(text, 0, start)
    if fraction and re.fullmatch(r"\d+", token):
        # A simple fraction "3/4" is one final number.
        start, value = fraction.start(1), f"{fraction.group(1)}/{token}"
    elif (
        token.startswith("-")
        and start > 0
        and (text[start - 1].isalnum() or text[start - 1] in ")}]")
    ):
        return None  # a binary minus: "5-3"
    if not stands_alone(text, start, end):
        return None
    after = text[end:]
    if _PERCENT.match(after):
        value += "%"
    elif _DEGREES.match(after):
        value += "^\\circ"
    return value, end


# --- math-verify's selection ---------------------------------------------------------------


@cache
def extraction_configs(plain_latex: bool) -> tuple[Any, ...]:
    """The math-verify extraction configs of the graders.

    * ``LatexExtractionConfig(boxed_match_priority=0)``: the last ``\\boxed{}`` first (the
      prompts ask for it), then "final answer is $...$", "answer: $...$", then any
      ``$...$``/``\\(...\\)``/``\\[...\\]``, rightmost. Its default normalization (units,
      malformed operators, boxed contents).
    * ``ExprExtractionConfig(try_extract_without_anchor=False)``: plain-text numbers and
      expressions only after "final answer is" / "answer:"-style anchors; math-verify's
      anchor-less number rule reads any number anywhere (the ``x or 0`` class): the guarded
      :func:`final_number` replaces it.

    Without ``plain_latex`` (GSM8K-style numeric tasks) a bare ``$`` is usually currency
    ("$18 per day ... $1,200", "the answer from the last step: $4.00 + $2.00"), so LaTeX is
    read from boxes only (see :func:`select_answer`).
    """
    from math_verify import ExprExtractionConfig, LatexExtractionConfig

    return (
        LatexExtractionConfig(boxed_match_priority=0, try_extract_without_anchor=plain_latex),
        ExprExtractionConfig(try_extract_without_anchor=False),
    )


# "{\text{(B)}}": math-verify's unit normalization strips a trailing \text{...} and leaves "{".
# Only braces that group (not the argument of a command such as \boxed{\text{...}}).
_BRACED_TEXT = re.compile(r"(?<![A-Za-z\\^_])\{\s*(\\text\s*\{[^{}]*\})\s*\}")


def _render_latex(match: re.Match[str], config: Any) -> str:
    # The string half of math-verify's extract_latex: normalize each LaTeX group (the boxed
    # group keeps only its last box), mark percentages, join several groups with " and ".
    from latex2sympy2_extended import normalize_latex  # type: ignore[import-untyped]

    groups = match.groupdict()
    parts = []
    for prefix in ["first"] + [f"next{i}" for i in range(1, 6)]:
        found = next(
            ((k, v) for k, v in groups.items() if k.startswith(f"{prefix}_latex") and v), None
        )
        if found is None:
            continue
        name, latex = found
        latex = _BRACED_TEXT.sub(r"\1", latex)
        norm = config.normalization_config
        if name.split("_")[1] == "latexBoxed":
            norm = replace(norm, boxed="last")
        s = normalize_latex(latex, config=norm)
        if s and groups.get(f"{prefix}_percent"):
            s += "\\%"
        if s:
            parts.append(s)
    return " and ".join(parts)


def _render_expr(match: re.Match[str], text: str) -> str | None:
    # The string half of math-verify's extract_expr, with the guard of stands_alone.
    groups = match.groupdict()
    names = [k for k, v in groups.items() if v and (k.startswith(("integer", "decimal")))]
    if names:
        start = min(match.start(k) for k in names)
        end = max(match.end(k) for k in names)
        integer = next((groups[k] for k in names if k.startswith("integer")), "")
        decimal = next((groups[k] for k in names if k.startswith("decimal")), "")
        if decimal.startswith(","):
            return None  # a decimal comma is as likely a list: "1,2"
        if not stands_alone(text, start, end):
            return None
        integer = integer.translate(str.maketrans("", "", ", ")).lstrip("0") or "0"
        value = f"{integer}{decimal}"
        return value + "%" if groups.get("percent") else value
    expr = groups.get("expr")
    if not expr or not stands_alone(text, match.start("expr"), match.end("expr")):
        return None
    return " ".join(expr.split())


def _ranked_matches(text: str, configs: Sequence[Any]) -> list[tuple[int, int, re.Match[str], Any]]:
    """Every match of math-verify's extraction regexes, as (priority, end, match, config), in
    math-verify's order: by priority, then the match ending last (then starting first)."""
    from math_verify.parser import get_extraction_regexes

    found = [
        (priority, m.end(), m.start(), m, target)
        for target_patterns, target in get_extraction_regexes(list(configs))
        for pattern, priority in target_patterns
        for m in pattern.finditer(text)
    ]
    found.sort(key=lambda f: (f[0], -f[1], f[2]))
    return [(priority, end, m, target) for priority, end, _, m, target in found]


def _render(m: re.Match[str], target: Any, text: str, latex_boxes_only: bool) -> str | None:
    """The answer string of a match (math-verify's own), or ``None`` if a guard rejects it."""
    from math_verify import LatexExtractionConfig

    if isinstance(target, LatexExtractionConfig):
        if latex_boxes_only and not _BOX_IN_MATCH.search(m.group()):
            return None
        return _render_latex(m, target) or None
    return _render_expr(m, text)


_BOX_IN_MATCH = re.compile(r"\\(?:boxed|fbox)\b")
_STRONG_ANCHORS = 50
"""math-verify priorities up to here (boxes at 0 with our config, "final answer is" at 0 and
50) outrank everything; weaker anchors ("answer ..." at 100 and 200) and plain LaTeX (300)
compete by position with the bare final number."""


def math_verify_choice(
    text: str, configs: Sequence[Any], latex_boxes_only: bool = False
) -> str | None:
    """The answer string math-verify's ``parse(text, configs, extraction_mode="first_match")``
    selects (before its sympy conversion), with our guards; ``None`` if nothing matches."""
    for _, _, m, target in _ranked_matches(text, configs):
        rendered = _render(m, target, text, latex_boxes_only)
        if rendered:
            return rendered
    return None


def select_answer(text: str, configs: Sequence[Any], latex_boxes_only: bool = False) -> str | None:
    """The final answer of ``text`` (see the module doc): math-verify's choice among boxes and
    "final answer is" anchors; failing those, the candidate that ends last among the weaker
    matches and the bare final number (an early "to answer this, ... 3 apples" is not the
    answer of a reasoning that goes on); ``None`` if there is none."""
    ranked = _ranked_matches(text, configs)
    for priority, _, m, target in ranked:
        if priority > _STRONG_ANCHORS:
            break
        rendered = _render(m, target, text, latex_boxes_only)
        if rendered:
            return rendered
    number = _final_number_span(text)
    weaker = sorted((r for r in ranked if r[0] > _STRONG_ANCHORS), key=lambda r: -r[1])
    for _, end, m, target in weaker:
        if number is not None and number[1] > end:
            break  # the final number ends later than this and every remaining match
        rendered = _render(m, target, text, latex_boxes_only)
        if rendered:
            return rendered
    return None if number is None else number[0]


TAIL_CHARS = 4000
"""Extraction reads the end of an output: its last this many characters (about a thousand
tokens), reaching back to the last ``\\boxed``/``\\fbox`` if that is at most three times as far,
from a line start. The final answer is there, and math-verify's regexes take quadratic time
on some degenerate inputs (thousands of unclosed ``\\[``, as a looping model writes): the
window bounds extraction to a fraction of a second (a millisecond or so for usual outputs)."""


def tail(text: str, chars: int = TAIL_CHARS) -> str:
    """The end of ``text`` that extraction reads (see :data:`TAIL_CHARS`), from a line start
    where there is one (a cut inside ``$...$`` would pair its closing ``$`` with the next
    opening one)."""
    if len(text) <= chars:
        return text
    cut = len(text) - chars
    box = max(text.rfind(cmd) for cmd in _BOX_COMMANDS)
    if 0 <= box < cut and len(text) - box <= 4 * chars:
        cut = box
    newline = text.rfind("\n", max(0, cut - chars // 4), cut)
    return text[newline + 1 :] if newline >= 0 else text[cut:]


def extract_answer(text: str, *, plain_latex: bool, answer_after: str | None = None) -> str | None:
    """The final answer of a whole model output (see the module doc), or ``None``."""
    region = after_marker(text, answer_after)
    if region is None or last_box_unterminated(region):
        return None
    region = tail(region)
    return select_answer(region, extraction_configs(plain_latex), latex_boxes_only=not plain_latex)


# --- standalone answers (gold answers and extracted answers) -------------------------------

_WRAPPERS = (("$$", "$$"), ("\\[", "\\]"), ("\\(", "\\)"), ("$", "$"))
_UNESCAPED_DOLLAR = re.compile(r"(?<!\\)\$")
_BOX_START = re.compile(r"\\(?:boxed|fbox)\s*\{")
_TRAILING_PERCENT = re.compile(
    r"\s*(?:\\%|%|\\text\{\s*\\?%\s*\}|\\?,?\s*(?:\\text\{\s*)?percent\}?)\s*\Z"
)
_THIN_THOUSANDS = re.compile(
    r"(?<![\d.])\d{1,3}(?:(?:\\,|\\;|\\:|\\ |~|\u2009|\u202f)\d{3})+(?![\d])"
)
_THIN_SEP = re.compile(r"\\,|\\;|\\:|\\ |~|\u2009|\u202f")
_PY_SQRT = re.compile(r"(?<![\\A-Za-z])sqrt\s*\(([^()]*)\)")


def unwrap(answer: str) -> str:
    """``answer`` without the math delimiters or box that wrap all of it (``$...$``,
    ``$$...$$``, ``\\(...\\)``, ``\\[...\\]``, ``\\boxed{...}``, ``\\fbox{...}``, ``{...}``)
    and without a final full stop, repeatedly: ``\\boxed{5}``, ``$5$`` and ``5`` are one answer."""
    s = answer.strip()
    while True:
        before = s
        for left, right in _WRAPPERS:
            inner = s[len(left) : -len(right)]
            if (
                len(s) >= len(left) + len(right)
                and s.startswith(left)
                and s.endswith(right)
                and right not in inner.replace("\\$", "")
            ):
                s = inner.strip()
                break
        m = _BOX_START.match(s)
        if m and _closing_brace(s, m.end() - 1) == len(s) - 1:
            s = s[m.end() : -1].strip()
        elif s.startswith("{") and _closing_brace(s, 0) == len(s) - 1:
            s = s[1:-1].strip()
        if s.endswith(".") and not s.endswith("\\.") and len(s) > 1:
            s = s[:-1].rstrip()
        if s == before:
            return s


def standalone_math(answer: str) -> tuple[str, bool]:
    """A gold or extracted answer prepared for math-verify, and whether it is a Python-style
    expression (``2**(1/4)``: parse it as an expression, not as LaTeX).

    Whatever wraps it is removed (:func:`unwrap`); a degree sign becomes ``^{\\circ}``; a thin
    space separating thousands (``1\\,234``) goes; ``sqrt(x)`` becomes ``\\sqrt{x}``; a trailing
    percent sign goes (the percentage policy of the math grader: ``33.5\\%`` is the number
    33.5, so it equals ``33.5`` and not ``0.335``)."""
    s = unwrap(answer)
    s = s.replace("°", "^{\\circ}")
    s = _THIN_THOUSANDS.sub(lambda m: _THIN_SEP.sub("", m.group()), s)
    s = _PY_SQRT.sub(lambda m: "\\sqrt{" + m.group(1) + "}", s)
    s = _TRAILING_PERCENT.sub("", s).strip()
    s = _UNESCAPED_DOLLAR.sub("", s).replace("\n", " ")
    return s, "**" in s and "\\" not in s
