"""A streaming test server that emits chunks on a known schedule (OpenAI SSE and Ollama NDJSON).

Each response: the first content chunk ``ttft_ms`` after the request arrived, then one chunk every
``itl_ms``; ``max_tokens`` (or Ollama's num_predict) chunks in all, then usage / the final Ollama
object. Chunk i is sent at arrival + ttft + i * itl (absolute times, so delays do not add up).
Every content chunk carries its own write time (``t<i>@<perf_counter>``; CLOCK_MONOTONIC, shared by the
processes of one machine), so a client's receive delay can be measured exactly.
Binds 127.0.0.1 only; runs in a child process.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from aiohttp import web

from aibench.ports import free_port
from aibench.probes import poll, tcp


async def until(deadline: float, spin: bool) -> None:
    """Sleep until ``deadline`` (perf_counter). The event loop's timers round to whole milliseconds;
    with ``spin`` the last 2 ms are spent yielding in a tight loop (to within ~0.1 ms), which only
    pays while few streams are active."""
    coarse = deadline - time.perf_counter() - (0.002 if spin else 0)
    if coarse > 0:
        await asyncio.sleep(coarse)
    while spin and time.perf_counter() < deadline:
        await asyncio.sleep(0)


class ScheduledApp:
    """The aiohttp application (run in its own process by :class:`ScheduledServer`)."""

    def __init__(self, ttft_ms: float, itl_ms: float, api_key: str | None) -> None:
        self.ttft_ms, self.itl_ms, self.api_key = ttft_ms, itl_ms, api_key
        self.active = 0

    async def _stream(
        self, request: web.Request, arrival: float, n: int, line: Any, final: Any, content_type: str
    ) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": content_type})
        await response.prepare(request)
        self.active += 1
        try:
            for i in range(n):
                await until(arrival + (self.ttft_ms + i * self.itl_ms) / 1000, spin=self.active <= 8)
                await response.write(line(i))
            await response.write(final(n))
            await response.write_eof()
        finally:
            self.active -= 1
        return response

    def _authorized(self, request: web.Request) -> bool:
        return self.api_key is None or request.headers.get("Authorization") == f"Bearer {self.api_key}"

    async def openai(self, request: web.Request) -> web.StreamResponse:
        arrival = time.perf_counter()  # the schedule counts from the request's arrival
        if not self._authorized(request):
            return web.json_response({"error": {"message": "invalid api key"}}, status=401)
        body = await request.json()
        chat = request.path.endswith("chat/completions")

        def chunk(i: int) -> bytes:
            text = f"t{i}@{time.perf_counter():.6f} "  # the write time, for measurement-error checks
            choice = {"delta": {"content": text}} if chat else {"text": text}
            return f"data: {json.dumps({'choices': [choice]})}\n\n".encode()

        def final(n: int) -> bytes:
            usage = {"prompt_tokens": 7, "completion_tokens": n, "total_tokens": n + 7}
            return f"data: {json.dumps({'choices': [], 'usage': usage})}\n\ndata: [DONE]\n\n".encode()

        return await self._stream(request, arrival, body["max_tokens"], chunk, final, "text/event-stream")

    async def ollama(self, request: web.Request) -> web.StreamResponse:
        arrival = time.perf_counter()
        body = await request.json()
        chat = request.path.endswith("chat")

        def chunk(i: int) -> bytes:
            text = f"t{i}@{time.perf_counter():.6f} "
            part = {"message": {"role": "assistant", "content": text}} if chat else {"response": text}
            head = {"model": body["model"], "created_at": "2024-01-01T00:00:00Z"}
            return (json.dumps({**head, **part, "done": False}) + "\n").encode()

        def final(n: int) -> bytes:
            timings = {"total_duration": 5_000_000, "load_duration": 1_000_000, "prompt_eval_count": 9,
                       "prompt_eval_duration": 2_000_000, "eval_count": n,
                       "eval_duration": 3_000_000}  # fmt: skip
            return (
                json.dumps({"model": body["model"], "done": True, "response": "", **timings}) + "\n"
            ).encode()

        return await self._stream(
            request, arrival, body["options"]["num_predict"], chunk, final, "application/x-ndjson"
        )

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/v1/chat/completions", self.openai)
        app.router.add_post("/v1/completions", self.openai)
        app.router.add_post("/api/generate", self.ollama)
        app.router.add_post("/api/chat", self.ollama)
        return app


class ScheduledServer:
    """The scheduled server in a child process on 127.0.0.1 (its own interpreter: no shared GIL)."""

    def __init__(self, ttft_ms: float = 50, itl_ms: float = 10, api_key: str | None = None) -> None:
        self.port = free_port()
        self.argv = [
            sys.executable,
            "-m",
            "tests.scheduled_llm_server",
            str(self.port),
            str(ttft_ms),
            str(itl_ms),
        ]
        self.argv += [api_key] if api_key else []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> ScheduledServer:
        self.proc = subprocess.Popen(self.argv, cwd=Path(__file__).resolve().parents[1])
        poll(lambda: tcp("127.0.0.1", self.port), 20, 0.02)
        return self

    def __exit__(self, *exc: object) -> None:
        self.proc.terminate()
        self.proc.wait(10)


if __name__ == "__main__":
    port, ttft, itl = int(sys.argv[1]), float(sys.argv[2]), float(sys.argv[3])
    scheduled = ScheduledApp(ttft, itl, sys.argv[4] if len(sys.argv) > 4 else None)
    web.run_app(scheduled.app(), host="127.0.0.1", port=port, access_log=None, print=None)
