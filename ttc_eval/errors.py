"""Error types. Every error a user can cause says what is wrong and how to fix it."""

from __future__ import annotations


class TTCError(Exception):
    """Base class for errors ttc-eval reports to the user without a traceback."""

    exit_code = 1


class UsageError(TTCError):
    """Bad command-line input, unknown names, bad config values (exit code 2)."""

    exit_code = 2


class DataError(TTCError):
    """A task spec or data file is malformed or cannot be loaded (exit code 2)."""

    exit_code = 2
