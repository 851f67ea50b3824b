"""The class hub's small parts, without a hub: OS user names, the terminal's rc file, the
class list in ``grades.csv``, instructor paths scrubbed from feedback pages.

Why: ``tests/test_hub.py`` proves them end to end but takes minutes and needs root and a
browser; these say exactly which part broke, in a second.
"""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "hub"))
import tunelab_hub as th  # noqa: E402


def test_os_user_names_follow_tljh_and_stay_valid() -> None:
    assert th.system_name("ada") == "jupyter-ada"
    assert th.system_name("Student_7") == "jupyter-student_7"
    long = th.system_name("a" * 40)
    assert long.startswith("jupyter-") and len(long) <= 32
    assert th.system_name("a" * 40) != th.system_name("a" * 41)  # hashed, not truncated
    odd = th.system_name("ann.lee@school")
    assert odd.startswith("jupyter-") and "@" not in odd and "." not in odd


def test_instructor_terminal_finds_python_and_starts_in_the_course(tmp_path) -> None:
    """The rc file survives what /etc/profile does to PATH (a non-login shell never reads it)."""
    course = tmp_path / "course"
    course.mkdir()
    venv_bin = Path(sys.executable).parent
    rc = tmp_path / "bashrc"
    rc.write_text(th.instructor_bashrc(course, venv_bin))
    done = subprocess.run(
        ["/bin/bash", "--rcfile", str(rc), "-i", "-c", "true"],
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)},
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    shell = subprocess.run(
        ["/bin/bash", "--rcfile", str(rc), "-i"],
        input="pwd; command -v python\n",
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)},
        cwd=tmp_path,
    )
    lines = shell.stdout.split()
    assert lines[0] == str(course), shell.stdout
    assert lines[1] == str(venv_bin / "python"), shell.stdout


def test_is_instructor_comes_from_the_role_not_the_name() -> None:
    role = SimpleNamespace(name=th.INSTRUCTOR_ROLE)
    group = SimpleNamespace(name=th.INSTRUCTOR_HUB_GROUP, roles=[role])
    assert th.is_instructor(SimpleNamespace(name="ada", roles=[], groups=[group]))
    assert th.is_instructor(SimpleNamespace(name="ada", roles=[role], groups=[]))
    user = SimpleNamespace(name="instructor", roles=[SimpleNamespace(name="user")], groups=[])
    assert not th.is_instructor(user)


def _write(path: Path, rows: list[dict]) -> None:
    with path.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def test_grades_csv_gets_a_row_for_who_never_submitted(tmp_path) -> None:
    from grader.results.export import add_missing_students, add_status, roster

    instructor = tmp_path / "instructor"
    instructor.mkdir()
    (instructor / "roster.txt").write_text("student1\nstudent3  # joined late\n\nstudent1\n")
    course = SimpleNamespace(instructor=instructor, runs=tmp_path / "runs")
    assert roster(course) == ["student1", "student3"]
    columns = ["assignment", "duedate", "timestamp", "student_id", "raw_score", "max_score"]
    path = tmp_path / "grades.csv"
    _write(
        path,
        [
            dict(zip(columns, ["quiz", "", "2026-01-01", "student1", "3", "5"], strict=True)),
            dict(zip(columns, ["sql", "", "2026-01-01", "student1", "9", "10"], strict=True)),
        ],
    )
    add_missing_students(course, path)
    add_status(course, path)
    rows = {(r["student_id"], r["assignment"]): r for r in csv.DictReader(path.open())}
    assert rows[("student3", "quiz")]["status"] == "no submission"
    assert rows[("student3", "quiz")]["max_score"] == "5"
    assert rows[("student3", "quiz")]["raw_score"] == ""
    assert rows[("student3", "sql")]["max_score"] == "10"
    assert rows[("student1", "quiz")]["status"] == "graded"
    assert len(rows) == 4


def test_grades_csv_has_the_class_list_before_anybody_submitted(tmp_path) -> None:
    """nbgrader writes the header alone; the roster still gets a row per gradebook assignment."""
    import pytest

    from grader.results.export import add_missing_students, add_status
    from grader.stores.errors import CourseError

    instructor = tmp_path / "instructor"
    instructor.mkdir()
    (instructor / "roster.txt").write_text("student3\n")
    course = SimpleNamespace(instructor=instructor, runs=tmp_path / "runs")
    path = tmp_path / "grades.csv"
    path.write_text("assignment,duedate,timestamp,student_id,raw_score,max_score\n")
    add_missing_students(course, path, {"quiz": {"duedate": "", "max_score": "5.0"}})
    add_status(course, path)
    rows = list(csv.DictReader(path.open()))
    assert [(r["student_id"], r["assignment"], r["status"]) for r in rows] == [
        ("student3", "quiz", "no submission")
    ]
    assert rows[0]["max_score"] == "5.0" and rows[0]["raw_score"] == ""
    (tmp_path / "other.csv").write_text("name,score\nx,1\n")
    with pytest.raises(CourseError, match="other.csv"):
        add_missing_students(course, tmp_path / "other.csv")


def test_feedback_pages_do_not_show_the_instructors_paths(tmp_path) -> None:
    from grader.results.feedback import scrub_paths

    course = SimpleNamespace(root=tmp_path / "srv" / "course", instructor=tmp_path / "i")
    venv = Path(sys.prefix)
    repo = ROOT
    text = (
        f'File {course.root}/tunelab/checks.py:12\n  File "{venv}/lib/x.py", line 3\n'
        f"{repo}/grader/verdicts/trusted.py {course.instructor}/autograded/s1/a.ipynb"
    )
    clean = scrub_paths(text, course)
    for path in (course.root, venv, repo, course.instructor):
        assert f"{path}/" not in clean, clean
    assert "[course]/tunelab/checks.py:12" in clean
    assert "[python]/lib/x.py" in clean
    assert "[instructor]/autograded" in clean
    assert "<" not in clean  # nothing that HTML would read as a tag


def test_closed_parents_names_folders_others_cannot_enter(tmp_path) -> None:
    inner = tmp_path / "a" / "b"
    inner.mkdir(parents=True)
    (tmp_path / "a").chmod(0o700)
    try:
        assert tmp_path / "a" in th.closed_parents(inner / "c")
    finally:
        (tmp_path / "a").chmod(0o755)


def test_the_class_venv_is_never_made_from_a_python_others_cannot_run(tmp_path) -> None:
    """A Python behind a closed folder (pyenv under /root) is refused, naming the folder."""
    import pytest

    from tunelab import bootstrap

    system = Path("/usr/bin/python3.11")
    if not system.exists():
        pytest.skip("no /usr/bin/python3.11 here")
    closed = tmp_path / "closed"
    (closed / "bin").mkdir(parents=True)
    (closed / "bin" / "python3").symlink_to(system)
    closed.chmod(0o700)
    try:
        with pytest.raises(SystemExit, match=str(closed)):
            bootstrap.system_python((str(closed / "bin" / "python3"),))
        assert bootstrap.system_python((str(closed / "bin" / "python3"), str(system))) == system
    finally:
        closed.chmod(0o755)
    key = bootstrap.class_env_key()
    assert bootstrap.test_class_prefix().name.endswith(key) and len(key) == 12


def test_each_grader_process_gets_its_own_sandbox_uid_range() -> None:
    """Two uid pools (as in two grader processes) never hand out the same uid."""
    from grader.sandbox.bubblewrap import _UidPool

    first, second = _UidPool(size=4), _UidPool(size=4)
    a = {first.acquire(90000) for _ in range(4)}
    b = {second.acquire(90000) for _ in range(4)}
    assert a == {90000, 90001, 90002, 90003}
    assert not a & b and min(b) >= 90004
    first.release(90001)
    assert first.acquire(90000) == 90001  # a freed uid comes back to its own pool only
    for pool in (first, second):
        for fd in pool._held:
            os.close(fd)


def _load_config(monkeypatch, mode: str, hub_dir: Path):
    """Execute hub/jupyterhub_config.py as JupyterHub would; the resulting config."""
    import builtins

    from traitlets.config import Config

    config = Config()
    monkeypatch.setattr(builtins, "get_config", lambda: config, raising=False)
    monkeypatch.setenv("TUNELAB_HUB_MODE", mode)
    monkeypatch.setenv("TUNELAB_HUB_DIR", str(hub_dir))
    path = ROOT / "hub" / "jupyterhub_config.py"
    exec(compile(path.read_text(), str(path), "exec"), {"__file__": str(path)})  # noqa: S102
    return config


def test_rehearsal_keeps_the_single_user_quick_start(monkeypatch, tmp_path) -> None:
    config = _load_config(monkeypatch, "rehearsal", tmp_path)
    assert config.JupyterHub.authenticator_class == "dummy"
    assert config.JupyterHub.spawner_class == "simple"
    assert config.Authenticator.allowed_users == {"instructor", "student1", "student2", "student3"}
    assert "--auth" not in config.JupyterHub.services[0]["command"]
    assert "url" not in config.JupyterHub.services[0]  # not proxied: no dead route
    outbound = tmp_path / "exchange" / "fine-tuning-lab" / "outbound"
    assert sorted(p.name for p in outbound.iterdir()) == sorted(
        p.name for p in (ROOT / "notebooks").iterdir() if p.name[:2].isdigit()
    )


def test_an_unknown_mode_is_refused(monkeypatch, tmp_path) -> None:
    import pytest

    with pytest.raises(SystemExit, match="rehearsal"):
        _load_config(monkeypatch, "classroom", tmp_path)
