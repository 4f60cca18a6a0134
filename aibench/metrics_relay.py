"""A relay that exposes only an exporter's GET /metrics on the node's address.

An exporter that holds a credential must not serve anything else to the cluster: redis_exporter
v1.45.0's multi-target `/scrape?target=<any host>` endpoint is always on and authenticates to the
host a caller names with its configured password (oliver006/redis_exporter exporter/http.go@v1.45.0;
a flag to disable it arrived only in v1.83.0). So the exporter listens on its node's loopback and this
relay, on the node's address where the run's Prometheus scrapes, forwards GET /metrics and nothing
else: every other path and method gets 404 without reaching the exporter.

A server whose own /metrics requires its API key (llama.cpp's llama-server with ``--api-key``) is
scraped the same way: with ``--bearer-env VAR`` the relay sends ``Authorization: Bearer <$VAR>``
upstream; the key stays in its environment (never argv) and is never sent back to the caller.

Usage: ``python -m aibench.metrics_relay --listen HOST:PORT --upstream HOST:PORT [--bearer-env VAR]``
"""

from __future__ import annotations

import argparse
import os

import aiohttp
from aiohttp import web

METRICS_PATH = "/metrics"
#: an exporter answers within Prometheus' own scrape timeout, or the scrape is lost anyway
UPSTREAM_TIMEOUT_S = 10.0


def app(upstream: str, bearer: str | None = None) -> web.Application:
    async def start(application: web.Application) -> None:
        # the body is relayed as the exporter sent it (compressed or not), with its Content-Encoding
        timeout = aiohttp.ClientTimeout(total=UPSTREAM_TIMEOUT_S)
        application["session"] = aiohttp.ClientSession(timeout=timeout, auto_decompress=False)

    async def stop(application: web.Application) -> None:
        await application["session"].close()

    async def metrics(request: web.Request) -> web.Response:
        headers = {k: v for k, v in request.headers.items() if k.lower() in ("accept", "accept-encoding")}
        if bearer:
            headers["Authorization"] = f"Bearer {bearer}"
        try:
            async with request.app["session"].get(
                f"http://{upstream}{METRICS_PATH}", headers=headers
            ) as answer:
                body = await answer.read()
                kept = {
                    k: v
                    for k, v in answer.headers.items()
                    if k.lower() in ("content-type", "content-encoding")
                }
                return web.Response(body=body, status=answer.status, headers=kept)
        except (TimeoutError, aiohttp.ClientError) as exc:
            return web.Response(status=502, text=f"exporter unreachable: {type(exc).__name__}\n")

    async def refuse(request: web.Request) -> web.Response:
        return web.Response(status=404, text="only GET /metrics is served here\n")

    application = web.Application()
    application.on_startup.append(start)
    application.on_cleanup.append(stop)
    application.router.add_get(METRICS_PATH, metrics)
    application.router.add_route("*", "/{tail:.*}", refuse)
    return application


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--listen", required=True, help="HOST:PORT to serve /metrics on")
    parser.add_argument("--upstream", required=True, help="HOST:PORT of the exporter (its loopback)")
    parser.add_argument("--bearer-env", help="environment variable holding the upstream's bearer token")
    args = parser.parse_args(argv)
    bearer = None
    if args.bearer_env:
        bearer = os.environ.get(args.bearer_env)
        if not bearer:
            parser.error(f"--bearer-env {args.bearer_env}: that variable is not set or empty")
    host, _, port = args.listen.rpartition(":")
    # SIGTERM: a clean exit
    web.run_app(app(args.upstream, bearer), host=host.strip("[]"), port=int(port), print=None)


if __name__ == "__main__":
    main()
