"""Report: how the class did on one assignment, for the instructor's next lesson plan.

Writes, under ``.instructor/reports/ASSIGNMENT/``:

* ``scores.png``: the distribution of total scores, and the pass rate of every graded part
  (share of students with full points on it), in the notebook's order;
* ``report.md`` and ``report.html``: the hardest parts (lowest pass rate, with the most
  common error) and the students who need attention (low score, a submission that could
  not be read, or something that went wrong while grading), each with the reason.

Scores come from the gradebook; the reasons from the last autograde run's record.
"""

from __future__ import annotations

import html
import json
import statistics
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from grader.stores.course import Course, CourseError

# Notes that mean "look at this submission", beyond a low score.
ATTENTION_WORDS = (
    "missing",
    "empty",
    "not valid",
    "not a valid",
    "timed out",
    "kernel died",
    "could not be interrupted",
    "was edited",
    "was deleted",
    "duplicated",
    "not graded",
    "another name",
    "printed too much",
)


@dataclass
class Part:
    name: str
    points: float
    scores: list[float] = field(default_factory=list)
    errors: Counter = field(default_factory=Counter)

    @property
    def pass_rate(self) -> float:
        if not self.scores:
            return 0.0
        return sum(s >= self.points for s in self.scores) / len(self.scores)

    @property
    def mean(self) -> float:
        return sum(self.scores) / len(self.scores) if self.scores else 0.0


@dataclass
class Report:
    assignment: str
    max_score: float
    totals: dict[str, float]  # student -> total score
    parts: list[Part]
    attention: list[tuple[str, str, str]]  # (student, score text, reason)
    manual_points: float = 0.0  # points of hand-graded (markdown) cells, included in max_score
    png: Path | None = None
    markdown: Path | None = None
    html: Path | None = None

    def hardest(self, n: int = 5) -> list[Part]:
        return sorted(self.parts, key=lambda p: (p.pass_rate, p.mean))[:n]


def build_report(course: Course, assignment: str, *, threshold: float = 0.5) -> Report:
    """Gather scores and reasons (no files written)."""
    from nbgrader.api import Gradebook, MissingEntry

    if not course.gradebook.exists():
        raise CourseError(f"no gradebook at {course.gradebook}: autograde {assignment} first")
    record = _run_record(course, assignment)
    with Gradebook(course.db_url) as gb:
        try:
            master = gb.find_assignment(assignment)
        except MissingEntry as err:
            raise CourseError(f"{assignment} is not in the gradebook: autograde it first") from err
        # markdown grade cells are graded by hand: their pass rate says nothing yet
        parts = [
            Part(cell.name, float(cell.max_score))
            for nb in master.notebooks
            for cell in sorted(nb.grade_cells, key=lambda c: _cell_order(nb, c.name))
            if cell.cell_type == "code"
        ]
        manual = sum(
            float(c.max_score)
            for nb in master.notebooks
            for c in nb.grade_cells
            if c.cell_type != "code"
        )
        by_name = {p.name: p for p in parts}
        max_score = float(master.max_score)
        totals: dict[str, float] = {}
        for submission in gb.assignment_submissions(assignment):
            student = submission.student.id
            totals[student] = float(submission.score)
            for nb in submission.notebooks:
                for grade in nb.grades:
                    if grade.name in by_name:
                        by_name[grade.name].scores.append(float(grade.score))
    for result in record.values():
        for part, error in result.get("failed_parts", {}).items():
            if part in by_name:
                by_name[part].errors[error.split(":")[0]] += 1
    attention = []
    for student in sorted(totals, key=lambda s: (totals[s], s)):
        result = record.get(student, {})
        reasons = [n for n in result.get("notes", []) if _needs_look(n)]
        if result.get("status") == "failed":
            reasons.insert(0, f"not graded: {result.get('error')}")
        low = max_score > 0 and totals[student] < threshold * max_score
        if low:
            reasons.insert(0, f"below {threshold:.0%} of the points")
        if reasons:
            attention.append((student, f"{totals[student]:g}/{max_score:g}", "; ".join(reasons)))
    return Report(assignment, max_score, totals, parts, attention, manual_points=manual)


def write_report(course: Course, assignment: str, *, threshold: float = 0.5) -> Report:
    """Build the report and write scores.png, report.md and report.html."""
    report = build_report(course, assignment, threshold=threshold)
    folder = course.reports / assignment
    folder.mkdir(parents=True, exist_ok=True)
    report.png = _plot(report, folder / "scores.png")
    report.markdown = folder / "report.md"
    report.markdown.write_text(_markdown(report))
    report.html = folder / "report.html"
    report.html.write_text(_html(report))
    return report


# -- pieces ---------------------------------------------------------------------------------
def _run_record(course: Course, assignment: str) -> dict[str, dict]:
    path = course.runs / f"{assignment}.json"
    if not path.exists():
        return {}
    try:
        return {r["student"]: r for r in json.loads(path.read_text())["results"]}
    except (ValueError, KeyError, TypeError):
        return {}


def _cell_order(notebook, name: str) -> int:
    names = [cell.name for cell in notebook.source_cells]
    return names.index(name) if name in names else len(names)


def _needs_look(note: str) -> bool:
    text = note.lower()
    return any(word in text for word in ATTENTION_WORDS)


def _plot(report: Report, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker
    import seaborn as sns

    sns.set_theme(style="whitegrid")
    fig, (left, right) = plt.subplots(
        1, 2, figsize=(12, max(4.0, 0.35 * len(report.parts) + 1.5)), constrained_layout=True
    )
    totals = list(report.totals.values())
    top = report.max_score or 1.0
    bins = [x - 0.5 for x in range(int(top) + 2)] if top <= 30 else 15
    sns.histplot(x=totals, bins=bins, ax=left, color="#4c72b0")
    left.set_xlim(-0.5, top + 0.5)
    left.set_xlabel(f"total score (out of {report.max_score:g})")
    left.set_ylabel("students")
    left.yaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
    mean = sum(totals) / len(totals) if totals else 0.0
    left.axvline(mean, color="#c44e52", linestyle="--", label=f"mean {mean:.1f}")
    if totals:
        left.legend(loc="upper left")
    left.set_title(f"{report.assignment}: score distribution ({len(totals)} students)")
    names = [p.name for p in report.parts]
    rates = [100 * p.pass_rate for p in report.parts]
    colors = ["#c44e52" if r < 50 else "#dd8452" if r < 75 else "#55a868" for r in rates]
    right.barh(names, rates, color=colors)
    right.invert_yaxis()
    right.set_xlim(0, 100)
    right.set_xlabel("students with full points (%)")
    right.set_title("pass rate of each graded part")
    for y, rate in enumerate(rates):
        right.text(min(rate + 1, 92), y, f"{rate:.0f}%", va="center", fontsize=8)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _table(header: list[str], rows: list[list[str]]) -> str:
    def cell(text: str) -> str:
        return str(text).replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def _summary(report: Report) -> list[str]:
    totals = sorted(report.totals.values())
    if not totals:
        return ["No graded submissions yet."]
    mean = statistics.fmean(totals)
    median = statistics.median(totals)
    full = sum(t >= report.max_score for t in totals)
    manual = (
        f" The total includes {report.manual_points:g} point(s) graded by hand (answers in "
        "markdown cells), which stay at 0 until graded in nbgrader's formgrader."
        if report.manual_points
        else ""
    )
    return [
        f"{len(totals)} submissions, mean {mean:.2f} / {report.max_score:g}, median {median:g}, "
        f"{full} with full marks, {len(report.attention)} need attention.{manual}"
    ]


def _hardest_rows(report: Report) -> list[list[str]]:
    rows = []
    for part in report.hardest():
        common = ", ".join(f"{name} ({n})" for name, n in part.errors.most_common(2)) or "-"
        rows.append(
            [part.name, f"{part.points:g}", f"{part.pass_rate:.0%}", f"{part.mean:.2f}", common]
        )
    return rows


HARDEST_HEADER = ["part", "points", "pass rate", "mean score", "most common errors"]
ATTENTION_HEADER = ["student", "score", "why"]


def _markdown(report: Report) -> str:
    lines = [f"# {report.assignment}: autograding report", "", *_summary(report), ""]
    lines += ["![scores](scores.png)", "", "## Hardest parts", ""]
    lines += [_table(HARDEST_HEADER, _hardest_rows(report)), "", "## Students who need attention"]
    lines += [""]
    if report.attention:
        lines.append(_table(ATTENTION_HEADER, [list(row) for row in report.attention]))
    else:
        lines.append("Nobody: every submission was read and scored at least half the points.")
    return "\n".join(lines) + "\n"


def _html_table(header: list[str], rows: list[list[str]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in row) + "</tr>" for row in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _html(report: Report) -> str:
    attention = (
        _html_table(ATTENTION_HEADER, [list(r) for r in report.attention])
        if report.attention
        else "<p>Nobody: every submission was read and scored at least half the points.</p>"
    )
    style = (
        "body{font-family:sans-serif;max-width:1100px;margin:2em auto}"
        "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:4px 8px;"
        "text-align:left;vertical-align:top}img{max-width:100%}"
    )
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(report.assignment)}"
        f" report</title><style>{style}</style></head><body>"
        f"<h1>{html.escape(report.assignment)}: autograding report</h1>"
        f"<p>{html.escape(_summary(report)[0])}</p><img src='scores.png' alt='scores'>"
        f"<h2>Hardest parts</h2>{_html_table(HARDEST_HEADER, _hardest_rows(report))}"
        f"<h2>Students who need attention</h2>{attention}</body></html>\n"
    )
