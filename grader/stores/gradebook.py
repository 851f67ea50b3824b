"""Create nbgrader gradebooks without nbgrader's 4-second ``alembic heads`` subprocess.

A gradebook is a SQLite file (one instructor, the default) or a database on a server that
several graders share (``postgresql://USER:PASSWORD@HOST/DB``, see grader/README.md "A
shared PostgreSQL gradebook"): :func:`ensure_gradebook` prepares either, and
:class:`ServerGradebook` stands in for the file where callers ask whether it exists.

When nbgrader opens a database that has no tables yet, it shells out to ``alembic heads``
to learn which schema revision to stamp (about 4 s, every time: the test suite and the
demo create many small gradebooks). The revision is a constant of the installed nbgrader,
readable from its migration scripts; stamping it first makes nbgrader see an existing
database, and its own ``create_all`` then builds exactly the tables it always does.
"""

from __future__ import annotations

import functools
import re
import sqlite3
from pathlib import Path

from grader.stores.errors import CourseError


@functools.cache
def alembic_head() -> str:
    """The newest schema revision among nbgrader's migration scripts."""
    import nbgrader

    versions = Path(nbgrader.__file__).parent / "alembic" / "versions"
    revisions, parents = set(), set()
    for script in versions.glob("*.py"):
        text = script.read_text()
        rev = re.search(r"^revision\s*=\s*['\"]([0-9a-f]+)['\"]", text, re.M)
        down = re.search(r"^down_revision\s*=\s*['\"]([0-9a-f]+)['\"]", text, re.M)
        if rev:
            revisions.add(rev.group(1))
        if down:
            parents.add(down.group(1))
    heads = revisions - parents
    if len(heads) != 1:  # an unexpected layout: ask alembic the slow way
        from nbgrader.api import get_alembic_version

        return get_alembic_version()
    return heads.pop()


def ensure_gradebook(path: Path | str | ServerGradebook) -> None:
    """Stamp a new, empty gradebook file with nbgrader's schema revision (no-op if it exists).

    A server gradebook (its URL or a :class:`ServerGradebook`) gets all of nbgrader's tables.
    """
    if isinstance(path, ServerGradebook):
        return ensure_server_gradebook(path.url)
    if isinstance(path, str) and is_server_url(path):
        return ensure_server_gradebook(path)
    if isinstance(path, str) and path.startswith("sqlite:///"):
        path = path.removeprefix("sqlite:///")
    path = Path(path)
    if path.exists() and path.stat().st_size > 0:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    con = sqlite3.connect(path)
    try:
        con.execute("CREATE TABLE IF NOT EXISTS alembic_version (version_num VARCHAR(32) NOT NULL)")
        if con.execute("SELECT count(*) FROM alembic_version").fetchone()[0] == 0:
            con.execute("INSERT INTO alembic_version (version_num) VALUES (?)", (alembic_head(),))
        con.commit()
    finally:
        con.close()


# -- gradebooks on a database server (PostgreSQL) ---------------------------------------------
#: A PostgreSQL advisory lock key: one process at a time creates a server gradebook's tables.
_SCHEMA_LOCK = 0x7475_6E65  # "tune"


class GradebookUnreachable(CourseError):
    """The gradebook's database server did not answer (down, wrong URL, no such database)."""


def is_server_url(url: str | None) -> bool:
    """True for a gradebook on a database server (``postgresql://...``), not a SQLite file."""
    return bool(url) and "://" in str(url) and not str(url).startswith("sqlite:")


def masked(url: str) -> str:
    """The URL with its password hidden, fit for messages and logs."""
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001 (a malformed URL: say so, never echo a password)
        return "<unparsable database URL>"


class ServerGradebook:
    """A gradebook on a database server, where a course's ``gradebook.db`` file would stand.

    It answers what callers ask of the file (:meth:`exists`, ``str()``) so every command that
    checks for a gradebook before opening it works unchanged with a URL.
    """

    def __init__(self, url: str) -> None:
        self.url = url

    def __str__(self) -> str:
        return masked(self.url)

    def __repr__(self) -> str:
        return f"ServerGradebook({masked(self.url)!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ServerGradebook) and other.url == self.url

    def __hash__(self) -> int:
        return hash(self.url)

    def exists(self) -> bool:
        """True once nbgrader's tables are on the server (raises when it cannot be reached)."""
        from sqlalchemy import inspect

        engine = _engine(self.url)
        try:
            with engine.connect() as conn:
                return inspect(conn).has_table("assignment")
        except Exception as err:  # noqa: BLE001 (driver errors vary: name the server)
            raise GradebookUnreachable(_unreachable(self.url, err)) from err
        finally:
            engine.dispose()


def ensure_server_gradebook(url: str) -> None:
    """Create nbgrader's tables on a database server once, stamped with its schema revision.

    nbgrader creates missing tables whenever it opens a gradebook; several graders opening a
    new server gradebook at once would race to create them. Here one process does it, under
    a PostgreSQL advisory lock, before anyone opens it; afterwards nbgrader finds them all.
    """
    from nbgrader.api import Base
    from sqlalchemy import inspect, text

    engine = _engine(url)
    try:
        with engine.begin() as conn:
            if conn.dialect.name == "postgresql":
                conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _SCHEMA_LOCK})
            if not inspect(conn).has_table("alembic_version"):
                conn.execute(
                    text("CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL)")
                )
                conn.execute(
                    text("INSERT INTO alembic_version (version_num) VALUES (:v)"),
                    {"v": alembic_head()},
                )
            Base.metadata.create_all(conn)
    except GradebookUnreachable:
        raise
    except Exception as err:  # noqa: BLE001
        raise GradebookUnreachable(_unreachable(url, err)) from err
    finally:
        engine.dispose()


def _engine(url: str):
    from sqlalchemy import create_engine

    return create_engine(url, future=True, pool_pre_ping=True)


def _unreachable(url: str, err: BaseException) -> str:
    lines = str(err).strip().splitlines()
    first = lines[0] if lines else type(err).__name__
    return (
        f"cannot use the gradebook at {masked(url)}: {first[:300]} (is the database server "
        "running, and do the URL's user, password and database exist?)"
    )
