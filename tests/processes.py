"""What runs below a process, read from /proc: for the hub's memory figures.

Why one place: ``tests/benchmarks/bench_hub.py`` and ``tests/test_hub.py`` both size the hub
by walking the processes below its bootstrap and adding up their resident memory; one reader
of /proc keeps their figures comparable.
"""

from __future__ import annotations

import os
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
