"""NonFiniteGuardCallback and the Trainer's refusal to checkpoint a non-finite state."""

from __future__ import annotations

import json

import numpy as np
import pytest

from emergence.callbacks import CheckpointCallback, FinalizeCallback, NonFiniteGuardCallback
from emergence.checkpoint import read_checkpoint
from emergence.checkpoint.finite import NonFiniteStateError
from emergence.testing import Scenario


def _all_finite(outcome) -> bool:
    paths = [outcome.scenario.run_dir / "checkpoints" / name for name in outcome.checkpoints]
    return all(
        np.isfinite(a).all() for path in paths for a in read_checkpoint(path).arrays.values() if a.dtype.kind == "f"
    )


def _guarded(every: int = 5, max_rollbacks: int = 3):
    return lambda clock: [
        CheckpointCallback(every_n_steps=5, keep_last=None),
        NonFiniteGuardCallback(every_n_steps=every, max_rollbacks=max_rollbacks),
    ]


def test_a_nan_rolls_back_to_the_last_good_checkpoint_and_training_goes_on(run_dir):
    outcome = Scenario(max_steps=30, run_dir=run_dir).nan_at(13).run(_guarded())
    guard = outcome.trainer.callbacks[-1]
    assert outcome.exception is None and outcome.stop_reason == "max_steps" and outcome.step == 30
    assert guard.rollbacks == [{"step": 15, "restored_step": 10, "fold_in": 1}]
    assert "final_step_30.safetensors" in outcome.checkpoints and _all_finite(outcome)


def test_a_rollback_without_a_fresh_key_would_meet_the_same_nan(run_dir):
    """The NaN depends on the rng (DivergingTask): the guard's fold-in is what lets the run escape it."""
    outcome = Scenario(max_steps=30, run_dir=run_dir).nan_at(13, every_time=True).run(_guarded(max_rollbacks=2))
    guard = outcome.trainer.callbacks[-1]
    assert len(guard.rollbacks) == 2 and outcome.stop_reason == "non_finite"
    assert outcome.exception is None and outcome.step < 30
    assert f"final_step_{outcome.step}.safetensors" in outcome.checkpoints and _all_finite(outcome)


def test_the_rollbacks_travel_in_the_checkpoint_and_reach_the_summary(run_dir):
    def callbacks(clock):
        return [*_guarded()(clock), FinalizeCallback()]

    first = Scenario(max_steps=20, run_dir=run_dir).nan_at(13).run(callbacks)
    resumed = first.resume(max_steps=25)
    expected = [{"step": 15, "restored_step": 10, "fold_in": 1}]
    assert resumed.trainer.callbacks[-2].rollbacks == expected
    assert json.loads((run_dir / "summary.json").read_text())["rollbacks"] == expected


def test_with_nothing_to_roll_back_to_it_stops_and_no_checkpoint_holds_nan(run_dir):
    outcome = (
        Scenario(max_steps=30, run_dir=run_dir)
        .nan_at(3)
        .run([CheckpointCallback(every_n_steps=10), NonFiniteGuardCallback(every_n_steps=5)])
    )
    assert outcome.stop_reason == "non_finite" and outcome.step == 5
    assert isinstance(outcome.exception, NonFiniteStateError)  # the final save is refused, loudly
    assert outcome.checkpoints == []


def test_without_a_guard_the_trainer_refuses_to_checkpoint_nan_in_one_line(run_dir):
    outcome = Scenario(max_steps=30, run_dir=run_dir).nan_at(3).run([CheckpointCallback(every_n_steps=5)])
    error = outcome.exception
    assert isinstance(error, NonFiniteStateError) and "\n" not in str(error)
    assert str(error).startswith("refusing to write a periodic checkpoint of step 5: leaf 'params/")
    assert "NonFiniteGuardCallback" in str(error)
    assert outcome.checkpoints == []


def test_the_guard_fetches_only_at_its_interval(run_dir, monkeypatch):
    import jax

    fetched: list[int] = []
    real = jax.device_get
    monkeypatch.setattr(jax, "device_get", lambda x: fetched.append(1) or real(x))
    outcome = Scenario(max_steps=20, run_dir=run_dir).run([NonFiniteGuardCallback(every_n_steps=5)])
    assert outcome.exception is None and len(fetched) == 4


def test_an_unknown_monitor_is_a_one_line_error_naming_the_metrics(run_dir):
    outcome = Scenario(max_steps=5, run_dir=run_dir).run([NonFiniteGuardCallback(monitor="lss")])
    assert isinstance(outcome.exception, ValueError)
    assert str(outcome.exception) == (
        "NonFiniteGuardCallback: monitor 'lss' is not a train metric; pick one of "
        "['grad_norm', 'loss'], or monitor=None to check only the state"
    )


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"max_rollbacks": -1}, "max_rollbacks must be an integer >= 0"),
        ({"every_n_steps": 0}, "every_n_steps must be a positive integer"),
        ({"every_n_steps": None}, "every_n_steps must be a positive integer"),
        ({"monitor": None, "check_state": False}, "checks nothing"),
    ],
)
def test_bad_settings_are_one_line_errors(kwargs, message):
    with pytest.raises(ValueError, match=message) as info:
        NonFiniteGuardCallback(**kwargs)
    assert "\n" not in str(info.value)


def test_restore_checkpoint_loads_a_file_and_folds_a_fresh_key_into_the_rng(tiny_trainer, run_dir):
    import jax

    from emergence.checkpoint.tree import fold_rng as _fold_rng

    trainer = tiny_trainer([CheckpointCallback(every_n_steps=5, keep_last=None)])
    trainer.fit()
    path = run_dir / "checkpoints" / "step_5.safetensors"
    ref = trainer.restore_checkpoint(path)
    assert (ref.kind, ref.step, trainer.step) == ("periodic", 5, 10)  # the step counter does not go back
    saved = read_checkpoint(path).arrays
    assert np.array_equal(
        np.asarray(trainer.state.params["params"]["Dense_0"]["kernel"]), saved["params/params/Dense_0/kernel"]
    )
    plain_rng = trainer.state.rng
    trainer.restore_checkpoint(path, fold_in=1)
    assert np.array_equal(jax.random.key_data(trainer.state.rng), jax.random.key_data(jax.random.fold_in(plain_rng, 1)))
    with pytest.raises(ValueError, match="holds no typed PRNG key .* and no `rng` field or 'rng' key"):
        _fold_rng({"params": 1.0}, 1)


def test_a_rollback_refreshes_a_flax_train_states_key_field_too(tmp_path):
    """flax's TrainState subclass keeps its dropout key as `key`, not `rng`: the fold reaches it (fold_in_keys)."""
    import jax

    from emergence import Trainer
    from emergence.examples.flax_linen import LinenTask

    trainer = Trainer(
        LinenTask(hidden=8, batch_size=8, dataset_size=64),
        [CheckpointCallback(every_n_steps=2, keep_last=None)],
        max_steps=4,
        run_dir=tmp_path,
        resume=None,
    )
    trainer.fit()
    path = tmp_path / "checkpoints" / "step_2.safetensors"
    trainer.restore_checkpoint(path)
    plain = trainer.state
    trainer.restore_checkpoint(path, fold_in=3)
    assert np.array_equal(jax.random.key_data(trainer.state.key), jax.random.key_data(jax.random.fold_in(plain.key, 3)))
    assert np.array_equal(np.asarray(trainer.state.step), np.asarray(plain.step))  # only the keys change
    assert not np.array_equal(jax.random.key_data(trainer.state.key), jax.random.key_data(plain.key))


@pytest.mark.parametrize("dtype", ["float32", "float64", "float16", "bfloat16"])
def test_the_finite_scan_finds_one_bad_value_in_a_large_leaf_and_no_overflow_is_taken_for_one(dtype):
    from emergence.checkpoint.finite import non_finite_leaves

    huge = np.full(100_000, np.finfo(np.float16).max if dtype == "float16" else 1e38, dtype=dtype)
    arrays = {"huge": huge, "ints": np.arange(100_000)}  # their sums overflow: settled element by element
    for bad in (np.nan, np.inf, -np.inf):
        poisoned = np.ones(100_000, dtype=dtype)
        poisoned[54_321] = bad
        arrays[f"bad_{bad}"] = poisoned
    assert non_finite_leaves(arrays) == ["bad_nan", "bad_inf", "bad_-inf"]


def test_a_run_the_guard_stopped_run_again_stops_at_once(run_dir):
    stopped = Scenario(max_steps=30, run_dir=run_dir).nan_at(13, every_time=True).run(_guarded(max_rollbacks=2))
    assert stopped.stop_reason == "non_finite"
    again = stopped.resume(max_steps=30)
    assert again.stop_reason == "non_finite" and again.step == stopped.step
    assert again.trainer.callbacks[-1].rollbacks == stopped.trainer.callbacks[-1].rollbacks


def test_restored_rollbacks_of_the_wrong_type_are_a_one_line_error():
    from emergence.errors import CorruptCheckpointError

    with pytest.raises(CorruptCheckpointError, match="NonFiniteGuardCallback: the checkpoint's 'rollbacks'"):
        NonFiniteGuardCallback().load_state_dict({"rollbacks": [{"step": "/etc/passwd"}]})
