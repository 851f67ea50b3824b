"""Grading on a Dask cluster: a local scheduler and two worker processes started by the test.

The same submissions of the mini course are graded locally (``--workers 2``) and through the
cluster (``python -m grader autograde mini --scheduler tcp://...``): grades, messages and
failed parts must be identical, and the gradebook written only by the coordinator. A worker
killed while it runs a submission's kernel costs nothing: the submission is graded once,
on another worker, with nothing lost or doubled.
"""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from pathlib import Path

import pytest
from grader_corpus import (
    ASSIGNMENT,
    Case,
    build_course,
    corpus,
    gradebook_rows,
    hostile_context,
    scores,
    write_submissions,
)

from grader.cli import main
from grader.grading.autograde import autograde
from grader.handout.release import release_all
from grader.sandbox.bubblewrap import check_sandbox
from grader.stores.course import Course

pytestmark = [
    pytest.mark.filterwarnings("ignore::sqlalchemy.exc.SAWarning"),
    pytest.mark.filterwarnings("ignore::nbformat.warnings.DuplicateCellId"),
    pytest.mark.filterwarnings("ignore::nbformat.warnings.MissingIDFieldWarning"),
    pytest.mark.skipif(bool(check_sandbox()), reason=f"no bubblewrap sandbox: {check_sandbox()}"),
]

TIMEOUT = 2
MEMORY_MB = 1024
SUBSET = [
    "complete",
    "blank",
    "wrong",
    "raises",
    "infinite_loop",
    "exits",
    "chatty",
    "deleted_test",
    "duplicated_test",
    "corrupt_json",
    "reads_secrets",
]


def make_course(root: Path, cases: list[Case]) -> Course:
    build_course(root)
    course = Course(root=root, instructor=root / ".instructor")
    release_all(course=course)
    released = course.release / ASSIGNMENT / f"{ASSIGNMENT}.ipynb"
    write_submissions(released, course.submitted, cases, hostile_context(root, course.instructor))
    return course


def subset(root: Path) -> list[Case]:
    return [c for c in corpus(hostile_context(root, root / ".instructor")) if c.student in SUBSET]


@pytest.fixture(scope="module")
def cluster():
    from grader.grading.distributed import local_cluster

    with local_cluster(workers=2, threads=1) as client:
        yield client


def test_dask_grades_like_local_grading(cluster, tmp_path, capsys) -> None:
    local = make_course(tmp_path / "local", subset(tmp_path / "local"))
    here = autograde(local, ASSIGNMENT, timeout=TIMEOUT, memory_mb=MEMORY_MB, workers=2)

    course = make_course(tmp_path / "dask", subset(tmp_path / "dask"))
    address = cluster.scheduler.address
    code = main(
        ["-q", "--course-dir", str(course.root), "--instructor-root", str(course.instructor)]
        + ["autograde", ASSIGNMENT, "--scheduler", address, "--timeout", str(TIMEOUT)]
        + ["--memory", str(MEMORY_MB)]
    )
    out = capsys.readouterr().out
    assert f"on the Dask cluster {address}" in out
    record = json.loads((course.runs / f"{ASSIGNMENT}.json").read_text())
    there = {r["student"]: r for r in record["results"]}

    assert code == 0, out
    assert set(there) == set(SUBSET)
    for result in here.results:
        remote = there[result.student]
        assert (remote["status"], remote["score"], remote["message"]) == (
            result.status,
            result.score,
            result.message,
        ), result.student
        assert remote["failed_parts"] == result.failed_parts, result.student
    assert scores(course.gradebook) == scores(local.gradebook)
    assert {t: len(r) for t, r in gradebook_rows(course.gradebook).items()} == {
        t: len(r) for t, r in gradebook_rows(local.gradebook).items()
    }
    # the kernels ran on the workers, not in the coordinator
    logs = course.instructor / "logs" / "autograde" / ASSIGNMENT
    workers = set(cluster.nthreads())
    for student in SUBSET:
        if student == "corrupt_json":  # nothing to execute: never sent
            continue
        text = (logs / f"{student}.log").read_text()
        assert any(f"graded on worker {w}" in text for w in workers), student
    # the hostile submission saw no more on a worker than locally
    for student in ("reads_secrets",):
        nb = course.autograded / student / ASSIGNMENT / f"{ASSIGNMENT}.ipynb"
        assert "READ: []" in nb.read_text()


NAP = 3.0  # seconds the victim's cell sleeps: the worker running it is killed meanwhile


def test_a_worker_killed_mid_submission_costs_nothing(cluster, tmp_path) -> None:
    from grader.grading.distributed import DaskAutograder

    napper = Case("napper", lambda nb, ctx: _nap(nb), 4)
    cases = [napper] + [c for c in subset(tmp_path / "c") if c.student in ("complete", "wrong")]
    course = make_course(tmp_path / "c", cases)
    grader = DaskAutograder(
        course,
        ASSIGNMENT,
        scheduler=cluster,
        timeout=10,
        memory_mb=MEMORY_MB,
        preflight=False,
    )
    before = dict(cluster.run(os.getpid))
    outcome: dict = {}
    runner = threading.Thread(target=lambda: outcome.update(run=grader.run()))
    runner.start()
    victim = None
    deadline = time.monotonic() + 60
    while victim is None and time.monotonic() < deadline:
        for address, keys in cluster.processing().items():
            if any("napper" in str(k) for k in keys):
                victim = address
        time.sleep(0.05)
    assert victim is not None, "the napper's task never started"
    time.sleep(NAP / 2 + 1.0)  # its kernel is up and asleep in sol_cube
    still = cluster.processing().get(victim, ())
    assert any("napper" in str(k) for k in still), "finished before the kill: NAP too short"
    os.kill(before[victim], signal.SIGKILL)
    runner.join(timeout=300)
    assert not runner.is_alive()
    run = outcome["run"]

    by_student = {r.student: r for r in run.results}
    assert [r.student for r in run.results] == ["complete", "napper", "wrong"]
    assert by_student["napper"].status == "graded", by_student["napper"].message
    assert by_student["napper"].score == 4.0, by_student["napper"].message
    assert by_student["complete"].score == 4.0 and by_student["wrong"].score == 2.0
    rows = scores(course.gradebook)
    assert sorted(c for s, c in rows if s == "napper") == [
        "test_answer",
        "test_cube",
        "test_square",
    ]
    assert len(rows) == 3 * 3
    record = json.loads((course.runs / f"{ASSIGNMENT}.json").read_text())
    assert [r["student"] for r in record["results"]] == ["complete", "napper", "wrong"]
    log = (course.instructor / "logs" / "autograde" / ASSIGNMENT / "napper.log").read_text()
    assert log.count("graded on worker") == 1
    cluster.wait_for_workers(2, timeout=120)  # the nanny restarted it
    assert before[victim] not in dict(cluster.run(os.getpid)).values(), "it was killed"


def _nap(nb) -> None:
    from grader_corpus import _answer, _complete

    _complete(nb)
    _answer(
        nb,
        "sol_cube",
        f"import time\ntime.sleep({NAP})\ndef cube(x):\n    return x**3",
    )
