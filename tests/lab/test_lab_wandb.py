"""`emergence train --train.wandb-project P` logs the lab's throttled rows to W&B too (offline here), by update."""

from __future__ import annotations

import pytest

from emergence.cli import main
from tests.helpers import TINY_LAB

wandb = pytest.importorskip("wandb")
from emergence.testing.wandb_offline import history_rows  # noqa: E402


@pytest.mark.slow  # 12 s: a lab run into offline W&B; CI's slow stage runs it
def test_train_with_a_wandb_project_logs_every_metric_row_to_an_offline_run(offline, tmp_path):
    run = tmp_path / "run"
    argv = [
        "train",
        *TINY_LAB,
        "--train.total-steps",
        "64",
        "--train.log-interval",
        "16",
        "--train.track-interval",
        "0",
        "--train.eval-interval",
        "0",
        "--train.run-dir",
        str(run),
        "--train.wandb-project",
        "lab",
    ]
    assert main(argv) == 0
    wandb.teardown()
    (log,) = run.glob("wandb/offline-run-*/run-*.wandb")
    assert [row["trainer/step"] for row in history_rows(log)] == [2, 4, 6, 8]  # 16 env steps = 2 updates a row
