"""Kaggle resume reads the run dir given and the run's own source only, never whatever else is attached."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from emergence.checkpoint import CheckpointManager
from emergence.errors import UsageError
from emergence.platforms.kaggle import KERNEL_ENV, kaggle_resume_checkpoint

KERNEL = "alice/emergence-training"


def _saved(run_dir, *steps):
    with CheckpointManager(run_dir, writer=False) as manager:
        manager.find_resume("auto")
        for step in steps:
            manager.save(step, {"w": np.full(4, step, np.float32)})
    return run_dir / "checkpoints"


@pytest.fixture
def root(tmp_path, monkeypatch):
    monkeypatch.delenv(KERNEL_ENV, raising=False)
    (tmp_path / "kaggle" / "working").mkdir(parents=True)
    return tmp_path / "kaggle"


def test_a_huge_step_in_another_attached_input_never_wins(root):
    """Issue 19, item 11: resume took the highest step anywhere under /kaggle/input."""
    own = _saved(root / "input" / "emergence-training", 10)
    _saved(root / "input" / "someones-dataset", 999_999_999)
    assert kaggle_resume_checkpoint(root, kernel=KERNEL).path == own / "step_10.safetensors"


def test_the_kernel_may_be_named_by_the_environment_and_kaggles_newer_layout_is_found(root, monkeypatch):
    own = _saved(root / "input" / "notebooks" / "alice" / "emergence-training", 7)
    monkeypatch.setenv(KERNEL_ENV, KERNEL)
    assert kaggle_resume_checkpoint(root).path == own / "step_7.safetensors"


def test_without_a_named_kernel_inputs_are_not_read_and_a_warning_says_how_to_name_it(root, caplog):
    _saved(root / "input" / "emergence-training", 10)
    with caplog.at_level(logging.WARNING, "emergence.platforms"):
        assert kaggle_resume_checkpoint(root) is None
    assert f"name this kernel ({KERNEL_ENV}=owner/slug" in caplog.text


@pytest.mark.parametrize("kernel", ["../../etc", "alice/../x", "/abs/path", "alice"])
def test_a_kernel_id_that_is_not_owner_slug_is_a_one_line_error(root, kernel):
    with pytest.raises(UsageError, match="must be this kernel's id 'owner/slug'"):
        kaggle_resume_checkpoint(root, kernel=kernel)


def test_the_run_dir_given_is_searched_not_kaggle_working(root, tmp_path):
    """Issue 19, item 4: with --platform kaggle a run dir holding final_step_20 trained from step 0."""
    _saved(root / "working", 3)
    mine = _saved(tmp_path / "my_run", 20)
    assert kaggle_resume_checkpoint(root, run_dir=tmp_path / "my_run").path == mine / "step_20.safetensors"
