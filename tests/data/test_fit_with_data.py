"""Trainer.fit(task, train_data=..., val_data=...): batches from the host, epochs, the position in every checkpoint."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from emergence import Callback, Trainer, TrainState
from emergence.callbacks import CheckpointCallback
from emergence.checkpoint import read_checkpoint
from emergence.contract import TaskContractError


class MeanTask:
    """Learns the mean of the batches' x by SGD; counts the examples it saw."""

    name = "mean"

    def init_state(self, rng):
        return TrainState.create(params={"m": jnp.zeros(())}, opt_state=(), rng=rng, extra={"seen": jnp.zeros(())})

    def train_step(self, state, batch):
        grad = state.params["m"] - jnp.mean(batch["x"])
        params = {"m": state.params["m"] - 0.5 * grad}
        extra = {"seen": state.extra["seen"] + batch["x"].shape[0]}
        return state.replace(step=state.step + 1, params=params, extra=extra), {"loss": grad**2}

    def eval_step(self, state, batch):
        return {"error": jnp.mean(jnp.abs(batch["x"] - state.params["m"]))}


def batches(n: int = 5) -> list[dict[str, np.ndarray]]:
    return [{"x": np.arange(4, dtype=np.float32) + i} for i in range(n)]


def test_max_epochs_ends_the_run_cleanly_with_the_position_in_the_final_checkpoint(tmp_path):
    trainer = Trainer(
        callbacks=[CheckpointCallback(every_n_steps=100)], max_epochs=2, steps_per_call=3, run_dir=tmp_path
    )
    state = trainer.fit(MeanTask(), train_data=batches())
    assert trainer.step == 10 and trainer.epoch == 2 and trainer.stop_reason == "max_epochs"
    assert trainer.exit_code == 0 and float(state.extra["seen"]) == 40  # calls of 3, 3, 3, 1 steps
    final = read_checkpoint(trainer.last_checkpoint.path).manifest
    assert final["kind"] == "final" and final["callbacks"]["emergence.train_data"]["epoch"] == 2


def test_a_run_stopped_mid_epoch_resumes_at_the_next_batch_bitwise(tmp_path):
    saves = lambda: [CheckpointCallback(every_n_steps=100)]  # noqa: E731
    straight = Trainer(max_epochs=3, steps_per_call=2, run_dir=tmp_path / "a").fit(MeanTask(), train_data=batches())
    Trainer(callbacks=saves(), max_steps=7, steps_per_call=2, run_dir=tmp_path / "b").fit(
        MeanTask(), train_data=batches()
    )
    resumed_trainer = Trainer(callbacks=saves(), max_epochs=3, steps_per_call=2, run_dir=tmp_path / "b")
    resumed = resumed_trainer.fit(MeanTask(), train_data=batches())
    assert resumed_trainer.resumed_from.step == 7 and resumed_trainer.step == 15
    chex.assert_trees_all_equal(
        jax.tree.map(np.asarray, (resumed.params, resumed.extra)),
        jax.tree.map(np.asarray, (straight.params, straight.extra)),
    )


def test_val_data_is_evaluated_whole_and_averaged_per_example(tmp_path):
    trainer = Trainer(max_epochs=1, run_dir=tmp_path, resume=None)
    state = trainer.fit(MeanTask(), train_data=batches(), val_data=[{"x": np.zeros(3)}, {"x": np.full(1, 4.0)}])
    m = float(state.params["m"])
    expected = (3 * abs(0 - m) + 1 * abs(4 - m)) / 4
    chex.assert_trees_all_close(float(trainer.evaluate()["error"]), expected, rtol=1e-6)


def test_a_train_step_that_breaks_the_contract_fails_before_the_first_call_in_one_line(tmp_path):
    class OnlyState(MeanTask):
        def train_step(self, state, batch):
            return super().train_step(state, batch)[0]

    with pytest.raises(TaskContractError, match=r"^train_step returned only the state; return \(state, metrics\)"):
        Trainer(max_epochs=1, run_dir=tmp_path, resume=None).fit(OnlyState(), train_data=batches())


def test_max_epochs_without_train_data_says_what_to_pass(tmp_path):
    with pytest.raises(ValueError, match=r"max_epochs counts passes over train_data; pass fit\(task, train_data=...\)"):
        Trainer(max_epochs=1, run_dir=tmp_path).fit(MeanTask())


CHILD = """
import chex, numpy as np
from emergence import Trainer
from tests.data.test_fit_with_data import MeanTask, batches
one = Trainer(max_epochs=2, steps_per_call=2, run_dir="one", resume=None).fit(MeanTask(), train_data=batches())
trainer = Trainer(max_epochs=2, steps_per_call=2, run_dir="all", resume=None, devices="all")
many = trainer.fit(MeanTask(), train_data=batches())
assert len(trainer.parallel.devices) == 4 and trainer.step == 10
chex.assert_trees_all_close(np.asarray(many.params["m"]), np.asarray(one.params["m"]), rtol=1e-6)
print("devices ok")
"""


def test_with_devices_all_each_batch_is_split_over_the_mesh_and_trains_as_on_one_device(tmp_path):
    repo = Path(__file__).resolve().parents[2]
    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=4", "JAX_PLATFORMS": "cpu"}
    env["PYTHONPATH"] = str(repo)
    done = subprocess.run(
        [sys.executable, "-c", CHILD], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=180
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "devices ok" in done.stdout


def test_the_logger_writes_the_steps_weighted_mean_of_calls_over_batches_and_the_last_short_call(tmp_path):
    """With train_data the compiled call over a stack of batches folds its metrics as the call without data does:
    calls of 3, 3, 3 and 1 steps (max_steps=10), rows every 6 steps and at max_steps."""
    from emergence.callbacks import LogThrottleCallback
    from emergence.metrics import CSVSink, read_metrics_csv

    class EveryCall(Callback):
        def __init__(self) -> None:
            self.calls: list[tuple[int, float]] = []

        def on_train_call_end(self, trainer, metrics) -> None:
            self.calls.append((trainer.step, float(metrics["loss"])))

    every = EveryCall()
    logger = LogThrottleCallback(every_n_steps=6, sinks=[CSVSink()])
    Trainer(callbacks=[every, logger], max_steps=10, steps_per_call=3, run_dir=tmp_path).fit(
        MeanTask(), train_data=batches(20)
    )
    (s3, a), (s6, b), (s9, c), (s10, d) = every.calls
    assert (s3, s6, s9, s10) == (3, 6, 9, 10)
    _, rows = read_metrics_csv(tmp_path / "metrics.csv")
    assert [r["step"] for r in rows] == ["6", "10"]
    assert float(rows[0]["loss"]) == pytest.approx((3 * a + 3 * b) / 6, rel=1e-6)
    assert float(rows[1]["loss"]) == pytest.approx((3 * c + 1 * d) / 4, rel=1e-6)
