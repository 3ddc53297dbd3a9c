"""Train a linear classifier on images read from files through Grain, in its own process (SIGKILL tests).

    train_data.py RUN_DIR MAX_EPOCHS DATA_DIR [--steps-per-call K]

The data is `emergence.examples.grain_images`'s Grain pipeline over the files in DATA_DIR;
a periodic checkpoint every 3 steps. Prints `step <N>` after each call and `saved <file>`
when a checkpoint is durable; exits with `trainer.exit_code`.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import optax

from emergence import Callback, Trainer, TrainState
from emergence.callbacks import CheckpointCallback
from emergence.examples.grain_images import dataset, init_params, train_step


class ImageTask:
    name = "images"

    def init_state(self, rng):
        params = init_params()
        return TrainState.create(params=params, opt_state=optax.sgd(0.1).init(params), rng=rng)

    def train_step(self, state, batch):
        params, metrics = train_step(state.params, batch)
        return state.replace(step=state.step + 1, params=params), metrics

    def eval_step(self, state, batch):
        return train_step(state.params, batch)[1]


class Say(Callback):
    """Prints each call's step and each durable save; each call takes 0.1 s more, so a kill lands mid-run."""

    def on_train_call_end(self, trainer, metrics):
        print(f"step {trainer.step}", flush=True)
        time.sleep(0.1)

    def on_save_checkpoint(self, trainer, ref):
        print(f"saved {ref.path.name}", flush=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("run_dir")
    parser.add_argument("max_epochs", type=int)
    parser.add_argument("data_dir")
    parser.add_argument("--steps-per-call", type=int, default=1)
    args = parser.parse_args()
    trainer = Trainer(
        callbacks=[CheckpointCallback(every_n_steps=3, keep_last=None), Say()],
        max_epochs=args.max_epochs,
        steps_per_call=args.steps_per_call,
        run_dir=args.run_dir,
    )
    trainer.fit(ImageTask(), train_data=dataset(Path(args.data_dir)))
    sys.exit(trainer.exit_code)
