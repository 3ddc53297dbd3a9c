"""fit(task, train_data=<Grain pipeline over files>): SIGKILL at random instants, then resume, until done: the final
state and data position are bitwise those of a straight run, though every save fell mid-epoch."""

from __future__ import annotations

import random
import signal
import time
from pathlib import Path

import pytest

from emergence.checkpoint import read_checkpoint
from emergence.examples.grain_images import write_images
from tests.helpers import ckpt_diff
from tests.scripts.driver import Child

pytestmark = pytest.mark.slow

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "train_data.py"
EPOCHS = 3  # 128 images in batches of 32: 4 steps an epoch, 12 in all; saves every 3 steps: mid-epoch


def run(run_dir: Path, data_dir: Path, kill_after: int | None = None, pause: float = 0.0) -> int | None:
    """One child; with `kill_after`, SIGKILL it `pause` s after its `step >= kill_after` line. Its exit code."""
    child = Child(run_dir, EPOCHS, str(data_dir), script=SCRIPT)
    if kill_after is not None:
        try:
            while int(child.wait_for("step ", timeout=120).split()[1]) < kill_after:
                pass
        except AssertionError:  # it ended first (nothing left to train): its exit code says how
            return child.finish(timeout=120).returncode
        time.sleep(pause)
        child.send(signal.SIGKILL)
    return child.finish(timeout=120).returncode


def test_sigkill_at_random_instants_then_resume_is_bitwise_a_straight_run_mid_epoch(tmp_path):
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    write_images(data_dir, count=128)
    assert run(tmp_path / "straight", data_dir) == 0
    rng = random.Random(20)
    kills = 0
    for _ in range(8):
        code = run(tmp_path / "killed", data_dir, kill_after=rng.randint(1, 11), pause=rng.uniform(0, 0.1))
        if code == 0:
            break
        assert code == -signal.SIGKILL
        kills += 1
    else:
        assert run(tmp_path / "killed", data_dir) == 0
    assert kills >= 1
    straight = tmp_path / "straight" / "checkpoints" / "final_step_12.safetensors"
    resumed = tmp_path / "killed" / "checkpoints" / "final_step_12.safetensors"
    diff = ckpt_diff(straight, resumed)
    assert diff.returncode == 0, diff.stdout + diff.stderr
    data = lambda path: read_checkpoint(path).manifest["callbacks"]["emergence.train_data"]  # noqa: E731
    assert data(straight) == data(resumed) == {"epoch": 3, "position": {"epoch": 3, "batches": 0, "iterator": None}}
    middle = read_checkpoint(tmp_path / "killed" / "checkpoints" / "step_9.safetensors").manifest
    assert middle["callbacks"]["emergence.train_data"]["position"]["batches"] == 1  # batch 1 of epoch 2
