"""LogThrottleCallback: metrics leave the device only at their interval, with the right values, and bad input fails.

Fetches are counted at the one door to the host (`jax.device_get`), so a stray per-step
transfer anywhere in the logging path shows up as a count that is too high.
"""

from __future__ import annotations

import logging

import jax
import numpy as np
import pytest

from emergence import Callback, Trainer
from emergence.callbacks import LogThrottleCallback
from emergence.metrics import CSVSink, read_metrics_csv
from emergence.testing import toy_task


class MemorySink:
    """Keeps every write as (step, values)."""

    def __init__(self) -> None:
        self.writes: list[tuple[int, dict[str, float]]] = []

    def start(self, run) -> None:
        self.writes = []

    def write(self, step, values) -> None:
        self.writes.append((step, dict(values)))

    def flush(self) -> None:
        pass

    def close(self) -> None:
        pass

    def steps(self, tag: str) -> list[int]:
        return [step for step, values in self.writes if tag in values]


@pytest.fixture
def fetches(monkeypatch) -> list[int]:
    """Counts every `jax.device_get` call (one entry per call)."""
    calls: list[int] = []
    real = jax.device_get

    def counting(tree):
        calls.append(1)
        return real(tree)

    monkeypatch.setattr(jax, "device_get", counting)
    return calls


def _fit(tmp_path, logger: LogThrottleCallback, max_steps: int, *extra: Callback, steps_per_call: int = 1) -> None:
    Trainer(
        toy_task(), [logger, *extra], max_steps=max_steps, run_dir=tmp_path, resume=None, steps_per_call=steps_per_call
    ).fit()


def test_a_metric_logged_every_100_steps_is_fetched_exactly_every_100_steps(tmp_path, fetches):
    sink = MemorySink()
    _fit(tmp_path, LogThrottleCallback(every_n_steps=100, sinks=[sink]), 1000)
    assert len(fetches) == 10
    assert sink.steps("loss") == sink.steps("grad_norm") == list(range(100, 1001, 100))


def test_per_tag_intervals_fetch_each_tag_at_its_own_steps_in_one_transfer_per_step(tmp_path, fetches):
    sink = MemorySink()
    _fit(tmp_path, LogThrottleCallback(every_n_steps=100, per_tag={"grad_norm": 250}, sinks=[sink]), 1000)
    assert sink.steps("loss") == list(range(100, 1001, 100))
    assert sink.steps("grad_norm") == [250, 500, 750, 1000]
    assert len(fetches) == 12, "the 10 loss steps, plus 250 and 750 for grad_norm alone"


def test_fused_calls_log_at_the_first_boundary_past_each_multiple(tmp_path, fetches):
    sink = MemorySink()
    _fit(tmp_path, LogThrottleCallback(every_n_steps=10, sinks=[sink]), 40, steps_per_call=3)
    assert sink.steps("loss") == [12, 21, 30, 40]
    assert len(fetches) == 4


class Recorder(Callback):
    """Fetches every call's metrics (the test's ground truth; a real run never does this)."""

    def __init__(self) -> None:
        self.values: list[dict[str, float]] = []

    def on_train_call_end(self, trainer, metrics):
        self.values.append({tag: float(v) for tag, v in jax.device_get(metrics).items()})


def test_logged_mean_last_and_max_are_those_of_the_window_since_the_last_fetch(tmp_path):
    sink, recorder = MemorySink(), Recorder()
    _fit(tmp_path, LogThrottleCallback(every_n_steps=5, sinks=[sink], stats=("mean", "last", "max")), 10, recorder)
    losses = np.array([values["loss"] for values in recorder.values], np.float32)
    for (_, values), window in zip(sink.writes, (losses[:5], losses[5:])):
        assert values["loss"] == pytest.approx(float(window.mean()), rel=1e-6)
        assert values["loss/last"] == float(window[-1])
        assert values["loss/max"] == float(window.max())
    assert [step for step, _ in sink.writes] == [5, 10]


def test_every_n_seconds_logs_on_the_clock_alone(scenario, fake_clock, fetches):
    sink = MemorySink()
    logger = LogThrottleCallback(every_n_steps=None, every_n_seconds=10.0, sinks=[sink], clock=fake_clock)
    assert scenario.but(max_steps=35, resume=None).run([logger]).exception is None  # each call takes 1 s
    assert sink.steps("loss") == [10, 20, 30, 35], "every 10 s, and the last window at max_steps"
    assert len(fetches) == 4


def test_metrics_csv_has_one_row_per_logged_step_under_a_stable_header(tmp_path):
    _fit(tmp_path, LogThrottleCallback(every_n_steps=5, sinks=[CSVSink()]), 20)
    header, rows = read_metrics_csv(tmp_path / "metrics.csv")
    assert header == ["step", "grad_norm", "loss"], "step first, then tags as the jitted step returns them (sorted)"
    assert [row["step"] for row in rows] == ["5", "10", "15", "20"]
    assert all(np.isfinite(float(row["loss"])) for row in rows)


@pytest.mark.parametrize(
    "arguments, message",
    [
        (dict(every_n_steps=0), "every_n_steps must be a positive integer"),
        (dict(every_n_steps=2.5), "every_n_steps must be a positive integer"),
        (dict(every_n_steps=True), "every_n_steps must be a positive integer"),
        (dict(every_n_seconds=0.0), "every_n_seconds must be positive seconds"),
        (dict(per_tag={"loss": -5}), r"per_tag\['loss'\] must be a positive integer"),
        (dict(every_n_steps=None), "logs nothing before max_steps"),
        (dict(stats=("median",)), "stats must be a non-empty subset"),
    ],
)
def test_bad_intervals_are_refused_with_one_line(arguments, message):
    with pytest.raises(ValueError, match=message) as error:
        LogThrottleCallback(**arguments)
    assert "\n" not in str(error.value)


def test_a_per_tag_interval_for_a_metric_the_task_does_not_return_is_refused_at_the_first_call(tmp_path):
    logger = LogThrottleCallback(per_tag={"reward": 100}, sinks=[MemorySink()])
    with pytest.raises(ValueError, match=r"per_tag names \['reward'\].*its metrics are \['grad_norm', 'loss'\]"):
        _fit(tmp_path, logger, 5)


def test_an_unwritable_metrics_file_is_reported_once_and_training_goes_on(tmp_path, read_only_dir, caplog):
    blocked = read_only_dir(tmp_path / "blocked")
    sink = MemorySink()
    logger = LogThrottleCallback(every_n_steps=5, sinks=[CSVSink(blocked / "metrics.csv"), sink])
    with caplog.at_level(logging.WARNING, logger="emergence"):
        _fit(tmp_path / "run", logger, 20)
    warnings = [r.getMessage() for r in caplog.records if "could not" in r.getMessage()]
    assert len(warnings) == 1 and "CSVSink could not start" in warnings[0] and "\n" not in warnings[0]
    assert sink.steps("loss") == [5, 10, 15, 20], "the other sinks still get every row"


class StepClock(Callback):
    """A clock that reads 0.1 s per train step taken (first in the list, so it moves before the logger looks)."""

    def __init__(self) -> None:
        self.now = 0.0

    def on_train_call_end(self, trainer, metrics) -> None:
        self.now = trainer.step * 0.1

    def __call__(self) -> float:
        return self.now


def test_rows_due_faster_than_max_rows_per_second_wait_and_their_means_cover_every_step(tmp_path):
    """The Kaggle preset's throttle by time (issue 18): a row every step at 10 steps a second, at most 2 rows a
    second: a row every 5 steps (and at the end), each the mean of every step since the last row."""
    every_step, throttled, clock = MemorySink(), MemorySink(), StepClock()
    _fit(tmp_path / "a", LogThrottleCallback(every_n_steps=1, sinks=[every_step]), 20)
    logger = LogThrottleCallback(every_n_steps=1, sinks=[throttled], clock=clock, max_rows_per_second=2.0)
    Trainer(toy_task(), [clock, logger], max_steps=20, run_dir=tmp_path / "b", resume=None).fit()
    assert throttled.steps("loss") == [1, 6, 11, 16, 20]
    losses = {step: values["loss"] for step, values in every_step.writes}
    for (previous, _), (step, values) in zip(throttled.writes, throttled.writes[1:]):
        expected = np.mean([losses[s] for s in range(previous + 1, step + 1)])
        assert values["loss"] == pytest.approx(expected, rel=1e-5), step


@pytest.mark.parametrize("bad", [0, -1.0, "2", True])
def test_max_rows_per_second_must_be_positive(bad):
    with pytest.raises(ValueError, match="max_rows_per_second must be positive seconds or None"):
        LogThrottleCallback(max_rows_per_second=bad)


class _CountedLogger(LogThrottleCallback):
    """Notes the step of every `on_train_call_end` it is given."""

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.hooked: list[int] = []

    def on_train_call_end(self, trainer, metrics) -> None:
        self.hooked.append(trainer.step)
        super().on_train_call_end(trainer, metrics)


class _EveryCall(Callback):
    """Fetches every call's metrics (the reference the rows are checked against)."""

    def __init__(self) -> None:
        self.values: list[dict[str, float]] = []

    def on_train_call_end(self, trainer, metrics) -> None:
        self.values.append({tag: float(v) for tag, v in jax.device_get(metrics).items()})


@pytest.mark.parametrize("background", [False, True])
def test_the_logger_runs_only_at_its_rows_and_writes_the_calls_own_mean_and_max(tmp_path, background):
    """Issue 18: the train call folds its metrics into the logger's channel (`MetricTotals`), so the logger's
    hook runs at the first call (to check `per_tag`) and at its rows only, and each row holds the mean and max of
    the calls' own values since the last row, inline or written on the row writer's thread."""
    sink, every = MemorySink(), _EveryCall()
    logger = _CountedLogger(every_n_steps=70, sinks=[sink], stats=("mean", "max"), background=background)
    _fit(tmp_path, logger, 150, every)
    assert logger.hooked == [1, 70, 140, 150]
    assert [step for step, _ in sink.writes] == [70, 140, 150]
    for (step, row), window in zip(sink.writes, [every.values[0:70], every.values[70:140], every.values[140:150]]):
        for tag in ("loss", "grad_norm"):
            assert row[tag] == pytest.approx(np.mean([v[tag] for v in window]), rel=1e-6), (step, tag)
            assert row[f"{tag}/max"] == max(v[tag] for v in window), (step, tag)
