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

import numbers
import os
import string

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
    _localise_pandas(code)
    return code


def _localise_pandas(lang: str) -> None:
    """Tables in the notebook write numbers like its prose: in Russian a DataFrame shows
    «0,2068» and a Styler «164 630» (its ``format()`` defaults to the decimal comma). Why here:
    the lesson code is the same in both editions, so the edition's switch has to do it."""
    try:
        import pandas as pd
        from pandas.io.formats.style import Styler
    except ImportError:  # the checks run without pandas too
        return
    russian = lang == "ru"
    pd.set_option("display.float_format", _russian_float if russian else None)
    pd.set_option("styler.format.decimal", "," if russian else ".")
    pd.set_option("styler.format.thousands", NBSP if russian else None)
    if not getattr(Styler.format, "_tunelab", False):
        english_format = Styler.format

        def format(self, *args, **kwargs):  # noqa: A001 (Styler's own name)
            if get_language() == "ru":
                kwargs.setdefault("decimal", ",")
                kwargs.setdefault("thousands", NBSP)
            return english_format(self, *args, **kwargs)

        format._tunelab = True  # type: ignore[attr-defined]
        format.__doc__ = english_format.__doc__
        Styler.format = format


def _russian_float(value: float) -> str:
    return num(value, ".6g", "ru")


def get_language(lang: str | None = None) -> str:
    """The language to use: ``lang`` if valid, else the chosen one, $TUNELAB_LANG, English."""
    return normalize(lang) or _chosen or normalize(os.environ.get("TUNELAB_LANG")) or DEFAULT


def tr(en: str, ru: str, lang: str | None = None, /, **fields: object) -> str:
    """The message in the current (or given) language, formatted with ``fields`` if any.

    In Russian every number field is written the Russian way (:func:`num`): ``{x:.3f}`` of
    0.5 gives «0,500», ``{n:,}`` of 206170 gives «206 170». A field converted with ``!r`` stays
    as Python writes it, for numbers that are code (``next_run['batch_size'] = 4``).
    """
    if get_language(lang) == "ru":
        return _RUSSIAN.format(ru, **fields) if fields else ru
    return en.format(**fields) if fields else en


# -- numbers and plural forms ----------------------------------------------------------------
#: The Russian thousands separator: a no-break space (U+00A0), so «206 170» never wraps.
NBSP = "\u00a0"
#: Russian groups the digits of whole numbers from five digits on («2000», «20 000»).
GROUP_FROM = 10_000


def _is_number(value: object) -> bool:
    # numpy scalars register as numbers.Number; bool is a number to Python, not to a reader
    return isinstance(value, numbers.Number) and not isinstance(value, bool)


def num(value: object, spec: str = "", lang: str | None = None) -> str:
    """A number as a reader of ``lang`` writes it; ``spec`` is an ordinary format spec.

    English: ``format(value, spec)``. Russian: the same digits with a decimal comma and a
    no-break space between thousands (``","`` in ``spec`` or a whole number of five digits or
    more) and a no-break space before «%»: «0,001», «250 000», «1,5», «12 %». Why one helper:
    prose, plots and checks then cannot disagree on how 0.001 looks.
    """
    if not _is_number(value):
        return format(value, spec)
    if get_language(lang) != "ru":
        return format(value, spec)
    if spec == "" and isinstance(value, numbers.Integral) and abs(int(value)) >= GROUP_FROM:
        spec = ","
    if spec == "" and isinstance(value, numbers.Real) and not isinstance(value, numbers.Integral):
        value = float(value)  # numpy floats print like Python's
    text = format(value, spec)
    if "e" in text.lower() and "," not in spec:
        return text.replace(".", ",")
    percent = text.endswith("%")
    whole, dot, frac = text.rstrip("%").partition(".")
    if "," in whole and abs(value) < GROUP_FROM and isinstance(value, numbers.Integral):
        whole = whole.replace(",", "")  # Russian leaves four-digit numbers whole: «2000»
    out = whole.replace(",", NBSP) + ("," if dot else "") + frac
    return out + NBSP + "%" if percent else out  # «12 %», as the lessons write it


class _RussianFormatter(string.Formatter):
    """``str.format`` whose number fields come out Russian (see :func:`num`)."""

    def format_field(self, value: object, format_spec: str) -> str:
        if _is_number(value):
            return num(value, format_spec, "ru")
        return super().format_field(value, format_spec)


_RUSSIAN = _RussianFormatter()


def plural_ru(n: int, one: str, few: str, many: str) -> str:
    """The Russian form for ``n``: 1 модель, 2 модели, 5 моделей, 11 моделей, 21 модель."""
    n = abs(int(n))
    if n % 10 == 1 and n % 100 != 11:
        return one
    if 2 <= n % 10 <= 4 and not 12 <= n % 100 <= 14:
        return few
    return many


#: Russian forms of the nouns the course counts (nominative after a number: 1, 2, 5).
NOUNS_RU: dict[str, tuple[str, str, str]] = {
    "epoch": ("эпоха", "эпохи", "эпох"),
    "step": ("шаг", "шага", "шагов"),
    "example": ("пример", "примера", "примеров"),
    "model": ("модель", "модели", "моделей"),
    "token": ("токен", "токена", "токенов"),
    "snapshot": ("снимок", "снимка", "снимков"),
    "checkpoint": ("чекпойнт", "чекпойнта", "чекпойнтов"),
    "second": ("секунда", "секунды", "секунд"),
    "line": ("строка", "строки", "строк"),
    "row": ("строка", "строки", "строк"),
    "question": ("вопрос", "вопроса", "вопросов"),
    "point": ("балл", "балла", "баллов"),
    "job": ("задание", "задания", "заданий"),
    "character": ("символ", "символа", "символов"),
}
_NOUNS_EN = {"batch": "batches"}


def times_ru(x: float) -> str:
    """«в N раз» without the «в»: «2 раза», «5 раз», «21 раз», «1,5 раза» (fractions: «раза»)."""
    if float(x).is_integer():
        n = int(x)
        return f"{num(n, lang='ru')} {plural_ru(n, 'раз', 'раза', 'раз')}"
    return f"{num(float(x), 'g', 'ru')} раза"


def count(n: int, noun: str, lang: str | None = None) -> str:
    """``n`` and its noun in the right form: «1 эпоха», «3 эпохи», «5 эпох», «206 170 токенов»;
    in English "1 epoch", "5 epochs". ``noun`` is a key of :data:`NOUNS_RU`."""
    if get_language(lang) == "ru":
        return f"{num(n, lang='ru')} {plural_ru(n, *NOUNS_RU[noun])}"
    word = noun if abs(n) == 1 else _NOUNS_EN.get(noun, noun + "s")
    return f"{n} {word}"


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
            "Контрольные точки (чекпойнты): лучшая эпоха без перезапуска"
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
