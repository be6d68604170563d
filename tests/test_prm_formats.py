"""PRM adapters on tiny randomly initialized models of the real architectures (no download):
one score per step, read at the right token; batched (padded) scores equal one-by-one."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from ttc_eval.registry import VERIFIERS  # noqa: E402
from ttc_eval.types import Problem  # noqa: E402
from ttc_eval.verifiers._base import Solution, aggregate  # noqa: E402

CHATML = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
LLAMA3 = (
    "{{ bos_token }}{% for m in messages %}<|start_header_id|>{{ m['role'] }}<|end_header_id|>"
    "\n\n{{ m['content'] }}<|eot_id|>{% endfor %}"
    "{% if add_generation_prompt %}<|start_header_id|>assistant<|end_header_id|>\n\n{% endif %}"
)
SPECIALS = {
    "math-shepherd": ["ки"],
    "qwen-prm": ["<extra_0>", "<|im_start|>", "<|im_end|>"],
    "rlhflow": ["<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"],
    "skywork": [],
}
CORPUS = [
    "What is 3 + 4? We add the numbers. 3 + 4 = 7. So the answer is 7.",
    "Compute 12 - 5 step by step: first 12 - 5 = 7, then check: 7 + 5 = 12.",
    "The final answer is \\boxed{7}. Is the step correct? Yes. No. + -",
    "user assistant system Please reason step by step, and put your final answer within",
]


def _tokenizer(folder: Path, family: str) -> Any:
    from tokenizers import ByteLevelBPETokenizer
    from transformers import PreTrainedTokenizerFast

    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator(
        CORPUS * 5,
        vocab_size=420,
        min_frequency=1,
        special_tokens=["<s>", "</s>", "<pad>", *SPECIALS[family]],
    )
    tok = PreTrainedTokenizerFast(
        tokenizer_object=bpe._tokenizer,
        bos_token="<s>",
        eos_token="</s>",
        pad_token="<pad>",
        additional_special_tokens=SPECIALS[family],
    )
    tok.chat_template = {"qwen-prm": CHATML, "rlhflow": LLAMA3}.get(family)
    tok.save_pretrained(folder)
    return tok


def _tiny(folder: Path, family: str, hidden: int = 32, heads: int = 4) -> None:
    """A random model of the family's real architecture (vLLM's CPU attention needs a head
    size such as 64: ``hidden=128, heads=2``)."""
    from safetensors.torch import save_file
    from transformers import (
        LlamaConfig,
        LlamaForCausalLM,
        MistralConfig,
        MistralForCausalLM,
        Qwen2Config,
        Qwen2ForTokenClassification,
        Qwen2Model,
    )

    tok = _tokenizer(folder, family)
    torch.manual_seed(0)
    common = dict(
        vocab_size=len(tok),
        hidden_size=hidden,
        intermediate_size=2 * hidden,
        num_hidden_layers=2,
        num_attention_heads=heads,
        num_key_value_heads=heads // 2,
        max_position_embeddings=512,
        pad_token_id=tok.pad_token_id,
    )
    if family == "math-shepherd":
        model: Any = MistralForCausalLM(MistralConfig(**common))
    elif family == "qwen-prm":
        model = Qwen2ForTokenClassification(Qwen2Config(num_labels=2, **common))
    elif family == "rlhflow":
        model = LlamaForCausalLM(LlamaConfig(**common))
    else:
        model = Qwen2Model(Qwen2Config(**common))
        head = torch.nn.Linear(hidden, 1)
        save_file(
            {
                "v_head.summary.weight": head.weight.detach().contiguous(),
                "v_head.summary.bias": head.bias.detach().contiguous(),
            },
            str(folder / "value_head.safetensors"),
        )
    model.save_pretrained(folder)


@pytest.fixture(scope="module", params=["math-shepherd", "qwen-prm", "rlhflow", "skywork"])
def prm(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Any:
    folder = tmp_path_factory.mktemp(request.param)
    _tiny(folder, request.param)
    return VERIFIERS.get(request.param)(model=str(folder), batch_size=8)


PROBLEM = Problem("p", "What is 3 + 4?", "7")


def sol(*steps: str) -> Solution:
    text = "\n\n".join(steps)
    return Solution(steps=steps, step_ends=tuple(range(len(steps))), text=text)


def test_one_score_per_step_in_unit_interval(prm: Any) -> None:
    scores = prm.score(
        PROBLEM, [sol("We add the numbers."), sol("3 + 4 = 7.", "Check: 7.", "So 7.")]
    )
    assert [len(s) for s in scores] == [1, 3]
    assert all(0.0 <= x <= 1.0 for s in scores for x in s)
    assert prm.tokens_read > 0


def test_batched_with_padding_equals_one_by_one(prm: Any) -> None:
    sols = [
        sol("3 + 4 = 7."),
        sol("We add the numbers.", "3 + 4 = 7.", "So the answer is 7."),
        sol("first 12 - 5 = 7", "then check"),
    ]
    batched = prm.score(PROBLEM, sols)
    single = [prm.score(PROBLEM, [s])[0] for s in sols]
    for a, b in zip(batched, single, strict=True):
        assert a == pytest.approx(b, abs=1e-5)


def test_scores_are_read_at_each_step_end(prm: Any) -> None:
    # A step's score sees that step and the ones before it, never the ones after (causal
    # model, read at the step's own tag): change step 3 and only score 3 moves; change step 2
    # and score 1 stays.
    base = prm.score(PROBLEM, [sol("We add the numbers.", "3 + 4 = 7.", "So the answer is 7.")])[0]
    last = prm.score(
        PROBLEM, [sol("We add the numbers.", "3 + 4 = 7.", "Is the step correct? No")]
    )[0]
    mid = prm.score(
        PROBLEM, [sol("We add the numbers.", "12 - 5 = 7, then", "So the answer is 7.")]
    )[0]
    assert last[:2] == pytest.approx(base[:2], abs=1e-6) and abs(last[2] - base[2]) > 1e-6
    assert mid[0] == pytest.approx(base[0], abs=1e-6) and abs(mid[1] - base[1]) > 1e-6


def test_math_shepherd_reads_plus_minus_at_the_tag(tmp_path: Path) -> None:
    _tiny(tmp_path, "math-shepherd")
    prm = VERIFIERS.get("math-shepherd")(model=str(tmp_path))
    tok = prm.tokenizer
    text = "What is 3 + 4? We add. ки\n3 + 4 = 7. ки\n"
    ids = tok(text, return_tensors="pt")["input_ids"]
    tag = tok.convert_tokens_to_ids("ки")
    plus, minus = (
        tok.encode("+ -", add_special_tokens=False)[0],
        tok.encode("+ -", add_special_tokens=False)[-1],
    )
    with torch.inference_mode():
        logits = prm.model(ids).logits[0]
    where = (ids[0] == tag).nonzero().flatten()
    expected = torch.softmax(logits[where][:, [plus, minus]], dim=-1)[:, 0].tolist()
    assert prm.score(PROBLEM, [sol("We add.", "3 + 4 = 7.")])[0] == pytest.approx(
        expected, abs=1e-6
    )


def test_qwen_prm_reads_class_one_at_extra_0(tmp_path: Path) -> None:
    _tiny(tmp_path, "qwen-prm")
    prm = VERIFIERS.get("qwen-prm")(model=str(tmp_path))
    tok = prm.tokenizer
    msgs = [
        {
            "role": "system",
            "content": "Please reason step by step, and put your final answer within \\boxed{}.",
        },
        {"role": "user", "content": PROBLEM.question},
        {"role": "assistant", "content": "We add.<extra_0>3 + 4 = 7.<extra_0>"},
    ]
    ids = tok(
        tok.apply_chat_template(msgs, tokenize=False), return_tensors="pt", add_special_tokens=False
    )["input_ids"]
    with torch.inference_mode():
        logits = prm.model(ids).logits[0]
    where = (ids[0] == tok.convert_tokens_to_ids("<extra_0>")).nonzero().flatten()
    expected = torch.softmax(logits[where], dim=-1)[:, 1].tolist()
    assert prm.score(PROBLEM, [sol("We add.", "3 + 4 = 7.")])[0] == pytest.approx(
        expected, abs=1e-6
    )


def test_aggregation_of_prm_scores(prm: Any) -> None:
    s = prm.score(PROBLEM, [sol("We add the numbers.", "3 + 4 = 7.")])[0]
    assert aggregate(s, "last") == s[-1] and aggregate(s, "min") == min(s)
    assert aggregate(s, "prod") == pytest.approx(s[0] * s[1])


def test_skywork_reads_the_value_head_at_each_step_token(tmp_path: Path) -> None:
    _tiny(tmp_path, "skywork")
    prm = VERIFIERS.get("skywork")(model=str(tmp_path))
    tok = prm.tokenizer
    ids = tok.encode("<s>" + PROBLEM.question + "\n", add_special_tokens=False)
    ends = []
    for step in ("We add.", "3 + 4 = 7."):
        ids += tok.encode(step, add_special_tokens=False) + tok.encode(
            "\n", add_special_tokens=False
        )
        ends.append(len(ids) - 1)
    with torch.inference_mode():
        hidden = prm.model(torch.tensor([ids])).last_hidden_state[0]
        expected = torch.sigmoid(prm.v_head(hidden[ends]).squeeze(-1)).tolist()
    assert prm.score(PROBLEM, [sol("We add.", "3 + 4 = 7.")])[0] == pytest.approx(
        expected, abs=1e-6
    )


def test_rlhflow_reads_where_each_plus_is_predicted(tmp_path: Path) -> None:
    _tiny(tmp_path, "rlhflow")
    prm = VERIFIERS.get("rlhflow")(model=str(tmp_path))
    tok = prm.tokenizer
    conv = [
        {"role": "user", "content": f"{PROBLEM.question} We add."},
        {"role": "assistant", "content": "+"},
        {"role": "user", "content": "3 + 4 = 7."},
        {"role": "assistant", "content": "+"},
    ]
    ids = tok.encode(tok.apply_chat_template(conv, tokenize=False), add_special_tokens=False)
    header = tok.encode("assistant<|end_header_id|>\n\n", add_special_tokens=False)
    plus, minus = (
        tok.encode("+", add_special_tokens=False)[-1],
        tok.encode("-", add_special_tokens=False)[-1],
    )
    # The "+" answers are the tokens right after each assistant header.
    where = [i + len(header) - 1 for i in range(len(ids)) if ids[i : i + len(header)] == header]
    assert all(ids[w + 1] == plus for w in where) and len(where) == 2
    with torch.inference_mode():
        logits = prm.model(torch.tensor([ids])).logits[0]
    expected = torch.softmax(logits[where][:, [plus, minus]], dim=-1)[:, 0].tolist()
    assert prm.score(PROBLEM, [sol("We add.", "3 + 4 = 7.")])[0] == pytest.approx(
        expected, abs=1e-6
    )
