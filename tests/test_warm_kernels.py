"""The suite's warm notebook kernels (tests/warm_kernels.py) behave as fresh ones would.

Why: every lesson master is executed in them, so a difference between a forked kernel and a
fresh ``python -m ipykernel_launcher`` (shared state, a lost signal, a kernel outliving its
notebook, a changed environment) would make the notebook tests say something untrue.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest
from jupyter_client.blocking import BlockingKernelClient
from jupyter_client.manager import KernelManager
from test_notebooks import offline_env
from warm_kernels import WarmKernels


@pytest.fixture(scope="module")
def warm():
    with WarmKernels(offline_env()) as server:
        yield server


def _start(warm: WarmKernels, env: dict[str, str] | None = None, cwd: str = "/tmp"):
    from jupyter_client.kernelspec import KernelSpecManager

    specs = KernelSpecManager(kernel_dirs=warm.kernel_dirs, ensure_native_kernel=False)
    km = KernelManager(kernel_name="python3", kernel_spec_manager=specs)
    km.start_kernel(env=env or offline_env(), cwd=cwd)
    kc: BlockingKernelClient = km.client()
    kc.start_channels()
    kc.wait_for_ready(timeout=60)
    return km, kc


def _run(kc: BlockingKernelClient, code: str, timeout: float = 30) -> tuple[str, str | None]:
    """(printed text, error name or None)"""
    text, error = [], None

    def output(msg) -> None:
        nonlocal error
        if msg["msg_type"] == "stream":
            text.append(msg["content"]["text"])
        elif msg["msg_type"] == "error":
            error = msg["content"]["ename"]

    kc.execute_interactive(code, output_hook=output, timeout=timeout)
    return "".join(text), error


def _stop(km: KernelManager, kc: BlockingKernelClient) -> None:
    kc.stop_channels()
    km.shutdown_kernel(now=False)


def test_kernels_are_forked_and_share_nothing(warm: WarmKernels, tmp_path) -> None:
    before = len(warm.kernel_cpu)
    km, kc = _start(warm, cwd=str(tmp_path))
    text, error = _run(
        kc,
        "import os, sys, random, numpy, pandas\n"
        "pandas.LEAKED = 1; sys.modules['leak'] = os; LEAK = 2\n"
        "print(os.getcwd(), os.getppid() != os.getpid(), random.random(), numpy.random.rand())",
    )
    assert error is None, text
    cwd, _forked, first_random, first_numpy = text.split()
    assert cwd == str(tmp_path)
    _stop(km, kc)
    km, kc = _start(warm, cwd=str(tmp_path))
    text, error = _run(
        kc,
        "import sys, random, numpy, pandas\n"
        "print(hasattr(pandas, 'LEAKED'), 'leak' in sys.modules, 'LEAK' in globals(),"
        " random.random(), numpy.random.rand())",
    )
    assert error is None, text
    leaked_attr, leaked_module, leaked_global, second_random, second_numpy = text.split()
    assert (leaked_attr, leaked_module, leaked_global) == ("False", "False", "False")
    assert (second_random, second_numpy) != (first_random, first_numpy), "reseeded per kernel"
    _stop(km, kc)
    deadline = time.monotonic() + 10
    while len(warm.kernel_cpu) < before + 2 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert len(warm.kernel_cpu) == before + 2, (warm.kernel_cpu, warm.cold, warm.alive())
    assert not warm.cold


def test_the_notebook_sees_its_own_environment_and_imports_genai_itself(warm) -> None:
    km, kc = _start(warm, env={**offline_env(), "JPY_SESSION_NAME": "x.ipynb"})
    text, error = _run(
        kc,
        "import os, sys\n"
        "print(os.environ['TUNELAB_TIME_SCALE'], os.environ['JPY_SESSION_NAME'],"
        " 'google.generativeai' in sys.modules, sys.flags.isolated)",
    )
    assert error is None, text
    assert text.split() == [offline_env()["TUNELAB_TIME_SCALE"], "x.ipynb", "False", "0"]
    _stop(km, kc)


def test_the_distribution_scans_made_before_the_fork_are_what_a_kernel_would_find(
    warm, tmp_path
) -> None:
    """The server answers packages_distributions() (google.api_core's import calls it) from
    scans of its own folders; a kernel must get what a fresh scan gives, its working
    directory included."""
    info = tmp_path / "local_thing-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: local-thing\nVersion: 1.0\n")
    (info / "top_level.txt").write_text("local_thing\n")
    code = (
        "import json, sys; from importlib import metadata; "
        "print(json.dumps([sys.path, metadata.packages_distributions()], sort_keys=True))"
    )
    km, kc = _start(warm, cwd=str(tmp_path))
    text, error = _run(kc, code)
    _stop(km, kc)
    assert error is None, text
    path, found = json.loads(text)
    fresh = subprocess.run(
        [sys.executable, "-c", code],
        env=offline_env(),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=True,
    )
    fresh_path, fresh_found = json.loads(fresh.stdout)
    assert found["local_thing"] == ["local-thing"]
    assert found == fresh_found, (path, fresh_path)
    assert len(found) > 100  # the venv's packages, not an empty mapping


def test_interrupt_reaches_the_kernel(warm) -> None:
    km, kc = _start(warm)
    kc.execute(
        "import time\ntry:\n    time.sleep(60)\nexcept KeyboardInterrupt:\n    print('stop')"
    )
    time.sleep(1.0)
    started = time.monotonic()
    km.interrupt_kernel()
    reply = kc.get_shell_msg(timeout=20)
    assert reply["content"]["status"] == "ok"
    assert time.monotonic() - started < 10
    text, _error = _run(kc, "print('alive')")
    assert text.strip() == "alive"
    _stop(km, kc)


def test_a_killed_shim_takes_its_kernel_with_it(warm) -> None:
    km, kc = _start(warm)
    text, _ = _run(kc, "import os\nprint(os.getpid())")
    kernel = int(text)
    kc.stop_channels()
    km.provisioner.process.send_signal(signal.SIGKILL)  # what a hard shutdown does
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and _exists(kernel):
        time.sleep(0.1)
    assert not _exists(kernel), "the kernel outlived its shim"
    km.cleanup_resources()


def test_another_environment_gets_a_cold_kernel(warm) -> None:
    km, kc = _start(warm, env={**offline_env(), "TUNELAB_LANG": "ru-different"})
    text, error = _run(
        kc, "import os, sys\nprint(os.environ['TUNELAB_LANG'], 'pandas' in sys.modules)"
    )
    assert error is None, text
    assert text.split() == ["ru-different", "False"], "a fresh interpreter, as it should be"
    assert any("TUNELAB_LANG" in why for why in warm.cold)
    _stop(km, kc)


def _exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie waiting for the server to reap it counts as gone
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split(") ")[1][0] != "Z"
    except FileNotFoundError:
        return False
