"""FinalizeCallback: however a run ends, summary.json, a SHA256SUMS that `sha256sum -c` accepts, and outputs.zip."""

from __future__ import annotations

import json
import signal
import subprocess
import zipfile
from pathlib import Path

import pytest

from emergence import Callback, Trainer
from emergence.callbacks import (
    CheckpointCallback,
    FinalizeCallback,
    LogThrottleCallback,
    SignalCheckpointCallback,
    TimeBudgetCallback,
)
from emergence.checkpoint import read_checkpoint
from emergence.errors import RunDirError
from emergence.metrics import CSVSink
from emergence.testing import Outcome, Scenario, toy_task


@pytest.fixture
def scenario(scenario: Scenario) -> Scenario:
    """The kit's scenario, 40 steps, each save durable at once (a summary names the checkpoint on disk)."""
    return scenario.but(max_steps=40, async_checkpoint=False)


def _fit(scenario: Scenario, *extra: Callback, zip_outputs: bool = False) -> Outcome:
    callbacks = [
        CheckpointCallback(every_n_steps=5),
        LogThrottleCallback(every_n_steps=2, sinks=[CSVSink()]),
        *extra,
        FinalizeCallback(zip_outputs=zip_outputs),
    ]
    return scenario.run(callbacks)


def summary(run_dir: Path) -> dict:
    return json.loads((run_dir / "summary.json").read_text())


def sha256sum_check(run_dir: Path) -> subprocess.CompletedProcess:
    return subprocess.run(["sha256sum", "-c", "SHA256SUMS"], cwd=run_dir, capture_output=True, text=True)


def test_a_complete_run_is_summed_zipped_and_verified_by_sha256sum(scenario, run_dir):
    assert _fit(scenario.but(max_steps=10), zip_outputs=True).exception is None
    written = summary(run_dir)
    assert (written["status"], written["reason"], written["final_step"]) == ("complete", "max_steps", 10)
    checkpoint = written["latest_checkpoint"]
    assert checkpoint["path"] == "checkpoints/final_step_10.safetensors" and checkpoint["step"] == 10
    assert checkpoint["checksum"] == read_checkpoint(run_dir / checkpoint["path"]).checksum
    assert written["total_seconds"] > 0 and len(written["sessions"]) == 1

    checked = sha256sum_check(run_dir)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    listed = [line.split("  ", 1)[1] for line in (run_dir / "SHA256SUMS").read_text().splitlines()]
    assert {"summary.json", "metrics.csv", "checkpoints/final_step_10.safetensors"} <= set(listed)
    with zipfile.ZipFile(run_dir / "outputs.zip") as archive:
        assert archive.testzip() is None
        assert sorted(archive.namelist()) == sorted([*listed, "SHA256SUMS"])
        assert json.loads(archive.read("summary.json")) == written

    (run_dir / "metrics.csv").write_text("step\n1\n")
    assert sha256sum_check(run_dir).returncode != 0, "a changed file fails the check"


def test_a_time_budget_stop_is_interrupted_and_the_next_session_completes_with_both_sessions(
    scenario, run_dir, fake_clock
):
    budget = TimeBudgetCallback(max_duration=100.0, margin=10.0, start=fake_clock(), clock=fake_clock)
    first = _fit(scenario.but(seconds_per_call=10.0), budget)
    stopped = summary(run_dir)
    assert (stopped["status"], stopped["reason"]) == ("interrupted", "time_budget")
    assert stopped["final_step"] == first.step < 40
    assert not (run_dir / "outputs.zip").exists(), "zip_outputs=False"

    assert _fit(scenario).exception is None
    done = summary(run_dir)
    assert (done["status"], done["reason"], done["final_step"]) == ("complete", "max_steps", 40)
    sessions = done["sessions"]
    assert [(s["start_step"], s["end_step"], s["reason"]) for s in sessions] == [
        (0, first.step, "time_budget"),
        (first.step, 40, "max_steps"),
    ]
    assert done["total_seconds"] == pytest.approx(sum(s["seconds"] for s in sessions))
    assert sha256sum_check(run_dir).returncode == 0


def test_a_signal_stop_is_interrupted_and_names_the_emergency_checkpoint(scenario, run_dir):
    assert _fit(scenario.signal_at(7, signal.SIGTERM), SignalCheckpointCallback()).exception is None
    written = summary(run_dir)
    assert (written["status"], written["reason"], written["final_step"]) == ("interrupted", "signal:SIGTERM", 7)
    assert written["latest_checkpoint"]["path"] == "checkpoints/emergency_step_7.safetensors"
    assert sha256sum_check(run_dir).returncode == 0


def test_an_exception_is_summarised_and_still_propagates(scenario, run_dir):
    failure = RuntimeError("injected failure")
    assert _fit(scenario.raise_at(6, failure)).exception is failure
    written = summary(run_dir)
    assert (written["status"], written["reason"], written["final_step"]) == ("interrupted", "exception:RuntimeError", 6)
    assert written["latest_checkpoint"]["step"] == 5
    assert sha256sum_check(run_dir).returncode == 0


def test_an_unwritable_output_dir_fails_before_training_with_one_line(tmp_path, read_only_dir):
    blocked = read_only_dir(tmp_path / "blocked")
    trainer = Trainer(toy_task(), [FinalizeCallback(output_dir=blocked)], max_steps=5, run_dir=tmp_path / "run")
    with pytest.raises(RunDirError, match="FinalizeCallback: output_dir .* is not writable") as error:
        trainer.fit()
    assert "\n" not in str(error.value) and trainer.step == 0


def test_an_applications_artifacts_are_written_before_the_sums_and_zip_of_every_session(scenario, run_dir, caplog):
    """A report rewritten by each session's artifact is what SHA256SUMS lists and outputs.zip holds, session after
    session; an artifact that raises is logged and the sums still cover the rest."""

    def report(root: Path) -> None:  # an application's report: its content changes with every session
        (root / "report.md").write_text(f"rows: {len((root / 'metrics.csv').read_text().splitlines())}\n")

    def broken(root: Path) -> None:
        raise ValueError("no rows yet")

    for max_steps in (10, 20):
        finalize = FinalizeCallback(zip_outputs=True, artifacts=(broken, report))
        callbacks = [CheckpointCallback(every_n_steps=5), LogThrottleCallback(every_n_steps=2, sinks=[CSVSink()])]
        assert scenario.but(max_steps=max_steps).run([*callbacks, finalize]).exception is None
        checked = sha256sum_check(run_dir)
        assert checked.returncode == 0 and "report.md: OK" in checked.stdout, checked.stdout + checked.stderr
        with zipfile.ZipFile(run_dir / "outputs.zip") as archive:
            assert archive.read("report.md") == (run_dir / "report.md").read_bytes()
    assert (run_dir / "report.md").read_text() == "rows: 11\n"  # the header and steps 2..20: the second session's
    assert "the artifact test_an_applications" in caplog.text and "ValueError: no rows yet" in caplog.text
