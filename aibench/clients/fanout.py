"""A point's load from several client nodes at once (experiment ``client_nodes``).

The coordinator (the run_client rule: in-process on the local launcher, a login-node rule under SLURM):

1. writes the point's ``nodes/plan.json`` (the service dirs, the point's parameters, how many nodes) and a
   0600 ``clock.key``, then starts one agent per node (aibench.clients.agent): local processes, or one
   SLURM job of N nodes whose batch script ``srun``\\ s one agent per node inside the rule image (the
   rule image has no srun; the agents need no SLURM);
2. once they run, serves its clock on a TCP port of the address the login host reaches the nodes by
   (``clock.json``); each agent measures its offset against it (the exchange with the smallest round
   trip of :data:`EXCHANGES`: the error is at most half of it) and registers (``agents/<id>.json``);
3. when all N have registered, assigns the ranks and an instant :data:`START_LEAD_S` ahead on its own
   clock (``start.json``); each agent sleeps until that instant on its clock corrected by its offset,
   runs its share of the load (``ClientKind.share``) and writes ``parts/<rank>.json``;
4. merges the parts on one time axis (``ClientKind.merge``: percentiles of the merged requests, never
   averaged over nodes), adds ``client_nodes`` and ``clock_offset_max`` (the largest offset, in ms),
   and writes the point as every other one. Nothing of the agents is left: their job is cancelled or
   their processes killed in every case.
"""

from __future__ import annotations

import contextlib
import hmac
import logging
import os
import secrets
import socket
import socketserver
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any, Protocol

from aibench.clients import CLIENTS
from aibench.contracts import ClientNodes
from aibench.errors import ClientError
from aibench.files import read_json, write_json, write_text
from aibench.results import formulas
from aibench.results.schema import Metric, PointResult, summary_document, write_point
from aibench.rundir import NodesDir, PointDir

LOG = logging.getLogger("aibench.client")

#: how far ahead of the last registration the agreed start lies: every agent reads start.json in time
START_LEAD_S = 2.0
#: under SLURM, where start.json reaches the nodes through a shared filesystem such as Lustre
SLURM_START_LEAD_S = 5.0
#: a node that began its share later than this after the agreed instant fails the point
LATE_S = 0.5
#: clock exchanges per agent (the one with the smallest round trip is kept)
EXCHANGES = 8
POLL_S = 0.05
#: how often the client nodes' job is looked up in squeue, at most
SQUEUE_INTERVAL_S = 2.0
#: how long the files of agents whose job ended by itself get to show on the coordinator's host
FILES_GRACE_S = 120.0
#: how long agents that wrote their parts get to exit (their job to leave the queue) before being stopped
ENDING_S = 30.0


# -- the clock


class ClockResponder:
    """This host's clock on a TCP port: each line holding the key is answered with ``time.time()``; a
    connection sending anything else is closed unanswered."""

    def __init__(self, host: str, key: str) -> None:
        expected = key.encode()

        class Handler(socketserver.StreamRequestHandler):
            def handle(self) -> None:
                for line in self.rfile:
                    if not hmac.compare_digest(line.strip(), expected):
                        return
                    self.wfile.write(f"{time.time():.9f}\n".encode())

        self.server = socketserver.ThreadingTCPServer((host, 0), Handler)
        self.server.daemon_threads = True
        self.address = self.server.server_address[0], self.server.server_address[1]
        self._thread = threading.Thread(target=self.server.serve_forever, args=(0.1,), daemon=True)

    def __enter__(self) -> ClockResponder:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


def measure_offset(host: str, port: int, key: str, exchanges: int = EXCHANGES) -> tuple[float, float]:
    """(offset, round trip) in seconds against the responder at ``host:port``: its clock minus this
    one, from the exchange with the smallest round trip (the offset is within half of it)."""
    best: tuple[float, float] | None = None
    with socket.create_connection((host, port), timeout=10) as conn, conn.makefile("rwb") as stream:
        for _ in range(exchanges):
            sent = time.time()
            stream.write(key.encode() + b"\n")
            stream.flush()
            answer = stream.readline()
            received = time.time()
            if not answer:
                raise ClientError(f"the clock at {host}:{port} closed the connection (wrong key?)")
            trip = received - sent
            if best is None or trip < best[1]:
                best = float(answer) - (sent + received) / 2, trip
    assert best is not None
    return best


def source_address(node: str) -> str:
    """The address this host reaches ``node`` from (a UDP socket's choice of route; nothing is sent)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.connect((socket.gethostbyname(node), 9))
        return str(probe.getsockname()[0])


# -- where the agents run


class Agents(Protocol):
    def start(self) -> None: ...

    def running_on(self) -> str | None:
        """The address to serve the clock on once the agents run (None: not yet)."""

    def problem(self) -> str | None:
        """Why the agents cannot finish (they ended, or their job did), else None."""

    def ended(self) -> bool:
        """They have ended (each wrote its part and exited; their job left the queue)."""

    def stop(self) -> None:
        """Nothing of them is left afterwards."""


def agent_argv(python: str, where: NodesDir) -> list[str]:
    return [python, "-m", "aibench.clients.agent", str(where.path.absolute())]


class LocalAgents:
    """N agent processes on this host (the local launcher: every "node" is this machine)."""

    def __init__(self, where: NodesDir, nodes: int) -> None:
        self.where, self.nodes = where, nodes
        self.procs: list[subprocess.Popen[bytes]] = []

    def start(self) -> None:
        with open(self.where.log, "ab") as log:
            for _ in range(self.nodes):
                self.procs.append(subprocess.Popen(
                    agent_argv(sys.executable, self.where), stdin=subprocess.DEVNULL, stdout=log,
                    stderr=subprocess.STDOUT, start_new_session=True,
                ))  # fmt: skip

    def running_on(self) -> str | None:
        return "127.0.0.1"

    def problem(self) -> str | None:
        for proc in self.procs:
            if proc.poll() not in (None, 0):
                return f"an agent exited with status {proc.returncode}: {_tail(self.where.log)}"
        return None

    def ended(self) -> bool:
        return all(proc.poll() is not None for proc in self.procs)

    def stop(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, 9)
            proc.wait()


class SlurmAgents:
    """One SLURM job of N nodes (sbatch from the login node, the client job's account, QoS and
    partition); its batch script srun's an agent per node in the rule image under Apptainer."""

    def __init__(
        self, where: NodesDir, spec: ClientNodes, job_name: str, service_dirs: list[str], inputs: list[str]
    ) -> None:
        from aibench.launchers.slurm import SlurmLauncher

        self.where, self.spec, self.job_name = where, spec, job_name
        self.service_dirs = [os.path.abspath(d) for d in service_dirs]
        #: the directories of the files the load reads (a prompt file), wherever they are
        self.input_dirs = [os.path.dirname(os.path.abspath(f)) for f in inputs]
        self.launcher = SlurmLauncher()
        self.job_id: str | None = None
        self._queued: tuple[str, str] | None = None
        self._asked = -SQUEUE_INTERVAL_S
        self._ended_at: float | None = None

    def start(self) -> None:
        from aibench.launchers.slurm import _run, job_script

        if not self.spec.image:
            raise ClientError("client_nodes under SLURM runs its agents in the rule image: the config's "
                              "`container` is not set")  # fmt: skip
        runtime = self.spec.placement.runtime
        # what an agent reads: the working directory (inputs such as a prompt file), the point's nodes/
        # and the deployment's service dirs, wherever the results are (e.g. on scratch)
        binds = dict.fromkeys([os.getcwd(), str(self.where.path.absolute()), *self.service_dirs,
                               *self.input_dirs])  # fmt: skip
        apptainer = [runtime.binary, "exec", "--cleanenv", *(a for b in binds for a in ("--bind", b)),
                     *runtime.apptainer.get("args", []), self.spec.image]  # fmt: skip
        options = dict(self.spec.placement.launcher_options)
        options["resources"] = {**options.get("resources", {}), "nodes": self.spec.nodes}
        options["tasks_per_node"] = 1  # one agent per node, each an srun task in the rule image
        argv = ["srun", "--kill-on-bad-exit=1", *apptainer, *agent_argv("python3", self.where)]
        script = job_script(argv, self.where.log, self.job_name, options)
        write_text(self.where.job_script, script, perms=0o700)
        out = _run(["sbatch", "--parsable", f"--chdir={os.getcwd()}", str(self.where.job_script)])
        self.job_id = out.strip().split(";")[0]
        write_json(self.where.job, {"job_id": self.job_id, "job_name": self.job_name})
        LOG.info("client nodes: SLURM job %s of %d nodes submitted", self.job_id, self.spec.nodes)

    def _state(self) -> tuple[str, str] | None:
        """squeue's (state, nodes) of the job, asked every SQUEUE_INTERVAL_S at most (the waits poll
        files far more often; slurmctld is shared)."""
        assert self.job_id is not None
        if time.monotonic() - self._asked >= SQUEUE_INTERVAL_S:
            self._queued, self._asked = self.launcher._squeue(self.job_id), time.monotonic()
        return self._queued

    def running_on(self) -> str | None:
        from aibench.launchers.slurm import _run

        queued = self._state()
        if queued is None or queued[0] != "RUNNING":
            return None
        first = _run(["scontrol", "show", "hostnames", queued[1]]).split()[0]
        return source_address(first)

    def problem(self) -> str | None:
        """A job that failed is a problem at once; one that ended by itself only once its agents'
        files have had FILES_GRACE_S to show on this host (writes on a compute node can take a while
        to show on the login node's view of a shared filesystem)."""
        queued = self._state()
        state = queued[0] if queued else "gone from the queue"
        if queued is not None and state in ("PENDING", "CONFIGURING", "RUNNING"):
            return None
        if state in ("COMPLETING", "COMPLETED", "gone from the queue"):
            if self._ended_at is None:
                self._ended_at = time.monotonic()
            if time.monotonic() - self._ended_at < FILES_GRACE_S:
                return None
        return f"the client nodes' job {self.job_id} ended ({state}): {_tail(self.where.log)}"

    def ended(self) -> bool:
        from aibench.launchers.slurm import ENDED

        queued = self._state()
        return queued is None or queued[0] in ENDED

    def stop(self) -> None:
        if self.job_id is None:
            return
        from aibench.launchers.slurm import SlurmJob

        job = SlurmJob(self.job_name, self.job_id, str(self.where.log), str(self.where.job_script), 0.0)
        self.launcher.stop(job, grace_s=5.0)
        self.where.job.unlink(missing_ok=True)


def cancel_leftover_jobs(nodes_dirs: list[NodesDir]) -> list[str]:
    """Cancel the client nodes' jobs a killed coordinator left (their job.json); returns what it did."""
    from aibench.launchers.slurm import SlurmJob, SlurmLauncher

    done = []
    for where in nodes_dirs:
        try:
            job = read_json(where.job)
            how = SlurmLauncher().stop(SlurmJob(job["job_name"], job["job_id"], str(where.log), "", 0.0), 5.0)
            where.job.unlink(missing_ok=True)
            done.append(f"{where.path}: client nodes' job {job['job_id']} ({how})")
        except Exception as exc:  # keep going: every other job must still be cancelled
            done.append(f"{where.path}: could not cancel its client nodes' job: {exc}")
    return done


def _tail(path: os.PathLike[str] | str, lines: int = 15) -> str:
    with contextlib.suppress(OSError):
        return "\n".join(open(path, errors="replace").read().splitlines()[-lines:])
    return "(no log)"


def agents_for(
    spec: ClientNodes, where: NodesDir, job_name: str, service_dirs: list[str], inputs: list[str]
) -> Agents:
    if spec.placement.launcher == "slurm":
        return SlurmAgents(where, spec, job_name, service_dirs, inputs)
    return LocalAgents(where, spec.nodes)


# -- the coordinator


def _wait(
    what: str, done: Callable[[], Any], problem: Callable[[], str | None], deadline: float | None
) -> Any:
    """Poll ``done()`` until it returns a value; a ClientError when ``problem()`` says the agents cannot
    finish, or the deadline (monotonic; None: none) passes."""
    while True:
        value = done()
        if value:
            return value
        why = problem()
        if why:
            raise ClientError(why)
        if deadline is not None and time.monotonic() > deadline:
            raise ClientError(f"the client nodes did not {what} in time")
        time.sleep(POLL_S)


@contextlib.contextmanager
def _agents_started(agents: Agents) -> Iterator[Agents]:
    try:  # a start that fails half-way (the second process, sbatch) stops what it started
        agents.start()
        yield agents
    finally:
        agents.stop()


def run_point_from_nodes(
    service_dirs: list[str],
    out_dir: str | os.PathLike[str],
    spec: ClientNodes,
    *,
    client_kind: str,
    params: dict[str, Any],
    timeout_s: float,
    experiment: str = "adhoc",
    point: str = "adhoc",
    **summary: Any,
) -> dict[str, Any]:
    """Run the point's load from ``spec.nodes`` client nodes, write it into ``out_dir`` (a PointDir) and
    return its summary; a failure of any node fails the point (what the others measured is in nodes/)."""
    where = PointDir.of(out_dir).nodes
    cancel_leftover_jobs([where] if where.job.is_file() else [])  # an earlier attempt's, still queued
    where.reset()
    kind = CLIENTS.create(client_kind)
    key = secrets.token_hex(16)
    attempt = secrets.token_hex(8)  # what this attempt's agents carry: an earlier attempt's are ignored
    lead = START_LEAD_S if spec.placement.launcher != "slurm" else SLURM_START_LEAD_S
    write_text(where.clock_key, key, perms=0o600)
    write_json(where.plan, {"client_kind": client_kind, "params": params, "timeout_s": timeout_s,
                            "nodes": spec.nodes, "service_dirs": [os.path.abspath(d) for d in service_dirs],
                            "register_timeout_s": spec.register_timeout_s, "attempt": attempt})  # fmt: skip
    name = f"aibench-{experiment}-{point}-clients"

    def registered() -> list[dict[str, Any]]:
        ours = [a for a in map(read_json, where.agents()) if a.get("attempt") == attempt]
        return ours if len(ours) >= spec.nodes else []

    inputs = list(kind.input_files(params).values())
    try:
        with _agents_started(agents_for(spec, where, name, service_dirs, inputs)) as agents:
            queued = time.monotonic() + spec.queue_timeout_s
            host = _wait("start (the job stayed queued)", agents.running_on, agents.problem, queued)
            with ClockResponder(host, key) as clock:
                write_json(where.clock, {"host": clock.address[0], "port": clock.address[1]})
                deadline = time.monotonic() + spec.register_timeout_s
                seen = _wait("register", registered, agents.problem, deadline)
            chosen = sorted(seen, key=lambda a: a["id"])[: spec.nodes]
            ranks = {a["id"]: rank for rank, a in enumerate(chosen)}
            start_at = time.time() + lead
            write_json(where.start, {"start_at": start_at, "ranks": ranks, "attempt": attempt})
            LOG.info("client nodes: %d registered, the load starts at %.3f", spec.nodes, start_at)
            paths = [where.part(rank) for rank in range(spec.nodes)]

            def finished() -> bool:
                return all(p.is_file() and read_json(p).get("attempt") == attempt for p in paths)

            _wait("finish", finished, agents.problem, time.monotonic() + lead + timeout_s + 60)
            # they end by themselves once their parts are written (the job COMPLETED in accounting);
            # whatever has not ended by then is stopped on the way out
            with contextlib.suppress(ClientError):
                _wait("end", agents.ended, lambda: None, time.monotonic() + ENDING_S)
        result, window = _merged(kind, [read_json(p) for p in paths], params, start_at)
    except Exception as exc:  # the point fails with its reason; nothing of the agents is left (above)
        result = PointResult(metrics=[], raw_csv=b"", status="failed", error=f"{type(exc).__name__}: {exc}")
        window = {"start": time.time(), "end": time.time(), "duration_s": 0.0}
    document = summary_document(
        experiment=experiment, point=point, params=params, window=window, result=result,
        repeat=summary.get("repeat", 0), swept=summary.get("swept") or {},
        service={"endpoint": _endpoint_shown(service_dirs[0]), **(summary.get("service") or {})},
        client={"kind": client_kind, "recipe": summary.get("client_recipe")},
        deployment=summary.get("deployment"),
    )  # fmt: skip
    write_point(out_dir, document, result.raw_csv)
    return document


def _endpoint_shown(service_dir: str) -> str:
    """host:port of the deployment (its first replica's), as a one-node point's summary shows it."""
    from aibench.contracts import Endpoint
    from aibench.rundir import ServiceDir

    with contextlib.suppress(Exception):
        endpoint = Endpoint.read(ServiceDir(service_dir).endpoint)
        return f"{endpoint.host}:{endpoint.port}"
    return "unknown"


def _merged(
    kind: Any, parts: list[dict[str, Any]], params: dict[str, Any], start_at: float
) -> tuple[PointResult, dict[str, float]]:
    """The point from every node's part; its window from the agreed start to the last node's end."""
    failed = [p for p in parts if p.get("error")]
    if failed:
        first = failed[0]
        raise ClientError(f"client node {first['rank']} ({first['host']}) failed: {first['error']}")
    late = [p for p in parts if p["started"] + p["offset_s"] - start_at > LATE_S]
    if late:
        first = late[0]
        raise ClientError(
            f"client node {first['rank']} ({first['host']}) started "
            f"{first['started'] + first['offset_s'] - start_at:.2f} s after the agreed instant (it saw "
            "start.json late): the nodes' loads did not run together"
        )
    for part in parts:  # onto the coordinator's clock, from the agreed start
        part["shift_s"] = part["origin_wall"] + part["offset_s"] - start_at
    result = kind.merge(parts, params)
    largest = max(abs(p["offset_s"]) for p in parts) * 1000
    result.metrics += [
        Metric("client_nodes", "count", float(len(parts)), "nodes", formula=formulas.CLIENT_NODES),
        Metric("clock_offset_max", "max", largest, "ms", formula=formulas.CLOCK_OFFSET),
    ]
    result.tool["nodes"] = [
        {"rank": p["rank"], "host": p["host"], "offset_ms": p["offset_s"] * 1000, "rtt_ms": p["rtt_s"] * 1000}
        for p in parts
    ]
    end = max(p["ended"] + p["offset_s"] for p in parts)
    return result, {"start": start_at, "end": end, "duration_s": end - start_at}
