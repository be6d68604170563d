"""Batch-invariant sampling in the hf backend: a sample is a function of (run seed, prompt,
sample id), whatever batch, chunk, shard or resumed run produced it.

The fast tests use the sampler alone and a tiny randomly initialized Llama (no download); the
slow ones run the embedded default model end to end at two batch sizes and as two shards.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from ttc_eval.backends.hf import (  # noqa: E402
    HFBackend,
    inverse_cdf_sample,
    sample_key,
    uniform,
)
from ttc_eval.cli import main  # noqa: E402
from ttc_eval.types import Request, SamplingParams  # noqa: E402

CORPUS = [
    "What is 3 + 4? We add the numbers. 3 + 4 = 7. So the answer is 7.",
    "Compute 12 - 5 step by step: first 12 - 5 = 7, then check: 7 + 5 = 12.",
    "The final answer is \\boxed{7}. Count from 1 to 20, separated by commas.",
]


def test_sample_keys_and_uniforms_are_deterministic_and_distinct() -> None:
    key = sample_key(0, "prompt", 3)
    assert key == sample_key(0, "prompt", 3)
    assert len({key, sample_key(1, "prompt", 3), sample_key(0, "prompt!", 3)}) == 3
    assert len({sample_key(0, "prompt", i) for i in range(100)}) == 100
    us = [uniform(sample_key(0, "p", i), pos) for i in range(50) for pos in range(40)]
    assert all(0.0 <= u < 1.0 for u in us)
    assert len(set(us)) > 0.99 * len(us)
    assert 0.48 < sum(us) / len(us) < 0.52
    assert uniform(key, 7) == uniform(key, 7) != uniform(key, 8)


def test_inverse_cdf_follows_the_probabilities_and_skips_zero_mass() -> None:
    probs = torch.tensor([[0.1, 0.0, 0.6, 0.3, 0.0]])
    u = torch.tensor([uniform(sample_key(1, "q", i), 0) for i in range(20000)])
    tokens = inverse_cdf_sample(probs.expand(len(u), -1).contiguous(), u)
    freq = torch.bincount(tokens, minlength=5).float() / len(u)
    assert freq[1] == 0 and freq[4] == 0
    assert torch.allclose(freq, probs[0], atol=0.015)
    edges = inverse_cdf_sample(
        probs.expand(3, -1).contiguous(), torch.tensor([0.0, 0.1, 1 - 2**-24])
    )
    assert edges.tolist() == [0, 2, 3]  # the last draw would round up to the total


def test_a_rows_token_depends_only_on_its_key_and_position() -> None:
    """Same (key, position) -> same token, whatever the other rows, their number and order."""
    gen = torch.Generator().manual_seed(0)
    scores = torch.randn(12, 300, generator=gen) * 2
    keys = [sample_key(5, f"prompt {i % 4}", i) for i in range(12)]
    backend: Any = HFBackend.__new__(HFBackend)  # the sampler needs no model
    for position in (0, 1, 37):
        whole = backend._sample(scores, keys, position).tolist()
        for rows in ([3], [11, 0, 5], list(range(11, -1, -1)), [2, 2, 7]):
            part = backend._sample(scores[rows], [keys[r] for r in rows], position).tolist()
            assert part == [whole[r] for r in rows]
    assert len(set(backend._sample(scores[:1].expand(12, -1), keys, 0).tolist())) > 1


def _tiny_model(folder: Path) -> str:
    from tokenizers import ByteLevelBPETokenizer
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    fast: Any = PreTrainedTokenizerFast  # transformers' annotations are stricter than its runtime
    llama: Any = LlamaForCausalLM

    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator(
        CORPUS * 5, vocab_size=300, min_frequency=1, special_tokens=["<s>", "</s>", "<pad>"]
    )
    tok = fast(
        tokenizer_object=bpe._tokenizer, bos_token="<s>", eos_token="</s>", pad_token="<pad>"
    )
    tok.save_pretrained(folder)
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=len(tok),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=256,
        initializer_range=0.5,  # peaked next-token distributions, unlike the default's
        pad_token_id=tok.pad_token_id,
        eos_token_id=tok.eos_token_id,
        bos_token_id=tok.bos_token_id,
    )
    llama(config).save_pretrained(folder)
    return str(folder)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> str:
    return _tiny_model(tmp_path_factory.mktemp("tiny-llama"))


def _texts(out: list[list[Any]]) -> list[list[str]]:
    return [[c.text for c in r] for r in out]


def test_tiny_model_samples_do_not_depend_on_batching(tiny: str) -> None:
    params = SamplingParams(temperature=1.0, max_tokens=12, stop=("e",), seed=4)
    prompts = ["What is 3 + 4?", "Compute 12 - 5 step by step:", "The final answer is"]
    reqs = [Request(p, params, (0, 1, 2, 3, 4)) for p in prompts]
    ref = _texts(HFBackend(tiny, batch_size=64, progress=False).generate(reqs))
    assert len({t for r in ref for t in r}) > 5  # samples differ
    for batch_size in (1, 4, 7):
        backend = HFBackend(tiny, batch_size=batch_size, progress=False)
        assert _texts(backend.generate(reqs)) == ref
        assert _texts(backend.generate(reqs[::-1])) == ref[::-1]
        # A top-up (resumed run) asks for later sample ids of the same prompts.
        head = backend.generate([Request(p, params, (0, 1)) for p in prompts])
        tail = backend.generate([Request(p, params, (2, 3, 4)) for p in prompts[::-1]])[::-1]
        assert [a + b for a, b in zip(_texts(head), _texts(tail), strict=True)] == ref
    other_seed = [replace(r, params=replace(params, seed=5)) for r in reqs]
    assert _texts(HFBackend(tiny, progress=False).generate(other_seed)) != ref


def test_the_generating_bar_advances_as_rows_end(
    tiny: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import ttc_eval.backends.hf as hf

    calls: list[tuple[str, int]] = []

    class Bar:
        def __init__(self, *args: Any, total: int = 0, **kwargs: Any) -> None:
            self.total = total

        def update(self, n: int = 1) -> None:
            calls.append(("update", n))

        def set_postfix(self, **kwargs: Any) -> None:
            calls.append(("tokens", int(kwargs["tokens"])))

        def refresh(self) -> None:
            pass

        def close(self) -> None:
            pass

    monkeypatch.setattr(hf, "tqdm", Bar)
    backend = HFBackend(tiny, batch_size=64)
    params = SamplingParams(temperature=1.0, max_tokens=16, stop=("e",), seed=0)
    (out,) = backend.generate([Request("What is 3 + 4?", params, tuple(range(12)))])
    updates = [n for kind, n in calls if kind == "update"]
    assert sum(updates) == 12 and len(updates) > 1  # several steps within one batch
    tokens = [n for kind, n in calls if kind == "tokens"]
    assert tokens == sorted(tokens) and tokens[-1] >= sum(c.n_tokens for c in out)


BASE = [
    "run", "--model", "smollm2-135m", "--task", "arith", "--strategy", "majority",
    "--verifier", "none", "--budgets", "1,3", "--limit", "5", "--max-tokens", "48",
    "--no-cache", "--quiet",
]  # fmt: skip


def _samples(run_dir: Path) -> dict[tuple[str, str], list[str]]:
    traces = [json.loads(x) for x in (run_dir / "traces.jsonl").read_text().splitlines()]
    return {(t["problem_id"], t["expansion"]): [c["text"] for c in t["candidates"]] for t in traces}


@pytest.mark.slow
def test_same_samples_at_any_batch_size_and_sharded() -> None:
    """15 rows (5 questions x 3 samples): batches of 8 split questions across batches, one
    batch of 64 holds them all, and each shard batches only its own questions."""
    assert main([*BASE, "--backend-args", "batch_size=8", "--output-dir", "b8"]) == 0
    assert main([*BASE, "--backend-args", "batch_size=64", "--output-dir", "b64"]) == 0
    (b8,) = list(Path("b8").iterdir())
    (b64,) = list(Path("b64").iterdir())
    assert b8.name == b64.name  # the batch size is not part of the run's identity
    ref = _samples(b64)
    assert len(ref) == 5 and all(len(s) == 3 for s in ref.values())
    assert len({t for s in ref.values() for t in s}) > 5  # really sampled
    assert _samples(b8) == ref
    for i in range(2):
        assert main([*BASE, "--shard", f"{i}/2", "--output-dir", "shards"]) == 0
    shards = sorted(map(str, Path("shards").iterdir()))
    assert main(["merge", *shards, "--output-dir", "merged"]) == 0
    (merged,) = list(Path("merged").iterdir())
    assert merged.name == b64.name
    assert _samples(merged) == ref
