"""The wire protocols an LLM client speaks: request bodies and streamed-response parsing.

OpenAI-compatible (/v1/chat/completions, /v1/completions; Server-Sent Events, usage in the last
chunk with stream_options.include_usage) and Ollama's native API (/api/generate, /api/chat; NDJSON,
server-side timings in the final object).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

APIS = ("openai-chat", "openai-completions", "ollama-generate", "ollama-chat")
#: Ollama's server-side timings kept as their own columns (nanoseconds, as Ollama reports them)
OLLAMA_TIMINGS = ("total_duration", "load_duration", "prompt_eval_duration", "eval_duration")


@dataclass
class Event:
    """What one line of a stream carried: content text, token counts, server timings, the end."""

    text: str = ""
    prompt_tokens: int | None = None
    output_tokens: int | None = None
    #: the server's own count of generated tokens outside ``usage`` (llama.cpp's timings.predicted_n,
    #: or tokens_predicted of its /completion API), as (count, where it was read)
    server_count: tuple[int, str] | None = None
    timings: dict[str, int] = field(default_factory=dict)
    done: bool = False
    error: str | None = None


def request(
    api: str, model: str, prompt: str, max_tokens: int, extra: dict[str, Any] | None = None
) -> tuple[str, dict]:
    """(path, JSON body) of one streaming request."""
    extra = extra or {}
    if api == "openai-chat":
        body = {"model": model, "messages": [{"role": "user", "content": prompt}], "max_tokens": max_tokens}
        return "/v1/chat/completions", {
            **body,
            "stream": True,
            "stream_options": {"include_usage": True},
            **extra,
        }
    if api == "openai-completions":
        body = {"model": model, "prompt": prompt, "max_tokens": max_tokens}
        return "/v1/completions", {**body, "stream": True, "stream_options": {"include_usage": True}, **extra}
    options = {"num_predict": max_tokens, **extra.pop("options", {})}
    if api == "ollama-generate":
        return "/api/generate", {
            "model": model,
            "prompt": prompt,
            "stream": True,
            "options": options,
            **extra,
        }
    if api == "ollama-chat":
        messages = [{"role": "user", "content": prompt}]
        return "/api/chat", {
            "model": model,
            "messages": messages,
            "stream": True,
            "options": options,
            **extra,
        }
    raise ValueError(f"unknown api {api!r} (known: {', '.join(APIS)})")


def parse_sse(line: bytes) -> Event | None:
    """One line of an OpenAI-compatible SSE stream (None for blank lines and comments)."""
    text = line.decode("utf-8", errors="replace").strip()
    if not text.startswith("data:"):
        return None
    payload = text[5:].strip()
    if payload == "[DONE]":
        return Event(done=True)
    data = json.loads(payload)
    if "error" in data:
        return Event(error=str(data["error"]), done=True)
    event = Event()
    for choice in data.get("choices") or []:
        delta = choice.get("delta") or {}
        event.text += delta.get("content") or choice.get("text") or ""
    usage = data.get("usage")
    if usage:
        event.prompt_tokens = usage.get("prompt_tokens")
        event.output_tokens = usage.get("completion_tokens")
    timings = data.get("timings")
    if isinstance(timings, dict) and isinstance(timings.get("predicted_n"), int):
        event.server_count = (timings["predicted_n"], "timings:predicted_n")
    elif isinstance(data.get("tokens_predicted"), int):
        event.server_count = (data["tokens_predicted"], "tokens_predicted")
    return event


def parse_ndjson(line: bytes) -> Event | None:
    """One line of an Ollama NDJSON stream."""
    text = line.decode("utf-8", errors="replace").strip()
    if not text:
        return None
    data = json.loads(text)
    if "error" in data:
        return Event(error=str(data["error"]), done=True)
    message = data.get("message") or {}
    event = Event(text=data.get("response") or message.get("content") or "")
    if data.get("done"):
        event.done = True
        event.prompt_tokens = data.get("prompt_eval_count")
        event.output_tokens = data.get("eval_count")
        event.timings = {k: int(data[k]) for k in OLLAMA_TIMINGS if k in data}
    return event


def parser(api: str):
    return parse_ndjson if api.startswith("ollama") else parse_sse
