"""The `aibench` command: validate files, run a client on its own, inspect and stop services, tunnel;
query, show, compare, fetch and archive a run's results; preflight on MeluXina."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

from aibench.errors import AibenchError

if TYPE_CHECKING:
    from aibench.rundir import ServiceDir

API_SHORTHANDS = {"openai": "openai-chat", "ollama": "ollama-generate"}


def _parse_sets(pairs: list[str]) -> dict[str, Any]:
    from aibench.recipes.validation import parse_yaml

    values: dict[str, Any] = {}
    for pair in pairs:
        name, sep, raw = pair.partition("=")
        if not sep or not name:
            raise AibenchError(f"--set {pair!r}: expected name=value")
        # the recipes' own YAML rules: safe tags only, no octal surprises, no alias bombs
        values[name] = parse_yaml(raw, f"--set {name}") if raw else ""
    return values


def port_number(text: str) -> int:
    """An argparse type: a TCP port, 1-65535."""
    if not text.isdigit() or not 1 <= int(text) <= 65535:
        raise argparse.ArgumentTypeError(f"{text!r} is not a TCP port (1-65535)")
    return int(text)


def _endpoint(given: str) -> dict[str, Any]:
    text = given.split("://", 1)[-1].rstrip("/")  # a URL (http://host:port) or HOST:PORT
    host, sep, port = text.rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port.isdigit() or not 1 <= int(port) <= 65535:
        raise AibenchError(f"--endpoint {given!r}: expected HOST:PORT, with a port of 1-65535")
    return {"host": host, "port": int(port)}


def cmd_validate(args: argparse.Namespace) -> int:
    from aibench.recipes import load_any

    failed = 0
    for path in args.files:
        try:
            print(f"ok: {load_any(Path(path))}")
        except AibenchError as exc:
            print(f"error: {exc}", file=sys.stderr)
            failed += 1
    return 1 if failed else 0


def cmd_run_client(args: argparse.Namespace) -> int:
    from aibench.clients import CLIENTS
    from aibench.clients.runner import run_point
    from aibench.recipes.validation import validate
    from aibench.rundir import PointDir
    from aibench.secrets import read_secrets

    kind = CLIENTS.get(args.kind)
    values = _parse_sets(args.set)
    if args.api:
        values["api"] = API_SHORTHANDS.get(args.api, args.api)
    params = validate(values, kind.params_schema, "--set", field_prefix="")
    secrets = read_secrets(args.secrets_file) if args.secrets_file else {}
    for name in kind.secret_names:
        if name in os.environ and name not in secrets:
            secrets[name] = os.environ[name]
    if not logging.getLogger().handlers:  # the load's progress lines, on stderr
        logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(message)s")
    summary = run_point(
        client_kind=args.kind,
        endpoint=_endpoint(args.endpoint),
        secrets=secrets,
        params=params,
        out_dir=args.out,
        timeout_s=args.timeout,
        progress={"interval_s": args.progress_s, "stall_s": args.stall_s},
        bar=None,  # a live bar when stderr is a terminal
    )
    print(f"{summary['status']}: {len(summary['metrics'])} metrics in {PointDir(args.out).summary}")
    if summary["status"] != "ok":
        print(f"reason: {summary.get('error') or 'not recorded'}", file=sys.stderr)
    return 0 if summary["status"] == "ok" else 1


def cmd_list(args: argparse.Namespace) -> int:
    from aibench.clients import CLIENTS
    from aibench.paths import PROJECT_ROOT
    from aibench.services import SERVICES

    recipes = Path(args.recipes or PROJECT_ROOT / "recipes")
    print("service kinds: " + ", ".join(SERVICES.names()))
    print("client kinds:  " + ", ".join(CLIENTS.names()))
    for folder in ("services", "clients", "experiments"):
        names = sorted(p.stem for p in (recipes / folder).glob("*.yaml"))
        print(f"{folder + ' recipes:':22s}" + ", ".join(names))
    return 0


def _status_row(service_dir: ServiceDir, deployment: str) -> tuple[str, ...] | None:
    """One deployment's row of `aibench status` (None: nothing deployed there)."""
    from aibench.contracts import Endpoint, Handle
    from aibench.files import read_json
    from aibench.launchers import get_launcher

    if service_dir.handle.exists():
        handle = Handle.read(service_dir.handle)
        state = str(get_launcher(handle.launcher).state(handle.job))
    elif service_dir.stopped.exists():
        stopped = read_json(service_dir.stopped)
        handle, state = Handle.from_json(stopped["handle"], str(service_dir.stopped)), "stopped"
    else:
        return None
    endpoint = Endpoint.read_recorded(service_dir.endpoint) if service_dir.endpoint.exists() else None
    node = endpoint.node if endpoint else handle.job.node
    port = str(endpoint.port) if endpoint else "-"
    return (handle.experiment, deployment or "-", handle.kind, handle.launcher, handle.job.ident, node or "?",
            port, state)  # fmt: skip


def cmd_status(args: argparse.Namespace) -> int:
    from aibench.rundir import RunDir

    rows = []
    run = RunDir(args.results)
    for service_dir in run.service_dirs():
        experiment, deployment = run.where(service_dir)
        try:
            row = _status_row(service_dir, deployment)
        except (AibenchError, OSError, ValueError, KeyError, TypeError) as exc:  # one bad record, not all
            what = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
            row = (experiment, deployment or "-", "?", "?", "?", "?", "-", f"unreadable: {what}")
        if row is not None:
            rows.append(row)
    header = ("experiment", "deployment", "service", "launcher", "job/pid", "node", "port", "state")
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)))
    return 0


def cmd_stop(args: argparse.Namespace) -> int:
    from aibench.clients.fanout import cancel_leftover_jobs
    from aibench.lifecycle import stop_all
    from aibench.rundir import RunDir

    run = RunDir(args.results)
    dirs, loads = run.service_dirs(), run.client_node_jobs()
    if args.experiment:  # every deployment (and replica) of each experiment named
        dirs = [d for d in dirs if run.where(d)[0] in args.experiment]
        loads = [n for n in loads if n.path.relative_to(run.root).parts[0] in args.experiment]
    elif not args.all:
        raise AibenchError("name experiments to stop, or --all")
    for line in [*cancel_leftover_jobs(loads), *stop_all(dirs)] or ["nothing was running"]:
        print(line)
    return 0


def cmd_tunnel(args: argparse.Namespace) -> int:
    from aibench.tunnel import describe, make_tunnel

    tunnel = make_tunnel(args.results, args.service, args.login, args.ssh_port, args.user, args.local_port)
    print("\n".join(describe(tunnel)))
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    from aibench.results.compare import DEFAULT_STATS, compare, format_table, load_run

    table = compare(
        load_run(args.run_a),
        load_run(args.run_b),
        metrics=args.metric,
        stats=None if args.all_stats else DEFAULT_STATS,
        prometheus=args.prometheus,
        experiments=args.experiment,
    )
    print(f"A = {args.run_a}\nB = {args.run_b}\n\n{format_table(table)}")
    if args.csv:
        table.to_csv(args.csv, index=False)
    return 0


def cmd_query(args: argparse.Namespace) -> int:
    """PromQL against the run's Prometheus (live, or its saved TSDB): a table, CSV or JSON."""
    import json
    import time

    import pandas as pd

    from aibench.monitoring.query import point_window, prometheus_of, run_query

    if args.point and not args.experiment:
        raise AibenchError("--point needs --experiment (point ids repeat across experiments)")
    if args.range and not args.point:
        raise AibenchError("--range needs a window: --point (with --experiment)")
    window = point_window(args.results, args.experiment, args.point) if args.point else None
    with prometheus_of(args.results) as source:
        rows = run_query(source, args.promql, window, args.range, args.step)
    if args.json:  # times as Unix seconds, as Prometheus gives them
        print(json.dumps(rows, indent=1))
        return 0
    table = pd.DataFrame(rows)
    if rows:  # each series' labels, then its samples
        table = table[[c for c in table.columns if c not in ("time", "value")] + ["time", "value"]]
    if args.csv:
        print(table.to_csv(index=False), end="")
        return 0
    from rich.console import Console
    from rich.table import Table

    console = Console(width=None if sys.stdout.isatty() else 200)
    console.print(f"{args.promql}: from {source.describe()}", markup=False, highlight=False)
    shown = Table()
    for column in table.columns:
        shown.add_column(column, justify="right" if column in ("time", "value") else "left")
    for _, row in table.iterrows():
        labels = row.drop(["time", "value"]).fillna("").astype(str).tolist()
        at = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(row["time"]))
        shown.add_row(*labels, at, f"{row['value']:.6g}")
    console.print(shown if len(table) else "no series")
    return 0


def cmd_fetch_results(args: argparse.Namespace) -> int:
    from aibench.fetch import Remote, fetch

    remote = Remote.parse(args.remote)
    dest = Path(args.dest or PurePosixPath(remote.path.rstrip("/")).name or "results")
    options = ["-i", args.identity] if args.identity else []
    options += [a for option in args.ssh_option for a in ("-o", option)]
    names = fetch(remote, dest, args.port, options)
    print(f"{dest}: {len(names)} files of {remote.login}:{remote.path} (records, figures, report; "
          "no secrets, service data or TSDB)")  # fmt: skip
    return 0


def cmd_results(args: argparse.Namespace) -> int:
    """The run's headline tables; with --compare, `aibench compare` of the two runs instead."""
    if args.compare:
        return cmd_compare(argparse.Namespace(run_a=args.results, run_b=args.compare, metric=None,
                                              all_stats=False, prometheus=False, experiment=args.experiment,
                                              csv=None))  # fmt: skip
    from aibench.results.glance import print_results

    print_results(args.results, experiments=args.experiment)
    return 0


def cmd_archive(args: argparse.Namespace) -> int:
    from aibench.archive import pack

    output = Path(args.output or f"{Path(args.results).absolute().name}.tar.gz")
    files = pack(Path(args.results), output)
    print(f"{output}: {len(files)} files of {args.results} (raw results, logs, manifest; no secrets)")
    return 0


def cmd_doctor(args: argparse.Namespace) -> int:
    from aibench import doctor
    from aibench.paths import PROJECT_ROOT

    profile = Path(args.profile) if "/" in args.profile else PROJECT_ROOT / "profiles" / args.profile
    if not (profile / "config.v8+.yaml").is_file():
        raise AibenchError(f"--profile {args.profile}: no profile at {profile}")
    return doctor.run(profile, [Path(f) for f in args.configfile], test_job=not args.no_test_job)


def parser() -> argparse.ArgumentParser:
    main = argparse.ArgumentParser(prog="aibench", description=__doc__)
    sub = main.add_subparsers(dest="command", required=True)

    p = sub.add_parser("validate", help="check config and recipe files against their schemas")
    p.add_argument("files", nargs="+")
    p.set_defaults(func=cmd_validate)

    p = sub.add_parser("run-client", help="run one client load against any endpoint")
    p.add_argument("kind", help="client kind, e.g. redis-benchmark")
    p.add_argument("--endpoint", required=True, help="HOST:PORT or http://HOST:PORT of the service")
    p.add_argument("--out", required=True, help="directory for raw.csv.gz and summary.json")
    p.add_argument("--set", action="append", default=[], metavar="NAME=VALUE", help="client parameter")
    p.add_argument("--secrets-file", help="0600 env file with the service credentials (else environment)")
    p.add_argument("--api", help="llm client: openai (chat), ollama (generate), or a full api name")
    p.add_argument("--timeout", type=float, default=900.0, help="time limit of the load in seconds")
    p.add_argument("--progress-s", type=float, default=10.0, help="seconds between two progress lines")
    p.add_argument("--stall-s", type=float, default=60.0,
                   help="seconds without a completed request before the load counts as stalled")  # fmt: skip
    p.set_defaults(func=cmd_run_client)

    p = sub.add_parser("list", help="available service and client kinds and recipes")
    p.add_argument("--recipes", help="recipes directory (default: the project's)")
    p.set_defaults(func=cmd_list)

    p = sub.add_parser("status", help="services of a run: launcher, job or pid, node, port, state")
    p.add_argument("results", nargs="?", default="results")
    p.set_defaults(func=cmd_status)

    p = sub.add_parser("stop", help="stop the services of a run that are still alive")
    p.add_argument("results", nargs="?", default="results")
    p.add_argument("--all", action="store_true", help="every service of the run")
    p.add_argument("--experiment", action="append", help="only this experiment's service")
    p.set_defaults(func=cmd_stop)

    p = sub.add_parser("tunnel", help="the ssh port forward to open the run's Grafana or Prometheus")
    p.add_argument("service", choices=["grafana", "prometheus"])
    p.add_argument("--results", default="results", help="results directory of the run")
    p.add_argument("--login", default="login.lxp.lu", help="login host that reaches the compute nodes")
    p.add_argument("--ssh-port", type=port_number, default=8822, help="SSH port of the login host")
    p.add_argument("--user", help="user on the login host (default: you)")
    p.add_argument("--local-port", type=port_number, help="port on your laptop (default: the service's port)")
    p.set_defaults(func=cmd_tunnel)

    p = sub.add_parser("compare", help="two runs side by side: relative change, and whether beyond noise")
    p.add_argument("run_a", metavar="RUN_A", help="results directory or archive (.tar.gz) of the baseline")
    p.add_argument("run_b", metavar="RUN_B", help="results directory or archive (.tar.gz) to compare")
    p.add_argument("--experiment", action="append", help="only this experiment (repeatable)")
    p.add_argument("--metric", nargs="+", action="extend", help="only these metric names (any source)")
    p.add_argument("--all-stats", action="store_true", help="every stat, not only mean, median and p99")
    p.add_argument("--prometheus", action="store_true", help="include the Prometheus resource series")
    p.add_argument("--csv", metavar="OUT", help="also write the comparison table to this CSV file")
    p.set_defaults(func=cmd_compare)

    p = sub.add_parser("query", help="PromQL against the run's Prometheus, live or its saved TSDB")
    p.add_argument("promql", metavar="PROMQL")
    p.add_argument("--results", default="results", help="results directory of the run")
    p.add_argument("--experiment", help="the point's experiment (with --point)")
    p.add_argument("--point", help="a point id: an instant query at its window's end, --range over it")
    p.add_argument("--range", action="store_true", help="a range query over the point's window")
    p.add_argument("--step", type=float, default=1.0, help="a range query's step in seconds (default 1)")
    shown = p.add_mutually_exclusive_group()
    shown.add_argument("--csv", action="store_true", help="CSV on stdout")
    shown.add_argument("--json", action="store_true", help="JSON on stdout")
    p.set_defaults(func=cmd_query)

    p = sub.add_parser("fetch-results", help="bring a run's results home over ssh (resumable; no secrets)")
    p.add_argument("remote", metavar="USER@HOST:PATH", help="e.g. u100000@login.lxp.lu:aibench/results")
    p.add_argument("dest", nargs="?", help="local directory (default: the remote directory's name)")
    p.add_argument("--port", type=port_number, default=8822, help="SSH port of the login host (default 8822)")
    p.add_argument("--identity", "-i", help="ssh private key file")
    p.add_argument("--ssh-option", "-o", action="append", default=[], metavar="OPTION",
                   help="an ssh option, passed as -o OPTION (repeatable), e.g. ProxyJump=gw")  # fmt: skip
    p.set_defaults(func=cmd_fetch_results)

    p = sub.add_parser("results", help="a run's headline numbers per experiment and point, with intervals")
    p.add_argument("results", nargs="?", default="results", help="results directory or archive (.tar.gz)")
    p.add_argument("--experiment", action="append", help="only this experiment (repeatable)")
    p.add_argument("--compare", metavar="RUN_B", help="compare with this run instead (aibench compare)")
    p.set_defaults(func=cmd_results)

    p = sub.add_parser("archive", help="pack a finished run's raw results and provenance into one .tar.gz")
    p.add_argument("results", help="results directory of the run")
    p.add_argument("-o", "--output", help="archive to write (default: <results dir name>.tar.gz)")
    p.set_defaults(func=cmd_archive)

    p = sub.add_parser("doctor", help="preflight on the login node: versions, modules, Apptainer, account, "
                       "partitions, QoS, scratch, images, and a 1-minute test job")  # fmt: skip
    p.add_argument("--profile", default="meluxina", help="profile name or directory (default: meluxina)")
    p.add_argument("--configfile", nargs="+", default=[], help="config files on top of the profile's")
    p.add_argument("--no-test-job", action="store_true", help="skip the 1-minute test job")
    p.set_defaults(func=cmd_doctor)
    return main


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        return int(args.func(args))
    except (AibenchError, KeyError, OSError, ValueError) as exc:  # OSError: a file that cannot be read
        message = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
        print(f"aibench {args.command}: {message}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
