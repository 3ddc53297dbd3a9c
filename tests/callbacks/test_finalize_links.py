"""Finalize sums and zips only the run dir's own files: a symlink never carries a file from elsewhere (item 12)."""

from __future__ import annotations

import zipfile
from pathlib import Path

from emergence.callbacks.finalize import output_files, write_checksums, write_zip


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
