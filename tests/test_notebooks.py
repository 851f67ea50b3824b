"""Every notebook master runs offline, is stored clean, and matches its released copy.

Why: the masters in ``solutions/`` are the course. A lesson that raises half-way, draws an
empty figure, needs the internet, or whose student copy in ``notebooks/`` is stale, is a broken
lesson even when every library test passes. So this module

* executes every master top to bottom with nbclient, in a kernel that cannot reach anything
  but loopback, and checks that no cell errors and that every plotting cell draws an image;
* checks that masters are stored without outputs and with the ``python3`` kernel;
* regenerates the student copies with ``nbgrader generate_assignment`` in a scratch copy of
  the course and compares them with the committed ``notebooks/``;
* lints the masters with ruff.

Masters are discovered by glob, so a new lesson or assignment is covered as soon as it lands.
Notebooks execute in parallel (a thread pool drives one kernel per notebook) and each is run
once per session; the per-notebook tests then read the cached results.
"""

from __future__ import annotations

import atexit
import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlparse

import nbformat
import pytest
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

ROOT = Path(__file__).resolve().parents[1]
VENV_BIN = Path(sys.executable).parent
MASTERS = sorted(ROOT.glob("solutions/*/*.ipynb"))
NAMES = [path.parent.name for path in MASTERS]

#: Seconds one cell may take before the test calls it hung.
CELL_TIMEOUT = 120
#: Simulated seconds per wall second for the emulator the notebooks start: fast, still ordered.
TIME_SCALE = "2000"
#: A proxy nobody listens on (TCP port 9, "discard"): any request that is not for loopback
#: goes there and fails at once, so a notebook that needs the internet errors instead of
#: silently downloading something.
DEAD_PROXY = "http://127.0.0.1:9"
PROXY_VARS = ("http_proxy", "https_proxy", "all_proxy", "ftp_proxy", "grpc_proxy")

# Lines that call a plotting function: seaborn/pyplot calls, ``*plot*(...)`` helpers such as
# ``plot_loss`` or ``sns.lineplot``, ``LivePlot`` and ``monitor.watch`` (which draws live).
_PLOT_CALL = re.compile(
    r"\bsns\.(?!set\b|set_\w+|color_palette|despine)\w+\s*\("
    r"|\bplt\.(?!close|rcParams|style|rc\b|ioff|ion)\w+\s*\("
    r"|\b\w*plot\w*\s*\("
    r"|\bwatch\s*\(",
    re.IGNORECASE,
)
_IGNORED_LINE = re.compile(r"^\s*(#|import\s|from\s+\S+\s+import\s|def\s|class\s|@)")

# Probe appended to every executed notebook: where did the emulator the notebook used live?
_PROBE = """\
import sys as _sys
_server = _sys.modules.get("tunelab.emulator.server")
_endpoint = getattr(_server, "_endpoint", None) if _server else None
_sys.stdout.write(f"TUNELAB-ENDPOINT: {_endpoint}\\n")
_sys.stdout.flush()
"""


def offline_env() -> dict[str, str]:
    """Environment for the kernels: loopback only, a fast emulator, no shared endpoint."""
    env = {
        k: v
        for k, v in os.environ.items()
        if k.lower() not in PROXY_VARS and k.lower() != "no_proxy" and k != "TUNELAB_ENDPOINT"
    }
    for var in PROXY_VARS:
        env[var] = env[var.upper()] = DEAD_PROXY
    env["no_proxy"] = env["NO_PROXY"] = "127.0.0.1,localhost,::1"
    env["TUNELAB_TIME_SCALE"] = TIME_SCALE
    env["MPLBACKEND"] = "module://matplotlib_inline.backend_inline"
    env["PYTHONHASHSEED"] = "0"
    env["PYDEVD_DISABLE_FILE_VALIDATION"] = "1"
    # as on the course's JupyterHub: the quiz shows this student's variant (no id cell needed)
    env.setdefault("JUPYTERHUB_USER", "notebook-tests")
    return env


def is_plot_cell(cell: nbformat.NotebookNode) -> bool:
    """A code cell that must draw a figure: tagged "plot", or calling a plotting function.

    Imports, definitions and comments do not count (``def plot_curve(...)`` draws nothing);
    tag a cell "no-plot" to opt out when a plotting call there is deliberately not drawn.
    """
    if cell.cell_type != "code":
        return False
    tags = set(cell.metadata.get("tags", []))
    if "plot" in tags:
        return True
    if "no-plot" in tags:
        return False
    code = [line for line in cell.source.splitlines() if not _IGNORED_LINE.match(line)]
    return any(_PLOT_CALL.search(line) for line in code)


def has_image(cell: nbformat.NotebookNode) -> bool:
    return any("image/png" in out.get("data", {}) for out in cell.get("outputs", []))


def cell_errors(cell: nbformat.NotebookNode) -> list[str]:
    """Error outputs of a cell, and tracebacks printed to stderr (swallowed exceptions)."""
    found = []
    for out in cell.get("outputs", []):
        if out.output_type == "error":
            found.append(f"{out.ename}: {out.evalue}")
        elif out.output_type == "stream" and out.name == "stderr" and "Traceback" in out.text:
            found.append(out.text.strip().splitlines()[-1])
    return found


@dataclass
class Execution:
    """One master executed top to bottom: the notebook with outputs, and timings."""

    path: Path
    notebook: nbformat.NotebookNode | None = None
    error: str | None = None
    seconds: float = 0.0
    cell_seconds: list[float] = field(default_factory=list)
    endpoint: str | None = None

    def label(self, index: int) -> str:
        return f"{self.path.relative_to(ROOT)}, cell {index}"


def _cell_duration(cell: nbformat.NotebookNode) -> float:
    timing = cell.metadata.get("execution", {})
    start, end = timing.get("iopub.execute_input"), timing.get("shell.execute_reply")
    if not (start and end):
        return 0.0
    from datetime import datetime

    def parse(stamp: str) -> datetime:
        return datetime.fromisoformat(stamp.replace("Z", "+00:00"))

    return (parse(end) - parse(start)).total_seconds()


_warm: list = []  # this process's WarmKernels, started by the first execute()
_warm_lock = threading.Lock()


def warm_kernels():
    """This process's warm kernel server (tests/warm_kernels.py), started on first use; None
    with ``TUNELAB_TEST_KERNELS=cold`` (each notebook then starts a kernel from scratch)."""
    if os.environ.get("TUNELAB_TEST_KERNELS", "warm") == "cold":
        return None
    with _warm_lock:
        if not _warm or not _warm[0].alive():
            from warm_kernels import WarmKernels

            _warm[:] = [WarmKernels(offline_env())]
            atexit.register(_warm[0].close)
        return _warm[0]


def execute(path: Path, workdir: Path, timeout: int = CELL_TIMEOUT) -> Execution:
    """Run one master in a copy of its folder (so nothing it writes lands in solutions/), in a
    kernel forked from this process's warm server (the same as a fresh one, minus the
    imports; see tests/warm_kernels.py)."""
    result = Execution(path)
    run_dir = workdir / path.parent.name
    shutil.copytree(path.parent, run_dir, dirs_exist_ok=True)
    notebook = nbformat.read(path, as_version=4)
    notebook.cells.append(nbformat.v4.new_code_cell(_PROBE))
    warm = warm_kernels()
    client = NotebookClient(
        notebook,
        **({"kernel_manager_class": warm.kernel_manager_class()} if warm is not None else {}),
        timeout=timeout,
        kernel_name="python3",
        resources={"metadata": {"path": str(run_dir)}},
        record_timing=True,
        allow_errors=False,
    )
    started = time.perf_counter()
    try:
        client.execute(env=offline_env(), cwd=str(run_dir))
    except CellExecutionError as exc:
        result.error = str(exc)
    except Exception as exc:  # a kernel that died or timed out
        result.error = f"{type(exc).__name__}: {exc}"
    result.seconds = time.perf_counter() - started
    probe = notebook.cells.pop()
    # Streams may arrive in several chunks: join them before reading the line.
    text = "".join(o.text for o in probe.get("outputs", []) if o.output_type == "stream")
    match = re.search(r"TUNELAB-ENDPOINT: (\S+)", text)
    if match:
        result.endpoint = None if match.group(1) == "None" else match.group(1)
    result.notebook = notebook
    result.cell_seconds = [_cell_duration(c) for c in notebook.cells]
    return result


def execute_all(paths: list[Path], workdir: Path, workers: int | None = None) -> dict:
    """Execute notebooks in parallel; kernels are separate processes, threads just wait."""
    workers = workers or max(2, os.cpu_count() or 2)
    with ThreadPoolExecutor(max_workers=workers) as pool:
        futures = {p: pool.submit(execute, p, workdir) for p in paths}
        return {p: f.result() for p, f in futures.items()}


class Executions:
    """Each master executed at most once per test process, in a shared thread pool.

    In a plain pytest run every master is submitted at once, so the kernels run in parallel
    while the first tests wait. Under pytest-xdist the workers already run in parallel and each
    sees only some of the tests, so a master is executed only when a test asks for it.
    """

    def __init__(self, workdir: Path, prefetch: bool) -> None:
        self._workdir = workdir
        self._pool = ThreadPoolExecutor(max_workers=max(2, os.cpu_count() or 2))
        self._futures: dict = {}
        if prefetch:
            for path in MASTERS:
                self._submit(path)

    def _submit(self, path: Path):
        if path not in self._futures:
            self._futures[path] = self._pool.submit(execute, path, self._workdir)
        return self._futures[path]

    def __getitem__(self, path: Path) -> Execution:
        return self._submit(path).result()

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)


@pytest.fixture(scope="session")
def executions(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Executions]:
    under_xdist = "PYTEST_XDIST_WORKER" in os.environ
    runs = Executions(tmp_path_factory.mktemp("executed"), prefetch=not under_xdist)
    yield runs
    runs.close()


def _ids(paths: list[Path]) -> list[str]:
    return [p.parent.name for p in paths]


def test_masters_exist() -> None:
    assert MASTERS, "no notebook masters found under solutions/*/*.ipynb"
    for path in MASTERS:
        assert path.stem == path.parent.name, (
            f"{path.relative_to(ROOT)}: nbgrader expects solutions/<assignment>/<assignment>.ipynb"
        )


@pytest.mark.parametrize("path", MASTERS, ids=_ids(MASTERS))
def test_master_stored_clean(path: Path) -> None:
    """No outputs or execution counts in git, and the standard python3 kernel."""
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    spec = nb.metadata.get("kernelspec", {})
    assert spec.get("name") == "python3", f"{path.name}: kernelspec name {spec.get('name')!r}"
    assert spec.get("display_name") == "Python 3", f"{path.name}: kernelspec display_name"
    assert spec.get("language") == "python", f"{path.name}: kernelspec language"
    for index, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        assert not cell.outputs, f"{path.name}, cell {index}: stored with outputs; clear them"
        assert cell.execution_count is None, f"{path.name}, cell {index}: has an execution count"


@pytest.mark.parametrize("path", MASTERS, ids=_ids(MASTERS))
def test_master_executes_offline(path: Path, executions: Executions) -> None:
    """Top to bottom without an error, against a loopback emulator only."""
    run = executions[path]
    assert run.error is None, f"{path.relative_to(ROOT)} failed to execute:\n{run.error}"
    assert run.notebook is not None
    problems = [
        f"{run.label(i)}: {err}" for i, c in enumerate(run.notebook.cells) for err in cell_errors(c)
    ]
    assert not problems, "errors in outputs:\n" + "\n".join(problems)
    if run.endpoint is not None:
        host = urlparse(run.endpoint).hostname
        assert host in ("127.0.0.1", "localhost", "::1"), (
            f"{path.name} talked to the emulator at {run.endpoint}, which is not loopback"
        )


@pytest.mark.parametrize("path", MASTERS, ids=_ids(MASTERS))
def test_plot_cells_draw_an_image(path: Path, executions: Executions) -> None:
    run = executions[path]
    if run.notebook is None or run.error is not None:
        pytest.skip("the notebook did not execute (see test_master_executes_offline)")
    blank = [
        run.label(i)
        for i, cell in enumerate(run.notebook.cells)
        if is_plot_cell(cell) and not has_image(cell)
    ]
    assert not blank, (
        "plotting cells without an image/png output (call plt.show() or return the figure; "
        "tag a cell 'no-plot' if it deliberately draws nothing):\n" + "\n".join(blank)
    )


def test_kernel_environment_is_offline(tmp_path: Path) -> None:
    """The guard itself: a kernel started like the masters' cannot fetch a public URL."""
    probe = tmp_path / "probe" / "probe.ipynb"
    probe.parent.mkdir()
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    nb.cells = [
        nbformat.v4.new_code_cell(
            "import os, urllib.request, httpx\n"
            "results = {}\n"
            "for name, fetch in [\n"
            "    ('httpx', lambda: httpx.get('http://example.com/', timeout=5)),\n"
            "    ('urllib', lambda: urllib.request.urlopen('http://example.com/', timeout=5)),\n"
            "]:\n"
            "    try:\n"
            "        fetch()\n"
            "        results[name] = 'REACHED'\n"
            "    except Exception as exc:\n"
            "        results[name] = 'blocked'\n"
            "print(results, os.environ.get('TUNELAB_ENDPOINT'))"
        )
    ]
    nbformat.write(nb, probe)
    run = execute(probe, tmp_path / "run")
    assert run.error is None, run.error
    text = "".join(o.get("text", "") for o in run.notebook.cells[0].outputs)
    assert "REACHED" not in text, f"a kernel reached the internet: {text}"
    assert "blocked" in text and text.strip().endswith("None"), text


def test_plot_cell_detection() -> None:
    """The heuristic itself: imports and definitions are not plots, calls are."""
    code = nbformat.v4.new_code_cell
    assert not is_plot_cell(code("import matplotlib.pyplot as plt\nimport seaborn as sns"))
    assert not is_plot_cell(code("sns.set_theme(style='whitegrid')"))
    assert not is_plot_cell(code("def plot_curve(df):\n    return df"))
    assert is_plot_cell(code("monitor.plot_loss(df)\nplt.show()"))
    assert is_plot_cell(code("ax = sns.lineplot(data=df, x='step', y='mean_loss')"))
    assert is_plot_cell(code("model = monitor.watch(operation)"))
    assert is_plot_cell(code("x = 1", metadata={"tags": ["plot"]}))
    assert not is_plot_cell(code("plt.plot([1])", metadata={"tags": ["no-plot"]}))


# --- structure and cross-references ----------------------------------------------------------

LESSONS = [p for p in MASTERS if re.match(r"\d\d_", p.parent.name)]
SKELETON = ["Goals", "Time budget", "Summary", "Check yourself"]
# "Reread 04_monitoring, 'Recognising overfitting'": a hint that names a lesson and a section.
_REFERENCE = re.compile(
    r"\b(\d\d_[a-z_]+|sql_overfitting|quiz),\s*['\"\u2018\u201c]([^'\"\u2019\u201d]+)['\"\u2019\u201d]"
)


def headings(nb: nbformat.NotebookNode) -> list[tuple[int, str]]:
    """(level, text) of every Markdown heading, in order."""
    found = []
    for cell in nb.cells:
        if cell.cell_type != "markdown":
            continue
        for line in cell.source.splitlines():
            match = re.match(r"^(#{1,6})\s+(.*?)\s*#*\s*$", line)
            if match:
                found.append((len(match.group(1)), match.group(2)))
    return found


def _joined_source(cell: nbformat.NotebookNode) -> str:
    """Cell source with adjacent string literals joined and whitespace collapsed.

    Hints are often long strings split over lines ("Reread 04_monitoring, 'Recognising "
    "overfitting'."), so a section name can straddle two literals or a Markdown line break.
    """
    text = re.sub(r"([\"'])\s*\n\s*[rbfu]*\1", "", cell.source)
    return " ".join(text.split())


@pytest.mark.parametrize("path", LESSONS, ids=_ids(LESSONS))
def test_lesson_follows_the_skeleton(path: Path) -> None:
    """Title, Goals, Time budget, ..., Summary, Check yourself; practice cells are not graded."""
    nb = nbformat.read(path, as_version=4)
    found = headings(nb)
    assert found and found[0][0] == 1 and found[0][1].startswith("Lesson "), (
        f"{path.name}: the first heading should be the title '# Lesson N · ...'"
    )
    titles = [text for level, text in found if level == 2]
    positions = [titles.index(t) if t in titles else -1 for t in SKELETON]
    assert -1 not in positions, (
        f"{path.name}: missing section(s) "
        f"{[t for t, i in zip(SKELETON, positions, strict=True) if i < 0]} (have {titles})"
    )
    assert positions == sorted(positions), f"{path.name}: sections out of order {SKELETON}"
    graded = [
        c.metadata["nbgrader"].get("grade_id")
        for c in nb.cells
        if c.metadata.get("nbgrader", {}).get("grade")
    ]
    assert not graded, f"{path.name}: lessons are practice only, but cells {graded} are graded"


def test_section_references_exist() -> None:
    """Every "<notebook>, '<section>'" hint in any master names a real heading."""
    titles = {p.parent.name: {text for _, text in headings(nbformat.read(p, 4))} for p in MASTERS}
    broken = []
    for path in MASTERS:
        nb = nbformat.read(path, as_version=4)
        for index, cell in enumerate(nb.cells):
            for target, section in _REFERENCE.findall(_joined_source(cell)):
                if target not in titles:
                    broken.append(f"{path.parent.name}, cell {index}: no notebook {target!r}")
                elif not any(t == section or t.endswith(section) for t in titles[target]):
                    broken.append(
                        f"{path.parent.name}, cell {index}: {target} has no section {section!r}"
                    )
    assert not broken, "hints point at sections that do not exist:\n" + "\n".join(broken)


# --- released copies -------------------------------------------------------------------------


def _scratch_course(tmp: Path) -> Path:
    """A copy of what nbgrader reads: its config, the masters, and the package they import."""
    course = tmp / "course"
    (course / "grader").mkdir(parents=True)
    shutil.copy(ROOT / "grader" / "nbgrader_config.py", course / "grader")
    shutil.copytree(ROOT / "solutions", course / "solutions")
    return course


# Generates every assignment in one Python process: nbgrader's start-up (about 2 s) is paid
# once instead of once per assignment.
_RELEASE_ALL = """\
import json, sys
from traitlets.config.loader import PyFileConfigLoader
from nbgrader.apps import NbGraderAPI
from nbgrader.coursedir import CourseDirectory

config = PyFileConfigLoader("nbgrader_config.py", path=".").load_config()
api = NbGraderAPI(coursedir=CourseDirectory(config=config), config=config)
failed = {}
for name in sys.argv[1:]:
    result = api.generate_assignment(name, force=True, create=True)
    if not result["success"]:
        failed[name] = result.get("log", "")[-3000:] + result.get("error", "")[-2000:]
print(json.dumps(failed))
"""


@pytest.fixture(scope="session")
def generated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Run nbgrader generate_assignment for every master in a scratch copy of the course."""
    course = _scratch_course(tmp_path_factory.mktemp("release"))
    env = {**os.environ, "PATH": f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
    result = subprocess.run(
        [sys.executable, "-c", _RELEASE_ALL, *NAMES],
        cwd=course / "grader",
        env=env,  # nbgrader's gradebook runs the `alembic` script from the venv
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, f"nbgrader generate_assignment crashed:\n{result.stderr[-3000:]}"
    failed = json.loads(result.stdout.strip().splitlines()[-1])
    assert not failed, "nbgrader generate_assignment failed:\n" + "\n".join(
        f"--- {name}\n{log}" for name, log in failed.items()
    )
    return course / "notebooks"


def _release_view(nb: nbformat.NotebookNode) -> list[tuple]:
    """What must agree between two released copies: cell types, sources, nbgrader metadata."""
    return [
        (c.cell_type, c.source, json.dumps(c.metadata.get("nbgrader"), sort_keys=True))
        for c in nb.cells
    ]


def _files(folder: Path) -> Iterator[Path]:
    for path in sorted(folder.rglob("*")):
        if path.is_file() and ".ipynb_checkpoints" not in path.parts:
            yield path.relative_to(folder)


@pytest.mark.parametrize("path", MASTERS, ids=_ids(MASTERS))
def test_released_copy_is_up_to_date(path: Path, generated: Path) -> None:
    name = path.parent.name
    committed_dir, fresh_dir = ROOT / "notebooks" / name, generated / name
    regenerate = (
        f"regenerate it: cd grader && ../.venv/bin/nbgrader generate_assignment {name} --force"
    )
    assert committed_dir.is_dir(), f"notebooks/{name}/ is missing; {regenerate}"
    assert list(_files(committed_dir)) == list(_files(fresh_dir)), (
        f"notebooks/{name}/ holds other files than nbgrader produces; {regenerate}"
    )
    committed = nbformat.read(committed_dir / f"{name}.ipynb", as_version=4)
    fresh = nbformat.read(fresh_dir / f"{name}.ipynb", as_version=4)
    old, new = _release_view(committed), _release_view(fresh)
    assert len(old) == len(new), f"notebooks/{name}: {len(old)} cells, expected {len(new)}"
    for index, (a, b) in enumerate(zip(old, new, strict=True)):
        assert a == b, f"notebooks/{name}, cell {index} differs from the master; {regenerate}"
    assert committed.metadata.get("kernelspec") == fresh.metadata.get("kernelspec")


@pytest.mark.parametrize("path", MASTERS, ids=_ids(MASTERS))
def test_released_copy_hides_solutions(path: Path) -> None:
    """A student copy must not contain solution or hidden-test markers."""
    released = ROOT / "notebooks" / path.parent.name / path.name
    if not released.exists():
        pytest.skip("no released copy (see test_released_copy_is_up_to_date)")
    text = released.read_text(encoding="utf-8")
    for marker in ("### BEGIN SOLUTION", "### END SOLUTION", "### BEGIN HIDDEN TESTS"):
        assert marker not in text, f"{released.relative_to(ROOT)} still contains {marker!r}"


def test_masters_pass_ruff() -> None:
    result = subprocess.run(
        [str(VENV_BIN / "ruff"), "check", "--no-cache", "solutions"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, f"ruff check solutions:\n{result.stdout}{result.stderr}"
