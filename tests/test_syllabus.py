"""The course table and time budget: one list (grader/handout/syllabus.py), three places that agree.

The repository README, lesson 01 (both editions) and the student README each show the list of
lessons and the course's time budget. They are generated from ``grader.handout.syllabus.SYLLABUS``;
these tests fail when one of them was edited by hand, when a lesson folder is missing from the
list (or the list names a folder that does not exist), and when an entry's minutes disagree
with the budget the lesson itself states.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import nbformat
import pytest

from grader.handout import syllabus

ROOT = Path(__file__).resolve().parents[1]


def test_readme_lesson01_and_student_readme_agree_with_the_list() -> None:
    assert syllabus.problems() == [], (
        "run: python -m grader.handout.syllabus, then python -m grader release"
    )


def test_every_course_folder_is_listed_once_and_in_order() -> None:
    folders = sorted(p.name for p in (ROOT / "solutions").iterdir() if p.is_dir())
    listed = [e.folder for e in syllabus.SYLLABUS]
    assert len(set(listed)) == len(listed)
    assert sorted(listed) == folders, (
        "solutions/ and grader/handout/syllabus.py differ: add one Entry per lesson (folder, "
        "titles, what you learn in English and Russian, minutes) and run "
        "python -m grader.handout.syllabus"
    )
    lessons = [e.folder for e in syllabus.SYLLABUS if e.lesson]
    assert lessons == sorted(lessons), "lessons are listed in their numbered order"
    assert all((ROOT / "notebooks" / f).is_dir() for f in listed)


@pytest.mark.parametrize(
    "entry", [e for e in syllabus.SYLLABUS if e.lesson], ids=lambda e: e.folder
)
def test_each_lessons_minutes_match_the_budget_it_states(entry) -> None:
    nb = nbformat.read(ROOT / "solutions" / entry.folder / f"{entry.folder}.ipynb", as_version=4)
    first = nb.cells[0].source
    stated = re.search(r"About \*\*(\d+) minutes\*\*", first)
    assert stated, f"{entry.folder}: its first cell should state 'About **N minutes**'"
    assert entry.minutes == (int(stated.group(1)),) * 2, (
        f"{entry.folder} says {stated.group(1)} minutes; "
        f"grader/handout/syllabus.py says {entry.minutes}"
    )
    assert entry.title_en in first.splitlines()[0], f"{entry.folder}: title differs"


def test_totals_and_words() -> None:
    t = syllabus.totals()
    lessons = [e for e in syllabus.SYLLABUS if e.lesson]
    assert t.lessons == len(lessons)
    assert t.lesson_minutes == sum(e.minutes[0] for e in lessons)
    en, ru = syllabus.budget("en"), syllabus.budget("ru")
    assert f"около **{syllabus._hours(t.hours, 'ru')} " in ru
    assert syllabus._number(t.lessons, "ru") in ru
    assert f"about **{syllabus._hours(t.hours, 'en')} hours**" in en
    assert ", ".join(str(e.minutes[0]) for e in lessons[:-1]) in en
    assert "." not in syllabus._hours(t.hours, "ru")  # the decimal comma in Russian
    assert [syllabus.ru_plural(n, "урок", "урока", "уроков") for n in (1, 2, 5, 11, 21, 24)] == [
        "урок",
        "урока",
        "уроков",
        "уроков",
        "урок",
        "урока",
    ]
    assert syllabus._range_hours(90, 120, "ru") == "1,5–2 часа"
    assert syllabus._range_hours(90, 120, "en") == "1½–2 hours"
    assert "seven" not in en and "lesson 7" not in syllabus.block("en")
    text = (ROOT / "solutions/01_welcome/01_welcome.ipynb").read_text(encoding="utf-8")
    assert "seven lessons" not in text and "about **10 hours**" not in text


def test_a_hand_edit_is_caught_and_rewritten(tmp_path) -> None:
    for rel in (
        "README.md",
        "grader/student_readme.md",
        "solutions/01_welcome/01_welcome.ipynb",
        "translations/ru/01_welcome.json",
    ):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(ROOT / rel, tmp_path / rel)
    assert syllabus.problems(tmp_path) == []
    readme = tmp_path / "README.md"
    readme.write_text(readme.read_text().replace("| 55 min |", "| 50 min |"))
    bigger = (*syllabus.SYLLABUS[:-2], syllabus.SYLLABUS[1], *syllabus.SYLLABUS[-2:])
    found = syllabus.problems(tmp_path)
    assert found == [
        "README.md: the course table / time budget differs from grader/handout/syllabus.py"
    ]
    assert len(syllabus.problems(tmp_path, bigger)) == 4  # a new lesson: all four places differ
    changed = syllabus.write(tmp_path)
    assert changed == ["README.md"] and syllabus.problems(tmp_path) == []
