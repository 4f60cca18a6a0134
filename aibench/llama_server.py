#!/usr/bin/env python3
"""llama.cpp's native HTTP server (llama-server) from the PyPI wheel ``xllamacpp``, with llama-server's flags.

The llamacpp kind starts the same argv everywhere: here locally (``python -m aibench.llama_server
FLAGS``) and as ``/app/llama-server FLAGS`` in llama.cpp's server image on MeluXina. So this program takes
exactly the flags the kind passes, spelled as llama-server spells them (each long flag below occurs in
llama.cpp b11549's argument table, the strings of ``xllamacpp/xllamacpp.abi3.so`` 2026.10.11549), and
refuses any other: a flag llama-server would not take fails here too. Like llama-server it reads the
API keys from ``LLAMA_API_KEY`` (comma-separated; never on argv) and the host from ``LLAMA_ARG_HOST``
when ``--host`` is absent (the server image sets it to 0.0.0.0, so the kind always passes ``--host``).

xllamacpp's ``Server(CommonParams)`` starts llama.cpp's own server (cpp-httplib, continuous batching
over ``n_parallel`` slots, ``/metrics``) and returns once the model is loaded and HTTP listens; it stops
when the object is deleted (xorbitsai/xllamacpp src/xllamacpp/server.cpp ``Server::~Server``). Types read
from the binding: ``model_alias`` is a ``set[str]`` (a plain string would become a set of its
characters), ``hostnames`` and ``api_keys`` are ``list[str]``; ``n_ctx`` is the total context, split
over the slots. llama.cpp's GNU OpenMP threads spin while waiting unless ``OMP_WAIT_POLICY=passive`` is
in the environment before libgomp loads (the kind sets it; this program refuses to start without it).

Usage: ``python -m aibench.llama_server --model M.gguf --alias NAME --host H --port P [...]``
Standard library and xllamacpp only (it also runs as the stand-in image's /app/llama-server).
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading


def _on_off(text: str) -> bool:
    if text not in ("on", "off"):
        raise argparse.ArgumentTypeError(f"expected on or off, got {text!r}")
    return text == "on"


def _gpu_layers(text: str) -> int:
    """llama-server's -ngl: a number, 'auto' or 'all' (-1 in CommonParams means auto)."""
    if text == "auto":
        return -1
    if text == "all":
        return 999_999
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, 'auto' or 'all', got {text!r}") from None


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="llama-server", allow_abbrev=False, description=__doc__.split("\n")[0])
    p.add_argument("--model", required=True, help="GGUF file")
    p.add_argument("--alias", required=True, help="served model name(s), comma-separated")
    p.add_argument("--host", default=os.environ.get("LLAMA_ARG_HOST", "127.0.0.1"))
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--parallel", type=int, default=1, help="slots (concurrent sequences)")
    p.add_argument("--ctx-size", type=int, default=0, help="total context over all slots")
    p.add_argument("--threads", type=int, default=-1)
    p.add_argument("--threads-batch", type=int, default=-1)
    p.add_argument("--batch-size", type=int, default=2048)
    p.add_argument("--ubatch-size", type=int, default=512)
    batching = p.add_mutually_exclusive_group()
    batching.add_argument("--cont-batching", dest="cont_batching", action="store_true", default=True)
    batching.add_argument("--no-cont-batching", dest="cont_batching", action="store_false")
    p.add_argument("--n-gpu-layers", type=_gpu_layers, default=-1)
    p.add_argument("--metrics", action="store_true", help="serve /metrics")
    p.add_argument("--fit", type=_on_off, default=True, help="let llama.cpp adjust unset sizes to memory")
    return p


def params(args: argparse.Namespace, api_keys: list[str]):  # -> xllamacpp.CommonParams
    import xllamacpp

    p = xllamacpp.CommonParams()
    p.model.path = args.model
    p.model_alias = set(args.alias.split(","))
    p.hostnames = args.host.split(",")
    p.port = args.port
    p.n_parallel = args.parallel
    p.n_ctx = args.ctx_size
    p.cpuparams.n_threads = args.threads
    p.cpuparams_batch.n_threads = args.threads_batch
    p.n_batch = args.batch_size
    p.n_ubatch = args.ubatch_size
    p.cont_batching = args.cont_batching
    p.n_gpu_layers = args.n_gpu_layers
    p.endpoint_metrics = args.metrics
    p.fit_params = args.fit
    p.api_keys = api_keys
    p.warmup = True
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if os.environ.get("OMP_WAIT_POLICY", "").lower() != "passive":
        sys.exit("llama-server: set OMP_WAIT_POLICY=passive before start (GNU OpenMP spins otherwise)")
    keys = [k for k in os.environ.get("LLAMA_API_KEY", "").split(",") if k]
    stop = threading.Event()
    for number in (signal.SIGTERM, signal.SIGINT):
        signal.signal(number, lambda *_: stop.set())
    import xllamacpp

    try:
        server = xllamacpp.Server(params(args, keys))
    except RuntimeError as exc:
        sys.exit(f"llama-server: {exc}")
    print(f"llama-server: listening on {server.listening_address}, model {args.model}", flush=True)
    stop.wait()
    del server  # Server::~Server terminates the slots and joins the HTTP thread
    return 0


if __name__ == "__main__":
    sys.exit(main())
