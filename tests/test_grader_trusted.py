"""The trusted verdict machinery: the wire format, the checkers, the preflight, setup failures.

Why: the whole grade rests on three claims. The grader only believes data of exact built-in
types (the wire), every test cell has a checker's verdict (never its outputs), and a grading
machine that cannot run the master stops before it turns a class into zeros.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import nbformat
import pytest
from forgeries import Always
from grader_corpus import ASSIGNMENT, build_course, master_notebook

from grader.grading.autograde import StudentResult, _flag_setup_failures, autograde
from grader.handout.release import release_all
from grader.sandbox.bubblewrap import check_sandbox
from grader.stores.course import Course, CourseError
from grader.verdicts.preflight import PreflightError
from grader.verdicts.trusted import Context, ProbeFailed, load_checker, parse_answer, probe_code
from tunelab.checks import quiz as quiz_checks
from tunelab.checks import wire

ROOT = Path(__file__).resolve().parents[1]


# -- the wire -------------------------------------------------------------------------------------
def test_wire_round_trip_gives_exact_builtin_types() -> None:
    import numpy as np
    import pandas as pd

    class Liar(int):
        def __eq__(self, other):
            return True

        __hash__ = int.__hash__

    value = {
        "n": np.int64(3),
        "liar": Liar(7),
        "x": np.float32(0.5),
        "nan": float("nan"),
        "s": pd.Series([1.0, np.nan], index=[2, 1]),
        "label": "healthy",
        "flag": True,
    }
    got = wire.decode_text(wire.dumps(wire.encode(value)))
    assert type(got["n"]) is int and got["n"] == 3
    assert type(got["liar"]) is int and got["liar"] == 7 and got["liar"] != 8
    assert type(got["x"]) is float and math.isnan(got["nan"])
    assert got["s"] == wire.Series((2, 1), (1.0, got["s"].values[1]))
    assert type(got["flag"]) is bool and not wire.is_whole(got["flag"])


@pytest.mark.parametrize(
    "text",
    [
        "NaN",  # a bare constant
        '{"a": 1}',  # an untagged object
        '{"t": "float", "v": "huge"}',
        '{"t": "series", "index": [1], "values": []}',
        '{"t": "series", "index": [[1]], "values": [1]}',
        '{"t": "dict", "items": [[1, 2]]}',
        "[" * 5000 + "]" * 5000,  # nesting
        "not json",
    ],
)
def test_wire_rejects_malformed_answers(text: str) -> None:
    with pytest.raises(wire.WireError):
        wire.decode_text(text)


def test_one_answer_carries_at_most_max_items_elements(capsys) -> None:
    """A function that returns millions of numbers per hidden case is named "too large" at
    once (it used to keep the kernel encoding until the probe's timeout), and the cases
    of one probe share the budget, so the whole answer stays under MAX_BYTES."""
    import time

    from tunelab.checks import probe

    ns: dict = {}
    exec("def best_epoch(v):\n    return list(range(wire.MAX_ITEMS * 25))", {"wire": wire}, ns)
    exec("def f(v):\n    return list(range(wire.MAX_ITEMS * 2 // 5))", {"wire": wire}, ns)
    series = {"index": [1, 2, 3], "values": [0.3, 0.2, 0.1]}
    started = time.process_time()
    probe.run("@@n@@", "sql_overfitting", "best_epoch", json.dumps({"cases": [series] * 3}), ns)
    answer = parse_answer(capsys.readouterr().out, "@@n@@")
    assert time.process_time() - started < 2.0  # the lists are built, never encoded
    assert answer == [wire.Other("list", "5,000,000 items: too large for an answer")] * 3
    ns["best_epoch"] = ns["f"]  # 80,000 items per case: two fit, the third does not
    probe.run("@@n@@", "sql_overfitting", "best_epoch", json.dumps({"cases": [series] * 3}), ns)
    answer = parse_answer(capsys.readouterr().out, "@@n@@")
    assert [len(a) for a in answer[:2]] == [80_000, 80_000]
    assert answer[2] == wire.Other("list", "80,000 items: too large for an answer")
    # outside a probe each value has its own budget: a student's local checks never run dry
    for _ in range(3):
        assert len(wire.encode(list(range(wire.MAX_ITEMS)))) == wire.MAX_ITEMS
    assert wire.encode({i: i for i in range(wire.MAX_ITEMS + 1)})["t"] == "other"


def test_only_the_line_with_the_nonce_is_believed() -> None:
    nonce = "@@grader-abc@@"
    assert parse_answer(f"noise\n{nonce}[1, 2]\n@@grader-other@@[3]", nonce) == [1, 2]
    from grader.verdicts.trusted import ProbeFailed

    with pytest.raises(ProbeFailed):
        parse_answer("[1, 2]\n", nonce)
    code = probe_code(nonce, "generic", "variable", {"name": "x'); import os; ('"})
    assert code.count("\n") == 0 and "import os;" in code  # inside a string literal, inert
    compile(code, "probe", "eval")


# -- checkers -------------------------------------------------------------------------------------
def _quiz_verdicts(answers: dict) -> dict[str, bool]:
    checker = load_checker(ROOT, "quiz")
    ns = {"answers": answers}

    def probe(module: str, part: str, payload) -> object:
        result = quiz_checks.PROBES[part](ns, json.loads(json.dumps(payload)))
        return wire.decode_text(wire.dumps(result))

    return {
        gid: checker.judge(gid, Context(gid, 1, probe, checker.module, ROOT)).passed
        for gid in checker.checks
    }


def test_always_equal_quiz_answers_score_only_their_letter() -> None:
    honest = _quiz_verdicts({q: "a" for q in quiz_checks.QUESTIONS})
    forged = _quiz_verdicts({q: Always("a") for q in quiz_checks.QUESTIONS})
    assert forged == honest
    assert 0 < sum(forged.values()) < len(forged) / 2


def test_every_test_cell_of_every_assignment_has_a_check() -> None:
    for assignment in ("sql_overfitting", "quiz"):
        checker = load_checker(ROOT, assignment)
        nb = nbformat.read(ROOT / "solutions" / assignment / f"{assignment}.ipynb", as_version=4)
        tests = {
            c.metadata["nbgrader"]["grade_id"]
            for c in nb.cells
            if c.cell_type == "code" and c.metadata.get("nbgrader", {}).get("grade")
        }
        assert tests == set(checker.checks), assignment


def test_an_assignment_without_a_checker_is_refused(tmp_path: Path) -> None:
    root = build_course(tmp_path / "course")
    (root / "solutions" / ASSIGNMENT / "checker.py").unlink()
    course = Course(root=root, instructor=root / ".instructor")
    with pytest.raises(CourseError, match="checker.py is missing"):
        autograde(course, ASSIGNMENT, sandbox=False)


def test_the_release_never_holds_a_checker(tmp_path: Path) -> None:
    root = build_course(tmp_path / "course")
    course = Course(root=root, instructor=root / ".instructor")
    release_all(course=course)
    assert not list((root / "notebooks").rglob("checker.py"))
    assert not list((ROOT / "notebooks").rglob("*.py")), "no checker-side module is released"


# -- a broken grading machine ---------------------------------------------------------------------
@pytest.mark.skipif(bool(check_sandbox()), reason=check_sandbox() or "ok")
def test_preflight_stops_before_a_class_gets_zeros(tmp_path: Path) -> None:
    """The machine cannot read what the setup cell needs: no student is graded at all."""
    root = build_course(tmp_path / "course")
    master = master_notebook()
    master.cells[1].source = "import math\nopen('/opt/grading-data-that-is-not-mounted.csv')"
    nbformat.write(master, root / "solutions" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb")
    course = Course(root=root, instructor=root / ".instructor")
    release_all(course=course)
    for student in ("ann", "bob"):
        folder = course.submitted / student / ASSIGNMENT
        folder.mkdir(parents=True)
        nbformat.write(master, folder / f"{ASSIGNMENT}.ipynb")
    with pytest.raises(PreflightError) as err:
        autograde(course, ASSIGNMENT, workers=1)
    text = str(err.value)
    assert "master solution" in text and "FileNotFoundError" in text and "setup" in text
    assert not course.autograded.exists() or not any(course.autograded.iterdir())


def test_a_setup_cell_failing_for_most_of_a_class_is_not_graded() -> None:
    results = []
    for i in range(5):
        result = StudentResult(f"s{i}", ASSIGNMENT, score=0.0, max_score=4.0)
        if i < 4:
            result.setup_errors = {"setup": "ModuleNotFoundError: No module named 'tunelab'"}
        results.append(result)
    _flag_setup_failures(results)
    assert [r.status for r in results] == ["failed"] * 4 + ["graded"]
    assert "grading-machine problem" in results[0].message
    assert results[0].message.startswith("not graded:")


def test_hints_in_checks_and_checkers_name_real_sections() -> None:
    """The visible and hidden checks' "Reread NN_name, 'Section'" hints point at headings."""
    import re

    from test_notebooks import _REFERENCE, MASTERS, headings

    titles = {p.parent.name: {text for _, text in headings(nbformat.read(p, 4))} for p in MASTERS}
    sources = [*sorted((ROOT / "tunelab" / "checks").glob("*.py"))]
    sources += sorted((ROOT / "solutions").glob("*/checker.py"))
    broken, found = [], 0
    for path in sources:
        text = re.sub(r"([\"'])\s*\n\s*[rbfu]*\1", "", path.read_text())
        for target, section in _REFERENCE.findall(" ".join(text.split())):
            found += 1
            if target not in titles or not any(t.endswith(section) for t in titles[target]):
                broken.append(f"{path.relative_to(ROOT)}: {target}, {section!r}")
    assert found >= 20, f"only {found} hints found: did the pattern stop matching?"
    assert not broken, "hints point at sections that do not exist:\n" + "\n".join(broken)


# -- one probe for parts that read the same state ------------------------------------------------
def test_probe_once_asks_the_kernel_once_per_submission_and_keeps_no_failure() -> None:
    calls: list[str] = []

    def probe(module: str, part: str, payload) -> object:
        calls.append(part)
        if part == "flaky" and calls.count("flaky") == 1:
            raise ProbeFailed("hung")
        return {"q1": "a"}

    memo: dict = {}
    parts = [Context(f"q{i}-check", 1, probe, "quiz", ROOT, memo=memo) for i in range(3)]
    assert [ctx.probe_once("answers", {}) for ctx in parts] == [{"q1": "a"}] * 3
    assert parts[0].probe_once("answers", {"other": 1}) == {"q1": "a"}  # another payload
    assert calls == ["answers", "answers"]
    with pytest.raises(ProbeFailed):
        parts[0].probe_once("flaky", {})
    assert parts[1].probe_once("flaky", {}) == {"q1": "a"}  # the failure was not kept
    fresh = Context("q1-check", 1, probe, "quiz", ROOT)  # another submission: its own memo
    fresh.probe_once("answers", {})
    assert calls.count("answers") == 3


def test_a_restarted_kernel_is_probed_afresh(monkeypatch) -> None:
    """Why: after a restart the answers come from replayed cells, not the kernel before."""
    from grader.verdicts.sandboxedexecute import SandboxedExecute

    step = SandboxedExecute(sandbox=False)
    step._memo = {"answers|{}": {"q1": "a"}}

    def no_kernel():
        raise RuntimeError("no kernel here")

    monkeypatch.setattr(step, "create_kernel_manager", no_kernel)
    with pytest.raises(RuntimeError):
        step._start_kernel()
    assert step._memo == {}


def test_the_quiz_reads_its_answers_with_one_probe(tmp_path, monkeypatch) -> None:
    """Fourteen parts, one kernel round trip (each part used to probe the same dict)."""
    import random

    from grader.demo import make_submission
    from grader.handout.release import register_assignment
    from grader.verdicts.sandboxedexecute import SandboxedExecute

    course = Course.from_env(ROOT, tmp_path / "instructor")
    register_assignment(course, "quiz")
    master = nbformat.read(ROOT / "solutions" / "quiz" / "quiz.ipynb", 4)
    released = nbformat.read(ROOT / "notebooks" / "quiz" / "quiz.ipynb", 4)
    folder = course.submitted / "ann" / "quiz"
    folder.mkdir(parents=True)
    data = make_submission("complete", released, master, random.Random(0), Path("/x"))
    (folder / "quiz.ipynb").write_bytes(data)
    probes: list[str] = []
    real = SandboxedExecute.execute_cell

    def counting(self, cell, index, **kwargs):
        if "tunelab.checks.probe" in cell.source:
            probes.append(cell.source)
        return real(self, cell, index, **kwargs)

    monkeypatch.setattr(SandboxedExecute, "execute_cell", counting)
    (result,) = autograde(course, "quiz", sandbox=not check_sandbox(), preflight=False).results
    assert result.score == result.max_score == 14, result.message
    assert len(probes) == 1
