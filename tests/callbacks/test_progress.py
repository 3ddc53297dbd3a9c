"""RichProgressCallback: short plain lines when stdout is not a terminal, a live bar when it is, and no device syncs."""

from __future__ import annotations

import io
import re

import jax
import pytest
from rich.console import Console

from emergence import Trainer
from emergence.callbacks import CheckpointCallback, LogThrottleCallback, RichProgressCallback, TimeBudgetCallback
from emergence.metrics import CSVSink
from emergence.testing import FakeClock, toy_task


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


def test_without_a_terminal_it_prints_one_short_line_a_minute_with_rate_eta_budget_checkpoint_and_metrics(
    scenario, fake_clock
):
    console, out = plain_console()  # each call takes a second of fake_clock, which every callback reads
    callbacks = [
        TimeBudgetCallback(max_duration=3600.0, start=fake_clock(), clock=fake_clock),
        CheckpointCallback(every_n_steps=50),
        LogThrottleCallback(every_n_steps=25, sinks=[CSVSink()]),
        RichProgressCallback(console=console, clock=fake_clock),
    ]
    assert scenario.but(max_steps=150, async_checkpoint=False).run(callbacks).exception is None
    lines = out.getvalue().splitlines()
    assert [re.match(r"step (\d+)/", line).group(1) for line in lines] == ["0", "60", "120", "150"]
    assert all(len(line) < 200 for line in lines)
    assert "1.0 steps/s · ETA 0:01:30 · budget 0:59:00 left · ckpt 50 (0:00:10 ago) · grad_norm" in lines[1]
    assert lines[-1].endswith("stopped: max_steps")


def test_without_max_steps_it_shows_the_step_and_rate_without_a_total_or_eta(scenario, fake_clock):
    console, out = plain_console()
    progress = RichProgressCallback(console=console, clock=fake_clock, plain_every_n_seconds=2.0)
    assert scenario.but(max_steps=None, resume=None).stop_at(4, "enough").run([progress]).exception is None
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


def test_a_fit_with_progress_makes_no_host_transfer(scenario, fake_clock, monkeypatch):
    calls: list[str] = []
    for name in ("device_get", "block_until_ready"):
        real = getattr(jax, name)
        monkeypatch.setattr(jax, name, lambda *a, _real=real, _name=name, **k: (calls.append(_name), _real(*a, **k))[1])
    console, out = plain_console()
    progress = RichProgressCallback(console=console, clock=fake_clock, plain_every_n_seconds=5.0)
    assert scenario.but(max_steps=30).run([progress]).exception is None
    assert len(out.getvalue().splitlines()) == 8, "it did refresh: at 0, every 5 s, and at the end"
    assert calls == []


@pytest.mark.parametrize("terminal", [False, True])
def test_per_call_it_never_reads_the_metric_arrays(tmp_path, terminal):
    clock = FakeClock()
    callback = RichProgressCallback(
        console=Console(file=io.StringIO(), force_terminal=terminal), clock=clock, plain_every_n_seconds=1.0
    )
    trainer = Trainer(toy_task(), [callback], max_steps=10, run_dir=tmp_path)
    callback.setup(trainer)
    callback.on_fit_start(trainer)
    for _ in range(5):
        clock.advance(2.0)
        callback.on_train_call_end(trainer, {"loss": Poisoned()})
    callback.teardown(trainer)


@pytest.mark.parametrize(
    "arguments, message",
    [
        (dict(every_n_seconds=0), "every_n_seconds must be positive seconds"),
        (dict(plain_every_n_seconds=-1.0), "plain_every_n_seconds must be positive seconds"),
    ],
)
def test_bad_intervals_are_refused_with_one_line(arguments, message):
    with pytest.raises(ValueError, match=message) as error:
        RichProgressCallback(**arguments)
    assert "\n" not in str(error.value)
