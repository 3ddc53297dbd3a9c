"""`emergence ckpt export` keeps what inference needs: a BatchNorm model runs from the export alone."""

from __future__ import annotations

import chex
import jax
import safetensors.numpy
from flax import traverse_util

from emergence.checkpoint import checkpoint_name, flatten_to_host, write_checkpoint
from emergence.checkpoint.manifest import build_manifest
from emergence.cli import main
from emergence.examples.flax_linen import LinenTask


def test_export_of_a_batchnorm_model_keeps_batch_stats_and_the_model_runs_from_it(tmp_path, capsys):
    task = LinenTask(hidden=8, dataset_size=64)
    state = task.init_state(jax.random.key(0))
    state, _ = jax.jit(task.train_step)(state)  # BatchNorm's running statistics move off their init
    arrays, typed_keys = flatten_to_host(state)
    manifest = build_manifest(
        step=1, kind="final", reason=None, config={}, callbacks={}, metrics={}, typed_keys=typed_keys
    )
    source = tmp_path / "checkpoints" / checkpoint_name("final", 1)
    source.parent.mkdir()
    write_checkpoint(source, arrays, manifest)

    assert main(["ckpt", "export", str(source), str(tmp_path / "model.safetensors")]) == 0
    exported = safetensors.numpy.load_file(str(tmp_path / "model.safetensors"))
    assert {name.split("/")[0] for name in exported} == {"params", "batch_stats"}
    variables = traverse_util.unflatten_dict({tuple(name.split("/")): value for name, value in exported.items()})
    from_export = task.model.apply(variables, task.x[:4], train=False)
    in_training = task.model.apply({"params": state.params, "batch_stats": state.batch_stats}, task.x[:4], train=False)
    chex.assert_trees_all_equal(from_export, in_training)
    assert "wrote" in capsys.readouterr().out
