"""docs/your_model.md: every example it shows is the file it names, and every run it shows runs."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DOC = (REPO / "docs" / "your_model.md").read_text()
BLOCKS = re.findall(r"```python\n(.*?)```", DOC, re.S)
FILES = [block for block in BLOCKS if block.startswith("# file: ")]
RUNS = [block for block in BLOCKS if "Trainer(" in block and not block.startswith("# file: ")]


def test_the_doc_shows_each_state_style_and_how_to_run_it():
    assert [block.splitlines()[0] for block in FILES] == [
        "# file: emergence/examples/flax_linen.py",
        "# file: emergence/examples/flax_nnx.py",
        "# file: emergence/examples/plain_dict.py",
    ]
    assert len(RUNS) == 3


@pytest.mark.parametrize("block", FILES, ids=lambda b: b.splitlines()[0].split("/")[-1])
def test_each_example_in_the_doc_is_the_file_it_names(block):
    header, _, code = block.partition("\n")
    assert code == (REPO / header.removeprefix("# file: ")).read_text()


@pytest.mark.parametrize("block", RUNS, ids=lambda b: re.search(r"import (\w+)", b.splitlines()[2]).group(1))
def test_each_run_in_the_doc_trains_and_checkpoints(block, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    short = block.replace("max_steps=2000", "max_steps=4").replace("every_n_steps=500", "every_n_steps=2")
    exec(compile(short, "docs/your_model.md", "exec"), {})
    saved = sorted(p.name for p in tmp_path.glob("runs/*/checkpoints/*.safetensors"))
    assert saved and all(name.startswith(("step_", "final_")) for name in saved), saved
