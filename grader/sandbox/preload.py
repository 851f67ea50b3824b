"""Which modules an assignment's zygote imports: what its kernels will import anyway.

Why per assignment: the zygote's imports are paid once per grading run, and a forked
kernel gets them for free, but a module nobody imports is only cost. The quiz needs pandas,
matplotlib and its own checks; importing seaborn, scipy, google.generativeai and the
emulator's web stack for it too took about 1.5 of the zygote's 2.3 CPU seconds.

The list is read from the master (trusted, the instructor's): the modules its code cells
import, in order, after what every kernel imports to start; then the probe's modules, then
what the checker's ``PRELOAD`` names (modules the lesson's calls import lazily, which no
import statement shows, such as the emulator behind ``tunelab.connect``). A module a
student imports beyond that is imported in the student's kernel, as without a zygote:
slower, never different.
"""

from __future__ import annotations

import ast
import json
from collections.abc import Iterable
from pathlib import Path

#: What every kernel imports before its first cell (IPKernelApp and what its start imports
#: lazily: 66 of a forked kernel's 80 ms of start), and the probe the grader runs in it.
KERNEL_PRELOAD = (
    "IPython",
    "ipykernel.kernelapp",
    "ipykernel.ipkernel",
    "ipykernel.debugger",
    "IPython.core.debugger",
    "IPython.core.oinspect",
    "IPython.core.completerlib",
    "faulthandler",
    "psutil",
    "tornado.platform.asyncio",
    "tunelab.checks.probe",
    "tunelab.checks.wire",
)
#: What a notebook that imports matplotlib imports when it shows its first figure (the
#: inline backend draws with Agg and saves with Pillow, whose first save loads these).
FIGURES = (
    "matplotlib.backends.backend_agg",
    "PIL.BmpImagePlugin",
    "PIL.GifImagePlugin",
    "PIL.JpegImagePlugin",
    "PIL.PpmImagePlugin",
)
#: The heavy libraries of the course's lessons: with :data:`KERNEL_PRELOAD` and
#: :data:`FIGURES`, the zygote's imports where the assignment is not known (a kernel started
#: outside ``autograde``). An assignment's own list comes from :func:`preload_for`.
LESSON_PRELOAD = (
    "numpy",
    "pandas",
    "matplotlib",
    "matplotlib.pyplot",
    "seaborn",
    "google.generativeai",
    "tunelab",
    "tunelab.checks",
    "tunelab.scenarios",
)
DEFAULT_PRELOAD = KERNEL_PRELOAD + LESSON_PRELOAD + FIGURES
#: Never imported in the zygote: it hooks into the IPython shell there is, and a kernel's
#: shell is made after the fork.
NEVER = ("matplotlib_inline",)
#: Marks a name the zygote imports only if it is a module (``b`` of ``from a import b``).
OPTIONAL = "?"


def notebook_imports(path: Path) -> list[str]:
    """Modules the notebook's code cells import, in order; cells that do not parse are
    skipped. ``from a import b`` gives ``a`` and ``?a.b``: ``b`` may be a submodule, which
    the zygote imports if ``a`` has it (:data:`OPTIONAL`), without importing ``a`` here."""
    found: list[str] = []
    cells = json.loads(path.read_text(encoding="utf-8")).get("cells", [])
    for cell in cells:
        if cell.get("cell_type") != "code":
            continue
        source = cell.get("source", "")
        source = "".join(source) if isinstance(source, list) else source
        lines = [line for line in source.splitlines() if not line.lstrip().startswith(("%", "!"))]
        try:
            tree = ast.parse("\n".join(lines))
        except SyntaxError:
            continue
        nodes = [n for n in ast.walk(tree) if isinstance(n, ast.Import | ast.ImportFrom)]
        for node in sorted(nodes, key=lambda n: (n.lineno, n.col_offset)):  # source order
            if isinstance(node, ast.Import):
                found += [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                found.append(node.module)
                found += [f"{OPTIONAL}{node.module}.{a.name}" for a in node.names if a.name != "*"]
    return found


def preload_for(
    masters: Iterable[Path], probe_module: str, extra: Iterable[str] = ()
) -> tuple[str, ...]:
    """The zygote's imports for an assignment: every kernel's, the masters', the probe's
    module (``tunelab.checks.PROBE_MODULE``), then ``extra``; each once, in that order."""
    wanted: list[str] = list(KERNEL_PRELOAD)
    for master in masters:
        wanted += notebook_imports(master)
    if any(name.split(".")[0] == "matplotlib" for name in wanted):
        wanted += FIGURES  # what showing the first figure imports
    wanted += [f"tunelab.checks.{probe_module}", *extra]
    out: dict[str, str] = {}  # module -> as imported: optional only if never named plainly
    for name in wanted:
        plain = name.removeprefix(OPTIONAL)
        if plain.split(".")[0] not in NEVER and (plain not in out or name == plain):
            out[plain] = name  # a dict keeps the first position
    return tuple(out.values())
