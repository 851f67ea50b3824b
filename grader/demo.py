"""Demo: a synthetic class run end to end, the instructor's rehearsal and the grader's own check.

``python -m grader demo`` builds, in ``.instructor/demo/`` (its own gradebook; the real one
and ``notebooks/`` are not touched), a class whose students submit both graded
assignments with mixed quality:

* complete: the master's answers; partial: the first half of them; blank: the released copy;
* wrong: the master's answers with their numbers and answer letters changed;
* broken or hostile: an endless loop, a crash (``os._exit``), an edited test cell, a read
  of ``solutions/`` (blocked by the sandbox), a corrupted file, a misnamed file.

``sql_overfitting`` arrives as a folder (``STUDENT/ASSIGNMENT/``), ``quiz`` (the last
assignment) as an LMS zip of ``STUDENT_quiz.ipynb`` files, with a timestamped resubmission
and a misnamed file to report. Then it
runs collect -> autograde -> feedback -> export -> report and says where everything is.
"""

from __future__ import annotations

import io
import json
import random
import re
import shutil
import tokenize
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import nbformat

from grader.stores.course import Course

DEMO_ASSIGNMENTS = ("sql_overfitting", "quiz")
NAMES = (
    "ada", "alan", "barbara", "claude", "dennis", "edsger", "frances", "grace", "hedy", "ken",
    "katherine", "linus", "margaret", "niklaus", "radia", "shafi", "tim", "yukihiro", "john",
    "donald",
)  # fmt: skip
# Share of each kind in the class, in the order kinds are dealt.
KINDS = (
    "complete", "partial", "wrong", "complete", "blank", "wrong", "complete", "partial",
    "loops", "complete", "crashes", "tampered", "snoops", "corrupt", "complete",
)  # fmt: skip
MARKERS = re.compile(r"^\s*### (BEGIN|END) SOLUTION\s*$")


@dataclass
class DemoPlan:
    course: Course
    inbox: Path  # folder source: STUDENT/ASSIGNMENT/...
    lms_zip: Path | None  # LMS zip source for the quiz
    kinds: dict[tuple[str, str], str]  # (student, assignment) -> kind


def demo_course(course: Course) -> Course:
    root = course.instructor / "demo"
    return Course(root=course.root, instructor=root, release_dir=root / "release")


def _solution_sources(master: nbformat.NotebookNode) -> dict[str, str]:
    sources = {}
    for cell in master.cells:
        meta = cell.metadata.get("nbgrader", {})
        if meta.get("solution"):
            lines = [ln for ln in cell.source.splitlines() if not MARKERS.match(ln)]
            sources[meta["grade_id"]] = "\n".join(lines)
    return sources


def _mutate(source: str, rng: random.Random) -> str:
    """A plausible wrong answer: numbers nudged, one-letter answers moved to another letter."""
    try:
        tokens = list(tokenize.generate_tokens(io.StringIO(source + "\n").readline))
    except (tokenize.TokenError, IndentationError, SyntaxError):
        return source + "\n# (changed my mind)\nraise ValueError('not sure')"
    out = []
    for tok in tokens:
        text = tok.string
        if tok.type == tokenize.NUMBER and not text.startswith("0x"):
            try:
                value = int(text.replace("_", ""))
                text = str(value + rng.choice((1, 2, 3)))
            except ValueError:
                text = repr(float(text.replace("_", "")) * rng.choice((2.0, 0.5, 10.0)))
        elif tok.type == tokenize.STRING and re.fullmatch(r"""(['"])[a-e]\1""", text):
            letter = text[1]
            text = repr("abcd"[("abcd".find(letter) + rng.choice((1, 2, 3))) % 4])
        out.append(tok._replace(string=text))
    return tokenize.untokenize(out).rstrip("\n")


def make_submission(
    kind: str, released: nbformat.NotebookNode, master: nbformat.NotebookNode, rng, secret: Path
) -> bytes:
    """The bytes of one synthetic submission of ``kind`` (see the module docstring)."""
    nb = nbformat.from_dict(json.loads(nbformat.writes(released)))
    answers = _solution_sources(master)
    ids = [g for g in answers if _cell(nb, g) is not None]
    code_ids = [g for g in ids if _cell(nb, g).cell_type == "code"]
    chosen: dict[str, str] = {}
    if kind in ("complete", "loops", "crashes", "snoops", "corrupt"):
        chosen = {g: answers[g] for g in ids}
    elif kind == "partial":
        chosen = {g: answers[g] for g in ids[: max(1, len(ids) // 2)]}
    elif kind in ("wrong", "tampered"):
        chosen = {g: _mutate(answers[g], rng) for g in ids}
    for grade_id, source in chosen.items():
        _cell(nb, grade_id).source = source
    if code_ids and kind == "loops":
        victim = _cell(nb, code_ids[len(code_ids) // 2])
        victim.source = "while True:  # oops\n    pass\n" + victim.source
    if code_ids and kind == "crashes":
        victim = _cell(nb, code_ids[-1])
        victim.source = "import os\n\nos._exit(1)\n" + victim.source
    if code_ids and kind == "snoops":
        _cell(nb, code_ids[0]).source = (
            f"try:\n    print(open({str(secret)!r}).read()[:100])\nexcept OSError as err:\n"
            f"    print('no peeking:', err)\n" + _cell(nb, code_ids[0]).source
        )
    if kind == "tampered":
        for cell in nb.cells:
            if cell.metadata.get("nbgrader", {}).get("grade"):
                cell.source = "# tests are for the weak\npass"
    data = nbformat.writes(nb).encode()
    if kind == "corrupt":
        return data[: len(data) // 3]
    return data


def _cell(nb, grade_id: str):
    for cell in nb.cells:
        if cell.metadata.get("nbgrader", {}).get("grade_id") == grade_id:
            return cell
    return None


def build_class(demo: Course, assignments: list[str], students: int, seed: int = 0) -> DemoPlan:
    """Write the synthetic submissions: a folder inbox, and an LMS zip for the quiz."""
    rng = random.Random(seed)
    names = list(NAMES[:students]) + [f"student{i:02d}" for i in range(len(NAMES), students)]
    inbox = demo.instructor / "inbox"
    kinds: dict[tuple[str, str], str] = {}
    lms_files: list[tuple[str, bytes]] = []
    for assignment in assignments:
        (notebook,) = demo.notebooks(assignment)[:1]
        released = nbformat.read(demo.release / assignment / f"{notebook}.ipynb", as_version=4)
        master = nbformat.read(demo.source / assignment / f"{notebook}.ipynb", as_version=4)
        secret = demo.source / assignment / f"{notebook}.ipynb"
        deal = list(KINDS)
        rng.shuffle(deal)
        as_zip = assignment == assignments[-1] and len(assignments) > 1
        for index, student in enumerate(names):
            kind = deal[index % len(deal)]
            kinds[(student, assignment)] = kind
            data = make_submission(kind, released, master, rng, secret)
            if as_zip:
                if index == 0:  # resubmitted: an early blank copy, then the real one
                    early = nbformat.writes(released).encode()
                    lms_files.append((f"{student}_{assignment}_2025-04-30T17-45-00.ipynb", early))
                    lms_files.append((f"{student}_{assignment}_2025-05-01T09-00-00.ipynb", data))
                else:
                    lms_files.append((f"{student}_{assignment}.ipynb", data))
            else:
                folder = inbox / student / assignment
                folder.mkdir(parents=True, exist_ok=True)
                (folder / f"{notebook}.ipynb").write_bytes(data)
        if not as_zip and names:
            # one student saved a copy under another name: reported, not guessed
            extra = inbox / names[-1] / assignment / f"{notebook} (copy).ipynb"
            extra.write_bytes((inbox / names[-1] / assignment / f"{notebook}.ipynb").read_bytes())
    lms_zip = None
    if lms_files:
        lms_zip = demo.instructor / f"lms-{assignments[-1]}-download.zip"
        with zipfile.ZipFile(lms_zip, "w") as zf:
            for name, data in lms_files:
                zf.writestr(f"submissions/{name}", data)
            # a file named without its student: reported, never guessed
            zf.writestr(f"submissions/{assignments[-1]}_final_version.ipynb", lms_files[-1][1])
    return DemoPlan(demo, inbox, lms_zip, kinds)


def run_demo(
    course: Course,
    *,
    students: int = 15,
    workers: int | None = None,
    timeout: int | None = 30,
    memory_mb: int | None = None,
    sandbox: bool = True,
    seed: int = 0,
    assignments: list[str] | None = None,
    progress: bool = True,
    say: Callable[[str], None] = print,
) -> dict:
    """Run the whole demo; return what each step produced (for the CLI summary and tests)."""
    from grader.grading.autograde import autograde
    from grader.grading.collect import collect
    from grader.handout.release import release_all
    from grader.results.export import export_grades
    from grader.results.feedback import generate_feedback
    from grader.results.report import write_report

    demo = demo_course(course)
    if demo.instructor.exists():
        shutil.rmtree(demo.instructor)
    names = assignments or [a for a in DEMO_ASSIGNMENTS if a in course.assignments()]
    if not names:
        names = course.graded_assignments()
    say(f"demo: releasing {', '.join(names)} into {demo.release}")
    release_all(course=demo, assignments=names)
    plan = build_class(demo, names, students, seed)
    say(f"demo: {len(plan.kinds)} synthetic submissions from {students} students in {plan.inbox}")
    out: dict = {"course": demo, "plan": plan, "collect": [], "autograde": {}, "feedback": {}}
    out["collect"].append(collect(demo, plan.inbox))
    if plan.lms_zip:
        out["collect"].append(collect(demo, plan.lms_zip))
    for assignment in names:
        out["autograde"][assignment] = autograde(
            demo,
            assignment,
            workers=workers,
            timeout=timeout,
            memory_mb=memory_mb,
            sandbox=sandbox,
            progress=progress,
        )
        out["feedback"][assignment] = generate_feedback(demo, assignment, progress=progress)
    out["export"] = export_grades(demo)
    out["reports"] = {a: write_report(demo, a) for a in names}
    return out
