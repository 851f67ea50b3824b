"""A deterministic, vectorised model of LLM fine-tuning dynamics.

Why it exists: Gemini API tuning was retired, so the course's emulator needs loss curves that
behave like real ones -- healthy, underfitting, overfitting, divergent, chaotic -- as a
consequence of the data and the hyperparameters the student chose, not of a lookup table.
Everything is a closed-form function of the step number plus seeded noise, so a 10,000-step
curve costs a few milliseconds and the same inputs always give the same curve.

Notation (one run)
------------------
``n`` examples (``n_u = n * (1 - duplicates)`` of them unique), ``E`` epochs, batch ``B``,
learning-rate multiplier ``m`` (``learning_rate / 0.001``), noise share ``nu`` (malformed or
contradictory examples), ``tok = mean_tokens / 60``. Step ``s = 1..T`` with
``T = ceil(n * E / B)``; after step ``s`` the job has read ``X = s * B`` examples and is in
epoch ``min(ceil(X / n), E)``.

Clocks
------
* Per-example push ``pi = m * (4 / B)^0.25`` (:func:`per_example_push`). The loss is a batch
  mean, so a step moves the weights by ~``m`` whatever ``B`` is, and a batch of ``B`` examples
  makes one step almost as useful as ``B`` small ones (linear-scaling regime, slightly
  sub-linear). Normalised to 1 at the service default (``m = 1``, ``B = 4``).
* Task clock ``g = pi * X * tok^0.2 / X_G * clean``: how much of the *general* input->output
  pattern has been learned; ``X_G = 400`` examples per e-fold at the default push (longer
  examples carry a little more signal each). ``clean = (1 - nu)^3`` (x0.05 if the format is
  wrong): contradictory examples pull the gradient different ways, so the consistent part of
  the signal shrinks fast. ``g_raw`` is the same clock without ``clean`` (how far the weights
  have moved, which drives drift and instability).
* Memorisation ``mu = MU_MAX * tanh((passes / P)^5 / MU_MAX) * (1 - nu)`` with
  ``passes = pi * X / n_u`` (how often each unique example has been pushed on; duplicates
  count as extra passes) and ``P ~ 13 * (n_u / 500)^0.1`` passes. The steep power:
  early passes are spent on the shared pattern; once it is learned the remaining gradient goes
  to each example's idiosyncrasies, so memorisation takes over abruptly -- the lesson's
  "sudden drop to ~0". ``tanh`` saturates it (train loss bottoms out near ``floor * e^-8``).
  Tiny datasets are memorised a little sooner (fewer examples to store).

Losses
------
* Generalisable loss ``Lg(g) = F + (L0 - F) * exp(-g)``: exponential approach from the base
  model's loss ``L0 = 2.0 * tok^0.1`` (2.6 for a wrong format) to a floor. The clean floor is
  ``0.28 * sqrt(tok)`` for answers longer than 60 tokens (0.28 below, at most 1.12): long
  free-form answers keep more per-token uncertainty than short, structured ones such as SQL.
  Contradictions are irreducible, so the train floor is
  ``F_t = L0 - (L0 - floor) * (1 - nu)^2``; the validation floor adds
  ``0.35 * sqrt(100 / n_u)``: fewer examples give a worse estimate of the pattern.
* Train loss ``Lg_t(g) * exp(-mu)``: memorised examples are predicted perfectly, so the train
  loss falls to ~0 once ``mu`` grows.
* Validation loss ``Lg_v(g) + 0.2 * mu + 0.3 * (1 - exp(-g_raw / 300))``: memorised answers are
  confidently wrong on new prompts (the ``mu`` term gives small datasets their U shape), and
  every update drifts the model away from the base model's broad skills (the saturating drift
  term: it is why a huge dataset still has a validation minimum after 1-3 epochs). The
  minimum therefore sits at 5-10 epochs for 100-500 examples (4-6 for the graded 500), at 1-3
  epochs above 10,000, and it comes after fewer *steps* as the dataset shrinks.
* Held-out quality ``0.97 * sigmoid((0.85 - V) / 0.15)``: the share of new prompts answered
  correctly falls smoothly as validation loss rises (~0.9 at 0.45, below 0.3 above 1.0);
  0 once the run diverged.

Instability (divergence)
------------------------
``rho = m / (3 * sqrt(B / 4))`` (:func:`critical_multiplier`): bigger batches average away
gradient noise and tolerate bigger steps; small batches diverge first. For ``rho > 1`` the loss
first falls (the start of training is flat enough), then the landscape sharpens and
``L0 * expm1(0.057 * rho^2 * (rho - 1) * max(0, g_raw - 2.5)^1.5)`` is *added* to both losses
(blown-up weights destroy what was learned and what was memorised): fall, then an
accelerating rise, faster the further ``rho`` is above 1. When the trend passes 1000 the real
trainer produces NaN; from that step on the loss is NaN, ``diverged_step`` is set and
``failure`` explains what to change. ``rho`` between 0.5 and 1 only makes steps jumpier.

Noise
-----
``log(loss_step) = log(trend) + sigma_f * eps - sigma_f^2 / 2 + sigma_s * w(s)``.
``eps`` is white: a step's mean_loss is a mean over ``B`` examples, so ``sigma_f`` is a
per-example spread (0.6, more with noise, a bad format or instability) over ``sqrt(B)``,
capped at 1.0.
``w`` is slow wander (random knots two per epoch, linearly interpolated), with
``sigma_s = 0.5 * nu^1.5`` (+0.3 for a wrong format): dirty data makes the model lurch between
contradictory answers for many steps, which is what makes *per-epoch* curves chaotic; clean
data barely wanders. ``-sigma_f^2/2`` keeps epoch means unbiased. Per-epoch validation loss
gets half the wander (a fixed validation set sees the same lurches, diluted) and a small
measurement error. Each run also jitters ``L0`` (3%), the task speed (5%) and ``P`` (2%) so
no two seeds give the same curve; all randomness comes from one ``numpy`` Generator keyed by
a BLAKE2 hash of every input (never Python's per-process salted ``hash()``).
"""

from __future__ import annotations

import hashlib
import math
import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd

from tunelab.i18n import count, num, tr

__all__ = [
    "DEFAULT_LEARNING_RATE",
    "LARGE_DATASET_THRESHOLD",
    "DatasetProfile",
    "Hyperparameters",
    "SimulatedRun",
    "critical_multiplier",
    "default_hyperparameters",
    "expected_arrays",
    "expected_curves",
    "per_example_push",
    "simulate",
    "total_steps",
]

#: learning_rate that corresponds to learning_rate_multiplier 1.0 (the service's default).
DEFAULT_LEARNING_RATE = 0.001
#: From this many examples on, the service defaults switch to batch 16 and learning rate 0.0002
#: (more data gives less noisy gradients and needs gentler steps per example).
LARGE_DATASET_THRESHOLD = 2000
LARGE_DEFAULT_LEARNING_RATE = 0.0002
LARGE_DEFAULT_BATCH_SIZE = 16

# --- model constants (see module docstring for why each exists) ---------------------------
L0 = 2.0  # base model's loss on the task, nats/token
BAD_FORMAT_L0 = 2.6  # a mis-formatted target is even less predictable
FLOOR = 0.28  # train-loss plateau for clean data (before memorisation)
VAL_GAP = 0.35  # validation floor excess at 100 unique examples (scales 1/sqrt(n))
BATCH_EXP = 0.25  # per-example push ~ (4/B)^BATCH_EXP, see per_example_push
X_G = 400.0  # examples per e-fold of task learning at the default push
P_MEM = 13.2  # passes per "unit" of memorisation at the default push
MU_POWER = 5.0  # how abruptly memorisation takes over once the pattern is learned
MU_MAX = 8.0  # memorisation saturates (train loss bottoms at ~floor * e^-8)
LAMBDA = 0.2  # validation cost of memorisation
DRIFT = 0.3  # maximum validation cost of drifting from the base model
G_D = 300.0  # task-clock scale of that drift
V50, W = 0.85, 0.15  # held-out quality sigmoid: 50% at V50, width W
Q_MAX = 0.97
M_CRIT_B4 = 3.0  # critical multiplier at batch 4
K_DIV, G_ON = 0.057, 2.5  # divergence growth rate and onset on the task clock
LOSS_OVERFLOW = 1e3  # trend above this -> NaN, as in a real overflowing trainer
SIGMA_EXAMPLE = 0.6  # per-example spread of the loss (log scale)
SIGMA_F_MAX = 1.0  # cap on the per-step spread (log scale)


def total_steps(n_examples: int, epoch_count: int, batch_size: int) -> int:
    """Number of optimiser steps the service runs: ``ceil(n * epochs / batch)``."""
    for name, value in (
        ("n_examples", n_examples),
        ("epoch_count", epoch_count),
        ("batch_size", batch_size),
    ):
        if int(value) != value or value < 1:
            raise ValueError(
                tr(
                    "{name} must be a positive integer, got {value!r}",
                    "{name} должно быть целым положительным числом, а получено {value!r}",
                    name=name,
                    value=value,
                )
            )
    return -(-int(n_examples) * int(epoch_count) // int(batch_size))


@dataclass(frozen=True)
class DatasetProfile:
    """What the simulator needs to know about a training set.

    ``noise`` is the share of malformed or contradictory examples, ``duplicates`` the share of
    exact repeats, ``format_ok`` whether examples follow one consistent input/output format.
    """

    n_examples: int
    mean_tokens: float = 60.0
    noise: float = 0.0
    duplicates: float = 0.0
    format_ok: bool = True

    def __post_init__(self) -> None:
        if isinstance(self.n_examples, bool) or int(self.n_examples) != self.n_examples:
            raise ValueError(
                tr(
                    "DatasetProfile.n_examples must be an integer, got {v!r}",
                    "DatasetProfile.n_examples должно быть целым числом, а получено {v!r}",
                    v=self.n_examples,
                )
            )
        if self.n_examples < 1:
            raise ValueError(
                tr(
                    "DatasetProfile.n_examples must be >= 1, got {v}",
                    "DatasetProfile.n_examples должно быть не меньше 1, а получено {v}",
                    v=self.n_examples,
                )
            )
        if not (math.isfinite(self.mean_tokens) and self.mean_tokens > 0):
            raise ValueError(
                tr(
                    "DatasetProfile.mean_tokens must be a positive number, got {v!r}",
                    "DatasetProfile.mean_tokens должно быть положительным числом, а получено {v!r}",
                    v=self.mean_tokens,
                )
            )
        for name in ("noise", "duplicates"):
            value = getattr(self, name)
            if not (0.0 <= value <= 1.0):
                raise ValueError(
                    tr(
                        "DatasetProfile.{name} must be within 0..1, got {value!r}",
                        "DatasetProfile.{name} должно быть от 0 до 1, а получено {value!r}",
                        name=name,
                        value=value,
                    )
                )
        if self.duplicates >= 1.0:
            raise ValueError(
                tr(
                    "DatasetProfile.duplicates must be < 1 (at least one unique example)",
                    "DatasetProfile.duplicates должно быть меньше 1 (нужен хотя бы один "
                    "неповторяющийся пример)",
                )
            )

    @property
    def n_unique(self) -> float:
        """Examples that are not exact repeats (at least 1)."""
        return max(1.0, self.n_examples * (1.0 - self.duplicates))

    @classmethod
    def from_examples(cls, examples: Sequence[Mapping[str, str]]) -> DatasetProfile:
        """Profile a list of ``{"text_input": ..., "output": ...}`` examples.

        Malformed = a key missing, not a string, or blank. Contradictory = the same
        text_input with a different output than its first occurrence. Tokens are estimated
        as characters / 4 (the usual rule of thumb for English and code).
        ``format_ok`` is False when fewer than half the examples use the expected keys: the
        service would then train on the wrong fields.
        """
        examples = list(examples)
        if not examples:
            raise ValueError(
                tr(
                    "DatasetProfile.from_examples: the example list is empty",
                    "DatasetProfile.from_examples: список примеров пуст",
                )
            )
        malformed = 0
        keyed = 0
        contradictory = 0
        duplicate = 0
        first_output: dict[str, str] = {}
        seen: set[tuple[str, str]] = set()
        tokens = 0.0
        for ex in examples:
            if not isinstance(ex, Mapping):
                malformed += 1
                continue
            inp, out = ex.get("text_input"), ex.get("output")
            if "text_input" in ex and "output" in ex:
                keyed += 1
            if not (isinstance(inp, str) and isinstance(out, str) and inp.strip() and out.strip()):
                malformed += 1
                continue
            tokens += (len(inp) + len(out)) / 4.0
            pair = (inp.strip(), out.strip())
            if pair in seen:
                duplicate += 1
                continue
            seen.add(pair)
            prev = first_output.setdefault(pair[0], pair[1])
            if prev != pair[1]:
                contradictory += 1
        n = len(examples)
        valid = n - malformed
        return cls(
            n_examples=n,
            mean_tokens=max(1.0, tokens / valid) if valid else 1.0,
            noise=(malformed + contradictory) / n,
            duplicates=min(duplicate / n, (n - 1) / n),
            format_ok=keyed * 2 >= n,
        )


@dataclass(frozen=True)
class Hyperparameters:
    """Tuning hyperparameters with the SDK's names.

    Give ``learning_rate`` or ``learning_rate_multiplier`` (the API accepts one of them); with
    neither, the service default applies (see :func:`default_hyperparameters`).
    """

    epoch_count: int = 5
    batch_size: int = 4
    learning_rate: float | None = None
    learning_rate_multiplier: float | None = None

    def __post_init__(self) -> None:
        for name in ("epoch_count", "batch_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or int(value) != value or value < 1:
                raise ValueError(
                    tr(
                        "Hyperparameters.{name} must be a positive integer, got {value!r}",
                        "Hyperparameters.{name} должно быть целым положительным числом, "
                        "а получено {value!r}",
                        name=name,
                        value=value,
                    )
                )
        if self.learning_rate is not None and self.learning_rate_multiplier is not None:
            raise ValueError(
                tr(
                    "Hyperparameters: give learning_rate or learning_rate_multiplier, not both "
                    "(got {a!r} and {b!r})",
                    "Hyperparameters: задайте learning_rate или learning_rate_multiplier, но не "
                    "оба сразу (получено {a!r} и {b!r})",
                    a=self.learning_rate,
                    b=self.learning_rate_multiplier,
                )
            )
        for name in ("learning_rate", "learning_rate_multiplier"):
            value = getattr(self, name)
            if value is not None and not (math.isfinite(value) and value > 0):
                raise ValueError(
                    tr(
                        "Hyperparameters.{name} must be a positive number, got {value!r}",
                        "Hyperparameters.{name} должно быть положительным числом, "
                        "а получено {value!r}",
                        name=name,
                        value=value,
                    )
                )

    @property
    def multiplier(self) -> float:
        """Effective multiplier: ``learning_rate / 0.001`` when a learning rate is given.

        With neither set this is 1.0 (the small-dataset default); :func:`simulate` resolves
        the size-dependent default first.
        """
        if self.learning_rate is not None:
            return self.learning_rate / DEFAULT_LEARNING_RATE
        if self.learning_rate_multiplier is not None:
            return float(self.learning_rate_multiplier)
        return 1.0

    def resolved(self, n_examples: int) -> Hyperparameters:
        """These hyperparameters with an unset learning rate replaced by the service default."""
        if self.learning_rate is None and self.learning_rate_multiplier is None:
            return replace(self, learning_rate=default_learning_rate(n_examples))
        return self


def default_learning_rate(n_examples: int) -> float:
    """Service default learning rate: 0.001, or 0.0002 for large datasets."""
    if n_examples >= LARGE_DATASET_THRESHOLD:
        return LARGE_DEFAULT_LEARNING_RATE
    return DEFAULT_LEARNING_RATE


def default_hyperparameters(n_examples: int) -> Hyperparameters:
    """The service defaults: 5 epochs; batch 4 and lr 0.001, or batch 16 and lr 0.0002 from
    :data:`LARGE_DATASET_THRESHOLD` (2000) examples on."""
    large = n_examples >= LARGE_DATASET_THRESHOLD
    return Hyperparameters(
        epoch_count=5,
        batch_size=LARGE_DEFAULT_BATCH_SIZE if large else 4,
        learning_rate=default_learning_rate(n_examples),
    )


def critical_multiplier(batch_size: int) -> float:
    """Largest stable learning_rate_multiplier for a batch size (3.0 at batch 4)."""
    return M_CRIT_B4 * math.sqrt(batch_size / 4.0)


def per_example_push(multiplier: float, batch_size: int) -> float:
    """How hard one example pulls on the weights, 1.0 at the default (multiplier 1, batch 4).

    A step moves the weights by ~multiplier whatever the batch (the loss is a batch mean), and
    a batch of B examples makes a step almost as useful as B small ones (the linear-scaling
    regime, slightly sub-linear): per example that is ``multiplier * (4 / B) ** 0.25``.
    """
    return multiplier * (4.0 / batch_size) ** BATCH_EXP


def _frozen(a: np.ndarray) -> np.ndarray:
    a.setflags(write=False)
    return a


@dataclass(frozen=True, eq=False)
class SimulatedRun:
    """One simulated tuning job: per-step training loss and per-epoch evaluation."""

    profile: DatasetProfile
    hparams: Hyperparameters
    seed: int
    total_steps: int
    step: np.ndarray
    epoch: np.ndarray
    mean_loss: np.ndarray
    validation_loss: np.ndarray
    heldout_quality: np.ndarray
    diverged_step: int | None = None
    failure: str | None = None

    def snapshots(self) -> pd.DataFrame:
        """One row per step, as the API's ``tuning_task.snapshots`` report it."""
        return pd.DataFrame({"step": self.step, "epoch": self.epoch, "mean_loss": self.mean_loss})

    def per_epoch(self) -> pd.DataFrame:
        """Mean train loss (finite steps only), validation loss and held-out quality per epoch."""
        e_count = self.hparams.epoch_count
        frame = pd.DataFrame(
            {
                "train_loss": self.epoch_train_loss(),
                "validation_loss": self.validation_loss,
                "heldout_quality": self.heldout_quality,
            },
            index=pd.Index(np.arange(1, e_count + 1), name="epoch"),
        )
        return frame

    def epoch_train_loss(self) -> np.ndarray:
        """``per_epoch()["train_loss"]`` as an array: the mean of each epoch's finite steps.

        Why: curve generators call this thousands of times a grading run, and a DataFrame
        per call costs more than the arithmetic.
        """
        e_count = self.hparams.epoch_count
        loss = self.mean_loss
        finite = np.isfinite(loss)
        idx = self.epoch - 1
        sums = np.bincount(idx[finite], weights=loss[finite], minlength=e_count)
        counts = np.bincount(idx[finite], minlength=e_count)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)

    @property
    def final_quality(self) -> float:
        """Held-out quality of the model the job delivers (0 if it diverged)."""
        if self.diverged_step is not None:
            return 0.0
        return float(self.heldout_quality[-1])


def _rng(profile: DatasetProfile, hp: Hyperparameters, seed: int) -> np.random.Generator:
    """A generator keyed on every input (stable across processes, unlike ``hash()``)."""
    key = struct.pack(
        "<qqddd?qqd",
        int(seed),
        int(profile.n_examples),
        float(profile.mean_tokens),
        float(profile.noise),
        float(profile.duplicates),
        bool(profile.format_ok),
        int(hp.epoch_count),
        int(hp.batch_size),
        float(hp.multiplier),
    )
    digest = hashlib.blake2b(key, digest_size=16).digest()
    return np.random.default_rng(int.from_bytes(digest, "little"))


def _suggestion(m: float, batch_size: int) -> float:
    """A friendly round multiplier comfortably below the critical one."""
    limit = 0.6 * critical_multiplier(batch_size)
    for cand in (4.0, 2.0, 1.0, 0.5, 0.2, 0.1, 0.05):
        if cand <= limit and cand < m:
            return cand
    return 0.05


def _num(x: float) -> str:
    """A float as a person would type it: 8.0, 0.5, 0.0002 (in Russian: 8,0, 0,5, 0,0002)."""
    return num(float(round(x, 8)))


def _failure_text(hp: Hyperparameters, step: int, epoch: int) -> str:
    m = hp.multiplier
    s = _suggestion(m, hp.batch_size)
    if hp.learning_rate is not None:
        what = f"learning_rate {_num(hp.learning_rate)}"
        fix = _num(s * DEFAULT_LEARNING_RATE)
    else:
        what = f"learning_rate_multiplier {_num(m)}"
        fix = _num(s)
    return tr(
        "loss became NaN at step {step} (epoch {epoch}): {what} is too aggressive for "
        "batch_size {batch}; try {fix} or lower",
        "потери стали NaN на шаге {step} (эпоха {epoch}): {what} — слишком много для "
        "batch_size {batch}; попробуйте {fix} или меньше",
        step=step,
        epoch=epoch,
        what=what,
        batch=hp.batch_size,
        fix=fix,
    )


@dataclass(frozen=True)
class _Trends:
    """Noise-free step-level curves of one configuration (see module docstring)."""

    step: np.ndarray
    epoch: np.ndarray
    train: np.ndarray
    val: np.ndarray  # per epoch: validation is read at each epoch's last step only
    last: np.ndarray  # index of each epoch's last step
    l0: float
    rho: float


def _trends(
    profile: DatasetProfile,
    hp: Hyperparameters,
    jitter: tuple[float, float, float] = (1.0, 1.0, 1.0),
) -> _Trends:
    n, E, B, m = profile.n_examples, hp.epoch_count, hp.batch_size, hp.multiplier
    nu = profile.noise
    jit_l0, jit_g, jit_p = jitter
    T = total_steps(n, E, B)
    step = np.arange(1, T + 1, dtype=np.int64)
    seen = step.astype(np.float64) * B
    epoch = np.minimum(np.ceil(seen / n - 1e-9).astype(np.int64), E)
    last = np.searchsorted(epoch, np.arange(1, E + 1), side="right") - 1

    tok = profile.mean_tokens / 60.0
    push = per_example_push(m, B)
    clean = (1.0 - nu) ** 3 * (1.0 if profile.format_ok else 0.05)
    g_raw = push * seen / (X_G * tok**-0.2) * jit_g
    g = g_raw * clean
    n_u = profile.n_unique
    p_mem = P_MEM * (n_u / 500.0) ** 0.1 * jit_p
    passes = push * seen / n_u
    mu_raw = (passes / p_mem) ** MU_POWER
    mu = MU_MAX * np.tanh(mu_raw / MU_MAX) * (1.0 - nu) * (1.0 if profile.format_ok else 0.2)

    l0 = (L0 if profile.format_ok else BAD_FORMAT_L0) * tok**0.1 * jit_l0
    floor = FLOOR * math.sqrt(min(max(tok, 1.0), 16.0))
    consistent = (1.0 - nu) ** 2 * (1.0 if profile.format_ok else 0.15)
    f_train = l0 - (l0 - floor) * consistent
    f_val = f_train + VAL_GAP * math.sqrt(100.0 / n_u)
    decay = np.exp(-g)
    train = (f_train + (l0 - f_train) * decay) * np.exp(-mu)
    # Validation only where it is read (each epoch's last step): a third of the work saved.
    d, u, r = decay[last], mu[last], g_raw[last]
    val = f_val + (l0 - f_val) * d + LAMBDA * u + DRIFT * (1.0 - np.exp(-r / G_D))

    rho = m / critical_multiplier(B)
    if rho > 1.0:
        # Additive: blown-up weights destroy what was learned *and* what was memorised.
        with np.errstate(over="ignore"):
            blow = l0 * np.expm1(
                K_DIV * (rho - 1.0) * rho**2 * np.maximum(0.0, g_raw - G_ON) ** 1.5
            )
        train = train + blow
        val = val + blow[last]
    return _Trends(step, epoch, train, val, last, l0, rho)


def _check_inputs(profile: object, hparams: object) -> None:
    if not isinstance(profile, DatasetProfile):
        raise TypeError(f"simulate: profile must be a DatasetProfile, got {type(profile).__name__}")
    if not isinstance(hparams, Hyperparameters):
        raise TypeError(f"simulate: hparams must be Hyperparameters, got {type(hparams).__name__}")
    if hparams.batch_size > profile.n_examples:
        # Every epoch must contain at least one step; the service refuses such jobs too.
        raise ValueError(
            tr(
                "simulate: batch_size {b} is larger than the dataset ({n} examples); "
                "use batch_size <= {n}",
                "simulate: batch_size {b} больше, чем весь набор данных ({examples}); "
                "задайте batch_size не больше {n}",
                b=hparams.batch_size,
                n=profile.n_examples,
                examples=count(profile.n_examples, "example"),
            )
        )


def expected_curves(profile: DatasetProfile, hparams: Hyperparameters) -> pd.DataFrame:
    """Noise-free per-epoch train and validation loss of a configuration (no seed involved).

    Why: lessons and scenario generators need the *underlying* shape of a curve, which the
    noisy run only estimates. Values above the overflow threshold are kept (no NaN here).
    """
    train, val = expected_arrays(profile, hparams)
    return pd.DataFrame(
        {"train_loss": train, "validation_loss": val},
        index=pd.Index(np.arange(1, train.size + 1), name="epoch"),
    )


def expected_arrays(
    profile: DatasetProfile, hparams: Hyperparameters
) -> tuple[np.ndarray, np.ndarray]:
    """:func:`expected_curves` as two arrays (train, validation), epoch 1 first.

    Why: a rejection sampler tries several configurations per accepted curve; building a
    DataFrame for each try cost more than computing the curve.
    """
    _check_inputs(profile, hparams)
    hp = hparams.resolved(profile.n_examples)
    tr = _trends(profile, hp)
    E = hp.epoch_count
    sums = np.bincount(tr.epoch - 1, weights=tr.train, minlength=E)
    counts = np.bincount(tr.epoch - 1, minlength=E)
    return sums / counts, tr.val


def simulate(profile: DatasetProfile, hparams: Hyperparameters, seed: int = 0) -> SimulatedRun:
    """Simulate one tuning job. Same inputs and seed -> the same run, in any process."""
    _check_inputs(profile, hparams)
    hp = hparams.resolved(profile.n_examples)
    n, E, B = profile.n_examples, hp.epoch_count, hp.batch_size
    nu = profile.noise
    rng = _rng(profile, hp, seed)
    # Small per-run variation: no two real jobs have exactly the same curve.
    tr = _trends(profile, hp, tuple(np.exp(rng.normal(0.0, [0.03, 0.05, 0.02]))))
    step, epoch, last, rho = tr.step, tr.epoch, tr.last, tr.rho
    T = step.size
    train_trend, val_trend = tr.train, tr.val

    unstable = min(max(0.0, rho - 0.5), 1.0)
    spread = 1.0 + 1.5 * nu + (0.0 if profile.format_ok else 1.0) + 1.5 * unstable
    # Capped: beyond ~1 the lognormal's median collapses and single steps look absurd.
    sigma_f = min(SIGMA_EXAMPLE * spread / math.sqrt(B), SIGMA_F_MAX)
    sigma_s = 0.001 + 0.5 * nu**1.5 + (0.0 if profile.format_ok else 0.3) + 0.1 * unstable

    spe = n / B  # steps per epoch
    knot_gap = max(1.0, spe / 2.0)
    n_knots = int(math.ceil(T / knot_gap)) + 2
    knots = rng.standard_normal(n_knots)
    wander = np.interp(step / knot_gap, np.arange(n_knots), knots)
    eps = rng.standard_normal(T)
    with np.errstate(over="ignore", invalid="ignore"):  # past an overflow the values become NaN
        log_loss = np.log(train_trend) + sigma_f * eps - 0.5 * sigma_f**2 + sigma_s * wander
        mean_loss = np.exp(log_loss)

    # Per-epoch evaluation at each epoch's last step.
    v_noise = 0.0005 + 0.05 * nu
    val = val_trend * np.exp(
        0.5 * sigma_s * wander[last] + v_noise * rng.standard_normal(E) - 0.5 * v_noise**2
    )

    diverged_step = None
    failure = None
    over = np.flatnonzero(train_trend > LOSS_OVERFLOW)
    if over.size:
        first = int(over[0])
        diverged_step = int(step[first])
        mean_loss[first:] = np.nan
        div_epoch = int(epoch[first])
        val[last >= first] = np.nan
        failure = _failure_text(hp, diverged_step, div_epoch)

    with np.errstate(over="ignore", invalid="ignore"):
        quality = Q_MAX / (1.0 + np.exp((val - V50) / W))
    quality = np.where(np.isfinite(val), quality, 0.0)

    return SimulatedRun(
        profile=profile,
        hparams=hp,
        seed=int(seed),
        total_steps=T,
        step=_frozen(step),
        epoch=_frozen(epoch),
        mean_loss=_frozen(mean_loss),
        validation_loss=_frozen(val),
        heldout_quality=_frozen(quality),
        diverged_step=diverged_step,
        failure=failure,
    )
