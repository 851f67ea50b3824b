"""The course's messages in the student's language: English (default) or Russian.

Standard library only. Every message is written in both languages where it is used::

    tr("{qid} is correct.", "{qid}: верно.", lang, qid=qid)

so a message and its translation cannot drift apart in two files. Which language:

* ``lang`` when given (the grader passes the submission's edition: ``Context.lang``);
* else the one chosen in this process with :func:`set_language` (the Russian edition's first
  code cell calls ``tunelab.set_language("ru")``);
* else ``$TUNELAB_LANG`` (``python3 -m tunelab.bootstrap lab --lang ru`` sets it);
* else English.
"""

from __future__ import annotations

import os

LANGUAGES = ("en", "ru")
DEFAULT = "en"
_chosen: str | None = None


def normalize(lang: str | None) -> str | None:
    """``"ru"``, ``"ru_RU.UTF-8"``, ``"RU"`` -> ``"ru"``; unknown or empty -> None."""
    if not lang:
        return None
    code = str(lang).strip().lower().replace("-", "_").split("_")[0].split(".")[0]
    return code if code in LANGUAGES else None


def set_language(lang: str) -> str:
    """Choose the messages' language for this process; returns it (unknown -> ValueError)."""
    global _chosen
    code = normalize(lang)
    if code is None:
        raise ValueError(f"unknown language {lang!r}; choose one of {', '.join(LANGUAGES)}")
    _chosen = code
    return code


def get_language(lang: str | None = None) -> str:
    """The language to use: ``lang`` if valid, else the chosen one, $TUNELAB_LANG, English."""
    return normalize(lang) or _chosen or normalize(os.environ.get("TUNELAB_LANG")) or DEFAULT


def tr(en: str, ru: str, lang: str | None = None, /, **fields: object) -> str:
    """The message in the current (or given) language, formatted with ``fields`` if any."""
    text = ru if get_language(lang) == "ru" else en
    return text.format(**fields) if fields else text


def pick(texts: dict[str, str], lang: str | None = None) -> str:
    """``texts[lang]`` with English as the fallback (for tables of messages)."""
    return texts.get(get_language(lang)) or texts[DEFAULT]


#: Lesson section titles in Russian, as the Russian lessons and all hints name them ("Reread
#: 04_monitoring, 'Recognising overfitting'" -> «Как распознать переобучение»). The same table is
#: ``translations/ru/SECTION_TITLES.json`` (for the lesson translators; a test keeps them equal).
SECTION_TITLES_RU: dict[str, dict[str, str]] = {
    "02_hyperparameters": {
        "Learning rate and the multiplier": "Скорость обучения и множитель",
        "How many epochs for how much data?": "Сколько эпох на какой объём данных?",
    },
    "03_launching": {
        "The `.jsonl` pitfall": "Ловушка `.jsonl`",
        "Launching the job": "Запуск задания",
        "States: CREATING, ACTIVE, FAILED": "Состояния: CREATING, ACTIVE, FAILED",
        "A job that fails — and how to read why": (
            "Задание завершилось с ошибкой: как узнать причину"
        ),
    },
    "04_monitoring": {
        "Snapshots are dicts: the `snap.step` pitfall": "Снимки — это словари: ловушка `snap.step`",
        "From snapshots to a DataFrame": "От снимков к DataFrame",
        "Four patterns to recognise": "Четыре формы кривой потерь",
        "Recognising overfitting": "Как распознать переобучение",
    },
    "05_early_stopping": {
        "The plateau rule": "Правило плато",
        "Checkpoints: the best epoch without a rerun": (
            "Контрольные точки: лучшая эпоха без перезапуска"
        ),
    },
    "06_checklist": {
        "Is the data valid?": "Данные в порядке?",
        "Cost": "Стоимость",
    },
}


def section_title(lesson: str, title: str, lang: str | None = None) -> str:
    """A lesson section's title in ``lang`` (the English one when there is no translation)."""
    if get_language(lang) == "ru":
        return SECTION_TITLES_RU.get(lesson, {}).get(title, title)
    return title
