"""Random and fixed simulated runs for the lessons and the graded assignment.

Why random draws: the graded "classify this loss curve" exercise is checked on runs the student
has never seen (secret seeds). Each label is drawn from broad, realistic ranges of dataset size,
epochs, batch size, learning-rate multiplier and data quality, so only a classifier that looks
at the *shape* of the per-epoch curve -- overall drop, final level, smoothness, a rise after the
minimum, and the validation curve when given -- does well; thresholds copied from a handful of
examples do not.

How a draw is made: hyperparameters are sampled from a pattern-specific distribution, then the
noise-free per-epoch curves (:func:`tunelab.simulator.expected_curves`) are checked against the
lesson's definition of the pattern; draws that do not fit are redrawn. Only then is the noisy
run simulated, so the label is a property of the underlying dynamics, not of a lucky noise
draw. A last loose check (:func:`_displays`) redraws the rare run whose noise hides its own
pattern (say a chaotic run that happens to slide down like a slow descent): students are
graded on what the curve shows.

Definitions (same wording as the lessons):

* healthy -- smooth fall to a plateau; validation also plateaus.
* underfitting -- still clearly falling at the end, loss still high.
* no_convergence -- flat or chaotic, little net decrease (dirty data or a wrong format).
* overfitting -- train loss falls to ~0 while validation has a minimum, then rises.
* divergence -- train loss falls, then rises (the loss blows up).

Divergence and NaN: a run whose loss overflows reports NaN from that step on (as the real
trainer does). Most divergence draws are barely over the stability limit and rise *without*
overflowing within the run; a few percent (about 1 in 25) end in NaN, and those are kept only
when the per-epoch curve first shows a fall and at least two finite epochs of rise, so the
pattern is visible before the NaNs (a classifier must still cope with trailing NaN).
"""

from __future__ import annotations

import math

import numpy as np

from tunelab.simulator import (
    LOSS_OVERFLOW,
    X_G,
    DatasetProfile,
    Hyperparameters,
    SimulatedRun,
    critical_multiplier,
    expected_curves,
    per_example_push,
    simulate,
)

__all__ = ["LABELS", "pattern_examples", "sample_run", "sql_scenario_run", "SQL_SCENARIO"]

LABELS = ("healthy", "underfitting", "no_convergence", "overfitting", "divergence")

#: The graded NL->SQL scenario: 500 examples, 20 epochs, batch 4, multiplier 1.
SQL_SCENARIO = {
    "profile": DatasetProfile(n_examples=500, mean_tokens=60.0),
    "hparams": Hyperparameters(epoch_count=20, batch_size=4, learning_rate_multiplier=1.0),
    "seed": 2024,
}

_MAX_STEPS = 40_000  # keeps every draw cheap (a few ms)
_MAX_TRIES = 400
_NAN_KEEP = 1.0  # share of overflowing divergence draws kept (see module docstring)
_SEED_SALT = {label: i + 1 for i, label in enumerate(LABELS)}


def sql_scenario_run() -> SimulatedRun:
    """The graded scenario: train ~0.3 at epoch 5, ~0.001 at epoch 20, validation lowest near 5."""
    return simulate(SQL_SCENARIO["profile"], SQL_SCENARIO["hparams"], SQL_SCENARIO["seed"])


# Hand-picked configurations (and fixed seeds) so each lesson plot is a textbook case of its
# pattern, on realistic settings a student could type. The graded scenario is kept out of here.
_PATTERN_CONFIGS = {
    "healthy": (DatasetProfile(500), Hyperparameters(5, 4, learning_rate_multiplier=1.0), 1),
    "underfitting": (DatasetProfile(500), Hyperparameters(5, 4, learning_rate_multiplier=0.1), 1),
    "no_convergence": (
        DatasetProfile(500, noise=0.6),
        Hyperparameters(8, 4, learning_rate_multiplier=1.0),
        1,
    ),
    "overfitting": (DatasetProfile(200), Hyperparameters(25, 4, learning_rate_multiplier=1.0), 1),
    "divergence": (DatasetProfile(300), Hyperparameters(10, 4, learning_rate_multiplier=3.1), 1),
}


def pattern_examples() -> dict[str, SimulatedRun]:
    """One textbook run per label, for the lessons' pattern plots (fixed configs and seeds)."""
    return {label: simulate(*cfg) for label, cfg in _PATTERN_CONFIGS.items()}


def sample_run(label: str, seed: int) -> SimulatedRun:
    """A fresh random run showing ``label``'s pattern (deterministic for a given seed)."""
    if label not in LABELS:
        raise ValueError(f"sample_run: unknown label {label!r}; expected one of {LABELS}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise TypeError(f"sample_run: seed must be an integer, got {seed!r}")
    rng = np.random.default_rng([int(seed) & 0xFFFFFFFFFFFF, _SEED_SALT[label], 0x7A11])
    draw, accept = _SAMPLERS[label]
    for _ in range(_MAX_TRIES):
        cfg = draw(rng)
        if cfg is None:
            continue
        profile, hp = cfg
        if (profile.n_examples * hp.epoch_count) / hp.batch_size > _MAX_STEPS:
            continue
        curves = expected_curves(profile, hp)
        train = curves["train_loss"].to_numpy()
        val = curves["validation_loss"].to_numpy()
        if accept(train, val, rng):
            run = simulate(profile, hp, int(rng.integers(0, 2**31 - 1)))
            if _displays(label, run.per_epoch()["train_loss"].to_numpy()):
                return run
    raise RuntimeError(f"sample_run({label!r}, {seed}): no acceptable draw")  # pragma: no cover


def _displays(label: str, train: np.ndarray) -> bool:
    """Does the *noisy* per-epoch train curve still show the pattern's definition?

    The dynamics decide the label; this last check drops the rare draw whose noise hides it
    (e.g. a chaotic run that happens to slide down like a slow descent), using only the
    definitions' own words, loosely.
    """
    t = train[np.isfinite(train)]
    if label == "divergence":
        k = int(np.argmin(t))
        return t.size >= 3 and k >= 1 and t[k] < 0.8 * t[0] and t[-1] > 2.0 * t[k]
    if np.isnan(train).any():
        return False
    if label == "no_convergence":  # little net decrease, and no blow-up
        return t[-1] > 0.7 * t[0] and t[-1] < 1.6 * t.min()
    if label == "overfitting":
        return t[-1] < 0.05
    slope = _late_slope(t)
    if label == "underfitting":
        return slope < -0.04 and t[-1] < 0.9 * t[0]
    return slope > -0.04 and t[-1] < 0.7 * t[0]  # healthy


# --- shared draws -----------------------------------------------------------------------------


def _log_uniform(rng: np.random.Generator, lo: float, hi: float) -> float:
    return float(math.exp(rng.uniform(math.log(lo), math.log(hi))))


def _batch(rng: np.random.Generator, n: int) -> int:
    """Batch sizes people actually use; bigger ones for bigger datasets."""
    choices = [2, 4, 8, 16] if n < 2000 else [4, 8, 16, 32, 64]
    return int(rng.choice(choices))


def _profile(
    rng: np.random.Generator, n: int, noise: float, format_ok: bool = True
) -> DatasetProfile:
    return DatasetProfile(
        n_examples=n,
        mean_tokens=round(_log_uniform(rng, 20.0, 400.0), 1),
        noise=round(noise, 3),
        duplicates=round(float(rng.uniform(0.0, 0.08)), 3),
        format_ok=format_ok,
    )


def _multiplier_for(g_end: float, n: int, epochs: int, batch: int) -> float:
    """Multiplier whose task clock reaches ``g_end`` e-folds by the end (see simulator)."""
    push = g_end * X_G / (n * epochs)
    return round(push / per_example_push(1.0, batch), 4)


# --- per-label samplers: draw(rng) -> (profile, hparams) | None; accept(train, val, rng) ---

_Drawn = tuple[DatasetProfile, Hyperparameters] | None


def _draw_healthy(rng: np.random.Generator) -> _Drawn:
    n = int(_log_uniform(rng, 150, 20000))
    epochs = int(rng.integers(4, 11))
    batch = _batch(rng, n)
    m = _multiplier_for(rng.uniform(5.0, 14.0), n, epochs, batch)
    if not 0.05 <= m <= 0.6 * critical_multiplier(batch):
        return None
    hp = Hyperparameters(epochs, batch, learning_rate_multiplier=m)
    return _profile(rng, n, rng.uniform(0.0, 0.05)), hp


def _late_slope(train: np.ndarray) -> float:
    """Slope of log(train) per epoch over the second half of the run (at least 3 epochs)."""
    tail = np.log(train[-max(3, len(train) // 2) :])
    return float(np.polyfit(np.arange(tail.size), tail, 1)[0])


def _accept_healthy(train: np.ndarray, val: np.ndarray, rng: np.random.Generator) -> bool:
    drop = 1.0 - train[-1] / train[0]
    rise = val[-1] - val.min()
    return drop > 0.35 and _late_slope(train) > -0.025 and train[-1] > 0.1 and rise < 0.1


def _draw_underfitting(rng: np.random.Generator) -> _Drawn:
    n = int(_log_uniform(rng, 100, 8000))
    epochs = int(rng.integers(4, 9))
    batch = _batch(rng, n)
    m = _multiplier_for(rng.uniform(0.7, 2.6), n, epochs, batch)
    if not 0.02 <= m <= 2.0:
        return None
    hp = Hyperparameters(epochs, batch, learning_rate_multiplier=m)
    return _profile(rng, n, rng.uniform(0.0, 0.05)), hp


def _accept_underfitting(train: np.ndarray, val: np.ndarray, rng: np.random.Generator) -> bool:
    drop = 1.0 - train[-1] / train[0]
    return _late_slope(train) < -0.08 and train[-1] > 0.3 and drop > 0.15


def _draw_no_convergence(rng: np.random.Generator) -> _Drawn:
    n = int(_log_uniform(rng, 100, 10000))
    epochs = int(rng.integers(4, 13))
    batch = _batch(rng, n)
    m = round(_log_uniform(rng, 0.3, 2.0), 3)
    if m > 0.8 * critical_multiplier(batch):
        return None
    hp = Hyperparameters(epochs, batch, learning_rate_multiplier=m)
    if rng.random() < 0.35:
        return _profile(rng, n, rng.uniform(0.0, 0.3), format_ok=False), hp
    return _profile(rng, n, rng.uniform(0.45, 0.85)), hp


def _accept_no_convergence(train: np.ndarray, val: np.ndarray, rng: np.random.Generator) -> bool:
    return 1.0 - train[-1] / train[0] < 0.2


def _draw_overfitting(rng: np.random.Generator) -> _Drawn:
    n = int(_log_uniform(rng, 50, 3000))
    epochs = int(rng.integers(8, 31))
    batch = int(rng.choice([2, 4, 8]))
    m = round(_log_uniform(rng, 0.5, 2.5), 3)
    if m > 0.7 * critical_multiplier(batch):
        return None
    hp = Hyperparameters(epochs, batch, learning_rate_multiplier=m)
    return _profile(rng, n, rng.uniform(0.0, 0.05)), hp


def _accept_overfitting(train: np.ndarray, val: np.ndarray, rng: np.random.Generator) -> bool:
    k = int(np.argmin(val))
    return train[-1] < 0.03 and val[-1] - val[k] > 0.3 and k < len(val) - 2


def _draw_divergence(rng: np.random.Generator) -> _Drawn:
    n = int(_log_uniform(rng, 100, 5000))
    epochs = int(rng.integers(4, 13))
    batch = int(rng.choice([2, 4, 8, 16]))
    # Barely unstable runs rise late, over epochs; a minority is far over the limit and ends in
    # NaN (kept only when a fall and a rise are visible first, see _accept_divergence).
    hi = 3.0 if rng.random() < 0.3 else 0.8
    rho = 1.0 + _log_uniform(rng, 0.005, hi)
    m = round(rho * critical_multiplier(batch), 3)
    hp = Hyperparameters(epochs, batch, learning_rate_multiplier=m)
    return _profile(rng, n, rng.uniform(0.0, 0.06)), hp


def _accept_divergence(train: np.ndarray, val: np.ndarray, rng: np.random.Generator) -> bool:
    finite = train < LOSS_OVERFLOW
    n_fin = int(np.argmin(finite)) if not finite.all() else len(train)
    if not finite.all() and rng.random() > _NAN_KEEP:
        return False  # keep NaN runs rare
    t = train[:n_fin]
    if t.size < 4:
        return False
    k = int(np.argmin(t))
    rising = np.all(np.diff(t[k:]) > 0)
    fell = k >= 1 and t[k] < 0.75 * t[0]
    return fell and k <= t.size - 3 and rising and t[-1] > 2.0 * t[k] and t[-1] > 1.0


_SAMPLERS = {
    "healthy": (_draw_healthy, _accept_healthy),
    "underfitting": (_draw_underfitting, _accept_underfitting),
    "no_convergence": (_draw_no_convergence, _accept_no_convergence),
    "overfitting": (_draw_overfitting, _accept_overfitting),
    "divergence": (_draw_divergence, _accept_divergence),
}
