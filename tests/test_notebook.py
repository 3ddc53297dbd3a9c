"""notebooks/kaggle_training.ipynb executed headless in a real ipykernel against a fake Kaggle root.

The notebook reads `EMERGENCE_KAGGLE_ROOT`, so each test builds `<tmp>/kaggle/{working,input}`
and runs the notebook with nbclient in a real `python3` kernel, CPU, tiny parameters
injected after its `parameters` cell the way papermill does. Resume discovery
(`emergence.platforms.kaggle.kaggle_resume_checkpoint`) is tested directly first. Kernels share the tests' persistent
JAX compilation cache, so an execution takes seconds.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
from pathlib import Path

import pytest

from emergence import Trainer
from emergence.callbacks import CheckpointCallback
from emergence.checkpoint import checkpoint_dirs_under, newest_valid, read_checkpoint
from emergence.metrics.csv_sink import read_metrics_csv
from emergence.platforms.kaggle import kaggle_resume_checkpoint
from emergence.platforms.kaggle_workflow import verify_output
from emergence.testing import toy_task
from tests.notebook_kit import (
    ENVIRONMENT,
    FINALIZE,
    INSTALL,
    KERNEL,
    NOTEBOOK,
    RESULTS,
    RESUME,
    TRAIN,
    Executed,
    execute_notebook,
    fake_root,
    updates,
)


def _fit(run_dir: Path, max_steps: int, resume="auto") -> Trainer:
    trainer = Trainer(
        toy_task(),
        [CheckpointCallback(every_n_steps=5, keep_last=10)],
        max_steps=max_steps,
        run_dir=run_dir,
        resume=resume,
        async_checkpoint=False,
    )
    trainer.fit()
    return trainer


@pytest.fixture(scope="module")
def saved(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """checkpoints/ of one toy run: step_5, step_10, step_15, final_step_15."""
    run = tmp_path_factory.mktemp("run")
    _fit(run, 15)
    return run / "checkpoints"


def _place(saved: Path, directory: Path, *names: str) -> Path:
    """Copy some of the saved checkpoints into `directory` (created)."""
    directory.mkdir(parents=True, exist_ok=True)
    for name in names:
        shutil.copy2(saved / name, directory / name)
    return directory


def _snapshot(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def _corrupt(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF
    path.write_bytes(bytes(data))


# resume discovery


def test_resume_search_finds_a_previous_sessions_checkpoints_at_any_depth_and_changes_nothing(
    saved, tmp_path, read_only_dir
):
    nested = tmp_path / "kaggle" / "input" / "notebooks" / "alice" / "emergence-training" / "checkpoints"
    _place(saved, nested, "step_5.safetensors", "step_10.safetensors")
    read_only_dir(tmp_path / "kaggle" / "input")
    before = _snapshot(tmp_path / "kaggle" / "input")
    assert checkpoint_dirs_under(tmp_path / "kaggle" / "input") == [nested]
    found = kaggle_resume_checkpoint(tmp_path / "kaggle", kernel=KERNEL)
    assert (found.path, found.kind, found.step) == (nested / "step_10.safetensors", "periodic", 10)
    trainer = _fit(tmp_path / "kaggle" / "working", 15, resume=found.path)
    assert (trainer.resumed_from.step, trainer.step) == (10, 15)
    assert (tmp_path / "kaggle" / "working" / "checkpoints" / "final_step_15.safetensors").is_file()
    assert _snapshot(tmp_path / "kaggle" / "input") == before


def test_resume_search_takes_the_newest_across_working_and_inputs(saved, tmp_path):
    working = _place(saved, tmp_path / "kaggle" / "working" / "checkpoints", "step_5.safetensors")
    _place(saved, tmp_path / "kaggle" / "input" / "emergence-training" / "checkpoints", "step_10.safetensors")
    assert kaggle_resume_checkpoint(tmp_path / "kaggle", kernel=KERNEL).step == 10
    _place(saved, working, "step_15.safetensors", "final_step_15.safetensors")
    found = kaggle_resume_checkpoint(tmp_path / "kaggle", kernel=KERNEL)
    assert (found.path, found.kind) == (working / "final_step_15.safetensors", "final")


def test_resume_search_prefers_working_on_a_tie_and_skips_damaged_files(saved, tmp_path):
    working = _place(saved, tmp_path / "kaggle" / "working" / "checkpoints", "step_10.safetensors")
    copy = _place(saved, tmp_path / "kaggle" / "input" / "emergence-training", "step_10.safetensors")
    assert kaggle_resume_checkpoint(tmp_path / "kaggle", kernel=KERNEL).path == working / "step_10.safetensors"
    _corrupt(working / "step_10.safetensors")
    assert kaggle_resume_checkpoint(tmp_path / "kaggle", kernel=KERNEL).path == copy / "step_10.safetensors"


def test_resume_search_with_nothing_valid_starts_fresh(saved, tmp_path):
    assert kaggle_resume_checkpoint(tmp_path / "kaggle", kernel=KERNEL) is None
    damaged = _place(saved, tmp_path / "damaged", "step_5.safetensors", "step_10.safetensors")
    for path in damaged.iterdir():
        _corrupt(path)
    assert newest_valid([damaged]) is None


# the notebook, executed

SEED_DEFAULTS = {
    "total_steps": 10_000_000,
    "num_envs": 32,
    "save_interval": 100_000,
    "diversity_bonus": 0.1,
    "niche_pressure": 0.05,
    "num_food": 20,
    "starting_energy": 200,
    "food_energy": 100,
    "reproduce_threshold": 120,
    "reproduce_cost": 50,
}


def _cells():
    nbformat = pytest.importorskip("nbformat")
    return nbformat.read(NOTEBOOK, as_version=4).cells


def test_the_notebook_has_seven_code_cells_each_explained_by_a_markdown_cell_above_it():
    cells = _cells()
    code = [i for i, cell in enumerate(cells) if cell.cell_type == "code"]
    assert len(code) == 7
    assert all(cells[i - 1].cell_type == "markdown" for i in code)
    assert all(not cells[i].outputs for i in code)  # committed without outputs


def test_the_parameters_cell_is_tagged_for_papermill_and_holds_the_seed_defaults():
    tagged = [cell for cell in _cells() if "parameters" in cell.metadata.get("tags", [])]
    assert len(tagged) == 1
    values: dict = {}
    exec(tagged[0].source, {}, values)
    assert {name: values[name] for name in SEED_DEFAULTS} == SEED_DEFAULTS


@pytest.fixture(scope="module")
def first_run(tmp_path_factory: pytest.TempPathFactory) -> Executed:
    """The notebook executed once from nothing to 6 updates."""
    return execute_notebook(fake_root(tmp_path_factory.mktemp("first")), total_steps=updates(6))


def test_the_notebook_trains_from_scratch_and_leaves_verified_outputs(first_run):
    working = first_run.working
    assert "starting fresh" in first_run.text(RESUME)
    assert "nothing to install" in first_run.text(INSTALL)
    assert "NO GPU OR TPU" in first_run.text(ENVIRONMENT)
    assert first_run.stopped() == ("max_steps", 6)
    assert read_checkpoint(working / "checkpoints" / "final_step_6.safetensors").manifest["step"] == 6
    assert _metric_steps(working) == [2, 4, 6]
    summary = json.loads((working / "summary.json").read_text())
    assert (summary["status"], summary["final_step"], len(summary["sessions"])) == ("complete", 6, 1)
    assert re.search(r"SHA256SUMS: \d+ files verified", first_run.text(FINALIZE))
    assert verify_output(working)[0] >= 5  # what `emergence kaggle download` checks
    assert (working / "outputs.zip").stat().st_size > 0


def test_the_notebook_shows_progress_curves_and_trackers_inline(first_run):
    progress = first_run.text(TRAIN)
    assert "step 6/6 (100%)" in progress and "stopped: max_steps" in progress  # the in-place display, updated
    assert any("image/png" in out.get("data", {}) for out in first_run.outputs(RESULTS))
    results = first_run.text(RESULTS)
    assert "emergence tracker, latest sample: population" in results
    assert "specialization tracker, latest sample:" in results
    assert "emergence event" in results  # the events, or that there are none yet


@pytest.mark.slow  # one more execution; resuming is also proven by the read-only test below, in the default run
def test_executing_again_resumes_and_the_step_continues(first_run, tmp_path):
    root = tmp_path / "kaggle"
    shutil.copytree(first_run.root, root)
    again = execute_notebook(root, total_steps=updates(10))
    assert f"resuming from {root / 'working' / 'checkpoints' / 'final_step_6.safetensors'}" in again.text(RESUME)
    assert again.stopped() == ("max_steps", 10)
    assert _metric_steps(root / "working") == [2, 4, 6, 8, 10]
    summary = json.loads((root / "working" / "summary.json").read_text())
    assert [(s["start_step"], s["end_step"]) for s in summary["sessions"]] == [(0, 6), (6, 10)]


def test_a_new_session_resumes_from_the_previous_output_attached_read_only(first_run, tmp_path, read_only_dir):
    root = fake_root(tmp_path)
    attached = root / "input" / "notebooks" / "alice" / "emergence-training"
    shutil.copytree(first_run.working, attached)
    read_only_dir(root / "input")
    before = _snapshot(root / "input")
    resumed = execute_notebook(root, total_steps=updates(10), kernel=KERNEL)
    assert f"resuming from {attached / 'checkpoints' / 'final_step_6.safetensors'}" in resumed.text(RESUME)
    assert resumed.stopped() == ("max_steps", 10)
    assert (root / "working" / "checkpoints" / "final_step_10.safetensors").is_file()
    assert _metric_steps(root / "working") == [2, 4, 6, 8, 10]  # the history came along
    assert _snapshot(root / "input") == before


def _periodic_checkpoint_written(root: Path) -> bool:
    return any((root / "working" / "checkpoints").glob("step_*.safetensors"))


@pytest.mark.slow  # two executions; the interrupt itself is also covered by test_jupyter_interrupt.py
def test_interrupting_the_kernel_mid_training_leaves_an_emergency_checkpoint_the_next_run_resumes(tmp_path):
    root = fake_root(tmp_path)
    interrupted = execute_notebook(root, interrupt_when=_periodic_checkpoint_written, total_steps=updates(10**6))
    reason, step = interrupted.stopped()
    assert reason == "signal:SIGINT" and 2 <= step < 10**6
    emergency = root / "working" / "checkpoints" / f"emergency_step_{step}.safetensors"
    assert read_checkpoint(emergency).manifest["reason"] == "signal:SIGINT"
    summary = json.loads((root / "working" / "summary.json").read_text())  # the later cells still ran
    assert (summary["status"], summary["final_step"]) == ("interrupted", step)

    resumed = execute_notebook(root, total_steps=updates(step + 2))
    assert f"resuming from {emergency} (emergency, update {step:,})" in resumed.text(RESUME)
    assert resumed.stopped() == ("max_steps", step + 2)


def _metric_steps(run_dir: Path) -> list[int]:
    return [int(row["step"]) for row in read_metrics_csv(run_dir / "metrics.csv")[1]]
