"""One owner per run dir, with real processes: a second writer is refused, a killed holder leaves no lock behind."""

from __future__ import annotations

import signal

from tests.helpers import manager_writer, wait_for_line


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
