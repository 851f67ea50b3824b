"""Isolation per submission: only the notebook enters, the kernel starts isolated, and the
whole submission (all its processes together) is limited, accounted for and killable."""

from __future__ import annotations

import asyncio
import os
import shutil
import sys
import time
from pathlib import Path

import pytest
from traitlets.config import Config

import tunelab
from grader.sandbox import cgroups
from grader.sandbox.bubblewrap import (
    SANDBOX_DIR,
    Sandbox,
    SandboxedKernelManager,
    SandboxUnavailable,
    check_sandbox,
    isolation_mode,
)

pytestmark = pytest.mark.skipif(
    bool(check_sandbox()), reason=f"no working bubblewrap sandbox: {check_sandbox()}"
)
MODE, WHY = cgroups.detect()
needs_cgroups = pytest.mark.skipif(
    MODE == cgroups.RLIMITS, reason=f"this machine gives the grader no cgroup: {WHY}"
)
GB = 2**30


class Kernel:
    """One sandboxed kernel started with jupyter_client, cells run one by one."""

    def __init__(self, workdir: Path, **sandbox) -> None:
        cfg = Config()
        for key, value in sandbox.items():
            setattr(cfg.Sandbox, key, value)
        self.loop = asyncio.new_event_loop()
        self.km = SandboxedKernelManager(kernel_name="python3", config=cfg)
        started = time.perf_counter()
        try:
            self.loop.run_until_complete(self.km.start_kernel(cwd=str(workdir)))
            self.kc = self.km.client()
            self.kc.start_channels()
            self.loop.run_until_complete(self.kc.wait_for_ready(timeout=60))
        except Exception:
            print(self.km.stderr_tail(20), file=sys.stderr)
            self.close()
            raise
        self.start_seconds = time.perf_counter() - started

    def run(self, code: str, timeout: float = 30) -> tuple[str, str | None]:
        """(what the cell printed, the error's name or None)."""
        text: list[str] = []
        error: list[str] = []

        def hook(msg) -> None:
            kind, content = msg["msg_type"], msg["content"]
            if kind == "stream":
                text.append(content["text"])
            elif kind == "error":
                error.append(content["ename"])

        self.loop.run_until_complete(
            self.kc.execute_interactive(code, output_hook=hook, timeout=timeout)
        )
        return "".join(text), (error[-1] if error else None)

    def value(self, code: str, timeout: float = 30):
        text, error = self.run(code, timeout)
        assert error is None, (code, text, error)
        return eval(text)  # noqa: S307 (our own printed literal)

    def close(self) -> None:
        kc = getattr(self, "kc", None)
        if kc is not None:
            kc.stop_channels()
        if self.km.has_kernel:
            self.loop.run_until_complete(self.km.shutdown_kernel(now=True))
        self.km._remove_scratch()
        self.loop.close()


@pytest.fixture
def kernel(tmp_path: Path):
    made: list[Kernel] = []

    def start(workdir: Path | None = None, **sandbox) -> Kernel:
        made.append(Kernel(workdir or tmp_path, **sandbox))
        return made[-1]

    yield start
    for k in made:
        k.close()


SHADOWS = {
    "numpy.py": "raise SystemExit('shadow numpy')",
    "tunelab/__init__.py": "raise SystemExit('shadow tunelab')",
    "grader/__init__.py": "",
    "grader/sandbox/__init__.py": "",
    "grader/sandbox/kernel_guard.py": (
        "def load_ipython_extension(ip):\n    ip.user_ns['SHADOW'] = 1"
    ),
    "sitecustomize.py": "import builtins\nbuiltins.SHADOW = 1",
    "usercustomize.py": "import builtins\nbuiltins.SHADOW = 1",
    "ipython_config.py": "c.InteractiveShellApp.exec_lines = ['SHADOW = 1']",
    "ipython_kernel_config.py": "c.InteractiveShellApp.exec_lines = ['SHADOW = 1']",
    ".ipython/profile_default/startup/00.py": "SHADOW = 1",
    "profile_default/startup/00.py": "SHADOW = 1",
}


def _write(folder: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text(text)


def test_files_beside_the_notebook_have_no_effect(tmp_path: Path, kernel) -> None:
    _write(tmp_path, SHADOWS)
    (tmp_path / "given.csv").write_text("a,b\n1,2\n")
    (tmp_path / "sub.ipynb").write_text("{}")
    (tmp_path / "secret").symlink_to("/etc/hostname")
    # declared configuration files are let in, and still not read as configuration
    declared = ["given.csv", "ipython_config.py", "ipython_kernel_config.py", "secret", "../x"]
    k = kernel(tmp_path, extra_files=declared, max_cell_output=5000)
    assert k.value("import os\nprint(sorted(os.listdir('.')))") == [
        "given.csv",
        "ipython_config.py",
        "ipython_kernel_config.py",
    ], "only declared files (no links, nothing outside) enter"
    assert k.value("print(repr(open('given.csv').read()))") == "a,b\n1,2\n"
    assert k.run("open('given.csv', 'a')")[1] in ("OSError", "PermissionError"), "read-only"
    assert k.value(f"print(os.getcwd() == {str(tmp_path)!r})"), "nbgrader's path"
    assert k.value("print('SHADOW' in dir() or hasattr(__builtins__, 'SHADOW'))") is False
    assert k.value("import numpy\nprint(repr(numpy.__file__))") == numpy_file()
    assert k.value("import tunelab\nprint(repr(tunelab.__file__))") == tunelab.__file__
    assert k.value("import grader.sandbox.kernel_guard as g\nprint(repr(g.__file__))") == str(
        SANDBOX_DIR / "kernel_guard.py"
    )
    assert k.value("import sys\nprint(repr(sys.modules['_grader_kernel_guard'].__file__))") == (
        str(SANDBOX_DIR / "kernel_guard.py")
    )
    assert k.value("import sys\nprint((sys.flags.isolated, sys.flags.safe_path))") == (1, True)
    assert k.value("print('' in sys.path or '.' in sys.path)") is False
    text, _ = k.run("print('y' * 20000)")
    assert "output truncated by the grader" in text, "the real guard is loaded"
    left_out = set(k.km.ignored_files)
    assert {
        "numpy.py",
        "tunelab/__init__.py",
        "grader/sandbox/kernel_guard.py",
        "sitecustomize.py",
    } <= (left_out)
    assert ".ipython/profile_default/startup/00.py" in left_out
    assert "secret" in left_out and "given.csv" not in left_out and "sub.ipynb" not in left_out


def numpy_file() -> str:
    import numpy

    return numpy.__file__


def test_working_dir_is_a_capped_tmpfs(tmp_path: Path, kernel) -> None:
    before = sorted(p.name for p in tmp_path.iterdir())
    free = shutil.disk_usage(tmp_path).free
    k = kernel(tmp_path, workdir_mb=8, max_file_mb=4096)
    size = k.value("import os\nst = os.statvfs('.')\nprint(st.f_blocks * st.f_frsize)")
    assert size == 8 * 2**20
    fs = k.value(
        "cwd = os.getcwd()\nprint(repr([l.split(' - ')[1].split()[0] for l in "
        "open('/proc/self/mountinfo') if l.split()[4] == cwd][-1]))"
    )
    assert fs == "tmpfs"
    text, error = k.run(
        "import errno\ntry:\n    for i in range(20):\n"
        "        with open(f'f{i}', 'wb') as f:\n            f.write(b'x' * 2**20)\n"
        "except OSError as err:\n    print(err.errno)"
    )
    assert (text.strip(), error) == ("28", None), "ENOSPC past the tmpfs size"
    text, error = k.run(
        "fd = os.open('big', os.O_CREAT | os.O_WRONLY)\n"
        f"try:\n    os.posix_fallocate(fd, 0, {int(2.5 * GB)})\n"
        "except OSError as err:\n    print(err.errno)"
    )
    assert (text.strip(), error) == ("28", None), "fallocate cannot reserve 2.5 GB"
    if os.geteuid() == 0:  # the socket folder is on the host's disk: locked once bound
        text, error = k.run(f"open({str(k.km.ipc_dir / 'fill')!r}, 'wb')")
        assert error == "PermissionError", (text, error)
    assert sorted(p.name for p in tmp_path.iterdir()) == before
    assert abs(shutil.disk_usage(tmp_path).free - free) < 64 * 2**20, "host disk untouched"


def test_kernel_start_is_isolated_and_quick(tmp_path: Path, kernel) -> None:
    k = kernel(tmp_path)
    assert k.start_seconds < 10
    argv = k.value("import sys\nprint(sys.orig_argv)")
    assert argv[1:3] == ["-I", "-B"] and argv[3] == str(SANDBOX_DIR / "sandbox_kernel.py")
    ipython_dir = k.value("import IPython\nprint(repr(IPython.paths.get_ipython_dir()))")
    assert ipython_dir == "/tmp/.ipython", "private, in the sandbox's own /tmp"
    startup = k.value(f"import os\nprint(os.listdir({ipython_dir + '/profile_default/startup'!r}))")
    assert set(startup) <= {"README"}


SPAWN = """\
import subprocess, sys
def spawn(code):
    return subprocess.Popen([sys.executable, '-c', code])
"""
HOG = "x = b'x' * (1536 * 2**20)\nimport time\ntime.sleep(1)"
STRAY = (
    "import os, time\nos.setsid()\nif os.fork():\n    os._exit(0)\nos.setsid()\n"
    "while True:\n    pass"
)


@needs_cgroups
def test_memory_is_limited_for_the_whole_submission(tmp_path: Path, kernel) -> None:
    k = kernel(tmp_path, memory_mb=2048)
    assert k.km.isolation == MODE and k.km.group is not None
    k.run(SPAWN)
    codes = k.value(
        f"procs = [spawn({HOG!r}) for _ in range(3)]\nprint([p.wait() for p in procs])", 60
    )
    peak = k.km.memory_peak_bytes()
    print(f"hog exits {codes}, peak {peak / 2**20:.0f} MB, oom kills {k.km.group.oom_kills()}")
    assert any(code == -9 for code in codes), codes
    assert peak is not None and peak <= 2048 * 2**20
    assert k.value("print(1)") == 1, "the kernel itself survives its children's hogging"


@needs_cgroups
def test_process_limit_holds_for_the_whole_submission(tmp_path: Path, kernel, monkeypatch) -> None:
    command = Sandbox.command

    def without_nproc(self, *args, **kw):  # leave only the group's limit to stop it
        argv = command(self, *args, **kw)
        argv[argv.index("--max-processes") + 1] = "100000"
        return argv

    monkeypatch.setattr(Sandbox, "command", without_nproc)
    k = kernel(tmp_path, max_processes=40)
    assert k.value("import resource\nprint(resource.getrlimit(resource.RLIMIT_NPROC)[0])") > 40
    k.run(SPAWN)
    started = k.value(
        "procs = []\ntry:\n    for _ in range(80):\n"
        "        procs.append(subprocess.Popen(['sleep', '30']))\nexcept OSError:\n    pass\n"
        "print(len(procs))\nfor p in procs:\n    p.kill()\n    p.wait()"
    )
    assert started < 40
    group = k.km.group
    pids_dir = group.dirs["pids"] if group.mode == cgroups.CGROUP1 else group.dirs[""]
    assert (pids_dir / "pids.max").read_text().strip() == "40"
    events = dict(line.split() for line in (pids_dir / "pids.events").read_text().splitlines())
    assert int(events["max"]) > 0, "the group's limit is what stopped it"


@pytest.mark.parametrize("isolation", ["auto", cgroups.RLIMITS])
def test_kill_strays_finds_setsid_and_double_forked(tmp_path: Path, kernel, isolation) -> None:
    if isolation == "auto" and MODE == cgroups.RLIMITS:
        pytest.skip(f"this machine gives the grader no cgroup: {WHY}")
    k = kernel(tmp_path, isolation=isolation)
    k.run(SPAWN)
    k.run(f"for _ in range(5):\n    spawn({STRAY!r}).wait()\nsubprocess.Popen(['sleep', '60'])")
    time.sleep(0.3)
    assert k.km.kill_strays() >= 6
    assert k.value("print(1)") == 1, "the kernel itself lives on"
    assert k.km.kill_strays() == 0
    assert not k.km.stray_pids()


@pytest.mark.parametrize("isolation", ["auto", cgroups.RLIMITS])
def test_cpu_seconds_used_counts_the_submission(tmp_path: Path, kernel, isolation) -> None:
    if isolation == "auto" and MODE == cgroups.RLIMITS:
        pytest.skip(f"this machine gives the grader no cgroup: {WHY}")
    k = kernel(tmp_path, isolation=isolation)
    before = k.km.cpu_seconds_used()
    assert before is not None
    busy = "import time\nt = time.process_time()\nwhile time.process_time() - t < 0.6:\n    pass"
    k.run(busy)
    k.run(SPAWN + f"spawn({busy!r}).wait()")  # a child's CPU time counts too
    used = k.km.cpu_seconds_used() - before
    assert 1.1 < used < 3.0, used


@needs_cgroups
def test_cpu_share_is_capped_for_the_whole_submission(tmp_path: Path, kernel) -> None:
    k = kernel(tmp_path, cpus=0.5)
    k.run(SPAWN)
    before = k.km.cpu_seconds_used()
    busy = "import time\nt = time.time()\nwhile time.time() - t < 1.5:\n    pass"
    k.run(f"procs = [spawn({busy!r}) for _ in range(4)]\nfor p in procs:\n    p.wait()", 60)
    used = k.km.cpu_seconds_used() - before
    assert used < 0.5 * 2.0 * 1.3, f"{used:.2f} s of CPU for 4 busy processes under cpus=0.5"


def test_rlimits_fallback(tmp_path: Path, kernel) -> None:
    k = kernel(tmp_path, isolation=cgroups.RLIMITS)
    assert k.km.isolation == cgroups.RLIMITS and k.km.group is None
    assert k.km.memory_peak_bytes() is None
    assert k.value("import resource\nprint(resource.getrlimit(resource.RLIMIT_AS)[0])") == (
        2048 * 2**20
    )
    assert isolation_mode(cgroups.RLIMITS) == cgroups.RLIMITS


def test_a_named_cgroup_version_must_work(tmp_path: Path) -> None:
    missing = [m for m in (cgroups.CGROUP2, cgroups.CGROUP1) if cgroups.detect(m)[0] != m]
    if not missing:
        pytest.skip("both cgroup versions work here")
    with pytest.raises(SandboxUnavailable, match="does not work here"):
        isolation_mode(missing[0])


def test_cgroup_detection_is_explained() -> None:
    assert MODE in cgroups.MODES
    assert Sandbox().isolation == "auto"
    if MODE == cgroups.RLIMITS:
        assert WHY, "a fallback says why"
