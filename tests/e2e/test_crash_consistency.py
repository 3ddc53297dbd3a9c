"""Promises 2 and 3 under fire: random SIGKILLs and SIGTERMs, a full disk, a read-only dir, badly timed signals.

Every trial is a real training process killed with a real signal at a random instant;
what it leaves is read back with the real reader and compared bitwise with one
uninterrupted run of the same task (`reference`, recorded after every step).
"""

from __future__ import annotations

import random
import signal
import time

import pytest

from emergence.checkpoint import read_checkpoint
from tests.scripts.driver import Child, run_child
from tests.scripts.reference import assert_directory_consistent, assert_holds, fit_here, record_states

REFERENCE_STEPS = 300
EVERY = 5


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """`reference[step]`: the state of an uninterrupted run after `step` steps, as a checkpoint stores it."""
    return record_states(tmp_path_factory.mktemp("reference"), REFERENCE_STEPS)


def _kill_at_random(run_dir, sig, rng, *args):
    """Kill a training child at a random instant: before its first step, or after a random step (saves included)."""
    child = Child(run_dir, REFERENCE_STEPS - 10, "--every", str(EVERY), "--keep", "2", *args)
    step = rng.randint(0, 150)
    child.wait_for(f"step {step}" if step else "ready")
    time.sleep(rng.uniform(0.0, 0.5 if step == 0 else 0.03))
    child.send(sig)
    return child.finish()


def _sigkill_trial(tmp_path, reference, rng):
    run_dir = tmp_path / "run"
    done = _kill_at_random(run_dir, signal.SIGKILL, rng, "--callbacks", "checkpoint")
    assert done.returncode == -signal.SIGKILL
    refs = assert_directory_consistent(run_dir / "checkpoints", temps_allowed=True)
    last_seen = max(done.steps(), default=0)
    newest = max(refs, key=lambda r: r.order).step if refs else 0
    # saves are written in the background: the one begun before the last step seen may be
    # in flight, the one before it is durable (a save waits for the previous write first)
    assert newest >= max(0, (last_seen - 1) // EVERY * EVERY - EVERY), (newest, last_seen)
    for ref in refs:
        assert_holds(reference[ref.step], ref.path)
    resumed = fit_here(run_dir, newest + 3)
    assert resumed.fit_start_step == newest
    assert_holds(reference[newest + 3], resumed.last_checkpoint.path)
    assert_directory_consistent(run_dir / "checkpoints")


def _sigterm_trial(tmp_path, reference, rng):
    run_dir = tmp_path / "run"
    done = _kill_at_random(run_dir, signal.SIGTERM, rng, "--callbacks", "checkpoint,signal")
    assert done.returncode == 143, done.stderr
    last = done.steps()[-1]
    assert done.saved()[-1] == f"emergency_step_{last}.safetensors"
    assert_directory_consistent(run_dir / "checkpoints")
    assert_holds(reference[last], run_dir / "checkpoints" / f"emergency_step_{last}.safetensors")
    resumed = fit_here(run_dir, last + 3)
    assert resumed.resumed_from.kind == "emergency" and resumed.fit_start_step == last
    assert_holds(reference[last + 3], resumed.last_checkpoint.path)


@pytest.mark.parametrize("trial", range(10))
def test_sigkill_at_a_random_instant_never_leaves_a_torn_checkpoint_and_resumes_exactly(tmp_path, reference, trial):
    _sigkill_trial(tmp_path, reference, random.Random(1000 + trial))


@pytest.mark.slow
@pytest.mark.parametrize("trial", range(50))
def test_sigkill_50_trials(tmp_path, reference, trial):
    _sigkill_trial(tmp_path, reference, random.Random(5000 + trial))


@pytest.mark.parametrize("trial", range(5))
def test_sigterm_at_a_random_instant_saves_the_last_completed_step_and_resumes_exactly(tmp_path, reference, trial):
    _sigterm_trial(tmp_path, reference, random.Random(2000 + trial))


@pytest.mark.slow
@pytest.mark.parametrize("trial", range(20))
def test_sigterm_20_trials(tmp_path, reference, trial):
    _sigterm_trial(tmp_path, reference, random.Random(7000 + trial))


def test_disk_full_mid_save_is_one_line_and_keeps_earlier_checkpoints_and_latest(tmp_path):
    run_dir = tmp_path / "run"
    # once step_20 is durable no file may grow past 8 KiB: latest.json still fits, a 52 KB checkpoint does not
    done = run_child(
        run_dir,
        1000,
        "--hidden",
        "64,64",
        "--every",
        "10",
        "--fsize-after",
        "20:8192",
        "--callbacks",
        "checkpoint,exception,signal",
    )
    assert done.returncode == 1
    last_line = done.stderr.strip().splitlines()[-1]
    assert last_line.startswith(
        "emergence.errors.CheckpointWriteError: could not write step_30.safetensors "
        "(File too large); earlier checkpoints are intact"
    ), last_line
    assert "the emergency checkpoint failed too" in done.stderr
    refs = assert_directory_consistent(run_dir / "checkpoints")
    assert [r.path.name for r in refs] == ["step_10.safetensors", "step_20.safetensors"]
    assert read_checkpoint(run_dir / "checkpoints" / "step_20.safetensors").manifest["step"] == 20


def test_read_only_run_dir_is_refused_before_training(tmp_path, read_only_dir):
    locked = read_only_dir(tmp_path / "locked")
    done = run_child(locked / "run", 50, "--callbacks", "checkpoint,exception,atexit,signal")
    assert done.returncode == 1
    last_line = done.stderr.strip().splitlines()[-1]
    assert last_line.startswith("emergence.errors.RunDirError: run dir") and "pass a writable run_dir" in last_line
    assert not any(line.startswith(("ready", "step", "saved")) for line in done.lines)


def test_signal_during_a_periodic_save_lets_it_finish_then_saves_the_emergency(tmp_path, reference):
    run_dir = tmp_path / "run"
    child = Child(run_dir, 100_000, "--every", "10", "--slow-save", "1.0", "--callbacks", "checkpoint,signal")
    child.wait_for("saving")  # the periodic save of step 10 is gathering
    child.send(signal.SIGTERM)
    done = child.finish()
    assert done.returncode == 143, done.stderr
    assert done.saved() == ["step_10.safetensors", "emergency_step_10.safetensors"]
    for ref in assert_directory_consistent(run_dir / "checkpoints"):
        assert_holds(reference[10], ref.path)


def test_two_signals_in_a_row_do_not_tear_the_emergency_save(tmp_path, reference):
    run_dir = tmp_path / "run"
    child = Child(run_dir, 100_000, "--every", "0", "--slow-save", "1.0", "--callbacks", "checkpoint,signal")
    child.wait_for("step 5")
    child.send(signal.SIGTERM)
    child.wait_for("saving")  # the emergency save is gathering
    child.send(signal.SIGTERM)
    child.send(signal.SIGINT)
    done = child.finish()
    assert done.returncode == 143, done.stderr
    last = done.steps()[-1]
    assert done.saved() == [f"emergency_step_{last}.safetensors"]
    assert "ignored 2 more signal(s)" in done.stderr
    assert_holds(reference[last], run_dir / "checkpoints" / f"emergency_step_{last}.safetensors")


def test_signal_before_the_first_step_saves_nothing_says_so_and_exits_cleanly(tmp_path):
    run_dir = tmp_path / "run"
    done = run_child(run_dir, 50, "--signal-in-setup", "SIGTERM", "--callbacks", "checkpoint,signal")
    assert done.returncode == 143, done.stderr
    assert done.steps() == [] and done.saved() == []
    assert "signal:SIGTERM: nothing to save (no train call completed since step 0)" in done.stderr
    assert "Traceback" not in done.stderr
    assert not list((run_dir / "checkpoints").glob("*.safetensors"))
