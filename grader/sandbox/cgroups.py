"""One control group per submission: limits and accounting for all its processes together.

Per-process rlimits (:mod:`grader.sandbox.sandbox_launch`) cannot stop a submission that splits its
work over many processes: three children of 1.5 GB each pass a 2 GB address-space limit,
150 busy processes get 150 shares of the CPU. A control group counts them all together:

* ``memory``: total RAM of the group, tmpfs pages it writes included (OOM kill above it);
* ``pids``: processes and threads of the group together;
* ``cpu``: at most ``cpus`` CPUs of time per period, and one fair share among neighbours
  (each group is one scheduling entity, however many processes it runs);
* accounting: CPU seconds used and peak memory, read by the grader after each cell;
* kill: every process of the group is found (``setsid`` or double-forking changes nothing)
  and killed, the group frozen first where a freezer exists, so nothing forks meanwhile.

Both cgroup versions are handled: v2 where the grader's own group is delegated to it (its
``cgroup.subtree_control`` can enable ``memory`` and ``pids``), else v1 where the memory and
pids hierarchies are writable. :func:`detect` probes once per process by creating a group
and moving a short-lived child into it. Groups are made below the grader's own group, so any
limit of the grader's service still applies on top.

The first sandbox process joins its group itself: :meth:`SubmissionCgroup.enter` runs in the
child between ``fork`` and ``exec`` (``preexec_fn``), so bubblewrap and everything it starts
are inside the group from their first instruction, and there is no window to escape.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import itertools
import os
import signal
import subprocess
import time
from pathlib import Path

CGROUP2 = "cgroup2"
CGROUP1 = "cgroup1"
RLIMITS = "rlimits"
MODES = (CGROUP2, CGROUP1, RLIMITS)
PERIOD_US = 100_000
_V1_REQUIRED = ("memory", "pids")
_V1_OPTIONAL = ("cpu", "cpuacct", "freezer")
_counter = itertools.count()


class CgroupError(OSError):
    """The group could not be made or used."""


def _read(path: Path) -> str:
    return path.read_text().strip()


def _write(path: Path, value: str) -> None:
    with open(path, "w") as handle:
        handle.write(value)


def _mounts() -> tuple[str | None, dict[str, str]]:
    """(the cgroup2 mount point, {v1 controller: mount point}) from /proc/self/mountinfo."""
    v2: str | None = None
    v1: dict[str, str] = {}
    try:
        lines = Path("/proc/self/mountinfo").read_text().splitlines()
    except OSError:
        return None, {}
    for line in lines:
        left, _, right = line.partition(" - ")
        fields, tail = left.split(), right.split()
        if len(fields) < 5 or len(tail) < 3:
            continue
        root, mount = fields[3], fields[4]
        if root != "/":  # a bind of a sub-group: its paths do not match /proc/self/cgroup
            continue
        if tail[0] == "cgroup2" and v2 is None:
            v2 = mount
        elif tail[0] == "cgroup":
            for option in tail[2].split(","):
                v1.setdefault(option, mount)
    return v2, v1


def _own_paths() -> dict[str, str]:
    """{controller or '' for v2: this process's group path} from /proc/self/cgroup."""
    paths: dict[str, str] = {}
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/cgroup").read_text().splitlines():
            _, controllers, path = line.split(":", 2)
            for name in controllers.split(",") if controllers else [""]:
                paths[name.removeprefix("name=")] = path
    return paths


def _bases(mode: str) -> dict[str, Path]:
    """Where this process may create child groups: {controller: directory}."""
    v2, v1 = _mounts()
    own = _own_paths()
    if mode == CGROUP2:
        if v2 is None or "" not in own:
            raise CgroupError(errno.ENOENT, "no cgroup2 file system mounted")
        return {"": Path(v2 + own[""].rstrip("/"))}
    bases: dict[str, Path] = {}
    for name in (*_V1_REQUIRED, *_V1_OPTIONAL):
        if name in v1 and name in own:
            bases[name] = Path(v1[name] + own[name].rstrip("/"))
    missing = [name for name in _V1_REQUIRED if name not in bases]
    if missing:
        raise CgroupError(errno.ENOENT, f"no cgroup v1 hierarchy for {', '.join(missing)}")
    return bases


class SubmissionCgroup:
    """The control group(s) of one sandbox: create, enter, account, kill, remove.

    v2 is one directory; v1 is one directory per hierarchy (memory, pids, and cpu, cpuacct,
    freezer where mounted), all with the same name. ``name`` must be unique on the machine
    (the manager uses its scratch folder's name).
    """

    def __init__(self, name: str, *, memory_mb: int, max_pids: int, cpus: float, mode: str) -> None:
        if mode not in (CGROUP1, CGROUP2):
            raise ValueError(f"not a cgroup mode: {mode}")
        self.mode = mode
        self.name = name
        self.dirs: dict[str, Path] = {}
        self._procs_fds: list[int] = []
        try:
            for controller, base in _bases(mode).items():
                target = base / name
                if target in self.dirs.values():  # co-mounted controllers (cpu,cpuacct)
                    self.dirs[controller] = target
                    continue
                if mode == CGROUP2:
                    _enable_v2_controllers(base)
                target.mkdir()
                self.dirs[controller] = target
            self._set_limits(memory_mb * 1024 * 1024, max_pids, cpus)
        except OSError as err:
            self.remove()
            raise CgroupError(err.errno, f"cannot make control group {name}: {err}") from err

    # -- setup -------------------------------------------------------------------------
    def _dir(self, controller: str) -> Path | None:
        return self.dirs.get("" if self.mode == CGROUP2 else controller)

    def _set_limits(self, memory: int, max_pids: int, cpus: float) -> None:
        quota = int(cpus * PERIOD_US) if cpus > 0 else 0
        if self.mode == CGROUP2:
            group = self.dirs[""]
            _write(group / "memory.max", str(memory))
            with contextlib.suppress(FileNotFoundError):
                _write(group / "memory.swap.max", "0")
            with contextlib.suppress(FileNotFoundError):
                _write(group / "memory.oom.group", "0")  # kill the biggest, not everything
            _write(group / "pids.max", str(max_pids))
            if quota and (group / "cpu.max").exists():
                _write(group / "cpu.max", f"{quota} {PERIOD_US}")
            return
        memory_dir = self.dirs["memory"]
        _write(memory_dir / "memory.limit_in_bytes", str(memory))
        with contextlib.suppress(FileNotFoundError, PermissionError):  # no swap accounting
            _write(memory_dir / "memory.memsw.limit_in_bytes", str(memory))
        _write(self.dirs["pids"] / "pids.max", str(max_pids))
        cpu = self.dirs.get("cpu")
        if quota and cpu is not None:
            _write(cpu / "cpu.cfs_period_us", str(PERIOD_US))
            _write(cpu / "cpu.cfs_quota_us", str(quota))

    def procs_files(self) -> list[Path]:
        return sorted({d / "cgroup.procs" for d in self.dirs.values()})

    def open_for_enter(self) -> None:
        """Open the ``cgroup.procs`` files now, so :meth:`enter` only writes after fork."""
        self.close()
        self._procs_fds = [os.open(f, os.O_WRONLY | os.O_CLOEXEC) for f in self.procs_files()]

    def enter(self) -> None:
        """Move the calling process into the group (``preexec_fn``: only system calls here)."""
        if not self._procs_fds:
            self.open_for_enter()
        for fd in self._procs_fds:
            os.write(fd, b"0")  # 0: the writing process itself (it has no pid of its own yet)

    def close(self) -> None:
        for fd in self._procs_fds:
            with contextlib.suppress(OSError):
                os.close(fd)
        self._procs_fds = []

    # -- accounting ----------------------------------------------------------------------
    def pids(self) -> set[int]:
        """Every process in the group (host pids)."""
        found: set[int] = set()
        for procs in self.procs_files():
            with contextlib.suppress(OSError, ValueError):
                found.update(int(x) for x in _read(procs).split())
        return found

    def cpu_seconds(self) -> float | None:
        """CPU time (user + system) of every process the group ever had."""
        try:
            if self.mode == CGROUP2:
                for line in _read(self.dirs[""] / "cpu.stat").splitlines():
                    key, _, value = line.partition(" ")
                    if key == "usage_usec":
                        return int(value) / 1e6
                return None
            acct = self.dirs.get("cpuacct")
            return None if acct is None else int(_read(acct / "cpuacct.usage")) / 1e9
        except (OSError, ValueError):
            return None

    def memory_peak(self) -> int | None:
        """Highest memory use of the group, in bytes (None where the kernel does not say)."""
        name = "memory.peak" if self.mode == CGROUP2 else "memory.max_usage_in_bytes"
        group = self._dir("memory")
        try:
            return int(_read(group / name)) if group is not None else None
        except (OSError, ValueError):
            return None

    def oom_kills(self) -> int | None:
        """Processes the kernel killed for running out of the group's memory."""
        group = self._dir("memory")
        name = "memory.events" if self.mode == CGROUP2 else "memory.oom_control"
        try:
            for line in _read(group / name).splitlines():  # type: ignore[operator]
                key, _, value = line.partition(" ")
                if key == "oom_kill":
                    return int(value)
        except (OSError, ValueError, TypeError):
            pass
        return None

    # -- killing ---------------------------------------------------------------------------
    @contextlib.contextmanager
    def frozen(self):
        """Stop every process of the group meanwhile (no-op without a freezer)."""
        state = None
        if self.mode == CGROUP2:
            state = self.dirs[""] / "cgroup.freeze"
            on, off, done = "1", "0", (self.dirs[""] / "cgroup.events", "frozen 1")
        elif "freezer" in self.dirs:
            state = self.dirs["freezer"] / "freezer.state"
            on, off, done = "FROZEN", "THAWED", (state, "FROZEN")
        if state is None or not state.exists():
            yield
            return
        try:
            _write(state, on)
            deadline = time.monotonic() + 1.0
            while time.monotonic() < deadline:
                with contextlib.suppress(OSError):
                    if done[1] in _read(done[0]).splitlines():
                        break
                time.sleep(0.002)
            yield
        finally:
            with contextlib.suppress(OSError):
                _write(state, off)

    def kill(self, keep: set[int] | frozenset[int] = frozenset(), wait: float = 2.0) -> int:
        """SIGKILL every process of the group except ``keep``; return how many were killed."""
        killed: set[int] = set()
        for _ in range(50):
            with self.frozen():
                targets = self.pids() - set(keep) - killed
                for pid in targets:
                    with contextlib.suppress(ProcessLookupError, PermissionError):
                        os.kill(pid, signal.SIGKILL)
                        killed.add(pid)
            if not targets:
                break
        deadline = time.monotonic() + wait
        while (self.pids() - set(keep)) & killed and time.monotonic() < deadline:
            time.sleep(0.01)
        return len(killed)

    def remove(self) -> None:
        """Kill what is left and delete the group's directories."""
        self.close()
        if self.dirs and self.pids():
            self.kill()
        for path in sorted(set(self.dirs.values()), reverse=True):
            for _ in range(100):
                try:
                    path.rmdir()
                    break
                except FileNotFoundError:
                    break
                except OSError as err:  # EBUSY: a dying process is still counted
                    if err.errno != errno.EBUSY:
                        break
                    time.sleep(0.01)
        self.dirs = {}


def _enable_v2_controllers(base: Path) -> None:
    available = set(_read(base / "cgroup.controllers").split())
    needed = {"memory", "pids"}
    if not needed <= available:
        raise CgroupError(
            errno.EPERM, f"cgroup2 controllers {sorted(needed - available)} not delegated"
        )
    enabled = set(_read(base / "cgroup.subtree_control").split())
    wanted = (needed | ({"cpu"} & available)) - enabled
    if wanted:
        _write(base / "cgroup.subtree_control", " ".join(f"+{c}" for c in sorted(wanted)))


def new_group(
    name: str, *, memory_mb: int, max_pids: int, cpus: float, mode: str
) -> SubmissionCgroup:
    return SubmissionCgroup(name, memory_mb=memory_mb, max_pids=max_pids, cpus=cpus, mode=mode)


@functools.cache
def detect(preferred: str = "auto") -> tuple[str, str]:
    """(mode, why): the best isolation this process can use, ``preferred`` first.

    Probes for real: makes a group with limits, runs ``true`` inside it, removes it.
    """
    if preferred == RLIMITS:
        return RLIMITS, "configured"
    candidates = (CGROUP2, CGROUP1) if preferred == "auto" else (preferred,)
    reasons = []
    for mode in candidates:
        try:
            group = new_group(
                f"grader-probe-{os.getpid()}-{next(_counter)}",
                memory_mb=64,
                max_pids=8,
                cpus=1,
                mode=mode,
            )
        except OSError as err:
            reasons.append(f"{mode}: {err.strerror or err}")
            continue
        try:
            group.open_for_enter()
            subprocess.run(["true"], preexec_fn=group.enter, check=True, timeout=10)  # noqa: PLW1509
            return mode, ""
        except (OSError, subprocess.SubprocessError) as err:
            reasons.append(f"{mode}: cannot move a process into a group ({err})")
        finally:
            group.remove()
    return RLIMITS, "; ".join(reasons)
