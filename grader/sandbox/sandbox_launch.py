"""Last trusted step inside the sandbox: set resource limits, drop privileges, exec the kernel.

Runs as ``python -I -S sandbox_launch.py [limits] -- KERNEL COMMAND...`` as the first process
bubblewrap starts (standard library only, no site-packages: it costs ~10 ms). Why here and
not in the grader process: limits must be set *inside* the sandbox's user namespace, so the
process limit counts only this sandbox's processes, and when the grader runs as root the
switch to an unprivileged uid must happen after bubblewrap has mounted the file system.
"""

from __future__ import annotations

import argparse
import os
import resource
import sys

MB = 1024 * 1024


def _set(limit: int, value: int) -> None:
    soft, hard = resource.getrlimit(limit)
    if hard != resource.RLIM_INFINITY:
        value = min(value, hard)
    resource.setrlimit(limit, (value, value))


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="sandbox_launch")
    parser.add_argument("--memory-mb", type=int, required=True, help="address space per process")
    parser.add_argument("--cpu-seconds", type=int, required=True, help="CPU time per process")
    parser.add_argument("--max-processes", type=int, required=True, help="processes and threads")
    parser.add_argument("--max-file-mb", type=int, required=True, help="largest file written")
    parser.add_argument("--max-open-files", type=int, required=True)
    parser.add_argument("--uid", type=int, help="switch to this uid (grader running as root)")
    parser.add_argument("--gid", type=int)
    parser.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("no kernel command given after --")

    _set(resource.RLIMIT_AS, args.memory_mb * MB)
    _set(resource.RLIMIT_CPU, args.cpu_seconds)
    _set(resource.RLIMIT_FSIZE, args.max_file_mb * MB)
    _set(resource.RLIMIT_NOFILE, args.max_open_files)
    _set(resource.RLIMIT_CORE, 0)
    if args.uid is not None:
        gid = args.gid if args.gid is not None else args.uid
        os.setgroups([])
        os.setgid(gid)
        os.setuid(args.uid)  # from root to an ordinary uid: every capability is gone now
        if os.getuid() != args.uid or os.geteuid() != args.uid:
            raise SystemExit("sandbox_launch: could not drop privileges")
    # After the uid switch, so the count is of this (unprivileged) user's processes.
    _set(resource.RLIMIT_NPROC, args.max_processes)
    os.umask(0o077)
    os.execv(command[0], command)


if __name__ == "__main__":
    main(sys.argv[1:])
