"""The cyclic garbage collector around a report's bulk work. A large run holds millions of
small objects (500 questions x 256 samples); each full collection walks all of them, and
building millions more (parsing the traces, the report page's data) sets off many
collections: measured at 500 x 256, about a third of the page's time and of the loading."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager

_frozen = 0
"""How many :func:`frozen_heap` blocks are open (the collector has one frozen set)."""


@contextmanager
def frozen_heap() -> Iterator[None]:
    """Every object alive now out of the collector's sight while the block runs (it still
    collects what is made inside). Nested blocks share one frozen set, released by the
    outermost. A forked worker started inside touches, and so copies, none of the frozen
    objects when it collects."""
    global _frozen
    gc.freeze()
    _frozen += 1
    try:
        yield
    finally:
        _frozen -= 1
        if not _frozen:
            gc.unfreeze()


@contextmanager
def collector_paused() -> Iterator[None]:
    """No collection while the block runs: for building objects that form no cycles
    (parsed JSON rows and the dataclasses made from them)."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()
