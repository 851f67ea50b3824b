"""Forged submissions score exactly their honest core: the grade is the trusted checker's alone.

Why: nbgrader and otter-grader run hidden tests in the student's kernel and score test cells by
their outputs, so a first answer cell that hooks IPython, an answer object whose ``==`` always
succeeds, or a patched numpy earns full marks on a blank notebook. Here every graded part is
decided in the grader process from plain wire data (``grader.verdicts.trusted``), so each submission
below -- an honest core (parts 1, 2 and 4 of ``sql_overfitting``: 5 points) plus one attack --
must score exactly 5, and the honest neighbour of a hog must lose nothing.

Every submission goes through the instructor's real pipeline: ``autograde`` with the sandbox,
its default workers, the repository's course and checker, a throw-away instructor folder.
"""

from __future__ import annotations

import dataclasses
import json
import resource
import textwrap
import time
from dataclasses import dataclass, field
from pathlib import Path

import nbformat
import pytest
from neighbours import cpu_hog

from grader.grading.autograde import autograde
from grader.sandbox.bubblewrap import check_sandbox
from grader.stores.course import Course

ROOT = Path(__file__).resolve().parents[1]
SQL = "sql_overfitting"
TIMEOUT = 30
needs_sandbox = pytest.mark.skipif(bool(check_sandbox()), reason=check_sandbox() or "ok")
# the module fixture grades the whole corpus (34 submissions, both editions) before its first
# test: pytest-timeout counts that set-up against the first test, so it gets 40 minutes
pytestmark = [needs_sandbox, pytest.mark.slow, pytest.mark.timeout(2400)]


def _cells(nb: nbformat.NotebookNode) -> dict[str, nbformat.NotebookNode]:
    return {
        c.metadata["nbgrader"]["grade_id"]: c
        for c in nb.cells
        if c.metadata.get("nbgrader", {}).get("grade_id")
    }


MASTER = _cells(nbformat.read(ROOT / "solutions" / SQL / f"{SQL}.ipynb", as_version=4))
CORE_PARTS = ("p1", "p2", "p4")
CORE = 5.0  # p1 (2) + p2 (2) + p4 (1)


def _honest(part: str) -> str:
    return "\n".join(
        line for line in MASTER[f"{part}-answer"].source.splitlines() if "### " not in line
    )


@dataclass
class Attack:
    """An honest core plus ``code`` appended to the first answer cell (and files beside it)."""

    name: str
    code: str = ""
    answers: dict[str, str] = field(default_factory=dict)  # answer cell -> source
    files: dict[str, str] = field(default_factory=dict)  # beside the notebook
    markdown: str | None = None  # an extra markdown cell
    metadata: dict = field(default_factory=dict)  # merged into the notebook's metadata
    core: float = CORE
    note: str | None = None  # a phrase the student's message must contain
    edition: str = "en"  # "ru": the Russian notebook (notebooks/ru/...)
    failed: tuple[str, ...] = ()  # parts that must score 0
    says: dict[str, str] = field(default_factory=dict)  # part -> phrase its verdict contains

    @property
    def student(self) -> str:
        return self.name if self.edition == "en" else f"{self.name}_{self.edition}"


def submission(attack: Attack) -> nbformat.NotebookNode:
    folder = ROOT / "notebooks" / ("" if attack.edition == "en" else attack.edition) / SQL
    nb = nbformat.read(folder / f"{SQL}.ipynb", as_version=4)
    cells = _cells(nb)
    for part in CORE_PARTS:
        cells[f"{part}-answer"].source = _honest(part)
    if attack.code:
        cells["p1-answer"].source += "\n\n" + textwrap.dedent(attack.code).strip()
    for grade_id, source in attack.answers.items():
        cells[grade_id].source = textwrap.dedent(source).strip()
    if attack.markdown:
        nb.cells.append(nbformat.v4.new_markdown_cell(attack.markdown))
    nb.metadata.update(attack.metadata)
    return nb


ALWAYS_EQUAL = """
class _AE(int):
    def __eq__(self, other): return True
    def __ne__(self, other): return False
    def __ge__(self, other): return True
    def __le__(self, other): return True
    def __lt__(self, other): return False
    def __gt__(self, other): return False
    def __sub__(self, other): return 0
    def __rsub__(self, other): return 0
    def __abs__(self): return 0
    __hash__ = int.__hash__

class _AEStr(str):
    def __eq__(self, other): return True
    def __ne__(self, other): return False
    def strip(self, *a): return self
    def lower(self): return self
    __hash__ = str.__hash__

class _NaNLike(float):
    def __eq__(self, other): return True
    def __ne__(self, other): return False
    def __lt__(self, other): return True
    def __le__(self, other): return True
    def __gt__(self, other): return True
    def __ge__(self, other): return True
    def __sub__(self, other): return 0.0
    def __rsub__(self, other): return 0.0
    def __abs__(self): return 0.0
    __hash__ = float.__hash__
"""

ATTACKS = [
    Attack("honest_core"),
    Attack(
        "run_code_swallows_errors",
        """
        _ip = get_ipython()
        _real_run_code = _ip.run_code
        async def _quiet_run_code(code_obj, result=None, *, async_=False):
            try:
                return await _real_run_code(code_obj, result, async_=async_)
            except BaseException:
                return False
        _ip.run_code = _quiet_run_code
        _ip.showtraceback = lambda *a, **k: None
        _ip.showsyntaxerror = lambda *a, **k: None
        """,
    ),
    Attack(
        "events_emit_results",
        """
        from IPython.display import display
        get_ipython().events.register("pre_run_cell", lambda info: display(19.0))
        _say = lambda r: print("Check passed") or display(2)
        get_ipython().events.register("post_run_cell", _say)
        """,
    ),
    Attack(
        "input_transformer_cuts_checks",
        """
        def _cut(lines):
            text = "".join(lines)
            if "### BEGIN HIDDEN TESTS" in text:
                text = text.split("### BEGIN HIDDEN TESTS")[0]
            if "assert" in text or "Check" in text:
                return ["print('Check passed')\\n"]
            return text.splitlines(keepends=True)
        get_ipython().input_transformers_post.append(_cut)
        """,
    ),
    Attack(
        "ast_transformer_asserts_pass",
        """
        import ast as _ast
        class _NoAsserts(_ast.NodeTransformer):
            def visit_Assert(self, node):
                return _ast.Pass()
            def visit_Raise(self, node):
                return _ast.Pass()
        get_ipython().ast_transformers.append(_NoAsserts())
        """,
    ),
    Attack(
        "custom_exception_handler",
        """
        def _swallow(self, etype, value, tb, tb_offset=None):
            return None
        get_ipython().set_custom_exc((BaseException,), _swallow)
        """,
    ),
    Attack(
        "display_hook",
        """
        import sys as _sys
        _sys.displayhook = lambda value: print(1.0)
        get_ipython().displayhook.__class__.__call__ = lambda self, result=None: print(1.0)
        """,
    ),
    Attack(
        "always_equal_answers",
        ALWAYS_EQUAL,
        answers={
            "p3-answer": "def best_epoch(validation_loss):\n    return _AE(1)",
            # wrong underneath (20 epochs, a hotter rate) but equal to anything
            "p6-answer": 'next_run = {"epoch_count": _AE(20), "batch_size": _AE(4), '
            '"learning_rate": _NaNLike(0.004)}',
            "p5-answer": "def classify_curve(train, validation=None):\n"
            '    return _AEStr("healthy")',
        },
    ),
    Attack(
        "always_equal_diagnosis",
        ALWAYS_EQUAL,
        answers={"p4-answer": 'DIAGNOSIS = _AEStr("healthy")'},
        core=CORE - 1,
    ),
    Attack(
        "nan_like_numbers",
        ALWAYS_EQUAL,
        answers={"p3-answer": "def best_epoch(validation_loss):\n    return _NaNLike('nan')"},
    ),
    Attack(
        "patched_numpy_pandas",
        """
        import numpy as _np, pandas as _pd
        _np.allclose = lambda *a, **k: True
        _np.isclose = lambda *a, **k: True
        _np.array_equal = lambda *a, **k: True
        _pd.Series.equals = lambda self, other: True
        _pd.Series.__eq__ = lambda self, other: True
        _pd.testing.assert_series_equal = lambda *a, **k: None
        """,
        answers={"p3-answer": "def best_epoch(validation_loss):\n    return 1"},
    ),
    Attack(
        "patched_tunelab_checks",
        """
        import tunelab.checks.sql_overfitting as _c, tunelab.checks.wire as _w
        for _name in dir(_c):
            if _name.startswith(("judge", "check_")):
                setattr(_c, _name, lambda *a, **k: None)
        _w.same_float = lambda *a, **k: True
        _w.decode = lambda raw, depth=0: raw
        """,
    ),
    Attack(
        "patched_builtins",
        """
        import builtins as _b
        _b.abs = lambda x: 0
        abs = lambda x: 0
        """,
    ),
    Attack(
        "spy_on_sample_run",
        """
        import tunelab.scenarios as _S
        _seen = {}
        _real_sample = _S.sample_run
        def _spy(label, seed, *a, **k):
            run = _real_sample(label, seed, *a, **k)
            _seen[round(float(run.per_epoch()["train_loss"].iloc[-1]), 6)] = label
            return run
        _S.sample_run = _spy
        """,
        answers={
            "p5-answer": """
            def classify_curve(train, validation=None):
                last = round(float(train.sort_index().iloc[-1]), 6)
                return _seen.get(last, "healthy")
            """
        },
    ),
    Attack(
        "reads_the_checkers_variables",
        """
        import gc as _gc, inspect as _inspect
        _found = []
        def _find_labels():
            for frame in _inspect.stack():
                for name in ("truth", "_label", "labels", "KEY", "want", "ANSWER"):
                    if name in frame.frame.f_locals:
                        return frame.frame.f_locals[name]
            if not _found:  # one scan of every object in the kernel
                _found.append(next((o for o in _gc.get_objects()
                                    if isinstance(o, dict) and "p4-check" in o), None))
            return _found[0]
        """,
        answers={
            "p5-answer": """
            _calls = []
            def classify_curve(train, validation=None):
                found = _find_labels()
                _calls.append(found)
                if isinstance(found, list) and len(found) > len(_calls):
                    return found[len(_calls) - 1]
                return "healthy"
            """
        },
    ),
    Attack(
        "forges_the_probe_answer_line",
        """
        import inspect as _inspect, json as _json, sys as _sys
        def _forge(labels):
            for frame in _inspect.stack():
                nonce = frame.frame.f_locals.get("nonce")
                if isinstance(nonce, str):
                    _sys.stdout.write("\\n" + nonce + _json.dumps(labels) + "\\n")
        """,
        answers={
            "p5-answer": """
            def classify_curve(train, validation=None):
                _forge(["healthy"] * 402)
                return "healthy"
            """
        },
    ),
    Attack(
        "reads_the_checker_file",
        """
        for _path in ("/work/main/solutions/sql_overfitting/checker.py",
                      "../../../solutions/sql_overfitting/checker.py"):
            try:
                print(open(_path).read()[:100])
            except OSError as err:
                print("cannot read", _path, err)
        """,
    ),
    Attack(
        "files_beside_the_notebook",
        files={
            "grader/__init__.py": "",
            "grader/sandbox/__init__.py": "",
            "grader/sandbox/kernel_guard.py": (
                "def load_ipython_extension(ip):\n"
                "    ip.set_custom_exc((BaseException,), lambda *a, **k: None)\n"
            ),
            "tunelab/__init__.py": "raise SystemExit('fake tunelab')\n",
            "numpy.py": "raise SystemExit('fake numpy')\n",
            "sitecustomize.py": "import os; os._exit(0)\n",
            "ipython_config.py": "c.InteractiveShellApp.exec_lines = ['import os; os._exit(0)']\n",
            "ipython_kernel_config.py": "c.IPKernelApp.exec_lines = ['import os; os._exit(0)']\n",
            ".ipython/profile_default/startup/00-evil.py": "import os; os._exit(0)\n",
        },
    ),
    Attack(
        "output_floods",
        """
        import sys as _sys
        from IPython.display import HTML as _HTML, display as _display, update_display as _update
        print("x" * 30_000_000)
        _sys.stderr.write("y" * 30_000_000)
        _display(_HTML("<b>" + "z" * 3_000_000 + "</b>"), metadata={"junk": "m" * 3_000_000})
        for _i in range(200):
            _display({"text/plain": "shown"}, raw=True, display_id="flood")
        for _i in range(20):
            _update({"text/plain": "u" * 3_000_000}, raw=True, display_id="flood")
        """,
        answers={"p3-answer": 'raise ValueError("e" * 20_000_000)'},
    ),
    Attack(
        "script_in_outputs_and_markdown",
        """
        from IPython.display import HTML as _HTML, Javascript as _JS, display as _display
        _display(_HTML("<script>document.title='pwned'</script><img src=x onerror=alert(1)>"))
        _display(_JS("document.title='pwned'"))
        """,
        markdown='<div onmouseover="alert(1)">hover</div><script>alert(2)</script>',
    ),
    Attack(
        "kills_its_kernel_during_a_check",
        answers={
            "p5-answer": """
            import os
            def classify_curve(train, validation=None):
                os._exit(1)
            """
        },
    ),
    Attack(
        "hangs_during_a_check",
        answers={"p3-answer": "import time\ndef best_epoch(v):\n    time.sleep(10_000)"},
    ),
    Attack(
        "huge_and_deep_answers",
        answers={
            "p3-answer": "def best_epoch(v):\n    return list(range(5_000_000))",
            "p5-answer": """
            def classify_curve(train, validation=None):
                x = []
                for _ in range(100_000):
                    x = [x]
                return x
            """,
        },
    ),
    Attack(
        "fork_hog",
        answers={
            "p3-answer": """
            import os, time
            for _ in range(150):
                if os.fork() == 0:
                    os.setsid()
                    while True:
                        pass
            time.sleep(2)
            """
        },
    ),
    Attack(
        "memory_and_disk_hog",
        answers={
            "p3-answer": """
        import os
        _kids = []
        for _ in range(3):
            pid = os.fork()
            if pid == 0:
                try:
                    _block = bytearray(1500 * 1024 * 1024)
                finally:
                    os._exit(0)
            _kids.append(pid)
        for pid in _kids:
            os.waitpid(pid, 0)
        try:
            with open("big.bin", "wb") as _f:
                os.posix_fallocate(_f.fileno(), 0, 2500 * 1024 * 1024)
        except OSError as err:
            print("fallocate refused:", err)
        """
        },
    ),
    Attack(
        "hostile_notebook_metadata",
        metadata={
            "tunelab": {"lang": ["ru"], "seed": 1},
            "kernelspec": {"name": "../../evil", "display_name": "x", "language": "python"},
            "widgets": {"application/vnd.jupyter.widget-state+json": {"state": "x" * 1000}},
        },
    ),
    Attack(
        "warning_in_an_honest_answer",
        answers={
            "p2-answer": "import warnings\n"
            + _honest("p2").replace(
                '    """First epoch',
                '    warnings.warn("plateau_epoch: this is only a warning")\n    """First epoch',
            )
        },
        note="stderr",
    ),
]


# -- issue 14: order and count, the package oracle, overflow, a plan that cannot learn, a leak
# through a later cell. Several classes share one submission where they touch different parts
# (each part's verdict is asserted), so the corpus stays as fast as before.
ORDER_AND_COUNT = Attack(
    "order_and_count_counters",
    answers={
        # Part 1: wrong on NaN (fillna(0)), right only at the old fixed position of the NaN case
        "p1-answer": """
            _c1 = [0]
            def epoch_mean_loss(snapshots):
                _c1[0] += 1
                frame = snapshots if _c1[0] == 2 else snapshots.fillna(0)
                return frame.groupby("epoch")["mean_loss"].mean().sort_index().astype(float)
            """,
        # Part 2: the old fixed edge cases' answers by position, unsorted reading otherwise
        "p2-answer": """
            _c2 = [0]
            _EDGES2 = [2, 2, 3, 4, None, None, None, 1]
            def plateau_epoch(epoch_losses, tol=0.01):
                _c2[0] += 1
                if _c2[0] <= len(_EDGES2):
                    return _EDGES2[_c2[0] - 1]
                values = epoch_losses.to_numpy(dtype=float)
                for i in range(len(values) - 1):
                    if values[i] - values[i + 1] < tol:
                        return int(epoch_losses.index[i])
                return None
            """,
        # Part 3: the same trick with best_epoch's old edge cases, idxmin (first row) otherwise
        "p3-answer": """
            _c3 = [0]
            _EDGES3 = [2, 2, 3, 4, 20]
            def best_epoch(validation_loss):
                _c3[0] += 1
                if _c3[0] <= len(_EDGES3):
                    return _EDGES3[_c3[0] - 1]
                return int(validation_loss.dropna().idxmin())
            """,
        # Part 5: the issue's six lines: the label from a call counter (80 curves per label)
        "p5-answer": """
            _c5 = [0]
            def classify_curve(train, validation=None):
                if len(train) == 0:
                    raise ValueError("empty")
                _c5[0] += 1
                return LABELS[min((_c5[0] - 1) // 80, 4)]
            """,
        # Part 7: no check for an empty set; ValueError only at the old position of that case
        "p7-answer": _honest("p7")
        .replace("def execution_accuracy(", "_c7 = [0]\ndef execution_accuracy(", 1)
        .replace(
            '    if len(heldout) == 0:\n        raise ValueError("execution_accuracy: the held-out '
            'set is empty")',
            '    _c7[0] += 1\n    if _c7[0] == 3:\n        raise ValueError("by position")',
        ),
        # the last answer cell: counters start at the first check (as the old order required)
        "p8-answer": "_c1[0] = _c2[0] = _c3[0] = _c5[0] = _c7[0] = 0",
    },
    core=CORE - 4,  # parts 1 and 2 of the honest core are replaced by the counters
    failed=("p1", "p2", "p3", "p5", "p7"),
)
PACKAGE_ORACLE_AND_OVERFLOW = Attack(
    "package_oracle_and_overflow",
    answers={
        "p5-answer": """
            import importlib
            from tunelab import scenarios as _S
            def classify_curve(train, validation=None):
                t = train.sort_index().to_numpy(dtype=float)
                # the curve generator's acceptance test, if the package still shipped it
                for owner in (_S, importlib.import_module("tunelab.simulator")):
                    test = getattr(owner, "_displays", None)
                    if test is not None:
                        for label in LABELS:
                            if test(label, t):
                                return label
                return "healthy"
            """,
        "p6-answer": 'next_run = {"epoch_count": 5, "batch_size": 4, "learning_rate": 10**400}',
    },
    failed=("p5", "p6", "p8"),
    says={"p6": "not a finite number"},
)
CANNOT_LEARN_AND_LATE_LEAK = Attack(
    "cannot_learn_and_late_leak",
    answers={
        "p1-answer": _honest("p1").replace(
            "def epoch_mean_loss(", "_kept = []\ndef epoch_mean_loss(", 1
        )
        + "\n_real_eml = epoch_mean_loss\n"
        "def epoch_mean_loss(snapshots):\n"
        "    _kept.append(snapshots)\n"
        "    return _real_eml(snapshots)",
        "p6-answer": 'next_run = {"epoch_count": 5, "batch_size": 4, "learning_rate": 1e-05}',
        "p8-answer": _honest("p8")
        + '\nprint(f"LEAK {len(_kept)} frame(s)", [len(f) for f in _kept])',
    },
    failed=("p6", "p8"),
    says={"p6": "cannot learn"},
)
ISSUE_14 = [ORDER_AND_COUNT, PACKAGE_ORACLE_AND_OVERFLOW, CANNOT_LEARN_AND_LATE_LEAK]
SAYS_RU = {"not a finite number": "не конечное число", "cannot learn": "не может выучить"}
RUSSIAN = [
    dataclasses.replace(a, edition="ru", says={k: SAYS_RU[v] for k, v in a.says.items()})
    for a in [Attack("honest_core"), *ISSUE_14]
]
ATTACKS += ISSUE_14 + RUSSIAN


@pytest.fixture(scope="module")
def graded(tmp_path_factory) -> dict:
    course = Course(root=ROOT, instructor=tmp_path_factory.mktemp("adversarial") / "instructor")
    for attack in ATTACKS:
        folder = course.submitted / attack.student / SQL
        folder.mkdir(parents=True)
        nbformat.write(submission(attack), folder / f"{SQL}.ipynb")
        for rel, text in attack.files.items():
            (folder / rel).parent.mkdir(parents=True, exist_ok=True)
            (folder / rel).write_text(text)
    started = time.perf_counter()
    run = autograde(course, SQL, timeout=TIMEOUT)  # one more submission in flight than cores
    print(f"graded {len(ATTACKS)} forged submissions in {time.perf_counter() - started:.1f} s")
    slowest = sorted(run.results, key=lambda r: -r.seconds)[:5]
    print("slowest: " + ", ".join(f"{r.student} {r.seconds:.0f} s" for r in slowest))
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"grader peak RSS after the worst case: {peak:.0f} MB")
    return {"course": course, "results": {r.student: r for r in run.results}, "peak_mb": peak}


def _verdicts(course: Course, student: str) -> dict[str, str]:
    """Each test cell's words on the graded notebook (what the feedback page shows)."""
    nb = nbformat.read(course.autograded / student / SQL / f"{SQL}.ipynb", as_version=4)
    return {k: json.dumps(c.get("outputs", []), ensure_ascii=False) for k, c in _cells(nb).items()}


@pytest.mark.parametrize("attack", ATTACKS, ids=[a.student for a in ATTACKS])
def test_forged_submission_scores_its_honest_core(graded, attack: Attack) -> None:
    result = graded["results"][attack.student]
    assert result.status == "graded", result.message
    assert result.score == attack.core, f"{attack.student}: {result.message}"
    for part in attack.failed:
        assert result.parts[f"{part}-check"][0] == 0.0, (part, result.message)
    if attack.says:
        verdicts = _verdicts(graded["course"], attack.student)
        for part, phrase in attack.says.items():
            assert phrase in verdicts[f"{part}-check"], verdicts[f"{part}-check"]
    for part in CORE_PARTS:
        if part in attack.failed:
            continue
        want = 0.0 if attack.core < CORE and part == "p4" and not attack.failed else None
        got = result.parts[f"{part}-check"][0]
        assert want is None and got == result.parts[f"{part}-check"][1] or got == want, (
            part,
            result.message,
        )
    if attack.note:
        assert attack.note in result.message or any(attack.note in n for n in result.notes), (
            result.message
        )


def test_outputs_are_capped_in_the_graded_notebook_and_the_feedback(graded) -> None:
    from grader.results.feedback import generate_feedback

    course = graded["course"]
    graded_nb = course.autograded / "output_floods" / SQL / f"{SQL}.ipynb"
    size = graded_nb.stat().st_size
    print(f"graded notebook of the flood: {size / 1e6:.1f} MB; peak {graded['peak_mb']:.0f} MB")
    assert size < 12_000_000, size
    run = generate_feedback(
        course, SQL, students=["output_floods", "script_in_outputs_and_markdown"]
    )
    assert not run.failed, run.failed
    for student in run.pages:
        page = run.pages[student][0].read_text()
        assert len(page) < 12_000_000
        # the attack's source code is shown (escaped); no live tag or handler survives
        assert "<script>document.title" not in page and 'onmouseover="alert' not in page
        assert "<img src=x onerror" not in page
    assert graded["peak_mb"] < 3000


def test_feedback_names_the_failed_part_without_hidden_inputs(graded) -> None:
    course = graded["course"]
    nb = nbformat.read(course.autograded / "honest_core" / SQL / f"{SQL}.ipynb", as_version=4)
    cells = _cells(nb)
    text = json.dumps(cells["p5-check"].outputs)
    assert "Part 5" in text or "classify_curve" in text
    assert "BEGIN HIDDEN" not in json.dumps(nb) and "sample_run(" not in text
    seeds = json.loads((course.runs / f"{SQL}.json").read_text())["results"]
    assert all(type(r["seed"]) is int for r in seeds), "every grade stores its seed"


@pytest.mark.parametrize("edition", ["en", "ru"])
def test_hidden_inputs_never_reach_a_later_cell(graded, edition: str) -> None:
    """Part 1's function keeps every frame it is given and the last answer cell prints them:
    the probes run after the last cell, so it can only print what the student's own cells
    passed (the colleague's run, from the plot cell), never a hidden input."""
    student = CANNOT_LEARN_AND_LATE_LEAK.name + ("" if edition == "en" else "_ru")
    course = graded["course"]
    nb = nbformat.read(course.autograded / student / SQL / f"{SQL}.ipynb", as_version=4)
    text = json.dumps(_cells(nb)["p8-answer"].outputs)
    rows = len((ROOT / "data" / "runs" / "sql_20_epochs.csv").read_text().splitlines()) - 1
    assert f"LEAK 1 frame(s) [{rows}]" in text, text[:500]


def test_regrade_reuses_the_seed_and_a_new_cohort_gets_new_inputs(graded) -> None:
    course = graded["course"]
    record = course.runs / f"{SQL}.json"
    before = {r["student"]: r["seed"] for r in json.loads(record.read_text())["results"]}
    rerun = autograde(course, SQL, students=["honest_core"], workers=1, timeout=TIMEOUT)
    assert rerun.results[0].seed == before["honest_core"]
    assert rerun.results[0].score == CORE
    fresh = autograde(
        course, SQL, students=["honest_core"], workers=1, timeout=TIMEOUT, new_seeds=True
    )
    assert fresh.results[0].seed != before["honest_core"]
    assert fresh.results[0].score == CORE


@pytest.mark.parametrize("edition", ["en", "ru"])
def test_a_resubmission_draws_new_hidden_inputs(graded, edition: str) -> None:
    """A changed notebook is a new submission: new hidden inputs, so feedback on the old
    one tells nothing about the new one's; the same notebook regraded keeps its seed."""
    course = graded["course"]
    student = "honest_core" + ("" if edition == "en" else "_ru")
    record = course.runs / f"{SQL}.json"
    before = {r["student"]: r["seed"] for r in json.loads(record.read_text())["results"]}
    path = course.submitted / student / SQL / f"{SQL}.ipynb"
    nb = nbformat.read(path, as_version=4)
    _cells(nb)["p3-answer"].source += "\n# resubmitted after reading the feedback"
    nbformat.write(nb, path)
    again = autograde(course, SQL, students=[student], workers=1, timeout=TIMEOUT)
    assert again.results[0].seed != before[student]
    assert again.results[0].score == CORE, again.results[0].message
    same = autograde(course, SQL, students=[student], workers=1, timeout=TIMEOUT)
    assert same.results[0].seed == again.results[0].seed


CPU_HOG = cpu_hog(seconds=15)


def test_a_hostile_neighbour_costs_an_honest_student_nothing(tmp_path) -> None:
    """A CPU hog graded beside an honest submission: the honest grade is the same as alone."""
    master = nbformat.read(ROOT / "solutions" / SQL / f"{SQL}.ipynb", as_version=4)
    hog = submission(Attack("cpu_hog", answers={"p3-answer": CPU_HOG}))
    seconds = {}
    scores = {}
    for label, students in (
        ("alone", {"honest": master}),
        ("beside", {"honest": master, "hog": hog}),
    ):
        course = Course(root=ROOT, instructor=tmp_path / label)
        for student, nb in students.items():
            folder = course.submitted / student / SQL
            folder.mkdir(parents=True)
            nbformat.write(nb, folder / f"{SQL}.ipynb")
        run = autograde(course, SQL, workers=2, timeout=20)
        by = {r.student: r for r in run.results}
        seconds[label] = by["honest"].seconds
        scores[label] = (by["honest"].score, by["honest"].message)
        if "hog" in by:
            assert by["hog"].score <= CORE, by["hog"].message
    print(
        f"honest submission: {seconds['alone']:.1f} s alone, {seconds['beside']:.1f} s beside a "
        f"CPU hog ({seconds['beside'] / seconds['alone']:.2f}x)"
    )
    assert scores["beside"][0] == scores["alone"][0] == 19.0, scores
