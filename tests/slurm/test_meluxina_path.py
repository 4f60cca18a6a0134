"""The MeluXina path end to end, on the MeluXina-faithful cluster: `snakemake --profile profiles/meluxina`.

The same profile a MeluXina user runs, with the test cluster's environment (AIBENCH_ACCOUNT,
AIBENCH_SCRATCH, AIBENCH_MODULES="": no `module` command here) and shorter waits on the command line
(--latency-wait, --slurm-init-seconds-before-status-checks). What that means, as on MeluXina:
- the rules that talk to SLURM run on the login host, outside any container; the load and the
  analysis run in the rule image built from envs/aibench.def (apptainer build, the stand-in);
- services are sbatch'ed jobs on compute nodes (their own network namespaces), each running its image
  with the Apptainer STAND-IN (bubblewrap over a real root filesystem: no host PATH, no host binaries);
- every job names the account and the QoS, and SLURM enforces both.

Stand-ins, named as such: Apptainer itself (no build exists for this machine), the images' root
filesystems (built from Debian packages and PyPI, laid out like the real images: docs/images.md), and
docker://mariadb:10.11 for the mysql kind (docker://mysql:8.0, MeluXina's default, has no stand-in: MySQL
is in no Debian repository). Not covered: Grafana and cAdvisor (no stand-in images: Grafana is off,
cAdvisor is left unmonitored, as the service job does when an exporter's image cannot be pulled).
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pandas as pd
import pytest
import yaml

from tests.conftest import BIN, ROOT, run_to_end, wait_until
from tests.slurm.conftest import compute_nodes, queued_jobs

pytestmark = [pytest.mark.workflow, pytest.mark.usefixtures("local_slurm", "apptainer_images")]

#: the default experiments of `make run` (config/config.yaml), and one with its client on another node
EXPERIMENTS = [*yaml.safe_load((ROOT / "config" / "config.yaml").read_text())["experiments"], "redis-remote"]
#: only the waits differ from what a MeluXina user runs
FASTER = ["--latency-wait", "5", "--slurm-init-seconds-before-status-checks", "2"]


def run_meluxina_profile(workspace: Path, config: Path, **extra_env: str) -> subprocess.CompletedProcess:
    env = {
        **os.environ,
        "AIBENCH_SCRATCH": str(workspace / "scratch"),
        "AIBENCH_MODULES": "",
        **extra_env,
    }
    files = ["config/config.yaml", "config/meluxina.yaml", str(config)]
    argv = [str(BIN / "snakemake"), "--profile", "profiles/meluxina", "--configfile", *files, *FASTER]
    return run_to_end(argv, 1500, cwd=ROOT, env=env)


def sacct_of_run(since: str) -> list[dict[str, str]]:
    out = subprocess.run(
        ["sacct", "-n", "-X", "-P", "-S", since, "-o", "JobID,JobName,State,Account,QOS,Partition,NodeList"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    keys = ["id", "name", "state", "account", "qos", "partition", "nodes"]
    return [dict(zip(keys, line.split("|"), strict=True)) for line in out.splitlines() if line]


# all six default experiments through SLURM, and the rule image built first when it is not cached
@pytest.mark.timeout(1800)
def test_default_experiments_through_the_meluxina_profile(workspace: Path, no_leftovers: float) -> None:
    since = subprocess.run(["date", "+%Y-%m-%dT%H:%M:%S"], capture_output=True, text=True).stdout.strip()
    recipes = workspace / "recipes"
    mysql = yaml.safe_load((recipes / "services" / "mysql.yaml").read_text())
    (recipes / "services" / "mysql.yaml").write_text(
        yaml.safe_dump({**mysql, "image": "docker://mariadb:10.11"})
    )
    remote = yaml.safe_load((recipes / "experiments" / "redis-default.yaml").read_text())
    remote |= {"placement": "other-node", "sweep": {"clients": [10]}, "client_params": {"requests": 50000}}
    (recipes / "experiments" / "redis-remote.yaml").write_text(yaml.safe_dump(remote))
    config = workspace / "config.yaml"
    config.write_text(yaml.safe_dump({
        "experiments": EXPERIMENTS,
        "results": str(workspace / "results"),
        "recipes": str(recipes),
        "monitoring": {"enabled": True, "grafana": False},  # Grafana: no stand-in image
    }))  # fmt: skip

    done = run_meluxina_profile(workspace, config)
    assert done.returncode == 0, done.stderr[-6000:]
    results = workspace / "results"
    for rule in ("deploy_service", "wait_endpoint", "stop_service"):  # on the login host, never sbatch'ed
        assert done.stderr.count(f"localrule {rule}:") == len(EXPERIMENTS), rule

    # every point measured, in the common schema
    table = pd.read_csv(results / "summary.csv")
    client = table[table["source"] == "client"]
    assert set(client["experiment"]) == set(EXPERIMENTS)
    assert (table[table["source"] == "prometheus"]["metric"] == "cpu_cores").any()  # exporters in images

    # services ran in their images on compute nodes; the SLURM-facing rules ran outside the image
    jobs = sacct_of_run(since)
    assert jobs and all(j["account"] == "aibench" and j["qos"] == "default" for j in jobs), jobs
    nodes = set(compute_nodes())
    for name in EXPERIMENTS:
        service = results / name / "service"
        stopped = json.loads((service / "stopped.json").read_text())
        assert stopped["handle"]["launcher"] == "slurm"
        log = (service / "service.log").read_text()
        assert "apptainer" in (service / "spec.json").read_text() and "exited by itself" not in log
        endpoint = json.loads((service / "endpoint.json").read_text())
        assert endpoint["node"] in nodes and not endpoint["host"].startswith("127.")
    # redis_exporter ran from /redis_exporter in its scratch image, on its node's loopback
    redis_log = (results / "redis-default" / "service" / "exporter-redis-exporter.log").read_text()
    assert "Providing metrics at 127.0.0.1:" in redis_log
    service_log = (results / "redis-default" / "service" / "service.log").read_text()
    assert "exporter cadvisor: no image" in service_log  # no stand-in: unmonitored, the service runs

    # clients ran beside their service, but the other-node experiment's on another compute node
    for name in EXPERIMENTS:
        node = json.loads((results / name / "service" / "endpoint.json").read_text())["node"]
        hosts = {
            json.loads(p.read_text())["provenance"]["host"]
            for p in (results / name).glob("points/*/summary.json")
        }
        assert hosts and hosts <= nodes
        assert (hosts == {node}) if name != "redis-remote" else (node not in hosts), (name, node, hosts)

    # nothing is left: no job of the run queued or running, no process on any node
    wait_until(lambda: not queued_jobs("aibench-"), 120, 0.5, "service jobs to leave the queue")
    assert not [j for j in queued_jobs() if any(j.startswith(c["id"] + " ") for c in jobs)]


def test_rule_image_holds_every_client_tool() -> None:
    """The load runs inside the rule image on MeluXina: every program a client kind runs is in the
    image built from envs/aibench.def (and the project's Python with Snakemake), none from the host."""
    from aibench.clients import CLIENTS

    tools = sorted({tool for name in CLIENTS.names() for tool in CLIENTS.get(name).tools})
    assert {"redis-benchmark", "sysbench"} <= set(tools)
    for tool in tools:
        done = subprocess.run(["apptainer", "exec", "--cleanenv", "envs/aibench.sif", "sh", "-c",
                               f"command -v {tool}"], cwd=ROOT, capture_output=True, text=True)  # fmt: skip
        assert done.returncode == 0 and done.stdout.startswith("/usr/"), (tool, done.stdout, done.stderr)
        assert not done.stdout.startswith(str(ROOT))
    code = "import aibench, snakemake, chromadb, aiohttp; print(aibench.__file__)"
    # -P: not the working directory's aibench (the checkout is bound in, as Apptainer binds the cwd)
    argv = ["apptainer", "exec", "--cleanenv", "envs/aibench.sif", "python3", "-P", "-c", code]
    done = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0 and "/usr/local/lib/python3.11" in done.stdout, done.stderr
    for host_only in ("sbatch", "squeue", "scancel"):  # the image has no SLURM client, as on MeluXina
        argv = ["apptainer", "exec", "--cleanenv", "envs/aibench.sif", "sh", "-c", f"command -v {host_only}"]
        assert subprocess.run(argv, cwd=ROOT, capture_output=True).returncode != 0
