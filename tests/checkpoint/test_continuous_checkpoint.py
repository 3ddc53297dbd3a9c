"""CheckpointCallback(continuous=True): the next save starts as soon as the previous one is durable."""

from __future__ import annotations

import time

import pytest

from emergence import Callback, Trainer
from emergence.callbacks import CheckpointCallback
from emergence.checkpoint import list_checkpoints, read_checkpoint
from emergence.checkpoint.async_writer import AsyncCheckpointWriter
from emergence.testing import toy_task


class SaveLog(Callback):
    """Records, for each periodic save asked for, whether a write was still in flight; and each durable file."""

    def __init__(self, writer):
        self.writer, self.asked, self.durable = writer, [], []

    def setup(self, trainer):
        real = trainer.save_checkpoint

        def save_checkpoint(kind, **kwargs):
            if kind == "periodic":
                self.asked.append((trainer.step, self.writer.busy))
            return real(kind, **kwargs)

        trainer.save_checkpoint = save_checkpoint

    def on_save_checkpoint(self, trainer, ref):
        self.durable.append(ref.step)


class Slow(Callback):
    """Each call takes `seconds` longer (a heavier step)."""

    def __init__(self, seconds):
        self.seconds = seconds

    def on_train_call_end(self, trainer, metrics):
        time.sleep(self.seconds)


def test_continuous_saves_follow_each_other_without_ever_waiting_for_a_write(tmp_path):
    writer = AsyncCheckpointWriter(before_write=lambda: time.sleep(0.03))  # each write takes ~6 calls
    log = SaveLog(writer)
    callbacks = [log, Slow(0.005), CheckpointCallback(continuous=True, keep_last=2)]
    trainer = Trainer(toy_task(), callbacks, max_steps=60, run_dir=tmp_path, resume=None, async_checkpoint=writer)
    trainer.fit()
    assert len(log.asked) >= 3 and not any(busy for _, busy in log.asked)  # never blocked on a pending write
    steps = [step for step, _ in log.asked]
    assert steps == sorted(set(steps))  # one save per step at most, in order
    periodic = [r.step for r in list_checkpoints(trainer.checkpoint_dir) if r.kind == "periodic"]
    assert len(periodic) == 2 and steps[-1] - steps[0] >= 30  # rotated; saves all along the run
    assert read_checkpoint(trainer.checkpoint_dir / "final_step_60.safetensors").manifest["step"] == 60


def test_min_interval_spaces_continuous_saves(scenario, fake_clock):
    callback = CheckpointCallback(
        continuous=True, min_interval_s=10.0, keep_last=None, clock=fake_clock, save_final=False
    )
    outcome = scenario.but(max_steps=35, resume=None, async_checkpoint=False).run([callback])  # one second per call
    assert outcome.exception is None
    assert [r.step for r in list_checkpoints(outcome.trainer.checkpoint_dir)] == [1, 11, 21, 31]


def test_without_async_writes_continuous_saves_at_every_call_past_the_interval(tmp_path):
    trainer = Trainer(
        toy_task(),
        [CheckpointCallback(continuous=True, keep_last=3, save_final=False)],
        max_steps=8,
        run_dir=tmp_path,
        resume=None,
        async_checkpoint=False,
    )
    trainer.fit()
    assert [r.step for r in list_checkpoints(trainer.checkpoint_dir)] == [6, 7, 8]


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"continuous": True, "every_n_steps": 5}, "drop every_n_steps"),
        ({"continuous": True, "every_n_seconds": 5.0}, "drop every_n_steps"),
        ({"continuous": True, "min_interval_s": -1}, "min_interval_s must be"),
    ],
)
def test_contradictory_continuous_settings_are_one_line_errors(kwargs, message):
    with pytest.raises(ValueError, match=message) as error:
        CheckpointCallback(**kwargs)
    assert "\n" not in str(error.value)
