"""Headless Chromium for tests: open a local HTML file offline and look at what it renders.

Debian's ``chromium`` is driven over the DevTools protocol on a pipe (``--remote-debugging-pipe``,
file descriptors 3 and 4), so it listens on no port. It cannot reach the network: every host name
resolves to "not found" and every request goes to a proxy on a closed local port, loopback included;
requests the page tries anyway are recorded. Each browser gets a throwaway profile; on exit every
process it started is ended and the profile removed.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import fcntl
import json
import os
import select
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

import psutil

CANDIDATES = ("/usr/lib/chromium/chromium", "chromium", "chromium-browser")  # the binary, then wrappers
FLAGS = (
    "--headless=new",
    "--no-sandbox",  # the tests run as root in a container; the pages are our own local files
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-default-apps",
    "--disable-extensions",
    "--disable-breakpad",
    "--disable-crash-reporter",
    "--disable-domain-reliability",
    "--host-resolver-rules=MAP * ~NOTFOUND",
    "--proxy-server=127.0.0.1:9",
    "--proxy-bypass-list=<-loopback>",
    "--window-size=1600,1000",
)
PIPE_ARGS = ("--remote-debugging-pipe", "about:blank")
LOCAL_SCHEMES = ("file:", "data:", "blob:", "about:", "chrome:", "chrome-error:", "devtools:")
QUIET_MS = 500  # render_dom: the DOM is taken once it has not changed for this long
STEP_S = 20  # view_report: the longest a click (or the app's first drawing) may take to show its result


class ChromiumError(RuntimeError):
    pass


def find_chromium() -> str | None:
    for name in CANDIDATES:
        path = shutil.which(name)
        if path:
            return path
    return None


def chromium_processes(since: float) -> list[str]:
    """Chromium processes (browser, zygotes, renderers, crash handler) created after ``since``."""
    found = []
    for proc in psutil.process_iter():
        try:
            if proc.create_time() < since - 1 or proc.status() == psutil.STATUS_ZOMBIE:
                continue
            cmdline = proc.cmdline()
            if cmdline and "chrom" in Path(cmdline[0]).name:
                found.append(f"{proc.pid} {' '.join(cmdline)[:200]}")
        except psutil.Error:
            continue
    return found


def _pipe_above(lowest: int) -> tuple[int, int]:
    """A pipe (read end, write end) whose descriptors are both above ``lowest``, closed on exec."""
    ends = os.pipe()
    moved = (
        fcntl.fcntl(ends[0], fcntl.F_DUPFD_CLOEXEC, lowest + 1),
        fcntl.fcntl(ends[1], fcntl.F_DUPFD_CLOEXEC, lowest + 1),
    )
    for fd in ends:
        os.close(fd)
    return moved


def _exited(pid: int) -> bool:
    try:
        return os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None
    except ChildProcessError:  # already reaped
        return True


def _wait_exited(pid: int, timeout_s: float) -> bool:
    """Whether our child ``pid`` exits within ``timeout_s``; it is left unreaped (a zombie)."""
    deadline = time.monotonic() + timeout_s
    while not _exited(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


class _Pipe:
    """NUL-separated JSON messages over the two pipes of --remote-debugging-pipe."""

    def __init__(self, read_fd: int, write_fd: int) -> None:
        self.read_fd, self.write_fd = read_fd, write_fd
        self.buffer = bytearray()
        self.scanned = 0

    def send(self, message: dict[str, Any]) -> None:
        data = memoryview(json.dumps(message).encode() + b"\0")
        while data:
            data = data[os.write(self.write_fd, data) :]

    def receive(self, deadline: float) -> dict[str, Any]:
        while (end := self.buffer.find(b"\0", self.scanned)) < 0:
            self.scanned = len(self.buffer)
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("Chromium did not answer in time")
            if select.select([self.read_fd], [], [], left)[0]:
                chunk = os.read(self.read_fd, 1 << 20)
                if not chunk:
                    raise ChromiumError("Chromium closed its DevTools pipe (it exited)")
                self.buffer += chunk
        message = json.loads(self.buffer[:end])
        del self.buffer[: end + 1]
        self.scanned = 0
        return message

    def close(self) -> None:
        for fd in (self.read_fd, self.write_fd):
            os.close(fd)


class Chromium:
    """One headless Chromium with one page; ``with Chromium(60) as browser: browser.open(url)``.

    Everything, start-up included, must be done within ``timeout_s``. The page's uncaught exceptions,
    console errors, failed loads and crashes are collected in ``errors``; any request it makes for a
    non-local URL (which cannot succeed) in ``requests``.
    """

    def __init__(self, timeout_s: float = 60) -> None:
        self.timeout_s = timeout_s
        self.errors: list[str] = []
        self.requests: list[str] = []
        self.events: list[dict[str, Any]] = []
        self._id = 0
        self._session = ""
        self._proc: subprocess.Popen[bytes] | None = None
        self._pipe: _Pipe | None = None
        self._tmp: Path | None = None

    def __enter__(self) -> Chromium:
        binary = find_chromium()
        if binary is None:
            raise ChromiumError(
                "chromium is not installed: run `make test` (it installs the system packages)"
            )
        self.deadline = time.monotonic() + self.timeout_s
        self._tmp = Path(tempfile.mkdtemp(prefix="aibench-chromium-"))
        try:
            self._start(binary)
            target = self.call("Target.createTarget", url="about:blank")["targetId"]
            self._session = self.call("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
            for domain in ("Page", "Runtime", "Log", "Network"):
                self.call(f"{domain}.enable", page=True)
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def _start(self, binary: str) -> None:
        assert self._tmp is not None
        # Chromium reads commands from fd 3 and writes replies to fd 4: move the two pipes above those
        # numbers, then let bash put the child's ends in place and exec Chromium (same pid).
        to_browser, from_browser = _pipe_above(4), _pipe_above(4)
        child_in, child_out = to_browser[0], from_browser[1]
        script = f'exec "$@" 3<&{child_in} 4>&{child_out} {child_in}<&- {child_out}>&-'
        profile = self._tmp / "profile"
        with open(self._tmp / "chromium.log", "wb") as log:
            self._proc = subprocess.Popen(
                ["bash", "-c", script, "bash", binary, *FLAGS, f"--user-data-dir={profile}", *PIPE_ARGS],
                pass_fds=(child_in, child_out),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                start_new_session=True,
            )
        os.close(child_in)
        os.close(child_out)
        self._pipe = _Pipe(from_browser[0], to_browser[1])

    def log_tail(self, chars: int = 2000) -> str:
        log = self._tmp / "chromium.log" if self._tmp else None
        return log.read_text(errors="replace")[-chars:] if log and log.exists() else ""

    def call(self, method: str, page: bool = False, **params: Any) -> dict[str, Any]:
        """One DevTools command (to the page if ``page``); events that arrive meanwhile are kept."""
        assert self._pipe is not None
        self._id += 1
        message: dict[str, Any] = {"id": self._id, "method": method, "params": params}
        if page:
            message["sessionId"] = self._session
        try:
            self._pipe.send(message)
        except OSError as error:
            raise ChromiumError(f"Chromium is gone ({error}); log: {self.log_tail()}") from None
        while True:
            reply = self._receive()
            if reply.get("id") == self._id:
                if "error" in reply:
                    raise ChromiumError(f"{method}: {reply['error']}")
                return reply.get("result", {})

    def _receive(self) -> dict[str, Any]:
        assert self._pipe is not None
        try:
            message = self._pipe.receive(self.deadline)
        except (TimeoutError, ChromiumError) as error:
            raise ChromiumError(f"{error}; page errors: {self.errors}; log: {self.log_tail()}") from None
        if "method" in message:
            self._event(message["method"], message.get("params", {}))
        return message

    def _event(self, method: str, params: dict[str, Any]) -> None:
        self.events.append({"method": method, "params": params})
        if method == "Runtime.exceptionThrown":
            details = params["exceptionDetails"]
            self.errors.append(
                f"exception: {details.get('exception', {}).get('description') or details['text']}"
            )
        elif method == "Runtime.consoleAPICalled" and params["type"] in ("error", "assert"):
            args = [str(arg.get("value", arg.get("description", ""))) for arg in params["args"]]
            self.errors.append(f"console.{params['type']}: {' '.join(args)}")
        elif method == "Log.entryAdded" and params["entry"]["level"] == "error":
            entry = params["entry"]
            self.errors.append(f"log: {entry['text']} {entry.get('url', '')}".strip())
        elif method in ("Inspector.targetCrashed", "Target.targetCrashed"):
            self.errors.append("the page crashed")
        elif method in ("Network.requestWillBeSent", "Network.webSocketCreated"):
            url = params["request"]["url"] if "request" in params else params["url"]
            if not url.startswith(LOCAL_SCHEMES):
                self.requests.append(url)

    def open(self, url: str) -> None:
        """Navigate the page to ``url`` and wait for its load event."""
        seen = len(self.events)
        reply = self.call("Page.navigate", page=True, url=url)
        if "errorText" in reply:
            raise ChromiumError(f"cannot open {url}: {reply['errorText']}")
        while not any(e["method"] == "Page.loadEventFired" for e in self.events[seen:]):
            self._receive()

    def evaluate(self, expression: str) -> Any:
        """The value of a JavaScript expression in the page (promises are awaited), as JSON."""
        reply = self.call(
            "Runtime.evaluate", page=True, expression=expression, awaitPromise=True, returnByValue=True
        )
        if "exceptionDetails" in reply:
            details = reply["exceptionDetails"]
            error = details.get("exception", {}).get("description") or details["text"]
            raise ChromiumError(f"{error}; page errors: {self.errors}")
        return reply["result"].get("value")

    def close(self) -> None:
        """End Chromium and every process it started, then remove its profile."""
        proc, self._proc = self._proc, None
        if proc is not None:
            try:
                children = psutil.Process(proc.pid).children(recursive=True)
            except psutil.Error:
                children = []
            if self._pipe is not None:
                with contextlib.suppress(OSError):  # ask first, so that it closes its profile cleanly
                    self._pipe.send({"id": self._id + 1, "method": "Browser.close"})
            # Unreaped until the end, so that its pid (its process group's id) cannot be reused.
            if not _wait_exited(proc.pid, 5):
                proc.kill()
            for child in children:  # whatever is left of its processes (or already gone)
                with contextlib.suppress(psutil.Error):
                    child.kill()
            with contextlib.suppress(ProcessLookupError):  # and of its process group
                os.killpg(proc.pid, signal.SIGKILL)
            psutil.wait_procs(children, timeout=5)
            proc.wait(5)
        if self._pipe is not None:
            self._pipe.close()
            self._pipe = None
        if self._tmp is not None:
            shutil.rmtree(self._tmp, ignore_errors=True)
            self._tmp = None


_SETTLE = """new Promise((resolve) => {
  let timer;
  const done = () => { observer.disconnect(); resolve(document.documentElement.outerHTML); };
  const observer = new MutationObserver(() => { clearTimeout(timer); timer = setTimeout(done, %d); });
  observer.observe(document, { subtree: true, childList: true, attributes: true, characterData: true });
  timer = setTimeout(done, %d);
})"""


def render_dom(html: Path, timeout_s: float = 60) -> str:
    """The DOM of a local HTML file once its scripts have run and it has settled, as HTML."""
    with Chromium(timeout_s) as browser:
        browser.open(html.resolve().as_uri())
        return browser.evaluate(_SETTLE % (QUIET_MS, QUIET_MS))


@dataclass(frozen=True)
class Figure:
    """One figure as the report shows it: reached by clicking ``path`` then its row's view button."""

    path: tuple[str, ...]  # the side bar links clicked: category (and subcategory)
    labels: dict[str, str]  # its row in the results table: label -> value
    filename: str  # as named in its data: URL
    mime: str
    data: bytes  # the image (or HTML page) the page displays, decoded from its data: URL
    width: int  # as decoded by the browser (an HTML page: its frame's); 0 if it could not decode it
    height: int
    shown: bool  # decoded and laid out on screen with a non-zero size


@dataclass
class ReportView:
    menu: list[str]  # the side bar's links on opening
    workflow: str  # the text of the start page's main panel (the workflow description)
    figures: list[Figure] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)


# Clicks through a Snakemake 9 report like a reader: every result category (and subcategory) of the
# side bar, then every row's "view" button, collecting the image the main panel then shows.
_WALK = """(async (stepMs) => {
  const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
  const until = async (what, test) => {
    for (const end = Date.now() + stepMs; Date.now() < end; await sleep(25)) {
      const value = test();
      if (value) return value;
    }
    throw new Error(`the report never showed ${what}`);
  };
  const text = (el) => el.textContent.trim();
  const sidebar = () => document.querySelector("#app > div > nav");
  const panel = () => sidebar().querySelector(":scope > div > div:last-child");
  const main = () => document.querySelector("#app > div > nav + div");
  const links = () => [...panel().querySelectorAll("a")];
  const isMenu = () => links().some((a) => text(a) === "Workflow");
  await until("its menu", () => sidebar() && isMenu());
  const menu = links().map(text);
  const workflow = text(main());
  const general = new Set(["Workflow", "Statistics", "About"]);

  const openPath = async (path) => {
    sidebar().querySelector(":scope > div > nav a").click();  // the home breadcrumb
    await until("its menu again", isMenu);
    for (const name of path) {
      const before = links().map(text).join("|");
      const link = links().find((a) => text(a) === name);
      if (!link) throw new Error(`no link "${name}" among ${before}`);
      link.click();
      await until(`what "${name}" opens`, () => links().map(text).join("|") !== before);
    }
  };
  const walkTable = async (path) => {
    const header = [...panel().querySelectorAll("thead th")].map(text);
    const found = [];
    const count = panel().querySelectorAll("tbody tr").length;
    for (let i = 0; i < count; i++) {
      const cells = [...panel().querySelectorAll("tbody tr")[i].querySelectorAll("td")];
      const labels = {};
      cells.slice(0, -1).forEach((cell, j) => { labels[header[j] || `column ${j}`] = text(cell); });
      // an image shows as an <img>, an HTML page (an experiment's overview) in an <iframe>
      const before = main().querySelector("img, iframe")?.src;
      cells.at(-1).querySelector("a").click();  // the "view" (eye) button
      const shown = await until(`the figure of row ${i} of ${path}`, () => {
        const el = main().querySelector("img, iframe");
        return el && el.src !== before ? el : null;
      });
      const box = shown.getBoundingClientRect();
      if (shown.tagName === "IMG") {
        const decoded = await shown.decode().then(() => true, () => false);
        found.push({
          path, labels, src: shown.src, width: shown.naturalWidth, height: shown.naturalHeight,
          shown: decoded && box.width > 0 && box.height > 0,
        });
      } else {
        found.push({
          path, labels, src: shown.src, width: Math.round(box.width), height: Math.round(box.height),
          shown: box.width > 0 && box.height > 0,
        });
      }
    }
    return found;
  };

  const figures = [];
  for (const category of menu.filter((name) => !general.has(name))) {
    await openPath([category]);
    if (panel().querySelector("table")) {
      figures.push(...(await walkTable([category])));
      continue;
    }
    for (const sub of links().map(text)) {
      await openPath([category, sub]);
      figures.push(...(await walkTable([category, sub])));
    }
  }
  return { menu, workflow, figures };
})(%d)"""


def _figure(raw: dict[str, Any]) -> Figure:
    header, _, payload = raw["src"].partition(",")
    mime, *params = header.removeprefix("data:").split(";")
    named = dict(p.split("=", 1) for p in params if "=" in p)
    try:
        data = base64.b64decode(payload, validate=True) if "base64" in params else payload.encode()
    except binascii.Error:
        data = b""
    return Figure(
        path=tuple(raw["path"]),
        labels=raw["labels"],
        filename=named.get("filename", ""),
        mime=mime,
        data=data,
        width=raw["width"],
        height=raw["height"],
        shown=raw["shown"],
    )


def view_report(html: Path, timeout_s: float = 60) -> ReportView:
    """Open a ``snakemake --report`` HTML file and click through every figure it offers."""
    with Chromium(timeout_s) as browser:
        browser.open(html.resolve().as_uri())
        if browser.errors:  # its scripts failed while loading: nothing to click through
            return ReportView([], "", errors=list(browser.errors), requests=list(browser.requests))
        seen = browser.evaluate(_WALK % int(min(STEP_S, browser.deadline - time.monotonic()) * 1000))
        return ReportView(
            menu=seen["menu"],
            workflow=seen["workflow"],
            figures=[_figure(raw) for raw in seen["figures"]],
            errors=list(browser.errors),
            requests=list(browser.requests),
        )
