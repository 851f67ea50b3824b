"""``python -m grader``: the instructor's command line (see ``python -m grader --help``).

Every command works on the course in this repository and the instructor folder
``.instructor/`` unless told otherwise (``--course-dir``, ``--instructor-root`` or the
environment variables TUNELAB_COURSE_DIR / TUNELAB_INSTRUCTOR_ROOT), and ends with a summary:
what was done, what failed and why, and where the outputs are.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

from grader.stores.course import Course, CourseError

RULE = "-" * 72


def _rel(path: Path | str) -> str:
    path = Path(path)
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def _course(args: argparse.Namespace) -> Course:
    return Course.from_env(args.course_dir, args.instructor_root, getattr(args, "db_url", None))


def _gradebook(course: Course) -> str:
    """The gradebook for messages: the SQLite file's path, or the server URL (no password)."""
    book = course.gradebook
    return _rel(book) if isinstance(book, Path) else str(book)


# -- release ---------------------------------------------------------------------------------
def cmd_release(args: argparse.Namespace) -> int:
    from grader.handout.release import ReleaseError, release_all

    course = _course(args)
    names = args.assignments or course.assignments()
    try:
        paths = release_all(args.dest, course=course, assignments=names)
    except ReleaseError as err:
        print(err)
        done = [n for n in names if n not in err.failures]
        print(f"released {len(done)} of {len(names)}: {', '.join(done) or 'none'}")
        return 1
    print(RULE)
    print(f"Released {len(paths)} assignment(s) with nbgrader generate_assignment:")
    for path in paths:
        print(f"  {_rel(path)}")
    if args.dest is None:
        print(f"Masters (with hidden tests) recorded in the gradebook {_gradebook(course)}")
    return _release_bundle(args, course)


def _release_bundle(args: argparse.Namespace, course: Course) -> int:
    """Build the student bundle from the copies just released (what students get, not a clone).

    A trial release with ``--dest`` builds one only when ``--bundle-dir`` says where, so it
    never replaces the instructor's bundle.
    """
    from grader.handout.bundle import BundleError, build_bundle

    if args.no_bundle or (args.dest is not None and args.bundle_dir is None):
        print("Student bundle: not built (--no-bundle, or --dest without --bundle-dir)")
        return 0
    dest = Path(args.bundle_dir) if args.bundle_dir else course.instructor / "bundle"
    notebooks = Path(args.dest).resolve() if args.dest is not None else None
    try:
        bundle = build_bundle(course, dest, notebooks=notebooks)
    except BundleError as err:
        print(f"Student bundle NOT built: {err}")
        return 1
    print(
        f"Student bundle ({len(bundle.files)} files, {bundle.bytes / 1e6:.1f} MB; "
        f"zip {bundle.zip_bytes / 1e6:.1f} MB; built in {bundle.seconds:.1f} s) "
        "- give students the zip, never this repository:"
    )
    print(f"  {_rel(bundle.folder)}/")
    print(f"  {_rel(bundle.zip)}")
    for name in bundle.skipped:
        print(f"  left out (not a released notebook): {name}")
    return 0


# -- collect ---------------------------------------------------------------------------------
def cmd_collect(args: argparse.Namespace) -> int:
    from grader.grading.collect import collect

    course = _course(args)
    report = collect(course, args.source)
    print(RULE)
    print(f"Collected from {args.source}:")
    print(f"  new or updated submissions: {len(report.imported)}")
    for line in report.imported:
        print(f"    {line}")
    if report.unchanged:
        print(f"  unchanged (already collected): {len(report.unchanged)}")
    print(f"  students registered in the gradebook: {len(report.students)}")
    if report.problems:
        print(f"  NOT collected or worth a look ({len(report.problems)}):")
        for problem in report.problems:
            print(f"    - {problem}")
    print(f"Submissions are in {_rel(report.destination)}/STUDENT/ASSIGNMENT/")
    return 0 if report.ok else 1


# -- autograde -------------------------------------------------------------------------------
def _warn_unsandboxed() -> None:
    from grader.sandbox.bubblewrap import check_sandbox

    why = check_sandbox() or "you asked for it"
    banner = "!" * 72
    print(
        f"{banner}\n  WARNING: grading WITHOUT a sandbox ({why}).\n  Student code runs "
        "with YOUR rights: it can read and change your files, the gradebook\n  and other "
        f"students' work, and reach the network. Only for trusted submissions.\n{banner}",
        file=sys.stderr,
    )


def cmd_autograde(args: argparse.Namespace) -> int:
    from grader.grading.autograde import autograde

    course = _course(args)
    if args.no_sandbox:
        _warn_unsandboxed()
    grade = autograde
    if args.scheduler:
        from functools import partial

        from grader.grading.distributed import dask_autograde

        grade = partial(dask_autograde, scheduler=args.scheduler)
    run = grade(
        course,
        args.assignment,
        workers=args.workers,
        timeout=args.timeout,
        memory_mb=args.memory,
        sandbox=not args.no_sandbox,
        students=args.student or None,
        progress=not args.quiet,
        new_seeds=args.new_seeds,
        preflight=not args.skip_preflight,
    )
    print_autograde(course, run)
    if args.student is None:  # a whole class: compare it (a report, never a grade)
        _similarity_after_autograde(course, args.assignment)
    return 0 if not run.failed else 1


def _similarity_after_autograde(course: Course, assignment: str) -> None:
    """The similarity report at the end of autograde; its failure never fails grading."""
    from grader.results.similarity import write_similarity

    try:
        report = write_similarity(course, assignment)
    except Exception as err:  # noqa: BLE001 (grades are saved; say why the report is missing)
        print(
            f"Similarity report NOT written ({type(err).__name__}: {err}); "
            f"run: python -m grader similarity {assignment}"
        )
        return
    print_similarity(report)


def print_autograde(course: Course, run) -> None:
    mode = "sandboxed" if run.sandboxed else "NOT sandboxed"
    where = getattr(run, "scheduler", None)
    workers = f"{run.workers} at once on the Dask cluster {where}" if where else run.workers
    print(RULE)
    print(
        f"Autograded {run.assignment}: {len(run.results)} submission(s) in {run.seconds:.1f} s "
        f"({workers} worker(s), {mode})"
    )
    print(f"  graded: {len(run.graded)}   not graded: {len(run.failed)}")
    width = max([len(r.student) for r in run.results] + [7])
    for result in run.results:
        print(f"  {result.student:<{width}}  {result.message}")
    if run.failed:
        print("  Not graded (no grade recorded; fix the cause and run autograde again):")
        for result in run.failed:
            print(f"    {result.student}: {result.error}")
    print("Outputs:")
    print(f"  autograded notebooks  {_rel(course.autograded)}/STUDENT/{run.assignment}/")
    print(f"  gradebook             {_gradebook(course)}")
    if run.record:
        print(f"  messages (JSON)       {_rel(run.record)}")
    print(f"  per-student logs      {_rel(course.instructor / 'logs' / 'autograde')}/")


# -- feedback --------------------------------------------------------------------------------
def cmd_feedback(args: argparse.Namespace) -> int:
    from grader.results.feedback import generate_feedback

    course = _course(args)
    run = generate_feedback(course, args.assignment, progress=not args.quiet)
    print_feedback(course, run)
    return 0 if not run.failed else 1


def print_feedback(course: Course, run) -> None:
    print(RULE)
    print(f"Feedback for {run.assignment}: {len(run.pages)} student(s), {len(run.failed)} failed")
    for student, reason in run.failed.items():
        print(f"    {student}: {reason}")
    print(f"  HTML pages in {_rel(course.feedback)}/STUDENT/{run.assignment}/")


# -- export ----------------------------------------------------------------------------------
def cmd_export(args: argparse.Namespace) -> int:
    from grader.results.export import export_grades

    course = _course(args)
    path = export_grades(course, Path(args.to) if args.to else None)
    rows = len(path.read_text().splitlines()) - 1
    print(RULE)
    print(f"Exported {rows} grade row(s) (nbgrader CsvExportPlugin) to {_rel(path)}")
    return 0


# -- report ----------------------------------------------------------------------------------
def cmd_report(args: argparse.Namespace) -> int:
    from grader.results.report import write_report

    course = _course(args)
    report = write_report(course, args.assignment, threshold=args.threshold)
    print_report(report)
    return 0


def print_report(report) -> None:
    print(RULE)
    totals = list(report.totals.values())
    mean = sum(totals) / len(totals) if totals else 0.0
    print(
        f"Report for {report.assignment}: {len(totals)} submission(s), mean "
        f"{mean:.2f}/{report.max_score:g}, {len(report.attention)} need attention"
    )
    for part in report.hardest(3):
        print(f"  hard part: {part.name} ({part.pass_rate:.0%} pass)")
    print(f"  figure  {_rel(report.png)}")
    print(f"  tables  {_rel(report.markdown)}  {_rel(report.html)}")


# -- similarity ------------------------------------------------------------------------------
def cmd_similarity(args: argparse.Namespace) -> int:
    from grader.results.similarity import write_similarity

    course = _course(args)
    kwargs = {"threshold": args.threshold} if args.threshold is not None else {}
    report = write_similarity(course, args.assignment, **kwargs)
    print_similarity(report)
    return 0


def print_similarity(report) -> None:
    print(RULE)
    print(
        f"Similarity of {report.assignment} ({report.kind}): {len(report.students)} "
        f"submission(s), {report.compared_pairs} pair(s) compared in {report.seconds:.1f} s, "
        f"{len(report.flagged)} flagged"
    )
    for pair in report.flagged:
        where = _rel(pair.page) if pair.page else pair.detail
        print(f"  {pair.a} / {pair.b}: {pair.share_a:.0%} / {pair.share_b:.0%}  {where}")
    for student, reason in sorted(report.skipped.items()):
        print(f"  not compared: {student}: {reason}")
    print(f"  report  {_rel(report.index)}  {_rel(report.markdown)}")


# -- demo ------------------------------------------------------------------------------------
def cmd_demo(args: argparse.Namespace) -> int:
    from grader.demo import run_demo

    course = _course(args)
    if args.no_sandbox:
        _warn_unsandboxed()
    out = run_demo(
        course,
        students=args.students,
        workers=args.workers,
        timeout=args.timeout,
        memory_mb=args.memory,
        sandbox=not args.no_sandbox,
        seed=args.seed,
        assignments=args.assignment or None,
        progress=not args.quiet,
    )
    demo = out["course"]
    for report in out["collect"]:
        print(RULE)
        print(f"Collected {len(report.imported)} submission(s); reported {len(report.problems)}:")
        for problem in report.problems:
            print(f"    - {problem}")
    failed = 0
    for assignment, run in out["autograde"].items():
        print_autograde(demo, run)
        print_feedback(demo, out["feedback"][assignment])
        print_report(out["reports"][assignment])
        failed += len(run.failed)
    print(RULE)
    print(f"Grades CSV: {_rel(out['export'])}")
    print(f"Everything of the demo is under {_rel(demo.instructor)}/ (its own gradebook);")
    print(f"the synthetic class is in {_rel(out['plan'].inbox)}/ and {_rel(out['plan'].lms_zip)}")
    return 0 if not failed else 1


# -- parser ----------------------------------------------------------------------------------
ASSIGNMENT_HELP = "assignment id, e.g. sql_overfitting or quiz (a folder of solutions/)"


def _share(text: str) -> float:
    """argparse type: a share of the points, 0..1 (``--threshold 50`` would flag everyone)."""
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a share of the points between 0 and 1")
    return value


def _grading_options(p: argparse.ArgumentParser, *, timeout: int | None) -> None:
    """The sandbox and speed options that autograde and demo share."""
    p.add_argument(
        "--workers",
        type=int,
        metavar="N",
        help="submissions graded at once (default: one more than the cores)",
    )
    p.add_argument(
        "--timeout",
        type=int,
        default=timeout,
        metavar="SECONDS",
        help="seconds per cell before it is stopped (default: "
        f"{timeout if timeout is not None else 'nbgrader config, 60'})",
    )
    p.add_argument(
        "--memory", type=int, metavar="MB", help="memory limit per process in MB (default: 2048)"
    )
    p.add_argument(
        "--no-sandbox",
        action="store_true",
        help="run student code unconfined (only where no sandbox exists; warns loudly)",
    )
    p.add_argument(
        "--zygote",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="fork each sandboxed kernel from a zygote that did the course's imports once "
        "(as root: on by default; --no-zygote starts every kernel with bubblewrap; "
        "see grader/README.md)",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m grader",
        description="Fine-Tuning Lab instructor tools: release, collect, autograde (sandboxed), "
        "feedback, export, report; 'demo' rehearses all of them on a synthetic class.",
    )
    parser.add_argument(
        "--course-dir",
        help="course folder with solutions/ and notebooks/ (default: this repository, "
        "or $TUNELAB_COURSE_DIR)",
    )
    parser.add_argument(
        "--instructor-root",
        help="where the gradebook, submissions and results live (default: COURSE/.instructor, "
        "or $TUNELAB_INSTRUCTOR_ROOT)",
    )
    parser.add_argument(
        "--db-url",
        metavar="URL",
        help="the gradebook on a database server several graders share, e.g. "
        "postgresql://USER:PASSWORD@HOST/DB (default: $TUNELAB_GRADEBOOK_URL, else the SQLite "
        "file INSTRUCTOR/gradebook.db)",
    )
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    parser.add_argument("-v", "--verbose", action="store_true", help="show nbgrader's log")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser(
        "release",
        help="regenerate notebooks/ from solutions/, and build the student bundle",
        description="Regenerate the student copies from the masters, exactly as "
        "'nbgrader generate_assignment ASSIGNMENT --force' does, and record the masters in "
        "the gradebook. Then build the student bundle (notebooks, tunelab, data, pins, a "
        "README; no masters, tests or grader) as a folder and a .zip in INSTRUCTOR/bundle/.",
    )
    p.add_argument("assignments", nargs="*", help="assignment ids (default: all)")
    p.add_argument("--dest", help="write the copies here instead of notebooks/ (no gradebook)")
    p.add_argument(
        "--bundle-dir",
        metavar="DIR",
        help="write the student bundle (folder and .zip) here (default: INSTRUCTOR/bundle)",
    )
    p.add_argument(
        "--no-bundle", action="store_true", help="only release the notebooks, no student bundle"
    )
    p.set_defaults(func=cmd_release)

    p = sub.add_parser(
        "collect",
        help="import submissions from a folder or an LMS zip",
        description="Import submissions into the instructor folder. SOURCE is a folder "
        "STUDENT/ASSIGNMENT/*.ipynb, or an LMS .zip (or folder) of files named "
        "STUDENT_ASSIGNMENT.ipynb or STUDENT_ASSIGNMENT_YYYY-MM-DDTHH-MM-SS.ipynb. Files that "
        "do not fit, and duplicates without timestamps, are reported and not imported.",
    )
    p.add_argument("source", help="folder or .zip file")
    p.set_defaults(func=cmd_collect)

    p = sub.add_parser(
        "autograde",
        help="grade every collected submission, sandboxed and in parallel",
        description="Grade every collected submission of ASSIGNMENT with nbgrader's pipeline; "
        "each student's kernel runs in a bubblewrap sandbox with resource limits.",
    )
    p.add_argument("assignment", help=ASSIGNMENT_HELP)
    _grading_options(p, timeout=None)
    p.add_argument("--student", action="append", help="grade only this student (repeatable)")
    p.add_argument(
        "--scheduler",
        metavar="ADDRESS",
        help="run each submission's kernel on the workers of this Dask scheduler, e.g. "
        "tcp://HOST:8786 (every worker needs the course checkout at this same path, the venv "
        "and bubblewrap; --workers then means submissions in flight, default: the cluster's "
        "threads). Only this machine writes the gradebook.",
    )
    p.add_argument(
        "--new-seeds",
        action="store_true",
        help="draw new hidden inputs even for students graded before (default: a regrade "
        "reuses each student's stored seed, so it reproduces the grade)",
    )
    p.add_argument(
        "--skip-preflight",
        action="store_true",
        help="do not grade the master solution first (it must earn full marks in the sandbox "
        "before a class is graded; a pass is remembered until the course or grader changes)",
    )
    p.set_defaults(func=cmd_autograde)

    p = sub.add_parser(
        "feedback",
        help="HTML feedback per student (nbgrader generate_feedback)",
        description="Write one HTML page per autograded student, with every test's result and "
        "points, to INSTRUCTOR/feedback/STUDENT/ASSIGNMENT/ (run autograde first).",
    )
    p.add_argument("assignment", help=ASSIGNMENT_HELP)
    p.set_defaults(func=cmd_feedback)

    p = sub.add_parser(
        "export",
        help="grades CSV (nbgrader's CSV exporter)",
        description="Write every grade in the gradebook, one row per student and assignment, "
        "as a CSV file (nbgrader's CsvExportPlugin).",
    )
    p.add_argument("--to", metavar="PATH", help="CSV path (default: INSTRUCTOR/exports/grades.csv)")
    p.set_defaults(func=cmd_export)

    p = sub.add_parser(
        "report",
        help="score distribution figure, hardest parts, students who need attention",
        description="Write INSTRUCTOR/reports/ASSIGNMENT/scores.png, report.md and report.html "
        "from the gradebook (run autograde first).",
    )
    p.add_argument("assignment", help=ASSIGNMENT_HELP)
    p.add_argument(
        "--threshold",
        type=_share,
        default=0.5,
        metavar="SHARE",
        help="flag students below this share of the points, 0..1 (default 0.5)",
    )
    p.set_defaults(func=cmd_report)

    p = sub.add_parser(
        "similarity",
        help="pairs of submissions that share code (or quiz letters), side by side",
        description="Compare the collected submissions of ASSIGNMENT pairwise: the code of the "
        "answer cells with winnowed fingerprints (copydetect, as MOSS does; code the release "
        "contains and code most of the class shares are left out), or, for the quiz, the "
        "letters of students on different variants. Writes INSTRUCTOR/reports/ASSIGNMENT/"
        "similarity/ (index.html, similarity.md, one side-by-side page per flagged pair). "
        "Also run at the end of every whole-class autograde.",
    )
    p.add_argument("assignment", help=ASSIGNMENT_HELP)
    p.add_argument(
        "--threshold",
        type=_share,
        default=None,
        metavar="SHARE",
        help="flag a pair when this share of one submission's code is found in the other, "
        "0..1 (default 0.75)",
    )
    p.set_defaults(func=cmd_similarity)

    p = sub.add_parser(
        "demo",
        help="end-to-end rehearsal on a synthetic class (in INSTRUCTOR/demo/)",
        description="Build a synthetic class of mixed-quality submissions (complete, partial, "
        "blank, wrong, broken, hostile) of the graded assignments, then collect, autograde, "
        "give feedback, export and report. Uses its own gradebook in INSTRUCTOR/demo/.",
    )
    p.add_argument("--students", type=int, default=15, help="class size (default 15)")
    p.add_argument("--assignment", action="append", help="only this assignment (repeatable)")
    _grading_options(p, timeout=30)
    p.add_argument("--seed", type=int, default=0, help="seed of the synthetic class")
    p.set_defaults(func=cmd_demo)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if getattr(args, "zygote", None) is not None:  # Sandbox.zygote's default, in every worker
        os.environ["TUNELAB_SANDBOX_ZYGOTE"] = "1" if args.zygote else "0"
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="[%(name)s %(levelname)s] %(message)s",
    )
    if not args.verbose:
        logging.getLogger("traitlets").setLevel(logging.ERROR)
    else:
        logging.getLogger("grader.nbgrader").propagate = True
    os.environ.setdefault("PYDEVD_DISABLE_FILE_VALIDATION", "1")
    try:
        return args.func(args)
    except CourseError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
