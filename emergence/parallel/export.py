"""One seed out of a `ManySeeds` checkpoint, as an ordinary checkpoint of the inner task.

The arrays are seed i's slices of the stacked state; the manifest keeps the step,
kind, versions and typed-key table, takes the inner task's config (so the inner task
resumes it with no config change), keeps seed i's metrics under their plain names, and
drops callback state (it described the stacked run: its best-k list names the stack's
files). `exported` records where it came from.

A stack whose config lists its runs (`config["runs"][i]`, a sweep: each run with its own
`config`, and whatever else describes it, such as its seed and grid values) exports run
i with run i's own config, without the subtrees its `drop` list names (state the stack
keeps for every run but run i does not have alone); its metrics are the `/run_i` ones
and `exported` adds the run's description.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from emergence.checkpoint import CheckpointFile, write_checkpoint
from emergence.checkpoint.manifest import config_hash
from emergence.errors import EmergenceError
from emergence.parallel.seeds import seed_tag


def _num_seeds(file: CheckpointFile) -> int:
    config = file.manifest.get("config", {})
    if not isinstance(config.get("num_seeds"), int) or "task" not in config:
        raise EmergenceError(
            f"{file.path.name} holds one run, not a ManySeeds stack (its config has no num_seeds); "
            f"export it without --seed/--run"
        )
    return config["num_seeds"]


def find_run(file: CheckpointFile, spec: str) -> int:
    """The run `--run` names: an index, or `key=value,...` pairs (short or dotted keys, `seed`) matching one run."""
    if spec.lstrip("-").isdigit():
        return int(spec)
    runs = file.manifest.get("config", {}).get("runs")
    if not isinstance(runs, list):
        raise EmergenceError(f"--run {spec}: {file.path.name} lists no runs by value (not a sweep); pass an index")
    wanted = _pairs(spec)
    found = [i for i, run in enumerate(runs) if _matches(run, wanted)]
    if len(found) != 1:
        names = "; ".join(run.get("name", str(i)) for i, run in enumerate(runs))
        raise EmergenceError(
            f"--run {spec} matches {len(found)} runs of {file.path.name}, not one; its runs are: {names}"
        )
    return found[0]


def _pairs(spec: str) -> dict[str, float]:
    pairs = {}
    for item in spec.split(","):
        key, sep, value = item.partition("=")
        try:
            pairs[key.strip()] = float(value)
        except ValueError:
            raise EmergenceError(
                f"--run takes an index or key=value pairs such as diversity_bonus=0.05,seed=2, got {spec!r}"
            ) from None
    return pairs


def _matches(run: dict[str, Any], wanted: dict[str, float]) -> bool:
    """Every wanted key is the run's seed or one of its values (by dotted name or last part), equal."""
    have = {"seed": float(run.get("seed", float("nan")))}
    for key, value in run.get("values", {}).items():
        have[key] = have[key.rsplit(".", 1)[-1]] = float(value)
    if "evolution.enabled" in run.get("values", {}):
        have["evolution"] = float(run["values"]["evolution.enabled"])
    return all(key in have and have[key] == value for key, value in wanted.items())


def seed_metrics(metrics: dict[str, float], seed: int, tag: str = "seed") -> dict[str, float]:
    """Seed `seed`'s entries of a stacked run's metrics, under their plain names."""
    suffix = seed_tag("", seed, tag)
    return {name[: -len(suffix)]: value for name, value in metrics.items() if name.endswith(suffix)}


def seed_checkpoint(
    file: CheckpointFile, seed: int, flag: str = "--seed"
) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Seed (run) `seed`'s arrays and manifest from a stacked checkpoint; a one-line error for any other file."""
    num_seeds = _num_seeds(file)
    noun = "runs" if flag == "--run" else "seeds"
    if not 0 <= seed < num_seeds:
        raise EmergenceError(f"{flag} {seed} is out of range: {file.path.name} holds {noun} 0..{num_seeds - 1}")
    runs = file.manifest["config"].get("runs")
    run = runs[seed] if isinstance(runs, list) else None
    dropped = tuple(prefix + "/" for prefix in (run or {}).get("drop", ()))
    arrays = {
        name: np.array(stacked[seed])
        for name, stacked in file.arrays.items()  # a 0-d slice stays 0-d
        if not name.startswith(dropped)
    }
    inner = run["config"] if run is not None else file.manifest["config"]["task"]
    described = {k: v for k, v in (run or {}).items() if k not in ("config", "drop")}
    origin = {"seed": seed} if run is None else {"run": seed, **described}
    manifest = {
        **file.manifest,
        "config": inner,
        "config_hash": config_hash(inner),
        "callbacks": {},
        "metrics": seed_metrics(file.manifest.get("metrics", {}), seed, "seed" if run is None else "run"),
        "exported": {"source": file.path.name, "source_checksum": file.checksum, **origin},
    }
    manifest.pop("format_version", None)
    return arrays, manifest


def export_seed(file: CheckpointFile, seed: int, out: Path, flag: str = "--seed") -> dict[str, np.ndarray]:
    """Write seed (run) `seed` of `file` to `out` as a checkpoint that the inner task resumes from (atomically)."""
    arrays, manifest = seed_checkpoint(file, seed, flag)
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    write_checkpoint(out, arrays, manifest)
    return arrays
