"""The process `emergency_latency.py` signals: one Trainer, one `fit()` per signal, until told to stop.

    python bench/_emergency_child.py DIR SIGNALS --state-mb MB --work-seconds S [--plain-every K]

Each round is a fresh `fit()` of the toy task (each step also does S seconds of device
work; `--state-mb` MB of ballast in the state) with `SignalCheckpointCallback()`,
writing under `DIR/round<i>`. As the round starts (`on_fit_start`: device idle) it times
a plain save of the state every K rounds: `flatten_to_host` + `write_checkpoint` of the
same file format, the baseline. After the first call is dispatched it prints `armed`;
the parent then sends SIGTERM at a random instant. Lines, one per event:
`plain <i> <seconds> <seconds of the NaN/inf scan of the same arrays>`, `armed <i> <epoch>`,
`save <i> <epoch>` (the emergency save starts), `saved <i> <epoch> <seconds from snapshot
to durable>`, `returned <i> <reason>`, and in the rounds with a plain save `verified <i>
<kind>` (the emergency file read back and verified). The stop after a signal is the
Trainer's own, so the jitted call compiles once: every round reuses the Trainer.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from pathlib import Path

import jax

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from emergence import Callback, Trainer  # noqa: E402
from emergence.callbacks import SignalCheckpointCallback  # noqa: E402
from emergence.checkpoint import flatten_to_host, read_checkpoint, write_checkpoint  # noqa: E402
from emergence.checkpoint.finite import non_finite_leaves  # noqa: E402
from tests.scripts.train_subprocess import ScriptTask, calibrate_repeats, say  # noqa: E402


class Probe(Callback):
    """Times the plain save, says when the round is armed and when the emergency save starts and ends."""

    def __init__(self, plain_every: int) -> None:
        self.plain_every, self.round = plain_every, 0

    def on_fit_start(self, trainer):
        if self.round % self.plain_every:
            return
        jax.block_until_ready(trainer.state)
        path = trainer.run_dir / "plain.safetensors"
        began = time.perf_counter()
        arrays, _ = flatten_to_host(trainer.state)
        write_checkpoint(path, arrays, {"step": trainer.step, "kind": "periodic"})
        plain = time.perf_counter() - began
        began = time.perf_counter()
        non_finite_leaves(arrays)  # what every synchronous save adds beside its write (not part of the baseline)
        say(f"plain {self.round} {plain:.4f} {time.perf_counter() - began:.4f}")
        del arrays
        path.unlink()

    def on_train_call_end(self, trainer, metrics):
        if trainer.step == 1:
            say(f"armed {self.round} {time.time():.4f}")  # the first call was just dispatched onto an idle device

    def on_save_checkpoint(self, trainer, ref):
        durable = time.time()  # the save began last_save_seconds before (no hook runs before the end save)
        say(f"save {self.round} {durable - trainer.last_save_seconds:.4f}")
        say(f"saved {self.round} {durable:.4f} {trainer.last_save_seconds:.4f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dir")
    parser.add_argument("--state-mb", type=float, default=0.0)
    parser.add_argument("--work-seconds", type=float, default=0.3)
    parser.add_argument("signals", type=int)
    parser.add_argument("--plain-every", type=int, default=1)
    args = parser.parse_args()
    task = ScriptTask((8,), work_repeats=calibrate_repeats(args.work_seconds), state_mb=args.state_mb)
    probe = Probe(args.plain_every)
    trainer = Trainer(
        task,
        [probe, SignalCheckpointCallback()],
        max_steps=None,
        run_dir=Path(args.dir) / "round0",
        resume=None,
    )
    for i in range(args.signals):
        probe.round = i
        trainer.run_dir = Path(args.dir) / f"round{i}"
        trainer.fit()
        say(f"returned {i} {trainer.stop_reason}")
        if i % args.plain_every == 0:  # read back and verified (not timed)
            say(f"verified {i} {read_checkpoint(trainer.last_checkpoint.path).manifest['kind']}")
        shutil.rmtree(trainer.run_dir, ignore_errors=True)


if __name__ == "__main__":
    main()
