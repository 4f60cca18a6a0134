"""Token gateway: the run's credential in front of a server that has no authentication of its own.

Chroma 1.x's server (`chroma run`, the Rust frontend in docker://chromadb/chroma) ignores the auth
settings of the 0.x Python server. Such a kind binds its node's loopback on a private port; this
gateway listens where clients reach the service and authenticates each TCP connection: the first
HTTP request on it must carry the run's token (``X-Chroma-Token: T`` or ``Authorization: Bearer T``,
compared in constant time), else it gets 401 and the connection is closed. An authenticated
connection is then relayed byte for byte (keep-alive requests on it ride the same authentication), so
the gateway adds two socket hops per request but no HTTP processing; bench/chroma_client.py measures
its cost. The token comes from the environment (``AIBENCH_GATEWAY_TOKEN``), never the command line.

Before a connection is authenticated it is bounded: its first request head must be complete within
``--header-timeout`` seconds (else 408 and close) and fit in 64 KiB (else 431), and at most
``--max-connections`` connections are open at once (one more gets 503 and is closed at once), so
clients that never finish a head can neither pile up nor hold the gateway. Lines may end in CRLF or a
bare LF (RFC 9112 section 2.2 lets a recipient accept a lone LF as the line terminator); the head is
still relayed exactly as received.
Usage: ``python -m aibench.token_gateway --listen HOST:PORT --upstream HOST:PORT``.
"""

from __future__ import annotations

import argparse
import asyncio
import hmac
import os
import re
import resource
import signal
import sys
from dataclasses import dataclass

TOKEN_ENV = "AIBENCH_GATEWAY_TOKEN"
MAX_HEAD = 64 * 1024
#: a client sends its whole head at once: seconds are ample, and bound what a silent one holds
HEADER_TIMEOUT_S = 5.0
#: above the chroma client's most workers (1024, config/schemas/kinds/chroma-client.schema.yaml),
#: each on its own connection
MAX_CONNECTIONS = 2048
#: the blank line that ends a head: CRLF CRLF, or with bare LFs (RFC 9112 2.2) in either place
HEAD_END = re.compile(rb"\n\r?\n")
UNAUTHORIZED = (
    b"HTTP/1.1 401 Unauthorized\r\nContent-Type: application/json\r\nConnection: close\r\n"
    b'Content-Length: 56\r\n\r\n{"error":"Unauthorized","message":"missing or bad token"}'
)
TOO_LARGE = b"HTTP/1.1 431 Request Header Fields Too Large\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"
BAD_GATEWAY = b"HTTP/1.1 502 Bad Gateway\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"
TIMED_OUT = b"HTTP/1.1 408 Request Timeout\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"
BUSY = b"HTTP/1.1 503 Service Unavailable\r\nRetry-After: 1\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"


@dataclass(frozen=True)
class Limits:
    """What an unauthenticated client may hold: time to send its head, and connection slots."""

    header_timeout_s: float = HEADER_TIMEOUT_S
    max_connections: int = MAX_CONNECTIONS


class _Gate:
    """State all of a gateway's connections share: where to relay, the token, the open-connection count."""

    def __init__(self, upstream: tuple[str, int], token: bytes, limits: Limits) -> None:
        self.upstream, self.token, self.limits = upstream, token, limits
        self.open = 0


def presented_token(head: bytes) -> bytes:
    """The token in a request head's X-Chroma-Token or Authorization (Bearer) header, or b""."""
    for line in head.split(b"\n")[1:]:
        line = line.removesuffix(b"\r")  # CRLF or bare LF line ends alike
        name, _, value = line.partition(b":")
        name = name.strip().lower()
        if name == b"x-chroma-token":
            return value.strip()
        if name == b"authorization" and value.strip()[:7].lower() == b"bearer ":
            return value.strip()[7:].strip()
    return b""


class _Upstream(asyncio.Protocol):
    def __init__(self, client: asyncio.Transport) -> None:
        self.client = client

    def data_received(self, data: bytes) -> None:
        self.client.write(data)

    def connection_lost(self, exc: Exception | None) -> None:
        self.client.close()


class _Connection(asyncio.Protocol):
    """One client connection: hold bytes until the first request head is complete and checked."""

    def __init__(self, gate: _Gate) -> None:
        self.gate = gate
        self.pending = b""
        self.relay: asyncio.Transport | None = None
        self.checked = False
        self.deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport: asyncio.Transport = transport  # type: ignore[assignment]
        self.gate.open += 1  # undone in connection_lost, which follows every close, refusals too
        if self.gate.open > self.gate.limits.max_connections:
            self._refuse(BUSY)
            return
        loop = asyncio.get_running_loop()
        self.deadline = loop.call_later(self.gate.limits.header_timeout_s, self._refuse, TIMED_OUT)

    def data_received(self, data: bytes) -> None:
        if self.relay is not None:
            self.relay.write(data)
            return
        if self.transport.is_closing():
            return  # refused already: nothing more is read or relayed
        self.pending += data
        if self.checked:
            return  # still connecting upstream: keep the bytes
        end = HEAD_END.search(self.pending)
        if end is None:
            if len(self.pending) > MAX_HEAD:
                self._refuse(TOO_LARGE)
            return
        if not hmac.compare_digest(presented_token(self.pending[: end.start()]), self.gate.token):
            self._refuse(UNAUTHORIZED)
            return
        self.checked = True
        self._cancel_deadline()  # authenticated: from here on the backend's own timeouts apply
        asyncio.get_running_loop().create_task(self._connect())

    async def _connect(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            relay, _ = await loop.create_connection(lambda: _Upstream(self.transport), *self.gate.upstream)
        except OSError:
            self._refuse(BAD_GATEWAY)
            return
        if self.transport.is_closing():
            relay.close()
            return
        self.relay = relay  # type: ignore[assignment]
        relay.write(self.pending)  # type: ignore[attr-defined]
        self.pending = b""

    def _refuse(self, answer: bytes) -> None:
        self._cancel_deadline()
        if not self.transport.is_closing():
            self.transport.write(answer)
            self.transport.close()

    def _cancel_deadline(self) -> None:
        if self.deadline is not None:
            self.deadline.cancel()
            self.deadline = None

    def connection_lost(self, exc: Exception | None) -> None:
        self.gate.open -= 1
        self._cancel_deadline()
        if self.relay is not None:
            self.relay.close()


async def serve(listen: str, upstream: str, token: str, limits: Limits = Limits()) -> None:
    host, _, port = listen.rpartition(":")
    up_host, _, up_port = upstream.rpartition(":")
    loop = asyncio.get_running_loop()
    gate = _Gate((up_host, int(up_port)), token.encode(), limits)
    server = await loop.create_server(lambda: _Connection(gate), host, int(port), reuse_address=True)
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    print(f"token gateway: {listen} -> {upstream}", flush=True)
    async with server:
        await stop.wait()


def fit_descriptors(max_connections: int) -> int:
    """Raise the open-file limit so the cap, not EMFILE, refuses the connection beyond it: each relayed
    connection takes two descriptors. Returns the cap the hard limit allows."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    spare = 64  # the listener, stdio, the event loop's own
    wanted = 2 * max_connections + spare
    if hard != resource.RLIM_INFINITY and wanted > hard:
        wanted, max_connections = hard, max(1, (hard - spare) // 2)
    if soft != resource.RLIM_INFINITY and soft < wanted:
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
    return max_connections


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="aibench.token_gateway", description=__doc__.splitlines()[0])
    parser.add_argument("--listen", required=True, help="HOST:PORT clients connect to")
    parser.add_argument("--upstream", required=True, help="HOST:PORT of the server behind the gateway")
    parser.add_argument(
        "--header-timeout", type=float, default=HEADER_TIMEOUT_S, help="seconds to send the first head (408)"
    )
    parser.add_argument(
        "--max-connections", type=int, default=MAX_CONNECTIONS, help="connections open at once (503 beyond)"
    )
    args = parser.parse_args(argv)
    token = os.environ.get(TOKEN_ENV, "")
    if len(token) < 16:
        print(f"token gateway: {TOKEN_ENV} must hold the run's token (16+ characters)", file=sys.stderr)
        return 2
    cap = fit_descriptors(args.max_connections)
    if cap < args.max_connections:
        print(f"token gateway: the open-file limit allows {cap} connections", file=sys.stderr)
    asyncio.run(serve(args.listen, args.upstream, token, Limits(args.header_timeout, cap)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
