"""Monitoring cost: GET ops/s with Prometheus + exporters scraping every 1 s / without.

Each pair deploys Redis twice through the workflow's lifecycle (monitored, then not, alternating
which goes first), runs the same redis-benchmark load; prints the ratio of medians (target >= 0.95).
"""

from __future__ import annotations

import statistics

from common import by_hand, redis_deployment, tmpdir

PARAMS = {
    "tests": "get", "clients": 50, "pipeline": 1, "data_size": 3,
    "requests": 300000, "keyspace": 100000, "threads": 0,
}  # fmt: skip
PAIRS = 5


def measure(monitored: bool) -> float:
    with redis_deployment(tmpdir(), monitored) as (service_dir, ready):
        by_hand(ready, service_dir, {**PARAMS, "requests": 20000})  # warm-up
        return by_hand(ready, service_dir, PARAMS)


def main() -> None:
    on, off = [], []
    for i in range(PAIRS):
        order = (True, False) if i % 2 == 0 else (False, True)
        for monitored in order:
            (on if monitored else off).append(measure(monitored))
        print(f"pair {i + 1}: monitored {on[-1]:,.0f} GET/s   unmonitored {off[-1]:,.0f} GET/s")
    ratio = statistics.median(on) / statistics.median(off)
    print(f"monitoring cost: median monitored / median unmonitored = {ratio:.3f} (target >= 0.95)")


if __name__ == "__main__":
    main()
