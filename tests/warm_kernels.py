"""Notebook kernels forked from one warm process: the course's imports paid once per test run.

Why: the suite executes every lesson master top to bottom, in English and in Russian, about
twenty kernels per run, and each fresh kernel spends some 2.5 CPU seconds importing IPython,
pandas, matplotlib, seaborn, google.generativeai and the course package before the lesson's
first line runs. A student opens one notebook at a time and pays that once; CI pays it twenty
times. ``tests/benchmarks/bench_notebooks.py`` prints both (``--kernels cold`` is what a
student's laptop does).

How: :class:`WarmKernels` starts a server (``python warm_kernels.py serve SOCKET``) with the
kernels' environment; it imports :data:`PRELOAD` and waits. Its kernel spec, named
``python3`` like the real one and found only through :meth:`WarmKernels.kernel_manager`, runs
a shim (``python -I -S warm_kernels.py shim SOCKET -f CONNECTION_FILE``) that sends its
working directory, environment and standard streams to the server. The server forks a child
that enters a new session, changes to that directory, takes that environment, reseeds the
random generators and runs ``ipykernel``'s kernel application on the connection file, as
``python -m ipykernel_launcher -f FILE`` does. The shim forwards the signals jupyter_client
sends it (interrupt, terminate) and exits with the kernel's exit code; if the shim is killed,
the server kills its kernel.

The fork is only taken when it cannot change what the notebook sees: a request whose
environment differs from the server's (beyond jupyter_client's per-kernel ``JPY_*``
variables) gets a cold kernel (the shim execs ``ipykernel_launcher``), since a preloaded
module may have read the environment at import. Each kernel is a fresh fork of a server that
has run no notebook code, so nothing of one notebook reaches the next
(``tests/test_warm_kernels.py``).

Only the test suite and the benchmark use this; the course never does.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

#: What the lessons import. Not google.generativeai: the course configures it through an import
#: hook when a notebook first imports it (tunelab.emulator.server), its import warns, and it
#: brings grpc, which is not fork-safe; all of that must happen in the notebook, as it would
#: for a student. (google.genai, the successor SDK, does none of these.) Nothing here may warn
#: on import (the server refuses to start if one does: the warning would vanish from outputs).
PRELOAD = (
    "IPython",
    "ipykernel.kernelapp",
    "ipykernel.ipkernel",
    "numpy",
    "pandas",
    "matplotlib",
    "matplotlib.pyplot",  # not its backend: matplotlib_inline hooks into IPython's shell
    "seaborn",  # when first imported, and the shell is the kernel's, made after the fork
    "fastapi",
    "uvicorn",
    "google.genai",
    "tunelab",
    "tunelab.emulator.server",
    "tunelab.monitor",
    "tunelab.scenarios",
    "sklearn.neural_network",
    "sklearn.feature_extraction.text",
)
#: warnings a kernel would not show for a library's import anyway
QUIET = (DeprecationWarning, PendingDeprecationWarning, ImportWarning)
#: Variables that differ between kernels and are read late (the child gets the request's):
#: jupyter_client's per-kernel ones, and pytest's name of the running test.
PER_KERNEL = ("JPY_", "PYTEST_CURRENT_TEST")
BUFFER = 1 << 20


def _comparable(env: dict[str, str]) -> dict[str, str]:
    return {k: v for k, v in env.items() if not k.startswith(PER_KERNEL)}


# -- the server ----------------------------------------------------------------------------------
def serve(path: str) -> None:
    """Import PRELOAD, say ``ready``, then fork one kernel per shim until stdin closes."""
    import warnings

    started = time.process_time()
    base_env = _comparable(dict(os.environ))  # before the imports, some of which set variables
    failed = []
    for name in PRELOAD:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                __import__(name)
            except Exception as err:  # noqa: BLE001 (the kernel imports it again and reports)
                failed.append(f"{name}: {type(err).__name__}: {err}")
        shown = [w for w in caught if not issubclass(w.category, QUIET)]
        if shown:
            why = f"importing {name} warns ({shown[0].category.__name__}: {shown[0].message})"
            print(json.dumps({"error": why}), flush=True)
            return
    _remember_distributions()
    # Python threads: a lock one of them held would stay locked in the fork. (numpy's and
    # scipy's OpenBLAS pools are C threads that shut down and restart around a fork through
    # pthread_atfork, as multiprocessing's fork start method relies on; grpc, which cannot
    # fork, is not imported: it comes with google.generativeai.)
    threads = threading.active_count()
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    listener.bind(path)
    listener.listen(64)
    # what the imports set (sklearn sets KMP_* variables): a cold kernel has it after them too
    imported_env = {k: v for k, v in os.environ.items() if base_env.get(k) != v}
    base_path = [p for p in sys.path if p and Path(p).resolve() != Path(__file__).resolve().parent]
    if threads != 1:  # fork copies one thread: a lock another one held would stay locked
        print(json.dumps({"error": f"{threads} threads after the imports"}), flush=True)
        return
    cpu = time.process_time() - started
    print(json.dumps({"ready": True, "cpu": cpu, "failed": failed}), flush=True)
    kernels: dict[int, socket.socket] = {}  # kernel pid -> its shim's connection
    while True:
        waiting = [listener, sys.stdin, *(c for c in kernels.values() if c.fileno() >= 0)]
        readable, _, _ = select.select(waiting, [], [], 0.05)
        if sys.stdin in readable and not os.read(sys.stdin.fileno(), 1024):
            for pid in kernels:  # the test run is over
                _kill(pid)
            return
        if listener in readable:
            conn, _ = listener.accept()
            pid = _start(conn, listener, kernels, base_env, imported_env, base_path)
            if pid is not None:
                kernels[pid] = conn
        for pid, conn in list(kernels.items()):
            if conn in readable and conn.fileno() >= 0 and not conn.recv(16):
                _kill(pid)  # the shim is gone: so is its kernel
                conn.close()
        while kernels:  # reap the kernels that have ended
            try:
                pid, status, usage = os.wait4(-1, os.WNOHANG)
            except ChildProcessError:
                break
            if pid == 0:
                break
            conn = kernels.pop(pid, None)
            code = os.waitstatus_to_exitcode(status)
            cpu = usage.ru_utime + usage.ru_stime
            print(json.dumps({"kernel": pid, "cpu": cpu, "exit": code}), flush=True)
            if conn is not None and conn.fileno() >= 0:
                with contextlib.suppress(OSError):
                    conn.send(json.dumps({"exit": code}).encode())
                conn.close()


def _remember_distributions() -> None:
    """Answer ``importlib.metadata.packages_distributions()`` from scans made here.

    Why: google.api_core, which google.generativeai imports in seven lessons, calls it on
    import to name its package in its Python-version warning; it reads every installed
    distribution's metadata: 0.2 to 0.6 CPU s per kernel on the 2-core test machine.

    How: the server scans each of its ``sys.path`` folders once. A kernel's call walks its
    own ``sys.path`` in order, as the real function does, taking a folder's scan from here
    when the server made one and scanning it itself otherwise (its working directory).
    Nothing is installed while the tests run, so the answer is the one a fresh scan gives.
    When a finder besides ``PathFinder`` can list distributions, the real function answers.
    """
    import collections
    import functools
    from importlib import machinery, metadata

    original = metadata.packages_distributions

    def only_paths() -> bool:
        return not any(
            hasattr(finder, "find_distributions") and finder is not machinery.PathFinder
            for finder in sys.meta_path
        )

    def scan(folder: str) -> list[tuple[str, str]]:
        return [
            (package, dist.metadata["Name"])
            for dist in metadata.distributions(path=[folder])
            for package in metadata._top_level_declared(dist) or metadata._top_level_inferred(dist)
        ]

    if not only_paths():
        return
    scanned = {folder: scan(folder) for folder in sys.path if os.path.isabs(folder)}

    @functools.wraps(original)
    def packages_distributions() -> dict[str, list[str]]:
        if not only_paths():
            return original()
        found: dict[str, list[str]] = collections.defaultdict(list)
        for folder in sys.path:
            pairs = scanned.get(folder)
            for package, name in scan(folder) if pairs is None else pairs:
                found[package].append(name)
        return dict(found)

    metadata.packages_distributions = packages_distributions


def _kill(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)


def _start(
    conn: socket.socket,
    listener: socket.socket,
    kernels: dict[int, socket.socket],
    base_env: dict[str, str],
    imported_env: dict[str, str],
    base_path: list[str],
) -> int | None:
    """Fork a kernel for the shim on ``conn`` (or tell it to start a cold one)."""
    data, fds, _flags, _addr = socket.recv_fds(conn, BUFFER, 3)
    request = json.loads(data)
    different = sorted(
        k
        for k in set(base_env) | set(_comparable(request["env"]))
        if base_env.get(k) != request["env"].get(k)
    )
    if different or len(fds) != 3:
        for fd in fds:
            os.close(fd)
        why = f"environment differs: {different[:5]}" if different else "no standard streams"
        print(json.dumps({"cold": why}), flush=True)
        conn.send(json.dumps({"cold": why}).encode())
        conn.close()
        return None
    pid = os.fork()
    if pid == 0:
        listener.close()
        for other in kernels.values():
            other.close()
        conn.close()
        request["env"].update(imported_env)
        _kernel(request, fds, base_path)  # never returns
    for fd in fds:
        os.close(fd)
    conn.send(json.dumps({"pid": pid}).encode())
    return pid


def _kernel(request: dict, fds: list[int], base_path: list[str]) -> None:
    """In the fork: become the process ``python -m ipykernel_launcher -f FILE`` would be."""
    import atexit
    import random

    code = 1
    try:
        for target, fd in enumerate(fds):
            os.dup2(fd, target)
            os.close(fd)
        os.setsid()
        os.chdir(request["cwd"])
        os.environ.clear()
        os.environ.update(request["env"])
        sys.path[:] = base_path
        sys.argv = ["ipykernel_launcher", *request["argv"]]
        for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGCHLD):
            signal.signal(signum, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        random.seed()
        numpy = sys.modules.get("numpy")
        if numpy is not None:
            numpy.random.seed()
        from ipykernel import kernelapp

        # read from the environment when ipykernel was imported (by the server): set here
        parent = int(os.environ.get("JPY_PARENT_PID") or 0)
        kernelapp.launch_new_instance(argv=request["argv"], parent_handle=parent)
        code = 0
    except SystemExit as done:
        code = done.code if isinstance(done.code, int) else 1
    except BaseException:  # noqa: BLE001
        import traceback

        traceback.print_exc()
    try:
        atexit._run_exitfuncs()
        sys.stdout.flush()
        sys.stderr.flush()
    finally:
        os._exit(code)


# -- the shim jupyter_client starts ----------------------------------------------------------
def shim(path: str, argv: list[str]) -> int:
    """Ask the server for a kernel, forward signals to it, exit with its exit code."""
    conn = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    conn.connect(path)
    request = {"argv": argv, "env": dict(os.environ), "cwd": os.getcwd()}
    socket.send_fds(conn, [json.dumps(request).encode()], [0, 1, 2])
    reply = json.loads(conn.recv(BUFFER))
    if "cold" in reply:
        conn.close()
        os.execv(sys.executable, [sys.executable, "-m", "ipykernel_launcher", *argv])
    kernel = int(reply["pid"])

    def forward(signum, _frame) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(kernel, signum)

    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT):
        signal.signal(signum, forward)
    data = conn.recv(BUFFER)
    return int(json.loads(data)["exit"]) & 0xFF if data else 1


# -- the test side -------------------------------------------------------------------------------
class WarmKernels:
    """A running server and the kernel spec that reaches it.

    ``env``: the kernels' environment (a kernel started with another one is cold).
    """

    def __init__(self, env: dict[str, str], start_timeout: float = 120.0) -> None:
        self.env = dict(env)
        self._dir = tempfile.TemporaryDirectory(prefix="warm-kernels-")
        folder = Path(self._dir.name)
        self.socket = str(folder / "server.sock")
        spec_dir = folder / "kernels" / "python3"
        spec_dir.mkdir(parents=True)
        argv = [sys.executable, "-I", "-S", str(Path(__file__).resolve()), "shim", self.socket]
        spec = {
            "argv": [*argv, "-f", "{connection_file}"],
            "display_name": "Python 3 (warm)",
            "language": "python",
            "interrupt_mode": "signal",
            "metadata": {"debugger": False},
        }
        (spec_dir / "kernel.json").write_text(json.dumps(spec))
        self.kernel_dirs = [str(folder / "kernels")]
        #: CPU seconds of each finished warm kernel, and of the server's imports
        self.kernel_cpu: dict[int, float] = {}
        self.import_cpu = 0.0
        #: why a kernel was started cold instead (one entry per cold kernel)
        self.cold: list[str] = []
        self._lock = threading.Lock()
        self._proc = subprocess.Popen(
            [sys.executable, str(Path(__file__).resolve()), "serve", self.socket],
            env=self.env,
            cwd=folder,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        ready = self._read_line(start_timeout)
        if not ready.get("ready"):
            self.close()
            raise RuntimeError(f"the warm kernel server did not start: {ready}")
        self.import_cpu = float(ready["cpu"])
        self.failed_imports = list(ready["failed"])
        self._reader = threading.Thread(target=self._read_reports, daemon=True)
        self._reader.start()

    def _read_line(self, timeout: float) -> dict:
        assert self._proc.stdout is not None
        ready, _, _ = select.select([self._proc.stdout], [], [], timeout)
        line = self._proc.stdout.readline() if ready else ""
        return json.loads(line) if line.strip() else {"error": "no answer"}

    def _read_reports(self) -> None:
        assert self._proc.stdout is not None
        for line in self._proc.stdout:
            report = json.loads(line)
            with self._lock:
                if "kernel" in report:
                    self.kernel_cpu[int(report["kernel"])] = float(report["cpu"])
                elif "cold" in report:
                    self.cold.append(report["cold"])

    def kernels_cpu(self) -> float:
        """CPU seconds of the warm kernels that have ended so far."""
        with self._lock:
            return sum(self.kernel_cpu.values())

    def kernel_manager_class(self) -> type:
        """An ``AsyncKernelManager`` whose ``python3`` is a warm kernel, for NotebookClient's
        ``kernel_manager_class`` (a client owns, and so shuts down, only a manager it made)."""
        from jupyter_client.kernelspec import KernelSpecManager
        from jupyter_client.manager import AsyncKernelManager
        from traitlets import default

        kernel_dirs = self.kernel_dirs

        class WarmKernelManager(AsyncKernelManager):
            @default("kernel_spec_manager")
            def _warm_specs(self) -> KernelSpecManager:
                return KernelSpecManager(kernel_dirs=kernel_dirs, ensure_native_kernel=False)

        return WarmKernelManager

    def alive(self) -> bool:
        return self._proc.poll() is None

    def close(self) -> None:
        """Stop the server (it kills any kernel still running) and reap it."""
        if self._proc.poll() is None:
            assert self._proc.stdin is not None
            self._proc.stdin.close()
            try:
                self._proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        self._dir.cleanup()

    def __enter__(self) -> WarmKernels:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


if __name__ == "__main__":
    if sys.argv[1] == "serve":
        serve(sys.argv[2])
    elif sys.argv[1] == "shim":
        sys.exit(shim(sys.argv[2], sys.argv[3:]))
    else:
        sys.exit(f"usage: {sys.argv[0]} serve SOCKET | shim SOCKET -f CONNECTION_FILE")
