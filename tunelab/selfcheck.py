"""The student's environment check: ``python -m tunelab.selfcheck`` (and ``bootstrap check``).

Why: a student's copy of the course has no test suite, yet "is my set-up right?" must have a
one-command answer before lesson 1, and a printout an instructor can read when it is not.
It checks what the lessons rely on, end to end and offline: the packages and their pins, the
course data, and the tuning emulator (list the models, tune a tiny model, poll it until it is
ACTIVE, ask it a question). One ``[ OK ]``/``[WARN]``/``[FAIL]`` line per check; the exit
code is the number of failures (capped at 1).
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.metadata as metadata
import re
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import tunelab

# distribution name: module to import (lesson 1's list, plus what JupyterLab and Validate need)
REQUIRED = {
    "google-generativeai": "google.generativeai",
    "google-genai": "google.genai",
    "numpy": "numpy",
    "pandas": "pandas",
    "matplotlib": "matplotlib",
    "seaborn": "seaborn",
    "ipywidgets": "ipywidgets",
    "httpx": "httpx",
    "jupyterlab": "jupyterlab",
    "nbgrader": "nbgrader",
    "fine-tuning-lab": "tunelab",
}
DATA_FILES = ("tuned_data_v1.jsonl", "nl_sql/train.jsonl", "nl_sql/shop.sqlite")
TUNING_MODEL = "models/gemini-1.5-flash-001-tuning"
PIN = re.compile(r"^([A-Za-z0-9_.\-]+)==(\S+)$")


class Report:
    """Collects and prints one line per check."""

    def __init__(self) -> None:
        self.failures = 0

    def line(self, status: str, what: str, detail: str = "") -> None:
        if status == "FAIL":
            self.failures += 1
        tag = {"OK": "[ OK ]", "WARN": "[WARN]", "FAIL": "[FAIL]"}[status]
        print(f"{tag} {what:<22} {detail}".rstrip(), flush=True)

    def run(self, what: str, check: Callable[[], str]) -> None:
        """Run one check; an exception is a failure, reported with its type and message."""
        try:
            self.line("OK", what, check())
        except Exception as err:  # report every problem, not just the first
            self.line("FAIL", what, f"{type(err).__name__}: {err}")


def _pins(root: Path) -> dict[str, str]:
    path = root / "requirements.txt"
    if not path.is_file():
        return {}
    pins = {}
    for raw in path.read_text(encoding="utf-8").splitlines():
        match = PIN.match(raw.split("#", 1)[0].strip())
        if match:
            pins[match.group(1).lower()] = match.group(2)
    return pins


def check_packages(report: Report) -> None:
    """Import every package the course needs and print its version."""
    for dist, module in REQUIRED.items():
        try:
            importlib.import_module(module)
            version = metadata.version(dist)
        except Exception as err:
            report.line("FAIL", dist, f"{type(err).__name__}: {err}")
            continue
        report.line("OK", dist, version)
    report.line("OK", "tunelab imported from", str(Path(tunelab.__file__).resolve().parent))


def check_pins(report: Report) -> None:
    """Installed versions equal requirements.txt (a mismatch is a warning: it may still work)."""
    pins = _pins(tunelab.ROOT)
    if not pins:
        report.line("WARN", "pinned versions", f"no requirements.txt in {tunelab.ROOT}")
        return
    wrong = []
    for name, pinned in sorted(pins.items()):
        try:
            got = metadata.version(name)
        except metadata.PackageNotFoundError:
            got = "missing"
        if got != pinned:
            wrong.append(f"{name} {got} (pinned {pinned})")
    if wrong:
        report.line("WARN", "pinned versions", "; ".join(wrong))
    else:
        report.line("OK", "pinned versions", f"{len(pins)} packages as in requirements.txt")


def check_data() -> str:
    for name in DATA_FILES:
        tunelab.data_path(name)  # raises FileNotFoundError naming the folder
    return f"{len(DATA_FILES)} files in {tunelab.data_path()}"


def check_emulator(report: Report) -> None:
    """Start the emulator, tune a tiny model, poll it until ACTIVE, ask it one question."""
    import google.generativeai as genai

    report.run("emulator", lambda: tunelab.connect(time_scale=1000))
    if report.failures:
        return

    def models() -> str:
        names = [m.name for m in genai.list_models()]
        if TUNING_MODEL not in names:
            raise RuntimeError(f"{TUNING_MODEL} not offered; got {names}")
        return f"{len(names)} models, {TUNING_MODEL} among them"

    report.run("list_models", models)
    examples = [
        {"text_input": f"How do I restart router model R{n}?", "output": f"Hold reset on R{n}."}
        for n in range(20)  # the service's minimum
    ]
    name = None
    try:
        operation = genai.create_tuned_model(
            source_model=TUNING_MODEL,
            training_data=examples,
            display_name="environment self-check",
            epoch_count=1,
            batch_size=4,
            learning_rate=0.001,
        )
        name = operation.metadata.tuned_model
        steps = operation.metadata.total_steps
        report.line("OK", "create_tuned_model", f"{name}, {steps} steps")
        deadline = time.monotonic() + 60
        while (model := genai.get_tuned_model(name)).state.name == "CREATING":
            if time.monotonic() > deadline:
                raise TimeoutError(f"{name} still CREATING after 60 s")
            time.sleep(0.05)
        if model.state.name != "ACTIVE":
            raise RuntimeError(f"{name} ended {model.state.name}")
        snapshots = len(model.tuning_task.snapshots)
        report.line("OK", "tuning job", f"ACTIVE after {snapshots} snapshots")
        reply = genai.GenerativeModel(name).generate_content(examples[0]["text_input"])
        report.line("OK", "generate_content", f"{len(reply.text)} characters from {name}")
    except Exception as err:
        report.line("FAIL", "tuning job", f"{type(err).__name__}: {err}")
    finally:
        if name is not None:
            with contextlib.suppress(Exception):  # leave no trace on a shared emulator
                genai.delete_tuned_model(name)


def main() -> int:
    warnings.filterwarnings("ignore", category=FutureWarning)  # the retired SDK says so itself
    report = Report()
    version = ".".join(map(str, sys.version_info[:3]))
    report.line("OK", "python", f"{version} ({sys.executable})")
    check_packages(report)
    check_pins(report)
    report.run("course data", check_data)
    if report.failures == 0:
        check_emulator(report)
    if report.failures:
        print(f"\n{report.failures} problem(s). Run `python3 -m tunelab.bootstrap check` again;")
        print("if it still fails, send this output to your instructor.")
        return 1
    print("\nAll set: open the course with `python3 -m tunelab.bootstrap lab`.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
