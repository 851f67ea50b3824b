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
kernel), so both sides check the same hidden cases; its submissions are the legacy release
with the same answers (``legacy_submissions``). Their grades are not expected to be
identical (nbgrader scores outputs, fixed seeds; the grader scores verdicts on fresh inputs);
the script checks that every complete submission earns full marks and every blank one 0 with
the grader, and prints how many grade cells differ.

The grader runs twice, into two more gradebooks: with bubblewrap starting every kernel, and
with kernels forked by the zygote (``Sandbox.zygote``, :mod:`grader.sandbox.zygote`). Each run (and
plain nbgrader's) is put in a cpuacct control group of its own when this machine allows it
(root, cgroup v1 or v2), so the core-seconds of everything it ran (the grader, the zygote,
every kernel) are measured, not guessed; the grader's per-submission logs say how the
kernels spent theirs (start, course cells, the student's solution cells, checks). Overhead
per submission = all core-seconds of the run / submissions - the notebook's cells (its course
and solution cells, which run in the student's kernel as they ran for the student; goal: at
most 1 core-second), i.e. the kernel's start, the checks, the grader and the zygote, with
the preflight part of the run. The same figure with the course's cells counted as overhead
too (all core-seconds - the solution cells only) is printed beside it.

A run also pays once for what does not grow with the class: the grader's own start, the
zygote's imports, the preflight. So each way grades the first ``len(KINDS)`` submissions
(one of each kind) once more, in a course of their own, and the benchmark prints the cost
of one more submission, ``(C(STUDENTS) - C(5)) / (STUDENTS - 5)``: what a class of hundreds
pays per student. It is printed beside the goal's figure, not instead of it.

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

from grader.demo import make_submission  # noqa: E402
from grader.handout.release import register_assignment  # noqa: E402
from grader.stores.course import Course  # noqa: E402

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


def legacy_submissions(legacy: Path, course_b: Course, assignments: list[str]) -> None:
    """Rewrite plain nbgrader's submissions as the legacy release with the same answers.

    Why: nbgrader grades a submission against its own master, and today's notebooks have grade
    cells the legacy masters lack (the quiz's per-student options), which plain nbgrader
    refuses; so each student's answer cells are copied, by grade id, into the notebook that
    the legacy master released, as a student of that course would have handed in.
    """
    for assignment in assignments:
        released = nbformat.read(legacy / "notebooks" / assignment / f"{assignment}.ipynb", 4)
        for path in course_b.submitted.glob(f"*/{assignment}/{assignment}.ipynb"):
            ours = nbformat.read(path, 4)
            answers = {
                c.metadata["nbgrader"]["grade_id"]: c.source
                for c in ours.cells
                if c.metadata.get("nbgrader", {}).get("solution")
            }
            theirs = nbformat.from_dict(json.loads(nbformat.writes(released)))
            for cell in theirs.cells:
                grade_id = cell.metadata.get("nbgrader", {}).get("grade_id")
                if cell.metadata.get("nbgrader", {}).get("solution") and grade_id in answers:
                    cell.source = answers[grade_id]
            nbformat.write(theirs, path)


def build(ours: list[Course], course_b: Course, assignments: list[str], students: int) -> None:
    """Register the masters and write identical submissions to every gradebook."""
    rng = random.Random(7)
    for course in ours:
        for assignment in assignments:
            register_assignment(course, assignment)
    for assignment in assignments:
        master = nbformat.read(REPO / "solutions" / assignment / f"{assignment}.ipynb", 4)
        released = nbformat.read(REPO / "notebooks" / assignment / f"{assignment}.ipynb", 4)
        for i in range(students):
            data = make_submission(KINDS[i % len(KINDS)], released, master, rng, Path("/x"))
            for course in (*ours, course_b):
                folder = course.submitted / f"s{i:02d}" / assignment
                folder.mkdir(parents=True, exist_ok=True)
                (folder / f"{assignment}.ipynb").write_bytes(data)


class CpuGroup:
    """A cpuacct control group for one command and all it starts (None where not allowed).

    Why: sandboxed kernels are reaped inside their own pid namespaces and the zygote's
    kernels are not even the grader's descendants, so the grader's child rusage misses them;
    the grader makes each submission's group below its own, so this group counts them all.
    """

    def __init__(self, name: str) -> None:
        self.path: Path | None = None
        for root, usage in (
            ("/sys/fs/cgroup/cpuacct", "cpuacct.usage"),
            ("/sys/fs/cgroup", "cpu.stat"),
        ):
            folder = Path(root, f"bench-grader-{os.getpid()}-{name}")
            try:
                folder.mkdir()
            except OSError:
                continue
            self.path, self.usage = folder, usage
            break

    def enter(self) -> None:  # preexec_fn: only a write
        if self.path is not None:
            with open(self.path / "cgroup.procs", "w") as handle:
                handle.write("0")

    def seconds(self) -> float | None:
        if self.path is None:
            return None
        text = (self.path / self.usage).read_text()
        if self.usage == "cpuacct.usage":
            return int(text) / 1e9
        return int(dict(line.split() for line in text.splitlines())["usage_usec"]) / 1e6

    def remove(self) -> None:
        if self.path is not None:
            for _ in range(50):
                try:
                    self.path.rmdir()
                    return
                except OSError:
                    time.sleep(0.1)


def timed(
    cmd: list[str], name: str = "", **kwargs
) -> tuple[float, float, float | None, subprocess.CompletedProcess]:
    """Wall seconds, the machine's mean load while it ran, its core-seconds (None where no
    control group could be made), and the command's result."""
    group = CpuGroup(name or str(time.monotonic_ns()))
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, preexec_fn=group.enter, **kwargs)
    wall = time.perf_counter() - start
    cpu = group.seconds()
    group.remove()
    return wall, os.getloadavg()[0], cpu, proc


def kernel_cpu(course: Course, assignment: str) -> dict[str, float]:
    """The kernels' CPU seconds by what they did, summed over the per-submission logs."""
    total: dict[str, float] = {}
    for log in (course.instructor / "logs" / "autograde" / assignment).glob("*.log"):
        for line in log.read_text(errors="replace").splitlines():
            if "kernel CPU seconds: " in line:
                spent = json.loads(line.split("kernel CPU seconds: ", 1)[1])
                for key, value in spent.items():
                    total[key] = total.get(key, 0.0) + value
    return total


def kernel_overhead(samples: int) -> tuple[float, float, float]:
    """Mean seconds to start a kernel, run one cell and stop it: bubblewrap, plain, zygote."""
    saved = os.dup(2)  # plain kernels warn about TCP on the inherited stderr: silence it
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    try:
        results = _time_kernels(samples, KERNELSPEC)
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)
    return (
        statistics.fmean(results["bwrap"]),
        statistics.fmean(results["plain"]),
        statistics.fmean(results["zygote"]),
    )


def _time_kernels(samples: int, spec: dict) -> dict[str, list[float]]:
    from nbformat.v4 import new_code_cell, new_notebook
    from traitlets.config import Config

    from grader.verdicts.sandboxedexecute import SandboxedExecute

    def once(how: str, work: str) -> float:
        config = Config()
        config.Sandbox.zygote = how == "zygote"
        nb = new_notebook(cells=[new_code_cell("x = 1")], metadata={"kernelspec": spec})
        start = time.perf_counter()
        step = SandboxedExecute(sandbox=how != "plain", config=config)
        step.preprocess(nb, {"metadata": {"path": work}})
        return time.perf_counter() - start

    results: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory() as work:
        once("zygote", work)  # the zygote's own start (its imports), paid once per grader
        for _ in range(2):  # interleaved against drifting load
            for how in ("bwrap", "plain", "zygote"):
                for _ in range(samples // 2):
                    results.setdefault(how, []).append(once(how, work))
    return results


WAYS = {"bwrap": "0", "zygote": "1"}  # $TUNELAB_SANDBOX_ZYGOTE for each grader run


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--students", type=int, default=20, help="submissions per assignment")
    parser.add_argument("--assignment", action="append", help="only this assignment")
    parser.add_argument("--keep", help="work in this folder and keep it (default: a temp dir)")
    parser.add_argument("--overhead-samples", type=int, default=6)
    parser.add_argument(
        "--ways", default="bwrap,zygote", help="grader runs: bwrap (kernels started by "
        "bubblewrap), zygote (forked by the zygote), or both, comma-separated"
    )  # fmt: skip
    args = parser.parse_args()
    if args.overhead_samples < 2:  # half of them sandboxed, half plain
        parser.error("--overhead-samples must be at least 2")
    ways = [w for w in args.ways.split(",") if w]
    if not ways or any(w not in WAYS for w in ways):
        parser.error(f"--ways takes {', '.join(WAYS)}")
    assignments = args.assignment or list(ASSIGNMENTS)
    work = Path(args.keep or tempfile.mkdtemp(prefix="bench-grader-"))
    work.mkdir(parents=True, exist_ok=True)
    ours = {way: Course.from_env(REPO, work / f"grader-{way}") for way in ways}
    theirs = Course.from_env(REPO, work / "nbgrader")
    print(f"building {args.students} submissions of {', '.join(assignments)} in {work}")
    build(list(ours.values()), theirs, assignments, args.students)
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}

    legacy = legacy_course(work / "legacy", assignments)
    env_b = {**env, "TUNELAB_INSTRUCTOR_ROOT": str(theirs.instructor)}
    for assignment in assignments:
        generate = [str(BIN / "nbgrader"), "generate_assignment", assignment, "--force"]
        subprocess.run([*generate, "--log-level=ERROR"], cwd=legacy, env=env_b, check=True)
    legacy_submissions(legacy, theirs, assignments)
    # rows[assignment][how] = (wall s, load, core-seconds or None)
    rows: dict[str, dict[str, tuple[float, float, float | None]]] = {}
    for assignment in assignments:
        plain = [str(BIN / "nbgrader"), "autograde", assignment, "--force", "--log-level=ERROR"]
        wall, load, cpu, proc = timed(plain, "nbgrader", cwd=legacy, env=env_b)
        if proc.returncode != 0:
            print(f"nbgrader autograde {assignment} exited {proc.returncode}:")
            print(proc.stderr[-2000:])
        rows[assignment] = {"nbgrader": (wall, load, cpu)}
        for way, course in ours.items():
            rows[assignment][way] = grade(course, assignment, way, env)

    small = scale_runs(work, ours, assignments, env) if args.students > len(KINDS) else {}

    b = grades(theirs.gradebook)
    graded = {way: grades(course.gradebook) for way, course in ours.items()}
    wrong = [
        f"{way}: {p}"
        for way, c in ours.items()
        for p in expected_problems(c, assignments, args.students)
    ]  # noqa: E501
    sandboxed, plain_s, forked = kernel_overhead(args.overhead_samples)
    alone, beside = neighbour(work / "neighbour")

    n = args.students
    hows = ["nbgrader", *ways]
    print()
    print(f"{'assignment':<16}{'subs':>5}" + "".join(f"{h + ' s':>12}" for h in hows)
          + "".join(f"{'x ' + w:>10}" for w in ways) + f"{'load':>7}")  # fmt: skip
    for assignment, by in rows.items():
        line = f"{assignment:<16}{n:>5}" + "".join(f"{by[h][0]:>12.1f}" for h in hows)
        line += "".join(f"{by['nbgrader'][0] / by[w][0]:>9.2f}x" for w in ways)
        print(line + f"{max(v[1] for v in by.values()):>7.2f}")
    total = {h: sum(by[h][0] for by in rows.values()) for h in hows}
    subs = n * len(rows)
    print(f"{'total':<16}{subs:>5}" + "".join(f"{total[h]:>12.1f}" for h in hows)
          + "".join(f"{total['nbgrader'] / total[w]:>9.2f}x" for w in ways))  # fmt: skip
    print(f"per submission (wall, {os.cpu_count()} cores): "
          + ", ".join(f"{h} {total[h] / subs:.2f} s" for h in hows))  # fmt: skip
    if ways == ["bwrap", "zygote"]:
        print(f"zygote vs bubblewrap-started kernels: {total['bwrap'] / total['zygote']:.2f}x")

    print()
    print("core-seconds per submission (the whole run's control group; kernels from the logs):")
    keys = ("start", "course", "solution", "checks", "other")
    print(f"{'how':<10}{'total':>8}{'kernel start':>14}{'course cells':>14}{'solution':>10}"
          f"{'checks':>8}{'other':>7}{'grader+zygote':>15}{'overhead':>10}"
          f"{'beyond sol.':>13}")  # fmt: skip
    overheads: dict[str, float] = {}  # beyond the notebook's cells (the goal's figure)
    beyond_solution: dict[str, float] = {}  # beyond the solution cells only
    for how in hows:
        cpus = [by[how][2] for by in rows.values()]
        if any(c is None for c in cpus):
            print(f"{how:<10} (no control group could be made here: run as root)")
            continue
        spent = sum(cpus) / subs  # type: ignore[arg-type]
        if how == "nbgrader":
            print(f"{how:<10}{spent:>8.2f}  (one process tree; not split)")
            continue
        kernel: dict[str, float] = {}
        for assignment in assignments:
            for key, value in kernel_cpu(ours[how], assignment).items():
                kernel[key] = kernel.get(key, 0.0) + value / subs
        rest = spent - sum(kernel.values())
        beyond_solution[how] = spent - kernel.get("solution", 0.0)
        overheads[how] = beyond_solution[how] - kernel.get("course", 0.0)
        print(f"{how:<10}{spent:>8.2f}" + "".join(f"{kernel.get(k, 0.0):>{w}.2f}" for k, w in
              zip(keys, (14, 14, 10, 8, 7), strict=True))
              + f"{rest:>15.2f}{overheads[how]:>10.2f}{beyond_solution[how]:>13.2f}")  # fmt: skip
    print(
        "overhead = total - the notebook's cells (course and solution cells, run in the "
        "student's kernel as the student ran them): kernel start, checks, grader, zygote; "
        "the run's fixed costs (its start, the zygote's imports, the preflight) included"
    )
    print(
        "beyond sol. = total - the solution cells only: the course's own cells (setup, the "
        "emulator job, the figures) counted as overhead too"
    )
    for how, (course, cpu) in small.items():
        if cpu is None or any(by[how][2] is None for by in rows.values()):
            continue
        extra = (n - len(KINDS)) * len(assignments)
        more = (sum(by[how][2] for by in rows.values()) - cpu) / extra  # type: ignore[misc]
        split = {k: 0.0 for k in keys}
        for assignment in assignments:
            big, few = kernel_cpu(ours[how], assignment), kernel_cpu(course, assignment)
            for key in split:
                split[key] += (big.get(key, 0.0) - few.get(key, 0.0)) / extra
        print(
            f"one more submission ({how}; (C({n}) - C({len(KINDS)})) / {n - len(KINDS)}, "
            f"per assignment mix): {more:.2f} core-s; beyond the solution cells "
            f"{more - split['solution']:.2f}; beyond all the notebook's cells (course + "
            f"solution) {more - split['solution'] - split['course']:.2f}"
        )

    print()
    for way, a in graded.items():
        differing = sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))
        print(f"grade cells where nbgrader's in-kernel hidden tests and the trusted verdicts "
              f"({way}) differ: {len(differing)} of {len(a)}")  # fmt: skip
        for key in differing[:3]:
            print(f"  {key}: grader {a.get(key)} vs nbgrader {b.get(key)}")
    if len(graded) == 2:
        x, y = graded.values()
        same = sum(1 for k in set(x) | set(y) if x.get(k) == y.get(k))
        print(
            f"bwrap and zygote runs give the same grade on {same} of {len(set(x) | set(y))} "
            "grade cells (hidden inputs are drawn per run, so partial answers may differ)"
        )
    print(f"complete = full marks and blank = 0 with the grader: {not wrong}")
    for problem in wrong[:10]:
        print(f"  {problem}")
    print(
        f"honest submission: {alone:.1f} s alone, {beside:.1f} s beside a CPU hog: "
        f"{beside / alone:.2f}x (goal <= 1.5x)"
    )
    print(
        f"kernel start + 1 cell + stop, mean of {args.overhead_samples // 2 * 2} each: "
        f"bubblewrap {sandboxed:.2f} s, zygote {forked:.2f} s, plain {plain_s:.2f} s"
    )
    best = max(ways, key=lambda w: total["nbgrader"] / total[w])
    ratio = total["nbgrader"] / total[best]
    print(f"goal >= 3x ({best}): {'met' if ratio >= 3 else 'NOT met'}; floor 2x: "
          f"{'kept' if ratio >= 2 else 'BROKEN'}")  # fmt: skip
    if best in overheads:
        verdict = "met" if overheads[best] <= 1 else "NOT met"
        strict = "met" if beyond_solution[best] <= 1 else "NOT met"
        print(f"goal overhead <= 1 core-second per submission beyond the notebook's cells "
              f"({best}): {verdict} ({overheads[best]:.2f}); beyond the solution cells only: "
              f"{strict} ({beyond_solution[best]:.2f})")  # fmt: skip
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    return 0 if not wrong and ratio >= 2 else 1


def grade(
    course: Course, assignment: str, way: str, env: dict[str, str]
) -> tuple[float, float, float | None]:
    """``python -m grader autograde`` of one assignment, ``way``'s kernels: wall seconds,
    the machine's load, core-seconds (see :func:`timed`); a failed run is printed."""
    cmd = [sys.executable, "-m", "grader", "--instructor-root", str(course.instructor)]
    run_env = {**env, "TUNELAB_SANDBOX_ZYGOTE": WAYS[way]}
    wall, load, cpu, proc = timed([*cmd, "-q", "autograde", assignment], way, env=run_env)
    if proc.returncode != 0:
        print(f"python -m grader autograde {assignment} ({way}) in {course.instructor} "
              f"exited {proc.returncode}:")  # fmt: skip
        print(proc.stdout[-2000:], proc.stderr[-2000:])
    return wall, load, cpu


def scale_runs(
    work: Path, ours: dict[str, Course], assignments: list[str], env: dict[str, str]
) -> dict[str, tuple[Course, float | None]]:
    """Grade one submission of each kind again, alone in a course, for each way: the
    run's fixed costs, measured, to subtract (core-seconds of all assignments' runs)."""
    out: dict[str, tuple[Course, float | None]] = {}
    for way, course in ours.items():
        few = Course.from_env(REPO, work / f"grader-{way}-{len(KINDS)}")
        spent: float | None = 0.0
        for assignment in assignments:
            register_assignment(few, assignment)
            for i in range(len(KINDS)):
                source = course.submitted / f"s{i:02d}" / assignment
                shutil.copytree(source, few.submitted / f"s{i:02d}" / assignment)
            _wall, _load, cpu = grade(few, assignment, way, env)
            spent = None if cpu is None or spent is None else spent + cpu
        out[way] = (few, spent)
    return out


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
    from grader.grading.autograde import autograde

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
        # the preflight in both: the zygote it starts is then warm for the honest one both times
        run = autograde(course, "sql_overfitting", workers=2, preflight=True)
        honest = next(r for r in run.results if r.student == "honest")
        times.append(honest.seconds)
    return times[0], times[1]


if __name__ == "__main__":
    sys.exit(main())
