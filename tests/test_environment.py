"""The dependency sources must agree: requirements.txt is the single pinned source.

Why: environment.yml (conda path) and pyproject.toml (pip path) both derive from
requirements.txt; if someone pins a package in one place only, students on the two
set-up paths would get different libraries.
"""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PIN = re.compile(r"^([A-Za-z0-9_.\-\[\]]+)==([A-Za-z0-9_.+\-]+)$")


def _requirements() -> dict[str, str]:
    pins: dict[str, str] = {}
    for lineno, raw in enumerate((ROOT / "requirements.txt").read_text().splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        match = PIN.match(line)
        assert match, f"requirements.txt:{lineno}: {raw!r} is not pinned as name==version"
        name = match.group(1).lower()
        assert name not in pins, f"requirements.txt:{lineno}: {name} is listed twice"
        pins[name] = match.group(2)
    return pins


def _environment_yml() -> dict:
    """Parse environment.yml with the YAML parser jupyter already depends on."""
    import yaml

    return yaml.safe_load((ROOT / "environment.yml").read_text())


def test_requirements_are_all_pinned() -> None:
    pins = _requirements()
    for needed in ("google-generativeai", "google-genai", "nbgrader", "fastapi", "uvicorn"):
        assert needed in pins, f"requirements.txt lacks {needed}"


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
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert "dependencies" in project["project"]["dynamic"]
    files = project["tool"]["setuptools"]["dynamic"]["dependencies"]["file"]
    assert files == ["requirements.txt"]


def test_installed_versions_match_pins() -> None:
    """The environment the tests run in is the pinned one (catches a stale .venv)."""
    from importlib.metadata import PackageNotFoundError, version

    wrong = []
    for name, pinned in _requirements().items():
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
