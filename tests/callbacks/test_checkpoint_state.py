"""CheckpointCallback's restored state: type-checked, and no name read from a file is ever used as a path."""

from __future__ import annotations

import pytest

from emergence.callbacks import CheckpointCallback
from emergence.checkpoint import read_checkpoint, write_checkpoint
from emergence.errors import CorruptCheckpointError
from emergence.testing import Scenario


def _callbacks(clock):
    return [CheckpointCallback(every_n_steps=5, monitor="val_loss", mode="min", save_top_k=1)]


def _checkpoint_callback(outcome) -> CheckpointCallback:
    return next(cb for cb in outcome.trainer.callbacks if isinstance(cb, CheckpointCallback))


def test_a_best_list_naming_another_file_never_deletes_it(run_dir, tmp_path):
    """Issue 19, item 10: a resumed run with best=[{"name": "/abs/victim"}] deleted the victim at its first eval."""
    victim = tmp_path / "victim"
    victim.write_text("keep me")
    first = Scenario(max_steps=10, run_dir=run_dir, eval_every_n_steps=2).run(_callbacks)
    final = run_dir / "checkpoints" / "final_step_10.safetensors"
    file = read_checkpoint(final)
    key = _checkpoint_callback(first).state_key
    planted = {**file.manifest["callbacks"], key: {"best": [{"name": str(victim), "step": 3, "value": 1e9}]}}
    write_checkpoint(final, dict(file.arrays), {**file.manifest, "callbacks": planted})  # anyone can re-sum it
    resumed = first.resume(max_steps=14)
    assert resumed.exception is None and victim.read_text() == "keep me"
    callback = _checkpoint_callback(resumed)
    assert all(entry["name"] == f"best_step_{entry['step']}.safetensors" for entry in callback.best)


@pytest.mark.parametrize(
    "state",
    [
        {"best": "best_step_3.safetensors"},
        {"best": [{"name": "/abs/victim"}]},
        {"best": [{"name": "x", "step": "3", "value": 0.1}]},
        {"best": [{"step": 3, "value": float("inf")}]},
    ],
)
def test_a_best_list_of_the_wrong_shape_is_a_one_line_error(state):
    with pytest.raises(CorruptCheckpointError, match="CheckpointCallback: the checkpoint's .* resume from another"):
        CheckpointCallback(monitor="val_loss").load_state_dict(state)
