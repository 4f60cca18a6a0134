"""A load's progress (aibench.clients.progress): the line a log gets, the remaining time, the stall
warning and its end, and an uncounted tool's time-only line."""

from __future__ import annotations

import logging
import time

import pytest

from aibench.clients import progress


def test_the_line_says_done_of_planned_rate_failures_and_time_left() -> None:
    p = progress.Progress(planned=200, duration_s=None, started=100.0, last=100.0)
    for ok in [True] * 49 + [False]:
        p.completed(ok)
    assert p.line(now=110.0) == "50 of 200 requests (25%), 5.0/s, 1 failed, 10 s elapsed, ~30 s left"
    timed = progress.Progress(planned=None, duration_s=60.0, started=100.0)
    assert timed.line(now=115.0).endswith("15 s elapsed, ~45 s left") and " of " not in timed.line(now=115.0)
    tool = progress.Progress(planned=None, duration_s=900.0, counted=False, started=100.0)
    assert tool.line(now=130.0) == "running: 30 s elapsed of at most 900 s"


def test_reporting_logs_progress_a_stall_and_its_end(caplog: pytest.LogCaptureFixture) -> None:
    log = logging.getLogger("test.progress")
    with caplog.at_level(logging.INFO, logger="test.progress"), progress.reporting(log, 0.1, 1.0, bar=False):
        tracker = progress.start(20, None)
        for _ in range(5):
            tracker.completed()
        time.sleep(2.5)  # nothing completes: stalled (after 1 s)
        tracker.completed()
        time.sleep(0.5)
    lines = [r.getMessage() for r in caplog.records]
    assert any(line.startswith("progress: 5 of 20 requests (25%)") for line in lines), lines
    stalled = [r for r in caplog.records if r.getMessage().startswith("stalled: no requests completed for")]
    assert len(stalled) == 1 and stalled[0].levelno == logging.WARNING, lines  # said once per stall
    assert any(line.startswith("progress resumed: 6 of 20") for line in lines), lines
    assert lines[-1].startswith("progress at the end: 6 of 20 requests")
    assert progress.current() is None  # nothing left for the next point's reporter


def test_a_tool_run_as_a_process_is_never_called_stalled(caplog: pytest.LogCaptureFixture) -> None:
    log = logging.getLogger("test.progress.tool")
    logged = caplog.at_level(logging.INFO, logger="test.progress.tool")
    with logged, progress.reporting(log, 0.1, 0.1, bar=False):
        progress.start(None, 30.0, counted=False)
        time.sleep(0.5)
    lines = [r.getMessage() for r in caplog.records]
    assert any(line.startswith("progress: running:") for line in lines)
    assert not any("stalled" in line for line in lines)


def test_the_live_bar_draws_a_load_and_goes(caplog: pytest.LogCaptureFixture) -> None:
    """`aibench run-client` on a terminal: rich's bar, redrawn from the reporter thread, removed at the
    end (transient); the log still gets its last line."""
    import io

    from rich.console import Console

    log = logging.getLogger("test.progress.bar")
    screen = io.StringIO()
    console = Console(file=screen, force_terminal=True, width=120)
    logged = caplog.at_level(logging.INFO, logger="test.progress.bar")
    with logged, progress.reporting(log, 0.2, 60, bar=True, console=console):
        tracker = progress.start(10, None)
        for _ in range(4):
            tracker.completed()
        time.sleep(0.8)
    assert "4 of 10 requests (40%)" in screen.getvalue()  # drawn while it ran
    assert [r.getMessage() for r in caplog.records][-1].startswith("progress at the end: 4 of 10 requests")
