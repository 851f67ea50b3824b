"""Turn tuning snapshots into a DataFrame, plot loss curves, and redraw them live.

Why this module exists: the loss snapshots of a tuning job reach a notebook in many shapes
(plain dicts from ``google.generativeai``, proto-plus messages from the raw client, pydantic
objects, raw REST JSON with camelCase keys and proto3's habit of leaving out fields that are
zero). Lessons should talk about *reading* loss curves, not about these shapes, so
:func:`snapshots_frame` accepts all of them and gives one tidy table. :func:`plot_loss` draws
that table the same way in every lesson, and :class:`LivePlot` / :func:`watch` redraw it in
place while a job runs (like d2l's ``Animator``).

Nothing here answers an exercise: the exercises ask students to build such a table or plot
themselves, or to *interpret* one.
"""

from __future__ import annotations

import datetime as _dt
import json
import math
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import numpy as np
import pandas as pd

from tunelab.i18n import count, num, tr

__all__ = [
    "VALIDATION_LABEL",
    "LivePlot",
    "plot_loss",
    "snapshots_frame",
    "watch",
]

#: Legend label of the validation curve: the real Gemini API never reported one.
VALIDATION_LABEL = "validation loss (emulator only — the Gemini API does not report it)"
TRAINING_LABEL = "training loss"
#: the same labels in the Russian edition (``tunelab.set_language("ru")``)
VALIDATION_LABEL_RU = "потери на валидации (только эмулятор — Gemini API их не сообщает)"
TRAINING_LABEL_RU = "потери на обучении"
_AXIS_RU = {"step": "шаг", "epoch": "эпоха"}


def _axis_name(x: str) -> str:
    """An axis label (the column name, "step" or "epoch") in the current language."""
    return tr(x, _AXIS_RU.get(x, x))


#: The recorded runs' names (``data/runs/NAME.csv``), as lesson 04 titles its plots with them.
RUN_NAMES_RU = {
    "healthy": "здоровое обучение",
    "underfitting": "недообучение",
    "no convergence": "нет сходимости",
    "no_convergence": "нет сходимости",
    "overfitting": "переобучение",
    "divergence": "расхождение",
}


def _title(title: str) -> str:
    """The default title in the current language, a recorded run's name in Russian too;
    any other title a caller gives is kept as given."""
    if title == "Training loss" or title.startswith("Training loss — "):
        return tr(title, title.replace("Training loss", "Потери на обучении", 1))
    if title in RUN_NAMES_RU:
        return tr(title, RUN_NAMES_RU[title])
    return title


COLUMNS = ["step", "epoch", "mean_loss"]

# Field spellings per column: snake_case (SDK dicts, proto-plus, pydantic) and camelCase (REST).
_ALIASES: dict[str, tuple[str, ...]] = {
    "step": ("step",),
    "epoch": ("epoch",),
    "mean_loss": ("mean_loss", "meanLoss"),
    "compute_time": ("compute_time", "computeTime"),
}
# Containers that hold snapshots somewhere inside: model -> tuning task -> snapshots,
# operation -> metadata -> snapshots, google-genai HttpResponse -> JSON body.
_CONTAINER_KEYS = ("snapshots", "tuning_task", "tuningTask", "metadata", "body")


def _lookup(item: Any, names: Iterable[str]) -> tuple[bool, Any]:
    """Find the first of ``names`` in a mapping or as an attribute; (found, value)."""
    for name in names:
        if isinstance(item, Mapping):
            if name in item:
                return True, item[name]
        elif not isinstance(item, str | bytes) and _has_attr(item, name):
            return True, getattr(item, name)
    return False, None


def _has_attr(obj: Any, name: str) -> bool:
    # proto-plus messages answer hasattr() for every declared field, set or not, which is what
    # we want: an unset proto3 field *is* zero.
    try:
        getattr(obj, name)
    except (AttributeError, KeyError):
        return False
    return True


def _is_snapshot(item: Any) -> bool:
    return any(_lookup(item, names)[0] for names in _ALIASES.values())


def _unwrap(obj: Any, where: str) -> tuple[Any, str]:
    """Descend from a model / task / operation / HTTP response to its list of snapshots."""
    for _ in range(6):
        if isinstance(obj, bytes | bytearray):
            obj = obj.decode("utf-8")
        if isinstance(obj, str):
            try:
                obj = json.loads(obj)
            except json.JSONDecodeError as exc:
                raise ValueError(f"{where}: text is not JSON ({exc})") from None
            continue
        if isinstance(obj, pd.DataFrame | list | tuple) or obj is None:
            return obj, where
        if _is_snapshot(obj):
            return [obj], where
        for key in _CONTAINER_KEYS:
            found, value = _lookup(obj, (key,))
            if found and not callable(value):
                if key == "body" and not isinstance(value, str | bytes):
                    continue
                if value is None:  # e.g. a tuned model whose tuning_task is not filled in yet
                    return None, f"{where}.{key}"
                obj, where = value, f"{where}.{key}"
                break
        else:
            return obj, where
    return obj, where


def _to_int(value: Any, field: str, where: str) -> int:
    if value is None:
        return 0
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{where}: {field} {value!r} is not a whole number") from None
    if not number.is_integer():
        raise ValueError(f"{where}: {field} {value!r} is not a whole number")
    return int(number)


def _to_float(value: Any, where: str) -> float:
    if value is None:
        return 0.0
    try:
        # float() also reads proto3 JSON's "NaN", "Infinity" and "-Infinity" strings.
        return float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{where}: mean_loss {value!r} is not a number") from None


def _to_time(value: Any, where: str) -> pd.Timestamp | None:
    if value is None or value == "":
        return None
    if hasattr(value, "ToDatetime") and hasattr(value, "seconds"):  # protobuf Timestamp
        value = value.ToDatetime(tzinfo=_dt.UTC)
    try:
        stamp = pd.Timestamp(value)
    except (TypeError, ValueError):
        raise ValueError(f"{where}: compute_time {value!r} is not a timestamp") from None
    return stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")


def snapshots_frame(snapshots: Any) -> pd.DataFrame:
    """One tidy table ``[step, epoch, mean_loss(, compute_time)]`` from tuning snapshots.

    Accepts a list of snapshots in any of the shapes the SDKs produce (dicts from
    ``genai.get_tuned_model(...).tuning_task.snapshots``, proto-plus ``TuningSnapshot``s,
    objects with attributes, REST JSON with ``meanLoss``/``computeTime``), or anything that
    holds such a list: a tuned model, its ``tuning_task``, an operation or its ``metadata``,
    a JSON string, or a google-genai ``HttpResponse`` whose body is the REST JSON.

    Fields missing from a snapshot count as 0, because proto3 JSON leaves out zero values
    (the first epoch's snapshots often have no ``epoch`` key at all). Rows come back sorted
    by step; losses stay NaN/inf when a run diverged, so the plot can show where.
    """
    items, where = _unwrap(snapshots, "snapshots")
    if isinstance(items, pd.DataFrame):
        return _normalise_frame(items)
    if items is None or where.endswith((".tuning_task", ".tuningTask", ".metadata")):
        items = []  # a task or operation with no snapshots yet (proto3 JSON leaves them out)
    if isinstance(items, Mapping) or not isinstance(items, Iterable):
        raise TypeError(
            f"{where}: expected a list of tuning snapshots (step, epoch, mean_loss) or an "
            f"object holding one (tuned model, tuning_task, operation), got "
            f"{type(items).__name__}"
            + (f" with keys {sorted(map(str, items))}" if isinstance(items, Mapping) else "")
        )
    rows = []
    for index, item in enumerate(items):
        here = f"{where}[{index}]"
        if not _is_snapshot(item):
            keys = sorted(map(str, item)) if isinstance(item, Mapping) else type(item).__name__
            raise ValueError(
                f"{here} is not a tuning snapshot: expected step/epoch/mean_loss, found {keys}"
            )
        row: dict[str, Any] = {
            "step": _to_int(_lookup(item, _ALIASES["step"])[1], "step", here),
            "epoch": _to_int(_lookup(item, _ALIASES["epoch"])[1], "epoch", here),
            "mean_loss": _to_float(_lookup(item, _ALIASES["mean_loss"])[1], here),
        }
        found, stamp = _lookup(item, _ALIASES["compute_time"])
        row["compute_time"] = _to_time(stamp, here) if found else None
        rows.append(row)
    frame = pd.DataFrame(rows, columns=[*COLUMNS, "compute_time"])
    return _normalise_frame(frame)


def _normalise_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """Rename camelCase columns, fix dtypes, sort by step, drop an all-empty compute_time."""
    renames = {
        alias: column
        for column, aliases in _ALIASES.items()
        for alias in aliases
        if alias != column and alias in frame.columns
    }
    frame = frame.rename(columns=renames)
    missing = [c for c in ("step", "mean_loss") if c not in frame.columns]
    if missing:
        raise ValueError(
            f"snapshots table has no {' or '.join(missing)} column (columns: {list(frame.columns)})"
        )
    frame = frame.copy()
    if "epoch" not in frame.columns:
        frame["epoch"] = 0
    frame["step"] = pd.to_numeric(frame["step"]).fillna(0).astype("int64")
    frame["epoch"] = pd.to_numeric(frame["epoch"]).fillna(0).astype("int64")
    frame["mean_loss"] = pd.to_numeric(frame["mean_loss"]).astype("float64")
    extra = [c for c in frame.columns if c not in COLUMNS]
    if "compute_time" in frame.columns:
        if frame["compute_time"].isna().all():
            frame = frame.drop(columns="compute_time")
            extra.remove("compute_time")
        else:
            frame["compute_time"] = pd.to_datetime(frame["compute_time"], utc=True)
    frame = frame[[*COLUMNS, *extra]]
    return frame.sort_values("step", kind="stable").reset_index(drop=True)


def _validation_frame(validation: Any) -> pd.DataFrame:
    """Per-epoch validation loss as a frame [epoch, validation_loss]."""
    if isinstance(validation, pd.DataFrame):
        if "validation_loss" not in validation.columns:
            raise ValueError(
                "validation table needs a validation_loss column "
                f"(columns: {list(validation.columns)})"
            )
        if "epoch" in validation.columns:
            return validation[["epoch", "validation_loss"]].reset_index(drop=True)
        series = validation["validation_loss"]
    elif isinstance(validation, pd.Series):
        series = validation
    else:
        values = np.asarray(validation, dtype=float).ravel()
        series = pd.Series(values, index=np.arange(1, len(values) + 1))
    return pd.DataFrame(
        {"epoch": np.asarray(series.index, dtype=int), "validation_loss": series.to_numpy(float)}
    )


def plot_loss(
    df: Any,
    ax: Any = None,
    *,
    x: str = "step",
    hue: str | None = None,
    title: str | None = "Training loss",
    validation: Any = None,
    logy: bool = False,
) -> Any:
    """Draw the training loss (and optionally a validation curve); return the axes.

    ``df`` is a snapshots table (or anything :func:`snapshots_frame` accepts). With
    ``x="epoch"`` each epoch shows its mean loss. ``hue`` names a column that tells several
    runs apart (e.g. ``"learning_rate_multiplier"``). ``validation`` is a per-epoch validation
    loss (sequence for epochs 1..E, Series indexed by epoch, or a frame with ``epoch`` and
    ``validation_loss``): it is drawn at the last step of each epoch and labelled as
    emulator-only, because the real Gemini API never reported it.
    Non-finite losses (a diverged run) are left out of the line and marked with a red cross.

    One run is drawn with matplotlib as ``seaborn.lineplot`` draws it (sorted by ``x``, the
    mean of repeated ``x``, white-edged markers), so a lesson that does not use seaborn does
    not pay for importing it and scipy.stats (about a CPU second); several runs (``hue``) are
    drawn by seaborn itself, for its palette and legend.
    """
    import matplotlib.pyplot as plt

    if x not in ("step", "epoch"):
        raise ValueError(f"plot_loss: x must be 'step' or 'epoch', got {x!r}")
    frame = df if isinstance(df, pd.DataFrame) else snapshots_frame(df)
    if not {"step", "mean_loss"} <= set(frame.columns) or (x == "epoch" and "epoch" not in frame):
        frame = snapshots_frame(frame)
    if hue is not None and hue not in frame.columns:
        raise ValueError(f"plot_loss: hue column {hue!r} not in {list(frame.columns)}")
    if ax is None:
        _, ax = plt.subplots(figsize=(7, 4))

    finite = frame[np.isfinite(frame["mean_loss"])]
    keys = [hue] if hue else []
    if x == "epoch":
        finite = finite.groupby([*keys, "epoch"], as_index=False)["mean_loss"].mean()
    if not finite.empty and hue is not None:
        import seaborn as sns

        sns.lineplot(
            data=finite,
            x=x,
            y="mean_loss",
            hue=hue,
            ax=ax,
            errorbar=None,
            marker="o" if x == "epoch" else None,
            palette="tab10",
        )
    elif not finite.empty:
        line = finite.sort_values([x, "mean_loss"])
        if line[x].duplicated().any():
            line = line.groupby(x, sort=True, as_index=False)["mean_loss"].mean()
        ax.plot(
            line[x].to_numpy(float),
            line["mean_loss"].to_numpy(float),
            linestyle="-",
            marker="o" if x == "epoch" else None,
            markeredgewidth=0.75,
            markeredgecolor="w",
            label=tr(TRAINING_LABEL, TRAINING_LABEL_RU),
        )
    bad = frame[~np.isfinite(frame["mean_loss"])]
    if not bad.empty:
        first = bad.iloc[0]
        last_good = finite["mean_loss"].iloc[-1] if not finite.empty else 1.0
        ax.plot(
            [first[x]],
            [last_good],
            "x",
            color="red",
            markersize=12,
            mew=3,
            label=tr(
                "loss became {v} at {x} {n}",
                "потери стали {v}: {x} {n}",
                v=first["mean_loss"],
                x=_axis_name(x),
                n=int(first[x]),
            ),
        )
    if validation is not None:
        val = _validation_frame(validation)
        if x == "step":
            ends = frame.groupby("epoch")["step"].max()
            val = val[val["epoch"].isin(ends.index)]
            val = val.assign(step=val["epoch"].map(ends))
        ax.plot(
            val[x],
            val["validation_loss"],
            "s--",
            color="tab:orange",
            label=tr(VALIDATION_LABEL, VALIDATION_LABEL_RU),
        )
    if logy:
        ax.set_yscale("log")
    ax.set_xlabel(_axis_name(x))
    ax.set_ylabel(tr("mean loss", "средние потери"))
    if title:
        ax.set_title(_title(title))
    if ax.get_legend_handles_labels()[0]:
        ax.legend(loc="best", fontsize="small")
    return ax


def _in_notebook() -> bool:
    try:
        from IPython import get_ipython
    except ImportError:  # pragma: no cover - IPython ships with the course
        return False
    shell = get_ipython()
    return shell is not None and hasattr(shell, "kernel")


class LivePlot:
    """A loss plot that redraws in place while a job runs (like d2l's ``Animator``).

    In Jupyter the figure is shown once through a display handle and every :meth:`update`
    replaces that output, so the notebook keeps one plot instead of one per poll. Outside a
    notebook nothing is displayed; the figure is still drawn and kept in :attr:`figure`.
    """

    def __init__(
        self,
        *,
        x: str = "step",
        title: str = "Training loss",
        figsize: tuple[float, float] = (7, 4),
        display: bool | None = None,
    ) -> None:
        import matplotlib.pyplot as plt

        self.x = x
        self.title = title
        self.figure, self.ax = plt.subplots(figsize=figsize)
        plt.close(self.figure)  # keep the inline backend from showing a second copy
        self.frame = pd.DataFrame(columns=COLUMNS)
        self.updates = 0
        self._display = _in_notebook() if display is None else display
        self._handle = None

    def update(self, snapshots: Any, *, status: str | None = None, validation: Any = None) -> None:
        """Redraw with the latest snapshots; ``status`` is appended to the title."""
        self.frame = snapshots_frame(snapshots)
        self.ax.clear()
        title = f"{self.title} — {status}" if status else self.title
        if self.frame.empty:
            self.ax.set_title(_title(title))
            self.ax.set_xlabel(_axis_name(self.x))
            self.ax.set_ylabel(tr("mean loss", "средние потери"))
            waiting = tr("waiting for the first snapshot…", "ждём первый снимок…")
            self.ax.text(0.5, 0.5, waiting, ha="center", va="center")
        else:
            plot_loss(self.frame, self.ax, x=self.x, title=title, validation=validation)
        self.updates += 1
        self._show()

    def _show(self) -> None:
        if not self._display:
            return
        from IPython.display import display

        if self._handle is None:
            self._handle = display(self.figure, display_id=True)
        else:
            self._handle.update(self.figure)


def _model_name(target: Any) -> str:
    """Tuned-model name from a name, a tuned model, or a create_tuned_model operation."""
    if isinstance(target, str):
        return target
    metadata = getattr(target, "metadata", None)
    name = getattr(metadata, "tuned_model", None)
    if name:
        return name
    name = getattr(target, "name", None)
    if isinstance(name, str) and name.startswith("tunedModels/"):
        return name
    raise TypeError(
        tr(
            "watch() needs a tuned model name like 'tunedModels/my-model', a tuned model, or the "
            "operation returned by genai.create_tuned_model; got {t}",
            "watch() нужно имя дообученной модели вида 'tunedModels/my-model', сама дообученная "
            "модель или операция, которую вернула genai.create_tuned_model; получено {t}",
            t=type(target).__name__,
        )
    )


def _state_name(state: Any) -> str:
    return getattr(state, "name", None) or str(state).rsplit(".", 1)[-1]


def _status(state: str, frame: pd.DataFrame, done: bool) -> str:
    """Title suffix: the state, and how far the job got."""
    if frame.empty:
        return state
    if not done:
        return tr("{state}, step {n}", "{state}, шаг {n}", state=state, n=int(frame["step"].max()))
    last = float(frame["mean_loss"].iloc[-1])
    shown = num(last, ".3g") if math.isfinite(last) else str(last)
    return tr(
        "{state} after {n} steps, last loss {shown}",
        "{state}: {steps}, последние потери {shown}",
        state=state,
        n=len(frame),
        steps=count(len(frame), "step"),
        shown=shown,
    )


def watch(
    target: Any,
    *,
    every: float = 0.5,
    timeout: float = 600.0,
    x: str = "step",
    get_tuned_model: Callable[[str], Any] | None = None,
    plot: LivePlot | None = None,
) -> Any:
    """Poll a tuning job until it is ACTIVE or FAILED, redrawing its loss curve each time.

    ``target`` is the tuned model name (``"tunedModels/..."``), a tuned model, or the
    operation from ``genai.create_tuned_model``. Returns the final tuned model. The poll
    function defaults to ``google.generativeai.get_tuned_model``; pass another (for
    example a fake in tests) through ``get_tuned_model``.
    """
    name = _model_name(target)
    if get_tuned_model is None:
        import google.generativeai as genai

        get_tuned_model = genai.get_tuned_model
    live = plot or LivePlot(x=x, title=name)
    deadline = time.monotonic() + timeout
    seen = -1
    while True:
        model = get_tuned_model(name)
        state = _state_name(getattr(model, "state", "STATE_UNSPECIFIED"))
        task = getattr(model, "tuning_task", None)
        frame = snapshots_frame(getattr(task, "snapshots", None) or [])
        done = state in ("ACTIVE", "FAILED")
        if len(frame) != seen or done:
            status = _status(state, frame, done)
            live.update(frame, status=status)
            seen = len(frame)
        if done:
            print(f"{name}: {state}")
            return model
        if time.monotonic() > deadline:
            raise TimeoutError(
                tr(
                    "{name} is still {state} after {timeout:.0f} s; call watch() again to keep "
                    "waiting, or check the job with genai.get_tuned_model",
                    "{name} всё ещё в состоянии {state} через {timeout:.0f} с; вызовите watch() "
                    "ещё раз, чтобы ждать дальше, или проверьте задание: genai.get_tuned_model",
                    name=name,
                    state=state,
                    timeout=timeout,
                )
            )
        time.sleep(every)
