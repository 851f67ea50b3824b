"""The hidden loss curves of Parts 1-3 and 5, and the acceptance test that labels them.

Checker side only (never released, never in the student bundle, never mounted in the
sandbox): a function that says whether a curve "shows" a pattern is a labeller, i.e. an
answer to Part 5. So the predicates that accept a draw as a pattern live here, beside the
checker. The student package keeps the *distributions* (``tunelab.scenarios._draw_*``) and a
table of practice runs drawn with this module's filter (``tunelab/practice_runs.py``,
rebuilt by ``python solutions/sql_overfitting/curves.py``) for seeds below
:data:`HIDDEN_SEED_MIN`; hidden curves use seeds from :data:`HIDDEN_SEED_MIN` up.

How a draw is made: hyperparameters come from the label's distribution; the noise-free
per-epoch curves (:func:`tunelab.simulator.expected_arrays`) must fit the lesson's definition
of the pattern (the ``_accept_*`` predicates); then the noisy run is simulated, and a last
loose check (:func:`_displays`) redraws the rare run whose noise hides its own pattern.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from tunelab import scenarios as S
from tunelab.simulator import LOSS_OVERFLOW, SimulatedRun, expected_arrays, simulate

HIDDEN_SEED_MIN = 10_000  # practice runs use seeds below, hidden curves seeds from here up
PRACTICE_PER_LABEL = 250
_MAX_STEPS = 40_000
_MAX_TRIES = 400
_NAN_KEEP = 1.0  # share of overflowing divergence draws kept


def hidden_run(label: str, seed: int) -> SimulatedRun:
    """A fresh random run showing ``label``'s pattern (deterministic for a given seed)."""
    if label not in S.LABELS:
        raise ValueError(f"hidden_run: unknown label {label!r}")
    rng = np.random.default_rng([int(seed) & 0xFFFFFFFFFFFF, S._SEED_SALT[label], 0x7A11])
    draw, accept = S._DRAWS[label], _ACCEPT[label]
    for _ in range(_MAX_TRIES):
        cfg = draw(rng)
        if cfg is None:
            continue
        profile, hp = cfg
        if (profile.n_examples * hp.epoch_count) / hp.batch_size > _MAX_STEPS:
            continue
        train, val = expected_arrays(profile, hp)
        if accept(train, val, rng):
            run = simulate(profile, hp, int(rng.integers(0, 2**31 - 1)))
            if _displays(label, run.epoch_train_loss()):
                return run
    raise RuntimeError(f"hidden_run({label!r}, {seed}): no acceptable draw")


def _displays(label: str, train: np.ndarray) -> bool:
    """Does the *noisy* per-epoch train curve still show the pattern's definition?"""
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


def _late_slope(train: np.ndarray) -> float:
    """Slope of log(train) per epoch over the second half of the run (at least 3 epochs)."""
    tail = np.log(train[-max(3, len(train) // 2) :])
    return float(np.polyfit(np.arange(tail.size), tail, 1)[0])


def _accept_healthy(train: np.ndarray, val: np.ndarray, rng: np.random.Generator) -> bool:
    drop = 1.0 - train[-1] / train[0]
    rise = val[-1] - val.min()
    return drop > 0.35 and _late_slope(train) > -0.025 and train[-1] > 0.1 and rise < 0.1


def _accept_underfitting(train: np.ndarray, val: np.ndarray, rng: np.random.Generator) -> bool:
    drop = 1.0 - train[-1] / train[0]
    return _late_slope(train) < -0.08 and train[-1] > 0.3 and drop > 0.15


def _accept_no_convergence(train: np.ndarray, val: np.ndarray, rng: np.random.Generator) -> bool:
    return 1.0 - train[-1] / train[0] < 0.2


def _accept_overfitting(train: np.ndarray, val: np.ndarray, rng: np.random.Generator) -> bool:
    k = int(np.argmin(val))
    return train[-1] < 0.03 and val[-1] - val[k] > 0.3 and k < len(val) - 2


def _accept_divergence(train: np.ndarray, val: np.ndarray, rng: np.random.Generator) -> bool:
    finite = train < LOSS_OVERFLOW
    n_fin = int(np.argmin(finite)) if not finite.all() else len(train)
    if not finite.all() and rng.random() > _NAN_KEEP:
        return False
    t = train[:n_fin]
    if t.size < 4:
        return False
    k = int(np.argmin(t))
    rising = np.all(np.diff(t[k:]) > 0)
    fell = k >= 1 and t[k] < 0.75 * t[0]
    return fell and k <= t.size - 3 and rising and t[-1] > 2.0 * t[k] and t[-1] > 1.0


_ACCEPT = {
    "healthy": _accept_healthy,
    "underfitting": _accept_underfitting,
    "no_convergence": _accept_no_convergence,
    "overfitting": _accept_overfitting,
    "divergence": _accept_divergence,
}


def practice_rows(label: str, n: int = PRACTICE_PER_LABEL) -> list[tuple]:
    """The practice table's rows for ``label``: hidden_run's draws for seeds 0..n-1."""
    rows = []
    for seed in range(n):
        run = hidden_run(label, seed)
        p, h = run.profile, run.hparams
        rows.append(
            (
                p.n_examples,
                p.mean_tokens,
                p.noise,
                p.duplicates,
                p.format_ok,
                h.epoch_count,
                h.batch_size,
                h.learning_rate_multiplier,
                run.seed,
            )
        )
    return rows


def practice_module() -> str:
    """The text of ``tunelab/practice_runs.py`` (configurations only, no labeller)."""
    lines = [
        '"""Practice runs for ``tunelab.scenarios.sample_run``: configurations, no labeller.',
        "",
        "GENERATED by the instructor's curve sampler (do not edit). Each row is",
        "(n_examples, mean_tokens, noise, duplicates, format_ok, epoch_count, batch_size,",
        "learning_rate_multiplier, simulation seed) of a draw the instructor's filter accepted as",
        "the label's pattern. The graded hidden curves are other, fresh draws.",
        '"""',
        "",
        "PRACTICE = {",
    ]
    for label in S.LABELS:
        lines.append(f"    {label!r}: (")
        lines += [f"        {row!r}," for row in practice_rows(label)]
        lines.append("    ),")
    lines.append("}")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":  # rebuild the package's practice table
    root = Path(__file__).resolve().parents[2]
    sys.path.insert(0, str(root))
    target = root / "tunelab" / "practice_runs.py"
    target.write_text(practice_module())
    print(f"wrote {target}")
