"""``python -m ttc_eval`` is the ``ttc-eval`` command."""

from ttc_eval.cli import console

console()
