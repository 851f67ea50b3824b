"""The Russian edition reads like Russian: numbers, plural forms and one term per concept.

Why: a Russian reader trips over «0.001», «206,170 токенов», «эпох(и)» or a concept that is
«потеря» in one lesson and «потери» in the next, and each costs the course some trust. These
tests read the *sources* (catalogues, tunelab's Russian strings, the checkers' Russian
feedback); ``tests/test_russian_runtime.py`` runs every Russian master and reads its outputs.
"""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path

import pytest

from grader.handout import editions
from tunelab import i18n

ROOT = Path(__file__).resolve().parents[1]
TRANSLATED = editions.translated(ROOT)
CYRILLIC = re.compile("[а-яё]", re.IGNORECASE)

# -- numbers ---------------------------------------------------------------------------------------
#: A dot-decimal («0.001») or a comma-grouped thousand («206,170») written as prose. A number
#: glued to a letter, a hyphen, a slash or another dot is part of a name (gemini-2.5-flash,
#: Python 3.11 is handled below, 127.0.0.1, v1.5).
_DOT_DECIMAL = re.compile(r"(?<![\w.\-/=])\d+\.\d+(?![\w\-/]|\.\w)")
#: «1,500» is a Russian decimal, so a comma group counts as English thousands only when it
#: cannot be one: two or three leading digits («32,926»), two groups, or a counted noun after it.
_COMMA_THOUSANDS = re.compile(
    r"(?<![\w.,])(?:[1-9]\d{1,2}(?:,\d{3})+|\d(?:,\d{3}){2,}"
    r"|[1-9],\d{3}(?=\s+(?:токен|пример|символ|шаг|строк|модел|эпох|вопрос|USD|долл)))(?![\d,])"
)
#: What prose may hold with a dot: product and library versions.
_VERSIONED = re.compile(
    r"(?:Python|Gemini|версии?|version|SDK|pandas|numpy|nbgrader)\s+\d+\.\d+(?:\.\d+)*|"
    r"\d+\.\d+\.\d+",
    re.IGNORECASE,
)


def _without_code(text: str) -> str:
    """Markdown prose: fenced blocks, code spans, links' targets, HTML tags and LaTeX removed."""
    text = re.sub(r"```.*?```", " ", text, flags=re.S)
    text = re.sub(r"`[^`]*`", " ", text)
    text = re.sub(r"\]\([^)]*\)", "] ", text)
    text = re.sub(r"https?://\S+", " ", text)
    text = re.sub(r"<[^>]+>", " ", text)
    text = re.sub(r"\$[^$\n]+\$", " ", text)
    return _VERSIONED.sub(" ", text)


#: Digit groups split by an ordinary space: the course uses a no-break space (U+00A0), so
#: «2 000 000» never breaks across lines, and writes four-digit numbers solid («2000»).
_SPACE_GROUPS = re.compile(r"(?<![\d,.])\d{1,3}(?: \d{3})+(?![\d,])")


def number_style_problems(text: str) -> list[str]:
    """Numbers written the English way in Russian prose (code removed first)."""
    prose = _without_code(text)
    return (
        [m.group(0) for m in _DOT_DECIMAL.finditer(prose)]
        + [m.group(0) for m in _COMMA_THOUSANDS.finditer(prose)]
        + [m.group(0) for m in _SPACE_GROUPS.finditer(prose)]
    )


def test_number_detector() -> None:
    assert number_style_problems("скорость 0.001 и 250,000 примеров") == ["0.001", "250,000"]
    assert not number_style_problems("скорость 0,001 и 250\u00a0000 примеров, 1,5 эпохи")
    assert not number_style_problems("`learning_rate=0.001`, gemini-2.5-flash, Python 3.11")
    assert not number_style_problems("адрес 127.0.0.1, google-generativeai 0.8.6")
    assert not number_style_problems("потери 1,90; 1,05; 0,62; 1,500")
    assert number_style_problems("2 000 000 токенов") == ["2 000 000"]
    assert number_style_problems("32,926 токенов, 1,401 токенов") == ["32,926", "1,401"]


def test_number_helper() -> None:
    assert i18n.num(0.001, lang="ru") == "0,001"
    assert i18n.num(250_000, lang="ru") == "250\u00a0000"
    assert i18n.num(206_170, ",", lang="ru") == "206\u00a0170"
    assert i18n.num(2000, ",", lang="ru") == "2000"  # four digits stay whole in Russian
    assert i18n.num(0.4567, ".3f", lang="ru") == "0,457"
    assert i18n.num(0.5, ".0%", lang="ru") == "50\u00a0%"
    assert i18n.num(0.5, ".0%", lang="en") == "50%"
    assert i18n.num(206_170, ",", lang="en") == "206,170"
    assert i18n.num(0.001, lang="en") == "0.001"
    assert i18n.tr("{x:.2f}", "{x:.2f} и {n:,}; код: {x!r}", "ru", x=0.5, n=12345) == (
        "0,50 и 12\u00a0345; код: 0.5"
    )


@pytest.mark.parametrize(
    ("n", "word"),
    [(1, "эпоха"), (2, "эпохи"), (4, "эпохи"), (5, "эпох"), (11, "эпох"), (12, "эпох"),
     (14, "эпох"), (21, "эпоха"), (22, "эпохи"), (25, "эпох"), (101, "эпоха"), (111, "эпох")],
)  # fmt: skip
def test_plural_forms(n: int, word: str) -> None:
    assert i18n.count(n, "epoch", "ru") == f"{n} {word}"


def test_plural_forms_of_the_course_nouns() -> None:
    assert [i18n.count(n, "model", "ru") for n in (1, 2, 5)] == [
        "1 модель",
        "2 модели",
        "5 моделей",
    ]
    assert i18n.count(206_170, "token", "ru") == "206\u00a0170 токенов"
    assert i18n.count(1, "epoch", "en") == "1 epoch" and i18n.count(3, "epoch", "en") == "3 epochs"


# -- what the tests read -----------------------------------------------------------------------
def _catalogue_texts() -> list[tuple[str, str]]:
    """(where, Russian text) for every markdown cell and code string of every catalogue."""
    out = []
    for path in sorted((ROOT / "translations" / "ru").glob("*.json")):
        data = json.loads(path.read_text(encoding="utf-8"))
        for key, entry in (data.get("cells") or {}).items():
            if not isinstance(entry, dict):
                continue
            if "ru" in entry:
                out.append((f"{path.name} {key}", entry["ru"]))
            for ru in (entry.get("strings") or {}).values():
                out.append((f"{path.name} {key} (code)", ru))
    return out


def _python_russian_strings(path: Path) -> list[tuple[str, str]]:
    """Russian string literals of a Python file (implicitly joined parts joined)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            if CYRILLIC.search(node.value):
                out.append((f"{path.relative_to(ROOT)}:{node.lineno}", node.value))
        elif isinstance(node, ast.JoinedStr):
            text = "".join(v.value if isinstance(v, ast.Constant) else "{}" for v in node.values)
            if CYRILLIC.search(text):
                out.append((f"{path.relative_to(ROOT)}:{node.lineno}", text))
    return out


def _code_russian_texts() -> list[tuple[str, str]]:
    files = sorted((ROOT / "tunelab").rglob("*.py")) + sorted(ROOT.glob("solutions/*/checker.py"))
    return [item for path in files for item in _python_russian_strings(path)]


def _markdown_of_catalogues() -> list[tuple[str, str]]:
    return [(w, t) for w, t in _catalogue_texts() if not w.endswith("(code)")]


def test_russian_lessons_write_numbers_the_russian_way() -> None:
    """Markdown prose, and the Russian comments and messages in the lessons' code."""
    found = []
    for where, text in _catalogue_texts():
        if where.endswith("(code)"):
            text = re.sub(r"\{[^{}]*\}|'[^']*'", " ", text)  # f-string fields, quoted code
        found += [f"{where}: {bad!r}" for bad in number_style_problems(text)]
    assert not found, "English-style numbers in Russian prose:\n  " + "\n  ".join(found)


def test_russian_messages_write_numbers_the_russian_way() -> None:
    """tunelab's and the checkers' Russian messages: literal numbers in prose are Russian
    (formatted fields are, through :func:`tunelab.i18n.tr`)."""
    found = []
    for where, text in _code_russian_texts():
        prose = re.sub(r"'[^']*'|\{[^{}]*\}", " ", text)  # quoted code and format fields
        found += [f"{where}: {bad!r}" for bad in number_style_problems(prose)]
    assert not found, "English-style numbers in Russian messages:\n  " + "\n  ".join(found)


# -- one term per concept --------------------------------------------------------------------
#: (pattern, what to write instead). Case-insensitive; checked in every catalogue, in every
#: Russian string of tunelab (checks, panel, monitor, the emulators' errors) and of the checkers.
FORBIDDEN = [
    (r"ноутбук", "«блокнот»"),
    (r"(?<![а-яё])потер(?:я|ю|ей|е)(?![а-яё])", "«потери» (plural, as in the glossary)"),
    (r"настро[ей]нн[а-яё]*", "«дообученная модель»"),
    (r"задани[а-яё]* настройки|операци[а-яё]* настройки", "«задание дообучения»"),
    (r"чекпоинт", "«чекпойнт»"),
    (
        r"контрольн[а-яё]* точ[а-яё]*+(?!\*{0,2} \(чекпойнт)",
        "«контрольная точка (чекпойнт)» on first use, then «чекпойнт»",
    ),
    (r"[а-яё]\((?:и|ы|а|ов|ей|ь|у|я)\)", "the right plural form (i18n.count), not «эпох(и)»"),
    (r"(?<![а-яё])ручк[а-яё]*", "«рычаги управления» (the source's term)"),
    (r"говорит на (?:том же |тех же )?(?:REST|API|gRPC|язык)", "«поддерживает»"),
    (r"недообученн[а-яё]* базов", "«базовая модель без дообучения» (недообучение = underfitting)"),
    (r"[0-9]+-эпохов[а-яё]*|одноэпохов[а-яё]*", "«модель после 20 эпох», «задание на одну эпоху»"),
    (r"валидационн[а-яё]* потер[а-яё]*", "«потери на валидации»"),
    (r"датасет", "«набор данных»"),
    (r"снэпшот|снапшот", "«снимок»"),
    (r"оверфит", "«переобучение»"),
    (r"тонк[а-яё]* настро[а-яё]*", "«дообучение»"),
    (r"размер(?:а|е|ом)? (?:пакета|партии)", "«размер батча»"),
    (r"темп[а-яё]* обучения|коэффициент[а-яё]* обучения", "«скорость обучения»"),
    (r"ранн[а-яё]* останов(?!к)", "«ранняя остановка»"),
    (r"Google (?:[а-яё]+ )?(?:[а-яё]+ил|[а-яё]+ял|[а-яё]+ел|[а-яё]+ал|[а-яё]+ёл)(?![а-яё])",
     "Google is feminine in this course («Google прекратила», «Google документировала»)"),
]  # fmt: skip


def _forbidden_in(texts: list[tuple[str, str]]) -> list[str]:
    found = []
    for where, text in texts:
        flat = " ".join(text.split())
        for pattern, instead in FORBIDDEN:
            for m in re.finditer(pattern, flat, re.IGNORECASE):
                found.append(f"{where}: {m.group(0)!r} -> {instead}")
    return found


def test_terms_detector() -> None:
    assert _forbidden_in([("x", "этот ноутбук, потеря на валидации, эпох(и)")])
    assert _forbidden_in([("x", "возьмите контрольную точку")])
    assert not _forbidden_in([("x", "контрольные точки (чекпойнты); возьмите чекпойнт")])
    assert not _forbidden_in([("x", "потери на валидации; функция потерь; Google прекратила")])
    assert _forbidden_in([("x", "Google прекратил")])


def test_one_term_per_concept_in_the_catalogues() -> None:
    found = _forbidden_in(_catalogue_texts())
    assert not found, "terms off the glossary:\n  " + "\n  ".join(found)


def test_one_term_per_concept_in_russian_messages() -> None:
    found = _forbidden_in(_code_russian_texts())
    assert not found, "terms off the glossary:\n  " + "\n  ".join(found)


def test_stub_text_matches_the_edition_stub() -> None:
    """What lesson 01 tells a Russian student to replace is what nbgrader leaves in the cell."""
    stub = editions.STUBS["ru"]["code"].splitlines()[0]
    welcome = json.loads((ROOT / "translations/ru/01_welcome.json").read_text(encoding="utf-8"))
    texts = " ".join(e.get("ru", "") for e in welcome["cells"].values())
    assert stub in texts, f"lesson 01 should show the stub {stub!r}"
    assert "YOUR CODE HERE" not in texts


def test_russian_tables_and_back(monkeypatch: pytest.MonkeyPatch) -> None:
    """The Russian edition's switch makes pandas write «0,25» and «164 630»; English puts the
    default display back (the lessons' code is the same in both editions)."""
    import pandas as pd

    monkeypatch.setattr(i18n, "_chosen", None)
    frame = pd.DataFrame({"loss": [0.25, 1.5], "tokens": [164_630, 12]})
    english = frame.to_string()
    try:
        i18n.set_language("ru")
        assert "0,25" in frame.to_string()
        html = frame.style.format({"tokens": "{:,}", "loss": "{:.3f}"}).to_html()
        assert "164\u00a0630" in html and "0,250" in html
    finally:
        i18n.set_language("en")
    assert frame.to_string() == english
    assert "164,630" in frame.style.format({"tokens": "{:,}"}).to_html()
