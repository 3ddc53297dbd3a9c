"""The sweep report is part of the finalized outputs: on Kaggle, finalize writes it before SHA256SUMS and
outputs.zip, so two sessions of a sweep (the second resuming the first, as the notebook does) each end with sums
that verify and a zip that holds that session's report. (Before: the results cell rewrote the first session's
summed report, and the second session failed with a ChecksumError.)"""

from __future__ import annotations

import zipfile

import pytest

from emergence.callbacks import FinalizeCallback
from emergence.lab.agents import PPOTask
from emergence.lab.cli.train import parse_config
from emergence.lab.run import build_trainer, callbacks, sweep_task
from emergence.lab.sweep.grid import parse_grid
from emergence.lab.sweep.report import write_report
from emergence.platforms.kaggle_workflow import verify_sums
from tests.helpers import TINY_LAB

LENGTH = ["--train.save-interval", "16", "--train.log-interval", "16", "--train.eval-interval", "0"]


def test_a_sweep_on_kaggle_hands_finalize_its_report_writer_and_a_local_sweep_adds_no_finalize():
    config = parse_config([*TINY_LAB, "--train.track-interval", "0"])
    task = sweep_task(config, parse_grid(config, ["diversity_bonus=0,0.05"], 2))
    finalizers = [cb for cb in callbacks(config, "kaggle", task) if isinstance(cb, FinalizeCallback)]
    assert len(finalizers) == 1 and finalizers[0].artifacts == (write_report,)
    assert not any(isinstance(cb, FinalizeCallback) for cb in callbacks(config, "local", task))
    single = [
        cb for cb in callbacks(config, "kaggle", PPOTask(config.ppo_config())) if isinstance(cb, FinalizeCallback)
    ]
    assert single[0].artifacts == ()  # a single run has no sweep report


@pytest.mark.slow  # two sweep sessions in-process: about 30 s of CPU
def test_two_kaggle_sessions_of_a_sweep_end_with_the_current_report_summed_and_zipped(tmp_path, monkeypatch):
    monkeypatch.setenv("EMERGENCE_KAGGLE_ROOT", str(tmp_path / "kaggle"))
    working = tmp_path / "kaggle" / "working"
    reports = []
    for total_steps, resume in ((32, "none"), (64, "auto")):
        flags = [*TINY_LAB, *LENGTH, "--train.total-steps", str(total_steps), "--train.track-interval", "0"]
        config = parse_config([*flags, "--train.run-dir", str(working), "--train.resume-from", resume])
        grid = parse_grid(config, ["diversity_bonus=0,0.05"], 2)
        trainer = build_trainer(config, "kaggle", sweep=grid, progress=None)
        trainer.fit()
        assert trainer.stop_reason == "max_steps"
        assert verify_sums(working / "SHA256SUMS") > 0  # raises ChecksumError on a file changed after summing
        with zipfile.ZipFile(working / "outputs.zip") as archive:
            for name in ("report.md", "report.csv", "sweep_curves.png"):
                assert archive.read(name) == (working / name).read_bytes(), name
        reports.append((working / "report.csv").read_text())
    assert reports[0] != reports[1]  # the second session's report, over its own last rows, is the one kept
