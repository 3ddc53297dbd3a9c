"""The foraging world's settings: shapes (static) and per-run values (traced).

`EnvParams` holds every setting as plain data (what configs and checkpoints record).
Each field is marked, in its metadata, as one of:

- *structural* (`structural(...)`): it fixes the state's array shapes (`grid_size`,
  `max_agents`, `view_radius`): a checkpoint under another value cannot be resumed;
- *static* (no mark): it fixes scan lengths or control flow (`initial_agents`,
  `num_food`, `max_steps`): a static jit argument, the same for every run of one
  compiled program (structural ones are static too);
- *traced* (`metadata={"traced": True}`): a number that only enters the arithmetic
  (energies, costs, the ceiling, the regrowth rate). `EnvParams.values()` gathers them
  as a `WorldValues` pytree that the rules take beside the static params, so one
  compiled program serves worlds with different values and `jax.vmap` over runs works
  (a sweep may vary them: `--sweep.grid env.food_energy=100,30`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import jax
import jax.numpy as jnp
from flax import struct


def traced(default: Any, doc: str = "") -> Any:
    """A dataclass field whose value is traced per run (see the module docstring)."""
    return dataclasses.field(default=default, metadata={"traced": True, "doc": doc})


def structural(default: Any, doc: str = "") -> Any:
    """A dataclass field that fixes the state's array shapes (a checkpoint under another value cannot resume)."""
    return dataclasses.field(default=default, metadata={"structural": True, "doc": doc})


def is_traced(field: dataclasses.Field) -> bool:
    """Whether a dataclass field is marked traced."""
    return bool(field.metadata.get("traced"))


def field_kind(field: dataclasses.Field) -> str:
    """`traced`, `structural` (changes the state's shapes) or `static` (fixed per compiled program)."""
    return "traced" if is_traced(field) else "structural" if field.metadata.get("structural") else "static"


@struct.dataclass
class WorldValues:
    """The traced values of one world: scalars (Python numbers for one run, arrays in a sweep).

    Energies are cast to int32 where they are used, so the bookkeeping stays exact.
    """

    starting_energy: Any
    food_energy: Any
    reproduce_threshold: Any
    reproduce_cost: Any
    move_cost: Any
    living_cost: Any
    max_energy: Any
    food_regrowth: Any

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> "WorldValues":
        """The values named in `values` (e.g. a sweep run's `hyper`), every field required."""
        return cls(**{f.name: values[f.name] for f in dataclasses.fields(cls)})

    def energy(self, name: str) -> jax.Array | int:
        """Value `name` as an int32 energy (a Python int stays a Python int)."""
        value = getattr(self, name)
        return int(value) if isinstance(value, (int, float)) else jnp.asarray(value).astype(jnp.int32)


@dataclasses.dataclass(frozen=True)
class EnvParams:
    """Settings of the world. Hashable: pass it as a static jit argument (its traced values go
    to `values()`, which the rules read instead, so a sweep can override them per run)."""

    grid_size: int = structural(16)
    """side of the square world, in cells"""
    max_agents: int = structural(32)
    """agent slots per world (the population cap; changes the state's shapes)"""
    initial_agents: int = 8
    """agents alive at reset"""
    num_food: int = 20
    """food items the grid holds when fully grown"""
    starting_energy: int = traced(200)
    """energy of each founder"""
    food_energy: int = traced(100)
    """energy gained by eating one food item"""
    reproduce_threshold: int = traced(120)
    """energy at which an agent gives birth into a free neighbouring cell"""
    reproduce_cost: int = traced(50)
    """energy a parent pays at birth; the child starts with it"""
    move_cost: int = traced(2)
    """energy paid per move (not for staying)"""
    living_cost: int = traced(1)
    """energy paid every step by every alive agent that stays"""
    view_radius: int = structural(3)
    """the egocentric view is (2r+1) x (2r+1) cells (changes the observation size)"""
    max_steps: int = 500
    """episode length: `done` after this many steps (the learner then resets the world); make it much
    longer than a lifespan for a continuing world, reset only on extinction"""
    max_energy: int = traced(0)
    """energy ceiling: what an agent would hold beyond it is wasted (0: no ceiling)"""
    food_regrowth: float = traced(1.0)
    """chance per step that each missing food item grows back on a random free cell (1: at once)"""

    def __post_init__(self) -> None:
        problems = []
        if self.grid_size < 2:
            problems.append(f"grid_size={self.grid_size} must be at least 2")
        if not 1 <= self.initial_agents <= self.max_agents:
            problems.append(f"initial_agents={self.initial_agents} must be in 1..max_agents={self.max_agents}")
        if self.initial_agents + self.num_food > self.grid_size**2:
            problems.append(
                f"initial_agents + num_food = {self.initial_agents + self.num_food} "
                f"does not fit in {self.grid_size}x{self.grid_size} cells"
            )
        if self.reproduce_threshold <= self.reproduce_cost:
            problems.append(
                f"reproduce_threshold={self.reproduce_threshold} must exceed "
                f"reproduce_cost={self.reproduce_cost} (a parent must survive giving birth)"
            )
        if min(self.starting_energy, self.reproduce_cost, self.max_steps) < 1:
            problems.append("starting_energy, reproduce_cost and max_steps must be positive")
        if min(self.food_energy, self.move_cost, self.living_cost, self.view_radius, self.num_food) < 0:
            problems.append("food_energy, move_cost, living_cost, view_radius, num_food must be >= 0")
        if self.max_energy and self.max_energy < self.reproduce_threshold:
            problems.append(
                f"max_energy={self.max_energy} must be 0 (no ceiling) or at least "
                f"reproduce_threshold={self.reproduce_threshold} (else nobody could breed)"
            )
        if not 0.0 < self.food_regrowth <= 1.0:
            problems.append(f"food_regrowth={self.food_regrowth} must be a chance per step in (0, 1]")
        if problems:
            raise ValueError("invalid EnvParams: " + "; ".join(problems))

    @property
    def obs_size(self) -> int:
        """Length of one agent's observation: 3 view channels plus energy."""
        return 3 * (2 * self.view_radius + 1) ** 2 + 1

    def values(self) -> WorldValues:
        """The traced values as the Python numbers this config holds (one run's values)."""
        return WorldValues(**{name: getattr(self, name) for name in traced_names()})


def traced_names() -> tuple[str, ...]:
    """`EnvParams` fields marked traced, in declaration order."""
    return tuple(f.name for f in dataclasses.fields(EnvParams) if is_traced(f))
