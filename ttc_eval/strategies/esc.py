"""Strategy ``esc``: early-stopping self-consistency (Li et al. 2024, "Escape Sky-high Cost").

Reads the pool in windows of ``window`` samples, in pool order, and stops at the first window
whose answers are all the same (an answerless sample breaks unanimity); the answer is the
majority over every sample read. At budget N it reads at most N samples: what it spends is
the samples it read, which the pipeline's cost record reports (the adaptive part).
"""

from __future__ import annotations

from collections.abc import Sequence

from ttc_eval.errors import UsageError
from ttc_eval.registry import strategy
from ttc_eval.strategies._batch import GroupChoices, PoolBatch, first_stop
from ttc_eval.strategies.selection import Majority
from ttc_eval.types import Candidate


def read_until_unanimous(group: Sequence[Candidate], window: int) -> list[Candidate]:
    """The samples ESC reads from ``group``: whole windows, up to and including the first
    unanimous one (all of them when none is)."""
    for end in range(window, len(group) + 1, window):
        keys = {c.vote_key for c in group[end - window : end]}
        if len(keys) == 1 and None not in keys:
            return list(group[:end])
    return list(group)


@strategy("esc")
class EarlyStoppingSelfConsistency(Majority):
    """Majority over windows of ``window`` samples read in order, stopping at the first
    unanimous window (Li et al. 2024); at most the budget's samples."""

    def __init__(self, window: int = 5) -> None:
        if isinstance(window, bool) or not isinstance(window, int) or window < 1:
            raise UsageError(f"esc: window must be a positive integer, got {window!r}")
        self.window = window

    def read(self, group: Sequence[Candidate]) -> Sequence[Candidate]:
        return read_until_unanimous(group, self.window)

    def select_many(self, batch: PoolBatch, budget: int) -> GroupChoices | None:
        if not self.batched_by(EarlyStoppingSelfConsistency):
            return None
        w = self.window
        read = batch.whole(budget)
        if w <= budget:
            # A window ending at position e is unanimous when the run of one answer ending
            # there is at least w long (runs may start before the group: only its last w
            # candidates matter).
            runs = batch.grouped(batch.run_lengths(), budget)[:, :, w - 1 :: w]
            read = first_stop(runs >= w, budget, w)
        return GroupChoices(*batch.vote(budget, upto=read), read)
