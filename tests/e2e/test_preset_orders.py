"""Order independence across real processes: SIGTERM, and SIGKILL + resume, with the Kaggle preset in three orders.

Each child is a JAX process (seconds to start and compile), so these run a sample: the
preset's own order, its reverse-like order 119 and order 57 of `tests.helpers.preset_orders`
(every decider before and after the checkpoint callback among them); every order runs in
process in tests/callbacks/test_order.py, SIGTERM included.
"""

from __future__ import annotations

import signal

import pytest

from emergence.checkpoint import read_checkpoint
from tests.helpers import assert_same_arrays, preset_orders
from tests.scripts.driver import Child
from tests.scripts.reference import assert_resume_is_exact, fit_here

pytestmark = pytest.mark.slow

ORDERS = [preset_orders()[i] for i in (0, 57, 119)]
RUN_FILES = ["SHA256SUMS", "metrics.csv", "outputs.zip", "progress.json", "summary.json"]


@pytest.fixture(autouse=True)
def kaggle_root(monkeypatch, tmp_path):
    monkeypatch.setenv("EMERGENCE_KAGGLE_ROOT", str(tmp_path / "kaggle"))


@pytest.mark.parametrize("order", ORDERS, ids=lambda order: ",".join(key[:4] for key in order))
def test_sigterm_saves_the_last_step_and_exits_143_in_any_order(tmp_path, order):
    run_dir = tmp_path / "run"
    child = Child(run_dir, 100_000, "--kaggle-order", ",".join(order))
    child.wait_for("step 20")
    child.send(signal.SIGTERM)
    done = child.finish()
    assert done.returncode == 143, done.stderr
    last = done.steps()[-1]
    emergency = run_dir / "checkpoints" / f"emergency_step_{last}.safetensors"
    assert read_checkpoint(emergency).manifest["reason"] == "signal:SIGTERM"
    assert done.saved()[-1] == emergency.name
    assert all((run_dir / name).exists() for name in RUN_FILES)
    assert_resume_is_exact(run_dir, tmp_path, last + 5)


@pytest.mark.parametrize("order", ORDERS, ids=lambda order: ",".join(key[:4] for key in order))
def test_sigkill_then_resume_ends_as_a_straight_run_in_any_order(tmp_path, order):
    run_dir = tmp_path / "run"
    child = Child(run_dir, 100_000, "--kaggle-order", ",".join(order))
    child.wait_for("saved step_10")
    child.kill()
    resumed = Child(run_dir, 30, "--kaggle-order", ",".join(order)).finish()
    assert resumed.returncode == 0, resumed.stderr
    assert resumed.steps()[0] > 10 and resumed.saved()[-1] == "final_step_30.safetensors"
    straight = fit_here(tmp_path / "straight", 30, resume=None)
    assert_same_arrays(straight.last_checkpoint.path, run_dir / "checkpoints" / "final_step_30.safetensors")
