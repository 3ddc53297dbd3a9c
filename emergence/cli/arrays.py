"""The arrays of checkpoints: sizes per subtree, bitwise differences, and a params-only export."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import safetensors.numpy

from emergence.checkpoint import CheckpointFile
from emergence.checkpoint.atomic import atomic_write_bytes

EXPORT_FORMAT = "emergence-export/1"


def subtree_sizes(arrays: dict[str, np.ndarray], depth: int = 2) -> dict[str, dict[str, int]]:
    """`{prefix: {arrays, elements, bytes}}` for every leaf-path prefix up to `depth` parts, sorted."""
    sizes: dict[str, dict[str, int]] = {}
    for name, array in arrays.items():
        parts = name.split("/")
        for level in range(1, min(depth, len(parts)) + 1):
            entry = sizes.setdefault("/".join(parts[:level]), {"arrays": 0, "elements": 0, "bytes": 0})
            entry["arrays"] += 1
            entry["elements"] += int(array.size)
            entry["bytes"] += int(array.nbytes)
    return dict(sorted(sizes.items()))


def _bits(array: np.ndarray) -> np.ndarray:
    """The array's elements as unsigned integers of the same width (bitwise comparison, NaN included)."""
    flat = np.ascontiguousarray(array).reshape(-1)
    return flat.view(f"u{flat.dtype.itemsize}") if flat.dtype.itemsize in (1, 2, 4, 8) else flat.view(np.uint8)


def _describe(array: np.ndarray) -> str:
    return f"{array.dtype}{list(array.shape)}"


def _value_difference(name: str, a: np.ndarray, b: np.ndarray) -> str:
    differing = int(np.count_nonzero(_bits(a) != _bits(b)))
    line = f"{name}: {differing} of {a.size} elements differ"
    if a.dtype.kind in "fiu":
        with np.errstate(invalid="ignore", over="ignore"):
            gap = np.nanmax(np.abs(a.astype(np.float64) - b.astype(np.float64)))
        line += f", max |a-b| = {gap:.6g}"
    return line


def array_differences(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> list[str]:
    """One line per leaf that is not bitwise equal in both (missing, other dtype/shape, other bits)."""
    lines = []
    for name in sorted(set(a) | set(b)):
        if name not in b:
            lines.append(f"{name}: only in A ({_describe(a[name])})")
        elif name not in a:
            lines.append(f"{name}: only in B ({_describe(b[name])})")
        elif a[name].dtype != b[name].dtype or a[name].shape != b[name].shape:
            lines.append(f"{name}: A is {_describe(a[name])}, B is {_describe(b[name])}")
        elif not np.array_equal(_bits(a[name]), _bits(b[name])):
            lines.append(_value_difference(name, a[name], b[name]))
    return lines


def _selected(arrays: dict[str, np.ndarray], include: tuple[str, ...]) -> dict[str, np.ndarray]:
    prefixes = [p.strip("/") for p in include]
    return {name: a for name, a in arrays.items() if any(name == p or name.startswith(p + "/") for p in prefixes)}


def export_arrays(file: CheckpointFile, out: Path, include: tuple[str, ...]) -> dict[str, np.ndarray]:
    """Write the arrays of `file` under the `include` subtrees to `out` (plain safetensors, atomically)."""
    out = Path(out)
    if out.is_dir():
        raise ValueError(f"{out} is a directory; pass a file name such as {out / 'params.safetensors'}")
    if out.exists() and out.resolve() == file.path.resolve():
        raise ValueError(f"{out} is the checkpoint being exported; write the export to another file")
    chosen = _selected(file.arrays, include)
    if not chosen:
        tops = sorted({name.split("/")[0] for name in file.arrays})
        raise ValueError(f"no arrays under {', '.join(include)} in {file.path.name}; subtrees there: {', '.join(tops)}")
    manifest = file.manifest
    metadata = {
        "format": EXPORT_FORMAT,
        "step": str(manifest.get("step")),
        "source": file.path.name,
        "source_checksum": file.checksum,
        "include": ",".join(include),
        "config": json.dumps(manifest.get("config", {}), sort_keys=True),
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(out, safetensors.numpy.save({k: np.ascontiguousarray(v) for k, v in chosen.items()}, metadata))
    return chosen
