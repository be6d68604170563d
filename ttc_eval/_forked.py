"""A report's independent pieces of work (figures, bootstrap intervals), spread over forked
processes where that is safe, with their results exactly as if made here in order."""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from ttc_eval._heap import frozen_heap

_T = TypeVar("_T")

MAX_PROCESSES = 4
"""Most processes working side by side (each holds its own piece's memory: a figure)."""


def fork_map(
    jobs: Sequence[tuple[Callable[..., _T], tuple[Any, ...]]],
    meanwhile: Callable[[], object] | None = None,
) -> list[_T]:
    """``fn(*args)`` of every job, with their results in order; ``meanwhile()`` (if given)
    runs in this process while the workers do the jobs (work of its own that the jobs do not
    depend on and that does not depend on them).

    On a machine with several cores the jobs run side by side in forked processes, which
    inherit what this process has imported and built. Where forking is not safe or useful
    (one core, not Linux, other threads running, torch loaded, a single job) they run here,
    one after the other, after ``meanwhile``. Every job's result must pickle; a job whose
    worker dies (out of memory?) is run again here."""
    workers = min(len(jobs), usable_cpus(), MAX_PROCESSES)
    if workers < 2 or not may_fork():
        if meanwhile is not None:
            meanwhile()
        return [fn(*args) for fn, args in jobs]
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor
    from concurrent.futures.process import BrokenProcessPool

    results: list[Any] = [None] * len(jobs)
    done = [False] * len(jobs)
    # Out of the collector's sight while the workers run: a collection in a worker would
    # otherwise touch, and so copy, every object this process holds (a report's traces).
    try:
        with (
            frozen_heap(),
            ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("fork")) as pool,
        ):
            futures = [pool.submit(fn, *args) for fn, args in jobs]
            # The workers have forked when the first job was submitted; what runs here from
            # now on is not in their memory.
            if meanwhile is not None:
                meanwhile()
                meanwhile = None
            for i, future in enumerate(futures):
                results[i], done[i] = future.result(), True
    except (BrokenProcessPool, OSError):
        pass  # no worker could start, or one died: what was not done is done here
    if meanwhile is not None:
        meanwhile()  # the pool failed before it ran
    return [r if ok else fn(*args) for r, ok, (fn, args) in zip(results, done, jobs, strict=True)]


def usable_cpus() -> int:
    """CPUs this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def may_fork() -> bool:
    """Whether forking this process is safe: Linux, no other Python thread (one could hold a
    lock the child would wait on forever), and no torch (a run that reports at its end with
    a model loaded: its CUDA state must not be forked)."""
    return sys.platform == "linux" and threading.active_count() == 1 and "torch" not in sys.modules
