"""detect(): local, Kaggle, Colab or SLURM from documented signals; for_platform(): the callbacks for each."""

from __future__ import annotations

import dataclasses
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from emergence import Callback, Trainer
from emergence.callbacks import SignalCheckpointCallback, TimeBudgetCallback
from emergence.checkpoint import read_checkpoint
from emergence.platforms import detect, in_ipython_kernel, process_start_time
from emergence.platforms.presets import for_platform
from emergence.testing import toy_task

SIGNALS = (
    "KAGGLE_KERNEL_RUN_TYPE",
    "KAGGLE_URL_BASE",
    "KAGGLE_DATA_PROXY_URL",
    "COLAB_RELEASE_TAG",
    "COLAB_GPU",
    "SLURM_JOB_ID",
    "SLURM_JOB_START_TIME",
    "SLURM_JOB_END_TIME",
    "EMERGENCE_PLATFORM",
)


@pytest.fixture
def clean_env(monkeypatch, tmp_path):
    """No platform signal set, and a Kaggle root that does not exist."""
    for name in SIGNALS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("EMERGENCE_KAGGLE_ROOT", str(tmp_path / "no-kaggle"))
    return monkeypatch


def test_plain_machine_is_local_cpu_writing_to_the_working_directory(clean_env):
    found = detect()
    assert (found.name, found.interactive, found.accelerator) == ("local", False, "cpu")
    assert found.device_count >= 1 and found.session_limit_seconds is None and found.deadline is None
    assert found.output_dir == Path.cwd()


@pytest.mark.parametrize("run_type, interactive", [("Batch", False), ("Interactive", True)])
def test_kaggle_by_its_run_type_has_12_hours_and_writes_to_kaggle_working(clean_env, tmp_path, run_type, interactive):
    clean_env.setenv("KAGGLE_KERNEL_RUN_TYPE", run_type)
    found = detect()
    assert (found.name, found.interactive) == ("kaggle", interactive)
    assert found.session_limit_seconds == 12 * 3600
    assert found.output_dir == tmp_path / "no-kaggle" / "working"
    assert found.deadline == pytest.approx(process_start_time() + 12 * 3600)


def test_a_kaggle_working_directory_alone_is_not_kaggle(clean_env, tmp_path):
    (tmp_path / "fake-kaggle" / "working").mkdir(parents=True)
    clean_env.setenv("EMERGENCE_KAGGLE_ROOT", str(tmp_path / "fake-kaggle"))
    assert detect().name == "local"


@pytest.mark.parametrize("variable", ["KAGGLE_URL_BASE", "KAGGLE_DATA_PROXY_URL"])
def test_kaggle_by_its_other_variables(clean_env, variable):
    clean_env.setenv(variable, "https://www.kaggle.com")
    assert detect().name == "kaggle"


@pytest.mark.parametrize("variable, value", [("COLAB_RELEASE_TAG", "release-colab_20240101"), ("COLAB_GPU", "1")])
def test_colab_is_interactive_with_no_known_limit_and_writes_to_content(clean_env, variable, value):
    clean_env.setenv(variable, value)
    found = detect()
    assert (found.name, found.interactive, found.session_limit_seconds) == ("colab", True, None)
    assert found.output_dir == Path("/content")


def test_slurm_limit_and_start_come_from_the_job_times(clean_env):
    clean_env.setenv("SLURM_JOB_ID", "4242")
    clean_env.setenv("SLURM_JOB_START_TIME", "1700000000")
    clean_env.setenv("SLURM_JOB_END_TIME", "1700007200")
    found = detect()
    assert (found.name, found.interactive) == ("slurm", False)
    assert found.session_limit_seconds == 7200 and found.session_start == 1_700_000_000
    assert found.deadline == 1_700_007_200


def test_slurm_without_job_times_has_no_limit(clean_env):
    clean_env.setenv("SLURM_JOB_ID", "4242")
    assert detect().session_limit_seconds is None


def test_emergence_platform_forces_a_name_and_rejects_unknown_ones(clean_env):
    clean_env.setenv("EMERGENCE_PLATFORM", "slurm")
    assert detect().name == "slurm"
    clean_env.setenv("EMERGENCE_PLATFORM", "aws")
    with pytest.raises(ValueError, match="EMERGENCE_PLATFORM='aws' is not a platform; use one of local, kaggle"):
        detect()


def test_a_malformed_slurm_time_is_a_one_line_error(clean_env):
    clean_env.setenv("SLURM_JOB_ID", "1")
    clean_env.setenv("SLURM_JOB_END_TIME", "soon")
    with pytest.raises(ValueError, match="SLURM_JOB_END_TIME='soon' is not epoch seconds"):
        detect()


def test_the_result_is_frozen(clean_env):
    with pytest.raises(dataclasses.FrozenInstanceError):
        detect().name = "kaggle"


def test_process_start_time_is_when_the_process_started_not_when_asked():
    code = "import time; time.sleep(1.5); from emergence.platforms import process_start_time as t; print(t())"
    launched = time.time()
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])},
    )
    assert abs(float(out.stdout) - launched) < 1.2


def test_no_notebook_kernel_here():
    assert in_ipython_kernel() is False


def _types(callbacks):
    return [type(cb).__name__ for cb in callbacks]


SURVIVE = ["OnExceptionCheckpointCallback", "AtexitCheckpointCallback"]


@pytest.mark.parametrize(
    "name, expected",
    [
        (
            "kaggle",
            [
                "KaggleTimeoutCallback",
                "CheckpointCallback",
                "LogThrottleCallback",
                "ArtifactExportCallback",
                *SURVIVE,
                "FinalizeCallback",
                "SignalCheckpointCallback",
            ],
        ),
        (
            "colab",
            [
                "CheckpointCallback",
                "LogThrottleCallback",
                "ArtifactExportCallback",
                *SURVIVE,
                "SignalCheckpointCallback",
            ],
        ),
        ("slurm", ["CheckpointCallback", "LogThrottleCallback", *SURVIVE, "SignalCheckpointCallback"]),
        (
            "local",
            ["CheckpointCallback", "LogThrottleCallback", "OnExceptionCheckpointCallback", "SignalCheckpointCallback"],
        ),
    ],
)
def test_each_platform_preset_in_its_order_with_the_signal_callback_last(clean_env, name, expected):
    assert _types(for_platform(name)) == expected


def test_the_preset_follows_the_detected_platform_and_kaggle_exports_under_the_run_dir(clean_env, tmp_path):
    """Issue 19, item 5: curves, progress.json and a metrics.csv copy went to /kaggle/working, not the run dir."""
    clean_env.setenv("KAGGLE_KERNEL_RUN_TYPE", "Batch")
    callbacks = for_platform()
    assert _types(callbacks)[0] == "KaggleTimeoutCallback"
    artifacts = next(cb for cb in callbacks if type(cb).__name__ == "ArtifactExportCallback")
    assert artifacts.output_dir is None  # the run dir: the Kaggle output root is where the run dir lives
    assert next(cb for cb in callbacks if type(cb).__name__ == "FinalizeCallback").zip_outputs is True


def test_slurm_gets_a_time_budget_when_the_job_has_an_end_time(clean_env):
    clean_env.setenv("SLURM_JOB_END_TIME", str(int(time.time()) + 3600))
    budget = for_platform("slurm")[0]
    assert isinstance(budget, TimeBudgetCallback) and budget.margin == 120


def test_overrides_merge_arguments_replace_callbacks_drop_entries_and_add_new_ones(clean_env):
    mine = SignalCheckpointCallback(max_calls_in_flight=None)
    marker = Callback()
    callbacks = for_platform(
        "local",
        checkpoint=dict(every_n_steps=50, every_n_seconds=None),
        logging=None,
        signal=mine,
        time_budget=dict(max_duration=3600),
        extra=[marker],
    )
    assert _types(callbacks) == [
        "TimeBudgetCallback",
        "CheckpointCallback",
        "OnExceptionCheckpointCallback",
        "SignalCheckpointCallback",
        "Callback",
    ]
    checkpoint = callbacks[1]
    assert (checkpoint.every_n_steps, checkpoint.every_n_seconds, checkpoint.keep_last) == (50, None, 5)
    assert callbacks[-2] is mine and callbacks[-1] is marker and callbacks[0].max_duration == 3600


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: for_platform("aws"), "unknown platform 'aws'; use one of local, kaggle"),
        (lambda: for_platform("local", checkpoints=None), "unknown preset entry 'checkpoints'; use one of time_budget"),
        (lambda: for_platform("local", checkpoint=5), "checkpoint= takes a dict of arguments, a Callback or None"),
    ],
)
def test_bad_preset_requests_are_one_line_errors(clean_env, call, message):
    with pytest.raises(ValueError, match=message):
        call()


def test_the_kaggle_preset_trains_end_to_end_against_a_fake_kaggle_root(clean_env, tmp_path):
    root = tmp_path / "kaggle"
    (root / "working").mkdir(parents=True)
    clean_env.setenv("EMERGENCE_KAGGLE_ROOT", str(root))
    clean_env.setenv("KAGGLE_KERNEL_RUN_TYPE", "Batch")
    handler = signal.getsignal(signal.SIGTERM)
    trainer = Trainer(
        toy_task(),
        for_platform(checkpoint=dict(every_n_steps=5)),
        max_steps=12,
        run_dir=root / "working" / "run",
        resume=None,
    )
    trainer.fit()
    assert trainer.stop_reason == "max_steps" and signal.getsignal(signal.SIGTERM) is handler
    read_checkpoint(root / "working" / "run" / "checkpoints" / "final_step_12.safetensors")
