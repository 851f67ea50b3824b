"""Set up and run the course with nothing but a stock Python 3.11 (standard library only).

Why: a student on a fresh Debian machine (with the student bundle an instructor hands out),
and CI on a clean clone, must get to a running course or a green test suite with one command
each:

    python3 -m tunelab.bootstrap lab     # install if needed, start the emulator, open JupyterLab
    python3 -m tunelab.bootstrap check   # install if needed, run the environment self-check
    python3 -m tunelab.bootstrap test    # install if needed, lint, run every test (repository)

The virtual environment lives in ``.venv`` beside this checkout and is reinstalled
only when ``requirements.txt`` or ``pyproject.toml`` change. The student bundle has no
``tests/`` and its ``pyproject.toml`` no ``dev`` extra: the project is installed with the
extra only where it is declared.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import signal
import subprocess
import sys
import time
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
VENV = ROOT / ".venv"
VENV_PY = VENV / "bin" / "python"
STAMP = VENV / ".fine-tuning-lab-installed"
SYSTEM_PACKAGES = {"bwrap": "bubblewrap", "chromium": "chromium", "pg_ctlcluster": "postgresql"}


def say(msg: str) -> None:
    print(f"[fine-tuning-lab] {msg}", flush=True)


def run(cmd: list[str], **kw) -> None:
    """Run a command, stopping with its exit code (and the command shown) when it fails."""
    result = subprocess.run(cmd, **kw)
    if result.returncode != 0:
        say(f"command failed ({result.returncode}): {' '.join(map(str, cmd))}")
        raise SystemExit(result.returncode)


def _install_fingerprint() -> str:
    digest = hashlib.sha256()
    for name in ("requirements.txt", "pyproject.toml"):
        digest.update((ROOT / name).read_bytes())
    digest.update(sys.version.encode())
    return digest.hexdigest()


def install_target(root: Path = ROOT) -> str:
    """What pip installs editable: ``ROOT[dev]`` in the repository, plain ``ROOT`` in the
    student bundle, whose pyproject declares no ``dev`` extra (pip would warn and go on)."""
    project = tomllib.loads((root / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    return f"{root}[dev]" if "dev" in project.get("optional-dependencies", {}) else str(root)


def ensure_venv() -> Path:
    """Create ``.venv`` and install the pinned packages plus this project, once per change."""
    if not VENV_PY.exists():
        say(f"creating a virtual environment in {VENV}")
        result = subprocess.run([sys.executable, "-m", "venv", str(VENV)])
        if result.returncode != 0 or not VENV_PY.exists():
            say(
                "could not create a virtual environment. On Debian/Ubuntu install it with "
                "'sudo apt-get install python3-venv' and run this command again."
            )
            raise SystemExit(2)
    fingerprint = _install_fingerprint()
    if STAMP.exists() and STAMP.read_text() == fingerprint:
        return VENV_PY
    say("installing the pinned packages (first run only; a few minutes)")
    pip = [str(VENV_PY), "-m", "pip", "--disable-pip-version-check", "-q"]
    run([*pip, "install", "--upgrade", "pip"])
    run([*pip, "install", "-r", str(ROOT / "requirements.txt"), "-e", install_target()])
    STAMP.write_text(fingerprint)
    return VENV_PY


def ensure_system_packages() -> None:
    """Install bubblewrap (grading sandbox) and chromium (browser test) from Debian if missing."""
    missing = [pkg for tool, pkg in SYSTEM_PACKAGES.items() if shutil.which(tool) is None]
    if not missing:
        return
    if os.geteuid() == 0 and shutil.which("apt-get"):
        say(f"installing Debian packages: {' '.join(missing)}")
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        run(["apt-get", "update", "-qq"], env=env)
        run(["apt-get", "install", "-y", "-qq", *missing], env=env)
        return
    say(
        f"the tests need the Debian packages {' '.join(missing)}; install them with "
        f"'sudo apt-get install -y {' '.join(missing)}' and run this command again."
    )
    raise SystemExit(2)


def start_emulator(py: Path, port: int) -> tuple[subprocess.Popen, str]:
    """Start the shared emulator (state kept in .tunelab/) and wait until it listens."""
    state = ROOT / ".tunelab" / "state.sqlite"
    state.parent.mkdir(exist_ok=True)
    cmd = [str(py), "-m", "tunelab.emulator", "--host", "127.0.0.1", "--port", str(port)]
    proc = subprocess.Popen(
        [*cmd, "--state", str(state)], stdout=subprocess.PIPE, text=True, cwd=ROOT
    )
    deadline = time.monotonic() + 60
    assert proc.stdout is not None
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line and proc.poll() is not None:
            say(f"the emulator stopped before it was ready (exit {proc.returncode})")
            raise SystemExit(1)
        if line.startswith("listening on "):
            return proc, line.split("listening on ", 1)[1].strip()
    proc.kill()
    say("the emulator did not start within 60 s")
    raise SystemExit(1)


def cmd_lab(args: argparse.Namespace) -> int:
    py = ensure_venv()
    emulator, endpoint = start_emulator(py, args.emulator_port)
    say(f"tuning emulator ready at {endpoint} (TUNELAB_ENDPOINT)")
    env = {**os.environ, "TUNELAB_ENDPOINT": endpoint}
    lab = [
        str(VENV / "bin" / "jupyter"),
        "lab",
        f"--notebook-dir={ROOT / 'notebooks'}",
        f"--ServerApp.port={args.port}",
        "--ServerApp.ip=127.0.0.1",
    ]
    if os.geteuid() == 0:
        lab.append("--allow-root")  # containers and CI run as root; Jupyter refuses otherwise
    if args.headless:
        lab += ["--no-browser", f"--IdentityProvider.token={args.token}"]
    else:
        lab.append("--LabApp.default_url=/lab/tree/01_welcome/01_welcome.ipynb")
    try:
        return subprocess.run(lab, env=env, cwd=ROOT).returncode
    except KeyboardInterrupt:
        return 0
    finally:
        emulator.send_signal(signal.SIGINT)
        try:
            emulator.wait(timeout=10)
        except subprocess.TimeoutExpired:
            emulator.kill()


def cmd_check(args: argparse.Namespace) -> int:
    """The student's "is my set-up right?": install if needed, then tunelab.selfcheck."""
    py = ensure_venv()
    say("environment self-check")
    return subprocess.run([str(py), "-m", "tunelab.selfcheck"], cwd=ROOT).returncode


def cmd_test(args: argparse.Namespace) -> int:
    if not (ROOT / "tests").is_dir():
        say("this copy of the course has no test suite; run 'python3 -m tunelab.bootstrap check'")
        return 2
    py = ensure_venv()
    ensure_system_packages()
    bin_dir = VENV / "bin"
    say("ruff: lint and format check")
    run([str(bin_dir / "ruff"), "check", "."], cwd=ROOT)
    run([str(bin_dir / "ruff"), "format", "--check", "."], cwd=ROOT)
    say("pytest")
    result = subprocess.run([str(py), "-m", "pytest", *args.pytest_args], cwd=ROOT)
    return result.returncode


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python3 -m tunelab.bootstrap", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    lab = sub.add_parser("lab", help="install if needed, start the emulator, open JupyterLab")
    lab.add_argument("--port", type=int, default=8888, help="JupyterLab port")
    lab.add_argument("--emulator-port", type=int, default=8765, help="tuning emulator port")
    lab.add_argument("--headless", action="store_true", help="no browser; for servers and tests")
    lab.add_argument("--token", default="", help="JupyterLab token with --headless ('' = none)")
    lab.set_defaults(func=cmd_lab)
    check = sub.add_parser("check", help="install if needed, run the environment self-check")
    check.set_defaults(func=cmd_check)
    test = sub.add_parser("test", help="install if needed, lint, and run the whole test suite")
    test.add_argument("pytest_args", nargs=argparse.REMAINDER, help="extra pytest arguments")
    test.set_defaults(func=cmd_test)
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
