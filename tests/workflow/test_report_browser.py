"""The `snakemake --report` HTML opened in headless Chromium: the app renders, and a reader clicking
through it is shown every figure the run drew, byte for byte, with no script error and no network."""

from __future__ import annotations

import base64
import json
import re
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.browser import chromium_processes, find_chromium, render_dom, view_report
from tests.conftest import ROOT, snakemake
from tests.workflow.test_local_workflow import SMALL

pytestmark = pytest.mark.workflow

EXPERIMENT = "redis-e2e"
GENERAL = ["Workflow", "Statistics", "About"]  # the report's own menu entries, before the results


def workflow_description() -> str:
    """The first sentence of report/workflow.rst, which the report's start page shows."""
    return " ".join((ROOT / "report" / "workflow.rst").read_text().split()).split(":")[0]


def page_problems(report: Path) -> list[str]:
    """Whether the page opens: its scripts ran to the end and the app drew its side bar and start page."""
    dom = render_dom(report)
    app = dom[dom.find('<div id="app">') :]
    app = " ".join(re.sub(r"<[^>]+>", " ", app[: app.find("<script")]).split())  # the app's text
    problems = []
    if '<div id="loading-screen" style="display: none;">' not in dom:
        problems.append("the loading screen is still shown")
    if not app.startswith("Snakemake Report " + " ".join(GENERAL)):
        problems.append(f"the app did not render its menu: {app[:200]!r}")
    if workflow_description() not in app:
        problems.append(f"the start page lacks the workflow description: {app[:300]!r}")
    return problems


def figure_problems(report: Path, figures: dict[str, dict[str, bytes]]) -> list[str]:
    """Whether clicking through the report shows each of ``figures`` (experiment -> name -> PNG)."""
    view = view_report(report)
    problems = [f"page error: {error}" for error in view.errors]
    problems += [f"network request: {url}" for url in view.requests]
    if view.menu[: len(GENERAL)] != GENERAL:
        problems.append(f"unexpected menu: {view.menu}")
    for experiment, expected in figures.items():
        shown = {f.filename: f for f in view.figures if f.labels.get("experiment") == experiment}
        for name, data in sorted(expected.items()):
            figure = shown.get(name)
            if figure is None:
                problems.append(f"{experiment}/{name} is not in the report (it shows {sorted(shown)})")
            elif not (figure.shown and figure.width > 0 and figure.mime == "image/png"):
                problems.append(f"{experiment}/{name} is not displayed: {figure.mime} {figure.width} px")
            elif figure.data != data:
                problems.append(f"{experiment}/{name} differs from the file the run drew")
    return problems


def edited(report: Path, out: Path, name: str, edit: Callable[[Any], None]) -> Path:
    """A copy of ``report`` whose embedded ``var <name> = {...};`` data went through ``edit``."""
    html = report.read_text()
    found = re.search(rf'<script id="{name}">\s*var {name} = (.*?);\s*</script>', html, re.S)
    assert found, name
    data = json.loads(found[1])
    edit(data)
    out.write_text(html[: found.start(1)] + json.dumps(data) + html[found.end(1) :])
    return out


def test_report_opens_in_chromium_with_every_figure(
    make_config, workspace: Path, no_leftovers: float
) -> None:
    if find_chromium() is None:
        pytest.fail("chromium is not installed: run `make test` (it installs the system packages)")
    config = make_config(SMALL, name=EXPERIMENT)
    done = snakemake(config)
    assert done.returncode == 0, done.stderr[-4000:]
    report = workspace / "report.html"
    done = snakemake(config, "--report", str(report))
    assert done.returncode == 0, done.stderr[-3000:]
    drawn = sorted((workspace / "results" / "figures" / EXPERIMENT).glob("*.png"))
    assert {p.name for p in drawn} >= {"clients.png", "resources.png"}, drawn
    figures = {EXPERIMENT: {p.name: p.read_bytes() for p in drawn}}

    assert page_problems(report) == []
    assert figure_problems(report, figures) == []
    # the experiment's overview opens its category: the headline table, environment, commands
    (overview,) = [f for f in view_report(report).figures if f.filename == "overview.html"]
    assert overview.mime == "text/html" and overview.shown and overview.labels.get("experiment") == EXPERIMENT
    page = overview.data.decode()
    assert (workspace / "results" / "figures" / EXPERIMENT / "overview.html").read_text() == page
    assert "Environment" in page and "snakemake --profile profiles/local" in page and "throughput" in page

    # The checks can fail: a figure left out of the report, a figure that does not decode, a file cut
    # short (the browser drops the unterminated script: no error, no app) and a script that fails (the
    # start page still draws; the error is caught, and the results cannot be opened).
    # (the resources figure is the one dropped: left with two results whose "figure" label takes two
    # values once each, the report would fold them into one row with a toggle, abstract_results.js)
    def drop_resources(categories: dict[str, dict[str, list[str]]]) -> None:
        for subcategories in categories.values():
            for paths in subcategories.values():
                paths[:] = [p for p in paths if not p.endswith("/resources.png")]

    def corrupt_clients(results: dict[str, dict[str, Any]]) -> None:
        for path, entry in results.items():
            if path.endswith("/clients.png"):
                header = entry["data_uri"].partition(",")[0]
                entry["data_uri"] = header + "," + base64.b64encode(b"\x89PNG not an image").decode()

    dropped = edited(report, workspace / "dropped.html", "categories", drop_resources)
    assert figure_problems(dropped, figures) == [
        f"{EXPERIMENT}/resources.png is not in the report (it shows ['clients.png', 'overview.html'])"
    ]
    corrupt = edited(report, workspace / "corrupt.html", "results", corrupt_clients)
    assert figure_problems(corrupt, figures) == [f"{EXPERIMENT}/clients.png is not displayed: image/png 0 px"]
    html = report.read_text()
    truncated = workspace / "truncated.html"
    truncated.write_text(html[: len(html) // 2])
    assert len(page_problems(truncated)) == 3
    failing = workspace / "failing.html"
    failing.write_text(html.replace("var results = {", "var results = {{", 1))
    assert figure_problems(failing, figures)[0].startswith("page error: exception: SyntaxError")

    assert chromium_processes(no_leftovers) == []
    assert not list(Path(tempfile.gettempdir()).glob("aibench-chromium-*"))  # profiles removed
