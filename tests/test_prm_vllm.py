"""Generative PRMs scored through a real vLLM engine (``engine=vllm``) read the same P(+)
as the transformers path, on tiny random models of the real architectures (no download)."""

from __future__ import annotations

import gc
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("vllm")
torch = pytest.importorskip("torch")

from test_prm_formats import PROBLEM, _tokenizer, sol  # noqa: E402

from ttc_eval.errors import UsageError  # noqa: E402
from ttc_eval.registry import VERIFIERS  # noqa: E402

pytestmark = pytest.mark.slow

SOLUTIONS = [
    sol("We add.", "3 + 4 = 7."),
    sol("3 + 4 = 7.", "So the answer is 7.", "Check: 7 - 4 = 3."),
    sol("The answer is \\boxed{7}."),
]


def _tiny_for_vllm(folder: Path, family: str) -> None:
    """vLLM's CPU attention needs a head size such as 64 (the format tests use 8)."""
    from transformers import LlamaConfig, LlamaForCausalLM, MistralConfig, MistralForCausalLM

    tok = _tokenizer(folder, family)
    torch.manual_seed(0)
    common: dict[str, Any] = dict(
        vocab_size=len(tok),
        hidden_size=128,
        intermediate_size=256,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=1,
        max_position_embeddings=512,
        pad_token_id=tok.pad_token_id,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
    )
    model: Any = (
        MistralForCausalLM(MistralConfig(**common))
        if family == "math-shepherd"
        else LlamaForCausalLM(LlamaConfig(**common))
    )
    model.save_pretrained(folder)


@pytest.mark.parametrize("family", ["math-shepherd", "rlhflow"])
def test_vllm_engine_reads_the_same_scores_as_transformers(
    family: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("VLLM_CPU_KVCACHE_SPACE", "1")
    _tiny_for_vllm(tmp_path, family)
    reference = VERIFIERS.get(family)(model=str(tmp_path)).score(PROBLEM, SOLUTIONS)
    prm = VERIFIERS.get(family)(model=str(tmp_path), engine="vllm", max_model_len=512)
    try:
        scores = prm.score(PROBLEM, SOLUTIONS)
        assert prm.model is None and prm.tokens_read > 0
    finally:
        del prm
        gc.collect()
    assert [len(s) for s in scores] == [2, 3, 1]
    for got, want in zip(scores, reference, strict=True):
        assert got == pytest.approx(want, abs=1e-4)
    # A random model's P(+) varies from step to step: equal scores would be no evidence.
    assert len({round(x, 4) for s in reference for x in s}) > 3


def test_vllm_engine_is_refused_for_non_generative_prms(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="generative PRMs"):
        VERIFIERS.get("qwen-prm")(model=str(tmp_path), engine="vllm")
