"""Small inputs of the client kinds' pure summarising functions: a tool's own output as the shipped
example run holds it (examples/local-run.tar.gz), and synthetic load records."""

from __future__ import annotations

import numpy as np

from aibench.clients.chroma.load import Batch, Query
from aibench.clients.llm.load import Record

#: redis-benchmark --csv output
REDIS_CSV = (
    '"test","rps","avg_latency_ms","min_latency_ms","p50_latency_ms","p95_latency_ms","p99_latency_ms",'
    '"max_latency_ms"\n'
    '"SET","20990.76","0.046","0.008","0.047","0.055","0.071","8.615"\n'
    '"GET","19982.02","0.048","0.008","0.055","0.055","0.079","4.215"\n'
)

#: the end of a sysbench 1.0.20 oltp_read_write run report
SYSBENCH_REPORT = """\
[ 1s ] thds: 1 tps: 746.18 qps: 14942.68 (r/w/o: 10460.57/2988.73/1493.37) lat (ms,95%): 2.18 err/s: 0.00 \
reconn/s: 0.00
SQL statistics:
    queries performed:
        read:                            38752
        write:                           11072
        other:                           5536
        total:                           55360
    transactions:                        2768   (553.30 per sec.)
    queries:                             55360  (11066.06 per sec.)
    ignored errors:                      0      (0.00 per sec.)
    reconnects:                          0      (0.00 per sec.)

General statistics:
    total time:                          5.0020s
    total number of events:              2768

Latency (ms):
         min:                                    0.71
         avg:                                    1.81
         max:                                    9.94
         95th percentile:                        2.22
         sum:                                 4997.42
"""


def llm_records(tokens: int = 4) -> list[Record]:
    """A warm-up request, then three measured ones sent 200 ms apart (1 ms after their intended time),
    each with ``tokens`` chunks 50 ms apart after a 100 ms TTFT; the last one failed."""
    records = [Record(0, True, intended=0.0, actual=0.0, chunks=[0.1], end=0.1, output_tokens=1)]
    for i in range(1, 4):
        start = 0.2 * i
        chunks = [start + 0.1 + 0.05 * n for n in range(tokens)]
        records.append(Record(i, False, intended=start, actual=start + 0.001, chunks=chunks,
                              end=chunks[-1], output_tokens=tokens, token_source="usage"))  # fmt: skip
    records[-1].status, records[-1].error = "error", "HTTP 500"
    return records


#: exact 2 nearest neighbours of the two query vectors
CHROMA_EXACT = np.array([[0, 1], [2, 3]])
CHROMA_BATCHES = [Batch(0, 100, 0.0, 0.5), Batch(1, 100, 0.5, 0.9)]


def chroma_queries() -> list[Query]:
    """A warm-up query, two answered ones (recall 0.5 and 1) and a failed one."""
    return [
        Query(0, 1.0, True, actual=1.0, done=1.01, ids=[0, 1]),
        Query(0, 1.1, False, actual=1.1, done=1.12, ids=[0, 5]),
        Query(1, 1.2, False, actual=1.21, done=1.23, ids=[2, 3]),
        Query(1, 1.3, False, actual=1.3, done=1.3, status="error", error="timeout"),
    ]
