"""Continuous batching on the local default: output tokens/s at concurrency 4 / at concurrency 1.

One deployment of the llamacpp recipe as shipped (llama-server from the xllamacpp wheel, SmolLM2-135M,
4 slots, 2 threads, OMP_WAIT_POLICY=passive), loaded by the llm client in a closed loop, the two
concurrencies alternating which goes first, 5 pairs; each load 24 requests of 32 output tokens after
2 warm-up requests. Prints every pair, the ratio of medians (target >= 1.5: batching is visible) and,
for reference, concurrency 8 (twice the slots: the extra requests queue at the server).

Usage: .venv/bin/python bench/llm_batching.py
"""

from __future__ import annotations

import statistics

from common import ROOT, deployment, tmpdir

from aibench.clients.runner import run_point_against
from aibench.recipes import load_service
from aibench.recipes.validation import validate

LLAMACPP = load_service(ROOT / "recipes" / "services" / "llamacpp.yaml").params
PAIRS = 5


def load(service_dir, work, concurrency: int, number: int) -> dict[str, float]:
    params = validate({"requests": 24, "warmup_requests": 2, "max_tokens": 32, "concurrency": concurrency,
                       "mode": "closed"}, "kinds/llm", "bench")  # fmt: skip
    summary = run_point_against(service_dir, work / f"c{concurrency}-{number}", client_kind="llm",
                                params=params, timeout_s=600)  # fmt: skip
    if summary["status"] != "ok":
        raise SystemExit(f"concurrency {concurrency}: {summary['error']}")
    by = {(m["name"], m["stat"]): m["value"] for m in summary["metrics"]}
    return {"tokens_per_s": by[("output_token_throughput", "mean")], "ttft_p50": by[("ttft", "median")],
            "tpot_p50": by[("tpot", "median")], "errors": by[("error_rate", "mean")]}  # fmt: skip


def main() -> None:
    work = tmpdir()
    one, four = [], []
    with deployment(work, False, "llamacpp", LLAMACPP) as (service_dir, _):
        print(f"llamacpp: {LLAMACPP['n_parallel']} slots, {LLAMACPP['n_threads']} threads", flush=True)
        for i in range(PAIRS):
            order = (1, 4) if i % 2 == 0 else (4, 1)
            got = {c: load(service_dir, work, c, i) for c in order}
            one.append(got[1]["tokens_per_s"])
            four.append(got[4]["tokens_per_s"])
            print(f"pair {i + 1}: " + "   ".join(
                f"c={c} {g['tokens_per_s']:.1f} tok/s (TTFT p50 {g['ttft_p50']:.0f} ms, TPOT p50 "
                f"{g['tpot_p50']:.1f} ms, errors {g['errors']:.2f})" for c, g in sorted(got.items())
            ), flush=True)  # fmt: skip
        eight = load(service_dir, work, 8, 0)
    ratio = statistics.median(four) / statistics.median(one)
    print(f"output tokens/s, concurrency 4 / concurrency 1 (median of {PAIRS} pairs): {ratio:.2f} "
          f"(target >= 1.5); medians {statistics.median(four):.1f} / {statistics.median(one):.1f} tok/s")
    print(f"for reference, concurrency 8 (twice the slots): {eight['tokens_per_s']:.1f} tok/s, TTFT p50 "
          f"{eight['ttft_p50']:.0f} ms")  # fmt: skip


if __name__ == "__main__":
    main()
