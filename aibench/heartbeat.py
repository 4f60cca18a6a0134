"""The service job's heartbeat: how a client job tells that its deployment is alive without SLURM.

A client job runs inside the rule image (no `squeue` there, as on MeluXina) and possibly on another
node, so it cannot ask the launcher. The service job rewrites its heartbeat file (in its service
directory: rundir.ServiceDir.heartbeat) on the shared filesystem every INTERVAL_S seconds while its
service runs, and marks it ended when it stops. A heartbeat older than STALE_S means the job died
without stopping (SIGKILL, node failure).
"""

from __future__ import annotations

import socket
import time
from pathlib import Path

from aibench.files import read_json, write_json

INTERVAL_S = 2.0
#: generous against clock skew between nodes and metadata caching of a parallel filesystem
STALE_S = 30.0


def beat(path: Path, pid: int) -> None:
    write_json(path, {"at": time.time(), "pid": pid, "node": socket.gethostname(), "ended": False})


def stop(path: Path) -> None:
    if path.exists():
        write_json(path, {**read_json(path), "at": time.time(), "ended": True})


def problem(path: Path, now: float | None = None) -> str | None:
    """Why the deployment whose heartbeat is ``path`` is not alive, or None while it beats."""
    if not path.is_file():
        return f"no heartbeat ({path.name} missing)"
    try:
        data = read_json(path)
    except (OSError, ValueError) as exc:
        return f"unreadable heartbeat {path}: {exc}"
    if data.get("ended"):
        return "the service job has stopped"
    age = (time.time() if now is None else now) - float(data.get("at", 0))
    if age > STALE_S:
        return f"the service job's heartbeat is {age:.0f} s old (node {data.get('node')}): it died"
    return None
