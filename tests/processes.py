"""What runs below a process, read from /proc: for the hub's memory figures.

Why one place: ``tests/benchmarks/bench_hub.py`` and ``tests/test_hub.py`` both size the hub
by walking the processes below its bootstrap and adding up their resident memory; one reader
of /proc keeps their figures comparable.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

PAGE = os.sysconf("SC_PAGE_SIZE")


@dataclass(frozen=True)
class Process:
    ppid: int
    rss: int  # resident memory, bytes
    cmd: str  # the command line, its arguments joined by spaces
    user: str | None  # JUPYTERHUB_USER from its environment: whose server or kernel it is


def process_table(proc: Path = Path("/proc")) -> dict[int, Process]:
    """Every process we may read, by pid (one that exits or hides meanwhile is left out)."""
    table = {}
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            ppid = int(stat[stat.rindex(")") + 2 :].split()[1])
            rss = int((entry / "statm").read_text().split()[1]) * PAGE
            cmd = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            environ = (entry / "environ").read_bytes().split(b"\0")
        except (OSError, ValueError):
            continue
        user = next((e[16:].decode() for e in environ if e.startswith(b"JUPYTERHUB_USER=")), None)
        table[int(entry.name)] = Process(ppid, rss, cmd, user)
    return table


def descendants(table: dict[int, Process], pid: int) -> list[int]:
    """``pid`` and every process below it in ``table``."""
    children: dict[int, list[int]] = {}
    for child, info in table.items():
        children.setdefault(info.ppid, []).append(child)
    out, todo = [], [pid]
    while todo:
        out.append(todo.pop())
        todo.extend(children.get(out[-1], []))
    return out


#: What a process below the hub's bootstrap is, by its command line (the first match wins): a
#: user's single-user server (counted with its kernels), the proxy, the emulator, the hub.
HUB_ROLES = (
    ("jupyterhub-singleuser", "server+kernels"),
    ("configurable-http-proxy", "proxy"),
    ("tunelab.emulator", "emulator"),
    ("jupyterhub", "hub"),
)


def memory_by_role(
    root_pid: int, names: Mapping[str, str] | None = None, *, root: str | None = None
) -> dict[str, int]:
    """Resident memory (bytes) by role of every process below ``root_pid``: "hub", "proxy",
    "emulator", and "server+kernels <user>" for each user's server with its kernels.

    ``names`` renames roles for display; ``root`` names the role of ``root_pid`` itself
    (otherwise it counts only if its command line has a role, like any other process).
    Processes of no role (kernels, counted with their server) are left out."""
    names = names or {}
    table = process_table()
    roles: dict[str, int] = {}
    for pid in descendants(table, root_pid):
        info = table.get(pid)
        if info is None:
            continue
        kind = next((role for marker, role in HUB_ROLES if marker in info.cmd), None)
        if pid == root_pid and root:
            role, rss = root, info.rss
        elif kind == "server+kernels":
            role = f"{names.get(kind, kind)} {info.user}"
            rss = sum(table[p].rss for p in descendants(table, pid) if p in table)
        elif kind:
            role, rss = names.get(kind, kind), info.rss
        else:
            continue
        roles[role] = roles.get(role, 0) + rss
    return roles
