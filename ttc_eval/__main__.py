"""``python -m ttc_eval`` is the ``ttc-eval`` command."""

import sys

from ttc_eval.cli import main

sys.exit(main())
