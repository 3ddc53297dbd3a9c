"""SIGKILL the writer at each filesystem call of the save, rotation and final-link paths, then resume.

A writer process (`tests/scripts/manager_writer.py`) saves steps 3, 4, 5 and a final at 5 (a
hard link of step_5) with `keep_last=2`, into a run dir holding steps 1 and 2 of the same run
and a damaged `step_9` (which rotation moves aside). It is killed with a real SIGKILL at the
Nth write, fsync, rename, link or unlink, `latest.json`'s included. After each kill:

- the lock is free (the kernel dropped it) and `auto` loads the newest valid file, at least
  the newest save the writer reported durable, holding that step's state;
- nothing valid that should be kept was deleted: the two newest durable periodic files exist;
  the damaged file is never deleted (still there, or moved aside as `.corrupt`);
- no file with a checkpoint's name is torn; resuming and saving on finishes the run, and
  leaves no temp file behind.

The default suite kills at a rename, a rotation's unlink and the final's link; the sweep over every
call (35 of them) is marked slow.
"""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from emergence.checkpoint import CheckpointManager, KeepLastN, list_checkpoints, read_checkpoint
from emergence.checkpoint.discovery import UNREADABLE
from tests.helpers import manager_writer

SAVES = ("--steps", "3,4,5", "--final")


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    """A run dir of one run at step 2 with a damaged step_9, and the trace of the calls the next session makes."""
    run_dir = tmp_path_factory.mktemp("base") / "run"
    with CheckpointManager(run_dir, writer=False) as first:  # the writer script's first session, in this process
        first.find_resume("auto")
        for step in (1, 2):
            first.save(step, {"w": np.full(4, step, np.float32)})
    damaged = run_dir / "checkpoints" / "step_9.safetensors"
    data = bytearray((run_dir / "checkpoints" / "step_2.safetensors").read_bytes())
    data[-1] ^= 0xFF
    damaged.write_bytes(bytes(data))
    traced = run_dir.parent / "traced"
    shutil.copytree(run_dir, traced)
    trace = run_dir.parent / "calls.txt"
    assert manager_writer(traced, *SAVES, "--trace", str(trace)).returncode == 0
    calls = [line.split(" ", 1)[1] for line in trace.read_text().splitlines()]
    return run_dir, calls


def _kill_and_check(base_dir, tmp_path, kill_at: int) -> None:
    run_dir = tmp_path / "run"
    shutil.copytree(base_dir, run_dir)
    killed = manager_writer(run_dir, *SAVES, "--kill-at", str(kill_at))
    assert killed.returncode == -9, killed.stderr
    durable = {1, 2} | {int(line.split()[2]) for line in killed.stdout.splitlines() if line.startswith("durable")}
    folder = run_dir / "checkpoints"
    valid = {}
    for ref in list_checkpoints(folder):
        try:
            valid[ref.path.name] = read_checkpoint(ref.path)
        except UNREADABLE:
            assert ref.path.name == "step_9.safetensors", f"torn file {ref.path.name} after a kill at call {kill_at}"
    assert (folder / "step_9.safetensors").exists() or (folder / "step_9.safetensors.corrupt").exists()
    periodic = {file.manifest["step"] for name, file in valid.items() if name.startswith("step_")}
    assert sorted(durable | periodic)[-2:] == sorted(periodic)[-2:], f"a kept file was deleted (call {kill_at})"
    with CheckpointManager(run_dir, keep=[KeepLastN(2)], writer=False) as manager:  # the dead writer's lock is free
        resumed = manager.find_resume("auto")
        step = resumed.manifest["step"]
        assert step == max(periodic) >= max(durable) and np.all(resumed.arrays["w"] == step)
        assert not list(folder.glob(".tmp-*"))  # its temp files went, under the lock
        for more in (step + 1, step + 2):
            manager.save(more, {"w": np.full(4, more, np.float32)})
        manager.save(step + 2, {"w": np.full(4, step + 2, np.float32)}, kind="final")
    assert [r.step for r in list_checkpoints(folder) if r.kind == "periodic"] == [step + 1, step + 2]


def test_the_trace_covers_every_call_of_the_save_rotation_and_final_link_paths(base):
    _, calls = base
    kinds = {call.split()[0] for call in calls}
    assert kinds == {"write", "fsync", "replace", "link", "unlink"}
    assert "write .tmp-latest.json" in calls and "replace step_9.safetensors" in calls
    assert "link step_5.safetensors" in calls and "unlink step_1.safetensors" in calls


@pytest.mark.parametrize(
    "call", ["replace .tmp-step_3.safetensors", "unlink step_1.safetensors", "link step_5.safetensors"]
)
def test_a_kill_at_a_save_rotation_or_link_call_loses_nothing_valid(base, tmp_path, call):
    base_dir, calls = base
    _kill_and_check(base_dir, tmp_path, calls.index(call) + 1)


@pytest.mark.slow
def test_a_kill_at_every_filesystem_call_loses_nothing_valid(base, tmp_path):
    base_dir, calls = base
    for kill_at in range(1, len(calls) + 1):
        _kill_and_check(base_dir, tmp_path / str(kill_at), kill_at)
