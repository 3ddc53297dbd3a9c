"""`trainer.log`: the one channel for a callback's host metric; it joins later calls' metrics, never changes one."""

from __future__ import annotations

import pytest

from emergence import Callback, Trainer
from emergence.callbacks import LogThrottleCallback
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
