"""Train the toy regression task with trackers in its own process: the subject of the tracker kill/resume test.

Usage: train_lab.py RUN_DIR MAX_STEPS [--every N] [--track-every N] [--steps-per-call K] [--pause S]

Trackers: an `EmergenceTracker` over the loss and gradient norm, and a
`SpecializationTracker` fed by a probe that treats each hidden unit as an "agent"
(its absolute weights as "action counts", its weights as its own parameters), so both
trackers see device values that change as training goes. `TrackerCallback` comes
after `CheckpointCallback` on purpose: the checkpoint at a sampling step must hold that
sample anyway. Prints `step <N>` after each call and `saved <name>` after each save.
"""

from __future__ import annotations

import argparse
import sys
import time

import jax.numpy as jnp

from emergence import Callback, Trainer
from emergence.callbacks import CheckpointCallback, TrackerCallback
from emergence.lab.trackers import EmergenceTracker, SpecializationTracker
from emergence.testing import toy_task


class PrintStep(Callback):
    """Prints progress; sleeps `pause` seconds per call (host side only) so a parent can kill mid-run."""

    def __init__(self, pause: float) -> None:
        self.pause = pause

    def on_train_call_end(self, trainer, metrics):
        print(f"step {trainer.step}", flush=True)
        time.sleep(self.pause)

    def on_save_checkpoint(self, trainer, ref):
        print(f"saved {ref.path.name}", flush=True)


def hidden_units_probe(state):
    """Per hidden unit of the toy MLP: |in weight|, |bias|, |out weight| as counts, and those weights."""
    params = state.params["params"]
    weights = jnp.stack(
        [params["Dense_0"]["kernel"][0], params["Dense_0"]["bias"], params["Dense_1"]["kernel"][:, 0]], axis=1
    )
    return {"action_counts": jnp.abs(weights) + 1e-3, "agent_params": weights}


def trackers_callback(every: int) -> TrackerCallback:
    """The tracker setup the tests compare across a kill and resume."""
    trackers = [EmergenceTracker(["loss", "grad_norm"], window=4, k=2.0, sustain=2), SpecializationTracker()]
    return TrackerCallback(every_n_steps=every, trackers=trackers, probe=hidden_units_probe)


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("run_dir")
    parser.add_argument("max_steps", type=int)
    parser.add_argument("--every", type=int, default=10)
    parser.add_argument("--track-every", type=int, default=3)
    parser.add_argument("--steps-per-call", type=int, default=1)
    parser.add_argument("--pause", type=float, default=0.0, help="seconds to sleep after each call")
    args = parser.parse_args(argv)
    callbacks = [
        CheckpointCallback(every_n_steps=args.every, keep_last=None),
        trackers_callback(args.track_every),
        PrintStep(args.pause),
    ]
    Trainer(
        toy_task(),
        callbacks,
        max_steps=args.max_steps,
        steps_per_call=args.steps_per_call,
        run_dir=args.run_dir,
        resume="auto",
    ).fit()


if __name__ == "__main__":
    main(sys.argv[1:])
