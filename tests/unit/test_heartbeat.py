"""The service job's heartbeat: how a client job inside the rule image tells its deployment is alive."""

from __future__ import annotations

import json
import time
from pathlib import Path

from aibench import heartbeat
from aibench.rundir import ServiceDir


def test_alive_stale_ended_missing(tmp_path: Path) -> None:
    beat = ServiceDir(tmp_path).heartbeat
    assert "missing" in (heartbeat.problem(beat) or "")
    heartbeat.beat(beat, 1234)
    assert heartbeat.problem(beat) is None
    later = time.time() + heartbeat.STALE_S + 1
    assert "it died" in (heartbeat.problem(beat, now=later) or "")
    heartbeat.stop(beat)
    assert json.loads(beat.read_text())["ended"] is True
    assert heartbeat.problem(beat) == "the service job has stopped"
    beat.write_text("{not json")
    assert "unreadable heartbeat" in (heartbeat.problem(beat) or "")
