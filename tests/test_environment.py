"""The dependency sources must agree, and the student set must stay the student's.

Why: the pins live in three requirements files, one pin per package: ``requirements.txt`` (the
student runtime, shipped in the student bundle, read by pyproject.toml and environment.yml),
``requirements-instructor.txt`` and ``requirements-dev.txt`` (pyproject's ``instructor`` and
``dev`` extras). If someone pins a package twice, or in environment.yml, the set-up paths drift;
if an instructor's package (JupyterHub, dask, PostgreSQL's driver) slips into the student set,
every student downloads and installs it for nothing.
"""

from __future__ import annotations

import ast
import importlib.metadata as metadata
import json
import re
import subprocess
import sys
import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[1]
PIN = re.compile(r"^([A-Za-z0-9_.\-\[\]]+)==([A-Za-z0-9_.+\-]+)$")
STUDENT = "requirements.txt"
EXTRAS = {"instructor": "requirements-instructor.txt", "dev": "requirements-dev.txt"}
#: Instructor-only packages that must never reach a student, directly or as a dependency.
NOT_FOR_STUDENTS = {
    "jupyterhub",
    "dask",
    "distributed",
    "psycopg",
    "psycopg-binary",
    "nh3",
    "jupytext",
    "pytest",
    "ruff",
    "playwright",
}


def _requirements(name: str = STUDENT) -> dict[str, str]:
    pins: dict[str, str] = {}
    for lineno, raw in enumerate((ROOT / name).read_text().splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        assert not line.startswith("-"), f"{name}:{lineno}: {raw!r}: setuptools reads plain pins"
        match = PIN.match(line)
        assert match, f"{name}:{lineno}: {raw!r} is not pinned as name==version"
        pkg = canonicalize_name(match.group(1))
        assert pkg not in pins, f"{name}:{lineno}: {pkg} is listed twice"
        pins[pkg] = match.group(2)
    return pins


def _all_pins() -> dict[str, str]:
    """Every pin of the three files; a package pinned in two files fails here."""
    pins: dict[str, str] = {}
    for name in (STUDENT, *EXTRAS.values()):
        for pkg, version in _requirements(name).items():
            assert pkg not in pins, f"{pkg} is pinned in {name} and in another requirements file"
            pins[pkg] = version
    return pins


def _environment_yml() -> dict:
    """Parse environment.yml with the YAML parser jupyter already depends on."""
    import yaml

    return yaml.safe_load((ROOT / "environment.yml").read_text())


def test_requirements_are_all_pinned() -> None:
    pins = _requirements()
    for needed in ("google-generativeai", "google-genai", "nbgrader", "fastapi", "uvicorn"):
        assert needed in pins, f"requirements.txt lacks {needed}"
    all_pins = _all_pins()
    for needed in ("jupyterhub", "dask", "distributed", "psycopg", "pytest", "ruff"):
        assert needed in all_pins, f"no requirements file pins {needed}"


def test_environment_yml_defers_to_requirements() -> None:
    env = _environment_yml()
    assert env["channels"] == ["conda-forge"], "environment.yml must use conda-forge only"
    deps = env["dependencies"]
    conda_pkgs = [d for d in deps if isinstance(d, str)]
    pip_sections = [d["pip"] for d in deps if isinstance(d, dict) and "pip" in d]
    assert "python=3.11" in conda_pkgs and "pip" in conda_pkgs, conda_pkgs
    assert len(pip_sections) == 1, "environment.yml needs exactly one pip: section"
    pip = pip_sections[0]
    assert "-r requirements.txt" in pip, "environment.yml must install -r requirements.txt"
    assert "-e ." in pip, "environment.yml must install the course package itself"
    # Any other entry would be a second, drifting source of pins.
    pins = _requirements()
    extra = [p for p in conda_pkgs if p not in ("python=3.11", "pip")]
    extra += [p for p in pip if p not in ("-r requirements.txt", "-e .")]
    for entry in extra:
        name = re.split(r"[=<>!~ ]", entry, maxsplit=1)[0].lower()
        assert name in pins and entry.endswith(pins[name]), (
            f"environment.yml pins {entry!r} itself; pin it in requirements.txt only"
        )
    assert not extra, f"environment.yml lists packages outside requirements.txt: {extra}"


def test_pyproject_reads_requirements() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert set(config["project"]["dynamic"]) == {"dependencies", "optional-dependencies"}
    assert "dependencies" not in config["project"], "pins belong in the requirements files"
    assert "optional-dependencies" not in config["project"], "pins belong in requirements-*.txt"
    dynamic = config["tool"]["setuptools"]["dynamic"]
    assert dynamic["dependencies"]["file"] == [STUDENT]
    extras = {name: spec["file"] for name, spec in dynamic["optional-dependencies"].items()}
    assert extras == {name: [file] for name, file in EXTRAS.items()}


def test_environment_yml_is_the_student_set() -> None:
    """The conda file ships in the student bundle: the student requirements only."""
    text = (ROOT / "environment.yml").read_text()
    pip = [d["pip"] for d in _environment_yml()["dependencies"] if isinstance(d, dict)][0]
    assert sorted(pip) == sorted(["-r requirements.txt", "-e ."]), pip
    assert "requirements-instructor.txt" not in " ".join(pip), text


def _student_closure() -> set[str]:
    """The student requirements and everything they pull in, from the installed metadata."""
    seen: set[str] = set()
    todo = list(_requirements())
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        for raw in metadata.requires(name) or []:
            req = Requirement(raw)
            if req.marker is not None and not req.marker.evaluate({"extra": ""}):
                continue
            dep = canonicalize_name(req.name)
            try:
                metadata.distribution(dep)
            except metadata.PackageNotFoundError:
                continue  # a dependency for another platform or Python
            todo.append(dep)
    return seen


def test_student_set_has_no_instructor_packages() -> None:
    """Neither requirements.txt nor anything it pulls in is an instructor's or a developer's."""
    pins = _requirements()
    assert not set(pins) & NOT_FOR_STUDENTS, sorted(set(pins) & NOT_FOR_STUDENTS)
    closure = _student_closure()
    assert len(closure) > len(pins), "the dependency walk found nothing: metadata missing?"
    assert not closure & NOT_FOR_STUDENTS, (
        f"the student set pulls in {sorted(closure & NOT_FOR_STUDENTS)}"
    )
    for name in EXTRAS.values():
        assert set(_requirements(name)) - closure, f"{name} adds nothing to the student set"


def _imports(source: str) -> set[str]:
    tree = ast.parse(source)
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def test_student_set_covers_what_students_import() -> None:
    """Every third-party module that tunelab/ or a released notebook imports is installed by
    the student requirements (else the student bundle would break on a student's machine)."""
    sources = {p: p.read_text(encoding="utf-8") for p in (ROOT / "tunelab").rglob("*.py")}
    for nb_path in (ROOT / "notebooks").rglob("*.ipynb"):
        cells = json.loads(nb_path.read_text(encoding="utf-8"))["cells"]
        code = [c["source"] for c in cells if c["cell_type"] == "code"]
        code = ["".join(s) if isinstance(s, list) else s for s in code]
        sources[nb_path] = "\n".join(
            line for cell in code for line in cell.splitlines() if not line.startswith(("%", "!"))
        )
    stdlib = set(sys.stdlib_module_names) | {"tunelab", "__future__"}
    owners = metadata.packages_distributions()
    closure = _student_closure() | {"fine-tuning-lab"}
    missing = []
    for path, source in sources.items():
        for module in sorted(_imports(source) - stdlib):
            dists = {canonicalize_name(d) for d in owners.get(module, [])}
            if not dists & closure:
                missing.append(f"{path.relative_to(ROOT)}: {module} ({sorted(dists) or '?'})")
    assert not missing, "not installed by requirements.txt: " + "; ".join(missing)
    assert len(sources) > 30, "found almost no student code to check"


def test_installed_versions_match_pins() -> None:
    """The environment the tests run in is the pinned one (catches a stale .venv)."""
    from importlib.metadata import PackageNotFoundError, version

    wrong = []
    for name, pinned in _all_pins().items():
        try:
            got = version(name)
        except PackageNotFoundError:
            wrong.append(f"{name}: not installed (pinned {pinned})")
            continue
        if got != pinned:
            wrong.append(f"{name}: installed {got}, pinned {pinned}")
    assert not wrong, "; ".join(wrong)


def test_bootstrap_runs_with_stdlib_only() -> None:
    """`python3 -m tunelab.bootstrap --help` must work before anything is installed."""
    code = (
        "import sys; sys.modules['numpy'] = None; sys.modules['pandas'] = None; "
        "from tunelab import bootstrap; bootstrap.main(['--help'])"
    )
    result = subprocess.run(
        [sys.executable, "-I", "-c", code], cwd=ROOT, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    assert "lab" in result.stdout and "test" in result.stdout


def test_help_lists_instructor_commands_only_where_they_run(tmp_path: Path) -> None:
    """A student's copy (no tests/, hub/, grader/) lists lab and check only; the repository
    lists the instructors' commands too."""
    from tunelab.bootstrap import build_parser

    def helps(root: Path) -> tuple[str, str]:
        parser = build_parser(root)
        sub = next(a for a in parser._actions if a.dest == "command")
        return parser.format_help(), sub.choices["lab"].format_help()

    top, lab = helps(ROOT)
    assert re.search(r"^\s+test\s", top, re.M) and re.search(r"^\s+hub\s", top, re.M), top
    assert "--instructor" in lab and "--lang" in lab and "--token" in lab
    top, lab = helps(tmp_path)  # nothing but the student's files
    commands = re.findall(r"^    (\w+)\s", top, re.M)
    assert commands == ["lab", "check"], top
    assert "test" not in top.split("positional arguments")[1] and "hub" not in top, top
    assert "--instructor" not in lab and "--lang" in lab and "--token" in lab, lab
