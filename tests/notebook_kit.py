"""Running notebooks/kaggle_training.ipynb headless for the tests: a fake Kaggle root, papermill-style
parameters, an nbclient kernel sharing the tests' compile cache (for tests/test_notebook.py and the sweep
CLI test)."""

from __future__ import annotations

import os
import re
import signal
import threading
from pathlib import Path

import pytest

from tests.scripts.driver import COMPILE_CACHE, REPO

NOTEBOOK = REPO / "notebooks" / "kaggle_training.ipynb"
KERNEL = "alice/emergence-training"
"""The kernel id: its previous output is the one input a session resumes from (`input/<slug>`)."""
ENV_STEPS_PER_UPDATE = 8  # num_envs 2 x rollout_len 4
TINY = {
    "num_envs": 2,
    "num_food": 4,
    "save_interval": 16,
    "log_interval": 16,
    "track_interval": 16,
    "world": {"grid_size": 6, "max_agents": 4, "initial_agents": 2, "view_radius": 1},
    "ppo": {"rollout_len": 4, "num_minibatches": 1, "num_epochs": 1, "hidden_sizes": (8,)},
}
"""A 6x6 world of up to 4 agents, 2 worlds, 8 env steps per update; saves, logs and samples every 2 updates."""


class Executed:
    """One headless execution of the notebook: its cells' outputs and the fake Kaggle root."""

    def __init__(self, nb, root: Path) -> None:
        self.nb, self.root, self.working = nb, root, root / "working"

    def outputs(self, index: int) -> list:
        """The outputs of the notebook's code cell `index` (0-based; the injected parameters not counted)."""
        cells = [
            c
            for c in self.nb.cells
            if c.cell_type == "code" and "injected-parameters" not in c.metadata.get("tags", [])
        ]
        return cells[index].outputs

    def text(self, index: int) -> str:
        """Everything code cell `index` printed or displayed as text."""
        return "".join(out.get("text", "") or out.get("data", {}).get("text/plain", "") for out in self.outputs(index))

    def stopped(self) -> tuple[str, int]:
        """The train cell's last line: why it stopped and at which update."""
        found = re.search(r"stopped \((\S+)\) at update ([\d,]+) of", self.text(TRAIN))
        assert found, self.text(TRAIN)
        return found.group(1), int(found.group(2).replace(",", ""))


ENVIRONMENT, INSTALL, PARAMETERS, RESUME, TRAIN, RESULTS, FINALIZE = range(7)


def _with_parameters(nb, values: dict):
    """Insert an `injected-parameters` cell after the `parameters` cell, as papermill does."""
    import nbformat

    index = next(i for i, c in enumerate(nb.cells) if "parameters" in c.metadata.get("tags", []))
    source = "\n".join(f"{name} = {value!r}" for name, value in values.items())
    cell = nbformat.v4.new_code_cell(source, metadata={"tags": ["injected-parameters"]})
    nb.cells.insert(index + 1, cell)
    return nb


def execute_notebook(root: Path, interrupt_when=None, **parameters) -> Executed:
    """Run the notebook in a fresh python3 kernel with `EMERGENCE_KAGGLE_ROOT=root` and TINY + `parameters`.

    `interrupt_when(root)`: polled from a thread; once true, the kernel gets SIGINT (what
    Jupyter's interrupt button sends), once.
    """
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    nb = _with_parameters(nbformat.read(NOTEBOOK, as_version=4), {**TINY, **parameters})
    client = nbclient.NotebookClient(
        nb, timeout=120, kernel_name="python3", resources={"metadata": {"path": str(REPO)}}
    )
    env = {**COMPILE_CACHE, **os.environ, "EMERGENCE_KAGGLE_ROOT": str(root), "PYTHONPATH": str(REPO)}
    env.pop("KAGGLE_KERNEL_RUN_TYPE", None)
    done = threading.Event()
    watcher = threading.Thread(target=_interrupt, args=(client, root, interrupt_when, done), daemon=True)
    if interrupt_when is not None:
        watcher.start()
    try:
        client.execute(env=env)
    finally:
        done.set()
    return Executed(nb, root)


def _interrupt(client, root: Path, when, done: threading.Event) -> None:
    while not done.wait(0.05):
        process = getattr(getattr(getattr(client, "km", None), "provisioner", None), "process", None)
        if process is not None and when(root):
            os.kill(process.pid, signal.SIGINT)
            return


def fake_root(tmp_path: Path, name: str = "kaggle") -> Path:
    root = tmp_path / name
    (root / "working").mkdir(parents=True)
    (root / "input").mkdir()
    return root


def updates(count: int) -> int:
    """`count` updates as env steps (the notebook's unit)."""
    return count * ENV_STEPS_PER_UPDATE
