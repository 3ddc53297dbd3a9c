"""data_pipeline: a loop fed by `emergence.data.Prefetcher` against a hand-written jit loop on the same Grain pipeline.

    python bench/data_pipeline.py [--rounds 7] [--batches 48] [--quick]

The data is real files: synthetic 64x64x3 uint8 images written to a `.npy` file and
read back through a memory map (as a dataset larger than the device would be),
decoded to float32, shrunk to 16x16 (4x4 mean pooling) and randomly flipped per
example in a Grain pipeline (`random_map`, seeded), batched by 64, endless. Grain's
own read threads are off (`ReadOptions(num_threads=0)`), so each loop pays for the
pipeline where it runs it: the hand-written loop on its own thread, the prefetcher
on its worker. The step is a jitted MLP classifier (SGD); `--width` sets its compute.

On a CPU backend the "device" is the host's own cores: the worker and the step fight
for them (on a 2-core machine a step slows the worker threefold), so nothing is hidden
and the share measures the machine, not the prefetcher. There the step also waits
`--device-ms` (default 40 ms) in a host callback that sleeps, the way a GPU kernel
keeps the device busy without the host's CPU: that row is the prefetcher's overlap as
a GPU would see it. XLA is held to one thread (`--xla_cpu_multi_thread_eigen=false`).

Cases, each run right next to a run of the baseline, round after round (`paired`):
  - baseline: `for batch in iter(ds): state, m = step(state, jax.device_put(batch))`,
    and at K fused steps the same with K batches `np.stack`ed by hand and a hand-written
    `lax.scan` (what a user writes without emergence);
  - prefetched: the same jitted step over `Prefetcher(BatchSource(ds), steps_per_call=K)`
    groups (read, checked, stacked, placed on a worker thread; the loop only dispatches);
  - Trainer: `Trainer(max_steps=..., steps_per_call=K).fit(task, train_data=ds)` with the
    same step (no callbacks but the timing window; one Trainer reused, so it compiles once;
    its once-per-fit contract check, a trace of the step, is inside the window).
Reported: the median per-round speed ratios baseline / prefetched and baseline / Trainer
(target >= 0.95, the issue's figure for the Trainer with a Grain pipeline), and the
share of host time the prefetcher hid (`Prefetcher.hidden_share()`: 1 - loop wait /
worker host time; target >= 0.80 when host time < device time), with the host and
device times per call that make the case.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("XLA_FLAGS", "--xla_cpu_multi_thread_eigen=false")

import grain  # noqa: E402
import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
from _common import Ratio, Window, exit_with, machine, paired, print_table, verdict  # noqa: E402

from emergence import Trainer  # noqa: E402
from emergence.data import BatchSource, Prefetcher, steps_over_batches  # noqa: E402
from emergence.data.stacking import stack  # noqa: E402

BATCH = 64
IMAGE = (64, 64, 3)
POOL = 4
TARGET_RATIO = 0.95
TARGET_HIDDEN = 0.80


def image_file(directory: Path, count: int) -> np.ndarray:
    """`count` synthetic images written to a real .npy file and memory-mapped back (read from disk per batch)."""
    path = directory / "images.npy"
    rng = np.random.default_rng(0)
    np.save(path, rng.integers(0, 256, size=(count, *IMAGE), dtype=np.uint8))
    return np.load(path, mmap_mode="r")


def pipeline(images: np.ndarray) -> grain.IterDataset:
    """Decode, shrink and augment on the host, batch: what a user's Grain pipeline does."""

    def decode(index: int) -> dict[str, np.ndarray]:
        side = IMAGE[0] // POOL
        pixels = np.asarray(images[index], np.float32).reshape(side, POOL, side, POOL, 3).mean(axis=(1, 3))
        return {"image": pixels / 255.0, "label": np.int32(index % 10)}

    def flip(example: dict[str, np.ndarray], rng: np.random.Generator) -> dict[str, np.ndarray]:
        if rng.random() < 0.5:
            example = {**example, "image": example["image"][:, ::-1]}
        return example

    return (
        grain.MapDataset.source(range(len(images)))
        .shuffle(seed=0)
        .map(decode)
        .random_map(flip, seed=1)
        .batch(BATCH, drop_remainder=True)
        .repeat()  # endless: every timed run reads as many batches as it needs
        .to_iter_dataset(grain.ReadOptions(num_threads=0, prefetch_buffer_size=0))
    )


def init_state(width: int) -> dict[str, Any]:
    keys = jax.random.split(jax.random.key(0), 3)
    inputs = (IMAGE[0] // POOL) * (IMAGE[1] // POOL) * IMAGE[2]
    return {
        "hidden1": jax.random.normal(keys[0], (inputs, width)) / np.sqrt(inputs),
        "hidden2": jax.random.normal(keys[1], (width, width)) / np.sqrt(width),
        "out": jax.random.normal(keys[2], (width, 10)) / np.sqrt(width),
    }


def device_wait(seconds: float, after: jax.Array) -> jax.Array:
    """A zero that takes `seconds` to compute once `after` is known, without using the CPU: a stand-in for a GPU
    kernel (the dependency keeps XLA from hoisting it out of a fused call's scan)."""

    def sleep(value: np.ndarray) -> np.ndarray:
        time.sleep(seconds)
        return np.zeros((), np.float32)

    return jax.pure_callback(sleep, jax.ShapeDtypeStruct((), jnp.float32), after)


def make_train_step(device_seconds: float) -> Any:
    """One SGD step of an MLP classifier on the flattened images, plus `device_seconds` of simulated device time."""

    def train_step(params: dict[str, Any], batch: dict[str, jax.Array]) -> tuple[dict[str, Any], dict[str, jax.Array]]:
        params, metrics = mlp_step(params, batch)
        if device_seconds:
            zero = device_wait(device_seconds, metrics["loss"])
            params = jax.tree.map(lambda p: p + zero, params)
        return params, metrics

    return train_step


def mlp_step(params: dict[str, Any], batch: dict[str, jax.Array]) -> tuple[dict[str, Any], dict[str, jax.Array]]:
    """One SGD step of an MLP classifier on the flattened images."""

    def loss_fn(p: dict[str, Any]) -> jax.Array:
        h = jax.nn.relu(batch["image"].reshape(BATCH, -1) @ p["hidden1"])
        logits = jax.nn.relu(h @ p["hidden2"]) @ p["out"]
        return -jnp.mean(jax.nn.log_softmax(logits)[jnp.arange(BATCH), batch["label"]])

    loss, grads = jax.value_and_grad(loss_fn)(params)
    return jax.tree.map(lambda p, g: p - 0.01 * g, params, grads), {"loss": loss}


def hand_loop(ds: grain.IterDataset, step: Any, params: Any, calls: int, k: int) -> float:
    """What a user writes: read, (stack,) device_put, call; the seconds it takes."""
    iterator = iter(ds)
    watch = _Watch()
    for _ in range(calls):
        batches = [next(iterator) for _ in range(k)]
        params, _ = step(params, jax.device_put(batches[0] if k == 1 else stack(batches)))
    jax.block_until_ready(params)
    return watch.stop()


def prefetched_loop(ds: grain.IterDataset, step: Any, params: Any, calls: int, k: int, hidden: list[float]) -> float:
    """The same step over `Prefetcher` groups; appends the share of host time it hid to `hidden`."""
    watch = _Watch()
    with Prefetcher(BatchSource(ds), steps_per_call=k, max_batches=calls * k) as groups:
        for group in groups:
            params, _ = step(params, group.batch)
        jax.block_until_ready(params)
        seconds = watch.stop()
        hidden.append(groups.hidden_share() or 0.0)
    return seconds


class StepTask:
    """The bench's step as an emergence Task: the params dict is the whole state."""

    name = "data_pipeline"

    def __init__(self, params: Any, train_step: Any) -> None:
        self.params, self._train_step = params, train_step

    def init_state(self, rng: jax.Array) -> Any:
        return jax.tree.map(jnp.copy, self.params)  # the Trainer donates its state to each call

    def train_step(self, state: Any, batch: Any) -> tuple[Any, dict[str, jax.Array]]:
        return self._train_step(state, batch)


def trainer_loop(trainer: Trainer, task: StepTask, window: Window, ds: grain.IterDataset) -> float:
    """`trainer.fit(task, train_data=ds)`: seconds from `on_fit_start` to `on_fit_end`, the state ready at both."""
    trainer.fit(task, train_data=ds)
    return window.seconds


class _Watch:
    def __init__(self) -> None:
        import time

        self._clock = time.perf_counter
        self._start = self._clock()

    def stop(self) -> float:
        return self._clock() - self._start


def host_and_device_seconds(
    ds: grain.IterDataset, step: Any, params: Any, k: int, calls: int = 8
) -> tuple[float, float]:
    """Per call: host seconds to read and stack k batches; device seconds for one call on a ready batch."""
    iterator = iter(ds)
    next(iterator)
    watch = _Watch()
    for _ in range(calls):
        batch = stack([next(iterator) for _ in range(k)]) if k > 1 else next(iterator)
    host = watch.stop() / calls
    placed = jax.device_put(batch)
    jax.block_until_ready(step(params, placed))
    watch = _Watch()
    for _ in range(calls):
        params, _ = step(params, placed)
    jax.block_until_ready(params)
    return host, watch.stop() / calls


def measure(
    ds: grain.IterDataset, params: Any, k: int, device_ms: float, rounds: int, batches: int, run_dir: Path
) -> tuple[list, list]:
    """One table row: K steps per call, `device_ms` of simulated device time per step (0: compute only)."""
    train_step = make_train_step(device_ms / 1e3)
    step = jax.jit(steps_over_batches(train_step, k))
    calls = max(2, batches // k)
    window = Window()
    task = StepTask(params, train_step)
    trainer = Trainer(
        callbacks=[window, window.opener], max_steps=calls * k, steps_per_call=k, run_dir=run_dir, resume=None
    )
    trainer_loop(trainer, task, window, ds)  # compiles once: the same Trainer and task in every round
    host, device = host_and_device_seconds(ds, step, params, k)
    print(f"K={k}, device_ms={device_ms}: host {host * 1e3:.1f} ms/call, device {device * 1e3:.1f}", file=sys.stderr)
    hidden: list[float] = []
    both = paired(
        lambda: hand_loop(ds, step, params, calls, k),
        {
            "prefetched": lambda: prefetched_loop(ds, step, params, calls, k, hidden),
            "trainer": lambda: trainer_loop(trainer, task, window, ds),
        },
        rounds,
    )
    pairs, fits = both["prefetched"], both["trainer"]
    ratio = Ratio.of([base for base, _ in pairs], [case for _, case in pairs])
    trainer_ratio = Ratio.of([base for base, _ in fits], [case for _, case in fits])
    share = statistics.median(hidden)
    marks = [
        verdict(ratio, TARGET_RATIO),
        verdict(trainer_ratio, TARGET_RATIO),
        "ok" if share >= TARGET_HIDDEN else ("MISS" if host < device else "-"),
    ]
    row = [
        f"sleeps {device_ms:g} ms/step" if device_ms else "compute only",
        k,
        f"{host * 1e3:.1f}",
        f"{device * 1e3:.1f}",
        f"{statistics.median(b for b, _ in pairs) * 1e3 / calls:.1f}",
        f"{statistics.median(c for _, c in pairs) * 1e3 / calls:.1f}",
        f"{ratio}",
        marks[0],
        f"{statistics.median(c for _, c in fits) * 1e3 / calls:.1f}",
        f"{trainer_ratio}",
        marks[1],
        f"{share:.2f}",
        marks[2],
    ]
    return row, marks


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--batches", type=int, default=48, help="batches per timed run")
    parser.add_argument("--width", type=int, default=256, help="hidden units: the compute per step")
    parser.add_argument("--device-ms", type=float, default=None, help="simulated device ms per step (CPU default 40)")
    parser.add_argument("--quick", action="store_true", help="3 rounds of 16 batches")
    args = parser.parse_args()
    rounds, batches = (3, 16) if args.quick else (args.rounds, args.batches)
    print(f"machine: {machine()}")
    modes = [args.device_ms] if args.device_ms is not None else [0.0]
    if args.device_ms is None and jax.default_backend() == "cpu":
        modes.append(40.0)
    rows, verdicts = [], []
    with tempfile.TemporaryDirectory() as tmp:
        ds = pipeline(image_file(Path(tmp), count=BATCH * 32))
        params = init_state(args.width)
        for device_ms in modes:
            for k in (1, 8):
                row, marks = measure(ds, params, k, device_ms, rounds, batches, Path(tmp) / f"run_{device_ms}_{k}")
                rows.append(row)
                verdicts += marks
    print_table(
        f"Prefetcher vs a hand-written loop on the same Grain pipeline ({rounds} rounds, {batches} batches of {BATCH})",
        [
            "device",
            "K",
            "host ms/call",
            "device ms/call",
            "hand ms/call",
            "prefetched ms/call",
            "speed ratio",
            f">= {TARGET_RATIO}",
            "Trainer ms/call",
            "Trainer ratio",
            f">= {TARGET_RATIO}",
            "host time hidden",
            f">= {TARGET_HIDDEN}",
        ],
        rows,
        [
            "speed ratio, Trainer ratio: hand-written seconds / prefetched (Trainer) seconds, median of per-round "
            "pairs ± MAD.",
            "host time hidden: 1 - (loop's wait on the queue) / (worker's read+stack+transfer time); "
            "its target applies when host ms/call < device ms/call.",
        ],
    )
    exit_with(verdicts)


if __name__ == "__main__":
    main()
