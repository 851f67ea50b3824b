"""The course teaches what is true of the real service, and labels what only the emulator does.

* A lesson never calls a limit "the API's" when the README's table "What the emulator adds or
  assumes" marks that limit as an assumption (not documented by Google).
* The quiz's trusted key is complete: every question has a key letter in a-d, an explanation
  for each other option that names a section to reread (which exists), and praise.
"""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import nbformat
import pytest

from tunelab.checks import quiz as quiz_checks

ROOT = Path(__file__).resolve().parents[1]
SOLUTIONS = ROOT / "solutions"
PROSE = sorted(SOLUTIONS.glob("[0-9][0-9]_*/*.ipynb")) + [
    SOLUTIONS / "sql_overfitting" / "sql_overfitting.ipynb",
    SOLUTIONS / "quiz" / "quiz.ipynb",
]

# A sentence that presents a limit as the real API's own.
API_CLAIM = re.compile(
    r"\bthe (?:gemini )?API'?s\b|\bAPI limits?\b|\blimits of the (?:gemini )?API\b"
    r"|\bthe (?:gemini )?API (?:rejects|refuses|enforces|enforced|requires|allows)\b"
    r"|\benforced by the (?:gemini )?API\b",
    re.IGNORECASE,
)
# ...unless the same sentence says whose assumption it is.
LABELLED = re.compile(r"emulator|assum|not documented|undocumented", re.IGNORECASE)


def _dashes(text: str) -> str:
    return re.sub(r"[\u2012-\u2015\u2212]", "-", text)


def emulator_table() -> list[list[str]]:
    """Rows (behaviour, real service, emulator) of the README's emulator table."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    match = re.search(r"^## What the emulator adds or assumes\n(.*?)(?=^## )", text, re.M | re.S)
    assert match, "README.md has no section 'What the emulator adds or assumes'"
    rows = []
    for line in match.group(1).splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if line.startswith("|") and len(cells) == 3 and not set(cells[0]) <= {"-", " "}:
            rows.append(cells)
    assert rows and rows[0][0] == "behaviour", "the table's header should be behaviour | ..."
    return rows[1:]


def assumed_limits() -> list[str]:
    """The backticked markers of every limit the table marks as an assumption."""
    markers = []
    for behaviour, real, _ in emulator_table():
        if "assumption" in real.lower():
            found = re.findall(r"`([^`]+)`", behaviour)
            assert found, f"README emulator table: mark the limit in {behaviour!r} with backticks"
            markers += [_dashes(m).lower() for m in found]
    return markers


def sentences(text: str) -> list[str]:
    """Paragraph pieces, table rows and list items, split into sentences."""
    pieces = []
    for block in re.split(r"\n\s*\n|\n(?=\s*[|*-] )|\n(?=\s*\d+\. )", text):
        pieces += re.split(r"(?<=[.;!?])\s+(?=[A-Z*(`])", " ".join(block.split()))
    return pieces


def api_claims(text: str, markers: list[str]) -> list[str]:
    """Sentences that call an assumed limit the API's own."""
    bad = []
    for sentence in sentences(_dashes(text)):
        lower = sentence.lower()
        claims = any(m in lower for m in markers) and API_CLAIM.search(sentence)
        if claims and not LABELLED.search(sentence):
            bad.append(sentence)
    return bad


def test_readme_table_marks_the_undocumented_limits() -> None:
    markers = assumed_limits()
    for limit in ("1-100", "1-64", "at least 20", "duplicate"):
        assert limit in markers, f"README emulator table: {limit!r} should be an assumption"
    documented = [b for b, real, _ in emulator_table() if "40,000" in b or "5,000" in b]
    assert len(documented) == 2 and all(
        "documented" in real and "not" not in real
        for b, real, _ in emulator_table()
        if b in documented
    ), "the 40,000 / 5,000 character limits are the documented ones"


def test_the_detector_catches_a_false_claim() -> None:
    markers = assumed_limits()
    assert api_claims("Choose `epoch_count` within the API's limits: 1–100 epochs.", markers)
    assert api_claims("| at least 20 examples | the API rejects fewer |", markers)
    assert not api_claims(
        "Within the ranges the emulator enforces: 1-100 epochs (the emulator's assumption).",
        markers,
    )
    assert not api_claims("The API rejects inputs over 40,000 characters.", markers)


@pytest.mark.parametrize("path", PROSE, ids=lambda p: p.parent.name)
def test_no_lesson_calls_an_assumed_limit_the_apis(path: Path) -> None:
    markers = assumed_limits()
    nb = nbformat.read(path, as_version=4)
    bad = [
        f"cell {cell.get('id', index)}: {sentence}"
        for index, cell in enumerate(nb.cells)
        if cell.cell_type == "markdown"
        for sentence in api_claims(cell.source, markers)
    ]
    assert not bad, (
        f"{path.parent.name} calls a limit the API's that README.md's emulator table marks as "
        "an assumption; say it is the emulator's:\n" + "\n".join(bad)
    )


# --- the quiz's key ------------------------------------------------------------------------


def _checker():
    spec = importlib.util.spec_from_file_location(
        "quiz_checker_under_test", SOLUTIONS / "quiz" / "checker.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


_REREAD = re.compile(r"Reread (\d\d_[a-z_]+), '([^']+)'")


def _headings(name: str) -> set[str]:
    nb = nbformat.read(SOLUTIONS / name / f"{name}.ipynb", as_version=4)
    found = set()
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            found |= {m.group(1) for m in re.finditer(r"^#{1,6}\s+(.*?)\s*$", cell.source, re.M)}
    return found


def test_quiz_key_and_explanations_are_complete() -> None:
    checker = _checker()
    questions = set(quiz_checks.QUESTIONS)
    computed = set(quiz_checks.COMPUTED)
    assert len(questions) == 14 and computed == {"q10", "q11"}
    fixed = questions - computed
    assert set(checker.KEY) == fixed, "KEY should have exactly the quiz's fixed questions"
    assert set(checker.CORRECT) == fixed, "CORRECT should praise every fixed question"
    assert set(checker.WHY_WRONG) == fixed | {"q10"}, "WHY_WRONG should cover every question"
    for qid in sorted(fixed):
        key = checker.KEY[qid]
        assert key in quiz_checks.OPTIONS[qid] == "abcd", f"{qid}: key {key!r} is not a-d"
        wrong = set("abcd") - {key}
        assert set(checker.WHY_WRONG[qid]) == wrong, (
            f"{qid}: explain exactly the wrong options {sorted(wrong)}, "
            f"have {sorted(checker.WHY_WRONG[qid])}"
        )
        assert checker.CORRECT[qid].strip(), f"{qid}: empty praise"
    # q10's text options (canonical c, d) are always wrong; its numbers are explained per row
    assert set(checker.WHY_WRONG["q10"]) == {"c", "d"}
    texts = [w for q in checker.WHY_WRONG.values() for w in q.values()]
    texts += [why[0] for why in checker.Q11_WHY.values()]
    texts += [checker.REREAD_COST[0], checker.REREAD_PLATEAU[0]]
    for why in texts:
        for lesson, section in _REREAD.findall(why):
            assert any(h == section or h.endswith(section) for h in _headings(lesson)), (
                f"{lesson} has no section {section!r} ({why[:60]}...)"
            )
    assert all(_REREAD.findall(w) for q in checker.WHY_WRONG.values() for w in q.values())
    assert len(set(checker.KEY.values())) >= 3, "vary the correct letters"


def test_quiz_master_answers_match_the_key() -> None:
    """The master answers through the variant helpers with the key's canonical options."""
    checker = _checker()
    nb = nbformat.read(SOLUTIONS / "quiz" / "quiz.ipynb", as_version=4)
    shown = set()
    for cell in nb.cells:
        gid = cell.metadata.get("nbgrader", {}).get("grade_id", "")
        if gid.endswith("-options"):
            shown.add(gid.split("-")[0])
            assert f'quiz.show("{gid.split("-")[0]}")' in cell.source
        if gid.endswith("-answer") and gid.split("-")[0] in checker.KEY:
            qid = gid.split("-")[0]
            index = "abcd".index(checker.KEY[qid])
            assert f'answers["{qid}"] = quiz.letter("{qid}", {index})' in cell.source, (
                f"{qid}: the master's answer differs from KEY"
            )
    assert shown == set(quiz_checks.QUESTIONS), "every question shows its options from code"


# --- lesson 01's errata and glossary ----------------------------------------------------------


def _heading_set(texts: list[str]) -> set[str]:
    return {
        line.lstrip("#").strip()
        for text in texts
        for line in text.splitlines()
        if line.startswith("#")
    }


def _lesson(number: int) -> str:
    found = [p.name for p in SOLUTIONS.glob(f"{number:02d}_*") if p.is_dir()]
    assert len(found) == 1, f"no single lesson folder for lesson {number}: {found}"
    return found[0]


def test_errata_links_name_headings_that_exist_in_both_editions() -> None:
    import json

    nb = nbformat.read(SOLUTIONS / "01_welcome" / "01_welcome.ipynb", as_version=4)
    errata = next(c for c in nb.cells if c.get("id") == "01-errata").source
    ru_cat = json.loads((ROOT / "translations/ru/01_welcome.json").read_text(encoding="utf-8"))
    ru_errata = ru_cat["cells"]["01-errata"]["ru"]
    en_links = re.findall(r"lesson (\d+), '([^']+)'", errata)
    ru_links = re.findall(r"урок (\d+), «([^«»]+)»", ru_errata)
    assert len(en_links) >= 12 and len(ru_links) == len(en_links)
    missing = []
    for number, heading in en_links:
        name = _lesson(int(number))
        master = nbformat.read(SOLUTIONS / name / f"{name}.ipynb", as_version=4)
        if heading not in _heading_set(
            [c.source for c in master.cells if c.cell_type == "markdown"]
        ):
            missing.append(f"lesson {number}: {heading!r}")
    for number, heading in ru_links:
        name = _lesson(int(number))
        cat = json.loads((ROOT / f"translations/ru/{name}.json").read_text(encoding="utf-8"))
        if heading not in _heading_set([e.get("ru", "") for e in cat["cells"].values()]):
            missing.append(f"урок {number}: {heading!r}")
    assert not missing, "lesson 01's errata link headings that do not exist:\n" + "\n".join(missing)


def test_glossary_has_the_terms_and_the_checkpoint_caveat() -> None:
    nb = nbformat.read(SOLUTIONS / "01_welcome" / "01_welcome.ipynb", as_version=4)
    glossary = next(c for c in nb.cells if c.get("id") == "01-glossary").source
    terms = {row.split("|")[1].strip() for row in glossary.splitlines() if row.startswith("| ")}
    for term in (
        "fine-tuning",
        "underfitting",
        "plateau",
        "divergence",
        "held-out examples",
        "validation set",
        "loss curve",
        "execution accuracy",
        "checkpoint",
    ):
        assert term in terms, f"lesson 01's glossary lacks {term!r}"
    checkpoint = next(r for r in glossary.splitlines() if r.startswith("| checkpoint |"))
    assert "every epoch" not in checkpoint and "about 10" in checkpoint


def test_readme_lists_the_vertex_services_assumptions() -> None:
    """The Agent Platform (Vertex AI) service's own behaviour is in the README's table too."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split("### The Agent Platform (Vertex AI) tuning service", 1)
    assert len(section) == 2, "README.md: no table of the Agent Platform service's assumptions"
    table = section[1].split("\n## ", 1)[0]
    for needle in (
        "one per completed epoch",  # checkpoints
        "`.jsonl`",  # the request vs the file's contents
        ":emulatorMetrics",
        "`batch_size`, `learning_rate`",
        "checkpoints of the epochs completed before the cancel are kept",
        "`tunings.list` order",
        "`at least 16` training examples",
        "express mode",
        "`adapter_size`",
    ):
        assert needle in table, f"README.md's Agent Platform table lacks {needle!r}"
    behaviours = [b for b, _, _ in emulator_table()]
    assert "`tunings.list` order" in behaviours  # parsed by the same table reader
