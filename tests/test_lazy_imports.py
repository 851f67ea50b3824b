"""The course package imports its heavy libraries only when a lesson uses them.

Why: every lesson and every graded submission starts a fresh kernel, and a kernel pays for
each library it imports (google.generativeai about a second with gRPC and google.api_core,
seaborn another with scipy.stats). A notebook that needs pandas must not pay for the old SDK,
the emulator's web server or seaborn until it uses them. Each check runs in a fresh
interpreter, so what an earlier test imported cannot hide a regression.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

#: Libraries that cost a noticeable share of a second or more to import.
HEAVY = (
    "google.generativeai",
    "google.genai",
    "google.api_core",
    "grpc",
    "seaborn",
    "matplotlib",
    "scipy",
    "sklearn",
    "fastapi",
    "uvicorn",
    "ipywidgets",
)
DATA_TOOLS = ("pandas", "numpy")


def _loaded_after(code: str) -> dict:
    """Run ``code`` in a fresh interpreter (this checkout's tunelab first); report modules."""
    probe = (
        f"{code}\n"
        "import json as _json, sys as _sys\n"
        "print('LOADED ' + _json.dumps(sorted(_sys.modules)))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("TUNELAB_ENDPOINT", None)
    result = subprocess.run(
        [sys.executable, "-W", "ignore", "-c", probe],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, f"{code!r} failed:\n{result.stderr[-3000:]}"
    line = [x for x in result.stdout.splitlines() if x.startswith("LOADED ")][-1]
    modules = set(json.loads(line.removeprefix("LOADED ")))
    return {"modules": modules, "stdout": result.stdout}


def _heavy_in(modules: set[str], names: tuple[str, ...]) -> list[str]:
    return [name for name in names if name in modules]


def test_import_tunelab_is_standard_library_only() -> None:
    found = _loaded_after("import tunelab; tunelab.num(0.5); tunelab.data_path()")
    assert not _heavy_in(found["modules"], HEAVY + DATA_TOOLS), (
        "import tunelab must stay light (python3 -m tunelab.bootstrap runs before any install)"
    )


@pytest.mark.parametrize(
    "module",
    [
        "tunelab.simulator",
        "tunelab.monitor",
        "tunelab.panel",
        "tunelab.scenarios",
        "tunelab.realtrain",
        "tunelab.practice_runs",
        "tunelab.domains",
        "tunelab.i18n",
        "tunelab.selfcheck",
        "tunelab.checks",
        "tunelab.checks.quiz",
        "tunelab.checks.sql_overfitting",
        "tunelab.emulator",
        "tunelab.emulator.store",
        "tunelab.emulator.generation",
        "tunelab.emulator.catalog",
        "tunelab.emulator.vertex",
    ],
)
def test_course_module_imports_no_heavy_library(module: str) -> None:
    found = _loaded_after(f"import tunelab, {module}")
    heavy = _heavy_in(found["modules"], HEAVY)
    assert not heavy, f"import {module} pulled in {heavy}: import them where they are used"


def test_emulator_server_needs_no_sdk_and_no_plotting() -> None:
    found = _loaded_after("from tunelab.emulator.server import API_KEY, genai_client")
    heavy = _heavy_in(found["modules"], tuple(h for h in HEAVY if h not in ("fastapi", "uvicorn")))
    assert not heavy, f"tunelab.emulator.server pulled in {heavy}"


def test_connect_defers_generativeai_until_it_is_imported() -> None:
    """Lessons 7 and 8 use only google-genai: connect() must not import the old SDK, and
    the old SDK, imported later, must still talk to the emulator."""
    found = _loaded_after(
        "import sys, tunelab\n"
        "endpoint = tunelab.connect()\n"
        "print('BEFORE', 'google.generativeai' in sys.modules)\n"
        "import google.generativeai as genai\n"
        "from google.generativeai import client\n"
        "options = client._client_manager.client_config['client_options']\n"
        "print('ENDPOINT', options.api_endpoint == endpoint)\n"
        "print('MODELS', any(m.name.endswith('-tuning') for m in genai.list_models()))\n"
        "print('HOOKS', [type(f).__name__ for f in sys.meta_path].count('_ConfigureOnImport'))\n"
    )
    out = found["stdout"]
    assert "BEFORE False" in out, "connect() imported google.generativeai"
    assert "ENDPOINT True" in out and "MODELS True" in out, out
    assert "HOOKS 0" in out, "the one-shot import hook stayed on sys.meta_path"
    assert not _heavy_in(found["modules"], ("seaborn", "matplotlib", "scipy", "sklearn"))


def test_connect_configures_an_already_imported_generativeai() -> None:
    found = _loaded_after(
        "import google.generativeai as genai, tunelab\n"
        "endpoint = tunelab.connect()\n"
        "print('MODELS', any(m.name.endswith('-tuning') for m in genai.list_models()))\n"
    )
    assert "MODELS True" in found["stdout"]


@pytest.mark.parametrize("absent", ["blocked", "not installed"])
def test_connect_without_generativeai_names_the_missing_module(absent: str, tmp_path: Path) -> None:
    """As before the import was deferred: connect() fails at once, naming the SDK."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("TUNELAB_ENDPOINT", None)
    code = "import tunelab; tunelab.connect()"
    if absent == "blocked":
        code = "import sys; sys.modules['google.generativeai'] = None\n" + code
    else:  # the google namespace (set up by a .pth file at start-up) with nothing in it
        code = f"import google; google.__path__ = [{str(tmp_path)!r}]\n" + code
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode != 0
    assert "ModuleNotFoundError: No module named 'google.generativeai'" in result.stderr, (
        result.stderr[-2000:]
    )


def test_public_names_still_work() -> None:
    found = _loaded_after(
        "import tunelab\n"
        "from tunelab import scenarios, monitor, simulator, realtrain, panel\n"
        "from tunelab.emulator import connect, genai_client, start, tuning_extra_body\n"
        "from tunelab.emulator.generation import count_tokens\n"
        "print('NUM', tunelab.num(0.001), tunelab.count(5, 'epoch'))\n"
        "print('NAMES', callable(monitor.plot_loss), callable(panel.compare_runs))\n"
    )
    assert "NUM 0.001 5 epochs" in found["stdout"], found["stdout"]
    assert "NAMES True True" in found["stdout"]


def test_one_run_plot_needs_no_seaborn() -> None:
    """Lesson 7 plots one run without importing seaborn: plot_loss must not import it
    (and scipy.stats with it) for that; several runs (hue) still use seaborn."""
    found = _loaded_after(
        "import matplotlib\n"
        "matplotlib.use('Agg')\n"
        "from tunelab import monitor\n"
        "rows = [{'step': s, 'epoch': 1 + (s - 1) // 4, 'mean_loss': 2.0 / s}\n"
        "        for s in range(1, 9)]\n"
        "monitor.plot_loss(rows, validation=[1.0, 0.6])\n"
        "monitor.plot_loss(rows, x='epoch')\n"
    )
    assert not _heavy_in(found["modules"], ("seaborn", "scipy")), "plot_loss imported seaborn"
