"""kernel-metadata.json: what `emergence kaggle init` writes and what `kaggle kernels push` would refuse.

The fields and checks follow the official `kaggle` 2.2.5 package's `kernels_push`
(`id` as `owner/slug`, title and slug at least five characters, the code file next to
the metadata, `language` and `kernel_type` from fixed lists, boolean fields, source
references). Machine shapes follow its `kaggle kernels push --help` ("NvidiaTeslaT4 for
GPU T4 x2") and its table of retired accelerators, which it warns about and the server
replaces. Loads no JAX.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from emergence.checkpoint.atomic import atomic_write_text
from emergence.errors import EmergenceError

METADATA_FILE = "kernel-metadata.json"
CODE_FILE = "kaggle_training.ipynb"
DEFAULT_SLUG = "emergence-training"
MACHINE_SHAPES = {"t4x2": "NvidiaTeslaT4", "p100": "NvidiaTeslaP100", "tpu": "TpuV5E8", "tpuv3": "TpuV38", "none": ""}
GPU_ACCELERATORS, TPU_ACCELERATORS = ("t4x2", "p100"), ("tpu", "tpuv3")
RETIRED_SHAPES = {  # machine_shape (lower case, as the CLI compares) -> what Kaggle runs instead, as the CLI says
    "nvidiateslap100": "the default GPU (NvidiaTeslaT4): use --accelerator t4x2",
    "tpuv38": "the default TPU (TpuV5E8): use --accelerator tpu",
    "tpu1vmv38": "the default TPU (TpuV5E8): use --accelerator tpu",
    "tpuv232": "CPU, with no accelerator at all: use --accelerator tpu",
    "tpuv2256": "CPU, with no accelerator at all: use --accelerator tpu",
}
LANGUAGES = ("python", "r", "rmarkdown")
KERNEL_TYPES = ("script", "notebook")
BOOL_FIELDS = ("is_private", "enable_gpu", "enable_tpu", "enable_internet")


class KernelMetadataError(EmergenceError):
    """`kernel-metadata.json` would be refused by `kaggle kernels push`."""


def build_metadata(
    username: str,
    slug: str = DEFAULT_SLUG,
    *,
    title: str | None = None,
    accelerator: str = "t4x2",
    internet: bool = True,
    private: bool = True,
    code_file: str = CODE_FILE,
    dataset_sources: Sequence[str] = (),
    kernel_sources: Sequence[str] = (),
    competition_sources: Sequence[str] = (),
    model_sources: Sequence[str] = (),
) -> dict[str, Any]:
    """The `kernel-metadata.json` fields for this project's notebook.

    `kernel_sources` always starts with the kernel itself, so each new version finds the
    previous version's output (its checkpoints) under `/kaggle/input`. `accelerator` is
    `t4x2`, `tpu`, `none`, or the retired `p100` and `tpuv3` (written as asked; Kaggle
    runs those on a replacement, see `retired_warning`); it sets `enable_gpu`/`enable_tpu`
    and `machine_shape`.
    """
    if accelerator not in MACHINE_SHAPES:
        raise KernelMetadataError(f"unknown accelerator {accelerator!r}; use one of {', '.join(MACHINE_SHAPES)}")
    kernel = f"{username}/{slug}"
    return {
        "id": kernel,
        "title": title or slug.replace("-", " ").title(),
        "code_file": code_file,
        "language": "python",
        "kernel_type": "notebook",
        "is_private": private,
        "enable_gpu": accelerator in GPU_ACCELERATORS,
        "enable_tpu": accelerator in TPU_ACCELERATORS,
        "enable_internet": internet,
        "machine_shape": MACHINE_SHAPES[accelerator],
        "dataset_sources": list(dataset_sources),
        "kernel_sources": [kernel, *(k for k in kernel_sources if k != kernel)],
        "competition_sources": list(competition_sources),
        "model_sources": list(model_sources),
    }


def retired_warning(meta: dict[str, Any]) -> str | None:
    """The one-line warning for a retired `machine_shape` (as `kaggle kernels push` warns), else None."""
    shape = str(meta.get("machine_shape") or "").strip()
    instead = RETIRED_SHAPES.get(shape.lower())
    return f"warning: machine_shape {shape!r} is retired; Kaggle runs the session on {instead}" if instead else None


def validate_metadata(meta: dict[str, Any], folder: Path) -> None:
    """Refuse, in one line, what `kaggle kernels push -p folder` would refuse."""
    kernel = meta.get("id")
    if not kernel and not meta.get("id_no"):
        raise KernelMetadataError(f"{METADATA_FILE} has no id; set it to 'owner/slug' (emergence kaggle init does)")
    if kernel:
        check_kernel_ref(kernel, "id")
    title = meta.get("title")
    if title is not None and len(str(title)) < 5:
        raise KernelMetadataError(f"title {title!r} is shorter than 5 characters; Kaggle refuses it")
    code = meta.get("code_file")
    if code and (not isinstance(code, str) or Path(code).name != code or code in (".", "..")):
        raise KernelMetadataError(
            f"code_file {code!r} must be a plain file name inside {folder} (no folder, no '..'); "
            "move the notebook there"
        )
    if not code or not (folder / code).is_file() or (folder / code).is_symlink():
        raise KernelMetadataError(f"code_file {code!r} not found in {folder}; put the notebook there or fix code_file")
    _check_choice(meta, "language", LANGUAGES)
    _check_choice(meta, "kernel_type", KERNEL_TYPES)
    for field in BOOL_FIELDS:
        if field in meta and str(meta[field]).lower() not in ("true", "false"):
            raise KernelMetadataError(f"{field}={meta[field]!r} must be true or false")
    for source in meta.get("kernel_sources", []):
        check_kernel_ref(source, "kernel_sources")
    for source in meta.get("dataset_sources", []):
        _check_slashes(source, "dataset_sources", "owner/dataset-slug", (2, 3))
    for source in meta.get("model_sources", []):
        _check_slashes(source, "model_sources", "owner/model/framework/variation/version", (5,))


def check_kernel_ref(ref: str, field: str) -> None:
    parts = str(ref).split("/")
    if len(parts) != 2 or not all(parts):
        raise KernelMetadataError(f"{field} {ref!r} must be 'owner/slug'")
    if len(parts[1]) < 5:
        raise KernelMetadataError(f"{field} {ref!r}: the slug must be at least 5 characters; Kaggle refuses it")


def _check_slashes(ref: str, field: str, form: str, counts: tuple[int, ...]) -> None:
    parts = str(ref).split("/")
    if len(parts) not in counts or not all(parts):
        raise KernelMetadataError(f"{field} entry {ref!r} must be '{form}'")


def _check_choice(meta: dict[str, Any], field: str, choices: tuple[str, ...]) -> None:
    if meta.get(field) not in choices:
        raise KernelMetadataError(f"{field}={meta.get(field)!r} must be one of {', '.join(choices)}")


def read_metadata(folder: Path) -> dict[str, Any]:
    """`folder/kernel-metadata.json`, parsed (a one-line error when missing or not JSON)."""
    path = Path(folder) / METADATA_FILE
    try:
        meta = json.loads(path.read_text())
    except FileNotFoundError:
        raise KernelMetadataError(f"{path} not found; create it with `emergence kaggle init --username U`") from None
    except json.JSONDecodeError as err:
        raise KernelMetadataError(
            f"{path} is not valid JSON ({err}); fix it or rerun `emergence kaggle init`"
        ) from None
    if not isinstance(meta, dict):
        raise KernelMetadataError(f"{path} must hold a JSON object; rerun `emergence kaggle init`")
    return meta


def write_metadata(folder: Path, meta: dict[str, Any]) -> Path:
    """Validate `meta` against `folder` and write it there atomically."""
    validate_metadata(meta, Path(folder))
    path = Path(folder) / METADATA_FILE
    atomic_write_text(path, json.dumps(meta, indent=2) + "\n")
    return path


def kernel_ref(folder: Path) -> str:
    """The `owner/slug` the metadata in `folder` names."""
    meta = read_metadata(folder)
    if not meta.get("id"):
        raise KernelMetadataError(f"{Path(folder) / METADATA_FILE} has no id; rerun `emergence kaggle init`")
    check_kernel_ref(meta["id"], "id")
    return meta["id"]
