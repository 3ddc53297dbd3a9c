"""ManySeeds: S runs vmapped in one program, one stacked checkpoint, per-seed metrics, and `ckpt export --seed`."""

from __future__ import annotations

import chex
import jax
import numpy as np
import pytest

from emergence import Trainer
from emergence.callbacks import CheckpointCallback
from emergence.checkpoint import flatten_to_host, read_checkpoint
from emergence.cli import main
from emergence.errors import ConfigMismatchError
from emergence.parallel import ManySeeds
from emergence.testing import toy_task

SEEDS = 4


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    """A 4-seed run of the toy task to step 6 (checkpoints at 3 and 6, eval every 3), trained once for the module."""
    run_dir = tmp_path_factory.mktemp("stack")
    trainer = Trainer(
        ManySeeds(toy_task(), SEEDS),
        [CheckpointCallback(every_n_steps=3, keep_last=None)],
        max_steps=6,
        run_dir=run_dir,
        resume=None,
        eval_every_n_steps=3,
        async_checkpoint=False,
    )
    state = trainer.fit()
    return trainer, state, run_dir / "checkpoints"


def test_seed_i_starts_from_the_run_key_folded_with_i():
    run_key = jax.random.key(7)
    stacked = flatten_to_host(ManySeeds(toy_task(), 3).init_state(run_key))[0]
    for i in range(3):
        alone = flatten_to_host(toy_task().init_state(jax.random.fold_in(run_key, i)))[0]
        chex.assert_trees_all_equal({name: stacked[name][i] for name in alone}, alone)
    kernel = stacked["params/params/Dense_0/kernel"]
    assert not np.array_equal(kernel[0], kernel[1])


def test_metrics_come_per_seed_on_device_and_their_mean_under_the_plain_name(stack):
    trainer, _, _ = stack
    metrics, evals = trainer.last_metrics, trainer.last_eval_metrics
    assert set(metrics) == {
        f"{m}{s}" for m in ("loss", "grad_norm") for s in ["", *(f"/seed_{i}" for i in range(SEEDS))]
    }
    assert set(evals) == {"val_loss", *(f"val_loss/seed_{i}" for i in range(SEEDS))}
    assert all(isinstance(value, jax.Array) for value in metrics.values())  # nothing was fetched to the host
    per_seed = [float(metrics[f"loss/seed_{i}"]) for i in range(SEEDS)]
    assert float(metrics["loss"]) == pytest.approx(np.mean(per_seed)) and len(set(per_seed)) == SEEDS


def test_one_checkpoint_holds_the_stacked_state_and_the_stack_config(stack):
    _, _, folder = stack
    file = read_checkpoint(folder / "final_step_6.safetensors")
    assert file.manifest["config"] == {"num_seeds": SEEDS, "task": toy_task().config() | {"hidden": [8]}}
    assert file.arrays["step"].tolist() == [6] * SEEDS and file.arrays["rng"].shape[0] == SEEDS
    assert file.arrays["params/params/Dense_0/kernel"].shape == (SEEDS, 1, 8)
    assert "loss/seed_2" in file.manifest["metrics"]


def test_an_exported_seed_resumes_alone_and_continues_like_it_does_in_the_stack(stack, tmp_path, capsys):
    """Step and rng continue bitwise; float leaves to float tolerance only: vmap turns each matmul into a
    batched dot that XLA's CPU backend reduces in another order, so the last bits differ (seen: 3e-8)."""
    _, state, folder = stack
    out = tmp_path / "seed_2" / "checkpoints" / "step_3.safetensors"
    assert main(["ckpt", "export", "--seed", "2", str(folder / "step_3.safetensors"), str(out)]) == 0
    assert "seed 2" in capsys.readouterr().out
    exported, source = read_checkpoint(out), read_checkpoint(folder / "step_3.safetensors")
    chex.assert_trees_all_equal(exported.arrays, {n: a[2] for n, a in source.arrays.items()})  # a bitwise slice
    assert exported.manifest["config"] == source.manifest["config"]["task"] and exported.manifest["callbacks"] == {}
    assert exported.manifest["metrics"] == {  # saved after the step's evaluation: its metrics too
        name: source.manifest["metrics"][f"{name}/seed_2"] for name in ("loss", "grad_norm", "val_loss")
    }
    alone = Trainer(toy_task(), max_steps=6, run_dir=tmp_path / "seed_2", async_checkpoint=False)
    continued = flatten_to_host(alone.fit())[0]
    in_stack = {name: leaf[2] for name, leaf in flatten_to_host(state)[0].items()}
    assert alone.resumed_from.path == out and sorted(continued) == sorted(in_stack)
    assert np.array_equal(continued["rng"], in_stack["rng"]) and int(continued["step"]) == 6
    chex.assert_trees_all_close(continued, in_stack, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize(
    "args, says",
    [
        (("--seed", "4"), "--seed 4 is out of range: step_3.safetensors holds seeds 0..3"),
        (("--seed", "-1"), "--seed -1 is out of range"),
        (("--seed", "0", "--include", "params", "rng"), "drop --include"),
    ],
)
def test_a_bad_seed_export_is_one_line_and_exit_2(stack, tmp_path, capsys, args, says):
    _, _, folder = stack
    code = main(["ckpt", "export", str(folder / "step_3.safetensors"), str(tmp_path / "out.safetensors"), *args])
    err = capsys.readouterr().err.strip()
    assert code == 2 and says in err and "\n" not in err and not (tmp_path / "out.safetensors").exists()


def test_exporting_a_seed_of_an_ordinary_checkpoint_or_into_a_directory_is_refused(stack, tmp_path, capsys):
    single = tmp_path / "single"
    Trainer(
        toy_task(), [CheckpointCallback(every_n_steps=2)], max_steps=2, run_dir=single, async_checkpoint=False
    ).fit()
    assert main(["ckpt", "export", "--seed", "0", str(single), str(tmp_path / "o.safetensors")]) == 2
    assert "holds one run, not a ManySeeds stack" in capsys.readouterr().err
    assert main(["ckpt", "export", "--seed", "0", str(stack[2]), str(tmp_path)]) == 2
    assert "is a directory" in capsys.readouterr().err


def test_resuming_with_another_num_seeds_is_refused_by_name(stack, tmp_path):
    _, _, folder = stack
    trainer = Trainer(ManySeeds(toy_task(), 2), max_steps=7, run_dir=tmp_path, resume=folder)
    with pytest.raises(ConfigMismatchError, match="num_seeds"):
        trainer.fit()


@pytest.mark.parametrize("num_seeds", [0, -2, 1.5, True])
def test_a_bad_num_seeds_is_a_one_line_error(num_seeds):
    with pytest.raises(ValueError, match=f"num_seeds must be a positive integer, got {num_seeds!r}$"):
        ManySeeds(toy_task(), num_seeds)
