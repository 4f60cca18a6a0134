"""Token gateway: the run's credential in front of a server that has no authentication of its own.

Chroma 1.x's server (`chroma run`, the Rust frontend in docker://chromadb/chroma) ignores the auth
settings of the 0.x Python server. Such a kind binds its node's loopback on a private port; this
gateway listens where clients reach the service and authenticates each TCP connection: the first
HTTP request on it must carry the run's token (``X-Chroma-Token: T`` or ``Authorization: Bearer T``,
compared in constant time), else it gets 401 and the connection is closed. An authenticated
connection is then relayed byte for byte (keep-alive requests on it ride the same authentication), so
the gateway adds two socket hops per request but no HTTP processing; bench/chroma_client.py measures
its cost. The token comes from the environment (``AIBENCH_GATEWAY_TOKEN``), never the command line.
Usage: ``python -m aibench.token_gateway --listen HOST:PORT --upstream HOST:PORT``.
"""

from __future__ import annotations

import argparse
import asyncio
import hmac
import os
import signal
import sys

TOKEN_ENV = "AIBENCH_GATEWAY_TOKEN"
MAX_HEAD = 64 * 1024
UNAUTHORIZED = (
    b"HTTP/1.1 401 Unauthorized\r\nContent-Type: application/json\r\nConnection: close\r\n"
    b'Content-Length: 56\r\n\r\n{"error":"Unauthorized","message":"missing or bad token"}'
)
TOO_LARGE = b"HTTP/1.1 431 Request Header Fields Too Large\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"
BAD_GATEWAY = b"HTTP/1.1 502 Bad Gateway\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"


def presented_token(head: bytes) -> bytes:
    """The token in a request head's X-Chroma-Token or Authorization (Bearer) header, or b""."""
    for line in head.split(b"\r\n")[1:]:
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

    def __init__(self, upstream: tuple[str, int], token: bytes) -> None:
        self.upstream, self.token = upstream, token
        self.pending = b""
        self.relay: asyncio.Transport | None = None
        self.checked = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport: asyncio.Transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        if self.relay is not None:
            self.relay.write(data)
            return
        self.pending += data
        if self.checked:
            return  # still connecting upstream: keep the bytes
        end = self.pending.find(b"\r\n\r\n")
        if end < 0:
            if len(self.pending) > MAX_HEAD:
                self._refuse(TOO_LARGE)
            return
        if not hmac.compare_digest(presented_token(self.pending[:end]), self.token):
            self._refuse(UNAUTHORIZED)
            return
        self.checked = True
        asyncio.get_running_loop().create_task(self._connect())

    async def _connect(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            relay, _ = await loop.create_connection(lambda: _Upstream(self.transport), *self.upstream)
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
        self.transport.write(answer)
        self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        if self.relay is not None:
            self.relay.close()


async def serve(listen: str, upstream: str, token: str) -> None:
    host, _, port = listen.rpartition(":")
    up_host, _, up_port = upstream.rpartition(":")
    loop = asyncio.get_running_loop()
    expected = token.encode()
    server = await loop.create_server(
        lambda: _Connection((up_host, int(up_port)), expected), host, int(port), reuse_address=True
    )
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    print(f"token gateway: {listen} -> {upstream}", flush=True)
    async with server:
        await stop.wait()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="aibench.token_gateway", description=__doc__.splitlines()[0])
    parser.add_argument("--listen", required=True, help="HOST:PORT clients connect to")
    parser.add_argument("--upstream", required=True, help="HOST:PORT of the server behind the gateway")
    args = parser.parse_args(argv)
    token = os.environ.get(TOKEN_ENV, "")
    if len(token) < 16:
        print(f"token gateway: {TOKEN_ENV} must hold the run's token (16+ characters)", file=sys.stderr)
        return 2
    asyncio.run(serve(args.listen, args.upstream, token))
    return 0


if __name__ == "__main__":
    sys.exit(main())
