"""ttc-eval: an evaluation harness for test-time compute scaling of language models.

Importing the package is light (no torch, no vllm): backends and verifiers import their heavy
dependencies when they are built.
"""

from __future__ import annotations

__version__ = "0.1.0"

from ttc_eval.analysis.bins import quantile_bins
from ttc_eval.analysis.flops import tokens_multiplier
from ttc_eval.analysis.optimal import compute_optimal
from ttc_eval.config import RunConfig, StrategySpec
from ttc_eval.errors import DataError, TTCError, UsageError
from ttc_eval.registry import (
    BACKENDS,
    EXPANSIONS,
    GRADERS,
    LOADERS,
    PROMPTS,
    STRATEGIES,
    VERIFIERS,
    Registry,
    backend,
    expansion,
    grader,
    loader,
    prompt,
    strategy,
    verifier,
)
from ttc_eval.runner import RunOutcome, RunView, build_results, load_run, run
from ttc_eval.types import (
    Candidate,
    Completion,
    Problem,
    Request,
    SamplingParams,
    Selection,
    Trace,
)

__all__ = [
    "BACKENDS",
    "EXPANSIONS",
    "GRADERS",
    "LOADERS",
    "PROMPTS",
    "STRATEGIES",
    "VERIFIERS",
    "Candidate",
    "Completion",
    "DataError",
    "Problem",
    "Registry",
    "Request",
    "RunConfig",
    "RunOutcome",
    "RunView",
    "SamplingParams",
    "Selection",
    "StrategySpec",
    "TTCError",
    "Trace",
    "UsageError",
    "__version__",
    "backend",
    "build_results",
    "compute_optimal",
    "expansion",
    "grader",
    "load_run",
    "loader",
    "prompt",
    "quantile_bins",
    "run",
    "strategy",
    "tokens_multiplier",
    "verifier",
]
