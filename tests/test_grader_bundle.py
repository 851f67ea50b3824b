"""The student bundle holds what students need and nothing of the instructor's.

Why: students get this bundle instead of a clone of the repository, which holds the masters,
the trusted checkers and every hidden test. A file list can look right while an answer
travels inside a notebook, a module or a data file, so besides the file rules every solution
and hidden-test line of every master, and every line of every checker, is searched for in
every text file of the bundle. The bundle's own student check then runs inside it, offline.
"""

from __future__ import annotations

import filecmp
import io
import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
import time
import tokenize
import tomllib
import zipfile
from dataclasses import dataclass
from pathlib import Path

import nbformat
import pytest
from grader_corpus import ASSIGNMENT, build_course

from grader.cli import main as grader_main
from grader.handout import editions
from grader.handout.bundle import (
    BUNDLE_NAME,
    BundleError,
    BundleResult,
    build_bundle,
    repo_only_references,
)
from grader.stores.course import REPO, Course

pytestmark = pytest.mark.filterwarnings("ignore::sqlalchemy.exc.SAWarning")

TOP_LEVEL = {
    "README.md",
    "notebooks",
    "tunelab",
    "data",
    "requirements.txt",
    "pyproject.toml",
    "environment.yml",
}
FORBIDDEN_PARTS = {"solutions", "tests", "grader", ".git", ".instructor", "__pycache__"}
MIN_CHARS = 12  # shorter lines ("return x", "else:") prove nothing
MARKERS = {
    "### BEGIN SOLUTION": "### END SOLUTION",
    "### BEGIN HIDDEN TESTS": "### END HIDDEN TESTS",
}
IMPORT = re.compile(r"^(from\s+\S+\s+)?import\s")
BOILERPLATE = {'"""', "'''", 'if __name__ == "__main__":', "from __future__ import annotations"}


# -- the bundle, built once ---------------------------------------------------------------------
@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> BundleResult:
    """The bundle of this repository, from the committed notebooks, in a temp dir."""
    tmp = tmp_path_factory.mktemp("bundle")
    course = Course.from_env(REPO, tmp / "instructor")  # the real .instructor stays untouched
    start = time.perf_counter()
    result = build_bundle(course, tmp / "out")
    print(
        f"\nbundle: {len(result.files)} files, {result.bytes / 1e6:.2f} MB, "
        f"zip {result.zip_bytes / 1e6:.2f} MB, built in {time.perf_counter() - start:.2f} s"
    )
    assert not (tmp / "instructor").exists(), "building a bundle must not touch the instructor"
    return result


def _repo_files(folder: str) -> set[str]:
    base = REPO / folder
    return {
        f"{folder}/{p.relative_to(base).as_posix()}"
        for p in base.rglob("*")
        if p.is_file()
        and "__pycache__" not in p.parts
        and ".ipynb_checkpoints" not in p.parts
        and p.suffix != ".pyc"
    }


def _masters() -> list[Path]:
    return sorted((REPO / "solutions").glob("*/*.ipynb"))


# -- (a) the file list --------------------------------------------------------------------------
def test_bundle_holds_only_student_files(bundle: BundleResult) -> None:
    files = set(bundle.files)
    assert {f.split("/", 1)[0] for f in files} == TOP_LEVEL
    for name in files:
        parts = set(Path(name).parts)
        assert not parts & FORBIDDEN_PARTS, f"{name} must not be in the bundle"
        assert Path(name).name != "checker.py", f"{name}: a checker is instructor-only"
        assert not name.endswith((".pyc", ".pyo")), name
    masters = {f"notebooks/{p.parent.name}/{p.name}" for p in _masters()}
    masters |= {  # the Russian editions of the translated assignments
        f"notebooks/ru/{p.parent.name}/{p.name}"
        for p in _masters()
        if p.parent.name in editions.translated(REPO)
    }
    assert {f for f in files if f.startswith("notebooks/")} == masters
    for name in masters:  # the released copies, byte for byte
        assert filecmp.cmp(bundle.folder / name, REPO / name, shallow=False), name
    assert {f for f in files if f.startswith("tunelab/")} == _repo_files("tunelab")
    assert {f for f in files if f.startswith("data/")} == _repo_files("data")
    assert (bundle.folder / "requirements.txt").read_bytes() == (
        REPO / "requirements.txt"
    ).read_bytes()
    assert bundle.bytes == sum((bundle.folder / f).stat().st_size for f in files)


def test_bundle_pyproject_installs_tunelab_only(bundle: BundleResult) -> None:
    from setuptools import find_packages

    text = (bundle.folder / "pyproject.toml").read_text()
    config = tomllib.loads(text)
    project = config["project"]
    repo_project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    assert project["name"] == repo_project["name"]  # lesson 1 reads its version by this name
    assert project["dynamic"] == ["dependencies"]
    assert "optional-dependencies" not in project, "no dev extras for students"
    setuptools = config["tool"]["setuptools"]
    assert setuptools["dynamic"]["dependencies"]["file"] == ["requirements.txt"]
    assert setuptools["packages"]["find"]["include"] == ["tunelab*"]
    assert "grader" not in text and "pytest" not in text
    found = find_packages(where=str(bundle.folder), include=["tunelab*"])
    assert "tunelab" in found and all(p.startswith("tunelab") for p in found), found


def test_bundle_readme_is_bilingual_with_the_two_commands(bundle: BundleResult) -> None:
    readme = (bundle.folder / "README.md").read_text(encoding="utf-8")
    for command in ("python3 -m tunelab.bootstrap lab", "python3 -m tunelab.bootstrap check"):
        assert readme.count(command) >= 2, f"{command!r} in both languages"
    assert re.search("[а-яА-Я]{5}", readme), "the Russian half is missing"
    assert "git clone" not in readme and "solutions/" not in readme
    english, russian = readme.split("\n---\n", 1)
    # The Russian half sends a Russian reader to the Russian edition, with its stub text
    # and the time budget, and both halves explain the token in the URL lab prints.
    assert "lab --lang ru" in russian and russian.count("notebooks/ru/") >= 2, russian
    assert "«ВАШ КОД ЗДЕСЬ»" in russian and "YOUR CODE HERE" not in russian
    # the time budget is the course list's (grader/handout/syllabus.py), in each half's language
    from grader.handout.syllabus import budget

    assert budget("ru") in russian, "the Russian time budget"
    assert budget("en") in english, "the English time budget"
    for half in (english, russian):
        assert "?token=" in half and "Assignment" in half
    assert "ноутбук" not in russian, "the glossary's term is «блокнот»"


def test_bundle_installs_the_student_requirements_only(bundle: BundleResult) -> None:
    """The bundle's requirements are the student set: no hub, no dask, no PostgreSQL driver."""
    files = set(bundle.files)
    assert not {f for f in files if f.startswith("requirements-")}, files
    pins = {
        line.split("==")[0].lower()
        for line in (bundle.folder / "requirements.txt").read_text().splitlines()
        if "==" in line and not line.startswith("#")
    }
    assert {"google-generativeai", "jupyterlab", "nbgrader", "fastapi"} <= pins, pins
    assert not pins & {"jupyterhub", "dask", "distributed", "psycopg", "psycopg-binary"}, pins


def test_environment_yml_works_in_the_bundle(bundle: BundleResult) -> None:
    env = (bundle.folder / "environment.yml").read_text()
    assert "-r requirements.txt" in env and "-e ." in env  # both files are in the bundle


# -- (b) no answer anywhere ---------------------------------------------------------------------
# The unit searched for is a Python *statement* (however many lines it spans; a line such as
# `pd.DataFrame(` alone is a fragment shared by half the course) or comment, or a markdown
# line, with whitespace collapsed. Trivial units prove nothing and are skipped: shorter than
# MIN_CHARS, imports and boilerplate, units the released notebooks show anyway, and short code
# without a single literal (`return model`, `conn.close()`): an answer is a value, a query, a
# hint text or a hidden input, and each of those holds a literal.
SHAPE_ONLY_MAX = 40


@dataclass(frozen=True)
class Secret:
    text: str  # whitespace collapsed
    origin: str  # where it comes from, for the failure message
    literal: bool = True  # holds a string or number literal (always True for prose)


def _norm(text: str) -> str:
    return " ".join(text.split())


def _span(lines: list[str], start: tuple[int, int], end: tuple[int, int]) -> str:
    (r1, c1), (r2, c2) = start, end
    if r1 == r2:
        return lines[r1 - 1][c1:c2]
    return lines[r1 - 1][c1:] + "".join(lines[r1 : r2 - 1]) + lines[r2 - 1][:c2]


def _statements(code: str) -> list[tuple[str, bool]]:
    """Statements and comments of ``code``, each with 'holds a literal'; not Python: lines."""
    code = textwrap.dedent(code)
    lines = code.splitlines(keepends=True)
    try:
        tokens = list(tokenize.generate_tokens(io.StringIO(code).readline))
    except (tokenize.TokenError, SyntaxError):
        return [(_norm(line), True) for line in lines]
    skip = {tokenize.NL, tokenize.INDENT, tokenize.DEDENT, tokenize.ENDMARKER}
    units, start, literal = [], None, False
    for tok in tokens:
        if tok.type == tokenize.COMMENT:
            units.append((_norm(tok.string), True))
        elif tok.type == tokenize.NEWLINE:
            if start is not None:
                units.append((_norm(_span(lines, start, tok.start)), literal))
            start, literal = None, False
        elif tok.type not in skip:
            start = start or tok.start
            literal = literal or tok.type in (tokenize.NUMBER, tokenize.STRING)
    return units


def _units(source: str, cell_type: str) -> list[tuple[str, bool]]:
    if cell_type == "code":
        return _statements(source)
    return [(_norm(line), True) for line in source.splitlines()]


def _split_cell(source: str) -> tuple[str, str]:
    """(secret, public) text of one cell: inside the BEGIN/END markers, or outside them."""
    secret, public, end = [], [], None
    for raw in source.splitlines():
        line = raw.strip()
        if end is None and line in MARKERS:
            end = MARKERS[line]
        elif end is not None and line == end:
            end = None
        else:
            (public if end is None else secret).append(raw)
    return "\n".join(secret), "\n".join(public)


def _master_secrets() -> tuple[list[Secret], set[str]]:
    """Every solution and hidden-test unit of every master, and every unit released on purpose.

    The public set is what the released notebooks show, computed from the masters rather than
    read from notebooks/, so that a solution that leaked into a released copy is still caught.
    """
    secrets, public = [], set()
    for path in _masters():
        nb = nbformat.read(path, as_version=4)
        for index, cell in enumerate(nb.cells):
            meta = cell.metadata.get("nbgrader", {})
            secret, shown = _split_cell(cell.source)
            if meta.get("solution") and "### BEGIN" not in cell.source:
                secret, shown = shown, ""  # a solution cell without markers is replaced whole
            public.update(text for text, _ in _units(shown, cell.cell_type))
            where = f"{path.relative_to(REPO)} cell {index}"
            secrets += [Secret(t, where, lit) for t, lit in _units(secret, cell.cell_type)]
    return secrets, public


def _checker_secrets() -> list[Secret]:
    secrets = []
    for path in sorted((REPO / "solutions").glob("*/*.py")):  # checkers and their modules
        for text, literal in _statements(path.read_text(encoding="utf-8")):
            secrets.append(Secret(text, str(path.relative_to(REPO)), literal))
    return secrets


def _non_trivial(secrets: list[Secret], public: set[str]) -> list[Secret]:
    """Drop the units that prove nothing (see the comment above SHAPE_ONLY_MAX)."""
    return [
        s
        for s in secrets
        if len(s.text) >= MIN_CHARS
        and s.text not in public
        and s.text not in BOILERPLATE
        and not IMPORT.match(s.text)
        and (s.literal or len(s.text) >= SHAPE_ONLY_MAX)
    ]


def _strings(value: object) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for v in value.values() for s in _strings(v)]
    if isinstance(value, list):
        return (
            ["".join(value)]
            if all(isinstance(v, str) for v in value) and value
            else [s for v in value for s in _strings(v)]
        )
    return []


def _json_or_none(line: str) -> object:
    """A JSON Lines record, or None for a broken one (the dirty dataset has some on purpose)."""
    try:
        return json.loads(line)
    except ValueError:
        return None


def _text_files(folder: Path) -> dict[str, str]:
    """Searchable text of every text file, whitespace collapsed; JSON also decoded."""
    texts = {}
    for path in sorted(folder.rglob("*")):
        if not path.is_file():
            continue
        data = path.read_bytes()
        if b"\0" in data[:8192]:
            continue  # binary (the shop's SQLite database)
        text = data.decode("utf-8")
        decoded = []
        if path.suffix in (".ipynb", ".json"):
            decoded = _strings(json.loads(text))
        elif path.suffix == ".jsonl":
            decoded = [s for line in text.splitlines() for s in _strings(_json_or_none(line))]
        texts[path.relative_to(folder).as_posix()] = _norm("\n".join([text, *decoded]))
    return texts


def _where(folder: Path, name: str, needle: str) -> str:
    """'line N' of the file where the needle starts, or its notebook cell."""
    path = folder / name
    probe = needle.split(" ")[0] if len(needle) > 30 else needle
    lines = path.read_text(encoding="utf-8").splitlines()
    for lineno in range(1, len(lines) + 1):
        if (
            needle in _norm(" ".join(lines[lineno - 1 : lineno + 30]))
            and probe in lines[lineno - 1]
        ):
            return f"line {lineno}"
    if path.suffix == ".ipynb":
        for index, cell in enumerate(nbformat.read(path, as_version=4).cells):
            if needle in _norm(cell.source):
                return f"cell {index}"
    return "a decoded JSON string"


def test_no_solution_or_hidden_test_line_in_the_bundle(bundle: BundleResult) -> None:
    masters, public = _master_secrets()
    checkers = _checker_secrets()
    secrets = _non_trivial(masters + checkers, public)
    assert len(_non_trivial(masters, public)) > 50, "found almost no solution lines: parser?"
    assert {Path(s.origin.split(" ")[0]).parent.name for s in secrets} >= {
        "quiz",
        "sql_overfitting",
    }
    texts = _text_files(bundle.folder)
    assert any(n.endswith(".ipynb") for n in texts) and any(n.endswith(".py") for n in texts)
    leaks = [
        f"{name} {_where(bundle.folder, name, s.text)}: {s.text!r} (from {s.origin})"
        for s in secrets
        for name, text in texts.items()
        if s.text in text
    ]
    print(
        f"\nsearched {len(secrets)} secret units (of {len(masters)} master and {len(checkers)} "
        f"checker units) in {len(texts)} text files"
    )
    assert not leaks, "answers in the student bundle:\n" + "\n".join(leaks)
    for name, text in texts.items():
        if name.endswith(".ipynb"):
            assert "BEGIN SOLUTION" not in text and "HIDDEN TESTS" not in text, name


def test_the_leak_search_finds_a_planted_answer(bundle: BundleResult, tmp_path: Path) -> None:
    """The search above is not vacuous: planted solution and checker lines are reported."""
    masters, public = _master_secrets()
    candidates = _non_trivial(masters, public) + _non_trivial(_checker_secrets(), public)
    planted = [s for s in candidates if "\n" not in s.text][:: max(1, len(candidates) // 5)]
    copy = tmp_path / "copy"
    shutil.copytree(bundle.folder, copy)
    with (copy / "tunelab" / "monitor.py").open("a", encoding="utf-8") as f:
        f.writelines(f"\n# {s.text}\n" for s in planted)
    texts = _text_files(copy)
    for secret in planted:
        hits = [name for name, text in texts.items() if secret.text in text]
        assert hits == ["tunelab/monitor.py"], (secret, hits)
        assert _where(copy, "tunelab/monitor.py", secret.text).startswith("line ")


# -- (c) the zip is the folder ------------------------------------------------------------------
def test_zip_equals_the_folder(bundle: BundleResult, tmp_path: Path) -> None:
    with zipfile.ZipFile(bundle.zip) as zf:
        names = zf.namelist()
        assert all(n.startswith(f"{BUNDLE_NAME}/") for n in names), names[:3]
        zf.extractall(tmp_path)
    unzipped = tmp_path / BUNDLE_NAME
    files = sorted(p.relative_to(unzipped).as_posix() for p in unzipped.rglob("*") if p.is_file())
    assert files == bundle.files
    for name in files:
        assert filecmp.cmp(unzipped / name, bundle.folder / name, shallow=False), name


def test_rebuilding_gives_the_same_zip(bundle: BundleResult, tmp_path: Path) -> None:
    """Reproducible: a rebuild of the same course replaces the bundle with identical bytes."""
    course = Course.from_env(REPO, tmp_path / "instructor")
    again = build_bundle(course, bundle.folder.parent)
    assert again.files == bundle.files
    assert again.zip.read_bytes() == bundle.zip.read_bytes()
    # A bundle an instructor tried out in place (its .venv holds "tests" folders) is replaced.
    (again.folder / ".venv" / "lib" / "tests").mkdir(parents=True)
    assert build_bundle(course, bundle.folder.parent).files == bundle.files
    assert not (again.folder / ".venv").exists()


# -- (d) the student's check runs inside the bundle ---------------------------------------------
def _bundle_env(folder: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("TUNELAB_ENDPOINT", "TUNELAB_DATA")}
    env["PYTHONPATH"] = str(folder)
    return env


def test_student_self_check_runs_in_the_bundle(bundle: BundleResult) -> None:
    """`bootstrap check` minus the install: the self-check, with tunelab from the bundle.

    The repository's .venv stands in for the student's (same pins), so this stays offline.
    """
    result = subprocess.run(
        [sys.executable, "-m", "tunelab.selfcheck"],
        cwd=bundle.folder,
        env=_bundle_env(bundle.folder),
        capture_output=True,
        text=True,
        timeout=180,
    )
    out = result.stdout
    assert result.returncode == 0, out + result.stderr
    assert "[FAIL]" not in out and "All set" in out, out
    where = re.search(r"\[ OK \] tunelab imported from\s+(\S.*)", out)
    assert where and Path(where.group(1)) == bundle.folder / "tunelab", out
    assert re.search(
        rf"\[ OK \] course data\s+3 files in {re.escape(str(bundle.folder))}/data", out
    ), out
    assert re.search(r"\[ OK \] tuning job\s+ACTIVE", out), out


def test_bootstrap_in_the_bundle_offers_check_and_no_test_suite(bundle: BundleResult) -> None:
    env = {**_bundle_env(bundle.folder), "PYTHONPATH": ""}
    code = (
        "import sys; sys.modules['numpy'] = None; from tunelab import bootstrap; "
        "print(bootstrap.__file__); print(bootstrap.install_target()); bootstrap.main(['--help'])"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=bundle.folder, env=env, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    path, target, *_ = result.stdout.splitlines()
    assert Path(path) == bundle.folder / "tunelab" / "bootstrap.py"
    assert target == str(bundle.folder), "the bundle installs tunelab without extras"
    assert "check" in result.stdout and "lab" in result.stdout
    # The student's help lists the student's commands only.
    help_text = "\n".join(result.stdout.splitlines()[2:])
    assert re.findall(r"^    (\w+)\s", help_text, re.M) == ["lab", "check"], help_text
    for word in ("test", "hub", "--instructor", "pytest", "JupyterHub"):
        assert word not in help_text, f"{word!r} in the student's --help:\n{help_text}"
    lab_help = subprocess.run(
        [sys.executable, "-m", "tunelab.bootstrap", "lab", "--help"],
        cwd=bundle.folder,
        env=env,
        capture_output=True,
        text=True,
    )
    assert lab_help.returncode == 0 and "--lang" in lab_help.stdout, lab_help.stderr
    assert "--instructor" not in lab_help.stdout and "repository" not in lab_help.stdout
    for argv, hint in (
        (["test"], "bootstrap check"),
        (["hub"], "instructor"),
        (["lab", "--instructor"], "'lab' alone"),
    ):
        result = subprocess.run(
            [sys.executable, "-m", "tunelab.bootstrap", *argv],
            cwd=bundle.folder,
            env=env,
            capture_output=True,
            text=True,
        )
        assert result.returncode == 2 and hint in result.stdout, (argv, result.stdout)


def test_repository_still_installs_the_instructor_and_dev_extras() -> None:
    from tunelab.bootstrap import install_target, requirement_files

    assert install_target(REPO) == f"{REPO}[dev,instructor]"
    assert [p.name for p in requirement_files(REPO)] == [
        "requirements.txt",
        "requirements-instructor.txt",
        "requirements-dev.txt",
    ]


def test_bundle_installs_what_its_own_files_name(bundle: BundleResult) -> None:
    from tunelab.bootstrap import install_target, requirement_files

    assert install_target(bundle.folder) == str(bundle.folder)
    assert requirement_files(bundle.folder) == [bundle.folder / "requirements.txt"]


# -- (e) what a student reads and sees ----------------------------------------------------------
def test_bundle_names_no_repository_only_path(bundle: BundleResult) -> None:
    """No file a student gets points at tests/, solutions/ or grader/ (they do not have them)."""
    found = repo_only_references(bundle.folder)
    assert not found, "repository-only paths in the student bundle:\n" + "\n".join(found)


def test_the_reference_scan_finds_planted_references(bundle: BundleResult, tmp_path: Path) -> None:
    copy = tmp_path / "copy"
    shutil.copytree(bundle.folder, copy)
    planted = {
        "tunelab/monitor.py": "# see tests/test_monitor.py\n",
        "README.md": "Run `python -m grader release` first.\n",
        "data/README.md": "The answers live in solutions/quiz/checker.py.\n",
        "tunelab/panel.py": "# from grader.cli import main\n",
    }
    for name, line in planted.items():
        with (copy / name).open("a", encoding="utf-8") as f:
            f.write(line)
    found = repo_only_references(copy)
    assert sorted(f.split(":")[0] for f in found) == sorted(planted), found
    # the words alone are fine: "the tests", "the grader", nbgrader's modules
    clean = tmp_path / "clean"
    clean.mkdir()
    (clean / "a.md").write_text(
        "the grader runs the tests. nbgrader.server_extensions.validate_assignment; grader. \n"
    )
    assert repo_only_references(clean) == []


def test_zip_entries_carry_the_files_real_dates(bundle: BundleResult) -> None:
    """Unzipped files show when they last changed, not 1980 or a made-up date."""
    with zipfile.ZipFile(bundle.zip) as zf:
        infos = {i.filename.split("/", 1)[1]: i for i in zf.infolist()}
    assert set(infos) == set(bundle.files)
    sources = {name: REPO / name for name in bundle.files if (REPO / name).is_file()}
    sources["pyproject.toml"] = REPO / "pyproject.toml"  # written from it, dated as it
    sources["README.md"] = REPO / "grader" / "student_readme.md"
    assert len(sources) == len(bundle.files), set(bundle.files) - set(sources)
    for name, source in sources.items():
        expected = time.localtime(source.stat().st_mtime)[:6]
        got = infos[name].date_time
        assert got[:5] == expected[:5] and abs(got[5] - expected[5]) <= 1, (name, got, expected)
        assert got[0] >= 2024, (name, got)


# -- the release command ------------------------------------------------------------------------
def _fixture_course(root: Path) -> Path:
    """The grader's fixture course plus what a bundle needs from a real one."""
    build_course(root)
    shutil.copytree(REPO / "tunelab", root / "tunelab", ignore=shutil.ignore_patterns("__py*"))
    for name in ("requirements.txt", "pyproject.toml", "environment.yml"):
        shutil.copy2(REPO / name, root / name)
    (root / "tests").mkdir()
    (root / "tests" / "test_x.py").write_text("HIDDEN = 1\n")
    return root


def test_release_builds_the_bundle_in_the_instructor_folder(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = _fixture_course(tmp_path / "c")
    instructor = tmp_path / "instructor"
    argv = ["--course-dir", str(root), "--instructor-root", str(instructor), "release"]
    assert grader_main(argv) == 0
    out = capsys.readouterr().out
    folder = instructor / "bundle" / BUNDLE_NAME
    assert str(folder) in out and "files" in out and "MB" in out, out
    assert (instructor / "bundle" / f"{BUNDLE_NAME}.zip").is_file()
    assert (folder / "notebooks" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb").is_file()
    assert (folder / "data" / "numbers.csv").is_file()
    assert not (folder / "secret.txt").exists() and not (folder / "tests").exists()
    assert not (folder / "solutions").exists()
    # nbgrader copies a master's other files into the release (all but the ignored ones: no
    # .py file of a master's folder is ever released); the bundle takes released notebooks
    # only, and names what it left out.
    (root / "solutions" / ASSIGNMENT / "reference.py").write_text("ANSWER = 42\n")
    (root / "solutions" / ASSIGNMENT / "reference.txt").write_text("ANSWER = 42\n")
    assert grader_main([*argv, "--bundle-dir", str(tmp_path / "b2")]) == 0
    out = capsys.readouterr().out
    assert f"left out (not a released notebook): notebooks/{ASSIGNMENT}/reference.txt" in out
    assert not list((tmp_path / "b2").rglob("reference.*"))
    assert not list((root / "notebooks").rglob("reference.py")), "a .py file was released"


def test_release_no_bundle_and_dest_without_bundle_dir(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = _fixture_course(tmp_path / "c")
    instructor = tmp_path / "instructor"
    base = ["--course-dir", str(root), "--instructor-root", str(instructor), "release"]
    assert grader_main([*base, "--no-bundle"]) == 0
    assert grader_main([*base, "--dest", str(tmp_path / "trial")]) == 0
    assert "not built" in capsys.readouterr().out
    assert not (instructor / "bundle").exists()


def test_bundle_refuses_bad_destinations(tmp_path: Path) -> None:
    root = _fixture_course(tmp_path / "c")
    course = Course(root=root, instructor=tmp_path / "instructor")
    with pytest.raises(BundleError, match="released notebooks missing"):
        build_bundle(course, tmp_path / "out")  # nothing released yet
    (root / "notebooks" / ASSIGNMENT).mkdir(parents=True)
    shutil.copy2(
        root / "solutions" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb", root / "notebooks" / ASSIGNMENT
    )
    with pytest.raises(BundleError, match="cannot go inside"):
        build_bundle(course, root / "data")
    (tmp_path / "busy" / BUNDLE_NAME).mkdir(parents=True)
    (tmp_path / "busy" / BUNDLE_NAME / "mine.txt").write_text("someone's work\n")
    with pytest.raises(BundleError, match="not a student bundle"):
        build_bundle(course, tmp_path / "busy")
    assert (tmp_path / "busy" / BUNDLE_NAME / "mine.txt").exists()
