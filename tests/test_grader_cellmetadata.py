"""The grader's CheckCellMetadata: nbgrader's step, its schema checked once instead of per cell."""

from __future__ import annotations

import copy
import logging
from pathlib import Path

import jsonschema
import nbformat
import pytest
from nbgrader.preprocessors import CheckCellMetadata as NbgraderStep

from grader.verdicts import checkcellmetadata
from grader.verdicts.checkcellmetadata import CheckCellMetadata

MASTER = (
    Path(__file__).resolve().parents[1] / "solutions" / "sql_overfitting" / "sql_overfitting.ipynb"
)


def _graded(nb):
    return next(c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade"))


def _outcome(step, nb) -> str:
    try:
        step(log=logging.getLogger("test")).preprocess(copy.deepcopy(nb), {})
    except Exception as err:  # noqa: BLE001 (the outcome is the point)
        return f"{type(err).__name__}: {str(err).splitlines()[0]}"
    return "ok"


def _breakages():
    yield "valid", lambda meta: None
    yield "points not a number", lambda meta: meta.__setitem__("points", "ten")
    yield "unknown key", lambda meta: meta.__setitem__("weight", 2)
    yield "no grade id", lambda meta: meta.pop("grade_id")
    yield "old schema", lambda meta: meta.__setitem__("schema_version", 1)
    yield "new schema", lambda meta: meta.__setitem__("schema_version", 9)
    yield "grade id a number", lambda meta: meta.__setitem__("grade_id", 7)
    yield "points missing", lambda meta: meta.pop("points")
    yield "grade not a boolean", lambda meta: meta.__setitem__("grade", "yes")
    yield "task not a boolean", lambda meta: meta.__setitem__("task", None)


@pytest.mark.parametrize(
    ("name", "breaks"), list(_breakages()), ids=lambda x: x if isinstance(x, str) else ""
)
def test_it_decides_as_nbgraders_step(name, breaks):
    nb = nbformat.read(MASTER, 4)
    breaks(_graded(nb).metadata["nbgrader"])
    ours, theirs = _outcome(CheckCellMetadata, nb), _outcome(NbgraderStep, nb)
    assert ours == theirs
    assert (ours == "ok") == (name == "valid")


def test_the_schema_is_checked_once_not_per_cell(monkeypatch):
    checkcellmetadata._validator.cache_clear()
    calls = []
    original = jsonschema.Draft4Validator.check_schema.__func__
    monkeypatch.setattr(
        jsonschema.Draft4Validator,
        "check_schema",
        classmethod(lambda cls, schema, **kw: (calls.append(1), original(cls, schema, **kw))[1]),
    )
    nb = nbformat.read(MASTER, 4)
    _graded(nb).metadata["nbgrader"]["weight"] = 2  # a broken cell reaches jsonschema
    for _ in range(3):
        with pytest.raises(Exception, match="failed to validate"):
            CheckCellMetadata(log=logging.getLogger("test")).preprocess(nb, {})
    assert len(calls) == 1


def test_valid_cells_pass_the_compiled_schema_alone_and_stay_as_they_were(monkeypatch):
    """Why: the compiled check is the fast path; it must neither fill in the schema's
    defaults (that would change the cells) nor leave the valid ones to jsonschema."""

    def slow():
        raise AssertionError("jsonschema consulted for a valid cell")

    monkeypatch.setattr(checkcellmetadata, "_validator", slow)
    for master in sorted(MASTER.parents[1].glob("*/*.ipynb")):
        nb = nbformat.read(master, 4)
        before = copy.deepcopy(nb)
        CheckCellMetadata().preprocess(nb, {})
        assert nb == before, master.name
