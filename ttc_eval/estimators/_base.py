"""What a difficulty estimator is: a pure function of K probe samples to one number.

An :class:`Estimator` reads the probe's candidates (answers, verifier scores, token
confidences) and returns its *feature*: higher means easier for the model (it is more
confident), ``None`` when the probe says nothing (no samples). What it reads is declared,
never probed: ``needs_verifier`` (step scores) and ``needs_confidences`` (token
confidences), so that a run can be checked before it samples. The registry sets ``name``
and ``args`` when it builds one, and ``label()`` names the configuration in reports and in
a policy file.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from ttc_eval.registry import label_of
from ttc_eval.types import Candidate


class Estimator(Protocol):
    """A registered factory's product: the predicted-difficulty feature of a probe."""

    name: str
    """Registered name (set by the registry)."""
    args: Mapping[str, Any]
    """Every argument it was built with, defaults filled in (set by the registry)."""
    needs_verifier: bool
    """Whether ``feature`` reads verifier step scores."""
    needs_confidences: bool
    """Whether ``feature`` reads the candidates' token confidences."""

    def label(self) -> str:
        """Name with arguments: what reports and policy files call this configuration."""
        ...

    def canonical_args(self, args: Mapping[str, Any]) -> dict[str, Any]:
        """The recorded arguments less those that do not change the feature."""
        ...

    def feature(self, probe: Sequence[Candidate]) -> float | None:
        """The probe's feature, higher = easier; ``None`` for an empty probe. Pure: no model,
        no I/O."""
        ...


class EstimatorBase(ABC):
    """Defaults of every declared capability; subclasses override what they read and
    implement ``feature``."""

    name = ""
    args: Mapping[str, Any] = {}
    needs_verifier = False
    needs_confidences = False

    def label(self) -> str:
        return label_of(self.name, self.args)

    def canonical_args(self, args: Mapping[str, Any]) -> dict[str, Any]:
        return dict(args)

    @abstractmethod
    def feature(self, probe: Sequence[Candidate]) -> float | None: ...


def lacking(probe: Sequence[Candidate], absent: str) -> str:
    """``probe sample 3 has`` or ``probe samples 3, 7 have``: the pool indices of the probe
    samples whose ``absent`` is ``None`` (five at most), as an error's subject."""
    idx = [c.index for c in probe if getattr(c, absent) is None]
    shown = ", ".join(map(str, idx[:5])) + (", ..." if len(idx) > 5 else "")
    return f"probe sample {shown} has" if len(idx) == 1 else f"probe samples {shown} have"
