"""Chroma 1.x (`chroma run`; docker://chromadb/chroma under Apptainer) behind the run's token gateway.

Per deployment: a fresh persistent data directory and a random token (0600 secrets). Chroma 1.x's
server has no authentication of its own, so it binds 127.0.0.1 on a private port and clients reach it
through aibench.token_gateway with the token. Ready = the heartbeat answered through the gateway.
"""

from __future__ import annotations

import re
from typing import Any

from aibench import probes
from aibench.secrets import generate_password
from aibench.services import SERVICES
from aibench.services.base import Command, ServiceContext, ServiceKind

TOKEN = "CHROMA_TOKEN"


@SERVICES.register
class Chroma(ServiceKind):
    name = "chroma"
    params_schema = "kinds/chroma"
    binaries = ("chroma",)
    image = "docker://chromadb/chroma:1.5.9"
    gateway_secret = TOKEN

    def make_secrets(self, params: dict[str, Any]) -> dict[str, str]:
        return {TOKEN: generate_password()}

    def command(self, ctx: ServiceContext) -> Command:
        argv = [
            "chroma",
            "run",
            "--path",
            str(ctx.datadir),
            "--host",
            "127.0.0.1",
            "--port",
            str(ctx.backend_port),
        ]
        return Command(argv, env={"ANONYMIZED_TELEMETRY": "False", "NO_COLOR": "1"})

    def process_pattern(self, ctx: ServiceContext) -> str:
        return re.escape(str(ctx.datadir))

    def process_comms(self) -> tuple[str, ...]:
        return ("chroma", "python", "python3")

    def probe(self, endpoint: dict[str, Any], secrets: dict[str, str], timeout: float) -> None:
        url = f"http://{endpoint['host']}:{endpoint['port']}/api/v2/heartbeat"
        probes.http(url, timeout=timeout, headers={"X-Chroma-Token": secrets[TOKEN]})
