"""Set up and run the course with nothing but a stock Python 3.11 (standard library only).

Why: a student on a fresh machine, with the course folder an instructor handed out, must get
to a running course with one command, and "is my set-up right?" needs one command too:

    python3 -m tunelab.bootstrap lab            # install if needed, emulator, JupyterLab
    python3 -m tunelab.bootstrap lab --lang ru  # the same, in Russian (notebooks/ru/)
    python3 -m tunelab.bootstrap check          # install if needed, environment self-check

The virtual environment lives in ``.venv`` beside this folder and is reinstalled only when a
requirements file or ``pyproject.toml`` changes. A student's copy installs the student
packages (``requirements.txt``) and nothing else. The instructors' copy of the course also has
``requirements-instructor.txt`` and ``requirements-dev.txt``, and this module then offers the
instructors' commands as well (``test``, ``hub``, ``lab --instructor``); a student's ``--help``
does not list them, because a student's copy cannot run them.

``lab`` serves JupyterLab on 127.0.0.1 with a token (a fresh random one unless ``--token``
names one) and prints the full URL with the token. Students see student tools: nbgrader's
Validate button, and outside a JupyterHub no Assignment List (with no exchange folder it could
only show errors); JupyterLab's news pop-up is off.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import secrets
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
#: The student runtime (the student's copy has only this file), then what instructors add on
#: top: each is also an extra of ``pyproject.toml`` (``instructor``, ``dev``).
STUDENT_REQUIREMENTS = "requirements.txt"
EXTRA_REQUIREMENTS = {"instructor": "requirements-instructor.txt", "dev": "requirements-dev.txt"}
SYSTEM_PACKAGES = {"bwrap": "bubblewrap", "chromium": "chromium", "pg_ctlcluster": "postgresql"}
#: JupyterHub's proxy, installed with npm into a project-local folder (``.hub/node_modules``).
PROXY_PACKAGE = "configurable-http-proxy@5.3.0"
PROXY_PREFIX = ROOT / ".hub"
PROXY_BIN = PROXY_PREFIX / "node_modules" / ".bin" / "configurable-http-proxy"
HUB_CONFIG = ROOT / "hub" / "jupyterhub_config.py"
HUB_DEFAULT_PASSWORD = "tunelab"
HUB_INSTRUCTORS = ("instructor",)
HUB_STUDENTS = ("student1", "student2", "student3")
COURSE_ID = "fine-tuning-lab"
#: The class hub's environment, as The Littlest JupyterHub's ``/opt/tljh/user``: a venv that
#: every OS user can run, made from the system's Python (a pyenv Python under ``/root`` is
#: out of students' reach), with the course's code beside it. Root owns it; it holds no
#: answers (the masters and checkers stay in the instructors' course copy).
CLASS_PREFIX = Path("/opt/fine-tuning-lab")
CLASS_REQUIREMENTS = (STUDENT_REQUIREMENTS, EXTRA_REQUIREMENTS["instructor"])
#: What ``PREFIX/src`` holds: the packages the servers, kernels and grader import, the data the
#: lessons read (``tunelab.data_path``), the hub's config and the pins (``tunelab.selfcheck``).
CLASS_CODE = (
    "tunelab",
    "grader",
    "hub",
    "data",
    "requirements.txt",
    "requirements-instructor.txt",
    "pyproject.toml",
)
CLASS_CODE_IGNORE = ("__pycache__", "*.pyc", ".ipynb_checkpoints", "node_modules", "*.egg-info")
#: Python 3.11+ interpreters other users can run, in the order tried (``--python`` overrides).
CLASS_PYTHONS = (
    "/usr/bin/python3.11",
    "/usr/local/bin/python3.11",
    "/usr/bin/python3",
    "/usr/local/bin/python3",
)

#: nbgrader 0.9.6's pieces (``share/jupyter/labextensions/@jupyter/nbgrader`` plugins and
#: ``nbgrader.server_extensions``): what a student gets, and what only an instructor gets.
NBGRADER_STUDENT_PLUGINS = (
    "@jupyter/nbgrader:menu",
    "@jupyter/nbgrader:assignment-list",
    "@jupyter/nbgrader:validate-assignment",
)
NBGRADER_INSTRUCTOR_PLUGINS = (
    "@jupyter/nbgrader:formgrader",
    "@jupyter/nbgrader:create-assignment",
    "@jupyter/nbgrader:course-list",
)
NBGRADER_STUDENT_SERVER = (
    "nbgrader.server_extensions.assignment_list",
    "nbgrader.server_extensions.validate_assignment",
)
NBGRADER_INSTRUCTOR_SERVER = (
    "nbgrader.server_extensions.formgrader",
    "nbgrader.server_extensions.course_list",
)
#: What needs an nbgrader exchange (a hub): without one, the Assignment List can only show
#: "Error fetching courses!" and "The exchange directory does not exist", so ``lab`` hides it
#: (and the Nbgrader menu, which would be empty). Validate needs no exchange and stays.
NBGRADER_EXCHANGE_PLUGINS = ("@jupyter/nbgrader:menu", "@jupyter/nbgrader:assignment-list")
NBGRADER_EXCHANGE_SERVER = ("nbgrader.server_extensions.assignment_list",)
#: JupyterLab's "Would you like to get notified about official Jupyter news?" pop-up: the
#: course is offline, and the question only distracts a student opening lesson 1.
LAB_NEWS_PLUGIN = "@jupyterlab/apputils-extension:announcements"
#: Keeps a notebook's kernel metadata on save, so opening a lesson does not rewrite it. Set
#: from Python so that a server whose tunelab lacks the hook still starts (and saves as usual).
SAVE_HOOK = "tunelab.jupyter_hooks.keep_released_metadata"
SAVE_HOOK_CONFIG = f"""\
# Written by tunelab.bootstrap: a lesson opened and not edited is saved as released.
import os.path
import sys

c = get_config()  # noqa: F821
try:
    import tunelab
    from {SAVE_HOOK.rsplit(".", 1)[0]} import {SAVE_HOOK.rsplit(".", 1)[1]} as hook
except ImportError:  # an older tunelab: notebooks are saved as JupyterLab sends them
    pass
else:  # only this tunelab's own hook, never one an import finder found in another checkout
    home = {{os.path.realpath(p) for p in tunelab.__path__}}
    if os.path.dirname(os.path.realpath(sys.modules[hook.__module__].__file__)) in home:
        c.ContentsManager.pre_save_hook = hook
"""


def say(msg: str) -> None:
    print(f"[fine-tuning-lab] {msg}", flush=True)


def run(cmd: list[str], **kw) -> None:
    """Run a command, stopping with its exit code (and the command shown) when it fails."""
    result = subprocess.run(cmd, **kw)
    if result.returncode != 0:
        say(f"command failed ({result.returncode}): {' '.join(map(str, cmd))}")
        raise SystemExit(result.returncode)


def requirement_files(root: Path = ROOT) -> list[Path]:
    """The requirements files to install: the student set, plus the instructors' where present."""
    names = [STUDENT_REQUIREMENTS, *EXTRA_REQUIREMENTS.values()]
    return [root / name for name in names if (root / name).is_file()]


def _install_fingerprint() -> str:
    digest = hashlib.sha256()
    for path in [*requirement_files(), ROOT / "pyproject.toml"]:
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    digest.update(sys.version.encode())
    return digest.hexdigest()


def declared_extras(root: Path = ROOT) -> list[str]:
    """The extras ``pyproject.toml`` declares (statically or read from a file by setuptools)."""
    config = tomllib.loads((root / "pyproject.toml").read_text(encoding="utf-8"))
    static = config["project"].get("optional-dependencies", {})
    dynamic = config.get("tool", {}).get("setuptools", {}).get("dynamic", {})
    return sorted({*static, *dynamic.get("optional-dependencies", {})})


def install_target(root: Path = ROOT) -> str:
    """What pip installs editable: ``ROOT[dev,instructor]`` in the repository, plain ``ROOT`` in
    the student's copy, whose pyproject declares no extras (pip would warn and go on)."""
    extras = [name for name in declared_extras(root) if name in EXTRA_REQUIREMENTS]
    return f"{root}[{','.join(extras)}]" if extras else str(root)


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
    files = [arg for path in requirement_files() for arg in ("-r", str(path))]
    run([*pip, "install", *files, "-e", install_target()])
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


def ensure_proxy(required: bool = True) -> Path | None:
    """Install JupyterHub's configurable-http-proxy with npm into ``.hub/node_modules`` once.

    ``required=False`` (the test command): a machine without npm only loses the hub test,
    which then skips with the reason."""
    if PROXY_BIN.exists():
        return PROXY_BIN
    npm = shutil.which("npm")
    if npm is None or shutil.which("node") is None:
        msg = "JupyterHub needs node and npm for its proxy (sudo apt-get install -y nodejs npm)"
        if required:
            say(msg)
            raise SystemExit(2)
        say(msg + "; the hub test will be skipped")
        return None
    say(f"installing {PROXY_PACKAGE} with npm into {PROXY_PREFIX / 'node_modules'}")
    PROXY_PREFIX.mkdir(exist_ok=True)
    cmd = [npm, "install", "--prefix", str(PROXY_PREFIX), "--no-audit", "--no-fund", "--silent"]
    result = subprocess.run([*cmd, PROXY_PACKAGE])
    if result.returncode != 0 or not PROXY_BIN.exists():
        say(f"npm could not install {PROXY_PACKAGE} (exit {result.returncode})")
        if required:
            raise SystemExit(result.returncode or 1)
        return None
    return PROXY_BIN


def closed_folders(path: Path) -> list[Path]:
    """The folders on the way to ``path`` that other users cannot enter: both the way as
    written (a link inside ``/root`` is out of reach wherever it points) and the way to what
    it resolves to."""
    given = Path(os.path.abspath(path))
    way = [*reversed(given.parents), *reversed(given.resolve().parents)]
    if given.resolve().is_dir():
        way.append(given.resolve())
    closed = [p for p in dict.fromkeys(way) if p.exists() and not p.stat().st_mode & 0o001]
    return closed


def class_env_key(root: Path = ROOT) -> str:
    """A short hash of the class venv's requirements: equal keys, the same venv (tests cache it)."""
    digest = hashlib.sha256()
    for name in CLASS_REQUIREMENTS:
        digest.update(name.encode() + b"\0" + (root / name).read_bytes())
    return digest.hexdigest()[:12]


def test_class_prefix(root: Path = ROOT) -> Path:
    """Where the hub tests keep their class environment: under /tmp, one per requirements key,
    so it is installed once and reused by every later run (and every checkout) until the
    requirements change."""
    return Path("/tmp") / f"fine-tuning-lab-class-{class_env_key(root)}"


test_class_prefix.__test__ = False  # a helper, not a pytest test


def system_python(candidates: tuple[str, ...] = CLASS_PYTHONS) -> Path:
    """The first Python 3.11+ with ``venv`` that every OS user can run (the class venv's base)."""
    tried = []
    for name in candidates:
        path = Path(name)
        if not path.exists():
            continue
        closed = closed_folders(path)
        if closed or not path.resolve().stat().st_mode & 1:
            tried.append(f"{path} (others cannot enter {', '.join(map(str, closed)) or path})")
            continue
        probe = "import sys, venv, ensurepip; sys.exit(sys.version_info < (3, 11))"
        if subprocess.run([str(path), "-c", probe], capture_output=True).returncode != 0:
            tried.append(f"{path} (older than 3.11, or no venv/ensurepip)")
            continue
        return path
    raise SystemExit(
        "the class hub needs a Python 3.11+ with venv that every user can run, outside /root "
        f"(tried: {'; '.join(tried) or ', '.join(candidates)}); on Debian: "
        "sudo apt-get install -y python3.11 python3.11-venv, or name one with --python"
    )


def _open_to_all(path: Path) -> None:
    """Readable by every user, writable by the owner only (root's umask may be 077)."""
    for dirpath, _dirnames, filenames in os.walk(path):
        os.chmod(dirpath, 0o755)
        for name in filenames:
            file = os.path.join(dirpath, name)
            if not os.path.islink(file):
                mode = os.stat(file).st_mode
                os.chmod(file, 0o755 if mode & 0o100 else 0o644)


def _class_fingerprint(python: Path, root: Path) -> str:
    version = subprocess.run(
        [str(python), "-c", "import sys; print(sys.version)"], capture_output=True, text=True
    ).stdout
    return f"{class_env_key(root)} {python} {version.strip()}"


def ensure_class_env(prefix: Path, python: Path | None = None, root: Path = ROOT) -> Path:
    """The class hub's environment at ``prefix``; returns its venv's python.

    ``PREFIX/venv``: made from the system's Python (:func:`system_python`) with the student and
    instructor pins (not the test tools), reinstalled only when they change (a stamp holds
    :func:`class_env_key`). ``PREFIX/src``: a fresh copy of the course's code
    (:data:`CLASS_CODE`, never the masters or checkers) on the venv's path through a ``.pth`` file.
    Everything is root's and readable by all, as TLJH's ``/opt/tljh/user`` is."""
    import fcntl

    prefix = Path(prefix).resolve()
    prefix.mkdir(parents=True, exist_ok=True)
    prefix.chmod(0o755)  # root's umask may be 077
    closed = closed_folders(prefix)
    if closed:
        raise SystemExit(
            f"the class environment {prefix} must be reachable by every user, but others "
            f"cannot enter {', '.join(map(str, closed))}: choose another --prefix "
            f"(default {CLASS_PREFIX})"
        )
    venv, src = prefix / "venv", prefix / "src"
    stamp = venv / ".fine-tuning-lab-class"
    old_umask = os.umask(0o022)
    try:
        with (prefix / ".lock").open("w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # one installer at a time
            python = python or system_python()
            fingerprint = _class_fingerprint(python, root)
            if not (stamp.exists() and stamp.read_text() == fingerprint):
                say(f"installing the class environment in {venv} from {python} (a few minutes)")
                shutil.rmtree(venv, ignore_errors=True)
                run([str(python), "-m", "venv", str(venv)])
                pip = [str(venv / "bin" / "python"), "-m", "pip", "--disable-pip-version-check"]
                run([*pip, "-q", "install", "--upgrade", "pip"])
                files = [a for name in CLASS_REQUIREMENTS for a in ("-r", str(root / name))]
                run([*pip, "-q", "install", *files])
                _open_to_all(venv)
                stamp.write_text(fingerprint)
            fresh = prefix / "src.new"
            shutil.rmtree(fresh, ignore_errors=True)
            fresh.mkdir()
            for name in CLASS_CODE:
                source = root / name
                if source.is_dir():
                    ignore = shutil.ignore_patterns(*CLASS_CODE_IGNORE)
                    shutil.copytree(source, fresh / name, ignore=ignore)
                elif source.is_file():
                    shutil.copy2(source, fresh / name)
            venv_py = venv / "bin" / "python"
            # compiled now, as root: students cannot write __pycache__ here
            subprocess.run([str(venv_py), "-m", "compileall", "-q", str(fresh)], check=False)
            _open_to_all(fresh)
            shutil.rmtree(prefix / "src.old", ignore_errors=True)
            if src.exists():
                src.rename(prefix / "src.old")
            fresh.rename(src)
            shutil.rmtree(prefix / "src.old", ignore_errors=True)
            site = subprocess.run(
                [str(venv_py), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                capture_output=True,
                text=True,
                check=True,
            ).stdout.strip()
            (Path(site) / "fine_tuning_lab.pth").write_text(f"{src}\n")
            prefix.chmod(0o755)
    finally:
        os.umask(old_umask)
    return venv / "bin" / "python"


def write_role_config(
    dest: Path, role: str, nbgrader_config: str = "", *, exchange: bool = True
) -> Path:
    """A Jupyter config folder (for ``JUPYTER_CONFIG_PATH``) that shows one role's tools.

    ``role`` is ``"student"`` (Assignment List and Validate; Formgrader, Create Assignment
    and Course List disabled in JupyterLab's page config and as server extensions) or
    ``"instructor"`` (everything enabled). ``exchange=False`` (``lab`` outside a hub: no
    nbgrader exchange) also hides the Assignment List and the Nbgrader menu, which could only
    show errors there. JupyterLab's news pop-up is off for every role, and a student's
    server keeps a notebook's kernel metadata on save (:data:`SAVE_HOOK`), so a lesson opened
    and not edited stays as released. ``nbgrader_config`` becomes its ``nbgrader_config.py``."""
    if role not in ("student", "instructor"):
        raise ValueError(f"unknown role {role!r}")
    student = role == "student"
    hide_exchange = student and not exchange
    lab_disabled = {name: student for name in NBGRADER_INSTRUCTOR_PLUGINS}
    lab_disabled.update({name: False for name in NBGRADER_STUDENT_PLUGINS})
    lab_disabled.update({name: True for name in NBGRADER_EXCHANGE_PLUGINS if hide_exchange})
    lab_disabled[LAB_NEWS_PLUGIN] = True
    server = {name: not student for name in NBGRADER_INSTRUCTOR_SERVER}
    server.update({name: True for name in NBGRADER_STUDENT_SERVER})
    server.update({name: False for name in NBGRADER_EXCHANGE_SERVER if hide_exchange})
    (dest / "labconfig").mkdir(parents=True, exist_ok=True)
    page = {"disabledExtensions": {k: v for k, v in lab_disabled.items() if v}}
    (dest / "labconfig" / "page_config.json").write_text(json.dumps(page, indent=2) + "\n")
    server_config = {"ServerApp": {"jpserver_extensions": server}}
    (dest / "jupyter_server_config.json").write_text(json.dumps(server_config, indent=2) + "\n")
    hook_path = dest / "jupyter_server_config.py"
    if student:  # an opened, unedited lesson is saved as released (tunelab/jupyter_hooks.py)
        hook_path.write_text(SAVE_HOOK_CONFIG)
    elif hook_path.exists():
        hook_path.unlink()
    nb_path = dest / "nbgrader_config.py"
    if nbgrader_config:
        nb_path.write_text(nbgrader_config)
    elif nb_path.exists():
        nb_path.unlink()
    return dest


def instructor_nbgrader_config(exchange: Path | None = None) -> str:
    """An ``nbgrader_config.py`` that loads the course's own (the instructors' copy only)."""
    text = (
        "# Written by tunelab.bootstrap: the course's nbgrader configuration.\n"
        "c = get_config()  # noqa: F821\n"
        f"load_subconfig({str(ROOT / 'grader' / 'nbgrader_config.py')!r})  # noqa: F821\n"
    )
    if exchange is not None:
        text += f"c.Exchange.root = {str(exchange)!r}\n"
    return text


def _config_path(first: Path) -> str:
    rest = os.environ.get("JUPYTER_CONFIG_PATH", "")
    return os.pathsep.join([str(first), *[p for p in rest.split(os.pathsep) if p]])


def start_emulator(py: Path, port: int, lang: str = "en") -> tuple[subprocess.Popen, str]:
    """Start the shared emulator (state kept in .tunelab/) and wait until it listens.

    ``lang`` becomes its ``TUNELAB_LANG``: the emulator's own error messages (lessons 03 and
    07 show them) are then in the notebooks' language."""
    state = ROOT / ".tunelab" / "state.sqlite"
    state.parent.mkdir(exist_ok=True)
    cmd = [str(py), "-m", "tunelab.emulator", "--host", "127.0.0.1", "--port", str(port)]
    env = {**os.environ, "TUNELAB_LANG": lang}
    proc = subprocess.Popen(
        [*cmd, "--state", str(state)], stdout=subprocess.PIPE, text=True, cwd=ROOT, env=env
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


def lab_command(args: argparse.Namespace, token: str) -> tuple[list[str], dict[str, str], str]:
    """The ``jupyter lab`` command line, the environment it adds and the URL a student opens.

    Why a token always: ``127.0.0.1`` is shared by every user and program on the machine, and
    a JupyterLab without one runs anyone's code as the student. The token travels in
    ``JUPYTER_TOKEN`` (only the student can read a process's environment; any user can read its
    command line). ``--token ''`` is the explicit way to switch it off (the server then warns
    "All authentication is disabled")."""
    instructor = getattr(args, "instructor", False)
    # Formgrader needs the course (the instructors' copy) inside the server's root folder.
    notebook_dir = ROOT if instructor else ROOT / "notebooks"
    path = "formgrader" if instructor else f"lab/tree/{first_notebook(args.lang)}"
    lab = [
        str(VENV / "bin" / "jupyter"),
        "lab",
        f"--notebook-dir={notebook_dir}",
        f"--ServerApp.port={args.port}",
        "--ServerApp.ip=127.0.0.1",
        f"--LabApp.default_url=/{path}",
    ]
    env = {"JUPYTER_TOKEN": token}
    if not token:  # an empty JUPYTER_TOKEN would make Jupyter pick a random token instead
        lab.append("--IdentityProvider.token=")
    if os.geteuid() == 0:
        lab.append("--allow-root")  # containers and CI run as root; Jupyter refuses otherwise
    if args.headless:
        lab.append("--no-browser")
    url = f"http://127.0.0.1:{args.port}/{path}" + (f"?token={token}" if token else "")
    return lab, env, url


def cmd_lab(args: argparse.Namespace) -> int:
    py = ensure_venv()
    emulator, endpoint = start_emulator(py, args.emulator_port, args.lang)
    say(f"tuning emulator ready at {endpoint} (TUNELAB_ENDPOINT, TUNELAB_LANG={args.lang})")
    instructor = getattr(args, "instructor", False)
    role = "instructor" if instructor else "student"
    nbgrader = instructor_nbgrader_config() if instructor else ""
    # No exchange outside a hub: the student's Assignment List would only show errors.
    config = write_role_config(ROOT / ".tunelab" / "jupyter" / role, role, nbgrader, exchange=False)
    say(f"JupyterLab with the {role}'s nbgrader tools ({config})")
    env = {**os.environ, "TUNELAB_ENDPOINT": endpoint, "JUPYTER_CONFIG_PATH": _config_path(config)}
    env["TUNELAB_LANG"] = args.lang  # checks, hints, panel and plots in the student's language
    token = secrets.token_urlsafe(24) if args.token is None else args.token
    lab, lab_env, url = lab_command(args, token)
    env.update(lab_env)
    if token:
        say(f"JupyterLab: {url}")
        say("  (open this URL, token included, if no browser opens; Ctrl+C here stops it)")
    else:
        say(
            f"JupyterLab: {url}  (--token '': NO authentication, anyone on this machine can use it)"
        )
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


def first_notebook(lang: str = "en", notebooks: Path | None = None) -> str:
    """The notebook ``lab`` opens first, relative to ``notebooks/``: lesson 01 of the chosen
    edition (``ru/`` holds the Russian one), else that edition's first notebook."""
    notebooks = notebooks or ROOT / "notebooks"
    if lang == "en":
        return "01_welcome/01_welcome.ipynb"
    edition = notebooks / lang
    found = sorted(edition.glob("*/*.ipynb"), key=lambda p: (p.parent.name != "01_welcome", p))
    if not found:
        say(f"this copy of the course has no {lang!r} edition (notebooks/{lang}/); English it is")
        return "01_welcome/01_welcome.ipynb"
    return found[0].relative_to(notebooks).as_posix()


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
    ensure_proxy(required=False)  # for the hub test
    if os.geteuid() == 0:
        # the class environment of the hub test: installed once, then reused
        # until the requirements change
        try:
            ensure_class_env(test_class_prefix())
        except SystemExit as exc:  # e.g. no system Python 3.11: only the hub test skips
            say(f"{exc}; the hub test will be skipped")
    bin_dir = VENV / "bin"
    say("ruff: lint and format check")
    run([str(bin_dir / "ruff"), "check", "."], cwd=ROOT)
    run([str(bin_dir / "ruff"), "format", "--check", "."], cwd=ROOT)
    say("pytest")
    extra = list(args.pytest_args)
    if not any(a == "-n" or a.startswith(("-n", "--numprocesses")) for a in extra):
        # one worker per core; a test module stays on one worker, so its (expensive) module
        # fixtures -- a graded class, a running hub -- are built once
        extra = ["-n", "2", "--dist", "loadfile", *extra]
    result = subprocess.run([str(py), "-m", "pytest", *extra], cwd=ROOT)
    return result.returncode


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def hub_env(
    hub_dir: Path,
    port: int,
    password: str,
    *,
    rehearsal: bool = False,
    instructors: tuple[str, ...] = HUB_INSTRUCTORS,
) -> dict[str, str]:
    """The environment ``hub/jupyterhub_config.py`` reads (ports picked here, once)."""
    return {
        **os.environ,
        "TUNELAB_HUB_MODE": "rehearsal" if rehearsal else "class",
        "TUNELAB_HUB_INSTRUCTORS": ",".join(instructors),
        "TUNELAB_HUB_DIR": str(hub_dir),
        "TUNELAB_HUB_PORT": str(port),
        "TUNELAB_HUB_API_PORT": str(_free_port()),
        "TUNELAB_HUB_PROXY_API_PORT": str(_free_port()),
        "TUNELAB_HUB_EMULATOR_PORT": str(_free_port()),
        "TUNELAB_HUB_PASSWORD": password,
        "TUNELAB_HUB_PROXY": str(PROXY_BIN),
    }


def cmd_hub(args: argparse.Namespace) -> int:
    """A real JupyterHub for a class on this machine (``hub/README.md``).

    Default: the class mode (one OS user per hub user, real logins; needs root), run from the
    class environment at ``--prefix`` (:func:`ensure_class_env`). ``--rehearsal``: the
    single-user quick start from this checkout's ``.venv``, no isolation between users."""
    import fcntl

    if not HUB_CONFIG.exists():
        say("this copy of the course has no hub/ folder; run the hub from the repository")
        return 2
    instructors = tuple(args.instructor or HUB_INSTRUCTORS)
    if not args.rehearsal and os.geteuid() != 0:
        say("the class hub runs each student as their own OS user, so it must start as root:")
        say("  sudo python3 -m tunelab.bootstrap hub")
        say("to try the course out as yourself (one OS user, one shared password, NOT for a")
        say("class): python3 -m tunelab.bootstrap hub --rehearsal")
        return 2
    hub_lock = None
    if args.rehearsal:
        if not (os.environ.get("TUNELAB_HUB_SKIP_INSTALL") == "1" and VENV_PY.exists()):
            ensure_venv()
        hub_bin, config = VENV / "bin", HUB_CONFIG
    else:
        prefix = Path(args.prefix).resolve()
        python = Path(args.python) if args.python else None
        hub_bin = ensure_class_env(prefix, python).parent
        config = prefix / "src" / "hub" / HUB_CONFIG.name
        hub_lock = (prefix / ".hub.lock").open("w")
        try:  # the hub runs from PREFIX/src: a second hub would replace it under the first
            fcntl.flock(hub_lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            say(f"another class hub runs from {prefix}: stop it, or choose another --prefix")
            return 2
    ensure_proxy()
    default_dir = ROOT / ".hub" if args.rehearsal else prefix / "state"
    hub_dir = Path(args.hub_dir or default_dir).resolve()
    hub_dir.mkdir(parents=True, exist_ok=True)
    url = f"http://127.0.0.1:{args.port}/"
    env = hub_env(
        hub_dir, args.port, args.password, rehearsal=args.rehearsal, instructors=instructors
    )
    if args.rehearsal:
        say(f"REHEARSAL hub at {url} (state in {hub_dir}): every user runs as this OS user,")
        say("  with one shared password -- for trying the course out, never for a class")
        say(f"  instructor: {', '.join(instructors)}   students: {', '.join(HUB_STUDENTS)}")
        say(f"  password for every demo user: {args.password}")
    else:
        # the class's processes import the course's code from PREFIX/src only
        env.pop("PYTHONPATH", None)
        env["TUNELAB_HUB_REPO"] = str(ROOT)  # masters and lessons: copied for the instructors
        say(f"class hub at {url} (state in {hub_dir}, environment in {prefix})")
        say(f"  instructors: {', '.join(instructors)}: sign up first at {url}hub/signup")
        say(f"  students sign up at {url}hub/signup; approve them at {url}hub/authorize")
    cmd = [str(hub_bin / "jupyterhub"), "-f", str(config)]
    proc = subprocess.Popen(cmd, env=env, cwd=hub_dir)

    def _stop(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, _stop)
    try:
        if not args.headless:
            _open_when_ready(url, proc)
        return proc.wait()
    except KeyboardInterrupt:
        # JupyterHub stops the single-user servers, the proxy and the emulator service.
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        try:
            return proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            return proc.wait()
    finally:
        if hub_lock is not None:
            hub_lock.close()


def _open_when_ready(url: str, proc: subprocess.Popen) -> None:
    import urllib.request
    import webbrowser

    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            with urllib.request.urlopen(url + "hub/api", timeout=5):
                webbrowser.open(url)
                return
        except OSError:
            time.sleep(0.5)


def instructor_commands(root: Path = ROOT) -> dict[str, bool]:
    """Which instructors' commands this copy can run: the student's copy has none of the
    test suite, the hub or the course's nbgrader configuration, so it offers none of them."""
    return {
        "test": (root / "tests").is_dir(),
        "hub": (root / "hub" / "jupyterhub_config.py").is_file(),
        "--instructor": (root / "grader" / "nbgrader_config.py").is_file(),
    }


DESCRIPTION = """\
Set up and run Fine-Tuning Lab with one command: the first run creates .venv/ in this folder
and installs the pinned packages (a few minutes, once); later runs start at once.

  python3 -m tunelab.bootstrap lab             the course in English (opens lesson 01)
  python3 -m tunelab.bootstrap lab --lang ru   the course in Russian (notebooks/ru/)
  python3 -m tunelab.bootstrap check           is my set-up right? (every line [ OK ])
"""


INSTRUCTOR_USAGE = {
    "test": "  python3 -m tunelab.bootstrap test              lint and run every test",
    "hub": "  python3 -m tunelab.bootstrap hub               a JupyterHub class on this machine",
    "--instructor": "  python3 -m tunelab.bootstrap lab --instructor  JupyterLab with formgrader",
}


def build_parser(root: Path = ROOT) -> argparse.ArgumentParser:
    """The command line: student commands always, instructors' ones where this copy has them."""
    offered = instructor_commands(root)
    instructors = [line for name, line in INSTRUCTOR_USAGE.items() if offered[name]]
    parser = argparse.ArgumentParser(
        prog="python3 -m tunelab.bootstrap",
        description=DESCRIPTION,
        epilog="The instructors' copy of the course also offers:\n" + "\n".join(instructors)
        if instructors
        else None,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    lab = sub.add_parser("lab", help="install if needed, start the emulator, open JupyterLab")
    lab.add_argument("--port", type=int, default=8888, help="JupyterLab port")
    lab.add_argument("--emulator-port", type=int, default=8765, help="tuning emulator port")
    lab.add_argument("--headless", action="store_true", help="print the URL, open no browser")
    lab.add_argument(
        "--token",
        default=None,
        help="JupyterLab's token (default: a new random one, printed in the URL; "
        "'' switches authentication off: only on a machine no one else uses)",
    )
    if offered["--instructor"]:
        lab.add_argument(
            "--instructor",
            action="store_true",
            help="the instructor's tools too (formgrader, Create Assignment), in the repository",
        )
    lab.add_argument(
        "--lang",
        choices=("en", "ru"),
        default="en",
        help="the course's language: en (default) or ru (the Russian edition, notebooks/ru/)",
    )
    lab.set_defaults(func=cmd_lab)
    check = sub.add_parser("check", help="install if needed, run the environment self-check")
    check.set_defaults(func=cmd_check)
    if offered["test"]:
        test = sub.add_parser("test", help="install if needed, lint, and run the whole test suite")
        test.add_argument("pytest_args", nargs=argparse.REMAINDER, help="extra pytest arguments")
        test.set_defaults(func=cmd_test)
    if offered["hub"]:
        hub = sub.add_parser(
            "hub", help="a JupyterHub class on this machine, as root (see hub/README.md)"
        )
        hub.add_argument("--port", type=int, default=8000, help="the hub's public port")
        hub.add_argument(
            "--headless", action="store_true", help="no browser; for servers and tests"
        )
        hub.add_argument(
            "--hub-dir",
            help="state: homes, exchange, the course copy with the gradebook (default: "
            "PREFIX/state in the class, .hub/ in the checkout for --rehearsal)",
        )
        hub.add_argument(
            "--password",
            default=HUB_DEFAULT_PASSWORD,
            help="--rehearsal only: the demo users' shared password",
        )
        hub.add_argument(
            "--rehearsal",
            action="store_true",
            help="the single-user quick start (all users one OS user, shared password): for "
            "trying the course out, never for a class",
        )
        hub.add_argument(
            "--prefix",
            default=os.environ.get("TUNELAB_CLASS_PREFIX") or str(CLASS_PREFIX),
            help="the class environment: a venv every user can run and the course's code "
            f"(default {CLASS_PREFIX}, or $TUNELAB_CLASS_PREFIX; reinstalled only when the "
            "requirements change)",
        )
        hub.add_argument(
            "--python",
            help="the system Python 3.11+ the class venv is made from "
            f"(default: the first of {', '.join(CLASS_PYTHONS)})",
        )
        hub.add_argument(
            "--instructor",
            action="append",
            metavar="NAME",
            help="a hub user with the instructor role (repeatable; default: instructor)",
        )
        hub.set_defaults(func=cmd_hub)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    offered = instructor_commands()
    # An instructors' command in a student's copy: say what to run instead of a usage error.
    if argv[:1] == ["test"] and not offered["test"]:
        say("this copy of the course has no test suite; run 'python3 -m tunelab.bootstrap check'")
        return 2
    if argv[:1] == ["hub"] and not offered["hub"]:
        say("this copy of the course has no JupyterHub set-up; ask your instructor for the hub")
        return 2
    if argv[:1] == ["lab"] and "--instructor" in argv and not offered["--instructor"]:
        say("this copy of the course has no instructor tools; run the course with 'lab' alone")
        return 2
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
