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

LABELS = ("healthy", "underfitting", "no_convergence", "overfitting", "divergence")
EPOCH_LIMITS = {"epoch_count": (1, 100), "batch_size": (1, 64)}
RATE_KEYS = ("learning_rate", "learning_rate_multiplier")
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
        return wire.error(NameError("the function is not defined (run its cell first)"))
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
            return wire.error(NameError(f"{name} is not defined (run its cell first)"))
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


def probe_execution_accuracy(ns: dict, payload: dict) -> dict:
    import tunelab

    fn = _name(ns, "execution_accuracy")
    db = str(tunelab.data_path("nl_sql/shop.sqlite"))
    scripted = [
        _with_scripted_model(
            payload["script"], lambda f=f: _call(fn, SCRIPTED_MODEL, _frame(f), db)
        )
        for f in payload["scripted"]
    ]
    real = [_call(fn, r["model"], _frame(r["frame"]), db) for r in payload["real"]]
    return {"t": "dict", "items": [["scripted", scripted], ["real", real]]}


def probe_rerun(ns: dict, payload: dict) -> Any:
    import google.generativeai as genai

    name = ns.get("new_model_name")
    if not isinstance(name, str):
        return wire.error(NameError("new_model_name is not set to a model name"))
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
def judge_series(got: Any, index: list, values: list, why: str) -> str | None:
    """A per-epoch Series with exactly ``index`` and ``values`` (NaN equal to NaN)."""
    if not isinstance(got, wire.Series):
        return f"{why}: epoch_mean_loss should return a pandas Series; {wire.describe(got)}."
    if list(got.index) != list(index) or not all(wire.is_number(i) for i in got.index):
        shown = list(got.index)[:8]
        return (
            f"{why}: expected one value per epoch, indexed by the epoch numbers in ascending "
            f"order; found the index {shown}{'...' if len(got.index) > 8 else ''}. Group the "
            "steps by their 'epoch' column and sort by epoch (04_monitoring, 'From snapshots to "
            "a DataFrame')."
        )
    bad = [
        i
        for i, (a, b) in enumerate(zip(got.values, values, strict=True))
        if not wire.same_float(a, b)
    ]
    if bad:
        return (
            f"{why}: epoch {index[bad[0]]}'s mean is not the average of that epoch's step "
            "losses (steps with a missing loss are left out of the mean)."
        )
    return None


def judge_optional_epoch(got: Any, want: int | None, why: str, fn: str) -> str | None:
    if want is None:
        return None if got is None else f"{fn} {why}: expected None; {wire.describe(got)}."
    if not wire.is_whole(got):
        return f"{fn} {why}: expected a whole epoch number; {wire.describe(got)}."
    return None if got == want else f"{fn} {why}: expected epoch {want}; found {got}."


def judge_label(got: Any) -> str | None:
    if type(got) is not str or got not in LABELS:
        return f"The answer must be one of {LABELS}; {wire.describe(got)}."
    return None


def judge_next_run_format(got: Any) -> str | None:
    """next_run's keys, types and the limits the emulator enforces (not the choice itself)."""
    if type(got) is not dict:
        return f"next_run should be a dict; {wire.describe(got)}."
    allowed = {"epoch_count", "batch_size", *RATE_KEYS}
    if set(got) - allowed:
        return (
            f"next_run has unknown keys {sorted(set(got) - allowed)}; use the SDK's names "
            f"{sorted(allowed)}."
        )
    for key, (lo, hi) in EPOCH_LIMITS.items():
        if key not in got:
            return f"next_run needs {key!r}."
        if not wire.is_whole(got[key]):
            return f"next_run[{key!r}] should be a whole number, found {wire.describe(got[key])}."
        if not lo <= got[key] <= hi:
            return f"next_run[{key!r}] = {got[key]} is outside the limits {lo}-{hi}."
    rates = [k for k in RATE_KEYS if k in got]
    if len(rates) != 1:
        return (
            "Give exactly one of learning_rate or learning_rate_multiplier; found "
            f"{rates or 'neither'}."
        )
    rate = got[rates[0]]
    if not wire.is_number(rate) or not rate > 0:
        return f"next_run[{rates[0]!r}] should be a positive number, found {wire.describe(rate)}."
    return None


def judge_accuracy(got: Any, want: float, why: str) -> str | None:
    if isinstance(got, wire.Raised):
        return f"{why}: execution_accuracy must not raise here; {wire.describe(got)}."
    if type(got) is not float:
        return f"{why}: return a float share between 0 and 1; {wire.describe(got)}."
    if not abs(got - want) < 1e-9:
        return f"{why}: expected {want:.4f}; found {got:.4f}."
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
            "For the toy run (epoch 1 losses 3, 2, 1; epoch 2 losses 0.9, 0.8, 0.7)",
        )
    )
    if not isinstance(run, wire.Series) or len(run.values) != 20:
        _fail(f"The colleague's run has 20 epochs; your function gave {wire.describe(run)}.")
    result = fn(snapshots)
    print("Check 1 passed: per-epoch training loss of the colleague's run")
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
                "on losses 1.0, 0.5, 0.3, 0.295, 0.29 (from epoch 3 to 4 the loss improves by "
                "only 0.005 < 0.01, so the plateau starts at epoch 3; reread 05_early_stopping, "
                "'The plateau rule')",
                "plateau_epoch",
            ),
            judge_optional_epoch(
                got[1],
                None,
                "on losses 2.0, 1.0, 0.5, 0.25 (every improvement is far above 0.01: no plateau)",
                "plateau_epoch",
            ),
            judge_optional_epoch(
                got[2],
                3,
                "with tol=0.3 on losses 2.0, 1.0, 0.5, 0.25 (0.5 -> 0.25 improves by 0.25 < tol;"
                " use the tol argument instead of a fixed 0.01)",
                "plateau_epoch",
            ),
        ]
    )
    print(
        "Check 2 passed. On the colleague's training loss the plateau rule says: "
        f"epoch {fn(train_loss)}"
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
                "on validation losses 0.9, 0.5, 0.4, 0.45, 0.6 (lowest at epoch 3; "
                + REREAD_MONITORING.lower().rstrip(".")
                + ")",
                "best_epoch",
            ),
            judge_optional_epoch(
                got[1],
                want,
                "on the colleague's run (the epoch whose loss is lowest)",
                "best_epoch",
            ),
        ]
    )
    print(
        f"Check 3 passed. The validation loss is lowest at epoch {want} "
        f"({validation_loss[want]:.3f}); at epoch 20 it is {validation_loss[20]:.3f}."
    )


def check_diagnosis(diagnosis: Any) -> None:
    """Check 4 (format only): the diagnosis is one of LABELS."""
    _fail(judge_label(wire.decode_text(wire.dumps(wire.encode(diagnosis)))))
    print(f"Check 4: your diagnosis {diagnosis!r} is recorded; it is graded after you submit.")


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
                f"This curve is a textbook {label!r} case, but classify_curve gave "
                f"{wire.describe(found)}: {curve}. Reread 04_monitoring, 'Four patterns to "
                "recognise'."
            )
    if got[5] != "overfitting":
        _fail(
            "For the colleague's run (train falls to ~0.001, validation rises after its "
            f"minimum) expected 'overfitting'; found {wire.describe(got[5])}. {REREAD_MONITORING}"
        )
    if got[6] != "healthy":
        _fail(
            "The same healthy curve with its index in reverse order got a different label: sort "
            "the Series by epoch before reading its shape."
        )
    print("Check 5 passed on the fixed examples; the grader adds many fresh curves.")


def check_next_run(next_run: Any) -> None:
    """Check 6 (format and limits only)."""
    _fail(judge_next_run_format(wire.decode_text(wire.dumps(wire.encode(next_run)))))
    print(f"Check 6: next_run = {next_run} is well formed; the choice is graded after you submit.")


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
        {"script": TOY_SCRIPT, "scripted": [TOY_HELDOUT], "real": []},
    )
    _fail(
        judge_accuracy(
            got["scripted"][0],
            2 / 3,
            "Scripted model: one exact answer, one answer with the same rows in another order "
            "(correct: order does not matter), one garbage query (wrong, and it must not raise); "
            "reread the rules listed under Part 7",
        )
    )
    first = fn(first_model, heldout.head(60), db_path)
    print(
        f"Check 7 passed. The 20-epoch model answers {first:.0%} of 60 held-out questions "
        "correctly."
    )


def check_rerun(
    new_model_name: str, next_run: dict, accuracy: Callable, heldout: Any, db_path: str
) -> None:
    """Check 8: the rerun is ACTIVE, trained as planned, and clearly better on new questions."""
    import google.generativeai as genai

    model = genai.get_tuned_model(new_model_name)
    if model.state.name != "ACTIVE":
        _fail(
            f"{new_model_name} is {model.state.name}, not ACTIVE: wait for the operation to "
            "finish (operation.result()) before using the model. Reread 03_launching, 'States: "
            "CREATING, ACTIVE, FAILED'."
        )
    hp = model.tuning_task.hyperparameters
    if (hp.epoch_count, hp.batch_size) != (next_run["epoch_count"], next_run["batch_size"]):
        _fail(
            f"{new_model_name} was trained with epoch_count={hp.epoch_count}, "
            f"batch_size={hp.batch_size}, but next_run says {next_run}: launch the run you "
            "planned."
        )
    subset = heldout.head(60)
    old = accuracy("tunedModels/sql-20-epochs", subset, db_path)
    new = accuracy(new_model_name, subset, db_path)
    print(f"execution accuracy on 60 held-out questions: 20-epoch model {old:.0%}, yours {new:.0%}")
    _fail(rerun_gain_problem(new, old))
    print("Check 8 passed.")


def rerun_gain_problem(new: float, old: float, where: str = "the held-out questions") -> str | None:
    if new >= old + 0.3:
        return None
    return (
        f"Your model gets {new:.0%} of {where} right, the 20-epoch model {old:.0%}: not clearly "
        "better (30 points needed). Look at part 6 again: which epoch had the lowest validation "
        f"loss, and did you keep the learning rate sensible? {REREAD_MONITORING}"
    )
