"""Run a student's Jupyter kernel inside a bubblewrap sandbox.

Design: the trusted grader process keeps nbgrader's whole pipeline, including nbclient,
which drives the kernel. Only the *kernel* runs in the sandbox, started by
:class:`SandboxedKernelManager`, a jupyter_client kernel manager that nbgrader's ``Execute``
step uses through its ``kernel_manager_class`` setting. The two talk ZeroMQ over Unix
sockets ("ipc" transport) in a directory both sides see, so the sandbox needs no network
at all: it has a private network namespace holding only its own loopback, where the
course's in-process emulator (127.0.0.1) still works.

What a student's code can reach (everything else does not exist in its file system):

* read-only: the system (/usr, a few /etc files), the Python installation and virtual
  environment, the course packages (``tunelab``, ``grader``) and ``data/``;
* writable: a fresh copy of its own autograded folder (the kernel's working directory,
  exactly where nbgrader would run it), a size-capped /tmp, and the ipc socket folder;
* never: the gradebook, ``solutions/``, ``.git``, other students' submissions, the
  instructor's home (only the Python installation inside it is mounted), the network.

Limits (per sandbox, set by :mod:`grader.sandbox_launch` inside it): address space, CPU
seconds, processes/threads, largest file, open files. When the grader runs as root the
kernel also drops to an unprivileged uid of its own (one per concurrent sandbox), so the
process limit applies and sandboxes cannot signal each other.
"""

from __future__ import annotations

import contextlib
import functools
import os
import shutil
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

import zmq
from jupyter_client.asynchronous import AsyncKernelClient
from jupyter_client.connect import channel_socket_types
from jupyter_client.manager import AsyncKernelManager
from traitlets import Dict, Instance, Integer, List, Unicode, default
from traitlets.config import LoggingConfigurable

import tunelab

GRADER_DIR = Path(__file__).resolve().parent
TUNELAB_DIR = Path(tunelab.__file__).resolve().parent
LAUNCHER = GRADER_DIR / "sandbox_launch.py"

SYSTEM_DIRS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")
ETC_FILES = (
    "ld.so.cache",
    "ld.so.conf",
    "ld.so.conf.d",
    "localtime",
    "timezone",
    "nsswitch.conf",
    "hosts",
    "passwd",
    "group",
    "alternatives",
    "ssl",
    "ca-certificates",
    "fonts",
    "mime.types",
)


class SandboxUnavailable(RuntimeError):
    """No working sandbox on this machine; the message says why and what to do."""


class Sandbox(LoggingConfigurable):
    """The bubblewrap command line and resource limits for one student kernel."""

    bwrap = Unicode("bwrap", help="The bubblewrap executable.").tag(config=True)
    memory_mb = Integer(
        2048, help="Address-space limit of each sandboxed process, in MB (RLIMIT_AS)."
    ).tag(config=True)
    cpu_seconds = Integer(
        600, help="CPU time limit of each sandboxed process, in seconds (RLIMIT_CPU)."
    ).tag(config=True)
    max_processes = Integer(
        256, help="Processes plus threads the sandboxed user may run (RLIMIT_NPROC)."
    ).tag(config=True)
    max_file_mb = Integer(64, help="Largest file a submission may write, in MB.").tag(config=True)
    max_open_files = Integer(1024, help="Open file descriptors per process.").tag(config=True)
    tmp_mb = Integer(256, help="Size of the sandbox's private /tmp (a tmpfs), in MB.").tag(
        config=True
    )
    uid_base = Integer(
        61000,
        help="When grading as root, each concurrent sandbox runs as uid uid_base+slot.",
    ).tag(config=True)
    readable = List(
        Unicode(),
        help="Extra host paths mounted read-only at the same place inside the sandbox.",
    ).tag(config=True)
    data_dirs = List(
        Unicode(), help="Course data folders mounted read-only (default: the course's data/)."
    ).tag(config=True)
    pass_env = List(
        Unicode(),
        ["NBGRADER_EXECUTION", "TUNELAB_TIME_SCALE", "TZ"],
        help="Environment variables copied from the grader into the sandbox (others are not).",
    ).tag(config=True)
    env = Dict(help="Extra environment variables set inside the sandbox.").tag(config=True)
    max_cell_output = Integer(
        1_000_000,
        help="Characters a cell may print before the kernel truncates it (grader.kernel_guard).",
    ).tag(config=True)

    @default("data_dirs")
    def _data_dirs_default(self) -> list[str]:
        return [str(TUNELAB_DIR.parent / "data")]

    @property
    def privileged(self) -> bool:
        return os.geteuid() == 0

    def readonly_paths(self) -> list[str]:
        """Host paths the student kernel may read (deduplicated, nested ones dropped)."""
        paths = {sys.base_prefix, sys.prefix, str(GRADER_DIR), str(TUNELAB_DIR)}
        paths.update(self.data_dirs)
        paths.update(self.readable)
        real = sorted({str(Path(p).resolve()) for p in paths if Path(p).exists()})
        return [p for p in real if not any(p != q and p.startswith(q + os.sep) for q in real)]

    def environment(self, home: str) -> dict[str, str]:
        env = {
            "PATH": os.pathsep.join([str(Path(sys.executable).parent), "/usr/bin", "/bin"]),
            "HOME": home,
            "USER": "student",
            "LOGNAME": "student",
            "LANG": "C.UTF-8",
            "PYTHONNOUSERSITE": "1",
            "PYTHONDONTWRITEBYTECODE": "1",
            "JUPYTER_PLATFORM_DIRS": "1",
            "JUPYTER_RUNTIME_DIR": f"{home}/.jupyter-runtime",
            "IPYTHONDIR": f"{home}/.ipython",
            "MPLCONFIGDIR": f"{home}/.matplotlib",
            # one thread per numeric library: the machine's cores are shared by all workers
            "OPENBLAS_NUM_THREADS": "1",
            "OMP_NUM_THREADS": "1",
            "MKL_NUM_THREADS": "1",
            "MALLOC_ARENA_MAX": "2",
            "GRADER_MAX_CELL_OUTPUT": str(self.max_cell_output),
        }
        env.update({k: os.environ[k] for k in self.pass_env if k in os.environ})
        env.update(self.env)
        return env

    def command(
        self,
        kernel_cmd: list[str],
        *,
        workdir: str,
        scratch: str,
        ipc_dir: str,
        uid: int | None,
        home: str = "/tmp",
    ) -> list[str]:
        """The full bwrap argv that runs ``kernel_cmd`` with ``scratch`` mounted at ``workdir``."""
        cmd = [self.bwrap, "--die-with-parent", "--hostname", "grader"]
        if self.privileged:
            # root: no user namespace (the uid switch needs real uids); keep only what
            # sandbox_launch needs to drop to its own uid, which then clears every capability.
            cmd += ["--unshare-ipc", "--unshare-pid", "--unshare-net", "--unshare-uts"]
            cmd += ["--unshare-cgroup-try", "--cap-drop", "ALL"]
            cmd += ["--cap-add", "CAP_SETUID", "--cap-add", "CAP_SETGID"]
        else:
            # bwrap drops every capability here anyway; say it, in case it runs setuid
            cmd += ["--unshare-all", "--unshare-user", "--disable-userns", "--cap-drop", "ALL"]
        for path in SYSTEM_DIRS:
            if os.path.islink(path):
                cmd += ["--symlink", os.readlink(path), path]
            elif os.path.isdir(path):
                cmd += ["--ro-bind", path, path]
        cmd += ["--perms", "0755", "--dir", "/etc"]  # bwrap's own would be 0700 under root
        for name in ETC_FILES:
            cmd += ["--ro-bind-try", f"/etc/{name}", f"/etc/{name}"]
        cmd += ["--proc", "/proc", "--dev", "/dev"]
        cmd += ["--perms", "1777", "--size", str(self.tmp_mb * 1024 * 1024), "--tmpfs", "/tmp"]
        made: set[str] = {"/", "/tmp", "/usr", "/etc", "/proc", "/dev"}
        for path in self.readonly_paths():
            cmd += _parents(path, made) + ["--ro-bind", path, path]
        for source, target in ((scratch, workdir), (ipc_dir, ipc_dir)):
            cmd += _parents(target, made) + ["--bind", source, target]
        cmd += ["--chdir", workdir]
        cmd += ["--clearenv"]
        for key, value in self.environment(home).items():
            cmd += ["--setenv", key, value]
        launch = [sys.executable, "-I", "-S", str(LAUNCHER)]
        launch += ["--memory-mb", str(self.memory_mb), "--cpu-seconds", str(self.cpu_seconds)]
        launch += ["--max-processes", str(self.max_processes)]
        launch += ["--max-file-mb", str(self.max_file_mb)]
        launch += ["--max-open-files", str(self.max_open_files)]
        if uid is not None:
            launch += ["--uid", str(uid), "--gid", str(uid)]
        return [*cmd, "--", *launch, "--", *kernel_cmd]


def _parents(path: str, made: set[str]) -> list[str]:
    """``--dir`` arguments creating the missing parents of a mount point, world-traversable.

    bubblewrap would create them itself, but mode 0700 when run as root, which would lock
    the unprivileged sandbox user out of, e.g., the Python installation under /root.
    """
    args: list[str] = []
    for parent in reversed(Path(path).parents):
        name = str(parent)
        if name not in made:
            made.add(name)
            args += ["--perms", "0755", "--dir", name]
    made.add(path)
    return args


class _UidPool:
    """Hands out one uid per running sandbox (used only when the grader runs as root).

    Round-robin over ``size`` uids: a sandbox just torn down after a fork bomb may still
    have dying processes counted against its uid, so the next sandbox gets a fresh one.
    """

    def __init__(self, size: int = 64) -> None:
        self._lock = threading.Lock()
        self._busy: set[int] = set()
        self._next = 0
        self.size = size

    def acquire(self, base: int) -> int:
        with self._lock:
            for step in range(self.size):
                uid = base + (self._next + step) % self.size
                if uid not in self._busy:
                    self._next = (uid - base + 1) % self.size
                    self._busy.add(uid)
                    return uid
            raise RuntimeError(f"more than {self.size} sandboxes at once")

    def release(self, uid: int) -> None:
        with self._lock:
            self._busy.discard(uid)


UIDS = _UidPool()


class SandboxedKernelClient(AsyncKernelClient):
    """Kernel client that refuses oversized messages from a (possibly hostile) kernel."""

    max_message_mb = Integer(
        32, help="Largest ZeroMQ message accepted from the kernel; bigger ones drop it."
    ).tag(config=True)

    def _create_connected_socket(self, channel: str, identity: bytes | None = None):
        url = self._make_url(channel)
        sock = self.context.socket(channel_socket_types[channel])
        sock.linger = 1000
        sock.setsockopt(zmq.MAXMSGSIZE, self.max_message_mb * 1024 * 1024)
        if identity:
            sock.identity = identity
        sock.connect(url)
        return sock


class SandboxedKernelManager(AsyncKernelManager):
    """Starts the kernel through bubblewrap, talking to it over Unix sockets.

    nbclient hands over the notebook's folder as ``cwd``; the kernel gets a private copy of
    that folder (minus notebooks) mounted at the same path, so relative paths behave as in
    plain ``nbgrader autograde`` while the real folder stays untouched.
    """

    sandbox = Instance(Sandbox)

    @default("sandbox")
    def _sandbox_default(self) -> Sandbox:
        return Sandbox(parent=self)

    @default("client_factory")
    def _client_factory_default(self) -> type:
        return SandboxedKernelClient

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        # short path: Unix socket names are limited to 107 bytes
        self.scratch_root = Path(tempfile.mkdtemp(prefix="grader-sbx-"))
        self.ipc_dir = self.scratch_root / "ipc"
        self.ipc_dir.mkdir()
        self.transport = "ipc"
        self.ip = str(self.ipc_dir / "k")
        self.connection_file = str(self.ipc_dir / "kernel.json")
        self.uid: int | None = None
        self.stderr_path = self.scratch_root / "kernel-stderr.log"

    @property
    def kernel_spec(self):
        spec = super().kernel_spec
        if spec is not None:
            # SIGINT to the process group would hit bubblewrap itself; ask the kernel instead
            spec.interrupt_mode = "message"
        return spec

    def _prepare_workdir(self, cwd: str | None) -> tuple[str, Path]:
        work = self.scratch_root / "work"
        if work.exists():  # a restart: start again from the pristine folder
            shutil.rmtree(work, ignore_errors=True)
        work.mkdir()
        inside = str(Path(cwd).resolve()) if cwd else str(work)
        if cwd and Path(cwd).is_dir():
            for item in Path(cwd).iterdir():
                # links are never followed here: the trusted process must not read for them
                if item.suffix == ".ipynb" or item.name.startswith(".") or item.is_symlink():
                    continue
                if item.is_dir():
                    shutil.copytree(item, work / item.name, symlinks=True)
                elif item.is_file():
                    shutil.copy2(item, work / item.name)
        return inside, work

    async def _async_launch_kernel(self, kernel_cmd: list[str], **kw) -> None:
        inside, work = self._prepare_workdir(kw.pop("cwd", None))
        if self.sandbox.privileged:
            if self.uid is None:
                self.uid = UIDS.acquire(self.sandbox.uid_base)
            for path in [self.ipc_dir, *self.ipc_dir.iterdir(), work, *work.rglob("*")]:
                os.lchown(path, self.uid, self.uid)
        argv = self.sandbox.command(
            kernel_cmd, workdir=inside, scratch=str(work), ipc_dir=str(self.ipc_dir), uid=self.uid
        )
        kw["cwd"] = str(self.scratch_root)
        kw["env"] = {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}
        kw["stdout"] = subprocess.DEVNULL
        kw["stderr"] = open(self.stderr_path, "ab")  # noqa: SIM115 (owned by the kernel process)
        try:
            await super()._async_launch_kernel(argv, **kw)
        finally:
            kw["stderr"].close()

    def stderr_tail(self, lines: int = 5) -> str:
        """Last lines bubblewrap or the kernel wrote to stderr (why a start failed)."""
        try:
            text = self.stderr_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.strip().splitlines()[-lines:])

    async def _async_cleanup_resources(self, restart: bool = False) -> None:
        await super()._async_cleanup_resources(restart=restart)
        if not restart:
            self._remove_scratch()

    cleanup_resources = _async_cleanup_resources  # AsyncKernelManager aliases the base one

    def _remove_scratch(self) -> None:
        shutil.rmtree(self.scratch_root, ignore_errors=True)
        if self.uid is not None:
            UIDS.release(self.uid)
            self.uid = None

    def __del__(self) -> None:  # a manager dropped without cleanup must not leak its folder
        with contextlib.suppress(Exception):
            self._remove_scratch()


def _probe_kernel_cmd() -> list[str]:
    return [sys.executable, "-c", "import socket; socket.socket().close()"]


@functools.cache
def check_sandbox(bwrap: str = "bwrap") -> str:
    """Return '' when bubblewrap sandboxes work here, else the reason they do not."""
    if not sys.platform.startswith("linux"):
        return f"the sandbox needs Linux (this is {sys.platform})"
    if shutil.which(bwrap) is None:
        return f"bubblewrap ({bwrap}) is not installed; on Debian: sudo apt-get install bubblewrap"
    sandbox = Sandbox(bwrap=bwrap)
    with tempfile.TemporaryDirectory(prefix="grader-probe-") as tmp:
        work, ipc = Path(tmp, "work"), Path(tmp, "ipc")
        work.mkdir()
        ipc.mkdir()
        uid = sandbox.uid_base if sandbox.privileged else None
        if uid is not None:
            os.chown(work, uid, uid)
        argv = sandbox.command(
            _probe_kernel_cmd(), workdir=str(work), scratch=str(work), ipc_dir=str(ipc), uid=uid
        )
        try:
            proc = subprocess.run(argv, capture_output=True, text=True, timeout=60)
        except (OSError, subprocess.TimeoutExpired) as err:
            return f"bubblewrap could not run: {err}"
    if proc.returncode != 0:
        detail = (proc.stderr or proc.stdout).strip().splitlines()
        return "bubblewrap failed: " + (detail[-1] if detail else f"exit {proc.returncode}")
    return ""
