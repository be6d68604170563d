"""Shared-prefix decoding (``ttc_eval/backends/_shared_prefix.py``) against transformers' own
cache, on a small randomly initialised Llama: the same logits at every step, while rows end at
different steps, prompts stop being read, and rows of one prompt are not adjacent."""

from __future__ import annotations

from typing import Any

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from ttc_eval.backends import _shared_prefix as shared_prefix  # noqa: E402
from ttc_eval.backends.hf import start_decoder  # noqa: E402


def _model(kv_heads: int = 2) -> Any:
    """A random Llama whose attention is peaked (queries and keys scaled up): at the default
    initialisation every softmax is nearly uniform, and a row reading another row's query or
    a wrong merge weight would hardly move the logits."""
    torch.manual_seed(0)
    config = transformers.LlamaConfig(
        vocab_size=61,
        hidden_size=48,
        intermediate_size=64,
        num_hidden_layers=3,
        num_attention_heads=6,
        num_key_value_heads=kv_heads,
        max_position_embeddings=256,
    )
    model = transformers.LlamaForCausalLM(config).eval()
    with torch.no_grad():
        for layer in model.model.layers:
            layer.self_attn.q_proj.weight.mul_(8)
            layer.self_attn.k_proj.weight.mul_(8)
    shared_prefix.register()
    model.set_attn_implementation(shared_prefix.ATTENTION)
    return model


def _batch(lengths: list[int], rows: list[int]) -> tuple[Any, Any, list[str]]:
    """Left-padded rows; row i holds prompt ``rows[i]``, of ``lengths[rows[i]]`` tokens."""
    g = torch.Generator().manual_seed(1)
    prompts = [torch.randint(3, 61, (n,), generator=g) for n in lengths]
    width = max(lengths)
    ids = torch.zeros(len(rows), width, dtype=torch.long)
    mask = torch.zeros(len(rows), width, dtype=torch.long)
    for i, p in enumerate(rows):
        n = lengths[p]
        ids[i, width - n :] = prompts[p]
        mask[i, width - n :] = 1
    return ids, mask, [f"prompt {p}" for p in rows]


@pytest.mark.parametrize("kv_heads", [2, 6])
def test_shared_prefix_decoding_gives_the_plain_caches_logits(kv_heads: int) -> None:
    model = _model(kv_heads)
    # Prompt 0's rows are not adjacent; prompt 2 has one row, which ends early, so its
    # prompt is dropped; rows end at several steps; 40 steps grow the suffix buffers twice.
    rows = [0, 1, 0, 2, 1, 0, 1]
    ids, mask, prompts = _batch([9, 5, 13], rows)
    ends = {4: [3], 9: [0, 6], 21: [1]}
    with torch.inference_mode():
        plain = start_decoder(model, ids, mask, prompts, share_prefill=False)
        shared = start_decoder(model, ids, mask, prompts, share_prefill=True)
        assert type(plain).__name__ == "_PlainDecoder"
        assert type(shared).__name__ == "_SharedPrefixDecoder"
        live = list(range(len(rows)))
        a, b = plain.logits, shared.logits
        for step in range(40):
            torch.testing.assert_close(b, a, rtol=1e-4, atol=1e-5)
            tok = a.argmax(dim=-1)
            if step in ends:
                keep = [j for j, r in enumerate(live) if r not in ends[step]]
                index = torch.tensor(keep)
                plain.keep(index)
                shared.keep(index)
                tok = tok[index]
                live = [live[j] for j in keep]
            a, b = plain.step(tok), shared.step(tok)
        torch.testing.assert_close(b, a, rtol=1e-4, atol=1e-5)
    assert len(live) == 3
    # Prompt 2 lost its only row at step 4: its keys are no longer read.
    prefix = shared.prefix  # type: ignore[union-attr]
    assert prefix.keys[0].shape[0] == 2 and prefix.width == 2
    suffix = shared.suffix  # type: ignore[union-attr]
    assert suffix.length == 40 and suffix.keys[0].shape[:3] == (3, kv_heads, 64)


def test_shared_prefix_decoding_in_bfloat16_stays_near_the_plain_path() -> None:
    """In bfloat16 the scores are rounded to the model's dtype before the softmax (as eager
    attention rounds them; sdpa keeps them in float32), so the two paths agree within
    bfloat16 rounding, not to float32's precision."""
    model = _model().to(torch.bfloat16)
    rows = [0, 0, 1, 1, 0]
    ids, mask, prompts = _batch([7, 11], rows)
    with torch.inference_mode():
        plain = start_decoder(model, ids, mask, prompts, share_prefill=False)
        shared = start_decoder(model, ids, mask, prompts, share_prefill=True)
        a, b = plain.logits, shared.logits
        for _ in range(12):
            assert b.dtype == torch.bfloat16
            torch.testing.assert_close(b.float(), a.float(), rtol=0.02, atol=0.03)
            tok = a.argmax(dim=-1)
            a, b = plain.step(tok), shared.step(tok)


def test_attention_equals_eager_attention_over_the_prompt_then_the_rows_tokens() -> None:
    """``_attention`` against transformers' eager attention over each row's prompt (padding
    removed) followed by its own tokens: unit-variance queries and keys, a scaling that is not
    the default, rows of one prompt not adjacent and uneven in number, and a prompt of no
    tokens at all (its rows attend to their own tokens only)."""
    from types import SimpleNamespace

    from transformers.models.llama.modeling_llama import eager_attention_forward

    torch.manual_seed(3)
    kv, group, dim, own = 2, 3, 8, 4
    lengths = [5, 9, 0]
    width = max(lengths)
    owner = torch.tensor([1, 0, 1, 2, 1, 0])
    keys, values = torch.randn(2, 3, kv, width, dim).unbind(0)
    present = torch.zeros(3, width, dtype=torch.bool)
    for p, n in enumerate(lengths):
        present[p, width - n :] = True
    prefix = shared_prefix.Prefix(
        keys=[keys], values=[values], mask=present[:, None, None, :], owner=owner
    )
    rows = len(owner)
    query = torch.randn(rows, kv * group, 1, dim)
    own_keys, own_values = torch.randn(2, rows, kv, own, dim).unbind(0)
    module = SimpleNamespace(layer_idx=0, num_key_value_groups=group, training=False)
    out, _ = shared_prefix._attention(
        module, query, own_keys, own_values, None, scaling=0.7, ttc_prefix=prefix
    )
    assert out.shape == (rows, 1, kv * group, dim) and torch.isfinite(out).all()
    for r in range(rows):
        p = int(owner[r])
        k = torch.cat([keys[p][:, present[p]], own_keys[r]], dim=1)[None]
        v = torch.cat([values[p][:, present[p]], own_values[r]], dim=1)[None]
        want, _ = eager_attention_forward(module, query[r : r + 1], k, v, None, scaling=0.7)
        torch.testing.assert_close(out[r], want[0], rtol=1e-5, atol=1e-6)


def test_rows_of_one_prompt_get_distinct_slots() -> None:
    owner = torch.tensor([2, 0, 2, 1, 0, 2])
    prefix = shared_prefix.Prefix(keys=[], values=[], mask=None, owner=owner)
    assert prefix.slot.tolist() == [0, 0, 1, 0, 1, 2]
    assert prefix.width == 3


def test_only_plain_attention_models_share_their_prefix() -> None:
    assert shared_prefix.supports(transformers.LlamaConfig())
    assert shared_prefix.supports(transformers.Qwen2Config())  # its window is off by default
    assert not shared_prefix.supports(transformers.Qwen2Config(use_sliding_window=True))
    assert not shared_prefix.supports(transformers.MistralConfig(sliding_window=4096))
    assert shared_prefix.supports(transformers.MistralConfig(sliding_window=None))
    assert not shared_prefix.supports(transformers.Gemma2Config())
