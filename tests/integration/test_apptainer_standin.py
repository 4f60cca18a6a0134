"""The container path, run through the STRICT Apptainer stand-in (envs/standins/apptainer).

No Apptainer build exists for this machine. The stand-in runs images with bubblewrap over real root
filesystems built from Debian packages (aibench/standin_images.py, recipes in envs/images, cached
machine-wide; docs/images.md), with Apptainer 1.3.6's semantics where the project relies on them: only
the image's files (no host binaries, no host PATH), --cleanenv, --env-file, binds, a read-only root.
These tests prove that strictness, then run a password-protected Redis in docker://redis:7-alpine
through the project's lifecycle. The real Apptainer path is verified on MeluXina, not in CI.

Building the images is set-up (a session fixture through the cached builder): the first run on a machine
downloads Debian packages (about a minute), later runs rebuild nothing.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from aibench import lifecycle, standin_images
from aibench.contracts import DeploymentSpec, Placement, Runtime
from aibench.probes import NotReady, redis_ping
from aibench.recipes import load_service
from aibench.secrets import read_secrets
from tests.conftest import BIN, ROOT, SESSION_MARKER, snakemake, wait_until

STANDINS = ROOT / "envs" / "standins"
APPTAINER = STANDINS / "apptainer"
REDIS = load_service(ROOT / "recipes" / "services" / "redis.yaml").params
PYTHON = "docker://python:3.11-slim-bookworm"
REDIS_IMAGE = "docker://redis:7-alpine"
EXPORTER = "docker://oliver006/redis_exporter:v1.45.0"
#: busybox-based and small (25 MB): the base of the def-file test
BUSYBOX = "docker://quay.io/prometheus/node-exporter:v1.5.0"
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
#: the python image's own PATH (docker-library/python: ENV PATH /usr/local/bin:$PATH)
PYTHON_PATH = "/usr/local/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


@pytest.fixture(scope="session")
def images(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """SIFs of the images these tests use, pulled through the stand-in (root filesystems cached)."""
    builder = standin_images.Builder(log=print)
    for ref in (PYTHON, REDIS_IMAGE, EXPORTER, BUSYBOX):
        builder.ensure(ref)
    directory = tmp_path_factory.mktemp("sif")
    sifs = {}
    for ref in (PYTHON, REDIS_IMAGE, EXPORTER, BUSYBOX):
        sif = directory / (ref.rsplit("/", 1)[-1].replace(":", "_") + ".sif")
        done = subprocess.run([str(APPTAINER), "pull", str(sif), ref], capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
        sifs[ref] = sif
    return sifs


@pytest.fixture
def standin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    log = tmp_path / "apptainer-calls.jsonl"
    monkeypatch.setenv("PATH", f"{STANDINS}:{BIN}:{os.environ['PATH']}")
    monkeypatch.setenv("APPTAINER_STANDIN_LOG", str(log))
    return log


def apptainer(*args: str | Path, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(APPTAINER), *map(str, args)], cwd=cwd, env=env, capture_output=True, text=True, timeout=120
    )


def calls(log: Path) -> list[list[str]]:
    return [json.loads(line) for line in log.read_text().splitlines()]


def test_images_are_cached(images: dict[str, Path]) -> None:
    """A second build of what the session fixture built rebuilds nothing (keys are content hashes)."""
    builder = standin_images.Builder()
    started = time.monotonic()
    for ref in images:
        image = builder.ensure(ref)
        assert (image.rootfs / ".singularity.d" / "env").is_dir()
    assert builder.built == []
    assert time.monotonic() - started < 5


def default_bound(path: Path) -> bool:
    """Whether Apptainer's default binds ($HOME, /tmp, /var/tmp) show ``path`` inside every container."""
    roots = [Path.home(), Path("/tmp"), Path("/var/tmp")]
    return any(path.resolve().is_relative_to(r.resolve()) for r in roots)


def test_host_binaries_are_absent(images: dict[str, Path], tmp_path: Path) -> None:
    venv_python = BIN / "python"
    assert venv_python.exists() and Path("/usr/bin/redis-benchmark").exists()  # on the host
    probe = (
        "for c in sbatch squeue scancel redis-benchmark redis-server; do "
        '  command -v $c && { echo "found $c"; exit 1; }; done; '
        "for f in /usr/bin/redis-benchmark /usr/bin/sbatch /usr/bin/squeue; do "
        '  test -e $f && { echo "found $f"; exit 1; }; done; echo absent'
    )
    done = apptainer("exec", images[PYTHON], "sh", "-c", probe, cwd=tmp_path)
    assert (done.returncode, done.stdout.strip()) == (0, "absent"), done.stdout + done.stderr
    # the checkout and its venv: visible only through Apptainer's default binds ($HOME, /tmp, the
    # working directory, wherever the checkout happens to be); with --containall, never
    probe = f"for f in {venv_python} {ROOT}; do test -e $f && {{ echo found $f; exit 1; }}; done; echo absent"
    done = apptainer("exec", "--containall", images[PYTHON], "sh", "-c", probe, cwd=tmp_path)
    assert (done.returncode, done.stdout.strip()) == (0, "absent"), done.stdout + done.stderr
    # redis:7-alpine keeps its binaries in /usr/local/bin, like the real image: none in /usr/bin
    probe = "command -v redis-server; test ! -e /usr/bin/redis-benchmark && test ! -e /usr/bin/redis-server"
    done = apptainer("exec", images[REDIS_IMAGE], "sh", "-c", probe, cwd=tmp_path)
    assert (done.returncode, done.stdout.strip()) == (0, "/usr/local/bin/redis-server"), done.stderr


def test_path_is_the_images_own(images: dict[str, Path], tmp_path: Path) -> None:
    env = {**os.environ, "PATH": f"{BIN}:/opt/host-only/bin:{os.environ['PATH']}"}
    for cleanenv in ([], ["--cleanenv"]):
        show = ["sh", "-c", 'printf %s "$PATH"']
        done = apptainer("exec", *cleanenv, images[PYTHON], *show, cwd=tmp_path, env=env)
        assert done.stdout == PYTHON_PATH, done.stderr
    where = ["python3", "-c", "import sys; print(sys.executable)"]
    done = apptainer("exec", images[PYTHON], *where, cwd=tmp_path)
    assert done.stdout.strip() == "/usr/local/bin/python3"


def test_scratch_exporter_image_has_no_path_entry(images: dict[str, Path], tmp_path: Path) -> None:
    """oliver006/redis_exporter is FROM scratch: /redis_exporter only, which no PATH entry reaches."""
    done = apptainer("exec", images[EXPORTER], "/redis_exporter", "--version", cwd=tmp_path)
    assert done.returncode == 0 and "1.45.0" in done.stdout + done.stderr, done.stderr
    done = apptainer("exec", images[EXPORTER], "redis_exporter", "--version", cwd=tmp_path)
    assert done.returncode == 255
    assert '"redis_exporter": executable file not found in $PATH' in done.stderr
    done = apptainer("exec", images[EXPORTER], "sh", "-c", "true", cwd=tmp_path)  # no shell either
    assert done.returncode == 255 and '"sh": executable file not found' in done.stderr


def test_cleanenv_drops_host_variables(images: dict[str, Path], tmp_path: Path) -> None:
    env = {**os.environ, "AIBENCH_STANDIN_PROBE": "from-the-host", "LANG": "en_US.UTF-8"}
    show = 'printf "%s|%s|%s|%s" "${AIBENCH_STANDIN_PROBE-unset}" "$LANG" "$HOME" '
    show += '"${' + SESSION_MARKER + '-unset}"'
    done = apptainer("exec", images[PYTHON], "sh", "-c", show, cwd=tmp_path, env=env)
    # without --cleanenv host variables pass, but the image's own (LANG=C.UTF-8) win over them
    assert done.stdout == f"from-the-host|C.UTF-8|/root|{os.environ[SESSION_MARKER]}", done.stderr
    done = apptainer("exec", "--cleanenv", images[PYTHON], "sh", "-c", show, cwd=tmp_path, env=env)
    # --cleanenv drops them; the test-session marker is the stand-in's one documented exception
    assert done.stdout == f"unset|C.UTF-8|/root|{os.environ[SESSION_MARKER]}", done.stderr


def test_env_file_variables_arrive(images: dict[str, Path], tmp_path: Path, standin: Path) -> None:
    secret = "s3cr3t-" + hashlib.sha256(str(tmp_path).encode()).hexdigest()[:12]
    env_file = tmp_path / "service.env"
    env_file.write_text(f'# comment\nSERVICE_TOKEN={secret}\nexport GREETING="two words"\n')
    env_file.chmod(0o600)
    show = 'printf "%s|%s" "$SERVICE_TOKEN" "$GREETING"'
    options = ["--cleanenv", "--env-file", env_file]
    done = apptainer("exec", *options, images[PYTHON], "sh", "-c", show, cwd=tmp_path)
    assert done.stdout == f"{secret}|two words", done.stderr
    assert secret not in standin.read_text()  # the argv log never holds environment values
    # the file is evaluated like Apptainer's: assignments only, no commands
    env_file.write_text("A=1 touch /tmp/nope\n")
    done = apptainer("exec", "--env-file", env_file, images[PYTHON], "true", cwd=tmp_path)
    assert done.returncode == 255 and "execution is disabled" in done.stderr


def test_binds_and_read_only_root(images: dict[str, Path], tmp_path: Path) -> None:
    writable, read_only = tmp_path / "rw", tmp_path / "ro"
    writable.mkdir()
    read_only.mkdir()
    probe = (
        "echo hello > /data/out && "
        "! touch /srv/ro/x 2>/dev/null && ! touch /usr/x 2>/dev/null && ! mkdir /new 2>/dev/null && echo ok"
    )
    spec = f"{writable}:/data,{read_only}:/srv/ro:ro"
    done = apptainer("exec", "--bind", spec, images[PYTHON], "sh", "-c", probe, cwd=tmp_path)
    assert done.stdout.strip() == "ok", done.stdout + done.stderr
    assert (writable / "out").read_text() == "hello\n"
    assert not (read_only / "x").exists()
    done = apptainer("exec", "--bind", tmp_path / "missing", images[PYTHON], "true", cwd=tmp_path)
    assert done.returncode == 255 and "doesn't exist" in done.stderr


def test_nv_is_accepted_and_recorded(images: dict[str, Path], tmp_path: Path, standin: Path) -> None:
    done = apptainer("exec", "--nv", images[PYTHON], "true", cwd=tmp_path)
    assert done.returncode == 0 and "Could not find any nv files" in done.stderr
    assert calls(standin)[-1] == ["exec", "--nv", str(images[PYTHON]), "true"]


def test_no_standin_image_fails_like_an_offline_pull(tmp_path: Path) -> None:
    for ref in ("docker://mysql:8.0", "docker://vllm/vllm-openai:v0.6.6"):
        done = apptainer("pull", tmp_path / "x.sif", ref, cwd=tmp_path)
        assert done.returncode == 255
        assert f"failed to get checksum for {ref}" in done.stderr
        assert f"no stand-in image exists for {ref}" in done.stderr
        assert not (tmp_path / "x.sif").exists()


def test_exec_needs_a_pulled_image(tmp_path: Path) -> None:
    done = apptainer("exec", REDIS_IMAGE, "true", cwd=tmp_path)
    assert done.returncode == 255 and "apptainer pull" in done.stderr
    gone = tmp_path / "gone.sif"
    sif = {"format": standin_images.SIF_FORMAT, "key": "0", "rootfs": str(tmp_path / "x")}
    gone.write_text(json.dumps(sif))
    done = apptainer("exec", gone, "true", cwd=tmp_path)
    assert done.returncode == 255 and "root filesystem" in done.stderr and "missing" in done.stderr


def test_exit_code_and_signals_reach_the_command(images: dict[str, Path], tmp_path: Path) -> None:
    assert apptainer("exec", images[PYTHON], "sh", "-c", "exit 7", cwd=tmp_path).returncode == 7
    proc = subprocess.Popen([str(APPTAINER), "exec", images[PYTHON], "sleep", "300"], cwd=tmp_path)
    try:
        sleeper: list[psutil.Process] = []

        def named_sleep(process: psutil.Process) -> bool:
            try:
                return process.name() == "sleep"
            except psutil.NoSuchProcess:  # a short-lived helper of the start-up, gone already
                return False

        def started() -> bool:
            sleeper[:] = [p for p in psutil.Process(proc.pid).children(recursive=True) if named_sleep(p)]
            return bool(sleeper)

        wait_until(started, 20, what="sleep started in the image")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(10) == 128 + signal.SIGTERM
        wait_until(lambda: not sleeper[0].is_running(), 10, what="sleep ended")
    finally:
        proc.kill()
        proc.wait()


def test_build_from_a_def_file(images: dict[str, Path], tmp_path: Path) -> None:
    """`apptainer build` runs %files/%post/%environment/%labels/%runscript; the result is cached."""
    (tmp_path / "payload.txt").write_text("payload v1\n")
    deffile = tmp_path / "probe.def"
    deffile.write_text(
        "Bootstrap: docker\nFrom: quay.io/prometheus/node-exporter:v1.5.0\n\n"
        "%files\n    payload.txt /opt/probe/payload.txt\n\n"
        '%post\n    echo "post: uid $(id -u) in $(pwd), PATH $PATH" > /opt/probe/post.txt\n\n'
        "%environment\n    export PROBE_VAR=from-environment\n\n"
        "%labels\n    org.example.title stand-in probe image\n\n"
        '%runscript\n    echo "runscript: $PROBE_VAR $*"\n'
    )
    first = apptainer("build", "first.sif", "probe.def", cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    started = time.monotonic()
    second = apptainer("build", "second.sif", "probe.def", cwd=tmp_path)
    assert second.returncode == 0 and time.monotonic() - started < 10, second.stderr
    key = json.loads((tmp_path / "first.sif").read_text())["key"]
    assert json.loads((tmp_path / "second.sif").read_text())["key"] == key  # cached: the same build
    labels = apptainer("inspect", "--labels", "first.sif", cwd=tmp_path).stdout
    assert "org.example.title: stand-in probe image" in labels
    assert f"org.aibench.standin.def-sha256: {hashlib.sha256(deffile.read_bytes()).hexdigest()}" in labels
    done = apptainer("exec", "first.sif", "sh", "-c", 'cat /opt/probe/*.txt; echo "$PROBE_VAR"', cwd=tmp_path)
    # %post: root, in /, with the base image's PATH (Apptainer's default: the base sets none)
    expected = f"payload v1\npost: uid 0 in /, PATH {DEFAULT_PATH}\nfrom-environment\n"
    assert done.stdout == expected, done.stderr
    assert apptainer("run", "first.sif", "a", "b", cwd=tmp_path).stdout == "runscript: from-environment a b\n"
    (tmp_path / "payload.txt").write_text("payload v2\n")  # a %files source changed: another image
    third = apptainer("build", "third.sif", "probe.def", cwd=tmp_path)
    assert third.returncode == 0, third.stderr
    assert json.loads((tmp_path / "third.sif").read_text())["key"] != key


def _descendant(pid: int, name: str) -> psutil.Process:
    found = [p for p in psutil.Process(pid).children(recursive=True) if p.name() == name]
    assert found, f"no {name} below pid {pid}"
    return found[0]


def test_service_runs_in_its_image(
    images: dict[str, Path], tmp_path: Path, standin: Path, no_leftovers: float
) -> None:
    service_dir = tmp_path / "c" / "service"
    image_dir = tmp_path / "images"
    settings = {"binary": "apptainer", "image_dir": str(image_dir), "args": ["--bind", "/etc/ssl/certs"]}
    placement = Placement(runtime=Runtime("apptainer", settings))
    lifecycle.deploy(service_dir, DeploymentSpec("c", "redis", REDIS, placement))
    try:
        ready = lifecycle.wait_ready(service_dir, timeout_s=60, interval_s=0.05)
        password = read_secrets(service_dir / "secrets.env")["REDIS_PASSWORD"]
        redis_ping(ready["host"], ready["port"], password)
        with pytest.raises(NotReady):
            redis_ping(ready["host"], ready["port"], None)
        # redis-server runs inside the image's root filesystem: its / is not the host's
        endpoint = json.loads((service_dir / "endpoint.json").read_text())
        server = _descendant(endpoint["pid"], "redis-server")
        root = Path(f"/proc/{server.pid}/root")
        assert (root / "usr/local/bin/redis-server").is_file() and (root / ".singularity.d").is_dir()
        assert not (root / "usr/bin/redis-server").exists()
        if not default_bound(BIN):  # a checkout under /tmp or $HOME is visible through Apptainer's binds
            assert not (root / str(BIN).lstrip("/")).exists()
    finally:
        lifecycle.stop(service_dir)
    log = calls(standin)
    pull = next(c for c in log if c[0] == "pull")
    sif = str(image_dir / "redis_7-alpine.sif")
    # pulled under a name of its own beside the SIF, then renamed into place (jobs pulling at once)
    assert pull[0] == "pull" and pull[2:] == [REDIS_IMAGE] and Path(pull[1]).parent == image_dir
    assert pull[1].endswith(".partial") and Path(sif).is_file() and not list(image_dir.glob(".*.partial"))
    run = next(c for c in log if c[0] == "exec")
    assert run[:4] == ["exec", "--cleanenv", "--env-file", str(service_dir / "service.env")]
    assert ["--bind", str(service_dir)] == run[4:6] and "/etc/ssl/certs" in run
    inner = run[run.index(sif) + 1 :]  # redis-server by name or by its path in the image
    assert os.path.basename(inner[0]) == "redis-server" and inner[1:] == [str(service_dir / "redis.conf")]
    assert "--nv" not in run  # no GPU asked for
    assert password not in json.dumps(log)


def test_meluxina_profile_dry_run(tmp_path: Path, standin: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIBENCH_SCRATCH", str(tmp_path / "scratch"))
    config = tmp_path / "c.yaml"
    config.write_text(f"experiments: [redis-default]\nresults: {tmp_path / 'results'}\n")
    # the profile's own config files (config.yaml + meluxina.yaml), then this run's
    files = ("config/config.yaml", "config/meluxina.yaml", str(config))
    done = snakemake(config, "-n", "--configfile", *files, profile="profiles/meluxina")
    assert done.returncode == 0, done.stderr[-3000:]
    out = done.stdout + done.stderr
    assert "run_client" in out and "deploy_service" in out
    assert "deploy_grafana" in out and "stop_grafana" in out  # monitoring.grafana: true on MeluXina
    assert not (tmp_path / "results").exists()  # a dry run starts and submits nothing


def _our_bwraps() -> set[int]:
    """bubblewrap processes of this test session (their environment carries its marker)."""
    found = set()
    for proc in psutil.process_iter():
        try:
            if proc.name() == "bwrap" and proc.environ().get(SESSION_MARKER) == os.environ[SESSION_MARKER]:
                found.add(proc.pid)
        except psutil.Error:
            continue
    return found


@pytest.fixture(autouse=True)
def _no_stray_bwrap() -> Iterator[None]:
    """Nothing a test ran in an image outlives it (bubblewrap's --die-with-parent, signal forwarding)."""
    before = _our_bwraps()
    yield
    wait_until(lambda: not (_our_bwraps() - before), 15, what="no bwrap of this test left")
