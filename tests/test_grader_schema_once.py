"""nbgrader's gradebook schema checks, once per (database, course) while a class is graded."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from nbgrader import api
from sqlalchemy import event
from sqlalchemy.engine import Engine

from grader.stores import schema_once
from grader.stores.gradebook import ensure_gradebook
from grader.stores.schema_once import schema_checked_once


@pytest.fixture
def queries():
    seen: list[str] = []

    def count(conn, cursor, statement, *args):
        seen.append(statement)

    event.listen(Engine, "before_cursor_execute", count)
    yield seen
    event.remove(Engine, "before_cursor_execute", count)


def _gradebook(path: Path) -> str:
    """A gradebook with its tables (as registering an assignment leaves it) and ann."""
    ensure_gradebook(path)
    with api.Gradebook(f"sqlite:///{path}") as gb:
        gb.update_or_create_student("ann")
    return f"sqlite:///{path}"


def _opens(url: str, seen: list[str], n: int = 3) -> list[int]:
    """Statements each of ``n`` opens (and a student lookup) ran."""
    counts = []
    for _ in range(n):
        before = len(seen)
        with api.Gradebook(url) as gb:
            gb.update_or_create_student("ann")
        counts.append(len(seen) - before)
    return counts


def test_the_schema_is_checked_at_the_first_open_only_and_only_within(tmp_path: Path, queries):
    url, other = _gradebook(tmp_path / "gradebook.db"), _gradebook(tmp_path / "other.db")
    plain = _opens(url, queries)
    with schema_checked_once():
        with schema_checked_once():  # re-entrant: the preflight runs inside a run
            inside = _opens(url, queries)
        assert api.Gradebook.__init__ is schema_once._init  # still ours after the inner one
        first_of_other = _opens(other, queries, 1)
    after = _opens(url, queries)
    assert plain[0] == plain[1] == plain[2] == after[0]  # nbgrader's: checks at every open
    assert inside[0] == plain[0] and inside[1] == inside[2] < plain[0] - 5, (plain, inside)
    assert first_of_other == [plain[0]]  # another database is checked at its own first open
    with api.Gradebook(url) as gb:  # the grades written with fewer checks are all there
        assert [s.id for s in gb.students] == ["ann"]


def test_threads_grading_side_by_side_share_the_checks(tmp_path: Path, queries) -> None:
    url = _gradebook(tmp_path / "gradebook.db")
    errors: list[BaseException] = []

    def grade(student: str) -> None:
        try:
            for _ in range(5):
                with api.Gradebook(url) as gb:
                    gb.update_or_create_student(student)
        except BaseException as err:  # noqa: BLE001
            errors.append(err)

    with schema_checked_once():
        threads = [threading.Thread(target=grade, args=(f"s{i}",)) for i in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert errors == []
    with api.Gradebook(url) as gb:
        assert sorted(s.id for s in gb.students) == ["ann", "s0", "s1", "s2", "s3"]


def test_whatever_stood_before_a_run_is_what_stands_after(tmp_path: Path, monkeypatch) -> None:
    """Why: another wrapper of ``Gradebook.__init__`` (a test's counter, a later patch) that
    was in place when a run began must still be there, and still called, when it ends."""
    url = _gradebook(tmp_path / "gradebook.db")
    calls: list[str] = []
    theirs = api.Gradebook.__init__

    def wrapper(self, *args, **kwargs):
        calls.append("wrapper")
        theirs(self, *args, **kwargs)

    monkeypatch.setattr(api.Gradebook, "__init__", wrapper)
    with schema_checked_once():
        for _ in range(2):
            with api.Gradebook(url):
                pass
    assert api.Gradebook.__init__ is wrapper
    assert calls == ["wrapper"]  # the first open checked (through it), the second did not
