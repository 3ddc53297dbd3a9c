"""Train the toy task in its own process with the observability callbacks: the subject of kill/resume tests.

    observed_run.py RUN_DIR MAX_STEPS [--every N] [--log-every N] [--eval-every N] [--hang-at STEP]
                    [--extras artifacts,finalize,signal] [--zip]

Callbacks, in this order: CheckpointCallback (every `--every` steps), LogThrottleCallback
(CSV + TensorBoard, every `--log-every` steps; after the checkpoint callback on purpose,
so a checkpoint at a logging step relies on its catch-up), then the `--extras`
(ArtifactExportCallback, FinalizeCallback, SignalCheckpointCallback: last, since its
teardown exits). `--hang-at STEP` stops making progress at that step (the process sleeps
inside a hook until killed).

Prints `step <N>` after each call, `saved <file name>` after each durable checkpoint,
`hanging <N>` and `fit returned <reason>`. Checkpoints are written synchronously, so
"saved step_30" comes before "step 31" and a kill at a later step always finds it durable.
"""

from __future__ import annotations

import argparse
import sys
import time

from fit_toy import PrintStep  # a sibling script: this file runs as a script

from emergence import Trainer
from emergence.callbacks import (
    ArtifactExportCallback,
    CheckpointCallback,
    FinalizeCallback,
    LogThrottleCallback,
    SignalCheckpointCallback,
)
from emergence.metrics import CSVSink, TensorBoardSink
from emergence.testing import toy_task


class Reporter(PrintStep):
    """Prints the events a parent process waits for, and hangs at `hang_at`."""

    def __init__(self, hang_at: int | None) -> None:
        self.hang_at = hang_at

    def on_train_call_end(self, trainer, metrics):
        super().on_train_call_end(trainer, metrics)
        if trainer.step == self.hang_at:
            print(f"hanging {trainer.step}", flush=True)
            while True:
                time.sleep(1)


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("run_dir")
    parser.add_argument("max_steps", type=int)
    parser.add_argument("--every", type=int, default=10)
    parser.add_argument("--log-every", type=int, default=4)
    parser.add_argument("--eval-every", type=int, default=10)
    parser.add_argument("--hang-at", type=int, default=None)
    parser.add_argument("--extras", default="")
    parser.add_argument("--zip", action="store_true")
    args = parser.parse_args(argv)
    extras = set(filter(None, args.extras.split(",")))
    callbacks = [
        CheckpointCallback(every_n_steps=args.every, keep_last=3),
        LogThrottleCallback(every_n_steps=args.log_every, sinks=[CSVSink(), TensorBoardSink()]),
        Reporter(args.hang_at),
    ]
    if "artifacts" in extras:
        callbacks.append(ArtifactExportCallback(every_n_steps=args.every))
    if "finalize" in extras:
        callbacks.append(FinalizeCallback(zip_outputs=args.zip))
    if "signal" in extras:
        callbacks.append(SignalCheckpointCallback())
    trainer = Trainer(
        toy_task(),
        callbacks,
        max_steps=args.max_steps,
        run_dir=args.run_dir,
        eval_every_n_steps=args.eval_every,
        async_checkpoint=False,
    )
    trainer.fit()
    print(f"fit returned {trainer.stop_reason}", flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
