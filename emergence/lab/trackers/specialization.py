"""SpecializationTracker: do agents come to behave (and be built) differently from each other?

Fed on the host with per-agent values already fetched (see `TrackerCallback`):

- `action_counts` (…, agents, actions): how often each agent took each action over the
  sampled interval; every row of the flattened leading axes is one agent.
- `movement` (…, agents), optional: cells each agent moved over the interval.
- `agent_params`, optional: each agent's own weights (evolution), an array or a
  pytree of arrays whose leading axis is the agent; `alive` (agents,), optional, picks
  whose weights count (default: all rows).

From them, per update:

- the *behaviour profile* (kept for the latest update): each agent's action
  distribution (its counts over its total) and movement rate (movement / actions);
- the *specialisation index* `SI = I(agent; action) / H(action)`: the mutual
  information between who acts and what is done, over the population's action
  entropy, from the pooled counts of the agents that acted. 0 when every agent has the
  same action distribution, 1 when each agent always takes one action and agents
  differ; 0 by definition when the whole population takes one action. (From finite
  counts it is biased upward: compare runs sampled at the same interval.)
- the *weight divergence*: the RMS Euclidean distance of the agents' flattened weight
  vectors to their mean (pairwise mean squared distance = 2 × its square).

Entropies are in nats. Each scalar is one series of the history.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from emergence.lab.trackers.history import SeriesHistory

DEFAULT_KEYS = {
    "action_counts": "action_counts",
    "movement": "movement",
    "agent_params": "agent_params",
    "alive": "alive",
}


def entropy(distribution: np.ndarray) -> np.ndarray:
    """Shannon entropy (nats) along the last axis of non-negative rows summing to 1 (0 log 0 = 0)."""
    logs = np.log(np.where(distribution > 0, distribution, 1.0))
    return -(distribution * logs).sum(axis=-1)


def specialization_index(counts: np.ndarray) -> dict[str, float] | None:
    """`specialization_index`, `action_entropy` and `conditional_entropy` of (agents, actions) counts; None if empty."""
    counts = np.asarray(counts, dtype=np.float64)
    counts = counts[counts.sum(axis=1) > 0]
    total = counts.sum()
    if total <= 0:
        return None
    per_agent = counts.sum(axis=1)
    pooled = float(entropy(counts.sum(axis=0) / total))
    conditional = float((per_agent / total) @ entropy(counts / per_agent[:, None]))
    index = 0.0 if pooled <= 0 else (pooled - conditional) / pooled
    return {"specialization_index": index, "action_entropy": pooled, "conditional_entropy": conditional}


def weight_divergence(weights: np.ndarray) -> float | None:
    """RMS distance of (agents, parameters) rows to their mean; None for fewer than two agents."""
    if weights.shape[0] < 2:
        return None
    centred = weights - weights.mean(axis=0)
    return float(np.sqrt((centred**2).sum(axis=1).mean()))


def _leaves(tree: Any) -> list[np.ndarray]:
    if isinstance(tree, Mapping):
        return [leaf for key in sorted(tree) for leaf in _leaves(tree[key])]
    if isinstance(tree, (list, tuple)):
        return [leaf for item in tree for leaf in _leaves(item)]
    return [np.asarray(tree)]


def flat_agent_weights(tree: Any) -> np.ndarray:
    """(agents, parameters) float64: every leaf's agent rows flattened and concatenated."""
    leaves = _leaves(tree)
    agents = leaves[0].shape[0]
    return np.concatenate([leaf.reshape(agents, -1).astype(np.float64) for leaf in leaves], axis=1)


class SpecializationTracker:
    """Per-agent behaviour profiles, the specialisation index and weight divergence over time.

    Args:
        keys: where each input is found in the values (see `DEFAULT_KEYS`).
        name: the key of this tracker's state inside `TrackerCallback`'s state.
    """

    def __init__(self, keys: Mapping[str, str] | None = None, *, name: str = "specialization") -> None:
        unknown = set(keys or {}) - set(DEFAULT_KEYS)
        if unknown:
            raise ValueError(f"unknown SpecializationTracker keys {sorted(unknown)}; use {sorted(DEFAULT_KEYS)}")
        self.keys = {**DEFAULT_KEYS, **(keys or {})}
        self.name = name
        self.history = SeriesHistory()
        self.profile: dict[str, Any] | None = None

    def update(self, step: int, values: Mapping[str, Any]) -> dict[str, float]:
        """Record one sample; return the scalars it added to the history."""
        if self.keys["action_counts"] not in values:
            raise KeyError(
                f"{self.name}: no {self.keys['action_counts']!r} in the values ({sorted(values)}); "
                f"the task must report per-agent action counts, or pass keys={{'action_counts': ...}}"
            )
        counts = np.asarray(values[self.keys["action_counts"]], dtype=np.float64)
        counts = counts.reshape(-1, counts.shape[-1])
        scalars = {**(specialization_index(counts) or {}), "active_agents": float((counts.sum(axis=1) > 0).sum())}
        movement = self._movement_rate(values, counts)
        if movement is not None:
            acted = counts.sum(axis=1) > 0
            scalars["movement_rate"] = float(movement[acted].mean()) if acted.any() else float("nan")
        divergence = self._divergence(values)
        if divergence is not None:
            scalars["weight_divergence"] = divergence
        stored = {name: value for name, value in scalars.items() if self.history.append(name, step, value)}
        self.profile = {
            "step": int(step),
            "action_distribution": _distribution(counts).tolist(),
            "movement_rate": None if movement is None else movement.tolist(),
        }
        return stored

    def _movement_rate(self, values: Mapping[str, Any], counts: np.ndarray) -> np.ndarray | None:
        if self.keys["movement"] not in values:
            return None
        moved = np.asarray(values[self.keys["movement"]], dtype=np.float64).reshape(-1)
        actions = counts.sum(axis=1)
        return np.where(actions > 0, moved / np.where(actions > 0, actions, 1.0), 0.0)

    def _divergence(self, values: Mapping[str, Any]) -> float | None:
        if self.keys["agent_params"] not in values:
            return None
        weights = flat_agent_weights(values[self.keys["agent_params"]])
        if self.keys["alive"] in values:
            alive = np.asarray(values[self.keys["alive"]], dtype=bool).reshape(-1)
            if alive.shape[0] == weights.shape[0]:
                weights = weights[alive]
        return weight_divergence(weights)

    def state_dict(self) -> dict[str, Any]:
        """History and the latest profile as JSON-able data (exact through `json`)."""
        return {"keys": dict(self.keys), "history": self.history.state_dict(), "profile": self.profile}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue from a saved state."""
        self.history.load_state_dict(state["history"])
        self.profile = state.get("profile")


def _distribution(counts: np.ndarray) -> np.ndarray:
    totals = counts.sum(axis=1, keepdims=True)
    return np.where(totals > 0, counts / np.where(totals > 0, totals, 1.0), 0.0)
