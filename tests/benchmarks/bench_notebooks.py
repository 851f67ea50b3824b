"""Time every notebook master, executed the way tests/test_notebooks.py executes them.

Why: the notebook tests run every lesson and assignment top to bottom on every CI run, and
students run them on laptops. The budgets are "all masters together within 60 s wall on
2 cores, within 30 s of compute (CPU seconds of their kernels), no single cell over 10 s";
this script says where the time goes when that slips. CPU seconds are the figure to compare
on a shared machine: wall time also counts waiting for the other tenants' processes.

Two kinds of kernel, side by side in one run (``--kernels``):

* ``cold``: a fresh ``python -m ipykernel_launcher`` per notebook, as a student's laptop
  starts one; each pays for IPython, pandas, matplotlib and seaborn again;
* ``warm``: what the test suite uses (tests/warm_kernels.py): kernels forked from one server
  that did those imports once; its compute includes the server's imports.

    .venv/bin/python tests/benchmarks/bench_notebooks.py            # all masters, 2 workers
    .venv/bin/python tests/benchmarks/bench_notebooks.py --workers 1 # in sequence: CPU each
    .venv/bin/python tests/benchmarks/bench_notebooks.py --workers 1 --kernels warm 04_monitoring

Prints, per kind of kernel, the wall time and the kernels' CPU seconds of the whole run, then
per notebook its time (and, with ``--workers 1``, its kernel's CPU seconds), its slowest cell
and any error; exits 1 when a notebook fails or the budget of the kind the suite uses (warm)
is exceeded.
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(TESTS))

import test_notebooks  # noqa: E402
from test_notebooks import MASTERS, ROOT, execute_all  # noqa: E402

TOTAL_BUDGET = 60.0
CPU_BUDGET = 30.0
CELL_BUDGET = 10.0


def _children_cpu() -> float:
    """CPU seconds of this process's finished children: the kernels, once shut down and reaped.

    jupyter_client waits for every kernel it started, so a kernel's whole life (start-up,
    imports, cells, the emulator thread, shutdown) lands here when its notebook is done.
    """
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _self_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("names", nargs="*", help="assignment names (default: every master)")
    parser.add_argument("--workers", type=int, default=2, help="notebooks run at once")
    parser.add_argument(
        "--edition",
        default="en",
        help="ru: the Russian masters (grader.handout.editions), translated ones",
    )
    parser.add_argument("--kernels", choices=("both", "warm", "cold"), default="both")
    args = parser.parse_args(argv)

    paths = [p for p in MASTERS if not args.names or p.parent.name in args.names]
    unknown = set(args.names) - {p.parent.name for p in paths}
    if unknown:
        parser.error(f"no master for {sorted(unknown)} under solutions/")

    kinds = ["cold", "warm"] if args.kernels == "both" else [args.kernels]
    failed, over, compute = False, [], {}
    with tempfile.TemporaryDirectory() as tmp:
        if args.edition != "en":
            paths = _editions(paths, args.edition, Path(tmp) / "masters")
        for kind in kinds:
            bad, problems, compute[kind] = _run(paths, kind, args, Path(tmp) / kind)
            failed |= bad
            if kind == "warm" or kinds == ["cold"]:
                over += problems
    if len(compute) == 2:
        print(
            f"compute, cold vs warm kernels: {compute['cold']:.1f} vs {compute['warm']:.1f} "
            f"CPU s ({compute['cold'] / compute['warm']:.2f}x)"
        )
    if over:
        print("OVER BUDGET: " + "; ".join(over))
    print(f"(masters under {ROOT / 'solutions'})")
    return 1 if failed or over else 0


def _run(paths: list[Path], kind: str, args, work: Path) -> tuple[bool, list[str], float]:
    """Execute ``paths`` in ``kind`` kernels; print the table; (failed, over budget, CPU s)."""
    os.environ["TUNELAB_TEST_KERNELS"] = kind
    cpu: dict[Path, float] = {}
    started, kernels_before, self_before = time.perf_counter(), _children_cpu(), _self_cpu()
    server = test_notebooks.warm_kernels()  # started here, so its imports are counted
    if args.workers == 1:  # in sequence: each kernel's CPU is the delta around its run
        runs = {}
        for path in paths:
            before = _children_cpu() + (server.kernels_cpu() if server else 0.0)
            runs.update(execute_all([path], work, workers=1))
            if server is not None:
                _settle(server, len(runs))
            cpu[path] = _children_cpu() + (server.kernels_cpu() if server else 0.0) - before
    else:
        runs = execute_all(paths, work, workers=args.workers)
    if server is not None:
        server.close()  # reaped: the server's imports and every kernel it forked land below
        test_notebooks._warm.clear()
    total = time.perf_counter() - started
    kernels_cpu = _children_cpu() - kernels_before
    driver_cpu = _self_cpu() - self_before

    print(f"\n{kind} kernels: {len(paths)} notebooks, {args.workers} workers: {total:.1f} s wall")
    imports = f"; the server's imports {server.import_cpu:.1f}" if server else ""
    print(
        f"compute: {kernels_cpu:.1f} CPU s in the kernels{imports} "
        f"(+ {driver_cpu:.1f} CPU s in this process driving them)"
    )
    if server is not None and server.cold:
        print(f"  {len(server.cold)} kernels started cold: {server.cold[0]}")
    print(f"{'notebook':<22} {'time':>7}  {'CPU':>6}  {'cells':>5}  slowest cell")
    failed = False
    slowest_overall = (0.0, "")
    for path, run in sorted(runs.items(), key=lambda kv: -kv[1].seconds):
        cells = run.cell_seconds
        index = max(range(len(cells)), key=cells.__getitem__) if cells else -1
        worst = cells[index] if cells else 0.0
        if worst > slowest_overall[0]:
            slowest_overall = (worst, f"{path.parent.name} cell {index}")
        status = "" if run.error is None else "  FAILED"
        used = f"{cpu[path]:5.1f}s" if path in cpu else f"{'-':>6}"
        print(
            f"{path.parent.name:<22} {run.seconds:6.1f}s  {used}  {len(cells):>5}  "
            f"cell {index}: {worst:.2f} s{status}"
        )
        if run.error is not None:
            failed = True
            print("    " + run.error.strip().splitlines()[-1][:300])
    print(f"slowest cell overall: {slowest_overall[1]} ({slowest_overall[0]:.2f} s)")
    over = []
    if total > TOTAL_BUDGET and not args.names:
        over.append(f"{kind}: total {total:.1f} s > {TOTAL_BUDGET:.0f} s")
    if kernels_cpu > CPU_BUDGET and not args.names:
        over.append(f"{kind}: compute {kernels_cpu:.1f} CPU s > {CPU_BUDGET:.0f} s")
    if slowest_overall[0] > CELL_BUDGET:
        over.append(f"{kind}: a cell took {slowest_overall[0]:.1f} s > {CELL_BUDGET:.0f} s")
    return failed, over, kernels_cpu


def _settle(server, kernels: int, timeout: float = 10.0) -> None:
    """Wait until the server has reported ``kernels`` ended kernels (reaped after shutdown)."""
    deadline = time.monotonic() + timeout
    while len(server.kernel_cpu) + len(server.cold) < kernels and time.monotonic() < deadline:
        time.sleep(0.05)


def _editions(paths: list[Path], lang: str, folder: Path) -> list[Path]:
    """The ``lang`` masters of the translated notebooks among ``paths``, written to ``folder``."""
    import nbformat

    sys.path.insert(0, str(ROOT))
    from grader.handout import editions

    done = set(editions.translated(ROOT, lang))
    out = []
    for path in paths:
        name = path.parent.name
        if name not in done:
            continue
        nb, _ = editions.build_edition(
            nbformat.read(path, as_version=4), editions.load_catalogue(name, ROOT, lang), lang
        )
        target = folder / name / path.name
        target.parent.mkdir(parents=True)
        nbformat.write(nb, target)
        out.append(target)
    return out


if __name__ == "__main__":
    sys.exit(main())
