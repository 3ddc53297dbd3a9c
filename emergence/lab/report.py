"""What `emergence train` prints at the end: why it stopped, how far, how fast in env steps, the last evaluation."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import jax

from emergence.callbacks.base import Callback, Metrics

if TYPE_CHECKING:
    from emergence.trainer import Trainer

EVAL_SHOWN = ("eval/food_per_agent_step", "eval/mean_return", "eval/population", "eval/lifespan")


class Throughput(Callback):
    """Env steps per second of this process, counted from the end of its first call (compiling is not training).

    Reads the host clock and the step only: no device sync. With asynchronous dispatch
    the host runs a bounded queue ahead, so the rate at the end of a run (after
    `block_until_ready`) is the device's; it includes checkpoint saves and evaluations.
    """

    def __init__(self, env_steps_per_update: int) -> None:
        self.env_steps_per_update = env_steps_per_update
        self._since: tuple[float, int] | None = None

    def setup(self, trainer: "Trainer") -> None:
        self._since = None

    def on_train_call_end(self, trainer: "Trainer", metrics: Metrics) -> None:
        if self._since is None:
            self._since = (time.perf_counter(), trainer.step)

    def env_steps_per_second(self, trainer: "Trainer") -> float:
        """Env steps per second since the first call ended (0.0 before a second call)."""
        if self._since is None or trainer.step == self._since[1]:
            return 0.0
        began, step = self._since
        return (trainer.step - step) * self.env_steps_per_update / max(time.perf_counter() - began, 1e-9)


def summary(trainer: "Trainer", seconds: float) -> str:
    """The end of a run in a few lines: why it stopped, how far, how fast, the last evaluation, the last checkpoint."""
    meter = next(cb for cb in trainer.callbacks if isinstance(cb, Throughput))
    per_update = meter.env_steps_per_update
    lines = [
        f"stopped: {trainer.stop_reason} at update {trainer.step:,} ({trainer.step * per_update:,} env "
        f"steps); this session {trainer.step - trainer.fit_start_step:,} updates in {seconds:.1f} s"
    ]
    rate = meter.env_steps_per_second(trainer)
    if rate:
        lines.append(f"throughput: {rate:,.0f} env steps/s (after compiling, saves and evaluations included)")
    evaluated = jax.device_get({k: v for k, v in trainer.last_eval_metrics.items() if k in EVAL_SHOWN})
    if evaluated:
        lines.append(
            "last eval: " + "  ".join(f"{k.removeprefix('eval/')} {float(v):.4g}" for k, v in evaluated.items())
        )
    if trainer.last_checkpoint is not None:
        lines.append(f"checkpoint: {trainer.last_checkpoint.path}")
    return "\n".join(lines)
