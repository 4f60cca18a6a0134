"""One client node's agent of a point loaded from several nodes (aibench.clients.fanout).

``python -m aibench.clients.agent <point>/nodes``: measures this node's clock offset against the
coordinator's clock, registers, waits for the agreed start, runs its share of the load at that instant
and writes its records. Runs in the rule image under SLURM (an srun task per node), as a process locally.
"""

from __future__ import annotations

import os
import socket
import sys
import time
import traceback
from pathlib import Path
from typing import Any

from aibench.clients import CLIENTS
from aibench.clients.fanout import POLL_S, measure_offset
from aibench.files import read_json, write_json
from aibench.rundir import NodesDir


def _await(path: Path, deadline: float) -> dict[str, Any]:
    while not path.is_file():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{path} did not appear in time: is the coordinator gone?")
        time.sleep(POLL_S)
    data: dict[str, Any] = read_json(path)
    return data


def run(where: NodesDir) -> int:
    from aibench.clients.runner import endpoint_of

    plan = read_json(where.plan)
    host = socket.gethostname()
    ident = f"{host}-{os.getpid()}"
    wait = time.monotonic() + plan["register_timeout_s"]
    clock = _await(where.clock, wait)
    offset, trip = measure_offset(clock["host"], clock["port"], where.clock_key.read_text().strip())
    me = {"id": ident, "host": host, "offset_s": offset, "rtt_s": trip, "attempt": plan["attempt"]}
    write_json(where.agent(ident), me)
    start = _await(where.start, wait + plan["register_timeout_s"])
    if start.get("attempt") != plan["attempt"] or ident not in start["ranks"]:
        print(f"[agent {ident}] not part of this attempt's load: leaving", flush=True)
        return 0
    rank = start["ranks"][ident]
    kind = CLIENTS.create(plan["client_kind"])
    params = kind.share(plan["params"], rank, plan["nodes"])
    endpoint, secrets = endpoint_of(plan["service_dirs"])
    print(f"[agent {ident}] rank {rank}, clock offset {offset * 1000:+.3f} ms "
          f"(round trip {trip * 1000:.3f} ms)", flush=True)  # fmt: skip
    delay = start["start_at"] - offset - time.time()  # the agreed instant on this node's clock
    if delay > 0:
        time.sleep(delay)
    started = time.time()
    try:
        part = kind.run_share(endpoint, secrets, params, plan["timeout_s"])
    except Exception as exc:  # the coordinator fails the point naming this node
        traceback.print_exc()
        part = {"error": f"{type(exc).__name__}: {exc}"}
    write_json(where.part(rank), {**part, **me, "rank": rank, "started": started, "ended": time.time()})
    return 0


if __name__ == "__main__":
    sys.exit(run(NodesDir(sys.argv[1])))
