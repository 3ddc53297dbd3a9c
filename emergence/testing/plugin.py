"""The pytest plugin of the callback test kit, registered through the `pytest11` entry point.

Installing emergence makes these fixtures available in every test (nothing is imported
from JAX until a test asks for `tiny_trainer` or `scenario`):

- `fake_clock`: a `FakeClock` at 1000.0 s; pass it as your callback's `clock=`.
- `run_dir`: a fresh directory for one run (`<tmp_path>/run`, not yet created).
- `tiny_trainer`: a function `tiny_trainer(callbacks, **trainer_args)` returning a
  `Trainer` of `toy_task()` for 10 steps in `run_dir` (call `.fit()` on it).
- `scenario`: a `Scenario` in `run_dir` with `fake_clock` as its clock; script events
  and `run()` your callbacks (see `emergence.testing.scenario`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest


@pytest.fixture
def fake_clock() -> Any:
    """A `FakeClock` that moves only when the test says so."""
    from emergence.testing.clock import FakeClock

    return FakeClock()


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    """A fresh run directory under the test's `tmp_path`."""
    return tmp_path / "run"


@pytest.fixture
def tiny_trainer(run_dir: Path) -> Any:
    """`tiny_trainer(callbacks, **trainer_args)`: a Trainer of the toy task, 10 steps, in `run_dir`."""
    from emergence.testing.tasks import toy_task
    from emergence.trainer import Trainer

    def make(callbacks: Any = (), **trainer_args: Any) -> Trainer:
        settings = {"max_steps": 10, "run_dir": run_dir, **trainer_args}
        return Trainer(toy_task(), list(callbacks), **settings)

    return make


@pytest.fixture
def scenario(run_dir: Path, fake_clock: Any) -> Any:
    """A `Scenario` of 20 steps in `run_dir`, driven by `fake_clock`."""
    from emergence.testing.scenario import Scenario

    return Scenario(max_steps=20, run_dir=run_dir, clock=fake_clock)
