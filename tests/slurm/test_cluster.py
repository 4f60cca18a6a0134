"""The test cluster is as strict as MeluXina where the project relies on it (envs/local-slurm.sh).

Compute nodes have their own network: a server on a node's 127.0.0.1 is reachable only there. Jobs
must name a valid account and QoS and stay within its limits; a partition/node mismatch is refused;
GPUs are scheduled through gres. Each refusal is SLURM's own, through real sbatch.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.conftest import wait_until
from tests.slurm.conftest import compute_nodes, node_address, on_node

pytestmark = pytest.mark.usefixtures("local_slurm")

OK = ["--account=aibench", "--qos=test", "--time=2", "--mem=200"]


def sbatch(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["sbatch", "--parsable", *args], capture_output=True, text=True, timeout=60)


def job_done(job_id: str) -> bool:
    out = subprocess.run(["squeue", "-h", "-j", job_id], capture_output=True, text=True).stdout
    return not out.strip()


def test_nodes_partitions_and_gres() -> None:
    lines = subprocess.run(
        ["sinfo", "-h", "-N", "-o", "%N %P %G %T"], capture_output=True, text=True, check=True
    ).stdout.splitlines()
    nodes = {line.split()[0]: line.split()[1:] for line in lines}
    cpu = [n for n, (part, *_rest) in nodes.items() if part.rstrip("*") == "cpu"]
    gpu = [n for n, (part, gres, _state) in nodes.items() if part == "gpu" and gres == "gpu:4"]
    assert len(cpu) >= 2 and len(gpu) == 1, nodes
    addresses = {node_address(n) for n in nodes}
    assert len(addresses) == len(nodes) and not any(a.startswith("127.") for a in addresses)


def test_jobs_need_account_and_qos_within_limits() -> None:
    refusals = {
        # root's default account may submit nothing and has no QoS: whichever SLURM checks first
        "no account": (["--qos=test", "--time=2"], ("job submit limit", "Invalid qos")),
        "no account, no QoS": (["--time=2"], ("job submit limit", "Invalid qos")),
        "unknown account": (["--account=p999999", "--qos=test", "--time=2"], "Invalid account"),
        "no QoS": (["--account=aibench", "--time=2"], "Invalid qos"),
        "unknown QoS": (["--account=aibench", "--qos=urgent", "--time=2"], "Invalid qos"),
        "over the QoS time limit": (["--account=aibench", "--qos=test", "--time=31"], "QOSMaxWall"),
        "node outside the partition": ([*OK, "--partition=cpu", "--nodelist=mel2001"], "not available"),
        "GPUs on the cpu partition": ([*OK, "--partition=cpu", "--gres=gpu:1"], "not available"),
    }
    for what, (args, message) in refusals.items():
        done = sbatch(*args, "--wrap=true")
        assert done.returncode != 0, f"{what}: accepted as job {done.stdout}"
        wanted = (message,) if isinstance(message, str) else message
        assert any(m in done.stderr for m in wanted), f"{what}: {done.stderr}"


def test_gpus_are_scheduled_through_gres(tmp_path: Path) -> None:
    out = tmp_path / "gpu.out"
    done = sbatch(*OK, "--partition=gpu", "--gres=gpu:2", f"--output={out}",
                  "--wrap=hostname; echo $CUDA_VISIBLE_DEVICES")  # fmt: skip
    assert done.returncode == 0, done.stderr
    wait_until(lambda: job_done(done.stdout.strip()), 60, 0.2, "the gpu job")
    assert out.read_text().split() == ["mel2001", "0,1"]


def test_loopback_of_a_node_is_its_own(tmp_path: Path) -> None:
    """A server on mel0001's 127.0.0.1 is refused from the login host and from mel0002; the same
    server's node address answers both. The nodes have no route off the test network."""
    first, second = [n for n in compute_nodes() if n.startswith("mel0")][:2]
    ready = tmp_path / "ready"
    server = (
        "import socket, sys, time\n"
        "socks = []\n"
        "for host in ('127.0.0.1', socket.gethostbyname(socket.gethostname())):\n"
        "    s = socket.socket(); s.bind((host, 18777)); s.listen(); socks.append(s)\n"
        f"open({str(ready)!r}, 'w').write(socket.gethostname())\n"
        "time.sleep(60)\n"
    )
    (tmp_path / "server.py").write_text(server)
    done = sbatch(*OK, f"--nodelist={first}", f"--output={tmp_path / 'server.out'}",
                  f"--wrap=exec python3 {tmp_path / 'server.py'}")  # fmt: skip
    assert done.returncode == 0, done.stderr
    job_id = done.stdout.strip()
    try:
        wait_until(ready.exists, 60, 0.1, "the server job")
        assert ready.read_text() == first  # its own hostname (UTS namespace)
        probe = "import socket, sys; socket.create_connection((sys.argv[1], 18777), timeout=3); print('open')"

        def reach(node: str | None, host: str) -> bool:
            argv = ["python3", "-c", probe, host]
            if node is None:
                proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
            else:
                proc = on_node(node, *argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
            out, _ = proc.communicate(timeout=10)
            return out.strip() == b"open"

        address = node_address(first)
        assert reach(first, "127.0.0.1")  # on its own node, loopback answers
        assert not reach(None, "127.0.0.1")  # the login host
        assert not reach(second, "127.0.0.1")  # the other node
        assert reach(None, address) and reach(second, address)
    finally:
        subprocess.run(["scancel", job_id], check=False)
        wait_until(lambda: job_done(job_id), 60, 0.2, "the server job to end")
    for node in (first, second):
        routes = on_node(node, "ip", "route", stdout=subprocess.PIPE).communicate(timeout=10)[0].decode()
        assert "default" not in routes and routes.strip(), routes  # only the test network itself
