"""The interactive hyperparameter panel of lesson 2: move a slider, see both loss curves move.

Why: the lesson's claims ("a multiplier of 4 makes the loss blow up", "small batches make a
noisy curve", "tiny datasets want more epochs") stick far better when the student *causes*
them. Like TensorFlow Playground, the panel puts the training loss and the validation loss on
one set of axes and redraws them at once, from :mod:`tunelab.simulator` (a few milliseconds
per run), so a student can try twenty settings in a minute.

The module has three layers, each testable without a browser:

* :func:`panel_data` -- the numbers to draw for given slider values (a :class:`PanelData`);
* :func:`draw_panel` / :func:`compare_runs` -- matplotlib figures from those numbers;
* :class:`HyperparameterPanel` -- the ipywidgets wiring: sliders -> ``panel_data`` -> PNG.
"""

from __future__ import annotations

import base64
import html
import io
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import pandas as pd

from tunelab.i18n import count, get_language, num, tr
from tunelab.simulator import DatasetProfile, Hyperparameters, SimulatedRun, simulate

__all__ = [
    "BATCH_SIZES",
    "DATASET_SIZES",
    "MULTIPLIERS",
    "HyperparameterPanel",
    "PanelData",
    "PanelSettings",
    "compare_runs",
    "draw_panel",
    "grid_runs",
    "panel_data",
    "show_panel",
]

#: Batch sizes offered by the slider (the service accepts any positive integer).
BATCH_SIZES = (1, 2, 4, 8, 16, 32, 64)
#: Multipliers offered: gentle (0.1), standard (1.0), aggressive (2.0) and the ones that break.
MULTIPLIERS = (0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0, 8.0)
#: Dataset sizes offered by the slider: a log scale from a tiny set to a large one.
DATASET_SIZES = (50, 100, 200, 500, 1000, 2000, 5000, 10000, 20000)
#: Most points drawn per curve; longer runs are thinned by taking every k-th step, which keeps
#: the step-to-step noise visible (averaging would hide exactly what batch size changes).
MAX_POINTS = 1500
#: Fixed loss axis, so that two settings can be compared by eye across redraws.
Y_LIMIT = 3.0
VALIDATION_NOTE = "validation loss (emulator only)"
VALIDATION_NOTE_RU = "потери на валидации (только в эмуляторе)"
#: One colour per variant in :func:`compare_runs` (matplotlib's tab10, in order).
COLOURS = (
    "tab:blue",
    "tab:orange",
    "tab:green",
    "tab:red",
    "tab:purple",
    "tab:brown",
    "tab:pink",
    "tab:gray",
    "tab:olive",
    "tab:cyan",
)


@dataclass(frozen=True)
class PanelSettings:
    """One position of the panel's sliders (names as in the tuning API)."""

    epoch_count: int = 5
    batch_size: int = 4
    learning_rate_multiplier: float = 1.0
    n_examples: int = 500
    noise: float = 0.0
    seed: int = 0

    def __post_init__(self) -> None:
        # Reuse the simulator's validation so the panel and the emulator reject the same things.
        self.hyperparameters()
        self.profile()

    def hyperparameters(self) -> Hyperparameters:
        return Hyperparameters(
            epoch_count=self.epoch_count,
            batch_size=self.batch_size,
            learning_rate_multiplier=self.learning_rate_multiplier,
        )

    def profile(self) -> DatasetProfile:
        return DatasetProfile(n_examples=self.n_examples, noise=self.noise)

    def label(self) -> str:
        if get_language() == "ru":  # «5 эпох, батч 4, ×1, 500 примеров»
            text = (
                f"{count(self.epoch_count, 'epoch')}, батч {self.batch_size}, "
                f"×{num(self.learning_rate_multiplier, 'g')}, {count(self.n_examples, 'example')}"
            )
        else:
            text = (
                f"epochs {self.epoch_count}, batch {self.batch_size}, "
                f"×{self.learning_rate_multiplier:g}, {self.n_examples} ex."
            )
        if self.noise:
            text += tr(", noise {x:.0%}", ", шум {x:.0%}", x=self.noise)
        return text


@dataclass(frozen=True, eq=False)
class PanelData:
    """Everything the panel draws for one setting.

    ``train`` has one row per drawn step: ``step``, ``epoch``, ``mean_loss`` and ``progress``
    (epochs completed at that step, e.g. 2.5 halfway through epoch 3), so runs with different
    batch sizes or dataset sizes line up on the same x axis. ``validation`` has one row per
    epoch (``progress`` = the epoch number).
    """

    settings: PanelSettings
    run: SimulatedRun
    train: pd.DataFrame
    validation: pd.DataFrame

    @property
    def total_steps(self) -> int:
        return self.run.total_steps

    @property
    def best_epoch(self) -> int | None:
        """Epoch with the lowest validation loss (None if every epoch diverged)."""
        val = self.validation["validation_loss"]
        if not np.isfinite(val).any():
            return None
        return int(self.validation.loc[val.idxmin(), "epoch"])

    @property
    def summary(self) -> str:
        """A one-line verdict for the student: what happened and what it means."""
        run = self.run
        if run.failure:
            return tr("FAILED — {f}", "FAILED (ошибка) — {f}", f=run.failure)
        per_epoch = run.per_epoch()
        last = per_epoch.iloc[-1]
        best = self.best_epoch
        parts = [
            count(run.total_steps, "step"),
            tr(
                "final training loss {x:.3f}",
                "итоговые потери на обучении {x:.3f}",
                x=last["train_loss"],
            ),
            tr("validation loss {x:.3f}", "потери на валидации {x:.3f}", x=last["validation_loss"]),
            tr("best epoch {b}", "лучшая эпоха {b}", b=best)
            if best is not None
            else tr("no finite validation loss", "потери на валидации ни разу не были конечными"),
            tr(
                "held-out quality {q:.0%}",
                "качество на отложенных запросах {q:.0%}",
                q=run.final_quality,
            ),
        ]
        return " · ".join(parts)


def panel_data(settings: PanelSettings | None = None, /, **values: Any) -> PanelData:
    """Simulate one setting and return what the panel draws (see :class:`PanelData`)."""
    settings = replace(settings or PanelSettings(), **values)
    with np.errstate(over="ignore"):  # a diverging run overflows on purpose: that is the lesson
        run = simulate(settings.profile(), settings.hyperparameters(), seed=settings.seed)
    n, batch = settings.n_examples, settings.batch_size
    stride = max(1, math.ceil(run.total_steps / MAX_POINTS))
    index = np.arange(0, run.total_steps, stride)
    if index[-1] != run.total_steps - 1:
        index = np.append(index, run.total_steps - 1)
    step = run.step[index]
    train = pd.DataFrame(
        {
            "step": step,
            "epoch": run.epoch[index],
            "mean_loss": run.mean_loss[index],
            "progress": np.minimum(step * batch / n, settings.epoch_count),
        }
    )
    epochs = np.arange(1, settings.epoch_count + 1)
    validation = pd.DataFrame(
        {"epoch": epochs, "validation_loss": run.validation_loss, "progress": epochs}
    )
    return PanelData(settings=settings, run=run, train=train, validation=validation)


def _new_axes(figsize: tuple[float, float]) -> tuple[Any, Any]:
    # A bare Figure (not pyplot): no global state, nothing shown twice by the inline backend.
    from matplotlib.figure import Figure

    fig = Figure(figsize=figsize, layout="constrained")
    return fig, fig.add_subplot()


def _style_axes(ax: Any, epoch_count: int, title: str) -> None:
    ax.set_xlim(0, max(1, epoch_count) + 0.2)
    ax.set_ylim(0, Y_LIMIT)
    ax.set_xlabel(tr("epochs of training", "эпохи обучения"))
    ax.set_ylabel(tr("loss", "функция потерь"))
    ax.set_title(title, fontsize="medium")
    ax.grid(True, alpha=0.3)


def _clip(values: np.ndarray) -> np.ndarray:
    """Values above the axis are drawn at its top edge, so a blow-up stays visible."""
    out = np.asarray(values, dtype=float).copy()
    out[np.isfinite(out)] = np.minimum(out[np.isfinite(out)], Y_LIMIT * 0.995)
    return out


def draw_panel(data: PanelData, ax: Any = None, *, title: str | None = None) -> Any:
    """Training loss (per step) and validation loss (per epoch) on one set of axes."""
    if ax is None:
        _, ax = _new_axes((7.5, 4.2))
    ax.clear()
    s = data.settings
    train, val = data.train, data.validation
    ax.plot(
        train["progress"],
        _clip(train["mean_loss"]),
        color="tab:blue",
        lw=1,
        label=tr("training loss", "потери на обучении"),
    )
    ax.plot(
        val["progress"],
        _clip(val["validation_loss"]),
        "s--",
        color="tab:orange",
        ms=5,
        label=tr(VALIDATION_NOTE, VALIDATION_NOTE_RU),
    )
    best = data.best_epoch
    if best is not None and data.run.failure is None:
        ax.axvline(
            best,
            color="tab:green",
            ls=":",
            lw=1.5,
            label=tr("best epoch ({b})", "лучшая эпоха ({b})", b=best),
        )
    if data.run.diverged_step is not None:
        where = float(train.loc[train["step"] >= data.run.diverged_step, "progress"].iloc[0])
        ax.axvline(
            where,
            color="red",
            lw=1.5,
            label=tr("loss became NaN (job FAILED)", "потери стали NaN (задание FAILED)"),
        )
    _style_axes(ax, s.epoch_count, title or s.label())
    ax.legend(loc="upper right", fontsize="small")
    return ax


def _variant_name(variant: Mapping[str, Any]) -> str:
    """How a plot labels a variant: the slider values it changes (``base`` if none)."""
    return ", ".join(f"{k}={v}" for k, v in variant.items()) or tr("base", "исходная настройка")


def compare_runs(
    variants: Sequence[Mapping[str, Any]],
    base: PanelSettings | None = None,
    *,
    title: str = "",
    ax: Any = None,
    validation: bool = True,
    smooth: bool = True,
) -> Any:
    """Several settings on one set of axes: training solid, validation dashed, one colour each.

    The training loss is smoothed (rolling mean over a quarter epoch) unless ``smooth=False``.

    Each variant is a dict of the slider values that differ from ``base``, e.g.
    ``[{"learning_rate_multiplier": 1}, {"learning_rate_multiplier": 4}]``. Returns the axes.
    """
    if ax is None:
        import matplotlib.pyplot as plt

        _, ax = plt.subplots(figsize=(8, 4.2), layout="constrained")
    if len(variants) > len(COLOURS):
        raise ValueError(
            f"compare_runs: {len(variants)} variants, but one plot tells at most "
            f"{len(COLOURS)} apart; use grid_runs for more"
        )
    base = base or PanelSettings()
    epochs = 1
    for colour, variant in zip(COLOURS, variants, strict=False):
        data = panel_data(base, **variant)
        epochs = max(epochs, data.settings.epoch_count)
        name = _variant_name(variant)
        train = data.train["mean_loss"]
        if smooth:
            # Overlaid raw step losses hide each other; a quarter-epoch rolling mean keeps the
            # trend (and still shows a blow-up). grid_runs shows the raw noise.
            window = max(1, round(len(train) / data.settings.epoch_count / 4))
            train = train.rolling(window, min_periods=1).mean()
        ax.plot(
            data.train["progress"],
            _clip(train),
            color=colour,
            lw=1.5 if smooth else 1,
            alpha=0.9,
            label=f"{name}: "
            + tr("training", "обучение")
            + (tr(" (smoothed)", " (сглажено)") if smooth else ""),
        )
        if validation:
            ax.plot(
                data.validation["progress"],
                _clip(data.validation["validation_loss"]),
                "s--",
                color=colour,
                ms=4,
                label=f"{name}: " + tr("validation*", "валидация*"),
            )
        if data.run.diverged_step is not None:
            ax.annotate(
                "NaN → FAILED",
                (float(data.train["progress"].iloc[-1]), Y_LIMIT * 0.97),
                color=colour,
                ha="right",
                va="top",
                fontsize="small",
            )
    _style_axes(ax, epochs, title or base.label())
    ax.legend(loc="upper right", fontsize="x-small", ncol=2 if len(variants) > 3 else 1)
    if validation:
        ax.text(
            0.01,
            0.01,
            tr(
                "* validation loss: emulator only — the Gemini API does not report it",
                "* потери на валидации есть только в эмуляторе: Gemini API их не сообщает",
            ),
            transform=ax.transAxes,
            fontsize="x-small",
            color="grey",
        )
    return ax


def grid_runs(
    variants: Sequence[Mapping[str, Any]],
    base: PanelSettings | None = None,
    *,
    ncols: int = 3,
    title: str = "",
) -> Any:
    """One small panel per setting, side by side, sharing the loss axis.

    Use this rather than :func:`compare_runs` when the point is the *noise* of each curve
    (batch size, dirty data): overlaid noisy curves hide each other. Returns the figure.
    """
    import matplotlib.pyplot as plt

    base = base or PanelSettings()
    ncols = max(1, min(ncols, len(variants)))
    nrows = math.ceil(len(variants) / ncols)
    fig, axes = plt.subplots(
        nrows, ncols, figsize=(4.2 * ncols, 3.2 * nrows), squeeze=False, layout="constrained"
    )
    for ax, variant in zip(axes.flat, variants, strict=False):
        draw_panel(panel_data(base, **variant), ax, title=_variant_name(variant))
        ax.get_legend().remove()
    for ax in list(axes.flat)[len(variants) :]:
        ax.set_visible(False)
    handles, labels = axes.flat[0].get_legend_handles_labels()
    fig.legend(handles[:2], labels[:2], loc="outside lower center", ncol=2, fontsize="small")
    if title:
        fig.suptitle(title)
    return fig


class HyperparameterPanel:
    """Sliders for the tuning hyperparameters and the dataset, wired to a live loss plot.

    Every slider change re-simulates the run and replaces the PNG in an ``ipywidgets.Image``
    (no flicker, no kernel-side display calls), and the summary line underneath. The time of
    each redraw is kept in :attr:`redraw_ms` so lessons and tests can check it stays snappy.
    """

    def __init__(self, settings: PanelSettings | None = None, *, dpi: int = 80) -> None:
        import ipywidgets as w

        self.settings = settings or PanelSettings()
        self.dpi = dpi
        self.redraw_ms: list[float] = []
        self._updating = False
        self.data: PanelData | None = None
        self.figure, self.ax = _new_axes((7.5, 4.2))
        s = self.settings
        common = {"continuous_update": False, "style": {"description_width": "170px"}}
        layout = w.Layout(width="440px")

        def select(name: str, options: Sequence[Any], description: str | None = None) -> Any:
            value = getattr(s, name)
            return w.SelectionSlider(
                options=_with(options, value),
                value=value,
                description=description or name,
                layout=layout,
                **common,
            )

        self.sliders: dict[str, Any] = {
            "epoch_count": w.IntSlider(
                value=s.epoch_count,
                min=1,
                max=20,
                description="epoch_count",
                layout=layout,
                **common,
            ),
            "batch_size": select("batch_size", BATCH_SIZES),
            "learning_rate_multiplier": select("learning_rate_multiplier", MULTIPLIERS),
            "n_examples": select(
                "n_examples", DATASET_SIZES, tr("dataset size (examples)", "размер набора данных")
            ),
            "noise": w.FloatSlider(
                value=s.noise,
                min=0.0,
                max=0.5,
                step=0.05,
                readout_format=".0%",
                description=tr("noisy examples", "зашумлённые примеры"),
                layout=layout,
                **common,
            ),
        }
        self.image = w.Image(format="png", layout=w.Layout(width="600px", flex="0 0 auto"))
        self.summary = w.HTML()
        for name, slider in self.sliders.items():
            slider.observe(self._on_change, names="value")
            slider.add_class(f"tunelab-{name.replace('_', '-')}")
        # Sliders keep their full width (with the value readouts); on a narrow screen the
        # plot wraps below them instead of squeezing them.
        controls = w.VBox(list(self.sliders.values()), layout=w.Layout(flex="0 0 auto"))
        row = w.HBox([controls, self.image], layout=w.Layout(flex_flow="row wrap"))
        self.widget = w.VBox([row, self.summary], layout=w.Layout(align_items="flex-start"))
        self.redraw()

    def _on_change(self, change: Mapping[str, Any]) -> None:
        if self._updating:
            return
        values = {name: slider.value for name, slider in self.sliders.items()}
        self.settings = replace(self.settings, **values)
        self.redraw()

    def set(self, **values: Any) -> None:
        """Move sliders from code (e.g. ``panel.set(learning_rate_multiplier=4)``)."""
        unknown = set(values) - set(self.sliders)
        if unknown:
            raise ValueError(
                f"unknown panel setting(s) {sorted(unknown)}; use {list(self.sliders)}"
            )
        self.settings = replace(self.settings, **values)  # validates before any slider moves
        self._updating = True  # one redraw for the whole change, not one per slider
        try:
            for name, value in values.items():
                slider = self.sliders[name]
                if hasattr(slider, "options") and value not in slider.options:
                    slider.options = _with(slider.options, value)
                slider.value = value
        finally:
            self._updating = False
        self.redraw()

    def redraw(self) -> PanelData | None:
        """Simulate, draw and render the current setting; returns what was drawn.

        A combination the service would reject (e.g. a batch larger than the dataset) keeps
        the last plot and says what is wrong underneath, instead of breaking the sliders.
        """
        start = time.perf_counter()
        try:
            data = panel_data(self.settings)
        except ValueError as err:
            self.data = None
            self.summary.value = (
                f"<b style='color:#b00020'>{tr('Not a valid job', 'Недопустимое задание')}: "
                f"{html.escape(str(err))}</b>"
            )
            self.redraw_ms.append((time.perf_counter() - start) * 1000)
            return None
        self.data = data
        draw_panel(data, self.ax)
        buffer = io.BytesIO()
        self.figure.savefig(buffer, format="png", dpi=self.dpi)
        self.image.value = buffer.getvalue()
        verdict = data.summary
        colour = "#b00020" if verdict.startswith("FAILED") else "#1b5e20"
        self.summary.value = f"<b style='color:{colour}'>{html.escape(verdict)}</b>"
        self.redraw_ms.append((time.perf_counter() - start) * 1000)
        return data

    def _repr_mimebundle_(self, **kwargs: Any) -> dict[str, Any] | None:
        """The live widget, plus a PNG of the current plot for viewers without a kernel
        (nbconvert, a static HTML copy, a saved notebook opened later)."""
        bundle = self.widget._repr_mimebundle_(**kwargs)
        if bundle is None:  # widget closed
            return None
        bundle = dict(bundle)
        bundle["image/png"] = base64.b64encode(bytes(self.image.value)).decode("ascii")
        return bundle


def _with(options: Sequence[Any], value: Any) -> tuple[Any, ...]:
    """Slider options including ``value`` (so any valid setting can be shown)."""
    return tuple(sorted({*options, value}))


def show_panel(**values: Any) -> HyperparameterPanel:
    """Build a panel at the given settings (defaults otherwise); the notebook displays it."""
    return HyperparameterPanel(PanelSettings(**values))
