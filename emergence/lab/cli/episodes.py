"""`emergence eval CKPT` and `emergence render CKPT --out world.gif|png`: look at what a lab run learned.

Both read a checkpoint written by `emergence train` (a file, or the newest valid one in
a run or checkpoint dir) with the library's verified reader, rebuild its `PPOTask` from
the config the checkpoint records, and play fresh worlds with its policy.

- `eval`: greedy episodes (the measurement `PPOTask.eval_step` makes), next to a
  uniformly random policy on the very same starting worlds (same key), and the ratio of
  their food per agent per step.
- `render`: one world through an episode; a `.gif` is the animation (one frame per
  step), a `.png` a contact sheet of evenly spaced frames. Written atomically.
"""

from __future__ import annotations

import io
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

import jax
import numpy as np
from tyro.conf import Positional, arg

from emergence.checkpoint import CheckpointFile
from emergence.checkpoint.atomic import atomic_write_bytes
from emergence.checkpoint.restore import restore_state
from emergence.cli.paths import load_checkpoint
from emergence.cli.usage import UsageError, parse
from emergence.envs import render
from emergence.errors import IncompatibleCheckpointError
from emergence.lab.agents import PPOConfig, PPOTask, episode_metrics, run_episodes
from emergence.state import TrainState

play = jax.jit(run_episodes, static_argnums=(1, 4, 5, 6))
"""`run_episodes` compiled once per (config, policy, worlds, steps)."""
CheckpointArg = Positional[Annotated[Path, arg(metavar="CKPT")]]
SHEET_FRAMES = 12
SHEET_COLUMNS = 4
GAP_PX = 4


def load_lab_checkpoint(path: Path) -> tuple[CheckpointFile, PPOTask, TrainState]:
    """The verified checkpoint `path` names, its task and its restored state (one-line errors otherwise)."""
    file = load_checkpoint(path)
    try:
        config = PPOConfig.from_dict(file.manifest["config"])
    except (KeyError, TypeError, ValueError) as err:
        raise IncompatibleCheckpointError(
            f"{file.path} is not an `emergence train` checkpoint (its config is not a PPO config: {err})"
        ) from None
    task = PPOTask(config)
    return file, task, restore_state(task.init_state(jax.random.key(0)), file, task.upgrade_checkpoint)


def _positive(**values: int | None) -> None:
    """A one-line `UsageError` for the first flag given below 1 (None: not given)."""
    for name, value in values.items():
        if value is not None and value < 1:
            raise UsageError(f"--{name} must be at least 1, got {value}")


@dataclass(frozen=True)
class Eval:
    """Greedy episodes of a checkpoint's policy on fresh worlds, next to a random policy on the same worlds."""

    checkpoint: CheckpointArg
    """a checkpoint file, or a run / checkpoint dir (its newest valid checkpoint)"""
    envs: int | None = None
    """worlds to play (default: the run's eval_envs)"""
    steps: int | None = None
    """steps per episode (default: the run's eval_steps)"""
    seed: int = 0
    """seeds the starting worlds (both policies get the same ones)"""
    json: bool = False
    """print one JSON object instead of the table"""


def evaluate_checkpoint(command: Eval) -> dict[str, Any]:
    """Greedy and random metrics of `command.checkpoint` (host floats) and where they came from."""
    _positive(envs=command.envs, steps=command.steps)
    file, task, state = load_lab_checkpoint(command.checkpoint)
    envs, steps = command.envs or task.cfg.eval_envs, command.steps or task.cfg.eval_steps
    key = jax.random.key(command.seed)

    def measure(mode: str) -> dict[str, float]:
        log = play(key, task.cfg, state.params, state.extra.get("agent_params"), mode, envs, steps)
        return {
            name.removeprefix("eval/"): float(value) for name, value in jax.device_get(episode_metrics(log)).items()
        }

    greedy, random = measure("greedy"), measure("random")
    ratio = greedy["food_per_agent_step"] / random["food_per_agent_step"] if random["food_per_agent_step"] else None
    return {
        "checkpoint": str(file.path),
        "step": int(file.manifest["step"]),
        "envs": envs,
        "steps": steps,
        "seed": command.seed,
        "greedy": greedy,
        "random": random,
        "food_ratio": ratio,
    }


def _eval_table(result: dict[str, Any]) -> str:
    names = list(result["greedy"])
    width = max(len(name) for name in names)
    lines = [
        f"{result['checkpoint']} (update {result['step']:,}): {result['envs']} worlds x {result['steps']} steps, "
        f"seed {result['seed']}",
        f"{'':{width}}  {'greedy':>10}  {'random':>10}",
    ]
    lines += [f"{name:{width}}  {result['greedy'][name]:10.4g}  {result['random'][name]:10.4g}" for name in names]
    if result["food_ratio"] is not None:
        lines.append(f"food per agent per step: {result['food_ratio']:.2f}x the random policy's")
    return "\n".join(lines)


def eval_main(argv: list[str]) -> int:
    """`emergence eval CKPT [--envs N] [--steps N] [--seed S] [--json]`."""
    command = parse(Eval, argv, prog="emergence eval")
    result = evaluate_checkpoint(command)
    print(json.dumps(result, indent=1) if command.json else _eval_table(result))
    return 0


@dataclass(frozen=True)
class Render:
    """Draw one world through an episode played by a checkpoint's policy: an animated GIF or a PNG contact sheet."""

    checkpoint: CheckpointArg
    """a checkpoint file, or a run / checkpoint dir (its newest valid checkpoint)"""
    out: Path
    """the picture to write: NAME.gif (every step) or NAME.png (evenly spaced frames)"""
    steps: int = 100
    """steps to play"""
    policy: Literal["greedy", "sample", "random"] = "greedy"
    """greedy (argmax), sample (from the policy) or random (uniform actions)"""
    seed: int = 0
    """seeds the world"""
    cell_px: int = 8
    """pixels per grid cell"""
    fps: int = 10
    """GIF frames per second"""


def episode_frames(command: Render) -> np.ndarray:
    """(steps, H, W, 3) uint8 frames of one world, the first being the fresh world."""
    _, task, state = load_lab_checkpoint(command.checkpoint)
    env = task.cfg.env
    log = play(
        jax.random.key(command.seed),
        task.cfg,
        state.params,
        state.extra.get("agent_params"),
        command.policy,
        1,
        command.steps,
    )
    world = jax.tree.map(lambda x: x[:, 0], log.states)
    return np.asarray(jax.vmap(lambda s: render(s, env, command.cell_px))(world))


def contact_sheet(frames: np.ndarray, count: int = SHEET_FRAMES, columns: int = SHEET_COLUMNS) -> np.ndarray:
    """Up to `count` evenly spaced frames (first and last included) in a grid, `GAP_PX` apart."""
    picked = frames[np.unique(np.linspace(0, len(frames) - 1, min(count, len(frames))).round().astype(int))]
    columns = min(columns, len(picked))
    rows = math.ceil(len(picked) / columns)
    height, width = picked.shape[1:3]
    sheet = np.full((rows * (height + GAP_PX) - GAP_PX, columns * (width + GAP_PX) - GAP_PX, 3), 255, np.uint8)
    for i, frame in enumerate(picked):
        top, left = (i // columns) * (height + GAP_PX), (i % columns) * (width + GAP_PX)
        sheet[top : top + height, left : left + width] = frame
    return sheet


def encode(frames: np.ndarray, suffix: str, fps: int) -> bytes:
    """The frames as GIF (animation, looping) or PNG (contact sheet) bytes."""
    from PIL import Image  # matplotlib's dependency; only `render` needs it

    buffer = io.BytesIO()
    if suffix == ".gif":
        images = [Image.fromarray(frame) for frame in frames]
        images[0].save(
            buffer, format="GIF", save_all=True, append_images=images[1:], duration=round(1000 / fps), loop=0
        )
    else:
        Image.fromarray(contact_sheet(frames)).save(buffer, format="PNG")
    return buffer.getvalue()


def render_main(argv: list[str]) -> int:
    """`emergence render CKPT --out world.gif|png [--steps N] [--policy P] [--seed S]`."""
    command = parse(Render, argv, prog="emergence render")
    suffix = command.out.suffix.lower()
    if suffix not in (".gif", ".png"):
        raise UsageError(f"--out must end in .gif or .png, got {command.out.name!r}")
    _positive(steps=command.steps, **{"cell-px": command.cell_px, "fps": command.fps})
    if not command.out.parent.is_dir():
        raise UsageError(f"--out: directory {command.out.parent} does not exist; create it first")
    frames = episode_frames(command)
    atomic_write_bytes(command.out, encode(frames, suffix, command.fps))
    print(f"wrote {command.out} ({len(frames)} steps, {command.policy} policy, {frames.shape[2]}x{frames.shape[1]} px)")
    return 0
