"""Finalize sums and zips only the run dir's own files: a symlink never carries a file from elsewhere (item 12),
and an earlier run moved aside by an overwrite is not zipped again."""

from __future__ import annotations

import zipfile
from pathlib import Path

from emergence import Trainer
from emergence.callbacks import CheckpointCallback, FinalizeCallback
from emergence.callbacks.finalize import output_files, write_checksums, write_zip
from emergence.testing import toy_task


def test_symlinks_in_a_run_dir_are_neither_summed_nor_zipped(tmp_path):
    secret = tmp_path / "kaggle.json"
    secret.write_text('{"key": "secret"}')
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    (run / "metrics.csv").write_text("step,loss\n1,0.5\n")
    (run / "checkpoints" / "notes.json").symlink_to(secret)
    (run / "elsewhere").symlink_to(tmp_path)
    assert output_files(run) == [Path("metrics.csv")]
    write_checksums(run)
    write_zip(run)
    with zipfile.ZipFile(run / "outputs.zip") as archive:
        assert all(b"secret" not in archive.read(name) for name in archive.namelist())
    assert "notes.json" not in (run / "SHA256SUMS").read_text()


def test_an_overwrite_fit_run_again_and_again_zips_only_its_own_files(tmp_path):
    """A re-run cell with overwrite=True: each earlier run moves into previous-<time>/ with its own outputs.zip;
    zipping those doubled the zip at every run (found filling a disk). Only this run's files are summed and zipped."""
    callbacks = [CheckpointCallback(every_n_steps=5), FinalizeCallback(zip_outputs=True)]
    trainer = Trainer(toy_task(), callbacks, max_steps=5, run_dir=tmp_path, resume=None, overwrite=True)
    for _ in range(4):
        trainer.fit()
    assert len(sorted(tmp_path.glob("previous-*"))) == 3
    with zipfile.ZipFile(tmp_path / "outputs.zip") as archive:
        assert not [name for name in archive.namelist() if name.startswith("previous-")]
    assert "previous-" not in (tmp_path / "SHA256SUMS").read_text()
    sizes = [(folder / "outputs.zip").stat().st_size for folder in sorted(tmp_path.glob("previous-*"))]
    assert max(sizes) < 2 * min(sizes), sizes
