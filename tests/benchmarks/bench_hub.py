"""Benchmark: a class on JupyterHub, release to feedback, and the hub's memory per student.

    .venv/bin/python tests/benchmarks/bench_hub.py [--keep DIR]

Starts ``python3 -m tunelab.bootstrap hub --headless`` exactly as ``tests/test_hub.py`` does
and runs the same round trip in headless chromium (the instructor releases ``sql_overfitting``
and ``quiz`` in formgrader, two students fetch, answer, Validate and submit, the instructor
collects, autogrades sandboxed, grades Part 9 by hand, releases feedback, both students fetch
it). Prints:

* the time from the instructor's "release" click to the second student's fetched feedback,
  with its parts (students' work in the browser, sandboxed autograding);
* resident memory (RSS, from /proc) while both students are active (their servers and
  kernels running): the hub, the proxy, the shared emulator service, each student's
  single-user server with its kernels, and per active student (all of it / 2, and the
  marginal cost: one student's server and kernels).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(REPO), str(REPO / "tests")]

from test_hub import hub_unavailable, run_class, start_hub  # noqa: E402

PAGE = 4096


def _procs() -> dict[int, dict]:
    table = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            ppid = int(stat[stat.rindex(")") + 2 :].split()[1])
            rss = int((entry / "statm").read_text().split()[1]) * PAGE
            cmd = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            environ = (entry / "environ").read_bytes()
        except (OSError, ValueError):
            continue
        user = None
        for item in environ.split(b"\0"):
            if item.startswith(b"JUPYTERHUB_USER="):
                user = item.split(b"=", 1)[1].decode()
        table[int(entry.name)] = {"ppid": ppid, "rss": rss, "cmd": cmd, "user": user}
    return table


def memory(root_pid: int) -> dict[str, int]:
    """RSS by role of every process below the bootstrap ``root_pid``."""
    table = _procs()
    children: dict[int, list[int]] = {}
    for pid, info in table.items():
        children.setdefault(info["ppid"], []).append(pid)

    def tree(pid: int) -> list[int]:
        out, todo = [], [pid]
        while todo:
            p = todo.pop()
            out.append(p)
            todo.extend(children.get(p, []))
        return out

    roles: dict[str, int] = {}
    for pid in tree(root_pid):
        info = table[pid]
        cmd = info["cmd"]
        if pid == root_pid:
            role = "bootstrap (python3 -m tunelab.bootstrap hub)"
        elif "jupyterhub-singleuser" in cmd:
            role = f"server+kernels {info['user']}"
            roles[role] = roles.get(role, 0) + sum(table[p]["rss"] for p in tree(pid))
            continue
        elif "configurable-http-proxy" in cmd:
            role = "proxy (configurable-http-proxy)"
        elif "tunelab.emulator" in cmd:
            role = "tuning emulator service"
        elif "jupyterhub" in cmd:
            role = "hub (jupyterhub)"
        else:
            continue  # kernels are counted with their server
        roles[role] = roles.get(role, 0) + info["rss"]
    return roles


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--keep", help="keep the hub's state in this folder")
    args = parser.parse_args()
    reason = hub_unavailable()
    if reason:
        print(f"cannot run: {reason}")
        return 2
    from playwright.sync_api import sync_playwright
    from test_hub import CHROMIUM, CHROMIUM_ARGS

    tmp = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="bench-hub-"))
    tmp.mkdir(parents=True, exist_ok=True)
    sample: dict[str, int] = {}
    started = time.monotonic()
    with start_hub(tmp) as hub, sync_playwright() as pw:
        print(f"hub up in {time.monotonic() - started:.1f} s at {hub.base}")
        browser = pw.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True
        )
        try:
            timings = run_class(hub, browser, on_active=lambda: sample.update(memory(hub.pid)))
        finally:
            browser.close()
    print("\nTime (2 students, sql_overfitting and quiz):")
    for what, seconds in timings.items():
        print(f"  {what:<52} {seconds:7.1f} s")
    print("\nResident memory while both students are active (RSS):")
    for role in sorted(sample):
        print(f"  {role:<52} {sample[role] / 2**20:7.0f} MiB")
    students = [r for r in sample if r.startswith("server+kernels student")]
    shared_roles = ("hub (", "proxy (", "tuning emulator")
    shared = sum(v for r, v in sample.items() if r.startswith(shared_roles))
    per_student = sum(sample[r] for r in students) / max(1, len(students))
    print(f"  {'hub + proxy + emulator (shared)':<52} {shared / 2**20:7.0f} MiB")
    total = shared + sum(sample[r] for r in students)
    print(f"  {'total / active students':<52} {total / max(1, len(students)) / 2**20:7.0f} MiB")
    print(f"  {'one more student (server + kernels)':<52} {per_student / 2**20:7.0f} MiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
