"""tunelab.panel: figure data for slider values, drawing, and the ipywidgets wiring."""

from __future__ import annotations

import base64
import statistics

import matplotlib
import numpy as np
import pytest

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402

from tunelab import panel as P  # noqa: E402
from tunelab.simulator import DatasetProfile, Hyperparameters, simulate, total_steps  # noqa: E402

PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def test_panel_data_matches_the_simulator():
    data = P.panel_data(epoch_count=3, batch_size=2, learning_rate_multiplier=1.0, n_examples=50)
    run = simulate(DatasetProfile(50), Hyperparameters(3, 2, learning_rate_multiplier=1.0))
    assert data.total_steps == total_steps(50, 3, 2) == 75
    np.testing.assert_array_equal(data.train["mean_loss"], run.mean_loss)
    np.testing.assert_array_equal(data.validation["validation_loss"], run.validation_loss)
    # Progress is in epochs: after step s, s * batch examples were read out of n.
    assert data.train["progress"].iloc[0] == pytest.approx(2 / 50)
    assert data.train["progress"].iloc[-1] == pytest.approx(3.0)
    assert data.validation["progress"].tolist() == [1, 2, 3]
    assert data.best_epoch == int(np.nanargmin(run.validation_loss)) + 1


def test_panel_data_is_deterministic_and_seeded():
    a = P.panel_data(n_examples=200, noise=0.2)
    b = P.panel_data(n_examples=200, noise=0.2)
    c = P.panel_data(n_examples=200, noise=0.2, seed=1)
    np.testing.assert_array_equal(a.train["mean_loss"], b.train["mean_loss"])
    assert not np.array_equal(a.train["mean_loss"], c.train["mean_loss"])


def test_long_runs_are_thinned_but_keep_first_and_last_step():
    data = P.panel_data(n_examples=20000, epoch_count=20, batch_size=1)
    assert data.total_steps == 400_000
    assert len(data.train) <= P.MAX_POINTS + 1
    assert data.train["step"].iloc[0] == 1 and data.train["step"].iloc[-1] == 400_000
    assert data.train["step"].is_monotonic_increasing


def test_lesson_claims_hold_on_the_panel():
    """The scripted experiments of lesson 2 show what the prose says they show."""
    base = P.panel_data()
    assert base.run.failure is None and base.summary.startswith(f"{base.total_steps} steps")
    # Task 1: multiplier 4 at batch 4 -> the loss falls, then climbs far above where it began.
    wild = P.panel_data(learning_rate_multiplier=4.0)
    assert np.nanmax(wild.train["mean_loss"].iloc[-50:]) > 3 * base.train["mean_loss"].iloc[0]
    # ... and at batch 1 the job fails, with an explanation in the summary.
    failed = P.panel_data(learning_rate_multiplier=4.0, batch_size=1)
    assert failed.summary.startswith("FAILED — loss became NaN")
    assert failed.best_epoch is not None or failed.validation["validation_loss"].isna().all()
    # Slow learning: a gentle multiplier leaves the loss well above the default's after 1 epoch.
    gentle = P.panel_data(learning_rate_multiplier=0.05, epoch_count=1)
    standard = P.panel_data(epoch_count=1)
    assert (
        gentle.validation["validation_loss"].iloc[0]
        > standard.validation["validation_loss"].iloc[0] + 0.3
    )
    # Batch-size noise: step-to-step jitter shrinks as the batch grows.
    jitter = [
        statistics.pstdev(np.diff(np.log(P.panel_data(batch_size=b).train["mean_loss"])))
        for b in (1, 4, 32)
    ]
    assert jitter[0] > jitter[1] > jitter[2]


def test_draw_panel_puts_training_and_validation_on_one_axes():
    data = P.panel_data(learning_rate_multiplier=4.0, batch_size=1)
    ax = P.draw_panel(data)
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert labels[:2] == ["training loss", P.VALIDATION_NOTE]
    assert "loss became NaN (job FAILED)" in labels
    assert ax.get_ylim() == (0.0, P.Y_LIMIT)
    train_line = ax.get_lines()[0]
    assert np.nanmax(train_line.get_ydata()) < P.Y_LIMIT  # blow-ups clipped to the top edge
    ax.figure.canvas.draw()


def test_compare_and_grid_helpers_draw_every_variant():
    variants = [{"learning_rate_multiplier": m} for m in (0.1, 1.0, 4.0)]
    ax = P.compare_runs(variants, title="multipliers")
    assert ax.get_title() == "multipliers"
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert labels == [
        f"learning_rate_multiplier={m}: {kind}"
        for m in (0.1, 1.0, 4.0)
        for kind in ("training (smoothed)", "validation*")
    ]
    fig = P.grid_runs([{"batch_size": b} for b in (1, 4, 32, 64)], ncols=3)
    visible = [a for a in fig.axes if a.get_visible()]
    assert [a.get_title() for a in visible] == [f"batch_size={b}" for b in (1, 4, 32, 64)]


def test_compare_runs_draws_past_six_variants_and_names_its_limit():
    epochs = [{"epoch_count": e, "n_examples": 50} for e in range(1, 9)]
    ax = P.compare_runs(epochs, validation=False)
    colours = [line.get_color() for line in ax.get_lines()]
    assert len(colours) == 8 and len(set(colours)) == 8  # one distinct line per variant
    too_many = [{"epoch_count": e} for e in range(1, len(P.COLOURS) + 2)]
    with pytest.raises(ValueError, match="11 variants.*at most 10 apart; use grid_runs"):
        P.compare_runs(too_many)


def test_settings_are_validated_like_the_simulator():
    with pytest.raises(ValueError, match="batch_size must be a positive integer"):
        P.PanelSettings(batch_size=0)
    with pytest.raises(ValueError, match="noise must be within 0..1"):
        P.panel_data(noise=2.0)


def test_widget_wiring_redraws_on_every_slider():
    pytest.importorskip("ipywidgets")
    panel = P.HyperparameterPanel()
    assert bytes(panel.image.value).startswith(PNG)
    assert "best epoch" in panel.summary.value
    for name, value in [
        ("epoch_count", 8),
        ("batch_size", 16),
        ("learning_rate_multiplier", 2.0),
        ("n_examples", 100),
        ("noise", 0.25),
    ]:
        before_png, before_count = panel.image.value, len(panel.redraw_ms)
        panel.sliders[name].value = value  # what a student's drag does
        assert getattr(panel.settings, name) == value
        assert len(panel.redraw_ms) == before_count + 1
        assert bytes(panel.image.value) != bytes(before_png) and bytes(
            panel.image.value
        ).startswith(PNG)
    assert panel.data.settings == P.PanelSettings(8, 16, 2.0, 100, 0.25)


def test_set_moves_sliders_with_a_single_redraw_and_shows_failure():
    panel = P.HyperparameterPanel()
    count = len(panel.redraw_ms)
    panel.set(learning_rate_multiplier=4.0, batch_size=1)
    assert len(panel.redraw_ms) == count + 1
    assert panel.sliders["batch_size"].value == 1
    assert "FAILED" in panel.summary.value and "#b00020" in panel.summary.value
    panel.set(n_examples=750)  # not one of the presets: added to the slider
    assert 750 in panel.sliders["n_examples"].options
    with pytest.raises(ValueError, match="unknown panel setting"):
        panel.set(learning_rate=0.001)


def test_redraw_is_well_under_a_second():
    panel = P.HyperparameterPanel()
    for b in (1, 2, 4, 8):
        panel.set(batch_size=b, n_examples=20000, epoch_count=20)
    # Generous bound for a shared CI machine; typical is ~100-200 ms (see the report).
    assert statistics.median(panel.redraw_ms) < 800, panel.redraw_ms


def test_display_bundle_has_the_widget_and_a_png_fallback():
    panel = P.HyperparameterPanel()
    bundle = panel._repr_mimebundle_()
    assert "application/vnd.jupyter.widget-view+json" in bundle
    assert base64.b64decode(bundle["image/png"]).startswith(PNG)


def test_an_invalid_combination_is_explained_not_raised():
    panel = P.HyperparameterPanel()
    panel.sliders["n_examples"].value = 50
    png = bytes(panel.image.value)
    panel.sliders["batch_size"].value = 64  # a student can drag into this
    assert panel.data is None
    assert "Not a valid job" in panel.summary.value
    assert "larger than the dataset" in panel.summary.value
    assert bytes(panel.image.value) == png  # the last valid plot stays
    panel.sliders["batch_size"].value = 4
    assert panel.data is not None and "best epoch" in panel.summary.value
