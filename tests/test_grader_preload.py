"""The zygote's imports follow the assignment: what its kernels import, and nothing else."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from grader.grading.autograde import Autograder
from grader.sandbox import zygote
from grader.sandbox.preload import KERNEL_PRELOAD, notebook_imports, preload_for
from grader.stores.course import Course
from grader.verdicts.trusted import CheckerError, load_checker

REPO = Path(__file__).resolve().parents[1]
GRADED = ("quiz", "sql_overfitting")


def _preload(assignment: str) -> tuple[str, ...]:
    checker = load_checker(REPO, assignment)
    master = REPO / "solutions" / assignment / f"{assignment}.ipynb"
    return preload_for([master], checker.module, checker.preload)


def test_the_quiz_zygote_skips_what_the_quiz_never_imports() -> None:
    """Why: seaborn, scipy, google.generativeai and the emulator's web stack were 1.5 of the
    quiz zygote's 2.3 CPU seconds, and no quiz kernel uses them."""
    names = {n.removeprefix("?") for n in _preload("quiz")}
    assert set(KERNEL_PRELOAD) <= names
    assert {"pandas", "matplotlib.pyplot", "tunelab.checks.quiz"} <= names
    assert "tunelab.checks.quiz" in _preload("quiz")  # the probe names it plainly
    heavy = {"seaborn", "google.generativeai", "fastapi", "uvicorn", "tunelab.emulator.server"}
    assert not names & heavy
    sql = {n.removeprefix("?") for n in _preload("sql_overfitting")}
    assert heavy - {"fastapi", "uvicorn"} <= sql  # the emulator's server brings both


def test_notebook_imports_reads_every_form_and_skips_what_does_not_parse(tmp_path) -> None:
    cells = [
        {"cell_type": "code", "source": "import a.b as ab, c\nfrom d.e import f, g\n"},
        {"cell_type": "code", "source": ["%matplotlib inline\n", "from .rel import x\n"]},
        {"cell_type": "code", "source": "def broken(:\n    import nope\n"},
        {"cell_type": "markdown", "source": "import not_code"},
        {"cell_type": "code", "source": "if True:\n    import h\nfrom i import *\n"},
    ]
    path = tmp_path / "n.ipynb"
    path.write_text(json.dumps({"cells": cells}))
    assert notebook_imports(path) == ["a.b", "c", "d.e", "?d.e.f", "?d.e.g", "h", "i"]


def test_optional_names_are_imported_only_if_they_are_modules() -> None:
    """``from a import b``: ``b`` is tried as a module; a missing package is still said."""
    failed = zygote._import_all(["json", "?json.decoder", "?pathlib.Path", "?no_such_pkg_x.y"])
    assert "json.decoder" in sys.modules
    assert len(failed) == 1 and failed[0].startswith("no_such_pkg_x.y: ModuleNotFoundError")


@pytest.mark.parametrize("assignment", GRADED)
def test_the_autograder_sets_the_assignments_preload(tmp_path, assignment) -> None:
    course = Course.from_env(REPO, tmp_path / "instructor")
    grader = Autograder(course, assignment, sandbox=False, preflight=False)
    assert tuple(grader.config.Sandbox.zygote_preload) == _preload(assignment)


def test_a_checkers_preload_must_be_module_names(tmp_path) -> None:
    folder = tmp_path / "solutions" / "a"
    folder.mkdir(parents=True)
    (folder / "checker.py").write_text('MODULE = "a"\nCHECKS = {}\nPRELOAD = "tunelab"\n')
    with pytest.raises(CheckerError, match="PRELOAD must be a tuple of module names"):
        load_checker(tmp_path, "a")


LEFT_OVER = """
import importlib, io, json, os, sys
import matplotlib
matplotlib.use("agg")
import matplotlib.pyplot as plt
names, master = json.loads(sys.argv[1]), sys.argv[2]
for name in names:
    try:
        importlib.import_module(name.removeprefix("?"))
    except ImportError:
        pass
before = set(sys.modules)
os.chdir(os.path.dirname(master))
ns = {"__name__": "__main__"}
for cell in json.load(open(master))["cells"]:
    if cell["cell_type"] == "code":
        lines = "".join(cell["source"]).splitlines()
        exec("\\n".join(l for l in lines if not l.lstrip().startswith(("%", "!"))), ns)
        for number in plt.get_fignums():
            plt.figure(number).savefig(io.BytesIO(), format="png")
        plt.close("all")
print(json.dumps(sorted(set(sys.modules) - before)))
"""


@pytest.mark.slow
@pytest.mark.parametrize("assignment", GRADED)
def test_a_masters_run_imports_nothing_its_zygote_did_not(assignment) -> None:
    """Why: what the zygote misses, every kernel of the class imports again. The master's
    cells run in a fresh interpreter that imported the assignment's preload first."""
    master = REPO / "solutions" / assignment / f"{assignment}.ipynb"
    env = {"TUNELAB_STUDENT_ID": "s01", "TUNELAB_SPEED": "2000", "PATH": "/usr/bin:/bin"}
    out = subprocess.run(
        [sys.executable, "-c", LEFT_OVER, json.dumps(_preload(assignment)), str(master)],
        capture_output=True,
        text=True,
        timeout=300,
        env={**env, "PYTHONPATH": str(REPO), "HOME": "/tmp"},
    )
    assert out.returncode == 0, out.stderr[-3000:]
    left = json.loads(out.stdout.strip().splitlines()[-1])
    assert left == [], f"imported by {assignment}'s cells, not by its zygote: {left}"
