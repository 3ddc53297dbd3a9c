"""W&B across a SIGKILL: a real training process killed mid-run and resumed continues one W&B run, no step lost.

Offline (`WANDB_MODE=offline`), for real: wandb writes each session's transaction log
(`run-<id>.wandb`), and the rows are read back from those files with
`emergence.testing.wandb_offline` (wandb's own protobuf records). Run as a script, this
file is the training child: `python tests/callbacks/test_wandb_resume.py RUN_DIR MAX_STEPS FLUSH_SECONDS`.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
EVERY = 5
MAX_STEPS = 40
KILL_AFTER = 23


def _child_main(run_dir: str, max_steps: str, flush_seconds: str) -> None:
    """Train the toy task slowly (20 ms a call), checkpointing every 5 steps and logging every step to W&B."""
    import wandb

    from emergence import Callback, Trainer
    from emergence.callbacks import CheckpointCallback, LogThrottleCallback, WandbCallback
    from emergence.metrics import CSVSink
    from emergence.testing import toy_task

    class Pace(Callback):
        def on_train_call_end(self, trainer, metrics):
            time.sleep(0.02)
            print(f"step {trainer.step}", flush=True)

    settings = wandb.Settings(silent=True, x_transaction_log_flush_interval=float(flush_seconds))
    run = WandbCallback(project="emergence-test", init_kwargs={"settings": settings})
    callbacks = [
        CheckpointCallback(every_n_steps=EVERY, keep_last=2),
        LogThrottleCallback(every_n_steps=1, sinks=[CSVSink(), run.sink]),
        run,
        Pace(),
    ]
    Trainer(toy_task(), callbacks, max_steps=int(max_steps), run_dir=run_dir).fit()


def _start(run_dir: Path, flush_seconds: float, home: Path) -> subprocess.Popen:
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO),
        "PYTHONUNBUFFERED": "1",
        "WANDB_MODE": "offline",
        "WANDB_CONFIG_DIR": str(home / "config"),
        "WANDB_CACHE_DIR": str(home / "cache"),
        "WANDB_DATA_DIR": str(home / "data"),
    }
    return subprocess.Popen(
        [sys.executable, __file__, str(run_dir), str(MAX_STEPS), str(flush_seconds)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


def _kill_after_step(process: subprocess.Popen, step: int, timeout: float = 120.0) -> None:
    give_up = time.monotonic() + timeout
    for line in process.stdout:
        if line.strip() == f"step {step}":
            process.send_signal(signal.SIGKILL)
            process.wait()
            return
        if time.monotonic() > give_up:
            break
    process.kill()
    raise AssertionError(f"no 'step {step}' line; stderr: {process.stderr.read()[-3000:]}")


def _csv_values(run_dir: Path) -> dict[int, dict[str, float]]:
    from emergence.metrics import read_metrics_csv

    return {
        int(row.pop("step")): {tag: float(v) for tag, v in row.items() if v}
        for row in read_metrics_csv(run_dir / "metrics.csv")[1]
    }


@pytest.mark.parametrize(
    "flush_seconds",
    [15.0, pytest.param(0.05, marks=pytest.mark.slow)],  # flushes often: in CI's slow stage
    ids=["wandb-default-flush", "wandb-flushes-often"],
)
def test_sigkill_and_resume_continue_one_wandb_run_with_every_step(tmp_path, flush_seconds):
    from emergence.callbacks.wandb_run import offline_run_dirs
    from emergence.checkpoint import load_newest_valid
    from emergence.testing.wandb_offline import history_rows, run_ids

    run_dir = tmp_path / "run"
    _kill_after_step(_start(run_dir, flush_seconds, tmp_path), KILL_AFTER)
    resumed_from = load_newest_valid(run_dir / "checkpoints").manifest
    run_id = resumed_from["callbacks"]["WandbCallback"]["run_id"]
    finished = _start(run_dir, flush_seconds, tmp_path)
    out, err = finished.communicate(timeout=180)
    assert finished.returncode == 0, err[-3000:]

    sessions = offline_run_dirs(run_dir / "wandb", run_id)
    assert len(sessions) == 2, sorted(p.name for p in (run_dir / "wandb").iterdir())
    assert f"wandb sync {sessions[0]} {sessions[1]}" in out
    files = [next(session.glob("run-*.wandb")) for session in sessions]
    # a session killed before wandb's first transaction-log flush leaves a header-only file: no run record, no rows
    assert run_ids(files[0]) in ([], [run_id]) and run_ids(files[1]) == [run_id]
    if flush_seconds < 1:
        assert history_rows(files[0]), "the killed session flushed nothing: the duplicate path went untested"

    expected = _csv_values(run_dir)  # the CSV is continuous across resumes (tests/e2e/test_metrics_continuity.py)
    assert sorted(expected) == list(range(1, MAX_STEPS + 1))
    seen: dict[int, dict[str, float]] = {}
    for f in files:
        for row in history_rows(f):
            step = row["trainer/step"]
            values = {tag: v for tag, v in row.items() if not tag.startswith("_") and tag != "trainer/step"}
            assert seen.setdefault(step, values) == values, f"step {step} logged twice with different values"
    assert sorted(seen) == list(range(1, MAX_STEPS + 1)), "a step is missing from W&B"
    for step, values in seen.items():
        assert values == {tag: expected[step][tag] for tag in values}, f"W&B and metrics.csv differ at step {step}"

    second = [row["trainer/step"] for row in history_rows(files[1])]
    start = resumed_from["step"]
    replayed, new = [s for s in second if s <= start], [s for s in second if s > start]
    assert new == list(range(start + 1, MAX_STEPS + 1)), "the resumed session skipped or repeated a step"
    assert replayed == sorted(set(replayed)) and (not replayed or replayed[-1] == start)


if __name__ == "__main__":
    _child_main(*sys.argv[1:])
