"""LLM service kinds' command lines, environments and config files, checked as text.

vLLM and Ollama need GPUs and their images (not available here): what the service job would run is
checked as text; the llama.cpp kind runs for real in tests/integration/test_llamacpp.py.
"""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from aibench.containers import apptainer_command
from aibench.recipes import load_service
from aibench.services import SERVICES
from aibench.services.base import ServiceContext

ROOT = Path(__file__).resolve().parents[2]
KEY = "key-that-must-stay-secret"


def context(kind: str, tmp_path: Path, **secrets: str) -> ServiceContext:
    params = load_service(ROOT / "recipes" / "services" / f"{kind}.yaml").params
    return ServiceContext("exp", params, secrets, "10.1.2.3", 40001, tmp_path, tmp_path / "data")


def test_vllm_command(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIBENCH_SCRATCH", "/project/scratch/p1/u")
    kind = SERVICES.create("vllm")
    ctx = context("vllm", tmp_path, LLM_API_KEY=KEY)
    command = kind.command(ctx)
    argv = " ".join(command.argv)
    assert argv.startswith("vllm serve Qwen/Qwen2.5-0.5B-Instruct --host 10.1.2.3 --port 40001")
    for part in ("--served-model-name qwen", "--tensor-parallel-size 1", "--max-num-seqs 256",
                 "--max-model-len 4096", "--download-dir /project/scratch/p1/u/aibench/models"):  # fmt: skip
        assert part in argv
    assert KEY not in argv and command.env["VLLM_API_KEY"] == KEY
    wrapped = apptainer_command(command, kind.image, {}, [tmp_path], tmp_path / "service.env", gpus=1)
    assert "--nv" in wrapped.argv and KEY not in " ".join(wrapped.argv)
    assert kind.cache_dirs(ctx) == [Path("/project/scratch/p1/u/aibench/models")]  # the cache, bound
    assert f"VLLM_API_KEY={KEY}" in (tmp_path / "service.env").read_text()
    assert wrapped.argv[wrapped.argv.index("docker://vllm/vllm-openai:v0.6.6") + 1 :][:2] == ["vllm", "serve"]


def test_ollama_environment_pull_and_loopback(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIBENCH_SCRATCH", "/project/scratch/p1/u")
    kind = SERVICES.create("ollama")
    ctx = context("ollama", tmp_path)
    command = kind.command(ctx)
    assert command.argv == ["ollama", "serve"]
    assert command.env["OLLAMA_HOST"] == "10.1.2.3:40001"
    assert command.env["OLLAMA_NUM_PARALLEL"] == "4" and command.env["OLLAMA_MAX_LOADED_MODELS"] == "1"
    assert command.env["OLLAMA_MODELS"] == "/project/scratch/p1/u/aibench/ollama"
    # the image's own CA store unless a bundle is named; then it is bound in and used
    assert "SSL_CERT_FILE" not in command.env
    assert kind.cache_dirs(ctx) == [Path("/project/scratch/p1/u/aibench/ollama")]
    assert kind.container_binds(ctx) == []
    ctx.params["ca_bundle"] = "/etc/pki/tls/certs/ca-bundle.crt"
    assert kind.command(ctx).env["SSL_CERT_FILE"] == "/etc/pki/tls/certs/ca-bundle.crt"
    assert Path("/etc/pki/tls/certs/ca-bundle.crt") in kind.container_binds(ctx)
    ctx.params["ca_bundle"] = None
    assert [c.argv for c in kind.setup_commands(ctx)] == [["ollama", "pull", "llama3.2:1b"]]
    assert kind.loopback_only  # no authentication: never reachable from another node
    assert kind.endpoint_extra(ctx) == {"model": "llama3.2:1b"}
    assert kind.make_secrets(ctx.params) == {}


def test_llamacpp_key_in_0600_config_only(tmp_path: Path) -> None:
    model = tmp_path / "m.gguf"
    model.write_bytes(b"GGUF")
    ctx = context("llamacpp", tmp_path, LLM_API_KEY=KEY)
    ctx.params["model_path"] = str(model)
    command = SERVICES.create("llamacpp").command(ctx)
    assert KEY not in " ".join(command.argv) and command.argv[-2:] == [
        "--config_file",
        str(tmp_path / "llamacpp.json"),
    ]
    config = json.loads((tmp_path / "llamacpp.json").read_text())
    assert config["api_key"] == KEY and config["interrupt_requests"] is False
    assert config["models"][0]["model"] == str(model) and config["models"][0]["model_alias"] == "smollm2"
    assert stat.S_IMODE((tmp_path / "llamacpp.json").stat().st_mode) == 0o600


def test_llamacpp_in_its_image_uses_the_images_interpreter(tmp_path: Path) -> None:
    """Inside its image the server runs on the image's own Python (aibench.images), never this venv's."""
    import sys

    model = tmp_path / "m.gguf"
    model.write_bytes(b"GGUF")
    params = load_service(ROOT / "recipes" / "services" / "llamacpp.yaml").params | {"model_path": str(model)}
    ctx = ServiceContext("exp", params, {"LLM_API_KEY": KEY}, "10.1.2.3", 40001, tmp_path, tmp_path / "d",
                         containerized=True)  # fmt: skip
    kind = SERVICES.create("llamacpp")
    wrapped = apptainer_command(kind.command(ctx), "/sif/l.sif", {}, [tmp_path], tmp_path / "e.env",
                                reference=kind.image)  # fmt: skip
    after = wrapped.argv[wrapped.argv.index("/sif/l.sif") + 1 :]
    assert after[:3] == ["/usr/local/bin/python3", "-m", "llama_cpp.server"]
    assert sys.executable not in wrapped.argv
    assert kind.container_binds(ctx) == [tmp_path]  # the model's directory is bound in
