"""Readiness checks (TCP, HTTP, Redis PING) and polling with a deadline."""

from __future__ import annotations

import time
from collections.abc import Callable

import requests

from aibench.errors import ServiceError
from aibench.ports import port_open


class NotReady(Exception):
    """The probe did not succeed this time; the message says what it saw."""


def tcp(host: str, port: int, timeout: float = 1.0) -> None:
    if not port_open(host, port, timeout):
        raise NotReady(f"nothing accepts TCP connections on {host}:{port}")


def http(url: str, status: int = 200, timeout: float = 2.0, headers: dict | None = None) -> None:
    try:
        response = requests.get(url, timeout=timeout, headers=headers)
    except requests.RequestException as exc:
        raise NotReady(f"GET {url}: {type(exc).__name__}") from None
    if response.status_code != status:
        raise NotReady(f"GET {url}: HTTP {response.status_code}, expected {status}")


def redis_ping(host: str, port: int, password: str | None, timeout: float = 2.0) -> None:
    import redis

    client = redis.Redis(
        host=host,
        port=port,
        password=password,
        socket_timeout=timeout,
        socket_connect_timeout=timeout,
    )
    try:
        if not client.ping():
            raise NotReady(f"redis {host}:{port}: PING not answered with PONG")
    except redis.RedisError as exc:
        raise NotReady(f"redis {host}:{port}: {type(exc).__name__}: {exc}") from None
    finally:
        client.close()


def mysql_select_1(host: str, port: int, user: str, password: str, database: str, timeout: float) -> None:
    """A MySQL-protocol server answers `SELECT 1` to ``user`` on ``database`` over TCP."""
    import pymysql

    try:
        connection = pymysql.connect(
            host=host, port=port, user=user, password=password, database=database,
            connect_timeout=max(1, int(timeout)), read_timeout=max(1, int(timeout)),
        )  # fmt: skip
    except pymysql.MySQLError as exc:
        raise NotReady(f"mysql {host}:{port}: {exc.args[-1] if exc.args else exc}") from None
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            if cursor.fetchone() != (1,):
                raise NotReady(f"mysql {host}:{port}: SELECT 1 did not answer 1")
    finally:
        connection.close()


def openai_ready(base_url: str, api_key: str | None, timeout: float, model: str | None = None) -> None:
    """An OpenAI-compatible server is ready: /v1/models lists a model (``model`` when given: else
    ServiceError, which no waiting mends) and it answers one completion."""
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    try:
        models = requests.get(f"{base_url}/v1/models", headers=headers, timeout=timeout)
        if models.status_code != 200 or not models.json().get("data"):
            raise NotReady(f"GET {base_url}/v1/models: HTTP {models.status_code}")
        served = [entry.get("id") for entry in models.json()["data"]]
        if model is not None and model not in served:
            raise ServiceError(f"{base_url} serves {served}, not the model {model!r} its recipe names")
        model = model or served[0]
        body = {"model": model, "prompt": "Hello", "max_tokens": 1}
        answer = requests.post(
            f"{base_url}/v1/completions", headers=headers, json=body, timeout=max(timeout, 30)
        )
    except (requests.RequestException, ValueError) as exc:
        raise NotReady(f"{base_url}: {type(exc).__name__}") from None
    if answer.status_code != 200:
        raise NotReady(f"POST {base_url}/v1/completions: HTTP {answer.status_code}")


def refuses_without_key(url: str, timeout: float) -> None:
    """A server that must require its API key refuses ``url`` without one (ServiceError when it
    answers: a server open to anyone on the network is not a deployment to measure)."""
    try:
        status = requests.post(url, json={}, timeout=timeout).status_code
    except requests.RequestException as exc:
        raise NotReady(f"POST {url}: {type(exc).__name__}") from None
    if status not in (401, 403):
        raise ServiceError(f"POST {url} without the API key: HTTP {status}, expected 401 (key not enforced)")


def poll(
    check: Callable[[], None],
    deadline_s: float,
    interval_s: float,
    alive: Callable[[], str | None] = lambda: None,
    max_interval_s: float | None = None,
) -> float:
    """Call ``check`` until it passes or ``deadline_s`` runs out; returns the seconds it took.

    ``alive`` returns None while the thing being waited for can still come up, or a reason
    why it never will (e.g. the process exited); then polling stops at once. The interval
    grows by half each time up to ``max_interval_s`` (default: the initial interval, i.e.
    fixed polling), so readiness is noticed within one interval.
    """
    start = time.monotonic()
    end = start + deadline_s
    interval = interval_s
    cap = max_interval_s if max_interval_s is not None else interval_s
    last = "not checked yet"
    while True:
        reason = alive()
        if reason:
            raise NotReady(reason)
        try:
            check()
            return time.monotonic() - start
        except NotReady as exc:
            last = str(exc)
        now = time.monotonic()
        if now >= end:
            raise NotReady(f"not ready after {deadline_s:g} s: {last}")
        time.sleep(min(interval, max(0.0, end - now)))
        interval = min(cap, interval * 1.5)
