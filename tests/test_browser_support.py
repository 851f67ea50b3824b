"""The browser tests' plumbing itself (tests/browser_support.py), without a browser.

Why: a stop helper that leaves a kernel behind, a wait that hangs on a dead server, or a
restore that overwrites a regenerated notebook would each go unnoticed in the browser tests
themselves, which only ever see the happy path.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import browser_support as bs
import pytest

#: A process group whose leader ignores SIGINT and whose child ignores SIGINT and SIGTERM.
STUBBORN = """
import os, signal, subprocess, sys, time
signal.signal(signal.SIGINT, signal.SIG_IGN)
child = subprocess.Popen([sys.executable, "-c",
    "import signal, time; signal.signal(signal.SIGINT, signal.SIG_IGN); "
    "signal.signal(signal.SIGTERM, signal.SIG_IGN); print('ready', flush=True); time.sleep(600)"],
    stdout=subprocess.PIPE)
child.stdout.readline()
print(child.pid, flush=True)
time.sleep(600)
"""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    status = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    return status != "Z"


def test_stop_process_group_leaves_nothing_behind(tmp_path: Path) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-c", STUBBORN], stdout=subprocess.PIPE, start_new_session=True
    )
    child = int(proc.stdout.readline())
    try:
        started = time.monotonic()
        bs.stop_process_group(proc, ((signal.SIGINT, 0.5), (signal.SIGTERM, 5)))
        assert proc.returncode == -signal.SIGTERM, "SIGINT was ignored, SIGTERM stopped it"
        deadline = time.monotonic() + 5
        while _alive(child) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not _alive(child), "the child that ignored SIGTERM was killed with the group"
        assert time.monotonic() - started < 10
        bs.stop_process_group(proc)  # an exited process: nothing to do, no error
    finally:  # a failing check must not leave its sleepers behind (both are in the group)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def test_wait_for_http_names_an_exited_server_and_its_log(tmp_path: Path) -> None:
    log = tmp_path / "server.log"
    proc = bs.start_logged(
        [sys.executable, "-c", "print('port already in use'); raise SystemExit(3)"],
        log,
        env=os.environ,
    )
    proc.wait()
    url = f"http://127.0.0.1:{bs.free_port()}/api/status"
    with pytest.raises(bs.ServerDidNotStart, match=r"(?s)the lab command exited with 3.*in use"):
        bs.wait_for_http(url, proc, log, what="the lab command", timeout=30)


def test_wait_for_http_gives_up_on_a_silent_server(tmp_path: Path) -> None:
    log = tmp_path / "server.log"
    proc = bs.start_logged(
        [sys.executable, "-c", "import time; time.sleep(60)"], log, env=os.environ
    )
    url = f"http://127.0.0.1:{bs.free_port()}/api/status"
    try:
        with pytest.raises(bs.ServerDidNotStart, match="did not answer .* within 1 s"):
            bs.wait_for_http(url, proc, log, what="JupyterLab", timeout=1)
    finally:
        bs.stop_process_group(proc)
    assert bs.http_status(url, timeout=1) == 0, "nothing listens there"


def _notebook(source: str, output: str = "") -> bytes:
    cell = {"cell_type": "code", "source": source, "metadata": {}, "outputs": [output]}
    return json.dumps({"cells": [cell], "metadata": {}, "nbformat": 4}).encode()


def test_notebooks_restored_undoes_saves_but_keeps_regenerated_files(tmp_path: Path) -> None:
    saved, regenerated = tmp_path / "a" / "saved.ipynb", tmp_path / "b" / "new.ipynb"
    for path in (saved, regenerated):
        path.parent.mkdir()
        path.write_bytes(_notebook("x = 1"))
    with bs.notebooks_restored([saved, regenerated]):
        saved.write_bytes(_notebook("x = 1", output="ran"))  # JupyterLab saved outputs
        regenerated.write_bytes(_notebook("x = 2"))  # someone released a new version
        (saved.parent / ".ipynb_checkpoints").mkdir()
    assert saved.read_bytes() == _notebook("x = 1")
    assert regenerated.read_bytes() == _notebook("x = 2")
    assert not (saved.parent / ".ipynb_checkpoints").exists()


def test_lab_environment_is_the_tests_own(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("TUNELAB_LANG", "ru")
    monkeypatch.setenv("TUNELAB_ENDPOINT", "http://elsewhere")
    env = bs.lab_environment(tmp_path)
    assert "TUNELAB_LANG" not in env and "TUNELAB_ENDPOINT" not in env
    assert env["JUPYTER_CONFIG_DIR"].startswith(str(tmp_path))
    settings = Path(env["JUPYTERLAB_SETTINGS_DIR"])
    news = "@jupyterlab/apputils-extension/notification.jupyterlab-settings"
    assert json.loads((settings / news).read_text())["fetchNews"] == "false"
