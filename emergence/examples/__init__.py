"""Small example tasks: what a Task looks like, used by the README and the tests."""
from emergence.examples.regression import RegressionConfig, RegressionTask

__all__ = ["RegressionConfig", "RegressionTask"]
