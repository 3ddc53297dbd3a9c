"""Pictures of the foraging world: one RGB frame per state, for PNGs and GIFs."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from emergence.envs.foraging import EnvParams, EnvState

BACKGROUND = (22, 24, 32)
FOOD = (70, 190, 80)
# One colour per founding lineage (founder uid modulo the palette size).
LINEAGE_PALETTE = jnp.array(
    [
        (230, 80, 70),
        (80, 150, 240),
        (245, 190, 60),
        (190, 100, 230),
        (60, 210, 210),
        (245, 130, 40),
        (240, 240, 240),
        (230, 110, 170),
    ],
    jnp.float32,
)


def render(state: EnvState, params: EnvParams, cell_px: int = 8) -> jax.Array:
    """A (grid_size*cell_px, grid_size*cell_px, 3) uint8 image of one world.

    Food is green; each agent is coloured by its founding lineage, dimmer when its
    energy is below `starting_energy`. Pure jnp: jit it, or vmap it over a trajectory
    of states to get GIF frames.
    """
    size = params.grid_size
    image = jnp.broadcast_to(jnp.array(BACKGROUND, jnp.float32), (size, size, 3))
    image = jnp.where(state.food[..., None], jnp.array(FOOD, jnp.float32), image)
    brightness = 0.45 + 0.55 * jnp.clip(state.energy / params.starting_energy, 0.0, 1.0)
    colour = LINEAGE_PALETTE[state.founder % LINEAGE_PALETTE.shape[0]] * brightness[:, None]
    rows = jnp.where(state.alive, state.pos[:, 0], size)
    image = image.at[rows, state.pos[:, 1]].set(colour, mode="drop")
    image = jnp.repeat(jnp.repeat(image, cell_px, axis=0), cell_px, axis=1)
    return jnp.round(image).astype(jnp.uint8)
