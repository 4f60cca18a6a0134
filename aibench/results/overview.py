"""An experiment's overview: the first page of its category in the report (figures/<e>/overview.html).

Three parts, from the run's own records only (no service is asked anything): its headline table (the
client kind's headline metrics per point, each with its 95% interval, failed points with their error:
the rows of `aibench results`, aibench.results.glance); the environment (every deployment's node with
its CPU, memory and GPUs as its service job recorded them, aibench.hardware; the clients' hosts; the
service kind's image or binaries and model; the software versions and git commit of the manifest);
and the commands that regenerate it: the measurement from the run's recorded config and recipes, and
the tables and figures from the raw results alone.
"""

from __future__ import annotations

import html
import shlex
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from aibench.archive import RunPoint, read_points
from aibench.files import read_json
from aibench.results.glance import experiment_glance
from aibench.rundir import PointDir, RunDir

#: the environment table's columns
ENVIRONMENT = ("role", "node", "CPU", "CPUs usable of node", "memory", "GPUs")
#: the profile each launcher's runs use
PROFILES = {"local": "profiles/local", "slurm": "profiles/meluxina"}


def _table(header: Iterable[str], rows: Iterable[Iterable[Any]]) -> str:
    head = "".join(f"<th>{html.escape(str(h)).replace(chr(10), '<br>')}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _bytes(value: Any) -> str:
    return f"{value / 2**30:.1f} GiB" if isinstance(value, int | float) else "-"


def _gpus(value: Any) -> str:
    if isinstance(value, str):
        return f"unknown ({value})"
    if not value:
        return "none"
    names: dict[str, int] = {}
    for gpu in value:
        names[gpu.get("name", "?")] = names.get(gpu.get("name", "?"), 0) + 1
    return ", ".join(f"{n} x {name}" for name, n in names.items())


def _hardware_row(role: str, where: str, hardware: dict[str, Any] | None) -> list[str]:
    hw = hardware or {}
    cpus = f"{hw.get('cpus_usable', '-')} of {hw.get('cpus_node', '-')}" if hw else "-"
    return [role, where, hw.get("cpu_model") or "not recorded", cpus, _bytes(hw.get("memory_bytes")),
            _gpus(hw.get("gpus")) if hw else "-"]  # fmt: skip


def environment_rows(experiment: str, points: list[RunPoint], manifest: dict[str, Any]) -> list[list[str]]:
    """A row per deployment (its node's hardware) of ``experiment`` and per client host of its
    ``points``."""
    rows = []
    for service in manifest.get("services", []):
        if service.get("experiment") != experiment:
            continue
        hardware = service.get("hardware")
        what = service.get("image") or service.get("kind") or "?"
        if service.get("model"):
            what += f", model {service['model']}"
        job = f", SLURM job {service['slurm_job_id']}" if service.get("slurm_job_id") else ""
        rows.append(_hardware_row(f"service ({what})", f"{service.get('node') or '?'}{job}", hardware))
    clients: dict[str, dict[str, Any] | None] = {}
    for p in points:
        provenance = read_json(PointDir(p.directory).summary).get("provenance", {})
        clients.setdefault(provenance.get("host") or "?", provenance.get("hardware"))
    rows += [_hardware_row("client", host, hw) for host, hw in clients.items()]
    return rows


def commands(results: Path, experiment: str, manifest: dict[str, Any]) -> list[str]:
    """The command lines that regenerate the experiment: measure it again with the recorded config and
    recipes at the recorded commit, or rebuild its tables and figures from the raw results."""
    config = manifest.get("config", {})
    profile = PROFILES.get(config.get("launcher", "local"), "profiles/local")
    run = RunDir(results)
    # the config files' copies (a recipe's copy is always under recipes/: aibench.provenance._input_name)
    inputs = manifest.get("inputs", [])
    copies = [run.root / i["copy"] for i in inputs if not i["path"].startswith("recipes/")]
    commit = manifest.get("git", {}).get("commit")
    rerun = ["snakemake", "--profile", profile,
             *[a for copy in copies for a in ("--configfile", str(copy.absolute()))],
             "--config", f"experiments=[{experiment}]", f"recipes={(run.provenance / 'recipes').absolute()}",
             "results=results-rerun"]  # fmt: skip
    lines = [shlex.join(["git", "checkout", str(commit)])] if commit else []
    return [*lines, shlex.join(rerun), f"make paper RUN={shlex.quote(str(Path(results).absolute()))}"]


def overview_html(results: str | Path, experiment: str) -> str:
    results = Path(results)
    run = RunDir(results)
    manifest = read_json(run.manifest) if run.manifest.is_file() else {}
    points = [p for p in read_points(run.root, str(results)) if p.experiment == experiment]
    glance = experiment_glance(experiment, points)
    software = manifest.get("software", {})
    versions = [("aibench", software.get("aibench", "-")), ("Python", software.get("python", "-")),
                *sorted(software.get("tools", {}).items()),
                *sorted(software.get("packages", {}).items())]  # fmt: skip
    git = manifest.get("git", {})
    commit = f"{git.get('commit', '-')}" + (" (with uncommitted changes)" if git.get("dirty") else "")
    parts = [
        f"<h2>{html.escape(experiment)}: {glance.points - glance.failed} of {glance.points} points ok</h2>",
        f"<p>Client kind <code>{html.escape(glance.client)}</code>. Each value: the point's number "
        "[its 95% interval]; ~ marks a statistic its sample is too small to bound (docs/metrics.md, "
        '"Uncertainty").</p>',
        _table(glance.columns, glance.rows),
        "<h3>Environment</h3>",
        _table(ENVIRONMENT, environment_rows(experiment, points, manifest)),
        f"<p>git commit <code>{html.escape(commit)}</code>; hosts: "
        f"{html.escape(', '.join(manifest.get('hosts', [])) or '-')}.</p>",
        _table(["software", "version"], versions),
        "<h3>Regenerate</h3>",
        "<p>Measure again with the run's recorded config and recipes (at its commit), or rebuild the "
        "tables and figures from the raw results alone:</p>",
        "<pre>" + html.escape("\n".join(commands(results, experiment, manifest))) + "</pre>",
    ]
    style = ("body{font-family:sans-serif;font-size:13px} table{border-collapse:collapse;margin:6px 0} "
             "td,th{border:1px solid #ccc;padding:2px 6px;text-align:left} th{background:#f3f3f3} "
             "pre{background:#f6f6f6;padding:6px;white-space:pre-wrap}")  # fmt: skip
    return f"<!DOCTYPE html><html><head><meta charset='utf-8'><style>{style}</style></head><body>" + \
        "\n".join(parts) + "</body></html>"  # fmt: skip
