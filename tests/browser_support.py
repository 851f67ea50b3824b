"""Plumbing for the tests that drive JupyterLab or JupyterHub in a real browser.

Why one home: free ports, starting a server and waiting for it, stopping its whole process
group, Debian's chromium under Playwright with its flags, pages, screenshots and the JupyterLab
moves every browser test makes were written once per test module and had started to drift
(different chromium flags, different stop sequences). Import from here instead:

    from browser_support import chromium, free_port, lab_server, open_notebook, ...

Nothing here imports Playwright at module level, so benchmarks and non-browser tests can use
the server helpers on a machine without it. Screenshots go below ``build/screenshots/``
(git-ignored); a test that fails while it has a page open leaves ``failed/<test>.png`` there.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = Path("/usr/bin/chromium")
#: Headless chromium as root in a container: no sandbox (it refuses to start as root with one),
#: no GPU, and nothing that phones home or updates itself while a test runs.
CHROMIUM_ARGS = (
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
)
SCREENSHOTS = ROOT / "build" / "screenshots"
VIEWPORT = {"width": 1400, "height": 1000}
#: Generous: a cold JupyterLab on a busy 2-core machine can take a while.
SERVER_TIMEOUT = 180
UI_TIMEOUT_MS = 180_000
#: JupyterLab's status bar once the kernel has nothing left to run.
IDLE = re.compile(r"\|\s*Idle")
#: JupyterLab user settings for a test session: no autosave (the tests restore files anyway),
#: no news pop-up (it can cover buttons), and every cell rendered (no windowing) so outputs
#: are in the DOM.
LAB_SETTINGS = {
    "@jupyterlab/docmanager-extension/plugin.jupyterlab-settings": {"autosave": False},
    "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {
        "fetchNews": "false",
        "checkForUpdates": False,
    },
    "@jupyterlab/notebook-extension/tracker.jupyterlab-settings": {"windowingMode": "none"},
}
#: SIGINT first (the bootstrap stops JupyterLab and the emulator itself), then insist.
STOP_STEPS = ((signal.SIGINT, 20.0), (signal.SIGTERM, 10.0), (signal.SIGKILL, 5.0))


class ServerDidNotStart(RuntimeError):
    """A server a test started exited or did not answer in time (the message has its log)."""


# -- processes and ports --------------------------------------------------------------------------
def free_port() -> int:
    """A loopback port nothing listens on right now (the kernel picks it)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def http_status(url: str, timeout: float = 10) -> int:
    """The HTTP status ``url`` answers with, or 0 while nothing listens there."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status
    except urllib.error.HTTPError as err:
        return err.code
    except OSError:
        return 0


def _tail(log: Path, chars: int = 3000) -> str:
    return log.read_text(errors="replace")[-chars:] if log.exists() else f"(no log at {log})"


def wait_for_http(
    url: str, proc: subprocess.Popen, log: Path, *, what: str, timeout: float = SERVER_TIMEOUT
) -> None:
    """Poll ``url`` until it answers 200; raise :class:`ServerDidNotStart` with the tail of
    ``log`` if ``proc`` exits first or ``timeout`` seconds pass."""
    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            raise ServerDidNotStart(f"{what} exited with {proc.returncode}:\n{_tail(log)}")
        if http_status(url, timeout=5) == 200:
            return
        if time.monotonic() > deadline:
            raise ServerDidNotStart(
                f"{what} did not answer {url} within {timeout:.0f} s:\n{_tail(log)}"
            )
        time.sleep(0.5)


def stop_process_group(
    proc: subprocess.Popen,
    steps: Sequence[tuple[int, float]] = STOP_STEPS,
    *,
    leader_only: bool = False,
) -> None:
    """Stop ``proc`` (started with ``start_new_session=True``) and everything in its group.

    Each (signal, seconds) step is sent, to the group or with ``leader_only`` to ``proc``
    alone (a hub that must stop its users' servers itself), until ``proc`` exits; whatever is
    left in the group afterwards (a kernel that ignored SIGINT) is killed."""
    for sig, wait in steps:
        if proc.poll() is not None:
            break
        with contextlib.suppress(ProcessLookupError):
            if leader_only:
                proc.send_signal(sig)
            else:
                os.killpg(proc.pid, sig)
        try:
            proc.wait(timeout=wait)
            break
        except subprocess.TimeoutExpired:
            continue
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)


def start_logged(
    cmd: Sequence[str], log: Path, *, env: Mapping[str, str], cwd: Path = ROOT
) -> subprocess.Popen:
    """Start ``cmd`` in a session of its own (so :func:`stop_process_group` reaches its
    children), stdout and stderr into ``log``."""
    with log.open("wb") as out:
        return subprocess.Popen(
            list(cmd),
            cwd=cwd,
            env=dict(env),
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


# -- JupyterLab servers ---------------------------------------------------------------------------
def write_lab_settings(folder: Path, settings: Mapping[str, Any] = LAB_SETTINGS) -> Path:
    """JupyterLab user settings (plugin id -> JSON) written as files below ``folder``."""
    for rel, content in settings.items():
        path = folder / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(content))
    return folder


def lab_environment(tmp: Path, **extra: str) -> dict[str, str]:
    """The environment for a test's ``bootstrap lab``: every Jupyter folder a fresh one below
    ``tmp`` (so a developer's ~/.jupyter cannot change the result), the test settings, fast
    tuning jobs, no inherited emulator endpoint or course language."""
    config = tmp / "config"
    config.mkdir(parents=True, exist_ok=True)
    env = {
        **{k: v for k, v in os.environ.items() if k not in ("TUNELAB_ENDPOINT", "TUNELAB_LANG")},
        "JUPYTER_CONFIG_DIR": str(config),
        "JUPYTERLAB_SETTINGS_DIR": str(write_lab_settings(tmp / "settings")),
        "JUPYTERLAB_WORKSPACES_DIR": str(tmp / "workspaces"),
        "JUPYTER_RUNTIME_DIR": str(tmp / "runtime"),
        "TUNELAB_TIME_SCALE": "2000",  # tuning jobs finish in a fraction of a second
        "PYTHONUNBUFFERED": "1",
    }
    return env | extra


@contextlib.contextmanager
def lab_server(tmp: Path, *args: str) -> Iterator[str]:
    """The README's main command, ``python3 -m tunelab.bootstrap lab --headless`` (plus
    ``args``, e.g. ``--lang ru``), without a token on free ports; yields the base URL and
    stops the whole process group afterwards. The log is ``tmp/lab.log``."""
    port, emulator_port = free_port(), free_port()
    python = shutil.which("python3") or sys.executable
    cmd = [python, "-m", "tunelab.bootstrap", "lab", "--headless", *args]
    # no token: each test opens a fresh browser context (test_bootstrap_lab.py checks the default)
    cmd += ["--token", "", "--port", str(port), "--emulator-port", str(emulator_port)]
    log = tmp / "lab.log"
    proc = start_logged(cmd, log, env=lab_environment(tmp))
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for_http(f"{base}/api/status", proc, log, what="the lab command")
        yield base
    finally:
        stop_process_group(proc)


def _sources(raw: bytes) -> list[tuple[str, str]]:
    """The cells of a notebook file as (type, source), ignoring outputs and metadata."""
    cells = json.loads(raw)["cells"]
    return [(c["cell_type"], "".join(c["source"])) for c in cells]


@contextlib.contextmanager
def notebooks_restored(paths: Iterable[Path]) -> Iterator[None]:
    """Put back the committed notebooks JupyterLab saved (nbgrader's Validate saves first).

    Only what JupyterLab changed (outputs, metadata) is undone: a file whose cell sources
    differ afterwards was regenerated meanwhile, and is kept. New ``.ipynb_checkpoints``
    folders go too."""
    paths = list(paths)
    saved = {path: path.read_bytes() for path in paths if path.exists()}
    checkpoints = {p.parent / ".ipynb_checkpoints" for p in paths}
    had_checkpoints = {p: p.exists() for p in checkpoints}
    try:
        yield
    finally:
        for path, content in saved.items():
            current = path.read_bytes()
            if current != content and _sources(current) == _sources(content):
                path.write_bytes(content)
        for path, existed in had_checkpoints.items():
            if not existed and path.exists():
                shutil.rmtree(path, ignore_errors=True)


@contextlib.contextmanager
def new_files_removed(folder: Path) -> Iterator[None]:
    """Remove what appears in ``folder`` meanwhile (a lesson's JSONL files written beside the
    notebook, as a student's would be; JupyterLab's .ipynb_checkpoints)."""
    before = set(folder.iterdir())
    try:
        yield
    finally:
        for path in set(folder.iterdir()) - before:
            if path.is_dir():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)


# -- chromium -------------------------------------------------------------------------------------
def browser_unavailable() -> str | None:
    """Why no browser test can run here, or None."""
    if not CHROMIUM.exists():
        return "Debian's chromium is not installed (apt-get install chromium)"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "Playwright is not installed (requirements-dev.txt)"
    return None


def skip_without_browser() -> None:
    """Skip the calling test or fixture where :func:`browser_unavailable` says why."""
    reason = browser_unavailable()
    if reason:
        pytest.skip(reason)


@contextlib.contextmanager
def chromium() -> Iterator[Any]:
    """Debian's chromium, headless, under Playwright (a ``Browser``). Each Playwright context
    is a fresh in-memory profile, so no test sees another's cookies or storage."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=str(CHROMIUM), args=list(CHROMIUM_ARGS), headless=True
        )
        try:
            yield browser
        finally:
            browser.close()


def new_page(
    browser: Any, *, locale: str | None = None, timeout_ms: int = UI_TIMEOUT_MS
) -> tuple[Any, Any]:
    """A fresh browser context and its page (close the context when done)."""
    options: dict[str, Any] = {"viewport": VIEWPORT}
    if locale:
        options["locale"] = locale
    context = browser.new_context(**options)
    page = context.new_page()
    page.set_default_timeout(timeout_ms)
    return context, page


def screenshot(page: Any, folder: Path, name: str) -> Path:
    """Save what ``page`` shows as ``folder/name`` and return the path."""
    folder.mkdir(parents=True, exist_ok=True)
    shot = folder / name
    page.screenshot(path=str(shot))
    return shot


def failed(request: pytest.FixtureRequest) -> bool:
    """Whether the test behind ``request`` failed in setup or call (tests/conftest.py keeps
    the reports on the item)."""
    return any(
        getattr(request.node, f"rep_{when}", None) is not None
        and getattr(request.node, f"rep_{when}").failed
        for when in ("setup", "call")
    )


def page_for(
    request: pytest.FixtureRequest, browser: Any, *, locale: str | None = None
) -> Iterator[Any]:
    """Body of a module's ``page`` fixture: a fresh context per test; if the test fails, what
    the page showed is kept as ``build/screenshots/failed/<test>.png``."""
    context, page = new_page(browser, locale=locale)
    try:
        yield page
        if failed(request):
            name = re.sub(r"[^\w.-]+", "_", request.node.nodeid) + ".png"
            with contextlib.suppress(Exception):  # a crashed page must not hide the failure
                path = screenshot(page, SCREENSHOTS / "failed", name)
                print(f"failure screenshot: {path}")
    finally:
        context.close()


# -- JupyterLab in the page -----------------------------------------------------------------------
def wait_idle(page: Any) -> None:
    """Wait until the kernel status bar says Idle."""
    page.get_by_text(IDLE).first.wait_for(state="visible")


def open_notebook(page: Any, base: str, rel: str) -> None:
    """Open ``rel`` (below the server's root) and wait for its cells and an idle kernel."""
    # ?reset: start from an empty workspace, not with the tabs of the previous test open.
    page.goto(f"{base}/lab/tree/{rel}?reset", wait_until="domcontentloaded")
    page.locator(".jp-NotebookPanel .jp-Cell").first.wait_for(state="visible")
    # The kernel must be up before we run anything.
    wait_idle(page)


def menu(page: Any, name: str, item: str) -> None:
    """Click ``item`` in the menu bar's ``name`` menu (e.g. Run, Run All Cells)."""
    page.locator(".lm-MenuBar-itemLabel", has_text=re.compile(rf"^{name}$")).click()
    page.locator(".lm-Menu-itemLabel", has_text=re.compile(rf"^{item}$")).first.click()


def replace_cell_text(page: Any, containing: str, text: str) -> None:
    """Type ``text`` over the whole code cell whose source contains ``containing``, as a
    student answers a practice cell, and leave the editor (command mode)."""
    cell = page.locator(".jp-CodeCell", has_text=containing).first
    cell.locator(".jp-InputArea-editor").click()
    page.keyboard.press("Control+A")
    page.keyboard.insert_text(text)
    page.keyboard.press("Escape")


def validate(page: Any, folder: Path, shot: str) -> tuple[str, str]:
    """Press nbgrader's Validate; screenshot its dialog as ``folder/shot``, close it and
    return the dialog's (title, body)."""
    button = page.locator(".validate-button:visible").first
    button.wait_for(state="visible")
    button.click()
    dialog = page.locator(".jp-Dialog")
    dialog.wait_for(state="visible")
    title = dialog.locator(".jp-Dialog-header").inner_text()
    body = dialog.locator(".jp-Dialog-body").inner_text()
    screenshot(page, folder, shot)
    dialog.get_by_role("button", name=re.compile("OK", re.I)).first.click()
    dialog.wait_for(state="detached")
    return title, body
