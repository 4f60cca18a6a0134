"""Offered load: closed loop (N concurrent workers) and open loop (a fixed, seeded schedule).

Every request records its intended and actual send times, the arrival time of every content chunk,
token counts with their source, and its status. Times are seconds from one monotonic origin.
In the open loop, latency counts from the intended send time (no coordinated omission).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import math
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import aiohttp

from aibench.clients import progress
from aibench.clients.arrivals import schedule
from aibench.clients.llm import protocols
from aibench.clients.stopping import CHECK_S


@dataclass
class Record:
    index: int
    warmup: bool
    intended: float
    actual: float = float("nan")
    chunks: list[float] = field(default_factory=list)
    end: float = float("nan")
    prompt_tokens: int | None = None
    output_tokens: int | None = None
    token_source: str = ""
    timings: dict[str, int] = field(default_factory=dict)
    status: str = "ok"
    error: str = ""
    closed_loop: bool = False
    text: str = ""
    origin: float = 0.0  # perf_counter() of the load's time origin (times above are relative to it)
    trial: int = 0  # SLO search: which load this request belonged to
    trial_value: float = 0.0
    replica: int = 0  # which of the service's replicas served it (round robin by index)
    node: int = 0  # which client node sent it (its rank; experiment client_nodes)

    def shifted(self, seconds: float) -> None:
        """Move every time of the request by ``seconds`` (onto another time axis)."""
        self.intended += seconds
        self.actual += seconds
        self.end += seconds
        self.chunks = [c + seconds for c in self.chunks]


@dataclass(frozen=True)
class Target:
    base_url: str
    api: str
    model: str
    api_key: str | None
    max_tokens: int
    request_timeout_s: float
    extra: dict[str, Any] = field(default_factory=dict)
    #: keep-alive connections reused across requests (the endpoint's ``reuse_connections``, its kind's)
    reuse_connections: bool = True


async def send(
    session: aiohttp.ClientSession, target: Target, prompt: str, record: Record, origin: float
) -> None:
    """One streamed request into ``record``; a failure is recorded, never retried."""
    path, body = protocols.request(target.api, target.model, prompt, target.max_tokens, dict(target.extra))
    parse = protocols.parser(target.api)
    headers = {"Authorization": f"Bearer {target.api_key}"} if target.api_key else {}
    record.actual = time.perf_counter() - origin  # refined to the moment the headers are written
    sent = SimpleNamespace(record=record, origin=origin)
    try:
        async with session.post(
            target.base_url + path, json=body, headers=headers, trace_request_ctx=sent
        ) as response:
            if response.status != 200:
                record.status, record.error = (
                    "error",
                    f"HTTP {response.status}: {(await response.text())[:200]}",
                )
                return
            # whatever bytes arrived, split into lines here: one wake-up per received block rather than
            # per line (a 16-chunk SSE answer is 36 lines), and every line of a block stamped with the
            # moment the block arrived
            pending = b""
            ollama = target.api.startswith("ollama")
            async for block in response.content.iter_any():
                now = time.perf_counter() - origin
                *lines, pending = (pending + block).split(b"\n")
                if _take(lines, parse, record, now, ollama):
                    return
            _take([pending], parse, record, time.perf_counter() - origin, ollama)  # no final newline
    except (TimeoutError, aiohttp.ClientError) as exc:
        record.status, record.error = "error", f"{type(exc).__name__}: {exc}"[:200]
    finally:
        record.end = time.perf_counter() - origin
    if record.status == "ok" and not record.chunks:
        record.status, record.error = "error", "no content received"
    if record.output_tokens is None and record.chunks:
        record.output_tokens, record.token_source = len(record.chunks), "chunks"


def _take(lines: list[bytes], parse: Any, record: Record, now: float, ollama: bool) -> bool:
    """The stream's lines that arrived at ``now`` into ``record``; True once it has ended (an error
    event, or Ollama's final object)."""
    for line in lines:
        try:
            event = parse(line)
        except ValueError as exc:  # not JSON: a stream cut mid-line, or not the API asked for
            record.status, record.error = "error", f"malformed stream line ({exc}): {line[:100]!r}"[:200]
            return True
        if event is None:
            continue
        if event.error:
            record.status, record.error = "error", event.error[:200]
            return True
        if event.text:
            record.chunks.append(now)
            record.text += event.text
        if event.output_tokens is not None:
            record.prompt_tokens = event.prompt_tokens
            record.output_tokens = event.output_tokens
            record.token_source = "ollama:eval_count" if ollama else "usage"
        elif event.server_count is not None and record.token_source != "usage":
            record.output_tokens, record.token_source = event.server_count
        record.timings.update(event.timings)
        if event.done and ollama:
            return True
    return False


async def _on_headers_sent(session: Any, context: SimpleNamespace, params: Any) -> None:
    """The request is on the wire: this is "request sent" (closed loop: also its intended time)."""
    sent = context.trace_request_ctx
    if sent is not None:
        sent.record.actual = time.perf_counter() - sent.origin
        if sent.record.closed_loop:
            sent.record.intended = sent.record.actual


def tracing() -> aiohttp.TraceConfig:
    config = aiohttp.TraceConfig()
    config.on_request_headers_sent.append(_on_headers_sent)
    return config


LOG = logging.getLogger("aibench.client")


@contextlib.contextmanager
def no_full_collections() -> Iterator[None]:
    """No full (generation-2) garbage collection while a load runs: one took ~40 ms near the 10,000th
    request (seen with gc.callbacks) and every send scheduled within it went late (p99 queue delay
    50-90 ms at 1,500 requests/s, 2-3 ms without, bench/llm_client_capacity.py). The young generations
    still collect the short-lived garbage of each request; the full collection runs once it is over."""
    thresholds = gc.get_threshold()
    gc.set_threshold(thresholds[0], thresholds[1], 1_000_000)
    try:
        yield
    finally:
        gc.set_threshold(*thresholds)
        gc.collect()


async def run(target: Target | list[Target], prompts: list[str], **load: Any) -> tuple[list[Record], float]:
    """:func:`_run` (the load itself; its parameters) with no full garbage collection in it."""
    with no_full_collections():
        return await _run(target, prompts, **load)


async def _run(
    target: Target | list[Target],
    prompts: list[str],
    *,
    mode: str,
    concurrency: int,
    rate: float,
    arrival: str,
    seed: int,
    requests: int,
    duration_s: float,
    warmup_requests: int,
    ramp_up_s: float = 0.0,
    phase_s: float = 0.0,
    stop_when: Callable[[list[Record]], bool] | None = None,
    max_duration_s: float = 0.0,
) -> tuple[list[Record], float]:
    """Run the load; returns the records and the wall-clock time of the origin. With several targets
    (the replicas of one service), request ``i`` goes to target ``i mod n`` (round robin). ``phase_s``
    delays every intended send of the open loop (one client node's share of a constant schedule).
    ``stop_when`` (a precision target: aibench.clients.llm.stopping) is asked every CHECK_S from the
    first measured send on: once it says so, no further request is sent (those in flight complete);
    ``max_duration_s`` bounds the measured phase besides ``requests`` and ``duration_s``."""
    targets = target if isinstance(target, list) else [target]

    def target_of(record: Record) -> Target:
        record.replica = record.index % len(targets)
        return targets[record.replica]

    limit = max(concurrency, 1) if mode == "closed" else 0
    # a server that closes its connection after each answer while announcing keep-alive (llama-server)
    # gets a connection per request: reusing one fails before the close is seen
    connector = aiohttp.TCPConnector(limit=limit, force_close=not all(t.reuse_connections for t in targets))
    timeout = aiohttp.ClientTimeout(total=targets[0].request_timeout_s)
    records: list[Record] = []
    total = warmup_requests + requests if requests else None
    horizon = min(duration_s or math.inf, max_duration_s or math.inf)
    tracker = progress.start(total, horizon if math.isfinite(horizon) else None)
    stopped = [False]  # set by the precision target's watch
    async with aiohttp.ClientSession(
        connector=connector, timeout=timeout, trace_configs=[tracing()]
    ) as session:
        if mode == "closed":
            origin_wall, origin = time.time(), time.perf_counter()

            async def phase(first: int, last: int | None, deadline: float, ramp: bool) -> None:
                """Requests first..last-1 (None: until ``deadline``, seconds from the origin) by
                ``concurrency`` workers, each sending its next request when its previous one ends."""
                counter = iter(range(first, last if last is not None else 10**9))

                async def worker(number: int) -> None:
                    if ramp and ramp_up_s:  # workers start evenly spread, so requests do not arrive in bursts
                        await asyncio.sleep(ramp_up_s * number / concurrency)
                    while True:
                        index = next(counter, None)
                        now = time.perf_counter() - origin
                        if index is None or now >= deadline or stopped[0]:
                            return
                        record = Record(
                            index, index < warmup_requests, intended=now, closed_loop=True, origin=origin
                        )
                        records.append(record)
                        await send(session, target_of(record), prompts[index % len(prompts)], record, origin)
                        tracker.completed(record.status == "ok")

                await asyncio.gather(*(worker(n) for n in range(concurrency)))

            # the warm-up ends before the measured requests begin: none of them shares the server with
            # a warm-up request, so the window (from the first measured send) holds only measured work
            if warmup_requests:
                await phase(0, warmup_requests, float("inf"), ramp=True)
            start = time.perf_counter() - origin
            async with _watching(stop_when, records, stopped):
                await phase(warmup_requests, total, start + horizon, ramp=not warmup_requests)
        else:
            count = total if total is not None else warmup_requests + int(horizon * rate) + 1
            offsets = [phase_s + o for o in schedule(count, rate, arrival, seed)]
            tasks = []
            origin_wall, origin = time.time(), time.perf_counter()
            async with _watching(stop_when, records, stopped):
                for index, offset in enumerate(offsets):
                    if offset >= horizon or stopped[0]:
                        break
                    delay = offset - (time.perf_counter() - origin)
                    if delay > 0:
                        await asyncio.sleep(delay)
                    record = Record(index, index < warmup_requests, intended=float(offset), origin=origin)
                    records.append(record)
                    prompt = prompts[index % len(prompts)]
                    task = asyncio.create_task(send(session, target_of(record), prompt, record, origin))
                    task.add_done_callback(lambda _, r=record: tracker.completed(r.status == "ok"))
                    tasks.append(task)
                await asyncio.gather(*tasks)
        tracker.finish()  # the token counts below complete no request: not a stall
        for number, one in enumerate(targets):
            await count_tokens(session, one, [r for r in records if r.replica == number])
    return sorted(records, key=lambda r: r.index), origin_wall


@contextlib.asynccontextmanager
async def _watching(
    stop_when: Callable[[list[Record]], bool] | None, records: list[Record], stopped: list[bool]
) -> AsyncIterator[None]:
    """While the measured phase runs: ``stop_when`` asked every CHECK_S, ``stopped[0]`` set once it says
    so. Its task is cancelled and awaited however the phase ends (a failure, the client's time limit)."""

    async def watch() -> None:
        try:
            while not stopped[0]:
                await asyncio.sleep(CHECK_S)
                stopped[0] = stop_when(records)  # type: ignore[misc]
        except Exception:  # a broken check must not pass unseen: the load then runs to its cap
            LOG.exception("the precision target's check failed: the load runs to its cap")

    task = asyncio.create_task(watch()) if stop_when is not None else None
    try:
        yield
    finally:
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)


async def count_tokens(session: aiohttp.ClientSession, target: Target, records: list[Record]) -> None:
    """Output token counts for streams that carried neither usage nor a count of the server's own
    (``send`` prefers those): the server's tokenizer counts the received text (llama.cpp's
    ``POST /tokenize {"content": ...}``, special tokens not added), which can differ from what was
    generated (re-tokenizing 32 generated tokens gave 30-31). Where it cannot, the count of content
    chunks stays, recorded as source "chunks"."""
    missing = [r for r in records if r.token_source == "chunks" and not target.api.startswith("ollama")]
    headers = {"Authorization": f"Bearer {target.api_key}"} if target.api_key else {}
    for record in missing:
        try:
            async with session.post(
                f"{target.base_url}/tokenize", json={"content": record.text, "add_special": False},
                headers=headers,
            ) as response:  # fmt: skip
                if response.status != 200:
                    return
                tokens = (await response.json()).get("tokens")
        except (TimeoutError, aiohttp.ClientError, ValueError):
            return
        if isinstance(tokens, list):
            record.output_tokens, record.token_source = len(tokens), "server-tokenize"
