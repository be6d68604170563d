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
        plain = start_decoder(model, ids, mask, prompts, share_prefill=True, shared_attention=False)
        shared = start_decoder(model, ids, mask, prompts, share_prefill=True, shared_attention=True)
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


def test_rows_of_one_prompt_get_distinct_slots() -> None:
    owner = torch.tensor([2, 0, 2, 1, 0, 2])
    prefix = shared_prefix.Prefix(keys=[], values=[], mask=None, owner=owner, slot=owner, width=0)
    prefix.place(owner)
    assert prefix.slot.tolist() == [0, 0, 1, 0, 1, 2]
    assert prefix.width == 3


def test_only_plain_attention_models_share_their_prefix() -> None:
    assert shared_prefix.supports(transformers.LlamaConfig())
    assert shared_prefix.supports(transformers.Qwen2Config())  # its window is off by default
    assert not shared_prefix.supports(transformers.Qwen2Config(use_sliding_window=True))
    assert not shared_prefix.supports(transformers.MistralConfig(sliding_window=4096))
    assert shared_prefix.supports(transformers.MistralConfig(sliding_window=None))
    assert not shared_prefix.supports(transformers.Gemma2Config())
