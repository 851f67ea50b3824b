"""The student bundle: what students get instead of a clone of this repository.

Why: the repository holds the masters (``solutions/``), the trusted checkers and every hidden
test, so students must never clone it. ``python -m grader release`` therefore also writes a
folder and a ``.zip`` holding only what a student needs: the released notebooks, the
``tunelab`` package, ``data/``, the pinned ``requirements.txt``, a ``pyproject.toml`` that
installs ``tunelab`` alone, ``environment.yml`` and a bilingual README. Everything is picked
from an allowlist (nothing is copied because it merely exists), and the result is audited for
forbidden paths before it replaces the previous bundle.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
import time
import tomllib
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

from grader.stores.course import Course, CourseError

BUNDLE_NAME = "fine-tuning-lab-student"
README_TEMPLATE = Path(__file__).resolve().parents[1] / "student_readme.md"
# Never in a bundle, at any depth: instructor material, VCS data, caches and checkpoints.
FORBIDDEN_PARTS = frozenset(
    {"solutions", "tests", "grader", ".git", ".instructor", "__pycache__", ".ipynb_checkpoints"}
)
# the checkers and the checker-side modules they load (solutions/ASSIGNMENT/*.py)
FORBIDDEN_NAMES = frozenset({"checker.py", "curves.py"})
SKIPPED_SUFFIXES = (".pyc", ".pyo")
# The zip's oldest possible date (the format's epoch); a file older than that gets this one.
ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)
# Paths a student's copy does not have: text sent to students must not point at them.
REPO_ONLY = re.compile(
    r"(?<![\w./-])(?:tests|solutions|grader)/"  # the folders, as paths
    r"|\bpython3? -m grader\b"  # the instructor CLI
    r"|(?<![\w.])grader\.(?!\s)\w"  # its modules (grader.cli, grader.handout.bundle...)
)

PYPROJECT = """\
# The student copy of Fine-Tuning Lab: installs the course package `tunelab` only.
# Written by the instructor's release; the pinned packages live in requirements.txt.
[build-system]
requires = ["setuptools>=68"]
build-backend = "setuptools.build_meta"

[project]
name = "{name}"
version = "{version}"
description = "{description}"
requires-python = "{requires_python}"
dynamic = ["dependencies"]

[tool.setuptools.dynamic]
dependencies = {{ file = ["requirements.txt"] }}

[tool.setuptools.packages.find]
include = ["tunelab*"]
"""


class BundleError(CourseError):
    """The bundle could not be built (the message says what to fix)."""


@dataclass
class BundleResult:
    """Where the bundle went and what it holds."""

    folder: Path
    zip: Path
    files: list[str]  # relative POSIX paths, sorted
    bytes: int  # total size of the folder's files
    zip_bytes: int
    seconds: float
    skipped: list[str] = field(default_factory=list)  # files seen but left out on purpose


def _skip(rel: Path) -> bool:
    """True for caches, checkpoints, hidden files and anything instructor-only."""
    return (
        any(part in FORBIDDEN_PARTS or part.startswith(".") for part in rel.parts)
        or rel.name in FORBIDDEN_NAMES
        or rel.suffix in SKIPPED_SUFFIXES
    )


def _copy_tree(src: Path, dst: Path) -> None:
    for path in sorted(src.rglob("*")):
        rel = path.relative_to(src)
        if path.is_file() and not _skip(rel):
            (dst / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, dst / rel)


def _copy_notebooks(course: Course, notebooks: Path, dst: Path) -> list[str]:
    """Copy each assignment's released notebooks (only those); return what was left out.

    Only ``ASSIGNMENT/NAME.ipynb`` for the masters' notebook names is taken, and
    ``ru/ASSIGNMENT/NAME.ipynb`` for the assignments ``translations/ru/EDITION.json`` lists
    (the Russian editions ``bootstrap lab --lang ru`` opens): nbgrader copies
    every other file of a master's folder into the release, and such a file (a checker, a
    reference answer) must not reach students by accident.
    """
    from grader.handout.editions import EDITION_DIRS, translated

    missing = []
    wanted = set()
    for assignment in course.assignments():
        for name in course.notebooks(assignment):
            rel = Path(assignment) / f"{name}.ipynb"
            wanted.add(rel)
            if not (notebooks / rel).is_file():
                missing.append(str(rel))
            # the translated editions (notebooks/ru/...), for `bootstrap lab --lang ru`
            for lang, folder in EDITION_DIRS.items():
                if assignment in translated(course.root, lang):
                    edition = Path(folder) / rel
                    wanted.add(edition)
                    if not (notebooks / edition).is_file():
                        missing.append(str(edition))
    if missing:
        raise BundleError(
            f"released notebooks missing in {notebooks}: {', '.join(missing)}; "
            "run `python -m grader release` for every assignment first"
        )
    for rel in sorted(wanted):
        (dst / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(notebooks / rel, dst / rel)
    return sorted(
        f"notebooks/{p.relative_to(notebooks).as_posix()}"
        for p in notebooks.rglob("*")
        if p.is_file() and p.relative_to(notebooks) not in wanted
    )


def _pyproject(root: Path) -> str:
    """A minimal pyproject for the bundle, with the repository's name and version."""
    project = tomllib.loads((root / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    return PYPROJECT.format(
        name=project["name"],
        version=project["version"],
        description=project.get("description", "").replace('"', "'"),
        requires_python=project.get("requires-python", ">=3.11"),
    )


def audit(folder: Path) -> list[str]:
    """Relative paths in a bundle folder that must never be there (empty when clean)."""
    return sorted(
        path.relative_to(folder).as_posix()
        for path in folder.rglob("*")
        if any(part in FORBIDDEN_PARTS for part in path.relative_to(folder).parts)
        or path.name in FORBIDDEN_NAMES
    )


def repo_only_references(folder: Path) -> list[str]:
    """``file:line: text`` for every line of a text file in ``folder`` that points at a path
    only the instructors' repository has (``tests/``, ``solutions/``, ``grader/``).

    Why: a student who reads "see tests/test_data.py" looks for a file they do not have."""
    found = []
    for path in sorted(folder.rglob("*")):
        rel = path.relative_to(folder)
        if not path.is_file() or any(part.startswith(".") for part in rel.parts):
            continue
        data = path.read_bytes()
        if b"\0" in data[:8192]:
            continue  # binary
        for lineno, line in enumerate(data.decode("utf-8", "replace").splitlines(), 1):
            if REPO_ONLY.search(line):
                found.append(f"{rel.as_posix()}:{lineno}: {line.strip()[:120]}")
    return found


def _zip_date(path: Path) -> tuple[int, int, int, int, int, int]:
    """The file's own modification time (local time, as zip tools show it)."""
    stamp = time.localtime(path.stat().st_mtime)[:6]
    return max(stamp, ZIP_EPOCH)


def _write_zip(folder: Path, target: Path) -> None:
    """Zip ``folder`` under its own name (unzipping gives the folder), reproducibly: entries in
    sorted order, each with its file's real modification time (copied from the course's file),
    so the same course gives the same zip and a student sees when each file last changed."""
    tmp = target.with_name(f".{target.name}.tmp")
    with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for path in sorted(folder.rglob("*")):
            if not path.is_file():
                continue
            info = zipfile.ZipInfo(f"{folder.name}/{path.relative_to(folder).as_posix()}")
            info.date_time = _zip_date(path)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = (path.stat().st_mode & 0o777 | 0o100000) << 16
            zf.writestr(info, path.read_bytes())
    os.replace(tmp, target)


def _check_destination(course: Course, folder: Path) -> None:
    """Refuse a destination inside a copied source, or an existing folder that is no bundle."""
    for source in ("notebooks", "tunelab", "data", "solutions"):
        if folder.is_relative_to(course.root / source):
            raise BundleError(f"the bundle cannot go inside {course.root / source}")
    # A previous bundle may hold a .venv from trying it out (its site-packages has "tests"
    # folders), so only the top level decides whether it is a bundle that may be replaced.
    looks_like_bundle = (folder / "tunelab" / "bootstrap.py").is_file() and not any(
        (folder / name).exists() for name in ("solutions", "grader", ".git")
    )
    if folder.exists() and not looks_like_bundle:
        raise BundleError(f"{folder} exists and is not a student bundle; move it away first")


def build_bundle(
    course: Course, dest: Path | str, *, notebooks: Path | None = None
) -> BundleResult:
    """Write ``dest/fine-tuning-lab-student/`` and ``dest/fine-tuning-lab-student.zip``.

    ``notebooks`` is the folder of released copies (default: the course's ``notebooks/``).
    The folder is assembled next to its final place and swapped in only once complete and
    audited, so a failed build leaves the previous bundle intact.
    """
    start = time.perf_counter()
    root = course.root
    notebooks = Path(notebooks) if notebooks is not None else course.release
    needed = [root / "tunelab" / "bootstrap.py", root / "requirements.txt", root / "data"]
    absent = [str(p) for p in needed if not p.exists()]
    if absent or not README_TEMPLATE.is_file():
        raise BundleError(f"cannot build the student bundle, missing: {absent or README_TEMPLATE}")
    dest = Path(dest).resolve()
    folder = dest / BUNDLE_NAME
    _check_destination(course, folder)
    dest.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f".{BUNDLE_NAME}-", dir=dest) as tmp:
        staging = Path(tmp) / BUNDLE_NAME
        staging.mkdir()
        skipped = _copy_notebooks(course, notebooks, staging / "notebooks")
        _copy_tree(root / "tunelab", staging / "tunelab")
        _copy_tree(root / "data", staging / "data")
        shutil.copy2(root / "requirements.txt", staging / "requirements.txt")
        if (root / "environment.yml").is_file():  # the conda path: pip -r requirements, -e .
            shutil.copy2(root / "environment.yml", staging / "environment.yml")
        (staging / "pyproject.toml").write_text(_pyproject(root), encoding="utf-8")
        # written, not copied: it takes the date of the pyproject it is made from
        source = (root / "pyproject.toml").stat()
        os.utime(staging / "pyproject.toml", ns=(source.st_atime_ns, source.st_mtime_ns))
        shutil.copy2(README_TEMPLATE, staging / "README.md")
        bad = audit(staging)
        if bad:
            raise BundleError(f"refusing to write a bundle holding {', '.join(bad)}")
        if folder.exists():
            shutil.rmtree(folder)
        staging.rename(folder)
    zip_path = dest / f"{BUNDLE_NAME}.zip"
    _write_zip(folder, zip_path)
    files = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())
    return BundleResult(
        folder=folder,
        zip=zip_path,
        files=files,
        bytes=sum((folder / f).stat().st_size for f in files),
        zip_bytes=zip_path.stat().st_size,
        seconds=time.perf_counter() - start,
        skipped=skipped,
    )
