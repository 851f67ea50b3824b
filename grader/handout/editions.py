"""Editions: one English master per notebook, a Russian edition built from it and a catalogue.

Why: two hand-kept copies of every notebook drift apart (a fixed bug in one, a changed grade
id in the other). Here the English master in ``solutions/`` is the only source; the Russian
text is *data* beside it, ``translations/ru/NAME.json``::

    {"notebook": "quiz",
     "cells": {
       "quiz-intro": {"en_sha": "3f2a…", "ru": "# Тест: …"},             # a markdown cell
       "quiz-setup": {"en_sha": "91c0…", "strings": {"# just run this cell": "# просто …"}}
     }}

* a markdown cell's entry is its whole Russian text;
* a code cell's entry maps English fragments of its *comments and string literals* to
  Russian ones; they are applied to those tokens only (:mod:`tokenize`), so the code itself
  cannot change. A fragment never spans two tokens (one comment line, one literal). A key
  ``CONTEXT||FRAGMENT`` applies only on lines containing CONTEXT (for short literals such as
  ``"step"`` that elsewhere are column names);
* ``en_sha`` is the hash of the English cell's source the translation was made from: when
  the English cell changes, the entry is *stale* and ``tests/test_editions.py`` names it.

``translations/ru/EDITION.json`` lists the notebooks whose translation is complete; only they
get a Russian edition (``notebooks/ru/NAME/NAME.ipynb``, released by :mod:`grader.handout.release`
with nbgrader like the English one, and never recorded in the gradebook: both editions are
one assignment, graded against the English master with the same checks). The Russian
edition says so in its metadata (``metadata.tunelab.lang = "ru"``): the grader words its
feedback in that language, and one line inserted after ``import tunelab`` in the first code
cell (:data:`EDITION_LINE`) switches the visible checks' messages to Russian.
"""

from __future__ import annotations

import copy
import hashlib
import io
import json
import re
import tokenize
from dataclasses import dataclass, field
from pathlib import Path

import nbformat

REPO = Path(__file__).resolve().parents[2]
LANGS = ("ru",)
#: where the Russian editions go, relative to the release folder (``notebooks/``)
EDITION_DIRS = {"ru": "ru"}
#: What nbgrader leaves in an answer cell of the edition (``ClearSolutions`` stubs); grading
#: maps them back to the English ones, whose checksums the gradebook holds.
STUBS = {
    "ru": {
        "code": "# ВАШ КОД ЗДЕСЬ\n"
        'raise NotImplementedError("замените эту строку своим ответом, затем запустите '
        'проверочную ячейку ниже")',
        "text": "ВАШ ОТВЕТ ЗДЕСЬ",
    }
}
EDITION_LINE = {"ru": 'tunelab.set_language("ru")  # проверки и подсказки — на русском'}
#: For a notebook without ``import tunelab``: the same switch on one line of its own.
EDITION_IMPORT_LINE = {
    "ru": '__import__("tunelab").set_language("ru")  # проверки и подсказки — на русском'
}
#: ``"set_xlabel||\"step\""``: the fragment ``"step"`` only in a token on a line that also holds
#: ``set_xlabel`` (a bare word like "step" may also be a column name, which must not change).
CONTEXT_MARK = "||"
_STRING_TOKENS = {tokenize.COMMENT, tokenize.STRING}


class EditionError(ValueError):
    """A catalogue does not fit its master (unknown cell, fragment not found, bad code)."""


def translations_dir(root: Path = REPO, lang: str = "ru") -> Path:
    return Path(root) / "translations" / lang


def source_sha(source: str) -> str:
    """The hash an entry records of the English cell it translates."""
    return hashlib.sha256(source.strip().encode("utf-8")).hexdigest()[:16]


def translated(root: Path = REPO, lang: str = "ru") -> list[str]:
    """Notebooks (assignment ids) with a complete translation, from ``EDITION.json``."""
    path = translations_dir(root, lang) / "EDITION.json"
    if not path.is_file():
        return []
    return list(json.loads(path.read_text(encoding="utf-8"))["translated"])


def load_catalogue(name: str, root: Path = REPO, lang: str = "ru") -> dict:
    path = translations_dir(root, lang) / f"{name}.json"
    if not path.is_file():
        return {"notebook": name, "cells": {}}
    return json.loads(path.read_text(encoding="utf-8"))


def cell_key(cell) -> str:
    """A cell's key in the catalogue: its grade id when it has one, else its cell id."""
    return cell.get("metadata", {}).get("nbgrader", {}).get("grade_id") or cell.get("id", "")


# -- code cells: comments and string literals only -----------------------------------------------
def _tokens(source: str) -> list[tokenize.TokenInfo]:
    return list(tokenize.generate_tokens(io.StringIO(source).readline))


def _offsets(source: str) -> list[int]:
    starts, total = [0], 0
    for line in source.splitlines(keepends=True):
        total += len(line)
        starts.append(total)
    return starts


def translate_code(source: str, strings: dict[str, str]) -> tuple[str, set[str]]:
    """``source`` with each English fragment replaced inside comments and string literals.

    Returns the new source and the fragments that were used (a fragment found nowhere is a
    catalogue error). Python lines that are not comments or strings are never touched, and
    an IPython line (``%matplotlib``) makes the whole cell untranslatable.
    """
    if not strings:
        return source, set()
    try:
        tokens = _tokens(source)
    except (tokenize.TokenError, IndentationError, SyntaxError) as err:
        raise EditionError(f"cannot tokenize: {err}") from err
    starts = _offsets(source)
    used: set[str] = set()
    pieces, cursor = [], 0
    ordered = sorted(strings, key=len, reverse=True)  # longer fragments first
    for tok in tokens:
        if tok.type not in _STRING_TOKENS:
            continue
        text = tok.string
        new = text
        for en in ordered:
            context, _, fragment = en.rpartition(CONTEXT_MARK)
            if fragment in new and context in tok.line:
                new = new.replace(fragment, strings[en])
                used.add(en)
        if new == text:
            continue
        begin = starts[tok.start[0] - 1] + tok.start[1]
        end = starts[tok.end[0] - 1] + tok.end[1]
        pieces += [source[cursor:begin], new]
        cursor = end
    pieces.append(source[cursor:])
    return "".join(pieces), used


def code_view(source: str, lang: str | None = None) -> list[tuple[int, str]]:
    """The code of a cell without its comments and with every string literal blanked (f-string
    fields kept): what must be identical in both editions."""
    if lang is not None:
        marked = (EDITION_LINE[lang], EDITION_IMPORT_LINE[lang])
        source = "\n".join(line for line in source.split("\n") if line not in marked)
    out = []
    for tok in _tokens(source):
        if tok.type in (tokenize.COMMENT, tokenize.NL, tokenize.NEWLINE):
            continue
        if tok.type == tokenize.STRING:
            prefix = re.match(r"[A-Za-z]*", tok.string).group(0)
            fields = sorted(re.findall(r"\{[^{}]*\}", tok.string)) if "f" in prefix.lower() else []
            out.append((tok.type, prefix.lower() + "<str>" + "".join(fields)))
        else:
            out.append((tok.type, tok.string))
    return out


# -- whole notebooks -------------------------------------------------------------------------------
@dataclass
class Report:
    """What building an edition found wrong with its catalogue (empty: all good)."""

    missing: list[str] = field(default_factory=list)  # cells with no entry
    stale: list[str] = field(default_factory=list)  # entries made for another English text
    unused: list[str] = field(default_factory=list)  # fragments found in no token
    unknown: list[str] = field(default_factory=list)  # entries for cells the master lacks

    def problems(self) -> list[str]:
        return (
            [f"cell {k}: no translation" for k in self.missing]
            + [f"cell {k}: stale (the English cell changed; retranslate it)" for k in self.stale]
            + [f"cell {k}: fragment not found in its comments/strings" for k in self.unused]
            + [f"cell {k}: not in the master" for k in self.unknown]
        )


def needs_translation(cell) -> bool:
    """Markdown cells always; code cells only when their comments or strings hold prose."""
    if cell.cell_type == "markdown":
        return bool(cell.source.strip())
    return False


def _insert_edition_line(nb, lang: str) -> None:
    """Switch the notebook's messages to ``lang`` right after its first ``import tunelab``;
    a notebook that never imports tunelab gets one marked line at the top of its first code
    cell (both are left out when the editions' code is compared)."""
    code = [c for c in nb.cells if c.cell_type == "code"]
    for cell in code:
        lines = cell.source.split("\n")
        if "import tunelab" in lines:
            lines.insert(lines.index("import tunelab") + 1, EDITION_LINE[lang])
            cell.source = "\n".join(lines)
            return
    if code:
        code[0].source = EDITION_IMPORT_LINE[lang] + "\n" + code[0].source


def build_edition(
    master, catalogue: dict, lang: str = "ru"
) -> tuple[nbformat.NotebookNode, Report]:
    """The ``lang`` edition of an English master notebook (a copy) and the catalogue's problems."""
    nb = copy.deepcopy(master)
    entries = dict(catalogue.get("cells", {}))
    report = Report()
    for cell in nb.cells:
        key = cell_key(cell)
        entry = entries.pop(key, None)
        if entry is None:
            if needs_translation(cell):
                report.missing.append(key)
            continue
        if entry.get("en_sha") != source_sha(cell.source):
            report.stale.append(key)
        if cell.cell_type == "markdown":
            if "ru" in entry:
                cell.source = entry["ru"]
        else:
            strings = entry.get("strings", {})
            try:
                cell.source, used = translate_code(cell.source, strings)
            except EditionError as err:
                raise EditionError(f"cell {key}: {err}") from err
            report.unused += [f"{key} ({en!r})" for en in strings if en not in used]
    report.unknown += sorted(entries)
    nb.metadata.setdefault("tunelab", {})["lang"] = lang
    _insert_edition_line(nb, lang)
    return nb, report


def edition_language(nb) -> str:
    """The language a notebook (a master, a release, a submission) was written in."""
    meta = nb.get("metadata", {}) if isinstance(nb, dict) else nb.metadata
    tunelab_meta = meta.get("tunelab") if isinstance(meta, dict) else None
    lang = tunelab_meta.get("lang") if isinstance(tunelab_meta, dict) else None
    # a submission's metadata is hostile: only an exact known string selects an edition
    return lang if type(lang) is str and lang in LANGS else "en"


def submission_language(path: Path) -> str:
    """The edition of a submitted notebook file ("en" when unreadable)."""
    try:
        return edition_language(nbformat.read(path, as_version=4))
    except Exception:  # noqa: BLE001 (unreadable submissions are reported elsewhere)
        return "en"


def released_copy(release: Path, assignment: str, notebook: str, lang: str) -> Path:
    """The released student copy of an edition (the English one when ``lang`` is "en")."""
    base = release if lang == "en" else release / EDITION_DIRS[lang]
    return base / assignment / f"{notebook}.ipynb"


def retranslate_locked(nb, root: Path, notebook: str) -> None:
    """Re-apply the edition's translation to read-only and test cells after grading restored
    them from the (English) gradebook, so a Russian student's feedback stays Russian."""
    lang = edition_language(nb)
    if lang == "en":
        return
    entries = load_catalogue(notebook, root, lang).get("cells", {})
    for cell in nb.cells:
        meta = cell.metadata.get("nbgrader", {})
        if not (meta.get("locked") or meta.get("grade")) or meta.get("solution"):
            continue
        entry = entries.get(cell_key(cell))
        if entry is None or entry.get("en_sha") != source_sha(cell.source):
            continue  # not the English original (or no translation): leave it as graded
        if cell.cell_type == "markdown" and "ru" in entry:
            cell.source = entry["ru"]
        elif cell.cell_type == "code":
            with _suppress_edition_errors():
                cell.source, _ = translate_code(cell.source, entry.get("strings", {}))
    marked = (EDITION_LINE[lang], EDITION_IMPORT_LINE[lang])
    if not any(m in c.source for m in marked for c in nb.cells if c.cell_type == "code"):
        _insert_edition_line(nb, lang)


class _suppress_edition_errors:
    def __enter__(self):
        return self

    def __exit__(self, kind, value, tb):
        return kind is not None and issubclass(kind, EditionError)


def write_editions(source: Path, dest_root: Path, names: list[str], root: Path = REPO) -> Path:
    """Russian masters for ``names`` under ``dest_root/solutions`` (a scratch course)."""
    for name in names:
        for master in sorted((source / name).glob("*.ipynb")):
            nb, report = build_edition(
                nbformat.read(master, as_version=4), load_catalogue(master.stem, root)
            )
            problems = [p for p in report.problems() if "stale" not in p]
            if problems:
                raise EditionError(f"{master.name}: " + "; ".join(problems))
            target = dest_root / "solutions" / name / master.name
            target.parent.mkdir(parents=True, exist_ok=True)
            nbformat.write(nb, target)
    return dest_root


def _preprocessor_base():
    from nbconvert.preprocessors import Preprocessor

    return Preprocessor


class RetranslateEdition(_preprocessor_base()):
    """Autograding's sanitize step after ``OverwriteCells``: a translated submission's restored
    read-only and test cells get their translation back (grading is unchanged: same code)."""

    def __call__(self, nb, resources):  # nbconvert's base class runs only ``enabled`` steps
        return self.preprocess(nb, resources)

    def preprocess(self, nb, resources):
        checker = (resources.get("grader") or {}).get("checker")
        root = Path(checker.path).resolve().parents[2] if checker is not None else REPO
        notebook = (resources.get("nbgrader") or {}).get("notebook") or ""
        retranslate_locked(nb, root, notebook)
        english_stubs(nb, resources)
        return nb, resources


def english_stubs(nb, resources) -> None:
    """An unanswered cell of a translated edition holds the edition's stub: give it the English
    stub back, so nbgrader's checksums see "no response" exactly as for an English student."""
    lang = edition_language(nb)
    if lang not in STUBS:
        return
    from nbgrader.preprocessors import ClearSolutions

    config = (resources.get("grader") or {}).get("config")
    english = ClearSolutions(config=config) if config is not None else ClearSolutions()
    code_stub = english.code_stub.get("python", "")
    text_stub = english.text_stub
    for cell in nb.cells:
        if not cell.metadata.get("nbgrader", {}).get("solution"):
            continue
        if cell.cell_type == "code" and cell.source.strip() == STUBS[lang]["code"].strip():
            cell.source = code_stub
        elif cell.cell_type == "markdown" and cell.source.strip() == STUBS[lang]["text"]:
            cell.source = text_stub
