"""The callback test kit itself: the scenario's scripted events, what its outcome reports, the pytest plugin."""

from __future__ import annotations

import logging
import re
import signal
from importlib.metadata import entry_points
from pathlib import Path

import pytest

from emergence import Callback
from emergence.callbacks import CheckpointCallback, SignalCheckpointCallback
from emergence.errors import CheckpointWriteError
from emergence.testing import DivergingTask, FakeClock, Scenario

pytest_plugins = ["pytester"]
DOC = Path(__file__).resolve().parents[2] / "docs" / "testing.md"


class SaveEveryHour(Callback):
    """A user's callback under test: a periodic checkpoint every hour of (injected) wall clock."""

    def __init__(self, clock) -> None:
        self.clock = clock
        self.last = None

    def on_fit_start(self, trainer) -> None:
        self.last = self.clock()

    def on_train_call_end(self, trainer, metrics) -> None:
        if self.clock() - self.last >= 3600:
            trainer.request_save("periodic", reason="hourly")
            self.last = self.clock()


def test_the_plugin_is_registered_through_the_pytest11_entry_point():
    assert "emergence.testing.plugin" in {e.value for e in entry_points(group="pytest11")}


def test_the_plugin_fixtures(fake_clock, run_dir, tiny_trainer, scenario):
    assert isinstance(fake_clock, FakeClock) and not run_dir.exists()
    trainer = tiny_trainer([CheckpointCallback(every_n_steps=5)])
    trainer.fit()
    assert trainer.step == 10 and (run_dir / "checkpoints" / "step_10.safetensors").exists()
    assert scenario.run_dir == run_dir and scenario.clock is fake_clock


def test_a_clock_jump_reaches_the_callback_under_test(scenario):
    outcome = scenario.clock_jump_at(7, 3600).run(lambda clock: [SaveEveryHour(clock)])
    assert outcome.events == [(7, "clock +3600 s")]
    assert outcome.checkpoints == ["step_7.safetensors"]
    assert [c.arg.step for c in outcome.hooks if c.hook == "on_save_checkpoint"] == [7]


def test_hooks_are_reported_in_firing_order_with_their_arguments(scenario):
    outcome = scenario.but(max_steps=3).run([CheckpointCallback(every_n_steps=2)])
    assert outcome.hook_names() == [
        "setup",
        "on_fit_start",
        "on_save_checkpoint",
        "on_save_checkpoint",
        "on_fit_end",
        "teardown",
    ]
    assert [c.step for c in outcome.hooks if c.hook == "on_train_call_end"] == [1, 2, 3]
    assert outcome.hooks[-3].arg.path.name == "final_step_3.safetensors"  # written before on_fit_end
    assert "metrics.csv" not in outcome.files and "checkpoints/latest.json" in outcome.files


def test_a_signal_at_step_k_is_a_real_signal(scenario):
    outcome = scenario.signal_at(7, signal.SIGTERM).run([SignalCheckpointCallback()])
    assert outcome.stop_reason == "signal:SIGTERM" and outcome.exit_code == 143 and outcome.step == 7
    assert outcome.checkpoints == ["emergency_step_7.safetensors"]


def test_a_signal_nothing_handles_is_refused_instead_of_ending_the_test_run(scenario):
    outcome = scenario.signal_at(3, signal.SIGUSR1).run([])
    assert isinstance(outcome.exception, RuntimeError) and "nothing in this process handles SIGUSR1" in str(
        outcome.exception
    )


def test_a_stop_at_step_k_ends_a_run_without_max_steps_and_without_the_no_stop_warning(scenario, caplog):
    with caplog.at_level(logging.WARNING, logger="emergence"):
        outcome = scenario.but(max_steps=None).stop_at(6, "enough").run([])
    assert outcome.stop_reason == "enough" and outcome.step == 6 and outcome.events == [(6, "stop 'enough'")]
    assert int(outcome.state.step) == 6, "the state fit() returned"
    assert "no callback can stop the run" not in caplog.text


def test_a_full_disk_fails_checkpoint_writes_with_enospc(scenario):
    outcome = scenario.disk_full_at(10).run([CheckpointCallback(every_n_steps=5)])
    assert isinstance(outcome.exception, CheckpointWriteError) and "No space left" in str(outcome.exception)
    assert outcome.checkpoints == ["step_5.safetensors"]


def test_an_exception_at_step_k_and_a_resume(scenario):
    outcome = scenario.raise_at(12).run(lambda clock: [CheckpointCallback(every_n_steps=5)])
    assert outcome.stop_reason == "exception:RuntimeError" and str(outcome.exception) == "scripted failure at step 12"
    assert outcome.state is None, "fit() returned nothing"
    again = outcome.resume()
    assert again.trainer.fit_start_step == 10 and again.stop_reason == "max_steps" and again.exception is None
    assert again.hook_names()[:3] == ["setup", "on_load_checkpoint", "on_fit_start"]


def test_resume_needs_a_callback_factory(scenario):
    with pytest.raises(TypeError, match="pass run\\(\\) a function of the clock"):
        scenario.but(max_steps=2).run([]).resume()


@pytest.mark.parametrize("step", [0, -1, 1.5, True])
def test_an_event_needs_a_step_of_at_least_one(scenario, step):
    with pytest.raises(ValueError, match="a scripted event needs a step >= 1"):
        scenario.raise_at(step)
    with pytest.raises(ValueError, match="at_step must be a step >= 1"):
        DivergingTask(step)


def test_a_scenario_without_a_run_dir_writes_to_a_fresh_temporary_one():
    assert Scenario().run_dir != Scenario().run_dir


def test_the_examples_in_docs_testing_md_pass_as_a_user_s_test_file(pytester):
    """The doc's code blocks, as one test file in a fresh directory: only the installed plugin provides the fixtures."""
    blocks = [b for b in re.findall(r"```python\n(.*?)```", DOC.read_text(), re.S) if "MyCounter" not in b]
    pytester.makepyfile(test_from_docs="\n\n".join(blocks))
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-p", "no:xdist", "-q")
    result.assert_outcomes(passed=5)
