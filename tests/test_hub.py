"""A whole class on JupyterHub, in a real browser: sign-up, release, submit, grade, feedback.

Why: ``tests/test_browser.py`` covers one student's JupyterLab. A class adds what only a hub
has: several users who must be kept apart, nbgrader's exchange between them, the
instructor's formgrader, students who must not see instructor tools, and a tuning emulator
shared by everybody. This module starts the README's command (``python3 -m tunelab.bootstrap
hub --headless``, the class mode: one OS user per hub user, NativeAuthenticator logins) as a
real process on free ports with its state in a temporary folder -- one hub and one browser
for the whole run (session fixtures) -- and with Playwright driving Debian's chromium. The
hub runs from a class environment every OS user can read (``bootstrap.ensure_class_env``:
a venv made from the system's Python, the course's code beside it) under /tmp, installed
once and reused by later runs until the requirements change; ``bootstrap test`` installs it
before pytest starts. As root only (the hub creates OS users), never by opening /root:

1. the instructor signs up, students sign up, the instructor approves them at
   ``/hub/authorize``; everybody logs in with their own password;
2. the instructor opens Nbgrader > Formgrader (formgrader inside JupyterLab's tab) and
   releases ``sql_overfitting`` and ``quiz`` with its release buttons (the lessons were
   released when the hub started);
3. two students (their Nbgrader menu has the Assignment List only, formgrader and the
   instructor's server are not served to them) fetch both, answer (student1 with the master
   solution's answers, student2 only the first half), Validate in the notebook and Submit;
   student3 logs in and never submits;
4. the instructor collects with formgrader's collect buttons, and in a JupyterLab terminal
   (File > New > Terminal) runs README's ``python -m grader autograde`` (sandboxed, trusted
   verdicts), grades Part 9 (``p9-justification``) by hand in formgrader, runs ``python -m
   grader feedback`` and ``python -m grader export`` (``grades.csv``: student3 "no
   submission") and releases the feedback with formgrader's buttons;
5. each student fetches the feedback from the Assignment List and opens it with *(view
   feedback)* (the page opens in JupyterLab's HTML viewer).

``test_students_are_kept_apart`` then checks, as the student's OS user, that the class
mode's walls hold: no root, no masters, checkers, gradebook, ``.instructor/``, other homes,
inbound submissions, hub secrets or another student's emulator jobs.

Screenshots of each step go to ``build/screenshots/hub/`` (git-ignored).
"""

from __future__ import annotations

import contextlib
import csv
import grp
import itertools
import os
import pwd
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

pytestmark = [pytest.mark.browser, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "hub"))
import tunelab_hub  # noqa: E402  (hub/tunelab_hub.py: OS user names)
from browser_support import (  # noqa: E402  (tests/: the shared browser-test plumbing)
    SCREENSHOTS,
    browser_unavailable,
    chromium,
    free_port,
    new_page,
    screenshot,
    start_logged,
    stop_process_group,
    wait_for_http,
    write_lab_settings,
)
from processes import descendants, process_table  # noqa: E402

from tunelab import bootstrap  # noqa: E402

PROXY = ROOT / ".hub" / "node_modules" / ".bin" / "configurable-http-proxy"
SHOTS = SCREENSHOTS / "hub"
ASSIGNMENTS = ("sql_overfitting", "quiz")
LESSONS = tuple(
    sorted(p.name for p in (ROOT / "notebooks").iterdir() if re.match(r"\d\d_", p.name))
)
#: Every hub user signs up with their own password (NativeAuthenticator).
PASSWORDS = {
    "instructor": "teach-Fine-2026",
    "student1": "s1-Overfit-77",
    "student2": "s2-Plateau-42",
    "student3": "s3-Diverge-19",
}
USERS = tuple(PASSWORDS)
MANUAL = "p9-justification"
TIME_SCALE = "20000"  # the shared emulator and grading: tuning jobs take milliseconds
SERVER_TIMEOUT = 180
UI_TIMEOUT_MS = 240_000


@dataclass
class Hub:
    base: str
    dir: Path
    log: Path
    pid: int  # the bootstrap process; JupyterHub is its child
    started_in: float = 0.0
    contexts: dict = field(default_factory=dict)  # user -> (browser context, page)

    def home(self, user: str) -> Path:
        return self.dir / "homes" / user

    @property
    def course(self) -> Path:
        return self.dir / "course"

    @property
    def instructor_root(self) -> Path:
        return self.course / ".instructor"


def hub_unavailable() -> str | None:
    """Why the hub test cannot run here, or None."""
    reason = browser_unavailable()
    if reason:
        return reason
    if not PROXY.exists() and not (shutil.which("npm") and shutil.which("node")):
        return "JupyterHub's proxy needs node and npm (apt-get install nodejs npm)"
    if os.geteuid() != 0:
        return "the class hub creates OS users: run the hub test as root"
    try:
        bootstrap.system_python()  # the class venv's base: one every OS user can run
    except SystemExit as exc:
        return str(exc)
    return None


def class_env() -> tuple[Path, Path]:
    """The class environment the hub runs from (``bootstrap hub --prefix``): installed once
    under /tmp, then reused until the requirements change; (prefix, its venv's python)."""
    prefix = bootstrap.test_class_prefix()
    return prefix, bootstrap.ensure_class_env(prefix)


def _os_users() -> set[str]:
    return {e.pw_name for e in pwd.getpwall()}


def _remove_os_users(before: set[str], hub_dir: Path) -> None:
    """Delete the OS users this hub created (jupyter-*, tunelab-emulator: home in hub_dir)."""
    for name in sorted(_os_users() - before):
        home = pwd.getpwnam(name).pw_dir
        ours = name.startswith(tunelab_hub.USER_PREFIX) or name == "tunelab-emulator"
        if ours and Path(home).is_relative_to(hub_dir):
            tunelab_hub.remove_system_user(name)
    for group in (tunelab_hub.STUDENTS_GROUP, tunelab_hub.INSTRUCTORS_GROUP):
        with contextlib.suppress(KeyError):
            grp.getgrnam(group)
            if not grp.getgrnam(group).gr_mem:
                subprocess.run(["groupdel", group], capture_output=True)


@contextlib.contextmanager
def start_hub(tmp: Path, users: tuple[str, ...] = USERS):
    """The README's ``bootstrap hub --headless`` on a free port, state in ``tmp/state``, run
    from the cached class environment (:func:`class_env`).

    One hub at a time uses that environment (a lock beside it: another test run waits).
    Afterwards the OS users it made are deleted and the repository's closed folders
    (``solutions/``) get their mode back."""
    import fcntl

    prefix, _python = class_env()
    lock = (prefix.parent / f"{prefix.name}.tests.lock").open("w")
    fcntl.flock(lock, fcntl.LOCK_EX)
    try:
        with _start_hub(tmp, prefix, users) as running:
            yield running
    finally:
        lock.close()


@contextlib.contextmanager
def _start_hub(tmp: Path, prefix: Path, users: tuple[str, ...]):
    hub_dir = tmp / "state"
    for user in users:  # no news pop-up (it can cover buttons), every cell rendered
        write_lab_settings(hub_dir / "homes" / user / ".jupyter" / "lab" / "user-settings")
    port = free_port()
    env = {
        **os.environ,
        "TUNELAB_TIME_SCALE": TIME_SCALE,
        "PYTHONUNBUFFERED": "1",
    }
    for name in ("TUNELAB_ENDPOINT", "TUNELAB_INSTRUCTOR_ROOT", "JUPYTER_CONFIG_PATH"):
        env.pop(name, None)
    python = shutil.which("python3") or sys.executable
    cmd = [python, "-m", "tunelab.bootstrap", "hub", "--headless", "--port", str(port)]
    cmd += ["--hub-dir", str(hub_dir), "--prefix", str(prefix)]
    log = tmp / "hub.log"
    users_before = _os_users()
    modes = {p: p.stat().st_mode for p in (ROOT / "solutions",)}
    started = time.monotonic()
    proc = start_logged(cmd, log, env=env)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for_http(f"{base}/hub/api", proc, log, what="bootstrap hub", timeout=SERVER_TIMEOUT)
        text = log.read_text()
        assert f"class hub at {base}/" in text and "hub/signup" in text, text[-2000:]
        yield Hub(base, hub_dir, log, proc.pid, started_in=time.monotonic() - started)
    finally:
        # SIGTERM to the bootstrap alone: JupyterHub stops the users' servers itself
        stop_process_group(proc, ((signal.SIGTERM, 45.0),), leader_only=True)
        _remove_os_users(users_before, hub_dir)
        for path, mode in modes.items():
            path.chmod(mode)


@contextlib.contextmanager
def hub_folder() -> Iterator[Path]:
    """A fresh folder the hub's OS users can enter (pytest's tmp folders are 0700)."""
    folder = Path(tempfile.mkdtemp(prefix="tunelab-hub-"))
    folder.chmod(0o711)
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="session")
def hub() -> Iterator[Hub]:
    """One class hub for the whole run (its environment cached across runs)."""
    reason = hub_unavailable()
    if reason:
        pytest.skip(reason)
    with hub_folder() as tmp, start_hub(tmp) as running:
        yield running


@pytest.fixture(scope="module")
def browser(hub):
    """Closed with this module: an open Playwright keeps its event loop in this worker's main
    thread, and every browser module the worker runs next would fail to start its own."""
    with chromium() as running:
        yield running


def _shot(page, name: str) -> None:
    screenshot(page, SHOTS, name)


def _context(browser):
    return new_page(browser, timeout_ms=UI_TIMEOUT_MS)


def _signup(browser, hub: Hub, user: str) -> str:
    """Sign up at /hub/signup with the user's own password; the page's message."""
    context, page = _context(browser)
    page.goto(f"{hub.base}/hub/signup")
    page.fill("#username_input", user)
    page.fill("#password_input", PASSWORDS[user])
    page.fill("#password_confirmation_input", PASSWORDS[user])
    page.click("#signup_submit")
    message = page.locator(".alert").first
    message.wait_for(state="visible")
    text = message.inner_text()
    _shot(page, f"00_signup_{user}.png")
    context.close()
    return text


def _login_page(browser, hub: Hub, user: str, password: str):
    context, page = _context(browser)
    page.goto(f"{hub.base}/hub/login")
    page.fill("#username_input", user)
    page.fill("#password_input", password)
    page.click("#login_submit")
    return context, page


def _login(browser, hub: Hub, user: str):
    """A browser context logged in as ``user``, on that user's running JupyterLab."""
    context, page = _login_page(browser, hub, user, PASSWORDS[user])
    page.wait_for_url(re.compile(rf".*/user/{user}/lab.*"))
    page.locator(".jp-Launcher").first.wait_for(state="visible")
    return context, page


def _approve(page, hub: Hub, user: str) -> None:
    """The instructor approves a sign-up on NativeAuthenticator's /hub/authorize page."""
    page.goto(f"{hub.base}/hub/authorize")
    page.locator(f"a[href$='authorize/{user}']").first.click()
    page.wait_for_url(re.compile(r".*/hub/authorize.*"))
    row = page.locator("tr", has_text=user).first
    row.get_by_role("button", name="Unauthorize").wait_for(state="visible")


def _nbgrader_menu(page) -> list[str]:
    page.locator(".lm-MenuBar-itemLabel", has_text=re.compile("^Nbgrader$")).click()
    menu = page.locator(".lm-Menu-content").last
    menu.wait_for(state="visible")
    items = [t.strip() for t in menu.locator(".lm-Menu-itemLabel").all_inner_texts()]
    return [t for t in items if t]


def _assignment_list(page) -> None:
    """Open nbgrader's Assignment List (Nbgrader menu) and wait until it has loaded."""
    if "Assignment List" not in _nbgrader_menu(page):
        pytest.fail("the Nbgrader menu has no Assignment List")
    page.locator(".lm-Menu-itemLabel", has_text=re.compile("^Assignment List$")).click()
    for part in ("released", "fetched", "submitted"):
        page.locator(f"#{part}_assignments_list_loading").wait_for(state="hidden")


def _list_button(page, section: str, assignment: str, label: str):
    row = page.locator(f"#{section}_assignments_list .list_item", has_text=assignment).first
    return row.get_by_role("button", name=label)


def _formgrader_in_lab(page):
    """Nbgrader > Formgrader: formgrader in JupyterLab's tab (an iframe); its frame."""
    _nbgrader_menu(page)
    page.locator(".lm-Menu-itemLabel", has_text=re.compile("^Formgrader$")).click()
    frame = page.frame_locator(".jp-MainAreaWidget:visible iframe").first
    frame.locator("td.name", has_text="sql_overfitting").first.wait_for(state="visible")
    return frame


def _formgrader(page, hub: Hub) -> None:
    page.goto(f"{hub.base}/user/instructor/formgrader")
    page.locator("td.name", has_text="sql_overfitting").first.wait_for(state="visible")


def _formgrader_action(scope, page, assignment: str, column: str, name: str) -> str:
    """Click one of formgrader's per-assignment buttons (in ``scope``: the page or the tab's
    frame); return the success dialog's text."""
    row = scope.locator("tr", has=scope.locator("td.name", has_text=assignment)).first
    row.locator(f"td.{column} a").click()
    dialog = scope.locator(".modal-dialog").last
    dialog.wait_for(state="visible")
    text = dialog.inner_text()
    _shot(page, name)
    assert "Success" in text, f"formgrader {column} {assignment}: {text[:3000]}"
    dialog.locator("button", has_text=re.compile("Close|OK", re.I)).first.click()
    scope.locator(".modal-dialog").first.wait_for(state="detached")
    return text


def _fill_answers(notebook: Path, assignment: str, complete: bool) -> int:
    """Type the master's answers into a fetched copy (all of them, or the first half)."""
    import nbformat

    from grader.demo import _solution_sources

    master = nbformat.read(ROOT / "solutions" / assignment / f"{assignment}.ipynb", as_version=4)
    answers = _solution_sources(master)
    ids = list(answers)
    chosen = ids if complete else ids[: max(1, len(ids) // 2)]
    nb = nbformat.read(notebook, as_version=4)
    filled = 0
    for cell in nb.cells:
        grade_id = cell.metadata.get("nbgrader", {}).get("grade_id")
        if grade_id in chosen:
            cell.source = answers[grade_id]
            filled += 1
    nbformat.write(nb, notebook)  # the file stays the student's (written in place)
    return filled


def _validate(page, hub: Hub, user: str, assignment: str) -> str:
    page.goto(f"{hub.base}/user/{user}/lab/tree/{assignment}/{assignment}.ipynb?reset")
    page.locator(".jp-NotebookPanel .jp-Cell").first.wait_for(state="visible")
    page.locator(".validate-button:visible").first.click()
    dialog = page.locator(".jp-Dialog")
    dialog.wait_for(state="visible")
    body = dialog.locator(".jp-Dialog-body").inner_text()
    _shot(page, f"05_{user}_{assignment}_validate.png")
    dialog.get_by_role("button", name=re.compile("OK", re.I)).first.click()
    dialog.wait_for(state="detached")
    return body


class Terminal:
    """The instructor's JupyterLab terminal (File > New > Terminal), typed into like a person.

    Each command's output goes to a file in the instructor's home (the xterm canvas cannot be
    read back reliably), with its exit status after it. The files are numbered across every
    terminal of the run and removed before the command is typed: a second terminal that
    found the first one's status file would read an earlier command's result as its own (the
    export step once "passed" before ``grades.csv`` was written)."""

    _numbers = itertools.count(1)

    def __init__(self, page, hub: Hub, user: str = "instructor") -> None:
        self.page, self.hub, self.user = page, hub, user
        page.locator(".lm-MenuBar-itemLabel", has_text=re.compile("^File$")).click()
        page.locator(".lm-Menu-itemLabel", has_text=re.compile("^New$")).first.hover()
        page.locator(".lm-Menu-itemLabel", has_text=re.compile("^Terminal$")).first.click()
        self.box = page.locator(".jp-Terminal:visible").first
        self.box.wait_for(state="visible")
        page.wait_for_timeout(1500)  # the shell's prompt

    def run(self, command: str, timeout: float = 900) -> tuple[int, str]:
        n = next(self._numbers)
        out = self.hub.home(self.user) / f".terminal-{n}.log"
        done = self.hub.home(self.user) / f".terminal-{n}.rc"
        for path in (out, done):
            path.unlink(missing_ok=True)
        self.box.click()
        self.page.keyboard.type(
            f"{{ {command}; }} > ~/{out.name} 2>&1; echo $? > ~/{done.name}", delay=5
        )
        self.page.keyboard.press("Enter")
        deadline = time.monotonic() + timeout
        while not (done.exists() and done.read_text().strip()):
            if time.monotonic() > deadline:
                raise AssertionError(f"{command!r} did not finish in the terminal")
            time.sleep(0.5)
        return int(done.read_text()), out.read_text(errors="replace")

    def check(self, command: str, timeout: float = 900) -> str:
        rc, text = self.run(command, timeout)
        assert rc == 0, f"{command} (exit {rc}):\n{text[-4000:]}"
        return text


def _server_env(user: str) -> dict[str, str]:
    """The environment of ``user``'s running single-user server (a local process here)."""
    return _server(user)[1]


def _server(user: str) -> tuple[int, dict[str, str]]:
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes()
            if b"jupyterhub-singleuser" not in cmdline:
                continue
            raw = (proc / "environ").read_bytes()
        except OSError:
            continue
        env = dict(item.split("=", 1) for item in raw.decode().split("\0") if "=" in item)
        if env.get("JUPYTERHUB_USER") == user:
            return int(proc.name), env
    raise AssertionError(f"no running server for {user}")


def _as_user(user: str, *cmd: str) -> subprocess.CompletedProcess:
    """Run ``cmd`` as the hub user's OS user (what their terminal runs as)."""
    return subprocess.run(
        ["runuser", "-u", tunelab_hub.system_name(user), "--", *cmd],
        capture_output=True,
        text=True,
        cwd="/",
        timeout=60,
    )


def sign_up_class(hub: Hub, browser, students: tuple[str, ...]) -> dict[str, float]:
    """Instructor and students sign up; the instructor approves the students."""
    timings = {}
    t0 = time.monotonic()
    text = _signup(browser, hub, "instructor")
    assert "signup was successful" in text, text  # an instructor (hub admin) needs no approval
    for user in students:
        text = _signup(browser, hub, user)
        assert "sent to the admin" in text, text  # waits for the instructor's approval
    # not approved yet: no login
    ctx, page = _login_page(browser, hub, students[0], PASSWORDS[students[0]])
    page.locator(".login_error, .alert").first.wait_for(state="visible")
    assert "/user/" not in page.url
    ctx.close()
    ctx, page = _login(browser, hub, "instructor")
    hub.contexts["instructor"] = (ctx, page)
    for user in students:
        _approve(page, hub, user)
    _shot(page, "00_authorize.png")
    # a wrong password is refused
    ctx, bad = _login_page(browser, hub, students[0], "not-" + PASSWORDS[students[0]])
    bad.locator(".login_error, .alert").first.wait_for(state="visible")
    assert "/user/" not in bad.url
    ctx.close()
    timings["sign-up and approval"] = time.monotonic() - t0
    return timings


def run_class(hub: Hub, browser, on_active=None) -> dict[str, float]:
    """The whole round trip (module docstring); returns step timings in seconds.

    ``on_active()`` is called while the students' servers (and kernels) are running."""
    from nbgrader.api import Gradebook

    students = {"student1": True, "student2": False}  # complete / partial
    timings = sign_up_class(hub, browser, (*students, "student3"))
    instructor = hub.contexts["instructor"][1]

    # 1. The instructor releases both assignments in formgrader, inside JupyterLab.
    instructor.goto(f"{hub.base}/user/instructor/lab?reset")  # a fresh layout: the Launcher
    instructor.locator(".jp-Launcher").first.wait_for(state="visible")
    menu = _nbgrader_menu(instructor)
    _shot(instructor, "01_instructor_nbgrader_menu.png")
    instructor.keyboard.press("Escape")
    assert {"Formgrader", "Create assignment", "Course List"} <= set(menu), menu
    frame = _formgrader_in_lab(instructor)
    _shot(instructor, "02_formgrader_in_jupyterlab.png")
    # the lessons were released when the hub started; formgrader's Generate button is gone
    outbound = hub.dir / "exchange" / "fine-tuning-lab" / "outbound"
    assert sorted(p.name for p in outbound.iterdir()) == sorted(LESSONS)
    assert not frame.locator("td.assign a:visible").count()
    released_at = time.monotonic()
    for assignment in ASSIGNMENTS:
        _formgrader_action(frame, instructor, assignment, "release", f"03_release_{assignment}.png")
    assert sorted(p.name for p in outbound.iterdir()) == sorted([*LESSONS, *ASSIGNMENTS])
    reply = instructor.request.post(
        f"{hub.base}/user/instructor/formgrader/api/assignment/quiz/assign",
        headers={
            "X-XSRFToken": next(
                c["value"] for c in instructor.context.cookies() if c["name"] == "_xsrf"
            )
        },
    )
    assert "python -m grader release" in reply.text(), reply.text()[:500]

    # 2. Students: student tools only; fetch, answer, Validate, Submit.
    for user, complete in students.items():
        ctx, page = _login(browser, hub, user)
        hub.contexts[user] = (ctx, page)
        menu = _nbgrader_menu(page)
        page.keyboard.press("Escape")
        assert menu == ["Assignment List"], f"{user} sees instructor tools: {menu}"
        reply = page.request.get(f"{hub.base}/user/{user}/formgrader")
        assert reply.status == 404, f"formgrader is served to {user}: {reply.status}"
        for path in ("formgrader", "lab", "api/contents"):
            reply = page.request.get(f"{hub.base}/user/instructor/{path}")
            assert reply.status in (403, 404) or "/user/instructor/" not in reply.url, (
                f"{user} reached the instructor's server: /user/instructor/{path} {reply.status}"
            )
        _assignment_list(page)
        for assignment in ASSIGNMENTS:
            _list_button(page, "released", assignment, "Fetch").click()
            _list_button(page, "fetched", assignment, "Submit").wait_for(state="visible")
        _shot(page, f"04_{user}_fetched.png")
        for assignment in ASSIGNMENTS:
            notebook = hub.home(user) / assignment / f"{assignment}.ipynb"
            assert notebook.exists(), f"{user} did not fetch {assignment}"
            assert _fill_answers(notebook, assignment, complete) > 0
            body = _validate(page, hub, user, assignment)
            if complete:
                assert "Success" in body and "failed" not in body, f"{assignment}: {body[-3000:]}"
            else:
                assert re.search(r"cells? failed|VALIDATION FAILED", body), body[:2000]
        _assignment_list(page)
        for assignment in ASSIGNMENTS:
            _list_button(page, "fetched", assignment, "Submit").click()
            _list_button(page, "submitted", assignment, "Fetch Feedback").wait_for(state="visible")
        _shot(page, f"06_{user}_submitted.png")
        # The lessons' kernels reach the class's shared emulator with the user's own token.
        endpoint = _server_env(user)["TUNELAB_ENDPOINT"]
        assert "/u/" in endpoint, endpoint
        reply = page.request.get(f"{endpoint}/v1beta/tunedModels?key=x")
        assert reply.status == 200, f"{user}: shared emulator {endpoint}: {reply.status}"
    # student3 logs in (the hub puts them on the class list) and never submits
    ctx, _page = _login(browser, hub, "student3")
    ctx.close()
    timings["students fetched, answered, validated, submitted"] = time.monotonic() - released_at
    if on_active is not None:
        on_active()

    # 3. The instructor collects (formgrader), autogrades in a terminal, grades Part 9.
    _formgrader(instructor, hub)
    for assignment in ASSIGNMENTS:
        _formgrader_action(
            instructor, instructor, assignment, "collect", f"07_collect_{assignment}.png"
        )
    submitted = hub.instructor_root / "submitted"
    for user in students:
        for assignment in ASSIGNMENTS:
            assert (submitted / user / assignment / f"{assignment}.ipynb").exists()
    instructor.goto(f"{hub.base}/user/instructor/lab?reset")  # a fresh layout: the Launcher
    instructor.locator(".jp-Launcher").first.wait_for(state="visible")
    terminal = Terminal(instructor, hub)
    where = terminal.check("pwd; id -u; which python")
    _shot(instructor, "07_instructor_terminal.png")
    lines = where.split()
    assert lines[0] == str(hub.course), where
    assert lines[1] != "0", where
    assert lines[2] == str(bootstrap.test_class_prefix() / "venv" / "bin" / "python"), where
    t0 = time.monotonic()
    for assignment in ASSIGNMENTS:
        out = terminal.check(f"python -m grader autograde {assignment}")
        assert "graded: 2" in out and "not graded: 0" in out, out
        assert ", sandboxed)" in out and "NOT sandboxed" not in out, out
    timings["autograde (sandboxed)"] = time.monotonic() - t0

    db_url = f"sqlite:///{hub.instructor_root / 'gradebook.db'}"
    with Gradebook(db_url) as gb:
        submission = gb.find_submission_notebook("sql_overfitting", "sql_overfitting", "student1")
        submission_id = submission.id
        auto_total = {u: gb.find_submission("sql_overfitting", u).score for u in students}
    instructor.goto(f"{hub.base}/user/instructor/formgrader/gradebook/sql_overfitting")
    instructor.locator("td", has_text="sql_overfitting").first.wait_for(state="visible")
    _shot(instructor, "08_manual_grading.png")
    instructor.goto(f"{hub.base}/user/instructor/formgrader/submissions/{submission_id}")
    score = instructor.locator(f"input.score#{MANUAL}")
    score.wait_for(state="visible")
    score.scroll_into_view_if_needed()
    score.fill("1")
    score.press("Tab")
    with Gradebook(db_url) as gb:
        deadline = time.monotonic() + 30
        while True:
            grade = gb.find_grade(MANUAL, "sql_overfitting", "sql_overfitting", "student1")
            gb.db.refresh(grade)
            if grade.manual_score == 1 or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        assert grade.manual_score == 1, "formgrader did not save the Part 9 score"
    _shot(instructor, "09_p9_graded_in_formgrader.png")

    # 4. Feedback and grades.csv (terminal), then formgrader releases the feedback.
    instructor.goto(f"{hub.base}/user/instructor/lab?reset")  # a fresh layout: the Launcher
    instructor.locator(".jp-Launcher").first.wait_for(state="visible")
    terminal = Terminal(instructor, hub)
    for assignment in ASSIGNMENTS:
        terminal.check(f"python -m grader feedback {assignment}")
    exported = terminal.check("python -m grader export")
    assert "Exported" in exported and "grades.csv" in exported, exported
    with (hub.instructor_root / "exports" / "grades.csv").open() as fh:
        rows = {(r["student_id"], r["assignment"]): r for r in csv.DictReader(fh)}
    s1 = rows[("student1", "sql_overfitting")]
    assert float(s1["raw_score"]) == pytest.approx(auto_total["student1"] + 1), s1
    assert float(s1["raw_score"]) == float(s1["max_score"]), s1
    assert float(rows[("student2", "sql_overfitting")]["raw_score"]) < float(s1["raw_score"])
    for assignment in ASSIGNMENTS:
        absent = rows[("student3", assignment)]
        assert absent["status"] == "no submission", absent
    _formgrader(instructor, hub)
    for assignment in ASSIGNMENTS:
        _formgrader_action(
            instructor,
            instructor,
            assignment,
            "release-feedback",
            f"10_release_feedback_{assignment}.png",
        )

    # 5. Each student fetches the feedback in the Assignment List and opens it.
    for user in students:
        _ctx, page = hub.contexts[user]
        page.goto(f"{hub.base}/user/{user}/lab?reset")
        page.locator(".jp-Launcher").first.wait_for(state="visible")
        _assignment_list(page)
        for assignment in ASSIGNMENTS:
            _list_button(page, "submitted", assignment, "Fetch Feedback").click()
            page.get_by_text("(view feedback)").nth(ASSIGNMENTS.index(assignment)).wait_for(
                state="visible"
            )
        _shot(page, f"11_{user}_feedback_fetched.png")
        pages = sorted((hub.home(user) / "sql_overfitting" / "feedback").glob("*/*.html"))
        assert pages, f"{user} has no feedback page"
        # "(view feedback)" opens the page (hub/jupyter/labextensions/tunelab-feedback-link)
        row = page.locator("#submitted_assignments_list .list_item", has_text="sql_overfitting")
        row.first.get_by_text("(view feedback)").click()
        viewer = page.locator(".jp-HTMLViewer:visible").first
        viewer.wait_for(state="visible")
        tab = page.locator(".lm-DockPanel-tabBar .lm-TabBar-tab.lm-mod-current").first
        assert "sql_overfitting.html" in tab.inner_text(), tab.inner_text()
        body = page.frame_locator(".jp-HTMLViewer:visible iframe").first.locator("body")
        body.get_by_text("sql_overfitting").first.wait_for(state="visible")
        text = body.inner_text()
        _shot(page, f"12_{user}_feedback.png")
        total = rows[(user, "sql_overfitting")]
        score = f"sql_overfitting (Score: {float(total['raw_score']):.1f} / "
        assert score in text, f"{user}'s feedback lacks {score!r}: {text[:1000]}"
        if students[user]:
            assert "Written response (Score: 1.0 / 1.0)" in text, text[:2000]
        assert str(hub.course) not in text and str(ROOT) not in text, (
            f"{user}'s feedback shows the instructor's path"
        )
    timings["release to feedback fetched (2 students)"] = time.monotonic() - released_at
    return timings


def hub_memory(root_pid: int) -> dict[str, int]:
    """RSS (bytes) by role of every process below the bootstrap: hub, proxy, emulator, and
    each user's server with its kernels (tests/processes.py reads /proc)."""
    table = process_table()
    roles: dict[str, int] = {}
    for pid in descendants(table, root_pid):
        if pid not in table:
            continue
        info = table[pid]
        rss = info.rss
        if "jupyterhub-singleuser" in info.cmd:
            role = f"server+kernels {info.user}"
            rss = sum(table[p].rss for p in descendants(table, pid) if p in table)
        elif "configurable-http-proxy" in info.cmd:
            role = "proxy"
        elif "tunelab.emulator" in info.cmd:
            role = "emulator"
        elif "jupyterhub" in info.cmd:
            role = "hub"
        else:
            continue
        roles[role] = roles.get(role, 0) + rss
    return roles


def print_sizing(hub: Hub, sample: dict[str, int], active: list[str], size: int = 30) -> None:
    """The hub's start time and memory, measured and extrapolated linearly to ``size``."""
    mib = 2**20
    shared = sum(sample.get(r, 0) for r in ("hub", "proxy", "emulator"))
    per = [sample[f"server+kernels {u}"] for u in active if f"server+kernels {u}" in sample]
    mean = sum(per) / max(1, len(per))
    teacher = sample.get("server+kernels instructor", 0)
    print(f"hub sizing: hub start {hub.started_in:.1f} s")
    for role in sorted(sample):
        print(f"hub sizing:   {role}: {sample[role] / mib:.0f} MiB")
    print(f"hub sizing: per active student (server + kernels): {mean / mib:.0f} MiB")
    students = sorted(r for r in sample if r.startswith("server+kernels student"))
    measured = shared + teacher + sum(sample[r] for r in students)
    print(
        f"hub sizing: {len(students)} students (measured): {measured / mib:.0f} MiB in all "
        f"(shared {shared / mib:.0f} + instructor {teacher / mib:.0f} + students)"
    )
    total = shared + teacher + size * mean
    print(
        f"hub sizing: {size} active students (extrapolated): {total / mib:.0f} MiB "
        f"= {shared / mib:.0f} + {teacher / mib:.0f} + {size} x {mean / mib:.0f}"
    )


@pytest.fixture(scope="module")
def class_run(hub, browser) -> dict[str, float]:
    """The round trip, once per module (the isolation test inspects what it left)."""
    started = time.monotonic()
    sample: dict[str, int] = {}
    timings = run_class(hub, browser, on_active=lambda: sample.update(hub_memory(hub.pid)))
    timings["whole round trip"] = time.monotonic() - started
    print_sizing(hub, sample, ["student1", "student2"])
    return timings


@pytest.mark.timeout(2400)
def test_a_class_round_trip_on_jupyterhub(hub, class_run):
    print(f"hub round trip: hub up in {hub.started_in:.1f} s")
    for what, seconds in class_run.items():
        print(f"hub round trip: {what}: {seconds:.1f} s")


def _denied(result: subprocess.CompletedProcess, what: str) -> None:
    assert result.returncode != 0 and "Permission denied" in result.stderr, (
        f"{what}: exit {result.returncode}, {result.stdout[:300]!r} {result.stderr[:300]!r}"
    )


@pytest.mark.timeout(600)
def test_students_are_kept_apart(hub, class_run):
    """As student1's OS user: no root, no answers, no grades, nobody else's work."""
    pid, env = _server("student1")
    status = Path(f"/proc/{pid}/status").read_text()
    uid = int(re.search(r"^Uid:\s+(\d+)", status, re.M).group(1))
    assert uid != 0, "student1's server runs as root"
    assert uid == pwd.getpwnam(tunelab_hub.system_name("student1")).pw_uid
    assert _as_user("student1", "id", "-u").stdout.strip() == str(uid)
    assert env["HOME"] == str(hub.home("student1"))
    exchange = hub.dir / "exchange" / "fine-tuning-lab"
    master = "solutions/sql_overfitting/sql_overfitting.ipynb"
    for what, cmd in {
        "the course's masters": ["cat", str(hub.course / master)],
        "the repository's masters": ["cat", str(ROOT / master)],
        "the checker": ["cat", str(hub.course / "solutions/sql_overfitting/checker.py")],
        "the course folder": ["ls", str(hub.course)],
        ".instructor/": ["ls", str(hub.instructor_root)],
        "the gradebook": ["cat", str(hub.instructor_root / "gradebook.db")],
        "grades.csv": ["cat", str(hub.instructor_root / "exports" / "grades.csv")],
        "another student's home": ["ls", str(hub.home("student2"))],
        "another student's notebook": [
            "cat",
            str(hub.home("student2") / "sql_overfitting" / "sql_overfitting.ipynb"),
        ],
        "the exchange's inbound": ["ls", str(exchange / "inbound")],
        "the exchange's feedback": ["ls", str(exchange / "feedback")],
        "the hub's cookie secret": ["cat", str(hub.dir / "hub" / "jupyterhub_cookie_secret")],
        "the hub's database": ["cat", str(hub.dir / "hub" / "jupyterhub.sqlite")],
        "the emulator's state": ["ls", str(hub.dir / "emulator")],
        "the instructor's environment": ["cat", f"/proc/{_server('instructor')[0]}/environ"],
        "student2's environment (their token)": ["cat", f"/proc/{_server('student2')[0]}/environ"],
    }.items():
        _denied(_as_user("student1", *cmd), what)
    # the class environment every user reads holds no answers
    src = bootstrap.test_class_prefix() / "src"
    assert (src / "tunelab").is_dir() and not (src / "solutions").exists()
    assert not list(src.rglob("checker.py")) and not list(src.rglob("*.ipynb"))
    # their own: fine
    assert _as_user("student1", "ls", str(hub.home("student1"))).returncode == 0
    assert _as_user("student1", "ls", str(exchange / "outbound")).returncode == 0
    # the instructor's OS user owns the course and is not root either
    owner = pwd.getpwuid(hub.course.stat().st_uid).pw_name
    assert owner == tunelab_hub.system_name("instructor"), owner
    assert hub.course.stat().st_mode & 0o007 == 0


@pytest.mark.timeout(600)
def test_students_cannot_reach_each_others_emulator_jobs(hub, class_run):
    import httpx

    mine = _server_env("student1")["TUNELAB_ENDPOINT"]
    theirs = _server_env("student2")["TUNELAB_ENDPOINT"]
    teacher = _server_env("instructor")["TUNELAB_ENDPOINT"]
    key = {"x-goog-api-key": "offline-emulator"}  # what the lessons pass: any key
    body = {
        "baseModel": "models/gemini-1.5-flash-001-tuning",
        "tuningTask": {
            "hyperparameters": {"epochCount": 1},
            "trainingData": {
                "examples": {
                    "examples": [{"textInput": f"q{i}", "output": f"a{i}"} for i in range(20)]
                }
            },
        },
    }
    made = httpx.post(f"{theirs}/v1beta/tunedModels?tunedModelId=s2-model", json=body, headers=key)
    assert made.status_code == 200, made.text
    listed = httpx.get(f"{mine}/v1beta/tunedModels", headers=key).json().get("tunedModels", [])
    assert "tunedModels/s2-model" not in {m["name"] for m in listed}
    for method, path in (
        ("GET", "/v1beta/tunedModels/s2-model"),
        ("DELETE", "/v1beta/tunedModels/s2-model"),
        ("POST", "/v1beta/tunedModels/s2-model:generateContent"),
    ):
        reply = httpx.request(method, f"{mine}{path}", headers=key, json={})
        assert reply.status_code == 403, (method, path, reply.text)
    assert httpx.get(f"{theirs}/v1beta/tunedModels/s2-model", headers=key).status_code == 200
    everyone = httpx.get(f"{teacher}/v1beta/tunedModels", headers=key).json()["tunedModels"]
    assert "tunedModels/s2-model" in {m["name"] for m in everyone}
    # without a token (the bare port every local user can reach): refused
    bare = mine.split("/u/")[0]
    assert httpx.get(f"{bare}/v1beta/tunedModels", headers=key).status_code == 401
    # the emulator is not proxied by the hub (no route around the tokens)
    reply = httpx.get(f"{hub.base}/services/tuning-emulator/v1beta/tunedModels", headers=key)
    assert reply.status_code != 200 or "tunedModels" not in reply.text
