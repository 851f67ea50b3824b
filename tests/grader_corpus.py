"""A tiny nbgrader course and a corpus of submissions, good and bad, for the grader's tests.

The course ``mini`` has one notebook with three graded parts (4 points):

* ``test_square`` (1 point): visible test of ``square``;
* ``test_answer`` (2 points): a visible format check and a HIDDEN test (``answer == 42``),
  so a submission only passes it when the master's hidden test is restored;
* ``test_cube`` (1 point): independent of the others, to show a broken part does not
  take the rest of the grade down with it.

Each :class:`Case` turns the released student copy into one submission and says what the
grader must make of it: the score and words the per-student message must contain.
"""

from __future__ import annotations

import copy
import hashlib
import json
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

ASSIGNMENT = "mini"
MAX_SCORE = 4.0
KERNELSPEC = {"name": "python3", "display_name": "Python 3", "language": "python"}


def run_sandboxed(cells: list[str], workdir: Path, timeout: int = 10, **sandbox) -> list[dict]:
    """Execute cells in one sandboxed kernel (``Sandbox`` traits from ``sandbox``); per cell,
    its printed text and the name and message of its last error (or None)."""
    from traitlets.config import Config

    from grader.verdicts.sandboxedexecute import SandboxedExecute

    cfg = Config()
    for key, value in sandbox.items():
        setattr(cfg.Sandbox, key, value)
    nb = new_notebook(cells=[new_code_cell(c) for c in cells], metadata={"kernelspec": KERNELSPEC})
    step = SandboxedExecute(timeout=timeout, config=cfg)
    nb, _ = step.preprocess(nb, {"metadata": {"path": str(workdir)}})
    out = []
    for cell in nb.cells:
        text = "".join(o.get("text", "") for o in cell.outputs)
        errors = [o for o in cell.outputs if o.get("output_type") == "error"]
        out.append(
            {
                "text": text,
                "error": errors[-1]["ename"] if errors else None,
                "evalue": errors[-1].get("evalue") if errors else None,
            }
        )
    return out


def _meta(grade_id: str, *, solution=False, grade=False, locked=False, points=0) -> dict:
    meta = {"grade_id": grade_id, "solution": solution, "grade": grade, "locked": locked}
    if grade:
        meta["points"] = points
    meta["schema_version"] = 3
    return {"nbgrader": meta}


SOLUTIONS = {
    "sol_square": "def square(x):\n    ### BEGIN SOLUTION\n    return x * x\n    ### END SOLUTION",
    "sol_answer": "### BEGIN SOLUTION\nanswer = 42\n### END SOLUTION",
    "sol_cube": "def cube(x):\n    ### BEGIN SOLUTION\n    return x**3\n    ### END SOLUTION",
}
TESTS = {
    "test_square": "assert square(2) == 4, 'square(2) should be 4'",
    "test_answer": (
        "assert isinstance(answer, int), 'answer must be an int'\n"
        "### BEGIN HIDDEN TESTS\nassert answer == 42, 'answer is not the expected value'\n"
        "### END HIDDEN TESTS"
    ),
    "test_cube": "assert cube(2) == 8, 'cube(2) should be 8'",
}
POINTS = {"test_square": 1, "test_answer": 2, "test_cube": 1}

#: The mini course's trusted checker (solutions/mini/checker.py): the hidden test of
#: ``test_answer`` lives here, not in the notebook, and every verdict is computed here.
CHECKER = """
from grader.verdicts.trusted import Context, Verdict
from tunelab.checks import wire

MODULE = "generic"


def _calls(ctx: Context, name: str, calls: list, want: list, why: str) -> Verdict:
    got = ctx.probe("call", {"name": name, "calls": calls})
    if type(got) is not list or len(got) != len(want):
        return Verdict.fail(f"{why}; the grader got no answers")
    for g, w in zip(got, want):
        if not (type(g) is int and g == w):
            return Verdict.fail(f"{why}; {wire.describe(g)}")
    return Verdict.ok(f"{name} passed")


def check_square(ctx: Context) -> Verdict:
    x = int(ctx.rng().integers(3, 1000))
    return _calls(ctx, "square", [[2], [x]], [4, x * x], "square(2) should be 4")


def check_answer(ctx: Context) -> Verdict:
    got = ctx.probe("variable", {"name": "answer"})
    if type(got) is not int:
        return Verdict.fail(f"answer must be an int; {wire.describe(got)}")
    if got != 42:
        return Verdict.fail("answer is not the expected value")
    return Verdict.ok("answer passed")


def check_cube(ctx: Context) -> Verdict:
    x = int(ctx.rng().integers(3, 1000))
    return _calls(ctx, "cube", [[2], [x]], [8, x**3], "cube(2) should be 8")


CHECKS = {"test_square": check_square, "test_answer": check_answer, "test_cube": check_cube}
"""


def master_notebook() -> nbformat.NotebookNode:
    cells = [
        new_markdown_cell("# Mini assignment", metadata=_meta("intro", locked=True)),
        new_code_cell("import math", metadata=_meta("setup", locked=True)),
    ]
    for part in ("square", "answer", "cube"):
        sol, test = f"sol_{part}", f"test_{part}"
        cells.append(new_code_cell(SOLUTIONS[sol], metadata=_meta(sol, solution=True)))
        cells.append(
            new_code_cell(
                TESTS[test], metadata=_meta(test, grade=True, locked=True, points=POINTS[test])
            )
        )
    for cell in cells:  # stable ids: the same master gives the same bytes
        cell.id = cell.metadata["nbgrader"]["grade_id"].replace("_", "-")
    return new_notebook(cells=cells, metadata={"kernelspec": KERNELSPEC})


def build_course(root: Path) -> Path:
    """Write the master into ``root/solutions/mini`` (and a data file); return ``root``."""
    folder = root / "solutions" / ASSIGNMENT
    folder.mkdir(parents=True)
    nbformat.write(master_notebook(), folder / f"{ASSIGNMENT}.ipynb")
    (folder / "checker.py").write_text(CHECKER)
    (root / "data").mkdir()
    (root / "data" / "numbers.csv").write_text("x\n1\n2\n")
    (root / "secret.txt").write_text("not for students\n")
    return root


# -- submissions ---------------------------------------------------------------------------
def _grade_id(cell) -> str | None:
    return cell.metadata.get("nbgrader", {}).get("grade_id")


def _cell(nb, grade_id: str):
    for cell in nb.cells:
        if _grade_id(cell) == grade_id:
            return cell
    raise KeyError(grade_id)


def _answer(nb, grade_id: str, source: str) -> None:
    _cell(nb, grade_id).source = source


def _complete(nb) -> None:
    for grade_id, source in SOLUTIONS.items():
        lines = source.splitlines()
        text = "\n".join(
            line for line in lines if "### BEGIN" not in line and "### END" not in line
        )
        _answer(nb, grade_id, text)


@dataclass
class Case:
    """One student's submission and what grading it must give."""

    student: str
    make: Callable[[nbformat.NotebookNode, dict], object]  # edits the released copy in place
    score: float
    says: tuple[str, ...] = ()  # phrases the message must contain (case-insensitive)
    status: str = "graded"
    raw: bytes | None = None  # write these bytes instead of a notebook
    filename: str | None = None  # save under another name
    hostile: bool = False
    failed: tuple[str, ...] = field(default=())  # grade ids that must be failed


def _seq(*steps):
    def run(nb, ctx):
        for step in steps:
            step(nb, ctx)

    return run


def _complete_step(nb, ctx):
    _complete(nb)


def _set(grade_id: str, source: str):
    def step(nb, ctx):
        _answer(nb, grade_id, source.format(**ctx))

    return step


def _delete(grade_id: str):
    def step(nb, ctx):
        nb.cells = [c for c in nb.cells if _grade_id(c) != grade_id]

    return step


def _duplicate(grade_id: str):
    def step(nb, ctx):
        index = nb.cells.index(_cell(nb, grade_id))
        nb.cells.insert(index + 1, copy.deepcopy(nb.cells[index]))

    return step


HOSTILE_READS = """\
import os
found = []
for target in {targets!r}:
    try:
        with open(target) as fh:
            fh.read(1)
        found.append(target)
    except OSError as err:
        print("blocked", type(err).__name__)
print("READ:", found)
answer = 42"""

HOSTILE_WRITES = """\
import os, shutil
done = []
for action, target in {targets!r}:
    try:
        if action == "remove":
            os.remove(target)
        elif action == "rmtree":
            shutil.rmtree(target)
        else:
            with open(target, "a") as fh:
                fh.write("hacked")
        done.append(target)
    except OSError as err:
        print("blocked", type(err).__name__)
print("CHANGED:", done)
answer = 42"""

NETWORK = """\
import socket, threading
try:
    socket.create_connection(("1.1.1.1", 80), timeout=2)
    print("OUTSIDE: reached")
except OSError as err:
    print("outside blocked", type(err).__name__)
server = socket.socket()
server.bind(("127.0.0.1", 0))
server.listen(1)
threading.Thread(target=lambda: server.accept()[0].sendall(b"pong"), daemon=True).start()
client = socket.create_connection(server.getsockname(), timeout=2)
print("loopback:", client.recv(4).decode())
answer = 42"""


def corpus(ctx: dict) -> list[Case]:
    """All cases; ``ctx`` names real paths a hostile submission goes after."""
    return [
        Case("complete", _complete_step, 4),
        Case("blank", lambda nb, c: None, 0, ("NotImplementedError",)),
        Case("partial", _set("sol_square", "def square(x):\n    return x * x"), 1),
        Case(
            "wrong",
            _seq(_complete_step, _set("sol_answer", "answer = 41")),
            2,
            ("test_answer", "not the expected value"),
            failed=("test_answer",),
        ),
        Case(
            "raises",
            _seq(_complete_step, _set("sol_square", "def square(x):\n    raise ValueError('no')")),
            3,
            ("test_square", "ValueError"),
            failed=("test_square",),
        ),
        Case(
            "infinite_loop",
            _seq(_complete_step, _set("sol_answer", "while True:\n    pass\nanswer = 42")),
            2,
            ("sol_answer timed out",),
            failed=("test_answer",),
        ),
        Case(
            "sleeper",
            _seq(_complete_step, _set("sol_cube", "import time\ntime.sleep(10**6)")),
            3,
            ("sol_cube timed out",),
            failed=("test_cube",),
        ),
        Case(
            "memory_bomb",
            _seq(
                _complete_step,
                _set("sol_answer", "hog = bytearray(1536 * 2**20)  # over the 1 GB limit"),
            ),
            2,
            ("MemoryError",),
            failed=("test_answer",),
        ),
        Case(
            "fork_bomb",
            _seq(_complete_step, _set("sol_answer", "import os\nwhile True:\n    os.fork()")),
            2,
            ("sol_answer",),  # BlockingIOError, or a timeout while 256 processes compete
            failed=("test_answer",),
        ),
        Case(
            "exits",
            _seq(_complete_step, _set("sol_square", "import os\nos._exit(1)")),
            3,
            ("kernel died in sol_square",),
            failed=("test_square",),
        ),
        Case(
            "segfault",
            _seq(_complete_step, _set("sol_cube", "import ctypes\nctypes.string_at(0)")),
            3,
            ("kernel died in sol_cube",),
            failed=("test_cube",),
        ),
        Case(
            "sys_exit",
            _seq(_complete_step, _set("sol_cube", "import sys\nsys.exit()\ndef cube(x): return 8")),
            3,
            ("test_cube",),
            failed=("test_cube",),
        ),
        Case(
            "chatty",
            _seq(
                _complete_step,
                _set("sol_square", "print('x' * 50_000_000)\ndef square(x):\n    return x * x"),
            ),
            4,
            ("sol_square printed too much",),
        ),
        Case(
            "edited_test",
            _seq(_set("sol_square", "def square(x):\n    return 0"), _set("test_square", "pass")),
            0,
            ("cell test_square was edited",),
            failed=("test_square",),
        ),
        Case(
            "deleted_test",
            _seq(_complete_step, _delete("test_answer")),
            4,
            ("test cell test_answer was deleted",),
        ),
        Case(
            "duplicated_test",
            _seq(_complete_step, _duplicate("test_square")),
            4,
            ("test_square was duplicated",),
        ),
        Case("corrupt_json", None, 0, ("not valid notebook JSON", "line"), raw=b'{"cells": [\n'),
        Case("empty_file", None, 0, ("is empty",), raw=b""),
        Case(
            "wrong_name",
            _complete_step,
            0,
            ("mini.ipynb is missing", "Mini (1).ipynb"),
            filename="Mini (1).ipynb",
        ),
        Case(
            "reads_secrets",
            _seq(_complete_step, _set("sol_answer", HOSTILE_READS)),
            4,
            (),
            hostile=True,
        ),
        Case(
            "vandal",
            _seq(_complete_step, _set("sol_answer", HOSTILE_WRITES)),
            4,
            (),
            hostile=True,
        ),
        Case("network", _seq(_complete_step, _set("sol_answer", NETWORK)), 4, (), hostile=True),
    ]


def hostile_context(course_root: Path, instructor: Path) -> dict:
    """Real paths, outside the sandbox, that hostile submissions try to read or damage."""
    other = instructor / "submitted" / "complete" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb"
    reads = [
        str(course_root / "solutions" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb"),
        str(instructor / "gradebook.db"),
        str(other),
        str(course_root / "secret.txt"),
        str(Path.home() / ".bashrc"),
        "/etc/shadow",
    ]
    writes = [
        ["append", str(instructor / "gradebook.db")],
        ["remove", str(course_root / "data" / "numbers.csv")],
        ["append", str(course_root / "data" / "numbers.csv")],
        ["rmtree", str(course_root / "solutions")],
        ["append", str(other)],
        ["append", str(course_root / "notebooks" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb")],
    ]
    return {"targets": reads, "writes": writes}


def write_submissions(released: Path, submitted: Path, cases: list[Case], ctx: dict) -> None:
    """Write each case into ``submitted/STUDENT/mini/`` from the released copy."""
    for case in cases:
        folder = submitted / case.student / ASSIGNMENT
        folder.mkdir(parents=True, exist_ok=True)
        target = folder / (case.filename or f"{ASSIGNMENT}.ipynb")
        if case.raw is not None:
            target.write_bytes(case.raw)
            continue
        nb = nbformat.read(released, as_version=4)
        local = dict(ctx)
        if case.student == "vandal":
            local["targets"] = ctx["writes"]
        case.make(nb, local)
        nbformat.write(nb, target)


# -- "did anything change?" ---------------------------------------------------------------------
def tree_digest(root: Path, skip: tuple[Path, ...] = ()) -> dict[str, str]:
    """sha256 of every file under ``root`` except those under ``skip``."""
    digests = {}
    for path in sorted(root.rglob("*")):
        if any(path == s or s in path.parents for s in skip) or not path.is_file():
            continue
        digests[str(path.relative_to(root))] = hashlib.sha256(path.read_bytes()).hexdigest()
    return digests


def gradebook_rows(db: Path, exclude: tuple[str, ...] = ()) -> dict[str, list]:
    """Every row of every gradebook table (the rows of students in ``exclude`` left out)."""
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        tables = [r[0] for r in con.execute("select name from sqlite_master where type='table'")]
        dump = {}
        for table in sorted(tables):
            rows = con.execute(f"select * from {table}").fetchall()
            dump[table] = sorted(json.dumps(r, default=str) for r in rows)
        for student in exclude:
            for table, ids in _own_row_ids(con, student).items():
                dump[table] = [r for r in dump[table] if json.loads(r)[0] not in ids]
        return dump
    finally:
        con.close()


def _ids(con: sqlite3.Connection, sql: str, keys: set) -> set:
    found: set = set()
    for key in keys:
        found |= {row[0] for row in con.execute(sql, (key,))}
    return found


def _own_row_ids(con: sqlite3.Connection, student: str) -> dict[str, set]:
    subs = _ids(con, "select id from submitted_assignment where student_id=?", {student})
    nbs = _ids(con, "select id from submitted_notebook where assignment_id=?", subs)
    return {
        "student": {student},
        "submitted_assignment": subs,
        "submitted_notebook": nbs,
        "grade": _ids(con, "select id from grade where notebook_id=?", nbs),
        "comment": _ids(con, "select id from comment where notebook_id=?", nbs),
    }


def grades(db: Path) -> dict[tuple[str, str, str], tuple]:
    """(assignment, student, grade cell) -> (auto_score, needs_manual_grade) in a gradebook."""
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        rows = con.execute(
            "select a.name, sa.student_id, bc.name, g.auto_score, g.needs_manual_grade "
            "from grade g join submitted_notebook sn on g.notebook_id = sn.id "
            "join submitted_assignment sa on sn.assignment_id = sa.id "
            "join assignment a on sa.assignment_id = a.id "
            "join base_cell bc on g.cell_id = bc.id"
        ).fetchall()
    finally:
        con.close()
    return {(a, s, c): (score, manual) for a, s, c, score, manual in rows}


def scores(db: Path) -> dict[tuple[str, str], tuple]:
    """(student, grade cell) -> (auto_score, needs_manual_grade): what grading decided."""
    return {(s, c): value for (_, s, c), value in grades(db).items()}
