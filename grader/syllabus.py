"""The course's one list of lessons, and the tables and time budgets generated from it.

Why: the list of lessons and the course's time budget appear in three places a reader
compares — the repository README, lesson 01 (both editions) and the student README. Typed by
hand, they drifted ("seven lessons", "about 10 hours", no ``08_vertex_ai``). Here each place
holds a block between ``<!-- syllabus:start -->`` and ``<!-- syllabus:end -->`` markers (in
lesson 01, the whole cell ``01-course``) that :func:`write` regenerates from :data:`SYLLABUS`;
``tests/test_syllabus.py`` fails while any of them differs, and checks every entry's minutes
against the budget its own lesson states.

Adding a lesson: one :class:`Entry` in :data:`SYLLABUS` (folder, titles, what you learn in
English and Russian, minutes), then ``python -m grader.syllabus`` and ``python -m grader
release``.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from dataclasses import dataclass
from pathlib import Path

import nbformat

REPO = Path(__file__).resolve().parents[1]
START, END = "<!-- syllabus:start -->", "<!-- syllabus:end -->"
#: lesson 01's cell that is generated whole (its Russian catalogue entry too)
LESSON01 = ("01_welcome", "01-course")


@dataclass(frozen=True)
class Entry:
    folder: str  # in notebooks/ (and solutions/)
    title_en: str
    title_ru: str
    learn_en: str  # "what you learn", one line of Markdown
    learn_ru: str
    minutes: tuple[int, int]  # (low, high); equal for a single figure
    graded: bool = False

    @property
    def lesson(self) -> bool:
        return not self.graded


def _m(low: int, high: int | None = None) -> tuple[int, int]:
    return (low, low if high is None else high)


SYLLABUS: tuple[Entry, ...] = (
    Entry(
        "01_welcome",
        "Welcome to Fine-Tuning Lab",
        "Добро пожаловать в Fine-Tuning Lab",
        "how the course works, the environment self-check, the tuning emulator",
        "как устроен курс, проверка окружения, эмулятор дообучения",
        _m(35),
    ),
    Entry(
        "02_hyperparameters",
        "Hyperparameters: epochs, batch size and learning rate",
        "Гиперпараметры: эпохи, размер батча и скорость обучения",
        "epochs, batch size, learning rate and the multiplier, with an interactive panel",
        "эпохи, размер батча, скорость обучения и множитель, с интерактивной панелью",
        _m(70),
    ),
    Entry(
        "03_launching",
        "Launching a tuning job",
        "Запуск задания дообучения",
        "`create_tuned_model`, the long-running operation, CREATING/ACTIVE/FAILED",
        "`create_tuned_model`, длительная операция, состояния CREATING/ACTIVE/FAILED",
        _m(80),
    ),
    Entry(
        "04_monitoring",
        "Monitoring a tuning job: reading loss curves",
        "Мониторинг задания дообучения: как читать кривые потерь",
        "snapshots → pandas → seaborn, and the four loss-curve patterns",
        "снимки (snapshots) → pandas → seaborn и четыре типичные формы кривой потерь",
        _m(80),
    ),
    Entry(
        "05_early_stopping",
        "Manual early stopping: choosing `epoch_count` from the curve",
        "Ранняя остановка вручную: выбираем `epoch_count` по кривой",
        "the plateau rule and choosing `epoch_count`",
        "правило плато и выбор `epoch_count`",
        _m(70),
    ),
    Entry(
        "06_checklist",
        'Before you press "tune": the pre-flight checklist',
        "Прежде чем нажать «дообучить»: предполётный чек-лист",
        "validating data, trying the base model first, cost = tokens × epochs",
        "проверка данных, сначала базовая модель, стоимость = токены × эпохи",
        _m(80),
    ),
    Entry(
        "07_successor_sdk",
        "The same job with the successor SDK, `google-genai`",
        "То же задание с SDK-преемником `google-genai`",
        "the same job with `google-genai` (`client.tunings.tune`)",
        "то же задание с `google-genai` (`client.tunings.tune`)",
        _m(55),
    ),
    Entry(
        "08_vertex_ai",
        "Tuning jobs on Gemini Enterprise Agent Platform (Vertex AI)",
        "Задания дообучения в Gemini Enterprise Agent Platform (Vertex AI)",
        "tuning jobs on Gemini Enterprise Agent Platform (formerly Vertex AI): data in Cloud "
        "Storage, a validation set, eval loss, the best checkpoint instead of a rerun, cancel, "
        "cost",
        "задания дообучения в Gemini Enterprise Agent Platform (бывший Vertex AI): данные в "
        "Cloud Storage, валидационный набор, потери на валидации, лучшая контрольная точка "
        "(чекпойнт) вместо перезапуска, отмена, стоимость",
        _m(80),
    ),
    Entry(
        "09_real_training",
        "Real training: the loss-curve patterns, measured on your own CPU",
        "Настоящее обучение: формы кривой потерь, измеренные на вашем процессоре",
        "a real network trained on your CPU (scikit-learn): the five loss-curve patterns by "
        "choosing settings, the plateau rule against the library's early stopping, multiplier "
        "vs forgetting, pre-trained vs from scratch, the simulator checked against reality",
        "настоящая сеть, обученная на вашем процессоре (scikit-learn): пять форм кривой потерь "
        "по выбранным настройкам, правило плато против ранней остановки библиотеки, множитель "
        "и забывание, дообучение против обучения с нуля, симулятор против реальности",
        _m(60),
    ),
    Entry(
        "sql_overfitting",
        "The NL→SQL model that learned its homework by heart",
        "Модель NL→SQL, которая вызубрила домашнее задание",
        "**graded**: diagnose an overfit NL→SQL model and fix the next run",
        "**оценивается**: диагностировать переобученную модель NL→SQL и исправить следующий запуск",
        _m(90, 120),
        graded=True,
    ),
    Entry(
        "quiz",
        "Quiz: launching fine-tuning, hyperparameters and monitoring",
        "Тест: запуск дообучения, гиперпараметры и мониторинг",
        "**graded**: multiple-choice questions on the whole course",
        "**оценивается**: тест с выбором ответа по всему курсу",
        _m(30),
        graded=True,
    ),
)


# --- words and numbers ---------------------------------------------------------------------------
_EN_WORDS = ("zero", "one", "two", "three", "four", "five", "six") + (
    "seven",
    "eight",
    "nine",
    "ten",
    "eleven",
    "twelve",
)
_RU_WORDS = ("ноль", "один", "два", "три", "четыре", "пять", "шесть") + (
    "семь",
    "восемь",
    "девять",
    "десять",
    "одиннадцать",
    "двенадцать",
)


def ru_plural(n: int, one: str, few: str, many: str) -> str:
    """The Russian noun form for ``n`` (1 урок, 2 урока, 5 уроков, 11 уроков, 21 урок)."""
    if n % 10 == 1 and n % 100 != 11:
        return one
    if 2 <= n % 10 <= 4 and not 12 <= n % 100 <= 14:
        return few
    return many


def _half_hours(minutes: float) -> float:
    return round(minutes / 30) / 2


def _hours(value: float, lang: str) -> str:
    """``9``, ``9½`` (English) or ``9``, ``9,5`` (Russian) from a multiple of 0.5."""
    whole = int(value)
    if value == whole:
        return str(whole)
    return f"{whole}½" if lang == "en" else f"{whole},5"


def _hours_word(value: float, lang: str) -> str:
    if lang == "en":
        return "hour" if value == 1 else "hours"
    if value != int(value):
        return "часа"  # 1,5 часа / 9,5 часа: a fraction takes the genitive singular
    return ru_plural(int(value), "час", "часа", "часов")


def _range_hours(low_min: int, high_min: int, lang: str) -> str:
    low, high = _half_hours(low_min), _half_hours(high_min)
    if low == high:
        return f"{_hours(low, lang)} {_hours_word(low, lang)}"
    return f"{_hours(low, lang)}–{_hours(high, lang)} {_hours_word(high, lang)}"


def _minutes(entry: Entry, lang: str) -> str:
    low, high = entry.minutes
    if low == high:
        return str(low)
    if high >= 60:
        return _range_hours(low, high, lang)
    return f"{low}–{high}"


# --- totals --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Totals:
    lessons: int
    lesson_minutes: int
    low: int
    high: int

    @property
    def hours(self) -> float:
        """The course's budget, in half hours, from the middle of its range."""
        return _half_hours((self.low + self.high) / 2)


def totals(syllabus: tuple[Entry, ...] = SYLLABUS) -> Totals:
    lessons = [e for e in syllabus if e.lesson]
    return Totals(
        lessons=len(lessons),
        lesson_minutes=sum(e.minutes[0] for e in lessons),
        low=sum(e.minutes[0] for e in syllabus),
        high=sum(e.minutes[1] for e in syllabus),
    )


def _number(n: int, lang: str) -> str:
    words = _EN_WORDS if lang == "en" else _RU_WORDS
    return words[n] if n < len(words) else str(n)


def _list(values: list[str], lang: str) -> str:
    joiner = " and " if lang == "en" else " и "
    return ", ".join(values[:-1]) + joiner + values[-1] if len(values) > 1 else values[0]


#: The time-budget paragraph in each language; :func:`budget` fills in the figures (a
#: template ignores the ones its language does not use, e.g. the Russian plural words).
_BUDGET = {
    "en": {
        "paragraph": "**Time budget.** The whole course takes about **{total} hours**: {parts}. "
        "Each lesson states its own budget.",
        "lessons": "the {n} lessons about {hours} hours ({per_lesson} minutes)",
        "graded": "{kind} `{folder}` {about}{minutes}",
        "assignment": "the graded assignment",
        "quiz": "the graded",
    },
    "ru": {
        "paragraph": "**Сколько времени нужно.** Весь курс занимает около "
        "**{total} {total_word}**: {parts}. В начале каждого урока указано его собственное время.",
        "lessons": "{n} {lessons_word} — около {hours} {hours_word} ({per_lesson} минут)",
        "graded": "{kind} `{folder}` — {about}{minutes}",
        "assignment": "оцениваемое задание",
        "quiz": "оцениваемый тест",
    },
}


def budget(lang: str = "en", syllabus: tuple[Entry, ...] = SYLLABUS) -> str:
    """One paragraph: the whole course's time and how it splits."""
    words = _BUDGET["en" if lang == "en" else "ru"]
    t = totals(syllabus)
    lessons = [e for e in syllabus if e.lesson]
    lesson_hours = _half_hours(t.lesson_minutes)
    parts = [
        words["lessons"].format(
            n=_number(t.lessons, lang),
            lessons_word=ru_plural(t.lessons, "урок", "урока", "уроков"),
            hours=_hours(lesson_hours, lang),
            hours_word=_hours_word(lesson_hours, lang),
            per_lesson=_list([str(e.minutes[0]) for e in lessons], lang),
        )
    ]
    for e in syllabus:
        if e.graded:
            parts.append(
                words["graded"].format(
                    kind=words["quiz" if e.folder == "quiz" else "assignment"],
                    folder=e.folder,
                    about=_about(e, lang),
                    minutes=_minutes_text(e, lang),
                )
            )
    return words["paragraph"].format(
        total=_hours(t.hours, lang), total_word=_hours_word(t.hours, lang), parts="; ".join(parts)
    )


def _about(entry: Entry, lang: str) -> str:
    """ "about " before a single figure; a range needs none."""
    if entry.minutes[0] != entry.minutes[1]:
        return ""
    return "about " if lang == "en" else "около "


def _minutes_text(entry: Entry, lang: str) -> str:
    low, high = entry.minutes
    if high >= 60:
        return _range_hours(low, high, lang)
    if lang == "en":
        return f"{low} minutes" if low == high else f"{low}–{high} minutes"
    word = ru_plural(high, "минута", "минуты", "минут")
    return f"{low} {word}" if low == high else f"{low}–{high} {word}"


def table(lang: str = "en", syllabus: tuple[Entry, ...] = SYLLABUS) -> str:
    """The Markdown table of every lesson and assignment, in course order."""
    if lang == "en":
        rows = ["| folder in `notebooks/` | what you learn | time |", "| --- | --- | --- |"]
        unit = "min"
    else:
        rows = ["| папка урока | о чём урок | время |", "| --- | --- | --- |"]
        unit = "мин"
    for e in syllabus:
        learn = e.learn_en if lang == "en" else e.learn_ru
        low, high = e.minutes
        time = f"{_minutes(e, lang)} {unit}" if high < 60 or low == high else _minutes(e, lang)
        rows.append(f"| `{e.folder}` | {learn} | {time} |")
    return "\n".join(rows)


def block(lang: str = "en", syllabus: tuple[Entry, ...] = SYLLABUS) -> str:
    """What goes between the markers: the table, then the budget."""
    return f"{table(lang, syllabus)}\n\n{budget(lang, syllabus)}"


def lesson01_cell(lang: str = "en", syllabus: tuple[Entry, ...] = SYLLABUS) -> str:
    """Lesson 01's generated cell ``01-course``: the heading, one sentence, the block."""
    if lang == "en":
        head = (
            "## How the course works\n\nThe course is a folder of notebooks, opened in "
            "JupyterLab, in this order:"
        )
    else:
        head = (
            "## Как устроен курс\n\nКурс — это папка с блокнотами, которые открываются в "
            "JupyterLab, в таком порядке:"
        )
    return f"{head}\n\n{START}\n{block(lang, syllabus)}\n{END}"


# --- where the blocks live -----------------------------------------------------------------------
def _replace_between(text: str, new: str, where: str, occurrence: int = 0) -> str:
    pattern = re.compile(re.escape(START) + r".*?" + re.escape(END), re.S)
    found = list(pattern.finditer(text))
    if len(found) <= occurrence:
        raise ValueError(
            f"{where}: expected marker pair number {occurrence + 1} ({START} ... {END}); "
            f"found {len(found)}"
        )
    m = found[occurrence]
    return text[: m.start()] + f"{START}\n{new}\n{END}" + text[m.end() :]


def _blocks(text: str) -> list[str]:
    pattern = re.compile(re.escape(START) + r"\n(.*?)\n" + re.escape(END), re.S)
    return [m.group(1) for m in pattern.finditer(text)]


def targets(root: Path = REPO) -> dict[str, tuple[Path, list[str]]]:
    """Each Markdown file -> the languages of its marker blocks, in order."""
    return {
        "README.md": (root / "README.md", ["en"]),
        "grader/student_readme.md": (root / "grader" / "student_readme.md", ["en", "ru"]),
    }


def problems(root: Path = REPO, syllabus: tuple[Entry, ...] = SYLLABUS) -> list[str]:
    """Every place that differs from what :data:`SYLLABUS` generates (empty: all agree)."""
    out = []
    for label, (path, langs) in targets(root).items():
        found = _blocks(path.read_text(encoding="utf-8"))
        want = [block(lang, syllabus) for lang in langs]
        if found != want:
            out.append(f"{label}: the course table / time budget differs from grader/syllabus.py")
    name, key = LESSON01
    nb = nbformat.read(root / "solutions" / name / f"{name}.ipynb", as_version=4)
    cells = [c for c in nb.cells if c.get("id") == key]
    if not cells or cells[0].source != lesson01_cell("en", syllabus):
        out.append(f"solutions/{name}/{name}.ipynb cell {key}: differs from grader/syllabus.py")
    cat = json.loads((root / "translations/ru" / f"{name}.json").read_text(encoding="utf-8"))
    entry = cat["cells"].get(key, {})
    if entry.get("ru") != lesson01_cell("ru", syllabus):
        out.append(f"translations/ru/{name}.json cell {key}: differs from grader/syllabus.py")
    return out


def write(root: Path = REPO, syllabus: tuple[Entry, ...] = SYLLABUS) -> list[str]:
    """Regenerate every block; returns the files changed (run ``grader release`` after)."""
    from grader.editions import source_sha

    changed = []
    for label, (path, langs) in targets(root).items():
        text = old = path.read_text(encoding="utf-8")
        for i, lang in enumerate(langs):
            text = _replace_between(text, block(lang, syllabus), label, i)
        if text != old:
            path.write_text(text, encoding="utf-8")
            changed.append(label)
    name, key = LESSON01
    nb_path = root / "solutions" / name / f"{name}.ipynb"
    nb = nbformat.read(nb_path, as_version=4)
    cells = [c for c in nb.cells if c.get("id") == key]
    if not cells:
        raise ValueError(f"{nb_path}: no cell with id {key!r}")
    en = lesson01_cell("en", syllabus)
    if cells[0].source != en:
        cells[0].source = en
        nbformat.write(nb, nb_path)
        changed.append(str(nb_path.relative_to(root)))
    cat_path = root / "translations/ru" / f"{name}.json"
    cat = json.loads(cat_path.read_text(encoding="utf-8"))
    want = {"en_sha": source_sha(en), "ru": lesson01_cell("ru", syllabus)}
    if cat["cells"].get(key) != want:
        cat["cells"][key] = want
        cat_path.write_text(json.dumps(cat, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
        changed.append(str(cat_path.relative_to(root)))
    return changed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m grader.syllabus",
        description="Regenerate the course table and time budget (README, student README, "
        "lesson 01) from grader/syllabus.py.",
    )
    parser.add_argument("--check", action="store_true", help="only report what differs")
    args = parser.parse_args(argv)
    if args.check:
        found = problems()
        for line in found:
            print(line)
        return 1 if found else 0
    changed = write()
    print("\n".join(changed) if changed else "already up to date")
    if any(c.endswith(".ipynb") or c.endswith(".json") for c in changed):
        print("now run: python -m grader release")
    return 0


if __name__ == "__main__":
    sys.exit(main())
