"""One resolver for what a path means: a file, a checkpoints dir, a run or sweep dir, "auto" with read-only roots."""

from __future__ import annotations

import pytest

from emergence.checkpoint import checkpoint_dir_of, checkpoint_dirs_under, file_ref, resolve_checkpoint
from emergence.errors import CheckpointNotFoundError, CorruptCheckpointError


def test_a_run_dir_means_its_checkpoints_dir(tmp_path, place):
    """The bug of issue 18: Trainer(resume="runs/a") named the run dir, not its checkpoints/, and was refused."""
    run = tmp_path / "runs" / "a"
    place(run / "checkpoints", "step_5.safetensors")
    place(run / "checkpoints", "step_10.safetensors")
    found = resolve_checkpoint(run)
    assert found.path == run / "checkpoints" / "step_10.safetensors"
    assert resolve_checkpoint(str(run)).path == found.path  # a string, as a user passes it
    assert checkpoint_dir_of(run) == run / "checkpoints"


def test_a_sweep_dir_is_a_run_dir(tmp_path, place):
    sweep = tmp_path / "runs" / "sweep"
    (sweep / "metrics.csv").parent.mkdir(parents=True)
    (sweep / "metrics.csv").write_text("step,run\n")
    place(sweep / "checkpoints", "final_step_40.safetensors")
    assert resolve_checkpoint(sweep).path.name == "final_step_40.safetensors"


def test_a_checkpoints_dir_means_its_newest_valid_file(tmp_path, place, damage):
    folder = tmp_path / "checkpoints"
    place(folder, "step_10.safetensors")
    place(folder, "step_20.safetensors")
    damage(place(folder, "emergency_step_25.safetensors"))
    ref = file_ref(resolve_checkpoint(folder))
    assert (ref.kind, ref.step) == ("periodic", 20)


def test_a_file_means_that_file_and_a_damaged_one_is_an_error(tmp_path, place, damage):
    older = place(tmp_path, "step_10.safetensors")
    place(tmp_path, "step_20.safetensors")
    assert resolve_checkpoint(older).path == older
    damage(older)
    with pytest.raises(CorruptCheckpointError, match="checksum mismatch"):
        resolve_checkpoint(older)


def test_nothing_there_and_nothing_valid_are_one_line_errors(tmp_path, damage, place):
    with pytest.raises(CheckpointNotFoundError, match="does not exist; pass a checkpoint file, a run dir"):
        resolve_checkpoint(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(CheckpointNotFoundError, match="no valid checkpoint in .*empty"):
        resolve_checkpoint(tmp_path / "empty")
    damage(place(tmp_path / "bad" / "checkpoints", "step_5.safetensors"))
    with pytest.raises(CheckpointNotFoundError, match="no valid checkpoint in .*bad/checkpoints"):
        resolve_checkpoint(tmp_path / "bad")


def test_none_is_a_fresh_start_and_auto_finds_nothing_in_a_new_run_dir(tmp_path):
    assert resolve_checkpoint(None) is None
    assert resolve_checkpoint("auto", run_dir=tmp_path / "new") is None
    with pytest.raises(ValueError, match="needs the run dir"):
        resolve_checkpoint("auto")


def test_auto_searches_the_run_dir_and_every_read_only_root(tmp_path, place):
    run, inputs = tmp_path / "working", tmp_path / "input"
    place(run / "checkpoints", "step_5.safetensors")
    nested = inputs / "notebooks" / "alice" / "emergence" / "checkpoints"
    place(nested, "step_10.safetensors")
    assert checkpoint_dirs_under(inputs) == [nested]
    assert resolve_checkpoint("auto", run_dir=run, roots=[inputs]).path == nested / "step_10.safetensors"
    assert resolve_checkpoint("auto", run_dir=run).path.name == "step_5.safetensors"


def test_auto_prefers_the_run_dirs_own_file_on_a_tie(tmp_path, place):
    run, inputs = tmp_path / "working", tmp_path / "input"
    own = place(run / "checkpoints", "step_10.safetensors")
    place(inputs / "copy", "step_10.safetensors")
    assert resolve_checkpoint("auto", run_dir=run, roots=[inputs]).path == own


def test_resolution_never_changes_what_it_reads(tmp_path, place, damage, read_only_dir, tree_snapshot):
    inputs = tmp_path / "input"
    place(inputs / "a" / "checkpoints", "step_10.safetensors")
    damage(place(inputs / "a" / "checkpoints", "step_20.safetensors"))
    place(inputs / "b", "final_step_15.safetensors")
    read_only_dir(inputs)
    before = tree_snapshot(inputs)
    assert resolve_checkpoint("auto", run_dir=tmp_path / "run", roots=[inputs]).path.name == "final_step_15.safetensors"
    assert resolve_checkpoint(inputs / "a").path.name == "step_10.safetensors"
    assert tree_snapshot(inputs) == before


def test_the_trainer_resumes_from_a_run_dir_named_as_a_new_user_would(tmp_path):
    """End to end, as issue 18 tried it: `Trainer(resume="runs/a")` continues run a from its newest checkpoint."""
    from emergence import Trainer
    from emergence.callbacks import CheckpointCallback
    from emergence.testing import toy_task

    def fit(run_dir, max_steps, resume):
        trainer = Trainer(
            toy_task(), [CheckpointCallback(every_n_steps=5)], max_steps=max_steps, run_dir=run_dir, resume=resume
        )
        trainer.fit()
        return trainer

    fit(tmp_path / "runs" / "a", 10, None)
    trainer = fit(tmp_path / "runs" / "b", 15, str(tmp_path / "runs" / "a"))
    assert (trainer.resumed_from.step, trainer.step) == (10, 15)
