"""The oracle-leak sweep (run in a subprocess by tests/test_sql_checker_hidden.py).

Calls every function and method of the shipped ``tunelab`` package whose signature fits as
the answer to a graded part of sql_overfitting, on that part's hidden inputs, through the
trusted checker; prints JSON: how many candidates each part tried and which passed (none may).

In a subprocess because a candidate may do anything to its process (switch the language,
start an emulator, plot); its working folder is a temporary one and the SQL database it sees
is a copy. Not called: tunelab.bootstrap and tunelab.selfcheck (they install packages and run
the test suite, so no answer can come from them) and ``__main__`` modules.
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import inspect
import io
import json
import pkgutil
import shutil
import signal
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SKIP_MODULES = ("tunelab.bootstrap", "tunelab.selfcheck")
LIMIT = 0.5  # seconds per call: an honest answer takes milliseconds on one curve
#: answer name, positional arguments a candidate must accept (the probe's call)
SHAPES = {
    "p1-check": ("epoch_mean_loss", 1, ()),
    "p2-check": ("plateau_epoch", 1, ("tol",)),
    "p3-check": ("best_epoch", 1, ()),
    "p5-check": ("classify_curve", 2, ()),
    "p7-check": ("execution_accuracy", 3, ()),
}


def candidates() -> list[tuple[str, object]]:
    import tunelab

    found: dict[int, tuple[str, object]] = {}
    names = [tunelab.__name__] + [
        m.name for m in pkgutil.walk_packages(tunelab.__path__, prefix="tunelab.")
    ]
    for name in names:
        if name.startswith(SKIP_MODULES) or name.endswith("__main__"):
            continue
        try:
            module = importlib.import_module(name)
        except Exception:  # noqa: BLE001 (an optional dependency)
            continue
        for attr, obj in vars(module).items():
            where = f"{name}.{attr}"
            if inspect.isfunction(obj) and obj.__module__ == name:
                found[id(obj)] = (where, obj)
            elif inspect.isclass(obj) and obj.__module__ == name:
                for meth_name, meth in vars(obj).items():
                    target = meth
                    if isinstance(meth, staticmethod | classmethod):
                        target = meth.__func__
                        if isinstance(meth, classmethod):
                            target = getattr(obj, meth_name)
                    elif isinstance(meth, property):
                        target = meth.fget
                    elif isinstance(meth, functools.cached_property):
                        target = meth.func
                    if callable(target) and (
                        inspect.isfunction(target) or inspect.ismethod(target)
                    ):
                        found[id(target)] = (f"{where}.{meth_name}", target)
    return sorted(found.values(), key=lambda x: x[0])


def fits(fn: object, positional: int, keywords: tuple[str, ...]) -> bool:
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):
        return False
    try:
        sig.bind(*range(positional), **{k: 0 for k in keywords})
    except TypeError:
        return False
    return True


class _Slow(Exception):
    pass


def _valid(grade_id: str, args: tuple, result: object) -> bool:
    """A NECESSARY condition for each answer of a passing candidate (so stopping at the first
    answer that breaks it cannot hide a pass): the type every hidden case of the part needs."""
    import pandas as pd

    from tunelab.checks.sql_overfitting import LABELS

    if grade_id == "p1-check":
        return isinstance(result, pd.Series)
    if grade_id == "p2-check":
        return result is None or isinstance(result, int)
    if grade_id == "p3-check":
        return isinstance(result, int)
    if grade_id == "p5-check":
        return isinstance(result, str) and result in LABELS
    return isinstance(result, float)  # p7


def _empty(grade_id: str, args: tuple) -> bool:
    """The empty cases, where raising (ValueError) is the right answer for Parts 5 and 7."""
    try:
        return (
            grade_id in ("p5-check", "p7-check")
            and len(args[-2 if grade_id == "p5-check" else 1]) == 0
        )
    except Exception:  # noqa: BLE001
        return False


def guarded(fn, grade_id: str):
    """The candidate with a LIMIT per call and its printing swallowed; after its first
    answer that no passing answer could be, it is not called again (it has failed)."""
    state = {"failed": False}

    def call(*args, **kwargs):
        if state["failed"]:
            raise ValueError("already failed")

        def stop(*_):
            raise _Slow(f"took over {LIMIT} s")

        old = signal.signal(signal.SIGALRM, stop)
        signal.setitimer(signal.ITIMER_REAL, LIMIT)
        try:
            with (
                contextlib.redirect_stdout(io.StringIO()),
                contextlib.redirect_stderr(io.StringIO()),
            ):
                result = fn(*args, **kwargs)
        except BaseException as exc:  # noqa: BLE001 (SystemExit too: an answer that failed)
            if not _empty(grade_id, args):
                state["failed"] = True
            raise ValueError(f"{type(exc).__name__}") from None
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, old)
        if not _valid(grade_id, args, result):
            state["failed"] = True
        return result

    return call


def main() -> None:
    import matplotlib

    matplotlib.use("Agg")
    import tunelab
    from grader.verdicts.trusted import Context, load_checker
    from tunelab.checks import sql_overfitting as C

    work = Path(tempfile.mkdtemp(prefix="oracle-sweep-"))
    shutil.copytree(ROOT / "data", work / "data")
    tunelab.data_path = lambda rel: work / "data" / rel  # a candidate may write to what it gets
    import os

    os.chdir(work)
    checker = load_checker(ROOT, "sql_overfitting")
    curves = sys.modules["_grader_sql_overfitting_curves"]
    curves.hidden_run = functools.lru_cache(maxsize=None)(curves.hidden_run)  # same seed: reuse
    report: dict[str, dict] = {}
    everything = candidates()
    for grade_id, (answer, positional, keywords) in SHAPES.items():
        tried, passed = 0, []
        for where, fn in everything:
            if not fits(fn, positional, keywords):
                continue
            tried += 1
            ns = {answer: guarded(fn, grade_id)}
            ctx = Context(
                grade_id,
                1234,
                lambda module, part, payload, ns=ns: C.roundtrip(part, ns, payload),
                "sql_overfitting",
                ROOT,
            )
            try:
                verdict = checker.judge(grade_id, ctx)
            except Exception:  # noqa: BLE001 (the checker could not judge it: not a pass)
                continue
            if verdict.passed:
                passed.append(where)
        report[grade_id] = {"tried": tried, "passed": passed}
    report["candidates"] = len(everything)
    sys.stdout.write("\nSWEEP " + json.dumps(report) + "\n")


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    main()
