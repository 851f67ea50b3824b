"""JupyterHub for a Fine-Tuning Lab class on one machine (``python3 -m tunelab.bootstrap hub``).

What it sets up (see ``hub/README.md`` for a real deployment):

* users: ``instructor`` (hub admin, nbgrader's instructor tools) and ``student1..3``, with
  JupyterHub's DummyAuthenticator and one shared password (``$TUNELAB_HUB_PASSWORD``);
* SimpleLocalProcessSpawner: each user's JupyterLab is a local process of the course's
  virtual environment, with its home folder in ``HUB_DIR/homes/USER`` (no isolation between
  users: a demo and test set-up, never a real class);
* students see nbgrader's Assignment List and Validate only; the instructor also Formgrader,
  Create Assignment and Course List, in a server rooted at this repository (formgrader needs
  the course inside the server's root) with the course's own nbgrader configuration
  (``grader/nbgrader_config.py``) and the gradebook in ``HUB_DIR/instructor``;
* the tuning emulator as a hub-managed service shared by every user (state in
  ``HUB_DIR/emulator.sqlite``); each server's ``TUNELAB_ENDPOINT`` points at it;
* nbgrader's exchange in ``HUB_DIR/exchange`` for the course ``fine-tuning-lab``.

``HUB_DIR`` is ``$TUNELAB_HUB_DIR`` (default ``.hub/`` in the repository). The bootstrap picks
free ports and passes them in ``TUNELAB_HUB_*``; run by hand
(``.venv/bin/jupyterhub -f hub/jupyterhub_config.py``) the defaults below apply.
"""

import os
import socket
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tunelab.bootstrap import (  # noqa: E402  (the repository must be importable first)
    COURSE_ID,
    HUB_DEFAULT_PASSWORD,
    HUB_INSTRUCTORS,
    HUB_STUDENTS,
    PROXY_BIN,
    instructor_nbgrader_config,
    write_role_config,
)

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


HUB_DIR = Path(os.environ.get("TUNELAB_HUB_DIR") or ROOT / ".hub").resolve()
HOMES = HUB_DIR / "homes"
EXCHANGE = HUB_DIR / "exchange"
INSTRUCTOR_ROOT = HUB_DIR / "instructor"
USER_CONFIG = HUB_DIR / "jupyter"
VENV_BIN = Path(sys.executable).parent  # the hub runs from the course's venv
PORT = _port("PORT", 8000)
EMULATOR_PORT = _port("EMULATOR_PORT")
EMULATOR_URL = f"http://127.0.0.1:{EMULATOR_PORT}"

for folder in (HUB_DIR, HOMES, INSTRUCTOR_ROOT, USER_CONFIG):
    folder.mkdir(parents=True, exist_ok=True)
# nbgrader's exchange: everybody writes (submissions into inbound), nobody deletes others'.
EXCHANGE.mkdir(parents=True, exist_ok=True)
EXCHANGE.chmod(0o1777)

# -- the hub, its database and its proxy -------------------------------------------------
c.JupyterHub.bind_url = f"http://127.0.0.1:{PORT}"
c.JupyterHub.hub_bind_url = f"http://127.0.0.1:{_port('API_PORT')}"
c.JupyterHub.db_url = f"sqlite:///{HUB_DIR / 'jupyterhub.sqlite'}"
c.JupyterHub.cookie_secret_file = str(HUB_DIR / "jupyterhub_cookie_secret")
c.ConfigurableHTTPProxy.command = [os.environ.get("TUNELAB_HUB_PROXY") or str(PROXY_BIN)]
c.ConfigurableHTTPProxy.api_url = f"http://127.0.0.1:{_port('PROXY_API_PORT')}"
c.ConfigurableHTTPProxy.pid_file = str(HUB_DIR / "jupyterhub-proxy.pid")
c.JupyterHub.cleanup_servers = True  # stopping the hub stops every user's server

# -- who may log in ------------------------------------------------------------------------
c.JupyterHub.authenticator_class = "dummy"
c.DummyAuthenticator.password = os.environ.get("TUNELAB_HUB_PASSWORD") or HUB_DEFAULT_PASSWORD
c.Authenticator.allowed_users = set(HUB_INSTRUCTORS) | set(HUB_STUDENTS)
c.Authenticator.admin_users = set(HUB_INSTRUCTORS)

# -- the tuning emulator, one for the whole class ----------------------------------------------
emulator_env = {"PYTHONUNBUFFERED": "1"}
for name in ("TUNELAB_TIME_SCALE", "PATH", "LANG"):
    if os.environ.get(name):
        emulator_env[name] = os.environ[name]
c.JupyterHub.services = [
    {
        "name": "tuning-emulator",
        "url": EMULATOR_URL,
        "display": False,
        "cwd": str(ROOT),
        "environment": emulator_env,
        "command": [
            str(VENV_BIN / "python"),
            "-m",
            "tunelab.emulator",
            "--host",
            "127.0.0.1",
            "--port",
            str(EMULATOR_PORT),
            "--state",
            str(HUB_DIR / "emulator.sqlite"),
        ],
    }
]

# -- each user's JupyterLab ---------------------------------------------------------------------
c.JupyterHub.spawner_class = "simple"
c.SimpleLocalProcessSpawner.home_dir_template = str(HOMES / "{username}")
c.Spawner.cmd = [str(VENV_BIN / "jupyterhub-singleuser")]
c.Spawner.default_url = "/lab"
c.Spawner.start_timeout = 120
c.Spawner.http_timeout = 120
if os.geteuid() == 0:
    c.Spawner.args = ["--allow-root"]  # SimpleLocalProcessSpawner runs servers as the hub's user
c.Spawner.environment = {
    "PATH": os.pathsep.join([str(VENV_BIN), os.environ.get("PATH", "/usr/bin:/bin")]),
    "TUNELAB_ENDPOINT": EMULATOR_URL,
    "PYTHONUNBUFFERED": "1",
}
for name in ("TUNELAB_TIME_SCALE", "LANG", "TZ"):
    if os.environ.get(name):
        c.Spawner.environment[name] = os.environ[name]


def student_nbgrader_config(username: str) -> str:
    # Servers all run as one OS user here, so nbgrader is told who submits (on a real hub each
    # user is their own OS user, or `jovyan` with JUPYTERHUB_USER, and this line is not needed).
    return (
        "# Written by hub/jupyterhub_config.py for this user.\n"
        "c = get_config()  # noqa: F821\n"
        f"c.CourseDirectory.course_id = {COURSE_ID!r}\n"
        f"c.Exchange.root = {str(EXCHANGE)!r}\n"
        f"c.CourseDirectory.student_id = {username!r}\n"
    )


def pre_spawn_hook(spawner):
    """Per user: home folder, role config (tools shown, nbgrader settings), server root."""
    name = spawner.user.name
    (HOMES / name).mkdir(parents=True, exist_ok=True)
    env = dict(spawner.environment)
    if name in HUB_INSTRUCTORS:
        nbgrader = instructor_nbgrader_config(EXCHANGE)
        # Every server runs as the hub's OS user here, so submissions are not owned by students.
        nbgrader += "c.ExchangeCollect.check_owner = False\n"
        config = write_role_config(USER_CONFIG / name, "instructor", nbgrader)
        spawner.notebook_dir = str(ROOT)
        env["TUNELAB_INSTRUCTOR_ROOT"] = str(INSTRUCTOR_ROOT)
    else:
        config = write_role_config(USER_CONFIG / name, "student", student_nbgrader_config(name))
        spawner.notebook_dir = str(HOMES / name)
    env["JUPYTER_CONFIG_PATH"] = str(config)
    spawner.environment = env


c.Spawner.pre_spawn_hook = pre_spawn_hook
