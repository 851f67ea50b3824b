"""Similarity report: which submissions of a class share code (or quiz letters) they should not.

Why: per-part checks grade each notebook alone, so code passed around a class scores like
the work of every student who pasted it. This report compares the class pairwise after
autograde and lists the pairs an instructor should look at, each with a side-by-side page.
It is evidence for a conversation, never a grade: nothing here changes a score.

Code assignments (``sql_overfitting``): the code of every answer cell (nbgrader solution
cells) of a submission, compared with winnowed fingerprints as MOSS does, through
copydetect (tokenised with Pygments: names become V, strings S, whitespace and comments
vanish, so renamed variables and reformatting change nothing):

* what the release itself contains is left out: fingerprints of the released answer cells
  (signatures, docstrings, stubs; both editions) are removed before comparing;
* code most of the class shares is left out too (a fingerprint in more than
  ``common_share`` of the submissions, MOSS's ``-m``): the one obvious line for a one-line
  part is not evidence;
* a pair is flagged when the larger of its two similarities (share of one submission's
  fingerprinted code found in the other) reaches ``threshold``; the pairs are found through
  an index of shared fingerprints, so only pairs that share something are compared.

Quiz (letters): per-student variants make copied letters score like guesses already, but a
copy is still worth knowing about: two students whose *letters* agree on at least
``quiz_min_same`` questions while their variants differ are listed (by chance, letters agree
on one question in four).

Writes ``INSTRUCTOR/reports/ASSIGNMENT/similarity/``: ``index.html`` and ``similarity.md``
(the flagged pairs, the highest other pairs for scale, skipped submissions with the reason)
and ``pairs/A--B.html`` per flagged pair. Pages are built like the feedback pages: every
piece of student text escaped, the body passed through :func:`grader.results.sanitize.clean_html`,
the Content-Security-Policy first in ``<head>``, no script, and
:func:`grader.results.sanitize.page_problems` must find nothing or the page is not written.
"""

from __future__ import annotations

import ast
import html
import io
import itertools
import math
import sys
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import nbformat

from grader.stores.course import Course, CourseError

#: copydetect's defaults: matches shorter than NOISE filtered characters are ignored; matches
#: of GUARANTEE characters or more are always found (window = GUARANTEE - NOISE + 1).
NOISE = 25
GUARANTEE = 30
THRESHOLD = 0.75
COMMON_SHARE = 0.2
QUIZ_MIN_SAME = 10
#: pairs listed beyond the flagged ones, so the instructor sees where the class lies
CONTEXT_PAIRS = 10


@dataclass
class Pair:
    """Two submissions and how much of each is found in the other (0..1)."""

    a: str
    b: str
    share_a: float
    share_b: float
    page: Path | None = None
    detail: str = ""

    @property
    def similarity(self) -> float:
        return max(self.share_a, self.share_b)


@dataclass
class SimilarityReport:
    assignment: str
    kind: str  # "code" or "quiz letters"
    students: list[str]
    threshold: float
    flagged: list[Pair] = field(default_factory=list)
    context: list[Pair] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)
    compared_pairs: int = 0
    seconds: float = 0.0
    folder: Path | None = None
    index: Path | None = None
    markdown: Path | None = None


# -- what is compared --------------------------------------------------------------------------
def answer_cells(nb: nbformat.NotebookNode) -> dict[str, str]:
    """grade_id -> source of every code answer cell (nbgrader solution cells)."""
    out = {}
    for cell in nb.cells:
        meta = cell.get("metadata", {}).get("nbgrader", {})
        if cell.get("cell_type") == "code" and meta.get("solution") and not meta.get("grade"):
            out[str(meta.get("grade_id", ""))] = str(cell.get("source", ""))
    return out


def answer_code(nb: nbformat.NotebookNode) -> str:
    """All code answers of a notebook, in order, one block per answer cell."""
    return "\n\n".join(f"# --- {gid}\n{src}" for gid, src in answer_cells(nb).items())


def _release_notebooks(course: Course, assignment: str) -> list[Path]:
    from grader.handout.editions import EDITION_DIRS

    folders = [course.release / assignment]
    folders += [course.release / sub / assignment for sub in EDITION_DIRS.values()]
    return [p for folder in folders if folder.is_dir() for p in sorted(folder.glob("*.ipynb"))]


def boilerplate_code(course: Course, assignment: str) -> list[str]:
    """The answer cells as released (both editions): what every student starts from.

    Each cell alone and all of them joined as a submission's are (so the joins between
    untouched stubs are left out too).
    """
    out = []
    for path in _release_notebooks(course, assignment):
        try:
            nb = nbformat.read(path, as_version=4)
        except Exception:  # noqa: BLE001 (a broken release is reported by release itself)
            continue
        out += [*answer_cells(nb).values(), answer_code(nb)]
    return out


def _submissions(course: Course, assignment: str) -> tuple[dict[str, list], dict[str, str]]:
    """student -> the notebooks they submitted; student -> why they are skipped."""
    notebooks: dict[str, list] = {}
    skipped: dict[str, str] = {}
    if not course.submitted.is_dir():
        return notebooks, skipped
    for folder in sorted(course.submitted.glob(f"*/{assignment}")):
        student = folder.parent.name
        found = []
        for path in sorted(folder.glob("*.ipynb")):
            try:
                found.append(nbformat.read(path, as_version=4))
            except Exception as err:  # noqa: BLE001 (a corrupted submission is only skipped)
                skipped[student] = f"{path.name} cannot be read ({type(err).__name__})"
        if found:
            notebooks[student] = found
        elif student not in skipped:
            skipped[student] = "no notebook"
    return notebooks, skipped


# -- code: winnowed fingerprints (copydetect) --------------------------------------------------
def _fingerprint(code: str, boilerplate) -> object:
    from copydetect.detector import CodeFingerprint

    return CodeFingerprint(
        "answer.py",
        NOISE,
        GUARANTEE - NOISE + 1,
        boilerplate=boilerplate,
        language="python",
        fp=io.StringIO(code),
    )


def _boilerplate_hashes(codes: list[str]):
    import numpy as np
    from copydetect.detector import CodeFingerprint

    hashes = []
    for code in codes:
        fp = CodeFingerprint(
            "release.py", NOISE, 1, language="python", fp=io.StringIO(code)
        )  # every k-gram of the release, not a winnowed sample (copydetect does the same)
        hashes.extend(fp.hashes)
    return np.unique(np.array(hashes)) if hashes else []


def _drop_hashes(fp, drop: set) -> None:
    from copydetect.utils import get_token_coverage

    if not drop:
        return
    fp.hashes = {h for h in fp.hashes if h not in drop}
    fp.hash_idx = {h: i for h, i in fp.hash_idx.items() if h not in drop}
    fp.token_coverage = get_token_coverage(fp.hash_idx, fp.k, len(fp.filtered_code))


def compare_code(
    codes: dict[str, str],
    boilerplate: list[str] = (),
    *,
    threshold: float = THRESHOLD,
    common_share: float = COMMON_SHARE,
) -> tuple[list[Pair], list[Pair], int, dict]:
    """(flagged pairs, all compared pairs, number compared, fingerprints) for student -> code."""
    from copydetect.detector import compare_files

    base = _boilerplate_hashes(list(boilerplate))
    prints = {s: _fingerprint(code, base) for s, code in sorted(codes.items())}
    holders: dict[int, list[str]] = defaultdict(list)
    for student, fp in prints.items():
        for h in fp.hashes:
            holders[h].append(student)
    limit = max(3, math.ceil(common_share * len(prints)))
    common = {h for h, who in holders.items() if len(who) > limit}
    for fp in prints.values():
        _drop_hashes(fp, common)
    candidates: set[tuple[str, str]] = set()
    for h, who in holders.items():
        if h not in common and len(who) > 1:
            candidates.update(itertools.combinations(sorted(who), 2))
    pairs = []
    for a, b in sorted(candidates):
        fa, fb = prints[a], prints[b]
        if not fa.token_coverage or not fb.token_coverage:
            continue
        _, (share_a, share_b), _ = compare_files(fa, fb)
        pairs.append(Pair(a, b, float(share_a), float(share_b)))
    pairs.sort(key=lambda p: (-p.similarity, p.a, p.b))
    flagged = [p for p in pairs if p.similarity >= threshold]
    return flagged, pairs, len(candidates), prints


# -- quiz: letters -----------------------------------------------------------------------------
def quiz_letters(nb: nbformat.NotebookNode) -> dict[str, str]:
    """qid -> the letter a submission's answer cells assign (``answers["q1"] = "b"``)."""
    letters: dict[str, str] = {}
    for source in answer_cells(nb).values():
        try:
            tree = ast.parse(source)
        except SyntaxError:
            continue
        for node in ast.walk(tree):
            if not (isinstance(node, ast.Assign) and len(node.targets) == 1):
                continue
            target, value = node.targets[0], node.value
            if (
                isinstance(target, ast.Subscript)
                and isinstance(target.value, ast.Name)
                and target.value.id == "answers"
                and isinstance(target.slice, ast.Constant)
                and isinstance(target.slice.value, str)
                and isinstance(value, ast.Constant)
                and isinstance(value.value, str)
            ):
                letters[target.slice.value] = value.value.strip().casefold()[:3]
    return letters


def compare_quiz(
    letters: dict[str, dict[str, str]], variant, *, min_same: int = QUIZ_MIN_SAME
) -> tuple[list[Pair], int]:
    """Pairs on different variants whose letters agree on at least ``min_same`` questions."""
    flagged = []
    students = sorted(letters)
    codes = {s: variant(s)["variant"] for s in students}
    compared = 0
    for a, b in itertools.combinations(students, 2):
        compared += 1
        both = sorted(set(letters[a]) & set(letters[b]))
        same = [q for q in both if letters[a][q] == letters[b][q]]
        if len(same) >= min_same and codes[a] != codes[b]:
            n = len(both) or 1
            flagged.append(
                Pair(
                    a,
                    b,
                    len(same) / n,
                    len(same) / n,
                    detail=f"{len(same)} of {len(both)} letters identical on different "
                    f"variants ({codes[a]}, {codes[b]}); by chance about 1 in 4 per question",
                )
            )
    flagged.sort(key=lambda p: (-p.similarity, p.a, p.b))
    return flagged, compared


# -- pages -------------------------------------------------------------------------------------
STYLE = (
    "body{font-family:sans-serif;margin:1.5em}table{border-collapse:collapse}"
    "td,th{border:1px solid #ccc;padding:4px 8px;vertical-align:top}"
    "pre{white-space:pre-wrap;font-size:12px;margin:0}mark{background:#ffd54f}"
)


def _page(title: str, body: str) -> str:
    """A complete page: sanitised body, the feedback pages' CSP first in <head>, no script."""
    from grader.results.sanitize import CSP_META, clean_html, page_problems

    page = (
        "<!DOCTYPE html>\n<html><head>\n"
        f'{CSP_META}\n<meta charset="utf-8">\n<title>{html.escape(title)}</title>\n'
        f"<style>{STYLE}</style>\n</head>\n<body>\n{clean_html(body)}\n</body></html>\n"
    )
    problems = page_problems(page)
    if problems:
        raise CourseError(f"similarity page {title!r} refused: {'; '.join(problems[:5])}")
    return page


def _highlighted(fp, slices) -> str:
    from copydetect.utils import highlight_overlap

    if len(slices[0]) == 0:
        return html.escape(fp.raw_code)
    text, _ = highlight_overlap(fp.raw_code, slices, "<mark>", "</mark>", escape_html=True)
    return text


def pair_page(pair: Pair, prints: dict, assignment: str) -> str:
    """Side by side: each submission's answer code with the shared parts marked."""
    from copydetect.detector import compare_files

    fa, fb = prints[pair.a], prints[pair.b]
    _, _, (slices_a, slices_b) = compare_files(fa, fb)
    a, b = html.escape(pair.a), html.escape(pair.b)
    body = (
        f"<h1>{html.escape(assignment)}: {a} and {b}</h1>\n"
        f"<p>{pair.share_a:.0%} of {a}'s answer code is found in {b}'s; "
        f"{pair.share_b:.0%} of {b}'s in {a}'s (code released to everyone and code most of "
        "the class shares are not counted). Marked: the shared passages. Evidence for a "
        "conversation, not a verdict.</p>\n"
        f"<table><tr><th>{a}</th><th>{b}</th></tr><tr>"
        f"<td><pre>{_highlighted(fa, slices_a)}</pre></td>"
        f"<td><pre>{_highlighted(fb, slices_b)}</pre></td></tr></table>"
    )
    return _page(f"{assignment}: {pair.a} / {pair.b}", body)


def _safe_name(student: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in student)[:80]


def _index(report: SimilarityReport) -> str:
    rows = []
    for pair in report.flagged:
        link = (
            f'<a href="pairs/{html.escape(pair.page.name)}">side by side</a>'
            if pair.page
            else html.escape(pair.detail)
        )
        rows.append(
            f"<tr><td>{html.escape(pair.a)}</td><td>{html.escape(pair.b)}</td>"
            f"<td>{pair.share_a:.0%}</td><td>{pair.share_b:.0%}</td><td>{link}</td></tr>"
        )
    context = "".join(
        f"<tr><td>{html.escape(p.a)}</td><td>{html.escape(p.b)}</td>"
        f"<td>{p.share_a:.0%}</td><td>{p.share_b:.0%}</td></tr>"
        for p in report.context
    )
    skipped = "".join(
        f"<li>{html.escape(s)}: {html.escape(r)}</li>" for s, r in sorted(report.skipped.items())
    )
    head = "<tr><th>student</th><th>student</th><th>share of first</th><th>share of second</th>"
    body = (
        f"<h1>Similarity: {html.escape(report.assignment)} ({html.escape(report.kind)})</h1>\n"
        f"<p>{len(report.students)} submissions, {report.compared_pairs} pairs compared, "
        f"{len(report.flagged)} at or above {report.threshold:.0%}; "
        f"{report.seconds:.1f} s.</p>\n<h2>Flagged pairs</h2>\n"
        + (f"<table>{head}<th></th></tr>{''.join(rows)}</table>" if rows else "<p>None.</p>")
        + "\n<h2>Highest other pairs (for scale)</h2>\n"
        + (f"<table>{head}</tr>{context}</table>" if context else "<p>None.</p>")
        + (f"\n<h2>Not compared</h2><ul>{skipped}</ul>" if skipped else "")
    )
    return _page(f"Similarity: {report.assignment}", body)


def _markdown(report: SimilarityReport) -> str:
    lines = [
        f"# Similarity: {report.assignment} ({report.kind})",
        "",
        f"{len(report.students)} submissions, {report.compared_pairs} pairs compared, "
        f"{len(report.flagged)} at or above {report.threshold:.0%} ({report.seconds:.1f} s).",
        "",
        "| student | student | share of first | share of second | detail |",
        "|---|---|---:|---:|---|",
    ]
    for p in report.flagged:
        detail = f"pairs/{p.page.name}" if p.page else p.detail
        lines.append(f"| {p.a} | {p.b} | {p.share_a:.0%} | {p.share_b:.0%} | {detail} |")
    if not report.flagged:
        lines.append("| (none) | | | | |")
    if report.skipped:
        lines += ["", "Not compared:", ""]
        lines += [f"- {s}: {r}" for s, r in sorted(report.skipped.items())]
    return "\n".join(lines) + "\n"


# -- the command -------------------------------------------------------------------------------
def _variant_summary(course: Course, assignment: str):
    from grader.verdicts.trusted import checker_path, load_checker

    if not checker_path(course.root, assignment).is_file():
        return None
    load_checker(course.root, assignment)
    module = sys.modules.get(f"_grader_checker_{assignment.replace('-', '_')}")
    return getattr(module, "variant_summary", None)


def write_similarity(
    course: Course,
    assignment: str,
    *,
    threshold: float = THRESHOLD,
    common_share: float = COMMON_SHARE,
    quiz_min_same: int = QUIZ_MIN_SAME,
) -> SimilarityReport:
    """Compare the class's submissions of ``assignment``; write the report's pages."""
    started = time.perf_counter()
    if assignment not in course.assignments():
        raise CourseError(f"no assignment {assignment!r} in {course.source}")
    notebooks, skipped = _submissions(course, assignment)
    variant = _variant_summary(course, assignment)
    folder = course.reports / assignment / "similarity"
    pages = folder / "pairs"
    pages.mkdir(parents=True, exist_ok=True)
    for old in pages.glob("*.html"):
        old.unlink()
    if variant is not None:
        letters = {}
        for student, nbs in notebooks.items():
            found: dict[str, str] = {}
            for nb in nbs:
                found.update(quiz_letters(nb))
            if found:
                letters[student] = found
            else:
                skipped[student] = "no letters found in its answer cells"
        share = quiz_min_same / max(1, len(_quiz_questions(variant)))
        flagged, compared = compare_quiz(letters, variant, min_same=quiz_min_same)
        report = SimilarityReport(
            assignment, "quiz letters", sorted(letters), share, flagged=flagged
        )
        report.compared_pairs = compared
    else:
        codes = {}
        for student, nbs in notebooks.items():
            code = "\n\n".join(answer_code(nb) for nb in nbs)
            if code.strip():
                codes[student] = code
            else:
                skipped[student] = "no answer cells"
        flagged, pairs, compared, prints = compare_code(
            codes,
            boilerplate_code(course, assignment),
            threshold=threshold,
            common_share=common_share,
        )
        report = SimilarityReport(assignment, "code", sorted(codes), threshold, flagged=flagged)
        report.context = [p for p in pairs if p not in flagged][:CONTEXT_PAIRS]
        report.compared_pairs = compared
        for pair in flagged:
            pair.page = pages / f"{_safe_name(pair.a)}--{_safe_name(pair.b)}.html"
            pair.page.write_text(pair_page(pair, prints, assignment), encoding="utf-8")
    report.skipped = skipped
    report.seconds = time.perf_counter() - started
    report.folder = folder
    report.index = folder / "index.html"
    report.index.write_text(_index(report), encoding="utf-8")
    report.markdown = folder / "similarity.md"
    report.markdown.write_text(_markdown(report), encoding="utf-8")
    return report


def _quiz_questions(variant) -> list[str]:
    return [k[: -len("_order")] for k in variant("") if k.endswith("_order")]
