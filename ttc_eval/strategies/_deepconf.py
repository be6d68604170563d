"""What both DeepConf strategies share: the check that a trace carries token confidences, and
their argument checks (the measures are in :mod:`ttc_eval.analysis.confidence`)."""

from __future__ import annotations

from ttc_eval.errors import UsageError
from ttc_eval.types import Candidate, Trace


def require_confidences(trace: Trace, name: str) -> None:
    """Refuse a trace whose candidates carry no token confidences, saying how to get them."""
    missing = [c.index for c in trace.candidates if c.confidences is None]
    if not missing:
        return
    shown = ", ".join(map(str, missing[:5])) + (", ..." if len(missing) > 5 else "")
    # A UsageError (exit code 2), as for best_of_n without verifier scores: the run's
    # settings did not record what this strategy reads, and rerunning the same command would
    # fail the same way (exit code 1 is for failures that a plain rerun may get past).
    raise UsageError(
        f"{name} reads token confidences, but samples {shown} of question "
        f"{trace.problem_id!r} have none: the backend recorded no token confidences. Rerun "
        "with a backend that records them (--backend-args top_logprobs=5, the default of the "
        "hf, vllm, openai and fake backends; top_logprobs=0 records none). Traces stored "
        "before token confidences were recorded lack them: write the rerun to a new run "
        "directory (--run-id NAME or another --output-dir)."
    )


def confidences_of(c: Candidate) -> tuple[float, ...]:
    assert c.confidences is not None  # checked per trace by require_confidences
    return c.confidences


def positive_int(name: str, key: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise UsageError(f"{name}: {key} must be a positive integer, got {value!r}")
    return value


def number_in(name: str, key: str, value: object, what: str, low: float, high: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not low < value <= high:
        raise UsageError(f"{name}: {key} must be {what}, got {value!r}")
    return float(value)
