"""emergence.platform.detect(): local, Kaggle, Colab or SLURM from documented signals, with limits and output dir."""
from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from emergence.platform import detect, in_ipython_kernel, process_start_time

SIGNALS = ("KAGGLE_KERNEL_RUN_TYPE", "KAGGLE_URL_BASE", "KAGGLE_DATA_PROXY_URL", "COLAB_RELEASE_TAG", "COLAB_GPU",
           "SLURM_JOB_ID", "SLURM_JOB_START_TIME", "SLURM_JOB_END_TIME", "EMERGENCE_PLATFORM")


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


def test_kaggle_by_its_working_directory_alone(clean_env, tmp_path):
    (tmp_path / "fake-kaggle" / "working").mkdir(parents=True)
    clean_env.setenv("EMERGENCE_KAGGLE_ROOT", str(tmp_path / "fake-kaggle"))
    assert detect().name == "kaggle"


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
    code = "import time; time.sleep(1.5); from emergence.platform import process_start_time; print(process_start_time())"
    launched = time.time()
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])})
    assert abs(float(out.stdout) - launched) < 1.2


def test_no_notebook_kernel_here():
    assert in_ipython_kernel() is False
