"""Kernels forked by the zygote (``Sandbox.zygote``): as confined as bubblewrap's, and nothing
of one submission reaches the next one forked from the same zygote.

The rest of the sandbox's guarantees are the existing suites, run with the zygote on:
``TUNELAB_SANDBOX_ZYGOTE=1 pytest tests/test_grader_sandbox.py tests/test_grader_isolation.py
tests/test_cheating.py tests/test_grader_adversarial.py``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from grader_corpus import KERNELSPEC, run_sandboxed
from nbformat.v4 import new_code_cell, new_notebook
from traitlets.config import Config

from grader.sandbox import zygote
from grader.sandbox.bubblewrap import Sandbox, check_sandbox
from grader.verdicts.sandboxedexecute import SandboxedExecute

pytestmark = [
    pytest.mark.skipif(bool(check_sandbox()), reason=f"no bubblewrap sandbox: {check_sandbox()}"),
    pytest.mark.skipif(os.geteuid() != 0, reason="the zygote joins namespaces: root only"),
]


def run(cells: list[str], workdir: Path, forked: bool, timeout: int = 60) -> list[dict]:
    """Execute cells in a sandboxed kernel, forked by the zygote or not."""
    return run_sandboxed(cells, workdir, timeout, zygote=forked)


# What a kernel observes of its confinement, printed as one JSON object.
OBSERVE = r"""
import json, os, resource, socket
status = dict(line.split(":", 1) for line in open("/proc/self/status").read().splitlines())
seen = {
    "uid": [os.getuid(), os.geteuid(), os.getgid()],
    "groups": os.getgroups(),
    "cap_eff": status["CapEff"].strip(),
    "cap_prm": status["CapPrm"].strip(),
    "root": sorted(os.listdir("/")),
    "tmp": sorted(n for n in os.listdir("/tmp") if not n.startswith("grader-sbx-")),
    "cwd_files": sorted(os.listdir(".")),
    "hostname": socket.gethostname(),
    "interfaces": sorted(name for _, name in socket.if_nameindex()),
    "pids": len([p for p in os.listdir("/proc") if p.isdigit()]),
    "limits": {n: resource.getrlimit(getattr(resource, n)) for n in
               ("RLIMIT_AS", "RLIMIT_CPU", "RLIMIT_NPROC", "RLIMIT_FSIZE", "RLIMIT_NOFILE",
                "RLIMIT_CORE")},
    "env": sorted(os.environ),
    "cgroup": open("/proc/self/cgroup").read().split(":")[-1].strip()[:1],
    "umask": oct(os.umask(0o077)),
    "fds": sorted(int(fd) for fd in os.listdir("/proc/self/fd")),
}
print(json.dumps(seen))
"""


def test_a_forked_kernel_is_confined_like_a_bubblewrap_one(tmp_path: Path) -> None:
    (tmp_path / "beside.py").write_text("x = 1")
    plain = json.loads(run([OBSERVE], tmp_path, forked=False)[0]["text"])
    forked_out = run([OBSERVE, "import sys\nprint('seaborn' in sys.modules)"], tmp_path, True)
    forked = json.loads(forked_out[0]["text"])
    assert forked_out[1]["text"].strip() == "True", "the zygote's imports are there at once"
    assert forked["uid"][0] != 0 and forked["uid"][0] == forked["uid"][1] == forked["uid"][2]
    assert forked["cap_eff"] == forked["cap_prm"] == "0000000000000000"
    assert forked["cwd_files"] == [], "nothing beside the notebook enters"
    # the kernel is pid 3 there (2 holds the sandbox): one process more, same namespace
    assert forked["pids"] <= plain["pids"] + 1
    for key in ("root", "tmp", "hostname", "interfaces", "env", "cgroup", "umask"):
        assert forked[key] == plain[key], key
    # the address space of the preloaded modules is not taken from the student's --memory
    address_space = forked["limits"].pop("RLIMIT_AS")[0] - plain["limits"].pop("RLIMIT_AS")[0]
    assert 0 < address_space <= 1024 * 2**20
    assert forked["limits"] == plain["limits"]
    assert forked["groups"] == plain["groups"] == []
    assert len(forked["fds"]) <= len(plain["fds"]) + 2, (forked["fds"], plain["fds"])
    status = run(["print(open('/proc/self/status').read())"], tmp_path, True)[0]["text"]
    fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
    assert fields["NoNewPrivs"].strip() == "1"
    assert int(fields["CapBnd"], 16) & ~0xC0 == 0, "only setuid/setgid left in the bounding set"


FIRST = r"""
import builtins, os, random, sys
import numpy as np, pandas as pd
print(repr(random.random()), repr(float(np.random.random())))
"""

LEAVE_TRACES = r"""
import tabnanny, wave, mailbox  # modules the zygote did not import
import tunelab
SECRET_A = "a-secret-global"
pd.DataFrame.sum = lambda *a, **k: 42
np.allclose = lambda *a, **k: True
tunelab.PATCHED_BY_A = True
builtins.PLANTED_BY_A = True
sys.modules["planted_by_a"] = sys
os.environ["A_WAS_HERE"] = "1"
for path in ("/tmp/a-was-here", "a-was-here", os.path.expanduser("~/.a-was-here")):
    open(path, "w").write("a")
random.seed(1234)
np.random.seed(1234)
print("traces left")
"""

LOOK = r"""
import builtins, json, os, sys
import numpy as np, pandas as pd
import tunelab
print(json.dumps({
    "modules": sorted({"tabnanny", "wave", "mailbox", "planted_by_a"} & set(sys.modules)),
    "global": "SECRET_A" in globals(),
    "sum": int(pd.DataFrame({"x": [1, 2]}).sum().iloc[0]),
    "allclose": bool(np.allclose(1.0, 2.0)),
    "tunelab": hasattr(tunelab, "PATCHED_BY_A"),
    "builtins": hasattr(builtins, "PLANTED_BY_A"),
    "env": "A_WAS_HERE" in os.environ,
    "files": [p for p in ("/tmp/a-was-here", "a-was-here", os.path.expanduser("~/.a-was-here"))
              if os.path.exists(p)],
}))
"""


def test_nothing_of_one_submission_reaches_the_next(tmp_path: Path) -> None:
    """Two submissions forked from one zygote: B sees nothing A imported, patched, set,
    wrote or seeded, and their random generators are not copies of one state."""
    zygote.close_all()
    first_a, traces = run([FIRST, LEAVE_TRACES], tmp_path, forked=True)
    assert traces["text"].strip() == "traces left", traces
    first_b, look = run([FIRST, LOOK], tmp_path, forked=True)
    seen = json.loads(look["text"])
    assert seen == {
        "modules": [],
        "global": False,
        "sum": 3,
        "allclose": False,
        "tunelab": False,
        "builtins": False,
        "env": False,
        "files": [],
    }
    assert first_a["text"] != first_b["text"], "random state shared through the fork"
    draws = run([FIRST], tmp_path, forked=True)[0]["text"].split()
    assert len(set(draws + first_a["text"].split() + first_b["text"].split())) == 6
    started = [z for z in zygote.live() if z.starts]
    assert len(started) == 1 and started[0].starts == 1, "one zygote served all three"


def test_a_kernel_that_dies_is_seen_dead_and_the_zygote_survives(tmp_path: Path) -> None:
    out = run(["import os\nos._exit(3)", "print('after')"], tmp_path, forked=True)
    assert out[0]["error"] == "KernelDied"
    assert out[1]["text"].strip() == "after", "a fresh forked kernel runs the next cell"
    assert all(z.alive() for z in zygote.live())


def test_the_zygote_is_on_by_default_and_can_be_switched_off(monkeypatch) -> None:
    """On unless asked not to: the environment (what ``--no-zygote`` sets in every worker) or
    the config; and only ever used where it can work (root, Linux)."""
    monkeypatch.delenv("TUNELAB_SANDBOX_ZYGOTE", raising=False)
    assert Sandbox().zygote is True
    assert Sandbox().uses_zygote is True  # this test module runs as root
    monkeypatch.setenv("TUNELAB_SANDBOX_ZYGOTE", "0")
    assert Sandbox().zygote is False
    monkeypatch.setenv("TUNELAB_SANDBOX_ZYGOTE", "1")
    cfg = Config()
    cfg.Sandbox.zygote = False
    assert Sandbox(config=cfg).zygote is False
    from grader import cli

    for flag, want in (("--no-zygote", "0"), ("--zygote", "1")):
        monkeypatch.setenv("TUNELAB_SANDBOX_ZYGOTE", "unset by the test")
        args = cli.build_parser().parse_args(["autograde", flag, "x"])
        assert args.zygote is (want == "1")
    assert cli.build_parser().parse_args(["autograde", "x"]).zygote is None


def test_without_a_control_group_the_memory_limit_stays_exact(tmp_path: Path) -> None:
    """rlimits mode: RLIMIT_AS is the submission's memory limit, so a forked kernel keeps it
    exactly, and where the preloaded modules would leave too little, bubblewrap starts it."""
    source = (
        "import resource, sys\n"
        "print(resource.getrlimit(resource.RLIMIT_AS)[0], 'seaborn' in sys.modules)"
    )
    kernels = {}
    for memory in (2048, 600):
        cfg = Config()
        cfg.Sandbox.zygote = True
        cfg.Sandbox.isolation = "rlimits"
        cfg.Sandbox.memory_mb = memory
        nb = new_notebook(cells=[new_code_cell(source)], metadata={"kernelspec": KERNELSPEC})
        step = SandboxedExecute(timeout=60, config=cfg)
        nb, _ = step.preprocess(nb, {"metadata": {"path": str(tmp_path)}})
        kernels[memory] = "".join(o.get("text", "") for o in nb.cells[0].outputs).split()
    assert kernels[2048] == [str(2048 * 2**20), "True"], "forked, and the limit is exact"
    assert kernels[600] == [str(600 * 2**20), "False"], "too small to fork: bubblewrap's kernel"


def test_a_grading_run_stops_the_zygotes_it_leaves_but_the_last(monkeypatch) -> None:
    """Zygotes live as long as the grading runs of the process that overlap; then only the
    last one used stays: a process that grades course after course does not keep one
    (~400 MB) per course, and a next run with the same key forks from the one kept."""
    stopped: list[str] = []
    monkeypatch.setattr(zygote.Zygote, "close", lambda self: stopped.append(self.env["course"]))
    monkeypatch.setattr(zygote, "_zygotes", {})
    with zygote.in_use():
        zygote.zygote_for((), {"course": "a"}, None, (), ())
        with zygote.in_use():  # an overlapping run (another thread)
            b = zygote.zygote_for((), {"course": "b"}, None, (), ())
            zygote.zygote_for((), {"course": "c"}, None, (), ())
        assert stopped == [] and len(zygote.live()) == 3, "in use by the first run"
        assert zygote.zygote_for((), {"course": "b"}, None, (), ()) is b  # b: the last used
    assert sorted(stopped) == ["a", "c"] and zygote.live() == [b]
    with zygote.in_use():
        assert zygote.zygote_for((), {"course": "b"}, None, (), ()) is b, "the next run's"
        d = zygote.zygote_for((), {"course": "d"}, None, (), ())
    assert sorted(stopped) == ["a", "b", "c"] and zygote.live() == [d]
    zygote.close_all()
    assert sorted(stopped) == ["a", "b", "c", "d"] and zygote.live() == []


@pytest.mark.parametrize("forked", [True, False], ids=["zygote", "bubblewrap"])
def test_figures_are_drawn_as_images(tmp_path: Path, forked: bool) -> None:
    """The feedback page shows a notebook's figures: a forked kernel must draw them as PNG like
    a fresh one, whether a cell calls plt.show() or leaves the figure to the end of the cell
    (matplotlib_inline hooks into the kernel's shell when first imported, after the fork)."""
    cfg = Config()
    cfg.Sandbox.zygote = forked
    cells = [
        "import matplotlib.pyplot as plt\nplt.plot([1, 2, 3])\nplt.show()",
        "fig, ax = plt.subplots()\nax.plot([3, 2, 1])",
    ]
    nb = new_notebook(cells=[new_code_cell(c) for c in cells], metadata={"kernelspec": KERNELSPEC})
    nb, _ = SandboxedExecute(timeout=60, config=cfg).preprocess(
        nb, {"metadata": {"path": str(tmp_path)}}
    )
    for cell in nb.cells:
        kinds = [sorted(o.get("data", {})) for o in cell.outputs]
        assert any("image/png" in k for k in kinds), (cell.source, kinds)


def test_the_preflight_and_the_class_share_one_zygote(tmp_path: Path, monkeypatch) -> None:
    """A zygote is keyed on the kernels' environment: the master's preflight must run in the
    students' (NBGRADER_EXECUTION=autograde), or a second zygote starts (4 s more per run)."""
    from grader.grading.autograde import Autograder
    from grader.stores.course import Course

    root = Path(__file__).resolve().parents[1]
    course = Course(root=root, instructor=tmp_path / "instructor")
    folder = course.submitted / "s1" / "sql_overfitting"
    folder.mkdir(parents=True)
    seen: list[tuple[str, str | None]] = []
    grader = Autograder(course, "sql_overfitting")
    monkeypatch.delenv("NBGRADER_EXECUTION", raising=False)
    monkeypatch.setattr(grader, "_check_machine", lambda: None)
    monkeypatch.setattr(
        grader,
        "_preflight",
        lambda: seen.append(("preflight", os.environ.get("NBGRADER_EXECUTION"))),
    )
    monkeypatch.setattr(
        grader,
        "_run",
        lambda names, progress: seen.append(("class", os.environ.get("NBGRADER_EXECUTION"))),
    )
    grader.run()
    assert seen == [("preflight", "autograde"), ("class", "autograde")]
    assert "NBGRADER_EXECUTION" not in os.environ, "restored after the run"


def test_a_zygote_that_cannot_start_is_not_retried_and_kernels_start_without_it(
    tmp_path: Path, monkeypatch
) -> None:
    """Why: the zygote only saves time. An assignment's master may import a module that
    starts a thread (a zygote must have one, and says so instead of starting): grading goes
    on with kernels bubblewrap starts, and the zygote is not started again for each one."""
    starts: list[int] = []

    def threads_after_imports(self) -> None:
        starts.append(1)
        raise zygote.ZygoteError("the zygote did not start: it has 2 threads after its imports")

    monkeypatch.setattr(zygote.Zygote, "_start", threads_after_imports)
    cfg = Config()
    cfg.Sandbox.zygote = True
    cfg.Sandbox.zygote_preload = ["json", "tunelab.checks.probe"]  # a zygote of its own
    for _ in range(2):
        cells = [new_code_cell("print(6 * 7)")]
        nb = new_notebook(cells=cells, metadata={"kernelspec": KERNELSPEC})
        nb, _ = SandboxedExecute(timeout=60, config=cfg).preprocess(
            nb, {"metadata": {"path": str(tmp_path)}}
        )
        assert nb.cells[0].outputs[0]["text"] == "42\n"
    assert len(starts) == 1, "tried once, then the kernels started without it"
