"""A fork server for sandboxed kernels: the heavy imports once per grader, not per submission.

Why: a submission's kernel spends most of its ~5 core-seconds importing IPython, pandas,
seaborn, matplotlib and google.generativeai before any student line runs. The zygote is a
process of the grader's that has imported them once and never runs student code; each
kernel is a fork of it that enters a sandbox first.

How a kernel starts (grading as root only; elsewhere the kernel is started by bubblewrap as
before):

1. The grader starts the submission's sandbox exactly as for an ordinary kernel (the same
   bubblewrap command line: mounts, fresh tmpfs working directory and /tmp, private network,
   pid, ipc and uts namespaces, its control group, its own uid), but the process inside is
   ``sandbox_launch.py --hold``: it sets the limits, drops to the uid, says ``ready`` and
   waits. So the file system a kernel sees is bubblewrap's, not a second implementation.
2. The zygote forks child A, which joins the sandbox's pid namespace and forks B, the kernel
   (A stays outside, as its waiting parent; it never runs anything else).
3. B, before any code that is not the grader's: joins the submission's control group, then
   the sandbox's cgroup, ipc, uts, network and mount namespaces, changes root to the
   sandbox's root, keeps only the sandbox's stderr log and /dev/null as files, clears its
   capability bounding set (as bubblewrap's ``--cap-drop ALL``), sets the same limits and
   uid as ``sandbox_launch`` (the same function), ``no_new_privs``, replaces the whole
   environment with the sandbox's, reseeds the random generators, and only then starts
   IPython through :mod:`grader.sandbox.sandbox_kernel`, like a bubblewrap-started kernel.

Nothing of one submission reaches the next: each kernel is a fresh fork of a zygote that has
run no student code, so whatever a kernel imports, patches or writes dies with it; the
working directory and /tmp are the sandbox's fresh tmpfs. The request (the student's id, the
paths) is received into one buffer that the zygote overwrites after each fork, so a later
kernel cannot find an earlier one's in memory. What forked kernels do share, and plain ones
do not: the hash seed (``PYTHONHASHSEED``) of the zygote, and the addresses of the modules
it loaded (one ASLR layout per zygote).
"""

from __future__ import annotations

import array
import atexit
import contextlib
import ctypes
import gc
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

HERE = Path(__file__).resolve().parent
INLINE_BACKEND = "module://matplotlib_inline.backend_inline"
BUFFER = 1 << 20  # largest request (the environment and arguments of one kernel)
MAX_FDS = 16

CLONE_NEWNS = 0x00020000
CLONE_NEWCGROUP = 0x02000000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000
MS_NOSUID, MS_NODEV, MS_BIND, MS_REC, MS_PRIVATE = 2, 4, 4096, 16384, 1 << 18
PR_SET_PDEATHSIG, PR_CAPBSET_DROP, PR_SET_NO_NEW_PRIVS = 1, 24, 38
CAP_SETGID, CAP_SETUID = 6, 7
#: Joined by the kernel in this order; ``mnt`` last, since it changes what paths mean.
NAMESPACES = (("cgroup", CLONE_NEWCGROUP), ("ipc", CLONE_NEWIPC), ("uts", CLONE_NEWUTS))
NAMESPACES += (("net", CLONE_NEWNET), ("mnt", CLONE_NEWNS))


class ZygoteError(RuntimeError):
    """The zygote could not start or could not fork a kernel; the message says why."""


# -- system calls Python 3.11 lacks ---------------------------------------------------------
_libc = ctypes.CDLL(None, use_errno=True)


def _check(result: int, what: str) -> int:
    if result < 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")
    return result


def _setns(fd: int, nstype: int, what: str) -> None:
    _check(_libc.setns(fd, nstype), f"setns {what}")


def _prctl(option: int, arg: int) -> None:
    _check(_libc.prctl(option, ctypes.c_ulong(arg), 0, 0, 0), f"prctl {option}")


def _mount(source: str, target: str, fstype: str | None, flags: int, data: str | None) -> None:
    def enc(text: str | None) -> bytes | None:
        return None if text is None else text.encode()

    result = _libc.mount(enc(source), enc(target), enc(fstype), ctypes.c_ulong(flags), enc(data))
    _check(result, f"mount {target}")


def _pidfd_open(pid: int) -> int:
    return _check(_libc.syscall(434, pid, 0), f"pidfd_open {pid}")  # SYS_pidfd_open


def _drop_bounding_set(keep: tuple[int, ...]) -> None:
    """Clear the capability bounding set but ``keep`` (bubblewrap's ``--cap-drop ALL``)."""
    last = int(Path("/proc/sys/kernel/cap_last_cap").read_text())
    for cap in range(last + 1):
        if cap not in keep:
            _prctl(PR_CAPBSET_DROP, cap)


# -- the zygote process ----------------------------------------------------------------------
def _serve(control: int, preload: list[str], fontlist: str | None, keep: list[str]) -> None:
    """Import ``preload``, say ready, then fork one kernel per request until EOF."""
    # No parent-death signal here: it follows the grader *thread* that started the zygote
    # (an event loop's executor thread, which may end while the grader goes on). The zygote
    # ends when the grader's end of the socket closes, which the kernel does for a dead one.
    sock = socket.socket(fileno=control)
    started = time.process_time()
    fonts = Path(fontlist).read_bytes() if fontlist else None
    # A private /tmp like the sandbox's, so what imports cache under $HOME (/tmp) names the
    # paths a kernel will see (matplotlib's config folder and its font list); what the
    # sandbox mounts from the host's /tmp (a course checked out there) is bound back.
    _check(_libc.unshare(CLONE_NEWNS), "unshare mount namespace")
    _mount("none", "/", None, MS_REC | MS_PRIVATE, None)
    old_tmp = os.open("/tmp", os.O_PATH | os.O_DIRECTORY)
    _mount("tmpfs", "/tmp", "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777,size=16m")
    os.chdir("/")
    for path in keep:
        relative = os.path.relpath(path, "/tmp")
        if relative.startswith("..") or not os.path.isdir(f"/proc/self/fd/{old_tmp}/{relative}"):
            continue
        os.makedirs(path, mode=0o755, exist_ok=True)
        _mount(f"/proc/self/fd/{old_tmp}/{relative}", path, None, MS_BIND | MS_REC, None)
    os.close(old_tmp)
    mpl = Path(os.environ.get("MPLCONFIGDIR", "/tmp/.matplotlib"))
    if fonts is not None and str(mpl).startswith("/tmp/"):
        mpl.mkdir(mode=0o1777, parents=True, exist_ok=True)
        (mpl / Path(fontlist or "").name).write_bytes(fonts)
    sys.path[:] = [p for p in sys.path if p and os.path.isabs(p)]
    before = _address_space_mb()
    environment = set(os.environ)
    failed = _import_all(preload)
    # what the imports put in the environment (debugpy: PYDEVD_USE_FRAME_EVAL), set again
    # in each kernel's own environment, as a kernel that imported them itself would have it
    _SET_BY_IMPORTS.update({k: v for k, v in os.environ.items() if k not in environment})
    for name in ("sandbox_kernel", "sandbox_launch"):
        _load(name)
    # Address space the preloaded modules take: not the student's to pay from --memory (a
    # plain kernel that imports nothing has it free), so where a control group caps the
    # submission's real memory, a forked kernel's RLIMIT_AS grows by it. Without one,
    # RLIMIT_AS is the memory limit and stays exactly --memory.
    preloaded_mb = max(0, _address_space_mb() - before)
    # The preloaded objects go to the collector's permanent generation: a kernel's first
    # full collection would otherwise walk (and so copy, page by page) the zygote's whole
    # heap. Measured: the SQL notebook's course cells 1.83 -> 1.70 CPU s per kernel.
    gc.collect()
    gc.freeze()
    threads = len(os.listdir("/proc/self/task"))
    if threads != 1:  # fork copies one thread: a lock another one held would stay locked
        _send(sock, {"error": f"the zygote has {threads} threads after its imports"})
        os._exit(1)
    sys.stdout.flush()
    sys.stderr.flush()
    cpu = time.process_time() - started
    _send(sock, {"ready": True, "cpu": cpu, "failed": failed, "preloaded_mb": preloaded_mb})
    buffer = bytearray(BUFFER)
    view = memoryview(buffer)
    anc = socket.CMSG_SPACE(MAX_FDS * array.array("i").itemsize)
    while True:
        try:
            size, ancdata, _flags, _addr = sock.recvmsg_into([view], anc)
        except InterruptedError:
            continue
        if size == 0:
            os._exit(0)
        fds = _fds(ancdata)
        pid = os.fork()
        if pid == 0:
            _child_a(sock, bytes(view[:size]), fds, preloaded_mb)  # never returns
        for fd in fds:
            os.close(fd)
        buffer[:size] = bytes(size)  # nothing of this request stays for the next fork
        while True:  # reap the A children of kernels that have ended
            try:
                done, _status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                break
            if done == 0:
                break


def _import_all(names: list[str]) -> list[str]:
    """Import each module; what failed, and why (a kernel imports it again and reports).
    A name marked optional (``?a.b``, :data:`grader.sandbox.preload.OPTIONAL`) that is no
    module of ``a`` is skipped without a word."""
    failed: list[str] = []
    for name in names:
        optional, name = name.startswith("?"), name.removeprefix("?")
        try:
            __import__(name)
        except ModuleNotFoundError as err:
            if not (optional and err.name == name):
                failed.append(f"{name}: {type(err).__name__}: {err}")
        except Exception as err:  # noqa: BLE001
            failed.append(f"{name}: {type(err).__name__}: {err}")
    return failed


#: Environment variables the preloaded modules set when imported (in the zygote only).
_SET_BY_IMPORTS: dict[str, str] = {}


def _load(name: str):
    """A grader module from its absolute path (as the kernel would load it), cached."""
    from importlib.util import module_from_spec, spec_from_file_location

    key = f"_grader_{name}"
    if key in sys.modules:
        return sys.modules[key]
    spec = spec_from_file_location(key, HERE / f"{name}.py")
    if spec is None or spec.loader is None:
        raise ZygoteError(f"cannot load {HERE / name}.py")
    module = module_from_spec(spec)
    sys.modules[key] = module
    spec.loader.exec_module(module)
    return module


def _fds(ancdata) -> list[int]:
    fds = array.array("i")
    for level, kind, data in ancdata:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            fds.frombytes(data[: len(data) - (len(data) % fds.itemsize)])
    return list(fds)


def _send(sock: socket.socket, message: dict, fds: list[int] | None = None) -> None:
    data = json.dumps(message).encode()
    if fds:
        sock.sendmsg([data], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", fds))])
    else:
        sock.sendall(data)


def _address_space_mb() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmSize:"):
            return -(-int(line.split()[1]) // 1024)
    return 0


def _child_a(sock: socket.socket, raw: bytes, fds: list[int], preloaded_mb: int) -> None:
    """Join the sandbox's pid namespace, fork the kernel, report it, wait for it."""
    code = 1
    try:
        _prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
        request = json.loads(raw)
        if request.get("grow_address_space"):  # the control group caps real memory
            request["limits"]["memory_mb"] += preloaded_mb
        holder = int(request["holder"])
        pidns = os.open(f"/proc/{holder}/ns/pid", os.O_RDONLY | os.O_CLOEXEC)
        _setns(pidns, CLONE_NEWPID, "pid")
        os.close(pidns)
        kernel = os.fork()
        if kernel == 0:
            sock.close()
            _kernel(request, fds)  # never returns
        for fd in fds:
            os.close(fd)
        pidfd = _pidfd_open(kernel)
        _send(sock, {"pid": kernel}, [pidfd])
        os.close(pidfd)
        sock.close()
        _done, status = os.waitpid(kernel, 0)
        code = os.waitstatus_to_exitcode(status) & 0xFF
    except BaseException as err:  # noqa: BLE001 (reported to the grader, then exit)
        with contextlib.suppress(Exception):
            _send(sock, {"error": f"{type(err).__name__}: {err}"})
    os._exit(code)


def _kernel(request: dict, fds: list[int]) -> None:
    """Inside the sandbox, before any code but the grader's; then IPython."""
    try:
        stderr, *groups = fds
        for fd in groups:  # the control group first: the cgroup namespace hides the others
            os.write(fd, b"0")
            os.close(fd)
        holder = int(request["holder"])
        root = os.open(f"/proc/{holder}/root", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        spaces = [
            (os.open(f"/proc/{holder}/ns/{name}", os.O_RDONLY | os.O_CLOEXEC), kind, name)
            for name, kind in NAMESPACES
            if os.path.exists(f"/proc/{holder}/ns/{name}")
        ]
        for fd, kind, name in spaces:
            if os.readlink(f"/proc/{holder}/ns/{name}") != os.readlink(f"/proc/self/ns/{name}"):
                _setns(fd, kind, name)
            os.close(fd)
        os.fchdir(root)
        os.chroot(".")
        os.chdir("/")
        os.close(root)
        null = os.open("/dev/null", os.O_RDWR)
        os.dup2(null, 0)
        os.dup2(null, 1)
        os.dup2(stderr, 2)
        os.closerange(3, 1 << 16)
        os.setsid()
        limits = request["limits"]
        _drop_bounding_set((CAP_SETGID, CAP_SETUID) if limits.get("uid") is not None else ())
        _load("sandbox_launch").confine(**limits)
        _prctl(PR_SET_PDEATHSIG, signal.SIGKILL)  # after the uid switch, which clears it
        _prctl(PR_SET_NO_NEW_PRIVS, 1)
        os.environ.clear()
        os.environ.update(request["env"])
        for key, value in _SET_BY_IMPORTS.items():
            os.environ.setdefault(key, value)
        _fresh_state()
    except BaseException as err:  # noqa: BLE001 (into the sandbox's stderr log)
        with contextlib.suppress(Exception):
            os.write(2, f"zygote: the kernel could not enter its sandbox: {err}\n".encode())
        os._exit(1)
    code = 0
    try:
        if not (sys.flags.isolated and sys.flags.dont_write_bytecode):
            raise SystemExit("zygote: the kernel must run as python -I -B")
        # the command this kernel stands for: the zygote's interpreter flags, then the start
        # bubblewrap's kernel would have run (sys.flags above are the real ones)
        launcher = str(HERE / "sandbox_kernel.py")
        sys.orig_argv = [sys.executable, "-I", "-B", *request["options"], launcher]
        sys.orig_argv += request["argv"]
        sys.argv = [launcher, *request["argv"]]
        _load("sandbox_kernel").main(request["argv"])
    except SystemExit as done:
        code = done.code if isinstance(done.code, int) else 1
    except BaseException:  # noqa: BLE001
        import traceback

        traceback.print_exc()
        code = 1
    with contextlib.suppress(Exception):
        sys.stdout.flush()
        sys.stderr.flush()
    os._exit(code)


def _fresh_state() -> None:
    """What the imports computed from the zygote's process and must not be shared."""
    import random
    import tempfile

    random.seed()  # also done at fork by the random module itself; said here for the reader
    tempfile.tempdir = None
    numpy = sys.modules.get("numpy")
    if numpy is not None:
        numpy.random.seed()  # the legacy global generator, seeded once at numpy's import


# -- the grader's side -----------------------------------------------------------------------
class KernelProcess:
    """The forked kernel as jupyter_client's provisioner sees a process (``Popen``-like).

    ``sandbox`` is bubblewrap's process (its ``--hold`` sandbox): the kernel is alive while
    both are; killing it kills both. The kernel is not the grader's child, so it is followed
    through a pidfd (no pid reuse) and its exit code comes from its parent in the zygote.
    """

    def __init__(self, sandbox: subprocess.Popen, pid: int, pidfd: int) -> None:
        self.sandbox = sandbox
        self.pid = pid
        self.pidfd = pidfd
        self.returncode: int | None = None
        self.stdin = self.stdout = self.stderr = None

    def _kernel_done(self) -> bool:
        if self.pidfd < 0:
            return True
        readable, _, _ = select.select([self.pidfd], [], [], 0)
        return bool(readable)

    def poll(self) -> int | None:
        if self.returncode is None:
            if self._kernel_done():
                self.returncode = -signal.SIGKILL if self.sandbox.poll() is None else 0
                self._end()
            elif self.sandbox.poll() is not None:
                self.returncode = self.sandbox.returncode
                self._end()
        return self.returncode

    def _end(self) -> None:
        self.kill()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.sandbox.wait(timeout=10)

    def wait(self, timeout: float | None = None) -> int:
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.poll() is None:
            if deadline is not None and time.monotonic() > deadline:
                raise subprocess.TimeoutExpired("kernel", timeout or 0)
            time.sleep(0.02)
        if self.pidfd >= 0:
            os.close(self.pidfd)
            self.pidfd = -1
        return self.returncode  # type: ignore[return-value]

    def send_signal(self, signum: int) -> None:
        if self.pidfd >= 0:
            with contextlib.suppress(ProcessLookupError):
                signal.pidfd_send_signal(self.pidfd, signum)
        if signum in (signal.SIGKILL, signal.SIGTERM):
            with contextlib.suppress(ProcessLookupError):
                self.sandbox.send_signal(signum)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)

    def terminate(self) -> None:
        self.send_signal(signal.SIGTERM)

    def __del__(self) -> None:
        if getattr(self, "pidfd", -1) >= 0:
            with contextlib.suppress(OSError):
                os.close(self.pidfd)


class Zygote:
    """The grader's handle on one zygote process (started on first use, one at a time)."""

    def __init__(
        self,
        options: tuple[str, ...],
        env: dict[str, str],
        preload: tuple[str, ...],
        fontlist: str | None = None,
        keep: tuple[str, ...] = (),
        start_timeout: float = 300.0,
    ) -> None:
        self.options, self.env, self.preload, self.fontlist = options, env, preload, fontlist
        self.keep = keep
        self.start_timeout = start_timeout
        self._lock = threading.Lock()
        self._proc: subprocess.Popen | None = None
        self._log = None
        self._sock: socket.socket | None = None
        #: CPU seconds the zygote spent on its imports (paid once per zygote)
        self.import_cpu: float | None = None
        self.failed_imports: list[str] = []
        #: address space (MB) its imports take, which every forked kernel starts with
        self.preloaded_mb = 0
        self.starts = 0
        #: why it could not start, once it could not (then it is not tried again)
        self.start_failure: str | None = None

    def _start(self) -> None:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        env = {**self.env, "MPLBACKEND": INLINE_BACKEND}  # ipykernel's, set before pyplot
        argv = [sys.executable, "-I", "-B", *self.options, str(Path(__file__).resolve())]
        argv += ["--fd", str(theirs.fileno()), "--preload", ",".join(self.preload)]
        if self.fontlist:
            argv += ["--fontlist", self.fontlist]
        for path in self.keep:
            argv += ["--keep", path]
        log = tempfile.NamedTemporaryFile(prefix="grader-zygote-", suffix=".log")  # noqa: SIM115
        self._log = log
        with theirs:
            self._proc = subprocess.Popen(
                argv,
                env=env,
                cwd="/",
                pass_fds=[theirs.fileno()],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=log,
                start_new_session=True,
            )
        self._sock = ours
        ours.settimeout(self.start_timeout)
        try:
            reply = json.loads(ours.recv(BUFFER) or b"{}")
        except (OSError, ValueError) as err:
            self.close()
            raise ZygoteError(f"the zygote did not start: {err}") from err
        if not reply.get("ready"):
            why = reply.get("error") or self.log_tail() or "it exited"
            self.close()
            raise ZygoteError(f"the zygote did not start: {why}")
        self.import_cpu = float(reply.get("cpu", 0.0))
        self.failed_imports = list(reply.get("failed", []))
        self.preloaded_mb = int(reply.get("preloaded_mb", 0))
        self.starts += 1

    def ready(self) -> Zygote:
        """Start the zygote unless it runs (its imports take seconds: call off the loop).

        A zygote that could not start (one of its imports started a thread, say) is not
        started again for every kernel: the reason is kept and raised at once, and the
        kernels start without it (see ``SandboxedKernelManager._zygote_fits``).
        """
        with self._lock:
            if self.start_failure is not None:
                raise ZygoteError(self.start_failure)
            if not self.alive():
                self.close()
                try:
                    self._start()
                except ZygoteError as err:
                    self.start_failure = str(err)
                    raise
        return self

    def log_tail(self, lines: int = 5) -> str:
        """Last lines the zygote wrote to stderr (its imports' warnings, or why it failed)."""
        try:
            text = Path(self._log.name).read_text(errors="replace")
        except (OSError, AttributeError):
            return ""
        return "\n".join(text.strip().splitlines()[-lines:])

    def alive(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def spawn(
        self,
        *,
        holder: int,
        argv: list[str],
        env: dict[str, str],
        limits: dict,
        stderr_fd: int,
        group_fds: list[int],
        grow_address_space: bool,
        timeout: float = 60.0,
    ) -> tuple[int, int]:
        """Fork a kernel into the sandbox whose held process is ``holder``: (pid, pidfd).

        ``grow_address_space``: RLIMIT_AS is ``limits['memory_mb']`` plus what the preloaded
        modules take (only where a control group caps the submission's memory)."""
        request = json.dumps(
            {
                "holder": holder,
                "argv": argv,
                "env": env,
                "limits": limits,
                "options": list(self.options),
                "grow_address_space": grow_address_space,
            }
        )
        data = request.encode()
        if len(data) > BUFFER or len(group_fds) + 1 > MAX_FDS:
            raise ZygoteError("the kernel's request is too large for the zygote")
        with self._lock:
            if not self.alive():
                self.close()
                self._start()
            assert self._sock is not None
            sock = self._sock
            rights = array.array("i", [stderr_fd, *group_fds])
            sock.sendmsg([data], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, rights)])
            sock.settimeout(timeout)
            try:
                raw, ancdata, _flags, _addr = sock.recvmsg(
                    BUFFER, socket.CMSG_SPACE(array.array("i").itemsize)
                )
            except OSError as err:
                self.close()
                raise ZygoteError(f"the zygote did not answer: {err}") from err
        fds = _fds(ancdata)
        reply = json.loads(raw or b"{}")
        if "pid" not in reply or len(fds) != 1:
            for fd in fds:
                os.close(fd)
            raise ZygoteError(f"the zygote could not fork a kernel: {reply.get('error', raw)}")
        return int(reply["pid"]), fds[0]

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None
        if self._proc is not None:
            with contextlib.suppress(OSError):
                self._proc.kill()
            with contextlib.suppress(Exception):
                self._proc.wait(timeout=10)
            self._proc = None
        if self._log is not None:
            self._log.close()
            self._log = None


_zygotes: dict[tuple, Zygote] = {}
_zygotes_lock = threading.Lock()


def zygote_for(
    options: tuple[str, ...],
    env: dict[str, str],
    fontlist: str | None,
    preload: tuple[str, ...],
    keep: tuple[str, ...],
) -> Zygote:
    """This grader process's zygote for these interpreter options, environment and paths."""
    key = (options, tuple(sorted(env.items())), fontlist, preload, keep)
    with _zygotes_lock:
        zygote = _zygotes.pop(key, None)
        if zygote is None:
            zygote = Zygote(options, env, preload, fontlist, keep)
        _zygotes[key] = zygote  # re-inserted: the dict's last entry is the last one used
        return zygote


_runs = 0
_runs_lock = threading.Lock()


@contextlib.contextmanager
def in_use():
    """A grading run: the zygotes started during it live until the last run of this process
    that is still going ends; then all but the last one used are stopped.

    Why: a zygote is keyed on the kernels' environment and paths and holds ~400 MB; a process
    that grades course after course (a test session, a notebook driving autograde, a Dask
    worker) would otherwise keep one per key until it exits. The last one stays: the next run
    of the same course (or of another course with the same paths) forks from it instead of
    paying its imports again (about 4 CPU seconds). It has run no student code, so that is
    the same as forking the next submission of one run. Runs that overlap share them; a new
    run waits while the last one stops them, so no kernel is forked from a zygote being
    stopped.
    """
    global _runs
    with _runs_lock:
        _runs += 1
    try:
        yield
    finally:
        with _runs_lock:
            _runs -= 1
            if _runs == 0:
                close_all(keep_last=True)


def live() -> list[Zygote]:
    """This process's zygotes (for tests and the benchmark's accounting)."""
    with _zygotes_lock:
        return list(_zygotes.values())


@atexit.register
def close_all(keep_last: bool = False) -> None:
    """Stop every zygote of this process (their kernels die with them); with ``keep_last``,
    every one but the last one used."""
    with _zygotes_lock:
        keys = list(_zygotes)[:-1] if keep_last else list(_zygotes)
        zygotes = [_zygotes.pop(key) for key in keys]
        for kept in _zygotes.values():
            kept.start_failure = None  # the next run tries to start it again
    for zygote in zygotes:
        zygote.close()


def main(argv: list[str]) -> None:
    import argparse

    parser = argparse.ArgumentParser(prog="zygote")
    parser.add_argument("--fd", type=int, required=True)
    parser.add_argument("--preload", default="")
    parser.add_argument("--fontlist")
    parser.add_argument("--keep", action="append", default=[], help="host path under /tmp")
    args = parser.parse_args(argv)
    _serve(args.fd, [m for m in args.preload.split(",") if m], args.fontlist, args.keep)


if __name__ == "__main__":
    main(sys.argv[1:])
