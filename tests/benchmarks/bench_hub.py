"""Benchmark: a class on JupyterHub, release to feedback, and the hub's memory per student.

    .venv/bin/python tests/benchmarks/bench_hub.py [--keep DIR]           # the round trip
    .venv/bin/python tests/benchmarks/bench_hub.py --simulate 3 [--extrapolate 30]

Both start ``python3 -m tunelab.bootstrap hub --headless`` (the class mode, as root) exactly as
``tests/test_hub.py`` does, and print the hub's start time (command to a hub that answers).

``--simulate N``: N simulated students, no browser: each signs up, is approved by the
instructor, logs in (the hub creates their OS user and starts their JupyterLab), and starts a
kernel that imports what a lesson imports (tunelab, pandas, seaborn, google-generativeai,
google-genai). Prints each server's start time, resident memory (RSS from /proc) of the
shared processes (hub, proxy, emulator) and per student (server + kernel), and the same
figures extrapolated linearly to ``--extrapolate`` students (default 30) when that is
more than N (labelled as extrapolated): shared + K x per-student memory, K x the mean
start time if they log in one after another. ``--simulate 30`` measures a class of 30.

Without ``--simulate``: the browser round trip in headless chromium (the instructor releases
``sql_overfitting`` and ``quiz`` in formgrader, two students fetch, answer, Validate and
submit, the instructor collects, autogrades sandboxed, grades Part 9 by hand, releases
feedback, both students fetch it). Prints:

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

from processes import memory_by_role  # noqa: E402
from test_hub import hub_folder, hub_unavailable, run_class, start_hub  # noqa: E402

#: The roles' names in this benchmark's printout.
ROLE_NAMES = {
    "proxy": "proxy (configurable-http-proxy)",
    "emulator": "tuning emulator service",
    "hub": "hub (jupyterhub)",
}


def memory(root_pid: int) -> dict[str, int]:
    """RSS by role of every process below the bootstrap ``root_pid``."""
    return memory_by_role(root_pid, ROLE_NAMES, root="bootstrap (python3 -m tunelab.bootstrap hub)")


LESSON_IMPORTS = (
    "import warnings; warnings.simplefilter('ignore')\n"
    "import tunelab, pandas, seaborn, google.generativeai, google.genai\n"
    "tunelab.connect()\n"
)


class Browserless:
    """One hub user over plain HTTP: sign-up and login forms, the server's REST API."""

    def __init__(self, base: str, name: str, password: str) -> None:
        import httpx

        self.base, self.name, self.password = base, name, password
        self.http = httpx.Client(base_url=base, follow_redirects=True, timeout=300)

    def _xsrf(self, path: str) -> str:
        self.http.get(path)
        return self.http.cookies.get("_xsrf", path="/hub/") or self.http.cookies.get("_xsrf")

    def signup(self) -> None:
        token = self._xsrf("/hub/signup")
        form = {"username": self.name, "signup_password": self.password}
        form |= {"signup_password_confirmation": self.password, "_xsrf": token}
        reply = self.http.post("/hub/signup", data=form)
        assert "sent to the admin" in reply.text or "successful" in reply.text, reply.text[:500]

    def login(self) -> float:
        """Log in and wait for the JupyterLab server; seconds from submit to a ready server."""
        token = self._xsrf("/hub/login")
        started = time.monotonic()
        form = {"username": self.name, "password": self.password, "_xsrf": token}
        reply = self.http.post("/hub/login?next=/hub/spawn", data=form)
        deadline = time.monotonic() + 300
        while f"/user/{self.name}/lab" not in str(reply.url):
            if time.monotonic() > deadline:
                raise RuntimeError(f"{self.name}'s server did not start: {reply.url}")
            time.sleep(1)
            reply = self.http.get(f"/user/{self.name}/lab")
        return time.monotonic() - started

    def approve(self, user: str) -> None:
        reply = self.http.get(f"/hub/authorize/{user}")
        assert reply.status_code == 200, reply.status_code

    def kernel(self, code: str) -> float:
        """Start a kernel, run ``code`` in it over the websocket; seconds it took."""
        import asyncio
        import json as _json
        import uuid

        from tornado.httpclient import HTTPRequest
        from tornado.websocket import websocket_connect

        started = time.monotonic()
        api = f"/user/{self.name}/api/kernels"
        xsrf = self.http.cookies.get("_xsrf", path=f"/user/{self.name}/") or ""
        reply = self.http.post(api, json={"name": "python3"}, headers={"X-XSRFToken": xsrf})
        assert reply.status_code == 201, reply.text[:300]
        kernel_id = reply.json()["id"]
        cookie = "; ".join(f"{c.name}={c.value}" for c in self.http.cookies.jar)
        url = self.base.replace("http", "ws", 1) + f"{api}/{kernel_id}/channels"

        async def run() -> None:
            request = HTTPRequest(url, headers={"Cookie": cookie, "X-XSRFToken": xsrf})
            ws = await websocket_connect(request)
            msg_id = uuid.uuid4().hex
            await ws.write_message(
                _json.dumps(
                    {
                        "header": {
                            "msg_id": msg_id,
                            "username": self.name,
                            "session": uuid.uuid4().hex,
                            "msg_type": "execute_request",
                            "version": "5.3",
                        },
                        "parent_header": {},
                        "metadata": {},
                        "content": {"code": code, "silent": False},
                        "channel": "shell",
                    }
                )
            )
            while True:
                raw = await ws.read_message()
                if raw is None:
                    raise RuntimeError("the kernel's websocket closed")
                msg = _json.loads(raw)
                if (
                    msg.get("msg_type") == "execute_reply"
                    and msg["parent_header"].get("msg_id") == msg_id
                ):
                    assert msg["content"]["status"] == "ok", msg["content"]
                    ws.close()
                    return

        asyncio.run(run())
        return time.monotonic() - started


def simulate(n: int, extrapolate: int) -> int:
    """N browserless students on the class hub; measured and extrapolated figures."""
    from test_hub import PASSWORDS

    mib = 2**20
    with hub_folder() as tmp, start_hub(tmp, users=()) as hub:
        print(f"hub start (command to a hub that answers): {hub.started_in:.1f} s")
        teacher = Browserless(hub.base, "instructor", PASSWORDS["instructor"])
        teacher.signup()
        teacher.login()
        idle = memory(hub.pid)
        shared_idle = sum(v for r, v in idle.items() if not r.startswith("server+kernels"))
        starts, kernels = [], []
        for i in range(1, n + 1):
            student = Browserless(hub.base, f"sim{i:03d}", f"sim-Student-{i:03d}")
            student.signup()
            teacher.approve(student.name)
            starts.append(student.login())
            kernels.append(student.kernel(LESSON_IMPORTS))
            print(
                f"  sim{i:03d}: server ready in {starts[-1]:.1f} s, "
                f"lesson kernel {kernels[-1]:.1f} s"
            )
        sample = memory(hub.pid)
    shared_roles = ("hub (", "proxy (", "tuning emulator")
    shared = sum(v for r, v in sample.items() if r.startswith(shared_roles))
    per = [v for r, v in sample.items() if r.startswith("server+kernels sim")]
    teacher_rss = sample.get("server+kernels instructor", 0)
    mean = sum(per) / max(1, len(per))
    print(f"\nResident memory, {n} simulated students active (RSS):")
    for role in sorted(sample):
        print(f"  {role:<52} {sample[role] / mib:7.0f} MiB")
    print(f"  {'shared (hub + proxy + emulator), no student yet':<52} {shared_idle / mib:7.0f} MiB")
    print(f"  {'shared (hub + proxy + emulator), now':<52} {shared / mib:7.0f} MiB")
    print(f"  {'per active student (server + lesson kernel), mean':<52} {mean / mib:7.0f} MiB")
    mean_start = sum(starts) / len(starts)
    print(f"  {'login to a ready server, mean':<52} {mean_start:7.1f} s")
    print(
        f"  {'lesson kernel ready (imports + connect), mean':<52} "
        f"{sum(kernels) / len(kernels):7.1f} s"
    )
    sizes = [(n, "measured")]
    if extrapolate > n:
        sizes.append((extrapolate, f"extrapolated from the {n} measured"))
    for k, how in sizes:
        total = shared + teacher_rss + k * mean
        print(
            f"\n{k} students ({how}): hub start {hub.started_in:.0f} s; memory "
            f"{total / mib:,.0f} MiB (shared {shared / mib:.0f} + instructor "
            f"{teacher_rss / mib:.0f} + {k} x {mean / mib:.0f}); all logged in one after "
            f"another: {k * mean_start:.0f} s"
        )
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--keep", help="keep the hub's state in this folder")
    parser.add_argument("--simulate", type=int, help="N browserless students (no round trip)")
    parser.add_argument("--extrapolate", type=int, default=30, help="class size to extrapolate to")
    args = parser.parse_args()
    reason = hub_unavailable()
    if reason:
        print(f"cannot run: {reason}")
        return 2
    if args.simulate:
        return simulate(args.simulate, args.extrapolate)
    from browser_support import chromium

    tmp = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="bench-hub-"))
    tmp.mkdir(parents=True, exist_ok=True)
    tmp.chmod(0o711)  # the hub's OS users enter it
    sample: dict[str, int] = {}
    started = time.monotonic()
    with start_hub(tmp) as hub, chromium() as browser:
        print(f"hub up in {time.monotonic() - started:.1f} s at {hub.base}")
        timings = run_class(hub, browser, on_active=lambda: sample.update(memory(hub.pid)))
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
