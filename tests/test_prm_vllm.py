"""Generative PRMs scored through a real vLLM engine (``engine=vllm``) read the same P(+)
as the transformers path, on tiny random models of the real architectures (no download)."""

from __future__ import annotations

import gc
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("vllm")
torch = pytest.importorskip("torch")

from test_prm_formats import PROBLEM, _tiny, _tokenizer, sol  # noqa: E402

from ttc_eval.errors import UsageError  # noqa: E402
from ttc_eval.registry import VERIFIERS  # noqa: E402

pytestmark = pytest.mark.slow

SOLUTIONS = [
    sol("We add.", "3 + 4 = 7."),
    sol("3 + 4 = 7.", "So the answer is 7.", "Check: 7 - 4 = 3."),
    sol("The answer is \\boxed{7}."),
]


def _assert_same_scores(got: list[tuple[float, ...]], want: list[Any]) -> None:
    assert [len(x) for x in got] == [2, 3, 1]
    for g, w in zip(got, want, strict=True):
        assert g == pytest.approx(w, abs=1e-4)
    # A random model's scores vary from step to step: equal scores would be no evidence.
    assert len({round(x, 4) for w in want for x in w}) > 3


@pytest.mark.parametrize("family", ["math-shepherd", "rlhflow"])
def test_vllm_engine_reads_the_same_scores_as_transformers(
    family: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("VLLM_CPU_KVCACHE_SPACE", "1")
    _tiny(tmp_path, family, hidden=128, heads=2)
    reference = VERIFIERS.get(family)(model=str(tmp_path)).score(PROBLEM, SOLUTIONS)
    prm = VERIFIERS.get(family)(model=str(tmp_path), engine="vllm", max_model_len=512)
    try:
        scores = prm.score(PROBLEM, SOLUTIONS)
        assert prm.model is None and prm.tokens_read > 0
    finally:
        del prm
        gc.collect()
    _assert_same_scores(scores, reference)


def _tiny_qwen_prm(folder: Path) -> Any:
    """A tiny Qwen2ForProcessRewardModel as the released checkpoint lays it out: Qwen2Model
    weights under ``model.``, then ``score`` = Linear(h, h), ReLU, Linear(h, 2)."""
    from safetensors.torch import save_file
    from transformers import Qwen2Config, Qwen2Model

    tok = _tokenizer(folder, "qwen-prm")
    torch.manual_seed(0)
    config = Qwen2Config(
        vocab_size=len(tok), hidden_size=128, intermediate_size=256, num_hidden_layers=2,
        num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=512,
        pad_token_id=tok.pad_token_id, num_labels=2,
        architectures=["Qwen2ForProcessRewardModel"],
    )  # fmt: skip
    body = Qwen2Model(config).eval()
    score = torch.nn.Sequential(
        torch.nn.Linear(128, 128), torch.nn.ReLU(), torch.nn.Linear(128, 2)
    ).eval()
    weights = {f"model.{k}": v.contiguous() for k, v in body.state_dict().items()}
    weights |= {f"score.{k}": v.contiguous() for k, v in score.state_dict().items()}
    save_file(weights, str(folder / "model.safetensors"))
    config.save_pretrained(folder)
    return tok, body, score


def test_qwen_prm_through_vllm_pooling_reads_softmax_at_each_extra_0(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("VLLM_CPU_KVCACHE_SPACE", "1")
    _, body, score = _tiny_qwen_prm(tmp_path)
    prm = VERIFIERS.get("qwen-prm")(model=str(tmp_path), engine="vllm", max_model_len=512)
    try:
        got = prm.score(PROBLEM, SOLUTIONS)
        # The reference: the same ids through the architecture by hand, read at <extra_0>.
        want = []
        for s in SOLUTIONS:
            ids, pos = prm.encode(PROBLEM.question, [x.strip() for x in s.steps])
            with torch.inference_mode():
                hidden = body(torch.tensor([ids])).last_hidden_state[0]
                probs = torch.softmax(score(hidden), dim=-1)[:, 1]
            want.append([float(probs[p]) for p in pos])
    finally:
        del prm
        gc.collect()
    _assert_same_scores(got, want)


def test_vllm_engine_is_refused_where_vllm_cannot_serve(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="engine=vllm serves"):
        VERIFIERS.get("skywork")(model=str(tmp_path), engine="vllm")
