"""Trainer(devices=...): data parallel over 8 forced CPU devices in a child process, checked against 1 device.

The parent test process has one CPU device; each test starts this file as a script
with `XLA_FLAGS=--xla_force_host_platform_device_count=8`, runs real Trainers there,
and reads their checkpoints back with the real reader.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import chex
import jax
import numpy as np
import pytest

from emergence import Callback, Trainer
from emergence.callbacks import CheckpointCallback
from emergence.checkpoint import flatten_to_host, read_checkpoint
from emergence.parallel import DeviceError, ManySeeds
from emergence.testing import toy_task


def tiny_ppo():
    from emergence.envs import EnvParams
    from emergence.lab.agents import PPOTask
    from emergence.lab.agents.config import PPOConfig

    env = EnvParams(grid_size=6, max_agents=4, initial_agents=2, num_food=4, view_radius=1, max_steps=20)
    return PPOTask(
        PPOConfig(
            env=env,
            num_envs=8,
            rollout_len=4,
            num_epochs=1,
            num_minibatches=2,
            hidden_sizes=(8,),
            eval_envs=1,
            eval_steps=4,
        )
    )


TASKS = {"toy": toy_task, "ppo": tiny_ppo, "8_seeds": lambda: ManySeeds(toy_task(), 8)}


class SaveWhatWasRestored(Callback):
    """Writes the restored state back out as it was placed on this run's devices, before any step."""

    def on_fit_start(self, trainer):
        trainer.save_checkpoint("periodic")


def fit(spec: dict) -> dict:
    """One Trainer run as `spec` says; how its final state is laid out on the devices."""
    resume = spec.get("resume")
    callbacks = [CheckpointCallback(every_n_steps=spec.get("every", 3), keep_last=None)]
    callbacks += [SaveWhatWasRestored()] if resume else []
    trainer = Trainer(
        TASKS[spec.get("task", "toy")](),
        callbacks,
        max_steps=spec["max_steps"],
        run_dir=spec["run_dir"],
        resume=resume,
        devices=spec.get("devices"),
        async_checkpoint=False,
    )
    state = trainer.fit()
    layout = lambda tree: sorted(
        {
            f"{getattr(leaf.sharding, 'spec', 'single')} on {len(leaf.sharding.device_set)}"
            for leaf in jax.tree.leaves(tree)
        }
    )
    return {
        "params": layout(state.params),
        "opt_state": layout(state.opt_state),
        "extra": layout(state.extra),
        "step": trainer.step,
        "resumed_from": str(trainer.resumed_from.path) if trainer.resumed_from else None,
    }


def in_eight_devices(*specs: dict) -> list[dict]:
    """Run `specs` one after the other in a child process that sees 8 CPU devices."""
    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=8", "JAX_PLATFORMS": "cpu"}
    done = subprocess.run(
        [sys.executable, __file__, json.dumps(specs)], capture_output=True, text=True, env=env, timeout=300
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def final(run_dir: Path, step: int) -> dict[str, np.ndarray]:
    return read_checkpoint(run_dir / "checkpoints" / f"final_step_{step}.safetensors").arrays


def assert_close(a: dict[str, np.ndarray], b: dict[str, np.ndarray], rtol: float = 1e-5, atol: float = 1e-6) -> None:
    chex.assert_trees_all_close(a, b, rtol=rtol, atol=atol)


@pytest.mark.slow  # 11 s; CI's slow stage runs it
def test_eight_devices_and_one_agree_to_float_tolerance_and_eight_seeds_run_one_per_device(tmp_path):
    one, eight, plain, seeds_sharded, seeds_plain = in_eight_devices(
        {"devices": 1, "max_steps": 6, "run_dir": str(tmp_path / "one")},
        {"devices": "all", "max_steps": 6, "run_dir": str(tmp_path / "eight")},
        {"devices": None, "max_steps": 6, "run_dir": str(tmp_path / "plain")},
        {"task": "8_seeds", "devices": "all", "max_steps": 4, "run_dir": str(tmp_path / "seeds_eight")},
        {"task": "8_seeds", "devices": None, "max_steps": 4, "run_dir": str(tmp_path / "seeds_plain")},
    )
    assert eight["params"] == ["P() on 8"] and one["params"] == ["P() on 1"] and plain["params"] == ["single on 1"]
    assert_close(final(tmp_path / "eight", 6), final(tmp_path / "one", 6))
    assert_close(final(tmp_path / "eight", 6), final(tmp_path / "plain", 6))
    assert seeds_sharded["params"] == seeds_sharded["opt_state"] == ["P('data',) on 8"]  # the seed axis split
    assert seeds_plain["params"] == ["single on 1"]
    assert_close(final(tmp_path / "seeds_eight", 4), final(tmp_path / "seeds_plain", 4))


@pytest.mark.slow  # 9 s; CI's slow stage runs it
def test_a_checkpoint_saved_on_8_devices_resumes_on_1_and_2_and_the_other_way(tmp_path):
    saved_8, saved_1 = tmp_path / "on8", tmp_path / "on1"
    at_step_3 = lambda run_dir: str(run_dir / "checkpoints" / "step_3.safetensors")
    runs = in_eight_devices(
        {"devices": 8, "max_steps": 6, "run_dir": str(saved_8)},
        {"devices": 1, "max_steps": 6, "run_dir": str(saved_1)},
        {"devices": 1, "max_steps": 3, "run_dir": str(tmp_path / "restored_on_1"), "resume": at_step_3(saved_8)},
        {"devices": 2, "max_steps": 3, "run_dir": str(tmp_path / "restored_on_2"), "resume": at_step_3(saved_8)},
        {"devices": 8, "max_steps": 3, "run_dir": str(tmp_path / "restored_on_8"), "resume": at_step_3(saved_1)},
        {"devices": 2, "max_steps": 6, "run_dir": str(tmp_path / "8_then_2"), "resume": at_step_3(saved_8)},
        {"devices": 8, "max_steps": 6, "run_dir": str(tmp_path / "1_then_8"), "resume": at_step_3(saved_1)},
    )
    assert [r["params"] for r in runs[2:]] == [["P() on 1"], ["P() on 2"], ["P() on 8"], ["P() on 2"], ["P() on 8"]]
    assert [r["step"] for r in runs[2:]] == [3, 3, 3, 6, 6] and all(r["resumed_from"] for r in runs[2:])
    for restored, source in (("restored_on_1", saved_8), ("restored_on_2", saved_8), ("restored_on_8", saved_1)):
        stored = read_checkpoint(at_step_3(source)).arrays  # restoring then saving gives the same state, bitwise
        again = read_checkpoint(at_step_3(tmp_path / restored)).arrays
        chex.assert_trees_all_equal(again, stored, strict=True)
    assert_close(final(tmp_path / "8_then_2", 6), final(saved_8, 6))
    assert_close(final(tmp_path / "1_then_8", 6), final(saved_1, 6))
    alone = Trainer(
        toy_task(),
        max_steps=6,
        run_dir=tmp_path / "one_device_process",
        resume=at_step_3(saved_8),
        async_checkpoint=False,
    )  # this process has a single device and no mesh
    assert_close(flatten_to_host(alone.fit())[0], final(saved_8, 6))


@pytest.mark.slow
def test_ppo_splits_its_worlds_across_devices_and_matches_one_device(tmp_path):
    sharded, plain = in_eight_devices(
        {"task": "ppo", "devices": "all", "max_steps": 2, "every": 2, "run_dir": str(tmp_path / "eight")},
        {"task": "ppo", "devices": None, "max_steps": 2, "every": 2, "run_dir": str(tmp_path / "plain")},
    )
    assert sharded["params"] == ["P() on 8"] and sharded["opt_state"] == ["P() on 8"]
    assert sharded["extra"] == ["P('data',) on 8", "P() on 8"]  # the num_envs axis of worlds and heads; Adam's count
    assert_close(final(tmp_path / "eight", 2), final(tmp_path / "plain", 2), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize(
    "devices, says",
    [
        (0, "devices=0 but this process has 1"),
        (2, "devices=2 but this process has 1"),
        ("gpu", "devices must be 'all', a positive int or a non-empty list"),
        (1.5, "devices must be 'all'"),
        (True, "devices must be 'all'"),
        ([], "devices must be 'all'"),
        (["cpu:0"], "devices must be 'all'"),
    ],
)
def test_a_bad_devices_value_is_a_one_line_error(tmp_path, devices, says):
    with pytest.raises(DeviceError) as raised:
        Trainer(toy_task(), max_steps=1, run_dir=tmp_path, devices=devices)
    assert says in str(raised.value) and "\n" not in str(raised.value)


def test_a_device_listed_twice_is_refused_and_the_listed_devices_are_used(tmp_path):
    device = jax.local_devices()[0]
    with pytest.raises(DeviceError, match="twice"):
        Trainer(toy_task(), max_steps=1, run_dir=tmp_path, devices=[device, device])
    trainer = Trainer(toy_task(), max_steps=2, run_dir=tmp_path, devices=[device], async_checkpoint=False)
    params = trainer.fit().params
    assert all(leaf.sharding.device_set == {device} for leaf in jax.tree.leaves(params))


if __name__ == "__main__":
    print(json.dumps([fit(spec) for spec in json.loads(sys.argv[1])]))
