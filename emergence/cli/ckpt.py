"""`emergence ckpt`: list, inspect, verify, diff and export checkpoints.

Every subcommand reads checkpoints with the library's own verified reader (nothing
is unpickled, nothing on disk is changed except `export`'s output). Exit codes: 0
done; 1 `verify` found a bad file or `diff` found a difference; 2 bad usage or an
unreadable input (one line on stderr).
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import tyro
from tyro.conf import Positional, arg

from emergence.checkpoint import (
    CheckpointFile,
    CheckpointRef,
    checkpoint_dir_of,
    list_checkpoints,
    parse_name,
    read_checkpoint,
    read_manifest,
)
from emergence.checkpoint.discovery import UNREADABLE
from emergence.cli.arrays import array_differences, export_arrays, subtree_sizes
from emergence.cli.paths import existing, load_checkpoint
from emergence.cli.table import format_number, format_table, human_size, local_time
from emergence.cli.usage import parse
from emergence.errors import EmergenceError

LATEST = "latest.json"
INFERENCE = ("params", "batch_stats")  # what a model needs to run: weights, and BatchNorm's running statistics


def _refs(directory: Path) -> tuple[Path, list[CheckpointRef]]:
    folder = checkpoint_dir_of(existing(directory))
    if not folder.is_dir():
        raise EmergenceError(f"{directory} is a file; pass the directory that holds the checkpoints")
    return folder, list_checkpoints(folder)


def _latest_name(folder: Path) -> str | None:
    try:
        return json.loads((folder / LATEST).read_text()).get("name")
    except (OSError, ValueError, AttributeError):
        return None


def _pick_metric(manifests: list[dict[str, Any]]) -> str | None:
    """The monitored metric of a `best` checkpoint, else the first eval metric, else the first metric."""
    for manifest in reversed(manifests):
        reason = manifest.get("reason") or ""
        if manifest.get("kind") == "best" and reason.startswith("best "):
            return reason[len("best ") :]
    names = sorted({name for m in manifests for name in m.get("metrics", {})})
    evals = [n for n in names if n.startswith(("eval/", "val_"))]
    return (evals or names or [None])[0]


@dataclass
class List:
    """List the checkpoints of a run: step, kind, time written, size, a metric, valid."""

    directory: Positional[Annotated[Path, arg(metavar="DIR")]]
    """a run dir or a checkpoint dir"""
    metric: str | None = None
    """metric to show (default: the monitored one of `best` checkpoints, else the first eval metric)"""
    verify: bool = True
    """read every file in full and check its checksum (--no-verify reads only the manifests)"""

    def run(self) -> int:
        folder, refs = _refs(self.directory)
        if not refs:
            print(f"no checkpoints in {folder}")
            return 0
        manifests, valid = zip(*(self._read(ref) for ref in refs))
        metric = self.metric or _pick_metric([m for m in manifests if m])
        latest = _latest_name(folder)
        rows = [
            [
                ("*" if ref.path.name == latest else "") + ref.path.name,
                ref.step,
                ref.kind,
                local_time(m.get("wall_time")),
                human_size(ref.path.stat().st_size),
                format_number(m["metrics"][metric]) if metric in m.get("metrics", {}) else "-",
                ok,
            ]
            for ref, m, ok in zip(refs, manifests, valid)
        ]
        print(format_table(["name", "step", "kind", "time", "size", metric or "metric", "valid"], rows))
        if latest:
            print(f"(* = {LATEST})")
        return 0

    def _read(self, ref: CheckpointRef) -> tuple[dict[str, Any], str]:
        try:
            if self.verify:
                return read_checkpoint(ref.path).manifest, "yes"
            return read_manifest(ref.path), "?"
        except UNREADABLE as err:
            return {}, f"NO ({str(err).removeprefix(str(ref.path) + ': ')})"


@dataclass
class Inspect:
    """Show one checkpoint: its manifest, config, and array sizes per subtree."""

    path: Positional[Annotated[Path, arg(metavar="CKPT")]]
    """a checkpoint file, or a run/checkpoint dir (its newest valid checkpoint)"""
    json: bool = False
    """print one JSON object instead of text"""

    def run(self) -> int:
        file = load_checkpoint(self.path)
        subtrees = subtree_sizes(file.arrays)
        if self.json:
            arrays = {name: {"dtype": str(a.dtype), "shape": list(a.shape)} for name, a in sorted(file.arrays.items())}
            print(
                json.dumps(
                    {
                        "path": str(file.path),
                        "checksum": file.checksum,
                        "size": file.path.stat().st_size,
                        "manifest": file.manifest,
                        "subtrees": subtrees,
                        "arrays": arrays,
                    },
                    indent=1,
                )
            )
            return 0
        print(_describe(file.path, file.checksum, file.manifest))
        print(
            format_table(
                ["subtree", "arrays", "elements", "bytes"],
                [
                    ["  " * name.count("/") + name, s["arrays"], s["elements"], human_size(s["bytes"])]
                    for name, s in subtrees.items()
                ],
            )
        )
        return 0


def _describe(path: Path, checksum: str, manifest: dict[str, Any]) -> str:
    versions = ", ".join(f"{k} {v}" for k, v in manifest.get("versions", {}).items())
    metrics = ", ".join(f"{k}={format_number(v)}" for k, v in sorted(manifest.get("metrics", {}).items()))
    callbacks = ", ".join(f"{k} ({human_size(len(json.dumps(v)))})" for k, v in manifest.get("callbacks", {}).items())
    lines = [
        f"file       {path} ({human_size(path.stat().st_size)})",
        f"step       {manifest.get('step')} ({_kind_and_reason(path, manifest)})",
        f"written    {local_time(manifest.get('wall_time'))}",
        f"checksum   {checksum}",
        f"format     {manifest.get('format_version')}; config hash {manifest.get('config_hash')}",
        f"versions   {versions or '-'}",
        f"platform   {json.dumps(manifest.get('platform') or {})}",
        f"metrics    {metrics or '-'}",
        f"callbacks  {callbacks or '-'}",
        "config     " + json.dumps(manifest.get("config", {}), indent=1, sort_keys=True).replace("\n", "\n           "),
    ]
    return "\n".join(lines)


def _kind_and_reason(path: Path, manifest: dict[str, Any]) -> str:
    """Kind and reason; a final that is a hard link of its step's periodic file says so, with latest.json's reason.

    Such a final holds exactly what the periodic save of its step wrote (the Trainer links
    only then), so its bytes, manifest included, are that save's.
    """
    named, saved = parse_name(path), manifest.get("kind")
    if named is None or named.kind == saved:
        return f"{saved}; reason: {manifest.get('reason')}"
    pointer = path.parent / LATEST
    latest = json.loads(pointer.read_text()) if pointer.is_file() else {}
    reason = latest.get("reason") if latest.get("name") == path.name else None
    return (
        f"{named.kind}; reason: {reason or 'not recorded'}), the same file as the {saved} save of this step "
        f"(a hard link: the final held nothing else"
    )


@dataclass
class Verify:
    """Check the checksums of one checkpoint or of every checkpoint in a directory; exit 1 on any bad file."""

    target: Positional[Annotated[Path, arg(metavar="CKPT_OR_DIR")]]
    """a checkpoint file, a run dir or a checkpoint dir"""

    def run(self) -> int:
        target = existing(self.target)
        paths = [target] if target.is_file() else [r.path for r in _refs(target)[1]]
        if not paths:
            print(f"no checkpoints in {checkpoint_dir_of(target)}: nothing verified", file=sys.stderr)
            return 1
        bad = 0
        for path in paths:
            try:
                file = read_checkpoint(path)
                print(
                    f"ok   {path.name} (step {file.manifest['step']}, {file.manifest['kind']}, "
                    f"format v{file.manifest['format_version']} {file.checksum.split(':')[0]})"
                )
            except UNREADABLE as err:
                bad += 1
                print(f"BAD  {path.name}: {str(err).removeprefix(str(path) + ': ')}")
        if target.is_dir():
            self._check_latest(checkpoint_dir_of(target), paths)
        print(f"{len(paths) - bad} ok, {bad} bad")
        return 1 if bad else 0

    @staticmethod
    def _check_latest(folder: Path, paths: list[Path]) -> None:
        name = _latest_name(folder)
        if (folder / LATEST).exists() and name not in {p.name for p in paths}:
            print(f"note {LATEST} names {name!r}, which is not here (discovery ignores it and scans)")


@dataclass
class Diff:
    """Compare the arrays of two checkpoints; exit 0 iff every array is bitwise equal, else list the differences."""

    a: Positional[Annotated[Path, arg(metavar="A")]]
    """a checkpoint file, or a run/checkpoint dir (its newest valid checkpoint)"""
    b: Positional[Annotated[Path, arg(metavar="B")]]
    """the other one"""
    with_callbacks: bool = False
    """also require equal callback state (tracker history, best-k lists) for exit 0"""

    def run(self) -> int:
        left, right = load_checkpoint(self.a), load_checkpoint(self.b)
        print(f"A  {left.path} (step {left.manifest['step']}, {left.manifest['kind']})")
        print(f"B  {right.path} (step {right.manifest['step']}, {right.manifest['kind']})")
        differences = array_differences(left.arrays, right.arrays)
        for line in differences:
            print(f"differs  {line}")
        callbacks = _callback_differences(left.manifest, right.manifest)
        for key in callbacks:
            print(f"{'differs' if self.with_callbacks else 'note   '}  callback state {key}")
        failed = len(differences) + (len(callbacks) if self.with_callbacks else 0)
        if failed:
            print(f"{failed} difference(s)")
            return 1
        print(
            f"identical: {len(left.arrays)} arrays bitwise equal"
            + (" and callback state" if self.with_callbacks else "")
        )
        return 0


def _callback_differences(a: dict[str, Any], b: dict[str, Any]) -> list[str]:
    left, right = a.get("callbacks", {}), b.get("callbacks", {})
    return sorted(
        k
        for k in set(left) | set(right)
        if json.dumps(left.get(k), sort_keys=True) != json.dumps(right.get(k), sort_keys=True)
    )


@dataclass
class Export:
    """Write what inference needs of a checkpoint (params, BatchNorm's batch_stats) as a plain safetensors file.

    Tensors keep their leaf paths in the training state (`params/params/Dense_0/kernel`
    is `state.params["params"]["Dense_0"]["kernel"]`); the metadata holds the step, the
    source file and checksum and the config (JSON). No optimizer state, rng or env state.
    `batch_stats` (flax BatchNorm's running statistics) come along where the state has
    them: a BatchNorm model cannot run without them.
    With `--seed i` on a many-seeds checkpoint (`ManySeeds`), write seed i's whole state
    instead, as an ordinary checkpoint of the inner task that resumes alone.
    """

    path: Positional[Annotated[Path, arg(metavar="CKPT")]]
    """a checkpoint file, or a run/checkpoint dir (its newest valid checkpoint)"""
    out: Positional[Annotated[Path, arg(metavar="OUT")]]
    """the file to write (e.g. policy.safetensors; with --seed e.g. seed3/checkpoints/step_1000.safetensors)"""
    include: tuple[str, ...] = INFERENCE
    """subtrees to export (default: params, and batch_stats where present; e.g. --include params extra/agent_params
    for the lab's evolved heads)"""
    seed: Annotated[int | None, arg(metavar="I")] = None
    """export run i of a many-seeds checkpoint as a resumable checkpoint of the inner task (whole state)"""
    run_index: Annotated[str | None, arg(name="run", metavar="I|VALUES")] = None
    """export run i of a sweep (`emergence sweep`), or the run its values name (diversity_bonus=0.05,seed=2), as an
    ordinary checkpoint that train, eval and render take"""

    def run(self) -> int:
        file = load_checkpoint(self.path)
        flag, index = ("--run", self.run_index) if self.run_index is not None else ("--seed", self.seed)
        if index is None:
            written = export_arrays(file, self.out, self.include)
            print(
                f"wrote {self.out}: {len(written)} arrays, {human_size(self.out.stat().st_size)} "
                f"(step {file.manifest['step']}; load with safetensors.numpy.load_file)"
            )
            return 0
        if self.include != INFERENCE:
            raise EmergenceError(f"{flag} writes the whole state of one run; drop --include")
        _check_out(file, self.out)
        from emergence.parallel.export import export_seed, find_run  # loads JAX: only this subcommand needs it

        index = find_run(file, index) if flag == "--run" else index
        written = export_seed(file, index, self.out, flag)
        print(
            f"wrote {self.out}: {flag[2:]} {index}, {len(written)} arrays, {human_size(self.out.stat().st_size)} "
            f'(step {file.manifest["step"]}; resume it with Trainer(<inner task>, resume="{self.out}"))'
        )
        return 0


def _check_out(file: CheckpointFile, out: Path) -> None:
    """A one-line error unless `out` can take a new checkpoint without touching `file`."""
    if out.is_dir():
        raise EmergenceError(f"{out} is a directory; pass a file name such as {out / 'step_0.safetensors'}")
    if out.exists() and out.resolve() == file.path.resolve():
        raise EmergenceError(f"{out} is the checkpoint being exported; write the export to another file")


Command = (
    Annotated[List, tyro.conf.subcommand("list")]
    | Annotated[Inspect, tyro.conf.subcommand("inspect")]
    | Annotated[Verify, tyro.conf.subcommand("verify")]
    | Annotated[Diff, tyro.conf.subcommand("diff")]
    | Annotated[Export, tyro.conf.subcommand("export")]
)


def main(argv: list[str]) -> int:
    """`emergence ckpt SUBCOMMAND ...`."""
    return parse(Command, argv, prog="emergence ckpt", description=__doc__.split("\n\n")[0]).run()
