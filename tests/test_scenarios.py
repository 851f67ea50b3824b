"""Tests for tunelab.scenarios: the random pattern generator behind the graded classifier task.

The reference classifier lives HERE, not in tunelab: tunelab must never hold an exercise's
answer. It reads only what a student gets -- per-epoch train (and validation) loss -- and uses
the lesson's definitions, so it shows the task is solvable by principle; a rule copied from one
example per label must do clearly worse, so the task is not trivial.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tunelab import data_path
from tunelab.scenarios import (
    LABELS,
    SQL_SCENARIO,
    pattern_examples,
    sample_run,
    sql_scenario_run,
)
from tunelab.simulator import DatasetProfile, Hyperparameters, SimulatedRun, simulate

FRESH_SEEDS = range(900_000, 900_100)  # never used while tuning the generator


def reference_classify(train: pd.Series, validation: pd.Series | None = None) -> str:
    """Label a per-epoch loss curve the way the lessons teach it.

    1. NaN, or a clear fall followed by a rise to more than twice the minimum: divergence.
    2. Little net decrease, or more up-and-down motion than net progress: no_convergence.
    3. Train loss ends near zero (validation, when given, rising from its minimum): overfitting.
    4. Still falling clearly over the second half of the run: underfitting.
    5. Otherwise: a fall to a plateau, healthy.
    """
    t = train.to_numpy(dtype=float)
    if np.isnan(t).any():
        return "divergence"
    lt = np.log(t)
    d = np.diff(lt)
    k = int(np.argmin(t))
    if k >= 1 and t[k] < 0.8 * t[0] and t[-1] > 2 * t[k]:
        return "divergence"
    net = lt[0] - lt[-1]
    wasted = np.abs(d).sum() - abs(net)
    if net < np.log(1.35) or wasted > 0.5 * net:
        return "no_convergence"
    if t[-1] < 0.05:
        return "overfitting"
    if validation is not None:
        v = validation.to_numpy(dtype=float)
        if t[-1] < 0.1 and v[-1] - np.nanmin(v) > 0.2:
            return "overfitting"
    tail = lt[-max(3, len(t) // 2) :]
    slope = np.polyfit(np.arange(tail.size), tail, 1)[0]
    if slope < -0.05 and t[-1] > 0.3:
        return "underfitting"
    return "healthy"


def _curves(run: SimulatedRun) -> tuple[pd.Series, pd.Series]:
    per = run.per_epoch()
    return per["train_loss"], per["validation_loss"]


def _hidden_curves():
    """The checker-side sampler of the graded hidden curves (never in the package)."""
    import importlib.util
    import sys

    path = Path(__file__).resolve().parents[1] / "solutions" / "sql_overfitting" / "curves.py"
    spec = importlib.util.spec_from_file_location("_test_sql_curves", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules["_test_sql_curves"] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module", params=["practice", "hidden"])
def fresh_samples(request) -> dict[str, list[SimulatedRun]]:
    """Practice runs (the package's sample_run) and the grader's fresh hidden draws."""
    if request.param == "practice":
        return {label: [sample_run(label, s) for s in FRESH_SEEDS] for label in LABELS}
    hidden = _hidden_curves().hidden_run
    return {label: [hidden(label, s) for s in FRESH_SEEDS] for label in LABELS}


def test_practice_table_is_the_checker_filters_output():
    """tunelab/practice_runs.py holds draws the checker-side filter accepted (first rows)."""
    from tunelab.practice_runs import PRACTICE

    curves = _hidden_curves()
    for label in LABELS:
        assert len(PRACTICE[label]) == curves.PRACTICE_PER_LABEL
        assert list(PRACTICE[label][:5]) == curves.practice_rows(label, 5), label


def test_the_package_holds_no_acceptance_test():
    """Whatever says 'this curve shows label X' is an answer to Part 5: not in tunelab."""
    import tunelab.scenarios as scenarios

    names = dir(scenarios)
    assert not [n for n in names if n.startswith(("_accept", "_displays", "_late_slope"))]


def test_labels_are_the_lesson_patterns():
    assert LABELS == ("healthy", "underfitting", "no_convergence", "overfitting", "divergence")


def test_reference_classifier_reaches_95_percent_per_label(fresh_samples):
    for label, runs in fresh_samples.items():
        hits = sum(reference_classify(*_curves(r)) == label for r in runs)
        assert hits >= 95, f"{label}: {hits}/100 recognised"


def test_reference_classifier_works_without_validation(fresh_samples):
    total = sum(
        reference_classify(_curves(r)[0], None) == label
        for label, runs in fresh_samples.items()
        for r in runs
    )
    assert total >= 0.95 * 5 * len(FRESH_SEEDS)


def test_rule_tuned_on_one_example_per_label_does_clearly_worse(fresh_samples):
    """Nearest neighbour on the final loss level and overall drop, 'trained' on seed 0."""

    def features(run):
        t = run.per_epoch()["train_loss"].to_numpy()
        t = t[np.isfinite(t)]
        return np.array([np.log(t[-1]), np.log(t[-1] / t[0])])

    prototypes = {label: features(sample_run(label, 0)) for label in LABELS}
    naive_hits = ref_hits = 0
    for label, runs in fresh_samples.items():
        for r in runs:
            x = features(r)
            guess = min(LABELS, key=lambda lab: float(np.sum((prototypes[lab] - x) ** 2)))
            naive_hits += guess == label
            ref_hits += reference_classify(*_curves(r)) == label
    n = 5 * len(FRESH_SEEDS)
    assert naive_hits / n < 0.85
    assert ref_hits - naive_hits >= 0.1 * n


def test_samples_are_deterministic_and_fresh_per_seed():
    a, b = sample_run("overfitting", 7), sample_run("overfitting", 7)
    np.testing.assert_array_equal(a.mean_loss, b.mean_loss)
    assert a.profile == b.profile and a.hparams == b.hparams
    others = {sample_run("overfitting", s).hparams for s in range(8, 20)}
    assert len(others) >= 10, "each seed draws new hyperparameters"


def test_samples_vary_broadly(fresh_samples):
    """Sizes, batches, multipliers and epoch counts are spread out, not a few fixed values."""
    for label, runs in fresh_samples.items():
        sizes = [r.profile.n_examples for r in runs]
        # A per-epoch "fall, then rise" needs the blow-up to take several epochs, which only
        # happens on datasets up to ~1000 examples; the other patterns span 50-20,000.
        assert max(sizes) / min(sizes) > (5 if label == "divergence" else 10), label
        assert len({r.hparams.batch_size for r in runs}) >= 3, label
        assert len({r.hparams.epoch_count for r in runs}) >= 4, label
        mults = [r.hparams.multiplier for r in runs]
        assert max(mults) / min(mults) > 2, label
        assert min(r.hparams.epoch_count for r in runs) >= 4, label


def test_divergence_samples_mostly_finite_and_rise_before_any_nan(fresh_samples):
    runs = fresh_samples["divergence"]
    with_nan = [r for r in runs if r.diverged_step is not None]
    assert len(with_nan) <= 30
    for r in with_nan:
        t = r.per_epoch()["train_loss"].to_numpy()
        t = t[np.isfinite(t)]
        k = int(np.argmin(t))
        assert k >= 1 and t.size - k >= 2, "a fall, then a visible rise before the NaNs"
        assert r.failure and "NaN" in r.failure


def test_unknown_label_and_bad_seed_are_rejected():
    with pytest.raises(ValueError, match="unknown label 'overfit'"):
        sample_run("overfit", 1)
    with pytest.raises(TypeError, match="seed"):
        sample_run("healthy", "1")


def test_sql_scenario_matches_the_graded_story():
    run = sql_scenario_run()
    assert run.profile.n_examples == 500
    assert (run.hparams.epoch_count, run.hparams.batch_size, run.hparams.multiplier) == (20, 4, 1)
    per = run.per_epoch()
    assert 0.25 <= per["train_loss"][5] <= 0.35
    assert per["train_loss"][20] < 0.005
    assert 4 <= per["validation_loss"].idxmin() <= 6
    assert per["validation_loss"][20] > per["validation_loss"].min() + 0.5
    assert per["heldout_quality"][5] > 0.75 and per["heldout_quality"][20] < 0.3
    for epochs in (4, 5, 6):
        hp = Hyperparameters(epochs, 4, learning_rate_multiplier=1.0)
        rerun = simulate(SQL_SCENARIO["profile"], hp, SQL_SCENARIO["seed"])
        assert rerun.final_quality > run.final_quality + 0.5


def test_graded_story_holds_for_the_real_sql_training_file():
    """The emulator profiles the student's upload; the story must hold for that profile too."""
    examples = [json.loads(line) for line in data_path("nl_sql/train.jsonl").open()]
    profile = DatasetProfile.from_examples(examples)
    assert profile.n_examples == 500 and profile.format_ok and profile.noise == 0
    for seed in range(0, 3000, 100):  # the emulator derives seeds from model ids
        per = simulate(profile, Hyperparameters(20, 4, learning_rate=0.001), seed).per_epoch()
        assert 0.25 <= per["train_loss"][5] <= 0.35, seed
        assert per["train_loss"][20] < 0.005, seed
        assert 4 <= per["validation_loss"].idxmin() <= 6, seed
        assert per["heldout_quality"][20] < 0.3 < 0.75 < per["heldout_quality"][5], seed
        rerun = simulate(profile, Hyperparameters(5, 4, learning_rate=0.001), seed)
        assert rerun.final_quality > per["heldout_quality"][20] + 0.5, seed


def test_pattern_examples_are_textbook_cases():
    examples = pattern_examples()
    assert set(examples) == set(LABELS)
    for label, run in examples.items():
        assert reference_classify(*_curves(run)) == label
        assert run.hparams.epoch_count >= 4
    again = pattern_examples()
    np.testing.assert_array_equal(again["healthy"].mean_loss, examples["healthy"].mean_loss)
