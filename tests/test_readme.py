"""The README's fifteen lines run as written (shorter, in a temporary run dir), and a second run resumes."""

from __future__ import annotations

import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def _example() -> str:
    return re.search(r"```python\n(.*?)```", README.read_text(), re.S).group(1)


def test_the_readme_example_trains_in_lightnings_shape_and_resumes(tmp_path):
    code = _example().replace("max_steps=20_000", "max_steps=300").replace('"runs/regression"', repr(str(tmp_path)))
    assert "max_steps=300" in code and str(tmp_path) in code, "the README example changed: update this test"
    first: dict = {}
    exec(compile(code, "README.md", "exec"), first)
    assert int(first["state"].step) == 300 and first["trainer"].resumed_from is None
    again: dict = {}
    exec(compile(code, "README.md", "exec"), again)
    assert again["trainer"].resumed_from is not None and again["trainer"].resumed_from.step == 300
