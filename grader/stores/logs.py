"""Capture what nbgrader logs while it works on one submission, to build per-student messages.

nbgrader reports the interesting events (an edited test cell restored, a duplicated cell id,
a missing notebook) only as log warnings; the grader turns those into the message the
instructor reads next to each student. Records are filtered by thread, because several
submissions are graded at the same time in one process.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Iterator


class _ThreadBuffer(logging.Handler):
    def __init__(self, level: int) -> None:
        super().__init__(level)
        self.thread = threading.get_ident()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.thread == self.thread:
            self.records.append(record)


@contextlib.contextmanager
def captured(
    logger: logging.Logger, level: int = logging.WARNING
) -> Iterator[list[logging.LogRecord]]:
    """Collect records of ``level`` and above logged on ``logger`` by the current thread."""
    handler = _ThreadBuffer(level)
    logger.addHandler(handler)
    try:
        yield handler.records
    finally:
        logger.removeHandler(handler)


def message_of(record: logging.LogRecord) -> str:
    try:
        return record.getMessage()
    except Exception:  # a malformed %-format in a log call must not stop grading
        return str(record.msg)


def failure_reason(records: list[logging.LogRecord]) -> str:
    """Why nbgrader failed: the exception line ending the last traceback it logged, else its
    first error. (Its last error is always "Please see the above traceback...".)"""
    for record in reversed(records):
        text = message_of(record).strip()
        if text.startswith("Traceback") or "Traceback (most recent call last)" in text:
            last = text.splitlines()[-1].strip()
            return last.split(": ", 1)[1] if last.startswith("grader.") and ": " in last else last
    for record in records:
        if record.levelno >= logging.ERROR:
            return message_of(record).strip()
    return ""
