"""Rotation ranks by validity, not by name: a damaged file takes no slot and is moved aside, never deleted."""

from __future__ import annotations

import jax.numpy as jnp

import emergence.checkpoint.rotation as rotation
from emergence.checkpoint import CheckpointManager, KeepBestN, KeepLastN, list_checkpoints


def _state():
    return {"w": jnp.zeros(4)}


def _names(directory):
    return sorted(p.name for p in directory.iterdir() if p.name not in ("latest.json", "run.json"))


def test_a_damaged_newer_file_never_pushes_the_new_ones_out(tmp_path, place, damage):
    """Issue 19, item 2: a damaged step_30 in a run at step 20 made keep_last=1 delete every new file."""
    folder = tmp_path / "checkpoints"
    place(folder, "step_20.safetensors")
    damage(place(folder, "step_30.safetensors"))
    manager = CheckpointManager(tmp_path, keep=[KeepLastN(1)], writer=False).open()
    assert manager.find_resume("auto").path.name == "step_20.safetensors"
    for step in (21, 22, 23):
        manager.save(step, _state())
        assert [r.step for r in list_checkpoints(folder)] == [step]
    assert _names(folder) == ["step_23.safetensors", "step_30.safetensors.corrupt"]


def test_a_damaged_older_file_is_moved_aside_and_takes_no_slot(tmp_path, place, damage):
    folder = tmp_path / "checkpoints"
    damage(place(folder, "step_10.safetensors"))
    place(folder, "step_15.safetensors")
    (folder / "step_10.safetensors.corrupt").write_bytes(b"an earlier one")  # never overwritten either
    manager = CheckpointManager(tmp_path, keep=[KeepLastN(2)], writer=False).open()
    manager.save(20, _state())
    assert _names(folder) == [
        "step_10.safetensors.corrupt",
        "step_10.safetensors.corrupt-2",
        "step_15.safetensors",
        "step_20.safetensors",
    ]


def test_a_damaged_best_file_takes_no_best_slot(tmp_path, place, damage):
    folder = tmp_path / "checkpoints"
    damage(place(folder, "best_step_10.safetensors", metrics={"val": 0.01}))
    manager = CheckpointManager(tmp_path, keep=[KeepBestN("val", "min", n=1)], writer=False).open()
    manager.save(20, _state(), kind="best", metrics={"val": 0.5})
    assert _names(folder) == ["best_step_10.safetensors.corrupt", "best_step_20.safetensors"]


def test_each_earlier_file_is_verified_once_and_the_managers_own_never(tmp_path, place, monkeypatch):
    folder = tmp_path / "checkpoints"
    for step in (5, 10):
        place(folder, f"step_{step}.safetensors")
    reads = []
    real = rotation.read_checkpoint
    monkeypatch.setattr(rotation, "read_checkpoint", lambda path: reads.append(path.name) or real(path))
    manager = CheckpointManager(tmp_path, keep=[KeepLastN(3)], writer=False).open()
    manager.find_resume("auto")  # step_10: read by the resume, known valid
    for step in (15, 20, 25):
        manager.save(step, _state())
    assert reads == ["step_5.safetensors"]
    assert [r.step for r in list_checkpoints(folder)] == [15, 20, 25]


def test_an_emergency_save_never_waits_for_rotation(tmp_path, place, monkeypatch):
    place(tmp_path / "checkpoints", "step_5.safetensors")  # not verified yet: rotation would read it in full
    reads = []
    monkeypatch.setattr(rotation, "read_checkpoint", lambda path: reads.append(path.name))
    manager = CheckpointManager(tmp_path, keep=[KeepLastN(1)], writer=False).open()
    manager.save(7, _state(), kind="emergency")
    manager.save(7, _state(), kind="final")
    assert reads == [] and (tmp_path / "checkpoints" / "step_5.safetensors").exists()
