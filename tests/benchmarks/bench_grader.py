"""Benchmark: ``python -m grader autograde`` (sandboxed, trusted verdicts, parallel) against
plain serial ``nbgrader autograde`` on the same synthetic submissions, in one run.

    .venv/bin/python tests/benchmarks/bench_grader.py [--students 20] [--keep DIR]

Builds STUDENTS submissions of each real graded assignment (sql_overfitting and quiz;
complete, partial, wrong and blank copies made by ``grader.demo``), grades them both ways
into two separate gradebooks, and prints wall times and the speed-up (goal: at least 3x on a
2-core machine, never below 2x). The grader's time includes its preflight (the master graded
first).

The baseline is nbgrader grading the same parts the nbgrader way: the masters as they were
before trusted verdicts (commit LEGACY, hidden tests in the test cells, run in the student's
kernel), so both sides check the same hidden cases. Their grades are not expected to be
identical (nbgrader scores outputs, fixed seeds; the grader scores verdicts on fresh inputs);
the script checks that every complete submission earns full marks and every blank one 0 with
the grader, and prints how many grade cells differ.

It also grades one honest submission alone and then beside a CPU hog (a submission forking
busy processes), and prints the honest one's time beside the hog as a ratio to its time
alone (goal: at most 1.5x), and the sandbox's overhead per submission.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(REPO), str(REPO / "tests")]

import nbformat  # noqa: E402
from grader_corpus import KERNELSPEC, grades  # noqa: E402
from neighbours import cpu_hog  # noqa: E402

from grader.course import Course  # noqa: E402
from grader.demo import make_submission  # noqa: E402
from grader.release import register_assignment  # noqa: E402

ASSIGNMENTS = ("sql_overfitting", "quiz")
KINDS = ("complete", "partial", "wrong", "blank", "complete")
BIN = Path(sys.executable).parent


#: The last commit whose masters held nbgrader hidden tests (run in the student's kernel).
LEGACY = "535a3d6"
LEGACY_CONFIG = """\
from pathlib import Path
_repo = Path({repo!r}) / "grader" / "nbgrader_config.py"
_names = {{"__file__": str(_repo), "get_config": get_config}}
exec(compile(_repo.read_text(), str(_repo), "exec"), _names)
c = get_config()
c.CourseDirectory.root = {root!r}
"""


def legacy_course(root: Path, assignments: list[str]) -> Path:
    """A course folder with the pre-trusted-verdict masters, for plain ``nbgrader``."""
    for assignment in assignments:
        rel = f"solutions/{assignment}/{assignment}.ipynb"
        text = subprocess.run(
            ["git", "-C", str(REPO), "show", f"{LEGACY}:{rel}"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    (root / "nbgrader_config.py").write_text(LEGACY_CONFIG.format(repo=str(REPO), root=str(root)))
    return root


def build(course_a: Course, course_b: Course, assignments: list[str], students: int) -> None:
    """Register the masters and write identical submissions to both gradebooks."""
    rng = random.Random(7)
    for assignment in assignments:
        register_assignment(course_a, assignment)
    for assignment in assignments:
        master = nbformat.read(REPO / "solutions" / assignment / f"{assignment}.ipynb", 4)
        released = nbformat.read(REPO / "notebooks" / assignment / f"{assignment}.ipynb", 4)
        for i in range(students):
            data = make_submission(KINDS[i % len(KINDS)], released, master, rng, Path("/x"))
            for course in (course_a, course_b):
                folder = course.submitted / f"s{i:02d}" / assignment
                folder.mkdir(parents=True, exist_ok=True)
                (folder / f"{assignment}.ipynb").write_bytes(data)


def timed(cmd: list[str], **kwargs) -> tuple[float, float, subprocess.CompletedProcess]:
    """Wall seconds, the machine's mean load while it ran, and the command's result.

    (CPU time is not comparable: sandboxed kernels are reaped inside their own PID namespace
    and never reach this process's child accounting.)"""
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, **kwargs)
    wall = time.perf_counter() - start
    return wall, os.getloadavg()[0], proc


def kernel_overhead(samples: int) -> tuple[float, float]:
    """Mean seconds to start a kernel, run one cell and stop it: sandboxed, then plain."""
    saved = os.dup(2)  # plain kernels warn about TCP on the inherited stderr: silence it
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    try:
        results = _time_kernels(samples, KERNELSPEC)
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)
    return statistics.fmean(results[True]), statistics.fmean(results[False])


def _time_kernels(samples: int, spec: dict) -> dict[bool, list[float]]:
    from nbformat.v4 import new_code_cell, new_notebook

    from grader.preprocessors import SandboxedExecute

    results: dict[bool, list[float]] = {}
    with tempfile.TemporaryDirectory() as work:
        for sandbox in (True, False, True, False):  # interleaved against drifting load
            for _ in range(samples // 2):
                nb = new_notebook(cells=[new_code_cell("x = 1")], metadata={"kernelspec": spec})
                start = time.perf_counter()
                SandboxedExecute(sandbox=sandbox).preprocess(nb, {"metadata": {"path": work}})
                results.setdefault(sandbox, []).append(time.perf_counter() - start)
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--students", type=int, default=20, help="submissions per assignment")
    parser.add_argument("--assignment", action="append", help="only this assignment")
    parser.add_argument("--keep", help="work in this folder and keep it (default: a temp dir)")
    parser.add_argument("--overhead-samples", type=int, default=6)
    args = parser.parse_args()
    if args.overhead_samples < 2:  # half of them sandboxed, half plain
        parser.error("--overhead-samples must be at least 2")
    assignments = args.assignment or list(ASSIGNMENTS)
    work = Path(args.keep or tempfile.mkdtemp(prefix="bench-grader-"))
    work.mkdir(parents=True, exist_ok=True)
    ours = Course.from_env(REPO, work / "grader")
    theirs = Course.from_env(REPO, work / "nbgrader")
    print(f"building {args.students} submissions of {', '.join(assignments)} in {work}")
    build(ours, theirs, assignments, args.students)
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}

    legacy = legacy_course(work / "legacy", assignments)
    env_b = {**env, "TUNELAB_INSTRUCTOR_ROOT": str(theirs.instructor)}
    for assignment in assignments:
        generate = [str(BIN / "nbgrader"), "generate_assignment", assignment, "--force"]
        subprocess.run([*generate, "--log-level=ERROR"], cwd=legacy, env=env_b, check=True)
    rows = []
    for assignment in assignments:
        plain = [str(BIN / "nbgrader"), "autograde", assignment, "--force", "--log-level=ERROR"]
        wall_b, load_b, proc_b = timed(plain, cwd=legacy, env=env_b)
        if proc_b.returncode != 0:
            print(f"nbgrader autograde {assignment} exited {proc_b.returncode}:")
            print(proc_b.stderr[-2000:])
        ours_cmd = [sys.executable, "-m", "grader", "--instructor-root", str(ours.instructor)]
        wall_a, load_a, proc_a = timed([*ours_cmd, "-q", "autograde", assignment], env=env)
        if proc_a.returncode != 0:
            print(f"python -m grader autograde {assignment} exited {proc_a.returncode}:")
            print(proc_a.stdout[-2000:], proc_a.stderr[-2000:])
        rows.append((assignment, wall_b, load_b, wall_a, load_a))

    a, b = grades(ours.gradebook), grades(theirs.gradebook)
    differing = sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))
    wrong = expected_problems(ours, assignments, args.students)
    sandboxed, plain = kernel_overhead(args.overhead_samples)
    alone, beside = neighbour(work / "neighbour")

    n = args.students
    print()
    print(f"{'assignment':<16}{'subs':>5}{'nbgrader s':>12}{'grader s':>10}{'speed-up':>10}"
          f"{'load nbgr':>11}{'load grader':>12}")  # fmt: skip
    for assignment, wall_b, load_b, wall_a, load_a in rows:
        print(f"{assignment:<16}{n:>5}{wall_b:>12.1f}{wall_a:>10.1f}{wall_b / wall_a:>9.2f}x"
              f"{load_b:>11.2f}{load_a:>12.2f}")  # fmt: skip
    total_b = sum(r[1] for r in rows)
    total_a = sum(r[3] for r in rows)
    print(f"{'total':<16}{n * len(rows):>5}{total_b:>12.1f}{total_a:>10.1f}"
          f"{total_b / total_a:>9.2f}x")  # fmt: skip
    print(f"per submission: nbgrader {total_b / (n * len(rows)):.2f} s, "  # noqa: E501
          f"grader {total_a / (n * len(rows)):.2f} s (wall, {os.cpu_count()} cores)")  # fmt: skip
    print(
        f"grade cells where nbgrader's in-kernel hidden tests and the trusted verdicts differ: "
        f"{len(differing)} of {len(a)}"
    )
    for key in differing[:6]:
        print(f"  {key}: grader {a.get(key)} vs nbgrader {b.get(key)}")
    print(f"complete = full marks and blank = 0 with the grader: {not wrong}")
    for problem in wrong[:10]:
        print(f"  {problem}")
    print(
        f"honest submission: {alone:.1f} s alone, {beside:.1f} s beside a CPU hog: "
        f"{beside / alone:.2f}x (goal <= 1.5x)"
    )
    print(
        f"sandbox overhead per submission (kernel start + 1 cell + stop, mean of "
        f"{args.overhead_samples}): sandboxed {sandboxed:.2f} s, plain {plain:.2f} s, "
        f"overhead {sandboxed - plain:+.2f} s"
    )
    ratio = total_b / total_a
    print(f"goal >= 3x: {'met' if ratio >= 3 else 'NOT met'}; floor 2x: "
          f"{'kept' if ratio >= 2 else 'BROKEN'}")  # fmt: skip
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    return 0 if not wrong and ratio >= 2 else 1


def expected_problems(course: Course, assignments: list[str], students: int) -> list[str]:
    """Complete submissions must earn every automatic point, blank ones none."""
    from nbgrader.api import Gradebook

    problems = []
    with Gradebook(course.db_url) as gb:
        for assignment in assignments:
            for i in range(students):
                kind = KINDS[i % len(KINDS)]
                if kind not in ("complete", "blank"):
                    continue
                nb = gb.find_submission_notebook(assignment, assignment, f"s{i:02d}")
                auto = [g for g in nb.grades if not g.needs_manual_grade]
                score = sum(g.score or 0 for g in auto)
                want = sum(g.max_score for g in auto) if kind == "complete" else 0
                if score != want:
                    problems.append(f"{assignment} s{i:02d} ({kind}): {score} instead of {want}")
    return problems


HOG = cpu_hog(seconds=20)


def neighbour(work: Path) -> tuple[float, float]:
    """Seconds to grade an honest sql_overfitting submission alone, then beside a CPU hog."""
    from grader.autograde import autograde

    master = nbformat.read(REPO / "solutions" / "sql_overfitting" / "sql_overfitting.ipynb", 4)
    released = nbformat.read(REPO / "notebooks" / "sql_overfitting" / "sql_overfitting.ipynb", 4)
    hog = nbformat.from_dict(json.loads(nbformat.writes(released)))
    for cell in hog.cells:
        if cell.metadata.get("nbgrader", {}).get("grade_id") == "p3-answer":
            cell.source = HOG
    times = []
    for label, students in (
        ("alone", {"honest": master}),
        ("beside", {"honest": master, "hog": hog}),
    ):
        course = Course.from_env(REPO, work / label)
        for student, nb in students.items():
            folder = course.submitted / student / "sql_overfitting"
            folder.mkdir(parents=True, exist_ok=True)
            nbformat.write(nb, folder / "sql_overfitting.ipynb")
        run = autograde(course, "sql_overfitting", workers=2, preflight=label == "alone")
        honest = next(r for r in run.results if r.student == "honest")
        times.append(honest.seconds)
    return times[0], times[1]


if __name__ == "__main__":
    sys.exit(main())
