"""Last trusted step inside the sandbox: set resource limits, drop privileges, exec the kernel.

Runs as ``python -I -S sandbox_launch.py [limits] -- KERNEL COMMAND...`` as the first process
bubblewrap starts (standard library only, no site-packages: it costs ~10 ms). Why here and
not in the grader process: limits must be set *inside* the sandbox's user namespace, so the
process limit counts only this sandbox's processes, and when the grader runs as root the
switch to an unprivileged uid must happen after bubblewrap has mounted the file system.

With ``--hold`` (the zygote's way, :mod:`grader.sandbox.zygote`) it execs nothing: once its limits
are set and its uid dropped it writes ``ready`` to stdout and waits, holding the sandbox's
namespaces open until a kernel forked by the zygote has joined them. :func:`confine` is the
one definition of these limits, used by both ways.
"""

from __future__ import annotations

import argparse
import os
import resource
import signal
import sys

MB = 1024 * 1024


def _set(limit: int, value: int) -> None:
    soft, hard = resource.getrlimit(limit)
    if hard != resource.RLIM_INFINITY:
        value = min(value, hard)
    resource.setrlimit(limit, (value, value))


def confine(
    *,
    memory_mb: int,
    cpu_seconds: int,
    max_processes: int,
    max_file_mb: int,
    max_open_files: int,
    uid: int | None,
    gid: int | None = None,
) -> None:
    """Set the per-process limits and, as root, become ``uid`` (every capability goes)."""
    _set(resource.RLIMIT_AS, memory_mb * MB)
    _set(resource.RLIMIT_CPU, cpu_seconds)
    _set(resource.RLIMIT_FSIZE, max_file_mb * MB)
    _set(resource.RLIMIT_NOFILE, max_open_files)
    _set(resource.RLIMIT_CORE, 0)
    if uid is not None:
        gid = gid if gid is not None else uid
        os.setgroups([])
        os.setgid(gid)
        os.setuid(uid)  # from root to an ordinary uid: every capability is gone now
        if os.getuid() != uid or os.geteuid() != uid or os.getgid() != gid:
            raise SystemExit("sandbox_launch: could not drop privileges")
    # After the uid switch, so the count is of this (unprivileged) user's processes.
    _set(resource.RLIMIT_NPROC, max_processes)
    os.umask(0o077)


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="sandbox_launch")
    parser.add_argument("--memory-mb", type=int, required=True, help="address space per process")
    parser.add_argument("--cpu-seconds", type=int, required=True, help="CPU time per process")
    parser.add_argument("--max-processes", type=int, required=True, help="processes and threads")
    parser.add_argument("--max-file-mb", type=int, required=True, help="largest file written")
    parser.add_argument("--max-open-files", type=int, required=True)
    parser.add_argument("--uid", type=int, help="switch to this uid (grader running as root)")
    parser.add_argument("--gid", type=int)
    parser.add_argument("--hold", action="store_true", help="no command: say ready and wait")
    parser.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command and not args.hold:
        parser.error("no kernel command given after --")
    confine(
        memory_mb=args.memory_mb,
        cpu_seconds=args.cpu_seconds,
        max_processes=args.max_processes,
        max_file_mb=args.max_file_mb,
        max_open_files=args.max_open_files,
        uid=args.uid,
        gid=args.gid,
    )
    if args.hold:
        os.write(1, b"ready\n")
        os.close(1)
        while True:  # killed with the sandbox; a signal that does not kill just wakes it
            signal.pause()
    os.execv(command[0], command)


if __name__ == "__main__":
    main(sys.argv[1:])
