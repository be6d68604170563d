"""The run's progress switch (``--quiet``), for bars drawn deep inside a stage.

Most bars take the switch as an argument (backends are built with ``progress=``), but a
grader is built with its task, before the run knows whether bars are wanted, and grading runs
inside the pipeline's own bar: the switch reaches it through this context instead.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

_SHOWN: ContextVar[bool] = ContextVar("ttc_eval_progress_bars", default=True)


def bars_shown() -> bool:
    """Whether progress bars may be drawn here (False inside ``progress_bars(False)``)."""
    return _SHOWN.get()


@contextmanager
def progress_bars(show: bool) -> Iterator[None]:
    """Show (or hide) the progress bars drawn inside this block."""
    token = _SHOWN.set(show)
    try:
        yield
    finally:
        _SHOWN.reset(token)
