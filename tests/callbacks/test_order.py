"""Order independence: every order of the Kaggle preset's callbacks ends a run with the same files, stop and exit code.

Callbacks only request saves and stops; the Trainer carries them out at one save point
after all of a call's hooks and writes the end checkpoint itself, so the list order cannot
matter. In process, for max_steps, a time budget, SIGTERM (a real signal) and an
exception: 12 orders by default, all 120 of `tests.helpers.preset_orders` when slow tests
run (see there why not all 40,320). SIGKILL + resume runs in subprocesses: tests/e2e.
"""

from __future__ import annotations

import re
import signal

import pytest

import emergence.callbacks.artifacts as artifacts
from emergence.testing import Scenario, toy_task
from tests.helpers import kaggle_preset, preset_orders

TASK = toy_task()  # one task: compiled once for every order

CASES = {
    "max_steps": lambda s: s,
    "time_budget": lambda s: s.but(max_steps=500),
    "sigterm": lambda s: s.signal_at(13, signal.SIGTERM),
    "exception": lambda s: s.raise_at(13),
}
EXPECTED = {
    "max_steps": ("max_steps", 0, ["final_step_30", "step_20", "step_25", "step_30"]),
    "time_budget": ("time_budget", 0, "final_step_N and the newest three periodic files up to N"),
    "sigterm": ("signal:SIGTERM", 143, ["emergency_step_13", "step_10", "step_5"]),
    "exception": ("exception:RuntimeError", 1, ["emergency_step_13", "step_10", "step_5"]),
}
OTHER_FILES = [
    "SHA256SUMS",
    "checkpoints/latest.json",
    "checkpoints/run.json",
    "metrics.csv",
    "outputs.zip",
    "progress.json",
    "run.lock",
    "summary.json",
    "tensorboard/events",
    "training_curves.png",
]


@pytest.fixture(autouse=True)
def quick_plots(monkeypatch, tmp_path):
    """Drawing the PNG takes ~1 s of matplotlib per export (its content is test_artifacts' business)."""
    monkeypatch.setattr(artifacts, "write_training_curves", lambda csv, out, resumed, title: out.write_bytes(b"png"))
    monkeypatch.setenv("EMERGENCE_KAGGLE_ROOT", str(tmp_path / "kaggle"))


def _outcome(case: str, order: tuple[str, ...], run_dir) -> tuple:
    scenario = CASES[case](Scenario(max_steps=30, run_dir=run_dir, task=TASK, resume=None))
    budget = 50.0 if case == "time_budget" else 3600.0  # the scenario's clock moves 1 s per call
    outcome = scenario.run(lambda clock: kaggle_preset(order, run_dir, clock=clock, budget=budget))
    if case != "exception":
        assert outcome.exception is None, outcome.exception
    checkpoints = sorted(name.removesuffix(".safetensors") for name in outcome.checkpoints)
    if case == "time_budget":  # the stop step rests on measured call times: 50 s budget - 10 s margin, ~1 s calls
        final = next(int(name.split("_")[-1]) for name in checkpoints if name.startswith("final_step_"))
        assert 34 <= final <= 42
        periodic = [f"step_{step}" for step in range(5, final + 1, 5)][-3:]
        assert checkpoints == sorted([f"final_step_{final}", *periodic])
        checkpoints = EXPECTED["time_budget"][2]
    others = sorted({re.sub(r"events\..*", "events", f) for f in outcome.files if not f.endswith(".safetensors")})
    assert others == OTHER_FILES
    return str(outcome.stop_reason), outcome.exit_code, checkpoints


@pytest.mark.parametrize("case", CASES)
def test_a_sample_of_orders_of_the_kaggle_preset_ends_alike(case, tmp_path):
    for i, order in enumerate(preset_orders(every=10)):
        assert _outcome(case, order, tmp_path / str(i)) == EXPECTED[case], order


@pytest.mark.slow
@pytest.mark.parametrize("case", CASES)
def test_every_order_of_the_kaggle_preset_ends_alike(case, tmp_path):
    for i, order in enumerate(preset_orders()):
        assert _outcome(case, order, tmp_path / str(i)) == EXPECTED[case], order
