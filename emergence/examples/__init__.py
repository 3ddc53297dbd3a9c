"""Small example tasks: what a Task looks like, one per kind of state; used by the README, docs and tests.

- `RegressionTask`: emergence's own `TrainState` (regression.py).
- `LinenTask`: a flax `train_state.TrainState` subclass with `batch_stats` and a dropout key (flax_linen.py).
- `flax_nnx.regression()`: flax NNX modules through `emergence.nnx.NNXTask`; `NNXSplitTask`: the same,
  split into graphdef + state by hand (flax_nnx.py).
- `DictTask`: a plain dict of arrays (plain_dict.py).

Only `RegressionTask` loads with this package; import the others from their modules.
"""

from emergence.examples.regression import RegressionConfig, RegressionTask

__all__ = ["RegressionConfig", "RegressionTask"]
