"""Services the grader's tests start for themselves: a private PostgreSQL cluster.

:class:`PostgresCluster` runs Debian's PostgreSQL binaries (``/usr/lib/postgresql/*/bin``,
installed by ``python3 -m tunelab.bootstrap test`` as the Debian package ``postgresql``) on a
free port of 127.0.0.1 only, with its data in a fresh temporary folder and its socket there
too, so it never meets a system cluster. PostgreSQL refuses to run as root: as root the
cluster runs as ``nobody`` (the folder is made theirs). Stopped (immediately) and deleted
afterwards. The pytest fixture ``postgres`` shares one cluster per test session; each test
asks it for a database of its own (:meth:`PostgresCluster.database`).
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

SUPERUSER = "grader"


def postgres_bindir() -> Path | None:
    """The newest PostgreSQL server binaries on this machine, or None."""
    candidates = sorted(
        glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(Path(p).parent.name)
    )
    for folder in reversed(candidates):
        if (Path(folder) / "initdb").is_file() and (Path(folder) / "pg_ctl").is_file():
            return Path(folder)
    for tool in ("pg_ctl", "initdb"):
        found = shutil.which(tool)
        if found and (Path(found).resolve().parent / "initdb").is_file():
            return Path(found).resolve().parent
    return None


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class PostgresCluster:
    """A throw-away PostgreSQL server for one test session (see the module docstring)."""

    def __init__(self, bindir: Path) -> None:
        self.bindir = bindir
        self.base = Path(tempfile.mkdtemp(prefix="tunelab-pg-"))  # /tmp: reachable by nobody
        self.data = self.base / "data"
        self.port = 0
        self.user = "nobody" if os.geteuid() == 0 else None
        self._databases = 0

    # -- lifecycle -------------------------------------------------------------------------
    def start(self) -> PostgresCluster:
        if self.user:
            entry = pwd.getpwnam(self.user)
            os.chown(self.base, entry.pw_uid, entry.pw_gid)
        self._run(
            "initdb",
            "-D",
            str(self.data),
            "-U",
            SUPERUSER,
            "--auth=trust",
            "--encoding=UTF8",
            "--locale=C",
            "--no-sync",
        )
        last = ""
        for _ in range(3):  # a port taken between choosing and binding: choose again
            self.port = free_port()
            options = (
                f"-c listen_addresses=127.0.0.1 -p {self.port} -k {self.base} "
                "-c fsync=off -c synchronous_commit=off -c full_page_writes=off "
                "-c max_connections=200"
            )
            done = self._run(
                "pg_ctl",
                "-D",
                str(self.data),
                "-o",
                options,
                "-l",
                str(self.base / "server.log"),
                "-w",
                "-t",
                "60",
                "start",
                check=False,
            )
            if done.returncode == 0:
                return self
            last = done.stdout + done.stderr + self.log_tail()
        raise RuntimeError(f"PostgreSQL did not start: {last}")

    def stop(self) -> None:
        if self.data.exists():
            self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop", check=False)
        shutil.rmtree(self.base, ignore_errors=True)

    def log_tail(self, lines: int = 20) -> str:
        path = self.base / "server.log"
        if not path.exists():
            return ""
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])

    # -- databases -------------------------------------------------------------------------
    def url(self, database: str = "postgres") -> str:
        return f"postgresql://{SUPERUSER}@127.0.0.1:{self.port}/{database}"

    def database(self, name: str | None = None) -> str:
        """Create a new, empty database; its SQLAlchemy URL."""
        from sqlalchemy import create_engine, text

        self._databases += 1
        name = name or f"gradebook_{self._databases}"
        engine = create_engine(self.url(), isolation_level="AUTOCOMMIT")
        try:
            with engine.connect() as conn:
                conn.execute(text(f'CREATE DATABASE "{name}"'))
        finally:
            engine.dispose()
        return self.url(name)

    # -- helpers ---------------------------------------------------------------------------
    def _run(self, tool: str, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        done = subprocess.run(
            [str(self.bindir / tool), *args],
            cwd=self.base,
            user=self.user,
            capture_output=True,
            text=True,
            env={"PATH": "/usr/bin:/bin", "LC_ALL": "C", "HOME": str(self.base)},
            timeout=120,
        )
        if check and done.returncode != 0:
            raise RuntimeError(f"{tool} failed ({done.returncode}): {done.stdout}{done.stderr}")
        return done


@contextlib.contextmanager
def postgres_cluster() -> Iterator[PostgresCluster]:
    bindir = postgres_bindir()
    if bindir is None:
        raise RuntimeError(
            "no PostgreSQL server binaries (/usr/lib/postgresql/*/bin): run "
            "'python3 -m tunelab.bootstrap test' or 'apt-get install -y postgresql'"
        )
    cluster = PostgresCluster(bindir)
    try:
        yield cluster.start()
    finally:
        cluster.stop()


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresCluster]:
    """One private PostgreSQL server for the session (skips where none is installed)."""
    if postgres_bindir() is None:
        pytest.skip("PostgreSQL is not installed (python3 -m tunelab.bootstrap test installs it)")
    started = time.perf_counter()
    with postgres_cluster() as cluster:
        cluster.started_in = time.perf_counter() - started
        yield cluster
