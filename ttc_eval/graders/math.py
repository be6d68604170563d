"""Math answer extraction and equivalence with math-verify.

**Extraction** (``extract``, in the caller's process, per output; string work only, so it is
fast and cannot hang): math-verify's extraction regexes and priorities with these configs (see
:mod:`ttc_eval.graders._extract`)::

    LatexExtractionConfig(boxed_match_priority=0)            # \\boxed{} first, then LaTeX
                                                             # after "final answer is" /
                                                             # "answer:", then any $...$
    ExprExtractionConfig(try_extract_without_anchor=False)   # "final answer is 7", "answer: 7"
    extraction_mode="first_match", fallback_mode="first_match"

Boxes and "final answer is ..." win in math-verify's order; failing those, the weaker matches
and a guarded bare final number (never gluing a tuple, interval, set or thousands group, never
reading an unterminated box) compete by position, the last one winning. The answer stored is
the string math-verify returns for the chosen match (normalized LaTeX such as ``\\frac{1}{2}``,
or the number). ``answer_after`` (grader argument, e.g. ``"</think>"``): only the text after the
last marker is read; without the marker there is no answer.

**Grading** (``grade``, in worker processes): gold and answer are both parsed the same way
(:func:`parse_answer`): unwrapped (bare, ``$...$`` or ``\\boxed{}`` wrapping gives one answer,
:func:`ttc_eval.graders._extract.standalone_math`), then ``parse("$" + answer + "$",
[LatexExtractionConfig(boxed_match_priority=0)], extraction_mode="first_match")``, or
``parse(answer, [ExprExtractionConfig()])`` for a Python-style answer (``2**(1/4)``); then
``verify(gold, answer)`` (gold first: math-verify's verify is not symmetric). An equation
``2 = x`` (a value equal to a lone variable) is read as ``x = 2``.

**Percentages**: a percent sign is notation, not a factor: ``33.5\\%``, ``33.5%``, "33.5 percent"
and ``33.5`` are one answer; ``0.335`` is a different one (math-verify alone would read
``33.5%`` in text as 0.335 but ``33.5\\%`` in LaTeX as 33.5).

**Time**: math-verify's own timeouts use ``signal.alarm``, which fails inside threads and cannot
stop a sympy computation stuck in C code; so parsing and comparison run with its timeouts off in
a pebble worker process that is killed when it overruns (``\\boxed{9^{9^{9^{9}}}}`` must not hang
a run); an overrun counts as wrong. Pairs are deduplicated by (gold, answer) first: a pool of
samples repeats the same few answers. math-verify's log lines ("Timeout is disabled ...") are
silenced in the workers and here.
"""

from __future__ import annotations

import atexit
import logging
import multiprocessing
import re
from collections.abc import Sequence
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any

from tqdm.auto import tqdm

from ttc_eval._progress import bars_shown
from ttc_eval.graders._base import Grade
from ttc_eval.graders._extract import MATH_VERIFY_VERSION, extract_answer, standalone_math
from ttc_eval.registry import grader

_POOL: Any = None
_POOL_WORKERS = 0
_QUIET_LOGGERS = ("math_verify", "latex2sympy2_extended")


def quiet_math_verify() -> None:
    """Silence math-verify's and latex2sympy's log lines (timeouts disabled on purpose here)."""
    for name in _QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.CRITICAL + 1)


quiet_math_verify()


def _warm() -> None:
    quiet_math_verify()
    import math_verify  # noqa: F401  (import once per worker, outside the per-item timeout)


def parse_answer(answer: str) -> list[Any]:
    """math-verify's parse of one gold or extracted answer (see the module doc); call it only
    where a hang can be stopped (a worker process)."""
    from math_verify import ExprExtractionConfig, LatexExtractionConfig, parse
    from sympy import Eq, Symbol  # type: ignore[import-untyped]

    s, python_style = standalone_math(answer)
    if not s:
        return []
    if python_style:
        config: list[Any] = [ExprExtractionConfig()]
        text = s
    else:
        config = [LatexExtractionConfig(boxed_match_priority=0)]
        text = "$" + s + "$"
    parsed: list[Any] = parse(
        text,
        extraction_config=config,
        fallback_mode="first_match",
        extraction_mode="first_match",
        parsing_timeout=None,
    )
    if parsed and isinstance(parsed[0], Eq):
        lhs, rhs = parsed[0].lhs, parsed[0].rhs
        if isinstance(rhs, Symbol) and not getattr(lhs, "free_symbols", True):
            parsed[0] = Eq(rhs, lhs, evaluate=False)
    return parsed


def _verify_pair(gold: str, answer: str) -> tuple[bool, str | None]:
    from math_verify import verify

    g = parse_answer(gold)
    a = parse_answer(answer)
    key = str(a[0]) if a else None
    if not g or not a:
        return False, key
    # Gold first: math-verify's verify is not symmetric.
    return bool(verify(g, a, timeout_seconds=None)), key


def _pool(workers: int) -> Any:
    global _POOL, _POOL_WORKERS
    if _POOL is None or workers != _POOL_WORKERS:
        from pebble import ProcessPool

        if _POOL is not None:
            _stop_pool(_POOL)
        # Workers fork from a fresh forkserver that has preloaded math-verify: forking the parent
        # itself is unsafe once it holds torch threads. A killed worker is then replaced in
        # milliseconds. Like spawn, each worker imports the parent's __main__ module: a script
        # that grades must guard its entry point (`if __name__ == "__main__":`).
        ctx = multiprocessing.get_context("forkserver")
        ctx.set_forkserver_preload(["math_verify", "ttc_eval.graders.math"])
        _POOL = ProcessPool(max_workers=workers, initializer=_warm, context=ctx)
        _POOL_WORKERS = workers
        # Registered now, after pebble and multiprocessing registered theirs, so that it runs
        # before them at exit (atexit is last-in, first-out): multiprocessing's exit function
        # unlinks the pool's semaphores before joining the workers, and a worker that pebble
        # was just starting to replace a killed one then dies unpickling them, printing a
        # SemLock traceback. Stopping the pool first terminates it before that.
        atexit.unregister(_shutdown)
        atexit.register(_shutdown)
    return _POOL


def _stop_pool(pool: Any) -> None:
    pool.stop()
    pool.join()


def _shutdown() -> None:
    global _POOL
    if _POOL is not None:
        _stop_pool(_POOL)
        _POOL = None


def _fallback_key(answer: str) -> str:
    return re.sub(r"\s+", "", answer)


@grader("math")
class MathGrader:
    """math-verify extraction from the whole output and equivalence (gold first), with a hard
    per-item timeout; timeouts are wrong. Percent signs are notation (``33.5\\%`` = ``33.5``)."""

    version = f"math-verify-{MATH_VERIFY_VERSION}/2"

    def __init__(
        self,
        timeout_s: float = 5.0,
        workers: int = 2,
        progress: bool = True,
        answer_after: str | None = None,
    ) -> None:
        self.timeout_s = timeout_s
        self.workers = workers
        self.progress = progress
        self.answer_after = answer_after

    def extract(self, text: str) -> str | None:
        return extract_answer(text, plain_latex=True, answer_after=self.answer_after)

    def grade(self, pairs: Sequence[tuple[str, str | None]]) -> list[Grade]:
        unique = sorted({(g, a) for g, a in pairs if a is not None})
        verdicts: dict[tuple[str, str], Grade] = {}
        if unique:
            pool = _pool(self.workers)
            futures = [pool.schedule(_verify_pair, args=p, timeout=self.timeout_s) for p in unique]
            bar = tqdm(
                zip(unique, futures, strict=True),
                total=len(unique),
                desc="grading",
                unit="answer",
                # The run's --quiet as well as this grader's own switch.
                disable=not (self.progress and bars_shown()),
                leave=False,
            )
            for (gold, ans), fut in bar:
                try:
                    ok, key = fut.result()
                except (FutureTimeout, Exception):
                    # Overran the timeout (the worker was killed) or math-verify raised:
                    # count it wrong, keep a raw key so votes still group identical strings.
                    ok, key = False, None
                verdicts[(gold, ans)] = Grade(ok, key if key is not None else _fallback_key(ans))
        return [verdicts[(g, a)] if a is not None else Grade(False, None) for g, a in pairs]
