"""Real training on the student's own CPU: a small scikit-learn network, one epoch at a time.

Why it exists: every other loss curve in the course comes from :mod:`tunelab.simulator`, which
was written to follow the lessons' rules, so on its own the course can only confirm itself.
Here a real optimiser (``sklearn.neural_network.MLPClassifier``, Adam) trains a real network on
the course's own data, and each run yields the same per-epoch table as the simulator
(``epoch`` -> ``train_loss``, ``validation_loss``), so :func:`tunelab.monitor.plot_loss` draws
real runs unchanged. Lesson 09 uses it to produce the five curve patterns for real, to fine-tune
a pre-trained network and to measure forgetting.

What is real and what is small: the network has one hidden layer of :data:`HIDDEN` ReLU units
on top of TF-IDF word features (:data:`VOCABULARY`); it classifies questions, it does not write
text. The knobs are the lesson's knobs: ``epochs``, ``batch_size`` and ``learning_rate`` (Adam's
``learning_rate_init``; a fine-tuning multiplier scales the pre-training rate).

The two tasks (``data/real_training/``, rebuilt by ``data/build.py``):

* **pre-training** (broad): a question about the shop -> which of the 39 SQL templates answers
  it (1,200 questions to train on, 200 to validate on);
* **fine-tuning** (narrow, related, different): a question about *new* cities, products and
  customers -> what kind of result it asks for (``count``, ``amount``, ``list``, ``top_n``,
  ``per_group``; 200 to train on, 200 to validate on).

Determinism: every run is seeded (weights, shuffling, dirty labels), so the same call gives the
same numbers on the same machine; only the wall-clock ``seconds`` differ. Nothing here answers a
lesson exercise: it trains and measures; reading the curves is the student's job.
"""

from __future__ import annotations

import contextlib
import io
import json
import re
import time
import warnings
from dataclasses import dataclass, field, replace
from functools import lru_cache
from typing import Any

import numpy as np
import pandas as pd

from tunelab.i18n import tr

__all__ = [
    "HIDDEN",
    "VOCABULARY",
    "LibraryRun",
    "RealRun",
    "Task",
    "features_of",
    "fine_tune",
    "library_fit",
    "load_tasks",
    "plot_run",
    "train",
]

#: hidden units of the network (one layer, ReLU): small enough for a few seconds per run
HIDDEN = 32
#: TF-IDF features: at most this many words, each in at least two pre-training questions (367
#: qualify): a fixed vocabulary, as a language model's tokenizer is fixed before fine-tuning
VOCABULARY = 400
#: L2 penalty (scikit-learn's ``alpha``): its default, tiny beside the losses we read
L2 = 1e-4
PRETRAIN_FILE = "real_training/pretrain.jsonl"
TARGET_FILE = "real_training/target.jsonl"
#: how many examples of each file are for validation (the last ones)
PRETRAIN_VALIDATION = 200
TARGET_VALIDATION = 200


# --------------------------------------------------------------------------------- the data
@dataclass(frozen=True, eq=False)
class Task:
    """A labelled question set with its TF-IDF features, split into training and validation."""

    name: str
    train_texts: tuple[str, ...]
    train_labels: np.ndarray
    validation_texts: tuple[str, ...]
    validation_labels: np.ndarray
    X_train: np.ndarray = field(repr=False)
    X_validation: np.ndarray = field(repr=False)
    classes: np.ndarray = field(repr=False)
    dirty_share: float = 0.0

    @property
    def n_train(self) -> int:
        return len(self.train_texts)

    def head(self, n: int) -> Task:
        """The same task with only its first ``n`` training examples (validation unchanged)."""
        if isinstance(n, bool) or not isinstance(n, int | np.integer) or not 1 <= n <= self.n_train:
            raise ValueError(
                tr(
                    "head: n must be a whole number from 1 to {max}, got {n!r}",
                    "head: n должно быть целым числом от 1 до {max}, получено {n!r}",
                    max=self.n_train,
                    n=n,
                )
            )
        n = int(n)
        return replace(
            self,
            train_texts=self.train_texts[:n],
            train_labels=self.train_labels[:n],
            X_train=self.X_train[:n],
        )

    def with_dirty_labels(self, share: float, seed: int = 0) -> Task:
        """The same task with ``share`` of the training labels replaced by a random wrong one.

        Validation labels stay correct: they measure what the network really learned.
        """
        if not isinstance(share, int | float) or not 0.0 <= float(share) <= 1.0:
            raise ValueError(
                tr(
                    "with_dirty_labels: share must be a number from 0 to 1, got {share!r}",
                    "with_dirty_labels: share должна быть числом от 0 до 1, получено {share!r}",
                    share=share,
                )
            )
        rng = np.random.default_rng([int(seed), 0xD1E7])
        labels = self.train_labels.copy()
        picked = rng.choice(self.n_train, size=round(float(share) * self.n_train), replace=False)
        for i in picked:
            others = self.classes[self.classes != labels[i]]
            labels[i] = others[rng.integers(len(others))]
        return replace(self, train_labels=labels, dirty_share=float(share))


def _read(name: str) -> list[dict]:
    from tunelab import data_path

    path = data_path(name)
    rows = []
    with path.open(encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
                rows.append({"text": str(row["text_input"]), "label": str(row["label"])})
            except (json.JSONDecodeError, KeyError, TypeError) as err:
                raise ValueError(
                    f"{path}, line {number}: expected JSON with text_input and label ({err})"
                ) from None
    return rows


@lru_cache(maxsize=1)
def _vectorizer():
    """TF-IDF over the words of at least two pre-training questions (at most VOCABULARY)."""
    from sklearn.feature_extraction.text import TfidfVectorizer

    texts = [r["text"] for r in _read(PRETRAIN_FILE)[:-PRETRAIN_VALIDATION]]
    return TfidfVectorizer(max_features=VOCABULARY, min_df=2, sublinear_tf=True).fit(texts)


def features_of(text: str) -> pd.Series:
    """What the network sees of a question: its TF-IDF weight per known word, largest first
    (words outside the vocabulary are invisible to it)."""
    vec = _vectorizer()
    row = vec.transform([text]).toarray()[0]
    words = vec.get_feature_names_out()
    nonzero = np.flatnonzero(row)
    series = pd.Series(row[nonzero], index=words[nonzero], name="tf-idf")
    return series.sort_values(ascending=False, kind="stable")


@lru_cache(maxsize=1)
def load_tasks() -> tuple[Task, Task]:
    """(pre-training task, fine-tuning task), both seen through one TF-IDF vocabulary fitted
    on the pre-training questions."""
    vec = _vectorizer()
    tasks = []
    for name, file, n_val in (
        ("pretraining", PRETRAIN_FILE, PRETRAIN_VALIDATION),
        ("fine-tuning", TARGET_FILE, TARGET_VALIDATION),
    ):
        rows = _read(file)
        train_rows, val_rows = rows[:-n_val], rows[-n_val:]
        labels = np.array([r["label"] for r in rows])
        tasks.append(
            Task(
                name=name,
                train_texts=tuple(r["text"] for r in train_rows),
                train_labels=labels[:-n_val],
                validation_texts=tuple(r["text"] for r in val_rows),
                validation_labels=labels[-n_val:],
                X_train=vec.transform([r["text"] for r in train_rows]).toarray(),
                X_validation=vec.transform([r["text"] for r in val_rows]).toarray(),
                classes=np.unique(labels),
            )
        )
    pretrain, target = tasks
    return pretrain, target


# ------------------------------------------------------------------------------- a training run
@dataclass(eq=False)
class RealRun:
    """One real training run: the network and what each epoch measured."""

    task: Task
    epochs: int
    batch_size: int
    learning_rate: float
    seed: int
    network: Any = field(repr=False)
    history: pd.DataFrame = field(repr=False)
    base: RealRun | None = field(default=None, repr=False)

    @property
    def seconds(self) -> float:
        """Wall time of the training (this machine, this moment: not deterministic)."""
        return float(self.history["seconds"].iloc[-1]) if len(self.history) else 0.0

    @property
    def examples_seen(self) -> int:
        """Training examples processed: examples x epochs (the size of the job)."""
        return self.task.n_train * self.epochs

    @property
    def steps_per_epoch(self) -> int:
        return -(-self.task.n_train // min(self.batch_size, self.task.n_train))

    def per_epoch(self) -> pd.DataFrame:
        """The course's per-epoch table: index ``epoch``; ``train_loss``, ``validation_loss``
        (and ``validation_accuracy``), as :meth:`tunelab.simulator.SimulatedRun.per_epoch`."""
        return self.history.set_index("epoch")[
            ["train_loss", "validation_loss", "validation_accuracy"]
        ]

    def snapshots(self) -> pd.DataFrame:
        """One row per epoch in the API's snapshot shape (``step``, ``epoch``, ``mean_loss``):
        the mean of the epoch's batch losses, at the epoch's last step."""
        return pd.DataFrame(
            {
                "step": self.history["epoch"] * self.steps_per_epoch,
                "epoch": self.history["epoch"],
                "mean_loss": self.history["train_loss"],
            }
        )

    def accuracy(self, task: Task | None = None) -> float:
        """Share of ``task``'s validation questions this run's network labels right."""
        task = task or self.task
        if _same_task(task, self.task):
            predicted = self.network.predict(task.X_validation)
            return float(np.mean(predicted == task.validation_labels))
        return _accuracy_with_head(self, task)


def _network(batch_size: int, learning_rate: float, seed: int):
    from sklearn.neural_network import MLPClassifier

    return MLPClassifier(
        hidden_layer_sizes=(HIDDEN,),
        solver="adam",
        batch_size=batch_size,
        learning_rate_init=learning_rate,
        alpha=L2,
        max_iter=1,
        shuffle=True,
        # one RandomState for the whole run: weights first, then a new shuffle every epoch
        # (exactly the sequence of a single fit(max_iter=epochs), see library_fit)
        random_state=np.random.RandomState(seed),
    )


def _check(epochs: object, batch_size: object, learning_rate: object) -> None:
    problems = []
    if (
        isinstance(epochs, bool)
        or not isinstance(epochs, int | np.integer)
        or not 1 <= epochs <= 200
    ):
        problems.append(
            tr("epochs must be a whole number from 1 to 200", "epochs: целое от 1 до 200")
        )
    if (
        isinstance(batch_size, bool)
        or not isinstance(batch_size, int | np.integer)
        or not 1 <= batch_size <= 2000
    ):
        problems.append(
            tr("batch_size must be a whole number from 1 to 2000", "batch_size: целое от 1 до 2000")
        )
    if (
        isinstance(learning_rate, bool)
        or not isinstance(learning_rate, int | float)
        or not 0 < float(learning_rate) <= 100
    ):
        problems.append(
            tr(
                "learning_rate must be a number above 0 and at most 100",
                "learning_rate: число больше 0 и не больше 100",
            )
        )
    if problems:
        got = f"epochs={epochs!r}, batch_size={batch_size!r}, learning_rate={learning_rate!r}"
        raise ValueError("; ".join(problems) + f" ({got})")


def _one_thread():
    """BLAS on one thread: these matrices are small, and on a shared 2-core machine extra
    threads only fight each other (a run took 10x longer with them)."""
    from threadpoolctl import threadpool_limits

    return threadpool_limits(limits=1)


def _fit_epochs(net, task: Task, epochs: int, classes: np.ndarray) -> pd.DataFrame:
    """``epochs`` calls of partial_fit (one pass over the data each), measuring after each."""
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.metrics import log_loss

    rows, started = [], time.perf_counter()
    # One thread limit for the whole run: setting it inspects every loaded library (about
    # 4 ms, a tenth of a small epoch's arithmetic), so not once per epoch.
    with _one_thread():
        for epoch in range(1, epochs + 1):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ConvergenceWarning)
                net.partial_fit(task.X_train, task.train_labels, classes=classes)
            proba = net.predict_proba(task.X_validation)
            predicted = net.classes_[np.argmax(proba, axis=1)]
            rows.append(
                {
                    "epoch": epoch,
                    # scikit-learn's own figure: the mean of this epoch's batch losses (+ L2)
                    "train_loss": float(net.loss_),
                    "validation_loss": float(
                        log_loss(task.validation_labels, proba, labels=net.classes_)
                    ),
                    "validation_accuracy": float(np.mean(predicted == task.validation_labels)),
                    "seconds": time.perf_counter() - started,
                }
            )
    return pd.DataFrame(rows)


def train(
    task: Task,
    *,
    epochs: int,
    batch_size: int,
    learning_rate: float,
    seed: int = 0,
) -> RealRun:
    """Train a fresh network on ``task`` for ``epochs`` epochs; measure after every epoch."""
    _check(epochs, batch_size, learning_rate)
    net = _network(int(batch_size), float(learning_rate), seed)
    history = _fit_epochs(net, task, int(epochs), task.classes)
    return RealRun(task, int(epochs), int(batch_size), float(learning_rate), seed, net, history)


def fine_tune(
    pretrained: RealRun,
    task: Task,
    *,
    epochs: int,
    batch_size: int,
    multiplier: float,
    seed: int = 0,
) -> RealRun:
    """Fine-tune ``pretrained`` on ``task`` at ``multiplier`` x its learning rate.

    The hidden layer (what pre-training learned) is copied; the output layer is new, because
    the new task has other labels (as a new head on a pre-trained model). Every weight then
    trains: a large rate can overwrite what pre-training learned, which
    :meth:`RealRun.accuracy` on the pre-training task measures (with the old output layer).
    """
    if not isinstance(multiplier, int | float) or isinstance(multiplier, bool) or multiplier <= 0:
        raise ValueError(f"fine_tune: multiplier must be a number above 0, got {multiplier!r}")
    rate = pretrained.learning_rate * float(multiplier)
    _check(epochs, batch_size, rate)
    net = _network(int(batch_size), rate, seed)
    # One partial_fit on one example only creates the network's structure and bookkeeping for
    # the new labels; every weight it touched is then overwritten and Adam starts afresh.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        net.partial_fit(task.X_train[:1], task.train_labels[:1], classes=task.classes)
    body_w, body_b = pretrained.network.coefs_[0], pretrained.network.intercepts_[0]
    net.coefs_[0][...] = body_w
    net.intercepts_[0][...] = body_b
    rng = np.random.default_rng([int(seed), 0x4EAD])
    bound = np.sqrt(6.0 / (HIDDEN + len(task.classes)))  # scikit-learn's Glorot bound for ReLU
    net.coefs_[1][...] = rng.uniform(-bound, bound, net.coefs_[1].shape)
    net.intercepts_[1][...] = rng.uniform(-bound, bound, net.intercepts_[1].shape)
    del net._optimizer  # Adam's moments belong to the one-example step: start them afresh
    net.n_iter_, net.t_, net.loss_curve_ = 0, 0, []
    net.best_loss_, net._no_improvement_count = np.inf, 0
    history = _fit_epochs(net, task, int(epochs), task.classes)
    return RealRun(task, int(epochs), int(batch_size), rate, seed, net, history, base=pretrained)


def _same_task(a: Task, b: Task) -> bool:
    """The same task (labels and validation questions), whatever subset trained on it."""
    return a is b or (
        a.name == b.name
        and a.validation_texts == b.validation_texts
        and np.array_equal(a.classes, b.classes)
    )


def _accuracy_with_head(run: RealRun, task: Task) -> float:
    """Accuracy on ``task`` of ``run``'s hidden layer read by the output layer that was
    trained on ``task`` (the pre-trained network's): how much of that skill survived."""
    owner = run
    while owner is not None and not _same_task(owner.task, task):
        owner = owner.base
    if owner is None:
        raise ValueError(
            tr(
                "accuracy: this run was not trained on the {name} task, nor fine-tuned from a "
                "network that was",
                "accuracy: этот запуск не обучался на задаче «{name}» и не дообучался из сети, "
                "которая на ней обучалась",
                name=task.name,
            )
        )
    hidden = np.maximum(task.X_validation @ run.network.coefs_[0] + run.network.intercepts_[0], 0)
    scores = hidden @ owner.network.coefs_[1] + owner.network.intercepts_[1]
    predicted = owner.network.classes_[np.argmax(scores, axis=1)]
    return float(np.mean(predicted == task.validation_labels))


# ------------------------------------------------------------------- the library's own stopping
@dataclass
class LibraryRun:
    """``MLPClassifier.fit`` with scikit-learn's own stopping rule, and what it said."""

    epochs_run: int
    max_epochs: int
    train_loss: list[float]
    message: str  # why it stopped, in the notebook's language ("" when it ran every epoch)
    library_message: str = ""  # the same, in scikit-learn's own (English) words
    validation_score: list[float] | None = None  # accuracy per epoch, with early_stopping


def library_fit(
    task: Task,
    *,
    max_epochs: int,
    batch_size: int,
    learning_rate: float,
    tol: float = 0.01,
    n_iter_no_change: int = 1,
    early_stopping: bool = False,
    validation_fraction: float = 0.1,
    seed: int = 0,
) -> LibraryRun:
    """One ``fit`` call that stops by itself (the plateau rule in scikit-learn's words).

    ``early_stopping=False``: stop once the *training* loss has not improved on its best by
    more than ``tol`` for more than ``n_iter_no_change`` epochs in a row. ``early_stopping=
    True``: hold out ``validation_fraction`` of the data and watch its *accuracy* instead.
    """
    from sklearn.exceptions import ConvergenceWarning

    _check(max_epochs, batch_size, learning_rate)
    net = _network(int(batch_size), float(learning_rate), seed)
    net.set_params(
        max_iter=int(max_epochs),
        tol=float(tol),
        n_iter_no_change=int(n_iter_no_change),
        early_stopping=bool(early_stopping),
        validation_fraction=float(validation_fraction),
        verbose=True,  # the library prints why it stopped: we keep its words
    )
    out = io.StringIO()
    with contextlib.redirect_stdout(out), warnings.catch_warnings(), _one_thread():
        warnings.simplefilter("ignore", ConvergenceWarning)
        net.fit(task.X_train, task.train_labels)
    said = [line.strip() for line in out.getvalue().splitlines() if "did not improve" in line]
    scores = getattr(net, "validation_scores_", None)
    return LibraryRun(
        epochs_run=int(net.n_iter_),
        max_epochs=int(max_epochs),
        train_loss=[float(x) for x in net.loss_curve_],
        message=_in_language(said[0]) if said else "",
        library_message=said[0] if said else "",
        validation_score=None if scores is None else [float(x) for x in scores],
    )


_STOPPED = re.compile(
    r"(Training loss|Validation score) did not improve more than tol=([\d.]+) "
    r"for (\d+) consecutive epochs"
)


def _epochs_ru(n: int) -> str:
    """«1 эпоху», «2 эпохи», «5 эпох» (accusative, as in «подряд N эпох»)."""
    if n % 10 == 1 and n % 100 != 11:
        return f"{n} эпоху"
    if 2 <= n % 10 <= 4 and not 12 <= n % 100 <= 14:
        return f"{n} эпохи"
    return f"{n} эпох"


def _in_language(message: str) -> str:
    """scikit-learn's stopping message, translated in the Russian edition."""
    found = _STOPPED.search(message)
    if found is None:
        return message
    what, tol, n = found.group(1), found.group(2), int(found.group(3))
    what_ru = "Потери на обучении" if what == "Training loss" else "Оценка на валидации"
    verb = "не уменьшились" if what == "Training loss" else "не выросла"
    return tr(
        message,
        "{what} {verb} больше чем на tol={tol} за {n} подряд. Остановка.",
        what=what_ru,
        verb=verb,
        tol=tol.rstrip("0").replace(".", ","),
        n=_epochs_ru(n),
    )


# ------------------------------------------------------------------------------------- plots
def plot_run(run: RealRun, ax: Any = None, *, title: str | None = None) -> Any:
    """Draw a real run with the course's :func:`tunelab.monitor.plot_loss` (per epoch, with
    its validation curve), labelled as measured rather than as the emulator's."""
    from tunelab import monitor

    ax = monitor.plot_loss(run.snapshots(), ax, x="epoch", title=title, validation=run.per_epoch())
    measured = tr(
        "validation loss (measured, {n} questions)",
        "потери на валидации (измерены, вопросов: {n})",
        n=len(run.task.validation_texts),
    )
    emulator_label = tr(monitor.VALIDATION_LABEL, monitor.VALIDATION_LABEL_RU)
    for line in ax.get_lines():
        if line.get_label() == emulator_label:
            line.set_label(measured)
    if ax.get_legend() is not None:
        ax.legend(loc="best", fontsize="small")
    return ax
