"""`trainer.log`: the one channel for a callback's host metric; it joins later calls' metrics, never changes one."""

from __future__ import annotations

import pytest

from emergence import Callback, Trainer
from emergence.callbacks import CheckpointCallback, LogThrottleCallback
from emergence.metrics import CSVSink, read_metrics_csv
from emergence.testing import toy_task


class Counter(Callback):
    """Logs how many calls it has seen; records the metrics dict each call handed it."""

    def __init__(self) -> None:
        self.calls, self.seen = 0, []

    def on_fit_start(self, trainer) -> None:
        trainer.log({"calls": 0.0})

    def on_train_call_end(self, trainer, metrics) -> None:
        self.seen.append(dict(metrics))
        self.calls += 1
        trainer.log({"calls": float(self.calls)})


class Reader(Callback):
    def __init__(self) -> None:
        self.seen = []

    def on_train_call_end(self, trainer, metrics) -> None:
        self.seen.append(dict(metrics))


@pytest.mark.parametrize("counter_first", [True, False])
def test_a_logged_value_joins_the_next_calls_metrics_whatever_the_order(tmp_path, counter_first):
    counter, reader = Counter(), Reader()
    callbacks = [counter, reader] if counter_first else [reader, counter]
    Trainer(toy_task(), callbacks, max_steps=4, run_dir=tmp_path, resume=None, progress=False).fit()
    assert [m["calls"] for m in reader.seen] == [0.0, 1.0, 2.0, 3.0]
    assert [m["calls"] for m in counter.seen] == [0.0, 1.0, 2.0, 3.0]  # every callback sees the same dict
    assert all({"loss", "grad_norm"} <= set(m) for m in reader.seen)


def test_logging_something_that_is_not_a_number_is_a_one_line_error(tmp_path):
    trainer = Trainer(toy_task(), max_steps=1, run_dir=tmp_path, resume=None, progress=False)
    with pytest.raises(TypeError, match=r"trainer.log takes host numbers \(a float per name\), got \{'x': 'high'\}"):
        trainer.log({"x": "high"})


@pytest.mark.parametrize("counter_first", [True, False])
def test_a_logged_value_is_written_as_the_mean_last_and_max_of_the_calls_it_joined(tmp_path, counter_first):
    """Host values fold into the loggers' totals by the rule the train call's metrics follow (`MetricTotals`):
    calls 1-4 saw `calls` = 0..3, calls 5-8 saw 4..7, whatever the callback order."""
    counter = Counter()
    logger = LogThrottleCallback(every_n_steps=4, sinks=[CSVSink()], stats=("mean", "last", "max"))
    callbacks = [counter, logger] if counter_first else [logger, counter]
    Trainer(toy_task(), callbacks, max_steps=8, run_dir=tmp_path, resume=None, progress=False).fit()
    _, rows = read_metrics_csv(tmp_path / "metrics.csv")
    assert [(r["step"], r["calls"], r["calls/last"], r["calls/max"]) for r in rows] == [
        ("4", "1.5", "3.0", "3.0"),
        ("8", "5.5", "7.0", "7.0"),
    ]


class SavedCounter(Counter):
    """A `Counter` whose count travels in checkpoints, logged again at `on_fit_start` (as `EventCount` does)."""

    def state_dict(self) -> dict:
        return {"calls": self.calls}

    def load_state_dict(self, state: dict) -> None:
        self.calls = state["calls"]

    def on_fit_start(self, trainer) -> None:
        trainer.log({"calls": float(self.calls)})


def test_a_logged_values_open_window_travels_in_the_checkpoint_so_a_resumed_run_writes_the_straight_rows(tmp_path):
    """Stopped at step 6, inside the window 5-8 of a row every 4 steps: the host value's part of that window is in
    the checkpoint, so the resumed run's row at 8 is the straight run's."""

    class StopAt6(Callback):
        def on_train_call_end(self, trainer, metrics) -> None:
            if trainer.step == 6:
                trainer.request_stop("user")

    def fit(run_dir, *stop):
        logger = LogThrottleCallback(every_n_steps=4, sinks=[CSVSink()])
        callbacks = [SavedCounter(), logger, CheckpointCallback(), *stop]
        Trainer(toy_task(), callbacks, max_steps=12, run_dir=run_dir, resume="auto", progress=False).fit()
        return read_metrics_csv(run_dir / "metrics.csv")[1]

    straight = fit(tmp_path / "straight")
    assert [r["step"] for r in fit(tmp_path / "resumed", StopAt6())] == ["4"]
    assert fit(tmp_path / "resumed") == straight and [r["calls"] for r in straight] == ["1.5", "5.5", "9.5"]
