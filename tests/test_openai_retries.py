"""The openai backend's fault handling against scripted HTTP servers on 127.0.0.1: retries on
429 and 5xx, failover to the next URL, round-robin over URLs, no retry on a client error.
(The real `vllm serve` run and its kill-and-rerun test are in test_server.py.)"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from ttc_eval.errors import TTCError, UsageError
from ttc_eval.types import Request, SamplingParams

pytestmark = pytest.mark.slow  # the backend reads the default model's tokenizer


class Scripted:
    """A completions server whose first ``len(failures)`` POSTs answer with those statuses."""

    def __init__(self, failures: list[int]) -> None:
        self.failures = list(failures)
        self.posts = 0
        self.asked_logprobs: list[int] = []
        self.lock = threading.Lock()
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def _send(self, status: int, body: dict[str, Any]) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.send_header("retry-after-ms", "10")  # keep the client's backoff short
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:
                model = {"id": "m", "object": "model", "created": 0, "owned_by": "t"}
                self._send(200, {"object": "list", "data": [model]})

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with owner.lock:
                    owner.posts += 1
                    owner.asked_logprobs.append(body.get("logprobs"))
                    status = owner.failures.pop(0) if owner.failures else 200
                if status != 200:
                    self._send(status, {"error": {"message": "scripted", "code": status}})
                    return
                # Position 0: the top 5 and a sixth entry (vLLM adds the sampled token when it
                # ranks below k); position 1: two alternatives only (texts that coincide
                # share an entry).
                top = [
                    {"4": -0.5, "5": -1.5, "6": -2.5, "7": -3.0, "8": -3.5, "9": -9.0},
                    {"2": -0.25, "3": -2.0},
                ]
                lp = {
                    "tokens": ["4", "2"],
                    "token_logprobs": [-0.5, -0.25],
                    "top_logprobs": top,
                }
                choices = [
                    {"index": i, "text": "42", "finish_reason": "stop", "logprobs": lp}
                    for i in range(body["n"])
                ]
                usage = {"prompt_tokens": 7, "completion_tokens": 2, "total_tokens": 9}
                self._send(
                    200,
                    {
                        "id": "c", "object": "text_completion", "created": 0, "model": "m",
                        "choices": choices, "usage": usage,
                    },
                )  # fmt: skip

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()


@pytest.fixture
def servers() -> Iterator[list[Scripted]]:
    made: list[Scripted] = []
    yield made
    for s in made:
        s.httpd.shutdown()


def _backend(urls: list[str], max_retries: int) -> Any:
    from ttc_eval.backends.openai_server import OpenAIBackend

    return OpenAIBackend(
        "smollm2-135m", base_url=",".join(urls), max_retries=max_retries, progress=False
    )


def _requests(k: int, n: int = 2) -> list[Request]:
    params = SamplingParams(temperature=0.7, max_tokens=4)
    return [Request(f"prompt {i}", params, tuple(range(n))) for i in range(k)]


def test_rate_limits_and_server_errors_are_retried(servers: list[Scripted]) -> None:
    servers.append(Scripted([429, 503, 500]))
    (out,) = _backend([servers[0].url], max_retries=3).generate(_requests(1))
    assert servers[0].posts == 4  # three failures, then the answer
    assert [c.text for c in out] == ["42", "42"] and out[0].token_logprobs == (-0.5, -0.25)
    # DeepConf confidences of the 5 largest: -(-0.5-1.5-2.5-3.0-3.5)/5 and -(-0.25-2.0)/2.
    assert out[0].token_confidences == (2.2, 1.125) and out[0].top_logprobs is None
    assert set(servers[0].asked_logprobs) == {5}  # the top 5 of each token were asked for


def test_exhausted_retries_fail_over_to_the_next_url(servers: list[Scripted]) -> None:
    servers.append(Scripted([503] * 100))  # down for good
    servers.append(Scripted([]))
    out = _backend([s.url for s in servers], max_retries=1).generate(_requests(4))
    assert all(len(row) == 2 for row in out)
    # Round-robin: two requests start on the broken server, each tried there twice.
    assert servers[0].posts == 4 and servers[1].posts == 4


def test_every_server_down_is_an_error_that_says_rerun(servers: list[Scripted]) -> None:
    servers.append(Scripted([502] * 100))
    with pytest.raises(TTCError, match="rerun"):
        _backend([servers[0].url], max_retries=1).generate(_requests(1))
    assert servers[0].posts == 2


def test_requests_share_the_urls_evenly(servers: list[Scripted]) -> None:
    servers.extend([Scripted([]), Scripted([]), Scripted([])])
    _backend([s.url for s in servers], max_retries=0).generate(_requests(9))
    assert [s.posts for s in servers] == [3, 3, 3]


def test_a_client_error_is_not_retried(servers: list[Scripted]) -> None:
    servers.append(Scripted([400]))
    servers.append(Scripted([]))
    with pytest.raises(UsageError, match="refused"):
        _backend([s.url for s in servers], max_retries=3).generate(_requests(1))
    assert servers[0].posts == 1 and servers[1].posts == 0
