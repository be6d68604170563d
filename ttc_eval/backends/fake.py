"""The ``fake`` backend: scripted, deterministic outputs for fast tests of the machinery.

Never evidence that a feature works on a model; it exists so that selection, resume and
caching can be tested in milliseconds.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Mapping, Sequence
from typing import ClassVar

from ttc_eval.backends._base import check_top_logprobs, top_k_record, truncate_at_stop
from ttc_eval.registry import backend
from ttc_eval.types import Completion, Request

Script = Callable[[str, int, int], str]


def _u(*parts: object) -> float:
    h = hashlib.sha256("|".join(map(str, parts)).encode()).digest()
    return int.from_bytes(h[:8], "little") / 2**64


def arithmetic_script(p_correct: float = 0.5) -> Script:
    """Answers "What is a op b?" in two steps separated by a blank line, the answer correct
    with probability ``p_correct`` per sample (else off by a little). A prompt that already
    holds a partial solution (after ``<assistant>``) gets only the final step."""

    def script(prompt: str, sample_id: int, seed: int) -> str:
        prefix = prompt.partition("<assistant>")[2]
        m = re.findall(r"What is (-?\d+) ([+\-×]) (-?\d+)\?", prompt)
        if not m:
            return f"I think the answer is \\boxed{{{sample_id}}}"
        a, op, b = m[-1]
        value = int(a) + int(b) if op == "+" else int(a) - int(b) if op == "-" else int(a) * int(b)
        if _u(prompt, sample_id, seed) >= p_correct:
            value += 1 + int(_u("off", prompt, sample_id, seed) * 3)
        last = f"So the result is \\boxed{{{value}}}"
        return last if prefix else f"We compute {a} {op} {b}.\n\n{last}"

    return script


def _ends(words: Sequence[str]) -> list[int]:
    ends, acc = [], 0
    for w in words:
        acc += len(w)
        ends.append(acc)
    return ends


@backend("fake")
class FakeBackend:
    """Scripted outputs (default: arithmetic answers, half of them right); for tests only."""

    name = "fake"
    version = "1"
    """Bumped whenever a script's output for the same (prompt, sample, seed) changes."""
    takes_seed: ClassVar[bool] = False
    """Seeded per request from the sampling parameters, not once at start."""
    takes_threads: ClassVar[bool] = False
    """Whether it takes ``threads`` (CPU threads of this process; hf only)."""
    concurrent: ClassVar[bool] = False
    """Whether calls from several threads at once share a batch (vllm only)."""

    def __init__(
        self,
        model: str = "fake",
        script: Script | None = None,
        p_correct: float = 0.5,
        progress: bool = False,
        top_logprobs: int = 5,
        keep_top_logprobs: bool = False,
        logprobs: bool = True,
    ) -> None:
        self.fingerprint = f"fake:{model}:{p_correct}"
        self.top_logprobs = check_top_logprobs(top_logprobs)
        self.keep_top_logprobs = bool(keep_top_logprobs)
        self.logprobs = bool(logprobs)
        self.script = script or arithmetic_script(p_correct)
        self.calls: list[list[Request]] = []

    def parameter_counts(self) -> dict[str, int] | None:
        return None  # scripted: there is no model

    def close(self) -> None:
        return None  # scripted: there is no engine

    def render(self, messages: Sequence[Mapping[str, str]]) -> str:
        return "".join(f"<{m['role']}>{m['content']}\n" for m in messages) + "<assistant>"

    def generate(self, requests: Sequence[Request]) -> list[list[Completion]]:
        self.calls.append(list(requests))
        out = []
        for r in requests:
            comps = []
            for sid in r.sample_ids:
                # Greedy decoding has one answer: the sample index does not matter.
                idx = sid if r.params.temperature > 0 else 0
                text = self.script(r.prompt, idx, r.params.seed)
                words = re.findall(r"\S+\s*", text) or [text]
                reason, stop_reason = "stop", None
                if len(words) > r.params.max_tokens:
                    words, reason = words[: r.params.max_tokens], "length"
                    text = "".join(words)
                cut = truncate_at_stop(text, _ends(words), r.params.stop, r.params.include_stop)
                if cut is not None:
                    text, _, stop_reason = cut
                    words, reason = re.findall(r"\S+\s*", text) or [text], "stop"
                ends = _ends(words)
                lps = tuple(-_u("lp", r.prompt, idx, i) for i in range(len(words)))
                # Scripted alternatives: the sampled token's log-probability and k - 1 lower
                # ones, so that confidences are deterministic and vary by token.
                top = [
                    [lp, *(lp - 1 - _u("alt", r.prompt, idx, i, j) * 4 for j in range(1, 20))]
                    for i, lp in enumerate(lps)
                ]
                confidences, raw = top_k_record(top, self.top_logprobs, self.keep_top_logprobs)
                comps.append(
                    Completion(
                        text=text,
                        n_tokens=len(words),
                        finish_reason=reason,
                        stop_reason=stop_reason,
                        prompt_tokens=len(r.prompt.split()),
                        token_logprobs=lps if self.logprobs else None,
                        token_ends=tuple(ends),
                        token_confidences=confidences,
                        top_logprobs=raw,
                    )
                )
            out.append(comps)
        return out
