"""docs/your_data.md: the example it shows is the file it names, and the stop-and-resume it shows is bitwise."""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
DOC = (REPO / "docs" / "your_data.md").read_text()
BLOCKS = re.findall(r"```python\n(.*?)```", DOC, re.S)


def test_the_example_in_the_doc_is_the_file_it_names():
    (block,) = [b for b in BLOCKS if b.startswith("# file: ")]
    header, _, code = block.partition("\n")
    assert code == (REPO / header.removeprefix("# file: ")).read_text()


def test_the_stop_and_resume_in_the_doc_runs_and_prints_the_position_it_shows(capsys):
    (block,) = [b for b in BLOCKS if "stop_after_calls=5" in b]
    exec(compile(block, "docs/your_data.md", "exec"), {})
    shown = re.search(r"# (\{'epoch'.*\})", block).group(1)
    assert capsys.readouterr().out.strip() == shown
