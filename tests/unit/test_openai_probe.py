"""The readiness probe of key-protected OpenAI-compatible servers: a wrong model name or a server that
answers without the key is an error no waiting mends (ServiceError at once, not a readiness timeout)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from aibench import probes
from aibench.errors import ServiceError


class Handler(BaseHTTPRequestHandler):
    served = "2"  # what a plain string given to xllamacpp's set-typed model_alias served
    open_to_all = False

    def _answer(self, status: int, body: dict) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        self._answer(200, {"data": [{"id": self.served}]})

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        keyed = self.headers.get("Authorization") == "Bearer k"
        self._answer(200 if keyed or self.open_to_all else 401, {"choices": []})

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def server() -> Iterator[str]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    Handler.served, Handler.open_to_all = "2", False


def test_a_server_serving_another_name_than_the_alias_fails_at_once(server: str) -> None:
    with pytest.raises(ServiceError, match=r"serves \['2'\], not the model 'smollm2'"):
        probes.openai_ready(server, "k", 5, model="smollm2")
    Handler.served = "smollm2"
    probes.openai_ready(server, "k", 5, model="smollm2")  # the alias served whole: ready


def test_a_server_answering_without_the_key_fails_at_once(server: str) -> None:
    probes.refuses_without_key(f"{server}/v1/completions", 5)  # 401: as it must
    Handler.open_to_all = True
    with pytest.raises(ServiceError, match="without the API key: HTTP 200, expected 401"):
        probes.refuses_without_key(f"{server}/v1/completions", 5)
