"""Images read from files through Grain, trained in epochs, stopped mid-epoch and resumed exactly.

The host-data API on its own (docs/your_data.md): `BatchSource` reads a Grain
pipeline in epochs and says where it is, `Prefetcher` prepares the next K batches on
a worker thread, `steps_over_batches` fuses K steps into one jitted call.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import grain
import jax
import jax.numpy as jnp
import numpy as np

from emergence.data import BatchSource, Position, Prefetcher, steps_over_batches

SIDE = 16


def write_images(directory: Path, count: int = 512) -> None:
    """A dataset on disk: `count` uint8 images and their labels (a stand-in for a folder of JPEGs)."""
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(count, SIDE, SIDE, 3), dtype=np.uint8)
    labels = (images.mean(axis=(1, 2, 3)) > 127.5).astype(np.int32)
    np.save(directory / "images.npy", images)
    np.save(directory / "labels.npy", labels)


def dataset(directory: Path, batch_size: int = 32, seed: int = 0) -> grain.MapDataset:
    """Shuffled, decoded, randomly flipped batches; each image is read from disk when its batch is made."""
    images = np.load(directory / "images.npy", mmap_mode="r")
    labels = np.load(directory / "labels.npy", mmap_mode="r")

    def load(index: int) -> dict[str, np.ndarray]:
        return {"image": np.asarray(images[index], np.float32) / 255.0, "label": np.int32(labels[index])}

    def flip(example: dict[str, np.ndarray], rng: np.random.Generator) -> dict[str, np.ndarray]:
        return {**example, "image": example["image"][:, ::-1]} if rng.random() < 0.5 else example

    return (
        grain.MapDataset.source(range(len(images)))
        .shuffle(seed=seed)
        .map(load)
        .random_map(flip, seed=seed)
        .batch(batch_size, drop_remainder=True)
    )


def init_params() -> dict[str, jax.Array]:
    return {"w": jnp.zeros((SIDE * SIDE * 3, 2)), "b": jnp.zeros(2)}


def train_step(params: dict[str, jax.Array], batch: dict[str, jax.Array]) -> tuple[dict[str, jax.Array], dict]:
    """One SGD step of a linear classifier: `(state, batch) -> (state, metrics)`."""

    def loss_fn(p: dict[str, jax.Array]) -> jax.Array:
        logits = batch["image"].reshape(batch["image"].shape[0], -1) @ p["w"] + p["b"]
        return -jnp.mean(jnp.take_along_axis(jax.nn.log_softmax(logits), batch["label"][:, None], axis=1))

    loss, grads = jax.value_and_grad(loss_fn)(params)
    return jax.tree.map(lambda p, g: p - 0.1 * g, params, grads), {"loss": loss}


def train(
    directory: Path,
    *,
    max_epochs: int,
    steps_per_call: int = 4,
    params: Any = None,
    position: Position | None = None,
    stop_after_calls: int | None = None,
) -> tuple[Any, Position]:
    """Train from `params` and the data `position` (None: the start); stop early after `stop_after_calls`.

    Returns the params and the data position after the last call, as JSON: what a
    checkpoint keeps beside the params.
    """
    source = BatchSource(dataset(directory), max_epochs=max_epochs)
    if position is not None:
        source.restore(position)
    params = init_params() if params is None else params
    calls: dict[int, Any] = {}
    with Prefetcher(source, steps_per_call=steps_per_call) as groups:
        for done, group in enumerate(groups, start=1):
            if group.steps not in calls:  # K, and a shorter last call at the end of the data
                calls[group.steps] = jax.jit(steps_over_batches(train_step, group.steps))
            params, metrics = calls[group.steps](params, group.batch)
            if done == stop_after_calls:
                break
        return params, json.loads(json.dumps(groups.position))
