"""Pytrees as flat `{leaf path: host array}` dicts, and back, with typed PRNG keys.

Any pytree is a state: our `TrainState`, a flax `train_state.TrainState` subclass, an
NNX `State`, a dict. A leaf that is not yet a JAX array (flax's `TrainState.create`
makes `step` the Python int 0; a task may keep numpy arrays) is stored and checked as
what it becomes inside `jit` (`jax.typeof`: `0` is a weakly typed int32, a float64
numpy array float32 without x64), and restored as that, so a resumed run compiles the
same program as the run that never stopped.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from emergence.checkpoint.format import _DTYPES as STORABLE_DTYPES
from emergence.errors import EmergenceError, IncompatibleCheckpointError

_STORABLE_HINT = ("float", "int", "uint", "bool", "bfloat16")


class UnstorableLeafError(EmergenceError, TypeError):
    """A state leaf that a checkpoint cannot hold (not an array, or a dtype safetensors lacks)."""


def _key_name(key: Any) -> str:
    for attr in ("key", "name", "idx"):
        if hasattr(key, attr):
            return str(getattr(key, attr))
    return str(key)


def leaf_path(path: tuple) -> str:
    """`('params', 'Dense_0', 'kernel')`-style key path as `params/Dense_0/kernel`."""
    return "/".join(_key_name(k) for k in path)


def is_typed_key(leaf: Any) -> bool:
    """True for new-style typed PRNG keys (`jax.random.key`), concrete or abstract."""
    dtype = getattr(leaf, "dtype", None)
    return dtype is not None and jnp.issubdtype(dtype, jax.dtypes.prng_key)


def leaf_type(name: str, leaf: Any) -> Any:
    """What `leaf` is inside `jit` (shape, dtype, weak type); a leaf a checkpoint cannot hold is a one-line error."""
    try:
        aval = jax.typeof(leaf)
    except TypeError:
        raise UnstorableLeafError(
            f"state leaf '{name}' is a {type(leaf).__name__}, not an array, so no checkpoint can hold it; make it an "
            "array, or keep it out of the state (flax: struct.field(pytree_node=False), or on the task)"
        ) from None
    if not is_typed_key(aval) and np.dtype(aval.dtype).name not in STORABLE_DTYPES:
        raise UnstorableLeafError(
            f"state leaf '{name}' has dtype {aval.dtype}, which safetensors cannot store; keep it as "
            f"{' / '.join(_STORABLE_HINT)} (e.g. a complex array as its real and imaginary parts)"
        )
    return aval


def check_storable(tree: Any) -> None:
    """Raise `UnstorableLeafError` naming the first leaf of `tree` a checkpoint cannot hold (cheap: no copies)."""
    for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]:
        leaf_type(leaf_path(path), leaf)


def flatten_to_host(tree: Any) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """Every leaf as a host numpy array keyed by its path, safe to keep while the tree is donated.

    Typed PRNG keys are stored as their key data; the second dict maps those paths to
    the key implementation so `unflatten_into` can rebuild them. All device leaves go
    through one `jax.device_get`, which starts every device→host transfer before
    waiting for any. On accelerators that is a copy; on the CPU backend it is a
    read-only view of the buffer, which is as safe and costs nothing: JAX never donates
    a buffer a live numpy view refers to (the next call writes a new one), so the
    snapshot keeps the values it had. Host leaves (Python scalars, numpy arrays) are
    copied as the array they become inside `jit`. A leaf no checkpoint can hold is an
    `UnstorableLeafError` naming it, before anything is written.
    """
    names: list[str] = []
    leaves: list[Any] = []
    typed_keys: dict[str, str] = {}
    for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]:
        name = leaf_path(path)
        in_jit = leaf_type(name, leaf)
        if is_typed_key(leaf):
            typed_keys[name] = str(jax.random.key_impl(leaf))
            leaf = jax.random.key_data(leaf)
        names.append(name)
        leaves.append(leaf if isinstance(leaf, jax.Array) else np.array(leaf, dtype=in_jit.dtype, copy=True))
    return dict(zip(names, (np.asarray(a) for a in jax.device_get(leaves)))), typed_keys


def _describe(shape: tuple, dtype: Any) -> str:
    return f"{dtype}{list(shape)}"


def _key_impl_name(key: Any, default: str | None) -> str | None:
    try:
        return str(jax.random.key_impl(key))
    except (TypeError, AttributeError):  # abstract keys (eval_shape) carry no impl object
        return default


def _check_leaf(name: str, template: Any, stored: np.ndarray, impl: str | None) -> None:
    if is_typed_key(template):
        want_impl = _key_impl_name(template, default=impl)
        if impl is None:
            raise IncompatibleCheckpointError(
                f"leaf '{name}': the task has a typed PRNG key, the checkpoint a plain "
                f"{_describe(stored.shape, stored.dtype)} array; use jax.random.key, not PRNGKey"
            )
        if want_impl != impl or tuple(stored.shape[: len(template.shape)]) != tuple(template.shape):
            raise IncompatibleCheckpointError(
                f"leaf '{name}': task has key<{want_impl}>{list(template.shape)}, "
                f"checkpoint has key<{impl}> data {list(stored.shape)}"
            )
        return
    want = leaf_type(name, template)
    want_dtype = np.dtype(want.dtype)
    if tuple(stored.shape) != tuple(want.shape) or stored.dtype != want_dtype:
        raise IncompatibleCheckpointError(
            f"leaf '{name}': task has {_describe(want.shape, want_dtype)}, "
            f"checkpoint has {_describe(stored.shape, stored.dtype)}"
        )


def unflatten_into(template: Any, arrays: dict[str, np.ndarray], typed_keys: dict[str, str]) -> Any:
    """Rebuild `template`'s tree from stored arrays, checking each leaf.

    Any missing or extra leaf, or a shape or dtype that differs, is an
    `IncompatibleCheckpointError` naming the leaf path and both values. Arrays are
    placed like the template's leaves (its sharding when it has one).
    """
    flat, treedef = jax.tree_util.tree_flatten_with_path(template)
    names = [leaf_path(path) for path, _ in flat]
    missing = [n for n in names if n not in arrays]
    if missing:
        raise IncompatibleCheckpointError(
            f"leaf '{missing[0]}' of the task's state is not in the checkpoint "
            f"({len(missing)} missing); the checkpoint was written for a different model"
        )
    extra = sorted(set(arrays) - set(names))
    if extra:
        raise IncompatibleCheckpointError(
            f"checkpoint leaf '{extra[0]}' has no place in the task's state "
            f"({len(extra)} extra); the checkpoint was written for a different model"
        )
    leaves = []
    for name, (_, template_leaf) in zip(names, flat):
        stored = arrays[name]
        _check_leaf(name, template_leaf, stored, typed_keys.get(name))
        leaves.append(_placed_like(template_leaf, stored, typed_keys.get(name)))
    return jax.tree_util.tree_unflatten(treedef, leaves)


def _placed_like(template: Any, stored: np.ndarray, impl: str | None) -> Any:
    """`stored` as a leaf like `template`: on its sharding, a typed key if it was one, weakly typed if it was.

    A weakly typed leaf (flax's `step=0`, what `jit` made of it, or its `ManySeeds`
    stack) comes back weakly typed, so the resumed run's `jit` sees the same input
    types and compiles the same program: resume stays bitwise.
    """
    value = jax.device_put(stored, getattr(template, "sharding", None))
    if impl is not None:
        return jax.random.wrap_key_data(value, impl=impl)
    return weakly_typed(value) if getattr(jax.typeof(template), "weak_type", False) else value


def weakly_typed(value: jax.Array) -> jax.Array:
    """`value` marked weakly typed, as JAX marks Python scalars (JAX has no public call for it; unmarked if gone)."""
    try:
        from jax._src.lax.lax import _convert_element_type
    except ImportError:  # a later JAX: the values are the same, the first resumed call retraces
        return value
    return _convert_element_type(value, value.dtype, weak_type=True)


def fold_in_keys(tree: Any, data: int) -> Any:
    """`tree` with `data` folded into every typed PRNG key leaf, whatever the state's shape.

    For a fresh random stream after a rollback in any state: emergence's `rng`, a flax
    `TrainState`'s dropout `key`, an NNX `Rngs` stream's `key`, a `ManySeeds` stack of
    keys (each key of the stack gets its own fold). Other leaves are returned as they are.
    """

    def fold(leaf: Any) -> Any:
        if not is_typed_key(leaf):
            return leaf
        one = lambda key: jax.random.fold_in(key, data)
        for _ in range(leaf.ndim):
            one = jax.vmap(one)
        return one(leaf)

    return jax.tree.map(fold, tree)


def fold_rng(state: Any, data: int) -> Any:
    """`state` with `data` folded into every typed PRNG key it holds (`fold_in_keys`), else into a raw `rng`.

    Typed keys anywhere: our `rng`, a flax `TrainState`'s `key` field, NNX `Rngs` streams,
    a `ManySeeds` stack. A state without one may still carry a raw uint32 key as an `rng`
    field or an "rng" key (the old `jax.random.PRNGKey`), which gets the fold instead.
    """
    if any(is_typed_key(leaf) for leaf in jax.tree.leaves(state)):
        return fold_in_keys(state, data)
    if hasattr(state, "rng") and hasattr(state, "replace"):
        return state.replace(rng=jax.random.fold_in(state.rng, data))
    if isinstance(state, dict) and "rng" in state:
        return {**state, "rng": jax.random.fold_in(state["rng"], data)}
    raise ValueError(
        "cannot fold a fresh key into this state: it holds no typed PRNG key (jax.random.key) "
        "and no `rng` field or 'rng' key; keep its keys in the state"
    )
