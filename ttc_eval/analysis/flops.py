"""FLOPs accounting (Snell et al. section 7; Kaplan et al. 2020): inference costs about
2 x N FLOPs per token read or generated, pretraining about 6 x N per token, where N is the
non-embedding parameter count."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from ttc_eval.types import Cost

if TYPE_CHECKING:
    from ttc_eval.backends._base import Backend


def parameter_counts(module: Any) -> dict[str, int]:
    """Total and non-embedding parameters of a loaded torch model. Input embeddings are
    excluded, and so is the output projection unless it is tied to them (tied weights are
    counted once by ``parameters()``)."""
    total = sum(p.numel() for p in module.parameters())
    embedding = 0
    inp = module.get_input_embeddings() if hasattr(module, "get_input_embeddings") else None
    if inp is not None:
        embedding += inp.weight.numel()
    out = module.get_output_embeddings() if hasattr(module, "get_output_embeddings") else None
    if out is not None and inp is not None and out.weight is not inp.weight:
        embedding += out.weight.numel()
    return {"total": int(total), "non_embedding": int(total - embedding)}


def of_backend(backend: Backend) -> dict[str, int] | None:
    """Counts of a backend's model (``None`` where they cannot be known)."""
    return backend.parameter_counts()


def of_verifier(verifier: Any) -> dict[str, int] | None:
    """Counts of a PRM's own model (the ``verifier`` role), when it holds one in this process."""
    model = getattr(verifier, "model", None)
    return parameter_counts(model) if model is not None and hasattr(model, "parameters") else None


def inference_flops(non_embedding_params: int, tokens: float) -> float:
    """2 x N x tokens (forward pass)."""
    return 2.0 * non_embedding_params * tokens


def tokens_multiplier(m: float, r: float) -> float:
    """How many times the larger model's inference tokens a model M times smaller may spend
    for the same total FLOPs, at R = D_inference / D_pretrain.

    Large: X = 6 N M D_pre + 2 N M D_inf. Small: 6 N D_pre + 2 N D_inf K. Equal when
    K = M + 3 (M - 1) D_pre / D_inf = M + 3 (M - 1) / R."""
    if m <= 0 or r <= 0:
        raise ValueError("M and R must be positive")
    return m + 3 * (m - 1) / r


def flops_summary(costs: Sequence[Cost], params: Mapping[str, Any]) -> dict[str, Any]:
    """The run's tokens and FLOPs: the generating models together (prompts as sent plus
    generated tokens) and the verifier, as runs have always reported them, and per role from
    the measured tokens each role's model processed (FLOPs ``None`` where a count is
    unknown)."""
    total = Cost.total(costs)
    prompt = int(total.prompt_tokens)
    generated = int(total.generated_tokens)
    verifier_tokens = int(total.verifier_tokens)
    policy = (params.get("policy") or {}).get("non_embedding")
    verifier = (params.get("verifier") or params.get("judge") or {}).get("non_embedding")
    by_role = {}
    for role, tokens in sorted(total.role_tokens.items()):
        n = (params.get(role) or {}).get("non_embedding")
        by_role[role] = {
            "tokens": tokens,
            "flops": inference_flops(n, tokens) if n is not None else None,
        }
    return {
        "formula": "2 x non-embedding parameters x tokens (prompt + generated; verifier: read)",
        "params": dict(params),
        "policy_prompt_tokens": prompt,
        "policy_generated_tokens": generated,
        "verifier_tokens": verifier_tokens,
        "policy_flops": inference_flops(policy, prompt + generated) if policy else None,
        "verifier_flops": inference_flops(verifier, verifier_tokens)
        if verifier is not None
        else None,
        "by_role": by_role,
    }


def from_config(path: str) -> dict[str, int] | None:
    """Counts of a model from its config alone (built on the meta device: no weights, no
    memory), for engines that keep the weights out of this process (vllm)."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    auto_cfg: Any = AutoConfig
    auto_model: Any = AutoModelForCausalLM
    try:
        cfg = auto_cfg.from_pretrained(path)
        with torch.device("meta"):
            model = auto_model.from_config(cfg)
    except (OSError, ValueError):
        return None
    return parameter_counts(model)
