"""The class hub's building blocks: OS users, the instructor's course folder, permissions.

Why: on a hub where every server runs as one OS user (the rehearsal), any student can read
the masters, the gradebook and a classmate's work. The class mode does what The Littlest
JupyterHub does on one machine: each hub user runs as an unprivileged system user of their
own (``jupyter-NAME``, created on first login, home 0700), the instructors' user owns a copy
of the course (masters, checkers, ``.instructor/``, gradebook) that students cannot enter, and
nbgrader's exchange gets the permissions nbgrader designed it for (outbound readable,
inbound write-only for students, feedback reachable only through its hash).

Everything here runs in the hub (as root); ``hub/jupyterhub_config.py`` wires it in.
"""

from __future__ import annotations

import grp
import hashlib
import os
import pwd
import re
import shutil
import subprocess
from pathlib import Path

from jupyterhub.spawner import LocalProcessSpawner, set_user_setuid
from traitlets import Unicode

#: TLJH's prefix: hub user ``ada`` is the OS user ``jupyter-ada``.
USER_PREFIX = "jupyter-"
STUDENTS_GROUP = "jupyter-students"
INSTRUCTORS_GROUP = "jupyter-instructors"
#: The hub role (and the group that carries it) that gets the instructor's tools.
INSTRUCTOR_ROLE = "instructor"
INSTRUCTOR_HUB_GROUP = "instructors"
#: What the course copy leaves out: tooling, caches, state of earlier runs, and ``tunelab``:
#: the grader's sandbox mounts the ``tunelab`` the grader imported, and the kernel inside imports
#: it through the venv's (editable) install, so both must be the repository's one.
COURSE_IGNORE = (
    "tunelab",
    ".git",
    ".venv",
    ".hub",
    ".tunelab",
    ".instructor",
    "build",
    "node_modules",
    "__pycache__",
    ".pytest_cache",
    ".ruff_cache",
    ".ipynb_checkpoints",
    "*.egg-info",
)
_VALID = re.compile(r"^[a-z_][a-z0-9_-]*$")


def system_name(hub_name: str) -> str:
    """The OS user of a hub user: ``jupyter-NAME`` (a hash suffix keeps it valid and <= 32)."""
    name = USER_PREFIX + hub_name.lower()
    if _VALID.fullmatch(name) and len(name) <= 32:
        return name
    digest = hashlib.sha256(hub_name.encode()).hexdigest()[:7]
    safe = re.sub(r"[^a-z0-9_-]", "-", hub_name.lower())[:16]
    return f"{USER_PREFIX}{safe}-{digest}"


def _run(cmd: list[str]) -> None:
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({done.returncode}): {done.stderr.strip()}")


def ensure_group(name: str) -> int:
    try:
        return grp.getgrnam(name).gr_gid
    except KeyError:
        _run(["groupadd", "--system", name])
        return grp.getgrnam(name).gr_gid


def ensure_system_user(
    name: str, home: Path, group: str | None = None, *, system: bool = False
) -> pwd.struct_passwd:
    """Create the OS user ``name`` once (no password: logins go through the hub), home 0700.

    It gets a private group of its own name, plus ``group`` if given."""
    try:
        entry = pwd.getpwnam(name)
    except KeyError:
        cmd = ["useradd", "--home-dir", str(home), "--no-create-home", "--user-group"]
        cmd += ["--shell", "/usr/sbin/nologin" if system else "/bin/bash"]
        if group:
            ensure_group(group)
            cmd += ["--groups", group]
        if system:
            cmd.append("--system")
        _run([*cmd, name])
        entry = pwd.getpwnam(name)
    home.mkdir(parents=True, exist_ok=True)
    if home.stat().st_uid != entry.pw_uid:
        chown_tree(home, entry.pw_uid, entry.pw_gid)  # e.g. settings put there beforehand
    home.chmod(0o700)
    return entry


def remove_system_user(name: str) -> None:
    """Delete an OS user this hub created (tests clean up with it); its home stays."""
    try:
        pwd.getpwnam(name)
    except KeyError:
        return
    subprocess.run(["userdel", name], capture_output=True)
    try:
        grp.getgrnam(name)
        subprocess.run(["groupdel", name], capture_output=True)
    except KeyError:
        pass


def chown_tree(path: Path, uid: int, gid: int) -> None:
    os.chown(path, uid, gid, follow_symlinks=False)
    for dirpath, dirnames, filenames in os.walk(path):
        for name in [*dirnames, *filenames]:
            os.chown(os.path.join(dirpath, name), uid, gid, follow_symlinks=False)


def prepare_course(repo: Path, course: Path, owner: pwd.struct_passwd) -> bool:
    """Copy the course (masters, checkers, grader, notebooks, data) into ``course`` once.

    The copy belongs to the instructors' OS user, mode 0700: students cannot even list it.
    An existing copy is kept (it holds the gradebook and the instructor's edits). Returns
    whether a copy was made."""
    made = False
    if not (course / "grader" / "nbgrader_config.py").exists():
        shutil.copytree(
            repo, course, ignore=shutil.ignore_patterns(*COURSE_IGNORE), dirs_exist_ok=True
        )
        made = True
    (course / ".instructor").mkdir(exist_ok=True)
    chown_tree(course, owner.pw_uid, owner.pw_gid)
    course.chmod(0o700)
    return made


def close_checkout(repo: Path) -> list[Path]:
    """The masters and instructor state in the repository itself: no access for others.

    Students' servers import ``tunelab`` from the repository (the course's editable install),
    so the checkout stays readable; only what holds answers or grades is closed."""
    closed = []
    for rel in ("solutions", ".instructor"):
        path = repo / rel
        if path.exists():
            path.chmod(path.stat().st_mode & 0o700)
            closed.append(path)
    return closed


def prepare_exchange(exchange: Path) -> None:
    """nbgrader's shared exchange root: everybody may create their course folder in it."""
    exchange.mkdir(parents=True, exist_ok=True)
    os.chown(exchange, 0, 0)
    exchange.chmod(0o1777)


def unreachable_python(python: Path) -> str | None:
    """Why an unprivileged user cannot run the course's Python, or None.

    Students' servers run the course's interpreter as their own OS user: every folder on the
    way to it (and to the interpreter a venv links to) must be enterable by others. A Python
    built under ``/root`` (pyenv) is not, while ``/root`` stays 0700."""
    try:
        done = subprocess.run(
            [str(python), "-c", "import jupyterhub, nbgrader, tunelab"],
            user="nobody",
            group="nogroup",
            extra_groups=[],
            capture_output=True,
            text=True,
            cwd="/",
        )
        if done.returncode == 0:
            return None
        error = (done.stderr.strip().splitlines() or ["it failed"])[-1]
    except OSError as exc:
        error = str(exc)
    real = Path(python).resolve()
    closed = [p for p in [*reversed(real.parents), real] if not os.stat(p).st_mode & 0o001]
    where = f" ({', '.join(map(str, closed))} not enterable by others)" if closed else ""
    return (
        f"other OS users cannot run the course's Python {python} -> {real}{where}: "
        f"{error}. Install the "
        "course and its .venv where every user can read them (e.g. /opt/fine-tuning-lab), "
        "or open the folder for traversal only (e.g. chmod o+x /root)"
    )


def closed_parents(path: Path) -> list[Path]:
    """The folders above ``path`` that other users cannot enter (its OS users need to)."""
    return [p for p in reversed(path.resolve().parents) if not os.stat(p).st_mode & 0o001]


def is_instructor(user) -> bool:
    """Whether a hub user holds the instructor role (directly or through a group)."""
    roles = {role.name for role in getattr(user, "roles", [])}
    for group in getattr(user, "groups", []):
        roles.update(role.name for role in getattr(group, "roles", []))
    return INSTRUCTOR_ROLE in roles


class _NoStats:
    """A statsd client that records nothing (JupyterHub 6 handlers have no ``statsd``)."""

    def timer(self, *args, **kwargs) -> _NoStats:
        return self

    def start(self) -> _NoStats:
        return self

    def stop(self, *args, **kwargs) -> None:
        return None

    def incr(self, *args, **kwargs) -> None:
        return None


def patch_nativeauthenticator() -> None:
    """Make NativeAuthenticator 1.3.0 (the latest) work with JupyterHub 6.

    Its login handler times the login with ``self.statsd``, which JupyterHub 6 removed (every
    login answered 500), and its ``_render`` does not take the ``sync`` argument JupyterHub 6
    passes when it renders an error page."""
    from nativeauthenticator import handlers

    login = handlers.LoginHandler
    if getattr(login, "_tunelab_patched", False):
        return
    if not hasattr(login, "statsd"):
        login.statsd = _NoStats()
    original = login._render

    def _render(self, login_error=None, username=None, **_ignored):
        return original(self, login_error=login_error, username=username)

    login._render = _render
    login._tunelab_patched = True


class SystemUserSpawner(LocalProcessSpawner):
    """LocalProcessSpawner whose servers run as ``jupyter-NAME`` (created by the hub's hook).

    JupyterHub's LocalProcessSpawner expects an OS user named exactly like the hub user; TLJH
    prefixes them so a hub name can never be an existing system account (``root``, ``bin``).
    """

    course_dir = Unicode("", help="The instructors' course folder (their server's root).").tag(
        config=True
    )

    @property
    def system_user(self) -> str:
        return system_name(self.user.name)

    def make_preexec_fn(self, name: str):
        return set_user_setuid(self.system_user)

    def user_env(self, env: dict) -> dict:
        entry = pwd.getpwnam(self.system_user)
        env["USER"] = env["LOGNAME"] = entry.pw_name
        env["HOME"] = entry.pw_dir
        env["SHELL"] = entry.pw_shell
        return env


def instructor_bashrc(course: Path, venv_bin: Path) -> str:
    """The rc file of the instructor's terminals: the course's ``python`` first, in the course.

    JupyterLab's terminal would start ``bash -l``, and Debian's ``/etc/profile`` resets PATH
    for every user but root, so ``python -m grader`` was "command not found"."""
    return (
        "# Written by hub/jupyterhub_config.py: the instructor's terminal.\n"
        "[ -f /etc/bash.bashrc ] && . /etc/bash.bashrc\n"
        '[ -f "$HOME/.bashrc" ] && . "$HOME/.bashrc"\n'
        f'export PATH="{venv_bin}:$PATH"\n'
        f'[ "$PWD" = "$HOME" ] && cd "{course}"\n'
    )


def student_bashrc(venv_bin: Path) -> str:
    return (
        "# Written by hub/jupyterhub_config.py: the course's python first.\n"
        "[ -f /etc/bash.bashrc ] && . /etc/bash.bashrc\n"
        '[ -f "$HOME/.bashrc" ] && . "$HOME/.bashrc"\n'
        f'export PATH="{venv_bin}:$PATH"\n'
    )
