"""The selection preset's world keeps a population below its cap with steady turnover, under a fixed forager."""

import jax
import pytest

from emergence.envs.turnover import simulate, turnover
from emergence.lab.config import PRESETS


@pytest.mark.slow
def test_selection_world_lives_below_its_cap_with_deaths_in_every_window_and_deepening_lineages():
    env = PRESETS["selection"].env
    run = jax.jit(lambda key: simulate(env, env.values(), 8, 6000, "greedy", key))
    figures = turnover(run(jax.random.key(0)), env, worlds=8, window=200)
    assert 0.3 <= figures["pop/cap"] <= 0.9, figures
    assert figures["windows_with_death"] == 1.0, figures
    assert figures["gen_at_end"] > figures["gen_at_half"] > 0, figures


def test_quick_and_kaggle_keep_the_seed_world_and_selection_is_scarce_and_continuing():
    quick, kaggle, selection = (PRESETS[name].env for name in ("quick", "kaggle", "selection"))
    assert quick == kaggle
    assert (quick.food_energy, quick.starting_energy, quick.reproduce_threshold, quick.reproduce_cost) == (
        100,
        200,
        120,
        50,
    )
    assert (quick.max_energy, quick.food_regrowth) == (0, 1.0)
    assert selection.starting_energy < selection.reproduce_threshold and selection.max_energy > 0
    assert selection.food_regrowth < 1.0 and selection.max_steps >= 1000 * selection.max_agents
    assert PRESETS["selection-kaggle"].env == selection
