"""A whole class on JupyterHub, in a real browser: release, fetch, submit, grade, feedback.

Why: ``tests/test_browser.py`` covers one student's JupyterLab. A class adds what only a hub
has: several users, nbgrader's exchange between them, the instructor's formgrader, students
who must not see instructor tools, and a tuning emulator shared by everybody. This test starts
the README's command (``python3 -m tunelab.bootstrap hub --headless``) as a real process on free
ports with its state in a temporary folder, and with Playwright driving Debian's chromium:

1. the instructor logs in and releases ``sql_overfitting`` and ``quiz`` with formgrader's
   release buttons;
2. two students log in (their Nbgrader menu has the Assignment List only, and formgrader is
   not served to them), fetch both from the Assignment List, answer (student1 with the master
   solution's answers, student2 only the first half), Validate in the notebook and Submit;
3. the instructor collects with formgrader's collect buttons, autogrades with
   ``python -m grader autograde`` (sandboxed, trusted verdicts), grades Part 9
   (``p9-justification``) by hand in formgrader, writes feedback with ``python -m grader
   feedback``, exports ``grades.csv`` and releases the feedback with formgrader's buttons;
4. each student fetches the feedback from the Assignment List and opens it.

Screenshots of each step go to ``build/screenshots/hub/`` (git-ignored).
"""

from __future__ import annotations

import contextlib
import csv
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

pytestmark = [pytest.mark.browser, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--no-first-run",
]
PROXY = ROOT / ".hub" / "node_modules" / ".bin" / "configurable-http-proxy"
SHOTS = ROOT / "build" / "screenshots" / "hub"
ASSIGNMENTS = ("sql_overfitting", "quiz")
PASSWORD = "tunelab"
MANUAL = "p9-justification"
TIME_SCALE = "20000"  # the shared emulator and grading: tuning jobs take milliseconds
SERVER_TIMEOUT = 180
UI_TIMEOUT_MS = 240_000
#: Suppress JupyterLab's news pop-up in every user's lab (it can cover buttons).
LAB_SETTINGS = {
    "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {
        "fetchNews": "false",
        "checkForUpdates": False,
    },
}


@dataclass
class Hub:
    base: str
    dir: Path
    log: Path
    pid: int  # the bootstrap process; JupyterHub is its child

    def home(self, user: str) -> Path:
        return self.dir / "homes" / user

    @property
    def instructor_root(self) -> Path:
        return self.dir / "instructor"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _stop(proc: subprocess.Popen) -> None:
    """SIGTERM the bootstrap (it stops JupyterHub, which stops the servers), then the rest."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=45)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)


def hub_unavailable() -> str | None:
    """Why the hub test cannot run here, or None."""
    if not CHROMIUM.exists():
        return "Debian's chromium is not installed (apt-get install chromium)"
    if not PROXY.exists() and not (shutil.which("npm") and shutil.which("node")):
        return "JupyterHub's proxy needs node and npm (apt-get install nodejs npm)"
    return None


@contextlib.contextmanager
def start_hub(tmp: Path, users: tuple[str, ...] = ("instructor", "student1", "student2")):
    """The README's ``bootstrap hub --headless`` on a free port, state in ``tmp/state``."""
    hub_dir = tmp / "state"
    for user in users:
        for rel, content in LAB_SETTINGS.items():
            path = hub_dir / "homes" / user / ".jupyter" / "lab" / "user-settings" / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(content))
    port = _free_port()
    env = {**os.environ, "TUNELAB_TIME_SCALE": TIME_SCALE, "PYTHONUNBUFFERED": "1"}
    for name in ("TUNELAB_ENDPOINT", "TUNELAB_INSTRUCTOR_ROOT", "JUPYTER_CONFIG_PATH"):
        env.pop(name, None)
    python = shutil.which("python3") or sys.executable
    cmd = [python, "-m", "tunelab.bootstrap", "hub", "--headless", "--port", str(port)]
    cmd += ["--hub-dir", str(hub_dir)]
    log = tmp / "hub.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            cmd, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + SERVER_TIMEOUT
        while True:
            if proc.poll() is not None:
                raise RuntimeError(
                    f"bootstrap hub exited {proc.returncode}:\n{log.read_text()[-3000:]}"
                )
            try:
                with urllib.request.urlopen(f"{base}/hub/api", timeout=5) as reply:
                    if reply.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"JupyterHub did not answer within {SERVER_TIMEOUT} s")
            time.sleep(0.5)
        text = log.read_text()
        assert "student1, student2, student3" in text and f"{base}/" in text, text[-2000:]
        yield Hub(base, hub_dir, log, proc.pid)
    finally:
        _stop(proc)


@pytest.fixture(scope="module")
def hub(tmp_path_factory) -> Iterator[Hub]:
    reason = hub_unavailable()
    if reason:
        pytest.skip(reason)
    pytest.importorskip("playwright.sync_api")
    with start_hub(tmp_path_factory.mktemp("hub")) as running:
        yield running


@pytest.fixture(scope="module")
def browser(hub):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        chromium = pw.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True
        )
        try:
            yield chromium
        finally:
            chromium.close()


def _shot(page, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / name))


def _login(browser, hub: Hub, user: str):
    """A browser context logged in as ``user``, on that user's running JupyterLab."""
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    page.set_default_timeout(UI_TIMEOUT_MS)
    page.goto(f"{hub.base}/hub/login")
    page.fill("#username_input", user)
    page.fill("#password_input", PASSWORD)
    page.click("#login_submit")
    page.wait_for_url(re.compile(rf".*/user/{user}/lab.*"))
    page.locator(".jp-Launcher").first.wait_for(state="visible")
    return context, page


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


def _refresh_list(page) -> None:
    page.locator("#refresh_assignments_list").click()
    for part in ("released", "fetched", "submitted"):
        page.locator(f"#{part}_assignments_list_loading").wait_for(state="hidden")


def _list_button(page, section: str, assignment: str, label: str):
    row = page.locator(f"#{section}_assignments_list .list_item", has_text=assignment).first
    return row.get_by_role("button", name=label)


def _formgrader(page, hub: Hub) -> None:
    page.goto(f"{hub.base}/user/instructor/formgrader")
    page.locator("td.name", has_text="sql_overfitting").first.wait_for(state="visible")


def _formgrader_action(page, assignment: str, column: str, name: str) -> str:
    """Click one of formgrader's per-assignment buttons; return the success dialog's text."""
    row = page.locator("tr", has=page.locator("td.name", has_text=assignment)).first
    row.locator(f"td.{column} a").click()
    dialog = page.locator(".modal-dialog").last
    dialog.wait_for(state="visible")
    text = dialog.inner_text()
    _shot(page, name)
    assert "Success" in text, f"formgrader {column} {assignment}: {text[:3000]}"
    dialog.locator("button", has_text=re.compile("Close|OK", re.I)).first.click()
    page.locator(".modal-dialog").wait_for(state="detached")
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
    nbformat.write(nb, notebook)
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


def _instructor_cli(hub: Hub, *args: str, timeout: int = 900) -> str:
    env = {
        **os.environ,
        "TUNELAB_INSTRUCTOR_ROOT": str(hub.instructor_root),
        "TUNELAB_TIME_SCALE": TIME_SCALE,
    }
    result = subprocess.run(
        [sys.executable, "-m", "grader", "-q", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    out = result.stdout + result.stderr
    assert result.returncode == 0, f"python -m grader {' '.join(args)}:\n{out[-4000:]}"
    return out


def _server_env(user: str) -> dict[str, str]:
    """The environment of ``user``'s running single-user server (a local process here)."""
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
            return env
    raise AssertionError(f"no running server for {user}")


def run_class(hub: Hub, browser, on_active=None) -> dict[str, float]:
    """The whole round trip (module docstring); returns step timings in seconds.

    ``on_active()`` is called while both students' servers (and kernels) are running."""
    from nbgrader.api import Gradebook

    timings: dict[str, float] = {}
    students = {"student1": True, "student2": False}  # complete / partial

    # 1. The instructor releases both assignments with formgrader's buttons.
    instructor_ctx, instructor = _login(browser, hub, "instructor")
    menu = _nbgrader_menu(instructor)
    _shot(instructor, "01_instructor_nbgrader_menu.png")
    instructor.keyboard.press("Escape")
    assert {"Formgrader", "Create assignment", "Course List"} <= set(menu), menu
    _formgrader(instructor, hub)
    _shot(instructor, "02_formgrader_before_release.png")
    released_at = time.monotonic()
    for assignment in ASSIGNMENTS:
        _formgrader_action(instructor, assignment, "release", f"03_release_{assignment}.png")
    outbound = hub.dir / "exchange" / "fine-tuning-lab" / "outbound"
    assert sorted(p.name for p in outbound.iterdir()) == sorted(ASSIGNMENTS)

    # 2. Students: student tools only; fetch, answer, Validate, Submit.
    contexts = {}
    for user, complete in students.items():
        ctx, page = _login(browser, hub, user)
        contexts[user] = (ctx, page)
        menu = _nbgrader_menu(page)
        page.keyboard.press("Escape")
        assert menu == ["Assignment List"], f"{user} sees instructor tools: {menu}"
        reply = page.request.get(f"{hub.base}/user/{user}/formgrader")
        assert reply.status == 404, f"formgrader is served to {user}: {reply.status}"
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
                assert "Success" in body and "failed" not in body, f"{assignment}: {body[:2000]}"
            else:
                assert re.search(r"cells? failed|VALIDATION FAILED", body), body[:2000]
        _assignment_list(page)
        for assignment in ASSIGNMENTS:
            _list_button(page, "fetched", assignment, "Submit").click()
            _list_button(page, "submitted", assignment, "Fetch Feedback").wait_for(state="visible")
        _shot(page, f"06_{user}_submitted.png")
        # The lessons' kernels reach the class's shared emulator (the graded assignments
        # deliberately start a private one).
        endpoint = _server_env(user)["TUNELAB_ENDPOINT"]
        reply = page.request.get(f"{endpoint}/v1beta/tunedModels?key=x")
        assert reply.status == 200, f"{user}: shared emulator {endpoint}: {reply.status}"
    timings["students fetched, answered, validated, submitted"] = time.monotonic() - released_at
    if on_active is not None:
        on_active()

    # 3. The instructor collects (formgrader), autogrades (sandboxed), grades Part 9 by hand.
    _formgrader(instructor, hub)
    for assignment in ASSIGNMENTS:
        _formgrader_action(instructor, assignment, "collect", f"07_collect_{assignment}.png")
    submitted = hub.instructor_root / "submitted"
    for user in students:
        for assignment in ASSIGNMENTS:
            assert (submitted / user / assignment / f"{assignment}.ipynb").exists()
    t0 = time.monotonic()
    for assignment in ASSIGNMENTS:
        out = _instructor_cli(hub, "autograde", assignment)
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

    # 4. Feedback and grades.csv, then formgrader releases the feedback.
    for assignment in ASSIGNMENTS:
        _instructor_cli(hub, "feedback", assignment)
    _instructor_cli(hub, "export")
    with (hub.instructor_root / "exports" / "grades.csv").open() as fh:
        rows = {(r["student_id"], r["assignment"]): r for r in csv.DictReader(fh)}
    s1 = rows[("student1", "sql_overfitting")]
    assert float(s1["raw_score"]) == pytest.approx(auto_total["student1"] + 1), s1
    assert float(s1["raw_score"]) == float(s1["max_score"]), s1
    assert float(rows[("student2", "sql_overfitting")]["raw_score"]) < float(s1["raw_score"])
    _formgrader(instructor, hub)
    for assignment in ASSIGNMENTS:
        _formgrader_action(
            instructor, assignment, "release-feedback", f"10_release_feedback_{assignment}.png"
        )
    instructor_ctx.close()

    # 5. Each student fetches the feedback in the Assignment List and opens it.
    for user in students:
        _ctx, page = contexts[user]
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
        rel = pages[-1].relative_to(hub.home(user))
        page.goto(f"{hub.base}/user/{user}/files/{rel.as_posix()}")
        page.get_by_text("sql_overfitting").first.wait_for(state="visible")
        text = page.locator("body").inner_text()
        _shot(page, f"12_{user}_feedback.png")
        total = rows[(user, "sql_overfitting")]
        score = f"sql_overfitting (Score: {float(total['raw_score']):.1f} / "
        assert score in text, f"{user}'s feedback lacks {score!r}: {text[:1000]}"
        if students[user]:
            assert "Written response (Score: 1.0 / 1.0)" in text, text[:2000]
        contexts[user][0].close()
    timings["release to feedback fetched (2 students)"] = time.monotonic() - released_at
    return timings


@pytest.mark.timeout(1500)
def test_a_class_round_trip_on_jupyterhub(hub, browser):
    started = time.monotonic()
    timings = run_class(hub, browser)
    for what, seconds in timings.items():
        print(f"hub round trip: {what}: {seconds:.1f} s")
    print(f"hub round trip: whole test {time.monotonic() - started:.1f} s")
