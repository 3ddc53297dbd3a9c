"""emergence: a Lightning-style training loop for JAX that survives preemptible GPUs."""
from emergence.state import TrainState
from emergence.task import Task

__all__ = ["TrainState", "Task"]
__version__ = "0.1.0"
