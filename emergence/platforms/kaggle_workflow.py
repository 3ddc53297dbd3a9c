"""The Kaggle workflow around the official `kaggle` CLI: metadata, push, status, logs, output.

Nothing here talks to Kaggle itself: every remote step runs the official command
(`pip install kaggle`) in a subprocess and parses what it prints, so credentials,
proxies and API changes stay the CLI's business. What the CLI prints and checks, as of
the `kaggle` 2.2.5 package (`kaggle/cli.py`, `kaggle/api/kaggle_api_extended.py`):

- `kaggle kernels push -p DIR [-t/--timeout SECONDS]` validates `DIR/kernel-metadata.json`
  (title and slug at least five characters, `id` as `owner/slug`, the code file exists,
  `language` and `kernel_type` from fixed lists), then prints `Kernel version N
  successfully pushed.  Please check progress at URL`, or `Kernel push error: ...` with
  exit status 0. `--timeout` caps the session's run time (Kaggle's own limit still holds).
  Its `--help` names `NvidiaTeslaT4` for "GPU T4 x2"; for a retired `machine_shape`
  (`NvidiaTeslaP100`, the TPU v3 shapes) it warns on stderr and the server runs the
  session on a replacement.
- `kaggle kernels logs OWNER/SLUG [-f/--follow]` prints the latest session's log;
  `--follow` streams it live until the session ends.
- `kaggle kernels status OWNER/SLUG` prints `OWNER/SLUG has status "KernelWorkerStatus.X"`
  (older CLIs: `"x"`), then `Failure message: "..."` when there is one.
- `kaggle kernels output OWNER/SLUG -p DIR -o` downloads the latest version's
  `/kaggle/working` files (subdirectories kept) and its log, overwriting old copies.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

from emergence.checkpoint import CheckpointRef, list_checkpoints, read_checkpoint
from emergence.errors import EmergenceError
from emergence.platforms.kaggle_metadata import (  # noqa: F401  (re-exported: the workflow's one import for callers)
    CODE_FILE,
    DEFAULT_SLUG,
    MACHINE_SHAPES,
    METADATA_FILE,
    RETIRED_SHAPES,
    KernelMetadataError,
    build_metadata,
    check_kernel_ref,
    kernel_ref,
    read_metadata,
    retired_warning,
    validate_metadata,
    write_metadata,
)
from emergence.sums import SUMS_FILE, ChecksumError, verify_sums

PENDING = ("QUEUED", "RUNNING", "NEW_SCRIPT", "CANCEL_REQUESTED")
FAILED = ("ERROR", "CANCEL_ACKNOWLEDGED")
STALE_POLLS = 3
INSTALL_HINT = "the official `kaggle` command is not on PATH: run `pip install kaggle`, then retry"
CREDENTIALS_HINT = (
    "Kaggle has no credentials for you: run `kaggle auth login`, or save an API token from "
    "https://www.kaggle.com/settings/api to ~/.kaggle/access_token (or export KAGGLE_API_TOKEN), "
    "or put a legacy kaggle.json in ~/.kaggle/ (or $KAGGLE_CONFIG_DIR), "
    "or export KAGGLE_USERNAME and KAGGLE_KEY"
)
_AUTH_FAILURES = (
    "could not find kaggle.json",
    "you must log in to kaggle",
    "authentication required",
    "401 client error",
)
_STATUS = re.compile(r'^(?P<kernel>\S+) has status "(?:KernelWorkerStatus\.)?(?P<state>[A-Za-z_]+)"\s*$', re.M)
_FAILURE = re.compile(r'^Failure message: "(?P<message>.*)"\s*\Z', re.M | re.S)


class KaggleSetupError(EmergenceError):
    """The `kaggle` command or its credentials are missing (the CLI exits 2)."""


class KaggleCommandError(EmergenceError):
    """The `kaggle` command failed, or printed something this module cannot read."""


class OutputVerificationError(ChecksumError):
    """A downloaded checkpoint is damaged (a SHA256SUMS mismatch is its parent, `ChecksumError`)."""


@dataclass(frozen=True)
class KernelStatus:
    """One answer of `kaggle kernels status`: the state name and any failure message."""

    kernel: str
    state: str
    failure_message: str | None = None

    @property
    def finished(self) -> bool:
        """The run is over: COMPLETE, ERROR or CANCEL_ACKNOWLEDGED."""
        return self.state not in PENDING

    @property
    def failed(self) -> bool:
        """The run ended badly: ERROR or CANCEL_ACKNOWLEDGED."""
        return self.state in FAILED


def run_kaggle(args: Sequence[str]) -> str:
    """Run `kaggle ARGS...`; return its stdout. Missing CLI or credentials: KaggleSetupError."""
    executable = shutil.which("kaggle")
    if executable is None:
        raise KaggleSetupError(INSTALL_HINT)
    done = subprocess.run([executable, *args], capture_output=True, text=True)
    if done.returncode == 0:
        return done.stdout
    _raise_failure(args, done.returncode, f"{done.stdout}\n{done.stderr}")


def _raise_failure(args: Sequence[str], code: int, said: str) -> NoReturn:
    """The one-line error for a `kaggle` command that exited `code` after printing `said`."""
    if any(failure in said.lower() for failure in _AUTH_FAILURES):
        raise KaggleSetupError(CREDENTIALS_HINT)
    raise KaggleCommandError(f"`kaggle {' '.join(args)}` failed (exit {code}): {_last_line(said)}")


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else "no output"


def push(folder: Path, *, new: bool = False, timeout: int | None = None) -> str:
    """`kaggle kernels push -p folder [--timeout SECONDS]`; return the CLI's confirmation line.

    `new=True` is for the first version of a kernel: Kaggle refuses a kernel source that
    does not exist yet, so the kernel's own id is left out of `kernel_sources` (in a
    staged copy; the committed metadata keeps it for every later version). `timeout`
    caps the session's run time in seconds (Kaggle's own 12-hour limit still holds).
    """
    folder = Path(folder)
    meta = read_metadata(folder)
    validate_metadata(meta, folder)
    limit = [] if timeout is None else ["--timeout", str(check_timeout(timeout))]
    with _staged(folder, meta) if new else _as_is(folder) as push_dir:
        out = run_kaggle(["kernels", "push", "-p", str(push_dir), *limit])
    for line in out.splitlines():
        if line.startswith("Kernel push error"):
            raise KaggleCommandError(line.strip())
    return _last_line(out)


def check_timeout(seconds: Any) -> int:
    """A session time limit as the whole positive number of seconds `kaggle kernels push --timeout` takes."""
    if isinstance(seconds, bool) or not isinstance(seconds, int) or seconds < 1:
        raise KernelMetadataError(f"timeout must be a whole positive number of seconds, got {seconds!r}")
    return seconds


@contextmanager
def _as_is(folder: Path) -> Iterator[Path]:
    yield folder


@contextmanager
def _staged(folder: Path, meta: dict[str, Any]) -> Iterator[Path]:
    """A temporary copy of the push folder whose metadata leaves out the kernel's own id."""
    with tempfile.TemporaryDirectory(prefix="emergence-kaggle-") as tmp:
        staged = Path(tmp)
        shutil.copy2(folder / meta["code_file"], staged / Path(meta["code_file"]).name)
        first = {
            **meta,
            "code_file": Path(meta["code_file"]).name,
            "kernel_sources": [k for k in meta.get("kernel_sources", []) if k != meta.get("id")],
        }
        (staged / METADATA_FILE).write_text(json.dumps(first, indent=2) + "\n")
        yield staged


def parse_status(output: str) -> KernelStatus:
    """Read what `kaggle kernels status` printed (both the enum and the old lowercase form)."""
    match = _STATUS.search(output)
    if match is None:
        raise KaggleCommandError(f"`kaggle kernels status` printed no status: {_last_line(output)}")
    state = match.group("state").upper()
    if state not in (*PENDING, "COMPLETE", *FAILED):
        raise KaggleCommandError(f"unknown kernel status {match.group('state')!r}; upgrade emergence or the kaggle CLI")
    failure = _FAILURE.search(output[match.end() :])
    return KernelStatus(match.group("kernel"), state, failure.group("message") if failure else None)


def status(kernel: str) -> KernelStatus:
    """The latest version's status, from `kaggle kernels status kernel`."""
    return parse_status(run_kaggle(["kernels", "status", kernel]))


def wait(
    kernel: str,
    *,
    interval: float = 60.0,
    report: Callable[[KernelStatus], None] = lambda s: None,
    sleep: Callable[[float], None] = time.sleep,
    retries: int = 3,
    after_push: bool = False,
) -> KernelStatus:
    """Poll `status(kernel)` every `interval` seconds until the run finishes; return its last status.

    `report` sees every status that differs from the one before. Up to `retries` failed
    polls in a row (a network blip in a 12-hour wait) are retried; credential problems
    are not. `after_push`: right after a push, Kaggle can still answer with the previous
    version's result, so a finished status is believed only once the new version was
    seen queued or running, or after `STALE_POLLS` polls.
    """
    last, failures, stale_left = None, 0, STALE_POLLS if after_push else 0
    while True:
        current = _poll(kernel, failures, retries)
        if current is None:
            failures += 1
        elif current.finished and stale_left > 0:
            failures, stale_left = 0, stale_left - 1
        else:
            failures, stale_left = 0, 0
            if current != last:
                report(current)
            if current.finished:
                return current
            last = current
        sleep(interval)


def _poll(kernel: str, failures: int, retries: int) -> KernelStatus | None:
    """One status poll; None for a failure that may be retried."""
    try:
        return status(kernel)
    except KaggleCommandError:
        if failures >= retries:
            raise
        return None


def logs(kernel: str, *, follow: bool = False, out: Callable[[str], None] = print) -> None:
    """`kaggle kernels logs kernel [--follow]`: each line of the session's log to `out` as the CLI prints it.

    With `follow` the CLI streams the running session's log until the session ends, so
    the lines are passed on as they come, not when the command exits.
    """
    check_kernel_ref(kernel, "kernel")
    stream_kaggle(["kernels", "logs", kernel, *(["--follow"] if follow else [])], out)


def stream_kaggle(args: Sequence[str], out: Callable[[str], None]) -> None:
    """Run `kaggle ARGS...`, passing each stdout line to `out` as it is printed; errors as `run_kaggle`'s."""
    executable = shutil.which("kaggle")
    if executable is None:
        raise KaggleSetupError(INSTALL_HINT)
    with subprocess.Popen([executable, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) as child:
        stderr: list[str] = []
        drain = threading.Thread(target=lambda: stderr.extend(child.stderr), daemon=True)  # a full pipe never blocks
        drain.start()
        said = []
        for line in child.stdout:
            said.append(line)
            out(line.rstrip("\n"))
        drain.join()
    if child.returncode != 0:
        _raise_failure(args, child.returncode, "".join(said) + "\n" + "".join(stderr))


def download_output(kernel: str, dest: Path) -> None:
    """`kaggle kernels output kernel -p dest -o`: the latest version's /kaggle/working files."""
    Path(dest).mkdir(parents=True, exist_ok=True)
    run_kaggle(["kernels", "output", kernel, "-p", str(dest), "-o"])


def downloaded_checkpoints(root: Path) -> list[CheckpointRef]:
    """Every checkpoint-named file under `root`, oldest first."""
    directories = sorted({path.parent for path in Path(root).rglob("*.safetensors")})
    refs = [ref for directory in directories for ref in list_checkpoints(directory)]
    return sorted(refs, key=lambda ref: ref.order)


def verify_output(root: Path) -> tuple[int, list[CheckpointRef]]:
    """Verify a downloaded output; return (files checked, checkpoints found).

    Every SHA256SUMS under `root` is checked, and every checkpoint's own embedded
    checksum too (a listing is recomputable by anyone, and a run that never reached its
    finalize step has none).
    """
    root = Path(root)
    checkpoints = downloaded_checkpoints(root)
    listed = sum(verify_sums(path) for path in sorted(root.rglob(SUMS_FILE)))
    for ref in checkpoints:
        try:
            read_checkpoint(ref.path)
        except EmergenceError as err:
            raise OutputVerificationError(f"{err}; download again") from None
    return listed or len(checkpoints), checkpoints
