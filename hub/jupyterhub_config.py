"""JupyterHub for a Fine-Tuning Lab class on one machine (``python3 -m tunelab.bootstrap hub``).

Two modes (``$TUNELAB_HUB_MODE``; see ``hub/README.md``):

``class`` (the default; needs root, as The Littlest JupyterHub does)
    * logins: NativeAuthenticator -- people sign up at ``/hub/signup`` with their own
      password; the instructor approves each at ``/hub/authorize``. The instructors
      (``$TUNELAB_HUB_INSTRUCTORS``) are hub admins and members of the hub group
      ``instructors``, which carries the role ``instructor``: that role, not a name, decides
      who gets the instructor's tools;
    * each hub user's JupyterLab runs as an unprivileged OS user of their own,
      ``jupyter-NAME`` (created on first login, home ``HUB_DIR/homes/NAME`` mode 0700);
    * the instructors' OS user owns the course, a copy of this repository in
      ``HUB_DIR/course`` (masters, checkers, ``.instructor/`` with the gradebook), mode 0770
      for the group ``jupyter-instructors``: students cannot even list it. The repository's
      own ``solutions/`` and ``.instructor/`` are closed to other users too;
    * the hub's database, cookie secret and the emulator's secret are in ``HUB_DIR/hub``
      (root only); the emulator runs as the system user ``tunelab-emulator`` with its state
      in ``HUB_DIR/emulator`` (its user only);
    * nbgrader's exchange ``HUB_DIR/exchange`` (1777): nbgrader itself makes the course's
      ``outbound`` readable by all, ``inbound`` write-only for students (2733: nobody lists
      or copies another's submission) and ``feedback`` 0711 (a page is reached only through
      the hash of its own submission);
    * the shared tuning emulator checks a per-user token: each server's ``TUNELAB_ENDPOINT``
      ends in ``/u/TOKEN`` signed for that user (``tunelab.emulator.auth``), so a student
      sees only their own tuning jobs and tuned models; instructors see all.

``rehearsal`` (``bootstrap hub --rehearsal``): the single-user quick start for trying the
course out -- every server runs as the hub's own OS user, ``DummyAuthenticator`` with one
shared password, users ``instructor`` and ``student1..3``. Never for a class.

Both modes: students see nbgrader's Assignment List and Validate only; instructors also
Formgrader (framed by JupyterLab: same-origin framing allowed), Create Assignment and Course
List, formgrader's Generate/Autograde/Generate Feedback disabled
(``hub/tunelab_formgrader_guard.py``), a terminal with the course's ``python`` first on PATH,
opened in the course folder; lessons 01-08 are released to the exchange when the hub starts.

In the class, this file runs from the class environment (``PREFIX/src/hub``, with
``PREFIX/venv``'s JupyterHub: see ``tunelab.bootstrap.ensure_class_env``), so every process
it starts runs a Python and imports code that every OS user can read; the masters and
lessons come from the checkout named by ``$TUNELAB_HUB_REPO``. ``HUB_DIR`` is
``$TUNELAB_HUB_DIR`` (the bootstrap's ``--hub-dir``: ``PREFIX/state`` in the class, else
``.hub/`` in the checkout). The bootstrap picks free ports and passes them in
``TUNELAB_HUB_*``; run by hand (``PREFIX/venv/bin/jupyterhub -f
PREFIX/src/hub/jupyterhub_config.py``) the defaults below apply.
"""

import json
import os
import pwd
import re
import secrets
import shutil
import socket
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]  # the code: PREFIX/src in the class, else the checkout
HUB_SRC = ROOT / "hub"
#: The checkout the instructors' course copy (masters, checkers, lessons) is made from.
REPO = Path(os.environ.get("TUNELAB_HUB_REPO") or ROOT).resolve()
sys.path[:0] = [str(ROOT), str(HUB_SRC)]

import tunelab_hub as th  # noqa: E402  (hub/tunelab_hub.py)

from tunelab.bootstrap import (  # noqa: E402  (the repository must be importable first)
    COURSE_ID,
    HUB_DEFAULT_PASSWORD,
    HUB_INSTRUCTORS,
    HUB_STUDENTS,
    PROXY_BIN,
    write_role_config,
)
from tunelab.emulator.auth import sign  # noqa: E402

c = get_config()  # noqa: F821  (provided by traitlets when JupyterHub loads this file)


def _port(name: str, default: int | None = None) -> int:
    value = os.environ.get(f"TUNELAB_HUB_{name}")
    if value:
        return int(value)
    if default is not None:
        return default
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


MODE = os.environ.get("TUNELAB_HUB_MODE") or "class"
if MODE not in ("class", "rehearsal"):
    raise SystemExit(f"TUNELAB_HUB_MODE must be 'class' or 'rehearsal', not {MODE!r}")
CLASS = MODE == "class"
if CLASS and os.geteuid() != 0:
    raise SystemExit(
        "the class hub creates one OS user per hub user and must run as root "
        "(sudo python3 -m tunelab.bootstrap hub); to try the course out as yourself, use "
        "'python3 -m tunelab.bootstrap hub --rehearsal' (no isolation between users)"
    )
if CLASS:
    why = th.unreachable_python(Path(sys.executable).parent / "python")
    if why:
        raise SystemExit(f"the class hub cannot start: {why}")
HUB_DIR = Path(os.environ.get("TUNELAB_HUB_DIR") or REPO / ".hub").resolve()
if CLASS and th.closed_parents(HUB_DIR):
    raise SystemExit(
        f"the class hub cannot start: its users' homes and the exchange live in {HUB_DIR}, "
        f"but other users cannot enter {', '.join(map(str, th.closed_parents(HUB_DIR)))}: "
        "choose --hub-dir in a folder they can enter (e.g. /srv/fine-tuning-lab)"
    )
HOMES = HUB_DIR / "homes"
EXCHANGE = HUB_DIR / "exchange"
USER_CONFIG = HUB_DIR / "jupyter"
PRIVATE = HUB_DIR / "hub" if CLASS else HUB_DIR  # database, cookie secret, proxy pid
VENV_BIN = Path(sys.executable).parent  # the hub runs from the course's venv
PORT = _port("PORT", 8000)
EMULATOR_PORT = _port("EMULATOR_PORT")
EMULATOR_URL = f"http://127.0.0.1:{EMULATOR_PORT}"
INSTRUCTORS = tuple(
    n.strip()
    for n in (os.environ.get("TUNELAB_HUB_INSTRUCTORS") or ",".join(HUB_INSTRUCTORS)).split(",")
    if n.strip()
)
if CLASS:
    COURSE = HUB_DIR / "course"
    INSTRUCTOR_ROOT = COURSE / ".instructor"
    EMULATOR_DIR = HUB_DIR / "emulator"
else:
    COURSE = REPO
    INSTRUCTOR_ROOT = HUB_DIR / "instructor"
    EMULATOR_DIR = HUB_DIR

for folder in (HUB_DIR, HOMES, USER_CONFIG, PRIVATE):
    folder.mkdir(parents=True, exist_ok=True)
th.prepare_exchange(EXCHANGE)

# -- the class's OS users, course copy and private folders ---------------------------------
EMULATOR_USER = None
if CLASS:
    for folder in (HUB_DIR, HOMES, USER_CONFIG):
        os.chown(folder, 0, 0)
        folder.chmod(0o711)  # users reach their own folder inside, and list nothing
    PRIVATE.chmod(0o700)
    th.ensure_group(th.STUDENTS_GROUP)
    th.ensure_group(th.INSTRUCTORS_GROUP)
    owners = [
        th.ensure_system_user(th.system_name(n), HOMES / n, th.INSTRUCTORS_GROUP)
        for n in INSTRUCTORS
    ]
    th.prepare_course(REPO, COURSE, owners[0])
    gid = th.ensure_group(th.INSTRUCTORS_GROUP)
    os.chown(COURSE, owners[0].pw_uid, gid)
    COURSE.chmod(0o2770)  # every instructor's OS user (the group) works in it; nobody else
    th.close_checkout(REPO)
    EMULATOR_USER = th.ensure_system_user("tunelab-emulator", EMULATOR_DIR, system=True)
else:
    INSTRUCTOR_ROOT.mkdir(parents=True, exist_ok=True)

# -- the hub, its database and its proxy -------------------------------------------------
c.JupyterHub.bind_url = f"http://127.0.0.1:{PORT}"
c.JupyterHub.hub_bind_url = f"http://127.0.0.1:{_port('API_PORT')}"
c.JupyterHub.db_url = f"sqlite:///{PRIVATE / 'jupyterhub.sqlite'}"
c.JupyterHub.cookie_secret_file = str(PRIVATE / "jupyterhub_cookie_secret")
c.ConfigurableHTTPProxy.command = [os.environ.get("TUNELAB_HUB_PROXY") or str(PROXY_BIN)]
c.ConfigurableHTTPProxy.api_url = f"http://127.0.0.1:{_port('PROXY_API_PORT')}"
c.ConfigurableHTTPProxy.pid_file = str(PRIVATE / "jupyterhub-proxy.pid")
c.JupyterHub.cleanup_servers = True  # stopping the hub stops every user's server

# -- who may log in, and who is an instructor (a role, through a group) ---------------------
c.JupyterHub.load_groups = {th.INSTRUCTOR_HUB_GROUP: {"users": list(INSTRUCTORS)}}
c.JupyterHub.load_roles = [
    {
        "name": th.INSTRUCTOR_ROLE,
        "description": "Fine-Tuning Lab instructor: nbgrader's instructor tools, approve sign-ups",
        "scopes": ["admin:users", "admin-ui", "list:users", "read:users", "admin:servers"],
        "groups": [th.INSTRUCTOR_HUB_GROUP],
    }
]
c.Authenticator.admin_users = set(INSTRUCTORS)
if CLASS:
    import nativeauthenticator

    th.patch_nativeauthenticator()
    c.JupyterHub.authenticator_class = "native"
    c.JupyterHub.template_paths = [str(Path(nativeauthenticator.__file__).parent / "templates")]
    c.NativeAuthenticator.open_signup = False  # the instructor approves each sign-up
    c.NativeAuthenticator.minimum_password_length = 8
    c.NativeAuthenticator.check_common_password = True
    c.NativeAuthenticator.allowed_failed_logins = 5
    c.NativeAuthenticator.seconds_before_next_try = 60
    c.Authenticator.allow_all = True  # NativeAuthenticator lets in approved users only
    # hub names become OS user names (jupyter-NAME): keep them to what useradd accepts
    c.Authenticator.username_pattern = r"^[a-z][a-z0-9_-]{0,22}$"
else:
    c.JupyterHub.authenticator_class = "dummy"
    c.DummyAuthenticator.password = os.environ.get("TUNELAB_HUB_PASSWORD") or HUB_DEFAULT_PASSWORD
    c.Authenticator.allowed_users = set(INSTRUCTORS) | set(HUB_STUDENTS)

# -- the tuning emulator, one for the whole class ----------------------------------------------
emulator_env = {"PYTHONUNBUFFERED": "1"}
for name in ("TUNELAB_TIME_SCALE", "PATH", "LANG", "PYTHONPATH"):
    if os.environ.get(name):
        emulator_env[name] = os.environ[name]
emulator_cmd = [str(VENV_BIN / "python"), "-m", "tunelab.emulator", "--host", "127.0.0.1"]
emulator_cmd += ["--port", str(EMULATOR_PORT), "--state", str(EMULATOR_DIR / "emulator.sqlite")]
EMULATOR_SECRET = ""
if CLASS:
    secret_file = PRIVATE / "emulator_secret"
    if not secret_file.exists():
        secret_file.write_text(secrets.token_hex(32))
        secret_file.chmod(0o600)
    EMULATOR_SECRET = secret_file.read_text().strip()
    emulator_env["TUNELAB_EMULATOR_SECRET"] = EMULATOR_SECRET
    emulator_cmd.append("--auth")
emulator_service = {
    "name": "tuning-emulator",
    "display": False,
    "cwd": str(ROOT),
    "environment": emulator_env,
    "command": emulator_cmd,
    # No "url": the hub does not proxy it (/services/tuning-emulator/ would bypass the
    # per-user tokens); servers reach it on the loopback port in TUNELAB_ENDPOINT.
}
if EMULATOR_USER is not None:
    emulator_service["user"] = EMULATOR_USER.pw_name
c.JupyterHub.services = [emulator_service]

# -- each user's JupyterLab ---------------------------------------------------------------------
if CLASS:
    c.JupyterHub.spawner_class = th.SystemUserSpawner
else:
    c.JupyterHub.spawner_class = "simple"
    c.SimpleLocalProcessSpawner.home_dir_template = str(HOMES / "{username}")
c.Spawner.cmd = [str(VENV_BIN / "jupyterhub-singleuser")]
c.Spawner.default_url = "/lab"
c.Spawner.start_timeout = 120
c.Spawner.http_timeout = 120
if not CLASS and os.geteuid() == 0:
    c.Spawner.args = ["--allow-root"]  # SimpleLocalProcessSpawner runs servers as the hub's user
c.Spawner.environment = {
    "PATH": os.pathsep.join([str(VENV_BIN), os.environ.get("PATH", "/usr/bin:/bin")]),
    "TUNELAB_ENDPOINT": EMULATOR_URL,
    "PYTHONUNBUFFERED": "1",
    # hub/jupyter/labextensions: nbgrader's "(view feedback)" opens the page
    "JUPYTER_PATH": str(HUB_SRC / "jupyter"),
}
for name in ("TUNELAB_TIME_SCALE", "LANG", "TZ"):
    if os.environ.get(name):
        c.Spawner.environment[name] = os.environ[name]


def student_nbgrader_config(username: str) -> str:
    text = (
        "# Written by hub/jupyterhub_config.py for this user.\n"
        "c = get_config()  # noqa: F821\n"
        f"c.CourseDirectory.course_id = {COURSE_ID!r}\n"
        f"c.Exchange.root = {str(EXCHANGE)!r}\n"
        # Validate runs the whole notebook; on a busy class server a training cell can
        # take more than nbgrader's default 30 s.
        "c.Execute.timeout = 300\n"
    )
    # nbgrader names submissions after the hub user (not the OS user jupyter-NAME); in the
    # class, the instructor's collect checks that a submission's files belong to that
    # student's OS user (hub/tunelab_exchange.py), so editing this line gains nothing.
    text += f"c.CourseDirectory.student_id = {username!r}\n"
    return text


def instructor_nbgrader_config() -> str:
    text = (
        "# Written by hub/jupyterhub_config.py: the course's nbgrader configuration.\n"
        "c = get_config()  # noqa: F821\n"
        f"load_subconfig({str(COURSE / 'grader' / 'nbgrader_config.py')!r})  # noqa: F821\n"
        f"c.Exchange.root = {str(EXCHANGE)!r}\n"
    )
    if CLASS:
        text += 'c.ExchangeFactory.collect = "tunelab_exchange.OwnerCheckedCollect"\n'
    else:
        # Every server runs as the hub's OS user here, so submissions are not owned by students.
        text += "c.ExchangeCollect.check_owner = False\n"
    return text


def _server_settings(folder: Path, bashrc: str, instructor: bool) -> None:
    """Settings on top of the role's: framing, the terminal, the formgrader guard."""
    (folder / "bashrc").write_text(bashrc)
    path = folder / "jupyter_server_config.json"
    settings = json.loads(path.read_text())
    app = settings.setdefault("ServerApp", {})
    # JupyterHub's single-user server forbids all framing; JupyterLab frames formgrader.
    app["tornado_settings"] = {"headers": {"Content-Security-Policy": "frame-ancestors 'self'"}}
    # A non-login shell: Debian's /etc/profile would reset PATH (no `python`).
    app["terminado_settings"] = {
        "shell_command": ["/bin/bash", "--rcfile", str(folder / "bashrc"), "-i"]
    }
    if instructor:
        app["jpserver_extensions"]["tunelab_formgrader_guard"] = True
    path.write_text(json.dumps(settings, indent=2) + "\n")


def _roster_add(name: str) -> None:
    """Keep the class list the grades export uses (a row even for who never submits)."""
    roster = INSTRUCTOR_ROOT / "roster.txt"
    INSTRUCTOR_ROOT.mkdir(parents=True, exist_ok=True)
    names = roster.read_text().split() if roster.exists() else []
    if name not in names:
        with roster.open("a") as out:
            out.write(name + "\n")
    if CLASS:
        owner = COURSE.stat()
        os.chown(roster, owner.st_uid, owner.st_gid)


def pre_spawn_hook(spawner):
    """Per user: OS user and home (class), role config (tools shown, nbgrader), server root."""
    name = spawner.user.name
    instructor = th.is_instructor(spawner.user)
    home = HOMES / name
    folder = USER_CONFIG / name
    env = dict(spawner.environment)
    if CLASS:
        group = th.INSTRUCTORS_GROUP if instructor else th.STUDENTS_GROUP
        entry = th.ensure_system_user(th.system_name(name), home, group)
        token = sign(EMULATOR_SECRET, name, "instructor" if instructor else "student")
        env["TUNELAB_ENDPOINT"] = f"{EMULATOR_URL}/u/{token}"
        env["TUNELAB_API_KEY"] = token
    else:
        home.mkdir(parents=True, exist_ok=True)
    if instructor:
        config = write_role_config(folder, "instructor", instructor_nbgrader_config())
        _server_settings(folder, th.instructor_bashrc(COURSE, VENV_BIN), True)
        spawner.notebook_dir = str(COURSE)
        env["TUNELAB_COURSE_DIR"] = str(COURSE)
        env["TUNELAB_INSTRUCTOR_ROOT"] = str(INSTRUCTOR_ROOT)
        env["PYTHONPATH"] = os.pathsep.join(
            p for p in (str(HUB_SRC), os.environ.get("PYTHONPATH", "")) if p
        )
    else:
        config = write_role_config(folder, "student", student_nbgrader_config(name))
        _server_settings(folder, th.student_bashrc(VENV_BIN), False)
        spawner.notebook_dir = str(home)
        _roster_add(name)
    if CLASS:
        th.chown_tree(folder, entry.pw_uid, entry.pw_gid)
        folder.chmod(0o700)
    env["JUPYTER_CONFIG_PATH"] = str(config)
    spawner.environment = env


c.Spawner.pre_spawn_hook = pre_spawn_hook


# -- lessons are part of the class set-up: released to the exchange at start -------------------
def release_lessons() -> None:
    """``nbgrader release_assignment`` for every lesson not yet in the exchange's outbound.

    As the instructors' OS user in the class (the exchange's course folder is theirs); the
    graded assignments are released by the instructor (README, step 1)."""
    lessons = sorted(
        p.name for p in (COURSE / "notebooks").iterdir() if re.match(r"^\d\d_", p.name)
    )
    outbound = EXCHANGE / COURSE_ID / "outbound"
    todo = [n for n in lessons if not (outbound / n).exists()]
    if not todo:
        return
    folder = USER_CONFIG / ".release"
    config = write_role_config(folder, "instructor", instructor_nbgrader_config())
    script = (
        "import sys\n"
        "from nbgrader.apps import NbGraderAPI\n"
        "from nbgrader.coursedir import CourseDirectory\n"
        "from traitlets.config import Config\n"
        "from nbgrader.apps.baseapp import NbGrader\n"
        "app = NbGrader(); app.load_config_file()\n"
        "api = NbGraderAPI(CourseDirectory(config=app.config), config=app.config)\n"
        "for name in sys.argv[1:]:\n"
        "    result = api.release_assignment(name)\n"
        "    if not result['success']:\n"
        "        sys.exit(f'{name}: ' + result['error'])\n"
    )
    kwargs = {}
    if CLASS:
        owner = pwd.getpwnam(th.system_name(INSTRUCTORS[0]))
        th.chown_tree(folder, owner.pw_uid, owner.pw_gid)
        kwargs = {"user": owner.pw_uid, "group": owner.pw_gid, "extra_groups": []}
    env = {
        "PATH": c.Spawner.environment["PATH"],
        "JUPYTER_CONFIG_PATH": str(config),
        "HOME": str(HOMES / INSTRUCTORS[0]),
        "TUNELAB_INSTRUCTOR_ROOT": str(INSTRUCTOR_ROOT),
    }
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(HUB_SRC), os.environ.get("PYTHONPATH", "")) if p
    )
    done = subprocess.run(
        [str(VENV_BIN / "python"), "-c", script, *todo],
        cwd=COURSE,
        env=env,
        capture_output=True,
        text=True,
        **kwargs,
    )
    if done.returncode != 0:
        print(f"tunelab: releasing the lessons failed:\n{done.stderr[-3000:]}", file=sys.stderr)
    else:
        print(f"tunelab: released the lessons {', '.join(todo)}", file=sys.stderr)
    shutil.rmtree(folder, ignore_errors=True)


release_lessons()
