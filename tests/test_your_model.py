"""Bring your own model: a flax TrainState subclass, flax NNX (by hand and through NNXTask) and a plain dict.

Each style is killed with SIGKILL mid-run in a real child process and resumed; the
resumed run must equal, bitwise, one that never stopped, on 1 device and on 8 forced
CPU devices (`devices="all"`, and `ManySeeds` split one seed per device). Run as a
script, this file is that child: `test_your_model.py kill|resume SPEC_JSON`.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

if __name__ == "__main__":  # the child: the repository root on the path, as pytest puts it
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from emergence import Callback, Trainer
from emergence.callbacks import CheckpointCallback
from emergence.checkpoint import flatten_to_host, load_newest_valid
from emergence.checkpoint.tree import UnstorableLeafError, check_storable
from emergence.parallel import ManySeeds
from emergence.parallel.mesh import shard_extra

SIZE = {"hidden": 8, "batch_size": 16, "dataset_size": 256}
EVERY = 3


def make_task(style: str) -> Any:
    """A small task of the given state style (`<style>_<S>seeds` stacks S seeds with ManySeeds)."""
    from emergence.examples.flax_linen import LinenTask
    from emergence.examples.flax_nnx import NNXSplitTask, regression
    from emergence.examples.plain_dict import DictTask

    styles = {"linen": LinenTask, "nnx": regression, "nnx_split": NNXSplitTask, "dict": DictTask}
    base, _, seeds = style.partition("_seeds_")
    task = styles[base](**SIZE)
    return ManySeeds(task, int(seeds)) if seeds else task


class PrintStep(Callback):
    def on_train_call_end(self, trainer, metrics):
        print(f"step {trainer.step}", flush=True)

    def on_save_checkpoint(self, trainer, ref):
        print(f"saved {ref.path.name}", flush=True)


def fit(style: str, run_dir: Path, max_steps: int, devices: Any, *, print_steps: bool = False) -> Trainer:
    """Train `style` in `run_dir` to `max_steps`, resuming whatever is there; the finished Trainer."""
    callbacks = [CheckpointCallback(every_n_steps=EVERY, keep_last=2)] + ([PrintStep()] if print_steps else [])
    trainer = Trainer(make_task(style), callbacks, max_steps=max_steps, run_dir=run_dir, devices=devices)
    trainer.fit()
    return trainer


def child(mode: str, spec: dict) -> None:
    """`kill`: train until killed. `resume`: resume the killed run 3 steps past its newest checkpoint, train
    a fresh run to the same step, print whether the two states are bitwise equal."""
    run_dir, devices = Path(spec["run_dir"]), spec.get("devices")
    if mode == "kill":
        fit(spec["style"], run_dir, 100_000, devices, print_steps=True)
        return
    newest = load_newest_valid(run_dir / "checkpoints")
    target = newest.manifest["step"] + 3
    resumed = fit(spec["style"], run_dir, target, devices)
    straight = fit(spec["style"], run_dir.with_name("straight"), target, devices)
    a, _ = flatten_to_host(resumed.state)
    b, _ = flatten_to_host(straight.state)
    differ = sorted(n for n in a if not np.array_equal(a[n], b[n]))
    types = [str(jax.typeof(leaf)) for leaf in jax.tree.leaves(resumed.state)]
    print(
        json.dumps(
            {
                "resumed_from": newest.manifest["step"],
                "fit_start_step": resumed.fit_start_step,
                "target": target,
                "leaves": sorted(a) == sorted(b) and len(a),
                "differ": differ,
                "same_types": types == [str(jax.typeof(leaf)) for leaf in jax.tree.leaves(straight.state)],
                "devices": len(jax.tree.leaves(resumed.state)[0].sharding.device_set),
            }
        )
    )


def _env(devices: int) -> dict[str, str]:
    """A child's environment: CPU, `devices` forced devices, the compilation cache other test children share."""
    from tests.scripts.driver import COMPILE_CACHE

    repo = str(Path(__file__).resolve().parents[1])
    env = {**COMPILE_CACHE, **os.environ, "PYTHONUNBUFFERED": "1", "JAX_PLATFORMS": "cpu", "PYTHONPATH": repo}
    if devices > 1:
        env["XLA_FLAGS"] = f"--xla_force_host_platform_device_count={devices}"
    return env


def _kill_after_a_save(spec: dict, env: dict[str, str]) -> None:
    """Start a `kill` child, SIGKILL it a moment after its second durable checkpoint."""
    process = subprocess.Popen(
        [sys.executable, __file__, "kill", json.dumps(spec)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    saved, give_up = 0, time.monotonic() + 240
    for line in process.stdout:
        saved += line.startswith("saved ")
        if saved == 2 or time.monotonic() > give_up:
            break
    time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    _, stderr = process.communicate(timeout=60)
    assert saved == 2, stderr[-3000:]
    assert process.returncode == -signal.SIGKILL


def sigkill_then_resume(tmp_path: Path, style: str, devices: int) -> dict:
    """SIGKILL a run of `style` on `devices` CPU devices, resume it in a new process; what the resume reports."""
    spec = {"style": style, "run_dir": str(tmp_path / "run"), "devices": "all" if devices > 1 else None}
    env = _env(devices)
    _kill_after_a_save(spec, env)
    done = subprocess.run(
        [sys.executable, __file__, "resume", json.dumps(spec)], capture_output=True, text=True, env=env, timeout=300
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def assert_bitwise(report: dict, devices: int) -> None:
    assert report["resumed_from"] >= EVERY and report["fit_start_step"] == report["resumed_from"], report
    assert report["leaves"] and report["differ"] == [] and report["same_types"], report
    assert report["devices"] == devices, report


@pytest.mark.parametrize("style", ["linen", "nnx", pytest.param("nnx_split", marks=pytest.mark.slow), "dict"])
def test_sigkill_and_resume_is_bitwise_for_each_state_style_on_one_device(tmp_path, style):
    assert_bitwise(sigkill_then_resume(tmp_path, style, 1), 1)


def test_sigkill_and_resume_is_bitwise_for_a_flax_train_state_on_eight_devices(tmp_path):
    assert_bitwise(sigkill_then_resume(tmp_path, "linen", 8), 8)


@pytest.mark.slow
@pytest.mark.parametrize("style", ["nnx", "nnx_split", "dict", "linen_seeds_8", "nnx_seeds_8"])
def test_sigkill_and_resume_is_bitwise_for_each_state_style_on_eight_devices(tmp_path, style):
    assert_bitwise(sigkill_then_resume(tmp_path, style, 8), 8)


# in process: resume without a kill, ManySeeds, what the framework refuses


def _final_arrays(trainer: Trainer) -> dict[str, np.ndarray]:
    return flatten_to_host(trainer.state)[0]


@pytest.mark.parametrize("style", ["linen_seeds_3", "nnx_seeds_3"])
@pytest.mark.slow
def test_resume_in_process_is_bitwise_and_keeps_the_weakly_typed_step(tmp_path, style):
    fit(style, tmp_path / "run", 6, None)
    resumed = fit(style, tmp_path / "run", 9, None)
    straight = fit(style, tmp_path / "straight", 9, None)
    assert resumed.fit_start_step == 6
    chex.assert_trees_all_equal(_final_arrays(resumed), _final_arrays(straight), strict=True)
    types = lambda state: [jax.typeof(leaf) for leaf in jax.tree.leaves(state)]
    assert types(resumed.state) == types(straight.state)
    if style.startswith("linen"):
        assert jax.typeof(resumed.state.step).weak_type  # what flax's step=0 became, not a strong int32


def test_a_flax_state_saved_before_its_first_step_resumes():
    """`step` is still the Python int 0 then: stored as the int32 it becomes, not numpy's int64, and restored weak."""
    from emergence.checkpoint.tree import unflatten_into

    fresh = make_task("linen").init_state(jax.random.key(0))
    assert isinstance(fresh.step, int)
    arrays, keys = flatten_to_host(fresh)
    assert arrays["step"].dtype == np.int32
    assert jax.typeof(unflatten_into(fresh, arrays, keys).step) == jax.typeof(jax.jit(lambda s: s)(0))


def test_nnx_task_takes_the_modules_themselves(tmp_path):
    import optax
    from flax import nnx

    from emergence.examples.flax_nnx import MLP
    from emergence.nnx import NNXTask

    model = MLP(8, nnx.Rngs(0))
    optimizer = nnx.Optimizer(model, optax.sgd(0.1), wrt=nnx.Param)
    x = jnp.linspace(-1, 1, 16)[:, None]

    def step(m):
        loss, grads = nnx.value_and_grad(lambda mod: jnp.mean((mod(x) - x) ** 2))(m[0])
        m[1].update(m[0], grads)
        return {"loss": loss}

    task = NNXTask((model, optimizer), step)
    Trainer(task, [CheckpointCallback(every_n_steps=2, keep_last=None)], max_steps=4, run_dir=tmp_path).fit()
    resumed = Trainer(task, max_steps=6, run_dir=tmp_path)
    resumed.fit()
    straight = Trainer(task, max_steps=6, run_dir=tmp_path / "straight", resume=None)
    straight.fit()
    assert resumed.fit_start_step == 4
    chex.assert_trees_all_equal(_final_arrays(resumed), _final_arrays(straight), strict=True)
    trained, _ = task.modules(resumed.state)
    assert float(jnp.mean((trained(x) - x) ** 2)) < float(jnp.mean((model(x) - x) ** 2))  # handed model intact


def test_nnx_task_refuses_what_it_cannot_train_in_one_line():
    import optax
    from flax import nnx

    from emergence.examples.flax_nnx import MLP
    from emergence.nnx import NNXTask

    model = MLP(4, nnx.Rngs(0))
    with pytest.raises(TypeError, match="NNXTask needs a function rngs -> modules, or NNX modules; got int"):
        NNXTask(3, lambda m: {})
    with pytest.raises(TypeError, match="NNXTask step must be a function modules -> metrics; got str"):
        NNXTask(model, "step")
    handed = NNXTask((model, nnx.Optimizer(model, optax.sgd(0.1), wrt=nnx.Param)), lambda m: {})
    with pytest.raises(ValueError, match="give NNXTask a create\\(rngs\\) function to train many seeds"):
        ManySeeds(handed, 2).init_state(jax.random.key(0))


@pytest.mark.parametrize(
    "bad, message",
    [
        (lambda: NotImplemented, "state leaf 'extra' is a NotImplementedType, not an array"),
        (lambda: "cosine", "state leaf 'extra' is a str, not an array"),
        (lambda: jnp.zeros(2, jnp.complex64), "state leaf 'extra' has dtype complex64, which safetensors cannot store"),
    ],
)
def test_a_leaf_no_checkpoint_can_hold_is_one_line_naming_it(bad, message):
    from emergence.state import TrainState

    state = TrainState.create(params={"w": jnp.zeros(2)}, opt_state=(), rng=jax.random.key(0), extra=bad())
    for check in (check_storable, flatten_to_host):
        with pytest.raises(UnstorableLeafError, match=message) as caught:
            check(state)
        assert "\n" not in str(caught.value)


def test_a_save_of_an_unstorable_state_fails_in_one_line_before_writing(tmp_path):
    class Complex:
        name = "complex"

        def init_state(self, rng):
            return {"z": jnp.zeros(2, jnp.complex64), "rng": rng}

        def train_step(self, state):
            return {"z": state["z"] + 1j, "rng": state["rng"]}, {"loss": jnp.abs(state["z"]).sum()}

    trainer = Trainer(Complex(), [CheckpointCallback(every_n_steps=1)], max_steps=3, run_dir=tmp_path)
    with pytest.raises(UnstorableLeafError, match="state leaf 'z' has dtype complex64"):
        trainer.fit()
    assert not list((tmp_path / "checkpoints").glob("*.safetensors"))


def test_an_unstorable_leaf_fails_at_fit_start_before_any_train_call(tmp_path):
    calls = []

    class Complex:
        name = "complex"

        def init_state(self, rng):
            return {"z": jnp.zeros(2, jnp.complex64), "rng": rng}

        def train_step(self, state):
            calls.append(1)
            return state, {"loss": jnp.abs(state["z"]).sum()}

    trainer = Trainer(Complex(), [], max_steps=3, run_dir=tmp_path)  # no checkpoint callback: no save would find it
    with pytest.raises(UnstorableLeafError, match="state leaf 'z' has dtype complex64") as caught:
        trainer.fit()
    assert "\n" not in str(caught.value) and calls == [] and trainer.step == 0


def test_shard_extra_needs_no_emergence_train_state():
    from flax.training import train_state
    from jax.sharding import Mesh

    class State(train_state.TrainState):
        extra: Any

    mesh = Mesh(np.array(jax.devices()[:1]), ("data",))
    spec = lambda tree: [str(s.spec) for s in jax.tree.leaves(tree)]
    as_dict = shard_extra(mesh, {"params": {"w": jnp.zeros((4, 2))}, "extra": {"envs": jnp.zeros((8, 3))}})
    assert spec(as_dict["extra"]) == ["P('data',)"] and spec(as_dict["params"]) == ["P()"]
    flax_state = State.create(
        apply_fn=None, params={"w": jnp.zeros(4)}, tx=__import__("optax").sgd(0.1), extra={"envs": jnp.zeros((8, 3))}
    )
    shardings = shard_extra(mesh, flax_state)
    assert spec(shardings.extra) == ["P('data',)"]
    assert spec(shardings.params) == ["P()"] and str(shardings.step.spec) == "P()"


@pytest.mark.parametrize("style", ["linen", "nnx", "dict", "linen_seeds_3"])
def test_fold_in_keys_gives_every_key_of_any_state_a_fresh_stream(style):
    from emergence.checkpoint.tree import fold_in_keys, is_typed_key

    state = make_task(style).init_state(jax.random.key(0))
    folded = fold_in_keys(state, 7)
    pairs = list(zip(jax.tree.leaves(state), jax.tree.leaves(folded)))
    keys = [(a, b) for a, b in pairs if is_typed_key(a)]
    assert keys and all(jnp.any(jax.random.key_data(a) != jax.random.key_data(b)) for a, b in keys)
    assert all(a is b for a, b in pairs if not is_typed_key(a))


if __name__ == "__main__":
    child(sys.argv[1], json.loads(sys.argv[2]))
