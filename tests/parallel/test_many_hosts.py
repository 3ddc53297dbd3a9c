"""Two CPU processes under jax.distributed (gloo on localhost): every process trains and restores, process 0 writes,
and a signal to one process or process 0's time budget stops both at the same step.

Each test starts this file twice as a script (process 0 and 1), each with one CPU
device, and trains `ManySeeds(toy_task(), 2)` on the 2-device global mesh: the seed
axis is split, so each process holds one seed and a save must gather across processes.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import chex
import pytest

from emergence.checkpoint import flatten_to_host, read_checkpoint
from emergence.metrics import read_metrics_csv

pytestmark = pytest.mark.slow


def child(process_id: int, port: int, run_dir: str, max_steps: int, resume: str | None, mode: str) -> dict:
    """One process's run. Modes "signal" and "budget": 20 ms per call and a `training_<pid>` marker at step 3,
    with a SignalCheckpointCallback ("signal"), or a 5 s TimeBudgetCallback on process 0 and a 1 h one on
    process 1 ("budget")."""
    import jax

    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.distributed.initialize(f"localhost:{port}", num_processes=2, process_id=process_id)
    from emergence import Callback, Trainer
    from emergence.callbacks import (
        ArtifactExportCallback,
        CheckpointCallback,
        FinalizeCallback,
        LogThrottleCallback,
        SignalCheckpointCallback,
        TimeBudgetCallback,
    )
    from emergence.parallel import ManySeeds
    from emergence.testing import toy_task

    saved: list[str] = []

    class Saved(Callback):
        def on_save_checkpoint(self, trainer, ref):
            saved.append(ref.path.name)

    class Slow(Callback):
        def on_train_call_end(self, trainer, metrics):
            time.sleep(0.02)
            if trainer.step == 3:
                (Path(run_dir) / f"training_{process_id}").touch()

    budget = TimeBudgetCallback(max_duration=5.0 if process_id == 0 else 3600.0, margin=1.0)
    outputs = Path(run_dir) / f"outputs_{process_id}"
    observe = [
        LogThrottleCallback(every_n_steps=3),
        ArtifactExportCallback(output_dir=outputs),
        FinalizeCallback(output_dir=outputs),
    ]
    extra = {"": observe, "signal": [Slow(), SignalCheckpointCallback()], "budget": [Slow(), budget], "seconds": []}[
        mode
    ]
    schedule = dict(every_n_seconds=1.0) if mode == "seconds" else dict(every_n_steps=3)
    trainer = Trainer(
        ManySeeds(toy_task(), 2),
        [CheckpointCallback(**schedule, keep_last=None), Saved(), *extra],
        max_steps=max_steps,
        run_dir=run_dir,
        resume=resume,
        devices="all",
    )
    trainer.fit()  # returns after a signal too: the exit code (143) is the Trainer's, applied below
    kernel = trainer.state.params["params"]["Dense_0"]["kernel"]
    return {
        "process": jax.process_index(),
        "devices": len(trainer.parallel.devices),
        "step": trainer.step,
        "saved": saved,
        "local_seeds": [s.data.shape[0] for s in kernel.addressable_shards],
        "resumed": trainer.resumed_from.path.name if trainer.resumed_from else None,
        "stop_reason": str(trainer.stop_reason),
        "exit": trainer.exit_code,
        "last_exists_at_return": trainer.last_checkpoint is not None and trainer.last_checkpoint.path.exists(),
    }


def start_two(run_dir, max_steps: int, resume=None, mode: str = "") -> list[subprocess.Popen]:
    with socket.socket() as probe:
        probe.bind(("localhost", 0))
        port = probe.getsockname()[1]
    env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"} | {"JAX_PLATFORMS": "cpu"}
    args = lambda pid: [
        sys.executable,
        __file__,
        str(pid),
        str(port),
        str(run_dir),
        str(max_steps),
        str(resume or ""),
        mode,
    ]
    return [
        subprocess.Popen(args(pid), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        for pid in (0, 1)
    ]


def results(procs: list[subprocess.Popen], exit_code: int = 0) -> list[dict]:
    outs = [p.communicate(timeout=300) for p in procs]
    for p, (_, err) in zip(procs, outs):
        assert p.returncode == exit_code, err[-3000:]
    return [json.loads(out.strip().splitlines()[-1]) for out, _ in outs]


def two_processes(run_dir, max_steps: int, resume=None) -> list[dict]:
    return results(start_two(run_dir, max_steps, resume))


def test_every_process_trains_its_seed_and_only_process_0_writes_then_both_resume(tmp_path):
    straight = two_processes(tmp_path / "straight", 6)
    assert [r["devices"] for r in straight] == [2, 2] and [r["local_seeds"] for r in straight] == [[1], [1]]
    assert straight[0]["saved"] == ["step_3.safetensors", "step_6.safetensors", "final_step_6.safetensors"]
    assert straight[1]["saved"] == []  # it gathered at every save, but never wrote
    folder = tmp_path / "straight" / "checkpoints"
    assert sorted(p.name for p in folder.glob("*.safetensors")) == [
        "final_step_6.safetensors",
        "step_3.safetensors",
        "step_6.safetensors",
    ]
    assert read_checkpoint(folder / "step_3.safetensors").arrays["params/params/Dense_0/kernel"].shape == (2, 1, 8)
    outputs = tmp_path / "straight"  # metrics, artifacts and the summary: written once, by process 0
    assert [row["step"] for row in read_metrics_csv(outputs / "metrics.csv")[1]] == ["3", "6"]
    assert {"progress.json", "summary.json", "SHA256SUMS"} <= {p.name for p in (outputs / "outputs_0").iterdir()}
    assert not (outputs / "outputs_1").exists()

    resumed = two_processes(tmp_path / "resumed", 6, resume=folder / "step_3.safetensors")
    assert [r["resumed"] for r in resumed] == ["step_3.safetensors"] * 2 and [r["step"] for r in resumed] == [6, 6]
    a = read_checkpoint(folder / "final_step_6.safetensors").arrays
    b = read_checkpoint(tmp_path / "resumed" / "checkpoints" / "final_step_6.safetensors").arrays
    chex.assert_trees_all_equal(a, b)  # same program, same devices: bitwise

    from emergence import Trainer
    from emergence.parallel import ManySeeds
    from emergence.testing import toy_task

    alone = Trainer(
        ManySeeds(toy_task(), 2),
        max_steps=6,
        run_dir=tmp_path / "one_process",
        resume=folder / "step_3.safetensors",
        async_checkpoint=False,
    ).fit()
    mine = flatten_to_host(alone)[0]
    chex.assert_trees_all_close(mine, a, rtol=1e-5, atol=1e-7)


def test_a_sigterm_to_one_process_stops_both_at_one_step_with_one_emergency_checkpoint_then_both_resume(tmp_path):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    procs = start_two(run_dir, 2000, mode="signal")  # 2000 calls of >= 20 ms: still training when the signal comes
    marker, waited = run_dir / "training_1", time.monotonic()
    while not marker.exists():
        assert procs[1].poll() is None and time.monotonic() - waited < 240, "process 1 never reached step 3"
        time.sleep(0.05)
    procs[1].send_signal(signal.SIGTERM)  # process 0 gets nothing
    stopped = results(procs, exit_code=143)  # both exit as SIGTERM says: the agreed signal
    step = stopped[0]["step"]
    assert 3 <= step < 2000 and [r["step"] for r in stopped] == [step, step]
    assert [r["stop_reason"] for r in stopped] == ["signal:SIGTERM"] * 2
    emergency = f"emergency_step_{step}.safetensors"
    assert stopped[0]["saved"][-1] == emergency and stopped[1]["saved"] == []  # process 0 wrote it
    assert [r["last_exists_at_return"] for r in stopped] == [True, True]  # process 1 waited for it (the barrier)
    folder = run_dir / "checkpoints"
    assert [p.name for p in folder.glob("emergency_*")] == [emergency]
    assert read_checkpoint(folder / emergency).manifest["step"] == step

    resumed = two_processes(run_dir, step + 3, resume="auto")  # the emergency checkpoint is the newest
    assert [r["resumed"] for r in resumed] == [emergency] * 2 and [r["step"] for r in resumed] == [step + 3] * 2
    assert read_checkpoint(folder / f"final_step_{step + 3}.safetensors").manifest["step"] == step + 3


def test_process_0s_time_budget_stops_both_processes_at_one_step_with_one_final_checkpoint(tmp_path):
    stopped = results(start_two(tmp_path, 2000, mode="budget"))  # process 1's own budget is an hour
    step = stopped[0]["step"]
    assert 3 <= step < 2000 and [r["step"] for r in stopped] == [step, step]
    assert [r["stop_reason"] for r in stopped] == ["time_budget"] * 2
    assert stopped[0]["saved"][-1] == f"final_step_{step}.safetensors" and stopped[1]["saved"] == []
    assert [p.name for p in (tmp_path / "checkpoints").glob("final_*")] == [f"final_step_{step}.safetensors"]
    assert [r["last_exists_at_return"] for r in stopped] == [True, True]


def test_time_based_checkpoints_are_refused_across_processes_before_training(tmp_path):
    procs = start_two(tmp_path, 10, mode="seconds")
    for process in procs:
        _, err = process.communicate(timeout=300)
        assert process.returncode == 1 and "every_n_seconds follows each process's own clock" in err, err[-2000:]
    assert not list(tmp_path.glob("checkpoints/*.safetensors"))


if __name__ == "__main__":
    pid, port, run_dir, steps, resume, mode = sys.argv[1:]
    result = child(int(pid), int(port), run_dir, int(steps), resume or None, mode)
    print(json.dumps(result), flush=True)
    sys.exit(result["exit"])
