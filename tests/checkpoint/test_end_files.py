"""A final save at the step of a periodic file this run wrote writes no second copy of the arrays."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

from emergence import Trainer
from emergence.callbacks import CheckpointCallback
from emergence.checkpoint import list_checkpoints, read_checkpoint
from emergence.testing import toy_task


def _fit(tmp_path, max_steps, async_checkpoint=True, **callback):
    trainer = Trainer(
        toy_task(),
        [CheckpointCallback(every_n_steps=5, keep_last=2, **callback)],
        max_steps=max_steps,
        run_dir=tmp_path,
        resume=None,
        async_checkpoint=async_checkpoint,
    )
    trainer.fit()
    return trainer


def _latest(trainer):
    return json.loads((trainer.checkpoint_dir / "latest.json").read_text())


@pytest.mark.parametrize("async_checkpoint", [True, False])
def test_a_final_save_at_a_periodic_step_is_a_hard_link_of_it(tmp_path, async_checkpoint):
    trainer = _fit(tmp_path, 10, async_checkpoint)
    folder = trainer.checkpoint_dir
    periodic, final = folder / "step_10.safetensors", folder / "final_step_10.safetensors"
    assert os.path.samefile(periodic, final) and os.stat(final).st_nlink == 2
    assert trainer.last_checkpoint.path == final and trainer.last_checkpoint.kind == "final"
    assert trainer.last_checkpoint.checksum == read_checkpoint(final).checksum
    assert _latest(trainer)["name"] == "final_step_10.safetensors"
    resumed = Trainer(toy_task(), [], max_steps=10, run_dir=tmp_path, resume="auto")
    resumed.fit()
    assert resumed.resumed_from.path == final and resumed.step == 10


def test_the_linked_final_outlives_the_rotation_of_its_periodic_name(tmp_path):
    _fit(tmp_path, 10)
    trainer = _fit_more(tmp_path, 20)
    assert [r.step for r in list_checkpoints(trainer.checkpoint_dir) if r.kind == "periodic"] == [15, 20]
    final = trainer.checkpoint_dir / "final_step_10.safetensors"
    assert os.stat(final).st_nlink == 1 and read_checkpoint(final).manifest["step"] == 10


def _fit_more(tmp_path, max_steps):
    trainer = Trainer(
        toy_task(),
        [CheckpointCallback(every_n_steps=5, keep_last=2)],
        max_steps=max_steps,
        run_dir=tmp_path,
        resume="auto",
    )
    trainer.fit()
    return trainer


def test_a_final_save_at_a_new_step_is_written_in_full(tmp_path):
    trainer = _fit(tmp_path, 12)
    final = trainer.checkpoint_dir / "final_step_12.safetensors"
    assert os.stat(final).st_nlink == 1 and read_checkpoint(final).manifest["kind"] == "final"


def test_without_hard_links_no_second_file_is_written_and_latest_points_at_the_periodic(tmp_path, monkeypatch):
    def no_links(*args, **kwargs):
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr(os, "link", no_links)
    trainer = _fit(tmp_path, 10)
    names = sorted(p.name for p in trainer.checkpoint_dir.glob("*.safetensors"))
    assert names == ["step_10.safetensors", "step_5.safetensors"]
    assert _latest(trainer)["name"] == "step_10.safetensors"
    assert not list(trainer.checkpoint_dir.glob(".tmp-*"))
    arrays = read_checkpoint(trainer.checkpoint_dir / "step_10.safetensors").arrays
    assert all(np.all(np.isfinite(a)) for a in arrays.values() if a.dtype.kind == "f")


def test_a_final_whose_callbacks_recorded_more_than_the_periodic_is_written_in_full(tmp_path):
    """A final is a link only when it holds what the periodic file holds: here a callback's state moved on after it."""
    from emergence import Callback

    class CountsSaves(Callback):
        def __init__(self):
            self.saves = 0

        def state_dict(self):
            return {"saves": self.saves}

        def on_save_checkpoint(self, trainer, ref):
            self.saves += 1  # the periodic step_10 is durable: the final of step 10 holds one more

    trainer = Trainer(
        toy_task(),
        [CountsSaves(), CheckpointCallback(every_n_steps=5, keep_last=2)],
        max_steps=10,
        run_dir=tmp_path,
        resume=None,
    )
    trainer.fit()
    final = trainer.checkpoint_dir / "final_step_10.safetensors"
    assert os.stat(final).st_nlink == 1 and read_checkpoint(final).manifest["callbacks"][
        trainer.callbacks[0].state_key
    ] == {"saves": 2}
    assert _latest(trainer)["reason"] == "max_steps"
