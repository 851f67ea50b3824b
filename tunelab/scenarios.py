"""Random and fixed simulated runs for the lessons and the graded assignment.

Why random draws: the graded "classify this loss curve" exercise is checked on runs the student
has never seen. Each label is drawn from broad, realistic ranges of dataset size, epochs, batch
size, learning-rate multiplier and data quality (the ``_draw_*`` distributions below), so only a
classifier that looks at the *shape* of the per-epoch curve -- overall drop, final level,
smoothness, a rise after the minimum, and the validation curve when given -- does well;
thresholds copied from a handful of examples do not.

What is NOT here: the test that decides whether a draw shows its pattern. Such a test is a
labeller, i.e. an answer to the graded Part 5, so it lives with the instructor's checker
(never released). :func:`sample_run` replays practice runs that filter accepted
(``tunelab/practice_runs.py``: configurations and seeds only); the
grader's hidden curves are other, fresh draws of the same distributions.

Definitions (same wording as the lessons):

* healthy -- smooth fall to a plateau; validation also plateaus.
* underfitting -- still clearly falling at the end, loss still high.
* no_convergence -- flat or chaotic, little net decrease (dirty data or a wrong format).
* overfitting -- train loss falls to ~0 while validation has a minimum, then rises.
* divergence -- train loss falls, then rises (the loss blows up).

Divergence and NaN: a run whose loss overflows reports NaN from that step on (as the real
trainer does). Most divergence draws are barely over the stability limit and rise *without*
overflowing within the run; a few end in NaN after a visible fall and rise, so a classifier
must still cope with trailing NaN.
"""

from __future__ import annotations

import math

import numpy as np

from tunelab.simulator import (
    X_G,
    DatasetProfile,
    Hyperparameters,
    SimulatedRun,
    critical_multiplier,
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
    """A practice run showing ``label``'s pattern (deterministic for a given seed).

    Replays one of the practice configurations (``tunelab.practice_runs``, 250 per label;
    seed N and N + 250 give the same run). The graded hidden curves are fresh draws.
    """
    from tunelab.practice_runs import PRACTICE

    if label not in LABELS:
        raise ValueError(f"sample_run: unknown label {label!r}; expected one of {LABELS}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise TypeError(f"sample_run: seed must be an integer, got {seed!r}")
    rows = PRACTICE[label]
    n, tokens, noise, dup, format_ok, epochs, batch, mult, sim_seed = rows[int(seed) % len(rows)]
    profile = DatasetProfile(
        n_examples=n, mean_tokens=tokens, noise=noise, duplicates=dup, format_ok=format_ok
    )
    hp = Hyperparameters(epochs, batch, learning_rate_multiplier=mult)
    return simulate(profile, hp, sim_seed)


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


# --- per-label distributions: draw(rng) -> (profile, hparams) | None ---

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


def _draw_underfitting(rng: np.random.Generator) -> _Drawn:
    n = int(_log_uniform(rng, 100, 8000))
    epochs = int(rng.integers(4, 9))
    batch = _batch(rng, n)
    m = _multiplier_for(rng.uniform(0.7, 2.6), n, epochs, batch)
    if not 0.02 <= m <= 2.0:
        return None
    hp = Hyperparameters(epochs, batch, learning_rate_multiplier=m)
    return _profile(rng, n, rng.uniform(0.0, 0.05)), hp


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


def _draw_overfitting(rng: np.random.Generator) -> _Drawn:
    n = int(_log_uniform(rng, 50, 3000))
    epochs = int(rng.integers(8, 31))
    batch = int(rng.choice([2, 4, 8]))
    m = round(_log_uniform(rng, 0.5, 2.5), 3)
    if m > 0.7 * critical_multiplier(batch):
        return None
    hp = Hyperparameters(epochs, batch, learning_rate_multiplier=m)
    return _profile(rng, n, rng.uniform(0.0, 0.05)), hp


def _draw_divergence(rng: np.random.Generator) -> _Drawn:
    n = int(_log_uniform(rng, 100, 5000))
    epochs = int(rng.integers(4, 13))
    batch = int(rng.choice([2, 4, 8, 16]))
    # Barely unstable runs rise late, over epochs; a minority is far over the limit and ends in
    # NaN (kept by the checker-side filter only when a fall and a rise are visible first).
    hi = 3.0 if rng.random() < 0.3 else 0.8
    rho = 1.0 + _log_uniform(rng, 0.005, hi)
    m = round(rho * critical_multiplier(batch), 3)
    hp = Hyperparameters(epochs, batch, learning_rate_multiplier=m)
    return _profile(rng, n, rng.uniform(0.0, 0.06)), hp


#: The distribution each label's runs are drawn from (the acceptance test is checker-side).
_DRAWS = {
    "healthy": _draw_healthy,
    "underfitting": _draw_underfitting,
    "no_convergence": _draw_no_convergence,
    "overfitting": _draw_overfitting,
    "divergence": _draw_divergence,
}
