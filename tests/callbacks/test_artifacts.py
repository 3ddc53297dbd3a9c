"""ArtifactExportCallback: progress.json and training_curves.png on disk during the run and after it, across resumes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image

from emergence import Callback, Trainer
from emergence.callbacks import ArtifactExportCallback, CheckpointCallback, LogThrottleCallback
from emergence.errors import RunDirError
from emergence.metrics import CSVSink, read_metrics_csv
from emergence.metrics.plots import PANEL_INCHES, series_from_rows, training_curves_figure
from emergence.testing import Scenario, toy_task


class ReadProgress(Callback):
    """Reads progress.json after the call that reaches `step` (what a dead session would have left)."""

    def __init__(self, step: int) -> None:
        self.step, self.seen = step, None

    def on_train_call_end(self, trainer, metrics):
        if trainer.step == self.step:
            self.seen = json.loads((trainer.run_dir / "progress.json").read_text())


@pytest.fixture
def scenario(scenario: Scenario) -> Scenario:
    """The kit's scenario, 40 steps, evaluated every 10, each save durable at once."""
    return scenario.but(max_steps=40, eval_every_n_steps=10, async_checkpoint=False)


def _fit(scenario: Scenario, *extra: Callback, output_dir: Path | None = None) -> None:
    callbacks = [
        CheckpointCallback(every_n_steps=10),
        LogThrottleCallback(every_n_steps=5, sinks=[CSVSink()]),
        ArtifactExportCallback(every_n_steps=10, every_n_seconds=None, output_dir=output_dir),
        *extra,
    ]
    assert scenario.run(callbacks).exception is None


def test_progress_json_exists_mid_run_and_names_the_last_checkpoint(scenario, run_dir):
    reader = ReadProgress(23)
    _fit(scenario.but(max_steps=30), reader)
    assert reader.seen["step"] == 20, "exported at step 20, before the kill a session could suffer at 23"
    # step 20's checkpoint is written at the save point after every hook of the call: the export names the one before
    assert reader.seen["last_checkpoint"]["path"] == "checkpoints/step_10.safetensors"
    assert reader.seen["metrics_step"] == 20 and set(reader.seen["metrics"]) == {"loss", "grad_norm", "val_loss"}
    final = json.loads((run_dir / "progress.json").read_text())
    assert (final["step"], final["stop_reason"], final["max_steps"]) == (30, "max_steps", 30)
    assert final["last_checkpoint"]["path"] == "checkpoints/final_step_30.safetensors"
    assert final["metrics_step"] == 30


def test_training_curves_png_is_a_valid_image_with_one_panel_per_tag_family_and_the_resume_marked(scenario, tmp_path):
    out = tmp_path / "out"
    _fit(scenario.but().stop_at(20, "time_budget"), output_dir=out)
    _fit(scenario, output_dir=out)
    assert json.loads((out / "progress.json").read_text())["resumed_at"] == [20]

    with Image.open(out / "training_curves.png") as image:
        image.verify()
    with Image.open(out / "training_curves.png") as image:
        assert image.format == "PNG"
        assert image.size == (3 * PANEL_INCHES[0] * 100, PANEL_INCHES[1] * 100), "three panels in one row"

    header, rows = read_metrics_csv(out / "metrics.csv")  # copied next to the PNG: the output dir is elsewhere
    figure = training_curves_figure(series_from_rows(header, rows), resumed_at=[20])
    assert [ax.get_title(loc="left") for ax in figure.axes] == ["grad_norm", "loss", "val_loss"]
    for ax in figure.axes:
        marks = [line for line in ax.get_lines() if line.get_linestyle() == ":"]
        assert [list(line.get_xdata()) for line in marks] == [[20, 20]], "one dotted line at the resume step"
    assert "resumed at step 20" in figure.get_suptitle()


def test_an_unwritable_output_dir_fails_before_training_with_one_line(tmp_path, read_only_dir, monkeypatch):
    blocked = read_only_dir(tmp_path / "blocked")
    (tmp_path / "cwd").mkdir()
    monkeypatch.chdir(tmp_path / "cwd")
    trainer = Trainer(toy_task(), [ArtifactExportCallback(output_dir=blocked)], max_steps=5, run_dir=tmp_path / "run")
    with pytest.raises(RunDirError, match="ArtifactExportCallback: output_dir .* is not writable") as error:
        trainer.fit()
    assert "\n" not in str(error.value) and trainer.step == 0
    assert list((tmp_path / "cwd").iterdir()) == [], "nothing may be written anywhere else instead"


def test_a_bad_interval_is_refused_with_one_line():
    with pytest.raises(ValueError, match="ArtifactExportCallback: every_n_steps must be a positive integer"):
        ArtifactExportCallback(every_n_steps=0)
