"""Property tests for tunelab.simulator: each training phenomenon the lessons describe.

Hypothesis is derandomised (fixed example sequence) so CI never flakes on a lucky draw, and
example counts are small: every run here costs about a millisecond.
"""

from __future__ import annotations

import hashlib
import math
import re
import subprocess
import sys
import time

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tunelab.simulator import (
    LARGE_DATASET_THRESHOLD,
    DatasetProfile,
    Hyperparameters,
    SimulatedRun,
    critical_multiplier,
    default_hyperparameters,
    expected_curves,
    simulate,
    total_steps,
)

FAST = settings(
    max_examples=25,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow],
)
seeds = st.integers(min_value=0, max_value=2**31 - 1)


def run(n, epochs, batch, m, seed=0, **profile) -> SimulatedRun:
    return simulate(
        DatasetProfile(n, **profile),
        Hyperparameters(epochs, batch, learning_rate_multiplier=m),
        seed,
    )


def smooth(x: np.ndarray, window: int) -> np.ndarray:
    """Moving average (valid part), to read a trend through per-step noise."""
    return np.convolve(x, np.ones(window) / window, mode="valid")


# --- contract -------------------------------------------------------------------------------


def test_total_steps_matches_service_formula():
    assert total_steps(15, 5, 2) == 38
    assert total_steps(500, 20, 4) == 2500
    assert total_steps(1, 1, 64) == 1
    with pytest.raises(ValueError, match="batch_size"):
        total_steps(10, 1, 0)


def test_multiplier_is_learning_rate_over_default():
    assert Hyperparameters(learning_rate=0.002).multiplier == pytest.approx(2.0)
    assert Hyperparameters(learning_rate_multiplier=0.1).multiplier == pytest.approx(0.1)
    assert Hyperparameters().multiplier == 1.0


def test_service_defaults_depend_on_dataset_size():
    small = default_hyperparameters(500)
    assert (small.epoch_count, small.batch_size, small.learning_rate) == (5, 4, 0.001)
    large = default_hyperparameters(LARGE_DATASET_THRESHOLD)
    assert (large.epoch_count, large.batch_size, large.learning_rate) == (5, 16, 0.0002)
    # An unset learning rate resolves to the size-dependent default inside simulate().
    r = simulate(DatasetProfile(5000), Hyperparameters(epoch_count=2, batch_size=16))
    assert r.hparams.multiplier == pytest.approx(0.2)


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: Hyperparameters(epoch_count=0), "epoch_count"),
        (lambda: Hyperparameters(batch_size=2.5), "batch_size"),
        (lambda: Hyperparameters(learning_rate=0.001, learning_rate_multiplier=1.0), "not both"),
        (lambda: Hyperparameters(learning_rate=-1.0), "learning_rate"),
        (lambda: Hyperparameters(learning_rate_multiplier=float("nan")), "multiplier"),
        (lambda: DatasetProfile(0), "n_examples"),
        (lambda: DatasetProfile(10, noise=1.5), "noise"),
        (lambda: DatasetProfile(10, mean_tokens=0), "mean_tokens"),
        (lambda: DatasetProfile(10, duplicates=1.0), "duplicates"),
    ],
)
def test_bad_inputs_name_the_field(make, message):
    with pytest.raises(ValueError, match=message):
        make()


def test_simulate_rejects_wrong_types():
    with pytest.raises(TypeError, match="DatasetProfile"):
        simulate({"n_examples": 10}, Hyperparameters())
    with pytest.raises(ValueError, match="batch_size 8 is larger than the dataset"):
        simulate(DatasetProfile(5), Hyperparameters(batch_size=8))


@FAST
@given(
    n=st.integers(1, 3000),
    epochs=st.integers(1, 12),
    batch=st.sampled_from([1, 2, 4, 8, 16, 32]),
    m=st.floats(0.05, 10.0),
    seed=seeds,
)
def test_run_shape_and_epoch_numbering(n, epochs, batch, m, seed):
    n = max(n, batch)
    r = run(n, epochs, batch, m, seed)
    T = total_steps(n, epochs, batch)
    assert r.total_steps == T and r.step.tolist() == list(range(1, T + 1))
    expected_epoch = np.minimum(np.ceil(r.step * batch / n - 1e-9), epochs).astype(int)
    assert np.array_equal(r.epoch, expected_epoch)
    assert r.epoch[0] == 1 and r.epoch[-1] == epochs
    assert r.validation_loss.shape == r.heldout_quality.shape == (epochs,)
    finite = np.isfinite(r.mean_loss)
    assert np.all(r.mean_loss[finite] > 0)
    assert np.all((r.heldout_quality >= 0) & (r.heldout_quality <= 1))
    snaps = r.snapshots()
    assert list(snaps.columns) == ["step", "epoch", "mean_loss"] and len(snaps) == T
    per = r.per_epoch()
    assert per.index.name == "epoch" and per.index.tolist() == list(range(1, epochs + 1))
    assert list(per.columns) == ["train_loss", "validation_loss", "heldout_quality"]
    if r.diverged_step is None:
        assert finite.all() and r.failure is None
        assert r.final_quality == pytest.approx(r.heldout_quality[-1])
    else:
        assert not finite[r.diverged_step - 1 :].any() and finite[: r.diverged_step - 1].all()
        assert r.final_quality == 0.0


def test_run_arrays_are_read_only():
    r = run(100, 2, 4, 1.0)
    with pytest.raises(ValueError):
        r.mean_loss[0] = 0.0


@FAST
@given(n=st.integers(20, 2000), epochs=st.integers(1, 8), m=st.floats(0.1, 3.0), seed=seeds)
def test_same_inputs_same_run_and_seeds_differ(n, epochs, m, seed):
    a, b = run(n, epochs, 4, m, seed), run(n, epochs, 4, m, seed)
    for field in ("mean_loss", "validation_loss", "heldout_quality"):
        np.testing.assert_array_equal(getattr(a, field), getattr(b, field))
    c = run(n, epochs, 4, m, seed + 1)
    assert not np.array_equal(a.mean_loss, c.mean_loss)


def _digest(r: SimulatedRun) -> str:
    return hashlib.sha256(r.mean_loss.tobytes() + r.validation_loss.tobytes()).hexdigest()


def test_runs_are_identical_across_processes():
    """No per-process salt (Python's str hash) may leak into the random streams."""
    code = (
        "import hashlib\n"
        "from tunelab.simulator import DatasetProfile, Hyperparameters, simulate\n"
        "r = simulate(DatasetProfile(321, noise=0.3), Hyperparameters(7, 8, "
        "learning_rate_multiplier=1.5), 99)\n"
        "print(hashlib.sha256(r.mean_loss.tobytes() + r.validation_loss.tobytes()).hexdigest())\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    assert out.stdout.strip() == _digest(run(321, 7, 8, 1.5, 99, noise=0.3))


# --- phenomena --------------------------------------------------------------------------------


@FAST
@given(seed=seeds)
def test_healthy_run_falls_to_a_plateau(seed):
    per = run(500, 5, 4, 1.0, seed).per_epoch()
    t, v = per["train_loss"].to_numpy(), per["validation_loss"].to_numpy()
    assert t[-1] < 0.3 * t[0], "the loss must fall clearly"
    assert np.all(np.diff(t[:3]) < 0)
    assert abs(t[-1] - t[-2]) / t[-2] < 0.15, "and level off"
    assert 0.15 < t[-1] < 0.4
    assert v[-1] - v.min() < 0.02, "validation plateaus too"


@FAST
@given(n=st.integers(150, 500), epochs=st.integers(1, 2), seed=seeds)
def test_one_or_two_epochs_underfit_small_data(n, epochs, seed):
    r = run(n, epochs, 4, 1.0, seed)
    longer = run(n, 10, 4, 1.0, seed).per_epoch()
    per = r.per_epoch()
    t, v = per["train_loss"].to_numpy(), per["validation_loss"].to_numpy()
    assert t[-1] > 1.5 * longer["train_loss"].iloc[4], "train loss is still high"
    assert v[-1] > longer["validation_loss"].min() + 0.1, "validation loss is still high"
    # Still falling: the second half of the steps is below the first, and so is each epoch.
    half = r.total_steps // 2
    assert r.mean_loss[half:].mean() < r.mean_loss[:half].mean()
    if epochs == 2:
        assert t[1] < t[0] and v[1] < v[0]


@FAST
@given(n=st.integers(100, 500), seed=seeds)
def test_many_epochs_overfit_small_data(n, seed):
    per = run(n, 30, 4, 1.0, seed).per_epoch()
    t, v, q = (per[c].to_numpy() for c in ("train_loss", "validation_loss", "heldout_quality"))
    assert t[-1] < 0.005, "train loss falls to ~0 (memorised)"
    k = int(np.argmin(v))
    assert 2 <= k <= 12, "validation has an interior minimum"
    assert np.all(np.diff(v[: k + 1])[:2] < 0), "validation first falls"
    assert v[-1] > v[k] + 0.5, "then rises (U shape)"
    assert q[-1] < 0.3 * q.max(), "held-out quality collapses when heavily overfit"


@FAST
@given(small=st.integers(60, 150), large=st.integers(400, 1000), seed=seeds)
def test_validation_minimum_comes_earlier_as_data_shrinks(small, large, seed):
    """Earlier in training steps (examples seen): a small set is memorised after fewer updates."""

    def min_step(n):
        r = run(n, 30, 4, 1.0, seed)
        epoch = int(np.argmin(r.validation_loss)) + 1
        return total_steps(n, epoch, 4)

    assert min_step(small) < min_step(large)


@FAST
@given(n=st.integers(100, 499), seed=seeds)
def test_small_datasets_want_5_to_10_epochs(n, seed):
    hp = default_hyperparameters(n)
    r = simulate(DatasetProfile(n), Hyperparameters(15, hp.batch_size, hp.learning_rate), seed)
    assert 5 <= int(np.argmin(r.validation_loss)) + 1 <= 10


@FAST
@given(n=st.integers(10_001, 100_000), seed=seeds)
def test_large_datasets_want_1_to_3_epochs(n, seed):
    hp = default_hyperparameters(n)
    r = simulate(DatasetProfile(n), Hyperparameters(6, hp.batch_size, hp.learning_rate), seed)
    assert 1 <= int(np.argmin(r.validation_loss)) + 1 <= 3


@FAST
@given(
    m=st.floats(4.0, 8.0),
    batch=st.sampled_from([1, 2, 4]),
    n=st.integers(300, 2000),
    epochs=st.integers(4, 10),
    seed=seeds,
)
def test_aggressive_multipliers_diverge(m, batch, n, epochs, seed):
    r = run(n, epochs, batch, m, seed)
    finite = r.mean_loss[np.isfinite(r.mean_loss)]
    w = max(3, min(25, finite.size // 10))
    trend = smooth(finite, w)
    k = int(np.argmin(trend))
    assert trend[k] < 0.7 * trend[0], "the loss falls first"
    assert r.diverged_step is not None or trend[-1] > 3 * trend[k], "then blows up"
    assert r.final_quality < 0.3


@FAST
@given(m=st.floats(0.05, 1.0), batch=st.sampled_from([2, 4, 8, 16, 32]), seed=seeds)
def test_moderate_multipliers_never_diverge(m, batch, seed):
    r = run(300, 10, batch, m, seed)
    assert r.diverged_step is None and np.isfinite(r.mean_loss).all()


@FAST
@given(m=st.floats(4.5, 6.0), seed=seeds)
def test_small_batches_diverge_sooner(m, seed):
    """Same multiplier: batch 2 blows up after fewer examples than batch 8."""

    def blow_up_examples(batch):
        curves = expected_curves(DatasetProfile(300), Hyperparameters(12, batch, None, m))
        t = curves["train_loss"].to_numpy()
        k = int(np.argmin(t))
        rise = np.flatnonzero(t[k:] > 3 * t[k])
        return k + rise[0] if rise.size else 99

    assert critical_multiplier(2) < critical_multiplier(8)
    assert blow_up_examples(2) < blow_up_examples(8)


def test_divergence_failure_message_is_actionable():
    r = run(100, 3, 2, 8.0, seed=1)
    assert r.diverged_step is not None
    epoch = int(r.epoch[r.diverged_step - 1])
    assert r.failure == (
        f"loss became NaN at step {r.diverged_step} (epoch {epoch}): learning_rate_multiplier "
        "8.0 is too aggressive for batch_size 2; try 1.0 or lower"
    )
    r2 = simulate(DatasetProfile(100), Hyperparameters(3, 2, learning_rate=0.008), seed=1)
    assert re.fullmatch(
        r"loss became NaN at step \d+ \(epoch \d+\): learning_rate 0\.008 is too aggressive "
        r"for batch_size 2; try 0\.001 or lower",
        r2.failure,
    )
    per = r.per_epoch()
    assert per["heldout_quality"].iloc[-1] == 0.0


def _chaos(t: np.ndarray) -> tuple[float, float]:
    """(net log drop, wasted log motion) of a per-epoch curve."""
    lt = np.log(t)
    net = lt[0] - lt[-1]
    return net, float(np.abs(np.diff(lt)).sum() - abs(net))


@FAST
@given(
    n=st.integers(100, 3000),
    epochs=st.integers(4, 8),
    batch=st.sampled_from([2, 4, 8, 16]),
    m=st.floats(0.5, 1.2),
    dirty=st.booleans(),
    noise=st.floats(0.0, 1.0),
)
def test_dirty_or_misformatted_data_does_not_converge(n, epochs, batch, m, dirty, noise):
    profile = (
        DatasetProfile(n, noise=0.5 + 0.4 * noise)
        if dirty
        else DatasetProfile(n, noise=0.3 * noise, format_ok=False)
    )
    hp = Hyperparameters(epochs, batch, learning_rate_multiplier=m)
    nets, wasted, clean_wasted, quality = [], [], [], []
    for seed in range(8):
        r = simulate(profile, hp, seed)
        net, waste = _chaos(r.per_epoch()["train_loss"].to_numpy())
        nets.append(net)
        wasted.append(waste)
        quality.append(r.final_quality)
        clean = simulate(DatasetProfile(n), hp, seed)
        clean_wasted.append(_chaos(clean.per_epoch()["train_loss"].to_numpy())[1])
    assert np.median(nets) < math.log(1 / 0.7), "little net decrease"
    assert np.median(wasted) > 0.15 and np.median(wasted) > 5 * np.median(clean_wasted), "chaotic"
    assert max(quality) < 0.5


def _step_noise(batch: int, seed: int) -> float:
    """Std of step-to-step log changes on the plateau (last epoch of a long, clean run)."""
    r = run(8000, 2, batch, 1.0, seed)
    last = np.log(r.mean_loss[r.epoch == 2])
    return float(np.std(np.diff(last)))


@settings(max_examples=5, deadline=None, derandomize=True)
@given(seed=seeds)
def test_step_noise_shrinks_like_one_over_sqrt_batch(seed):
    noise = {b: _step_noise(b, seed) for b in (2, 4, 8, 16, 32)}
    values = list(noise.values())
    assert all(a > b for a, b in zip(values, values[1:], strict=False))
    for b in (2, 4, 8):
        assert 1.6 < noise[b] / noise[4 * b] < 2.5  # sqrt(4) = 2


@FAST
@given(m=st.floats(0.05, 0.15), seed=seeds)
def test_small_multiplier_crawls(m, seed):
    slow = run(500, 5, 4, m, seed).per_epoch()["train_loss"].to_numpy()
    normal = run(500, 5, 4, 1.0, seed).per_epoch()["train_loss"].to_numpy()
    assert slow[-1] > 3 * normal[-1]
    assert slow[-1] < 0.9 * slow[0] and np.sum(np.diff(slow) >= 0) <= 1, "still falling, slowly"
    assert slow[0] - slow[-1] < normal[0] - normal[-1]


@FAST
@given(m1=st.floats(0.05, 2.0), m2=st.floats(0.05, 2.0))
def test_larger_multiplier_descends_faster_while_stable(m1, m2):
    lo, hi = sorted((m1, m2))
    if hi - lo < 0.05:
        return
    a = expected_curves(DatasetProfile(500), Hyperparameters(3, 4, None, lo))["train_loss"]
    b = expected_curves(DatasetProfile(500), Hyperparameters(3, 4, None, hi))["train_loss"]
    assert b.iloc[-1] <= a.iloc[-1]


@FAST
@given(n=st.integers(50, 3000), epochs=st.integers(2, 25), m=st.floats(0.1, 2.5), seed=seeds)
def test_heldout_quality_tracks_validation_loss(n, epochs, m, seed):
    r = run(n, epochs, 4, m, seed)
    v, q = r.validation_loss, r.heldout_quality
    order = np.argsort(v)
    assert np.all(np.diff(q[order]) <= 1e-12), "lower validation loss -> higher quality"
    assert int(np.argmax(q)) == int(np.argmin(v))


# --- the graded scenario --------------------------------------------------------------------


@settings(max_examples=40, deadline=None, derandomize=True)
@given(seed=seeds)
def test_graded_sql_configuration_for_any_seed(seed):
    per = run(500, 20, 4, 1.0, seed).per_epoch()
    t, v, q = per["train_loss"], per["validation_loss"], per["heldout_quality"]
    assert 0.25 <= t[5] <= 0.35
    assert t[20] < 0.005
    assert 4 <= v.idxmin() <= 6
    assert v[20] > v.min() + 0.5
    assert q[20] < 0.3 and q[5] > 0.75
    rerun = run(500, 5, 4, 1.0, seed)
    assert rerun.final_quality > q[20] + 0.5


def test_expected_curves_is_the_noise_free_shape():
    exp = expected_curves(DatasetProfile(500), Hyperparameters(20, 4, None, 1.0))
    assert isinstance(exp, pd.DataFrame) and list(exp.index) == list(range(1, 21))
    noisy = [run(500, 20, 4, 1.0, s).per_epoch()["train_loss"] for s in range(10)]
    mean = pd.concat(noisy, axis=1).mean(axis=1)
    assert np.allclose(mean.iloc[:8], exp["train_loss"].iloc[:8], rtol=0.1)


# --- profiling real data ------------------------------------------------------------------------


def test_profile_from_examples_counts_noise_duplicates_and_format():
    good = [{"text_input": f"q{i}", "output": f"SELECT {i};"} for i in range(16)]
    examples = [
        *good,
        {"text_input": "q0", "output": "SELECT 0;"},  # duplicate
        {"text_input": "q1", "output": "DROP TABLE x;"},  # contradicts q1
        {"text_input": "", "output": "x"},  # malformed (blank)
        {"input": "q", "output": "y"},  # malformed (wrong key)
    ]
    p = DatasetProfile.from_examples(examples)
    assert p.n_examples == 20
    assert p.duplicates == pytest.approx(1 / 20)
    assert p.noise == pytest.approx(3 / 20)
    assert p.format_ok
    assert 1 < p.mean_tokens < 10
    wrong = DatasetProfile.from_examples([{"prompt": "a", "completion": "b"}] * 4)
    assert not wrong.format_ok and wrong.noise == 1.0
    with pytest.raises(ValueError, match="empty"):
        DatasetProfile.from_examples([])


# --- speed --------------------------------------------------------------------------------------


def test_ten_thousand_step_curve_is_fast():
    profile, hp = DatasetProfile(8000), Hyperparameters(5, 4, None, 1.0)
    assert total_steps(8000, 5, 4) == 10_000
    simulate(profile, hp, 0)
    times = []
    for seed in range(5):
        t0 = time.perf_counter()
        simulate(profile, hp, seed)
        times.append(time.perf_counter() - t0)
    assert sorted(times)[2] < 0.05, f"median {sorted(times)[2] * 1e3:.1f} ms"


def test_divergence_failure_message_speaks_the_notebooks_language(monkeypatch):
    """A Russian edition's notebook (tunelab.set_language("ru")) reads the emulator's failure
    text in Russian: parameter names as they are, numbers with a decimal comma."""
    from tunelab import i18n

    monkeypatch.setattr(i18n, "_chosen", None)
    monkeypatch.setenv("TUNELAB_LANG", "ru")
    r = run(100, 3, 2, 8.0, seed=1)
    assert r.failure.startswith(f"потери стали NaN на шаге {r.diverged_step}")
    assert "learning_rate_multiplier 8,0" in r.failure and "batch_size 2" in r.failure
    assert i18n.get_language() == "ru"
