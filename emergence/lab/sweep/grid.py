"""A sweep's runs: the grid of `--sweep.grid KEY=V1,V2` values times `--sweep.seeds` seeds, in one fixed order.

Keys are the config's dotted names or an unambiguous suffix (`diversity_bonus` means
`evolution.diversity_bonus`); only values marked traced, which enter the computation and
nothing else (`emergence.lab.agents.hyper.TRACED`: the learner's coefficients and the
world's energies, costs, ceiling and regrowth, e.g. `env.food_energy=100,30`), may vary,
because every run of a sweep shares one compiled program, and `evolution.enabled` (`evolution` for short; values 0/1 or
false/true), which a sweep turns into a per-run 0/1 weight on heads every run keeps.

Runs are the product of the grid (first key slowest) with the
seeds innermost: run i has config `i // seeds` and seed `first_seed + i % seeds`.
Every bad grid is a one-line `UsageError` raised before anything is compiled or written.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any

from emergence.errors import UsageError
from emergence.lab.agents.config import PPO_FIELDS, STRUCTURAL_KEYS, lab_key
from emergence.lab.agents.hyper import TRACED
from emergence.lab.config import LabConfig, resolve_key, with_values

EVOLUTION = "evolution.enabled"
SWEEPABLE = (*TRACED.values(), EVOLUTION)
"""The dotted keys a grid may vary: `ppo.lr`, `evolution.diversity_bonus`, ..., `evolution.enabled`."""
_SHAPES = {lab_key(k) if k in PPO_FIELDS else k for k in STRUCTURAL_KEYS if k != "evolution"}
_SWITCH = {"0": 0.0, "1": 1.0, "false": 0.0, "true": 1.0, "off": 0.0, "on": 1.0}


def short_name(dotted: str) -> str:
    """A grid key as run names and metrics.csv columns show it: `diversity_bonus`, `lr`, `evolution`."""
    return "evolution" if dotted == EVOLUTION else dotted.rsplit(".", 1)[-1]


@dataclass(frozen=True)
class Run:
    """One run of a sweep: its index, its grid values (dotted key -> value) and its seed."""

    index: int
    values: dict[str, float]
    seed: int

    @property
    def name(self) -> str:
        """`diversity_bonus=0.05,seed=2`: the short key names, as TensorBoard shows the run."""
        return ",".join([f"{short_name(key)}={value:g}" for key, value in self.values.items()] + [f"seed={self.seed}"])


@dataclass(frozen=True)
class Grid:
    """Grid values per dotted key (in the order given), the number of seeds per grid point, and how the runs
    share the program (`strategy`: 'vmap', 'map' or None for the backend's default; see `sweep.task`)."""

    values: dict[str, list[float]]
    seeds: int
    strategy: str | None = None

    def runs(self, first_seed: int) -> list[Run]:
        """Every run, grid points in product order, seeds `first_seed ..` innermost."""
        points = list(itertools.product(*self.values.values())) or [()]
        return [
            Run(i * self.seeds + j, dict(zip(self.values, point)), first_seed + j)
            for i, point in enumerate(points)
            for j in range(self.seeds)
        ]

    def to_dict(self) -> dict[str, Any]:
        """JSON form, as the sweep's checkpoints record it (the strategy is not part of what the runs are)."""
        return {"grid": {key: list(values) for key, values in self.values.items()}, "seeds": self.seeds}


def run_config(config: LabConfig, run: Run) -> LabConfig:
    """The `LabConfig` run `run` trains with alone: the sweep's config with its values and seed."""
    config = with_values(config, {key: bool(v) if key == EVOLUTION else v for key, v in run.values.items()})
    return with_values(config, {"train.seed": run.seed})


def parse_grid(config: LabConfig, entries: list[str], seeds: int, strategy: str = "auto") -> Grid:
    """A `Grid` from `--sweep.grid` strings, `--sweep.seeds` and `--sweep.strategy`; mistakes are one-line errors."""
    if isinstance(seeds, bool) or not isinstance(seeds, int) or seeds < 1:
        raise UsageError(f"--sweep.seeds must be a positive count of seeds per grid point, got {seeds!r}")
    if strategy not in ("auto", "vmap", "map"):
        raise UsageError(f"--sweep.strategy must be auto, vmap or map, got {strategy!r}")
    values: dict[str, list[float]] = {}
    for entry in entries:
        key, values_text = _split(entry)
        dotted = _sweepable_key(config, key)
        if dotted in values:
            raise UsageError(
                f"--sweep.grid {key}: {dotted} is already in the grid; list all its values once ({key}=A,B,C)"
            )
        parse = _switch if dotted == EVOLUTION else _number
        values[dotted] = [parse(key, text) for text in values_text.split(",")]
    return Grid(values, seeds, None if strategy == "auto" else strategy)


def _split(entry: str) -> tuple[str, str]:
    key, sep, text = entry.partition("=")
    if not sep or not key:
        raise UsageError(f"--sweep.grid takes KEY=V1,V2,... (e.g. diversity_bonus=0,0.05), got {entry!r}")
    if not text.strip(" ,"):
        raise UsageError(f"--sweep.grid {key}= has no values; give a comma-separated list such as {key}=0,0.05")
    return key, text


def _sweepable_key(config: LabConfig, key: str) -> str:
    try:
        dotted = EVOLUTION if key == "evolution" else resolve_key(config, key)
    except ValueError as err:
        raise UsageError(f"--sweep.grid {key}: {err}") from None
    if dotted == EVOLUTION and not config.evolution.enabled:
        raise UsageError(
            f"--sweep.grid {key}: switching evolution per run needs the heads in every run's state; "
            f"leave --evolution.enabled on (the runs weighted 0 train without them)"
        )
    if dotted in SWEEPABLE:
        return dotted
    flag = "--" + dotted.replace("_", "-")
    why = "changes the state's shapes" if dotted in _SHAPES else "is fixed for the whole compiled program"
    raise UsageError(
        f"--sweep.grid {key}: {dotted} {why}, so it cannot vary within one sweep; set it with {flag} "
        f"and run one sweep per value (a grid may vary {', '.join(SWEEPABLE)})"
    )


def _switch(key: str, text: str) -> float:
    try:
        return _SWITCH[text.strip().lower()]
    except KeyError:
        raise UsageError(
            f"--sweep.grid {key}: {text.strip()!r} is not on or off; values are 0,1 (or false,true)"
        ) from None


def _number(key: str, text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise UsageError(
            f"--sweep.grid {key}: {text.strip()!r} is not a number; values are comma-separated "
            f"floats such as {key}=0,0.05"
        ) from None
