"""tunelab.monitor: every snapshot shape the SDKs produce becomes the same table and plot."""

from __future__ import annotations

import json
import math
from types import SimpleNamespace

import matplotlib
import numpy as np
import pandas as pd
import pytest

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402

from tunelab import monitor  # noqa: E402
from tunelab.monitor import VALIDATION_LABEL, LivePlot, plot_loss, snapshots_frame, watch  # noqa: E402

EXPECTED = pd.DataFrame(
    {"step": [1, 2, 3, 4], "epoch": [0, 0, 1, 1], "mean_loss": [2.5, 2.0, 1.25, 1.0]}
)
REST = {
    "name": "tunedModels/demo-123",
    "state": "ACTIVE",
    "tuningTask": {
        "snapshots": [
            # proto3 JSON leaves out zero values: no "epoch" key during epoch 0.
            {"step": 1, "meanLoss": 2.5, "computeTime": "2024-05-01T10:00:00.500Z"},
            {"step": 2, "meanLoss": 2, "computeTime": "2024-05-01T10:00:01Z"},
            {"step": 3, "epoch": 1, "meanLoss": 1.25, "computeTime": "2024-05-01T10:00:02Z"},
            {"step": 4, "epoch": 1, "meanLoss": 1.0, "computeTime": "2024-05-01T10:00:03Z"},
        ]
    },
}


def _protos():
    pytest.importorskip("google.generativeai")
    from google.generativeai import protos

    return protos


def _core(frame: pd.DataFrame) -> pd.DataFrame:
    return frame[["step", "epoch", "mean_loss"]]


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def test_sdk_dict_snapshots_from_a_real_decoded_tuned_model():
    """google-generativeai's get_tuned_model decodes snapshots to dicts (snap.step fails)."""
    protos = _protos()
    from google.generativeai.types import model_types

    proto = protos.TunedModel(
        name="tunedModels/demo-123",
        state="ACTIVE",
        tuning_task={
            "snapshots": [{k: v for k, v in row.items()} for row in EXPECTED.to_dict("records")]
        },
    )
    model = model_types.decode_tuned_model(proto)
    assert isinstance(model.tuning_task.snapshots[0], dict)
    assert "epoch" not in model.tuning_task.snapshots[0]  # zero left out, as the SDK does
    for source in (model, model.tuning_task, model.tuning_task.snapshots):
        pd.testing.assert_frame_equal(_core(snapshots_frame(source)), EXPECTED)


def test_proto_plus_messages_and_operation_metadata():
    protos = _protos()
    snaps = [protos.TuningSnapshot(**row) for row in EXPECTED.to_dict("records")]
    snaps[0].compute_time = "2024-05-01T10:00:00Z"
    metadata = protos.CreateTunedModelMetadata(
        tuned_model="tunedModels/demo-123", total_steps=4, completed_steps=4, snapshots=snaps
    )
    operation = SimpleNamespace(metadata=metadata, name="tunedModels/demo-123/operations/x")
    for source in (snaps, metadata, operation, protos.TunedModel(tuning_task={"snapshots": snaps})):
        frame = snapshots_frame(source)
        pd.testing.assert_frame_equal(_core(frame), EXPECTED)
    assert frame["compute_time"].iloc[0] == pd.Timestamp("2024-05-01T10:00:00Z")
    assert pd.isna(frame["compute_time"].iloc[1])


def test_raw_rest_json_camel_case_and_missing_epoch():
    for source in (REST, json.dumps(REST), json.dumps(REST).encode(), REST["tuningTask"]):
        frame = snapshots_frame(source)
        pd.testing.assert_frame_equal(_core(frame), EXPECTED)
        assert list(frame.columns) == ["step", "epoch", "mean_loss", "compute_time"]
        assert str(frame["compute_time"].dt.tz) == "UTC"
        assert frame["compute_time"].iloc[0] == pd.Timestamp("2024-05-01T10:00:00.5Z")


def test_google_genai_objects():
    """google-genai gives pydantic objects; a raw HttpResponse carries the REST JSON body."""
    gtypes = pytest.importorskip("google.genai.types")
    response = gtypes.HttpResponse(headers={}, body=json.dumps(REST))
    pd.testing.assert_frame_equal(_core(snapshots_frame(response)), EXPECTED)
    objects = [SimpleNamespace(**row) for row in EXPECTED.to_dict("records")]
    pd.testing.assert_frame_equal(_core(snapshots_frame(objects)), EXPECTED)


def test_non_finite_losses_from_proto3_json_are_kept():
    frame = snapshots_frame(
        [
            {"step": 1, "meanLoss": 3.0},
            {"step": 2, "meanLoss": "Infinity"},
            {"step": 3, "meanLoss": "NaN"},
        ]
    )
    assert frame["mean_loss"].iloc[1] == math.inf
    assert math.isnan(frame["mean_loss"].iloc[2])


def test_rows_sorted_by_step_and_empty_inputs():
    shuffled = list(reversed(REST["tuningTask"]["snapshots"]))
    assert snapshots_frame(shuffled)["step"].tolist() == [1, 2, 3, 4]
    for empty in (
        [],
        None,
        {"tuningTask": {}},
        {"metadata": {"totalSteps": 9}},
        SimpleNamespace(tuning_task=None),
    ):
        frame = snapshots_frame(empty)
        assert frame.empty and list(frame.columns) == ["step", "epoch", "mean_loss"]


def test_dataframe_input_is_normalised():
    frame = pd.DataFrame({"step": [2, 1], "meanLoss": [1.0, 2.0]})
    out = snapshots_frame(frame)
    assert out["step"].tolist() == [1, 2] and out["epoch"].tolist() == [0, 0]
    assert out["mean_loss"].dtype == np.float64


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        (
            [{"step": 1, "mean_loss": 1.0}, {"loss": 2.0}],
            r"snapshots\[1\] is not a tuning snapshot",
        ),
        ([{"step": 1, "mean_loss": "high"}], r"snapshots\[0\]: mean_loss 'high' is not a number"),
        ([{"step": 1.5, "mean_loss": 1}], r"snapshots\[0\]: step 1.5 is not a whole number"),
        ([{"step": 1, "computeTime": "yesterday"}], r"compute_time 'yesterday'"),
        ("not json", r"snapshots: text is not JSON"),
        ({"tuningTask": {"snapshots": [{"stp": 1}]}}, r"snapshots.tuningTask.snapshots\[0\]"),
    ],
)
def test_bad_input_names_what_and_where(bad, message):
    with pytest.raises(ValueError, match=message):
        snapshots_frame(bad)


def test_wrong_type_is_a_clear_type_error():
    with pytest.raises(TypeError, match="expected a list of tuning snapshots"):
        snapshots_frame({"name": "tunedModels/x"})
    with pytest.raises(TypeError, match="got int"):
        snapshots_frame(42)


def _legend(ax) -> list[str]:
    return [t.get_text() for t in ax.get_legend().get_texts()]


def test_plot_loss_by_step_with_validation_overlay():
    ax = plot_loss(REST, validation=[2.2, 1.4], title="demo")
    assert ax.get_title() == "demo" and ax.get_xlabel() == "step"
    assert ax.get_ylabel() == "mean loss"
    assert _legend(ax) == ["training loss", VALIDATION_LABEL]
    train, val = ax.get_lines()[:2]
    assert list(train.get_ydata()) == [2.5, 2.0, 1.25, 1.0]
    # Validation for epoch e sits at the last step of that epoch (epochs 0 and 1 -> steps 2, 4).
    frame = snapshots_frame(REST)
    frame["epoch"] += 1
    ax = plot_loss(frame, validation=pd.Series([2.2, 1.4], index=[1, 2]))
    val = [line for line in ax.get_lines() if line.get_label() == VALIDATION_LABEL][0]
    assert list(val.get_xdata()) == [2, 4] and list(val.get_ydata()) == [2.2, 1.4]


def test_plot_loss_by_epoch_shows_each_epochs_mean():
    ax = plot_loss(EXPECTED, x="epoch")
    line = ax.get_lines()[0]
    assert list(line.get_xdata()) == [0, 1]
    assert list(line.get_ydata()) == [2.25, 1.125]


def test_plot_loss_hue_draws_one_line_per_run():
    runs = pd.concat(
        [
            EXPECTED.assign(learning_rate_multiplier=m, mean_loss=EXPECTED.mean_loss * m)
            for m in (0.1, 1.0, 2.0)
        ]
    )
    ax = plot_loss(runs, hue="learning_rate_multiplier")
    assert len([line for line in ax.get_lines() if len(line.get_xdata()) == 4]) == 3
    with pytest.raises(ValueError, match="hue column 'lr'"):
        plot_loss(runs, hue="lr")
    with pytest.raises(ValueError, match="x must be 'step' or 'epoch'"):
        plot_loss(runs, x="time")


def test_plot_loss_marks_where_a_run_diverged():
    frame = pd.DataFrame(
        {"step": [1, 2, 3, 4], "epoch": [1, 1, 2, 2], "mean_loss": [1.0, 3.0, np.inf, np.nan]}
    )
    ax = plot_loss(frame)
    labels = _legend(ax)
    assert "loss became inf at step 3" in labels
    fig = ax.figure
    fig.canvas.draw()  # must render without "Axis limits cannot be NaN or Inf"


class FakeService:
    """get_tuned_model stand-in: the job gains two snapshots per poll, then ends in `final`."""

    def __init__(self, final: str = "ACTIVE", polls_to_finish: int = 3) -> None:
        self.final = final
        self.polls = 0
        self.polls_to_finish = polls_to_finish

    def __call__(self, name: str):
        assert name == "tunedModels/demo-123"
        self.polls += 1
        n = min(2 * self.polls, 4)
        state = self.final if self.polls >= self.polls_to_finish else "CREATING"
        snaps = [{k: v for k, v in row.items() if v} for row in EXPECTED.head(n).to_dict("records")]
        return SimpleNamespace(
            name=name,
            state=SimpleNamespace(name=state),
            tuning_task=SimpleNamespace(snapshots=snaps),
        )


def test_watch_polls_until_active_and_redraws_in_place(capsys):
    fake = FakeService()
    live = LivePlot(display=False)
    model = watch("tunedModels/demo-123", every=0, get_tuned_model=fake, plot=live)
    assert model.state.name == "ACTIVE" and fake.polls == 3
    assert "tunedModels/demo-123: ACTIVE" in capsys.readouterr().out
    assert live.updates == 3
    assert "ACTIVE after 4 steps, last loss 1" in live.ax.get_title()
    pd.testing.assert_frame_equal(_core(live.frame), EXPECTED)


def test_watch_accepts_the_operation_and_reports_failure(capsys):
    operation = SimpleNamespace(
        name="tunedModels/demo-123/operations/abc",
        metadata=SimpleNamespace(tuned_model="tunedModels/demo-123"),
    )
    live = LivePlot(display=False)
    model = watch(operation, every=0, get_tuned_model=FakeService("FAILED", 1), plot=live)
    assert model.state.name == "FAILED"
    assert "FAILED" in live.ax.get_title()
    assert "FAILED" in capsys.readouterr().out


def test_watch_times_out_with_advice():
    with pytest.raises(TimeoutError, match="still CREATING"):
        watch(
            "tunedModels/demo-123",
            every=0,
            timeout=0,
            get_tuned_model=FakeService(polls_to_finish=99),
            plot=LivePlot(display=False),
        )
    with pytest.raises(TypeError, match="tuned model name"):
        watch(123, get_tuned_model=FakeService())


def test_liveplot_uses_one_display_handle_in_a_notebook(monkeypatch):
    shown = []

    class Handle:
        def update(self, obj):
            shown.append(("update", obj))

    def fake_display(obj, display_id=False):
        shown.append(("display", obj))
        return Handle()

    monkeypatch.setattr("IPython.display.display", fake_display)
    live = LivePlot(display=True)
    live.update([])
    live.update(EXPECTED, status="CREATING")
    assert [kind for kind, _ in shown] == ["display", "update"]
    assert all(obj is live.figure for _, obj in shown)
    assert monitor._in_notebook() is False


# --- against the real emulator, through the real SDK ------------------------------------------


def _examples(n: int = 40) -> list[dict[str, str]]:
    from tunelab import data_path

    with data_path("tuned_data_v1.jsonl").open(encoding="utf-8") as f:
        return [json.loads(line) for line, _ in zip(f, range(n), strict=False)]


def test_watch_follows_a_real_job_to_active(emulator, capsys):
    genai = pytest.importorskip("google.generativeai")
    emulator.store.time_scale = 300.0  # 50 steps x 1.2 s / 300: ~0.2 s, several polls
    operation = genai.create_tuned_model(
        source_model="models/gemini-1.5-flash-001-tuning",
        training_data=_examples(),
        id="watch-me",
        epoch_count=5,
        batch_size=4,
        learning_rate=0.001,
    )
    live = LivePlot(display=False)
    model = watch(operation, every=0.02, plot=live)
    assert model.state.name == "ACTIVE"
    assert live.updates >= 2, "expected at least one redraw while CREATING and the final one"
    assert len(live.frame) == operation.metadata.total_steps == 50
    assert live.frame["epoch"].tolist()[0] == 1 and live.frame["epoch"].max() == 5
    assert "watch-me: ACTIVE" in capsys.readouterr().out


def test_sdk_rest_and_operation_views_of_one_job_agree(emulator):
    genai = pytest.importorskip("google.generativeai")
    httpx = pytest.importorskip("httpx")
    operation = genai.create_tuned_model(
        source_model="models/gemini-1.5-flash-001-tuning",
        training_data=_examples(),
        id="three-views",
        epoch_count=3,
        batch_size=8,
        learning_rate=0.001,
    )
    model = operation.result()
    via_sdk = snapshots_frame(model)
    rest = httpx.get(
        f"{emulator.endpoint}/v1beta/tunedModels/three-views", params={"key": "k"}
    ).json()
    via_rest = snapshots_frame(rest)
    op_json = httpx.get(f"{emulator.endpoint}/v1beta/{operation.name}", params={"key": "k"}).json()
    via_operation = snapshots_frame(op_json)
    pd.testing.assert_frame_equal(via_sdk, via_rest)
    pd.testing.assert_frame_equal(_core(via_sdk), _core(via_operation))
    assert len(via_sdk) == 15 and str(via_sdk["compute_time"].dt.tz) == "UTC"
