"""Promise 1 and 3: a killed run resumes from the newest valid checkpoint, bitwise exact."""

from __future__ import annotations

import logging
import signal

import pytest

from emergence import Trainer
from emergence.callbacks import CheckpointCallback
from emergence.checkpoint import list_checkpoints, read_checkpoint
from emergence.testing import toy_task
from tests.helpers import assert_same_arrays, fit_toy_process, wait_for_line


def _fit(run_dir, max_steps, steps_per_call=1, resume="auto", every=10):
    trainer = Trainer(
        toy_task(),
        [CheckpointCallback(every_n_steps=every, keep_last=3)],
        max_steps=max_steps,
        steps_per_call=steps_per_call,
        run_dir=run_dir,
        resume=resume,
    )
    trainer.fit()
    return trainer


@pytest.mark.parametrize("steps_per_call", [1, pytest.param(5, marks=pytest.mark.slow)])  # 5: in CI's slow stage
def test_stop_and_resume_in_new_process_is_bitwise_equal_to_straight_run(tmp_path, steps_per_call):
    straight = _fit(tmp_path / "straight", 40, steps_per_call, resume=None)
    first = fit_toy_process(tmp_path / "split", 20, "--steps-per-call", str(steps_per_call))
    assert first.wait(timeout=120) == 0, first.stderr.read()
    second = fit_toy_process(tmp_path / "split", 40, "--steps-per-call", str(steps_per_call))
    assert second.wait(timeout=120) == 0, second.stderr.read()
    resumed_final = tmp_path / "split" / "checkpoints" / "final_step_40.safetensors"
    assert_same_arrays(straight.last_checkpoint.path, resumed_final)
    key = "CheckpointCallback{monitor=None,mode=min}"
    resumed_state = read_checkpoint(resumed_final).manifest["callbacks"][key]
    assert resumed_state == read_checkpoint(straight.last_checkpoint.path).manifest["callbacks"][key]


def test_sigkill_after_second_save_resumes_from_newest_valid(tmp_path):
    run_dir = tmp_path / "run"
    process = fit_toy_process(run_dir, 10_000, "--every", "10")
    wait_for_line(process, "saved step_20")
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)
    newest = max(list_checkpoints(run_dir / "checkpoints"), key=lambda r: r.order)
    assert newest.step >= 20
    trainer = _fit(run_dir, newest.step + 10)
    assert trainer.resumed_from.path == newest.path
    straight = _fit(tmp_path / "straight", newest.step + 10, resume=None)
    assert_same_arrays(straight.last_checkpoint.path, trainer.last_checkpoint.path)


@pytest.mark.parametrize("damage", ["truncate", "flip"])
def test_damaged_newest_checkpoint_falls_back_to_previous_with_warning(tmp_path, damage, caplog):
    caplog.set_level(logging.WARNING, logger="emergence")
    run_dir = tmp_path / "run"
    _fit(run_dir, 30)
    newest = run_dir / "checkpoints" / "final_step_30.safetensors"
    data = bytearray(newest.read_bytes())
    if damage == "truncate":
        data = data[: len(data) // 2]
    else:
        data[-7] ^= 0xFF
    older = [
        ref.path
        for ref in sorted(list_checkpoints(run_dir / "checkpoints"), key=lambda r: r.order)
        if not ref.path.samefile(newest)
    ]  # a final linked to step_30 is step_30: both go bad together
    newest.write_bytes(bytes(data))
    trainer = _fit(run_dir, 30)
    assert trainer.resumed_from.path == older[-1]
    assert "skipping damaged checkpoint" in caplog.text and "final_step_30" in caplog.text
