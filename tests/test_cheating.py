"""Submissions that only fit the visible checks must lose points on the hidden checks.

Why: the visible checks in a released notebook show a handful of examples. A student (or a
language model) can write code that passes exactly those -- hard-coded answers, a rule of thumb
copied from somewhere, a function that only works on sorted input -- and see every check go
green. The trusted checker's hidden inputs exist to catch that; these tests prove each one does.

Two levels:

* fast, in this process: each cheat runs the released check cell, which must PASS, and then the
  trusted checker (``solutions/sql_overfitting/checker.py``) through the same wire format the
  grader uses across the sandbox, which must FAIL;
* end to end: a whole cheating submission goes through ``python -m grader autograde`` and its
  score is compared with the master's.
"""

from __future__ import annotations

import collections
import json
import sqlite3
import sys
import textwrap
from pathlib import Path

import nbformat
import numpy as np
import pandas as pd
import pytest

try:  # pytest puts tests/ on sys.path (rootdir-relative imports), or tests is a package
    from test_assignments import Course, master_path, release_path, validate
except ImportError:  # pragma: no cover
    from tests.test_assignments import Course, master_path, release_path, validate

import tunelab
from grader.verdicts.trusted import Context, Verdict, load_checker
from tunelab.checks import sql_overfitting as sql_checks
from tunelab.checks import wire
from tunelab.scenarios import LABELS

ROOT = Path(__file__).resolve().parents[1]

SQL = "sql_overfitting"


def cell_source(nb: nbformat.NotebookNode, grade_id: str) -> str:
    for cell in nb.cells:
        if cell.metadata.get("nbgrader", {}).get("grade_id") == grade_id:
            return cell.source
    raise KeyError(grade_id)


@pytest.fixture(scope="module")
def notebooks() -> tuple[nbformat.NotebookNode, nbformat.NotebookNode]:
    return (
        nbformat.read(master_path(SQL), as_version=4),
        nbformat.read(release_path(SQL), as_version=4),
    )


@pytest.fixture(scope="module")
def base_namespace(notebooks) -> dict:
    """What the check cells of parts 1-6 read: the data and the master's own answers."""
    master, _ = notebooks
    ns: dict = {
        "np": np,
        "pd": pd,
        "collections": collections,
        "sqlite3": sqlite3,
        "Path": Path,
        "LABELS": LABELS,
        "checks": sql_checks,
        "snapshots": pd.read_csv(tunelab.data_path("runs/sql_20_epochs.csv")),
    }
    for part in ("p1", "p2", "p3", "p4", "p5"):
        exec(cell_source(master, f"{part}-answer"), ns)
    ns["train_loss"] = ns["epoch_mean_loss"](ns["snapshots"])
    ns["validation_loss"] = (
        ns["snapshots"].dropna(subset=["validation_loss"]).set_index("epoch")["validation_loss"]
    )
    exec(cell_source(master, "p6-answer"), ns)
    return ns


# --------------------------------------------------------------------------------------------
# Cheats: each replaces one answer cell with code that passes the visible check only.
# --------------------------------------------------------------------------------------------

CHEATS = {
    # Reshape instead of grouping: right only while rows are sorted by epoch.
    "p1-reshape-assumes-sorted-rows": (
        "p1",
        """
        def epoch_mean_loss(snapshots):
            n = snapshots["epoch"].nunique()
            values = snapshots["mean_loss"].to_numpy(dtype=float).reshape(n, -1).mean(axis=1)
            return pd.Series(values, index=range(1, n + 1))
        """,
    ),
    # Reads the Series in row order and returns a position, not an epoch label.
    "p2-ignores-index-order": (
        "p2",
        """
        def plateau_epoch(epoch_losses, tol=0.01):
            values = list(epoch_losses)
            for i in range(len(values) - 1):
                if values[i] - values[i + 1] < tol:
                    return i + 1
            return None
        """,
    ),
    # Position of the minimum + 1: right only for a clean 1..n index without NaN.
    "p3-argmin-position": (
        "p3",
        """
        def best_epoch(validation_loss):
            return int(np.argmin(validation_loss.to_numpy())) + 1
        """,
    ),
    # A constant answer: any label passes the visible format check.
    "p4-constant-healthy": ("p4", 'DIAGNOSIS = "healthy"'),
    # Looks up the visible examples by their final loss; everything else is "healthy".
    "p5-hard-coded-visible-cases": (
        "p5",
        """
        _SEEN = {0.362: "healthy", 1.0: "underfitting", 2.4: "no_convergence",
                 0.001: "overfitting", 8.5: "divergence"}

        def classify_curve(train, validation=None):
            if validation is not None:
                return "overfitting"  # the only visible example with a validation curve
            return _SEEN.get(round(float(train.sort_index().iloc[-1]), 3), "healthy")
        """,
    ),
    # Nearest neighbour on (final level, overall drop) to the five visible examples.
    "p5-nearest-visible-example": (
        "p5",
        """
        _PROTOTYPES = {
            "healthy": [1.6, 0.9, 0.55, 0.42, 0.38, 0.37, 0.365, 0.362],
            "underfitting": [1.9, 1.75, 1.6, 1.46, 1.33, 1.21, 1.1, 1.0],
            "no_convergence": [2.3, 2.5, 2.1, 2.6, 2.2, 2.45, 2.15, 2.4],
            "overfitting": [1.3, 0.6, 0.35, 0.2, 0.08, 0.02, 0.004, 0.001],
            "divergence": [1.2, 0.6, 0.45, 0.5, 0.9, 1.8, 3.9, 8.5],
        }

        def _features(values):
            v = np.asarray(values, dtype=float)
            v = v[np.isfinite(v)]
            return np.array([np.log(v[-1]), np.log(v[-1] / v[0])])

        def classify_curve(train, validation=None):
            x = _features(train.sort_index())
            return min(
                _PROTOTYPES, key=lambda k: float(np.sum((_features(_PROTOTYPES[k]) - x) ** 2))
            )
        """,
    ),
    # Rules of thumb that ignore this run's validation curve.
    "p6-keep-20-epochs-lower-lr": (
        "p6",
        'next_run = {"epoch_count": 20, "batch_size": 4, "learning_rate": 0.0005}',
    ),
    "p6-ten-epochs-rule-of-thumb": (
        "p6",
        'next_run = {"epoch_count": 10, "batch_size": 4, "learning_rate": 0.001}',
    ),
    "p6-large-dataset-rule": (
        "p6",
        'next_run = {"epoch_count": 1, "batch_size": 16, "learning_rate": 0.001}',
    ),
    "p6-lowest-training-loss": (
        "p6",
        'next_run = {"epoch_count": int(train_loss.idxmin()), "batch_size": 4,'
        ' "learning_rate": 0.001}',
    ),
    "p6-right-epochs-hotter-lr": (
        "p6",
        'next_run = {"epoch_count": 5, "batch_size": 4, "learning_rate_multiplier": 2.0}',
    ),
}


def trusted_verdict(part: str, ns: dict, seed: int = 1) -> Verdict:
    """The grader's verdict on one part, with the kernel replaced by ``ns`` in this process.

    The probe's answer still crosses the wire format (encode, JSON, strict decode), so the
    checker sees exactly what it would see from a sandboxed kernel.
    """
    checker = load_checker(ROOT, SQL)

    def probe(module: str, name: str, payload) -> object:
        result = sql_checks.PROBES[name](ns, json.loads(json.dumps(payload)))
        return wire.decode_text(wire.dumps(result))

    ctx = Context(f"{part}-check", seed, probe, checker.module, ROOT)
    return checker.judge(f"{part}-check", ctx)


@pytest.mark.parametrize("name", sorted(CHEATS))
def test_cheat_passes_visible_check_but_fails_hidden_checks(name, notebooks, base_namespace):
    master, release = notebooks
    part, source = CHEATS[name]
    ns = dict(base_namespace)
    exec(textwrap.dedent(source), ns)
    # What the student sees: the released check cell passes...
    exec(cell_source(release, f"{part}-check"), dict(ns))
    # ...and what grading decides, outside the kernel: the part fails.
    verdict = trusted_verdict(part, ns)
    assert not verdict.passed, verdict.message
    # The message is feedback for the student: it must say something, not just fail.
    assert len(verdict.message) > 40, verdict.message


@pytest.mark.parametrize("part", ["p1", "p2", "p3", "p4", "p5", "p6"])
@pytest.mark.parametrize("seed", [1, 2])
def test_master_answers_pass_the_hidden_checks(part, seed, notebooks, base_namespace):
    """Control for the test above: the same harness with the honest answer passes."""
    master, _ = notebooks
    exec(cell_source(master, f"{part}-check"), dict(base_namespace))
    verdict = trusted_verdict(part, dict(base_namespace), seed)
    assert verdict.passed, verdict.message


def test_every_cheat_part_is_graded_and_the_notebooks_hold_no_hidden_check(notebooks):
    master, release = notebooks
    checker = load_checker(ROOT, SQL)
    for part, _ in CHEATS.values():
        assert f"{part}-check" in checker.checks
        for nb in (master, release):
            assert "HIDDEN" not in cell_source(nb, f"{part}-check")


# --------------------------------------------------------------------------------------------
# End to end through the grader's autograde
# --------------------------------------------------------------------------------------------

# A whole submission tuned to the visible checks: parts 1-7 cheat, part 8 is honest.
SET_BASED_ACCURACY = """
def execution_accuracy(model_name, heldout, db_path):
    model = genai.GenerativeModel(model_name)
    conn = sqlite3.connect(db_path)
    right = 0
    for question, reference in zip(heldout["text_input"], heldout["output"]):
        try:
            found = set(conn.execute(model.generate_content(question).text).fetchall())
        except sqlite3.Error:
            continue
        right += found == set(conn.execute(reference).fetchall())
    return right / len(heldout)
"""
SUBMISSION_CHEATS = {
    "p1": CHEATS["p1-reshape-assumes-sorted-rows"][1],
    "p2": CHEATS["p2-ignores-index-order"][1],
    "p3": CHEATS["p3-argmin-position"][1],
    "p4": CHEATS["p4-constant-healthy"][1],
    "p5": CHEATS["p5-hard-coded-visible-cases"][1],
    "p6": CHEATS["p6-ten-epochs-rule-of-thumb"][1],
    "p7": SET_BASED_ACCURACY,
}


def fill_release(release, master, overrides: dict[str, str]) -> nbformat.NotebookNode:
    """A student copy with every answer cell filled: the master's answer or an override."""
    nb = nbformat.from_dict(nbformat.reads(nbformat.writes(release), as_version=4))
    for cell in nb.cells:
        meta = cell.metadata.get("nbgrader", {})
        if not meta.get("solution"):
            continue
        gid = meta["grade_id"]
        part = gid.split("-")[0]
        if part in overrides and gid.endswith("-answer"):
            cell.source = textwrap.dedent(overrides[part]).strip()
        elif cell.cell_type == "code":
            cell.source = cell_source(master, gid)
        else:  # the hand-graded justification: any honest attempt
            cell.source = "The first run memorised its training set; the rerun stops earlier."
    return nb


@pytest.fixture(scope="module")
def graded(tmp_path_factory, notebooks):
    """Autograde: the cheating SQL submission and a quiz answered with a constant letter."""
    master, release = notebooks
    course = Course.create(tmp_path_factory.mktemp("cheat-course"))
    for name in (SQL, "quiz"):
        course.generate(name)
    cheater = fill_release(release, master, SUBMISSION_CHEATS)
    course.submit(SQL, "cheater", cheater)
    quiz_release = nbformat.read(release_path("quiz"), as_version=4)
    constant = nbformat.from_dict(nbformat.reads(nbformat.writes(quiz_release), as_version=4))
    for cell in constant.cells:
        gid = cell.metadata.get("nbgrader", {}).get("grade_id", "")
        if gid.endswith("-answer"):
            cell.source = f'answers["{gid.split("-")[0]}"] = "a"'
    course.submit("quiz", "constant", constant)
    course.autograde(SQL)
    course.autograde("quiz")
    return course, cheater, constant


def test_cheating_submission_sees_only_green_visible_checks(graded, tmp_path, monkeypatch):
    _, cheater, constant = graded
    monkeypatch.setenv("JUPYTERHUB_USER", "constant")  # the quiz shows this student's variant
    for name, nb in ((SQL, cheater), ("quiz", constant)):
        path = tmp_path / f"{name}.ipynb"
        nbformat.write(nb, path)
        results = validate(path)
        assert results == {}, f"a cheat already fails a visible check of {name}: {results}"


def test_cheating_submission_loses_the_hidden_points(graded):
    """(test_assignments checks that the master itself gets full marks.)"""
    course, _, _ = graded
    cheater = course.grades(SQL, "cheater")
    auto = [g for g in cheater if not cheater[g].needs_manual_grade]
    for part in SUBMISSION_CHEATS:
        assert cheater[f"{part}-check"].score == 0, f"{part} cheat kept {cheater[f'{part}-check']}"
    # The honest part (8: launching the rerun) keeps its points.
    assert cheater["p8-check"].score == cheater["p8-check"].max_score
    earned = sum(cheater[g].score for g in auto)
    possible = sum(cheater[g].max_score for g in auto)
    print(f"cheating submission: {earned}/{possible} automatic points")
    assert earned <= 0.2 * possible


def test_constant_quiz_answers_score_only_their_share(graded):
    course, _, _ = graded
    grades = course.grades("quiz", "constant")
    load_checker(ROOT, "quiz")
    checker = sys.modules["_grader_checker_quiz"]
    # the right letters of *this* student's variant (the option order is per student)
    right_letters = {q: checker.correct_letter("constant", q) for q in checker.Q.QUESTIONS}
    expected = sum(letter == "a" for letter in right_letters.values())
    earned = sum(g.score for g in grades.values())
    print(f'quiz answered all "a": {earned}/{len(grades)}')
    assert earned == expected < 0.5 * len(grades)
