"""Error types. Every error a user can cause says what is wrong and how to fix it."""

from __future__ import annotations

from collections.abc import Iterable


class TTCError(Exception):
    """Base class for errors ttc-eval reports to the user without a traceback."""

    exit_code = 1


class UsageError(TTCError):
    """Bad command-line input, unknown names, bad config values (exit code 2)."""

    exit_code = 2


class DataError(TTCError):
    """A task spec or data file is malformed or cannot be loaded (exit code 2)."""

    exit_code = 2


def did_you_mean(name: str, choices: Iterable[object], n: int = 3, cutoff: float = 0.5) -> str:
    """`` Did you mean: a, b?`` for the choices close to ``name`` (empty when none is):
    the one spelling of every "unknown name" hint."""
    import difflib

    close = difflib.get_close_matches(name, [str(c) for c in choices], n=n, cutoff=cutoff)
    return f" Did you mean: {', '.join(close)}?" if close else ""
