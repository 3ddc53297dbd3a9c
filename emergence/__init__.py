"""emergence: a Lightning-style training loop for JAX that survives preemptible GPUs."""
from emergence.callbacks.base import Callback
from emergence.state import TrainState
from emergence.task import Task
from emergence.trainer import Trainer

__all__ = ["Callback", "TrainState", "Task", "Trainer"]
__version__ = "0.1.0"
