"""Math answer equivalence with math-verify, in worker processes with a hard per-item timeout.

math-verify's own timeouts use ``signal.alarm``, which fails inside threads and cannot stop a
sympy computation stuck in C code; so every comparison runs in a pebble worker process that
is killed when it overruns (``\\boxed{9^{9^{9^{9}}}}`` must not hang a run). Pairs are
deduplicated by (gold, answer) first: a pool of samples repeats the same few answers.
"""

from __future__ import annotations

import atexit
import multiprocessing
import re
from collections.abc import Sequence
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any

from tqdm.auto import tqdm

from ttc_eval.graders._base import Grade
from ttc_eval.graders._extract import boxed_or_last_number
from ttc_eval.registry import grader

_POOL: Any = None
_POOL_WORKERS = 0


def _warm() -> None:
    import math_verify  # noqa: F401  (import once per worker, outside the per-item timeout)


def _as_latex(s: str) -> str:
    s = s.strip()
    if s.startswith("$") or "\\boxed" in s:
        return s
    return "\\boxed{" + s + "}"


def _verify_pair(gold: str, answer: str) -> tuple[bool, str | None]:
    from math_verify import ExprExtractionConfig, LatexExtractionConfig, parse, verify

    config = [LatexExtractionConfig(), ExprExtractionConfig()]
    g = parse(_as_latex(gold), extraction_config=config, parsing_timeout=None)
    a = parse(_as_latex(answer), extraction_config=config, parsing_timeout=None)
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
            _POOL.stop()
        # Workers fork from a fresh forkserver that has preloaded math-verify: forking the parent
        # itself is unsafe once it holds torch threads, and spawn would re-run an unguarded
        # __main__ script. A killed worker is then replaced in milliseconds.
        ctx = multiprocessing.get_context("forkserver")
        ctx.set_forkserver_preload(["math_verify", "ttc_eval.graders.math"])
        _POOL = ProcessPool(max_workers=workers, initializer=_warm, context=ctx)
        _POOL_WORKERS = workers
    return _POOL


@atexit.register
def _shutdown() -> None:
    global _POOL
    if _POOL is not None:
        _POOL.stop()
        _POOL.join()
        _POOL = None


def _fallback_key(answer: str) -> str:
    return re.sub(r"\s+", "", answer)


@grader("math")
class MathGrader:
    """math-verify equivalence (gold first) with a hard per-item timeout; timeouts are wrong."""

    version = "math-verify-0.9/1"

    def __init__(self, timeout_s: float = 5.0, workers: int = 2, progress: bool = True) -> None:
        self.timeout_s = timeout_s
        self.workers = workers
        self.progress = progress

    def extract(self, text: str) -> str | None:
        return boxed_or_last_number(text)

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
                disable=not self.progress,
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
