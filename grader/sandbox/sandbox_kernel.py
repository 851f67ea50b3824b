"""The student kernel's first Python code, inside the sandbox: start IPython isolated.

Runs as ``python -I -B sandbox_kernel.py --workdir DIR -- IPKERNEL ARGUMENTS...`` (the
kernel spec's ``-m ipykernel_launcher`` rewritten by :class:`grader.sandbox.bubblewrap.
SandboxedKernelManager`). Nothing the submission brought can take part in the start:

* ``-I``: neither the working folder nor a user site is on ``sys.path``, ``PYTHON*``
  variables are ignored; IPython is told ``ignore_cwd`` as well, so a ``numpy.py`` or a
  ``tunelab/`` beside the notebook is never imported in place of the real one;
* the process starts in ``/`` (bubblewrap's ``--chdir``) and moves to the working folder
  only after IPython has read its configuration, so no ``ipython_config.py`` or
  ``ipython_kernel_config.py`` there is ever looked at; IPYTHONDIR is an empty private
  folder, so there are no profile or startup files either;
* the output guard (``kernel_guard.py``) is loaded from its absolute path next to this file,
  not imported by the module name ``grader.sandbox.kernel_guard``, which a package could shadow.
"""

from __future__ import annotations

import os
import sys
from importlib.util import module_from_spec, spec_from_file_location

HERE = os.path.dirname(os.path.abspath(__file__))
GUARD = os.path.join(HERE, "kernel_guard.py")
ISOLATED = ["--InteractiveShellApp.ignore_cwd=True"]


def _load_guard():
    spec = spec_from_file_location("_grader_kernel_guard", GUARD)
    if spec is None or spec.loader is None:
        raise SystemExit(f"sandbox_kernel: cannot load {GUARD}")
    module = module_from_spec(spec)
    sys.modules[spec.name] = module  # there, for whoever wants to check which guard runs
    spec.loader.exec_module(module)
    return module


def main(argv: list[str]) -> None:
    if len(argv) < 2 or argv[0] != "--workdir":
        raise SystemExit("usage: sandbox_kernel.py --workdir DIR -- IPKERNEL ARGUMENTS...")
    workdir, rest = argv[1], argv[2:]
    if rest[:1] == ["--"]:
        rest = rest[1:]
    # belt and braces: only absolute entries (no '' or relative folder) on the path
    sys.path[:] = [p for p in sys.path if p and os.path.isabs(p)]
    guard = _load_guard()

    from ipykernel.kernelapp import IPKernelApp

    app = IPKernelApp.instance()
    app.initialize([*ISOLATED, *rest])
    os.chdir(workdir)
    history = app.shell.user_ns.get("_dh")
    if isinstance(history, list):
        history[:] = [workdir]
    guard.load_ipython_extension(app.shell)
    app.start()


if __name__ == "__main__":
    main(sys.argv[1:])
