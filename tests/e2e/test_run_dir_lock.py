"""One owner per run dir, with real processes: a second writer is refused, a killed holder leaves no lock behind."""

from __future__ import annotations

import signal
import subprocess
import sys

import pytest

from emergence.checkpoint import list_checkpoints
from tests.helpers import SCRIPTS, fit_toy_process, manager_writer, wait_for_line


def test_a_second_writer_is_refused_naming_the_holder_and_never_touches_its_files(tmp_path):
    """Issue 19, item 1: two runs in one run dir; the second start deleted the first one's in-flight temp file."""
    first = manager_writer(tmp_path, "--steps", "1", "--hold", "60", wait=False)
    try:
        wait_for_line(first, "opened")
        in_flight = tmp_path / "checkpoints" / ".tmp-step_2.safetensors.123.00000000deadbeef"
        in_flight.write_bytes(b"the first writer's save in flight")
        second = manager_writer(tmp_path, "--steps", "5")
        assert second.returncode == 2 and second.stdout == ""
        (line,) = second.stderr.strip().splitlines()[-1:]
        assert f"is in use by pid {first.pid} on host" in line and "or pass another run dir" in line
        assert in_flight.exists()  # only the lock's holder cleans temp files
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait()
    third = manager_writer(tmp_path, "--steps", "5")  # the kernel dropped the killed holder's lock
    assert third.returncode == 0, third.stderr
    assert not in_flight.exists()  # a dead writer's temp file goes, under the lock


@pytest.mark.slow  # three JAX processes
def test_a_second_trainer_process_is_refused_while_the_first_trains_and_resumes_after_its_kill(tmp_path):
    """Issue 19, item 1, through the Trainer: a requeued job starts while the old one is still training."""
    first = fit_toy_process(tmp_path, 10_000_000, "--every", "50")
    try:
        wait_for_line(first, "saved ")
        second = subprocess.run(
            [sys.executable, str(SCRIPTS / "fit_toy.py"), str(tmp_path), "100", "--resume", "none"],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert second.returncode != 0
        (line,) = second.stderr.strip().splitlines()[-1:]
        assert f"is in use by pid {first.pid} on host" in line
        assert first.poll() is None  # the first run trains on, untouched
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait()
    third = fit_toy_process(tmp_path, 1, "--every", "50")  # the kernel dropped the killed holder's lock
    out, err = third.communicate(timeout=120)
    assert third.returncode == 0, err
    kept = [ref.step for ref in list_checkpoints(tmp_path / "checkpoints")]
    assert kept and min(kept) >= 50  # the first run's checkpoints are all there; nothing of a second run
