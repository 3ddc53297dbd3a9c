"""Train the toy regression task in its own process, with the survival callbacks and injected failures.

The subject of the subprocess tests (signals, atexit, crash consistency, time budget)
and of `bench/emergency_latency.py`; other tests may run it too. No emergence CLI is
involved: the Trainer is built here from the flags.

    train_subprocess.py RUN_DIR MAX_STEPS [--callbacks checkpoint,signal,...] [--every N] ...

Callbacks (`--callbacks`, any of): budget, checkpoint, exception, atexit, signal, in
that order in the list. Injected trouble and probes:

- `--crash STEP:HOW`: HOW = sysexit | raise | thread-sigterm (from a callback) or
  device-error (inside the jitted step);
- `--signal-in-setup NAME`: the process signals itself before training starts;
- `--fsize-after STEP:BYTES`: the disk is full once the checkpoint of STEP is durable;
- `--slow-save SECONDS`: every save's gather takes that much longer (on the loop's thread);
- `--slow-write SECONDS`: every background write starts that much later (on the writer thread);
- `--sync-checkpoint`: every save is written synchronously (`async_checkpoint=False`);
- `--slow-start SECONDS`: `on_fit_start` work that takes that long;
- `--eval-every N`, `--eval-seconds SECONDS`: an evaluation every N steps, taking that long;
- `--state-mb MB`: that many MB of float32 ballast in the state's `extra` (saved, untouched by the step);
- `--trace-seconds SECONDS`: the first compile takes that much longer;
- `--work-seconds SECONDS`: each step does that much real device work;
- `--plain-save-at STEP`: time one plain save (the benchmark's baseline);
- `--fit-in-thread STEP`: fit() in a daemon thread; the main program fails at STEP;
- `--kaggle-order KEYS`: instead of `--callbacks`, the Kaggle preset at test intervals
  (`tests.helpers.kaggle_preset`) in this order of its keys (comma-separated).

The process exits with `trainer.exit_code`, as `emergence train` does.

Prints one line per event on stdout, for a parent to time its kills:
`start <epoch of process start>`, `budget from <epoch>`, `starting`, `ready <step>`,
`step <N>`, `evaluating` (`--eval-seconds`), `evaluated <N>`, `saving`, `writing` (the writer thread),
`saved <file name> <epoch> <seconds from snapshot to durable>`, `plain <seconds>`,
`fit returned <reason>`.
"""

from __future__ import annotations

import argparse
import functools
import os
import resource
import signal
import sys
import threading
import time
from typing import Any

import jax
import jax.numpy as jnp

from emergence import Callback, Trainer
from emergence.checkpoint import flatten_to_host, write_checkpoint
from emergence.checkpoint.async_writer import AsyncCheckpointWriter
from emergence.platforms import process_start_time
from emergence.testing import toy_task


def say(line: str) -> None:
    """One whole line on stdout (a single write, so lines from two threads never interleave)."""
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


class ScriptTask:
    """The toy regression task, optionally with real device work per step or a failure inside the jitted step.

    The extra work only feeds a metric, so runs with different amounts of it stay
    bitwise comparable; it runs on the device like any compute, asynchronously.
    """

    def __init__(
        self,
        hidden: tuple[int, ...],
        work_repeats: int = 0,
        work_size: int = 256,
        fail_at_step: int | None = None,
        trace_seconds: float = 0.0,
        eval_seconds: float = 0.0,
        state_mb: float = 0.0,
    ) -> None:
        self.base = toy_task(hidden=hidden)
        self.name, self.structural_keys = self.base.name, self.base.structural_keys
        self.work_repeats, self.work_size, self.fail_at_step = work_repeats, work_size, fail_at_step
        self.trace_seconds, self.eval_seconds, self.state_mb = trace_seconds, eval_seconds, state_mb

    def config(self) -> dict[str, Any]:
        return self.base.config()

    def init_state(self, rng: jax.Array):
        state = self.base.init_state(rng)
        if not self.state_mb:
            return state
        return state.replace(extra={"ballast": jnp.ones(int(self.state_mb * 1e6) // 4, jnp.float32)})

    def eval_step(self, state):
        metrics = self.base.eval_step(state)
        if self.eval_seconds:  # a host callback that sleeps: an evaluation that takes this long to finish
            slow = functools.partial(_slowly, seconds=self.eval_seconds)
            metrics["val_loss"] = jax.pure_callback(slow, jax.ShapeDtypeStruct((), jnp.float32), metrics["val_loss"])
        return metrics

    def train_step(self, state):
        time.sleep(self.trace_seconds)  # runs once, while the first call is traced: a long compile
        if self.fail_at_step is not None:
            jax.debug.callback(_fail_at, state.step, self.fail_at_step)
        state, metrics = self.base.train_step(state)
        if self.work_repeats:
            metrics["work"] = busy_work(metrics["loss"], self.work_repeats, self.work_size)
        return state, metrics


def busy_work(seed: jax.Array, repeats: int, size: int) -> jax.Array:
    """`repeats` chained size×size matmuls seeded by a runtime value (so nothing is folded away)."""
    matrix = jnp.full((size, size), 1.0 / size) * (1.0 + seed)
    return jax.lax.fori_loop(0, repeats, lambda _, m: jnp.tanh(m @ m), matrix).sum()


def _slowly(value: Any, seconds: float) -> Any:
    say("evaluating")  # runs as part of the evaluation, wherever JAX runs it (on CPU: inside the dispatch)
    time.sleep(seconds)
    return value


def _fail_at(step: Any, fail_at: int) -> None:
    if int(step) == fail_at:
        raise RuntimeError(f"injected failure inside the jitted step at step {fail_at}")


def calibrate_repeats(seconds: float, size: int = 256) -> int:
    """How many busy_work repeats take about `seconds` on this machine, now."""
    probe = jax.jit(busy_work, static_argnums=(1, 2))
    probe(jnp.float32(0), 32, size).block_until_ready()
    timings = []
    for _ in range(3):  # the median: one probe on a busy machine says little
        began = time.perf_counter()
        probe(jnp.float32(0), 32, size).block_until_ready()
        timings.append(time.perf_counter() - began)
    return max(1, round(seconds / (sorted(timings)[1] / 32)))


class Reporter(Callback):
    """Prints the events a parent process waits for."""

    def on_fit_start(self, trainer):
        say(f"ready {trainer.step}")

    def on_train_call_end(self, trainer, metrics):
        say(f"step {trainer.step}")

    def on_validation_end(self, trainer, metrics):
        jax.block_until_ready(metrics)  # a logger reading the eval metrics: the loop waits for the evaluation
        say(f"evaluated {trainer.step}")

    def on_save_checkpoint(self, trainer, ref):
        say(f"saved {ref.path.name} {time.time():.3f} {trainer.last_save_seconds:.4f}")


class PlainSave(Callback):
    """At `step`, once the device is idle, times one plain save of the state: device→host copy + file write.

    The baseline a benchmark compares an emergency save with (written beside the
    checkpoints, as `plain.safetensors`, so resume never sees it). Prints `plain <seconds>`.
    """

    def __init__(self, step: int) -> None:
        self.step = step

    def on_train_call_end(self, trainer, metrics):
        if trainer.step != self.step:
            return
        jax.block_until_ready(trainer.state)
        began = time.perf_counter()
        arrays, _ = flatten_to_host(trainer.state)
        write_checkpoint(trainer.run_dir / "plain.safetensors", arrays, {"step": trainer.step, "kind": "periodic"})
        say(f"plain {time.perf_counter() - began:.4f}")


class SlowSave(Callback):
    """Makes every save's gather (where callback states are collected) take `seconds` longer."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds

    def state_dict(self):
        say("saving")
        time.sleep(self.seconds)
        return {}


class SlowStart(Callback):
    """`on_fit_start` work that takes `seconds` (opening a tracker, loading data)."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds

    def on_fit_start(self, trainer):
        say("starting")
        time.sleep(self.seconds)


def slow_writer(seconds: float) -> AsyncCheckpointWriter:
    """A background writer whose every write starts `seconds` late (prints `writing` as it begins)."""

    def before_write() -> None:
        say("writing")
        time.sleep(seconds)

    return AsyncCheckpointWriter(before_write=before_write)


class Crash(Callback):
    """At `step`, fails the way `how` says (sysexit, raise, thread-sigterm)."""

    def __init__(self, step: int, how: str) -> None:
        self.step, self.how, self.done = step, how, False

    def on_train_call_end(self, trainer, metrics):
        if self.done or trainer.step < self.step:
            return
        self.done = True
        if self.how == "sysexit":
            sys.exit(3)
        if self.how == "raise":
            raise RuntimeError(f"injected failure in a callback at step {trainer.step}")
        threading.excepthook = _kill_process_on_thread_failure
        threading.Thread(target=_failing_worker, daemon=True).start()


def _failing_worker() -> None:
    raise ConnectionError("data loader thread lost its connection")


def _kill_process_on_thread_failure(hook_args: Any) -> None:
    """A watchdog many training scripts install: a dead worker thread terminates the job."""
    say(f"worker thread failed: {hook_args.exc_type.__name__}")
    os.kill(os.getpid(), signal.SIGTERM)


class SignalSelfInSetup(Callback):
    """Sends a signal to this process during setup, before any training (after handlers are installed)."""

    def __init__(self, name: str) -> None:
        self.signum = signal.Signals[name]

    def setup(self, trainer):
        os.kill(os.getpid(), self.signum)


class DiskFullAfter(Callback):
    """Once the checkpoint of `step` is durable, no file this process writes may grow past `limit` bytes."""

    def __init__(self, step: int, limit: int) -> None:
        self.step, self.limit = step, limit

    def on_save_checkpoint(self, trainer, ref):
        if ref.step >= self.step:
            resource.setrlimit(resource.RLIMIT_FSIZE, (self.limit, self.limit))


def survival_callbacks(args: argparse.Namespace) -> list[Callback]:
    from emergence.callbacks import (
        AtexitCheckpointCallback,
        CheckpointCallback,
        OnExceptionCheckpointCallback,
        SignalCheckpointCallback,
        TimeBudgetCallback,
    )

    chosen = set(filter(None, args.callbacks.split(",")))
    unknown = chosen - {"budget", "checkpoint", "exception", "atexit", "signal"}
    if unknown:
        raise SystemExit(f"unknown callbacks: {sorted(unknown)}")
    made = {
        "budget": lambda: TimeBudgetCallback(args.budget, start=args.budget_start, margin=args.margin),
        "checkpoint": lambda: CheckpointCallback(every_n_steps=args.every or None, keep_last=args.keep),
        "exception": OnExceptionCheckpointCallback,
        "atexit": AtexitCheckpointCallback,
        "signal": SignalCheckpointCallback,
    }
    return [made[name]() for name in made if name in chosen]


def build(args: argparse.Namespace) -> Trainer:
    crash_step, crash_how = _pair(args.crash, str) if args.crash else (None, None)
    repeats = calibrate_repeats(args.work_seconds) if args.work_seconds else 0
    task = ScriptTask(
        tuple(int(w) for w in args.hidden.split(",")),
        work_repeats=repeats,
        fail_at_step=crash_step if crash_how == "device-error" else None,
        trace_seconds=args.trace_seconds,
        eval_seconds=args.eval_seconds,
        state_mb=args.state_mb,
    )
    callbacks: list[Callback] = [Reporter()]
    if args.slow_start:
        callbacks.append(SlowStart(args.slow_start))
    if args.slow_save:
        callbacks.append(SlowSave(args.slow_save))
    if crash_how in ("sysexit", "raise", "thread-sigterm"):
        callbacks.append(Crash(crash_step, crash_how))
    if args.fsize_after:
        callbacks.append(DiskFullAfter(*_pair(args.fsize_after, int)))
    if args.plain_save_at:
        callbacks.append(PlainSave(args.plain_save_at))
    if args.kaggle_order:
        from tests.helpers import kaggle_preset

        callbacks += kaggle_preset(tuple(args.kaggle_order.split(",")), args.run_dir)
    else:
        callbacks += survival_callbacks(args)
    if args.signal_in_setup:
        callbacks.append(SignalSelfInSetup(args.signal_in_setup))
    resume = None if args.resume == "none" else args.resume
    writer = slow_writer(args.slow_write) if args.slow_write else not args.sync_checkpoint
    return Trainer(
        task,
        callbacks,
        max_steps=args.max_steps,
        steps_per_call=args.steps_per_call,
        run_dir=args.run_dir,
        resume=resume,
        eval_every_n_steps=args.eval_every or None,
        async_checkpoint=writer,
    )


def _pair(text: str, second: type) -> tuple[int, Any]:
    first, rest = text.split(":", 1)
    return int(first), second(rest)


def run_in_thread(trainer: Trainer, fail_at: int) -> None:
    """fit() in a daemon thread while the main program fails at step `fail_at` (an uncaught exception)."""
    threading.Thread(target=trainer.fit, daemon=True).start()
    while trainer.step < fail_at:
        time.sleep(0.005)
    raise RuntimeError(f"main program failed while fit() ran in a thread (step {trainer.step})")


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir")
    parser.add_argument("max_steps", type=int)
    parser.add_argument("--callbacks", default="checkpoint,signal")
    parser.add_argument("--every", type=int, default=10, help="periodic checkpoint interval in steps (0: none)")
    parser.add_argument("--keep", type=int, default=3)
    parser.add_argument("--steps-per-call", type=int, default=1)
    parser.add_argument("--resume", default="auto")
    parser.add_argument("--hidden", default="8")
    parser.add_argument("--work-seconds", type=float, default=0.0, help="device work per step, in seconds")
    parser.add_argument("--trace-seconds", type=float, default=0.0, help="a first compile this much longer")
    parser.add_argument("--slow-save", type=float, default=0.0)
    parser.add_argument("--slow-write", type=float, default=0.0, help="each background write starts this late")
    parser.add_argument("--sync-checkpoint", action="store_true", help="async_checkpoint=False")
    parser.add_argument("--slow-start", type=float, default=0.0, help="on_fit_start work of this many seconds")
    parser.add_argument("--eval-every", type=int, default=0, help="evaluate every N steps (0: never)")
    parser.add_argument("--eval-seconds", type=float, default=0.0, help="each evaluation takes this long")
    parser.add_argument("--state-mb", type=float, default=0.0, help="MB of ballast in the state")
    parser.add_argument("--budget", type=float, default=None)
    parser.add_argument("--margin", type=float, default=60.0)
    parser.add_argument("--crash", default=None, help="STEP:HOW")
    parser.add_argument("--signal-in-setup", default=None)
    parser.add_argument("--fsize-after", default=None, help="STEP:BYTES")
    parser.add_argument("--plain-save-at", type=int, default=None, help="time one plain save at this step")
    parser.add_argument("--fit-in-thread", type=int, default=None, help="main program fails at this step")
    parser.add_argument("--kaggle-order", default=None, help="the Kaggle preset, its keys in this order")
    return parser.parse_args(argv)


def main(argv: list[str]) -> None:
    say(f"start {process_start_time():.3f}")
    args = parse(argv)
    args.budget_start = time.time()  # the budget counts from here: imports and compile-cache misses do not eat it
    say(f"budget from {args.budget_start:.3f}")
    trainer = build(args)
    if args.fit_in_thread is not None:
        run_in_thread(trainer, args.fit_in_thread)
    trainer.fit()
    say(f"fit returned {trainer.stop_reason}")
    sys.exit(trainer.exit_code)  # what `emergence train` does: the exit code is the Trainer's


if __name__ == "__main__":
    main(sys.argv[1:])
