"""RichProgressCallback: short plain lines when stdout is not a terminal, a live bar when it is, and no device syncs."""
from __future__ import annotations

import io
import re

import jax
import pytest
from rich.console import Console

from emergence import Callback, Trainer
from emergence.callbacks import CheckpointCallback, LogThrottleCallback, RichProgressCallback, TimeBudgetCallback
from emergence.metrics import CSVSink
from emergence.testing import FakeClock, toy_task
from tests.test_lightning_shape import StopAt


class Tick(Callback):
    """Advances fake clocks by `seconds` after every call (before the progress callback reads them)."""

    def __init__(self, seconds: float, *clocks: FakeClock) -> None:
        self.seconds, self.clocks = seconds, clocks

    def on_train_call_end(self, trainer, metrics):
        for clock in self.clocks:
            clock.advance(self.seconds)


class Poisoned:
    """A stand-in for a device array that fails the test if anything reads it (a host sync would)."""

    def __getattr__(self, name):
        raise AssertionError(f"progress touched a metric array ({name}): that syncs the device")

    def __float__(self):
        raise AssertionError("progress converted a metric to float: that syncs the device")

    def __array__(self, *args, **kwargs):
        raise AssertionError("progress converted a metric to numpy: that syncs the device")


def plain_console() -> tuple[Console, io.StringIO]:
    out = io.StringIO()
    return Console(file=out, force_terminal=False, width=200), out


def test_without_a_terminal_it_prints_one_short_line_a_minute_with_rate_eta_budget_checkpoint_and_metrics(tmp_path):
    clock, budget_clock = FakeClock(0.0), FakeClock(0.0)
    console, out = plain_console()
    callbacks = [TimeBudgetCallback(max_duration=3600.0, start=0.0, clock=budget_clock),
                 CheckpointCallback(every_n_steps=50), LogThrottleCallback(every_n_steps=25, sinks=[CSVSink()]),
                 Tick(1.0, clock, budget_clock), RichProgressCallback(console=console, clock=clock)]
    Trainer(toy_task(), callbacks, max_steps=150, run_dir=tmp_path, async_checkpoint=False).fit()
    lines = out.getvalue().splitlines()
    assert [re.match(r"step (\d+)/", line).group(1) for line in lines] == ["0", "60", "120", "150"]
    assert all(len(line) < 200 for line in lines)
    # the budget publishes trainer.time_left at its own hook, before Tick moved the clock a second on
    assert "1.0 steps/s · ETA 0:01:30 · budget 0:59:01 left · ckpt 50 (0:00:11 ago) · grad_norm" in lines[1]
    assert lines[-1].endswith("stopped: max_steps")


def test_without_max_steps_it_shows_the_step_and_rate_without_a_total_or_eta(tmp_path):
    clock = FakeClock(0.0)
    console, out = plain_console()
    stop = StopAt(4)
    Trainer(callbacks=[Tick(1.0, clock, FakeClock()), stop, RichProgressCallback(console=console, clock=clock,
                                                                                 plain_every_n_seconds=2.0)],
            run_dir=tmp_path, resume=None).fit(toy_task())
    lines = out.getvalue().splitlines()
    assert lines[0].startswith("step 0 · – steps/s · ETA –") and "/" not in lines[0].split("·")[0]
    assert lines[-1].startswith("step 4 · 1.0 steps/s · ETA –") and lines[-1].endswith("stopped: enough")


def test_stdout_that_is_not_a_terminal_selects_plain_lines(tmp_path, capsys):
    callback = RichProgressCallback()
    Trainer(toy_task(), [callback], max_steps=3, run_dir=tmp_path).fit()
    assert callback.mode == "plain"
    printed = capsys.readouterr().out.splitlines()
    assert printed[0].startswith("step 0/3") and printed[-1].startswith("step 3/3")
    assert len(printed) == 2, "a line at the start and one at the end: nothing per step"


def test_a_terminal_gets_a_live_bar(tmp_path):
    out = io.StringIO()
    callback = RichProgressCallback(console=Console(file=out, force_terminal=True, width=120))
    Trainer(toy_task(), [callback], max_steps=5, run_dir=tmp_path).fit()
    assert callback.mode == "live"
    assert "step 5/5 (100%)" in out.getvalue() and "━" in out.getvalue() and "stopped: max_steps" in out.getvalue()


def test_a_fit_with_progress_makes_no_host_transfer(tmp_path, monkeypatch):
    calls: list[str] = []
    for name in ("device_get", "block_until_ready"):
        real = getattr(jax, name)
        monkeypatch.setattr(jax, name, lambda *a, _real=real, _name=name, **k: (calls.append(_name), _real(*a, **k))[1])
    clock = FakeClock()
    console, out = plain_console()
    Trainer(toy_task(), [Tick(1.0, clock), RichProgressCallback(console=console, clock=clock,
                                                                plain_every_n_seconds=5.0)],
            max_steps=30, run_dir=tmp_path).fit()
    assert len(out.getvalue().splitlines()) == 8, "it did refresh: at 0, every 5 s, and at the end"
    assert calls == []


@pytest.mark.parametrize("terminal", [False, True])
def test_per_call_it_never_reads_the_metric_arrays(tmp_path, terminal):
    clock = FakeClock()
    callback = RichProgressCallback(console=Console(file=io.StringIO(), force_terminal=terminal), clock=clock,
                                    plain_every_n_seconds=1.0)
    trainer = Trainer(toy_task(), [callback], max_steps=10, run_dir=tmp_path)
    callback.setup(trainer)
    callback.on_fit_start(trainer)
    for _ in range(5):
        clock.advance(2.0)
        callback.on_train_call_end(trainer, {"loss": Poisoned()})
    callback.teardown(trainer)


@pytest.mark.parametrize("arguments, message", [
    (dict(every_n_seconds=0), "every_n_seconds must be positive seconds"),
    (dict(plain_every_n_seconds=-1.0), "plain_every_n_seconds must be positive seconds"),
])
def test_bad_intervals_are_refused_with_one_line(arguments, message):
    with pytest.raises(ValueError, match=message) as error:
        RichProgressCallback(**arguments)
    assert "\n" not in str(error.value)
