"""Exits without a signal and exceptions: the last completed step is saved, once, before the process goes."""

from __future__ import annotations

import logging

import pytest

from emergence import Trainer
from emergence.callbacks import AtexitCheckpointCallback, CheckpointCallback, OnExceptionCheckpointCallback
from emergence.checkpoint import list_checkpoints, read_checkpoint
from emergence.testing import Scenario
from tests.helpers import assert_same_arrays
from tests.scripts.driver import run_child
from tests.scripts.reference import assert_resume_is_exact, fit_here
from tests.scripts.train_subprocess import ScriptTask


def _names(run_dir):
    return [ref.path.name for ref in list_checkpoints(run_dir / "checkpoints")]


def test_sys_exit_from_user_code_in_a_callback_is_saved_before_the_process_exits(tmp_path):
    """The exception unwinding fit() is the stop: the atexit callback asks for its emergency checkpoint."""
    run_dir = tmp_path / "run"
    done = run_child(run_dir, 1000, "--callbacks", "checkpoint,atexit", "--every", "0", "--crash", "12:sysexit")
    assert done.returncode == 3, done.stderr
    assert _names(run_dir) == ["emergency_step_12.safetensors"]
    manifest = read_checkpoint(run_dir / "checkpoints" / "emergency_step_12.safetensors").manifest
    assert manifest["reason"] == "exception:SystemExit"
    assert_resume_is_exact(run_dir, tmp_path, 20)


def test_with_on_exception_and_atexit_both_installed_the_step_is_saved_once(tmp_path):
    run_dir = tmp_path / "run"
    done = run_child(
        run_dir, 1000, "--callbacks", "checkpoint,exception,atexit", "--every", "0", "--crash", "12:sysexit"
    )
    assert done.returncode == 3, done.stderr
    assert done.saved() == ["emergency_step_12.safetensors"]
    manifest = read_checkpoint(run_dir / "checkpoints" / "emergency_step_12.safetensors").manifest
    assert manifest["reason"] == "exception:SystemExit"


def test_main_program_failing_while_fit_runs_in_a_thread_stops_at_a_boundary_and_saves(tmp_path):
    run_dir = tmp_path / "run"
    done = run_child(run_dir, 100_000, "--callbacks", "atexit", "--fit-in-thread", "15")
    assert done.returncode == 1 and "main program failed" in done.stderr, done.stderr
    last = done.steps()[-1]
    assert last >= 15 and _names(run_dir) == [f"emergency_step_{last}.safetensors"]
    assert "stopping it at the next call boundary" in done.stderr
    assert_resume_is_exact(run_dir, tmp_path, last + 5)


def test_worker_thread_failure_that_sends_sigterm_is_saved_by_the_signal_callback(tmp_path):
    run_dir = tmp_path / "run"
    done = run_child(
        run_dir, 100_000, "--callbacks", "checkpoint,atexit,signal", "--every", "0", "--crash", "10:thread-sigterm"
    )
    assert done.returncode == 143, done.stderr
    assert "worker thread failed: ConnectionError" in done.lines
    last = done.steps()[-1]
    assert last >= 10 and _names(run_dir) == [f"emergency_step_{last}.safetensors"]


def test_a_clean_finish_leaves_nothing_for_the_exit_handler_to_do(tmp_path):
    run_dir = tmp_path / "run"
    done = run_child(run_dir, 6, "--callbacks", "atexit")  # no CheckpointCallback: no final save either
    assert done.returncode == 0 and done.lines[-1] == "fit returned max_steps", done.stderr
    assert _names(run_dir) == [] and done.saved() == []


def test_exception_in_a_callback_saves_the_last_completed_step_then_propagates(tmp_path):
    failure = RuntimeError("callback failed at step 9")
    scenario = Scenario(max_steps=50, run_dir=tmp_path / "run", task=ScriptTask((8,)), resume=None)
    outcome = scenario.raise_at(9, failure).run([OnExceptionCheckpointCallback()])
    assert outcome.exception is failure, "fit() propagates the callback's own exception"
    saved = tmp_path / "run" / "checkpoints" / "emergency_step_9.safetensors"
    assert read_checkpoint(saved).manifest["reason"] == "exception:RuntimeError"
    straight = fit_here(tmp_path / "straight", 9, resume=None)
    assert_same_arrays(straight.last_checkpoint.path, saved)


def test_failure_inside_the_jitted_step_says_the_donated_state_is_gone_and_keeps_the_error(tmp_path, caplog):
    trainer = Trainer(
        ScriptTask((8,), fail_at_step=7),
        [CheckpointCallback(every_n_steps=5), OnExceptionCheckpointCallback()],
        max_steps=50,
        run_dir=tmp_path,
        resume=None,
    )
    with caplog.at_level(logging.INFO, logger="emergence"), pytest.raises(Exception, match="injected failure"):
        trainer.fit()
    assert "cannot save step 7: the failed jitted call had consumed the (donated) state" in caplog.text
    assert _names(tmp_path) == ["step_5.safetensors"]
    read_checkpoint(tmp_path / "checkpoints" / "step_5.safetensors")


def test_negative_wait_is_refused():
    with pytest.raises(ValueError, match="wait_seconds must be >= 0"):
        AtexitCheckpointCallback(wait_seconds=-1)


def test_an_exit_save_with_the_kaggle_preset_keeps_the_open_logging_windows(tmp_path, monkeypatch):
    """While the interpreter exits no thread takes new work: the preset's background logger (rows on a writer
    thread) hands the emergency checkpoint its open windows all the same (`JobThread` drains what was queued)."""
    from emergence.platforms.presets import ORDER, preset

    monkeypatch.setenv("EMERGENCE_KAGGLE_ROOT", str(tmp_path / "kaggle"))
    run_dir = tmp_path / "run"
    order = ",".join(key for key in ORDER if key in preset("kaggle"))
    done = run_child(run_dir, 100_000, "--kaggle-order", order, "--fit-in-thread", "15")
    assert done.returncode == 1 and "main program failed" in done.stderr, done.stderr
    assert "could not save the open logging windows" not in done.stderr
    last = done.steps()[-1]
    manifest = read_checkpoint(run_dir / "checkpoints" / f"emergency_step_{last}.safetensors").manifest
    windows = manifest["callbacks"]["LogThrottleCallback"]["windows"]
    assert (windows["loss"]["count"] if windows else 0) == last % 4, (last, windows)  # rows every 4 steps
