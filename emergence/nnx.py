"""NNXTask: train flax NNX modules as they are written, mutated in place, with the Trainer's pure loop.

The Trainer carries one pytree from step to step; NNX code carries objects. `NNXTask`
is the bridge NNX's own docs call the functional API: the modules are split once into
a static `graphdef` and a `State` pytree (that State is the run's state: checkpointed,
resumed bitwise, placed on devices, stacked by `ManySeeds`), and each jitted step
merges them back, runs your step, and splits again.

    def create(rngs):                       # a fresh run from the Trainer's key
        model = MLP(rngs=rngs)
        return {"model": model, "optimizer": nnx.Optimizer(model, optax.adam(1e-3), wrt=nnx.Param),
                "rngs": rngs}

    def step(m):                            # mutate in place, return metrics
        loss, grads = nnx.value_and_grad(loss_fn)(m["model"], batch(m["rngs"]))
        m["optimizer"].update(m["model"], grads)
        return {"loss": loss}

    Trainer(callbacks=..., max_steps=...).fit(NNXTask(create, step))

Instead of `create` you may hand the modules themselves (`NNXTask((model, optimizer),
step)`): the run then starts from them whatever the Trainer's seed, so `ManySeeds`
needs `create`. Anything the step reads that is not an NNX Variable (a Python int
counter on a module) is static: it does not change between steps and is not saved.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
from flax import nnx

Metrics = dict[str, jax.Array]


def _holds_nnx_objects(value: Any) -> bool:
    """True for an NNX graph node (module, optimizer, Rngs) or a tuple/list/dict of them."""
    if isinstance(value, (tuple, list)):
        return bool(value) and all(_holds_nnx_objects(v) for v in value)
    if isinstance(value, dict):
        return bool(value) and all(_holds_nnx_objects(v) for v in value.values())
    return nnx.graph.is_graph_node(value)


class NNXTask:
    """A Task from NNX modules: `create(rngs) -> modules` (or the modules), `step(modules) -> metrics`.

    Args:
        create: a function of an `nnx.Rngs` (seeded from the Trainer's key) returning the
            modules to train: one module, or a tuple/list/dict of modules, optimizers and
            `nnx.Rngs`. Or those modules themselves, already built.
        step: one train step; mutates the modules (`optimizer.update(model, grads)`) and
            returns a dict of scalar metrics. Runs under `jax.jit`.
        evaluate: optional; like `step` but must not update parameters; its metrics feed `monitor`.
        name: run directory name (`runs/<name>`).
        config: JSON-able settings saved in every checkpoint and compared on resume.
    """

    def __init__(
        self,
        create: Callable[[nnx.Rngs], Any] | Any,
        step: Callable[[Any], Metrics],
        *,
        evaluate: Callable[[Any], Metrics] | None = None,
        name: str = "nnx",
        config: dict[str, Any] | None = None,
    ) -> None:
        if _holds_nnx_objects(create):
            self._given: tuple[Any, Any] | None = nnx.split(create)
            self._create = None
        elif callable(create):
            self._given, self._create = None, create
        else:
            raise TypeError(f"NNXTask needs a function rngs -> modules, or NNX modules; got {type(create).__name__}")
        if not callable(step):
            raise TypeError(f"NNXTask step must be a function modules -> metrics; got {type(step).__name__}")
        self._step, self._evaluate = step, evaluate
        self.name = name
        self._config = dict(config or {})
        self.graphdef = self._given[0] if self._given else nnx.split(nnx.eval_shape(lambda: create(nnx.Rngs(0))))[0]
        if evaluate is not None:
            self.eval_step = self._eval_step

    def config(self) -> dict[str, Any]:
        """The `config` given (empty by default)."""
        return dict(self._config)

    def init_state(self, rng: jax.Array) -> nnx.State:
        """The modules' State: built by `create(nnx.Rngs(rng))`, or the handed-in modules' own."""
        if self._given is not None:
            if isinstance(rng, jax.core.Tracer):  # ManySeeds vmaps this: every seed would start the same
                raise ValueError(
                    "NNXTask was handed built modules, so every seed would start from them alike; "
                    "give NNXTask a create(rngs) function to train many seeds"
                )
            return jax.tree.map(lambda leaf: leaf.copy(), self._given[1])  # copies: the Trainer donates its state
        return nnx.split(self._create(nnx.Rngs(rng)))[1]

    def modules(self, state: nnx.State) -> Any:
        """The live modules of `state` (e.g. `task.modules(trainer.state)` after `fit()`)."""
        return nnx.merge(self.graphdef, state)

    def train_step(self, state: nnx.State) -> tuple[nnx.State, Metrics]:
        """Merge, run `step` (which mutates the modules), split: pure, so the Trainer can jit and donate it."""
        modules = nnx.merge(self.graphdef, state)
        metrics = self._step(modules)
        return nnx.state(modules), metrics

    def _eval_step(self, state: nnx.State) -> Metrics:
        return self._evaluate(nnx.merge(self.graphdef, state))
