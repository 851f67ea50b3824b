"""What a Russian student reads at run time is Russian: every Russian master, run offline.

Why: a catalogue can be perfect and the lesson still print «CREATING, step 40», «32,926
токенов» or an English error from the emulator, because those come from code. So this module
runs every Russian master top to bottom (nbclient, the fast emulator of ``test_notebooks``),
reads every output a student sees (printed text, errors, tables) and checks that

* no English sentence is left, except what the course data holds (the task domains are
  English: prompts, reference answers, SQL) and a short list of library messages the lessons
  show on purpose;
* numbers are written the Russian way: «0,448», «32 926», never «0.448» or «32,926» in prose
  (Python literals, dicts, lists and quoted text are code, and exempt).

Figures are images; :func:`test_russian_figures_have_russian_text` draws the course's plots in
Russian and reads their text artists instead.
"""

from __future__ import annotations

import html
import re
from functools import cache
from pathlib import Path

import nbformat
import pytest

from grader.handout import editions
from tests.test_editions import english_runs
from tests.test_russian_style import number_style_problems
from tunelab import i18n

ROOT = Path(__file__).resolve().parents[1]
TRANSLATED = editions.translated(ROOT)

#: English a Russian lesson shows on purpose: Python's and the libraries' own messages (the
#: lessons teach the student to read them), with the lesson that shows each.
LIBRARY_MESSAGES = (
    "object has no attribute",  # 03, 04: the source lesson's snap.step / error_message bugs
    "got an unexpected keyword argument",  # 03: create_tuned_model(learning_rate_multiplier=)
    "Expecting",  # 06: the json module's parse errors, quoted in the problems table
)
#: Output that is code or a machine-readable value, not prose.
_CODE_LIKE = re.compile(
    r"'[^'\n]*'|\"[^\"\n]*\"|\{[^{}\n]*\}|\[[^\[\]\n]*\]|https?://\S+|\b\w+=\S+|<[^>\n]*>"
    r"|\b[a-z]+(?:_[a-z]+)+: \S+"  # a field printed with its name: mean_loss: 1.314991
)


@cache
def data_corpus() -> str:
    """Every text of the course data (data/) and of the task domains the emulator answers from
    (tunelab/domains/): English prompts, answers and SQL are content, not the course's voice."""
    parts = []
    for path in sorted((ROOT / "data").rglob("*")):
        if path.suffix in {".jsonl", ".json", ".txt", ".sql"} and path.is_file():
            parts.append(path.read_text(encoding="utf-8", errors="replace"))
    for path in sorted((ROOT / "tunelab" / "domains").glob("*.py")):
        parts.append(path.read_text(encoding="utf-8"))
    return " ".join(" ".join(parts).split())  # one space between words, as a run has


@cache
def _entities() -> list[str]:
    """Names the emulator fills into its answer templates (products, systems, ...): the short
    string constants of tunelab/domains, longest first."""
    import ast

    names = set()
    for path in (ROOT / "tunelab" / "domains").glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                value = node.value.strip()
                if 2 < len(value) <= 30 and "{" not in value and value[:1].isupper():
                    names.add(value)
    return sorted(names, key=len, reverse=True)


def _generic(text: str) -> str:
    """Template placeholders and the names filled into them, all as «{}»."""
    text = re.sub(r"\{\w*\}", "{}", text)
    for name in _entities():
        text = text.replace(name, "{}")
    return text


@cache
def _generic_corpus() -> str:
    return _generic(data_corpus())


def _from_data(run: str) -> bool:
    """Course data, or the emulator's answers built from its templates: every three words in
    a row occur there, names aside (a word cut off by «…» still matches)."""

    def windows(text: str) -> list[str]:
        words = text.split()
        return [" ".join(words[i : i + 3]) for i in range(max(1, len(words) - 2))]

    return all(w in data_corpus() for w in windows(run)) or all(
        w in _generic_corpus() for w in windows(_generic(run))
    )


def student_texts(cell) -> list[str]:
    """What a student reads in a code cell's outputs (stderr, figures and widgets excluded)."""
    out = []
    for o in cell.get("outputs", []):
        if o.output_type == "stream" and o.name == "stdout":
            out.append(o.text)
        elif o.output_type == "error":
            out.append(f"{o.ename}: {o.evalue}")
        elif o.output_type in ("execute_result", "display_data"):
            data = o.get("data", {})
            if "text/html" in data and "<table" in data["text/html"]:
                table = re.sub(r"<style.*?</style>", " ", data["text/html"], flags=re.S)
                out.append(html.unescape(re.sub(r"<[^>]+>", " ", table)))
            elif "text/plain" in data and "image/png" not in data:
                text = data["text/plain"]
                if not re.match(r"<.*\bat 0x[0-9a-f]+>$|\w+\(children=", text):
                    out.append(text)
    return out


#: Three or more English words in a row (state names such as CREATING count as words), at
#: least two of them lower-case words: "is still CREATING after", not "Google AI Studio".
_ENGLISH_RUN = re.compile(r"\b[A-Za-z][A-Za-z']*(?:[ ,;:]+[A-Za-z][A-Za-z']*){2,}\b")


#: upper-case SQL keywords (case-sensitive): a run with one is a garbled query, not prose
_SQL = re.compile(
    r"\b(?:SELECT|FROM|WHERE|JOIN|GROUP BY|ORDER BY|ON|AS|AND|OR|IN|NOT|NULL|IS|LIKE|LIMIT|"
    r"DISTINCT|HAVING|COUNT|SUM|AVG|MIN|MAX|DESC|ASC|INNER|LEFT|BY)\b"
)


def english_problems(text: str) -> list[str]:
    found = []
    for line in text.splitlines():
        if any(message in line for message in LIBRARY_MESSAGES):
            continue
        prose = _CODE_LIKE.sub(" ", line)
        runs = english_runs(prose) + [
            m.group(0)
            for m in _ENGLISH_RUN.finditer(prose)
            if sum(w.islower() and len(w) > 1 for w in re.split(r"[ ,;:]+", m.group(0))) >= 2
        ]
        for run in dict.fromkeys(runs):
            if _SQL.search(run):
                continue  # SQL is code, also when an overfitted model garbles it
            if not _from_data(run):
                found.append(f"{run!r} in {line.strip()[:120]!r}")
    return found


def number_problems(text: str) -> list[str]:
    found = []
    for line in text.splitlines():
        if _from_data(line.strip()):
            continue
        for bad in number_style_problems(_CODE_LIKE.sub(" ", line)):
            found.append(f"{bad!r} in {line.strip()[:120]!r}")
    return found


def test_runtime_detectors() -> None:
    assert english_problems("tunedModels/x is still CREATING after 600 s; call watch() again")
    assert not english_problems("✔ эмулятор слушает порт 8000")
    assert not english_problems("AttributeError: 'dict' object has no attribute 'step'")
    assert not english_problems("последний: SELECT name SELECT name FROM FROM products p JOIN")
    # garbled by an overfitted model (the ids, and so the garbling, change from run to run)
    assert not english_problems(
        "последний (эпоха 20): SELECT DISTINCT p.name FROM products p JOIN order_items oi "
        "ON ON oi.product_id = p.product_id JOIN"
    )
    assert number_problems("обучающий набор: 32,926 токенов") == [
        "'32,926' in 'обучающий набор: 32,926 токенов'"
    ]
    assert not number_problems("гиперпараметры: {'epochCount': 5, 'learningRate': 0.001}")
    assert not number_problems("next_run = {'learning_rate': 0.001}; learning_rate=0.001")


# -- the Russian masters, run once per session ------------------------------------------------
@pytest.fixture(scope="module")
def executed(tmp_path_factory: pytest.TempPathFactory):
    """name -> the executed Russian master (each run once, when a test first asks for it)."""
    from tests.test_notebooks import execute

    cache: dict[str, object] = {}
    root = tmp_path_factory.mktemp("russian")

    def run(name: str):
        if name not in cache:
            master = nbformat.read(ROOT / "solutions" / name / f"{name}.ipynb", as_version=4)
            ru, _ = editions.build_edition(master, editions.load_catalogue(name, ROOT))
            folder = root / "src" / name
            folder.mkdir(parents=True)
            path = folder / f"{name}.ipynb"
            nbformat.write(ru, path)
            cache[name] = execute(path, root / "run")
        result = cache[name]
        assert result.error is None, f"the Russian {name} failed:\n{result.error[-3000:]}"
        return result

    return run


@pytest.mark.parametrize("name", TRANSLATED)
def test_russian_master_executes_offline(name: str, executed) -> None:
    """Every Russian master runs top to bottom, offline (one run shared with the test below)."""
    result = executed(name)
    print(f"ru {name}: {result.seconds:.1f} s")


@pytest.mark.parametrize("name", TRANSLATED)
def test_russian_outputs_are_russian(name: str, executed) -> None:
    nb = executed(name).notebook
    english, numbers = [], []
    for index, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        for text in student_texts(cell):
            english += [f"cell {index}: {p}" for p in english_problems(text)]
            numbers += [f"cell {index}: {p}" for p in number_problems(text)]
    assert not english, f"English in the outputs of the Russian {name}:\n  " + "\n  ".join(english)
    assert not numbers, f"English-style numbers in the Russian {name}:\n  " + "\n  ".join(numbers)


# -- figures ---------------------------------------------------------------------------------
def _figure_texts(fig) -> list[str]:
    from matplotlib.text import Text

    return [t.get_text() for t in fig.findobj(Text) if t.get_text().strip()]


def test_russian_figures_have_russian_text(monkeypatch: pytest.MonkeyPatch) -> None:
    """The panel's plots, compare_runs (with its footnote), a recorded run titled by its name
    and a live plot's status, drawn in Russian: no English sentence, Russian numbers."""
    import matplotlib

    matplotlib.use("Agg")
    import pandas as pd

    import tunelab
    from tunelab import monitor, panel

    monkeypatch.setattr(i18n, "_chosen", "ru")
    figures = []
    data = panel.panel_data(learning_rate_multiplier=8.0, batch_size=2)  # a run that fails
    figures.append(panel.draw_panel(data).figure)
    figures.append(panel.draw_panel(panel.panel_data(epoch_count=12, n_examples=100)).figure)
    figures.append(
        panel.compare_runs(
            [{"learning_rate_multiplier": 1.0}, {"learning_rate_multiplier": 4.0}, {}]
        ).figure
    )
    figures.append(panel.grid_runs([{"batch_size": 1}, {"batch_size": 16}]))
    run = pd.read_csv(tunelab.data_path("runs/no_convergence.csv"))
    figures.append(monitor.plot_loss(run, title="no convergence").figure)
    live = monitor.LivePlot(title="tunedModels/demo", display=False)
    live.update(run.head(40), status=monitor._status("CREATING", run.head(40), False))
    texts = _figure_texts(live.figure)  # the live figure is redrawn in place
    live.update(run, status=monitor._status("ACTIVE", run, True))
    figures.append(live.figure)
    texts += [t for fig in figures for t in _figure_texts(fig)]
    assert any("шаг 40" in t for t in texts), texts
    assert any("нет сходимости" in t for t in texts), texts
    assert any("только в эмуляторе" in t for t in texts), texts
    problems = [p for t in texts for p in english_problems(t) + number_problems(t)]
    assert not problems, "\n".join(problems)
    assert data.summary.startswith("FAILED (ошибка) — потери стали NaN"), data.summary
    summary = panel.panel_data(epoch_count=3, n_examples=1000).summary
    assert summary.startswith("750 шагов · итоговые потери на обучении 0,"), summary
    for text in (data.summary, summary):
        assert not english_problems(text) and not number_problems(text), text


def test_watch_timeout_and_panel_errors_are_russian(monkeypatch: pytest.MonkeyPatch) -> None:
    from types import SimpleNamespace

    from tunelab import monitor, panel

    monkeypatch.setattr(i18n, "_chosen", "ru")
    model = SimpleNamespace(state="CREATING", tuning_task=SimpleNamespace(snapshots=[]))
    live = monitor.LivePlot(display=False)
    with pytest.raises(TimeoutError) as info:
        monitor.watch(
            "tunedModels/x", every=0, timeout=0, get_tuned_model=lambda n: model, plot=live
        )
    message = str(info.value)
    assert "всё ещё в состоянии CREATING" in message and not english_problems(message)
    with pytest.raises(ValueError) as info:
        panel.panel_data(batch_size=64, n_examples=50)
    assert "больше, чем весь набор данных (50 примеров)" in str(info.value), info.value
    assert not english_problems(str(info.value))
