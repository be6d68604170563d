"""The ``hf`` backend: transformers with our own decoding loop, left padding, batched over
samples.

Sampling is batch-invariant: each sample draws its randomness from its own counter-based
stream, keyed by (run seed, prompt, sample id) and the position of the token in the sample
(:func:`sample_key`, :func:`uniform`), never from a generator shared by a batch. Sample k of a
prompt is therefore the same whichever batch, chunk, shard or resumed run produced it, up to
float noise: the logits of one row can differ in their last bits between batch shapes (other
padding, other matrix-multiply blocking), which can flip a draw that falls within about 1e-7
of a boundary between two tokens' cumulative probabilities (rare; greedy argmax ties are
affected the same way).
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from functools import partial
from typing import Any, ClassVar

from tqdm.auto import tqdm

from ttc_eval.backends import _shared_prefix as shared_prefix
from ttc_eval.backends._base import (
    check_top_logprobs,
    load_warning,
    parse_threads,
    render_chat,
    top_k_record,
    truncate_at_stop,
    usable_cpus,
)
from ttc_eval.models import model_fingerprint, resolve_model
from ttc_eval.registry import backend
from ttc_eval.types import Completion, Request, SamplingParams


@contextmanager
def _gguf_bar(progress: bool) -> Iterator[None]:
    """Hide transformers' "Converting and de-quantizing GGUF tensors" bar unless bars are
    wanted both by the run (``progress``: not ``--quiet``) and by transformers' own switch
    (off unless ``--verbose``: ``HF_HUB_DISABLE_PROGRESS_BARS``). That bar is drawn with
    tqdm directly, past the switch that hides transformers' other bars, so it is swapped
    for a disabled one while the model loads."""
    try:
        from transformers import modeling_gguf_pytorch_utils
        from transformers.utils import logging as hf_logging
    except ImportError:  # a transformers without GGUF support draws no such bar
        yield
        return
    module: Any = modeling_gguf_pytorch_utils  # its tqdm is an import, not an export
    bar: Any = getattr(module, "tqdm", None)
    if bar is None or (progress and hf_logging.is_progress_bar_enabled()):
        yield
        return
    module.tqdm = partial(bar, disable=True)
    try:
        yield
    finally:
        module.tqdm = bar


@backend("hf")
class HFBackend:
    """transformers on CPU or GPU. float32 is the default: on 2 CPU cores it generated
    about 145 tok/s at batch 64 against about 55 for bfloat16 (see README)."""

    name = "hf"
    version = "4"
    """Bumped whenever the same seed could sample different tokens (2: own decoding loop;
    3: batch-invariant sampling, one counter-based uniform per sample and position drawn by
    inverse CDF instead of ``torch.multinomial`` on a generator seeded per batch, so every
    sampled token differs from version 2's; 4: shared-prefix attention while decoding, the
    same attention summed in another order, so a draw within float rounding of a boundary
    can differ); part of the fingerprint, so the generation cache never mixes versions."""

    takes_seed: ClassVar[bool] = False
    """Whether the engine is seeded once at start (vllm): the run seed is passed as ``seed``."""
    takes_threads: ClassVar[bool] = True
    """Whether it takes ``threads`` (torch's CPU threads): shards get a share of the cores."""
    concurrent: ClassVar[bool] = False
    """Whether calls from several threads at once share a batch (vllm only)."""

    def __init__(
        self,
        model: str,
        dtype: str = "float32",
        batch_size: int = 64,
        device: str = "cpu",
        progress: bool = True,
        share_prefill: bool = True,
        top_logprobs: int = 5,
        keep_top_logprobs: bool = False,
        threads: int | str | None = None,
        logprobs: bool = True,
    ) -> None:
        import os
        import sys

        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        cpus = usable_cpus()
        if threads is not None:
            # Process-wide: a verifier model in this process computes on the same threads.
            torch.set_num_threads(parse_threads(threads, cpus))
        self.threads = torch.get_num_threads()
        """torch's CPU threads in this process (``threads``; torch's default: one per core)."""
        if device == "cpu" and hasattr(os, "getloadavg"):
            warning = load_warning(self.threads, cpus, os.getloadavg()[0])
            if warning:
                print(warning, file=sys.stderr)
        self.top_logprobs = check_top_logprobs(top_logprobs)
        self.keep_top_logprobs = bool(keep_top_logprobs)
        self.logprobs = bool(logprobs)
        with _gguf_bar(progress):
            path = resolve_model(model)  # converts a built-in model's GGUF file once
        self.fingerprint = f"{model_fingerprint(path)}|hf-{self.version}"
        self.batch_size = batch_size
        self.progress = progress
        self.share_prefill = share_prefill
        self.device = device
        # transformers' own annotations are stricter than its runtime; treat the objects as Any.
        auto_tok: Any = AutoTokenizer
        auto_model: Any = AutoModelForCausalLM
        self.tokenizer: Any = auto_tok.from_pretrained(path)
        self.tokenizer.padding_side = "left"
        self.model: Any = auto_model.from_pretrained(path, dtype=getattr(torch, dtype))
        self.shared_attention = shared_prefix.supports(self.model.config)
        """Whether decoding reads one copy of each shared prompt (plain causal attention)."""
        if self.shared_attention:
            shared_prefix.register()
            self.model.set_attn_implementation(shared_prefix.ATTENTION)
        self.model.eval()
        if device != "cpu":
            self.model = self.model.to(device)
        eos = self.model.generation_config.eos_token_id
        self.eos_ids: set[int] = set(
            eos if isinstance(eos, list) else [eos] if eos is not None else []
        )
        if self.tokenizer.eos_token_id is not None:
            self.eos_ids.add(self.tokenizer.eos_token_id)
        pad = self.tokenizer.pad_token_id
        if pad is None:
            pad = next(iter(self.eos_ids))
            self.tokenizer.pad_token_id = pad
        self.pad_id = pad
        self.has_chat_template = bool(self.tokenizer.chat_template)

    def render(self, messages: Sequence[Mapping[str, str]]) -> str:
        return render_chat(self.tokenizer, messages)

    def generate(self, requests: Sequence[Request]) -> list[list[Completion]]:
        rows = [(ri, k) for ri, r in enumerate(requests) for k in range(len(r.sample_ids))]
        out: list[list[Completion | None]] = [[None] * len(r.sample_ids) for r in requests]
        # A batch shares sampling parameters; group rows by them, keeping request order.
        groups: dict[SamplingParams, list[tuple[int, int]]] = {}
        for ri, k in rows:
            groups.setdefault(requests[ri].params, []).append((ri, k))
        show = self.progress
        bar = tqdm(total=len(rows), desc="generating", unit="sample", disable=not show, leave=False)
        progress = _Progress(bar) if show else None
        for params, group in groups.items():
            for b in range(0, len(group), self.batch_size):
                batch = group[b : b + self.batch_size]
                comps = self._generate_batch(
                    [requests[ri].prompt for ri, _ in batch],
                    [requests[ri].sample_ids[k] for ri, k in batch],
                    params,
                    progress,
                )
                for (ri, k), c in zip(batch, comps, strict=True):
                    out[ri][k] = c
        bar.close()
        return [[c for c in row if c is not None] for row in out]

    def _encode(self, prompts: list[str]) -> Any:
        """Left-padded batch; chat-rendered prompts already hold their special tokens."""
        return self.tokenizer(
            prompts,
            return_tensors="pt",
            padding=True,
            add_special_tokens=not self.has_chat_template,
        ).to(self.device)

    def parameter_counts(self) -> dict[str, int] | None:
        from ttc_eval.analysis.flops import parameter_counts

        return parameter_counts(self.model)

    def close(self) -> None:
        return None  # the weights live in this process and go with it

    def next_token_logprobs(
        self, prompts: Sequence[str], options: Sequence[str]
    ) -> tuple[list[dict[str, float]], int]:
        """Log-probability of each option's first token as the next token after each prompt
        (one forward pass per batch, no generation), and the prompt tokens read."""
        import torch

        ids = {o: self.tokenizer.encode(o, add_special_tokens=False)[0] for o in options}
        out: list[dict[str, float]] = []
        read = 0
        for b in range(0, len(prompts), self.batch_size):
            chunk = list(prompts[b : b + self.batch_size])
            enc = self._encode(chunk)
            read += int(enc["attention_mask"].sum())
            with torch.inference_mode():
                logits = self.model(**enc).logits[:, -1, :].float()
            lp = torch.log_softmax(logits, dim=-1)
            out += [{o: float(lp[i, t]) for o, t in ids.items()} for i in range(len(chunk))]
        return out, read

    def _sample(self, scores: Any, keys: Sequence[int], position: int) -> Any:
        """One token per row from warped logits ``scores`` (rows x vocabulary): row i's token
        at generated position ``position`` is a function of its own key and the position
        only, whatever the other rows of the batch (benchmarks swap this method for
        ``torch.multinomial`` to measure its cost)."""
        import torch

        u = torch.tensor([uniform(k, position) for k in keys], device=scores.device)
        return inverse_cdf_sample(torch.softmax(scores, dim=-1), u)

    def _generate_batch(
        self,
        prompts: list[str],
        sample_ids: list[int],
        params: SamplingParams,
        progress: _Progress | None = None,
    ) -> list[Completion]:
        """Our own decoding loop rather than ``model.generate``: a row leaves the batch as soon
        as it ends (end of sequence or a stop string), so a batch costs the sum of its rows'
        lengths rather than its longest row times the batch size. Step-by-step search has
        many short rows of very different lengths per round; with ``generate`` every round
        waited for its longest step at full batch width. ``progress`` hears of every token
        generated and every row that ends."""
        # One function on purpose: the decoding loop's steps (forward, sample, stop checks,
        # retire finished rows) share their state, and split up they would hide the order.
        import torch
        from transformers import TemperatureLogitsWarper, TopPLogitsWarper

        enc = self._encode(prompts)
        mask = enc["attention_mask"]
        prompt_tokens = mask.sum(dim=1).tolist()
        sampling = params.temperature > 0
        warpers: list[Any] = []
        if sampling:
            warpers.append(TemperatureLogitsWarper(params.temperature))
            if params.top_p < 1.0:
                warpers.append(TopPLogitsWarper(params.top_p))
        keys = [sample_key(params.seed, p, i) for p, i in zip(prompts, sample_ids, strict=True)]
        stops = list(params.stop)
        tail = max((len(s) for s in stops), default=0) + 2
        ids: list[list[int]] = [[] for _ in prompts]
        lps: list[list[float]] = [[] for _ in prompts]
        # The top-k log-probabilities of each position, from the distribution just computed
        # (token confidences cost one top-k per step, no extra forward pass).
        tops: list[list[list[float]]] = [[] for _ in prompts]
        k = self.top_logprobs
        live = list(range(len(prompts)))
        with torch.inference_mode():
            decoder = start_decoder(self.model, enc["input_ids"], mask, prompts, self.share_prefill)
            logits = decoder.logits
            for step in range(params.max_tokens):
                logp = torch.log_softmax(logits.float(), dim=-1)
                if sampling:
                    scores = logits.float()
                    for w in warpers:
                        scores = w(None, scores)
                    tok = self._sample(scores, [keys[row] for row in live], step)
                else:
                    tok = logits.argmax(dim=-1)
                chosen = logp.gather(1, tok[:, None]).squeeze(1).tolist()
                top = logp.topk(k, dim=-1).values.tolist() if k else None
                keep: list[int] = []
                for j, (row, t) in enumerate(zip(live, tok.tolist(), strict=True)):
                    ids[row].append(t)
                    lps[row].append(chosen[j])
                    if top is not None:
                        tops[row].append(top[j])
                    ended = t in self.eos_ids or (
                        bool(stops)
                        and any(s in self.tokenizer.decode(ids[row][-tail:]) for s in stops)
                    )
                    if not ended:
                        keep.append(j)
                done = not keep or step == params.max_tokens - 1
                if progress is not None:
                    progress.step(len(live), len(live) if done else len(live) - len(keep))
                if done:
                    break
                if len(keep) < len(live):
                    index = torch.tensor(keep, device=tok.device)
                    decoder.keep(index)
                    tok = tok[index]
                    live = [live[j] for j in keep]
                logits = decoder.step(tok)
        return [
            self._completion(ids[i], lps[i], tops[i], int(prompt_tokens[i]), params)
            for i in range(len(prompts))
        ]

    def _completion(
        self,
        ids: list[int],
        logprobs: list[float],
        tops: list[list[float]],
        prompt_tokens: int,
        params: SamplingParams,
    ) -> Completion:
        end = next((i for i, t in enumerate(ids) if t in self.eos_ids), None)
        if end is not None:
            body, n_tokens, reason = ids[:end], end + 1, "stop"
        else:
            # No end of sequence: either max_tokens, or a stop string ended the row.
            body, n_tokens = ids, len(ids)
            reason = "length" if n_tokens >= params.max_tokens else "stop"
        pieces = self.tokenizer.batch_decode([[t] for t in body])
        text = "".join(pieces)
        if text != self.tokenizer.decode(body):
            # Multi-byte characters split across tokens: decode prefixes instead (rare, slow).
            pieces = [self.tokenizer.decode(body[: i + 1]) for i in range(len(body))]
            text = pieces[-1] if pieces else ""
            ends = [len(p) for p in pieces]
        else:
            ends, acc = [], 0
            for p in pieces:
                acc += len(p)
                ends.append(acc)
        stop_reason = None
        if params.stop:
            cut = truncate_at_stop(text, ends, params.stop, params.include_stop)
            if cut is not None:
                text, kept, stop_reason = cut
                n_tokens, reason = kept, "stop"
                ends = [min(e, len(text)) for e in ends[:kept]]
        confidences, raw = top_k_record(tops[:n_tokens], self.top_logprobs, self.keep_top_logprobs)
        return Completion(
            text=text,
            n_tokens=n_tokens,
            finish_reason=reason,
            stop_reason=stop_reason,
            prompt_tokens=prompt_tokens,
            token_logprobs=tuple(round(x, 6) for x in logprobs[:n_tokens])
            if self.logprobs
            else None,
            token_ends=tuple(ends[:n_tokens]) + (len(text),) * max(0, n_tokens - len(ends)),
            token_confidences=confidences,
            top_logprobs=raw,
        )


def start_decoder(
    model: Any,
    input_ids: Any,
    attention_mask: Any,
    prompts: Sequence[str],
    share_prefill: bool,
) -> _PlainDecoder | _SharedPrefixDecoder:
    """Encode each distinct prompt once and return the decoder holding the rows' caches and
    next-token logits (rows: the left-padded ``input_ids``/``attention_mask``; ``prompts``
    says which rows share a prompt).

    Samples of one question (and the M children of a beam) share their prompt; on CPU a
    prompt's forward pass costs as much as many decoding steps, so this is the prefix cache
    vLLM gives for free. With ``share_prefill`` on a model set to ``_shared_prefix``'s
    attention (plain causal attention, see ``HFBackend``), the rows go on reading the one copy
    of their prompt while decoding; otherwise each row gets its own copy of its prompt's cache.
    """
    import torch
    from transformers import DynamicCache

    first: dict[str, int] = {}
    for i, p in enumerate(prompts):
        first.setdefault(p, i)
    shared = share_prefill and len(first) < len(prompts)
    rows = torch.tensor(list(first.values()) if shared else range(len(prompts)))
    ids, mask = input_ids[rows], attention_mask[rows]
    cache = DynamicCache(config=model.config)
    out = model(
        input_ids=ids,
        attention_mask=mask,
        position_ids=(mask.cumsum(-1) - 1).clamp(min=0),
        past_key_values=cache,
        use_cache=True,
        logits_to_keep=1,
    )
    logits = out.logits[:, -1, :]
    order = {p: j for j, p in enumerate(first)}
    owner = torch.tensor([order[p] for p in prompts], device=logits.device)
    lengths = attention_mask.sum(dim=1)
    if share_prefill and model.config._attn_implementation == shared_prefix.ATTENTION:
        return _SharedPrefixDecoder(model, cache, mask, owner, logits, lengths)
    if shared:
        cache.batch_select_indices(owner)
        logits = logits[owner]
    return _PlainDecoder(model, cache, attention_mask, logits, lengths)


class _PlainDecoder:
    """Rows decoding over transformers' ``DynamicCache``, each with its own copy of its
    prompt's keys and values."""

    def __init__(self, model: Any, cache: Any, mask: Any, logits: Any, positions: Any) -> None:
        self.model = model
        self.cache = cache
        """transformers' ``DynamicCache``: each live row's prompt and generated tokens."""
        self.mask = mask
        """The live rows' attention mask (left padding), one column longer at each step."""
        self.logits = logits
        """The live rows' next-token logits (rows x vocabulary)."""
        self.positions = positions
        """The position of each live row's next token."""

    def keep(self, index: Any) -> None:
        """Only rows ``index`` go on (the others ended)."""
        self.cache.batch_select_indices(index)
        self.mask, self.positions = self.mask[index], self.positions[index]

    def step(self, tokens: Any) -> Any:
        """Feed one token per live row; returns the next-token logits."""
        import torch

        self.mask = torch.cat([self.mask, self.mask.new_ones((len(tokens), 1))], dim=1)
        out = self.model(
            input_ids=tokens[:, None],
            attention_mask=self.mask,
            position_ids=self.positions[:, None],
            past_key_values=self.cache,
            use_cache=True,
        )
        self.positions = self.positions + 1
        self.logits = out.logits[:, -1, :]
        return self.logits


class _SharedPrefixDecoder:
    """Rows decoding over one copy of each distinct prompt plus their own generated tokens
    (``_shared_prefix``): no row copies its prompt, and no step copies the cache."""

    def __init__(
        self, model: Any, cache: Any, mask: Any, owner: Any, logits: Any, positions: Any
    ) -> None:
        layers = cache.layers
        self.model = model
        self.prefix = shared_prefix.Prefix(
            keys=[layer.keys for layer in layers],
            values=[layer.values for layer in layers],
            mask=mask.bool()[:, None, None, :],
            owner=owner,
        )
        """Each distinct prompt's keys and values, once, and which rows read which."""
        self.suffix = shared_prefix.SuffixCache(len(layers))
        """Each live row's own generated tokens."""
        self.logits = logits[owner]
        """The live rows' next-token logits (rows x vocabulary)."""
        self.positions = positions
        """The position of each live row's next token."""

    def keep(self, index: Any) -> None:
        """Only rows ``index`` go on (the others ended); prompts no row reads are freed."""
        self.suffix.select(index)
        self.prefix.place(self.prefix.owner[index])
        self.prefix.drop_unread()
        self.positions = self.positions[index]

    def step(self, tokens: Any) -> Any:
        """Feed one token per live row; returns the next-token logits."""
        out = self.model(
            input_ids=tokens[:, None],
            # A 4-D mask makes transformers use it as it is, without asking the cache for
            # mask sizes (which ``SuffixCache`` does not track); the attention reads the
            # prompts' mask from ``ttc_prefix``.
            attention_mask=self.prefix.mask,
            position_ids=self.positions[:, None],
            past_key_values=self.suffix,
            use_cache=True,
            ttc_prefix=self.prefix,
        )
        self.suffix.advance()
        self.positions = self.positions + 1
        self.logits = out.logits[:, -1, :]
        return self.logits


class _Progress:
    """The "generating" bar: advances by one as each sample ends inside the decoding loop and
    shows the tokens generated so far, redrawn at most twice a second (a CPU batch can take
    minutes before its first row ends)."""

    def __init__(self, bar: Any, interval: float = 0.5) -> None:
        self.bar = bar
        self.interval = interval
        self.tokens = 0
        self.last = 0.0

    def step(self, tokens: int, finished: int) -> None:
        self.tokens += tokens
        self.bar.set_postfix(tokens=self.tokens, refresh=False)
        if finished:
            self.bar.update(finished)  # redraws itself, at most every ``mininterval``
        elif (now := time.monotonic()) - self.last >= self.interval:
            self.last = now
            self.bar.refresh()


_MASK64 = (1 << 64) - 1


def _mix64(x: int) -> int:
    """splitmix64's finalizer: a bijection of 64-bit integers with full avalanche."""
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _MASK64
    return x ^ (x >> 31)


def sample_key(seed: int, prompt: str, sample_id: int) -> int:
    """The 64-bit key of one sample's random stream: (run seed, prompt, sample id)."""
    h = hashlib.blake2b(f"{seed}|{sample_id}|".encode(), digest_size=8)
    h.update(prompt.encode())
    return int.from_bytes(h.digest(), "little")


def uniform(key: int, position: int) -> float:
    """The uniform number in [0, 1) of a sample's stream at a generated position: counter-based
    (a hash of key and position), so it needs no state and no order. 24 bits, so that it is
    exact in float32 and below 1."""
    x = _mix64(key ^ _mix64(((position + 1) * 0x9E3779B97F4A7C15) & _MASK64))
    return (x >> 40) / (1 << 24)


def inverse_cdf_sample(probs: Any, u: Any) -> Any:
    """Row i's token is the first whose cumulative probability exceeds ``u[i]`` times the
    row's total (rows x vocabulary ``probs``, ``u`` in [0, 1)). Tokens of probability 0 (cut
    by top-p) are never chosen: a draw that rounds up to the total falls back on the last
    token of positive probability."""
    import torch

    cdf = probs.cumsum(dim=-1)
    total = cdf[:, -1:].contiguous()
    picked = torch.searchsorted(cdf, u.to(cdf.dtype)[:, None] * total, right=True)
    last = torch.searchsorted(cdf, total)
    return torch.minimum(picked, last).squeeze(1)
