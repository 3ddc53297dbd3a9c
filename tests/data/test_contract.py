"""The task contract, checked before the first call: each broken promise is one line saying what to write instead."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import optax
import pytest
from flax.training import train_state

from emergence import TrainState
from emergence.contract import TaskContractError, check_eval_step, check_no_legacy_keys, check_train_step


def fresh_state(rng=None):
    return TrainState.create(params={"w": jnp.zeros(3)}, opt_state=(), rng=jax.random.key(0) if rng is None else rng)


def good_step(state, batch):
    loss = jnp.mean((batch["x"] @ state.params["w"]) ** 2)
    return state.replace(step=state.step + 1), {"loss": loss}


BATCH = {"x": jnp.ones((4, 3))}


def one_line_error(step, *args, check=check_train_step) -> str:
    with pytest.raises(TaskContractError) as err:
        check(step, *args)
    message = str(err.value)
    assert "\n" not in message and len(message) < 300
    return message


def test_a_step_that_keeps_the_contract_passes_with_and_without_a_batch():
    check_train_step(good_step, fresh_state(), BATCH)
    check_train_step(lambda s: good_step(s, BATCH), fresh_state())
    flax_state = train_state.TrainState.create(apply_fn=None, params={"w": jnp.zeros(3)}, tx=optax.sgd(0.1))
    check_train_step(lambda s, b: (s.replace(step=s.step + 1), {"loss": jnp.sum(b["x"])}), flax_state, BATCH)


def test_returning_only_the_state_says_to_return_state_and_metrics():
    message = one_line_error(lambda s, b: good_step(s, b)[0], fresh_state(), BATCH)
    assert message.startswith("train_step returned only the state; return (state, metrics)")


def test_returning_metrics_then_state_says_which_order():
    message = one_line_error(lambda s, b: good_step(s, b)[::-1], fresh_state(), BATCH)
    assert message == "train_step returned (metrics, state); return (state, metrics)"


def test_metrics_that_are_an_array_or_per_example_or_nested_are_refused():
    loss = lambda s, b: (b["x"] @ s.params["w"]) ** 2
    assert "returned metrics as an array of shape (); return a dict of scalars" in one_line_error(
        lambda s, b: (s, jnp.mean(loss(s, b))), fresh_state(), BATCH
    )
    assert "metrics['loss'] has shape (4,); return a scalar (e.g. loss.mean())" in one_line_error(
        lambda s, b: (s, {"loss": loss(s, b)}), fresh_state(), BATCH
    )
    assert "flatten a nested dict" in one_line_error(
        lambda s, b: (s, {"train": {"loss": jnp.mean(loss(s, b))}}), fresh_state(), BATCH
    )


def test_a_state_that_changes_dtype_or_structure_names_the_leaf():
    widen = lambda s, b: (s.replace(params={"w": s.params["w"].astype(jnp.float16)}), {})
    message = one_line_error(widen, fresh_state(), BATCH)
    assert "train_step changes the state" in message and "params/w" in message and "astype" in message, message
    grow = lambda s, b: (s.replace(params={"w": s.params["w"], "b": jnp.zeros(())}), {})
    assert "returned a state of another structure" in one_line_error(grow, fresh_state(), BATCH)


def test_a_legacy_prng_key_in_the_state_says_to_use_a_typed_key():
    message = one_line_error(good_step, fresh_state(jax.random.PRNGKey(0)), BATCH)
    assert message.startswith(
        "state leaf 'rng' is a legacy uint32 key from jax.random.PRNGKey; create it with jax.random.key(seed)"
    )
    check_no_legacy_keys({"counts": jnp.zeros(2, jnp.uint32)})  # a uint32 pair not named like a key is data


def test_eval_step_must_return_a_dict_of_scalars():
    check_eval_step(lambda s, b: {"loss": jnp.sum(b["x"])}, fresh_state(), BATCH)
    message = one_line_error(lambda s, b: jnp.sum(b["x"]), fresh_state(), BATCH, check=check_eval_step)
    assert message.startswith("eval_step returned metrics as an array of shape ()")
