"""Checks of the graded notebook ``sql_overfitting``: probes, judges and the visible checks.

See :mod:`tunelab.checks` for the design. The visible checks below hold only the examples the
notebook shows anyway; the grader's hidden inputs and reference answers are not here.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterable
from typing import Any

from tunelab.checks import wire
from tunelab.i18n import section_title, tr

LABELS = ("healthy", "underfitting", "no_convergence", "overfitting", "divergence")
EPOCH_LIMITS = {"epoch_count": (1, 100), "batch_size": (1, 64)}
RATE_KEYS = ("learning_rate", "learning_rate_multiplier")
#: The emulator's (and the service's) upper limits: learning_rate in (0, 1], multiplier in (0, 100].
RATE_LIMITS = {"learning_rate": 1.0, "learning_rate_multiplier": 100.0}
SCRIPTED_MODEL = "tunedModels/scripted"
REREAD_MONITORING = "Reread 04_monitoring, 'Recognising overfitting'."


# -- payloads (grader -> kernel) ----------------------------------------------------------------
def series_payload(series: Any) -> dict:
    """A Series as payload: index and values lists (NaN travels as JSON NaN)."""
    return {
        "index": [int(i) if float(i).is_integer() else float(i) for i in series.index],
        "values": [float(v) for v in series.to_numpy(dtype=float)],
    }


def frame_payload(frame: Any) -> dict:
    """A DataFrame as payload: one list per column, in column order."""
    return {str(c): frame[c].tolist() for c in frame.columns}


def _series(payload: dict) -> Any:
    import pandas as pd

    return pd.Series(payload["values"], index=payload["index"], dtype=float)


def _frame(payload: dict) -> Any:
    import pandas as pd

    return pd.DataFrame({k: list(v) for k, v in payload.items()})


def _call(fn: Any, *args: Any, **kwargs: Any) -> Any:
    """Call the student's function; wire data of its result or of its exception."""
    if not callable(fn):
        return wire.error(
            NameError(
                tr(
                    "the function is not defined (run its cell first)",
                    "функция не определена (сначала выполните её ячейку)",
                )
            )
        )
    try:
        return wire.encode(fn(*args, **kwargs))
    except Exception as exc:  # noqa: BLE001 (judged, never re-raised)
        return wire.error(exc)


def _name(ns: dict, name: str) -> Any:
    return ns.get(name)


# -- probes (run in the student's kernel) ---------------------------------------------------------
def probe_epoch_mean_loss(ns: dict, payload: dict) -> list:
    fn = _name(ns, "epoch_mean_loss")
    return [_call(fn, _frame(f)) for f in payload["frames"]]


def probe_plateau_epoch(ns: dict, payload: dict) -> list:
    fn = _name(ns, "plateau_epoch")
    return [_call(fn, _series(c["series"]), tol=c["tol"]) for c in payload["cases"]]


def probe_best_epoch(ns: dict, payload: dict) -> list:
    fn = _name(ns, "best_epoch")
    return [_call(fn, _series(c)) for c in payload["cases"]]


def probe_variable(name: str) -> Callable[[dict, dict], Any]:
    def probe(ns: dict, payload: dict) -> Any:
        if name not in ns:
            return wire.error(
                NameError(
                    tr(
                        "{name} is not defined (run its cell first)",
                        "{name} не определено (сначала выполните его ячейку)",
                        name=name,
                    )
                )
            )
        return wire.encode(ns[name])

    return probe


def probe_classify_curve(ns: dict, payload: dict) -> list:
    fn = _name(ns, "classify_curve")
    out = []
    for case in payload["cases"]:
        validation = None if case["validation"] is None else _series(case["validation"])
        out.append(_call(fn, _series(case["train"]), validation))
    return out


class ScriptedModel:
    """Stands in for genai.GenerativeModel: answers each prompt from a fixed script."""

    script: dict[str, str] = {}

    def __init__(self, name: str, *args: Any, **kwargs: Any) -> None:
        self.name = name

    def generate_content(self, prompt: Any, *args: Any, **kwargs: Any) -> Any:
        return type("Response", (), {"text": ScriptedModel.script[prompt]})()


def _with_scripted_model(script: dict[str, str], run: Callable[[], Any]) -> Any:
    genai = sys.modules.get("google.generativeai")
    if genai is None:
        import google.generativeai as genai
    real = genai.GenerativeModel
    ScriptedModel.script = dict(script)
    genai.GenerativeModel = ScriptedModel
    try:
        return run()
    finally:
        genai.GenerativeModel = real


def probe_execution_accuracy(ns: dict, payload: dict) -> list:
    """``cases``: ``{"frame": ...}`` (the scripted model) or ``{"model": NAME, "frame": ...}``
    (a real tuned model), in the order the grader chose."""
    import tunelab

    fn = _name(ns, "execution_accuracy")
    db = str(tunelab.data_path("nl_sql/shop.sqlite"))
    out = []
    for case in payload["cases"]:
        if case.get("model") is None:
            out.append(
                _with_scripted_model(
                    payload["script"],
                    lambda f=case["frame"]: _call(fn, SCRIPTED_MODEL, _frame(f), db),
                )
            )
        else:
            out.append(_call(fn, case["model"], _frame(case["frame"]), db))
    return out


def probe_rerun(ns: dict, payload: dict) -> Any:
    import google.generativeai as genai

    name = ns.get("new_model_name")
    if not isinstance(name, str):
        return wire.error(
            NameError(
                tr(
                    "new_model_name is not set to a model name",
                    "в new_model_name не записано имя модели",
                )
            )
        )
    model = genai.get_tuned_model(name)
    hp = model.tuning_task.hyperparameters
    generator = genai.GenerativeModel(name)
    answers = [generator.generate_content(p).text for p in payload["prompts"]]
    return wire.encode(
        {
            "name": model.name,
            "state": model.state.name,
            "base_model": model.base_model,
            "epoch_count": hp.epoch_count,
            "batch_size": hp.batch_size,
            "learning_rate": hp.learning_rate,
            "answers": answers,
        }
    )


PROBES: dict[str, Callable[[dict, dict], Any]] = {
    "epoch_mean_loss": probe_epoch_mean_loss,
    "plateau_epoch": probe_plateau_epoch,
    "best_epoch": probe_best_epoch,
    "diagnosis": probe_variable("DIAGNOSIS"),
    "classify_curve": probe_classify_curve,
    "next_run": probe_variable("next_run"),
    "execution_accuracy": probe_execution_accuracy,
    "rerun": probe_rerun,
}


def roundtrip(part: str, ns: dict, payload: dict) -> Any:
    """Probe and decode in one process, exactly as the grader does across the sandbox."""
    return wire.decode_text(wire.dumps(PROBES[part](ns, json.loads(json.dumps(payload)))))


# -- judges (the grader and the notebook) ----------------------------------------------------------
# Each judge words its message in ``lang`` (None: the current language, see tunelab.i18n); the
# grader passes the submission's edition, the notebook's visible checks leave it to the kernel.
def reread(lesson: str, title: str, lang: str | None = None) -> str:
    """ "Reread LESSON, 'TITLE'." in ``lang`` (Russian titles: ``i18n.SECTION_TITLES_RU``)."""
    return tr(
        "Reread {lesson}, '{title}'.",
        "Перечитайте урок {lesson}, раздел «{ru}».",
        lang,
        lesson=lesson,
        title=title,
        ru=section_title(lesson, title, "ru"),
    )


def reread_monitoring(lang: str | None = None) -> str:
    """:data:`REREAD_MONITORING` in ``lang``."""
    return reread("04_monitoring", "Recognising overfitting", lang)


def judge_series(
    got: Any, index: list, values: list, why: str, lang: str | None = None, *, hidden: bool = False
) -> str | None:
    """A per-epoch Series with exactly ``index`` and ``values`` (NaN equal to NaN).

    ``hidden``: the input was the grader's; the message names no value (neither the
    student's, which may carry the input, nor the expected one).
    """
    if not isinstance(got, wire.Series):
        return tr(
            "{why}: epoch_mean_loss should return a pandas Series; {d}.",
            "{why}: epoch_mean_loss должна возвращать pandas Series; {d}.",
            lang,
            why=why,
            d=wire.describe(got, lang, hidden=hidden),
        )
    if hidden and (list(got.index) != list(index) or not all(wire.is_number(i) for i in got.index)):
        return tr(
            "{why}: expected one value per epoch, indexed by the epoch numbers in ascending "
            "order; your Series has another index. Group the steps by their 'epoch' column "
            "and sort by epoch (04_monitoring, 'From snapshots to a DataFrame').",
            "{why}: ожидалось одно значение на эпоху с индексом из номеров эпох по "
            "возрастанию; у вашей Series другой индекс. Сгруппируйте шаги по столбцу 'epoch' и "
            "отсортируйте по эпохе (урок 04_monitoring, раздел «{ru}»).",
            lang,
            why=why,
            ru=section_title("04_monitoring", "From snapshots to a DataFrame", "ru"),
        )
    if list(got.index) != list(index) or not all(wire.is_number(i) for i in got.index):
        shown = list(got.index)[:8]
        return tr(
            "{why}: expected one value per epoch, indexed by the epoch numbers in ascending "
            "order; found the index {shown}{more}. Group the steps by their 'epoch' column and "
            "sort by epoch (04_monitoring, 'From snapshots to a DataFrame').",
            "{why}: ожидалось одно значение на эпоху с индексом из номеров эпох по возрастанию; "
            "получен индекс {shown}{more}. Сгруппируйте шаги по столбцу 'epoch' и отсортируйте "
            "по эпохе (урок 04_monitoring, раздел «{ru}»).",
            lang,
            why=why,
            shown=shown,
            more="..." if len(got.index) > 8 else "",
            ru=section_title("04_monitoring", "From snapshots to a DataFrame", "ru"),
        )
    bad = [
        i
        for i, (a, b) in enumerate(zip(got.values, values, strict=True))
        if not wire.same_float(a, b)
    ]
    if bad and hidden:
        return tr(
            "{why}: an epoch's mean is not the average of that epoch's step losses (steps with "
            "a missing loss are left out of the mean).",
            "{why}: среднее одной из эпох не равно среднему потерь её шагов (шаги без значения "
            "потерь в среднее не входят).",
            lang,
            why=why,
        )
    if bad:
        return tr(
            "{why}: epoch {e}'s mean is not the average of that epoch's step losses (steps with "
            "a missing loss are left out of the mean).",
            "{why}: среднее для эпохи {e} не равно среднему потерь её шагов (шаги без значения "
            "потерь в среднее не входят).",
            lang,
            why=why,
            e=index[bad[0]],
        )
    return None


def _not_a_whole_epoch(got: Any, why: str, fn: str, lang: str | None, *, hidden: bool) -> str:
    """The message for an epoch answer that is no whole number, one wording for the visible
    and the hidden checks (``hidden``: name only the kind of what came back)."""
    return tr(
        "{fn} {why}: expected a whole epoch number; {d}.",
        "{fn} {why}: ожидался целый номер эпохи; {d}.",
        lang,
        fn=fn,
        why=why,
        d=wire.describe(got, lang, hidden=hidden),
    )


def judge_optional_epoch(
    got: Any,
    want: int | None,
    why: str,
    fn: str,
    lang: str | None = None,
    *,
    hidden: bool = False,
) -> str | None:
    """An epoch number (or None) equal to ``want``; ``hidden``: name neither value."""
    if hidden:
        if want is None and got is None or wire.is_whole(got) and got == want:
            return None
        if want is not None and got is not None and not wire.is_whole(got):
            return _not_a_whole_epoch(got, why, fn, lang, hidden=True)
        return tr(
            "{fn} {why}: your answer is not the right one ({d}).",
            "{fn} {why}: ваш ответ неверен ({d}).",
            lang,
            fn=fn,
            why=why,
            d=wire.describe(got, lang, hidden=True),
        )
    if want is None:
        if got is None:
            return None
        return tr(
            "{fn} {why}: expected None; {d}.",
            "{fn} {why}: ожидалось None; {d}.",
            lang,
            fn=fn,
            why=why,
            d=wire.describe(got, lang),
        )
    if not wire.is_whole(got):
        return _not_a_whole_epoch(got, why, fn, lang, hidden=False)
    if got == want:
        return None
    return tr(
        "{fn} {why}: expected epoch {want}; found {got}.",
        "{fn} {why}: ожидалась эпоха {want}; получено {got}.",
        lang,
        fn=fn,
        why=why,
        want=want,
        got=got,
    )


def judge_label(got: Any, lang: str | None = None) -> str | None:
    if type(got) is not str or got not in LABELS:
        return tr(
            "The answer must be one of {labels}; {d}.",
            "Ответ должен быть одним из {labels}; {d}.",
            lang,
            labels=LABELS,
            d=wire.describe(got, lang),
        )
    return None


def judge_next_run_format(got: Any, lang: str | None = None) -> str | None:
    """next_run's keys, types and the limits the emulator enforces (not the choice itself)."""
    if type(got) is not dict:
        return tr(
            "next_run should be a dict; {d}.",
            "next_run должен быть словарём (dict); {d}.",
            lang,
            d=wire.describe(got, lang),
        )
    allowed = {"epoch_count", "batch_size", *RATE_KEYS}
    if set(got) - allowed:
        return tr(
            "next_run has unknown keys {unknown}; use the SDK's names {allowed}.",
            "в next_run есть неизвестные ключи {unknown}; используйте имена из SDK {allowed}.",
            lang,
            unknown=sorted(set(got) - allowed),
            allowed=sorted(allowed),
        )
    for key, (lo, hi) in EPOCH_LIMITS.items():
        if key not in got:
            return tr("next_run needs {key!r}.", "в next_run нужен ключ {key!r}.", lang, key=key)
        if not wire.is_whole(got[key]):
            return tr(
                "next_run[{key!r}] should be a whole number, found {d}.",
                "next_run[{key!r}] должен быть целым числом, а получено {d}.",
                lang,
                key=key,
                d=wire.describe(got[key], lang),
            )
        if not lo <= got[key] <= hi:
            return tr(
                "next_run[{key!r}] = {v} is outside the limits {lo}-{hi}.",
                "next_run[{key!r}] = {v} выходит за пределы {lo}–{hi}.",
                lang,
                key=key,
                v=got[key] if abs(got[key]) < 10**12 else show_number(got[key]),
                lo=lo,
                hi=hi,
            )
    rates = [k for k in RATE_KEYS if k in got]
    if len(rates) != 1:
        return tr(
            "Give exactly one of learning_rate or learning_rate_multiplier; found {found}.",
            "Укажите ровно одно из двух: learning_rate или learning_rate_multiplier; "
            "получено {found}.",
            lang,
            found=rates or tr("neither", "ни одного", lang),
        )
    rate = got[rates[0]]
    if not wire.is_number(rate):
        return tr(
            "next_run[{key!r}] should be a positive number, found {d}.",
            "next_run[{key!r}] должен быть положительным числом, а получено {d}.",
            lang,
            key=rates[0],
            d=wire.describe(rate, lang),
        )
    hi = RATE_LIMITS[rates[0]]
    if wire.finite_in(rate, 0.0, hi, above=True) is None:
        return tr(
            "next_run's {key} {v} is not a finite number between 0 (excluded) and {hi:g}, "
            "the limits the service accepts.",
            "{key} в next_run равен {v}, а это не конечное число от 0 (не включая) до {hi:g}, "
            "как требует сервис.",
            lang,
            key=rates[0],
            v=show_number(rate),
            hi=hi,
        )
    return None


def show_number(value: Any) -> str:
    """A wire number in short words, even one no float can hold (``10**400`` -> ``1e+400``)."""
    number = wire.as_float(value)
    if number is not None:
        return f"{number:.6g}"
    try:
        digits = str(abs(value))
    except ValueError:  # over Python's int-to-str digit limit
        return tr("an integer of thousands of digits", "целое число из тысяч цифр")
    return f"{'-' if value < 0 else ''}{digits[0]}e+{len(digits) - 1}"


def judge_accuracy(
    got: Any, want: float, why: str, lang: str | None = None, *, hidden: bool = False
) -> str | None:
    """A float share equal to ``want``; ``hidden``: the message names neither number."""
    if isinstance(got, wire.Raised):
        return tr(
            "{why}: execution_accuracy must not raise here; {d}.",
            "{why}: здесь execution_accuracy не должна выбрасывать исключение; {d}.",
            lang,
            why=why,
            d=wire.describe(got, lang, hidden=hidden),
        )
    if type(got) is not float:
        return tr(
            "{why}: return a float share between 0 and 1; {d}.",
            "{why}: верните долю от 0 до 1 (float); {d}.",
            lang,
            why=why,
            d=wire.describe(got, lang, hidden=hidden),
        )
    if hidden and not abs(got - want) < 1e-9:
        return tr(
            "{why}: your share is not the share of questions whose SQL returns the reference's "
            "rows.",
            "{why}: ваша доля не равна доле вопросов, чей SQL возвращает строки эталона.",
            lang,
            why=why,
        )
    if not abs(got - want) < 1e-9:
        return tr(
            "{why}: expected {want:.4f}; found {got:.4f}.",
            "{why}: ожидалось {want:.4f}; получено {got:.4f}.",
            lang,
            why=why,
            want=want,
            got=got,
        )
    return None


def raised(got: Any, kind: str) -> bool:
    return isinstance(got, wire.Raised) and got.type == kind


# -- visible checks (what the notebook's check cells call) ----------------------------------------
def _fail(message: str | None) -> None:
    if message:
        raise AssertionError(message)


def _first(messages: Iterable[str | None]) -> None:
    for message in messages:
        _fail(message)


TOY_STEPS = {
    "step": [1, 2, 3, 4, 5, 6],
    "epoch": [1, 1, 1, 2, 2, 2],
    "mean_loss": [3.0, 2.0, 1.0, 0.9, 0.8, 0.7],
}


def check_epoch_mean_loss(fn: Callable, snapshots: Any) -> None:
    """Check 1: the toy run and the colleague's 20 epochs."""
    ns = {"epoch_mean_loss": fn}
    toy, run = roundtrip("epoch_mean_loss", ns, {"frames": [TOY_STEPS, frame_payload(snapshots)]})
    _fail(
        judge_series(
            toy,
            [1, 2],
            [2.0, 0.8],
            tr(
                "For the toy run (epoch 1 losses 3, 2, 1; epoch 2 losses 0.9, 0.8, 0.7)",
                "На игрушечном запуске (потери эпохи 1: 3; 2; 1; эпохи 2: 0,9; 0,8; 0,7)",
            ),
        )
    )
    if not isinstance(run, wire.Series) or len(run.values) != 20:
        _fail(
            tr(
                "The colleague's run has 20 epochs; your function gave {d}.",
                "В запуске коллеги 20 эпох; ваша функция вернула {d}.",
                d=wire.describe(run),
            )
        )
    result = fn(snapshots)
    print(
        tr(
            "Check 1 passed: per-epoch training loss of the colleague's run",
            "Проверка 1 пройдена: потери на обучении по эпохам в запуске коллеги",
        )
    )
    print(result.round(4).to_string())


def check_plateau_epoch(fn: Callable, train_loss: Any) -> None:
    """Check 2: the plateau rule on three visible cases."""
    import pandas as pd

    toy = pd.Series([1.0, 0.5, 0.3, 0.295, 0.29], index=[1, 2, 3, 4, 5])
    falling = pd.Series([2.0, 1.0, 0.5, 0.25], index=[1, 2, 3, 4])
    cases = [
        {"series": series_payload(toy), "tol": 0.01},
        {"series": series_payload(falling), "tol": 0.01},
        {"series": series_payload(falling), "tol": 0.3},
    ]
    got = roundtrip("plateau_epoch", {"plateau_epoch": fn}, {"cases": cases})
    _first(
        [
            judge_optional_epoch(
                got[0],
                3,
                tr(
                    "on losses 1.0, 0.5, 0.3, 0.295, 0.29 (from epoch 3 to 4 the loss improves by "
                    "only 0.005 < 0.01, so the plateau starts at epoch 3; reread "
                    "05_early_stopping, 'The plateau rule')",
                    "на потерях 1,0; 0,5; 0,3; 0,295; 0,29 (от эпохи 3 к 4 потери улучшаются лишь "
                    "на 0,005 < 0,01, поэтому плато начинается с эпохи 3; перечитайте урок "
                    "05_early_stopping, раздел «{ru}»)",
                    ru=section_title("05_early_stopping", "The plateau rule", "ru"),
                ),
                "plateau_epoch",
            ),
            judge_optional_epoch(
                got[1],
                None,
                tr(
                    "on losses 2.0, 1.0, 0.5, 0.25 (every improvement is far above 0.01: no "
                    "plateau)",
                    "на потерях 2,0; 1,0; 0,5; 0,25 (каждое улучшение намного больше 0,01: "
                    "плато нет)",
                ),
                "plateau_epoch",
            ),
            judge_optional_epoch(
                got[2],
                3,
                tr(
                    "with tol=0.3 on losses 2.0, 1.0, 0.5, 0.25 (0.5 -> 0.25 improves by 0.25 < "
                    "tol; use the tol argument instead of a fixed 0.01)",
                    "с tol=0.3 на потерях 2,0; 1,0; 0,5; 0,25 (0,5 -> 0,25 — улучшение на "
                    "0,25 < tol; используйте аргумент tol, а не фиксированное 0,01)",
                ),
                "plateau_epoch",
            ),
        ]
    )
    print(
        tr(
            "Check 2 passed. On the colleague's training loss the plateau rule says: epoch {e}",
            "Проверка 2 пройдена. По потерям на обучении в запуске коллеги правило плато "
            "указывает на эпоху {e}",
            e=fn(train_loss),
        )
    )


def check_best_epoch(fn: Callable, validation_loss: Any) -> None:
    """Check 3: the toy curve and the colleague's validation loss."""
    import pandas as pd

    toy = pd.Series([0.9, 0.5, 0.4, 0.45, 0.6], index=[1, 2, 3, 4, 5])
    clean = validation_loss.dropna()
    want = int(clean.sort_index().idxmin())
    got = roundtrip(
        "best_epoch",
        {"best_epoch": fn},
        {"cases": [series_payload(toy), series_payload(validation_loss)]},
    )
    _first(
        [
            judge_optional_epoch(
                got[0],
                3,
                tr(
                    "on validation losses 0.9, 0.5, 0.4, 0.45, 0.6 (lowest at epoch 3; {reread})",
                    "на потерях на валидации 0,9; 0,5; 0,4; 0,45; 0,6 (минимум в эпохе 3; "
                    "перечитайте урок 04_monitoring, раздел «{ru}»)",
                    reread=REREAD_MONITORING.lower().rstrip("."),
                    ru=section_title("04_monitoring", "Recognising overfitting", "ru"),
                ),
                "best_epoch",
            ),
            judge_optional_epoch(
                got[1],
                want,
                tr(
                    "on the colleague's run (the epoch whose loss is lowest)",
                    "на запуске коллеги (эпоха с минимальными потерями)",
                ),
                "best_epoch",
            ),
        ]
    )
    print(
        tr(
            "Check 3 passed. The validation loss is lowest at epoch {want} ({low:.3f}); at "
            "epoch 20 it is {last:.3f}.",
            "Проверка 3 пройдена. Потери на валидации минимальны в эпохе {want} ({low:.3f}); "
            "в эпохе 20 они равны {last:.3f}.",
            want=want,
            low=validation_loss[want],
            last=validation_loss[20],
        )
    )


def check_diagnosis(diagnosis: Any) -> None:
    """Check 4 (format only): the diagnosis is one of LABELS."""
    _fail(judge_label(wire.decode_text(wire.dumps(wire.encode(diagnosis)))))
    print(
        tr(
            "Check 4: your diagnosis {d!r} is recorded; it is graded after you submit.",
            "Проверка 4: ваш диагноз {d!r} записан; он будет оценён после сдачи.",
            d=diagnosis,
        )
    )


FIXED_CURVES = {
    "healthy": [1.6, 0.9, 0.55, 0.42, 0.38, 0.37, 0.365, 0.362],
    "underfitting": [1.9, 1.75, 1.6, 1.46, 1.33, 1.21, 1.1, 1.0],
    "no_convergence": [2.3, 2.5, 2.1, 2.6, 2.2, 2.45, 2.15, 2.4],
    "overfitting": [1.3, 0.6, 0.35, 0.2, 0.08, 0.02, 0.004, 0.001],
    "divergence": [1.2, 0.6, 0.45, 0.5, 0.9, 1.8, 3.9, 8.5],
}


def check_classify_curve(fn: Callable, train_loss: Any, validation_loss: Any) -> None:
    """Check 5: five textbook curves, the colleague's run and a reversed index."""
    import pandas as pd

    epochs = list(range(1, 9))
    cases = [
        {"train": {"index": epochs, "values": v}, "validation": None} for v in FIXED_CURVES.values()
    ]
    cases.append(
        {"train": series_payload(train_loss), "validation": series_payload(validation_loss)}
    )
    healthy = pd.Series(FIXED_CURVES["healthy"], index=epochs).iloc[::-1]
    cases.append({"train": series_payload(healthy), "validation": None})
    got = roundtrip("classify_curve", {"classify_curve": fn}, {"cases": cases})
    for (label, curve), found in zip(FIXED_CURVES.items(), got, strict=False):
        if found != label:
            _fail(
                tr(
                    "This curve is a textbook {label!r} case, but classify_curve gave {d}: "
                    "{curve}. {reread}",
                    "Эта кривая — хрестоматийный случай {label!r}, но classify_curve вернула "
                    "{d}: {curve}. {reread}",
                    label=label,
                    d=wire.describe(found),
                    curve=curve,
                    reread=reread("04_monitoring", "Four patterns to recognise"),
                )
            )
    if got[5] != "overfitting":
        _fail(
            tr(
                "For the colleague's run (train falls to ~0.001, validation rises after its "
                "minimum) expected 'overfitting'; found {d}. {reread}",
                "Для запуска коллеги (потери на обучении падают до ~0,001, на валидации растут "
                "после минимума) ожидалось 'overfitting'; получено {d}. {reread}",
                d=wire.describe(got[5]),
                reread=reread_monitoring(),
            )
        )
    if got[6] != "healthy":
        _fail(
            tr(
                "The same healthy curve with its index in reverse order got a different label: "
                "sort the Series by epoch before reading its shape.",
                "Та же здоровая кривая с индексом в обратном порядке получила другую метку: "
                "отсортируйте Series по эпохам, прежде чем оценивать её форму.",
            )
        )
    print(
        tr(
            "Check 5 passed on the fixed examples; the grader adds many fresh curves.",
            "Проверка 5 пройдена на фиксированных примерах; система оценивания добавит много "
            "новых кривых.",
        )
    )


def check_next_run(next_run: Any) -> None:
    """Check 6 (format and limits only)."""
    _fail(judge_next_run_format(wire.decode_text(wire.dumps(wire.encode(next_run)))))
    print(
        tr(
            "Check 6: next_run = {run} is well formed; the choice is graded after you submit.",
            "Проверка 6: next_run = {run} корректен; сам выбор будет оценён после сдачи.",
            run=next_run,
        )
    )


TOY_HELDOUT = {
    "text_input": ["q-right", "q-reordered", "q-garbage"],
    "output": [
        "SELECT name FROM customers ORDER BY name LIMIT 3",
        "SELECT city FROM customers ORDER BY city LIMIT 5",
        "SELECT COUNT(*) FROM orders",
    ],
}
TOY_SCRIPT = {
    "q-right": "SELECT name FROM customers ORDER BY name LIMIT 3",
    "q-reordered": "SELECT * FROM (SELECT city FROM customers ORDER BY city LIMIT 5) "
    "ORDER BY city DESC",
    "q-garbage": "SELET COUNT(* FROM FROM orders",
}


def check_execution_accuracy(fn: Callable, heldout: Any, db_path: str, first_model: str) -> None:
    """Check 7: a scripted model with known answers, then the 20-epoch model."""
    got = roundtrip(
        "execution_accuracy",
        {"execution_accuracy": fn},
        {"script": TOY_SCRIPT, "cases": [{"frame": TOY_HELDOUT}]},
    )
    _fail(
        judge_accuracy(
            got[0],
            2 / 3,
            tr(
                "Scripted model: one exact answer, one answer with the same rows in another "
                "order (correct: order does not matter), one garbage query (wrong, and it must "
                "not raise); reread the rules listed under Part 7",
                "Модель со сценарием: один точный ответ, один ответ с теми же строками в другом "
                "порядке (верный: порядок не важен), один бессмысленный запрос (неверный, и он "
                "не должен приводить к исключению); перечитайте правила в описании части 7",
            ),
        )
    )
    first = fn(first_model, heldout.head(60), db_path)
    print(
        tr(
            "Check 7 passed. The 20-epoch model answers {first:.0%} of 60 held-out questions "
            "correctly.",
            "Проверка 7 пройдена. Модель после 20 эпох верно отвечает на {first:.0%} из 60 "
            "отложенных вопросов.",
            first=first,
        )
    )


def check_rerun(
    new_model_name: str, next_run: dict, accuracy: Callable, heldout: Any, db_path: str
) -> None:
    """Check 8: the rerun is ACTIVE, trained as planned, and clearly better on new questions."""
    import google.generativeai as genai

    model = genai.get_tuned_model(new_model_name)
    if model.state.name != "ACTIVE":
        _fail(
            tr(
                "{name} is {state}, not ACTIVE: wait for the operation to finish "
                "(operation.result()) before using the model. {reread}",
                "{name} в состоянии {state}, а не ACTIVE: дождитесь окончания операции "
                "(operation.result()), прежде чем использовать модель. {reread}",
                name=new_model_name,
                state=model.state.name,
                reread=reread("03_launching", "States: CREATING, ACTIVE, FAILED"),
            )
        )
    hp = model.tuning_task.hyperparameters
    if (hp.epoch_count, hp.batch_size) != (next_run["epoch_count"], next_run["batch_size"]):
        _fail(
            tr(
                "{name} was trained with epoch_count={e}, batch_size={b}, but next_run says "
                "{run}: launch the run you planned.",
                "{name} обучена с epoch_count={e}, batch_size={b}, а в next_run указано {run}: "
                "запустите то обучение, которое спланировали.",
                name=new_model_name,
                e=hp.epoch_count,
                b=hp.batch_size,
                run=next_run,
            )
        )
    subset = heldout.head(60)
    old = accuracy("tunedModels/sql-20-epochs", subset, db_path)
    new = accuracy(new_model_name, subset, db_path)
    print(
        tr(
            "execution accuracy on 60 held-out questions: 20-epoch model {old:.0%}, yours "
            "{new:.0%}",
            "точность выполнения на 60 отложенных вопросах: модель после 20 эпох — {old:.0%}, "
            "ваша — {new:.0%}",
            old=old,
            new=new,
        )
    )
    _fail(rerun_gain_problem(new, old))
    print(tr("Check 8 passed.", "Проверка 8 пройдена."))


def rerun_gain_problem(
    new: float, old: float, where: str | None = None, lang: str | None = None
) -> str | None:
    if new >= old + 0.3:
        return None
    return tr(
        "Your model gets {new:.0%} of {where} right, the 20-epoch model {old:.0%}: not clearly "
        "better (30 points needed). Look at part 6 again: which epoch had the lowest validation "
        "loss, and did you keep the learning rate sensible? {reread}",
        "Ваша модель верно отвечает на {new:.0%} {where}, модель после 20 эпох — на {old:.0%}: "
        "это не заметно лучше (нужно 30 пунктов). Вернитесь к части 6: в какой эпохе потери на "
        "валидации были минимальны и разумной ли осталась скорость обучения? {reread}",
        lang,
        new=new,
        old=old,
        where=where or tr("the held-out questions", "отложенных вопросов", lang),
        reread=reread_monitoring(lang),
    )
