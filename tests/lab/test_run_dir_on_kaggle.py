"""On Kaggle the run dir given is the run dir: resume searches it (issue 19, item 4)."""

from __future__ import annotations

import numpy as np

from emergence.checkpoint import CheckpointManager
from emergence.lab.config import PRESETS, with_values
from emergence.lab.run import resume_source, run_dir


def test_kaggle_mode_resumes_from_the_run_dir_given(tmp_path, monkeypatch):
    monkeypatch.setenv("EMERGENCE_KAGGLE_ROOT", str(tmp_path / "kaggle"))
    monkeypatch.delenv("EMERGENCE_KAGGLE_KERNEL", raising=False)
    with CheckpointManager(tmp_path / "mine", writer=False) as manager:
        manager.find_resume(None)
        manager.save(20, {"w": np.zeros(4, np.float32)}, kind="final")
    config = with_values(PRESETS["quick"], {"train.run_dir": tmp_path / "mine", "train.resume_from": "auto"})
    assert run_dir(config, "kaggle") == tmp_path / "mine"
    assert resume_source(config, "kaggle") == tmp_path / "mine" / "checkpoints" / "final_step_20.safetensors"
