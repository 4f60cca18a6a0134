"""Progress of a point's load while it runs: into the point's log every ``interval_s``, as a live bar
when `aibench run-client` runs on a terminal, and a warning when nothing completes for ``stall_s``.

A client kind's load loop starts its tracker with :func:`start` (what it plans: requests, or a
duration) and counts each completion with :meth:`Progress.completed`: two integer additions and a
clock read, nothing else on the per-request path (bench/progress_cost.py measures it). The reporter
is a thread of :func:`reporting` (the runner's, around the client's run) that reads the counters at
its own pace: done of planned, the achieved rate, failures so far, elapsed and remaining time. A load
tool run as a process (redis-benchmark, sysbench), whose completions this process does not see, is
tracked by its elapsed time against its time limit only (:func:`start` with ``counted=False``), and
is never called stalled.
"""

from __future__ import annotations

import contextlib
import logging
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

#: defaults of the config's ``progress`` (config/schemas/config.schema.yaml)
INTERVAL_S, STALL_S = 10.0, 60.0


@dataclass
class Progress:
    """A load's counters: what it plans (``planned`` completions, or ``duration_s``), what is done."""

    planned: int | None
    duration_s: float | None
    unit: str = "requests"
    counted: bool = True
    done: int = 0
    failed: int = 0
    started: float = field(default_factory=time.monotonic)
    last: float = field(default_factory=time.monotonic)
    finished: bool = False

    def completed(self, ok: bool = True) -> None:
        """One completion, from the load's one thread (the LLM client's event loop)."""
        self.done += 1
        if not ok:
            self.failed += 1
        self.last = time.monotonic()

    def finish(self) -> None:
        """The load is over (what follows, e.g. counting tokens, completes no request): no stall."""
        self.finished = True

    def completed_in_thread(self, ok: bool = True) -> None:
        """One completion, from one of several worker threads (Chroma's)."""
        with _LOCK:
            self.completed(ok)

    def remaining_s(self, now: float) -> float | None:
        elapsed = now - self.started
        left = []
        if self.duration_s:
            left.append(self.duration_s - elapsed)
        if self.planned and self.done and self.counted:
            left.append((self.planned - self.done) * elapsed / self.done)
        return max(min(left), 0.0) if left else None

    def line(self, now: float | None = None) -> str:
        now = time.monotonic() if now is None else now
        elapsed = now - self.started
        left = self.remaining_s(now)
        tail = f"{elapsed:.0f} s elapsed" + (f", ~{left:.0f} s left" if left is not None else "")
        if not self.counted:
            limit = f" of at most {self.duration_s:.0f} s" if self.duration_s else ""
            return f"running: {elapsed:.0f} s elapsed{limit}"
        of = f" of {self.planned}" if self.planned else ""
        share = f" ({100 * self.done / self.planned:.0f}%)" if self.planned else ""
        rate = self.done / elapsed if elapsed > 0 else 0.0
        return f"{self.done}{of} {self.unit}{share}, {rate:.1f}/s, {self.failed} failed, {tail}"


_current: Progress | None = None
_LOCK = threading.Lock()


def start(
    planned: int | None, duration_s: float | None, unit: str = "requests", counted: bool = True
) -> Progress:
    """The tracker of the load starting now; the running reporter (if any) watches it."""
    global _current
    _current = Progress(planned, duration_s, unit, counted)
    return _current


def current() -> Progress | None:
    return _current


class _Reporter(threading.Thread):
    def __init__(
        self, log: logging.Logger, interval_s: float, stall_s: float, bar: bool, console: Any = None
    ) -> None:
        super().__init__(name="aibench-progress", daemon=True)
        self.log, self.interval_s, self.stall_s = log, interval_s, stall_s
        self.stop = threading.Event()
        self.bar = _Bar(console) if bar else None
        self._stalled = False

    def run(self) -> None:
        tick = min(self.interval_s, 0.5) if self.bar else self.interval_s
        next_line = time.monotonic() + self.interval_s
        while not self.stop.wait(tick):
            progress, now = _current, time.monotonic()
            if progress is None:
                continue
            if self.bar:
                self.bar.show(progress)
            if now >= next_line:
                next_line = now + self.interval_s
                self.log.info("progress: %s", progress.line(now))
            self._check_stall(progress, now)

    def _check_stall(self, progress: Progress, now: float) -> None:
        if not progress.counted or progress.finished:
            return
        quiet = now - progress.last
        if quiet >= self.stall_s and not self._stalled:
            self._stalled = True
            what = f"{'no' if progress.done else 'none of the'} {progress.unit} completed"
            self.log.warning("stalled: %s for %.0f s (%s)", what, quiet, progress.line(now))
        elif quiet < self.stall_s and self._stalled:
            self._stalled = False
            self.log.info("progress resumed: %s", progress.line(now))


class _Bar:
    """rich's live progress bar on the terminal (stderr, or ``console``'s)."""

    def __init__(self, console: Any = None) -> None:
        from rich.progress import BarColumn, TextColumn, TimeElapsedColumn
        from rich.progress import Progress as RichProgress

        columns = (TextColumn("{task.description}"), BarColumn(), TextColumn("{task.fields[line]}"),
                   TimeElapsedColumn())  # fmt: skip
        self.view = RichProgress(*columns, transient=True, **({"console": console} if console else {}))
        self.task: int | None = None
        self.view.start()

    def show(self, progress: Progress) -> None:
        total = progress.planned if progress.counted and progress.planned else None
        if total is None and progress.duration_s:
            total, done = progress.duration_s, time.monotonic() - progress.started
        else:
            done = progress.done
        if self.task is None:
            self.task = self.view.add_task("load", total=total, line="")
        self.view.update(self.task, total=total, completed=min(done, total) if total else done,
                         line=progress.line())  # fmt: skip

    def close(self) -> None:
        self.view.stop()


@contextlib.contextmanager
def reporting(
    log: logging.Logger, interval_s: float = INTERVAL_S, stall_s: float = STALL_S, bar: bool | None = None,
    console: Any = None,
) -> Iterator[None]:
    """Report the progress of whatever load starts inside (a bar too when ``bar``, by default when
    stderr is a terminal; on ``console``, a rich Console, where given); a last line at the end."""
    global _current
    _current = None
    reporter = _Reporter(log, interval_s, stall_s, sys.stderr.isatty() if bar is None else bar, console)
    reporter.start()
    try:
        yield
    finally:
        reporter.stop.set()
        reporter.join(5)
        if reporter.bar:
            reporter.bar.close()
        if _current is not None:
            log.info("progress at the end: %s", _current.line())
        _current = None
