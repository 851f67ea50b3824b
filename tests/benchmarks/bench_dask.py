"""Benchmark: grading through a Dask cluster against local grading, on one machine.

    .venv/bin/python tests/benchmarks/bench_dask.py [--students 20] [--keep DIR]

Builds STUDENTS submissions of each real graded assignment (sql_overfitting and quiz, made by
``grader.demo.make_submission`` as ``bench_grader.py`` makes them) and grades all of them
three times, each into its own gradebook:

* locally, ``--workers 2`` (the grader's own thread pool; kernels on this machine);
* through a local Dask scheduler with 1 worker process (1 thread);
* through a local Dask scheduler with 2 worker processes (1 thread each).

The preflight is left out of the timings (each run skips it; a worker's preflight costs one
master run and is cached per worker machine). Prints wall times, seconds per submission,
whether the three gave identical grades and messages, and the cost of going through Dask per
submission: the round trip the coordinator waited minus the worker's own time (payload,
scheduling, result), and the difference of wall time per submission against local grading
with the same parallelism.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(REPO), str(REPO / "tests")]

import nbformat  # noqa: E402
from grader_corpus import grades  # noqa: E402

from grader.demo import make_submission  # noqa: E402
from grader.grading.autograde import autograde  # noqa: E402
from grader.grading.distributed import DaskAutograder, local_cluster  # noqa: E402
from grader.handout.release import register_assignment  # noqa: E402
from grader.stores.course import Course  # noqa: E402

ASSIGNMENTS = ("sql_overfitting", "quiz")
KINDS = ("complete", "partial", "wrong", "blank", "complete")
ROUND_TRIP = re.compile(r"graded on worker \S+ \(.*?\) in ([0-9.]+) s; round trip ([0-9.]+) s")


def build(courses: list[Course], assignments: list[str], students: int) -> None:
    """Register the masters in every gradebook and write identical submissions to each."""
    rng = random.Random(7)
    for course in courses:
        for assignment in assignments:
            register_assignment(course, assignment)
    for assignment in assignments:
        master = nbformat.read(REPO / "solutions" / assignment / f"{assignment}.ipynb", 4)
        released = nbformat.read(REPO / "notebooks" / assignment / f"{assignment}.ipynb", 4)
        for i in range(students):
            data = make_submission(KINDS[i % len(KINDS)], released, master, rng, Path("/x"))
            for course in courses:
                folder = course.submitted / f"s{i:02d}" / assignment
                folder.mkdir(parents=True, exist_ok=True)
                (folder / f"{assignment}.ipynb").write_bytes(data)


def grade_local(course: Course, assignments: list[str]) -> tuple[float, dict]:
    start = time.perf_counter()
    messages = {}
    for assignment in assignments:
        run = autograde(course, assignment, workers=2, preflight=False)
        messages.update({(assignment, r.student): r.message for r in run.results})
    return time.perf_counter() - start, messages


def grade_dask(course: Course, assignments: list[str], workers: int) -> tuple[float, dict, float]:
    """Wall seconds (cluster already up), messages, and the cluster's start-up seconds."""
    started = time.perf_counter()
    with local_cluster(workers=workers, threads=1) as client:
        up = time.perf_counter() - started
        start = time.perf_counter()
        messages = {}
        for assignment in assignments:
            with DaskAutograder(course, assignment, scheduler=client, preflight=False) as grader:
                run = grader.run()
            messages.update({(assignment, r.student): r.message for r in run.results})
        return time.perf_counter() - start, messages, up


def round_trips(course: Course, assignments: list[str]) -> list[tuple[float, float, float]]:
    """(worker seconds, coordinator's round trip, the submission's seconds on the
    coordinator) of every submission sent to a worker."""
    rows = []
    for assignment in assignments:
        record = json.loads((course.runs / f"{assignment}.json").read_text())
        seconds = {r["student"]: r["seconds"] for r in record["results"]}
        for log in sorted((course.instructor / "logs" / "autograde" / assignment).glob("*.log")):
            for match in ROUND_TRIP.finditer(log.read_text()):
                total = seconds[log.stem]
                rows.append((float(match.group(1)), float(match.group(2)), total))
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--students", type=int, default=20, help="submissions per assignment")
    parser.add_argument("--assignment", action="append", help="only this assignment")
    parser.add_argument("--keep", help="work in this folder and keep it (default: a temp dir)")
    args = parser.parse_args()
    assignments = args.assignment or list(ASSIGNMENTS)
    work = Path(args.keep or tempfile.mkdtemp(prefix="bench-dask-"))
    work.mkdir(parents=True, exist_ok=True)
    local = Course.from_env(REPO, work / "local")
    one = Course.from_env(REPO, work / "dask1")
    two = Course.from_env(REPO, work / "dask2")
    n = args.students * len(assignments)
    print(f"building {n} submissions of {', '.join(assignments)} in {work}", flush=True)
    build([local, one, two], assignments, args.students)

    wall_local, msg_local = grade_local(local, assignments)
    print(f"local --workers 2: {wall_local:.1f} s; load {os.getloadavg()[0]:.1f}", flush=True)
    for course in (one, two):  # the same hidden-input seeds: a regrade reuses stored ones
        shutil.copytree(local.runs, course.runs, dirs_exist_ok=True)
    wall_one, msg_one, up_one = grade_dask(one, assignments, 1)
    print(
        f"dask, 1 worker: {wall_one:.1f} s (cluster up in {up_one:.1f} s); "
        f"load {os.getloadavg()[0]:.1f}",
        flush=True,
    )
    wall_two, msg_two, up_two = grade_dask(two, assignments, 2)
    print(
        f"dask, 2 workers: {wall_two:.1f} s (cluster up in {up_two:.1f} s); "
        f"load {os.getloadavg()[0]:.1f}",
        flush=True,
    )

    same_grades = grades(local.gradebook) == grades(one.gradebook) == grades(two.gradebook)
    same_messages = msg_local == msg_one == msg_two
    trips = round_trips(one, assignments) + round_trips(two, assignments)
    cost = [trip - worker for worker, trip, _ in trips]
    worker_s = [worker for worker, _, _ in round_trips(two, assignments)]
    coordinator = [total - trip for _, trip, total in trips]

    print()
    print(f"{'how':<28}{'wall s':>8}{'s/submission':>14}{'vs local':>10}")
    for how, wall in (
        ("local, --workers 2", wall_local),
        ("dask, 1 worker x 1 thread", wall_one),
        ("dask, 2 workers x 1 thread", wall_two),
    ):
        print(f"{how:<28}{wall:>8.1f}{wall / n:>14.2f}{wall / wall_local:>9.2f}x")
    print(f"submissions: {n} ({os.cpu_count()} cores); identical grades: {same_grades}; "
          f"identical messages: {same_messages}")  # fmt: skip
    if cost:
        print(
            f"through Dask, per submission: worker time {statistics.fmean(worker_s):.2f} s "
            f"(2 workers), round trip minus worker time {statistics.fmean(cost):.3f} s mean, "
            f"{statistics.median(cost):.3f} s median, {max(cost):.3f} s max ({len(cost)} sent)"
        )
        print(
            f"coordinator's own time per submission (sanitize, save, files; under the gradebook "
            f"lock, lock waits included): {statistics.fmean(coordinator):.2f} s mean"
        )
    lane = 2 * (wall_two - wall_local) / n  # two lanes in both runs
    print(f"wall time per submission and lane, dask 2 workers minus local 2 workers: {lane:+.2f} s")
    print(f"speed-up of 2 workers over 1: {wall_one / wall_two:.2f}x")
    summary = {
        "submissions": n,
        "local_workers2_s": round(wall_local, 1),
        "dask_1worker_s": round(wall_one, 1),
        "dask_2workers_s": round(wall_two, 1),
        "dask_overhead_mean_s": round(statistics.fmean(cost), 3) if cost else None,
        "coordinator_mean_s": round(statistics.fmean(coordinator), 3) if cost else None,
        "identical": same_grades and same_messages,
    }
    print(json.dumps(summary))
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    return 0 if same_grades else 1


if __name__ == "__main__":
    sys.exit(main())
