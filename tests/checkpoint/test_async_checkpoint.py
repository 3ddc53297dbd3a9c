"""Async checkpoints: the loop blocks only for the device→host copy; durability, order and errors hold.

Writes are held back through the writer's `before_write` seam (an Event the test opens),
never by replacing what the write does, so every file here is written and read back
for real.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import textwrap
import threading
import time

import pytest

from emergence import Callback, Trainer
from emergence.callbacks import CheckpointCallback
from emergence.checkpoint import list_checkpoints, read_checkpoint
from emergence.checkpoint.async_writer import AsyncCheckpointWriter
from emergence.checkpoint.atomic import TEMP_PREFIX
from emergence.errors import CheckpointWriteError
from emergence.testing import toy_task
from tests.helpers import assert_same_arrays

WAIT = 30.0  # seconds a held write waits at most: a failing test must not hang


class HoldWrite:
    """A `before_write` seam: write number `which` (1-based) waits until `release` is set."""

    def __init__(self, which: int = 1) -> None:
        self.which, self.count, self.release = which, 0, threading.Event()

    def __call__(self) -> None:
        self.count += 1
        if self.count == self.which:
            assert self.release.wait(WAIT), "the test never released the held write"


class At(Callback):
    """Runs `actions[step](trainer)` at the end of that call."""

    def __init__(self, **actions) -> None:
        self.actions = {int(step.lstrip("s")): act for step, act in actions.items()}

    def on_train_call_end(self, trainer, metrics):
        if trainer.step in self.actions:
            self.actions[trainer.step](trainer)


class Saves(Callback):
    """Records each `on_save_checkpoint` and checks the file verifies at that moment."""

    def __init__(self) -> None:
        self.seen = []

    def on_save_checkpoint(self, trainer, ref):
        assert read_checkpoint(ref.path).checksum == ref.checksum
        self.seen.append((ref.kind, ref.step, trainer.step))


def _names(directory, kind="periodic"):
    return [r.step for r in list_checkpoints(directory) if r.kind == kind]


def _trainer(tmp_path, callbacks, writer, max_steps, **kwargs):
    return Trainer(
        toy_task(), callbacks, max_steps=max_steps, run_dir=tmp_path, resume=None, async_checkpoint=writer, **kwargs
    )


def _wait_until_ready(writer):
    give_up = time.monotonic() + WAIT
    while not writer.ready:
        assert time.monotonic() < give_up, "the background write never finished"
        time.sleep(0.005)


def test_a_held_write_does_not_stall_the_loop_and_fires_its_hook_only_once_durable(tmp_path):
    hold, saves, seen = HoldWrite(), Saves(), {}

    def look(trainer):
        seen[trainer.step] = (_names(trainer.checkpoint_dir), list(saves.seen), trainer.last_checkpoint)

    def release(trainer):
        look(trainer)
        hold.release.set()

    trainer = _trainer(
        tmp_path,
        [CheckpointCallback(every_n_steps=5, save_final=False), saves, At(s6=look, s7=look, s8=release)],
        AsyncCheckpointWriter(hold),
        max_steps=9,
    )
    trainer.fit()
    assert seen[6] == seen[7] == seen[8] == ([], [], None)
    assert saves.seen[0][:2] == ("periodic", 5) and saves.seen[0][2] > 8
    assert _names(trainer.checkpoint_dir) == [5] and trainer.last_checkpoint.step == 5


def test_the_snapshot_is_the_state_at_save_time_even_though_training_went_on(tmp_path):
    hold = HoldWrite()
    held = _trainer(
        tmp_path / "async",
        [CheckpointCallback(every_n_steps=5, save_final=False), At(s9=lambda t: hold.release.set())],
        AsyncCheckpointWriter(hold),
        max_steps=9,
    )
    held.fit()
    straight = _trainer(tmp_path / "sync", [CheckpointCallback(every_n_steps=5, save_final=False)], False, max_steps=5)
    straight.fit()
    name = "checkpoints/step_5.safetensors"
    assert_same_arrays(tmp_path / "async" / name, tmp_path / "sync" / name)


def test_rotation_deletes_the_old_file_only_after_the_new_one_is_durable(tmp_path):
    hold, seen = HoldWrite(which=2), {}
    writer = AsyncCheckpointWriter(hold)

    def look(trainer):
        seen[trainer.step] = _names(trainer.checkpoint_dir)

    def release(trainer):
        look(trainer)
        hold.release.set()
        _wait_until_ready(writer)

    trainer = _trainer(
        tmp_path,
        [CheckpointCallback(every_n_steps=5, keep_last=1, save_final=False), At(s11=look, s12=release, s13=look)],
        writer,
        max_steps=13,
    )
    trainer.fit()
    assert seen[11] == seen[12] == [5]
    assert seen[13] == [10]
    assert not list(trainer.checkpoint_dir.glob(f"{TEMP_PREFIX}*"))


@pytest.mark.parametrize("kind", ["emergency", "final"])
def test_emergency_and_final_saves_wait_for_the_pending_write_then_are_durable_on_return(tmp_path, kind):
    hold, saves, returned = HoldWrite(), Saves(), {}

    def release_soon(trainer):
        threading.Timer(0.2, hold.release.set).start()

    def save_emergency(trainer):
        ref = trainer.save_checkpoint("emergency", reason="test")
        returned["ref"], returned["saves"] = ref, list(saves.seen)

    actions = {"s6": release_soon, "s7": save_emergency} if kind == "emergency" else {"s7": release_soon}
    trainer = _trainer(
        tmp_path, [CheckpointCallback(every_n_steps=5), saves, At(**actions)], AsyncCheckpointWriter(hold), max_steps=7
    )
    trainer.fit()
    assert [s[:2] for s in saves.seen] == [("periodic", 5), (kind, 7)]
    assert read_checkpoint(trainer.checkpoint_dir / f"{kind}_step_7.safetensors").manifest["step"] == 7
    if kind == "emergency":
        assert returned["saves"][-1][:2] == ("emergency", 7) and returned["ref"].checksum is not None


def _hold_then_remove_run_dir(hold):
    def act(trainer):
        shutil.rmtree(trainer.checkpoint_dir)
        hold.release.set()

    return act


def test_a_failed_background_write_surfaces_at_the_next_call_boundary_as_one_line(tmp_path):
    hold = HoldWrite()
    writer = AsyncCheckpointWriter(hold)

    def fail(trainer):
        _hold_then_remove_run_dir(hold)(trainer)
        _wait_until_ready(writer)

    trainer = _trainer(tmp_path, [CheckpointCallback(every_n_steps=5), At(s6=fail)], writer, max_steps=50)
    with pytest.raises(
        CheckpointWriteError,
        match=r"^could not write step_5\.safetensors \(No such file or "
        r"directory\); earlier checkpoints are intact",
    ) as caught:
        trainer.fit()
    assert "\n" not in str(caught.value)
    assert trainer.step == 6 and trainer.stop_reason == "exception:CheckpointWriteError"  # at step 6's save point


def test_a_failed_background_write_surfaces_at_the_next_save(tmp_path):
    hold = HoldWrite()
    writer = AsyncCheckpointWriter(hold)

    def fail_then_save(trainer):
        _hold_then_remove_run_dir(hold)(trainer)
        trainer.save_checkpoint("periodic")

    trainer = _trainer(tmp_path, [CheckpointCallback(every_n_steps=5), At(s6=fail_then_save)], writer, max_steps=50)
    with pytest.raises(CheckpointWriteError, match=r"could not write step_5\.safetensors"):
        trainer.fit()
    assert trainer.step == 6


def test_a_failed_background_write_surfaces_at_fit_end(tmp_path):
    hold = HoldWrite()
    trainer = _trainer(
        tmp_path,
        [
            CheckpointCallback(every_n_steps=5, save_final=False),
            At(s5=lambda t: threading.Timer(0.2, _hold_then_remove_run_dir(hold), [t]).start()),
        ],
        AsyncCheckpointWriter(hold),
        max_steps=5,
    )
    with pytest.raises(CheckpointWriteError, match=r"could not write step_5\.safetensors"):
        trainer.fit()
    assert trainer.step == 5


def test_an_emergency_save_is_still_written_when_the_background_write_before_it_failed(tmp_path):
    hold = HoldWrite()
    writer = AsyncCheckpointWriter(hold)

    def fail_then_emergency(trainer):
        _hold_then_remove_run_dir(hold)(trainer)
        _wait_until_ready(writer)
        trainer.checkpoint_dir.mkdir()
        trainer.save_checkpoint("emergency", reason="test")

    trainer = _trainer(
        tmp_path, [CheckpointCallback(every_n_steps=5), At(s6=fail_then_emergency)], writer, max_steps=50
    )
    with pytest.raises(CheckpointWriteError, match=r"could not write step_5\.safetensors"):
        trainer.fit()
    assert read_checkpoint(trainer.checkpoint_dir / "emergency_step_6.safetensors").manifest["step"] == 6


def test_an_exception_during_a_pending_write_lets_it_finish_and_keeps_the_original_error(tmp_path):
    hold, saves = HoldWrite(), Saves()

    def boom(trainer):
        threading.Timer(0.2, hold.release.set).start()
        raise RuntimeError("boom")

    trainer = _trainer(
        tmp_path, [CheckpointCallback(every_n_steps=5), saves, At(s6=boom)], AsyncCheckpointWriter(hold), max_steps=50
    )
    with pytest.raises(RuntimeError, match="boom"):
        trainer.fit()
    assert saves.seen[0][:2] == ("periodic", 5)


def test_last_save_seconds_measures_the_whole_write_not_the_stall(tmp_path):
    hold = HoldWrite()
    stalls = []

    def save(trainer):
        threading.Timer(0.3, hold.release.set).start()
        started = time.perf_counter()
        trainer.save_checkpoint("periodic")
        stalls.append(time.perf_counter() - started)

    trainer = _trainer(tmp_path, [At(s2=save)], AsyncCheckpointWriter(hold), max_steps=4)
    trainer.fit()
    assert stalls[0] < 0.25 <= trainer.last_save_seconds


def test_saves_outside_fit_are_written_before_returning(tmp_path):
    trainer = _trainer(tmp_path, [], True, max_steps=3)
    trainer.fit()
    ref = trainer.save_checkpoint("periodic")
    assert read_checkpoint(ref.path).checksum == ref.checksum == trainer.last_checkpoint.checksum


def test_async_checkpoint_must_be_a_bool_or_a_writer(tmp_path):
    with pytest.raises(ValueError, match="async_checkpoint must be True, False or an AsyncCheckpointWriter"):
        Trainer(toy_task(), [], max_steps=1, run_dir=tmp_path, async_checkpoint="yes")


def test_the_writer_refuses_a_second_job_before_the_first_is_collected():
    writer = AsyncCheckpointWriter()
    writer.submit(lambda: 1)
    with pytest.raises(RuntimeError, match="still pending"):
        writer.submit(lambda: 2)
    assert writer.collect() == 1 and not writer.busy
    with pytest.raises(RuntimeError, match="no checkpoint write is pending"):
        writer.collect()
    writer.close()


_FULL_DISK = textwrap.dedent("""
    import resource, signal, sys
    from emergence import Trainer
    from emergence.callbacks import CheckpointCallback
    from emergence.testing import toy_task
    run_dir, limit = sys.argv[1], int(sys.argv[2])
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    Trainer(toy_task(hidden=(64,)), [CheckpointCallback(every_n_steps=5, save_final=False)], max_steps=20,
            run_dir=run_dir, resume="auto").fit()
""")


def test_a_full_disk_in_the_background_is_a_one_line_error_and_leaves_no_temp_file(tmp_path):
    first = Trainer(
        toy_task(hidden=(64,)),
        [CheckpointCallback(every_n_steps=5, save_final=False)],
        max_steps=5,
        run_dir=tmp_path,
        resume=None,
    )
    first.fit()
    size = first.last_checkpoint.path.stat().st_size
    done = subprocess.run(
        [sys.executable, "-c", _FULL_DISK, str(tmp_path), str(size // 2)], capture_output=True, text=True, timeout=120
    )
    assert done.returncode != 0
    last_line = done.stderr.strip().splitlines()[-1]
    assert last_line.startswith(
        "emergence.errors.CheckpointWriteError: could not write step_10.safetensors (File too large)"
    ), done.stderr[-2000:]
    assert not list(first.checkpoint_dir.glob(f"{TEMP_PREFIX}*"))
    assert _names(first.checkpoint_dir) == [5]
    assert read_checkpoint(first.last_checkpoint.path).checksum == first.last_checkpoint.checksum


def test_a_host_snapshot_keeps_its_values_when_the_state_is_donated_right_after():
    import jax
    import jax.numpy as jnp
    import numpy as np

    from emergence.checkpoint import flatten_to_host

    state = {"w": jnp.arange(1024, dtype=jnp.float32)}
    snapshot, _ = flatten_to_host(state)
    step = jax.jit(lambda s: {"w": s["w"] * 2 + 1}, donate_argnums=0)
    for _ in range(3):
        state = step(state)
    jax.block_until_ready(state)
    assert np.array_equal(snapshot["w"], np.arange(1024, dtype=np.float32))


_FIT_OUTLIVES_MAIN = textwrap.dedent("""
    import sys, threading, time
    from emergence import Callback, Trainer
    from emergence.callbacks import CheckpointCallback
    from emergence.testing import toy_task

    class Slow(Callback):
        def on_train_call_end(self, trainer, metrics):
            time.sleep(0.05)

    trainer = Trainer(toy_task(), [CheckpointCallback(every_n_steps=5, keep_last=2), Slow()], max_steps=30,
                      run_dir=sys.argv[1], resume=None)
    threading.Thread(target=trainer.fit).start()
    time.sleep(0.3)  # main ends while fit() is still saving every 5 steps in its thread
""")


def test_saves_still_land_when_the_interpreter_shuts_down_under_a_running_fit(tmp_path):
    done = subprocess.run(
        [sys.executable, "-c", _FIT_OUTLIVES_MAIN, str(tmp_path)], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr[-2000:]
    assert _names(tmp_path / "checkpoints") == [25, 30]
    assert _names(tmp_path / "checkpoints", "final") == [30]


def test_a_checkpoint_whose_tensors_are_not_stored_in_name_order_still_verifies(tmp_path):
    import hashlib
    import json
    import struct

    import numpy as np

    from emergence.checkpoint.format import CHECKSUM_KEY, MANIFEST_KEY
    from emergence.errors import CorruptCheckpointError

    a, b = np.arange(4, dtype=np.float32), np.arange(6, dtype=np.int32)
    table = {
        "a": {"dtype": "F32", "shape": [4], "data_offsets": [24, 40]},  # "b" is stored first
        "b": {"dtype": "I32", "shape": [6], "data_offsets": [0, 24]},
    }
    manifest_json = json.dumps({"step": 1, "format_version": 1})
    sha = hashlib.sha256(
        json.dumps(table, sort_keys=True).encode() + manifest_json.encode() + a.tobytes() + b.tobytes()
    )
    header = json.dumps(
        {**table, "__metadata__": {MANIFEST_KEY: manifest_json, CHECKSUM_KEY: "sha256:" + sha.hexdigest()}}
    ).encode()
    path = tmp_path / "step_1.safetensors"
    path.write_bytes(struct.pack("<Q", len(header)) + header + b.tobytes() + a.tobytes())
    file = read_checkpoint(path)
    assert np.array_equal(file.arrays["a"], a) and np.array_equal(file.arrays["b"], b)
    damaged = bytearray(path.read_bytes())
    damaged[-1] ^= 1
    path.write_bytes(bytes(damaged))
    with pytest.raises(CorruptCheckpointError, match="checksum mismatch"):
        read_checkpoint(path)
