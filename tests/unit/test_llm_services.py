"""LLM service kinds' command lines, environments and config files, checked as text.

vLLM and Ollama need GPUs and their images (not available here): what the service job would run is
checked as text; the llama.cpp kind runs for real in tests/integration/test_llamacpp.py.
"""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

import pytest

from aibench import llama_server
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


def test_llamacpp_flags_are_llama_servers_and_the_key_stays_in_the_environment(tmp_path: Path) -> None:
    model = tmp_path / "m.gguf"
    model.write_bytes(b"GGUF")
    ctx = context("llamacpp", tmp_path, LLM_API_KEY=KEY)
    ctx.params["model_path"] = str(model)
    command = SERVICES.create("llamacpp").command(ctx)
    assert command.argv[:3] == [sys.executable, "-m", "aibench.llama_server"]
    flags = command.argv[3:]
    assert KEY not in " ".join(command.argv)
    assert set(command.env) == {"LLAMA_API_KEY", "OMP_WAIT_POLICY"}
    assert command.env["OMP_WAIT_POLICY"] == "passive"
    # the run's key and a second one no one holds: with one key llama-server logs its last 4 characters
    keys = command.env["LLAMA_API_KEY"].split(",")
    assert keys[0] == KEY and len(keys) == 2 and len(keys[1]) >= 32 and keys[1] != KEY
    pairs = dict(zip(flags[::2], flags[1::2], strict=False))
    assert pairs["--model"] == str(model) and pairs["--alias"] == "smollm2"
    assert pairs["--host"] == "10.1.2.3" and pairs["--port"] == "40001"
    assert flags[flags.index("--parallel") + 1] == "4"
    assert flags[flags.index("--ctx-size") + 1] == str(4 * 1024)  # the total: slots x context per slot
    assert "--cont-batching" in flags and "--metrics" in flags
    # the local program takes exactly these flags, as llama-server spells them
    args = llama_server.parser().parse_args(flags)
    assert (args.parallel, args.ctx_size, args.threads, args.cont_batching) == (4, 4096, 2, True)
    ctx.params["cont_batching"] = False
    assert "--no-cont-batching" in SERVICES.create("llamacpp").command(ctx).argv


def test_llama_server_refuses_flags_llama_server_lacks_and_needs_a_passive_openmp(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit):
        llama_server.parser().parse_args(["--model", "m", "--alias", "a", "--port", "1", "--n_ctx", "9"])
    assert "unrecognized arguments: --n_ctx" in capsys.readouterr().err
    with pytest.raises(SystemExit):  # no abbreviations either: llama-server has none
        llama_server.parser().parse_args(["--model", "m", "--alias", "a", "--port", "1", "--para", "2"])
    monkeypatch.delenv("OMP_WAIT_POLICY", raising=False)
    with pytest.raises(SystemExit, match="OMP_WAIT_POLICY=passive"):
        llama_server.main(["--model", "m", "--alias", "a", "--port", "1"])


def test_llamacpp_in_its_image_runs_the_images_llama_server(tmp_path: Path) -> None:
    """Inside llama.cpp's server image the same flags go to /app/llama-server (the image's ENTRYPOINT,
    which apptainer exec ignores), never to this venv's Python."""
    model = tmp_path / "m.gguf"
    model.write_bytes(b"GGUF")
    params = load_service(ROOT / "recipes" / "services" / "llamacpp.yaml").params | {"model_path": str(model)}
    ctx = ServiceContext("exp", params, {"LLM_API_KEY": KEY}, "10.1.2.3", 40001, tmp_path, tmp_path / "d",
                         containerized=True)  # fmt: skip
    kind = SERVICES.create("llamacpp")
    local = kind.command(dataclasses.replace(ctx, containerized=False))
    wrapped = apptainer_command(kind.command(ctx), "/sif/l.sif", {}, [tmp_path], tmp_path / "e.env",
                                reference=kind.image)  # fmt: skip
    after = wrapped.argv[wrapped.argv.index("/sif/l.sif") + 1 :]
    assert after == ["/app/llama-server", *local.argv[3:]]
    assert sys.executable not in wrapped.argv and KEY not in " ".join(wrapped.argv)
    assert f"LLAMA_API_KEY={KEY}," in (tmp_path / "e.env").read_text()
    assert kind.container_binds(ctx) == [tmp_path]  # the model's directory is bound in
