"""emergency_latency: SIGTERM → durable emergency checkpoint, against one plain save of the same state.

    python bench/emergency_latency.py [--rounds 3] [--big-hidden 6400] [--work-seconds 0.3] [--quick]

For a small state (the toy MLP, a few KiB) and a ~500 MB one (MLP 6400×6400 with Adam:
params and two moments), each round starts a real training process
(`tests/scripts/train_subprocess.py` with `SignalCheckpointCallback`), lets it time one
plain save of its state at step 3 (device idle: device→host copy + write of the same
file format), then sends SIGTERM from here and polls the checkpoint directory until
`emergency_step_<N>.safetensors` appears (atomic rename: it is then complete). The
latency is measured from the kill; the file is then read back and verified (not timed).

Target (exit 1 when missed by more than the noise of the per-round ratios): latency ≤
1.5 × plain save + max((max_calls_in_flight + 1) × call, QUEUED_SECONDS + call), where
`call` is the device time of one train call measured in the same run, from the pace of
the child's steps once its queue is bounded (the emergency save must wait for the calls
already dispatched: the signal callback keeps at most 2 unfinished once more than
`QUEUED_SECONDS` of work is queued). Each step of both states also does `--work-seconds`
of device work, so that the calls in flight are not free.
"""
from __future__ import annotations

import argparse
import shutil
import signal
import statistics
import sys
import tempfile
import time
from pathlib import Path

from _common import Ratio, exit_with, machine, print_table, verdict

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from emergence.callbacks.signals import QUEUED_SECONDS  # noqa: E402
from emergence.checkpoint import read_checkpoint  # noqa: E402
from tests.scripts.driver import Child  # noqa: E402

IN_FLIGHT = 2
PLAIN_AT = 3
PACED_FROM, PACED_CALLS = PLAIN_AT + 6, 4  # the queue refills for a few calls after the plain save drained it


def one_round(run_dir: Path, hidden: str, work_seconds: float) -> tuple[float, float, float, int]:
    """(latency, plain save, call seconds, state bytes) of one SIGTERM."""
    shutil.rmtree(run_dir, ignore_errors=True)
    child = Child(run_dir, 100_000, "--callbacks", "signal", "--hidden", hidden, "--plain-save-at", str(PLAIN_AT),
                  "--work-seconds", str(work_seconds))
    plain = float(child.wait_for("plain", timeout=600).split()[1])
    first = child.wait_for(f"step {PACED_FROM}", timeout=600)
    began = time.monotonic()
    child.wait_for(f"step {PACED_FROM + PACED_CALLS}", timeout=600)
    call = (time.monotonic() - began) / PACED_CALLS  # a bounded queue: host steps pace at the device's rate
    sent = child.send(signal.SIGTERM)
    pattern = "emergency_step_*.safetensors"
    while not (found := list((run_dir / "checkpoints").glob(pattern))):
        if time.monotonic() - sent > 600:
            child.kill()
            raise SystemExit(f"no emergency checkpoint 600 s after SIGTERM ({first})")
        time.sleep(0.0005)
    latency = time.monotonic() - sent
    done = child.finish(timeout=600)
    if done.returncode != 143:
        raise SystemExit(f"the child exited {done.returncode}, not 143: {done.stderr[-2000:]}")
    read_checkpoint(found[0])  # complete and verified
    return latency, plain, call, found[0].stat().st_size


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--big-hidden", type=int, default=6400, help="width of the two hidden layers (~500 MB state)")
    parser.add_argument("--work-seconds", type=float, default=0.3)
    parser.add_argument("--dir", default=tempfile.gettempdir())
    parser.add_argument("--quick", action="store_true", help="2 rounds")
    args = parser.parse_args()
    if args.quick:
        args.rounds = 2
    print(f"emergency_latency on {machine()}")
    cases = {"small": "8", "~500 MB": f"{args.big_hidden},{args.big_hidden}"}
    rows, verdicts = [], []
    with tempfile.TemporaryDirectory(dir=args.dir) as scratch:
        results: dict[str, list[tuple[float, float, float, int]]] = {name: [] for name in cases}
        for r in range(args.rounds):  # interleaved: A B, B A, ...
            for name in list(cases)[r % 2:] + list(cases)[: r % 2]:
                results[name].append(one_round(Path(scratch) / "run", cases[name], args.work_seconds))
        for name, runs in results.items():
            latency, plain, call, size = (list(column) for column in zip(*runs))
            ratio = Ratio.of(latency, plain)
            target = statistics.median(1.5 + max((IN_FLIGHT + 1) * c, QUEUED_SECONDS + c) / p
                                       for c, p in zip(call, plain))
            verdicts.append(verdict(ratio, target, higher_is_better=False))
            rows.append([name, f"{statistics.median(size) / 1e6:.1f} MB", f"{statistics.median(plain):.3f} s",
                         f"{statistics.median(call):.3f} s", f"{statistics.median(latency):.3f} s", str(ratio),
                         f"≤ {target:.2f}", verdicts[-1]])
    print_table("SIGTERM → durable emergency checkpoint", ["state", "size", "plain save", "call", "latency",
                                                           "latency / plain", "target", "verdict"], rows,
                notes=[f"median of {args.rounds} interleaved rounds; target = 1.5 + max({IN_FLIGHT + 1} calls, "
                       f"{QUEUED_SECONDS} s + 1 call) / plain save; each step also does {args.work_seconds} s of "
                       f"device work"])
    exit_with(verdicts)


if __name__ == "__main__":
    main()
