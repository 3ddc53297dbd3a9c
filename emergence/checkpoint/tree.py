"""Pytrees as flat `{leaf path: host array}` dicts, and back, with typed PRNG keys."""
from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from emergence.errors import IncompatibleCheckpointError


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


def flatten_to_host(tree: Any) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """Every leaf as a host numpy array keyed by its path, safe to keep while the tree is donated.

    Typed PRNG keys are stored as their key data; the second dict maps those paths to
    the key implementation so `unflatten_into` can rebuild them. All device leaves go
    through one `jax.device_get`, which starts every device→host transfer before
    waiting for any. On accelerators that is a copy; on the CPU backend it is a
    read-only view of the buffer, which is as safe and costs nothing: JAX never donates
    a buffer a live numpy view refers to (the next call writes a new one), so the
    snapshot keeps the values it had. Host (numpy) leaves are copied.
    """
    names: list[str] = []
    leaves: list[Any] = []
    typed_keys: dict[str, str] = {}
    for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]:
        name = leaf_path(path)
        if is_typed_key(leaf):
            typed_keys[name] = str(jax.random.key_impl(leaf))
            leaf = jax.random.key_data(leaf)
        names.append(name)
        leaves.append(leaf if isinstance(leaf, jax.Array) else np.array(leaf, copy=True))
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
                f"{_describe(stored.shape, stored.dtype)} array; use jax.random.key, not PRNGKey")
        if want_impl != impl or tuple(stored.shape[: len(template.shape)]) != tuple(template.shape):
            raise IncompatibleCheckpointError(
                f"leaf '{name}': task has key<{want_impl}>{list(template.shape)}, "
                f"checkpoint has key<{impl}> data {list(stored.shape)}")
        return
    want_dtype = np.dtype(template.dtype)
    if tuple(stored.shape) != tuple(template.shape) or stored.dtype != want_dtype:
        raise IncompatibleCheckpointError(
            f"leaf '{name}': task has {_describe(template.shape, want_dtype)}, "
            f"checkpoint has {_describe(stored.shape, stored.dtype)}")


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
            f"({len(missing)} missing); the checkpoint was written for a different model")
    extra = sorted(set(arrays) - set(names))
    if extra:
        raise IncompatibleCheckpointError(
            f"checkpoint leaf '{extra[0]}' has no place in the task's state "
            f"({len(extra)} extra); the checkpoint was written for a different model")
    leaves = []
    for name, (_, template_leaf) in zip(names, flat):
        stored = arrays[name]
        _check_leaf(name, template_leaf, stored, typed_keys.get(name))
        sharding = getattr(template_leaf, "sharding", None)
        value = jax.device_put(stored, sharding)
        if name in typed_keys:
            value = jax.random.wrap_key_data(value, impl=typed_keys[name])
        leaves.append(value)
    return jax.tree_util.tree_unflatten(treedef, leaves)
