"""Decoding with one copy of each shared prompt: the ``hf`` backend's shared-prefix attention.

The samples of one question (and the children of one beam) share their prompt. With
transformers' ``DynamicCache`` every row holds its own copy of the prompt's keys and values,
and every decoding step appends to each row by concatenation, which copies the whole cache.
With an 8-shot chain-of-thought prompt of 1.6k tokens and 64 rows, that is about 4.7 GB of
keys and values (SmolLM2-135M, float32) copied and read at every generated token, which
dominates the step on a CPU.

Here each distinct prompt's keys and values are kept once (``Prefix``) and each row keeps only
the tokens it generated (``SuffixCache``, preallocated, written in place). Attention is
computed in two parts, over the shared prompt and over the row's own tokens, and merged with
their log-sum-exp ("cascade" or "bifurcated" attention): the prompt part reads each prompt
once for all the rows that share it, as one matrix product over those rows' queries. In
float32 the result is the same attention up to float rounding (tests hold it equal to eager
attention, and the sampled text equal to the plain path's); in bfloat16 or float16 the scores
are rounded to the model's dtype before the softmax, as eager attention rounds them.

Only for models whose attention is plain causal softmax attention with rotary or no position
encoding applied before the cache (``supports``): no sliding window, no logit soft-capping, no
attention sinks. Other models decode on the plain path.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

ATTENTION = "ttc_shared_prefix"
"""The name under which the attention function is registered with transformers."""

PLAIN_ATTENTION_MODELS = frozenset({"llama", "mistral", "qwen2", "qwen3", "granite", "olmo2"})
"""Model types whose attention layers compute softmax(QK^T * scaling) V over the cache after
applying their positions, with no other term: the only ones decoded with a shared prefix."""


def supports(config: Any) -> bool:
    """Whether a model (its transformers config) can decode with a shared prefix."""
    if getattr(config, "model_type", None) not in PLAIN_ATTENTION_MODELS:
        return False
    layer_types = getattr(config, "layer_types", None)
    if layer_types is not None and any(t != "full_attention" for t in layer_types):
        return False
    # Mistral's sliding window is a config value, not a layer type.
    return getattr(config, "sliding_window", None) is None or (
        getattr(config, "use_sliding_window", True) is False
    )


def register() -> None:
    """Register the attention function, and sdpa's mask builder under the same name, so
    that a forward pass without a ``Prefix`` (the prompt's own forward pass) runs as sdpa."""
    from transformers import AttentionInterface
    from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS, AttentionMaskInterface

    AttentionInterface.register(ATTENTION, _attention)
    AttentionMaskInterface.register(ATTENTION, ALL_MASK_ATTENTION_FUNCTIONS["sdpa"])


@dataclass
class Prefix:
    """The shared prompts of a decoding batch, and which rows read which prompt."""

    keys: list[Any]
    """Per layer, the prompts' keys: (prompts, kv heads, prompt length, head dim), left-padded."""
    values: list[Any]
    """Per layer, the prompts' values, shaped as ``keys``."""
    mask: Any
    """(prompts, 1, 1, prompt length) bool: which positions hold a prompt token (not padding)."""
    owner: Any
    """(rows,) long: the prompt each live row reads."""
    slot: Any = field(init=False)
    """(rows,) long: the row's place among the live rows of its prompt (set by ``place``)."""
    width: int = field(init=False)
    """The most live rows any prompt has (set by ``place``)."""

    def __post_init__(self) -> None:
        self.place(self.owner)

    def place(self, owner: Any) -> None:
        """Set the live rows' prompts (``owner``, in any order) and number each row among the
        rows of its prompt (``slot``)."""
        import torch

        self.owner = owner
        order = torch.argsort(owner, stable=True)
        ranked = owner[order]
        at = torch.arange(len(owner), device=owner.device)
        starts = torch.ones_like(ranked, dtype=torch.bool)
        starts[1:] = ranked[1:] != ranked[:-1]
        first = torch.cummax(torch.where(starts, at, 0), dim=0).values
        self.slot = torch.empty_like(owner)
        self.slot[order] = at - first
        self.width = int(self.slot.max()) + 1 if len(owner) else 0

    def drop_unread(self) -> None:
        """Free the prompts no live row reads any more, so that later steps stop reading them."""
        import torch

        read = torch.unique(self.owner)
        if len(read) == len(self.keys[0]):
            return
        self.keys = [k[read] for k in self.keys]
        self.values = [v[read] for v in self.values]
        self.mask = self.mask[read]
        self.place(torch.searchsorted(read, self.owner))


class SuffixCache:
    """The generated tokens' keys and values, per row, in buffers that grow by doubling and
    are written in place (``DynamicCache`` concatenates, copying the cache at every step).
    Stands in for a transformers ``Cache`` in the model's forward pass: the attention layers
    call ``update`` and read what it returns."""

    def __init__(self, layers: int) -> None:
        self.keys: list[Any] = [None] * layers
        self.values: list[Any] = [None] * layers
        self.length = 0
        """Tokens held per row (all live rows started together, so they hold the same)."""

    def update(self, key: Any, value: Any, layer_idx: int, *args: Any, **kwargs: Any) -> Any:
        """Write one new token's keys and values (``key``: rows x kv heads x 1 x dim) for
        layer ``layer_idx``; returns that layer's keys and values of every token so far."""
        keys, values, t = self.keys[layer_idx], self.values[layer_idx], self.length
        if keys is None or t == keys.shape[2]:
            cap = max(16, 2 * t)
            rows, heads, _, dim = key.shape
            grown = [key.new_empty(rows, heads, cap, dim) for _ in range(2)]
            if keys is not None:
                grown[0][:, :, :t] = keys
                grown[1][:, :, :t] = values
            keys, values = grown
            self.keys[layer_idx], self.values[layer_idx] = keys, values
        keys[:, :, t : t + 1] = key
        values[:, :, t : t + 1] = value
        return keys[:, :, : t + 1], values[:, :, : t + 1]

    def advance(self) -> None:
        """One token was written for every row in every layer."""
        self.length += 1

    def select(self, index: Any) -> None:
        """Keep only rows ``index`` (rows that ended leave the batch)."""
        for i, (k, v) in enumerate(zip(self.keys, self.values, strict=True)):
            if k is not None:
                self.keys[i], self.values[i] = k[index], v[index]


def _attention(
    module: Any,
    query: Any,
    key: Any,
    value: Any,
    attention_mask: Any,
    scaling: float | None = None,
    dropout: float = 0.0,
    **kwargs: Any,
) -> tuple[Any, None]:
    """Attention of one new token per row over its shared prompt and its own tokens.

    ``query``: (rows, heads, 1, dim); ``key``/``value``: the rows' own tokens, (rows, kv heads,
    t, dim); the prompt part comes from ``kwargs["ttc_prefix"]``. Without it (the prompt's own
    forward pass) this is sdpa. Returns (rows, 1, heads, dim) as transformers' functions do.
    """
    import torch
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    prefix: Prefix | None = kwargs.pop("ttc_prefix", None)
    if prefix is None:
        return sdpa_attention_forward(  # type: ignore[no-any-return]
            module, query, key, value, attention_mask, dropout=dropout, scaling=scaling, **kwargs
        )
    if query.shape[2] != 1 or kwargs.get("sliding_window") is not None:
        raise ValueError("shared-prefix attention decodes one token per row, without a window")
    rows, heads, _, dim = query.shape
    kv_heads = key.shape[1]
    group = heads // kv_heads
    scale = dim**-0.5 if scaling is None else scaling
    layer = module.layer_idx
    q = query.reshape(rows, kv_heads, group, dim) * scale

    # The rows' own tokens: (rows, kv, group, t).
    own = torch.matmul(q, key.transpose(-1, -2)).float()
    own_max = own.amax(dim=-1, keepdim=True)
    own_exp = torch.exp(own - own_max)
    own_sum = own_exp.sum(dim=-1, keepdim=True)
    own_out = torch.matmul(own_exp.to(value.dtype), value).float()

    # The shared prompts: each prompt's rows' queries side by side, one product per prompt.
    prompts = prefix.keys[layer].shape[0]
    width = prefix.width
    qp = q.new_zeros(prompts, width, kv_heads, group, dim)
    qp[prefix.owner, prefix.slot] = q
    qp = qp.permute(0, 2, 1, 3, 4).reshape(prompts, kv_heads, width * group, dim)
    shared = torch.matmul(qp, prefix.keys[layer].transpose(-1, -2)).float()
    shared = shared.masked_fill(~prefix.mask, float("-inf"))
    # A prompt of no tokens (all padding) has no maximum: the finite floor makes its weight
    # exp(-inf - floor) = 0 in the merge, where -inf - -inf would be NaN.
    shared_max = shared.amax(dim=-1, keepdim=True).clamp(min=torch.finfo(torch.float32).min)
    shared_exp = torch.exp(shared - shared_max)
    shared_sum = shared_exp.sum(dim=-1, keepdim=True)
    shared_out = torch.matmul(shared_exp.to(value.dtype), prefix.values[layer]).float()

    def per_row(x: Any) -> Any:
        """(prompts, kv, width * group, n) back to (rows, kv, group, n)."""
        x = x.reshape(prompts, kv_heads, width, group, x.shape[-1]).permute(0, 2, 1, 3, 4)
        return x[prefix.owner, prefix.slot]

    shared_max, shared_sum, shared_out = (
        per_row(shared_max),
        per_row(shared_sum),
        per_row(shared_out),
    )
    top = torch.maximum(own_max, shared_max)
    a, b = torch.exp(own_max - top), torch.exp(shared_max - top)
    out = (own_out * a + shared_out * b) / (own_sum * a + shared_sum * b)
    return out.to(query.dtype).reshape(rows, 1, heads, dim), None
