"""The import path is the architecture: no import cycle, the framework never imports the lab, light commands.

The graph is read from the source (every `import emergence...`, at module level, under
`TYPE_CHECKING` or inside a function), so a cycle hidden behind a lazy import counts.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import numpy as np

from emergence.checkpoint import write_checkpoint

PACKAGE = Path(__file__).resolve().parents[1] / "emergence"
NOTEBOOK = PACKAGE.parent / "notebooks" / "kaggle_training.ipynb"


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module_name(p): p for p in PACKAGE.rglob("*.py")}


def _resolve(name: str) -> str | None:
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name or None


def imported_modules(source: str) -> set[str]:
    """The `emergence` modules a piece of source imports, anywhere in it."""
    found: set[str | None] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found |= {_resolve(a.name) for a in node.names if a.name.startswith("emergence")}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and (node.module or "").startswith("emergence"):
            found |= {_resolve(f"{node.module}.{a.name}") for a in node.names}
    return {m for m in found if m is not None}


GRAPH = {name: imported_modules(path.read_text()) - {name} for name, path in MODULES.items()}


def _cycle_from(start: str) -> list[str] | None:
    """A path start -> ... -> start in the graph, if there is one."""
    stack, seen = [(start, [start])], set()
    while stack:
        node, path = stack.pop()
        for nxt in GRAPH[node]:
            if nxt == start:
                return [*path, start]
            if nxt not in seen:
                seen.add(nxt)
                stack.append((nxt, [*path, nxt]))
    return None


def _closure(roots: set[str]) -> set[str]:
    seen, todo = set(roots), list(roots)
    while todo:
        for nxt in GRAPH[todo.pop()] - seen:
            seen.add(nxt)
            todo.append(nxt)
    return seen


def test_the_import_graph_of_emergence_has_no_cycle():
    cycles = [cycle for name in sorted(GRAPH) if (cycle := _cycle_from(name))]
    assert not cycles, "import cycle: " + " -> ".join(cycles[0])


def test_the_framework_never_imports_the_lab():
    offenders = {
        name: sorted(m for m in deps if m.startswith("emergence.lab"))
        for name, deps in GRAPH.items()
        if not name.startswith("emergence.lab")
    }
    assert not {k: v for k, v in offenders.items() if v}


def test_the_notebook_imports_nothing_from_the_cli():
    cells = json.loads(NOTEBOOK.read_text())["cells"]
    source = "\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "code")
    reached = _closure(imported_modules(source))
    assert reached, "the notebook imports emergence"
    assert not sorted(m for m in reached if m.startswith("emergence.cli"))


def _modules_loaded_by(*argv: str) -> set[str]:
    code = (
        "import sys, contextlib, io\nfrom emergence.cli import main\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        f"    try:\n        main({list(argv)!r})\n    except SystemExit:\n        pass\n"
        "print(' '.join(sorted(sys.modules)))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    return set(out.split())


def test_kaggle_and_checkpoint_reading_commands_never_import_jax_or_flax(tmp_path):
    path = tmp_path / "checkpoints" / "step_1.safetensors"
    path.parent.mkdir()
    write_checkpoint(path, {"params/w": np.ones(3, np.float32)}, {"step": 1, "kind": "periodic", "config": {}})
    for argv in (
        ["kaggle", "--help"],
        ["ckpt", "list", str(tmp_path)],
        ["ckpt", "inspect", str(path)],
        ["ckpt", "verify", str(path)],
    ):
        loaded = _modules_loaded_by(*argv)
        assert "jax" not in loaded and "flax" not in loaded, argv
