"""CheckpointManager without a Trainer: saves (background too), rotation, best-k, linked final, restore, failures."""

from __future__ import annotations

import errno
import json
import threading

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import emergence.checkpoint.durable as durable
from emergence.checkpoint import (
    CheckpointManager,
    EveryNSteps,
    KeepBestN,
    KeepLastN,
    list_checkpoints,
    read_checkpoint,
    read_manifest,
)
from emergence.checkpoint.async_writer import AsyncCheckpointWriter
from emergence.checkpoint.finite import NonFiniteStateError
from emergence.errors import CheckpointNotFoundError, CheckpointWriteError, RunDirError
from emergence.testing import FakeClock


def _state(value: float = 1.0) -> dict:
    return {"w": jnp.full((4,), value, jnp.float32), "rng": jax.random.key(0)}


def _steps(manager, kind):
    return [ref.step for ref in list_checkpoints(manager.directory) if ref.kind == kind]


class Held:
    """An `AsyncCheckpointWriter` whose writes wait until `release()`."""

    def __init__(self):
        self.gate = threading.Event()
        self.writer = AsyncCheckpointWriter(before_write=self.gate.wait)

    def release(self):
        self.gate.set()


@pytest.fixture
def full_disk(monkeypatch):
    """Checkpoint writes of a step >= the given one fail with ENOSPC before writing anything."""

    def fill(from_step: int) -> None:
        real = durable.write_checkpoint

        def write(path, arrays, manifest, *args, **kwargs):
            if manifest["step"] >= from_step:
                raise OSError(errno.ENOSPC, "No space left on device (scripted)", str(path))
            return real(path, arrays, manifest, *args, **kwargs)

        monkeypatch.setattr(durable, "write_checkpoint", write)

    return fill


def test_a_synchronous_save_is_durable_and_reported_once(tmp_path):
    manager = CheckpointManager(tmp_path, writer=False).open()
    ref = manager.save(5, _state(), kind="periodic", reason="periodic", metrics={"loss": 0.5})
    assert ref.checksum is not None and ref.path == tmp_path / "checkpoints" / "step_5.safetensors"
    assert read_checkpoint(ref.path).manifest["metrics"] == {"loss": 0.5}
    assert json.loads((manager.directory / "latest.json").read_text())["name"] == "step_5.safetensors"
    [done] = manager.poll()
    assert done.ref == ref and done.seconds > 0
    assert manager.poll() == [] and manager.latest == ref


def test_a_background_save_returns_at_once_and_is_reported_when_durable(tmp_path):
    held = Held()
    manager = CheckpointManager(tmp_path, writer=held.writer).open()
    ref = manager.save(5, _state())
    assert ref.checksum is None and not ref.path.exists() and manager.saving
    assert manager.poll() == []
    held.release()
    manager.wait_until_finished()
    [done] = manager.poll()
    assert done.ref.path == ref.path and done.ref.checksum is not None and not manager.saving
    manager.close()


def test_saves_land_in_the_order_they_were_made(tmp_path):
    held = Held()
    manager = CheckpointManager(tmp_path, writer=held.writer).open()
    manager.save(5, _state(1.0))
    held.release()
    manager.save(10, _state(2.0))  # waits for step 5's write first
    manager.save(15, _state(3.0), kind="emergency")  # durable before it returns
    assert [d.ref.step for d in manager.poll()] == [5, 10, 15]
    manager.close()


def test_the_save_policy_decides_and_a_periodic_save_resets_it(tmp_path):
    manager = CheckpointManager(tmp_path, save_policy=EveryNSteps(10), writer=False).open()
    manager.start(25)
    assert manager.next_step == 30 and not manager.should_save(29) and manager.should_save(31)
    manager.save(31, _state())
    assert not manager.should_save(39) and manager.should_save(40)
    manager.save(40, _state(), kind="emergency")  # only periodic saves reset the schedule
    assert manager.should_save(40)


def test_rotation_keeps_the_last_n_and_never_touches_emergency_or_final(tmp_path):
    manager = CheckpointManager(tmp_path, keep=[KeepLastN(2)], writer=False).open()
    for step in (5, 10, 15, 20, 25):
        manager.save(step, _state(), kind="emergency" if step == 10 else "periodic")
    manager.save(25, _state(), kind="final")
    assert _steps(manager, "periodic") == [20, 25]
    assert _steps(manager, "emergency") == [10] and _steps(manager, "final") == [25]


def test_rotation_in_the_background_deletes_only_after_the_new_file_is_durable(tmp_path):
    held = Held()
    manager = CheckpointManager(tmp_path, keep=[KeepLastN(1)], writer=held.writer).open()
    held.release()
    manager.save(5, _state())
    manager.wait_until_finished()
    held.gate.clear()
    manager.save(10, _state())
    assert _steps(manager, "periodic") == [5]  # the old file stays while the new one is written
    held.release()
    manager.wait_until_finished()
    assert _steps(manager, "periodic") == [10]
    manager.close()


def test_best_k_keeps_the_best_by_the_monitored_metric(tmp_path):
    manager = CheckpointManager(tmp_path, keep=[KeepBestN("val", "min", n=2)], writer=False).open()
    for step, value in {10: 0.5, 20: 0.9, 30: 0.1, 40: 0.7}.items():
        if manager.should_save_best({"val": value}):
            manager.save(step, _state(), kind="best", metrics={"val": value})
    assert _steps(manager, "best") == [10, 30]
    assert not manager.should_save_best({"val": 0.6}) and manager.should_save_best({"val": 0.2})
    with pytest.raises(KeyError, match="monitor 'val' is not among the metrics"):
        manager.should_save_best({"loss": 1.0})


def test_best_k_counts_the_best_save_still_in_flight(tmp_path):
    held = Held()
    manager = CheckpointManager(tmp_path, keep=[KeepBestN("val", "max", n=1)], writer=held.writer).open()
    manager.save(10, _state(), kind="best", metrics={"val": 0.9})
    assert not manager.should_save_best({"val": 0.5})  # step 10's 0.9 is not on disk yet, and still counts
    held.release()
    manager.close()


def test_best_k_ranks_the_best_files_an_earlier_session_left(tmp_path):
    first = CheckpointManager(tmp_path, keep=[KeepBestN("val", "min", n=1)], writer=False).open()
    first.save(10, _state(), kind="best", metrics={"val": 0.2})
    again = CheckpointManager(tmp_path, keep=[KeepBestN("val", "min", n=1)], writer=False).open()
    assert not again.should_save_best({"val": 0.3}) and again.should_save_best({"val": 0.1})
    again.save(20, _state(), kind="best", metrics={"val": 0.1})
    assert _steps(again, "best") == [20]


def test_a_final_at_the_step_of_the_last_periodic_file_is_its_hard_link(tmp_path):
    manager = CheckpointManager(tmp_path, writer=False).open()
    periodic = manager.save(10, _state(), callbacks={"cb": {"n": (1, 2)}}, metrics={"loss": 0.5})
    same = {"callbacks": {"cb": {"n": [1, 2]}}, "metrics": {"loss": 0.5}}  # the tuple as the file holds it
    final = manager.save(10, _state(), kind="final", reason="max_steps", **same)
    assert final.path.name == "final_step_10.safetensors"
    assert final.path.stat().st_ino == periodic.path.stat().st_ino and final.checksum == periodic.checksum
    latest = json.loads((manager.directory / "latest.json").read_text())
    assert (latest["name"], latest["reason"]) == ("final_step_10.safetensors", "max_steps")


def test_a_final_holding_other_state_is_written_in_full(tmp_path):
    manager = CheckpointManager(tmp_path, writer=False).open()
    periodic = manager.save(10, _state(), callbacks={"cb": {"n": 1}})
    final = manager.save(10, _state(), kind="final", callbacks={"cb": {"n": 2}})
    assert final.path.stat().st_ino != periodic.path.stat().st_ino
    assert read_manifest(final.path)["callbacks"] == {"cb": {"n": 2}}
    no_link = CheckpointManager(tmp_path / "b", writer=False, link_final=False).open()
    no_link.save(10, _state())
    assert no_link.save(10, _state(), kind="final").path.stat().st_nlink == 1


def test_restore_fills_a_fresh_state_and_folds_the_rng(tmp_path):
    manager = CheckpointManager(tmp_path, writer=False).open()
    saved = manager.save(7, _state(3.0))
    state, ref = manager.restore(_state(0.0))
    assert ref == saved and np.array_equal(state["w"], np.full(4, 3.0, np.float32))
    folded, _ = manager.restore(_state(0.0), saved.path, fold_in=1)
    assert not np.array_equal(jax.random.key_data(folded["rng"]), jax.random.key_data(state["rng"]))
    with pytest.raises(CheckpointNotFoundError, match="no checkpoint to restore yet"):
        CheckpointManager(tmp_path / "new", writer=False).restore(_state())


def test_resume_auto_finds_the_run_dirs_newest_file(tmp_path):
    first = CheckpointManager(tmp_path, writer=False).open()
    first.save(5, _state(1.0))
    first.save(9, _state(2.0), kind="emergency")
    manager = CheckpointManager(tmp_path, writer=False).open()
    file = manager.find_resume("auto")
    assert manager.resumed_from.step == 9 and manager.latest == manager.resumed_from
    state, _ = manager.restore(_state(0.0), file)
    assert float(state["w"][0]) == 2.0
    assert CheckpointManager(tmp_path / "new").find_resume("auto") is None
    assert manager.find_resume(None) is None


def test_a_failed_background_write_is_raised_on_the_callers_thread(tmp_path, full_disk):
    full_disk(10)
    manager = CheckpointManager(tmp_path, writer=AsyncCheckpointWriter()).open()
    manager.save(5, _state())
    manager.save(10, _state())  # fails on the writer thread
    with pytest.raises(CheckpointWriteError, match="could not write step_10.safetensors .* free disk space"):
        manager.wait_until_finished()
    manager.wait_until_finished()  # raised once
    assert [d.ref.step for d in manager.poll()] == [5]
    assert _steps(manager, "periodic") == [5]
    manager.close()


def test_a_failed_background_write_stops_the_next_background_save_before_it_starts(tmp_path, full_disk):
    full_disk(10)
    manager = CheckpointManager(tmp_path, writer=AsyncCheckpointWriter()).open()
    manager.save(10, _state())
    with pytest.raises(CheckpointWriteError):
        manager.save(11, _state())
    assert not (manager.directory / "step_11.safetensors").exists()
    manager.close()


def test_an_emergency_save_gets_its_chance_after_a_failed_background_write(tmp_path, monkeypatch):
    real, failing = durable.write_checkpoint, {"step": 10}

    def write(path, arrays, manifest, *args, **kwargs):
        if manifest["step"] == failing["step"]:
            raise OSError(errno.ENOSPC, "No space left on device (scripted)", str(path))
        return real(path, arrays, manifest, *args, **kwargs)

    monkeypatch.setattr(durable, "write_checkpoint", write)
    manager = CheckpointManager(tmp_path, writer=AsyncCheckpointWriter()).open()
    manager.save(10, _state())
    with pytest.raises(CheckpointWriteError, match="step_10"):
        manager.save(12, _state(), kind="emergency")
    assert (manager.directory / "emergency_step_12.safetensors").is_file()
    assert [d.ref.step for d in manager.poll()] == [12]
    manager.close()


def test_a_failed_write_while_another_exception_unwinds_is_logged_not_raised(tmp_path, full_disk, caplog):
    full_disk(0)
    manager = CheckpointManager(tmp_path, writer=AsyncCheckpointWriter()).open()
    manager.save(3, _state())
    assert isinstance(manager.settle(), CheckpointWriteError)
    assert "a background checkpoint write failed too" in caplog.text
    manager.close()


def test_a_non_finite_state_is_refused_before_anything_is_written(tmp_path):
    manager = CheckpointManager(tmp_path, writer=False, non_finite="before").open()
    with pytest.raises(NonFiniteStateError, match="w"):
        manager.save(4, {"w": jnp.array([1.0, jnp.nan])}, kind="emergency")
    assert list_checkpoints(manager.directory) == []


def test_a_process_that_does_not_write_saves_nothing(tmp_path):
    manager = CheckpointManager(tmp_path, writes=False).open()
    ref = manager.save(5, _state())
    assert not ref.path.exists() and manager.latest == ref and manager.poll() == []
    manager.close()


def test_open_fails_fast_on_an_unwritable_run_dir_and_cleans_stale_temp_files(tmp_path, read_only_dir):
    with pytest.raises(RunDirError, match="is not writable .* pass a writable run_dir"):
        CheckpointManager(read_only_dir(tmp_path / "ro")).open()
    stale = tmp_path / "run" / "checkpoints" / ".tmp-step_5.safetensors.123"
    stale.parent.mkdir(parents=True)
    stale.write_bytes(b"half")
    CheckpointManager(tmp_path / "run").open().close()
    assert not stale.exists()


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"keep": [KeepLastN(1), KeepLastN(2)]}, "one keep policy per kind"),
        ({"writer": "yes"}, "writer must be True, False or an AsyncCheckpointWriter"),
        ({"non_finite": "never"}, "non_finite must be 'beside' or 'before'"),
    ],
)
def test_bad_arguments_are_one_line_errors(tmp_path, kwargs, message):
    with pytest.raises(ValueError, match=message):
        CheckpointManager(tmp_path, **kwargs)


def test_policies_set_after_construction_are_checked_and_used(tmp_path):
    manager = CheckpointManager(tmp_path, writer=False).open()
    with pytest.raises(ValueError, match="keep policies rotate only periodic and best files"):
        manager.keep = [KeepBestN("val", kind="best"), type("Odd", (), {"kind": "final"})()]
    manager.keep, manager.save_policy = [KeepLastN(1)], EveryNSteps(5)
    manager.start(0)
    for step in range(1, 13):
        if manager.should_save(step):
            manager.save(step, _state())
    assert _steps(manager, "periodic") == [10]


def test_an_unknown_kind_is_a_one_line_error(tmp_path):
    with pytest.raises(ValueError, match="unknown checkpoint kind 'weekly'"):
        CheckpointManager(tmp_path, writer=False).save(1, _state(), kind="weekly")


def test_the_policies_context_uses_the_managers_clock(tmp_path):
    clock = FakeClock()
    from emergence.checkpoint import EveryNSeconds

    manager = CheckpointManager(tmp_path, save_policy=EveryNSeconds(60), writer=False, clock=clock).open()
    manager.start(0)
    clock.advance(59)
    assert not manager.should_save(3)
    clock.advance(1)
    assert manager.should_save(4)


def test_the_save_point_recipe_of_the_architecture_doc(tmp_path):
    """The calls docs/architecture.md gives the Trainer, in a plain loop: every save reported once, in order."""
    reported = []
    manager = CheckpointManager(tmp_path, save_policy=EveryNSteps(5), keep=[KeepLastN(2)]).open()
    assert manager.find_resume("auto") is None
    manager.start(0)
    state = _state(0.0)
    for step in range(1, 18):
        state = {"w": state["w"] + 1, "rng": state["rng"]}  # one "call"
        reported += manager.poll()  # the save point: report what became durable ...
        if step >= manager.next_step and manager.should_save(step):  # ... then save what is due
            manager.save(step, state, callbacks={"cb": {"seen": step}}, metrics={"loss": 1.0 / step})
    manager.wait_until_finished()  # fit end, clean stop: settle the write in flight, report it, write the final
    reported += manager.poll()
    final = manager.save(17, state, kind="final", reason="max_steps", background=False, callbacks={"cb": {"seen": 15}})
    reported += manager.poll()
    manager.close()
    assert [(d.ref.kind, d.ref.step) for d in reported] == [
        ("periodic", 5),
        ("periodic", 10),
        ("periodic", 15),
        ("final", 17),
    ]
    assert _steps(manager, "periodic") == [10, 15] and final.path.stat().st_nlink == 1
    resumed = CheckpointManager(tmp_path, writer=False)
    restored, ref = resumed.restore(_state(0.0), resumed.find_resume("auto"))
    assert ref.kind == "final" and float(restored["w"][0]) == 17.0
