"""Promise 2: SIGTERM / SIGINT / SIGUSR1 leave a durable emergency checkpoint of the last completed step."""

from __future__ import annotations

import logging
import signal
import threading
import time

import pytest

from emergence import Trainer
from emergence.callbacks import SignalCheckpointCallback
from emergence.checkpoint import list_checkpoints, read_checkpoint
from emergence.testing import toy_task
from tests.scripts.driver import Child
from tests.scripts.reference import assert_resume_is_exact


@pytest.mark.parametrize("sig, code", [(signal.SIGTERM, 143), (signal.SIGINT, 130), (signal.SIGUSR1, 138)])
def test_signal_saves_the_last_completed_step_and_exits_128_plus_signum(tmp_path, sig, code):
    run_dir = tmp_path / "run"
    child = Child(run_dir, 100_000, "--callbacks", "checkpoint,signal", "--every", "1000000")  # the loop may run
    child.wait_for("step 20")  # thousands of steps before a loaded parent reads this line
    child.send(sig)
    done = child.finish()
    assert done.returncode == code, done.stderr
    last = done.steps()[-1]
    assert done.saved() == [f"emergency_step_{last}.safetensors"]
    saved = read_checkpoint(run_dir / "checkpoints" / f"emergency_step_{last}.safetensors")
    assert saved.manifest["reason"] == f"signal:{sig.name}" and saved.manifest["step"] == last
    assert f"stopped by signal:{sig.name}: fit() returns, exit code {code}" in done.stderr
    assert_resume_is_exact(run_dir, tmp_path, last + 5)


def test_signal_during_a_long_first_compile_is_honoured_at_the_first_call_boundary(tmp_path):
    run_dir = tmp_path / "run"
    child = Child(run_dir, 100_000, "--callbacks", "checkpoint,signal", "--trace-seconds", "3")
    child.wait_for("ready")
    time.sleep(1.0)  # on_fit_start is over; the first call is being traced and compiled
    child.send(signal.SIGTERM)
    done = child.finish()
    assert done.returncode == 143, done.stderr
    assert done.steps() == [1]
    assert done.saved() == ["emergency_step_1.safetensors"]


def test_the_emergency_save_waits_for_the_call_in_flight_only(tmp_path):
    """Calls of ~0.5 s of device work; unbounded, the host would be ~30 calls (15 s) ahead when the signal comes."""
    run_dir = tmp_path / "run"
    child = Child(run_dir, 100_000, "--callbacks", "signal", "--work-seconds", "0.5")
    child.wait_for("step 4")
    began = time.monotonic()
    child.wait_for("step 7")
    call = (time.monotonic() - began) / 3  # the host waits for each call: its steps pace at the device's rate
    sent = child.send(signal.SIGTERM)
    while not list((run_dir / "checkpoints").glob("emergency_step_*.safetensors")):
        assert time.monotonic() - sent < 30, "no emergency checkpoint 30 s after SIGTERM"
        time.sleep(0.005)
    latency = time.monotonic() - sent
    done = child.finish()
    assert done.returncode == 143, done.stderr
    assert latency < 1.5 * call + 0.3, f"{latency:.2f} s from SIGTERM to a durable emergency file ({call:.2f} s calls)"


def test_signal_during_an_evaluation_saves_the_step_it_evaluated(tmp_path):
    run_dir = tmp_path / "run"
    child = Child(
        run_dir,
        100_000,
        "--callbacks",
        "checkpoint,signal",
        "--every",
        "1000",
        "--eval-every",
        "5",
        "--eval-seconds",
        "2",
    )
    child.wait_for("evaluating")  # printed from inside the first evaluation (at step 5), which takes 2 s
    child.send(signal.SIGTERM)
    done = child.finish()
    assert done.returncode == 143, done.stderr
    assert "evaluated 5" in done.lines and done.steps()[-1] == 5
    assert done.saved() == ["emergency_step_5.safetensors"]
    assert read_checkpoint(run_dir / "checkpoints" / "emergency_step_5.safetensors").manifest["step"] == 5


def test_signal_during_a_synchronous_periodic_save_ends_in_both_files(tmp_path):
    run_dir = tmp_path / "run"
    child = Child(
        run_dir, 100_000, "--callbacks", "checkpoint,signal", "--every", "5", "--sync-checkpoint", "--slow-save", "1.5"
    )
    child.wait_for("saving")
    child.send(signal.SIGTERM)
    done = child.finish()
    assert done.returncode == 143, done.stderr
    last = done.steps()[-1]  # 5, unless this (loaded) parent read "saving" only after the 1.5 s save was over
    periodic = [f"step_{step}.safetensors" for step in range(5, last + 1, 5)]
    assert done.saved() == [*periodic, f"emergency_step_{last}.safetensors"]
    for name in done.saved():
        assert read_checkpoint(run_dir / "checkpoints" / name).manifest["step"] == int(name.split("_")[-1][:-12])


def test_signal_during_a_background_periodic_write_ends_in_both_files(tmp_path):
    run_dir = tmp_path / "run"
    child = Child(run_dir, 100_000, "--callbacks", "checkpoint,signal", "--every", "5", "--slow-write", "2")
    child.wait_for("writing")  # printed on the writer thread, while the loop trains on
    child.send(signal.SIGTERM)
    done = child.finish()
    assert done.returncode == 143, done.stderr
    last = done.steps()[-1]  # the loop may reach step 10 and queue its periodic save first: then that lands too
    periodic = [f"step_{step}.safetensors" for step in range(5, last + 1, 5)]
    assert done.saved() == [*periodic, f"emergency_step_{last}.safetensors"]
    assert read_checkpoint(run_dir / "checkpoints" / f"emergency_step_{last}.safetensors").manifest["step"] == last


def test_signal_during_on_fit_start_work_says_there_is_nothing_to_save(tmp_path):
    run_dir = tmp_path / "run"
    child = Child(run_dir, 100_000, "--callbacks", "checkpoint,signal", "--slow-start", "2")
    child.wait_for("starting")
    child.send(signal.SIGTERM)
    done = child.finish()
    assert done.returncode == 143, done.stderr
    assert done.steps() == [] and done.saved() == []
    assert "signal:SIGTERM: nothing to save (no train call completed since step 0)" in done.stderr
    assert "Traceback" not in done.stderr and not list((run_dir / "checkpoints").glob("*.safetensors"))


def test_fit_returns_after_the_emergency_save_with_the_exit_code_and_handlers_are_restored(scenario, run_dir):
    def sentinel(signum, frame):
        raise AssertionError("the previous handler must not run during fit()")

    previous = signal.signal(signal.SIGUSR1, sentinel)
    try:
        outcome = scenario.but(max_steps=50, resume=None).signal_at(7, signal.SIGUSR1).run([SignalCheckpointCallback()])
        assert signal.getsignal(signal.SIGUSR1) is sentinel
    finally:
        signal.signal(signal.SIGUSR1, previous)
    assert outcome.exception is None and outcome.exit_code == 138, "fit() returned; the exit code is the caller's"
    assert outcome.stop_reason == "signal:SIGUSR1" and outcome.step == 7 and int(outcome.state.step) == 7
    assert [r.path.name for r in list_checkpoints(run_dir / "checkpoints")] == ["emergency_step_7.safetensors"]


def test_outside_the_main_thread_it_warns_and_training_is_unaffected(tmp_path, caplog):
    trainer = Trainer(toy_task(), [SignalCheckpointCallback()], max_steps=5, run_dir=tmp_path, resume=None)
    before = signal.getsignal(signal.SIGTERM)
    worker = threading.Thread(target=trainer.fit)
    with caplog.at_level(logging.WARNING, logger="emergence"):
        worker.start()
        worker.join(timeout=60)
    assert trainer.step == 5 and signal.getsignal(signal.SIGTERM) is before
    assert "outside the main thread" in caplog.text


@pytest.mark.parametrize(
    "signals, message",
    [
        ((signal.SIGKILL,), "SIGKILL cannot be caught"),
        ((signal.SIGTERM, signal.SIGSTOP), "SIGSTOP cannot be caught"),
        ((12345,), "12345 is not a signal number"),
        ((), "signals is empty"),
    ],
)
def test_bad_signal_lists_are_one_line_errors(signals, message):
    with pytest.raises(ValueError, match=message):
        SignalCheckpointCallback(signals=signals)


@pytest.mark.parametrize("limit", [0, -1, 1.5])
def test_bad_in_flight_limits_are_one_line_errors(limit):
    with pytest.raises(ValueError, match="max_calls_in_flight must be a positive integer or None"):
        SignalCheckpointCallback(max_calls_in_flight=limit)
