"""The task contract, checked once before the first call: what `train_step` and `eval_step` must return.

A step that returns the wrong thing otherwise fails deep inside `lax.scan` or `jit`
(`scan body output must be a pair, got TrainState(...` and a multi-kilobyte repr), or
only at the first save. `check_train_step` traces the step once with `jax.eval_shape`
(no device work) and turns each broken promise into a one-line `TaskContractError`
that says what to write instead:

- `train_step(state[, batch])` returns `(state, metrics)`: not the state alone, not
  `(metrics, state)`, and the state keeps its structure, shapes and dtypes (chex
  compares them);
- metrics are a dict of scalars (`{"loss": loss}`), not an array or per-example values;
- PRNG keys in the state are typed (`jax.random.key`), not legacy uint32 `PRNGKey`s.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import chex
import jax
import numpy as np

from emergence.checkpoint.tree import is_typed_key, leaf_path
from emergence.errors import EmergenceError

KEY_NAMES = ("rng", "key", "seed")


class TaskContractError(EmergenceError, TypeError):
    """A task whose `init_state`, `train_step` or `eval_step` breaks the contract the Trainer relies on."""


def check_no_legacy_keys(state: Any) -> None:
    """Refuse a state holding a legacy `jax.random.PRNGKey` (a uint32 array of shape (..., 2) named like a key)."""
    for path, leaf in jax.tree_util.tree_flatten_with_path(state)[0]:
        name = leaf_path(path)
        last = name.rsplit("/", 1)[-1].lower()
        shape, dtype = getattr(leaf, "shape", None), getattr(leaf, "dtype", None)
        if is_typed_key(leaf) or shape is None or dtype != np.uint32 or not shape or shape[-1] != 2:
            continue
        if any(word in last for word in KEY_NAMES):
            raise TaskContractError(
                f"state leaf '{name}' is a legacy uint32 key from jax.random.PRNGKey; create it with "
                "jax.random.key(seed) (a typed key: checkpoints keep its kind and resume folds it correctly)"
            )


def check_train_step(train_step: Callable, state: Any, batch: Any = None) -> Mapping[str, Any]:
    """Trace `train_step(state[, batch])` once (no device work) and raise `TaskContractError` on a broken promise.

    Returns the metrics' shapes (a dict of `jax.ShapeDtypeStruct`)."""
    check_no_legacy_keys(state)
    args = (state,) if batch is None else (state, batch)
    out = jax.eval_shape(train_step, *args)
    new_state, metrics = _state_and_metrics(out, state)
    _check_same_state(new_state, state)
    check_metrics(metrics, "train_step")
    return metrics


def check_eval_step(eval_step: Callable, state: Any, batch: Any = None) -> None:
    """Trace `eval_step(state[, batch])` once and check it returns a dict of scalars."""
    args = (state,) if batch is None else (state, batch)
    check_metrics(jax.eval_shape(eval_step, *args), "eval_step")


def check_metrics(metrics: Any, where: str) -> None:
    """Refuse metrics that are not a flat dict of scalars (what logs, monitors and manifests read)."""
    if not isinstance(metrics, Mapping):
        raise TaskContractError(
            f'{where} returned metrics as {_kind(metrics)}; return a dict of scalars, e.g. {{"loss": loss}}'
        )
    for name, value in metrics.items():
        shape = getattr(value, "shape", None)
        if not isinstance(name, str) or shape is None:
            raise TaskContractError(
                f"{where}'s metrics[{name!r}] is {_kind(value)}; metrics map names (str) to scalar arrays, "
                f'e.g. {{"loss": loss}} (flatten a nested dict as {{"a/b": ...}})'
            )
        if shape != ():
            raise TaskContractError(
                f"{where}'s metrics[{name!r}] has shape {tuple(shape)}; return a scalar (e.g. {name}.mean())"
            )


def _kind(value: Any) -> str:
    shape = getattr(value, "shape", None)
    return f"an array of shape {tuple(shape)}" if shape is not None else f"a {type(value).__name__}"


def _state_and_metrics(out: Any, state: Any) -> tuple[Any, Any]:
    same = lambda tree: jax.tree.structure(tree) == jax.tree.structure(state)
    if not isinstance(out, tuple) or len(out) != 2:
        if same(out):
            raise TaskContractError(
                'train_step returned only the state; return (state, metrics), e.g. `return state, {"loss": loss}`'
            )
        raise TaskContractError(
            f"train_step returned a {type(out).__name__}; return (state, metrics), e.g. "
            '`return state, {"loss": loss}`'
        )
    first, second = out
    if not same(first) and same(second) and isinstance(first, Mapping):
        raise TaskContractError("train_step returned (metrics, state); return (state, metrics)")
    return first, second


def _check_same_state(new_state: Any, state: Any) -> None:
    try:
        chex.assert_trees_all_equal_structs(new_state, state)
    except AssertionError:
        raise TaskContractError(
            f"train_step returned a state of another structure ({jax.tree.structure(new_state)} instead of "
            f"{jax.tree.structure(state)}); return the state it was given, updated (state.replace(...))"
        ) from None
    given = jax.eval_shape(lambda tree: tree, state)  # as jit sees it: Python numbers become int32/float32
    try:
        chex.assert_trees_all_equal_shapes_and_dtypes(new_state, given)
    except AssertionError as err:
        raise TaskContractError(
            f"train_step changes the state ({chex_detail(err)}); each leaf must keep its shape and dtype "
            "(cast back, e.g. x.astype(old.dtype))"
        ) from None


def chex_detail(err: AssertionError) -> str:
    """A chex assertion message without its `[Chex] Assertion ... failed:` prefix, on one line."""
    return " ".join(str(err).split("failed:", 1)[-1].split()).rstrip(".")
