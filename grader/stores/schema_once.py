"""While a class is graded, nbgrader checks each gradebook's schema once, not per open.

Why: ``nbgrader.api.Gradebook()`` lists the database's tables, runs ``create_all`` (a
check per table) and looks up the course row every time it is opened, and grading opens it
about ten times per submission (nbgrader's converter and steps, then the grader's own
reads). On SQLite that is 1.3 of each open's 2.3 ms, about 20 ms of the grader's CPU per
submission; on a PostgreSQL gradebook each of those checks is a round trip to the server.
Within one grading run the schema and the course row cannot go away, so after the first
open of a (database, course) the later opens only connect, as nbgrader's own ``__init__``
does after its checks.

:func:`schema_checked_once` is entered by a run (re-entrant: the preflight is inside it);
outside every run, ``Gradebook`` is nbgrader's, unchanged.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator

from nbgrader import api
from sqlalchemy import create_engine
from sqlalchemy.orm import scoped_session, sessionmaker

_lock = threading.Lock()
_active = 0
_checked: set[tuple[str, str]] = set()
#: ``Gradebook.__init__`` as it was when the first of the runs now going began (restored
#: when the last ends): taken then, not at import, so whatever stood there is kept
_saved_init = api.Gradebook.__init__


def _init(self, db_url: str, course_id: str = "default_course", authenticator=None) -> None:
    """nbgrader's ``Gradebook.__init__``, its checks skipped for a database checked before."""
    key = (str(db_url), course_id)
    if key not in _checked:
        _saved_init(self, db_url, course_id, authenticator)
        _checked.add(key)  # only once the checks passed
        return
    self.engine = create_engine(db_url, echo=False, future=True)
    self.db = scoped_session(sessionmaker(autoflush=True, bind=self.engine, future=True))
    self.course_id = course_id
    self.authenticator = authenticator


@contextlib.contextmanager
def schema_checked_once() -> Iterator[None]:
    """Within: each (database, course) is checked at its first open only."""
    global _active, _saved_init
    with _lock:
        if _active == 0:
            _saved_init = api.Gradebook.__init__
            api.Gradebook.__init__ = _init
        _active += 1
    try:
        yield
    finally:
        with _lock:
            _active -= 1
            if _active == 0:
                api.Gradebook.__init__ = _saved_init
                _checked.clear()
