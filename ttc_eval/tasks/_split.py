"""Seeded calibration/test split of a task's questions (``--split``).

A question's split is a pure function of (split seed, task name, problem id): it does not
depend on ``--limit``, on shards, on the order the loader yields questions in, nor on the
other questions of the task, so a policy fitted on the calibration split of one run can be
checked against the test split of another. The hash below is part of the split's contract:
changing it would silently move questions between splits of recorded runs, so it must stay
as it is across ttc-eval versions (``tests/test_split.py`` pins a few assignments).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from typing import TypeVar

from ttc_eval.types import Problem

CALIBRATION = "calibration"
TEST = "test"
SPLITS = (CALIBRATION, TEST)
"""The splits ``--split`` chooses from."""

_P = TypeVar("_P", bound=Problem)


def split_draw(problem_id: str, task: str, seed: int) -> float:
    """A uniform number in [0, 1) fixed by (seed, task, problem id): the first 8 bytes of
    their SHA-256, little-endian, over 2**64."""
    digest = hashlib.sha256(f"{seed}|{task}|{problem_id}".encode()).digest()
    return int.from_bytes(digest[:8], "little") / 2**64


def split_of(problem_id: str, task: str, seed: int, fraction: float) -> str:
    """The split (:data:`CALIBRATION` or :data:`TEST`) of question ``problem_id`` of
    ``task`` (the task name as a run's ``task`` setting writes it) under split seed ``seed``,
    when a share ``fraction`` of the questions is in the calibration split."""
    return CALIBRATION if split_draw(problem_id, task, seed) < fraction else TEST


def in_split(problems: Iterable[_P], split: str, task: str, seed: int, fraction: float) -> list[_P]:
    """The questions of ``problems`` in ``split``, in their order."""
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; splits: {', '.join(SPLITS)}")
    return [p for p in problems if split_of(p.id, task, seed, fraction) == split]
