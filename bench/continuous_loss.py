"""continuous_loss: work lost to a SIGKILL with continuous checkpointing vs a periodic schedule.

    python bench/continuous_loss.py [--rounds 20] [--mib 64] [--interval 5] [--call-seconds 0.05]

Each round starts a real training process (this file with `--child`) whose state is
`--mib` MiB and whose calls take about `--call-seconds`, waits for its first durable
checkpoint, then SIGKILLs it at a random instant 0-4 s later. The work lost is the last
step the child reported before the kill minus the step of the newest checkpoint that
verifies afterwards (`resolve_checkpoint`), in steps and in seconds of training.
Modes, interleaved round by round: `continuous` (`CheckpointCallback(continuous=True)`)
and `periodic` (`every_n_seconds=--interval`, the baseline). Target: continuous loses at
most 2 saves' duration (a kill lands while the next save is being written, so the newest
durable one was snapshotted one to two save durations earlier); periodic up to one interval.
"""

from __future__ import annotations

import argparse
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

MODES = ("continuous", "periodic")


def child(run_dir: str, mode: str, mib: int, interval: float, call_seconds: float) -> None:
    """Train until killed, printing `step N <time>` per call and `saved <seconds>` per durable save."""
    import jax
    import jax.numpy as jnp

    from emergence import Callback, Trainer
    from emergence.callbacks import CheckpointCallback
    from emergence.state import TrainState

    class Task:
        name = "continuous_loss"

        def config(self) -> dict:
            return {"mib": mib}

        def init_state(self, rng: jax.Array) -> TrainState:
            leaves = 8
            params = {
                f"w{i}": jax.random.normal(jax.random.fold_in(rng, i), (mib * 2**20 // 4 // leaves,))
                for i in range(leaves)
            }
            return TrainState.create(params, (), rng)

        def train_step(self, state: TrainState) -> tuple[TrainState, dict]:
            params = jax.tree.map(lambda p: p * 0.999 + 1e-3, state.params)
            return state.replace(step=state.step + 1, params=params), {"loss": jnp.float32(0.0)}

    class Report(Callback):
        def on_train_call_end(self, trainer: Trainer, metrics: dict) -> None:
            time.sleep(call_seconds)  # the device time of a real call
            print(f"step {trainer.step} {time.time():.4f}", flush=True)

        def on_save_checkpoint(self, trainer: Trainer, ref: object) -> None:
            print(f"saved {trainer.last_save_seconds:.4f}", flush=True)

    saving = (
        CheckpointCallback(continuous=True, keep_last=3, save_final=False)
        if mode == "continuous"
        else CheckpointCallback(every_n_seconds=interval, save_on_start=True, keep_last=3, save_final=False)
    )
    Trainer(Task(), [Report(), saving], max_steps=10**9, run_dir=run_dir, resume=None).fit()


def one_round(mode: str, args: argparse.Namespace, work: Path, rng: random.Random) -> dict:
    """Start a child, kill it at a random instant after its first durable save; what it lost."""
    from emergence.checkpoint import file_ref, resolve_checkpoint

    run_dir = work / f"{mode}-{time.monotonic_ns()}"
    child_args = [
        sys.executable,
        __file__,
        "--child",
        str(run_dir),
        mode,
        str(args.mib),
        str(args.interval),
        str(args.call_seconds),
    ]
    process = subprocess.Popen(child_args, stdout=subprocess.PIPE, text=True)
    steps, saves, kill_at = [], [], None
    for line in process.stdout:
        word, *rest = line.split()
        if word == "step":
            steps.append((int(rest[0]), float(rest[1])))
        elif word == "saved":
            saves.append(float(rest[0]))
            kill_at = kill_at or time.monotonic() + rng.uniform(0.0, 4.0)
        if kill_at is not None and time.monotonic() >= kill_at:
            process.send_signal(signal.SIGKILL)
            break
    process.wait()
    found = resolve_checkpoint("auto", run_dir=run_dir)
    newest = file_ref(found) if found is not None else None
    step_seconds = statistics.median(b[1] - a[1] for a, b in zip(steps, steps[1:]))
    lost = steps[-1][0] - (newest.step if newest else 0)
    return {"lost steps": lost, "lost s": lost * step_seconds, "save s": statistics.median(saves)}


def main() -> None:
    if sys.argv[1:2] == ["--child"]:
        run_dir, mode, mib, interval, call_seconds = sys.argv[2:7]
        child(run_dir, mode, int(mib), float(interval), float(call_seconds))
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--mib", type=int, default=64)
    parser.add_argument("--interval", type=float, default=5.0)
    parser.add_argument("--call-seconds", type=float, default=0.05)
    parser.add_argument("--dir", default=tempfile.gettempdir())
    args = parser.parse_args()
    sys.path.insert(0, str(Path(__file__).parent))
    from _common import machine, print_table

    rng = random.Random(0)
    results: dict[str, list[dict]] = {mode: [] for mode in MODES}
    with tempfile.TemporaryDirectory(dir=args.dir, prefix="emergence-bench-") as work:
        for r in range(args.rounds):
            for mode in MODES[r % 2 :] + MODES[: r % 2]:
                results[mode].append(one_round(mode, args, Path(work), rng))
    rows, verdicts = [], []
    for mode, runs in results.items():
        lost_s, save_s = [run["lost s"] for run in runs], [run["save s"] for run in runs]
        lost_steps = [run["lost steps"] for run in runs]
        bound = 2 * statistics.median(save_s) if mode == "continuous" else args.interval
        worst = max(lost_s)
        ok = "ok" if mode == "periodic" or statistics.median(lost_s) <= bound else "MISS"
        verdicts.append(ok)
        rows.append(
            [
                mode,
                len(runs),
                f"{statistics.median(save_s):.3f}",
                statistics.median(lost_steps),
                max(lost_steps),
                f"{statistics.median(lost_s):.3f}",
                f"{worst:.3f}",
                f"{statistics.median(lost_s) / statistics.median(save_s):.2f}",
                f"≤ 2 saves ({bound:.2f} s)" if mode == "continuous" else "-",
                ok,
            ]
        )
    print_table(
        f"continuous_loss: {args.mib} MiB state, calls of ~{args.call_seconds} s, SIGKILL at random instants, "
        f"{args.rounds} kills per mode (interleaved); {machine()}",
        [
            "mode",
            "kills",
            "save s (median)",
            "lost steps (median)",
            "lost steps (max)",
            "lost s (median)",
            "lost s (max)",
            "lost / save duration",
            "target (median)",
            "verdict",
        ],
        rows,
        notes=[
            f"periodic: every_n_seconds={args.interval}; continuous: min_interval_s=0; keep_last=3; "
            "lost = last step reported before the kill - step of the newest checkpoint that verifies"
        ],
    )
    sys.exit(1 if "MISS" in verdicts else 0)


if __name__ == "__main__":
    main()
