"""BatchPlacement: batches split along their batch axis over a mesh of 4 forced CPU devices (in a child process)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

CHILD = textwrap.dedent(
    """
    import numpy as np, jax
    from emergence.data import BatchSource, Prefetcher, BatchPlacement
    from emergence.parallel.mesh import DataParallel

    mesh = DataParallel("all").mesh
    assert mesh.size == 4, mesh
    data = [{"x": np.arange(8 * 3, dtype=np.float32).reshape(8, 3) + 100 * i} for i in range(5)]
    with Prefetcher(BatchSource(data, max_epochs=1), steps_per_call=2, placement=BatchPlacement(mesh)) as groups:
        stacked, _, last = list(groups)
    x = stacked.batch["x"]
    assert x.shape == (2, 8, 3), x.shape
    shards = sorted(x.addressable_shards, key=lambda s: s.device.id)
    assert [s.data.shape for s in shards] == [(2, 2, 3)] * 4
    np.testing.assert_array_equal(np.asarray(shards[1].data[0]), data[0]["x"][2:4])
    assert last.steps == 1 and last.batch["x"].sharding.spec == jax.sharding.PartitionSpec("data")
    try:
        BatchPlacement(mesh).place({"x": np.zeros((6, 3), np.float32)}, stacked=False)
    except Exception as err:
        print(type(err).__name__, err)
    print("split ok")
    """
)


def test_a_stack_of_batches_is_split_along_the_batch_axis_over_the_devices():
    env = {
        **os.environ,
        "XLA_FLAGS": "--xla_force_host_platform_device_count=4",
        "JAX_PLATFORMS": "cpu",
        "PYTHONPATH": str(REPO),
    }
    done = subprocess.run([sys.executable, "-c", CHILD], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "split ok" in done.stdout
    assert (
        "DataError batch leaf 'x' has shape (6, 3): its batch axis must split evenly over this process's 4 devices; "
        "use a batch size that is a multiple of 4"
    ) in done.stdout
