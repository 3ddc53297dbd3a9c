"""`emergence kaggle init|push|run|status|logs|download`: the Kaggle workflow as one command.

Exit status: 0 done (the kernel COMPLETE); 1 the kernel failed (ERROR or
CANCEL_ACKNOWLEDGED), the `kaggle` command failed, or downloaded output does not verify;
2 setup to fix first (no `kaggle` command, no credentials, bad kernel-metadata.json);
3 `status` without `--watch` while the kernel is still queued or running.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from emergence.errors import EmergenceError
from emergence.platforms import kaggle_workflow as kaggle

EXIT_FAILED, EXIT_SETUP, EXIT_PENDING = 1, 2, 3
NOTEBOOKS = Path("notebooks")
OUTPUT_ROOT = Path("kaggle_output")


def build_parser(parser: argparse.ArgumentParser | None = None) -> argparse.ArgumentParser:
    """The `kaggle` command group's parser (fills `parser` when the main CLI passes one)."""
    parser = parser or argparse.ArgumentParser(prog="emergence kaggle", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _init_parser(commands.add_parser("init", help="write notebooks/kernel-metadata.json"))
    push = commands.add_parser("push", help="upload the notebook as a new kernel version and start it")
    run = commands.add_parser("run", help="push, then wait until the run finishes")
    for sub in (push, run):
        _dir_option(sub)
        sub.add_argument(
            "--new",
            action="store_true",
            help="first version of a new kernel: leave its own output out of kernel_sources",
        )
        sub.add_argument(
            "--timeout",
            type=_whole_seconds,
            metavar="SECONDS",
            help="stop the session after this many seconds (kaggle kernels push --timeout; "
            "Kaggle's own limit still holds)",
        )
    status = commands.add_parser("status", help="the latest version's status (exit 0 COMPLETE, 1 failed)")
    _kernel_options(status)
    status.add_argument("--watch", action="store_true", help="poll until the run finishes")
    for sub in (run, status):
        sub.add_argument("--interval", type=_positive, default=60.0, help="seconds between polls (default 60)")
    logs = commands.add_parser("logs", help="the latest session's log (kaggle kernels logs)")
    _kernel_options(logs)
    logs.add_argument("-f", "--follow", action="store_true", help="stream the running session's log until it ends")
    download = commands.add_parser("download", help="fetch the latest output, verify SHA256SUMS, list checkpoints")
    _kernel_options(download)
    download.add_argument("--output-dir", type=Path, help="where to put it (default kaggle_output/<slug>)")
    return parser


def _init_parser(sub: argparse.ArgumentParser) -> None:
    sub.add_argument("--username", required=True, help="your Kaggle username (the kernel's owner)")
    sub.add_argument("--slug", default=kaggle.DEFAULT_SLUG, help="the kernel's URL slug, 5+ characters")
    sub.add_argument("--title", help="the kernel's title (default: from the slug)")
    sub.add_argument(
        "--accelerator",
        choices=tuple(kaggle.MACHINE_SHAPES),
        default="t4x2",
        help="t4x2 (GPU T4 x2: machine_shape NvidiaTeslaT4, the default), tpu (TPU v5e-8), none; "
        "p100 and tpuv3 are retired: Kaggle runs them on a replacement, a warning says so",
    )
    sub.add_argument(
        "--internet",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="internet on (install from the repository) or off (install from --dataset)",
    )
    sub.add_argument("--private", dest="private", action="store_true", default=True)
    sub.add_argument("--public", dest="private", action="store_false")
    sub.add_argument(
        "--dataset",
        action="append",
        default=[],
        metavar="OWNER/SLUG",
        help="attach a dataset (e.g. the project's wheel when internet is off); repeatable",
    )
    _dir_option(sub)


def _dir_option(sub: argparse.ArgumentParser) -> None:
    sub.add_argument("--dir", type=Path, default=NOTEBOOKS, help="folder of the notebook and its metadata")


def _kernel_options(sub: argparse.ArgumentParser) -> None:
    sub.add_argument("kernel", nargs="?", help="OWNER/SLUG (default: the id in --dir's kernel-metadata.json)")
    _dir_option(sub)


def _whole_seconds(text: str) -> int:
    try:
        return kaggle.check_timeout(int(text))
    except (ValueError, kaggle.KernelMetadataError):
        raise argparse.ArgumentTypeError(f"must be a whole positive number of seconds, got {text}") from None


def _positive(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be a positive number of seconds, got {text}")
    return value


def main(argv: Sequence[str] | None = None) -> int:
    """Run one `emergence kaggle` command; return its exit status."""
    args = build_parser().parse_args(argv)
    return run_command(args)


def run_command(args: argparse.Namespace) -> int:
    """Dispatch parsed arguments; turn errors into one line on stderr and an exit status."""
    try:
        return COMMANDS[args.command](args)
    except (kaggle.KaggleSetupError, kaggle.KernelMetadataError) as err:
        print(f"emergence kaggle: {err}", file=sys.stderr)
        return EXIT_SETUP
    except EmergenceError as err:
        print(f"emergence kaggle: {err}", file=sys.stderr)
        return EXIT_FAILED


def _init(args: argparse.Namespace) -> int:
    meta = kaggle.build_metadata(
        args.username,
        args.slug,
        title=args.title,
        accelerator=args.accelerator,
        internet=args.internet,
        private=args.private,
        dataset_sources=args.dataset,
    )
    path = kaggle.write_metadata(args.dir, meta)
    print(f"wrote {path} for {meta['id']} ({args.accelerator}, internet {'on' if args.internet else 'off'})")
    _warn_if_retired(meta)
    return 0


def _warn_if_retired(meta: dict) -> None:
    warning = kaggle.retired_warning(meta)
    if warning:
        print(f"emergence kaggle: {warning}", file=sys.stderr)


def _push(args: argparse.Namespace) -> int:
    _warn_if_retired(kaggle.read_metadata(args.dir))
    print(kaggle.push(args.dir, new=args.new, timeout=args.timeout))
    return 0


def _run(args: argparse.Namespace) -> int:
    _push(args)
    return _finished(kaggle.wait(kaggle.kernel_ref(args.dir), interval=args.interval, report=_show, after_push=True))


def _status(args: argparse.Namespace) -> int:
    kernel = args.kernel or kaggle.kernel_ref(args.dir)
    if args.watch:
        return _finished(kaggle.wait(kernel, interval=args.interval, report=_show))
    current = kaggle.status(kernel)
    _show(current)
    return _finished(current) if current.finished else EXIT_PENDING


def _show(current: kaggle.KernelStatus) -> None:
    print(f"{current.kernel}: {current.state}", flush=True)
    if current.failure_message:
        print(f"failure message: {current.failure_message}", flush=True)


def _finished(current: kaggle.KernelStatus) -> int:
    return EXIT_FAILED if current.failed else 0


def _logs(args: argparse.Namespace) -> int:
    kernel = args.kernel or kaggle.kernel_ref(args.dir)
    kaggle.logs(kernel, follow=args.follow, out=lambda line: print(line, flush=True))
    return 0


def _download(args: argparse.Namespace) -> int:
    kernel = args.kernel or kaggle.kernel_ref(args.dir)
    dest = args.output_dir or OUTPUT_ROOT / kernel.split("/")[1]
    kaggle.download_output(kernel, dest)
    checked, checkpoints = kaggle.verify_output(dest)
    print(f"downloaded {kernel} to {dest}; {checked} file(s) verified")
    for ref in checkpoints:
        print(f"  {ref.kind:9} step {ref.step:>12,}  {ref.path}")
    if checkpoints:
        print(f"resume locally: emergence train --train.resume-from {checkpoints[-1].path.parent}")
    else:
        print("no checkpoints in this output")
    return 0


COMMANDS = {"init": _init, "push": _push, "run": _run, "status": _status, "logs": _logs, "download": _download}

if __name__ == "__main__":
    sys.exit(main())
