"""The local launcher names its job by the leader's start in clock ticks since boot: a live job stays
running when the wall clock is stepped (psutil's create_time moves with it), and a reused pid is never
taken for the job."""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

import psutil
import pytest

from aibench.launchers.base import JobState
from aibench.launchers.local import LocalJob, LocalLauncher, start_ticks
from aibench.rundir import ServiceDir


@pytest.fixture
def job(tmp_path: Path):
    launcher = LocalLauncher()
    started = launcher.start(
        [sys.executable, "-c", "import time; time.sleep(60)"], ServiceDir(tmp_path), "aibench-test-sleep"
    )
    yield launcher, started
    launcher.stop(started, grace_s=2.0)


def test_a_clock_step_leaves_a_live_job_running(job, monkeypatch: pytest.MonkeyPatch) -> None:
    launcher, started = job
    assert launcher.state(started).state is JobState.RUNNING
    stepped = psutil.boot_time() + 3.0  # what every other process reads after a 3 s step of the clock
    monkeypatch.setattr(psutil._pslinux, "boot_time", lambda: stepped)
    assert launcher.state(started).state is JobState.RUNNING


def test_a_reused_pid_is_not_the_job(job) -> None:
    launcher, started = job
    reused: LocalJob = dataclasses.replace(started, start_ticks=started.start_ticks - 1)
    assert launcher.state(reused).state is JobState.ENDED
    assert launcher.stop(reused, grace_s=1.0) == "already ended"
    assert launcher.state(started).state is JobState.RUNNING  # the real job was not signalled


def test_start_ticks_of_a_missing_process_is_none() -> None:
    assert start_ticks(2**22 + 1) is None  # above pid_max's limit
    assert start_ticks(1) is not None


def test_a_handle_written_before_start_ticks_still_finds_its_job(job) -> None:
    launcher, started = job
    legacy = {**started.to_json(), "create_time": psutil.Process(started.pid).create_time()}
    del legacy["start_ticks"]
    assert launcher.state(LocalJob.from_json(legacy, "handle.json")).state is JobState.RUNNING
    legacy["create_time"] -= 60  # another process now has that pid
    assert launcher.state(LocalJob.from_json(legacy, "handle.json")).state is JobState.ENDED
