"""`trainer.log`: the one channel for a callback's host metric; it joins later calls' metrics, never changes one."""

from __future__ import annotations

import pytest

from emergence import Callback, Trainer
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
