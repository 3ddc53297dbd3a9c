"""A previous session's outputs are read, never trusted: symlinks there are not followed into this run's outputs."""

from __future__ import annotations

from emergence.metrics.csv_sink import CSVSink
from emergence.metrics.sink import SinkStart
from emergence.metrics.tensorboard_sink import TensorBoardSink


def test_a_symlinked_history_is_never_copied_into_the_new_run_dir(tmp_path):
    secret = tmp_path / "kaggle.json"
    secret.write_text('{"key": "secret"}')
    previous = tmp_path / "previous"
    (previous / "tensorboard").mkdir(parents=True)
    (previous / "metrics.csv").symlink_to(secret)
    (previous / "tensorboard" / "events.out.tfevents.1.host").symlink_to(secret)
    run = SinkStart(tmp_path / "run", step=10, history_dir=previous)
    (tmp_path / "run").mkdir()
    assert run.history("metrics.csv") is None and run.history("../kaggle.json") is None
    for sink in (CSVSink(), TensorBoardSink()):
        sink.start(run)
        sink.close()
    copied = [p for p in (tmp_path / "run").rglob("*") if p.is_file()]
    assert all("secret" not in p.read_bytes().decode("utf-8", "replace") for p in copied)
