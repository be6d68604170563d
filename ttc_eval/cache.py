"""Generation cache: one SQLite row per sample, keyed on everything that decides it.

Key = model fingerprint, backend, rendered prompt, sampling parameters (seed included), the
sample's index in its pool and, when the backend records token confidences, their k and
whether it keeps the raw top-k; so sampled outputs are cached too, and a larger pool reuses
the samples a smaller one already drew. Entries written before confidences were recorded
are keyed without a k: a backend that records them does not read those (it draws the sample
again, with its confidences, under its own key). A backend told to record less (no token
log-probabilities, no confidences: what a run that reads none asks for) has its own key, and
is also served a sample stored with more, stripped of what it did not ask for.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
from collections.abc import Mapping, Sequence
from dataclasses import replace
from functools import partial
from pathlib import Path

from ttc_eval.backends._base import DEFAULT_TOP_LOGPROBS, Backend, NextTokenScorer
from ttc_eval.errors import TTCError, UsageError
from ttc_eval.types import Completion, Request


class CacheError(TTCError):
    """The generation cache cannot be read or written; the message says how to recover."""

    exit_code = 2


class GenerationCache:
    """A process-safe key-value store of completions (SQLite in WAL mode).

    Opened and checked before any model loads, so a damaged file is reported in a second,
    not after minutes of loading; any later SQLite failure is reported the same way.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            # One connection for the run, used by whichever thread generates (a search on a
            # concurrent backend); the lock keeps its statements apart.
            self.db = sqlite3.connect(str(path), timeout=60, check_same_thread=False)
            self._lock = threading.Lock()
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute(
                "CREATE TABLE IF NOT EXISTS gen (key TEXT PRIMARY KEY, value TEXT NOT NULL)"
            )
            self.db.commit()
            # Reads the table's pages: garbage past the header shows up here, not mid-run.
            self.db.execute("SELECT key, value FROM gen LIMIT 1").fetchall()
        except (sqlite3.Error, OSError) as e:
            raise self._error(e) from None

    def _error(self, e: Exception) -> CacheError:
        return CacheError(
            f"the generation cache {self.path} cannot be used ({e}). Delete that file (it "
            "only holds reusable samples; run directories keep every result), or run with "
            "--no-cache"
        )

    @staticmethod
    def key(
        fingerprint: str,
        backend: str,
        request: Request,
        sample_id: int,
        top_logprobs: int = 0,
        keep_top_logprobs: bool = False,
        logprobs: bool = True,
    ) -> str:
        parts: list[object] = [
            fingerprint, backend, request.prompt, request.params.to_dict(), sample_id,
        ]  # fmt: skip
        if top_logprobs:
            # Confidences over another k are other numbers: never served across k. Entries
            # with the raw top-k live apart, so that asking for them never replaces a stored
            # sample (an unseeded engine would draw another one).
            keyed: dict[str, object] = {"top_logprobs": top_logprobs}
            if keep_top_logprobs:
                keyed["raw"] = True
            parts.append(keyed)
        if not logprobs:
            parts.append({"logprobs": False})
        blob = json.dumps(parts, sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()

    def get_many(self, keys: Sequence[str]) -> dict[str, Completion]:
        found: dict[str, Completion] = {}
        try:
            with self._lock:
                rows = []
                for i in range(0, len(keys), 500):
                    chunk = list(keys[i : i + 500])
                    q = f"SELECT key, value FROM gen WHERE key IN ({','.join('?' * len(chunk))})"
                    rows += self.db.execute(q, chunk).fetchall()
            for k, v in rows:
                try:
                    found[k] = Completion.from_dict(json.loads(v))
                except (ValueError, KeyError, TypeError):
                    continue  # an unreadable entry is a miss: the sample is generated again
        except sqlite3.Error as e:
            raise self._error(e) from None
        return found

    def put_many(self, items: Mapping[str, Completion]) -> None:
        rows = [(k, json.dumps(c.to_dict())) for k, c in items.items()]
        try:
            with self._lock:
                self.db.executemany("INSERT OR REPLACE INTO gen VALUES (?, ?)", rows)
                self.db.commit()
        except sqlite3.Error as e:
            raise self._error(e) from None


class CachedBackend:
    """Wraps a backend: serves cached samples, generates only the missing ones, counts both."""

    def __init__(self, inner: Backend, cache: GenerationCache | None) -> None:
        self.inner = inner
        self.cache = cache
        self.name = inner.name
        self.fingerprint = inner.fingerprint
        self.version = inner.version
        self.top_logprobs = inner.top_logprobs
        self.keep_top_logprobs = inner.keep_top_logprobs
        self.logprobs = inner.logprobs
        # A concurrent backend's callers (a search's questions) share the counters.
        self._count = threading.Lock()
        self.generated_samples = 0
        self.generated_tokens = 0
        self.cached_samples = 0

    @property
    def concurrent(self) -> bool:
        return self.inner.concurrent

    def render(self, messages: Sequence[Mapping[str, str]]) -> str:
        return self.inner.render(messages)

    def next_token_logprobs(
        self, prompts: Sequence[str], options: Sequence[str]
    ) -> tuple[list[dict[str, float]], int]:
        """Passed through uncached (a forward pass is cheap next to generation)."""
        if not isinstance(self.inner, NextTokenScorer):
            raise UsageError(f"backend {self.name} cannot score next tokens (needed by self-judge)")
        return self.inner.next_token_logprobs(prompts, options)

    def parameter_counts(self) -> dict[str, int] | None:
        return self.inner.parameter_counts()

    def close(self) -> None:
        self.inner.close()

    def _key(self, request: Request, sample_id: int) -> str:
        return GenerationCache.key(
            self.fingerprint,
            self.name,
            request,
            sample_id,
            self.top_logprobs,
            self.keep_top_logprobs,
            self.logprobs,
        )

    def _richer_keys(self, request: Request, sample_id: int) -> list[str]:
        """Keys of the same sample recorded with more than this backend records (its
        log-probabilities; the default top-5 confidences), for a backend told to record
        less; none when it records everything it can be asked for."""
        if self.keep_top_logprobs:
            return []
        k = self.top_logprobs
        key = partial(GenerationCache.key, self.fingerprint, self.name, request, sample_id)
        richer = [] if self.logprobs else [key(k)]
        if k == 0:
            richer.append(key(DEFAULT_TOP_LOGPROBS))
            if not self.logprobs:  # what a confidence-reading run without logprob writes
                richer.append(key(DEFAULT_TOP_LOGPROBS, False, False))
        return richer

    def _strip(self, c: Completion) -> Completion:
        """A stored sample with only what this backend records."""
        if not self.logprobs and c.token_logprobs is not None:
            c = replace(c, token_logprobs=None)
        if self.top_logprobs == 0 and c.token_confidences is not None:
            c = replace(c, token_confidences=None, top_logprobs=None)
        return c

    def _lookup(self, requests: Sequence[Request], keys: list[list[str]]) -> dict[str, Completion]:
        """Stored samples by this backend's key, own entries first, then richer ones."""
        if not self.cache:
            return {}
        hits = self.cache.get_many([k for ks in keys for k in ks])
        wanted = {
            k: self._richer_keys(r, s)
            for r, ks in zip(requests, keys, strict=True)
            for s, k in zip(r.sample_ids, ks, strict=True)
            if k not in hits
        }
        if any(wanted.values()):
            found = self.cache.get_many([x for xs in wanted.values() for x in xs])
            for k, xs in wanted.items():
                hit = next((found[x] for x in xs if x in found), None)
                if hit is not None:
                    hits[k] = self._strip(hit)
        return hits

    def generate(self, requests: Sequence[Request]) -> list[list[Completion]]:
        keys = [[self._key(r, s) for s in r.sample_ids] for r in requests]
        hits = self._lookup(requests, keys)
        missing: list[Request] = []
        where: list[int] = []
        for ri, (r, ks) in enumerate(zip(requests, keys, strict=True)):
            todo = tuple(s for s, k in zip(r.sample_ids, ks, strict=True) if k not in hits)
            if todo:
                missing.append(Request(r.prompt, r.params, todo))
                where.append(ri)
        fresh: dict[str, Completion] = {}
        if missing:
            for ri, req, comps in zip(where, missing, self.inner.generate(missing), strict=True):
                for s, c in zip(req.sample_ids, comps, strict=True):
                    fresh[self._key(requests[ri], s)] = c
            if self.cache:
                self.cache.put_many(fresh)
        with self._count:
            self.generated_samples += len(fresh)
            self.generated_tokens += sum(c.n_tokens for c in fresh.values())
            self.cached_samples += len(hits)
        return [[hits.get(k) or fresh[k] for k in ks] for ks in keys]
