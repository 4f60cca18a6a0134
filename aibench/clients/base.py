"""What every client kind provides: run one point's load against an endpoint."""

from __future__ import annotations

import logging
import subprocess
import threading
from collections.abc import Callable
from typing import Any, ClassVar

from aibench.clients import progress
from aibench.clients.presentation import Presentation
from aibench.errors import ClientError
from aibench.results.schema import PointResult
from aibench.secrets import mask, mask_argv

LOG = logging.getLogger("aibench.client")


def run_tool(
    argv: list[str], timeout_s: float, secret_values: list[str], on_line: Callable[[str], None] | None = None,
    tracked: bool = False,
) -> str:
    """Run a load tool to completion within ``timeout_s``; its stdout, or a ClientError naming the
    command (secrets masked), the exit status and the end of its stderr. With ``on_line``, each line of
    its stdout is handed to it as it comes (a tool's own interim reports: its progress); ``tracked``:
    the caller counts its progress otherwise; neither: the load's progress is its time only
    (aibench.clients.progress)."""
    shown = " ".join(mask_argv(argv, secret_values))
    if on_line is None and not tracked:
        progress.start(None, timeout_s, counted=False)  # its completions are the tool's own: time only
    try:
        if on_line is None:
            done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout_s, check=False)
            code, out, err = done.returncode, done.stdout, done.stderr
        else:
            code, out, err = _streamed(argv, timeout_s, on_line)
    except subprocess.TimeoutExpired:
        raise ClientError(f"{argv[0]} ran past its time limit of {timeout_s:g} s: {shown}") from None
    finally:
        if (tracker := progress.current()) is not None:
            tracker.finish()
    if code != 0 or not out.strip():
        stderr = mask(err, secret_values).strip()
        raise ClientError(f"{argv[0]} failed (exit {code}): {stderr[-2000:]}\ncommand: {shown}")
    return out


def _streamed(argv: list[str], timeout_s: float, on_line: Callable[[str], None]) -> tuple[int, str, str]:
    """Exit status, stdout and stderr of ``argv``, its stdout lines handed to ``on_line`` as they come;
    killed (TimeoutExpired) past ``timeout_s``."""
    with subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) as proc:
        lines: list[str] = []
        errors: list[str] = []
        assert proc.stdout is not None and proc.stderr is not None
        drain = threading.Thread(target=lambda: errors.append(proc.stderr.read()), daemon=True)  # type: ignore[union-attr]
        drain.start()

        def read() -> None:
            for line in proc.stdout:  # type: ignore[union-attr]
                lines.append(line)
                try:
                    on_line(line)
                except Exception:  # progress only: the tool's output is still read to its end
                    LOG.exception("reading %s's progress from its line %r failed", argv[0], line[:200])

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        try:
            code = proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            raise
        reader.join()
        drain.join()
    return code, "".join(lines), "".join(errors)


def share_of(total: int, rank: int, nodes: int) -> int:
    """Client node ``rank``'s part of ``total`` split over ``nodes`` as evenly as it goes (the first
    nodes take the remainder)."""
    return total // nodes + (rank < total % nodes)


class ClientKind:
    """Base of a load generator; subclasses register with ``CLIENTS.register``."""

    name: ClassVar[str]
    params_schema: ClassVar[str]
    #: the service kinds this client can drive
    services: ClassVar[tuple[str, ...]] = ()
    #: secrets this client needs (names in the service's secrets file)
    secret_names: ClassVar[tuple[str, ...]] = ()
    #: parameters the prepare step depends on: fixed per experiment, never swept
    prepare_params: ClassVar[tuple[str, ...]] = ()
    #: programs the client runs (besides the project's Python): the rule image (envs/aibench.def)
    #: must hold each, since on MeluXina the client runs inside it (tests check the built image)
    tools: ClassVar[tuple[str, ...]] = ()
    #: how the kind's metrics are shown (figures, paper tables) and which is its headline throughput
    presentation: ClassVar[Presentation]
    #: whether the load spreads its requests over several replicas of the service (an endpoint's
    #: ``replicas``: round robin, each request's replica recorded)
    spreads_over_replicas: ClassVar[bool] = False

    #: whether a point's load can come from several client nodes at once (experiment ``client_nodes``,
    #: aibench.clients.fanout): the kind splits its parameters into shares and merges the shares' records
    multi_node: ClassVar[bool] = False

    def nodes_problem(self, params: dict[str, Any], nodes: int) -> tuple[tuple[str, ...], str] | None:
        """(the parameters involved, why) when a point cannot be split over ``nodes`` client nodes."""
        return None

    def share(self, params: dict[str, Any], rank: int, nodes: int) -> dict[str, Any]:
        """The parameters of client node ``rank``'s share of the point's load."""
        raise NotImplementedError

    def run_share(
        self, endpoint: dict[str, Any], secrets: dict[str, str], params: dict[str, Any], timeout_s: float
    ) -> dict[str, Any]:
        """One node's share of the load (``share``'s parameters), started at once: its records as JSON
        values, with ``origin_wall``, the wall-clock time (this node's clock) its times count from."""
        raise NotImplementedError

    def merge(self, parts: list[dict[str, Any]], params: dict[str, Any]) -> PointResult:
        """The point's result from every node's ``run_share`` output, each with ``rank`` and ``shift_s``
        (seconds to add to its times to put them on the point's common time axis)."""
        raise NotImplementedError

    def own_duration_s(self, params: dict[str, Any]) -> float | None:
        """How long a point's load runs by its own parameters (a timed load), None when it runs until
        its work is done (a number of requests)."""
        return None

    def planned_seconds(self, params: dict[str, Any], timeout_s: float) -> float:
        """The longest one point may take: its own duration, else its time limit."""
        own = self.own_duration_s(params)
        return timeout_s if own is None else min(own, timeout_s)

    def input_files(self, params: dict[str, Any]) -> dict[str, str]:
        """The files a point reads (parameter -> path, relative to the working directory)."""
        return {}

    def params_problem(
        self, params: dict[str, Any], timeout_s: float
    ) -> tuple[tuple[str, ...], str] | None:
        """(the parameters involved, why) when a point's parameters are valid one by one but wrong
        together (the schema cannot compare two values), or name a file that cannot be read; else None."""
        from aibench.files import INPUT_LIMIT, input_problem

        for name, path in self.input_files(params).items():
            problem = input_problem(path, INPUT_LIMIT)
            if problem is not None:
                return (name,), f"{path!r} {problem}"
        own = self.own_duration_s(params)
        if own is not None and own > timeout_s:
            return (
                (self.duration_param,),
                f"the load runs {own:g} s, longer than the client's timeout_s of {timeout_s:g} s: every "
                "point would be killed",
            )
        return None

    #: the parameter :meth:`own_duration_s` reads (for messages)
    duration_param: ClassVar[str] = "duration_s"

    def prepare(
        self, endpoint: dict[str, Any], secrets: dict[str, str], params: dict[str, Any], timeout_s: float
    ) -> str | None:
        """Once per deployment, before the first point (e.g. loading test data); None = nothing to do."""
        return None

    def run(
        self,
        endpoint: dict[str, Any],
        secrets: dict[str, str],
        params: dict[str, Any],
        timeout_s: float,
    ) -> PointResult:
        raise NotImplementedError
