"""ttc-eval: an evaluation harness for test-time compute scaling of language models.

Importing the package is light (no torch, no vllm, no scipy): the public names below are
loaded when first used, and backends and verifiers import their heavy dependencies when
they are built.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# Public name -> the module that defines it (loaded on first use).
_EXPORTS = {
    "quantile_bins": "ttc_eval.analysis.bins",
    "tokens_multiplier": "ttc_eval.analysis.flops",
    "compute_optimal": "ttc_eval.analysis.optimal",
    "RoleSpec": "ttc_eval.config",
    "RunConfig": "ttc_eval.config",
    "StrategySpec": "ttc_eval.config",
    "DataError": "ttc_eval.errors",
    "TTCError": "ttc_eval.errors",
    "UsageError": "ttc_eval.errors",
    "RunPlan": "ttc_eval.pipeline",
    "evaluate": "ttc_eval.pipeline",
    "plan_run": "ttc_eval.pipeline",
    "BACKENDS": "ttc_eval.registry",
    "COMMANDS": "ttc_eval.registry",
    "EXPANSIONS": "ttc_eval.registry",
    "GRADERS": "ttc_eval.registry",
    "LOADERS": "ttc_eval.registry",
    "PROMPTS": "ttc_eval.registry",
    "STRATEGIES": "ttc_eval.registry",
    "VERIFIERS": "ttc_eval.registry",
    "Registry": "ttc_eval.registry",
    "backend": "ttc_eval.registry",
    "expansion": "ttc_eval.registry",
    "grader": "ttc_eval.registry",
    "loader": "ttc_eval.registry",
    "prompt": "ttc_eval.registry",
    "strategy": "ttc_eval.registry",
    "verifier": "ttc_eval.registry",
    "RunView": "ttc_eval.results",
    "build_results": "ttc_eval.results",
    "load_run": "ttc_eval.results",
    "RunOutcome": "ttc_eval.runner",
    "merge_runs": "ttc_eval.runner",
    "run": "ttc_eval.runner",
    "ExpansionContext": "ttc_eval.strategies._base",
    "PoolStrategy": "ttc_eval.strategies._base",
    "StrategyBase": "ttc_eval.strategies._base",
    "Candidate": "ttc_eval.types",
    "Completion": "ttc_eval.types",
    "Cost": "ttc_eval.types",
    "Problem": "ttc_eval.types",
    "QuestionResult": "ttc_eval.types",
    "Request": "ttc_eval.types",
    "SamplingParams": "ttc_eval.types",
    "Selection": "ttc_eval.types",
    "Trace": "ttc_eval.types",
    "Thinking": "ttc_eval.thinking",
    "parse_thinking": "ttc_eval.thinking",
}

__all__ = [
    "BACKENDS",
    "COMMANDS",
    "EXPANSIONS",
    "GRADERS",
    "LOADERS",
    "PROMPTS",
    "STRATEGIES",
    "VERIFIERS",
    "Candidate",
    "Completion",
    "Cost",
    "DataError",
    "ExpansionContext",
    "PoolStrategy",
    "Problem",
    "QuestionResult",
    "Registry",
    "Request",
    "RoleSpec",
    "RunConfig",
    "RunOutcome",
    "RunPlan",
    "RunView",
    "SamplingParams",
    "Selection",
    "StrategyBase",
    "StrategySpec",
    "TTCError",
    "Thinking",
    "Trace",
    "UsageError",
    "__version__",
    "backend",
    "build_results",
    "compute_optimal",
    "evaluate",
    "expansion",
    "grader",
    "load_run",
    "loader",
    "merge_runs",
    "parse_thinking",
    "plan_run",
    "prompt",
    "quantile_bins",
    "run",
    "strategy",
    "tokens_multiplier",
    "verifier",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'ttc_eval' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


if TYPE_CHECKING:
    from ttc_eval.analysis.bins import quantile_bins
    from ttc_eval.analysis.flops import tokens_multiplier
    from ttc_eval.analysis.optimal import compute_optimal
    from ttc_eval.config import RoleSpec, RunConfig, StrategySpec
    from ttc_eval.errors import DataError, TTCError, UsageError
    from ttc_eval.pipeline import RunPlan, evaluate, plan_run
    from ttc_eval.registry import (
        BACKENDS,
        COMMANDS,
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
    from ttc_eval.results import RunView, build_results, load_run
    from ttc_eval.runner import RunOutcome, merge_runs, run
    from ttc_eval.strategies._base import ExpansionContext, PoolStrategy, StrategyBase
    from ttc_eval.thinking import Thinking, parse_thinking
    from ttc_eval.types import (
        Candidate,
        Completion,
        Cost,
        Problem,
        QuestionResult,
        Request,
        SamplingParams,
        Selection,
        Trace,
    )
