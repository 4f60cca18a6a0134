"""The names of the inference server's own series: what an LLM kind maps its server's /metrics to.

Each LLM kind maps these canonical raw series to PromQL over its server's metric names (llama.cpp's
``llamacpp:*``, vLLM's ``vllm:*``); a point's scrape stores them in its metrics.csv under these names, and
aibench.monitoring.server_metrics computes the point's server-side figures from them. Only names and
queries live here (no numpy or pandas), so the per-point scrape starts quickly beside the next load.
"""

from __future__ import annotations

from dataclasses import dataclass

PREFIX = "server_"
SOURCE = "server"


@dataclass(frozen=True)
class Gauge:
    unit: str
    scale: float = 1.0


@dataclass(frozen=True)
class Rate:
    """Increase of ``counter`` over the window / the window's length."""

    counter: str
    unit: str


@dataclass(frozen=True)
class Ratio:
    """Increase of ``numerator`` / increase of ``denominator`` over the window, times ``scale``."""

    numerator: str
    denominator: str
    unit: str
    scale: float = 1.0


@dataclass(frozen=True)
class Histogram:
    """What a server histogram (seconds) observed in the window, in milliseconds."""

    series: str  # raw name without _bucket / _sum / _count
    #: what one observation is (the unit of the ``count`` row)
    observes: str = "requests"


#: figure name -> how it is computed from the raw series (whichever the server's kind exports)
GAUGES = {
    "server_requests_running": Gauge("requests"),
    "server_requests_waiting": Gauge("requests"),
    "server_kv_cache_usage": Gauge("%", scale=100.0),
}
RATES = {
    "server_output_token_throughput": Rate("server_output_tokens_total", "tokens/s"),
    "server_prompt_token_throughput": Rate("server_prompt_tokens_total", "tokens/s"),
}
RATIOS = {
    "server_tpot": Ratio("server_decode_seconds_total", "server_output_tokens_total", "ms", 1000.0),
    "server_prefill_time_per_token": Ratio(
        "server_prefill_seconds_total", "server_prompt_tokens_total", "ms", 1000.0
    ),
}
HISTOGRAMS = {
    "server_ttft": Histogram("server_ttft_seconds"),
    # vLLM observes its time per output token once per token after the first
    "server_tpot": Histogram("server_tpot_seconds", observes="tokens"),
    "server_queue_time": Histogram("server_queue_time_seconds"),
    "server_prefill_time": Histogram("server_prefill_time_seconds"),
    "server_decode_time": Histogram("server_decode_time_seconds"),
}
QUANTILES = (("median", 0.5), ("p90", 0.9), ("p99", 0.99))
#: every raw series a kind may map (the canonical names of metrics.csv)
RAW_SERIES = (
    set(GAUGES)
    | {r.counter for r in RATES.values()}
    | {n for r in RATIOS.values() for n in (r.numerator, r.denominator)}
    | {f"{h.series}{suffix}" for h in HISTOGRAMS.values() for suffix in ("_bucket", "_sum", "_count")}
)


def histogram_queries(raw: str, metric: str) -> dict[str, str]:
    """PromQL of a server histogram ``metric`` (e.g. ``vllm:time_to_first_token_seconds``) as the raw
    series ``raw``: buckets summed per ``le``, and its sum and count."""
    return {
        f"{raw}_bucket": f"sum by (le) ({metric}_bucket{{{{{{sel}}}}}})",
        f"{raw}_sum": f"sum({metric}_sum{{{{{{sel}}}}}})",
        f"{raw}_count": f"sum({metric}_count{{{{{{sel}}}}}})",
    }


def check_queries(queries: dict[str, str]) -> dict[str, str]:
    """``queries`` if every name is a canonical raw series (ValueError naming the stray one)."""
    stray = sorted(set(queries) - RAW_SERIES)
    if stray:
        raise ValueError(f"not a server series: {', '.join(stray)} (known: {', '.join(sorted(RAW_SERIES))})")
    return queries


def is_server_series(series: str) -> bool:
    return series.startswith(PREFIX)
