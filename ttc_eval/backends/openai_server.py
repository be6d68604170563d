"""The ``openai`` backend: any OpenAI-compatible completions server (``vllm serve``, SGLang,
llama.cpp server), through the ``openai`` client.

``--backend openai --base-url URL[,URL...]``: requests go round-robin over the URLs (several
``vllm serve`` endpoints share the load), at most ``concurrency`` in flight. The client retries
429, 5xx and dropped connections with exponential backoff (``max_retries``); a request whose
retries are exhausted is tried once on each other URL before the run stops. Finished
questions are already on disk by then, so rerunning the command resumes.

Prompts are rendered locally with the model's chat template (the tokenizer is read from the
model directory or hub id given as ``--model``), and sent to ``/v1/completions``.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, ClassVar

from tqdm.auto import tqdm

from ttc_eval.backends._base import check_top_logprobs, render_chat, request_seed, top_k_record
from ttc_eval.backends.vllm import vllm_completion
from ttc_eval.errors import TTCError, UsageError
from ttc_eval.models import resolve_model
from ttc_eval.registry import backend
from ttc_eval.types import Completion, Request, SamplingParams


@backend("openai")
class OpenAIBackend:
    """OpenAI-compatible completions server(s): n samples, log-probabilities, stop, retries."""

    name = "openai"
    version = "1"
    """Part of the fingerprint."""

    takes_seed: ClassVar[bool] = False
    """Whether the engine is seeded once at start (vllm): the run seed is passed as ``seed``."""
    takes_threads: ClassVar[bool] = False
    """Whether it takes ``threads`` (CPU threads of this process; hf only)."""
    concurrent: ClassVar[bool] = False
    """Whether calls from several threads at once share a batch (vllm only)."""

    def __init__(
        self,
        model: str,
        base_url: str = "http://127.0.0.1:8000/v1",
        api_key: str = "EMPTY",
        concurrency: int = 8,
        max_retries: int = 8,
        timeout: float = 600.0,
        per_request_seed: bool = False,
        served_model: str | None = None,
        progress: bool = True,
        seed: int = 0,
        top_logprobs: int = 5,
        keep_top_logprobs: bool = False,
        logprobs: bool = True,
    ) -> None:
        from openai import OpenAI

        self.top_logprobs = check_top_logprobs(top_logprobs)
        self.keep_top_logprobs = bool(keep_top_logprobs)
        self.logprobs = bool(logprobs)
        urls = [u.strip().rstrip("/") for u in str(base_url).split(",") if u.strip()]
        if not urls:
            raise UsageError("--base-url needs at least one URL, e.g. http://127.0.0.1:8000/v1")
        if concurrency < 1:
            raise UsageError(f"concurrency must be >= 1, got {concurrency}")
        self.urls = urls
        self.clients = [
            OpenAI(base_url=u, api_key=api_key, max_retries=max_retries, timeout=timeout)
            for u in urls
        ]
        self.concurrency = concurrency
        self.per_request_seed = per_request_seed
        self.progress = progress
        self.model_arg = model
        self.path = resolve_model(model)
        self.served_model = served_model
        self.tokenizer: Any = self._tokenizer()
        # The server decides the weights; the served name and the tokenizer identify them.
        self.fingerprint = f"openai:{served_model or self.path}|{self.version}"
        self._next = itertools.count()
        self._lock = threading.Lock()

    def parameter_counts(self) -> dict[str, int] | None:
        """From the model's config, when ``--model`` names a local directory or cached id."""
        from ttc_eval.analysis.flops import from_config

        return from_config(self.path)

    def close(self) -> None:
        for client in self.clients:  # the servers are the user's: only our connections
            client.close()

    def _tokenizer(self) -> Any:
        from transformers import AutoTokenizer

        auto: Any = AutoTokenizer
        return auto.from_pretrained(self.path)

    def _model_name(self, client: Any) -> str:
        if self.served_model is None:
            # Servers name a model after the path or id they were started with; with one
            # model served, use its name whatever it is.
            served = [m.id for m in client.models.list().data]
            if self.path in served or len(served) != 1:
                self.served_model = self.path
            else:
                self.served_model = served[0]
        return self.served_model

    def render(self, messages: Sequence[Mapping[str, str]]) -> str:
        return render_chat(self.tokenizer, messages)

    def generate(self, requests: Sequence[Request]) -> list[list[Completion]]:
        bar = tqdm(
            total=sum(len(r.sample_ids) for r in requests),
            desc="generating",
            unit="sample",
            disable=not self.progress,
            leave=False,
        )

        def one(r: Request) -> list[Completion]:
            out = self._request(r)
            bar.update(len(out))
            return out

        with ThreadPoolExecutor(max_workers=self.concurrency) as pool:
            results = list(pool.map(one, requests))
        bar.close()
        return results

    def _request(self, r: Request) -> list[Completion]:
        import openai

        with self._lock:
            first = next(self._next) % len(self.clients)
        order = [*range(first, len(self.clients)), *range(first)]
        last_error: Exception | None = None
        for i in order:
            client = self.clients[i]
            try:
                return self._complete(client, r)
            except (openai.APIConnectionError, openai.APIStatusError) as e:
                # Client errors other than rate limits are the caller's fault: do not retry.
                status = getattr(e, "status_code", None)
                if status is not None and 400 <= status < 500 and status != 429:
                    raise UsageError(f"server {self.urls[i]} refused the request: {e}") from None
                last_error = e
        raise TTCError(
            f"no server answered after retries ({', '.join(self.urls)}): {last_error}. "
            "Finished questions are saved; rerun the same command once a server is up."
        )

    def _complete(self, client: Any, r: Request) -> list[Completion]:
        p = r.params
        extra: dict[str, Any] = {"include_stop_str_in_output": p.include_stop}
        kwargs: dict[str, Any] = {
            "model": self._model_name(client),
            "prompt": r.prompt,
            "n": len(r.sample_ids),
            "temperature": p.temperature,
            "top_p": p.top_p if p.temperature > 0 else 1.0,
            "max_tokens": p.max_tokens,
            # The sampled token's log-probability, and the top k of each position (token
            # confidences). At least 1, whatever is recorded: the tokens' texts come with
            # them (the completion's token count and ends), and some servers (llama.cpp)
            # read 0 as "none".
            "logprobs": max(1, self.top_logprobs),
            "extra_body": extra,
        }
        if p.stop:
            kwargs["stop"] = list(p.stop)
        if self.per_request_seed and p.temperature > 0:
            kwargs["seed"] = request_seed(p.seed, r)
        resp = client.completions.create(**kwargs)
        prompt_tokens = int(resp.usage.prompt_tokens) if resp.usage else 0
        choices = sorted(resp.choices, key=lambda c: c.index)
        return [self._completion(c, prompt_tokens, p) for c in choices]

    def _completion(self, choice: Any, prompt_tokens: int, params: SamplingParams) -> Completion:
        text = str(choice.text)
        lp = choice.logprobs
        tokens = list(lp.tokens) if lp is not None and lp.tokens else []
        values = list(lp.token_logprobs) if lp is not None and lp.token_logprobs else []
        # One {token text: log-probability} per position: the top k, plus the sampled token
        # when it ranks lower (the k largest are kept). Two alternatives that decode to the
        # same text share one entry, so a position can list fewer than k.
        top = list(lp.top_logprobs) if lp is not None and lp.top_logprobs else []
        tops = [list((alts or {}).values()) for alts in top]
        return vllm_completion(
            text,
            tokens,
            [round(float(v or 0.0), 6) for v in values] if self.logprobs else None,
            choice.finish_reason,
            getattr(choice, "stop_reason", None),  # vLLM's extension of the OpenAI API
            prompt_tokens,
            params,
            top_k_record(tops, self.top_logprobs, self.keep_top_logprobs) if tops else (None, None),
        )
