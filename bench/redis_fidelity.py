"""Fidelity: GET ops/s reported by the workflow's client path / redis-benchmark run by hand.

Same server, same parameters, 5 alternating pairs; prints each pair and the ratio of medians
(target >= 0.95). The workflow path is aibench.clients.runner.run_point_against, exactly what the
run_client rule calls (reading endpoint and secrets from the service directory).
"""

from __future__ import annotations

import statistics

from common import by_hand, get_ops, redis_deployment, tmpdir

from aibench.clients.runner import run_point_against
from aibench.results.schema import Metric

PARAMS = {
    "tests": "get", "clients": 50, "pipeline": 1, "data_size": 3,
    "requests": 300000, "keyspace": 100000, "threads": 0,
}  # fmt: skip
PAIRS = 5


def main() -> None:
    work = tmpdir()
    workflow, manual = [], []
    with redis_deployment(work, monitored=False) as (service_dir, ready):
        for i in range(PAIRS):
            summary = run_point_against(
                service_dir, work / f"p{i}", client_kind="redis-benchmark", params=PARAMS, timeout_s=300
            )
            workflow.append(get_ops([Metric(**m) for m in summary["metrics"]]))
            manual.append(by_hand(ready, service_dir, PARAMS))
            print(f"pair {i + 1}: workflow {workflow[-1]:,.0f} GET/s   by hand {manual[-1]:,.0f} GET/s")
    ratio = statistics.median(workflow) / statistics.median(manual)
    print(f"fidelity: median workflow / median by hand = {ratio:.3f} (target >= 0.95)")


if __name__ == "__main__":
    main()
