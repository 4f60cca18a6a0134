"""The token gateway (aibench.token_gateway) as a real process in front of a real HTTP server on
127.0.0.1 (issue 13, item 10): a head not sent in time is closed, connections beyond the cap are
refused while the gateway still serves, bare-LF heads are answered rather than left hanging, and no
request without the token reaches the server. Bounds ("within 10 s") detect hangs; nothing is timed."""

from __future__ import annotations

import os
import resource
import select
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from aibench.ports import free_port
from aibench.token_gateway import TOKEN_ENV, fit_descriptors, presented_token
from tests.conftest import ROOT

TOKEN = "gateway-test-token-0123456789"
BOUND_S = 10.0  # longer than any answer may take: only a hang exceeds it


class Backend(ThreadingHTTPServer):
    """Answers every GET with 200 and the path, keep-alive; records what reached it."""

    daemon_threads = True

    def __init__(self) -> None:
        self.seen: list[str] = []
        super().__init__(("127.0.0.1", 0), Handler)


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, so requests after the first ride one connection

    def do_GET(self) -> None:  # http.server's naming
        self.server.seen.append(self.path)  # type: ignore[attr-defined]
        body = f"ok {self.path}".encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:  # the base's signature
        pass


@pytest.fixture
def backend() -> Iterator[Backend]:
    server = Backend()
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def gateway(backend: Backend) -> Iterator[Callable[..., int]]:
    """Starts `python -m aibench.token_gateway` in front of the backend; returns its port."""
    procs: list[subprocess.Popen] = []

    def start(header_timeout: float = 30, max_connections: int = 100) -> int:
        port = free_port()
        argv = [sys.executable, "-m", "aibench.token_gateway", "--listen", f"127.0.0.1:{port}",
                "--upstream", f"127.0.0.1:{backend.server_address[1]}", "--header-timeout",
                str(header_timeout), "--max-connections", str(max_connections)]  # fmt: skip
        proc = subprocess.Popen(argv, cwd=ROOT, env={**os.environ, TOKEN_ENV: TOKEN}, stdout=subprocess.PIPE)
        procs.append(proc)
        # its "token gateway:" line comes once it listens; a probe connection would use up a slot
        ready, _, _ = select.select([proc.stdout], [], [], 20)
        assert ready and proc.stdout.readline().startswith(b"token gateway:"), "gateway did not start"
        return port

    yield start
    for proc in procs:
        proc.terminate()
        proc.wait(10)


def connect(port: int) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=BOUND_S)
    sock.settimeout(BOUND_S)  # a recv that would hang past the bound raises instead
    return sock


def response(sock: socket.socket) -> tuple[int, bytes]:
    """One HTTP response (status, body) read from ``sock``: by Content-Length, the socket left open."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            raise EOFError(f"closed after {data!r}")
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    fields = dict(line.lower().partition(b":")[::2] for line in lines[1:])
    length = int(fields.get(b"content-length", b"0"))
    while len(body) < length:
        body += sock.recv(65536)
    return int(lines[0].split()[1]), body


def closed(sock: socket.socket) -> bool:
    """The gateway closed ``sock`` (EOF or reset), within the bound."""
    try:
        return sock.recv(1) == b""
    except ConnectionResetError:
        return True


def request(path: str, token: str | None = TOKEN, newline: bytes = b"\r\n") -> bytes:
    lines = [f"GET {path} HTTP/1.1".encode(), b"Host: gateway-test"]
    if token is not None:
        lines.append(b"X-Chroma-Token: " + token.encode())
    return newline.join(lines) + newline + newline


def test_the_token_opens_the_connection_and_keep_alive_rides_it(gateway, backend: Backend) -> None:
    port = gateway()
    with connect(port) as sock:
        sock.sendall(request("/first"))
        assert response(sock) == (200, b"ok /first")
        sock.sendall(request("/second", token=None))  # the same, authenticated connection
        assert response(sock) == (200, b"ok /second")
    with connect(port) as sock:
        sock.sendall(b"GET /bearer HTTP/1.1\r\nAuthorization: Bearer " + TOKEN.encode() + b"\r\n\r\n")
        assert response(sock)[0] == 200
    assert backend.seen == ["/first", "/second", "/bearer"]


def test_a_wrong_or_missing_token_never_reaches_the_backend(gateway, backend: Backend) -> None:
    port = gateway()
    heads = [
        request("/none", token=None),
        request("/wrong", token="gateway-test-token-012345678X"),
        request("/short", token=TOKEN[:-1]),
        request(f"/query?token={TOKEN}", token=None),  # in the URL is not in a header
        b"GET /basic HTTP/1.1\r\nAuthorization: Basic " + TOKEN.encode() + b"\r\n\r\n",
        request("/lf-none", token=None, newline=b"\n"),
        request("/lf-wrong", token="x" * 20, newline=b"\n"),
    ]
    for head in heads:
        with connect(port) as sock:
            sock.sendall(head)
            assert response(sock)[0] == 401, head
            assert closed(sock), head
    assert backend.seen == []


def test_half_sent_headers_are_closed_after_the_timeout(gateway, backend: Backend) -> None:
    port = gateway(header_timeout=1)
    with connect(port) as partial, connect(port) as silent:
        partial.sendall(b"GET /slow HTTP/1.1\r\nHost: x\r\nX-Chroma-Token: " + TOKEN.encode() + b"\r\n")
        assert response(partial)[0] == 408  # answered within the bound: not left open
        assert closed(partial)
        assert response(silent)[0] == 408  # a connection that sends nothing is closed too
    with connect(port) as sock:  # and the gateway still serves
        sock.sendall(request("/after"))
        assert response(sock)[0] == 200
    assert backend.seen == ["/after"]


def test_connections_beyond_the_cap_are_refused_until_the_slow_ones_go(gateway, backend: Backend) -> None:
    cap = 4
    port = gateway(max_connections=cap)
    slow = [connect(port) for _ in range(cap)]
    for sock in slow:
        sock.sendall(b"GET /slow HTTP/1.1\r\nHost: x\r\n")  # never finished
    try:
        for _ in range(3):  # accepted after the slow ones (the listen queue is FIFO), so over the cap
            with connect(port) as extra:
                assert response(extra)[0] == 503
                assert closed(extra)
    finally:
        for sock in slow:
            sock.close()
    # the slots come back once the gateway sees the slow connections close
    deadline = time.monotonic() + BOUND_S
    while True:
        with connect(port) as sock:
            sock.sendall(request("/served"))
            try:
                status, _ = response(sock)
            except (EOFError, ConnectionResetError):
                status = 503  # refused before our request was read
        if status != 503 or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert status == 200
    assert backend.seen == ["/served"]


def test_a_bare_lf_request_is_answered_not_left_hanging(gateway, backend: Backend) -> None:
    # header timeout 30 s: an answer within the 10 s bound is the gateway's parsing, not its timeout
    port = gateway(header_timeout=30)
    with connect(port) as sock:
        sock.sendall(request("/lf", newline=b"\n"))
        assert response(sock) == (200, b"ok /lf")
    with connect(port) as sock:  # a CRLF request line, then bare LFs
        sock.sendall(b"GET /mixed HTTP/1.1\r\nHost: x\nX-Chroma-Token: " + TOKEN.encode() + b"\n\r\n")
        assert response(sock)[0] == 200
    with connect(port) as sock:
        sock.sendall(request("/lf-none", token=None, newline=b"\n"))
        assert response(sock)[0] == 401
    assert backend.seen == ["/lf", "/mixed"]


def test_the_token_is_found_whatever_the_line_ends() -> None:
    token = TOKEN.encode()
    for newline in (b"\r\n", b"\n"):
        assert presented_token(request("/", newline=newline).rstrip()) == token
    assert presented_token(b"GET / HTTP/1.1\r\nAuthorization: bearer " + token + b"\r") == token
    assert presented_token(b"GET /?X-Chroma-Token: " + token + b" HTTP/1.1\r\nHost: x") == b""


def test_the_cap_fits_the_open_file_limit() -> None:
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    if hard == resource.RLIM_INFINITY:
        pytest.skip("no hard open-file limit to fit")
    assert fit_descriptors(10**9) == (hard - 64) // 2  # lowered to what two descriptors each allow
    assert fit_descriptors(8) == 8 and resource.getrlimit(resource.RLIMIT_NOFILE)[0] >= 2 * 8 + 64
