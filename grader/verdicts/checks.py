"""Look at a submitted notebook file before nbgrader does, and say plainly what is wrong with it.

nbgrader meets an empty or truncated file with a traceback and no grade. The grader checks
each expected notebook first: a missing, empty, oversized or corrupted notebook is recorded
as 0 points with a message naming the file and the problem (line and column for bad JSON),
and the rest of the class is graded as usual.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import nbformat

MAX_NOTEBOOK_MB = 50


@dataclass(frozen=True)
class NotebookCheck:
    """One expected notebook of a submission: ``problem`` is None when it can be graded."""

    name: str
    path: Path
    problem: str | None = None

    @property
    def ok(self) -> bool:
        return self.problem is None


def check_notebook(path: Path) -> str | None:
    """Why ``path`` cannot be graded, or None when it is a readable Jupyter notebook."""
    name = path.name
    if not path.exists():
        return f"{name} is missing"
    if not path.is_file():
        return f"{name} is not a file"
    size = path.stat().st_size
    if size == 0:
        return f"{name} is empty (0 bytes)"
    if size > MAX_NOTEBOOK_MB * 1024 * 1024:
        return f"{name} is {size / 2**20:.0f} MB, over the {MAX_NOTEBOOK_MB} MB limit"
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as err:
        return f"{name} is not UTF-8 text (byte {err.start}): not a notebook file"
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        return (
            f"{name} is not valid notebook JSON (line {err.lineno}, column {err.colno}: {err.msg})"
        )
    if not isinstance(data, dict) or "cells" not in data:
        return f"{name} is JSON but not a Jupyter notebook (no 'cells' list)"
    try:
        nb = nbformat.reads(text, as_version=4)
        nbformat.validate(nb)
    except Exception as err:  # noqa: BLE001 (nbformat raises several kinds)
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        return f"{name} is not a valid Jupyter notebook: {first}"
    return None


def check_submission(folder: Path, expected: list[str]) -> tuple[list[NotebookCheck], list[str]]:
    """Check each expected notebook in a submission folder.

    Returns the checks and notes about other files (a misnamed copy is named, never
    guessed to be the answer: the instructor decides).
    """
    checks = [
        NotebookCheck(n, folder / f"{n}.ipynb", check_notebook(folder / f"{n}.ipynb"))
        for n in expected
    ]
    extra = sorted(
        p.name
        for p in folder.glob("*.ipynb")
        if p.stem not in expected and not p.name.startswith(".")
    )
    notes = []
    links = sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_symlink())
    if links:  # nbgrader would copy what they point to, reading it with the grader's rights
        checks = [
            NotebookCheck(c.name, c.path, f"the submission contains symbolic links "
                          f"({', '.join(links)}); not graded")
            for c in checks
        ]  # fmt: skip
    if extra:
        missing = [c.name for c in checks if not c.path.exists()]
        hint = f" instead of {', '.join(m + '.ipynb' for m in missing)}" if missing else ""
        notes.append(f"ignored notebook(s) with another name{hint}: {', '.join(extra)}")
    return checks, notes


def edited_locked_cells(submitted: Path, released: Path) -> list[str]:
    """Notes on read-only cells a student changed or deleted, compared with the released copy.

    nbgrader restores such cells from the gradebook, but its log cannot tell an edit from
    the (expected) difference that hidden tests make; the released copy can.
    """
    try:
        theirs = nbformat.read(submitted, as_version=4)
        ours = nbformat.read(released, as_version=4)
    except Exception:  # noqa: BLE001 (unreadable files are reported elsewhere)
        return []
    sources: dict[str, list[str]] = {}
    for cell in theirs.cells:
        grade_id = cell.metadata.get("nbgrader", {}).get("grade_id")
        if grade_id:
            sources.setdefault(grade_id, []).append(cell.source)
    notes = []
    for cell in ours.cells:
        meta = cell.metadata.get("nbgrader", {})
        if not meta.get("locked") or not meta.get("grade_id"):
            continue
        kind = "test cell" if meta.get("grade") else "read-only cell"
        copies = sources.get(meta["grade_id"])
        if copies is None:
            if not meta.get("grade"):  # deleted test cells are reported when nbgrader restores them
                notes.append(f"{kind} {meta['grade_id']} was deleted")
        elif any(source.strip() != cell.source.strip() for source in copies):
            notes.append(f"{kind} {meta['grade_id']} was edited; the original was graded instead")
    return notes
