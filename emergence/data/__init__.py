"""Host data: batches from any iterable or Grain, stacked for fused calls, prefetched to the device, resumable.

- `BatchSource(data, max_epochs=...)`: one batch at a time, counting epochs, with a
  JSON `position()` for the checkpoint and `restore(position)` (source.py);
- `Prefetcher(source, steps_per_call=K)`: groups of K batches checked, stacked and put
  on the device on a worker thread, each with the position after it (prefetch.py);
- `BatchPlacement(mesh)`: where a batch goes, split along its batch axis on a mesh
  (placement.py); `steps_over_batches(train_step, K)`: the fused call over a stack (fused.py);
- `TrainFeed(data, steps_per_call=K, max_epochs=...)`: all of it as a loop sees it: the
  next call's batches, and a JSON `state_dict()` that resumes exactly (feed.py);
- `evaluate_over(eval_call, state, val_data)`: metrics over a whole finite dataset,
  weighted by batch size (evaluation.py).

docs/your_data.md shows a real dataset through Grain, epochs and resume mid-epoch.
"""

from emergence.data.errors import BatchChangedError, DataError, DataResumeError
from emergence.data.evaluation import evaluate_over
from emergence.data.feed import TrainFeed
from emergence.data.fused import steps_over_batches
from emergence.data.placement import BatchPlacement
from emergence.data.prefetch import Prefetcher, Prepared
from emergence.data.source import START, BatchSource, Position

__all__ = [
    "START",
    "BatchChangedError",
    "BatchPlacement",
    "BatchSource",
    "DataError",
    "DataResumeError",
    "Position",
    "Prefetcher",
    "Prepared",
    "TrainFeed",
    "evaluate_over",
    "steps_over_batches",
]
