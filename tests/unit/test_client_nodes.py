"""A point's load from several client nodes (aibench.clients.fanout): how the llm client splits a
point into shares and merges them, the coordinator's clock, and the client nodes' batch script."""

from __future__ import annotations

import dataclasses
import socket
import time
from pathlib import Path

import pytest

from aibench.clients.arrivals import schedule
from aibench.clients.fanout import ClockResponder, _merged, measure_offset
from aibench.clients.llm import LLMClient
from aibench.errors import ClientError
from aibench.launchers.slurm import job_script
from aibench.recipes.validation import validate
from tests.unit import samples


def llm_params(**overrides: object) -> dict:
    return validate(dict(overrides), "kinds/llm", "test")


@pytest.mark.parametrize("nodes", [2, 3, 4])
def test_shares_add_up_to_the_point(nodes: int) -> None:
    client = LLMClient()
    closed = llm_params(mode="closed", concurrency=10, requests=101, warmup_requests=3)
    shares = [client.share(closed, rank, nodes) for rank in range(nodes)]
    for name in ("concurrency", "requests", "warmup_requests"):
        counts = [s[name] for s in shares]
        assert sum(counts) == closed[name] and max(counts) - min(counts) <= 1, name
    assert len({s["seed"] for s in shares}) == nodes  # own prompts per node
    opened = llm_params(mode="open", rate=12.0, requests=0, duration_s=5.0)
    shares = [client.share(opened, rank, nodes) for rank in range(nodes)]
    assert sum(s["rate"] for s in shares) == pytest.approx(12.0)
    assert len({s["seed"] for s in shares}) == nodes and shares[0]["requests"] == 0  # timed: each runs 5 s


def test_constant_shares_interleave_into_the_points_schedule() -> None:
    client, nodes = LLMClient(), 3
    p = llm_params(mode="open", rate=30.0, arrival="constant", requests=30)
    sends = sorted(
        s["phase_s"] + offset
        for s in (client.share(p, rank, nodes) for rank in range(nodes))
        for offset in schedule(s["requests"], s["rate"], "constant", s["seed"])
    )
    assert sends == pytest.approx(schedule(30, 30.0, "constant", 0))  # every 1/30 s, none at once


def part(rank: int, offset_s: float, origin_wall: float) -> dict:
    return {"rank": rank, "host": f"node{rank}", "offset_s": offset_s, "rtt_s": 0.0004,
            "origin_wall": origin_wall, "started": origin_wall - offset_s, "ended": origin_wall + 1.0,
            "model": "m", "replicas": 1,
            "records": [dataclasses.asdict(r) for r in samples.llm_records()]}  # fmt: skip


def test_parts_are_merged_on_the_coordinators_clock() -> None:
    """Node 1's clock is 0.25 s behind (its offset +0.25 s) and it began 0.5 s after the agreed start
    by the coordinator's clock: its requests land 0.5 s later; metrics come from all requests."""
    params = llm_params(mode="closed")
    start = 1000.0
    result, window = _merged(LLMClient(), [part(0, 0.0, start), part(1, 0.25, start + 0.25)], params, start)
    metrics = {(m.name, m.stat): m.value for m in result.metrics}
    assert metrics[("requests", "count")] == 6  # 3 measured per node
    assert metrics[("error_rate", "mean")] == pytest.approx(2 / 6)
    assert metrics[("clock_offset_max", "max")] == pytest.approx(250.0)
    assert metrics[("client_nodes", "count")] == 2
    assert metrics[("ttft", "p99")] == pytest.approx(100.0, abs=0.01)  # per request: unchanged by the shift
    assert window == {"start": start, "end": start + 1.5, "duration_s": 1.5}
    rows = result.raw_csv.decode().splitlines()
    assert rows[0].endswith(",node") and len(rows) == 1 + 8
    # window of the merged requests: node 1's last one ends 0.5 s after node 0's
    window_s = 0.2 * 3 + 0.25 + 0.5 - 0.2
    assert metrics[("request_throughput", "mean")] == pytest.approx(4 / window_s, rel=1e-6)


def test_a_node_that_started_late_fails_the_point() -> None:
    """A node that saw start.json late (a slow shared filesystem) did not load with the others."""
    late = {**part(1, 0.0, 0.0), "started": 0.8}
    with pytest.raises(ClientError, match=r"client node 1 \(node1\) started 0.80 s after the agreed instant"):
        _merged(LLMClient(), [part(0, 0.0, 0.0), late], llm_params(), 0.0)


def test_a_failed_node_fails_the_point_naming_it() -> None:
    failed = {**part(1, 0.0, 0.0), "error": "ClientConnectorError: refused"}
    with pytest.raises(ClientError, match=r"client node 1 \(node1\) failed: ClientConnectorError"):
        _merged(LLMClient(), [part(0, 0.0, 0.0), failed], llm_params(), 0.0)


def test_the_clock_answers_its_key_only() -> None:
    with ClockResponder("127.0.0.1", "k" * 32) as clock:
        host, port = clock.address
        offset, trip = measure_offset(host, port, "k" * 32)
        assert abs(offset) < 0.005 and 0 < trip < 0.5  # one machine: one clock
        with pytest.raises(ClientError, match="closed the connection"):
            measure_offset(host, port, "wrong")
        with socket.create_connection((host, port)) as conn:  # a stranger gets nothing
            conn.sendall(b"\n")
            conn.settimeout(2)
            assert conn.recv(64) == b""
    time.sleep(0.05)
    with pytest.raises(OSError):
        socket.create_connection((host, port), timeout=1)  # closed with the coordinator


def test_client_nodes_script_runs_one_task_per_node(tmp_path: Path) -> None:
    options = {"resources": {"nodes": 2, "cpus": 4, "account": "p1"}, "tasks_per_node": 1}
    script = job_script(["srun", "apptainer", "exec", "img.sif", "python3"], tmp_path / "log", "j", options)
    assert "#SBATCH --ntasks-per-node=1\n" in script and "--ntasks=1\n" not in script
    assert "#SBATCH --nodes=2\n" in script and "#SBATCH --cpus-per-task=4\n" in script
    assert script.rstrip().endswith("exec srun apptainer exec img.sif python3")
    service = job_script(["x"], tmp_path / "log", "j", {"resources": {}})
    assert "#SBATCH --ntasks=1\n" in service and "ntasks-per-node" not in service


def test_per_node_numbers_are_never_averaged_into_one() -> None:
    """redis-benchmark from two nodes: what reduces a point to one value reads the nodes' sum, and a
    percentile measured per node only has no such value; the paper's table keeps each node's row."""
    import pandas as pd

    from aibench.clients.presentation import whole_point
    from aibench.clients.redis_benchmark import RedisBenchmark
    from aibench.paper import headline_table
    from aibench.plots import _mean_by

    csv = {rank: samples.REDIS_CSV.replace("20990.76", str(1000.0 * (rank + 1))) for rank in (0, 1)}
    parts = [{"rank": rank, "host": f"n{rank}", "version": "7", "command": "rb", "csv": csv[rank]}
             for rank in (0, 1)]  # fmt: skip
    result = RedisBenchmark().merge(parts, {})
    rows = pd.DataFrame([{"metric": m.name, "stat": m.stat, "value": m.value, **m.labels, "param_clients": 4,
                          "source": "client", "unit": m.unit, "point": "p", "formula": m.formula}
                         for m in result.metrics])  # fmt: skip
    assert whole_point(rows).sum() == 2  # the two sums (SET, GET)
    sets = rows[rows["command"] == "SET"]
    assert _mean_by(sets, "param_clients", "throughput", "mean").tolist() == [3000.0]  # 1000 + 2000
    assert _mean_by(sets, "param_clients", "latency", "p99").empty
    table = headline_table(rows, "redis-benchmark", ["clients"])
    assert sorted(table[table["command"] == "SET"]["node"]) == ["0", "1", "sum"]
