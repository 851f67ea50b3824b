"""``python3 -m tunelab.bootstrap lab``: what a student's first minute depends on.

Why: ``lab`` is the one command a student runs. It must serve JupyterLab with a token (any user
or program on the machine can reach 127.0.0.1) and print the URL with it; ``--lang ru`` must
open the Russian lesson 01 and give the emulator the language too (lessons 03 and 07 show its
errors); outside a hub the Assignment List, which can only show errors there, is hidden; the
news pop-up is off; and a lesson that is opened but not edited is saved as released.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from browser_support import free_port, start_logged, stop_process_group
from browser_support import http_status as _status

from tunelab import bootstrap
from tunelab.jupyter_hooks import keep_released_metadata

ROOT = Path(__file__).resolve().parents[1]
START_TIMEOUT = 180  # JupyterLab on a loaded 2-core machine


@pytest.fixture(scope="module")
def lab_ru(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    """``bootstrap lab --headless --lang ru`` as a student runs it (default token), minus the
    install step (the repository's .venv is the student's, pinned the same)."""
    tmp = tmp_path_factory.mktemp("lab")
    port, emulator_port = free_port(), free_port()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("JUPYTER", "TUNELAB"))},
        "JUPYTER_CONFIG_DIR": str(tmp / "config"),
        "JUPYTERLAB_SETTINGS_DIR": str(tmp / "settings"),
        "JUPYTERLAB_WORKSPACES_DIR": str(tmp / "workspaces"),
        "JUPYTER_RUNTIME_DIR": str(tmp / "runtime"),
        "PYTHONPATH": str(ROOT),  # this checkout's tunelab, in the server and its save hook
        "PYTHONUNBUFFERED": "1",
    }
    code = (
        "import sys; from tunelab import bootstrap; "
        "bootstrap.ensure_venv = lambda: bootstrap.VENV_PY; "
        "sys.exit(bootstrap.main(sys.argv[1:]))"
    )
    args = ["lab", "--headless", "--lang", "ru"]
    args += ["--port", str(port), "--emulator-port", str(emulator_port)]
    log = tmp / "lab.log"
    proc = start_logged([sys.executable, "-c", code, *args], log, env=env)
    try:
        deadline = time.monotonic() + START_TIMEOUT
        url = None
        while time.monotonic() < deadline and proc.poll() is None:
            found = re.search(r"JupyterLab: (http://\S+\?token=(\S+))", log.read_text())
            if found and _status(f"http://127.0.0.1:{port}/api/status?token={found[2]}") == 200:
                url = found[1]
                break
            time.sleep(0.5)
        if url is None:
            pytest.fail(f"bootstrap lab did not come up:\n{log.read_text()[-3000:]}")
        yield {
            "url": url,
            "port": port,
            "emulator_port": emulator_port,
            "log": log,
            "pid": proc.pid,
        }
    finally:
        stop_process_group(proc)


def test_lab_requires_the_token_it_prints(lab_ru: dict) -> None:
    url, port = lab_ru["url"], lab_ru["port"]
    token = url.split("?token=", 1)[1]
    assert len(token) >= 32, token
    base = f"http://127.0.0.1:{port}"
    assert _status(f"{base}/api/status") == 403
    assert _status(f"{base}/api/contents/ru/01_welcome?token=wrong") == 403
    assert _status(f"{base}/api/contents/ru/01_welcome?token={token}") == 200
    log = lab_ru["log"].read_text()
    assert "All authentication is disabled" not in log, log[-2000:]
    # The token is in JUPYTER_TOKEN, not on a command line every user of the machine can read.
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        with contextlib.suppress(OSError):
            assert token.encode() not in cmdline.read_bytes(), cmdline


def test_lab_ru_opens_russian_lesson_01_and_emulator_speaks_russian(lab_ru: dict) -> None:
    assert lab_ru["url"].startswith(
        f"http://127.0.0.1:{lab_ru['port']}/lab/tree/ru/01_welcome/01_welcome.ipynb?token="
    )
    log = lab_ru["log"].read_text()
    assert "TUNELAB_LANG=ru" in log, log[-2000:]
    # A request without an API key: the emulator's own error, in Russian.
    request = f"http://127.0.0.1:{lab_ru['emulator_port']}/v1beta/tunedModels"
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(request, timeout=10)
    message = json.loads(err.value.read())["error"]["message"]
    assert re.search("[а-яА-Я]{5}", message) and "Method doesn't allow" not in message, message


def test_lab_hides_the_assignment_list_and_the_news_outside_a_hub(lab_ru: dict) -> None:
    config = ROOT / ".tunelab" / "jupyter" / "student"
    page = json.loads((config / "labconfig" / "page_config.json").read_text())
    disabled = page["disabledExtensions"]
    assert disabled.get("@jupyter/nbgrader:assignment-list") is True
    assert disabled.get(bootstrap.LAB_NEWS_PLUGIN) is True
    assert "@jupyter/nbgrader:validate-assignment" not in disabled
    base, token = f"http://127.0.0.1:{lab_ru['port']}", lab_ru["url"].split("?token=")[1]
    with urllib.request.urlopen(f"{base}/lab?token={token}", timeout=30) as response:
        html = response.read().decode()
    assert "@jupyter/nbgrader:assignment-list" in html and bootstrap.LAB_NEWS_PLUGIN in html
    # the server side of the Assignment List is off too; Validate's is on
    assert _status(f"{base}/assignments?token={token}") == 404
    server = json.loads((config / "jupyter_server_config.json").read_text())["ServerApp"]
    assert server["jpserver_extensions"]["nbgrader.server_extensions.validate_assignment"]
    assert not server["jpserver_extensions"]["nbgrader.server_extensions.assignment_list"]


def test_role_config_on_a_hub_keeps_the_assignment_list(tmp_path: Path) -> None:
    """The hub has an exchange: its students keep the Assignment List (and lose the news)."""
    config = bootstrap.write_role_config(tmp_path / "s", "student")
    disabled = json.loads((config / "labconfig" / "page_config.json").read_text())
    assert "@jupyter/nbgrader:assignment-list" not in disabled["disabledExtensions"]
    assert "@jupyter/nbgrader:formgrader" in disabled["disabledExtensions"]
    assert bootstrap.LAB_NEWS_PLUGIN in disabled["disabledExtensions"]
    assert (
        "tunelab.jupyter_hooks import keep_released_metadata as hook"
        in (config / "jupyter_server_config.py").read_text()
    )
    instructor = bootstrap.write_role_config(tmp_path / "i", "instructor", exchange=False)
    disabled = json.loads((instructor / "labconfig" / "page_config.json").read_text())
    assert list(disabled["disabledExtensions"]) == [bootstrap.LAB_NEWS_PLUGIN]
    assert not (instructor / "jupyter_server_config.py").exists()


def test_save_hook_config_loads_and_survives_a_tunelab_without_the_hook(tmp_path: Path) -> None:
    """The student's server config sets the hook, and still loads where tunelab lacks it."""
    from traitlets.config.loader import PyFileConfigLoader

    config = bootstrap.write_role_config(tmp_path / "s", "student")
    loaded = PyFileConfigLoader("jupyter_server_config.py", path=str(config)).load_config()
    assert loaded.ContentsManager.pre_save_hook is keep_released_metadata
    (tmp_path / "old" / "tunelab").mkdir(parents=True)
    (tmp_path / "old" / "tunelab" / "__init__.py").write_text("")
    code = (
        "import sys; sys.path.insert(0, sys.argv[1]); "
        "from traitlets.config.loader import PyFileConfigLoader as L; "
        "c = L('jupyter_server_config.py', path=sys.argv[2]).load_config(); "
        "print('pre_save_hook' in c.ContentsManager)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path / "old"), str(config)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert result.returncode == 0 and result.stdout.strip() == "False", result.stderr


def test_lab_command_puts_the_token_in_the_environment() -> None:
    class Args:
        port, headless, lang, instructor = 9999, True, "en", False

    cmd, env, url = bootstrap.lab_command(Args(), "s3cret")
    assert env == {"JUPYTER_TOKEN": "s3cret"} and not any("s3cret" in a for a in cmd)
    assert url == "http://127.0.0.1:9999/lab/tree/01_welcome/01_welcome.ipynb?token=s3cret"
    assert "--no-browser" in cmd and "--ServerApp.ip=127.0.0.1" in cmd
    cmd, env, url = bootstrap.lab_command(Args(), "")  # the explicit opt-out
    assert "--IdentityProvider.token=" in cmd and "?token" not in url


# -- opening a lesson does not rewrite it ---------------------------------------------------------
class _Contents:
    def __init__(self, root: Path) -> None:
        self.root = root

    def _get_os_path(self, path: str) -> str:
        return str(self.root / path)


def _as_jupyterlab_saves_it(nb: dict) -> dict:
    """What JupyterLab sends after the kernel started: its own kernel metadata."""
    saved = json.loads(json.dumps(nb))
    saved["metadata"]["kernelspec"]["display_name"] = "Python 3 (ipykernel)"
    saved["metadata"]["language_info"] = {
        "codemirror_mode": {"name": "ipython", "version": 3},
        "file_extension": ".py",
        "name": "python",
        "version": "3.11.7",
    }
    return saved


def test_save_hook_keeps_an_unedited_lesson_byte_for_byte(tmp_path: Path) -> None:
    import nbformat

    released = ROOT / "notebooks" / "ru" / "01_welcome" / "01_welcome.ipynb"
    copy = tmp_path / "01_welcome.ipynb"
    copy.write_bytes(released.read_bytes())
    nb = json.loads(released.read_text(encoding="utf-8"))
    model = {"type": "notebook", "content": _as_jupyterlab_saves_it(nb)}
    keep_released_metadata(
        model=model, path="01_welcome.ipynb", contents_manager=_Contents(tmp_path)
    )
    written = nbformat.writes(nbformat.from_dict(model["content"]))
    assert (
        written.encode() == released.read_bytes().rstrip(b"\n")
        or (written + "\n").encode() == released.read_bytes()
    )
    # An edit is saved; only the kernel's own metadata is kept as released.
    model = {"type": "notebook", "content": _as_jupyterlab_saves_it(nb)}
    model["content"]["cells"][0]["source"] = "my notes"
    keep_released_metadata(
        model=model, path="01_welcome.ipynb", contents_manager=_Contents(tmp_path)
    )
    assert model["content"]["cells"][0]["source"] == "my notes"
    assert model["content"]["metadata"]["language_info"] == nb["metadata"]["language_info"]
    # Another kernel, or a new file: saved as JupyterLab sends it.
    model = {"type": "notebook", "content": _as_jupyterlab_saves_it(nb)}
    model["content"]["metadata"]["kernelspec"]["name"] = "ir"
    keep_released_metadata(
        model=model, path="01_welcome.ipynb", contents_manager=_Contents(tmp_path)
    )
    assert model["content"]["metadata"]["language_info"]["version"] == "3.11.7"
    model = {"type": "notebook", "content": _as_jupyterlab_saves_it(nb)}
    keep_released_metadata(model=model, path="new.ipynb", contents_manager=_Contents(tmp_path))
    assert model["content"]["metadata"]["kernelspec"]["display_name"] == "Python 3 (ipykernel)"


def test_served_lab_saves_an_opened_lesson_unchanged(lab_ru: dict) -> None:
    """Through the running server: a save with the kernel's metadata leaves the file as is."""
    rel = "ru/01_welcome/01_welcome.ipynb"
    path = ROOT / "notebooks" / rel
    original = path.read_bytes()
    checkpoints = path.parent / ".ipynb_checkpoints"
    had_checkpoints = checkpoints.exists()
    base, token = f"http://127.0.0.1:{lab_ru['port']}", lab_ru["url"].split("?token=")[1]
    url = f"{base}/api/contents/{rel}?token={token}"
    with urllib.request.urlopen(url, timeout=30) as response:
        model = json.loads(response.read())
    body = {"type": "notebook", "format": "json"}
    body["content"] = _as_jupyterlab_saves_it(model["content"])
    request = urllib.request.Request(
        url, data=json.dumps(body).encode(), method="PUT", headers={"Content-Type": "json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            assert response.status == 200
        assert path.read_bytes() == original, "saving the opened lesson rewrote it"
    finally:
        if path.read_bytes() != original:
            path.write_bytes(original)
        if not had_checkpoints:
            shutil.rmtree(checkpoints, ignore_errors=True)
