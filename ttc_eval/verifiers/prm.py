"""Process reward models through transformers: each family's exact input format.

Every adapter turns (question, steps) into token ids plus the positions where step scores
are read, then scores a batch in one forward pass (right padding, so positions stay put and
a causal model's outputs at real tokens are unaffected). Weights load by hub id or local
path; ``torch`` and ``transformers`` are imported only when an adapter is built.

- ``math-shepherd`` (causal LM): ``question step1 ки\nstep2 ки\n``; P(``+``) over
  {``+``, ``-``} at each tag.
- ``qwen-prm`` (token classifier): chat; steps joined and ended by ``<extra_0>``;
  softmax(logits)[..., 1] at each ``<extra_0>``.
- ``rlhflow`` (causal LM): chat; a user turn per step, each answered ``+``; P(``+``) over
  {``+``, ``-``} at the position that predicts it.
- ``skywork`` (value head): ``bos + question + "\n"``, each step followed by the step token;
  sigmoid(value) at the step token.

``engine=vllm`` (``--verifier-args engine=vllm``) scores through vLLM instead, on the same
token ids:

- generative PRMs (math-shepherd, rlhflow): the ids cut after each read position, each asked
  for one greedy token with ``logprob_token_ids=[+, -]`` (prefix caching shares a solution's
  prefixes); P(+) over {+, -} is what the transformers path reads from the logits;
- qwen-prm (``Qwen2ForProcessRewardModel``): the pooling runner with step pooling at
  ``<extra_0>`` (``encode(..., pooling_task="token_classify")``), softmax column 1.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

from ttc_eval.errors import UsageError
from ttc_eval.registry import verifier
from ttc_eval.types import Problem
from ttc_eval.verifiers._base import Solution

QWEN_PRM_SYSTEM = "Please reason step by step, and put your final answer within \\boxed{}."


class _TransformersPRM:
    """Shared loading, batching and bookkeeping; subclasses define ``encode`` and ``read``."""

    name = ""
    version = "1"

    roles: ClassVar[tuple[str, ...]] = ("verifier",)
    """Models this verifier runs, by role: its own PRM weights (``--verifier-model``,
    ``--role verifier=``)."""

    vllm_mode: str | None = None
    """How vLLM serves this PRM: ``generate`` (P(+) over {+, -} of the next token, from
    ``pair_ids``), ``pool`` (step pooling at ``step_tag_id``), or ``None`` (it cannot)."""

    def __init__(
        self,
        model: str,
        dtype: str = "float32",
        device: str = "cpu",
        batch_size: int = 8,
        trust_remote_code: bool = False,
        engine: str = "transformers",
        max_model_len: int = 4096,
        **_: Any,
    ) -> None:
        import torch
        from transformers import AutoTokenizer

        if engine not in ("transformers", "vllm"):
            raise UsageError(f"{self.name}: engine must be transformers or vllm, not {engine!r}")
        if engine == "vllm" and self.vllm_mode is None:
            raise UsageError(
                f"{self.name}: engine=vllm serves math-shepherd, rlhflow and qwen-prm; "
                "use the default engine=transformers"
            )
        self.torch = torch
        self.device = device
        self.batch_size = batch_size
        self.dtype = getattr(torch, dtype)
        self.trust_remote_code = trust_remote_code
        self.engine = engine
        auto_tok: Any = AutoTokenizer
        self.tokenizer: Any = auto_tok.from_pretrained(model, trust_remote_code=trust_remote_code)
        self.setup()
        self.model: Any = None
        self.llm: Any = None
        if engine == "vllm":
            from ttc_eval.backends.vllm import vllm_engine

            self.llm = vllm_engine(
                model,
                dtype,
                trust_remote_code=trust_remote_code,
                max_model_len=max_model_len,
                **self.vllm_args(),
            )[0]
        else:
            self.model = self.load(model)
            self.model.eval()
            if device != "cpu":
                self.model = self.model.to(device)
        self.tokens_read = 0

    def vllm_args(self) -> dict[str, Any]:
        """Engine arguments for ``engine=vllm``."""
        return {"enable_prefix_caching": True}

    def pair_ids(self) -> tuple[int, int]:
        """Token ids of "+" and "-" (generative PRMs)."""
        raise NotImplementedError

    def load(self, model: str) -> Any:
        from transformers import AutoModelForCausalLM

        auto: Any = AutoModelForCausalLM
        return auto.from_pretrained(
            model, dtype=self.dtype, trust_remote_code=self.trust_remote_code
        )

    def setup(self) -> None:
        """Look up the special token ids the format needs."""

    def _id(self, text: str) -> int:
        ids = self.tokenizer.encode(text, add_special_tokens=False)
        if not ids:
            raise UsageError(f"{self.name}: the tokenizer has no token for {text!r}")
        return int(ids[-1])

    def encode(self, question: str, steps: Sequence[str]) -> tuple[list[int], list[int]]:
        """Token ids of the PRM input and the positions where the step scores are read."""
        raise NotImplementedError

    def read(self, output: Any, positions: Any) -> Any:
        """Step scores (a 1-d tensor) from one row of the model output at ``positions``."""
        raise NotImplementedError

    def forward(self, input_ids: Any, attention_mask: Any) -> Any:
        return self.model(input_ids=input_ids, attention_mask=attention_mask).logits

    def score(self, problem: Problem, solutions: Sequence[Solution]) -> list[tuple[float, ...]]:
        torch = self.torch
        encoded = [
            self.encode(problem.question, [s.strip() for s in sol.steps]) for sol in solutions
        ]
        for (_, pos), sol in zip(encoded, solutions, strict=True):
            if len(pos) != len(sol.steps):
                raise UsageError(
                    f"{self.name}: found {len(pos)} score positions for {len(sol.steps)} steps"
                )
        if self.llm is not None and self.vllm_mode == "pool":
            return self._pool_vllm(encoded)
        if self.llm is not None:
            return self._score_vllm(encoded)
        out: list[tuple[float, ...]] = []
        for b in range(0, len(encoded), self.batch_size):
            chunk = encoded[b : b + self.batch_size]
            width = max(len(ids) for ids, _ in chunk)
            pad = self.tokenizer.pad_token_id or 0
            ids = torch.tensor([i + [pad] * (width - len(i)) for i, _ in chunk], device=self.device)
            mask = torch.tensor(
                [[1] * len(i) + [0] * (width - len(i)) for i, _ in chunk], device=self.device
            )
            self.tokens_read += int(mask.sum())
            with torch.inference_mode():
                output = self.forward(ids, mask)
            for row, (_, pos) in enumerate(chunk):
                scores = self.read(output[row], torch.tensor(pos, device=self.device))
                out.append(tuple(float(x) for x in scores.float().cpu()))
        return out

    def _score_vllm(
        self, encoded: Sequence[tuple[list[int], list[int]]]
    ) -> list[tuple[float, ...]]:
        import math

        from vllm import SamplingParams, TokensPrompt

        plus, minus = self.pair_ids()
        prompts = [TokensPrompt(prompt_token_ids=ids[: p + 1]) for ids, pos in encoded for p in pos]
        params = SamplingParams(max_tokens=1, temperature=0.0, logprob_token_ids=[plus, minus])
        outputs = iter(self.llm.generate(prompts, params, use_tqdm=False))
        out = []
        for ids, pos in encoded:
            scores = []
            for _ in pos:
                lp = next(outputs).outputs[0].logprobs[0]
                a, b = lp[plus].logprob, lp[minus].logprob
                scores.append(1.0 / (1.0 + math.exp(b - a)))  # softmax over {+, -}
            # What a forward pass over the whole input would read (prefixes are cached).
            self.tokens_read += len(ids)
            out.append(tuple(scores))
        return out

    def _pool_vllm(self, encoded: Sequence[tuple[list[int], list[int]]]) -> list[tuple[float, ...]]:
        from vllm import TokensPrompt

        prompts = [TokensPrompt(prompt_token_ids=ids) for ids, _ in encoded]
        outputs = self.llm.encode(prompts, pooling_task="token_classify", use_tqdm=False)
        out = []
        for o, (ids, pos) in zip(outputs, encoded, strict=True):
            # One row per step tag, already through softmax: P(correct) is column 1.
            data = o.outputs.data
            if len(data) != len(pos):
                raise UsageError(f"{self.name}: vLLM pooled {len(data)} steps, expected {len(pos)}")
            self.tokens_read += len(ids)
            out.append(tuple(float(x) for x in data[:, 1].float()))
        return out


class _GenerativePRM(_TransformersPRM):
    """A causal LM read as P(+) over {+, -} as the next token where each step is judged;
    ``setup`` sets ``plus_id`` and ``minus_id``."""

    vllm_mode = "generate"
    plus_id: int
    minus_id: int

    def pair_ids(self) -> tuple[int, int]:
        return self.plus_id, self.minus_id

    def read(self, output: Any, positions: Any) -> Any:
        pair = output[positions][:, [self.plus_id, self.minus_id]].float()
        return self.torch.softmax(pair, dim=-1)[:, 0]


@verifier("math-shepherd")
class MathShepherd(_GenerativePRM):
    """Math-Shepherd (peiyi9979/math-shepherd-mistral-7b-prm): P(+) over {+, -} at each ки."""

    name = "math-shepherd"
    step_tag = "ки"

    def setup(self) -> None:
        self.tag_id = self._id(self.step_tag)
        pm = self.tokenizer.encode("+ -", add_special_tokens=False)
        self.plus_id, self.minus_id = int(pm[0]), int(pm[-1])

    def encode(self, question: str, steps: Sequence[str]) -> tuple[list[int], list[int]]:
        clean = [s.replace(self.step_tag, "") for s in steps]
        text = f"{question} " + "".join(f"{s} {self.step_tag}\n" for s in clean)
        ids = list(self.tokenizer.encode(text))
        return ids, [i for i, t in enumerate(ids) if t == self.tag_id]


def qwen_prm_inputs(
    tokenizer: Any, sep_id: int, question: str, steps: Sequence[str]
) -> tuple[list[int], list[int]]:
    """Token ids of the Qwen2.5-Math-PRM input (chat: system, question, the steps each ended
    by ``<extra_0>``) and the positions of those tags; ``ttc-eval learn prm`` trains on exactly
    this."""
    sep = QwenPRM.step_sep
    clean = [s.replace(sep, "") for s in steps]
    messages = [
        {"role": "system", "content": QWEN_PRM_SYSTEM},
        {"role": "user", "content": question},
        {"role": "assistant", "content": sep.join(clean) + sep},
    ]
    text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=False)
    ids = list(tokenizer.encode(text, add_special_tokens=False))
    return ids, [i for i, t in enumerate(ids) if t == sep_id]


@verifier("qwen-prm")
class QwenPRM(_TransformersPRM):
    """Qwen2.5-Math-PRM: chat-formatted, steps ended by <extra_0>; softmax(logits)[1] there."""

    name = "qwen-prm"
    step_sep = "<extra_0>"
    vllm_mode = "pool"

    def vllm_args(self) -> dict[str, Any]:
        from vllm.config import PoolerConfig

        # vLLM's default step tag is the released tokenizer's <extra_0> (151651); name it.
        return {"runner": "pooling", "pooler_config": PoolerConfig(step_tag_id=self.sep_id)}

    def load(self, model: str) -> Any:
        from transformers import AutoConfig, AutoModel, AutoModelForTokenClassification

        config = AutoConfig.from_pretrained(model, trust_remote_code=self.trust_remote_code)
        archs = getattr(config, "architectures", None) or []
        # The released checkpoint is Qwen2ForProcessRewardModel (remote code: trust it with
        # --verifier-args trust_remote_code=true); a plain token classifier with 2 labels
        # has the same interface.
        auto: Any = (
            AutoModel if "Qwen2ForProcessRewardModel" in archs else AutoModelForTokenClassification
        )
        return auto.from_pretrained(
            model, dtype=self.dtype, trust_remote_code=self.trust_remote_code
        )

    def forward(self, input_ids: Any, attention_mask: Any) -> Any:
        out = self.model(input_ids=input_ids, attention_mask=attention_mask)
        return out.logits if hasattr(out, "logits") else out[0]

    def setup(self) -> None:
        self.sep_id = self._id(self.step_sep)

    def encode(self, question: str, steps: Sequence[str]) -> tuple[list[int], list[int]]:
        return qwen_prm_inputs(self.tokenizer, self.sep_id, question, steps)

    def read(self, output: Any, positions: Any) -> Any:
        return self.torch.softmax(output[positions].float(), dim=-1)[:, 1]


@verifier("rlhflow")
class RLHFlowPRM(_GenerativePRM):
    """RLHFlow Llama3.1-8B-PRM-Deepseek-Data style: a user turn per step (the first prefixed by
    the question), each answered by an assistant "+"; P(+) over {+, -} where "+" is predicted.

    One forward pass over the whole conversation reads every step: a causal model's output
    before step i's "+" sees exactly the conversation up to step i, as in the incremental
    reference scoring."""

    name = "rlhflow"

    def setup(self) -> None:
        self.plus_id, self.minus_id = self._id("+"), self._id("-")

    def encode(self, question: str, steps: Sequence[str]) -> tuple[list[int], list[int]]:
        conv: list[dict[str, str]] = []
        positions = []
        for i, step in enumerate(steps):
            conv.append({"role": "user", "content": f"{question} {step}" if i == 0 else step})
            prefix = self.tokenizer.apply_chat_template(
                conv, tokenize=False, add_generation_prompt=True
            )
            positions.append(len(self.tokenizer.encode(prefix, add_special_tokens=False)) - 1)
            conv.append({"role": "assistant", "content": "+"})
        text = self.tokenizer.apply_chat_template(conv, tokenize=False)
        ids = list(self.tokenizer.encode(text, add_special_tokens=False))
        if any(p + 1 >= len(ids) or ids[p + 1] != self.plus_id for p in positions):
            raise UsageError(
                "rlhflow: the chat template does not tokenize each '+' answer as one token"
            )
        return ids, positions


@verifier("skywork")
class SkyworkPRM(_TransformersPRM):
    """Skywork-o1-Open-PRM: a value head (linear to 1, sigmoid) over Qwen2.5 hidden states,
    read at the step token that ends each step; input ``bos + question + "\\n"`` then the
    steps, each followed by the step token."""

    name = "skywork"
    step_token = "\n"

    def load(self, model: str) -> Any:
        import torch
        from safetensors.torch import load_file
        from transformers import AutoModel

        auto: Any = AutoModel
        base = auto.from_pretrained(
            model, dtype=self.dtype, trust_remote_code=self.trust_remote_code
        )
        folder = Path(model)
        if not folder.is_dir():
            from huggingface_hub import snapshot_download

            folder = Path(snapshot_download(model, allow_patterns=["*.safetensors"]))
        head: dict[str, Any] = {}
        for f in sorted(folder.glob("*.safetensors")):
            for k, v in load_file(str(f)).items():
                if "v_head.summary." in k:
                    head[k.rsplit(".", 1)[1]] = v
        if "weight" not in head:
            raise UsageError(f"skywork: no v_head.summary weights in {folder}")
        self.v_head = torch.nn.Linear(
            head["weight"].shape[1], 1, bias="bias" in head, dtype=self.dtype
        )
        self.v_head.load_state_dict(head)
        return base

    def setup(self) -> None:
        self.step_id = self._id(self.step_token)

    def encode(self, question: str, steps: Sequence[str]) -> tuple[list[int], list[int]]:
        bos = self.tokenizer.bos_token or ""
        ids = list(self.tokenizer.encode(bos + question + "\n", add_special_tokens=False))
        positions = []
        for step in steps:
            ids += self.tokenizer.encode(
                step.replace(self.step_token, " "), add_special_tokens=False
            )
            ids.append(self.step_id)
            positions.append(len(ids) - 1)
        return ids, positions

    def forward(self, input_ids: Any, attention_mask: Any) -> Any:
        hidden = self.model(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        return self.v_head(hidden).squeeze(-1)

    def read(self, output: Any, positions: Any) -> Any:
        return self.torch.sigmoid(output[positions].float())
