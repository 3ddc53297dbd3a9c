"""Train the toy regression task in its own process: the subject of kill/resume tests.

Usage: fit_toy.py RUN_DIR MAX_STEPS [--every N] [--keep N] [--steps-per-call K] [--resume auto|none|PATH]
Prints `step <N>` after each call so a parent can time a kill.
"""

from __future__ import annotations

import argparse
import sys

from emergence import Callback, Trainer
from emergence.callbacks import CheckpointCallback
from emergence.testing import toy_task


class PrintStep(Callback):
    def on_train_call_end(self, trainer, metrics):
        print(f"step {trainer.step}", flush=True)

    def on_save_checkpoint(self, trainer, ref):
        print(f"saved {ref.path.name}", flush=True)


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("run_dir")
    parser.add_argument("max_steps", type=int)
    parser.add_argument("--every", type=int, default=10)
    parser.add_argument("--keep", type=int, default=3)
    parser.add_argument("--steps-per-call", type=int, default=1)
    parser.add_argument("--resume", default="auto")
    args = parser.parse_args(argv)
    resume = None if args.resume == "none" else args.resume
    callbacks = [CheckpointCallback(every_n_steps=args.every, keep_last=args.keep), PrintStep()]
    Trainer(
        toy_task(),
        callbacks,
        max_steps=args.max_steps,
        steps_per_call=args.steps_per_call,
        run_dir=args.run_dir,
        resume=resume,
    ).fit()


if __name__ == "__main__":
    main(sys.argv[1:])
