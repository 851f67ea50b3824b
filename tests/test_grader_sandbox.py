"""The sandbox alone: what a student kernel can see, write and use, and its limits."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import pytest
from grader_corpus import KERNELSPEC, run_sandboxed
from nbformat.v4 import new_code_cell, new_notebook
from traitlets.config import Config

from grader.sandbox.bubblewrap import Sandbox, _UidPool, check_sandbox
from grader.stores.course import REPO
from grader.verdicts.sandboxedexecute import SandboxedExecute

pytestmark = pytest.mark.skipif(
    bool(check_sandbox()), reason=f"no working bubblewrap sandbox: {check_sandbox()}"
)


run = run_sandboxed  # (cells, workdir, timeout=10, **Sandbox traits)


@pytest.fixture(params=["zygote", "bubblewrap"])
def kernel_start(request, monkeypatch) -> str:
    """A kernel test twice: kernels forked by the zygote (the default as root) and kernels that
    bubblewrap starts (the default elsewhere); both must keep the same guarantees."""
    monkeypatch.setenv("TUNELAB_SANDBOX_ZYGOTE", "1" if request.param == "zygote" else "0")
    return request.param


@pytest.mark.usefixtures("kernel_start")
def test_file_system_view(tmp_path: Path) -> None:
    (tmp_path / "given.csv").write_text("a,b\n1,2\n")
    (tmp_path / "other.ipynb").write_text("{}")
    cells = [
        "import os, pathlib\nprint(open('given.csv').read().splitlines()[0])",
        "print(sorted(os.listdir('.')))",
        f"print(sorted(os.listdir({str(REPO)!r})))",
        "open('made-here.txt', 'w').write('x')\nprint(os.path.exists('made-here.txt'))",
        f"open({str(REPO / 'data' / 'x.txt')!r}, 'w')",
        f"open({str(REPO / 'tunelab' / '__init__.py')!r}, 'a')",
        "import tunelab\nprint(pathlib.Path(tunelab.data_path()).exists())",
        "print(os.getuid())",
    ]
    out = run(cells, tmp_path, extra_files=["given.csv"])
    assert out[0]["text"].strip() == "a,b"
    assert out[1]["text"].strip() == "['given.csv']", "only declared files are let in"
    visible = eval(out[2]["text"])  # noqa: S307 (our own printed list)
    assert set(visible) <= {"data", "grader", "tunelab", ".venv"}, visible
    assert {"solutions", ".git", ".instructor", "tests", "notebooks"}.isdisjoint(visible)
    assert out[3]["text"].strip() == "True"
    assert not (tmp_path / "made-here.txt").exists(), "the scratch copy must not leak back"
    assert out[4]["error"] in ("OSError", "PermissionError")  # read-only file system
    assert out[5]["error"] in ("OSError", "PermissionError")
    assert out[6]["text"].strip() == "True"
    if os.geteuid() == 0:
        assert int(out[7]["text"]) >= Sandbox().uid_base, "root must drop to its own uid"


@pytest.mark.usefixtures("kernel_start")
def test_resource_limits(tmp_path: Path) -> None:
    cells = [
        "open('big.bin', 'wb').write(b'x' * 3 * 2**20)",  # over max_file_mb=1
        "chunks = []\ntry:\n    for _ in range(8):\n"
        "        f = open(f'/tmp/f{_}', 'wb'); f.write(b'x' * (2**20 - 1)); f.close()\n"
        "except OSError as err:\n    print('tmp full:', err.errno)",
        "import resource\nprint(resource.getrlimit(resource.RLIMIT_NPROC)[0])",
        "x = bytearray(700 * 2**20)",  # over memory_mb=512
        "while True:\n    pass",  # CPU limit kills the kernel before the cell timeout
        "print('still graded')",
    ]
    out = run(cells, tmp_path, timeout=30, max_file_mb=1, tmp_mb=4, memory_mb=512, cpu_seconds=4)
    assert out[0]["error"] == "OSError"
    assert "tmp full: 28" in out[1]["text"]  # ENOSPC
    assert out[2]["text"].strip() == "256"
    assert out[3]["error"] == "MemoryError"
    assert out[4]["error"] == "KernelDied"
    assert out[5]["text"].strip() == "still graded"


@pytest.mark.usefixtures("kernel_start")
def test_printing_is_capped_in_the_kernel(tmp_path: Path) -> None:
    out = run(["print('y' * 3_000_000)"], tmp_path, max_cell_output=10_000)
    assert len(out[0]["text"]) < 11_000
    assert "output truncated by the grader" in out[0]["text"]


@pytest.mark.usefixtures("kernel_start")
def test_a_huge_error_message_is_capped_in_the_kernel(tmp_path: Path) -> None:
    """An exception carrying 20 MB of text (as message and traceback, over the largest message
    the grader accepts) ends its cell at once, shortened, in the same kernel: not dropped by
    the grader's socket, the cell waiting out its timeout and the kernel restarted."""
    started = time.monotonic()
    cells = ["x = 1", "raise ValueError('e' * 20_000_000)", "print(x)"]
    out = run(cells, tmp_path, timeout=30, max_cell_output=10_000)
    assert out[1]["error"] == "ValueError"
    assert 10_000 < len(out[1]["evalue"]) < 11_000, len(out[1]["evalue"])
    assert "truncated by the grader" in out[1]["evalue"]
    assert out[2]["text"].strip() == "1", "the same kernel: not restarted"
    assert time.monotonic() - started < 25


def test_the_kernels_caps_speak_the_notebooks_language(tmp_path: Path) -> None:
    """A Russian notebook (tunelab set to Russian) reads its truncation notes in Russian."""
    cells = [
        "import tunelab\ntunelab.set_language('ru')",
        "raise ValueError('e' * 50_000)",
        "print('ж' * 50_000)",
    ]
    out = run(cells, tmp_path, timeout=30, max_cell_output=10_000)
    assert out[1]["evalue"].endswith(" символов)") and "обрезано: длиннее 10" in out[1]["evalue"]
    assert "вывод обрезан: эта ячейка напечатала больше 10" in out[2]["text"]
    assert "truncated" not in out[1]["evalue"] + out[2]["text"]


FD_TARGETS = """\
import os
links = []
for fd in os.listdir("/proc/self/fd"):
    try:
        links.append(os.readlink(f"/proc/self/fd/{fd}"))
    except OSError:
        pass
print(links)"""


@pytest.mark.usefixtures("kernel_start")
def test_no_environment_or_descriptors_leak_in(tmp_path: Path, monkeypatch) -> None:
    """The kernel sees neither the grader's environment (API keys, tokens) nor its open
    files (the gradebook, the run's lock file), even one marked inheritable."""
    work = tmp_path / "work"
    work.mkdir()
    secret = tmp_path / "secret.txt"
    secret.write_text("s3cret")
    monkeypatch.setenv("GRADER_TEST_TOKEN", "s3cret-token")
    fd = os.open(secret, os.O_RDONLY)
    os.set_inheritable(fd, True)
    try:
        out = run(
            [
                "import os\nprint(sorted(k for k, v in os.environ.items() if 's3cret' in v))",
                FD_TARGETS,
            ],
            work,
        )
    finally:
        os.close(fd)
    assert out[0]["text"].strip() == "[]"
    links = eval(out[1]["text"])  # noqa: S307 (our own printed list)
    assert links and str(secret) not in links, links


def test_command_binds_nothing_private() -> None:
    argv = Sandbox().command(["python"], workdir="/w", ipc_dir="/i", uid=None, files=[("/s", "f")])
    joined = " ".join(argv)
    for private in ("/solutions", ".instructor", "/.git", "/notebooks", "/tests"):
        assert private not in joined, private
    home = str(Path.home())
    sources = [argv[i + 1] for i, arg in enumerate(argv) if arg in ("--bind", "--ro-bind")]
    for source in sources:  # inside the home folder only the Python installation, if there
        assert not home.startswith(source), source
        assert not source.startswith(home) or source in (sys.base_prefix, sys.prefix), source
    assert "--unshare-net" in argv or "--unshare-all" in argv
    tmpfs = [argv[i + 1] for i, arg in enumerate(argv) if arg == "--tmpfs"]
    assert tmpfs == ["/tmp", "/w"], "the working directory is a fresh tmpfs"
    assert argv[argv.index("/s") - 1 : argv.index("/s") + 2] == ["--ro-bind", "/s", "/w/f"]
    assert argv[argv.index("--chdir") + 1] == "/", "the kernel moves to /w after its config"


def test_check_sandbox_explains_a_missing_bwrap() -> None:
    assert check_sandbox() == ""
    assert "not installed" in check_sandbox("no-such-bwrap-here")


def test_uid_pool_round_robin() -> None:
    pool = _UidPool(size=3)
    first = pool.acquire(100)
    second = pool.acquire(100)
    pool.release(first)
    assert (first, second, pool.acquire(100)) == (100, 101, 102)
    assert pool.acquire(100) == 100  # wraps around to the freed one
    with pytest.raises(RuntimeError):
        pool.acquire(100)


def test_unprivileged_mode(tmp_path: Path, monkeypatch) -> None:
    """The command line used when the grader is not root (CI, laptops): user namespace, no
    capabilities, same isolation. (As root this runs it in a user namespace as well.)"""
    monkeypatch.setattr(Sandbox, "privileged", property(lambda self: False))
    cells = [
        "print(open('/proc/self/status').read().split('CapEff:')[1].split()[0])",
        f"open({str(REPO / 'grader' / 'x')!r}, 'w')",
        "import socket\ntry:\n    socket.create_connection(('1.1.1.1', 80), timeout=1)\n"
        "except OSError as err:\n    print('blocked', err.errno)",
        "import resource\nprint(resource.getrlimit(resource.RLIMIT_AS)[0] // 2**20)",
    ]
    out = run(cells, tmp_path, memory_mb=1500)
    assert out[0]["text"].strip() == "0000000000000000"
    assert out[1]["error"] == "OSError"
    assert out[2]["text"].startswith("blocked")
    assert out[3]["text"].strip() == "1500"


@pytest.mark.usefixtures("kernel_start")
def test_notebook_time_budget(tmp_path: Path) -> None:
    """A notebook of many slow cells cannot hold a worker forever: later cells are not run."""
    cfg = Config()
    cfg.SandboxedExecute.notebook_timeout = 3
    nb = new_notebook(
        cells=[new_code_cell("import time\ntime.sleep(1.2)") for _ in range(6)],
        metadata={"kernelspec": KERNELSPEC},
    )
    step = SandboxedExecute(timeout=10, config=cfg)
    nb, resources = step.preprocess(nb, {"metadata": {"path": str(tmp_path)}})
    errors = [
        [o.get("ename") for o in c.outputs if o.get("output_type") == "error"] for c in nb.cells
    ]
    assert errors[0] == [] and errors[-1] == ["CellNotRun"]
    assert any(e["kind"] == "notebook_timeout" for e in resources["grader"]["events"])


def test_kernels_starting_at_once_share_one_font_list(monkeypatch) -> None:
    """A zygote is keyed on the font list's path: kernels that start side by side (no
    preflight before them) must all get the same list, built once, or each keys a zygote."""
    import functools
    import threading

    from grader.sandbox import bubblewrap

    build = bubblewrap._build_font_list.__wrapped__  # uncached: this test's own list
    builds: list[int] = []

    def counted() -> Path | None:
        builds.append(1)
        return build()

    monkeypatch.setattr(bubblewrap, "_build_font_list", functools.cache(counted))
    start = threading.Barrier(4)
    seen: list[Path | None] = []

    def kernel() -> None:
        start.wait()
        seen.append(bubblewrap.matplotlib_font_list())

    threads = [threading.Thread(target=kernel) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(seen) == 4 and len(set(seen)) == 1, seen
    assert seen[0] is not None and seen[0].name.startswith("fontlist-")
    assert builds == [1]
