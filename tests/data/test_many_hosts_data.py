"""Two CPU processes under jax.distributed (gloo on localhost): each reads only its own shard of the data, and the
global batch the step sees is the processes' local batches side by side."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]

CHILD = textwrap.dedent(
    """
    import json, sys
    import jax, jax.numpy as jnp, numpy as np

    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.distributed.initialize(f"localhost:{sys.argv[2]}", num_processes=2, process_id=int(sys.argv[1]))
    from emergence.data import BatchPlacement, BatchSource, Prefetcher
    from emergence.parallel.mesh import DataParallel

    mesh = DataParallel("all").mesh
    data = [{"x": np.full((4, 2), i, np.float32)} for i in range(6)]
    source = BatchSource(data, max_epochs=1)
    read = [int(b["x"][0, 0]) for b in BatchSource(data, max_epochs=1)]
    total = jax.jit(lambda batch: jnp.sum(batch["x"][:, 0]))
    sums = []
    with Prefetcher(source, placement=BatchPlacement(mesh)) as groups:
        for group in groups:
            sums.append(float(total(group.batch)))
            shape = list(group.batch["x"].shape)
    print(json.dumps({"read": read, "sums": sums, "global_shape": shape, "position": groups.position}))
    """
)


def test_each_process_reads_its_own_shard_and_the_step_sees_the_global_batch(tmp_path):
    with socket.socket() as probe:
        probe.bind(("localhost", 0))
        port = probe.getsockname()[1]
    env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"} | {"JAX_PLATFORMS": "cpu", "PYTHONPATH": str(REPO)}
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", CHILD, str(pid), str(port)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        for pid in (0, 1)
    ]
    outs = [p.communicate(timeout=180) for p in procs]
    for p, (_, err) in zip(procs, outs):
        assert p.returncode == 0, err[-3000:]
    first, second = (json.loads(out.strip().splitlines()[-1]) for out, _ in outs)
    assert first["read"] == [0, 2, 4] and second["read"] == [1, 3, 5]  # its own shard: every other batch
    assert first["global_shape"] == second["global_shape"] == [8, 2]
    assert first["sums"] == second["sums"] == [4 * 0 + 4 * 1, 4 * 2 + 4 * 3, 4 * 4 + 4 * 5]
    at_epoch_end = ({"epoch": 0, "batches": 3, "iterator": None}, {"epoch": 1, "batches": 0, "iterator": None})
    assert first["position"] in at_epoch_end and second["position"] in at_epoch_end  # one point, two spellings
