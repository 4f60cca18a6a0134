"""The LLM client's handling of a stream's lines (aibench.clients.llm.load._take): events into the
record, a malformed line an error of that request (not of the whole load)."""

from __future__ import annotations

from aibench.clients.llm import load, protocols


def test_lines_go_into_the_record_and_a_broken_one_ends_it_as_an_error() -> None:
    record = load.Record(0, False, intended=0.0)
    lines = [b'data: {"choices": [{"text": "a"}]}', b"", b'data: {"choices": [{"text": "b"}]}']
    assert not load._take(lines, protocols.parse_sse, record, 1.5, ollama=False)
    assert (record.chunks, record.text, record.status) == ([1.5, 1.5], "ab", "ok")  # one block: one time
    assert load._take([b'data: {"choices": [{"te'], protocols.parse_sse, record, 2.0, ollama=False)
    assert record.status == "error" and record.error.startswith("malformed stream line")
    usage = load.Record(1, False, intended=0.0)
    done = [b'data: {"choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": 2}}', b"data: [DONE]"]
    assert not load._take(done, protocols.parse_sse, usage, 1.0, ollama=False)
    assert (usage.output_tokens, usage.token_source) == (2, "usage")
