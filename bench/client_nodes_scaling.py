"""Scaling of the load itself over client nodes (issue 16): the highest open-loop rate one client node
sustains (achieved/offered >= 0.95 and p99 queue delay <= 10 ms), against what two sustain at the same
p99 queue delay; target >= 1.9x.

The points run through the real coordinator (aibench.clients.fanout: agents as processes, clock
exchange, agreed start, merged records). What stands in: a *client node's capacity* is a CPU quota of
0.25 core per agent (a cgroup v1 `cpu` group each, cfs_quota_us), because this machine's two cores are
shared by every "node"; the server is the scheduled test server (tests/scheduled_llm_server.py, TTFT
20 ms, one chunk: not the bottleneck, unlimited). Prints each trial and the ratio of the ceilings.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from common import ROOT, tmpdir

from aibench.clients import fanout
from aibench.contracts import ClientNodes, Endpoint
from aibench.recipes.validation import validate
from aibench.rundir import RunDir, ServiceDir

sys.path.insert(0, str(ROOT))
from tests.scheduled_llm_server import ScheduledServer

CGROUP = Path("/sys/fs/cgroup/cpu")
QUOTA = 0.25  # cores per client node
PERIOD_US = 10_000
DURATION_S = 4.0
QUEUE_P99_MS = 10.0
ACHIEVED = 0.95  # achieved/offered: (n - 1) / (last send - first send) of a 4 s load varies by ~3%


@contextlib.contextmanager
def node_groups(count: int) -> Iterator[list[Path]]:
    """``count`` cgroup v1 cpu groups of QUOTA cores each (one per stand-in client node)."""
    groups = []
    try:
        for n in range(count):
            group = CGROUP / f"aibench-bench-node{n}-{os.getpid()}"
            group.mkdir()
            # a short period (10 ms): a throttled agent stalls for 7.5 ms at most, not 75 ms
            (group / "cpu.cfs_period_us").write_text(str(PERIOD_US))
            (group / "cpu.cfs_quota_us").write_text(str(int(QUOTA * PERIOD_US)))
            groups.append(group)
        yield groups
    finally:
        for group in groups:
            for pid in (group / "tasks").read_text().split():
                with contextlib.suppress(OSError):
                    (CGROUP / "tasks").write_text(pid)
            group.rmdir()


class QuotaAgents(fanout.LocalAgents):
    """The local agents, each moved into its own node's cgroup as soon as it starts."""

    groups: list[Path] = []

    def start(self) -> None:
        super().start()
        for proc, group in zip(self.procs, self.groups, strict=False):  # node n in group n
            (group / "tasks").write_text(str(proc.pid))


def service_dir(root: Path, server: ScheduledServer) -> ServiceDir:
    """A deployment record of the scheduled server (what agents read: endpoint.json, no secrets)."""
    where = RunDir(root).service("bench")
    where.path.mkdir(parents=True, exist_ok=True)
    host, port = server.url.removeprefix("http://").split(":")
    Endpoint("llamacpp", host, int(port), socket.gethostname(), os.getpid(), time.time(), "bench", ()).write(
        where.endpoint
    )
    return where


def offer(where: ServiceDir, root: Path, nodes: int, rate: float, trial: int) -> tuple[float, float]:
    """(achieved/offered, p99 queue delay in ms) of one point at ``rate`` from ``nodes`` client nodes."""
    load = {"mode": "open", "arrival": "constant", "rate": rate, "requests": int(rate * DURATION_S),
            "warmup_requests": 0, "max_tokens": 1, "api": "openai-completions", "model": "m", "seed": trial}
    params = validate(load, "kinds/llm", "bench")
    point = root / f"n{nodes}-{trial}"
    point.mkdir()
    summary = fanout.run_point_from_nodes(
        [str(where.path)], point, ClientNodes(nodes=nodes), client_kind="llm", params=params, timeout_s=120
    )
    if summary["status"] != "ok":
        return 0.0, float("inf")
    by = {(m["name"], m["stat"]): m["value"] for m in summary["metrics"]}
    return by[("achieved_rate", "mean")] / rate, by[("queue_delay", "p99")]


def ceiling(where: ServiceDir, root: Path, nodes: int, start: float) -> float:
    """The highest rate meeting both bounds: a ladder (x1.25) to bracket it, then 5 bisections."""
    trial = 0

    def holds(rate: float) -> bool:
        nonlocal trial
        trial += 1
        ratio, p99 = offer(where, root, nodes, rate, trial)
        ok = ratio >= ACHIEVED and p99 <= QUEUE_P99_MS
        print(f"  {nodes} node(s), {rate:7.1f} req/s: achieved/offered {ratio:.3f}, p99 queue delay "
              f"{p99:8.2f} ms -> {'holds' if ok else 'fails'}", flush=True)  # fmt: skip
        return ok

    low, high = start, start
    while holds(high):
        low, high = high, high * 1.25
    if low == high:
        raise SystemExit(f"{nodes} node(s) fail already at {start} req/s: start lower")
    for _ in range(5):
        middle = (low + high) / 2
        low, high = (middle, high) if holds(middle) else (low, middle)
    return low


def main() -> None:
    if not (CGROUP / "tasks").is_file():
        raise SystemExit("needs cgroup v1's cpu controller at /sys/fs/cgroup/cpu (the client nodes' quota)")
    root = tmpdir()
    with ScheduledServer(ttft_ms=20, itl_ms=0) as server, node_groups(2) as groups:
        QuotaAgents.groups = groups
        fanout.agents_for = lambda spec, where, name, dirs, inputs: QuotaAgents(where, spec.nodes)  # type: ignore[assignment]
        where = service_dir(root, server)
        print(f"client node = {QUOTA} core each (cgroup cpu quota); server unlimited; {DURATION_S:g} s loads")
        one = ceiling(where, root, 1, 40.0)
        two = ceiling(where, root, 2, one)
    print(json.dumps({"one_node_req_s": round(one, 1), "two_nodes_req_s": round(two, 1)}))
    print(f"two client nodes / one: {two / one:.2f}x at p99 queue delay <= {QUEUE_P99_MS:g} ms "
          "(target >= 1.9)")


if __name__ == "__main__":
    main()
