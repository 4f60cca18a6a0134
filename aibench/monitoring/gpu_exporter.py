"""GPU exporter from nvidia-smi, with DCGM exporter metric names (so dashboards work with either).

Each scrape runs ``nvidia-smi --query-gpu=... --format=csv,noheader,nounits`` once and exposes per GPU
(labels gpu, UUID, modelName): DCGM_FI_DEV_GPU_UTIL (%), DCGM_FI_DEV_FB_USED and DCGM_FI_DEV_FB_FREE
(MiB), DCGM_FI_DEV_POWER_USAGE (W), DCGM_FI_DEV_GPU_TEMP (C). A failed nvidia-smi call is exported as
aibench_gpu_exporter_up 0, and a value it reports as [N/A] is left out: never made-up values. Usage:
``python -m aibench.monitoring.gpu_exporter --listen HOST:PORT [--nvidia-smi PATH]``.
"""

from __future__ import annotations

import argparse
import csv
import io
import math
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator

from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

FIELDS = "index,uuid,name,utilization.gpu,memory.used,memory.total,power.draw,temperature.gpu"
SERIES = {  # metric: (help, how from a row)
    "DCGM_FI_DEV_GPU_UTIL": ("GPU utilization (in %).", lambda r: r["utilization.gpu"]),
    "DCGM_FI_DEV_FB_USED": ("Framebuffer memory used (in MiB).", lambda r: r["memory.used"]),
    "DCGM_FI_DEV_FB_FREE": (
        "Framebuffer memory free (in MiB).",
        lambda r: r["memory.total"] - r["memory.used"],
    ),
    "DCGM_FI_DEV_POWER_USAGE": ("Power draw (in W).", lambda r: r["power.draw"]),
    "DCGM_FI_DEV_GPU_TEMP": ("GPU temperature (in C).", lambda r: r["temperature.gpu"]),
}


def parse(text: str) -> list[dict[str, float | str]]:
    """nvidia-smi's CSV rows; a number nvidia-smi cannot give ('[N/A]') becomes NaN."""
    rows = []
    for values in csv.reader(io.StringIO(text)):
        if not values:
            continue
        row: dict[str, float | str] = dict(zip(FIELDS.split(","), (v.strip() for v in values), strict=True))
        for key in FIELDS.split(",")[3:]:
            try:
                row[key] = float(row[key])
            except ValueError:
                row[key] = float("nan")
        rows.append(row)
    return rows


def query(nvidia_smi: str, timeout_s: float = 10.0) -> list[dict[str, float | str]]:
    """One ``nvidia-smi --query-gpu=FIELDS`` call, parsed; CalledProcessError (its stderr kept) when it
    fails, TimeoutExpired past ``timeout_s``."""
    done = subprocess.run([nvidia_smi, f"--query-gpu={FIELDS}", "--format=csv,noheader,nounits"],
                          capture_output=True, text=True, timeout=timeout_s, check=True)  # fmt: skip
    return parse(done.stdout)


class NvidiaSmiCollector(Collector):
    def __init__(self, nvidia_smi: str) -> None:
        self.nvidia_smi = nvidia_smi

    def collect(self) -> Iterator[GaugeMetricFamily]:
        up = GaugeMetricFamily("aibench_gpu_exporter_up", "1 if the last nvidia-smi query succeeded.")
        try:
            rows = query(self.nvidia_smi)
        except (OSError, subprocess.SubprocessError, ValueError):
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        for name, (help_text, value) in SERIES.items():
            family = GaugeMetricFamily(name, help_text, labels=["gpu", "UUID", "modelName"])
            for row in rows:
                if not math.isnan(number := value(row)):  # what nvidia-smi cannot tell is left out
                    labels = [str(int(float(row["index"]))), str(row["uuid"]), str(row["name"])]
                    family.add_metric(labels, number)
            yield family


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="aibench.monitoring.gpu_exporter", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--listen", required=True, help="HOST:PORT to serve /metrics on")
    parser.add_argument("--nvidia-smi", default="nvidia-smi")
    args = parser.parse_args(argv)
    host, _, port = args.listen.rpartition(":")
    registry = CollectorRegistry(auto_describe=False)
    registry.register(NvidiaSmiCollector(args.nvidia_smi))
    server, _ = start_http_server(int(port), addr=host, registry=registry)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    stop.wait()
    server.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
