"""Trusted checker of ``sql_overfitting``: hidden inputs, reference answers, verdicts.

Runs in the grader process only (never mounted in the sandbox, never released to students).
Each check draws its hidden inputs from ``ctx.rng()`` (the submission's grading seed), sends
them into the kernel with ``ctx.probe`` and judges the decoded answers with the judges the
notebook's visible checks use (:mod:`tunelab.checks.sql_overfitting`). Feedback names the
kind of case that failed, never the hidden values.
"""

from __future__ import annotations

import collections
import contextlib
import functools
import math
import sqlite3
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from grader.verdicts.trusted import Context, Verdict
from tunelab import scenarios
from tunelab.checks import sql_overfitting as C
from tunelab.checks import wire
from tunelab.i18n import count, section_title, tr


def _sibling(name: str) -> Any:
    """A checker-side module beside this file (never released, never in the sandbox)."""
    import importlib.util
    import sys

    key = f"_grader_sql_overfitting_{name}"
    if key in sys.modules:
        return sys.modules[key]
    spec = importlib.util.spec_from_file_location(key, Path(__file__).with_name(f"{name}.py"))
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[key] = module
    spec.loader.exec_module(module)
    return module


curves = _sibling("curves")

MODULE = "sql_overfitting"
#: What this notebook's kernels import that no import statement of the master shows: the
#: emulator behind ``tunelab.connect`` and what the lesson's calls load on first use. The
#: grader's zygote imports them once (grader.sandbox.preload), not every kernel.
PRELOAD = (
    "tunelab.emulator.app",
    "tunelab.emulator.server",
    "uvicorn.loops.asyncio",
    "uvicorn.protocols.http.h11_impl",
    "uvicorn.protocols.websockets.websockets_sansio_impl",
    "google.auth.api_key",
    "pandas.core.methods.to_dict",
    "pandas.core.reshape.reshape",
    "pandas.plotting._matplotlib",
    "tunelab.practice_runs",
    "tunelab.domains.nl_sql",
    "tunelab.domains.tech_support",
    "uvicorn.lifespan.off",
    "uvicorn.loops.auto",
    "uvicorn.protocols.http.auto",
    "uvicorn.protocols.websockets.auto",
)
BASE_MODEL = "models/gemini-1.5-flash-001-tuning"
FIRST_MODEL = "tunedModels/sql-20-epochs"
FIRST_RUN = {"epoch_count": 20, "batch_size": 4, "learning_rate": 0.001}
ANSWER = "overfitting"


# -- reference answers (grader only) ----------------------------------------------------------
def ref_epoch_mean(frame: pd.DataFrame) -> pd.Series:
    return frame.groupby("epoch")["mean_loss"].mean().sort_index().astype(float)


def ref_plateau(series: pd.Series, tol: float = 0.01) -> int | None:
    s = series.sort_index()
    v = s.to_numpy(dtype=float)
    for i in range(len(v) - 1):
        if v[i] - v[i + 1] < tol:
            return int(s.index[i])
    return None


def ref_best(series: pd.Series) -> int:
    return int(series.dropna().sort_index().idxmin())


@functools.cache
def _data(root: Path) -> dict[str, Any]:
    data = root / "data"
    return {
        "snapshots": pd.read_csv(data / "runs" / "sql_20_epochs.csv"),
        "train": pd.read_json(data / "nl_sql" / "train.jsonl", lines=True),
        "heldout": pd.read_json(data / "nl_sql" / "heldout.jsonl", lines=True),
        "db": data / "nl_sql" / "shop.sqlite",
    }


def _rows(conn: sqlite3.Connection, sql: str) -> collections.Counter | None:
    try:
        return collections.Counter(conn.execute(sql).fetchall())
    except (sqlite3.Error, sqlite3.Warning):
        return None


def ref_accuracy(db: Path, questions: list[str], references: list[str], answers: dict) -> float:
    """Share of questions whose answer returns the reference's rows (as a multiset)."""
    conn = sqlite3.connect(db.resolve().as_uri() + "?mode=ro", uri=True)
    try:
        ok = 0
        for question, reference in zip(questions, references, strict=True):
            found = _rows(conn, answers[question])
            ok += found is not None and found == _rows(conn, reference)
    finally:
        conn.close()
    return ok / len(questions)


class Oracle:
    """The emulator's tuned models, rebuilt in the grader from their id and hyperparameters.

    The emulator is deterministic: a tuned model's answers follow from its id, training
    examples and hyperparameters. So the grader can ask its own copy what a student's model
    answers, without trusting anything the kernel says about it.
    """

    def __init__(self, train: pd.DataFrame, heldout: pd.DataFrame, db: Path) -> None:
        from tunelab.emulator.store import Store

        self.store = Store(time_scale=1e9)
        self.examples = [
            {"textInput": str(i), "output": str(o)}
            for i, o in zip(train["text_input"], train["output"], strict=True)
        ]
        rows = heldout.drop_duplicates("text_input")
        self.questions = [str(q) for q in rows["text_input"]]
        self.references = [str(r) for r in rows["output"]]
        self.db = db
        self.lock = threading.Lock()  # one store, several grading threads
        self._outcomes: dict[tuple, Outcome] = {}

    def _trained(self, name: str, hp: dict[str, Any]) -> tuple[Any, Any] | None:
        """The emulator's record and plan of ``name`` trained with ``hp`` (None: refused)."""
        from tunelab.emulator.errors import ApiError

        model_id = name.removeprefix("tunedModels/")
        hyper = {
            {"epoch_count": "epochCount", "batch_size": "batchSize"}.get(k, _camel(k)): v
            for k, v in hp.items()
        }
        body = {
            "baseModel": BASE_MODEL,
            "tuningTask": {
                "hyperparameters": hyper,
                "trainingData": {"examples": {"examples": self.examples}},
            },
        }
        with contextlib.suppress(ApiError):
            self.store.delete(model_id)
        try:
            rec = self.store.create(body, tuned_model_id=model_id)
            return rec, self.store.plan(rec)
        except (ApiError, ValueError, OverflowError):
            return None

    def answers(self, name: str, hp: dict[str, Any], prompts: list[str]) -> list[str] | None:
        """What tuned model ``name`` trained with ``hp`` answers; None if it cannot train."""
        from tunelab.emulator import generation

        with self.lock:
            trained = self._trained(name, hp)
            if trained is None:
                return None
            rec, plan = trained
            if plan.failure is not None or not math.isfinite(float(plan.run.final_quality)):
                return None
            domain = generation.trained_domain(rec.examples)
            return [
                generation.answer(
                    rec.name,
                    p,
                    quality=float(plan.run.final_quality),
                    memory=plan.memory,
                    trained_domain=domain,
                )
                for p in prompts
            ]

    def outcome(self, hp: dict[str, Any]) -> Outcome:
        """What a plan would do (cached per plan): its run's curves and its held-out accuracy.

        Part 6 judges a plan by this, and Part 8 asks the same question of the same plan, so
        the two parts cannot disagree. The model id is fixed (:data:`PLAN_MODEL`), so the
        outcome depends on the plan alone.
        """
        key = tuple(sorted(hp.items()))
        with self.lock:
            cached = self._outcomes.get(key)
            if cached is not None:
                return cached
            trained = self._trained(PLAN_MODEL, hp)
        if trained is None:
            result = Outcome(None, None, None, "the service would refuse these settings")
        else:
            per = trained[1].run.per_epoch()
            failure = trained[1].failure
            answers = None if failure else self.answers(PLAN_MODEL, hp, self.questions)
            accuracy = (
                None
                if answers is None
                else ref_accuracy(
                    self.db,
                    self.questions,
                    self.references,
                    dict(zip(self.questions, answers, strict=True)),
                )
            )
            result = Outcome(accuracy, per["train_loss"], per["validation_loss"], failure or None)
        with self.lock:
            self._outcomes[key] = result
        return result


@dataclass(frozen=True)
class Outcome:
    """A plan's result on the grader's emulator: held-out accuracy (None: the run fails)."""

    accuracy: float | None
    train: pd.Series | None
    validation: pd.Series | None
    failure: str | None


#: The model id every plan is evaluated under (answers depend on the id, a plan's worth not).
PLAN_MODEL = "tunedModels/next-run-plan"
#: The best plan the course knows (tests/test_sql_checker_hidden.py checks that no plan of a
#: wide grid beats it by more than a point); a plan must come within PLAN_MARGIN of it.
BEST_PLAN = {"epoch_count": 5, "batch_size": 4, "learning_rate": 0.001}
PLAN_MARGIN = 0.05
#: The overfitting has ended when the validation loss ends within this of its minimum.
OVERFIT_RISE = 0.03


def _camel(key: str) -> str:
    head, *rest = key.split("_")
    return head + "".join(w.title() for w in rest)


@functools.cache
def _oracle(root: Path) -> Oracle:
    data = _data(root)
    return Oracle(data["train"], data["heldout"], data["db"])


# -- the checks --------------------------------------------------------------------------------
def _first_problem(problems: list[str | None]) -> str | None:
    return next((p for p in problems if p), None)


def _cap(text: str, lang: str) -> str:
    """English as before (``str.capitalize``); Russian keeps the rest of the words' case."""
    return text.capitalize() if lang != "ru" else text[:1].upper() + text[1:]


def _no_answers(part: int, fn: str, lang: str) -> Verdict:
    return Verdict.fail(
        tr(
            "Part {part}: the grader got no usable answers from {fn}.",
            "Часть {part}: система оценивания не получила от {fn} пригодных ответов.",
            lang,
            part=part,
            fn=fn,
        )
    )


def _shuffled(rng: np.random.Generator, items: list) -> list:
    """``items`` in the submission's random order: hidden cases carry no position or count
    a student's function could answer by (edge and fixed cases included)."""
    return [items[int(i)] for i in rng.permutation(len(items))]


def _fresh_seed(rng: np.random.Generator) -> int:
    """A hidden curve's seed: never one of the practice runs' (``curves.HIDDEN_SEED_MIN``)."""
    return int(rng.integers(curves.HIDDEN_SEED_MIN, 2**31 - 1))


def check_p1(ctx: Context) -> Verdict:
    rng = ctx.rng()
    lang = ctx.lang
    snapshots = _data(ctx.course_root)["snapshots"]
    frames: list[tuple[str, pd.DataFrame]] = [
        (
            tr(
                "with the colleague's rows shuffled",
                "на строках запуска коллеги в перемешанном порядке",
                lang,
            ),
            snapshots.sample(frac=1.0, random_state=rng.integers(1 << 30)),
        ),
    ]
    nan_why = tr(
        "with a missing (NaN) step loss, which must be left out of its epoch's mean",
        "с пропущенными (NaN) потерями шага, которые не должны входить в среднее эпохи",
        lang,
    )
    for _ in range(3):  # several variants: no single position holds "the NaN case"
        losses = rng.uniform(0.2, 2.0, size=4).round(3)
        first = int(rng.integers(1, 30))
        frames.append(
            (
                nan_why,
                pd.DataFrame(
                    {
                        "step": [1, 2, 3, 4],
                        "epoch": [first, first, first + 1, first + 1],
                        "mean_loss": [losses[0], np.nan, losses[2], losses[3]],
                    }
                ),
            )
        )
    for _ in range(2):
        losses = rng.uniform(0.2, 2.0, size=4).round(3)
        early, late = sorted(int(e) for e in rng.choice(np.arange(1, 40), size=2, replace=False))
        frames.append(
            (
                tr(
                    "with epochs given out of order and an extra column",
                    "с эпохами не по порядку и лишним столбцом",
                    lang,
                ),
                pd.DataFrame(
                    {
                        "epoch": [late, early, late, early],
                        "mean_loss": list(losses),
                        "validation_loss": [np.nan] * 4,
                    }
                ),
            )
        )
    losses = rng.uniform(0.2, 2.0, size=2).round(3)
    frames.append(
        (
            tr("on a single-epoch run", "на запуске из одной эпохи", lang),
            pd.DataFrame({"step": [1, 2], "epoch": [1, 1], "mean_loss": list(losses)}),
        )
    )
    for label in rng.choice(scenarios.LABELS, size=3, replace=False):
        run = curves.hidden_run(str(label), _fresh_seed(rng))
        frames.append(
            (
                tr(
                    "on a fresh simulated {label} run",
                    "на новом смоделированном запуске {label}",
                    lang,
                    label=label,
                ),
                run.snapshots(),
            )
        )
    frames.append(("", pd.DataFrame({"step": [], "epoch": [], "mean_loss": []})))
    frames = _shuffled(rng, frames)
    got = ctx.probe("epoch_mean_loss", {"frames": [C.frame_payload(f) for _, f in frames]})
    if type(got) is not list or len(got) != len(frames):
        return _no_answers(1, "epoch_mean_loss", lang)
    problems = []
    for (why, frame), answer in zip(frames, got, strict=True):
        if frame.empty:
            if not (isinstance(answer, wire.Series) and len(answer.values) == 0):
                problems.append(
                    tr(
                        "An empty snapshot frame should give an empty Series; {d}.",
                        "Пустая таблица снимков должна давать пустую Series; {d}.",
                        lang,
                        d=wire.describe(answer, lang, hidden=True),
                    )
                )
            continue
        want = ref_epoch_mean(frame)
        problems.append(
            C.judge_series(
                answer,
                [int(i) for i in want.index],
                [float(v) for v in want],
                _cap(why, lang),
                lang,
                hidden=True,
            )
        )
    problem = _first_problem(problems)
    if problem:
        return Verdict.fail(tr("Part 1 failed. {p}", "Часть 1 не пройдена. {p}", lang, p=problem))
    return Verdict.ok(
        tr(
            "Part 1 passed on {n} hidden cases (shuffled rows, NaN, fresh runs).",
            "Часть 1 пройдена на {n} скрытых случаях (перемешанные строки, NaN, новые запуски).",
            lang,
            n=len(got),
        )
    )


PLATEAU_EDGES = [
    (
        [1.0, 0.8, 0.85, 0.5],
        [1, 2, 3, 4],
        0.01,
        (
            "when the loss rises (a rise counts as 'stopped improving')",
            "когда потери растут (рост считается как «перестали улучшаться»)",
        ),
    ),
    (
        [1.0, 0.5, 0.5, 0.1],
        [1, 2, 3, 4],
        0.01,
        (
            "on a tie (an improvement of 0 is below tol)",
            "при равенстве (улучшение на 0 меньше tol)",
        ),
    ),
    (
        [0.295, 0.3, 0.5, 1.0],
        [4, 3, 2, 1],
        0.01,
        (
            "on an unsorted index (read the losses in epoch order)",
            "на неотсортированном индексе (читайте потери в порядке эпох)",
        ),
    ),
    (
        [0.5, 0.9, 0.302, 0.3, 1.4],
        [8, 6, 9, 10, 5],
        0.01,
        (
            "on an unsorted index (read the losses in epoch order)",
            "на неотсортированном индексе (читайте потери в порядке эпох)",
        ),
    ),
    (
        [0.41, 0.8, 0.4, 0.6, 1.1, 0.2],
        [13, 12, 14, 11, 10, 15],
        0.01,
        (
            "on an unsorted index (read the losses in epoch order)",
            "на неотсортированном индексе (читайте потери в порядке эпох)",
        ),
    ),
    (
        [1.0, np.nan, 0.5, 0.2, 0.195],
        [1, 2, 3, 4, 5],
        0.01,
        (
            "with a missing (NaN) loss (pairs with NaN never count)",
            "с пропущенными (NaN) потерями (пары с NaN никогда не считаются)",
        ),
    ),
    (
        [0.7],
        [1],
        0.01,
        (
            "on a single epoch (no next epoch, so no plateau)",
            "на одной эпохе (следующей эпохи нет, значит, и плато нет)",
        ),
    ),
    ([], [], 0.01, ("on an empty Series (no plateau)", "на пустой Series (плато нет)")),
    (
        [1.0, 0.95, 0.9],
        [1, 2, 3],
        0.01,
        ("when every improvement is above tol", "когда каждое улучшение больше tol"),
    ),
    (
        [1.0, 0.95, 0.9],
        [1, 2, 3],
        0.1,
        ("with a larger tol (use the tol argument)", "с большим tol (используйте аргумент tol)"),
    ),
]


def check_p2(ctx: Context) -> Verdict:
    rng = ctx.rng()
    lang = ctx.lang
    cases: list[tuple[pd.Series, float, str]] = []
    for values, index, tol, (en, ru) in PLATEAU_EDGES:
        scale = float(rng.uniform(0.5, 2.0))  # same shape, other numbers each grading
        series = pd.Series([v * scale for v in values], index=index, dtype=float)
        cases.append((series, tol * scale, tr(en, ru, lang)))
    for label in np.repeat(scenarios.LABELS, 4):
        curve = curves.hidden_run(str(label), _fresh_seed(rng)).per_epoch()["train_loss"]
        why = tr(
            "on a fresh simulated {label} curve",
            "на новой смоделированной кривой {label}",
            lang,
            label=label,
        )
        cases.append((curve, 0.01, why))
    cases = _shuffled(rng, cases)
    got = ctx.probe(
        "plateau_epoch", {"cases": [{"series": C.series_payload(s), "tol": t} for s, t, _ in cases]}
    )
    if type(got) is not list or len(got) != len(cases):
        return _no_answers(2, "plateau_epoch", lang)
    problem = _first_problem(
        [
            C.judge_optional_epoch(
                answer, ref_plateau(s, t), why, "plateau_epoch", lang, hidden=True
            )
            for (s, t, why), answer in zip(cases, got, strict=True)
        ]
    )
    if problem:
        return Verdict.fail(
            tr(
                "Part 2 failed: {p} {reread}",
                "Часть 2 не пройдена: {p} {reread}",
                lang,
                p=problem,
                reread=C.reread("05_early_stopping", "The plateau rule", lang),
            )
        )
    return Verdict.ok(_passed_hidden(2, len(cases), lang))


BEST_EDGES = [
    (
        [0.9, 0.4, 0.4, 0.7],
        [1, 2, 3, 4],
        ("on a tie (the earliest epoch wins)", "при равенстве (выигрывает самая ранняя эпоха)"),
    ),
    (
        [0.4, 0.6, 0.4, 0.9],
        [5, 3, 2, 1],
        (
            "on an unsorted index with a tie (the earliest EPOCH, not the first row)",
            "на неотсортированном индексе с равенством (самая ранняя ЭПОХА, а не первая строка)",
        ),
    ),
    (
        [np.nan, 0.8, 0.3, np.nan],
        [1, 2, 3, 4],
        ("with missing (NaN) epochs (ignore them)", "с пропущенными (NaN) эпохами (их пропускают)"),
    ),
    (
        [0.3, 0.9, 0.3, 0.5, 0.3],
        [9, 8, 7, 12, 11],
        (
            "on an unsorted index with a tie (the earliest EPOCH, not the first row)",
            "на неотсортированном индексе с равенством (самая ранняя ЭПОХА, а не первая строка)",
        ),
    ),
    (
        [0.25, 0.6, 0.25, 0.7],
        [16, 14, 11, 13],
        (
            "on an unsorted index with a tie (the earliest EPOCH, not the first row)",
            "на неотсортированном индексе с равенством (самая ранняя ЭПОХА, а не первая строка)",
        ),
    ),
    ([0.7], [4], ("on a single evaluated epoch", "на единственной эпохе с валидацией")),
    (
        [0.5, 0.45, 0.6],
        [10, 20, 30],
        (
            "with epochs 10, 20, 30 (return the epoch label, not the position)",
            "с эпохами 10, 20, 30 (верните номер эпохи из индекса, а не позицию)",
        ),
    ),
]


def _passed_hidden(part: int, n: int, lang: str) -> str:
    return tr(
        "Part {part} passed on {n} hidden cases.",
        "Часть {part} пройдена на {n} скрытых случаях.",
        lang,
        part=part,
        n=n,
    )


def check_p3(ctx: Context) -> Verdict:
    rng = ctx.rng()
    lang = ctx.lang
    cases = []
    for values, index, (en, ru) in BEST_EDGES:
        scale = float(rng.uniform(0.5, 2.0))
        series = pd.Series([v * scale for v in values], index=index, dtype=float)
        cases.append((series, tr(en, ru, lang)))
    for label in rng.choice(scenarios.LABELS, size=8):
        val = curves.hidden_run(str(label), _fresh_seed(rng)).per_epoch()["validation_loss"]
        if val.notna().any():
            why = tr(
                "on the validation curve of a fresh simulated {label} run",
                "на кривой валидации нового смоделированного запуска {label}",
                lang,
                label=label,
            )
            cases.append((val, why))
    cases = _shuffled(rng, cases)
    got = ctx.probe("best_epoch", {"cases": [C.series_payload(s) for s, _ in cases]})
    if type(got) is not list or len(got) != len(cases):
        return _no_answers(3, "best_epoch", lang)
    problem = _first_problem(
        [
            C.judge_optional_epoch(answer, ref_best(s), why, "best_epoch", lang, hidden=True)
            for (s, why), answer in zip(cases, got, strict=True)
        ]
    )
    if problem:
        return Verdict.fail(
            tr(
                "Part 3 failed: {p} {reread}",
                "Часть 3 не пройдена: {p} {reread}",
                lang,
                p=problem,
                reread=C.reread_monitoring(lang),
            )
        )
    return Verdict.ok(_passed_hidden(3, len(cases), lang))


WHY_NOT = {
    "healthy": "A healthy run plateaus at a moderate loss and its validation loss plateaus too. "
    "Here the training loss keeps falling to ~0.001 while the validation loss rises after its "
    "minimum, and new questions get garbage. Reread 04_monitoring, 'Recognising overfitting'.",
    "underfitting": "Underfitting means the loss is still high and still falling when training "
    "stops. Here the training loss reached ~0.001: the model learned the training set only too "
    "well. Reread 04_monitoring, 'Recognising overfitting'.",
    "no_convergence": "No convergence is a flat or chaotic curve. This curve falls steadily and "
    "smoothly to almost zero. Reread 04_monitoring, 'Four patterns to recognise'.",
    "divergence": "Divergence is a TRAINING loss that falls and then rises. Here the training loss "
    "never rises; only the validation loss does, which is the signature of memorisation. Reread "
    "04_monitoring, 'Recognising overfitting'.",
}


#: The same explanations in Russian (for submissions of the Russian edition; ``Context.lang``).
WHY_NOT_RU = {
    "healthy": "У здорового запуска потери выходят на плато на умеренном уровне, и потери на "
    "валидации тоже выходят на плато. Здесь потери на обучении продолжают падать до ~0,001, "
    "потери на валидации после минимума растут, а на новые вопросы модель отвечает ерундой. "
    + C.reread_monitoring("ru"),
    "underfitting": "Недообучение — это когда к концу обучения потери всё ещё высокие и всё ещё "
    "падают. Здесь потери на обучении дошли до ~0,001: модель выучила обучающий набор даже "
    "слишком хорошо. " + C.reread_monitoring("ru"),
    "no_convergence": "Отсутствие сходимости — это плоская или хаотичная кривая. Эта кривая "
    "ровно и плавно падает почти до нуля. "
    + C.reread("04_monitoring", "Four patterns to recognise", "ru"),
    "divergence": "Расхождение — это когда потери на ОБУЧЕНИИ падают, а затем растут. Здесь "
    "потери на обучении не растут ни разу; растут только потери на валидации, а это примета "
    "запоминания. " + C.reread_monitoring("ru"),
}


def check_p4(ctx: Context) -> Verdict:
    lang = ctx.lang
    got = ctx.probe("diagnosis", {})
    problem = C.judge_label(got, lang)
    if problem:
        return Verdict.fail(
            tr(
                "Part 4 failed. DIAGNOSIS: {p}",
                "Часть 4 не пройдена. DIAGNOSIS: {p}",
                lang,
                p=problem,
            )
        )
    if got != ANSWER:
        return Verdict.fail(
            tr(
                "Part 4 failed. DIAGNOSIS = {got!r} is not right. {why}",
                "Часть 4 не пройдена. DIAGNOSIS = {got!r} — неверно. {why}",
                lang,
                got=got,
                why=(WHY_NOT_RU if lang == "ru" else WHY_NOT)[got],
            )
        )
    return Verdict.ok(
        tr("Part 4 passed: the run overfits.", "Часть 4 пройдена: запуск переобучился.", lang)
    )


def _payload(index: np.ndarray, values: np.ndarray) -> dict:
    """``C.series_payload`` of a curve held as arrays (integer epochs), without a Series."""
    return {"index": index.tolist(), "values": values.astype(float).tolist()}


def check_p5(ctx: Context) -> Verdict:
    rng = ctx.rng()
    lang = ctx.lang
    items: list[tuple[dict, str]] = []  # (case, truth or an edge's name)
    for label in scenarios.LABELS:
        for seed in rng.integers(curves.HIDDEN_SEED_MIN, 2**31 - 1, size=40):
            run = curves.hidden_run(label, int(seed))
            train, val = run.epoch_train_loss(), run.validation_loss
            epochs = np.arange(1, train.size + 1)
            for with_validation in (True, False):
                order = epochs - 1
                if rng.random() < 1 / 3:  # some curves arrive with their epochs shuffled
                    order = rng.permutation(train.size)
                case = {
                    "train": _payload(epochs[order], train[order]),
                    "validation": _payload(epochs[order], val[order]) if with_validation else None,
                }
                items.append((case, label))
    blown = pd.Series([1.1, 0.5, 0.7, 3.0, np.nan, np.nan], index=range(1, 7))
    items.append(({"train": C.series_payload(blown), "validation": None}, "edge:blown"))
    items.append(({"train": {"index": [], "values": []}, "validation": None}, "edge:empty"))
    items = _shuffled(rng, items)  # labels, edge cases and all: no order to count on
    got = ctx.probe("classify_curve", {"cases": [case for case, _ in items]})
    if type(got) is not list or len(got) != len(items):
        return _no_answers(5, "classify_curve", lang)
    truth = [t for _, t in items if not t.startswith("edge:")]
    labels = [g for (_, t), g in zip(items, got, strict=True) if not t.startswith("edge:")]
    edge = {t: g for (_, t), g in zip(items, got, strict=True) if t.startswith("edge:")}
    edges = [edge["edge:blown"], edge["edge:empty"]]
    invalid = [g for g in labels if type(g) is not str or g not in C.LABELS]
    if invalid:
        return Verdict.fail(
            tr(
                "Part 5 failed: classify_curve gave {d}, which is not one of {labels}.",
                "Часть 5 не пройдена: classify_curve вернула {d}, а это не одно из {labels}.",
                lang,
                d=wire.describe(invalid[0], lang, hidden=True),
                labels=C.LABELS,
            )
        )
    hits = collections.Counter(t for t, g in zip(truth, labels, strict=True) if t == g)
    mistakes = collections.Counter((t, g) for t, g in zip(truth, labels, strict=True) if t != g)
    total = collections.Counter(truth)
    accuracy = sum(hits.values()) / len(truth)
    per_label = {k: hits[k] / total[k] for k in scenarios.LABELS}
    summary = tr(
        "accuracy on {n} fresh curves {acc:.1%}; per pattern: ",
        "доля верных на {n} новых кривых {acc:.1%}; по формам: ",
        lang,
        n=len(truth),
        acc=accuracy,
    ) + ", ".join(f"{k} {v:.0%}" for k, v in per_label.items())
    worst = ", ".join(
        tr("{a} read as {b} ({n}x)", "{a} принята за {b} ({n} раз)", lang, a=a, b=b, n=n)
        for (a, b), n in mistakes.most_common(3)
    )
    if accuracy < 0.9:
        return Verdict.fail(
            tr(
                "Part 5 failed: {summary} (90% needed). Most frequent mistakes: {worst}. Test on "
                "many sample_run seeds of your own and look at the shape features in "
                "04_monitoring, 'Four patterns to recognise'.",
                "Часть 5 не пройдена: {summary} (нужно 90%). Самые частые ошибки: {worst}. "
                "Проверьте себя на множестве своих seed для sample_run и посмотрите на признаки "
                "формы в уроке 04_monitoring, раздел «{ru}».",
                lang,
                summary=summary,
                worst=worst,
                ru=section_title("04_monitoring", "Four patterns to recognise", "ru"),
            )
        )
    if min(per_label.values()) < 0.7:
        return Verdict.fail(
            tr(
                "Part 5 failed: {summary}; every pattern needs 70%. Mistakes: {worst}.",
                "Часть 5 не пройдена: {summary}; по каждой форме нужно 70%. Ошибки: {worst}.",
                lang,
                summary=summary,
                worst=worst,
            )
        )
    if edges[0] != "divergence":
        return Verdict.fail(
            tr(
                "Part 5 failed: a curve that rises and then becomes NaN (the loss overflowed) is "
                "divergence; found {d}.",
                "Часть 5 не пройдена: кривая, которая растёт, а потом становится NaN (потери "
                "переполнились), — это divergence; получено {d}.",
                lang,
                d=wire.describe(edges[0], lang, hidden=True),
            )
        )
    if not C.raised(edges[1], "ValueError"):
        return Verdict.fail(
            tr(
                "Part 5 failed: classify_curve on an empty curve should raise ValueError; {d}.",
                "Часть 5 не пройдена: на пустой кривой classify_curve должна выбрасывать "
                "ValueError; {d}.",
                lang,
                d=wire.describe(edges[1], lang, hidden=True),
            )
        )
    return Verdict.ok(
        tr("Part 5 passed: {summary}.", "Часть 5 пройдена: {summary}.", lang, summary=summary)
    )


def _multiplier(run: dict) -> float:
    if "learning_rate" in run:
        return float(run["learning_rate"]) / FIRST_RUN["learning_rate"]
    return float(run["learning_rate_multiplier"])


def _plan_hp(run: dict) -> dict[str, Any]:
    """next_run as the grader's emulator takes it (the rate as the SDK would send it)."""
    return {
        "epoch_count": run["epoch_count"],
        "batch_size": run["batch_size"],
        "learning_rate": FIRST_RUN["learning_rate"] * _multiplier(run),
    }


def _dec(x: float, lang: str) -> str:
    """Two decimals, with a decimal comma in the Russian edition."""
    text = f"{x:.2f}"
    return text.replace(".", ",") if lang == "ru" else text


def plan_problem(root: Path, run: dict, lang: str) -> str | None:
    """Why a well-formed next_run is not a good plan, judged by what it would do; or None.

    The plan is trained on the grader's deterministic emulator (the oracle Part 8 uses): it
    must end the overfitting (the validation loss ends near its minimum) and come within
    PLAN_MARGIN of the best plan's held-out accuracy.
    """
    oracle = _oracle(root)
    hp = _plan_hp(run)
    got, best = oracle.outcome(hp), oracle.outcome(BEST_PLAN)
    rate = hp["learning_rate"]
    if got.accuracy is None or got.train is None or got.validation is None:
        return tr(
            "This plan would not finish: {why}. {reread}",
            "Такой план не доведёт обучение до конца: {why}. {reread}",
            lang,
            why=got.failure or tr("the run fails", "запуск завершается ошибкой", lang),
            reread=C.reread("02_hyperparameters", "Learning rate and the multiplier", lang),
        )
    val = got.validation.dropna()
    rise = float(val.iloc[-1] - val.min()) if len(val) else 0.0
    if rise > OVERFIT_RISE:
        return tr(
            "With epoch_count={e} and learning rate {lr:g} the rerun would overfit again: "
            "its validation loss is lowest at epoch {k} and {rise} higher by epoch {e}. "
            "{reread}",
            "С epoch_count={e} и скоростью обучения {lr:g} повторный запуск снова "
            "переобучится: потери на валидации минимальны в эпохе {k} и к эпохе {e} выше на "
            "{rise}. {reread}",
            lang,
            e=run["epoch_count"],
            lr=rate,
            k=int(val.idxmin()),
            rise=_dec(rise, lang),
            reread=C.reread_monitoring(lang),
        )
    assert best.accuracy is not None
    if got.accuracy >= best.accuracy - PLAN_MARGIN:
        return None
    train = got.train.dropna()
    learned = float(train.iloc[0] - train.iloc[-1]) / max(float(train.iloc[0]), 1e-9)
    if learned < 0.25:
        return tr(
            "With learning rate {lr:g} and {e} epochs the model cannot learn the task: its "
            "training loss only falls from {first} to {last}, and it answers {acc:.0%} "
            "of the held-out questions right (the best plan: {best:.0%}). {reread}",
            "Со скоростью обучения {lr:g} и {e} эпохами модель не может выучить задачу: "
            "потери на обучении падают лишь с {first} до {last}, и она верно отвечает "
            "на {acc:.0%} отложенных вопросов (лучший план: {best:.0%}). {reread}",
            lang,
            lr=rate,
            e=run["epoch_count"],
            first=_dec(float(train.iloc[0]), lang),
            last=_dec(float(train.iloc[-1]), lang),
            acc=got.accuracy,
            best=best.accuracy,
            reread=C.reread("02_hyperparameters", "Learning rate and the multiplier", lang),
        )
    return tr(
        "This plan stops the overfitting but learns too little: it answers {acc:.0%} of the "
        "held-out questions right, the best plan {best:.0%} ({m:.0f} points needed at most "
        "between them). Stop near the validation minimum, not before it. {reread}",
        "Этот план останавливает переобучение, но модель учится слишком мало: она верно "
        "отвечает на {acc:.0%} отложенных вопросов, лучший план — на {best:.0%} (разница должна "
        "быть не больше {m:.0f} пунктов). Останавливайтесь около минимума потерь на валидации, "
        "а не раньше. {reread}",
        lang,
        acc=got.accuracy,
        best=best.accuracy,
        m=PLAN_MARGIN * 100,
        reread=C.reread("05_early_stopping", "The plateau rule", lang),
    )


def check_p6(ctx: Context) -> Verdict:
    lang = ctx.lang
    run = ctx.probe("next_run", {})
    problem = C.judge_next_run_format(run, lang)
    if problem:
        return Verdict.fail(tr("Part 6 failed. {p}", "Часть 6 не пройдена. {p}", lang, p=problem))
    problem = plan_problem(ctx.course_root, run, lang)
    if problem:
        return Verdict.fail(tr("Part 6 failed. {p}", "Часть 6 не пройдена. {p}", lang, p=problem))
    got = _oracle(ctx.course_root).outcome(_plan_hp(run))
    return Verdict.ok(
        tr(
            "Part 6 passed: {epochs} epochs end the overfitting; the grader's emulator trains "
            "this plan to {acc:.0%} right on the held-out questions.",
            "Часть 6 пройдена: запуск на {epochs_ru} прекращает переобучение; на эмуляторе "
            "системы оценивания этот план даёт {acc:.0%} верных ответов на отложенных вопросах.",
            lang,
            epochs=run["epoch_count"],
            epochs_ru=count(run["epoch_count"], "epoch", "ru"),
            acc=got.accuracy,
        )
    )


def _scripted_case(rng: np.random.Generator, heldout: pd.DataFrame, size: int) -> tuple[dict, dict]:
    """Held-out questions with answers of every kind: right, reordered, wrong, broken."""
    rows = heldout.sample(n=size, random_state=int(rng.integers(1 << 30)))
    script, frame = {}, {"text_input": [], "output": []}
    kinds = [
        "same",
        "reordered",
        "distinct",
        "garbage",
        "missing column",
        "two statements",
        "other query",
    ]
    for question, reference in zip(rows["text_input"], rows["output"], strict=True):
        kind = kinds[int(rng.integers(len(kinds)))]
        ref = reference.rstrip().rstrip(";")
        answer = {
            "same": ref,
            "reordered": f"SELECT * FROM ({ref}) ORDER BY 1 DESC",
            "distinct": f"SELECT DISTINCT * FROM ({ref})",
            "garbage": ref.replace("SELECT", "SELET", 1).replace("FROM", "FROM FROM", 1),
            "missing column": "SELECT no_such_column FROM customers",
            "two statements": f"{ref}; SELECT 1",
            "other query": "SELECT name FROM customers LIMIT 2",
        }[kind]
        script[question] = answer
        frame["text_input"].append(question)
        frame["output"].append(reference)
    return script, frame


def check_p7(ctx: Context) -> Verdict:
    rng = ctx.rng()
    lang = ctx.lang
    data = _data(ctx.course_root)
    heldout = data["heldout"].drop_duplicates("text_input")
    script: dict[str, str] = {}
    cases: list[dict] = []  # {"kind", "frame"} (+ "rows" for the real model)
    for size in (6, 8, 12):
        part_script, frame = _scripted_case(rng, heldout, size)
        script.update(part_script)
        cases.append({"kind": "scripted", "frame": frame})
    for _ in range(2):  # several empty sets: no single position holds "the empty case"
        cases.append({"kind": "empty", "frame": {"text_input": [], "output": []}})
    real_rows = heldout.sample(n=20, random_state=int(rng.integers(1 << 30)))
    cases.append({"kind": "real", "frame": C.frame_payload(real_rows[["text_input", "output"]])})
    cases = _shuffled(rng, cases)
    payload = {
        "script": script,
        "cases": [
            {"model": FIRST_MODEL if c["kind"] == "real" else None, "frame": c["frame"]}
            for c in cases
        ],
    }
    got = ctx.probe("execution_accuracy", payload)
    if type(got) is not list or len(got) != len(cases):
        return _no_answers(7, "execution_accuracy", lang)
    problems = []
    for case, answer in zip(cases, got, strict=True):
        frame = case["frame"]
        if case["kind"] == "scripted":
            want = ref_accuracy(data["db"], frame["text_input"], frame["output"], script)
            why = tr(
                "On a scripted model mixing right answers, the same rows in another order, "
                "DISTINCT rows (a different multiset when rows repeat), broken SQL and two "
                "statements at once",
                "На модели со сценарием, где перемешаны верные ответы, те же строки в другом "
                "порядке, строки с DISTINCT (другое мультимножество, когда строки "
                "повторяются), сломанный SQL и две инструкции сразу",
                lang,
            )
            problems.append(C.judge_accuracy(answer, want, why, lang, hidden=True))
        elif case["kind"] == "empty":
            if not C.raised(answer, "ValueError"):
                problems.append(
                    tr(
                        "execution_accuracy on an empty held-out set should raise ValueError; {d}.",
                        "на пустом наборе отложенных вопросов execution_accuracy должна "
                        "выбрасывать ValueError; {d}.",
                        lang,
                        d=wire.describe(answer, lang, hidden=True),
                    )
                )
        else:
            prompts = list(frame["text_input"])
            answers = _oracle(ctx.course_root).answers(FIRST_MODEL, FIRST_RUN, prompts)
            if answers is None:
                continue
            want = ref_accuracy(
                data["db"], prompts, list(frame["output"]), dict(zip(prompts, answers, strict=True))
            )
            why = tr(
                "On 20 held-out questions for the 20-epoch model",
                "На 20 отложенных вопросах для модели после 20 эпох",
                lang,
            )
            problems.append(C.judge_accuracy(answer, want, why, lang, hidden=True))
    problem = _first_problem(problems)
    if problem:
        return Verdict.fail(
            tr(
                "Part 7 failed. {p} Reread the rules listed under Part 7.",
                "Часть 7 не пройдена. {p} Перечитайте правила в описании части 7.",
                lang,
                p=problem,
            )
        )
    return Verdict.ok(
        tr(
            "Part 7 passed on scripted and real models.",
            "Часть 7 пройдена на моделях со сценарием и на настоящих моделях.",
            lang,
        )
    )


def check_p8(ctx: Context) -> Verdict:
    rng = ctx.rng()
    lang = ctx.lang
    data = _data(ctx.course_root)
    run = ctx.probe("next_run", {})
    if C.judge_next_run_format(run):
        return Verdict.fail(
            tr(
                "Part 8 failed: next_run (part 6) is not well formed, so there is no plan to "
                "launch.",
                "Часть 8 не пройдена: next_run (часть 6) задан некорректно, так что запускать "
                "нечего.",
                lang,
            )
        )
    heldout = data["heldout"].drop_duplicates("text_input")
    probe_rows = heldout.sample(n=15, random_state=int(rng.integers(1 << 30)))
    prompts = list(probe_rows["text_input"])
    got = ctx.probe("rerun", {"prompts": prompts})
    if isinstance(got, wire.Raised):
        return Verdict.fail(
            tr(
                "Part 8 failed: the rerun model could not be read ({d}).",
                "Часть 8 не пройдена: не удалось прочитать модель повторного запуска ({d}).",
                lang,
                d=wire.describe(got, lang),
            )
        )
    if type(got) is not dict or type(got.get("name")) is not str:
        return Verdict.fail(
            tr(
                "Part 8 failed: the grader got no usable description of your rerun.",
                "Часть 8 не пройдена: система оценивания не получила пригодного описания "
                "вашего повторного запуска.",
                lang,
            )
        )
    if got.get("state") != "ACTIVE":
        return Verdict.fail(
            tr(
                "Part 8 failed: {name} is {state!r}, not ACTIVE: wait for the operation to "
                "finish (operation.result()). {reread}",
                "Часть 8 не пройдена: {name} в состоянии {state!r}, а не ACTIVE: дождитесь "
                "окончания операции (operation.result()). {reread}",
                lang,
                name=got["name"],
                state=got.get("state"),
                reread=C.reread("03_launching", "States: CREATING, ACTIVE, FAILED", lang),
            )
        )
    if got.get("base_model") != BASE_MODEL:
        return Verdict.fail(
            tr(
                "Part 8 failed: tune {base}, not {got!r}.",
                "Часть 8 не пройдена: дообучайте {base}, а не {got!r}.",
                lang,
                base=BASE_MODEL,
                got=got.get("base_model"),
            )
        )
    if (got.get("epoch_count"), got.get("batch_size")) != (run["epoch_count"], run["batch_size"]):
        return Verdict.fail(
            tr(
                "Part 8 failed: {name} was trained with epoch_count={e}, batch_size={b}, but "
                "next_run asks for {we} and {wb}: launch the run you planned.",
                "Часть 8 не пройдена: {name} обучена с epoch_count={e}, batch_size={b}, а "
                "next_run требует {we} и {wb}: запустите то обучение, которое спланировали.",
                lang,
                name=got["name"],
                e=got.get("epoch_count"),
                b=got.get("batch_size"),
                we=run["epoch_count"],
                wb=run["batch_size"],
            )
        )
    oracle = _oracle(ctx.course_root)
    rate = FIRST_RUN["learning_rate"] * _multiplier(run)
    hp = {"epoch_count": run["epoch_count"], "batch_size": run["batch_size"], "learning_rate": rate}
    variants = [hp]
    if "learning_rate_multiplier" in run:
        variants.append(
            {
                **{k: hp[k] for k in ("epoch_count", "batch_size")},
                "learning_rate_multiplier": run["learning_rate_multiplier"],
            }
        )
    trained = None
    for variant in variants:
        answers = oracle.answers(got["name"], variant, prompts)
        if answers is not None and answers == got.get("answers"):
            trained = variant
            break
    if trained is None:
        return Verdict.fail(
            tr(
                "Part 8 failed: {name} does not answer like a model trained on the 500 training "
                "examples (train_set) with next_run's settings. Launch next_run with "
                "training_data=train_set.to_dict('records').",
                "Часть 8 не пройдена: {name} отвечает не так, как модель, обученная на 500 "
                "обучающих примерах (train_set) с настройками next_run. Запустите next_run с "
                "training_data=train_set.to_dict('records').",
                lang,
                name=got["name"],
            )
        )
    eval_rows = heldout.sample(n=60, random_state=int(rng.integers(1 << 30)))
    questions, refs = list(eval_rows["text_input"]), list(eval_rows["output"])
    new = oracle.answers(got["name"], trained, questions)
    old = oracle.answers(FIRST_MODEL, FIRST_RUN, questions)
    if new is None or old is None:
        return Verdict.fail(
            tr(
                "Part 8 failed: the rerun could not be reproduced by the grader.",
                "Часть 8 не пройдена: системе оценивания не удалось воспроизвести повторный "
                "запуск.",
                lang,
            )
        )
    new_acc = ref_accuracy(data["db"], questions, refs, dict(zip(questions, new, strict=True)))
    old_acc = ref_accuracy(data["db"], questions, refs, dict(zip(questions, old, strict=True)))
    where = tr(
        "60 held-out questions the grader chose",
        "из 60 отложенных вопросов, выбранных системой оценивания",
        lang,
    )
    # The gain is judged as Part 6 judges the plan (the same oracle, cached per plan), so a
    # passed Part 6 never meets a Part 8 that blames the plan.
    plan = plan_problem(ctx.course_root, run, lang)
    if plan is not None and new_acc < old_acc + 0.3:
        return Verdict.fail(
            tr(
                "Part 8 failed. Your model gets {new:.0%} of {where} right, the 20-epoch model "
                "{old:.0%}: not clearly better (30 points needed), because of the plan (part "
                "6): {plan}",
                "Часть 8 не пройдена. Ваша модель верно отвечает на {new:.0%} {where}, "
                "модель после 20 эпох — на {old:.0%}: это не заметно лучше (нужно 30 "
                "пунктов) из-за плана (часть 6): {plan}",
                lang,
                new=new_acc,
                old=old_acc,
                where=where,
                plan=plan,
            )
        )
    return Verdict.ok(
        tr(
            "Part 8 passed: on 60 held-out questions your rerun gets {new:.0%} right, the "
            "20-epoch model {old:.0%}.",
            "Часть 8 пройдена: на 60 отложенных вопросах ваш повторный запуск отвечает верно "
            "на {new:.0%}, модель после 20 эпох — на {old:.0%}.",
            lang,
            new=new_acc,
            old=old_acc,
        )
    )


CHECKS = {
    "p1-check": check_p1,
    "p2-check": check_p2,
    "p3-check": check_p3,
    "p4-check": check_p4,
    "p5-check": check_p5,
    "p6-check": check_p6,
    "p7-check": check_p7,
    "p8-check": check_p8,
}
