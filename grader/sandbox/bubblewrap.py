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
* writable: its working directory, an empty size-capped tmpfs at the path nbgrader would
  run it in (only the files the assignment declares in ``Sandbox.extra_files`` are there,
  read-only: nothing else beside the notebook enters), a size-capped /tmp, and the ipc
  socket folder (locked once the kernel has made its sockets, when grading as root);
* never: the gradebook, ``solutions/``, ``.git``, other students' submissions, the
  instructor's home (only the Python installation inside it is mounted), the network.

The kernel starts isolated (:mod:`grader.sandbox.sandbox_kernel`): ``python -I``, IPython's
``ignore_cwd``, an empty private IPYTHONDIR, configuration read before it moves into its
working directory, and the output guard loaded from its absolute path.

Limits: per process, set by :mod:`grader.sandbox.sandbox_launch` inside it (address space, CPU
seconds, processes/threads, largest file, open files); per submission, a control group
(:mod:`grader.sandbox.cgroups`: total memory, processes, CPU share and accounting) where the machine
lets the grader make one, else only the per-process limits (``isolation`` says which). When
the grader runs as root the kernel also drops to an unprivileged uid of its own (one per
concurrent sandbox), so the process limit applies and sandboxes cannot signal each other.

With ``Sandbox.zygote`` (on by default where it can work, i.e. as root on Linux; off with
``c.Sandbox.zygote = False``, ``--no-zygote`` or ``$TUNELAB_SANDBOX_ZYGOTE=0``) bubblewrap
still builds every sandbox from the same command line, but the process inside only holds it
(``sandbox_launch --hold``), and the kernel is forked by :mod:`grader.sandbox.zygote`, which
has done the course's heavy imports once, into that sandbox's namespaces, control group,
limits and uid. The kernel's imports then cost nothing per submission.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import functools
import logging
import os
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path, PurePosixPath

import zmq
from jupyter_client.asynchronous import AsyncKernelClient
from jupyter_client.connect import channel_socket_types
from jupyter_client.manager import AsyncKernelManager
from traitlets import Bool, Dict, Enum, Float, Instance, Integer, List, Unicode, default
from traitlets.config import LoggingConfigurable

import tunelab
from grader.sandbox import cgroups

GRADER_DIR = Path(__file__).resolve().parents[1]
SANDBOX_DIR = Path(__file__).resolve().parent
TUNELAB_DIR = Path(tunelab.__file__).resolve().parent
LAUNCHER = SANDBOX_DIR / "sandbox_launch.py"
KERNEL_LAUNCHER = SANDBOX_DIR / "sandbox_kernel.py"
KERNEL_MODULES = ("ipykernel_launcher", "ipykernel")
MAX_IGNORED_LISTED = 200
#: Without a control group, a forked kernel needs this much address space beyond the zygote's
MIN_FORKED_HEADROOM_MB = 512
_log = logging.getLogger(__name__)

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
        2048,
        help="Memory of the whole submission in MB (cgroup), and address space of each of "
        "its processes (RLIMIT_AS, which gives a MemoryError for one oversized allocation).",
    ).tag(config=True)
    cpu_seconds = Integer(
        600, help="CPU time limit of each sandboxed process, in seconds (RLIMIT_CPU)."
    ).tag(config=True)
    max_processes = Integer(
        256,
        help="Processes plus threads of the whole submission (cgroup pids.max) and of the "
        "sandboxed user (RLIMIT_NPROC).",
    ).tag(config=True)
    cpus = Float(
        1.0,
        help="CPUs the whole submission may keep busy at once (cgroup CPU quota; 0: no cap). "
        "Each submission is also one fair share of the CPU, however many processes it runs.",
    ).tag(config=True)
    isolation = Enum(
        ["auto", cgroups.CGROUP2, cgroups.CGROUP1, cgroups.RLIMITS],
        "auto",
        help="Per-submission limits: 'auto' takes cgroup v2, else v1, else per-process "
        "rlimits only (logged once); naming a cgroup version fails when it is not usable.",
    ).tag(config=True)
    workdir_mb = Integer(
        256,
        help="Size of the kernel's working directory (a tmpfs: in memory, never on disk), MB.",
    ).tag(config=True)
    extra_files = List(
        Unicode(),
        help="Paths relative to the notebook's folder (files or folders) that the kernel may "
        "read, e.g. a data file the assignment ships; nothing else beside the notebook "
        "enters the sandbox.",
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
        help="Characters a cell may print before the kernel truncates it (kernel_guard.py).",
    ).tag(config=True)

    zygote = Bool(
        help="Fork each kernel from a zygote that has done the course's imports once "
        "(grader.sandbox.zygote), into the same bubblewrap sandbox; root only, else bubblewrap "
        "starts the kernel. Default: on, unless $TUNELAB_SANDBOX_ZYGOTE=0.",
    ).tag(config=True)
    zygote_preload = List(
        Unicode(),
        help="Modules the zygote imports (default: grader.sandbox.preload.DEFAULT_PRELOAD; "
        "autograde sets the assignment's, see grader.sandbox.preload).",
    ).tag(config=True)

    @default("zygote")
    def _zygote_default(self) -> bool:
        # on unless switched off: each kernel otherwise pays ~2.5 core-seconds of imports
        return os.environ.get("TUNELAB_SANDBOX_ZYGOTE", "1").strip() not in ("0", "")

    @default("zygote_preload")
    def _zygote_preload_default(self) -> list[str]:
        from grader.sandbox.preload import DEFAULT_PRELOAD

        return list(DEFAULT_PRELOAD)

    @property
    def uses_zygote(self) -> bool:
        """Kernels forked by the zygote: asked for, and root (namespaces are joined)."""
        return self.zygote and self.privileged and sys.platform.startswith("linux")

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
        ipc_dir: str,
        uid: int | None,
        files: list[tuple[str, str]] | tuple = (),
        home: str = "/tmp",
        hold: bool = False,
    ) -> list[str]:
        """The full bwrap argv that runs ``kernel_cmd`` in a fresh tmpfs at ``workdir``.

        ``files``: (host path, path relative to ``workdir``) pairs mounted read-only in it.
        The process starts in ``/``; :mod:`grader.sandbox.sandbox_kernel` moves into ``workdir``.
        With ``hold``, no kernel: the launcher holds the sandbox for one the zygote forks.
        """
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
        fonts = matplotlib_font_list()
        if fonts is not None and home.startswith("/tmp"):
            # matplotlib scans every system font on first import (~1 s per kernel) unless its
            # config folder holds the list: share one the grader built, read-only
            cmd += ["--perms", "1777", "--dir", f"{home}/.matplotlib"]
            cmd += ["--ro-bind", str(fonts), f"{home}/.matplotlib/{fonts.name}"]
        for path in self.readonly_paths():
            cmd += _parents(path, made) + ["--ro-bind", path, path]
        cmd += _parents(ipc_dir, made) + ["--bind", ipc_dir, ipc_dir]
        # the working directory: memory only, capped, empty but for the declared files
        cmd += _parents(workdir, made)
        cmd += ["--perms", "1777", "--size", str(self.workdir_mb * 1024 * 1024)]
        cmd += ["--tmpfs", workdir]
        for source, relative in files:
            target = str(PurePosixPath(workdir, relative))
            cmd += _parents(target, made) + ["--ro-bind", source, target]
        cmd += ["--chdir", "/"]
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
        if hold:
            return [*cmd, "--", *launch, "--hold"]
        return [*cmd, "--", *launch, "--", *kernel_cmd]

    def kernel_command(self, kernel_cmd: list[str], workdir: str) -> list[str]:
        """Rewrite ``python [-X..] -m ipykernel_launcher ARGS`` to the isolated start.

        ``python -I -B grader/sandbox/sandbox_kernel.py --workdir WORKDIR -- ARGS``: see
        :mod:`grader.sandbox.sandbox_kernel`. Any other kernel command is refused.
        """
        try:
            index = kernel_cmd.index("-m")
            module = kernel_cmd[index + 1]
        except (ValueError, IndexError):
            module, index = "", -1
        if module not in KERNEL_MODULES:
            raise SandboxUnavailable(
                f"the sandbox runs only ipykernel kernel specs (python -m ipykernel_launcher), "
                f"not {' '.join(kernel_cmd)}"
            )
        options = [a for a in kernel_cmd[1:index] if a.startswith("-X")]
        return [
            kernel_cmd[0],
            "-I",
            "-B",
            *options,
            str(KERNEL_LAUNCHER),
            "--workdir",
            workdir,
            "--",
            *kernel_cmd[index + 2 :],
        ]


_font_list_lock = threading.Lock()


def matplotlib_font_list() -> Path | None:
    """Matplotlib's font list (``fontlist-vNNN.json``), built once per grader process.

    Built by the grader's own Python from the system's fonts, the same files the sandbox sees
    at the same paths; None when it cannot be built (kernels then build their own). Under a
    lock: the first kernels of several submissions start at once (no preflight before them,
    or a Dask worker's threads), and a zygote is keyed on this path, so two lists built side
    by side would start two zygotes (2 CPU seconds and some 400 MB each).
    """
    with _font_list_lock:
        return _build_font_list()


@functools.cache
def _build_font_list() -> Path | None:
    folder = Path(tempfile.mkdtemp(prefix="grader-mpl-"))
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "MPLCONFIGDIR": str(folder)}
    try:
        proc = subprocess.run(
            [sys.executable, "-I", "-c", "import matplotlib.font_manager"],
            env=env,
            capture_output=True,
            timeout=300,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    found = sorted(folder.glob("fontlist-*.json"))
    if proc.returncode != 0 or not found:
        return None
    folder.chmod(0o755)
    found[0].chmod(0o644)
    return found[0]


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

    Each grader process owns its range: on first use it takes an exclusive lock on
    ``/run/tunelab-sandbox-uids/BASE.lock`` (``$TMPDIR`` where ``/run`` is not writable) for
    the first free block ``uid_base + k * size``, held until the process exits. Two graders
    started at once (two instructors, a re-run beside a running one) never share uids, so
    one cannot signal, or count against the process limit of, the other's sandboxes.
    """

    LOCK_DIRS = (
        "/run/tunelab-sandbox-uids",
        os.path.join(tempfile.gettempdir(), "tunelab-sandbox-uids"),
    )
    BLOCKS = 256

    def __init__(self, size: int = 64) -> None:
        self._lock = threading.Lock()
        self._busy: set[int] = set()
        self._next = 0
        self.size = size
        self._blocks: dict[int, int] = {}  # requested base -> this process's base
        self._held: list[int] = []  # lock file descriptors, open for the process's life

    def _claim(self, base: int) -> int:
        import fcntl

        for folder in self.LOCK_DIRS:
            try:
                os.makedirs(folder, mode=0o700, exist_ok=True)
            except OSError:
                continue
            for k in range(self.BLOCKS):
                start = base + k * self.size
                fd = os.open(os.path.join(folder, f"{start}.lock"), os.O_RDWR | os.O_CREAT, 0o600)
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except OSError:
                    os.close(fd)
                    continue
                os.set_inheritable(fd, False)
                self._held.append(fd)
                return start
            raise RuntimeError(f"every sandbox uid block from {base} is taken by another grader")
        return base  # nowhere to keep locks: the configured range as before

    def acquire(self, base: int) -> int:
        with self._lock:
            if base not in self._blocks:
                self._blocks[base] = self._claim(base)
            start = self._blocks[base]
            for step in range(self.size):
                uid = start + (self._next + step) % self.size
                if uid not in self._busy:
                    self._next = (uid - start + 1) % self.size
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

    nbclient hands over the notebook's folder as ``cwd``; the kernel works in an empty tmpfs
    mounted at that same path (so relative paths behave as in plain ``nbgrader autograde``)
    holding only the files ``Sandbox.extra_files`` declares; what else lay beside the
    notebook is listed in :attr:`ignored_files`. The real folder stays untouched.

    For the grader, after each cell: :meth:`kill_strays`, :meth:`cpu_seconds_used`,
    :meth:`memory_peak_bytes`, and :attr:`isolation` says what they can rely on.
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
        #: paths (relative to the notebook's folder) that were not let into the sandbox
        self.ignored_files: list[str] = []
        #: the running sandbox's control group, when :attr:`isolation` is a cgroup mode
        self.group: cgroups.SubmissionCgroup | None = None
        self._isolation: str | None = None
        self._launches = 0
        #: host pid of a kernel forked by the zygote (None: bubblewrap's pid 2 is the kernel)
        self.kernel_pid: int | None = None

    @property
    def kernel_spec(self):
        spec = super().kernel_spec
        if spec is not None:
            # SIGINT to the process group would hit bubblewrap itself; ask the kernel instead
            spec.interrupt_mode = "message"
        return spec

    # -- isolation -------------------------------------------------------------------------
    @property
    def isolation(self) -> str:
        """How the submission as a whole is limited: "cgroup2", "cgroup1" or "rlimits"."""
        if self._isolation is None:
            self._isolation = isolation_mode(self.sandbox.isolation, self.log)
        return self._isolation

    def cpu_seconds_used(self) -> float | None:
        """CPU seconds used by every process of the running sandbox (None: nothing started).

        With a cgroup: everything the group ever ran. Without: the live processes and what
        they have reaped (a process killed and reaped by bubblewrap's init still counts).
        """
        if self.group is not None:
            used = self.group.cpu_seconds()
            if used is not None:
                return used
        table = _proc_table()
        pids = self._sandbox_pids(table) & table.keys()
        if not pids:
            return None
        return sum(table[pid].ticks for pid in pids) / os.sysconf("SC_CLK_TCK")

    def memory_peak_bytes(self) -> int | None:
        """Highest memory use of the whole sandbox so far (cgroup modes only, else None)."""
        return self.group.memory_peak() if self.group is not None else None

    def kill_strays(self, keep_kernel: bool = True) -> int:
        """SIGKILL every process of the sandbox except the kernel; return how many.

        Found by control group, else by process tree and (as root) the sandbox's own uid:
        a process that called ``setsid()`` or double-forked is still found (it stays in the
        group, the uid and the pid namespace, whose init is bubblewrap's). With
        ``keep_kernel=False`` the kernel goes too, which ends the whole sandbox.
        """
        killed: set[int] = set()
        deadline = time.monotonic() + 3.0
        for _ in range(500):  # a process may fork while we look: look again until none is left
            alive = self.stray_pids(keep_kernel)
            targets = alive - killed
            if not targets:
                # killed ones may take a moment to die on a busy machine: wait for them, so the
                # next cell (and the next call) starts with none
                if not alive or time.monotonic() > deadline:
                    break
                time.sleep(0.01)
                continue
            if self.group is not None:  # frozen meanwhile, where the group has a freezer
                killed.update(targets)
                self.group.kill(keep=self.group.pids() - targets)
                continue
            for pid in targets:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, signal.SIGKILL)
                    killed.add(pid)
        return len(killed)

    def stray_pids(self, keep_kernel: bool = True) -> set[int]:
        """Live processes of the sandbox other than bubblewrap's and (by default) the kernel."""
        table = _proc_table() if self.group is None else None
        pids = self._sandbox_pids(table)
        targets = pids - self._keep(pids, keep_kernel)
        if table is not None:  # zombies are dead already; their parent reaps them
            targets = {pid for pid in targets if pid in table and table[pid].state != b"Z"}
        else:  # a control group lists a zombie until its parent reaps it (a kernel that died
            # under the zygote is reaped by its waiting parent a moment later)
            targets = {pid for pid in targets if _state(pid) not in (b"Z", None)}
        return targets

    def _root_pid(self) -> int | None:
        """bubblewrap's own process (the zygote's kernel process object wraps it)."""
        process = getattr(self.provisioner, "process", None) if self.provisioner else None
        process = getattr(process, "sandbox", process)
        return getattr(process, "pid", None)

    def _sandbox_pids(self, table: dict[int, _Proc] | None = None) -> set[int]:
        if self.group is not None:
            return self.group.pids()
        table = _proc_table() if table is None else table
        root = self._root_pid()
        found: set[int] = set()
        if root is not None and root in table:
            children: dict[int, list[int]] = {}
            for pid, info in table.items():
                children.setdefault(info.ppid, []).append(pid)
            todo = [root]
            while todo:
                pid = todo.pop()
                found.add(pid)
                todo.extend(children.get(pid, ()))
        if self.uid is not None:
            found.update(pid for pid, info in table.items() if info.uid == self.uid)
        return found

    def _keep(self, pids: set[int], keep_kernel: bool) -> set[int]:
        """bubblewrap's processes, and the kernel: pid 2 of the sandbox's pid namespace."""
        keep = {self._root_pid()} - {None}
        depth = _nspid_depth(os.getpid()) + 1
        wanted = (1, 2) if keep_kernel else (1,)
        if self.kernel_pid is not None:  # pid 2 is the launcher holding the sandbox
            wanted = (1, 2)
            if keep_kernel:
                keep.add(self.kernel_pid)
        for pid in pids:
            nspid = _nspids(pid)
            if len(nspid) == depth and nspid[-1] in wanted:
                keep.add(pid)
        return keep  # type: ignore[return-value]

    # -- start -----------------------------------------------------------------------------
    def _prepare_workdir(self, cwd: str | None) -> tuple[str, list[tuple[str, str]]]:
        """(the working directory's path, [(copy of a declared file, relative path)])."""
        copies = self.scratch_root / "files"
        if copies.exists():  # a restart: start again from the submission
            shutil.rmtree(copies, ignore_errors=True)
        copies.mkdir()
        self.ignored_files = []
        if not cwd or not Path(cwd).is_dir():
            return str(self.scratch_root / "work"), []
        folder = Path(cwd).resolve()
        files: list[tuple[str, str]] = []
        declared: list[PurePosixPath] = []
        for name in self.sandbox.extra_files:
            relative = _relative(name)
            source = _without_links(folder, relative) if relative is not None else None
            if relative is None or source is None:
                self.log.info("sandbox: declared file %r is not in the submission", name)
                continue
            target = copies / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            # the trusted process copies; links are copied as links, never followed
            if source.is_dir():
                shutil.copytree(source, target, symlinks=True)
            else:
                shutil.copy2(source, target, follow_symlinks=False)
            _make_readable(target)
            files.append((str(target), str(relative)))
            declared.append(relative)
        self.ignored_files = _left_out(folder, declared)
        if self.ignored_files:
            self.log.info(
                "sandbox: not let in beside the notebook: %s", ", ".join(self.ignored_files)
            )
        return str(folder), files

    async def _async_launch_kernel(self, kernel_cmd: list[str], **kw) -> None:
        inside, files = self._prepare_workdir(kw.pop("cwd", None))
        kernel_cmd = self.sandbox.kernel_command(kernel_cmd, inside)
        mode = self.isolation
        self._drop_group()
        if self.sandbox.privileged:
            if self.uid is None:
                self.uid = UIDS.acquire(self.sandbox.uid_base)
            _set_ipc_dir(self.ipc_dir, locked=False)
        forked = self.sandbox.uses_zygote and await self._zygote_fits(kernel_cmd, mode)
        argv = self.sandbox.command(
            kernel_cmd,
            workdir=inside,
            ipc_dir=str(self.ipc_dir),
            uid=self.uid,
            files=files,
            hold=forked,
        )
        self.kernel_pid = None
        if mode != cgroups.RLIMITS:
            self._launches += 1
            try:
                self.group = cgroups.new_group(
                    f"{self.scratch_root.name}-{self._launches}",
                    memory_mb=self.sandbox.memory_mb,
                    max_pids=self.sandbox.max_processes,
                    cpus=self.sandbox.cpus,
                    mode=mode,
                )
                self.group.open_for_enter()
            except OSError as err:
                self.log.error("sandbox: no control group (%s); per-process limits only", err)
                self._drop_group()
                self._isolation = cgroups.RLIMITS
            else:
                # the child joins the group between fork and exec: bwrap and all it starts
                kw["preexec_fn"] = self.group.enter
        kw["cwd"] = str(self.scratch_root)
        kw["env"] = {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}
        kw["stdout"] = subprocess.PIPE if forked else subprocess.DEVNULL
        kw["stderr"] = open(self.stderr_path, "ab")  # noqa: SIM115 (owned by the kernel process)
        try:
            await super()._async_launch_kernel(argv, **kw)
            if forked:
                await self._fork_kernel(kernel_cmd, argv, kw["stderr"].fileno())
        finally:
            kw["stderr"].close()
            if self.group is not None:
                self.group.close()
        if self.sandbox.privileged:
            await self._lock_ipc_dir_when_bound()

    def _zygote(self, kernel_cmd: list[str]):
        """This process's zygote for the kernel command and the sandbox's settings."""
        from grader.sandbox.zygote import zygote_for

        env = self.sandbox.environment("/tmp")
        shared = {k: v for k, v in env.items() if k not in self.sandbox.env}
        start = kernel_cmd.index(str(KERNEL_LAUNCHER))
        fonts = matplotlib_font_list()
        return zygote_for(
            tuple(a for a in kernel_cmd[1:start] if a.startswith("-X")),
            shared,
            str(fonts) if fonts else None,
            tuple(self.sandbox.zygote_preload),
            tuple(self.sandbox.readonly_paths()),
        )

    async def _zygote_fits(self, kernel_cmd: list[str], mode: str) -> bool:
        """Start the zygote if need be; False where a forked kernel would not fit: without
        a control group RLIMIT_AS is the memory limit, and the preloaded modules take part.
        False too where the zygote could not start: it only saves time, and bubblewrap
        starts the kernel in the same sandbox (an assignment's master may import a module
        that starts a thread, which a zygote must not have)."""
        from grader.sandbox.zygote import ZygoteError

        zygote = self._zygote(kernel_cmd)
        starts = zygote.starts
        try:
            await asyncio.get_running_loop().run_in_executor(None, zygote.ready)
        except ZygoteError as err:
            self.log.warning("sandbox: %s; bubblewrap starts this kernel", err)
            return False
        if zygote.starts != starts:
            self.log.info(
                "sandbox: zygote started, its imports took %.2f CPU seconds and %d MB of "
                "address space%s",
                zygote.import_cpu or 0.0,
                zygote.preloaded_mb,
                f" (failed: {'; '.join(zygote.failed_imports)})" if zygote.failed_imports else "",
            )
        if mode != cgroups.RLIMITS:
            return True
        fits = self.sandbox.memory_mb >= zygote.preloaded_mb + MIN_FORKED_HEADROOM_MB
        if not fits:
            self.log.info("sandbox: --memory too small for a forked kernel; bubblewrap starts it")
        return fits

    async def _fork_kernel(
        self, kernel_cmd: list[str], sandbox_argv: list[str], stderr_fd: int, timeout: float = 120.0
    ) -> None:
        """Have the zygote fork the kernel into the sandbox bubblewrap holds (see
        :mod:`grader.sandbox.zygote`); the provisioner then follows that kernel."""
        from grader.sandbox.zygote import KernelProcess, ZygoteError

        assert self.provisioner is not None
        sandbox_process = self.provisioner.process
        loop = asyncio.get_running_loop()
        try:
            line = await asyncio.wait_for(
                loop.run_in_executor(None, sandbox_process.stdout.readline), timeout
            )
        except TimeoutError:
            line = b""
        sandbox_process.stdout.close()
        holder = _holder_pid(sandbox_process.pid) if line.strip() == b"ready" else None
        if holder is None:
            sandbox_process.kill()
            raise SandboxUnavailable(f"the sandbox did not start: {self.stderr_tail()}")
        env = {**self.sandbox.environment("/tmp"), "PWD": "/"}  # as bubblewrap's --chdir /
        start = kernel_cmd.index(str(KERNEL_LAUNCHER))
        zygote = self._zygote(kernel_cmd)
        spawn = functools.partial(
            zygote.spawn,
            holder=holder,
            argv=kernel_cmd[start + 1 :],
            env=env,
            limits=_launcher_limits(sandbox_argv),
            stderr_fd=stderr_fd,
            group_fds=list(self.group._procs_fds) if self.group is not None else [],
            grow_address_space=self.group is not None,
        )
        try:
            pid, pidfd = await loop.run_in_executor(None, spawn)
        except ZygoteError as err:
            sandbox_process.kill()
            raise SandboxUnavailable(str(err)) from err
        self.kernel_pid = pid
        self.provisioner.process = KernelProcess(sandbox_process, pid, pidfd)
        self.provisioner.pid = pid
        self.provisioner.pgid = None

    async def _lock_ipc_dir_when_bound(self, timeout: float = 120.0) -> None:
        """Once the kernel has made its five sockets, its socket folder (on the grading
        machine's disk) becomes read-only to it: cells run only after that."""
        ports = (self.shell_port, self.iopub_port, self.stdin_port, self.control_port)
        sockets = [Path(f"{self.ip}-{port}") for port in (*ports, self.hb_port)]
        deadline = time.monotonic() + timeout
        while not all(path.exists() for path in sockets):
            process = getattr(self.provisioner, "process", None)
            if time.monotonic() > deadline or process is None or process.poll() is not None:
                return  # the start fails on its own; the folder is removed with the scratch
            await asyncio.sleep(0.005)
        _set_ipc_dir(self.ipc_dir, locked=True)

    def stderr_tail(self, lines: int = 5) -> str:
        """Last lines bubblewrap or the kernel wrote to stderr (why a start failed)."""
        try:
            text = self.stderr_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.strip().splitlines()[-lines:])

    # -- end -------------------------------------------------------------------------------
    async def _async_cleanup_resources(self, restart: bool = False) -> None:
        await super()._async_cleanup_resources(restart=restart)
        if not restart:
            self._remove_scratch()

    cleanup_resources = _async_cleanup_resources  # AsyncKernelManager aliases the base one

    def _drop_group(self) -> None:
        """Kill whatever is left of the previous sandbox and remove its control group."""
        if self.group is not None:
            self.group.remove()
            self.group = None
        elif self.uid is not None:  # no group: the uid and process tree find what is left
            self.kill_strays(keep_kernel=False)

    def _remove_scratch(self) -> None:
        self._drop_group()
        shutil.rmtree(self.scratch_root, ignore_errors=True)
        if self.uid is not None:
            UIDS.release(self.uid)
            self.uid = None

    def __del__(self) -> None:  # a manager dropped without cleanup must not leak its folder
        with contextlib.suppress(Exception):
            self._remove_scratch()


_warned_fallback = threading.Event()


def isolation_mode(preferred: str = "auto", log: logging.Logger | None = None) -> str:
    """The per-submission isolation to use here ("cgroup2", "cgroup1" or "rlimits").

    ``auto`` falls back to per-process rlimits, logging once what that cannot guarantee;
    a cgroup version asked for by name must work, else :class:`SandboxUnavailable`.
    """
    mode, why = cgroups.detect(preferred)
    if preferred in (cgroups.CGROUP1, cgroups.CGROUP2) and mode != preferred:
        raise SandboxUnavailable(f"Sandbox.isolation = {preferred} does not work here: {why}")
    if mode == cgroups.RLIMITS and preferred == "auto" and not _warned_fallback.is_set():
        _warned_fallback.set()
        (log or _log).warning(
            "sandbox: no per-submission control group (%s). Limits are per process only: a "
            "submission's processes together may use more memory than --memory and more CPU "
            "than one share, and its CPU time is summed from the processes still alive. "
            "Delegate a cgroup (v2: a writable group with memory and pids, e.g. systemd-run "
            "--scope -p Delegate=yes) or run as root with cgroup v1 to close this.",
            why,
        )
    return mode


class _Proc:
    __slots__ = ("ppid", "state", "ticks", "uid")

    def __init__(self, ppid: int, uid: int, ticks: int, state: bytes) -> None:
        self.ppid, self.uid, self.ticks, self.state = ppid, uid, ticks, state


def _proc_table() -> dict[int, _Proc]:
    """Every process: parent, real uid, CPU ticks (own and reaped children's)."""
    table: dict[int, _Proc] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat", "rb") as handle:
                data = handle.read()
            uid = os.stat(f"/proc/{entry.name}").st_uid
        except OSError:
            continue
        fields = data[data.rindex(b")") + 2 :].split()
        ticks = sum(int(x) for x in fields[11:15])  # utime, stime, cutime, cstime
        table[int(entry.name)] = _Proc(int(fields[1]), uid, ticks, fields[0])
    return table


def _state(pid: int) -> bytes | None:
    """A process's state letter (R, S, Z...), None when it is gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            data = handle.read()
    except OSError:
        return None
    return data[data.rindex(b")") + 2 :].split()[0]


def _nspids(pid: int) -> list[int]:
    try:
        with open(f"/proc/{pid}/status") as handle:
            for line in handle:
                if line.startswith("NSpid:"):
                    return [int(x) for x in line.split()[1:]]
    except (OSError, ValueError):
        pass
    return []


@functools.cache
def _nspid_depth(pid: int) -> int:
    return len(_nspids(pid)) or 1


def _launcher_limits(argv: list[str]) -> dict:
    """The limits bubblewrap's command line gives ``sandbox_launch``, for the forked kernel:
    one command line decides them for both processes of the sandbox."""
    options = argv[argv.index(str(LAUNCHER)) + 1 :]

    def value(name: str) -> int | None:
        return int(options[options.index(name) + 1]) if name in options else None

    names = ("memory_mb", "cpu_seconds", "max_processes", "max_file_mb", "max_open_files")
    limits = {name: value("--" + name.replace("_", "-")) for name in (*names, "uid", "gid")}
    if any(limits[name] is None for name in names):
        raise SandboxUnavailable(f"the sandbox's launcher lacks a limit: {options}")
    return limits


def _holder_pid(root: int) -> int | None:
    """Host pid of bubblewrap's sandboxed process: pid 2 of its pid namespace."""
    depth = _nspid_depth(os.getpid()) + 1
    todo = [root]
    while todo:
        pid = todo.pop()
        nspid = _nspids(pid)
        if len(nspid) == depth and nspid[-1] == 2:
            return pid
        try:
            with open(f"/proc/{pid}/task/{pid}/children") as handle:
                todo.extend(int(x) for x in handle.read().split())
        except (OSError, ValueError):
            continue
    return None


def _relative(name: str) -> PurePosixPath | None:
    path = PurePosixPath(name)
    if path.is_absolute() or not path.parts or ".." in path.parts:
        return None
    return path


def _without_links(folder: Path, relative: PurePosixPath) -> Path | None:
    """``folder/relative`` when no part of it is a link and it is a file or folder."""
    current = folder
    for part in relative.parts:
        current = current / part
        try:
            mode = current.lstat().st_mode
        except OSError:
            return None
        if stat.S_ISLNK(mode):
            return None
    return current if stat.S_ISREG(mode) or stat.S_ISDIR(mode) else None


def _make_readable(path: Path) -> None:
    for item in [path, *path.rglob("*")] if path.is_dir() else [path]:
        if item.is_symlink():
            continue
        mode = item.stat().st_mode
        extra = 0o555 if item.is_dir() else 0o444 | (0o111 if mode & 0o100 else 0)
        os.chmod(item, (mode & 0o755) | extra)


def _left_out(folder: Path, declared: list[PurePosixPath]) -> list[str]:
    """What lies in ``folder`` that does not enter the sandbox (notebooks at its top aside)."""
    out: list[str] = []
    for root, dirs, names in os.walk(folder):
        base = PurePosixPath(os.path.relpath(root, folder))
        entries = [*names, *(d for d in dirs if os.path.islink(os.path.join(root, d)))]
        dirs[:] = sorted(d for d in dirs if base / d not in declared)  # links: not walked
        for name in sorted(entries):
            relative = base / name
            if relative.parent == PurePosixPath(".") and name.endswith(".ipynb"):
                continue
            if any(relative == d or d in relative.parents for d in declared):
                continue
            out.append(relative.as_posix())
            if len(out) > MAX_IGNORED_LISTED:
                return [*out[:MAX_IGNORED_LISTED], "..."]
    return out


def _set_ipc_dir(ipc_dir: Path, locked: bool) -> None:
    """Root-owned; open to the sandbox uid (sticky) while its kernel makes its sockets."""
    os.chown(ipc_dir, 0, 0)
    os.chmod(ipc_dir, 0o755 if locked else 0o1777)
    for item in ipc_dir.iterdir():
        if not item.is_socket() and not item.is_symlink():
            os.chown(item, 0, 0)
            os.chmod(item, 0o644)


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
        ipc = Path(tmp, "ipc")
        ipc.mkdir()
        uid = sandbox.uid_base if sandbox.privileged else None
        argv = sandbox.command(
            _probe_kernel_cmd(), workdir=str(Path(tmp, "work")), ipc_dir=str(ipc), uid=uid
        )
        try:
            proc = subprocess.run(argv, capture_output=True, text=True, timeout=60)
        except (OSError, subprocess.TimeoutExpired) as err:
            return f"bubblewrap could not run: {err}"
    if proc.returncode != 0:
        detail = (proc.stderr or proc.stdout).strip().splitlines()
        return "bubblewrap failed: " + (detail[-1] if detail else f"exit {proc.returncode}")
    return ""
